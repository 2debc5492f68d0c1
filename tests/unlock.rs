//! `secret unlock` caches the vault key in the kernel keyring so launches
//! skip the passphrase; `secret lock` ends that.

use crate::util::Env;

/// Gives this test's thread (and so every command it starts) a session
/// keyring of its own, as a login session has: the unlock cache lives in
/// the session keyring of whoever ran `secret unlock`.
#[allow(unsafe_code)]
fn own_session_keyring() {
    use nix::libc;
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING = 1, NULL) reads no memory
    // of ours; the result is checked.
    let id = unsafe { libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<libc::c_char>()) };
    assert!(id > 0, "cannot join a session keyring");
}

#[test]
fn unlock_lets_launches_skip_the_passphrase_until_lock() {
    own_session_keyring();
    let env = Env::with_vault();
    env.add("@k", b"sk-unlocked-value");
    let launch = || {
        env.secret(["exec", "-e", "K=@k", "--", "sh", "-c", "printf %s \"$K\""])
            .env_remove("SECRET_PASSPHRASE")
            .run()
    };
    launch().code(125).stderr_has("no passphrase");

    env.secret(["unlock", "--for", "2m"])
        .env("SECRET_PASSPHRASE", "wrong")
        .run()
        .code(1)
        .stderr_has("wrong passphrase");
    env.secret(["unlock", "--for", "2m"])
        .run()
        .success()
        .stdout_has("unlocked for 2m");
    let out = launch();
    out.success();
    assert_eq!(out.stdout(), "sk-unlocked-value");
    env.secret(["list"])
        .env_remove("SECRET_PASSPHRASE")
        .run()
        .success()
        .stdout_has("@k");

    env.secret(["lock"]).run().success().stdout_has("locked");
    launch().code(125);
    env.secret(["lock"])
        .run()
        .success()
        .stdout_has("not unlocked");
    let audit = env.secret(["audit"]).run();
    audit.stdout_has("unlock").stdout_has("lock");
}

#[test]
fn a_stale_cached_key_is_ignored() {
    own_session_keyring();
    let a = Env::with_vault();
    a.secret(["unlock", "--for", "1m"]).run().success();
    // Another vault never matches this cached key (it is looked up by vault id).
    let b = Env::with_vault();
    b.secret(["list"])
        .env_remove("SECRET_PASSPHRASE")
        .run()
        .code(1);
    a.secret(["lock"]).run().success();
}

#[test]
fn durations_are_checked() {
    let env = Env::with_vault();
    env.secret(["unlock", "--for", "soon"])
        .run()
        .code(2)
        .stderr_has("not a duration");
    env.secret(["unlock", "--for", "25h"])
        .run()
        .code(2)
        .stderr_has("at most 24h");
}

/// Everything a hostile child of the same user can try against the kernel
/// keyring: read every key /proc/keys shows, search every keyring it can
/// name, link the user keyrings and every keyring it can see into its own
/// session, take the permissions back, join the per-user session keyring
/// by name — then read again. It prints every payload it could read (hex)
/// and FOUND for every search that answered.
const HOSTILE: &str = r#"
try() {
  for id in $(awk '{print $1}' /proc/keys); do
    keyctl pipe $((16#$id)) 2>/dev/null | od -An -tx1 | tr -d ' \n'; echo
  done
  for r in @t @p @s @u @us; do
    keyctl search $r user "secret:vault:$VID" >/dev/null 2>&1 && echo "FOUND in $r"
  done
}
keyctl show @s; try
keyctl link @u @s; try
keyctl link @us @s; try
keyctl setperm @us 0x3f3f0000; keyctl link @us @s; try
for id in $(awk '$8 == "keyring" {print $1}' /proc/keys); do keyctl link $((16#$id)) @s 2>/dev/null; done; try
keyctl session "_uid_ses.$(id -u)" bash -c "$(declare -f try); try" 2>/dev/null
keyctl new_session >/dev/null; keyctl link @u @s; keyctl link @us @s; try
# Control: keyctl works here, so the failures above are the kernel refusing.
keyctl pipe "$(keyctl add user control-key control-payload @s)"; echo
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_launched_child_cannot_read_the_cached_vault_key() {
    if !crate::util::tools_present(
        "unlock cache isolation",
        &["keyctl"],
        "apt-get install keyutils",
    ) {
        return;
    }
    own_session_keyring();
    let env = Env::with_vault();
    env.add("@k", b"sk-isolation-value");
    env.secret(["unlock", "--for", "2m"]).run().success();
    // The vault id is in the clear header (after the magic and version).
    let vault = std::fs::read(env.vault()).expect("vault");
    let vid = hex(&vault[10..26]);

    // Positive control: this test process shares the session `secret
    // unlock` ran in, so it possesses the key and can read it.
    let found = std::process::Command::new("keyctl")
        .args(["search", "@s", "user", &format!("secret:vault:{vid}")])
        .output()
        .expect("keyctl");
    assert!(
        found.status.success(),
        "the cached key is not in the session keyring"
    );
    let serial = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    let key = std::process::Command::new("keyctl")
        .args(["pipe", &serial])
        .output()
        .expect("keyctl");
    assert_eq!(
        key.stdout.len(),
        32,
        "the session cannot read its own cached key"
    );
    let key_hex = hex(&key.stdout);

    for replace in [false, true] {
        let mut args = vec!["exec"];
        if replace {
            args.push("--exec");
        }
        args.extend(["--env", "K=@k", "--", "bash", "-c", HOSTILE]);
        let out = env
            .secret(args)
            .env_remove("SECRET_PASSPHRASE")
            .env("VID", &vid)
            .run();
        out.success();
        let stdout = out.stdout();
        assert!(
            stdout.contains(&hex(b"control-payload")) || stdout.contains("control-payload"),
            "keyctl did not work in the child:\n{stdout}\n{}",
            out.stderr()
        );
        assert!(
            !stdout.contains(&key_hex),
            "the child read the vault key (--exec: {replace}):\n{stdout}"
        );
        assert!(
            !stdout.contains("FOUND"),
            "the child found the vault key (--exec: {replace}):\n{stdout}"
        );
    }
    // The launches above did use the cache (no passphrase was given), and
    // the key is still there for the next one.
    env.secret(["list"])
        .env_remove("SECRET_PASSPHRASE")
        .run()
        .success();
    env.secret(["lock"]).run().success().stdout_has("locked");
}

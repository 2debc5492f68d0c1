//! Issue 13, item 7: the rough edges a new user meets in the first hour,
//! each replayed through the real binary.

use std::path::Path;
use std::process::Stdio;

use crate::terminal::Terminal;
use crate::util::{Env, in_ci};

/// The README's "Try it" command runs in a subshell: afterwards the
/// user's shell has no SECRET_HOME or SECRET_PASSPHRASE, so the next
/// example (`secret init`) starts clean.
#[test]
fn the_readme_demo_leaves_the_shell_untouched() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme.split("## Try it").nth(1).expect("a Try it section");
    let block = after
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a sh block");
    let env = Env::new();
    // The demo's `cargo build --release` is this test's build: a release
    // directory holding this build's binary stands in for it.
    let release = env.root().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_secret"), release.join("secret")).unwrap();
    let program = format!(
        "cargo() {{ :; }}\n{block}\necho \"after: [${{SECRET_HOME-}}] [${{SECRET_PASSPHRASE-}}]\"\nsecret --version >/dev/null 2>&1 && echo still-on-path || echo path-restored\n"
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", env.root())
        .env("TMPDIR", env.root())
        .current_dir(env.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("the child got a key of 22 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("after: [] []"), "{stdout}");
    assert!(stdout.contains("path-restored"), "{stdout}");
    assert!(!stdout.contains("sk-demo-not-a-real-key"), "{stdout}");
}

/// A typo gets a did-you-mean, and every missing handle is named in one
/// run, not the first.
#[test]
fn every_missing_handle_is_reported_with_a_did_you_mean() {
    let env = Env::with_vault();
    env.add("@openai_api_key", b"sk-first-hour-value");
    let out = env
        .secret([
            "exec",
            "-e",
            "A=@opnai_api_key",
            "-e",
            "B=@db_password",
            "--",
            "true",
        ])
        .run();
    out.code(125).no_leak(b"sk-first-hour-value");
    // One line per reference, and a hint that fits them all.
    out.stderr_has("2 secret references could not be resolved:\n")
        .stderr_has(
            "\n  @opnai_api_key: no secret @opnai_api_key in the store; did you mean @openai_api_key?\n",
        )
        .stderr_has("\n  @db_password: no secret @db_password in the store\n")
        .stderr_has("add each missing one with: secret add @HANDLE --stdin");
    // The same for one handle alone, with the fix.
    env.secret(["inspect", "@openai_api_ky"])
        .run()
        .code(1)
        .stderr_has("did you mean @openai_api_key?");
}

/// `rm` of a missing secret does not suggest adding it.
#[test]
fn rm_of_a_missing_secret_does_not_hint_add() {
    let env = Env::with_vault();
    env.add("@db", b"value-of-db-1");
    let out = env.secret(["rm", "@nope"]).run();
    out.code(1)
        .stderr_has("no secret @nope")
        .stderr_has("nothing was removed");
    assert!(!out.stderr().contains("secret add"), "{}", out.stderr());
    let out = env.secret(["rm", "@dbb"]).run();
    out.code(1).stderr_has("secret rm @db");
}

/// `rotate` without `--stdin` suggests a command that works, and it does.
#[test]
fn rotate_without_stdin_suggests_a_working_command() {
    let env = Env::with_vault();
    env.add("@k", b"old-value-1234");
    let out = env.secret(["rotate", "@k"]).run();
    out.code(2).stderr_has("secret rotate @k --stdin");
    assert!(!out.stderr().contains("secret add"), "{}", out.stderr());
    env.secret(["rotate", "@k", "--stdin"])
        .stdin(b"new-value-5678")
        .run()
        .success()
        .stdout_has("rotated @k (version 2");
}

/// A passphrase under 8 characters (one, as the issue tried) is refused at
/// init, saying the minimum in plain words; nothing is created.
#[test]
fn init_refuses_a_short_passphrase() {
    let env = Env::new();
    let out = env.secret(["init"]).env("SECRET_PASSPHRASE", "Q").run();
    out.code(1)
        .stderr_has("the new passphrase is too short: the minimum is 8 characters");
    assert!(!out.stderr().contains("1 characters"), "{}", out.stderr());
    assert!(!env.vault().exists());
    env.secret(["init"])
        .env("SECRET_PASSPHRASE", "eight ch")
        .run()
        .success();
}

/// `backend = file` (unquoted) names the line and shows the fix.
#[test]
fn an_unquoted_backend_names_the_line_and_the_fix() {
    let env = Env::with_vault();
    let config = env.home().join("config.toml");
    std::fs::write(&config, "# by hand\nbackend = file\n").unwrap();
    env.secret(["list"])
        .run()
        .code(2)
        .stderr_has("config.toml:2:11: file is not quoted")
        .stderr_has("write it as: backend = \"file\"");
}

/// A launch with no handles needs no home: HOME unset, no SECRET_HOME.
#[test]
fn a_launch_without_handles_works_with_home_unset() {
    let env = Env::new();
    let out = env
        .secret([
            "exec",
            "-e",
            "GREETING=hello",
            "--",
            "sh",
            "-c",
            "echo \"$GREETING\"",
        ])
        .env_remove("HOME")
        .env_remove("SECRET_HOME")
        .run();
    out.success();
    assert_eq!(out.stdout(), "hello\n");
    // One that needs the store says what to set.
    env.secret(["exec", "-e", "K=@k", "--", "true"])
        .env_remove("HOME")
        .env_remove("SECRET_HOME")
        .run()
        .code(125)
        .stderr_has("set SECRET_HOME");
}

/// `--keep` without `-i` is refused, saying why and what to do.
#[test]
fn keep_without_ignore_environment_is_refused() {
    let env = Env::new();
    env.secret(["exec", "--keep", "PATH", "--", "true"])
        .run()
        .code(125)
        .stderr_has("--keep PATH does nothing without -i")
        .stderr_has("add -i");
}

/// `audit` has a header row, and a direct remote resolution shows its
/// reference.
#[test]
fn audit_has_a_header_and_shows_remote_references() {
    let env = Env::with_vault();
    // The default grant covers handles, not remote stores: the resolution
    // is denied before any network, and recorded.
    // A reference longer than a handle usually is.
    let reference = "vault://secret/team-a/payments-app#api_token";
    env.secret(["exec", "-e", &format!("K={reference}"), "--", "true"])
        .run()
        .code(125);
    let out = env.secret(["audit"]).run();
    out.success();
    let text = out.stdout();
    let mut lines = text.lines();
    let header_line = lines.next().unwrap();
    let header: Vec<&str> = header_line.split_whitespace().collect();
    assert_eq!(
        header,
        ["SEQ", "TIME", "ACTION", "SECRET", "CONSUMER", "OUTCOME"]
    );
    let row = lines
        .find(|l| l.contains(" resolve ") && l.contains(&format!(" {reference} ")))
        .unwrap_or_else(|| panic!("{text}"));
    // Still in its columns: the consumer under CONSUMER.
    let consumer = header_line.find("CONSUMER").unwrap();
    assert!(row[consumer..].starts_with("exec "), "{text}");
}

/// A read-only SECRET_HOME (a container image) launches with SECRET_AUDIT
/// naming a writable trail; without it, the refusal names SECRET_AUDIT.
#[test]
fn a_read_only_home_launches_with_secret_audit() {
    let env = Env::with_vault();
    env.add("@k", b"read-only-value-1");
    let audit = env.root().join("trail").join("audit.jsonl");
    // A private mount namespace where SECRET_HOME is mounted read-only
    // (root ignores file modes, so a mode alone would not do).
    let run = |audit_var: Option<&Path>| {
        let script = format!(
            "mount --bind -o ro {home} {home} && touch {home}/probe 2>/dev/null && echo writable; exec \"$0\" exec -e K=@k -- sh -c 'echo got=${{#K}}'",
            home = env.home().display()
        );
        let bin = env!("CARGO_BIN_EXE_secret");
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["-m", "sh", "-c", &script, bin])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", env.root())
            .env("SECRET_HOME", env.home())
            .env("SECRET_PASSPHRASE", crate::util::PASSPHRASE)
            .env("SECRET_TEST_FAST_KDF", "1");
        if let Some(a) = audit_var {
            cmd.env("SECRET_AUDIT", a);
        }
        cmd.current_dir(env.root())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(None);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && stderr.contains("unshare failed") {
        assert!(!in_ci(), "mount namespaces must work in CI: {stderr}");
        eprintln!("skipping: this machine cannot make mount namespaces");
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!stdout.contains("writable"), "the mount is not read-only");
    assert_eq!(out.status.code(), Some(125), "{stdout}\n{stderr}");
    assert!(stderr.contains("SECRET_AUDIT"), "{stderr}");
    assert!(!stdout.contains("got="), "ran unrecorded: {stdout}");

    let out = run(Some(&audit));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("got=17"), "{stdout}");
    let trail = std::fs::read_to_string(&audit).unwrap();
    assert!(trail.contains("\"action\":\"resolve\""), "{trail}");
    assert!(!trail.contains("read-only-value-1"));
}

/// Ctrl-C at the passphrase prompt restores echo: the terminal is as it
/// was, and the shell sees the interrupt (130).
#[test]
fn ctrl_c_at_the_passphrase_prompt_restores_echo() {
    let env = Env::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_secret")).parent().unwrap();
    // bash with a trap (reset to the default in its child) waits for
    // secret, then reports its status and the terminal's echo flag.
    let inner = env.root().join("prompt.sh");
    std::fs::write(
        &inner,
        "trap 'echo trapped' INT\nsecret init\necho \"rc=$?\"\nstty -a | tr ' ;' '\\n\\n' | grep -x -e echo -e -echo | sed 's/^/flag=/'\n",
    )
    .unwrap();
    let vars = vec![
        ("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())),
        ("HOME".into(), env.root().display().to_string()),
        ("SECRET_HOME".into(), env.home().display().to_string()),
        ("SECRET_TEST_FAST_KDF".into(), "1".into()),
    ];
    let mut term = Terminal::run(
        &env,
        &format!("bash --norc --noprofile {}", inner.display()),
        vars,
    );
    term.wait_screen("New vault passphrase: ");
    term.type_keys("\x03");
    term.wait_screen("flag=");
    let screen = term.screen();
    assert!(screen.contains("rc=130"), "{screen}");
    assert!(screen.contains("flag=echo"), "echo was left off:\n{screen}");
    assert!(!env.vault().exists());
}

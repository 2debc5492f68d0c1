//! The keychain backend against a real Secret Service: every test starts its
//! own D-Bus session bus and an unlocked gnome-keyring on it, so the values
//! really go through the Secret Service (and `secret-tool` can check them).
//!
//! Needs `dbus-daemon`, `dbus-send` (package dbus), `gnome-keyring-daemon`
//! (gnome-keyring) and `secret-tool` (libsecret-tools). Without them the tests
//! fail when `CI` is set, and skip loudly otherwise.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Cmd, Env, Output};

const VALUE: &[u8] = b"sk-keychain-0a1b2c3d4e5f6a7b";

/// The programs the fixture runs.
const TOOLS: &[&str] = &[
    "dbus-daemon",
    "dbus-send",
    "gnome-keyring-daemon",
    "secret-tool",
];

/// The password the test login keyring is created and unlocked with.
const KEYRING_PASSWORD: &[u8] = b"keyring-test-password";

/// How long anything that should be quick may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// True when every tool is installed (see `util::tools_present`).
fn tools_present() -> bool {
    crate::util::tools_present(
        "keychain",
        TOOLS,
        "install the packages dbus, gnome-keyring, libsecret-tools",
    )
}

/// A private session bus with an unlocked gnome-keyring on it. Dropping it
/// kills exactly the two processes it started.
struct Keyring {
    daemon: Child,
    bus: Child,
    address: String,
    home: PathBuf,
}

impl Keyring {
    /// Starts both under `home` (the keyring daemon's HOME), and waits until
    /// the Secret Service answers.
    fn start(home: &Path) -> Self {
        // No service directories: nothing is ever auto-started on this bus
        // (the system's org.freedesktop.secrets.service would start a second,
        // locked keyring with the wrong HOME), so "not ready" is a clean error.
        let config = home.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                "<busconfig><type>session</type><listen>unix:path={}</listen>\
                 <auth>EXTERNAL</auth><policy context=\"default\">\
                 <allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>\
                 <allow own=\"*\"/></policy></busconfig>\n",
                home.join("bus").display()
            ),
        )
        .expect("write bus.conf");
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .env_clear()
            .env("PATH", path_var())
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dbus-daemon");
        // The address is printed once the bus listens.
        let mut address = String::new();
        let read = BufReader::new(bus.stdout.take().expect("bus stdout")).read_line(&mut address);
        let address = address.trim().to_owned();
        if read.is_err() || address.is_empty() {
            let _ = bus.kill();
            let _ = bus.wait();
            panic!("dbus-daemon printed no address ({read:?})");
        }
        let daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", path_var())
            .env("HOME", home)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut daemon = match daemon {
            Ok(d) => d,
            Err(e) => {
                let _ = bus.kill();
                let _ = bus.wait();
                panic!("spawn gnome-keyring-daemon: {e}");
            }
        };
        // It reads the login keyring's password up to end of input.
        {
            let mut stdin = daemon.stdin.take().expect("keyring stdin");
            let _ = stdin.write_all(KEYRING_PASSWORD);
        }
        let mut ring = Self {
            daemon,
            bus,
            address,
            home: home.to_owned(),
        };
        ring.wait_until_ready();
        ring
    }

    /// Polls `secret-tool search` (exit 0 once the service answers, even
    /// with nothing found), for at most PATIENCE.
    fn wait_until_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.daemon.try_wait() {
                panic!("gnome-keyring-daemon exited before answering: {status}");
            }
            let probe = self
                .tool(
                    "secret-tool",
                    &["search", "--all", "service", "secret-test-probe"],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run secret-tool");
            if probe.success() {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the Secret Service did not answer within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A helper program talking to this keyring.
    fn tool(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", path_var())
            .env("HOME", &self.home)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        for child in [&mut self.daemon, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn path_var() -> std::ffi::OsString {
    std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into())
}

/// One test's world: a keyring, and a `SECRET_HOME` whose commands use it.
/// The keyring is declared first so that it is dropped (its daemons
/// killed) before the temporary directory is removed.
struct World {
    ring: Keyring,
    env: Env,
}

impl World {
    /// A world with a keyring but no store; `None` when skipping.
    fn new() -> Option<Self> {
        if !tools_present() {
            return None;
        }
        let env = Env::new();
        let ring = Keyring::start(env.root());
        let env = env.var("DBUS_SESSION_BUS_ADDRESS", &ring.address);
        Some(Self { ring, env })
    }

    /// A world with an initialised keychain store.
    fn with_store() -> Option<Self> {
        let world = Self::new()?;
        world
            .secret(["init", "--backend", "keychain"])
            .run()
            .success()
            .stdout_has("keychain");
        Some(world)
    }

    fn secret<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.env.secret(args)
    }

    fn add(&self, handle: &str, value: &[u8]) {
        self.secret(["add", handle, "--stdin"])
            .stdin(value)
            .run()
            .success()
            .no_leak(value);
    }

    fn meta_file(&self) -> PathBuf {
        self.env.home().join("keychain.json")
    }

    fn store_id(&self) -> String {
        let text = std::fs::read(self.meta_file()).expect("read keychain.json");
        let json: serde_json::Value = serde_json::from_slice(&text).expect("keychain.json is JSON");
        let id = json["store_id"].as_str().expect("store_id").to_owned();
        assert!(!id.is_empty(), "empty store_id");
        id
    }

    /// The item `secret-tool` finds for `username`, straight from the
    /// Secret Service; `None` when there is none.
    fn lookup_user(&self, username: &str) -> Option<Vec<u8>> {
        let out = self
            .ring
            .tool(
                "secret-tool",
                &["lookup", "service", "secret", "username", username],
            )
            .output()
            .expect("run secret-tool lookup");
        if out.status.success() {
            Some(out.stdout)
        } else {
            assert!(
                out.stdout.is_empty(),
                "secret-tool lookup failed yet printed something"
            );
            None
        }
    }

    /// The value behind `handle` (a name without `@`).
    fn lookup(&self, handle: &str) -> Option<Vec<u8>> {
        self.lookup_user(&format!("{}/{handle}", self.store_id()))
    }

    /// Replaces the value behind `handle` without going through `secret`.
    fn store_behind_secrets_back(&self, handle: &str, value: &[u8]) {
        let user = format!("{}/{handle}", self.store_id());
        let mut child = self
            .ring
            .tool(
                "secret-tool",
                &["store", "--label=x", "service", "secret", "username", &user],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn secret-tool store");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(value)
            .expect("write value to secret-tool");
        let out = child.wait_with_output().expect("secret-tool store");
        assert!(
            out.status.success(),
            "secret-tool store: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn list_json(&self) -> Vec<serde_json::Value> {
        let out = self.secret(["list", "--json"]).run();
        out.success();
        match serde_json::from_slice(&out.stdout).expect("list --json is JSON") {
            serde_json::Value::Array(entries) => entries,
            other => panic!("list --json is not an array: {other}"),
        }
    }

    /// What the child of `secret exec -e V=@handle` sees in V.
    fn exec_value(&self, handle: &str) -> Vec<u8> {
        let out = self
            .secret([
                "exec",
                "--env",
                &format!("V=@{handle}"),
                "--",
                "sh",
                "-c",
                "printf %s \"$V\"",
            ])
            .run();
        out.success();
        assert!(out.stderr.is_empty(), "exec stderr: {}", out.stderr());
        out.stdout
    }
}

/// Runs `cmd`, failing the test if it takes longer than PATIENCE (so a
/// hanging keychain call fails instead of blocking the suite).
fn run_bounded(cmd: Cmd) -> (Output, Duration) {
    let mut cmd = cmd.into_command();
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn secret");
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("secret did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed();
    let out = child.wait_with_output().expect("wait");
    (
        Output {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        },
        elapsed,
    )
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn values_live_in_the_secret_service_and_nowhere_else() {
    let Some(w) = World::with_store() else { return };
    assert!(w.meta_file().exists(), "no keychain.json after init");
    assert!(
        !w.env.vault().exists(),
        "init --backend keychain created a file vault"
    );

    let mut typed = VALUE.to_vec();
    typed.push(b'\n');
    w.secret([
        "add",
        "@k",
        "--stdin",
        "--provider",
        "openai",
        "--kind",
        "api_key",
    ])
    .stdin(&typed)
    .run()
    .success()
    .stdout_has("added @k")
    .stdout_has("version 1")
    .no_leak(VALUE);

    let entries = w.list_json();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["handle"], "@k");
    assert_eq!(e["provider"], "openai");
    assert_eq!(e["kind"], "api_key");
    assert_eq!(e["backend"], "keychain");
    assert_eq!(e["version"], 1);
    assert!(e["rotated"].is_null(), "{e}");
    let fingerprint = e["fingerprint"].as_str().expect("fingerprint");
    assert!(is_hex(fingerprint), "fingerprint {fingerprint:?}");
    assert!(
        !crate::util::contains(fingerprint.as_bytes(), VALUE),
        "fingerprint holds the value"
    );

    w.secret(["list"])
        .run()
        .success()
        .stdout_has("@k")
        .stdout_has("openai")
        .stdout_has(fingerprint)
        .stdout_has("keychain")
        .no_leak(VALUE);
    w.secret(["inspect", "@k", "--json"])
        .run()
        .success()
        .stdout_has("\"backend\":\"keychain\"")
        .no_leak(VALUE);

    // Really in the Secret Service, with the trailing newline stripped.
    assert_eq!(w.lookup("k").as_deref(), Some(VALUE));

    // Neither the value nor the root key is in any file.
    w.env.assert_not_on_disk(VALUE);
    let root = w
        .lookup_user(&format!("{}:root", w.store_id()))
        .expect("the root key is in the keychain");
    assert_eq!(root.len(), 32, "root key length");
    w.env.assert_not_on_disk(&root);
    let root_hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
    w.env.assert_not_on_disk(root_hex.as_bytes());

    let mode = std::fs::metadata(w.meta_file())
        .expect("stat keychain.json")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "keychain.json mode {mode:o}");

    // A second init leaves the store alone.
    w.secret(["init", "--backend", "keychain"])
        .run()
        .code(1)
        .stderr_has("already exists");
    assert_eq!(w.lookup("k").as_deref(), Some(VALUE));
}

#[test]
fn exec_hands_the_exact_bytes_to_the_child() {
    let Some(w) = World::with_store() else { return };
    w.add("@k", VALUE);
    assert_eq!(w.exec_value("k"), VALUE);

    let binary: &[u8] = b"\xff\xfeab";
    w.add("@bin", binary);
    assert_eq!(w.lookup("bin").as_deref(), Some(binary));
    let out = w
        .secret([
            "exec",
            "-e",
            "B=@bin",
            "-e",
            "K=@k",
            "--",
            "sh",
            "-c",
            "printf %s \"$B\" | od -An -tx1",
        ])
        .run();
    out.success().no_leak(VALUE);
    let dump: Vec<String> = out.stdout().split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        dump,
        ["ff", "fe", "61", "62"],
        "child saw {:?}",
        out.stdout()
    );
}

#[test]
fn rotate_and_rm_go_through_to_the_secret_service() {
    let Some(w) = World::with_store() else { return };
    let old: &[u8] = b"sk-old-value-1111";
    let new: &[u8] = b"sk-new-value-2222";
    w.add("@k", old);
    let before = w.list_json()[0]["fingerprint"].clone();
    assert_eq!(w.exec_value("k"), old);

    w.secret(["rotate", "@k", "--stdin"])
        .stdin(new)
        .run()
        .success()
        .stdout_has("rotated @k")
        .stdout_has("version 2")
        .no_leak(old)
        .no_leak(new);
    assert_eq!(w.exec_value("k"), new);
    assert_eq!(w.lookup("k").as_deref(), Some(new));
    let entries = w.list_json();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["version"], 2);
    assert!(!entries[0]["rotated"].is_null(), "{}", entries[0]);
    assert_ne!(entries[0]["fingerprint"], before, "fingerprint unchanged");

    w.secret(["rm", "@k"])
        .run()
        .success()
        .stdout_has("removed @k")
        .no_leak(new);
    assert_eq!(w.lookup("k"), None, "the item outlived secret rm");
    assert!(w.list_json().is_empty());
    // The store itself (its root key) is still there.
    assert!(w.lookup_user(&format!("{}:root", w.store_id())).is_some());

    let marker = w.env.root().join("ran");
    w.secret([
        "exec",
        "-e",
        "K=@k",
        "--",
        "sh",
        "-c",
        &format!("touch '{}'", marker.display()),
    ])
    .run()
    .code(125)
    .stderr_has("@k")
    .no_leak(new)
    .no_panic();
    assert!(!marker.exists(), "the command ran without its secret");
    w.env.assert_not_on_disk(old);
    w.env.assert_not_on_disk(new);
}

#[test]
fn secret_backend_variable_chooses_the_keychain_at_init() {
    let Some(w) = World::new() else { return };
    w.secret(["init"])
        .env("SECRET_BACKEND", "keychain")
        .run()
        .success()
        .stdout_has("keychain");
    assert!(w.meta_file().exists(), "no keychain.json");
    assert!(!w.env.vault().exists(), "a file vault was created");
    // config.toml remembers the choice: no variable needed from now on.
    w.add("@k", VALUE);
    assert_eq!(w.lookup("k").as_deref(), Some(VALUE));
    assert_eq!(w.list_json()[0]["backend"], "keychain");
    assert_eq!(w.exec_value("k"), VALUE);
    w.env.assert_not_on_disk(VALUE);
}

#[test]
fn tampering_with_metadata_or_values_is_refused() {
    let Some(w) = World::with_store() else { return };
    w.secret(["add", "@k", "--stdin", "--provider", "openai"])
        .stdin(VALUE)
        .run()
        .success();
    let other: &[u8] = b"sk-other-value-3333";
    w.add("@j", other);
    let original = std::fs::read_to_string(w.meta_file()).expect("read keychain.json");
    let entries = w.list_json();
    let fp_j = entries[0]["fingerprint"].as_str().expect("fp").to_owned();
    let fp_k = entries[1]["fingerprint"].as_str().expect("fp").to_owned();
    assert_ne!(fp_j, fp_k);

    let marker = w.env.root().join("ran");
    let touch = format!("touch '{}'", marker.display());
    let edits = [
        ("provider", original.replacen("\"openai\"", "\"github\"", 1)),
        ("fingerprint", original.replacen(&fp_k, &fp_j, 1)),
        (
            "version",
            original.replacen("\"version\": 1\n", "\"version\": 7\n", 1),
        ),
    ];
    for (what, edited) in edits {
        assert_ne!(edited, original, "the {what} edit changed nothing");
        std::fs::write(w.meta_file(), &edited).expect("write keychain.json");
        let out = w.secret(["list"]).run();
        out.no_panic().stderr_has("damaged");
        assert_ne!(out.code, Some(0), "list accepted an edited {what}");
        w.secret(["exec", "-e", "K=@k", "--", "sh", "-c", &touch])
            .run()
            .code(125)
            .stderr_has("damaged")
            .no_leak(VALUE)
            .no_panic();
        assert!(!marker.exists(), "exec ran with edited metadata ({what})");
    }
    // Back to the real file: everything works again.
    std::fs::write(w.meta_file(), &original).expect("restore keychain.json");
    assert_eq!(w.list_json().len(), 2);

    // The value changed behind secret's back: exec refuses, the others
    // still work, and the hint's rotate repairs it.
    let evil: &[u8] = b"sk-evil-value-6666";
    w.store_behind_secrets_back("k", evil);
    assert_eq!(w.lookup("k").as_deref(), Some(evil));
    w.secret(["exec", "-e", "K=@k", "--", "sh", "-c", &touch])
        .run()
        .code(125)
        .stderr_has("@k")
        .stderr_has("fingerprint")
        .no_leak(evil)
        .no_leak(VALUE)
        .no_panic();
    assert!(!marker.exists(), "exec ran with a swapped value");
    assert_eq!(w.exec_value("j"), other);

    // Another item's value copied in is refused just the same.
    w.store_behind_secrets_back("k", other);
    w.secret(["exec", "-e", "K=@k", "--", "true"])
        .run()
        .code(125)
        .stderr_has("fingerprint")
        .no_leak(other);

    let fresh: &[u8] = b"sk-fresh-value-7777";
    w.secret(["rotate", "@k", "--stdin"])
        .stdin(fresh)
        .run()
        .success();
    assert_eq!(w.exec_value("k"), fresh);
}

#[test]
fn an_unreachable_or_locked_keychain_fails_fast() {
    let Some(w) = World::with_store() else { return };
    w.add("@k", VALUE);
    let marker = w.env.root().join("ran");
    let touch = format!("touch '{}'", marker.display());
    let dead_bus = format!("unix:path={}", w.env.root().join("no-such-bus").display());

    // A bus address that leads nowhere.
    let (out, took) = run_bounded(
        w.secret(["list"])
            .env("DBUS_SESSION_BUS_ADDRESS", &dead_bus),
    );
    out.code(1).stderr_has("Secret Service").no_panic();
    assert!(out.stdout.is_empty(), "list printed: {}", out.stdout());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let (out, _) = run_bounded(
        w.secret(["exec", "-e", "K=@k", "--", "sh", "-c", &touch])
            .env("DBUS_SESSION_BUS_ADDRESS", &dead_bus),
    );
    out.code(125).stderr_has("Secret Service").no_panic();
    assert!(!marker.exists(), "exec ran without the keychain");

    // No session bus at all.
    let (out, _) = run_bounded(w.secret(["list"]).env_remove("DBUS_SESSION_BUS_ADDRESS"));
    out.no_panic().stderr_has("Secret Service");
    assert_ne!(out.code, Some(0));

    // The keychain is there but locked.
    let lock = w
        .ring
        .tool(
            "dbus-send",
            &[
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ],
        )
        .output()
        .expect("dbus-send");
    assert!(
        lock.status.success(),
        "locking the keyring: {}",
        String::from_utf8_lossy(&lock.stderr)
    );
    let (out, took) = run_bounded(w.secret(["list"]));
    out.code(1).stderr_has("locked").no_panic();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let (out, _) = run_bounded(w.secret(["exec", "-e", "K=@k", "--", "sh", "-c", &touch]));
    out.code(125).stderr_has("locked").no_leak(VALUE).no_panic();
    assert!(!marker.exists(), "exec ran with a locked keychain");
}

/// Needs no keyring: creating a keychain store with no Secret Service fails
/// cleanly and leaves nothing behind that would claim a store exists.
#[test]
fn init_without_a_secret_service_leaves_nothing_behind() {
    let env = Env::new();
    let dead_bus = format!("unix:path={}", env.root().join("no-such-bus").display());
    let env = env.var("DBUS_SESSION_BUS_ADDRESS", &dead_bus);
    let (out, took) = run_bounded(env.secret(["init", "--backend", "keychain"]));
    out.code(1).stderr_has("Secret Service").no_panic();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!env.home().join("keychain.json").exists());
    assert!(!env.home().join("config.toml").exists());
    // And a file vault can still be made there afterwards.
    env.secret(["init", "--backend", "file"]).run().success();
}

/// Starts `secret ARGS` with its value still to come on stdin, and gives it
/// time to open the store (it reads stdin only after that).
fn start_waiting_for_value(w: &World, args: &[&str]) -> Child {
    let mut cmd = w.secret(args).into_command();
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn secret");
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Hands `value` to a command from `start_waiting_for_value` and waits.
fn finish_with_value(mut child: Child, value: &[u8]) -> Output {
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(value)
        .expect("write value");
    let out = child.wait_with_output().expect("wait");
    Output {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

#[test]
fn a_losing_concurrent_add_leaves_the_winners_value_alone() {
    let Some(w) = World::with_store() else { return };
    let winner: &[u8] = b"sk-winner-value-8888";
    let loser: &[u8] = b"sk-loser-value-9999";
    let slow = start_waiting_for_value(&w, &["add", "@k", "--stdin"]);
    w.add("@k", winner);
    finish_with_value(slow, loser)
        .code(1)
        .stderr_has("already exists")
        .no_leak(loser);
    assert_eq!(
        w.lookup("k").as_deref(),
        Some(winner),
        "the losing add overwrote the item"
    );
    assert_eq!(w.exec_value("k"), winner);
}

#[test]
fn a_rotate_racing_rm_leaves_no_orphan_in_the_keychain() {
    let Some(w) = World::with_store() else { return };
    w.add("@k", VALUE);
    let late: &[u8] = b"sk-late-rotate-value-1212";
    let slow = start_waiting_for_value(&w, &["rotate", "@k", "--stdin"]);
    w.secret(["rm", "@k"]).run().success();
    finish_with_value(slow, late)
        .code(1)
        .stderr_has("no secret @k")
        .no_leak(late);
    assert!(w.list_json().is_empty());
    assert_eq!(
        w.lookup("k"),
        None,
        "rm'd secret's value is back in the keychain, untracked"
    );
}

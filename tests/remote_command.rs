//! Command providers (`pass://`, `op://`, `[providers.NAME]` in config.toml)
//! through the library and through `secret exec`. The pass tests use a real
//! password store: every test gets its own GnuPG home with a throwaway key
//! without passphrase, its own `PASSWORD_STORE_DIR`, and kills the
//! gpg-agent it started. The other tests use small `/bin/sh` providers.
//!
//! Needs `pass`, `gpg` and `gpgconf` (packages pass, gnupg). Without them the
//! pass tests fail when `CI` is set, and skip loudly otherwise.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secret::config::Config;
use secret::error::Error;
use secret::paths::Paths;
use secret::remote::Remote;
use secret::remote::command::{ProviderConfig, Reference};

use crate::util::{Env, Output, PASSPHRASE};

/// The pass entry the tests read: the password, then metadata lines.
const ENTRY: &[u8] = b"pw-first-line-5a6b7c\nuser: someone\nurl: https://example.invalid\n";
const FIRST_LINE: &[u8] = b"pw-first-line-5a6b7c";

/// The programs the pass fixture runs.
const TOOLS: &[&str] = &["pass", "gpg", "gpgconf"];

/// True when every tool is installed (see `util::tools_present`).
fn tools_present() -> bool {
    crate::util::tools_present("pass", TOOLS, "install the packages pass and gnupg")
}

/// A password store with its own GnuPG home and key. Dropping it kills the
/// gpg-agent started for that home.
struct PassStore {
    gnupg: PathBuf,
    store: PathBuf,
}

impl PassStore {
    /// Creates both under `root`: a key without passphrase (ed25519, fast)
    /// and `pass init` for it.
    fn create(root: &Path) -> Self {
        let gnupg = root.join("gnupg");
        fs::create_dir(&gnupg).expect("mkdir gnupg");
        fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).expect("chmod gnupg");
        let pass = Self {
            gnupg,
            store: root.join("password-store"),
        };
        pass.run(
            "gpg",
            &[
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "secret-test <t@example.invalid>",
                "future-default",
                "default",
                "never",
            ],
            None,
        );
        pass.run("pass", &["init", "t@example.invalid"], None);
        pass
    }

    /// `program ARGS` against this store; panics unless it succeeds.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let mut child = self
            .command(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        if let Some(bytes) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(bytes)
                .expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("GNUPGHOME", &self.gnupg)
            .env("PASSWORD_STORE_DIR", &self.store);
        cmd
    }

    /// `pass insert -m PATH` with `content` on stdin.
    fn insert(&self, path: &str, content: &[u8]) {
        self.run("pass", &["insert", "-m", path], Some(content));
    }

    /// A provider command that runs `pass show` against this store, for
    /// the library tests (which cannot change their own environment).
    fn provider(&self, first_line: Option<bool>) -> ProviderConfig {
        ProviderConfig {
            command: vec![
                "env".into(),
                format!("GNUPGHOME={}", self.gnupg.display()),
                format!("PASSWORD_STORE_DIR={}", self.store.display()),
                "pass".into(),
                "show".into(),
                "{path}".into(),
            ],
            first_line,
            ..ProviderConfig::default()
        }
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        for args in [&["--kill", "gpg-agent"][..], &["--remove-socketdir"]] {
            let _ = self
                .command("gpgconf")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// One test's world: a password store, and a `SECRET_HOME` with a vault and
/// the default grants. The store is declared first so that its agent is
/// killed before the temporary directory goes.
struct World {
    pass: PassStore,
    env: Env,
}

impl World {
    /// `None` when skipping.
    fn new() -> Option<Self> {
        if !tools_present() {
            return None;
        }
        let env = Env::with_vault();
        let pass = PassStore::create(env.root());
        pass.insert("test/api", ENTRY);
        Some(Self { pass, env })
    }

    /// `secret exec` with this store's variables set.
    fn exec(&self, args: &[&str]) -> Output {
        self.env
            .secret(args)
            .env("GNUPGHOME", &self.pass.gnupg)
            .env("PASSWORD_STORE_DIR", &self.pass.store)
            .run()
    }
}

/// Appends `text` to config.toml.
fn configure(env: &Env, text: &str) {
    let path = env.home().join("config.toml");
    let mut config = fs::read_to_string(&path).unwrap_or_default();
    config.push_str(text);
    fs::write(&path, config).expect("write config.toml");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod config.toml");
}

/// config.toml as `secret` loads it.
fn load_config(env: &Env) -> Config {
    Config::load(&Paths {
        config_dir: env.home(),
        data_dir: env.home(),
        audit: None,
    })
    .expect("load config.toml")
}

/// A config with the given providers.
fn config(providers: Vec<(&str, ProviderConfig)>) -> Config {
    let mut config = Config::default();
    for (name, provider) in providers {
        config.providers.insert(name.to_owned(), provider);
    }
    config
}

/// `[providers.NAME]` running `/bin/sh -c SCRIPT sh {path}`.
fn sh(script: &str, timeout: Option<&str>) -> ProviderConfig {
    ProviderConfig {
        command: ["/bin/sh", "-c", script, "sh", "{path}"]
            .map(str::to_owned)
            .to_vec(),
        timeout: timeout.map(str::to_owned),
        ..ProviderConfig::default()
    }
}

/// Parses `text` as a command-provider reference.
#[track_caller]
fn reference(text: &str, config: &Config) -> Reference {
    let (scheme, rest) = text.split_once("://").expect("scheme://");
    Reference::parse(scheme, rest, config)
        .expect("a known scheme")
        .unwrap_or_else(|e| panic!("{text} refused: {e}"))
}

/// Fetches `text`; the value, or the error's message and hint.
fn fetch(text: &str, config: &Config) -> Result<Vec<u8>, (String, String)> {
    reference(text, config)
        .fetch(config)
        .map(|v| v.expose().to_vec())
        .map_err(|e| {
            assert!(
                matches!(e, Error::Remote { .. }),
                "not a remote error: {e:?}"
            );
            (e.to_string(), e.hint().unwrap_or_default())
        })
}

/// `secret exec -e K=REFERENCE -- sh -c 'printf %s "$K"'`.
fn exec_printing(env: &Env, reference: &str) -> Output {
    env.secret([
        "exec",
        "-e",
        &format!("K={reference}"),
        "--",
        "sh",
        "-c",
        "printf %s \"$K\"",
    ])
    .run()
}

/// Whether `pid` is gone (or a zombie no one reaped yet).
fn dead(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Waits up to 3 s for `pid_file` to name a dead process.
#[track_caller]
fn assert_killed(pid_file: &Path) {
    let text = fs::read_to_string(pid_file).expect("the provider wrote its child's pid");
    let pid: i32 = text.trim().parse().expect("a pid");
    let start = Instant::now();
    while !dead(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the provider's child {pid} outlived the timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_pass_entry_through_the_library() {
    let Some(w) = World::new() else { return };
    // A provider named "pass" replaces the preset; this one carries the
    // store's variables, which the test process cannot set for itself.
    let c = config(vec![("pass", w.pass.provider(Some(true)))]);
    assert_eq!(fetch("pass://test/api", &c).expect("fetch"), FIRST_LINE);
    let remote = Remote::parse("pass://test/api", &c)
        .expect("a remote reference")
        .expect("valid");
    assert_eq!(remote.fetch(&c).expect("fetch").expose(), FIRST_LINE);

    // The whole entry, less one trailing newline, when asked.
    let c = config(vec![("pass", w.pass.provider(Some(false)))]);
    assert_eq!(
        fetch("pass://test/api", &c).expect("fetch"),
        &ENTRY[..ENTRY.len() - 1]
    );

    // A missing entry: pass's own complaint and exit code, no value.
    let (message, hint) = fetch("pass://test/nope", &c).expect_err("no such entry");
    assert!(message.contains("not in the password store"), "{message}");
    assert!(message.contains("exit code 1"), "{message}");
    assert!(hint.contains("[providers.pass]"), "{hint}");
}

#[test]
fn exec_hands_the_first_line_of_a_pass_entry_to_the_child() {
    let Some(w) = World::new() else { return };
    w.pass.insert("other/db", b"db-secret-9f8e7d\n");
    let out = w.exec(&[
        "exec",
        "-e",
        "K=pass://test/api",
        "--",
        "sh",
        "-c",
        "printf %s \"$K\"",
    ]);
    out.success();
    assert_eq!(out.stdout, FIRST_LINE);
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr());

    // Two entries at once (fetched concurrently, through one gpg-agent).
    let out = w.exec(&[
        "exec",
        "-e",
        "A=pass://test/api",
        "-e",
        "B=pass://other/db",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$A\" \"$B\"",
    ]);
    out.success();
    assert_eq!(out.stdout(), "pw-first-line-5a6b7c|db-secret-9f8e7d");
    w.env.assert_not_on_disk(FIRST_LINE);
    w.env.assert_not_on_disk(b"db-secret-9f8e7d");

    // A missing entry stops the launch, with pass's message.
    let marker = w.env.root().join("ran");
    let touch = format!("touch '{}'", marker.display());
    w.exec(&["exec", "-e", "K=pass://test/nope", "--", "sh", "-c", &touch])
        .code(125)
        .stderr_has("pass://test/nope")
        .stderr_has("not in the password store")
        .no_panic();
    assert!(!marker.exists(), "the command ran without its secret");
}

#[test]
fn a_configured_provider_is_used_and_overrides_presets() {
    let env = Env::with_vault();
    configure(
        &env,
        r#"
[providers.mycmd]
command = ["/bin/sh", "-c", "printf 'v-%s' \"$1\"", "sh", "{path}"]

[providers.op]
command = ["/bin/sh", "-c", "printf 'op-%s|%s' \"$1\" \"$2\"", "sh", "{ref}", "--id={path}"]
timeout = "5s"
"#,
    );
    let c = load_config(&env);
    assert_eq!(fetch("mycmd://a/b c", &c).expect("fetch"), b"v-a/b c");
    assert_eq!(
        fetch("op://Vault/Item/field", &c).expect("fetch"),
        b"op-op://Vault/Item/field|--id=Vault/Item/field"
    );
    // Not configured and not a preset: not ours.
    assert!(Reference::parse("nope", "x", &c).is_none());

    let out = exec_printing(&env, "mycmd://team/key");
    out.success();
    assert_eq!(out.stdout(), "v-team/key");
    let out = exec_printing(&env, "op://Vault/Item/field");
    out.success();
    assert_eq!(
        out.stdout(),
        "op-op://Vault/Item/field|--id=Vault/Item/field"
    );
}

#[test]
fn references_that_could_become_options_are_refused() {
    let env = Env::with_vault();
    let ran = env.root().join("provider-ran");
    configure(
        &env,
        &format!(
            "[providers.mycmd]\ncommand = [\"/bin/sh\", \"-c\", \"touch '{}'; printf x\", \"sh\", \"{{path}}\"]\n",
            ran.display()
        ),
    );
    let c = load_config(&env);
    for text in [
        "mycmd://--output=/etc/passwd",
        "pass://-c",
        "op://-v",
        "gcp-sm://proj/--impersonate-service-account=x",
    ] {
        let (scheme, rest) = text.split_once("://").expect("scheme");
        let e = Reference::parse(scheme, rest, &c)
            .expect("a known scheme")
            .expect_err(text);
        assert!(e.to_string().contains("starts with '-'"), "{text}: {e}");
    }
    assert!(
        Reference::parse("mycmd", "a\0b", &c)
            .expect("known")
            .is_err()
    );

    let marker = env.root().join("child-ran");
    let touch = format!("touch '{}'", marker.display());
    env.secret(["exec", "-e", "K=mycmd://--help", "--", "sh", "-c", &touch])
        .run()
        .code(125)
        .stderr_has("mycmd://--help")
        .stderr_has("refused")
        .no_panic();
    assert!(!marker.exists(), "the command ran");
    assert!(
        !ran.exists(),
        "the provider ran with an option-like reference"
    );
}

#[test]
fn a_failing_provider_reports_its_exit_code_and_stderr() {
    let env = Env::with_vault();
    configure(
        &env,
        "[providers.failing]\ncommand = [\"/bin/sh\", \"-c\", \"printf partial; echo boom >&2; exit 3\"]\n",
    );
    let c = load_config(&env);
    let (message, hint) = fetch("failing://x", &c).expect_err("fails");
    assert!(message.contains("boom"), "{message}");
    assert!(message.contains("exit code 3"), "{message}");
    assert!(hint.contains("[providers.failing]"), "{hint}");

    let marker = env.root().join("ran");
    let touch = format!("touch '{}'", marker.display());
    env.secret(["exec", "-e", "K=failing://x", "--", "sh", "-c", &touch])
        .run()
        .code(125)
        .stderr_has("failing://x")
        .stderr_has("boom")
        .stderr_has("exit code 3")
        .no_panic();
    assert!(!marker.exists(), "the command ran without its secret");
}

#[test]
fn a_provider_past_its_timeout_is_killed_with_its_process_group() {
    let env = Env::with_vault();
    let pid_lib = env.root().join("lib.pid");
    let pid_bin = env.root().join("bin.pid");
    // The provider starts a child in its group and waits for it.
    let script = "sleep 30 & echo $! > \"$1\"; wait";
    configure(
        &env,
        &format!(
            "[providers.slow]\ncommand = [\"/bin/sh\", \"-c\", '{script}', \"sh\", \"{}/{{path}}\"]\ntimeout = \"300ms\"\n",
            env.root().display()
        ),
    );
    let c = load_config(&env);
    let start = Instant::now();
    let (message, hint) = fetch("slow://lib.pid", &c).expect_err("times out");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(took >= Duration::from_millis(300), "took {took:?}");
    assert!(message.contains("timeout of 300ms"), "{message}");
    assert!(message.contains("killed"), "{message}");
    assert!(hint.contains("timeout"), "{hint}");
    assert_killed(&pid_lib);

    // A provider that exits but leaves a child holding its output.
    let c = config(vec![(
        "slow",
        sh("sleep 30 & echo $! > \"$1\"; printf x", Some("300ms")),
    )]);
    let pid_orphan = env.root().join("orphan.pid");
    let text = format!("slow://{}", pid_orphan.display());
    let (message, _) = fetch(&text, &c).expect_err("times out");
    assert!(message.contains("kept its output open"), "{message}");
    assert_killed(&pid_orphan);

    let start = Instant::now();
    let marker = env.root().join("ran");
    let touch = format!("touch '{}'", marker.display());
    env.secret(["exec", "-e", "K=slow://bin.pid", "--", "sh", "-c", &touch])
        .run()
        .code(125)
        .stderr_has("timeout of 300ms")
        .no_panic();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(!marker.exists(), "the command ran without its secret");
    assert_killed(&pid_bin);
}

#[test]
fn the_provider_never_sees_secrets_control_variables() {
    let env = Env::with_vault();
    configure(
        &env,
        r#"
[providers.envdump]
command = ["/bin/sh", "-c", "printf '%s/%s/%s/%s/%s' \"${SECRET_PASSPHRASE-unset}\" \"${SECRET_NEW_PASSPHRASE-unset}\" \"${SECRET_HOME-unset}\" \"${SECRET_TEST_FAST_KDF-unset}\" \"${VISIBLE-unset}\""]
"#,
    );
    let out = env
        .secret([
            "exec",
            "-e",
            "K=envdump://x",
            "--",
            "sh",
            "-c",
            "printf %s \"$K\"",
        ])
        .env("SECRET_NEW_PASSPHRASE", "another passphrase 42")
        .env("VISIBLE", "yes")
        .run();
    out.success()
        .no_leak(PASSPHRASE.as_bytes())
        .no_leak(b"another passphrase 42");
    assert_eq!(out.stdout(), "unset/unset/unset/unset/yes");
}

#[test]
fn a_missing_program_is_named_with_a_way_to_get_it() {
    let c = config(vec![(
        "gone",
        ProviderConfig {
            command: vec!["secret-test-no-such-program".into(), "{ref}".into()],
            ..ProviderConfig::default()
        },
    )]);
    let (message, hint) = fetch("gone://x", &c).expect_err("missing");
    assert!(
        message.contains("\"secret-test-no-such-program\" was not found"),
        "{message}"
    );
    assert!(hint.contains("[providers.gone]"), "{hint}");

    // A preset whose CLI is not on PATH says how to install it.
    let env = Env::with_vault();
    let empty = env.root().join("empty-bin");
    fs::create_dir(&empty).expect("mkdir");
    let marker = env.root().join("ran");
    let touch = marker.display().to_string();
    env.secret(["exec", "-e", "K=op://V/I/f", "--", "/usr/bin/touch", &touch])
        .env("PATH", &empty)
        .run()
        .code(125)
        .stderr_has("\"op\" was not found")
        .stderr_has("1Password CLI")
        .no_panic();
    assert!(!marker.exists());
}

#[test]
fn the_output_rules_hold_for_a_real_process() {
    let cases: [(&str, Result<&[u8], &str>); 6] = [
        ("printf 'abc\\n\\n'", Ok(b"abc\n")),
        ("printf '\\377\\376x'", Ok(b"\xff\xfex")),
        ("printf ''", Err("empty value")),
        ("printf '\\n'", Err("empty value")),
        ("printf 'a\\000b'", Err("NUL")),
        ("head -c 1048578 /dev/zero | tr '\\000' a", Err("more than")),
    ];
    for (script, expected) in cases {
        let c = config(vec![("out", sh(script, None))]);
        match (fetch("out://x", &c), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{script}"),
            (Err((message, _)), Err(want)) => {
                assert!(message.contains(want), "{script}: {message}")
            }
            (got, want) => panic!("{script}: got {got:?}, wanted {want:?}"),
        }
    }
    // Exactly 1 MiB and a newline is fine.
    let c = config(vec![(
        "out",
        sh("head -c 1048576 /dev/zero | tr '\\000' a; echo", None),
    )]);
    assert_eq!(fetch("out://x", &c).expect("1 MiB").len(), 1 << 20);
}

/// Stand-ins for the cloud CLIs check the argv the presets build and the
/// JSON key pick, through the binary.
#[test]
fn cloud_presets_run_their_cli_with_the_documented_arguments() {
    let env = Env::with_vault();
    let bin = env.root().join("bin");
    fs::create_dir(&bin).expect("mkdir bin");
    let args = env.root().join("args");
    for (name, output) in [
        ("aws", r#"{"user":"u","password":"pw-aws-1234"}"#),
        ("gcloud", "gcp-value-5678"),
    ] {
        let script = bin.join(name);
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}/{name}'\nprintf '%s\\n' '{output}'\n",
                args.display()
            ),
        )
        .expect("write script");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    fs::create_dir(&args).expect("mkdir args");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let run = |reference: &str| {
        env.secret([
            "exec",
            "-e",
            &format!("K={reference}"),
            "--",
            "sh",
            "-c",
            "printf %s \"$K\"",
        ])
        .env("PATH", &path)
        .run()
    };
    let recorded = |name: &str| fs::read_to_string(args.join(name)).expect("args");

    let out = run("aws-sm://prod/db#password");
    out.success();
    assert_eq!(out.stdout(), "pw-aws-1234");
    assert_eq!(
        recorded("aws"),
        "secretsmanager\nget-secret-value\n--secret-id\nprod/db\n--query\nSecretString\n--output\ntext\n"
    );
    run("aws-sm://prod/db#nope")
        .code(125)
        .stderr_has("no key \"nope\"")
        .no_leak(b"pw-aws-1234");

    let out = run("gcp-sm://my-proj/api-key");
    out.success();
    assert_eq!(out.stdout(), "gcp-value-5678");
    assert_eq!(
        recorded("gcloud"),
        "secrets\nversions\naccess\nlatest\n--secret\napi-key\n--project\nmy-proj\n"
    );
    run("gcp-sm://my-proj/api-key/3").success();
    assert_eq!(
        recorded("gcloud"),
        "secrets\nversions\naccess\n3\n--secret\napi-key\n--project\nmy-proj\n"
    );
}

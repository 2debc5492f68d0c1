//! The recipes in `examples/recipes/`, run as far as this machine allows:
//! the shell a recipe runs is read out of the recipe file itself and run
//! against the real binary and a test vault, so a recipe that stops working
//! fails here. What cannot run here (an image build, a compose engine, a
//! systemd manager, GitHub's runner) is stood in for by the smallest honest
//! equivalent: the container's PID 1 is a new PID namespace (`unshare`),
//! `LoadCredential=` is a directory named by `$CREDENTIALS_DIRECTORY`.
//!
//! Every recipe starts `app` (`ci/integration-test.sh` in the CI ones): a
//! shell script that reports what it was given (its parent pid, arguments,
//! the SHA-256 of `API_KEY`, its variable names, its open descriptors),
//! prints its key (for masking to hide) and exits `$APP_EXIT`.
//!
//! The recipe files are parsed minimally: the subset of YAML, Dockerfile and
//! unit-file syntax they use, and anything else fails loudly, so a recipe
//! edited past what the parser understands is noticed, not misread.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::util::{Env, Output, PASSPHRASE, in_ci, tools_present};

const VALUE: &[u8] = b"sk-recipe-9f8e7d6c5b4a";

/// The stand-in application.
const APP: &str = r#"#!/bin/sh
report=${APP_REPORT:?}
{
  echo "ppid=$PPID"
  echo "args=$*"
  echo "key_sha256=$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)"
  echo "env_names=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | tr '\n' ' ')"
  echo "fds=$(for fd in /proc/$$/fd/*; do readlink "$fd"; done | tr '\n' ' ')"
} > "$report.tmp"
mv "$report.tmp" "$report"
echo "app: API_KEY=$API_KEY"
if [ -n "${APP_WAIT:-}" ]; then exec sleep 600; fi
exit "${APP_EXIT:-0}"
"#;

fn recipe_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/recipes")
        .join(name)
}

fn recipe(name: &str) -> String {
    fs::read_to_string(recipe_path(name)).unwrap_or_else(|e| panic!("examples/recipes/{name}: {e}"))
}

fn write_executable(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A test vault holding `handle`, a `bin/` with `secret` and `app` on
/// PATH, and an empty working directory (the checkout, the container's
/// workdir).
struct World {
    env: Env,
    work: PathBuf,
}

impl World {
    fn new(handle: &str) -> Self {
        let env = Env::with_vault();
        env.add(handle, VALUE);
        let bin = env.root().join("bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_secret"), bin.join("secret")).unwrap();
        write_executable(&bin.join("app"), APP);
        let work = env.root().join("work");
        fs::create_dir_all(&work).unwrap();
        Self { env, work }
    }

    fn report_path(&self) -> PathBuf {
        self.env.root().join("report")
    }

    /// A file only the test may read holding the passphrase, as an operator
    /// writes it (with a newline).
    fn passphrase_file(&self) -> PathBuf {
        let path = self.env.root().join("vault-passphrase");
        fs::write(&path, format!("{PASSPHRASE}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        path
    }

    /// `program` with nothing inherited but PATH (with `bin/` first) and
    /// HOME, in the working directory, the app reporting to `report`.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut path = OsString::from(self.env.root().join("bin"));
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()));
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.env.root())
            .env("APP_REPORT", self.report_path())
            .current_dir(&self.work)
            .stdin(Stdio::null());
        cmd
    }

    /// `argv` as PID 1 of a new PID namespace, as a container runs its
    /// entrypoint.
    fn as_pid1(&self, argv: &[String], vars: &BTreeMap<String, String>) -> Command {
        let mut cmd = self.command("unshare");
        if !nix::unistd::geteuid().is_root() {
            cmd.arg("--map-root-user");
        }
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
            .args(argv)
            .envs(vars);
        cmd
    }

    /// A container's `argv` as PID 1: the app, started by PID 1, gets the
    /// key and its arguments, and its exit code is the container's.
    #[track_caller]
    fn container_runs(&self, argv: &[String], env: &mut BTreeMap<String, String>) {
        let out = self.run(self.as_pid1(argv, env));
        out.success().stdout_has("app: API_KEY=");
        out.no_leak(PASSPHRASE.as_bytes());
        self.report()
            .got_the_key()
            .was_started_by_pid1()
            .args("--serve");
        env.insert("APP_EXIT".into(), "7".into());
        self.run(self.as_pid1(argv, env)).code(7);
        env.remove("APP_EXIT");
    }

    fn run(&self, mut cmd: Command) -> Output {
        let _ = fs::remove_file(self.report_path());
        let out = cmd.output().expect("spawn");
        Output {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// What the app reported; fails when it did not run.
    #[track_caller]
    fn report(&self) -> Report {
        let text = fs::read_to_string(self.report_path()).expect("the app did not run");
        Report(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                .collect(),
        )
    }
}

struct Report(BTreeMap<String, String>);

impl Report {
    fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }

    /// The app got exactly the test value in `API_KEY`, and none of
    /// secret's control variables nor a descriptor on the passphrase.
    #[track_caller]
    fn got_the_key(&self) -> &Self {
        let want: String = Sha256::digest(VALUE)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            self.get("key_sha256"),
            want,
            "API_KEY in the app: {:?}",
            self.0
        );
        let names: Vec<&str> = self.get("env_names").split(' ').collect();
        for control in ["SECRET_PASSPHRASE", "SECRET_HOME", "CREDENTIALS_DIRECTORY"] {
            assert!(
                !names.contains(&control),
                "the app has {control}: {names:?}"
            );
        }
        assert!(
            !self.get("fds").contains("passphrase"),
            "the app holds a descriptor on the passphrase: {}",
            self.get("fds")
        );
        self
    }

    #[track_caller]
    fn was_started_by_pid1(&self) -> &Self {
        assert_eq!(self.get("ppid"), "1", "the app's parent is not PID 1");
        self
    }

    #[track_caller]
    fn args(&self, want: &str) -> &Self {
        assert_eq!(self.get("args"), want);
        self
    }
}

/// Neither the value nor the passphrase in any output.
#[track_caller]
fn no_leak(out: &Output) {
    out.no_leak(VALUE).no_leak(PASSPHRASE.as_bytes());
}

// ---------------------------------------------------------------- YAML

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// Leading spaces, a sequence item's `- ` counted as indentation.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '-']).len()
}

/// Under the first `key:` in `lines`: its inline value and the lines nested
/// below it (blank lines and comments kept: in a literal block they are
/// content).
#[track_caller]
fn yaml_key<'a>(lines: &[&'a str], key: &str) -> (&'a str, Vec<&'a str>) {
    let at = lines
        .iter()
        .position(|l| {
            is_content(l)
                && l.trim_start_matches([' ', '-'])
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with(':'))
        })
        .unwrap_or_else(|| panic!("no `{key}:` in {lines:#?}"));
    let line = lines[at];
    let inline = line.split_once(':').unwrap().1.trim();
    let nested = lines[at + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
        .copied()
        .collect();
    (inline, nested)
}

/// A flow sequence written as JSON (`["a", "b"]`), the form the recipes
/// use for argv.
#[track_caller]
fn yaml_argv(inline: &str) -> Vec<String> {
    serde_json::from_str(inline)
        .unwrap_or_else(|e| panic!("not a flow sequence of double-quoted strings: {inline}: {e}"))
}

/// A block mapping of plain scalars.
#[track_caller]
fn yaml_map(nested: &[&str]) -> BTreeMap<String, String> {
    nested
        .iter()
        .filter(|l| is_content(l))
        .map(|l| {
            let (k, v) = l
                .trim()
                .split_once(": ")
                .unwrap_or_else(|| panic!("not `KEY: value`: {l}"));
            assert!(
                !v.starts_with(['"', '\'', '|', '>', '[', '{']),
                "only plain scalars are understood here: {l}"
            );
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Compose's interpolation for a file that uses only `$$` (a literal `$`
/// for the container's shell); a `$NAME` compose would fill in from the
/// host fails.
#[track_caller]
fn compose_unescape(word: &str) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        assert!(
            rest[at..].starts_with("$$"),
            "compose would interpolate this from the host: {word}"
        );
        out.push('$');
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out
}

// ------------------------------------------------------- GitHub Actions

/// The `with-secrets` step: its `env:` and its `run:` script.
fn workflow_step() -> (BTreeMap<String, String>, String) {
    let text = recipe("github-actions.yml");
    let lines: Vec<&str> = text.lines().collect();
    let (_, steps) = yaml_key(&lines, "steps");
    let is_item = |l: &str| is_content(l) && l.trim_start().starts_with("- ");
    let step_indent = indent(steps.iter().find(|l| is_item(l)).expect("a step"));
    let id = steps
        .iter()
        .position(|l| l.trim() == "id: with-secrets")
        .expect("a step with id: with-secrets");
    let first = steps[..id]
        .iter()
        .rposition(|l| is_item(l) && indent(l) == step_indent)
        .expect("the step's first line");
    let step: Vec<&str> = steps[first..]
        .iter()
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !is_item(l) || indent(l) > step_indent)
        .map(|(_, l)| *l)
        .collect();
    let (_, env) = yaml_key(&step, "env");
    let (block, body) = yaml_key(&step, "run");
    assert_eq!(block, "|", "run: is a literal block");
    let body_indent = indent(
        body.iter()
            .find(|l| !l.trim().is_empty())
            .expect("a script"),
    );
    let mut script: String = body
        .iter()
        .map(|l| format!("{}\n", l.get(body_indent..).unwrap_or("")))
        .collect();
    // `|` keeps one final newline.
    script.truncate(script.trim_end().len());
    script.push('\n');
    (yaml_map(&env), script)
}

/// GitHub's `${{ … }}` for the two expressions the step uses.
#[track_caller]
fn actions_expand(value: &str, workspace: &Path) -> String {
    let value = value
        .replace("${{ github.workspace }}", &workspace.display().to_string())
        .replace("${{ secrets.SECRET_PASSPHRASE }}", PASSPHRASE);
    assert!(
        !value.contains("${{"),
        "an expression the test does not know: {value}"
    );
    value
}

#[test]
fn github_actions_step_runs_masked_and_fails_with_the_app() {
    let world = World::new("@ci/api_key");
    let (env, script) = workflow_step();
    assert!(
        script.contains("secret exec"),
        "the step runs secret: {script}"
    );
    // The checkout: the committed vault files, readable by all as git
    // leaves them, and the integration test.
    let home = world.work.join(".secret");
    fs::create_dir(&home).unwrap();
    for file in [
        "vault.secret",
        "vault.generation",
        "config.toml",
        "grants.toml",
    ] {
        fs::copy(world.env.home().join(file), home.join(file)).unwrap();
        fs::set_permissions(home.join(file), fs::Permissions::from_mode(0o644)).unwrap();
    }
    fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
    write_executable(&world.work.join("ci/integration-test.sh"), APP);
    fs::write(world.env.root().join("step.sh"), &script).unwrap();

    let step = |app_exit: &str| {
        let mut cmd = world.command("bash");
        // What the runner does for `run:` (shell: bash).
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(world.env.root().join("step.sh"))
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", &world.work)
            .env("APP_EXIT", app_exit);
        for (k, v) in &env {
            cmd.env(k, actions_expand(v, &world.work));
        }
        world.run(cmd)
    };

    // As checked out, the vault is refused: the step's chmod is needed.
    let mut direct = world.command("secret");
    direct
        .args(["exec", "--env", "API_KEY=@ci/api_key", "--", "true"])
        .env("SECRET_HOME", &home)
        .env("SECRET_PASSPHRASE", PASSPHRASE);
    world.run(direct).code(125).stderr_has("chmod");

    let out = step("0");
    out.success()
        .stdout_has("app: API_KEY=<secret:@ci/api_key>");
    no_leak(&out);
    world.report().got_the_key();

    let out = step("7");
    out.code(7);
    no_leak(&out);
}

// -------------------------------------------------------------- Makefile

#[test]
fn makefile_target_passes_the_key_and_fails_with_the_app() {
    if !tools_present("Makefile recipe", &["make"], "apt-get install make") {
        return;
    }
    let world = World::new("@api_key");
    fs::copy(recipe_path("secret.env"), world.work.join("secret.env")).unwrap();
    write_executable(&world.work.join("ci/integration-test.sh"), APP);
    let makefile = recipe_path("Makefile");
    let passphrase = world.passphrase_file();

    let make = |app_exit: &str| {
        let mut cmd = world.command("make");
        cmd.arg("--no-print-directory")
            .arg("-f")
            .arg(&makefile)
            .arg("integration-test")
            .env("SECRET_HOME", world.env.home())
            .env("CI", "true")
            .env("APP_EXIT", app_exit);
        cmd
    };

    // The passphrase from the environment; CI set, so masked.
    let mut cmd = make("0");
    cmd.env("SECRET_PASSPHRASE", PASSPHRASE);
    let out = world.run(cmd);
    out.success().stdout_has("app: API_KEY=<secret:@api_key>");
    no_leak(&out);
    world.report().got_the_key();

    // The passphrase on descriptor 3, as the Makefile's comment shows.
    let mut cmd = world.command("bash");
    cmd.arg("-c")
        .arg(r#"exec make --no-print-directory -f "$1" SECRET='secret --passphrase-fd 3' integration-test 3<"$2""#)
        .arg("bash")
        .arg(&makefile)
        .arg(&passphrase)
        .env("SECRET_HOME", world.env.home())
        .env("CI", "true");
    let out = world.run(cmd);
    out.success();
    no_leak(&out);
    world.report().got_the_key();

    // The app's failure is the target's failure.
    let mut cmd = make("7");
    cmd.env("SECRET_PASSPHRASE", PASSPHRASE);
    let out = world.run(cmd);
    out.code(2).stderr_has("Error 7");
    no_leak(&out);
}

// ------------------------------------------------------------ Dockerfile

/// The Dockerfile's `ENV K=V` lines and its exec-form ENTRYPOINT + CMD.
fn dockerfile() -> (BTreeMap<String, String>, Vec<String>) {
    let text = recipe("Dockerfile");
    let mut env = BTreeMap::new();
    let (mut entrypoint, mut cmd) = (None, Vec::new());
    for line in text.lines() {
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        match instruction {
            "ENV" => {
                let (k, v) = rest.split_once('=').expect("ENV KEY=VALUE");
                assert!(!v.contains([' ', '"', '$']), "a plain ENV value: {line}");
                env.insert(k.to_owned(), v.to_owned());
            }
            "ENTRYPOINT" => entrypoint = Some(yaml_argv(rest)),
            "CMD" => cmd = yaml_argv(rest),
            _ => {}
        }
    }
    let mut argv = entrypoint.expect("an exec-form ENTRYPOINT");
    argv.extend(cmd);
    (env, argv)
}

#[test]
fn dockerfile_entrypoint_as_pid1_passes_the_key_and_the_exit_code() {
    if !tools_present(
        "Dockerfile recipe",
        &["unshare"],
        "apt-get install util-linux",
    ) {
        return;
    }
    let world = World::new("@api_key");
    let (mut env, argv) = dockerfile();
    assert_eq!(argv[0], "secret", "secret is the entrypoint: {argv:?}");
    // `docker run -v "$PWD/.secret:$SECRET_HOME" -e SECRET_PASSPHRASE`.
    assert!(env.contains_key("SECRET_HOME"));
    env.insert("SECRET_HOME".into(), world.env.home().display().to_string());
    env.insert("SECRET_PASSPHRASE".into(), PASSPHRASE.into());

    world.container_runs(&argv, &mut env);

    // `docker stop`: SIGTERM to PID 1 reaches the app, which dies of it.
    env.insert("APP_WAIT".into(), "1".into());
    let mut cmd = world.as_pid1(&argv, &env);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let _ = fs::remove_file(world.report_path());
    let mut unshare = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !world.report_path().exists() {
        assert!(Instant::now() < deadline, "the app never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let pid1: i32 = fs::read_to_string(&children)
        .unwrap()
        .split_whitespace()
        .next()
        .expect("unshare's child, the namespace's PID 1")
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid1),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = loop {
        if let Some(status) = unshare.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = unshare.kill();
            panic!("SIGTERM to PID 1 did not end the container");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(128 + 15), "docker stop's exit code");
}

// -------------------------------------------------------- docker compose

#[test]
fn compose_service_as_pid1_reads_the_passphrase_from_its_secret_file() {
    if !tools_present("compose recipe", &["unshare"], "apt-get install util-linux") {
        return;
    }
    let world = World::new("@api_key");
    let text = recipe("compose.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let (_, services) = yaml_key(&lines, "services");
    let (_, app) = yaml_key(&services, "app");
    let mut argv = yaml_argv(yaml_key(&app, "entrypoint").0);
    argv.extend(yaml_argv(yaml_key(&app, "command").0));
    let argv: Vec<String> = argv.iter().map(|w| compose_unescape(w)).collect();
    let mut env = yaml_map(&yaml_key(&app, "environment").1);
    // The service's secret is what compose mounts at /run/secrets/NAME.
    let (_, secrets) = yaml_key(&app, "secrets");
    let secrets: Vec<&str> = secrets
        .iter()
        .filter(|l| is_content(l))
        .map(|l| l.trim())
        .collect();
    assert_eq!(secrets, ["- vault_passphrase"]);
    assert_eq!(
        env["SECRET_PASSPHRASE_FILE"],
        "/run/secrets/vault_passphrase"
    );
    // The mounts, here: the vault volume and the secret file.
    env.insert("SECRET_HOME".into(), world.env.home().display().to_string());
    env.insert(
        "SECRET_PASSPHRASE_FILE".into(),
        world.passphrase_file().display().to_string(),
    );

    world.container_runs(&argv, &mut env);
}

// --------------------------------------------------------------- systemd

/// systemd's splitting of a command line, for the subset the unit uses:
/// words, single and double quotes, `$$` for a literal `$` and `%%` for a
/// literal `%`. A variable systemd would expand or a specifier fails.
#[track_caller]
fn systemd_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ').is_some() {}
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| *c != ' ') {
            match c {
                '\'' | '"' => {
                    for q in chars.by_ref() {
                        if q == c {
                            break;
                        }
                        assert!(q != '\\', "escapes are not understood here: {line}");
                        word.push(q);
                    }
                }
                _ => word.push(c),
            }
        }
        for (from, to) in [("$$", "\u{1}"), ("%%", "\u{2}")] {
            word = word.replace(from, to);
        }
        assert!(
            !word.contains(['$', '%']),
            "systemd would expand this: {word}"
        );
        words.push(word.replace('\u{1}', "$").replace('\u{2}', "%"));
    }
}

/// The `[Service]` settings: `Key=value` lines, in order.
fn unit_service() -> Vec<(String, String)> {
    let text = recipe("secret-app.service");
    let mut section = "";
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.is_empty() && !line.starts_with('#') {
            let (k, v) = line.split_once('=').expect("Key=value");
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

#[test]
fn systemd_unit_verifies() {
    if !tools_present(
        "systemd recipe",
        &["systemd-analyze"],
        "apt-get install systemd",
    ) {
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(recipe_path("secret-app.service"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}

#[test]
fn systemd_exec_start_reads_the_passphrase_from_its_credential() {
    let world = World::new("@api_key");
    let settings = unit_service();
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // LoadCredential=NAME:PATH: systemd copies PATH to
    // $CREDENTIALS_DIRECTORY/NAME, readable by the service alone.
    let credentials = world.env.root().join("credentials");
    fs::create_dir(&credentials).unwrap();
    for credential in get("LoadCredential") {
        let (name, _source) = credential.split_once(':').expect("NAME:PATH");
        fs::copy(world.passphrase_file(), credentials.join(name)).unwrap();
    }
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o700)).unwrap();
    let mut env: BTreeMap<String, String> = get("Environment")
        .iter()
        .map(|v| {
            let (k, v) = v.split_once('=').expect("Environment=KEY=VALUE");
            assert!(
                !v.contains([' ', '"', '\'', '$', '%']),
                "a plain value: {v}"
            );
            (k.to_owned(), v.to_owned())
        })
        .collect();
    // As a drop-in would: the state directory is the test's vault.
    assert!(env.contains_key("SECRET_HOME"));
    env.insert("SECRET_HOME".into(), world.env.home().display().to_string());
    env.insert(
        "CREDENTIALS_DIRECTORY".into(),
        credentials.display().to_string(),
    );
    let exec_start = get("ExecStart");
    assert_eq!(exec_start.len(), 1, "one ExecStart");
    let argv = systemd_words(exec_start[0]);

    let start = |app_exit: &str| {
        let mut cmd = world.command(&argv[0]);
        cmd.args(&argv[1..]).envs(&env).env("APP_EXIT", app_exit);
        world.run(cmd)
    };
    let out = start("0");
    out.success().stdout_has("app: API_KEY=");
    out.no_leak(PASSPHRASE.as_bytes());
    world.report().got_the_key().args("--serve");

    // Restart=on-failure sees the app's code.
    start("7").code(7);
}

#[test]
fn the_recipes_are_valid_yaml_as_parsed_here() {
    let install = "apt-get install python3-yaml";
    if !tools_present("YAML recipes", &["python3"], install) {
        return;
    }
    let has_yaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_yaml {
        assert!(
            !in_ci(),
            "python3 has no yaml module ({install}); CI is set, so this fails"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n**********\n*** SKIPPED YAML recipes test: python3 has no yaml module ({install})\n**********\n"
        );
        return;
    }
    for name in ["github-actions.yml", "compose.yaml"] {
        let out = Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            ])
            .arg(recipe_path(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} is not valid YAML (or python3-yaml is missing):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if name == "compose.yaml" {
            let app = &doc["services"]["app"];
            let text = recipe(name);
            let lines: Vec<&str> = text.lines().collect();
            let (_, services) = yaml_key(&lines, "services");
            let (_, ours) = yaml_key(&services, "app");
            for key in ["entrypoint", "command"] {
                let parsed: Vec<String> = serde_json::from_value(app[key].clone()).unwrap();
                assert_eq!(parsed, yaml_argv(yaml_key(&ours, key).0), "{key}");
            }
        } else {
            let steps = doc["jobs"]["integration"]["steps"].as_array().unwrap();
            let step = steps
                .iter()
                .find(|s| s["id"] == "with-secrets")
                .expect("the step");
            let (env, script) = workflow_step();
            assert_eq!(step["run"].as_str().unwrap(), script);
            for (k, v) in env {
                assert_eq!(step["env"][k.as_str()].as_str().unwrap(), v);
            }
        }
    }
}

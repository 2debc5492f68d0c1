//! The test harness: a private `SECRET_HOME` per test, a fluent command
//! builder over the real binary, and `#[track_caller]` assertions, including
//! the one that matters most: a secret value appears nowhere.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// secret's own control variables, as a test's world sets them: no child
/// may see one.
pub(crate) const CONTROL_VARIABLES: &[&str] = &[
    "SECRET_PASSPHRASE",
    "SECRET_HOME",
    "SECRET_SCOPE",
    "SECRET_BACKEND",
    "SECRET_TEST_FAST_KDF",
];

/// The passphrase every test vault is created with.
pub(crate) const PASSPHRASE: &str = "correct horse battery staple";

/// One test's world: a 0700 temporary directory holding `SECRET_HOME`.
pub(crate) struct Env {
    dir: tempfile::TempDir,
    /// Extra variables for every command run in this world.
    vars: Vec<(String, String)>,
}

impl Env {
    /// A fresh world with no store yet.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        Self {
            dir,
            vars: Vec::new(),
        }
    }

    /// A fresh world with an initialised file vault.
    pub(crate) fn with_vault() -> Self {
        let env = Self::new();
        env.secret(["init"]).run().success();
        env
    }

    /// Adds a variable to every later command.
    pub(crate) fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.into(), value.into()));
        self
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `SECRET_HOME`.
    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub(crate) fn vault(&self) -> PathBuf {
        self.home().join("vault.secret")
    }

    /// `secret ARGS…` with a clean, hermetic environment: PATH, HOME inside
    /// the world, `SECRET_HOME`, the test passphrase and the fast test KDF.
    /// No `CI`, no terminal, stdin empty unless set.
    pub(crate) fn secret<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_secret"));
        cmd.args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", self.root())
            .env("SECRET_HOME", self.home())
            .env("SECRET_PASSPHRASE", PASSPHRASE)
            .env("SECRET_TEST_FAST_KDF", "1")
            .current_dir(self.root());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        Cmd { cmd, stdin: None }
    }

    /// `printf VALUE | secret add HANDLE --stdin`.
    pub(crate) fn add(&self, handle: &str, value: &[u8]) {
        self.secret(["add", handle, "--stdin"])
            .stdin(value)
            .run()
            .success();
    }

    /// Every byte of every file under `SECRET_HOME`.
    pub(crate) fn all_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in fs::read_dir(dir).expect("read_dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        if self.home().exists() {
            walk(&self.home(), &mut out);
        }
        out
    }

    /// Fails if `value` is in any file under `SECRET_HOME`.
    #[track_caller]
    pub(crate) fn assert_not_on_disk(&self, value: &[u8]) {
        for (path, bytes) in self.all_files() {
            assert!(
                !contains(&bytes, value),
                "secret value found on disk in {}",
                path.display()
            );
        }
    }
}

/// A command being built.
pub(crate) struct Cmd {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub(crate) fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    pub(crate) fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// The underlying command, for tests that manage the process themselves.
    pub(crate) fn into_command(mut self) -> Command {
        self.cmd.stdin(Stdio::null());
        self.cmd
    }

    pub(crate) fn run(mut self) -> Output {
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn secret");
        if let Some(bytes) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let out = child.wait_with_output().expect("wait");
        Output {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }
}

/// What a finished command left.
#[derive(Debug)]
pub(crate) struct Output {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    #[track_caller]
    pub(crate) fn success(&self) -> &Self {
        self.code(0)
    }

    #[track_caller]
    pub(crate) fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub(crate) fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout()
        );
        self
    }

    #[track_caller]
    pub(crate) fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr()
        );
        self
    }

    /// Fails if `value` appears in stdout or stderr.
    #[track_caller]
    pub(crate) fn no_leak(&self, value: &[u8]) -> &Self {
        assert!(
            !contains(&self.stdout, value),
            "secret value in stdout:\n{}",
            self.stdout()
        );
        assert!(
            !contains(&self.stderr, value),
            "secret value in stderr:\n{}",
            self.stderr()
        );
        self
    }

    /// Fails on any sign of a panic.
    #[track_caller]
    pub(crate) fn no_panic(&self) -> &Self {
        assert_ne!(self.code, Some(101), "panicked:\n{}", self.stderr());
        assert!(
            !self.stderr().contains("panicked"),
            "panicked:\n{}",
            self.stderr()
        );
        self
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `CI` is set to a true value.
pub(crate) fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// True when every one of `tools` is on PATH, for tests that need a real
/// external program. When one is missing: a failure under CI (the tests
/// must run there), otherwise a loud skip written straight to stderr (the
/// test harness captures `eprintln!`, and a skip must be seen).
pub(crate) fn tools_present(what: &str, tools: &[&str], install: &str) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "the {what} tests need {} on PATH ({install})",
        missing.join(", ")
    );
    assert!(
        !in_ci(),
        "{message}; CI is set, so this is a failure, not a skip"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n**********\n*** SKIPPED {what} test: {message}\n**********\n"
    );
    false
}

// ---- Process tests: the probe, waiting on events, cleaning up. ----

/// The probe program (`examples/probe`): prints its environment, records
/// the signals it gets one per line, writes its pid when ready, exits as
/// told.
pub(crate) fn probe() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_secret"));
    bin.parent()
        .expect("target dir")
        .join("examples")
        .join("probe")
}

/// Waits (at most 10 s) until `done`, polling every 10 ms; fails naming
/// `what` otherwise.
#[track_caller]
pub(crate) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The pid a probe wrote to `path` once ready (waits for it).
#[track_caller]
pub(crate) fn read_pid(path: impl AsRef<Path>) -> nix::unistd::Pid {
    let path = path.as_ref();
    // The probe writes it whole (a temporary file renamed into place).
    wait_for(&format!("{} to be written", path.display()), || {
        path.exists()
    });
    nix::unistd::Pid::from_raw(
        fs::read_to_string(path)
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid"),
    )
}

/// The lines of a probe's signal record once it has at least `n` (waits
/// for them): a count checked on an event, not after a sleep.
#[track_caller]
pub(crate) fn wait_lines(path: impl AsRef<Path>, n: usize) -> Vec<String> {
    let path = path.as_ref();
    let read = || fs::read_to_string(path).unwrap_or_default();
    wait_for(&format!("{n} lines in {}", path.display()), || {
        read().lines().count() >= n
    });
    read().lines().map(str::to_owned).collect()
}

/// Whether `pid` runs (a zombie is as good as gone: it runs no code).
pub(crate) fn alive(pid: nix::unistd::Pid) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// The parent of `pid`.
pub(crate) fn parent_of(pid: nix::unistd::Pid) -> nix::unistd::Pid {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let ppid = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("ppid");
    nix::unistd::Pid::from_raw(ppid)
}

/// Kills a process when the test ends, whether it passed or not.
pub(crate) struct KillOnDrop(pub(crate) nix::unistd::Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGKILL);
    }
}

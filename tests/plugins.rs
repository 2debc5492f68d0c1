//! `secret plugins run|check`: the supervisor through the real binary, with
//! a vault, grants for each plugin id, and the probe as the plugins. Every
//! test that hands out a value searches for it where it must not be.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Env, alive, contains, probe, read_pid, wait_for};

const A_VALUE: &[u8] = b"sk-plugin-a-5f1e2d3c";
const B_VALUE: &[u8] = b"sk-plugin-b-9a8b7c6d";

/// A vault with @a_token and @b_token, granted to plugins `a` and `b`.
fn world() -> Env {
    let env = Env::with_vault();
    env.add("@a_token", A_VALUE);
    env.add("@b_token", B_VALUE);
    grant(&env, &[("a_token", "a"), ("b_token", "b")]);
    env
}

/// Appends grants (secret_ref, consumer) to grants.toml.
fn grant(env: &Env, grants: &[(&str, &str)]) {
    let path = env.home().join("grants.toml");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    for (secret, consumer) in grants {
        text.push_str(&format!(
            "\n[[grants]]\nsecret_ref = \"{secret}\"\nconsumer = \"plugin:{consumer}\"\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// Writes plugins.toml (with `{probe}` and `{root}` filled in) and returns
/// its path.
fn plugins_file(env: &Env, text: &str) -> PathBuf {
    let path = env.root().join("plugins.toml");
    let text = text
        .replace("{probe}", probe().to_str().unwrap())
        .replace("{root}", env.root().to_str().unwrap());
    std::fs::write(&path, text).unwrap();
    path
}

fn path(env: &Env, name: &str) -> String {
    env.root().join(name).to_str().unwrap().to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A running `secret plugins run`, its output going to files.
struct Sup {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    /// Pids to SIGKILL when the test ends, passed or not.
    cleanup: Vec<Pid>,
}

impl Sup {
    fn start(env: &Env, file: &Path) -> Self {
        Self::start_named(env, file, "sup")
    }

    /// Output to NAME.out and NAME.err, for a test with several.
    fn start_named(env: &Env, file: &Path, name: &str) -> Self {
        let out = env.root().join(format!("{name}.out"));
        let err = env.root().join(format!("{name}.err"));
        let mut cmd = env
            .secret(["plugins", "run", file.to_str().unwrap()])
            .into_command();
        cmd.stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        Self {
            child: cmd.spawn().unwrap(),
            out,
            err,
            cleanup: Vec::new(),
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap()
    }

    /// Waits (at most 10 s) for the supervisor to exit; its code.
    #[track_caller]
    fn wait(&mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the supervisor did not exit\n--- stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[track_caller]
    fn wait_stderr(&self, needle: &str) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "stderr never had {needle:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[track_caller]
    fn no_leak(&self, value: &[u8]) {
        let (out, err) = (self.stdout(), self.stderr());
        assert!(!contains(out.as_bytes(), value), "value in stdout:\n{out}");
        assert!(!contains(err.as_bytes(), value), "value in stderr:\n{err}");
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in &self.cleanup {
            let _ = kill(*pid, Signal::SIGKILL);
        }
    }
}

#[test]
fn each_plugin_sees_only_its_own_secrets() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["sleep", "{root}/a.ready"]
env = { GREETING = "hello", LITERAL = "@@not-a-ref" }
secret_env_refs = { TOKEN = "@a_token" }

[[plugins]]
id = "b"
command = "{probe}"
args = ["sleep", "{root}/b.ready"]
inherit_env = "all"
secret_env_refs = { TOKEN = "@b_token" }
"#,
    );
    // A descriptor the supervisor inherits without close-on-exec (a
    // shell's `exec 3>file`) must not reach a plugin.
    let (leak_r, leak_w) = nix::unistd::pipe().unwrap();
    let mut sup = Sup::start(&env, &file);
    drop((leak_r, leak_w));
    let a = read_pid(path(&env, "a.ready"));
    let b = read_pid(path(&env, "b.ready"));
    sup.cleanup.extend([a, b]);
    for pid in [a, b] {
        let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        fds.sort();
        assert_eq!(fds, ["0", "1", "2"], "plugin {pid} holds other descriptors");
        let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
        assert_eq!(stdin, Path::new("/dev/null"));
        let stdout = std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap();
        assert!(stdout.to_string_lossy().starts_with("pipe:"), "{stdout:?}");
        // Its own process group, the supervisor's child.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(fields[1], sup.pid().to_string(), "parent");
        assert_eq!(fields[2], pid.to_string(), "process group");
    }
    let environ = |pid: Pid| std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let cmdline = |pid: Pid| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let (env_a, env_b) = (environ(a), environ(b));
    assert!(contains(&env_a, &[b"TOKEN=", A_VALUE].concat()));
    assert!(contains(&env_b, &[b"TOKEN=", B_VALUE].concat()));
    assert!(!contains(&env_a, B_VALUE), "a has b's secret");
    assert!(!contains(&env_b, A_VALUE), "b has a's secret");
    assert!(contains(&env_a, b"GREETING=hello\0"));
    assert!(contains(&env_a, b"LITERAL=@not-a-ref\0"));
    for (pid, environ) in [(a, &env_a), (b, &env_b)] {
        assert!(
            !contains(environ, b"SECRET_"),
            "{pid} got a control variable"
        );
        assert!(!contains(&cmdline(pid), A_VALUE) && !contains(&cmdline(pid), B_VALUE));
    }
    // minimal base for a: no HOME-less oddities, nothing but the basics.
    assert!(contains(&env_a, b"PATH="));
    // The supervisor's own argv holds no value either.
    assert!(!contains(&cmdline(sup.pid()), A_VALUE));
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0, "{}", sup.stderr());
    assert!(!alive(a) && !alive(b));
    sup.no_leak(A_VALUE);
    sup.no_leak(B_VALUE);
    env.assert_not_on_disk(A_VALUE);
    // Each spawn is audited with the plugin's consumer, plugin:ID.
    let audit = env.secret(["audit", "--json"]).run();
    let trail = audit.stdout();
    for (consumer, handle) in [("plugin:a", "a_token"), ("plugin:b", "b_token")] {
        assert!(
            trail.lines().any(|l| l.contains("\"action\":\"resolve\"")
                && l.contains(&format!("\"consumer\":\"{consumer}\""))
                && l.contains(&format!("\"handle\":\"{handle}\""))),
            "{trail}"
        );
    }
    assert!(trail.contains("\"action\":\"plugin-start\""));
}

#[test]
fn output_is_prefixed_masked_and_nothing_is_lost() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[defaults]
restart = "no"

[[plugins]]
id = "a"
command = "{probe}"
args = ["say", "TOKEN", "2000"]
secret_env_refs = { TOKEN = "@a_token" }

[[plugins]]
id = "b"
prefix = "bee-long"
command = "sh"
args = ["-c", "echo to-stderr >&2; echo plain"]
secret_env_refs = { TOKEN = "@b_token" }
"#,
    );
    let mut sup = Sup::start(&env, &file);
    assert_eq!(sup.wait(), 0, "{}", sup.stderr());
    let out = sup.stdout();
    let a_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("a        | "))
        .collect();
    assert_eq!(a_lines.len(), 2001, "{out}");
    for (i, line) in a_lines.iter().take(2000).enumerate() {
        assert_eq!(
            *line,
            format!("a        | {} TOKEN=<secret:@a_token>", i + 1)
        );
    }
    assert_eq!(a_lines[2000], "a        | end TOKEN=<secret:@a_token>");
    assert!(out.contains("bee-long | plain\n"), "{out}");
    assert!(sup.stderr().contains("bee-long | to-stderr\n"));
    sup.no_leak(A_VALUE);
    sup.no_leak(B_VALUE);
}

#[test]
fn restarts_back_off_and_a_crash_loop_fails_only_that_plugin() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "crasher"
command = "{probe}"
args = ["crash", "{root}/crashes", "1"]
restart_delay = "100ms"
restart_delay_max = "1s"
crash_loop = { max = 4, window = "60s" }

[[plugins]]
id = "steady"
command = "{probe}"
args = ["sleep", "{root}/steady.ready"]
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let steady = read_pid(path(&env, "steady.ready"));
    sup.cleanup.push(steady);
    sup.wait_stderr("plugin crasher failed: 4 failures in 60s (last: exit code 1); not restarting");
    let times: Vec<u64> = read(&path(&env, "crashes"))
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(times.len(), 4, "started four times, then failed");
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, want) in gaps.iter().zip([100, 200, 400]) {
        assert!(
            *gap >= want - 5 && *gap < want + 400,
            "gaps {gaps:?}: want about {want}ms"
        );
    }
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2],
        "gaps grow: {gaps:?}"
    );
    let err = sup.stderr();
    assert!(
        err.contains("crasher exited (exit code 1); restarting in 100ms"),
        "{err}"
    );
    assert!(err.contains("restarting in 200ms") && err.contains("restarting in 400ms"));
    // The other plugin never noticed.
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(steady));
    assert_eq!(read_pid(path(&env, "steady.ready")), steady);
    assert_eq!(err.matches("steady started").count(), 1);
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0);
}

#[test]
fn every_plugin_terminal_ends_the_supervisor() {
    let env = world();
    // All succeed: 0.
    let file = plugins_file(
        &env,
        "[[plugins]]\nid = \"a\"\ncommand = \"true\"\nrestart = \"on-failure\"\n\n[[plugins]]\nid = \"off\"\ncommand = \"true\"\nenabled = false\n",
    );
    let mut sup = Sup::start(&env, &file);
    assert_eq!(sup.wait(), 0, "{}", sup.stderr());
    // One fails for good (a missing program, named, through the same
    // backoff): 1.
    let file = plugins_file(
        &env,
        "[[plugins]]\nid = \"a\"\ncommand = \"./no-such-program\"\nrestart_delay = \"100ms\"\ncrash_loop = { max = 2, window = \"10s\" }\n",
    );
    let mut sup = Sup::start(&env, &file);
    assert_eq!(sup.wait(), 1);
    let err = sup.stderr();
    assert!(
        err.contains(&format!(
            "plugin a failed: 2 failures in 10s (last: command not found: {}/./no-such-program)",
            env.root().display()
        )),
        "{err}"
    );
    assert!(err.contains("restarting in 100ms"), "{err}");
}

#[test]
fn the_stop_signal_comes_once_then_the_whole_group_is_killed() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["leader", "{root}/leader.log", "{root}/leader.ready", "{root}/child.log", "{root}/child.ready"]
stop_timeout = "300ms"
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let leader = read_pid(path(&env, "leader.ready"));
    let child = read_pid(path(&env, "child.ready"));
    sup.cleanup.extend([leader, child]);
    let start = Instant::now();
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0, "{}", sup.stderr());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "the lingering child had its stop_timeout: {took:?}"
    );
    assert!(!alive(leader) && !alive(child), "the whole group is gone");
    // The leader exited on TERM; the grandchild ignored it: each saw it once.
    assert_eq!(read(&path(&env, "leader.log")).matches("TERM").count(), 1);
    let child_log = read(&path(&env, "child.log"));
    assert_eq!(child_log.matches("TERM").count(), 1, "{child_log}");
    assert!(child_log.contains("CONT"), "SIGCONT follows: {child_log}");
    assert!(
        sup.stderr()
            .contains("sending SIGKILL to its process group")
    );
}

#[test]
fn a_lingering_group_member_is_stopped_before_a_restart() {
    let env = world();
    // The leader exits by itself (TERM from the test), the grandchild
    // lingers: the group is stopped (300ms, then SIGKILL) before the
    // restart.
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["leader", "{root}/leader.log", "{root}/leader.ready", "{root}/child.log", "{root}/child.ready"]
stop_timeout = "300ms"
restart = "always"
restart_delay = "100ms"
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let leader = read_pid(path(&env, "leader.ready"));
    let child = read_pid(path(&env, "child.ready"));
    sup.cleanup.extend([leader, child]);
    std::fs::remove_file(path(&env, "leader.ready")).unwrap();
    std::fs::remove_file(path(&env, "child.ready")).unwrap();
    kill(leader, Signal::SIGTERM).unwrap();
    sup.wait_stderr("a exited (exit code 0); stopping what is left of its process group");
    let second = read_pid(path(&env, "leader.ready"));
    sup.cleanup.push(second);
    assert!(!alive(child), "the old grandchild was killed first");
    assert_ne!(second, leader);
    let child2 = read_pid(path(&env, "child.ready"));
    sup.cleanup.push(child2);
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0);
    assert!(!alive(second) && !alive(child2));
}

#[test]
fn a_second_sigterm_kills_at_once() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["signals", "{root}/a.log", "{root}/a.ready"]
stop_timeout = "30s"
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let a = read_pid(path(&env, "a.ready"));
    sup.cleanup.push(a);
    sup.signal(Signal::SIGTERM);
    wait_for("TERM", || read(&path(&env, "a.log")).contains("TERM"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(a), "it ignores TERM");
    let start = Instant::now();
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 128 + 15);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(!alive(a));
    assert_eq!(read(&path(&env, "a.log")).matches("TERM").count(), 1);
}

#[test]
fn a_denied_secret_fails_only_that_plugin_and_is_audited() {
    let env = Env::with_vault();
    env.add("@a_token", A_VALUE);
    env.add("@b_token", B_VALUE);
    grant(&env, &[("a_token", "a")]);
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["sleep", "{root}/a.ready"]
secret_env_refs = { TOKEN = "@a_token" }

[[plugins]]
id = "b"
command = "{probe}"
args = ["sleep", "{root}/b.ready"]
secret_env_refs = { TOKEN = "@b_token" }
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let a = read_pid(path(&env, "a.ready"));
    sup.cleanup.push(a);
    sup.wait_stderr("plugin b failed: secret reference @b_token could not be resolved: denied");
    // The error keeps its hint: the grant that would allow it.
    sup.wait_stderr("  hint: if it should, add to ");
    sup.wait_stderr("consumer = \"plugin:b\"");
    assert!(!Path::new(&path(&env, "b.ready")).exists(), "b never ran");
    assert!(alive(a));
    sup.signal(Signal::SIGINT);
    assert_eq!(sup.wait(), 0);
    sup.no_leak(B_VALUE);
    let trail = env.secret(["audit", "--json"]).run().stdout();
    assert!(
        trail
            .lines()
            .any(|l| l.contains("\"consumer\":\"plugin:b\"")
                && l.contains("\"handle\":\"b_token\"")
                && l.contains("\"outcome\":\"denied\"")),
        "{trail}"
    );
    // check says the same, with the grant that would fix it; exit 2 (the
    // contract's code for a configuration that would not run as written).
    let out = env
        .secret(["plugins", "check", file.to_str().unwrap()])
        .run();
    out.code(2)
        .stdout_has("a: secrets: TOKEN (@a_token); env: none")
        .stdout_has("b: error: TOKEN (@b_token) could not be resolved: denied")
        .stdout_has("consumer = \"plugin:b\"")
        .no_leak(A_VALUE)
        .no_leak(B_VALUE);
}

#[test]
fn check_lists_the_variables_each_plugin_would_get() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "x"
env = { LOG_LEVEL = "info" }
secret_env_refs = { TOKEN = "@a_token" }

[[plugins]]
id = "b"
command = "x"
enabled = false
secret_env_refs = { TOKEN = "@missing" }
"#,
    );
    let out = env
        .secret(["plugins", "check", file.to_str().unwrap()])
        .run();
    out.success()
        .stdout_has("valid; 2 plugins, 1 enabled")
        .stdout_has("a: secrets: TOKEN (@a_token); env: LOG_LEVEL")
        .stdout_has("b: disabled")
        .no_leak(A_VALUE);
    // The default location: the configuration directory's plugins.toml.
    std::fs::copy(&file, env.home().join("plugins.toml")).unwrap();
    env.secret(["plugins", "check"])
        .run()
        .success()
        .stdout_has("home/plugins.toml: valid");
    // A store that cannot be opened: the file would not run as written,
    // and the contract's code for that is 2, as for a missing secret.
    env.secret(["plugins", "check"])
        .env("SECRET_PASSPHRASE", "not the passphrase")
        .run()
        .code(2)
        .stderr_has("wrong passphrase");
}

/// One problem per file: (plugins.toml text, a line of the expected
/// message). Every one exits 2 and starts nothing.
const INVALID: &[(&str, &str)] = &[
    (
        "[[plugins]]\nid = \"a\"\ncomand = \"x\"\n",
        "plugins.toml:3:1: unknown key \"comand\" in plugins[0]; did you mean \"command\"?",
    ),
    (
        "[[plugins]]\nid = \"a\"\n",
        "plugins.toml:1:1: plugins[0]: missing required key \"command\"",
    ),
    (
        "[[plugins]]\nid = \"My Plugin\"\ncommand = \"x\"\n",
        "plugins.toml:2:6: plugins[0].id: \"My Plugin\" is not a valid id",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\n[[plugins]]\nid = \"a\"\ncommand = \"x\"\n",
        "plugins.toml:5:6: plugins[1]: duplicate plugin id \"a\" (first defined at line 2)",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nenv = { T = \"1\" }\nsecret_env_refs = { T = \"@t\" }\n",
        "plugins[0].env.T: \"T\" is also set in secret_env_refs",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nsecret_env_refs = { \"1BAD\" = \"@t\" }\n",
        "plugins[0].secret_env_refs.\"1BAD\": not a valid environment variable name",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nsecret_env_refs = { T = \"my_service_token\" }\n",
        "plugins[0].secret_env_refs.T: the value is not a secret reference (must start with \"@\"",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nenv = { TOKEN = \"@t\" }\n",
        "plugins[0].env.TOKEN: value starts with \"@\"; put secret references in secret_env_refs (write \"@@\" for a literal \"@\")",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nenv = { SECRET_PASSPHRASE = \"x\" }\n",
        "plugins[0].env.SECRET_PASSPHRASE: SECRET_PASSPHRASE is one of secret's own control variables",
    ),
    (
        "[[plugins]]\nid = \"db\"\ncommand = \"x\"\n[[plugins]]\nid = \"c\"\ncommand = \"x\"\ndepends_on = [\"dbb\"]\n",
        "plugins.toml:7:15: plugins[1].depends_on: unknown plugin \"dbb\"; did you mean \"db\"?",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\ndepends_on = [\"b\"]\n[[plugins]]\nid = \"b\"\ncommand = \"x\"\ndepends_on = { c = \"ready\" }\n[[plugins]]\nid = \"c\"\ncommand = \"x\"\ndepends_on = [\"a\"]\n",
        "dependency cycle: a -> b -> c -> a",
    ),
    (
        "[[plugins]]\nid = \"db\"\ncommand = \"x\"\nenabled = false\n[[plugins]]\nid = \"c\"\ncommand = \"x\"\ndepends_on = [\"db\"]\n",
        "plugins[1].depends_on: depends on disabled plugin \"db\"",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nstop_signal = \"SIGTRM\"\n",
        "plugins.toml:4:15: plugins[0].stop_signal: unknown signal \"SIGTRM\"; did you mean \"SIGTERM\"?",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nrestart_delay = \"50ms\"\n",
        "plugins[0].restart_delay: \"50ms\" is below the minimum of 100ms",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nrestart_delay = \"2s\"\nrestart_delay_max = \"1s\"\n",
        "plugins[0].restart_delay_max: must be greater than or equal to restart_delay",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\ncrash_loop = { max = 3, window = 60 }\n",
        "plugins[0].crash_loop.window: must be a duration like \"60s\"",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nready = { log_line = \"x\", tcp = \"127.0.0.1:1\" }\n",
        "plugins[0].ready: only one of log_line, notify_fd, exec, tcp may be set",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nready = { notify_fd = 2 }\n",
        "plugins[0].ready.notify_fd: must be >= 3",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nready = { log_line = \"(\" }\n",
        "plugins[0].ready.log_line: invalid regex: found open group without closing ')'",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\ncwd = \"./missing\"\n",
        "plugins[0].cwd: directory \"./missing\" does not exist",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nstop_signal = \"KILL\"\n[defaults]\nsecret_env_refs = { T = \"@t\" }\n",
        "defaults.secret_env_refs: \"secret_env_refs\" is per-plugin only",
    ),
    (
        "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nstop_timeout = 10\n",
        "plugins[0].stop_timeout: must be a duration like \"60s\"",
    ),
    (
        "version = 1\n[supervisor]\non_plugin_fail = \"shutdown\"\n",
        "plugins.toml:3:1: unknown key \"on_plugin_fail\" in supervisor; did you mean \"on_plugin_failed\"?",
    ),
    ("[[plugins]\n", "plugins.toml:1:"),
];

#[test]
fn every_validation_error_exits_2_and_starts_nothing() {
    let env = world();
    let marker = path(&env, "started");
    for (text, want) in INVALID {
        // A valid plugin that would leave a mark if anything started.
        let toucher = format!(
            "\n[[plugins]]\nid = \"toucher\"\ncommand = \"touch\"\nargs = [\"{marker}\"]\n"
        );
        let text = if text.contains("[[plugins]\n") {
            (*text).to_owned()
        } else {
            format!("{text}{toucher}")
        };
        let file = plugins_file(&env, &text);
        for command in ["run", "check"] {
            let out = env
                .secret(["plugins", command, file.to_str().unwrap()])
                .run();
            out.code(2)
                .stderr_has(want)
                .stderr_has("nothing was started");
            assert!(
                !Path::new(&marker).exists(),
                "{command} started a plugin: {text}"
            );
        }
    }
    // All at once: every problem listed, in file order.
    let file = plugins_file(
        &env,
        "[[plugins]]\nid = \"A\"\ncomand = \"x\"\nrestart = \"sometimes\"\nenv = { K = \"@k\" }\n",
    );
    let out = env.secret(["plugins", "run", file.to_str().unwrap()]).run();
    out.code(2);
    let err = out.stderr();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 6, "{err}");
    assert!(lines[0].ends_with("plugins.toml:1:1: plugins[0]: missing required key \"command\""));
    assert!(lines[1].contains(":2:6: plugins[0].id"));
    assert!(lines[2].contains(":3:1: unknown key \"comand\""));
    assert!(lines[3].contains(":4:11: plugins[0].restart: unknown value \"sometimes\"; use one of \"no\", \"on-failure\", \"always\""));
    assert!(lines[4].contains(":5:13: plugins[0].env.K: value starts with \"@\""));
    assert_eq!(
        lines[5],
        format!(
            "secret: 5 problems in {}; nothing was started",
            file.display()
        )
    );
}

#[test]
fn secret_values_pasted_in_the_wrong_place_are_not_echoed() {
    let env = world();
    let pasted = "sk-live-pasted-by-mistake-123";
    let file = plugins_file(
        &env,
        &format!(
            "[[plugins]]\nid = \"a\"\ncommand = \"x\"\nsecret_env_refs = {{ TOKEN = \"{pasted}\" }}\nenv = {{ K = \"@{pasted}\" }}\n"
        ),
    );
    let out = env
        .secret(["plugins", "check", file.to_str().unwrap()])
        .run();
    out.code(2).no_leak(pasted.as_bytes());
}

#[test]
fn dependencies_start_in_order_and_a_failed_one_blocks() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "app"
command = "sh"
args = ["-c", "echo app-sees-$(cat {root}/setup.done)"]
restart = "no"
depends_on = { setup = "completed", web = "started" }

[[plugins]]
id = "setup"
command = "sh"
args = ["-c", "sleep 0.2; echo done > {root}/setup.done"]
restart = "no"

[[plugins]]
id = "web"
command = "true"
restart = "no"
"#,
    );
    let mut sup = Sup::start(&env, &file);
    assert_eq!(sup.wait(), 0, "{}", sup.stderr());
    assert!(
        sup.stdout().contains("app   | app-sees-done"),
        "{}",
        sup.stdout()
    );

    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "app"
command = "touch"
args = ["{root}/app.ran"]
depends_on = { setup = "completed" }

[[plugins]]
id = "setup"
command = "false"
restart = "no"
"#,
    );
    let mut sup = Sup::start(&env, &file);
    assert_eq!(sup.wait(), 1, "blocked counts as failed");
    assert!(
        sup.stderr()
            .contains("app is blocked by setup (exit code 1; needed: completed)"),
        "{}",
        sup.stderr()
    );
    assert!(!Path::new(&path(&env, "app.ran")).exists());
}

#[test]
fn readiness_gates_dependents() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "notifier"
command = "{probe}"
args = ["notify", "5", "{root}/notifier.ready"]
ready = { notify_fd = 5, timeout = "5s" }

[[plugins]]
id = "logger"
command = "sh"
args = ["-c", "sleep 0.2; echo listening on 1234; exec sleep 30"]
ready = { log_line = "listening on \\d+" }

[[plugins]]
id = "after"
command = "{probe}"
args = ["sleep", "{root}/after.ready"]
depends_on = { notifier = "ready", logger = "ready" }

[[plugins]]
id = "never"
command = "sleep"
args = ["30"]
ready = { log_line = "never printed", timeout = "300ms" }
stop_timeout = "0s"
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let notifier = read_pid(path(&env, "notifier.ready"));
    sup.cleanup.push(notifier);
    let after = read_pid(path(&env, "after.ready"));
    sup.cleanup.push(after);
    sup.wait_stderr("after started");
    let err = sup.stderr();
    let at = |needle: &str| {
        err.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {err}"))
    };
    assert!(at("notifier is ready") < at("after started"));
    assert!(at("logger is ready") < at("after started"));
    sup.wait_stderr("plugin never failed: not ready within 300ms (log_line \"never printed\")");
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0);
    assert!(!alive(after) && !alive(notifier));
}

#[test]
fn kill_9_of_the_supervisor_leaves_no_plugin_process() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["leader", "{root}/leader.log", "{root}/leader.ready", "{root}/child.log", "{root}/child.ready"]
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let leader = read_pid(path(&env, "leader.ready"));
    let child = read_pid(path(&env, "child.ready"));
    sup.cleanup.extend([leader, child]);
    sup.signal(Signal::SIGKILL);
    sup.wait();
    wait_for("the leader and its child to die", || {
        !alive(leader) && !alive(child)
    });
}

#[test]
fn on_plugin_failed_shutdown_stops_everything_with_1() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[supervisor]
on_plugin_failed = "shutdown"

[[plugins]]
id = "a"
command = "{probe}"
args = ["sleep", "{root}/a.ready"]

[[plugins]]
id = "b"
command = "sh"
args = ["-c", "sleep 0.3; exit 1"]
crash_loop = { max = 1, window = "1m" }
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let a = read_pid(path(&env, "a.ready"));
    sup.cleanup.push(a);
    assert_eq!(sup.wait(), 1, "{}", sup.stderr());
    assert!(!alive(a));
    assert!(
        sup.stderr()
            .contains("plugin b failed: 1 failures in 1m (last: exit code 1)")
    );
}

#[test]
fn probes_by_command_and_by_tcp_connection() {
    let env = world();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = plugins_file(
        &env,
        &format!(
            r#"
[[plugins]]
id = "flagger"
command = "sh"
args = ["-c", "sleep 0.2; touch flag; exec sleep 30"]
ready = {{ exec = ["test", "-e", "flag"], interval = "50ms" }}

[[plugins]]
id = "server"
command = "{{probe}}"
args = ["listen", "127.0.0.1:{port}"]
ready = {{ tcp = "127.0.0.1:{port}", interval = "50ms" }}

[[plugins]]
id = "after"
command = "{{probe}}"
args = ["sleep", "{{root}}/after.ready"]
depends_on = {{ flagger = "ready", server = "ready" }}
"#
        ),
    );
    let mut sup = Sup::start(&env, &file);
    let after = read_pid(path(&env, "after.ready"));
    sup.cleanup.push(after);
    sup.wait_stderr("after started");
    let err = sup.stderr();
    let at = |needle: &str| {
        err.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {err}"))
    };
    assert!(at("flagger is ready") < at("after started"));
    assert!(at("server is ready") < at("after started"));
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0);
}

#[test]
fn shutdown_stops_dependents_first() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "db"
command = "{probe}"
args = ["signals", "{root}/db.log", "{root}/db.ready"]
stop_timeout = "200ms"

[[plugins]]
id = "app"
command = "{probe}"
args = ["signals", "{root}/app.log", "{root}/app.ready"]
depends_on = ["db"]
stop_timeout = "400ms"
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let db = read_pid(path(&env, "db.ready"));
    let app = read_pid(path(&env, "app.ready"));
    sup.cleanup.extend([db, app]);
    sup.signal(Signal::SIGTERM);
    wait_for("app's TERM", || {
        read(&path(&env, "app.log")).contains("TERM")
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(app), "app ignores TERM for its stop_timeout");
    assert_eq!(
        read(&path(&env, "db.log")),
        "",
        "db waits for app to be gone"
    );
    assert_eq!(sup.wait(), 0);
    assert!(read(&path(&env, "db.log")).contains("TERM"));
    let err = sup.stderr();
    assert!(err.find("app stopped").unwrap() < err.find("db stopped").unwrap());
}

#[test]
fn output_modes_colour_timestamps_and_cwd() {
    let env = world();
    std::fs::create_dir(env.root().join("work")).unwrap();
    let file = plugins_file(
        &env,
        r#"
[supervisor]
color = "always"
timestamps = true

[defaults]
restart = "no"

[[plugins]]
id = "raw"
command = "sh"
args = ["-c", "echo raw-line; pwd"]
output = "raw"
cwd = "work"

[[plugins]]
id = "gone"
command = "sh"
args = ["-c", "echo discarded-line"]
output = "discard"

[[plugins]]
id = "pretty"
command = "sh"
args = ["-c", "pwd"]
"#,
    );
    let mut sup = Sup::start(&env, &file);
    assert_eq!(sup.wait(), 0, "{}", sup.stderr());
    let out = sup.stdout();
    assert!(out.lines().any(|l| l == "raw-line"), "{out}");
    let work = env.root().join("work");
    assert!(out.lines().any(|l| l == work.to_str().unwrap()), "{out}");
    assert!(!out.contains("discarded-line"));
    let pretty = out.lines().find(|l| l.contains("pretty")).unwrap();
    // HH:MM:SS, the coloured padded prefix, then the line: the default cwd
    // is the directory of plugins.toml.
    let (clock, rest) = pretty.split_at(9);
    assert!(
        clock.as_bytes()[2] == b':' && clock.ends_with(' '),
        "{pretty:?}"
    );
    assert_eq!(
        rest,
        format!("\x1b[32mpretty |\x1b[0m {}", env.root().display())
    );
}

#[test]
fn stable_uptime_resets_the_backoff() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "flaky"
command = "sh"
args = ["-c", "sleep 0.25; exit 1"]
restart_delay = "100ms"
stable_after = "200ms"
crash_loop = { max = 3, window = "1m" }
"#,
    );
    let mut sup = Sup::start(&env, &file);
    assert_eq!(sup.wait(), 1);
    let err = sup.stderr();
    assert_eq!(err.matches("restarting in 100ms").count(), 2, "{err}");
    assert!(!err.contains("restarting in 200ms"));
}

#[test]
fn usage_errors_exit_2() {
    let env = world();
    env.secret(["plugins", "run", "--bogus"]).run().code(2);
    env.secret(["plugins", "check", "/nonexistent/plugins.toml"])
        .run()
        .code(2)
        .stderr_has("/nonexistent/plugins.toml:1:1: cannot read the file");
}

#[test]
fn sighup_reloads_and_restarts_only_what_changed() {
    let env = world();
    env.add("@c_token", b"sk-c-old-value-1");
    env.add("@d_token", b"sk-d-old-value-1");
    grant(&env, &[("c_token", "c"), ("d_token", "d")]);
    let plugin = |id: &str, extra: &str| {
        format!(
            "[[plugins]]\nid = \"{id}\"\ncommand = \"{{probe}}\"\nargs = [\"sleep\", \"{{root}}/{id}.ready\"]\n{extra}\n"
        )
    };
    let head = "[supervisor]\nreload_debounce = \"100ms\"\n\n";
    let before = [
        head.to_owned(),
        plugin("a", "secret_env_refs = { T = \"@a_token\" }"),
        plugin("b", "env = { MODE = \"one\" }"),
        plugin("c", "secret_env_refs = { T = \"@c_token\" }"),
        plugin(
            "d",
            "secret_env_refs = { T = \"@d_token\" }\non_secret_change = \"ignore\"",
        ),
        plugin("e", ""),
    ]
    .concat();
    let file = plugins_file(&env, &before);
    let mut sup = Sup::start(&env, &file);
    let pid = |id: &str| read_pid(path(&env, &format!("{id}.ready")));
    let first: Vec<Pid> = ["a", "b", "c", "d", "e"].iter().map(|id| pid(id)).collect();
    sup.cleanup.extend(&first);
    for id in ["b", "c", "e"] {
        std::fs::remove_file(path(&env, &format!("{id}.ready"))).unwrap();
    }
    env.secret(["rotate", "@c_token", "--stdin"])
        .stdin(b"sk-c-new-value-2")
        .run()
        .success();
    env.secret(["rotate", "@d_token", "--stdin"])
        .stdin(b"sk-d-new-value-2")
        .run()
        .success();
    let after = [
        head.to_owned(),
        plugin(
            "a",
            "secret_env_refs = { T = \"@a_token\" }\nrestart = \"always\"",
        ),
        plugin("b", "env = { MODE = \"two\" }"),
        plugin("c", "secret_env_refs = { T = \"@c_token\" }"),
        plugin(
            "d",
            "secret_env_refs = { T = \"@d_token\" }\non_secret_change = \"ignore\"",
        ),
        plugin("f", ""),
    ]
    .concat();
    plugins_file(&env, &after);
    // A burst is one reload.
    sup.signal(Signal::SIGHUP);
    sup.signal(Signal::SIGHUP);
    sup.wait_stderr("reload: 2 restarted, 1 started, 1 stopped, 2 unchanged");
    let (b2, c2, f) = (pid("b"), pid("c"), pid("f"));
    sup.cleanup.extend([b2, c2, f]);
    let err = sup.stderr();
    assert_eq!(
        err.matches("SIGHUP received: reloading").count(),
        1,
        "{err}"
    );
    assert_eq!(err.matches(" restarted, ").count(), 1, "{err}");
    // Unchanged (a: only its restart policy; d: a secret, but "ignore")
    // keep their pids; changed ones were stopped first, then started.
    assert!(alive(first[0]) && alive(first[3]));
    assert!(!alive(first[1]) && !alive(first[2]) && !alive(first[4]));
    assert_ne!(b2, first[1]);
    assert_ne!(c2, first[2]);
    let environ = |pid: Pid| std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(contains(&environ(b2), b"MODE=two\0"));
    assert!(contains(&environ(c2), b"T=sk-c-new-value-2\0"));
    assert!(contains(&environ(first[3]), b"T=sk-d-old-value-1\0"));
    assert!(err.contains("e stopped (killed by SIGTERM); removed from the configuration"));
    assert!(err.contains("d: a secret changed; on_secret_change = \"ignore\" leaves it running"));

    // An invalid file changes nothing.
    plugins_file(&env, &format!("{after}\n[[plugins]]\nid = \"g\"\n"));
    sup.signal(Signal::SIGHUP);
    sup.wait_stderr("reload: the file is invalid; the running configuration stays");
    assert!(sup.stderr().contains("reload: "));
    assert!(
        sup.stderr()
            .contains("plugins[5]: missing required key \"command\"")
    );
    for p in [first[0], b2, c2, first[3], f] {
        assert!(alive(p));
    }
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0);
    for value in [
        &b"sk-c-new-value-2"[..],
        b"sk-c-old-value-1",
        b"sk-d-new-value-2",
        A_VALUE,
    ] {
        sup.no_leak(value);
    }
}

#[test]
fn status_shows_every_plugin_over_a_private_socket() {
    let env = Env::with_vault();
    env.add("@a_token", A_VALUE);
    grant(&env, &[("a_token", "a")]);
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["sleep", "{root}/a.ready"]
secret_env_refs = { TOKEN = "@a_token" }

[[plugins]]
id = "b"
command = "x"
secret_env_refs = { TOKEN = "@a_token" }

[[plugins]]
id = "c"
command = "x"
enabled = false
"#,
    );
    let f = file.to_str().unwrap();
    env.secret(["plugins", "status", f])
        .run()
        .code(1)
        .stderr_has("no supervisor is running");
    let mut sup = Sup::start(&env, &file);
    let a = read_pid(path(&env, "a.ready"));
    sup.cleanup.push(a);
    sup.wait_stderr("plugin b failed");
    let out = env.secret(["plugins", "status", f, "--json"]).run();
    out.success().no_leak(A_VALUE);
    let v: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(v["supervisor_pid"], sup.child.id());
    let plugins = v["plugins"].as_array().unwrap();
    let by_id = |id: &str| plugins.iter().find(|p| p["id"] == id).unwrap().clone();
    assert_eq!(by_id("a")["state"], "running");
    assert_eq!(by_id("a")["pid"], a.as_raw());
    assert_eq!(by_id("b")["state"], "failed");
    assert!(
        by_id("b")["reason"]
            .as_str()
            .unwrap()
            .contains("secret reference @a_token could not be resolved: denied")
    );
    assert_eq!(by_id("c")["state"], "disabled");
    let table = env.secret(["plugins", "status", f]).run();
    table.success().stdout_has("ID").stdout_has("running");
    assert!(
        table
            .stdout()
            .lines()
            .any(|l| l.starts_with("a ") && l.contains(&a.to_string()))
    );
    // The socket is the owner's alone.
    let socket = std::fs::read_dir(env.home().join("run"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second supervisor of the same file is refused, starting nothing.
    let second = env.secret(["plugins", "run", f]).run();
    second.code(2).stderr_has("already running");
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0);
    assert!(!socket.exists(), "the socket is removed at exit");
}

#[test]
fn shutdown_deadline_caps_the_stop_and_kill_group_false_spares_the_group() {
    let env = world();
    let file = plugins_file(
        &env,
        r#"
[supervisor]
shutdown_deadline = "300ms"

[[plugins]]
id = "stubborn"
command = "{probe}"
args = ["signals", "{root}/s.log", "{root}/s.ready"]
stop_timeout = "30s"

[[plugins]]
id = "leader"
command = "{probe}"
args = ["leader", "{root}/l.log", "{root}/l.ready", "{root}/c.log", "{root}/c.ready"]
kill_group = false
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let stubborn = read_pid(path(&env, "s.ready"));
    let leader = read_pid(path(&env, "l.ready"));
    let child = read_pid(path(&env, "c.ready"));
    sup.cleanup.extend([stubborn, leader, child]);
    let start = Instant::now();
    sup.signal(Signal::SIGTERM);
    assert_eq!(
        sup.wait(),
        0,
        "a needed escalation does not change the code"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!alive(stubborn) && !alive(leader));
    assert!(sup.stderr().contains("shutdown_deadline (300ms) reached"));
    // Only the main process was signalled: its child never saw TERM.
    assert_eq!(read(&path(&env, "c.log")), "");
    assert!(
        alive(child),
        "kill_group = false leaves the rest of the group"
    );
}

#[test]
fn leases_are_renewed_a_rotation_restarts_and_a_withdrawn_grant_stops() {
    let env = Env::with_vault();
    env.add("@a_token", A_VALUE);
    let grants = env.home().join("grants.toml");
    std::fs::write(
        &grants,
        "[[grants]]\nsecret_ref = \"a_token\"\nconsumer = \"plugin:a\"\nttl_secs = 1\n",
    )
    .unwrap();
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["sleep", "{root}/a.ready"]
secret_env_refs = { TOKEN = "@a_token" }
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let ready = path(&env, "a.ready");
    let first = read_pid(&ready);
    sup.cleanup.push(first);
    let environ = |pid: Pid| std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(crate::util::contains(&environ(first), A_VALUE));

    let rotated: &[u8] = b"sk-rotated-lease-value-77";
    env.secret(["rotate", "@a_token", "--stdin"])
        .stdin(rotated)
        .run()
        .success();
    wait_for("the plugin to restart with the rotated value", || {
        std::fs::read_to_string(&ready)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            != Some(first.as_raw())
    });
    let second = read_pid(&ready);
    sup.cleanup.push(second);
    assert!(!alive(first), "the old run was stopped");
    wait_for("the new run's environment", || {
        crate::util::contains(&environ(second), rotated)
    });

    std::fs::write(&grants, "# withdrawn\n").unwrap();
    sup.wait_stderr("lease not renewed");
    wait_for("the plugin to be stopped", || !alive(second));
    sup.signal(Signal::SIGINT);
    sup.wait();
    sup.no_leak(rotated);
    let trail = env.secret(["audit", "--json"]).run().stdout();
    assert!(
        trail.contains("\"action\":\"renew\"") && trail.contains("ok (lease 1s)"),
        "{trail}"
    );
    assert!(trail.contains("revoked"), "{trail}");
}

/// One rule for `SECRET_*`, as for `secret exec`: secret's own control
/// variables never reach a plugin, even asked for by `pass_env`; other
/// `SECRET_*` names pass like any variable.
#[test]
fn a_plugin_gets_no_control_variable_and_keeps_other_secret_names() {
    let env = world()
        .var("SECRET_KEY_BASE", "rails-keeps-this")
        .var("SECRET_SCOPE", "team")
        .var("SECRET_BACKEND", "file");
    let file = plugins_file(
        &env,
        r#"
[[plugins]]
id = "a"
command = "{probe}"
args = ["sleep", "{root}/a.ready"]
inherit_env = "all"
pass_env = ["SECRET_*"]
secret_env_refs = { TOKEN = "@a_token" }
"#,
    );
    let mut sup = Sup::start(&env, &file);
    let pid = read_pid(path(&env, "a.ready"));
    sup.cleanup.push(pid);
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let vars: Vec<String> = environ
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        vars.iter().any(|v| v == "SECRET_KEY_BASE=rails-keeps-this"),
        "{vars:?}"
    );
    assert!(contains(&environ, A_VALUE));
    for control in crate::util::CONTROL_VARIABLES {
        assert!(
            !vars.iter().any(|v| v.starts_with(&format!("{control}="))),
            "{control} reached the plugin: {vars:?}"
        );
    }
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(), 0);
    sup.no_leak(A_VALUE);
}

#[test]
fn a_plugin_named_exec_gets_none_of_the_clis_grants() {
    let env = Env::with_vault();
    env.add("@a_token", A_VALUE);
    // init's grant: consumer "exec" may have every handle. A plugin that
    // calls itself "exec" is consumer "plugin:exec" and is denied.
    let file = plugins_file(
        &env,
        "[[plugins]]\nid = \"exec\"\ncommand = \"{probe}\"\nrestart = \"no\"\nsecret_env_refs = { A = \"@a_token\" }\n",
    );
    let out = env
        .secret(["plugins", "check", file.to_str().unwrap()])
        .run();
    assert_eq!(out.code, Some(2), "{}", out.stdout());
    assert!(
        out.stdout().contains("plugin:exec") || out.stderr().contains("plugin:exec"),
        "{}{}",
        out.stdout(),
        out.stderr()
    );
    out.no_leak(A_VALUE);
    env.secret(["exec", "--consumer", "plugin:exec", "--", "true"])
        .run()
        .code(125)
        .stderr_has("reserved");
}

/// `status` without FILE asks every supervisor of this user, whatever file
/// each runs (here two, started with explicit files in two directories):
/// one table each, or a JSON array. A socket left by a killed supervisor is
/// skipped; a socket that answers more than the cap is refused with a
/// warning that says so, and the others are still shown.
#[test]
fn status_without_a_file_finds_every_running_supervisor() {
    use std::io::Write as _;
    use std::os::unix::net::UnixListener;
    let env = Env::with_vault();
    env.secret(["plugins", "status"])
        .run()
        .code(1)
        .stderr_has("no supervisor is running");
    let mut sups = Vec::new();
    let mut files = Vec::new();
    for name in ["one", "two"] {
        let dir = env.root().join(name);
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("plugins.toml");
        std::fs::write(
            &file,
            format!("[[plugins]]\nid = \"{name}\"\ncommand = \"sleep\"\nargs = [\"60\"]\nrestart = \"no\"\n"),
        )
        .unwrap();
        let relative = Path::new(name).join("plugins.toml");
        sups.push(Sup::start_named(&env, &relative, name));
        files.push(file);
    }
    for file in &files {
        wait_for("the supervisor to answer", || {
            env.secret(["plugins", "status", file.to_str().unwrap()])
                .run()
                .stdout()
                .contains("running")
        });
    }
    let run = env.home().join("run");
    // Left by a supervisor that was killed: nobody answers.
    drop(UnixListener::bind(run.join("plugins-0000000000000000.sock")).unwrap());
    // Something that answers far more than a status answer may be.
    let flood = UnixListener::bind(run.join("plugins-ffffffffffffffff.sock")).unwrap();
    let flooder = std::thread::spawn(move || {
        let (mut stream, _) = flood.accept().unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..17 {
            if stream.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let out = env.secret(["plugins", "status"]).run();
    out.success()
        .stderr_has("answered more than 16777216 bytes, the most a status answer may be");
    flooder.join().unwrap();
    let text = out.stdout();
    // Each named by its absolute path, though started with a relative one.
    for (file, name) in files.iter().zip(["one", "two"]) {
        assert!(
            text.contains(&format!("running {}", file.display())),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains("running")),
            "{text}"
        );
    }
    let out = env.secret(["plugins", "status", "--json"]).run();
    out.success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    let all = v.as_array().expect("an array without FILE");
    assert_eq!(all.len(), 2, "{v}");
    for (snapshot, (file, sup)) in all.iter().zip(files.iter().zip(&sups)) {
        assert_eq!(snapshot["file"], file.to_str().unwrap());
        assert_eq!(snapshot["supervisor_pid"], sup.child.id());
    }
    for sup in &mut sups {
        sup.signal(Signal::SIGTERM);
        assert_eq!(sup.wait(), 0);
    }
    std::fs::remove_file(run.join("plugins-ffffffffffffffff.sock")).unwrap();
    env.secret(["plugins", "status"])
        .run()
        .code(1)
        .stderr_has("no supervisor is running");
}

//! `secret exec` as a transparent parent, checked as tini's and dumb-init's
//! suites check themselves: signals reach the child exactly once, orphans are
//! reaped, the child dies with us, the terminal works, bytes pass intact.

use std::path::Path;
use std::process::{Child, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Env, KillOnDrop, alive, parent_of, probe, read_pid, wait_for, wait_lines};

pub(crate) const VALUE: &[u8] = b"sk-process-5a4b3c2d1e";

pub(crate) fn env_with_key() -> Env {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    env
}

/// `secret exec -e K=@k -- probe ARGS`, started in the background.
fn start(env: &Env, extra: &[&str], probe_args: &[&str]) -> Child {
    let mut args = vec!["exec", "-e", "K=@k"];
    args.extend(extra);
    args.push("--");
    let probe = probe();
    args.push(probe.to_str().unwrap());
    args.extend(probe_args);
    let mut cmd = env.secret(args).into_command();
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().unwrap()
}

#[test]
fn every_forwarded_signal_reaches_the_child_exactly_once() {
    let env = env_with_key();
    for (signal, name) in [
        (Signal::SIGTERM, "TERM"),
        (Signal::SIGINT, "INT"),
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGWINCH, "WINCH"),
        (Signal::SIGALRM, "ALRM"),
    ] {
        let log = env.root().join(format!("{name}.log"));
        let ready = env.root().join(format!("{name}.ready"));
        let mut secret = start(
            &env,
            &[],
            &["signals", log.to_str().unwrap(), ready.to_str().unwrap()],
        );
        let probe_pid = read_pid(&ready);
        let _cleanup = KillOnDrop(probe_pid);
        let secret_pid = Pid::from_raw(secret.id() as i32);
        kill(secret_pid, signal).unwrap();
        wait_lines(&log, 1);
        // Then a marker: once it is recorded, any duplicate of the first
        // signal would have been forwarded before it.
        let (marker, marker_name) = if signal == Signal::SIGWINCH {
            (Signal::SIGUSR1, "USR1")
        } else {
            (Signal::SIGWINCH, "WINCH")
        };
        kill(secret_pid, marker).unwrap();
        assert_eq!(wait_lines(&log, 2), [name, marker_name], "{name}");
        kill(probe_pid, Signal::SIGKILL).unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&secret.wait().unwrap()),
            Some(9),
            "{name}: secret dies of the child's SIGKILL"
        );
    }
}

#[test]
fn the_child_dies_with_secret() {
    let env = env_with_key();
    let ready = env.root().join("ready");
    let mut secret = start(&env, &[], &["sleep", ready.to_str().unwrap()]);
    let probe_pid = read_pid(&ready);
    let _cleanup = KillOnDrop(probe_pid);
    assert!(alive(probe_pid));
    secret.kill().unwrap();
    secret.wait().unwrap();
    wait_for("the child to get its parent-death signal", || {
        !alive(probe_pid)
    });
}

#[test]
fn the_death_signal_is_configurable() {
    let env = env_with_key();
    let log = env.root().join("log");
    let ready = env.root().join("ready");
    let mut secret = start(
        &env,
        &["--death-signal", "USR1"],
        &["signals", log.to_str().unwrap(), ready.to_str().unwrap()],
    );
    let probe_pid = read_pid(&ready);
    let _cleanup = KillOnDrop(probe_pid);
    secret.kill().unwrap();
    secret.wait().unwrap();
    wait_for("USR1", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s == "USR1\n")
    });
    kill(probe_pid, Signal::SIGKILL).unwrap();
    env.secret(["exec", "--death-signal", "NOPE", "--", "true"])
        .run()
        .code(125)
        .stderr_has("unknown signal");
}

/// Leaves an orphan that exits quickly, then reports (on stdout) whether the
/// orphan was re-parented to `secret` and whether anything reaped it.
const ORPHAN_SCRIPT: &str = r#"
sh -c 'sleep 0.2 & echo $! > orphan.pid'
orphan=$(cat orphan.pid)
parent=$(awk '{print $4}' /proc/$orphan/stat)
sleep 0.6
if [ -e /proc/$orphan ]; then state=$(awk '{print $3}' /proc/$orphan/stat); else state=reaped; fi
echo "parent-is-secret=$([ "$parent" = "$PPID" ] && echo yes || echo no) state=$state"
"#;

#[test]
fn a_subreaper_reaps_orphans() {
    let env = env_with_key();
    let out = env
        .secret(["exec", "--subreaper", "--", "sh", "-c", ORPHAN_SCRIPT])
        .run();
    out.success();
    assert_eq!(out.stdout().trim(), "parent-is-secret=yes state=reaped");
    let plain = env.secret(["exec", "--", "sh", "-c", ORPHAN_SCRIPT]).run();
    assert!(
        plain.stdout().contains("parent-is-secret=no"),
        "{}",
        plain.stdout()
    );
}

#[test]
fn as_pid_1_every_zombie_is_reaped() {
    let env = env_with_key();
    let in_namespace = |extra: &[&str]| {
        let mut args = vec![
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_secret"),
            "exec",
        ];
        args.extend(extra);
        args.extend(["--", "sh", "-c", ORPHAN_SCRIPT]);
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(&args)
            .env("SECRET_HOME", env.home())
            .env("SECRET_PASSPHRASE", crate::util::PASSPHRASE)
            .current_dir(env.root());
        cmd.output().unwrap()
    };
    let out = in_namespace(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unshare failed") {
        assert!(
            std::env::var_os("CI").is_none(),
            "PID namespaces must work in CI: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("skipping: this machine cannot make PID namespaces");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "parent-is-secret=yes state=reaped");
}

#[test]
fn ten_megabytes_pass_through_byte_for_byte() {
    let env = env_with_key();
    let data: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = env
        .secret(["exec", "-e", "K=@k", "--", "cat"])
        .stdin(&data)
        .run();
    out.success();
    assert!(
        out.stdout == data,
        "stdout differs ({} bytes)",
        out.stdout.len()
    );
}

#[test]
fn exec_replaces_the_process() {
    let env = env_with_key();
    let mut cmd = env
        .secret([
            "exec",
            "--exec",
            "-e",
            "K=@k",
            "--",
            "sh",
            "-c",
            "echo $$; exit 42",
        ])
        .into_command();
    cmd.stdout(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());
    env.secret(["exec", "--exec", "--", "no-such-command-xyz"])
        .run()
        .code(127);
}

#[test]
fn files_are_in_memory_only() {
    let env = env_with_key();
    let out = env
        .secret([
            "exec",
            "--file",
            "CREDS=@k",
            "--",
            "sh",
            "-c",
            "printf '%s\\n' \"$CREDS\"; readlink \"$CREDS\"; cat \"$CREDS\"",
        ])
        .run();
    out.success();
    let stdout = out.stdout();
    let mut lines = stdout.lines();
    assert!(lines.next().unwrap().starts_with("/dev/fd/"));
    assert!(
        lines.next().unwrap().starts_with("/memfd:secret-CREDS"),
        "{stdout}"
    );
    assert_eq!(lines.next().unwrap(), String::from_utf8_lossy(VALUE));
    env.assert_not_on_disk(VALUE);
    env.secret(["exec", "--file", "CREDS=literal", "--", "true"])
        .run()
        .code(125)
        .stderr_has("must be a handle");
}

#[test]
fn ignore_keep_unset_and_templates() {
    let env = env_with_key();
    let out = env
        .secret([
            "exec",
            "-i",
            "--keep",
            "PATH",
            "--keep",
            "LC_*",
            "-e",
            "URL=pg://app:{{@k}}@db/app",
            "--",
            "env",
        ])
        .env("LC_TIME", "C")
        .env("OTHER", "x")
        .run();
    out.success();
    let mut vars: Vec<String> = out.stdout().lines().map(str::to_owned).collect();
    vars.sort();
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        vars,
        [
            "LC_TIME=C".to_owned(),
            format!("PATH={path}"),
            "URL=pg://app:sk-process-5a4b3c2d1e@db/app".to_owned()
        ]
    );
    let out = env
        .secret(["exec", "--unset", "OTHER", "--", "env"])
        .env("OTHER", "x")
        .run();
    assert!(!out.stdout().contains("OTHER="));
}

pub(crate) fn shebang_env(env: &Env) -> Vec<(String, String)> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_secret"))
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    vec![
        (
            "PATH".into(),
            format!("{bin_dir}:{}", std::env::var("PATH").unwrap()),
        ),
        (
            "SECRET_HOME".into(),
            env.home().to_str().unwrap().to_owned(),
        ),
        ("SECRET_PASSPHRASE".into(), crate::util::PASSPHRASE.into()),
    ]
}

fn run_script(env: &Env, name: &str, text: &str) -> std::process::Output {
    use std::os::unix::fs::PermissionsExt;
    let path = env.root().join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::process::Command::new(&path)
        .arg("an arg")
        .env_clear()
        .envs(shebang_env(env))
        .output()
        .unwrap()
}

#[test]
fn shebang_exec_form_works_as_is() {
    let env = env_with_key();
    let out = run_script(
        &env,
        "s1",
        "#!/usr/bin/env -S secret exec --env K=@k -- sh\nprintf '%s|%s' \"$K\" \"$1\"\nexit 3\n",
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, [VALUE, b"|an arg"].concat());
}

#[test]
fn shebang_run_form_reads_the_header() {
    let env = env_with_key();
    let text = "#!/usr/bin/env -S secret run sh\n# A script that needs a key.\n# secret: K=@k\n# secret-file: F=@k\n\nprintf '%s|%s|%s' \"$K\" \"$(cat \"$F\")\" \"$1\"\n# secret: NOT=@read_after_code\n";
    let out = run_script(&env, "s2", text);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, [VALUE, b"|", VALUE, b"|an arg"].concat());
    let missing = run_script(
        &env,
        "s3",
        "#!/usr/bin/env -S secret run sh\n# secret: K=@missing\ntouch ran\n",
    );
    assert_eq!(missing.status.code(), Some(125));
    assert!(!env.root().join("ran").exists());
}

/// Whether this run may read another process's memory (root, which CI
/// has); says so when it may not.
pub(crate) fn can_scan_memory() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the memory scan needs root, which CI has"
    );
    eprintln!("skipping the memory scan: it needs root to read a non-dumpable process");
    false
}

/// Reads every readable mapping of `pid` and fails if `VALUE` is in one
/// (`whose` names the process in the message).
#[track_caller]
pub(crate) fn assert_value_not_in_memory(pid: u32, whose: &str) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut scanned = 0usize;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).unwrap(),
            u64::from_str_radix(hi, 16).unwrap(),
        );
        let mut buf = vec![0u8; usize::try_from(hi - lo).unwrap()];
        use std::io::{Read, Seek, SeekFrom};
        if mem.seek(SeekFrom::Start(lo)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        scanned += buf.len();
        assert!(
            !crate::util::contains(&buf, VALUE),
            "the value is still in {whose}'s memory: {line}"
        );
    }
    assert!(scanned > 100_000, "scanned only {scanned} bytes");
}

#[test]
fn no_copy_of_the_value_is_left_in_secrets_memory() {
    if !can_scan_memory() {
        return;
    }
    let env = env_with_key();
    let ready = env.root().join("ready");
    let mut secret = start(
        &env,
        &["--file", "F=@k", "-e", "T=x{{@k}}y"],
        &["sleep", ready.to_str().unwrap()],
    );
    let probe_pid = read_pid(&ready);
    let _cleanup = KillOnDrop(probe_pid);
    assert_value_not_in_memory(secret.id(), "secret");
    // And the child does have it, so the scan is not vacuous.
    let environ = std::fs::read(format!("/proc/{probe_pid}/environ")).unwrap();
    assert!(crate::util::contains(&environ, VALUE));
    kill(probe_pid, Signal::SIGKILL).unwrap();
    secret.wait().unwrap();
}

pub(crate) fn state(pid: Pid) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.trim_start().chars().next())
        })
        .unwrap_or('?')
}

/// An interactive bash on a pseudo-terminal (util-linux `script`), typed at
/// like a person: Ctrl-C reaches the child once; Ctrl-Z stops it and the
/// job; `fg` resumes both.
#[test]
fn terminal_ctrl_c_ctrl_z_and_fg() {
    use std::io::Write;
    let env = env_with_key();
    let log = env.root().join("log");
    let ready = env.root().join("ready");
    let mut shell = std::process::Command::new("script")
        .args(["-qec", "bash --norc --noprofile -i", "/dev/null"])
        .env_clear()
        .envs(shebang_env(&env))
        .env("TERM", "dumb")
        .env("PS1", "$ ")
        .current_dir(env.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut keys = shell.stdin.take().unwrap();
    let line = format!(
        "secret exec -e K=@k -- {} signals {} {}\n",
        probe().display(),
        log.display(),
        ready.display()
    );
    keys.write_all(line.as_bytes()).unwrap();
    let probe_pid = read_pid(&ready);
    let _cleanup = KillOnDrop(probe_pid);
    keys.write_all(b"\x03").unwrap();
    wait_lines(&log, 1);
    // A marker through secret: it is forwarded after any INT secret itself
    // got, so a duplicate would be recorded before it.
    kill(parent_of(probe_pid), Signal::SIGUSR1).unwrap();
    assert_eq!(
        wait_lines(&log, 2),
        ["INT", "USR1"],
        "Ctrl-C must reach the child exactly once"
    );
    assert!(alive(probe_pid));

    keys.write_all(b"\x1a").unwrap();
    wait_for("the child to stop", || state(probe_pid) == 'T');
    keys.write_all(b"fg\n").unwrap();
    wait_for("the child to continue", || state(probe_pid) != 'T');
    wait_for("CONT", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("CONT"))
    });
    keys.write_all(b"\x03").unwrap();
    wait_for("the second INT", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.matches("INT").count() == 2)
    });

    kill(probe_pid, Signal::SIGKILL).unwrap();
    keys.write_all(b"exit\n").unwrap();
    drop(keys);
    let status = shell.wait().unwrap();
    assert!(status.success() || status.code().is_some());
}

/// Under `nohup`, the hang-up that ends a terminal session leaves `secret`
/// and its child running, as it leaves `nohup sleep`.
#[test]
fn nohup_survives_the_hangup() {
    let env = env_with_key();
    let log = env.root().join("log");
    let ready = env.root().join("ready");
    let probe = probe();
    let cmd = env
        .secret([
            "exec",
            "-e",
            "K=@k",
            "--",
            probe.to_str().unwrap(),
            "signals",
            log.to_str().unwrap(),
            ready.to_str().unwrap(),
        ])
        .into_command();
    let mut nohup = std::process::Command::new("nohup");
    nohup
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(env.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut secret = nohup.spawn().unwrap();
    let probe_pid = read_pid(&ready);
    let _cleanup = KillOnDrop(probe_pid);
    let secret_pid = Pid::from_raw(secret.id() as i32);
    kill(secret_pid, Signal::SIGHUP).unwrap();
    // USR1 is caught and forwarded: once it is in the log, HUP (sent
    // first) would have been too.
    kill(secret_pid, Signal::SIGUSR1).unwrap();
    wait_for("USR1", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("USR1"))
    });
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "USR1\n");
    assert!(alive(secret_pid) && alive(probe_pid));
    kill(probe_pid, Signal::SIGKILL).unwrap();
    secret.wait().unwrap();
}

/// With `#!/usr/bin/env -S secret run bash`, everything after the script
/// path is the script's, byte for byte: `secret run`'s own options go
/// before the interpreter only.
#[test]
fn run_passes_every_script_argument_through() {
    let env = env_with_key();
    let path = env.root().join("args.sh");
    std::fs::write(
        &path,
        "#!/usr/bin/env -S secret run bash\n# secret: K=@k\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done\n[ \"$K\" = sk-process-5a4b3c2d1e ] && echo ok\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let args = [
        "--help",
        "-i",
        "--unset",
        "X",
        "--scope",
        "s",
        "--consumer",
        "c",
        "--exec",
        "--mask",
        "--file",
        "F=@k",
        "--passphrase-fd",
        "0",
        "--",
        "-",
        "a b",
        "",
    ];
    let out = std::process::Command::new(&path)
        .args(args)
        .env_clear()
        .envs(shebang_env(&env))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let expected: String = args.iter().map(|a| format!("[{a}]")).collect();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{expected}ok\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

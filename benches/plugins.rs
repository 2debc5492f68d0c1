//! `cargo bench --bench plugins`: the supervisor with 200 plugins, each with
//! one secret. Measures the time from `secret plugins run` to every plugin
//! running (the vault unlocked by the cache, so no KDF), and the
//! supervisor's CPU time while idle (60 s; BENCH_IDLE_SECS to change).
//! Prints the figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PLUGINS: usize = 200;

fn secret(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secret"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SECRET_HOME", home)
        .env("SECRET_PASSPHRASE", "bench passphrase")
        .stdin(Stdio::null());
    cmd
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let home = dir.path().join("home");
    assert!(
        secret(&home)
            .arg("init")
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let mut add = secret(&home)
        .args(["add", "@token", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"sk-bench-plugin-token").unwrap();
    assert!(add.wait().unwrap().success());
    assert!(
        secret(&home)
            .args(["unlock", "--for", "10m"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );

    let (mut plugins, mut grants) = (String::new(), String::new());
    for i in 0..PLUGINS {
        let _ = write!(
            plugins,
            "[[plugins]]\nid = \"p{i}\"\ncommand = \"/bin/sleep\"\nargs = [\"3600\"]\noutput = \"discard\"\nsecret_env_refs = {{ TOKEN = \"@token\" }}\n\n"
        );
        let _ = write!(
            grants,
            "[[grants]]\nsecret_ref = \"token\"\nconsumer = \"p{i}\"\n\n"
        );
    }
    let file = dir.path().join("plugins.toml");
    std::fs::write(&file, plugins).unwrap();
    std::fs::write(home.join("grants.toml"), grants).unwrap();

    let start = Instant::now();
    let mut supervisor = secret(&home)
        .env_remove("SECRET_PASSPHRASE")
        .args(["plugins", "run"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let all_running = loop {
        let out = secret(&home)
            .args(["plugins", "status", "--json"])
            .arg(&file)
            .output()
            .unwrap();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            let running = v["plugins"].as_array().map_or(0, |ps| {
                ps.iter()
                    .filter(|p| p["state"] == "running" || p["state"] == "ready")
                    .count()
            });
            if running == PLUGINS {
                break start.elapsed();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the plugins did not all start"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let idle: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let before = cpu_ticks(supervisor.id());
    std::thread::sleep(Duration::from_secs(idle));
    let after = cpu_ticks(supervisor.id());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(supervisor.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = supervisor.wait();
    let _ = secret(&home).arg("lock").stdout(Stdio::null()).status();

    println!(
        "secret plugins run with {PLUGINS} plugins, one secret each (release build, vault unlocked by the cache):"
    );
    println!(
        "  all {PLUGINS} running after          {:.0} ms   (status polled every 10 ms)",
        all_running.as_secs_f64() * 1e3
    );
    println!(
        "  supervisor CPU while idle       {} ticks in {idle} s   ({:.3}% of one core)",
        after - before,
        (after - before) as f64 / (idle as f64 * 100.0) * 100.0
    );
}

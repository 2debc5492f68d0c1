//! `cargo bench --bench plugins`: the supervisor with 200 plugins, each with
//! one secret. Measures the time from `secret plugins run` to every plugin
//! running (the vault unlocked by the cache, so no KDF), and the
//! supervisor's CPU time while idle (60 s; BENCH_IDLE_SECS to change).
//! First, `secret plugins check` on the files that used to make it
//! super-linear, beside a valid file of the same size checked in the same
//! run. Prints the figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/hostile.rs"]
mod hostile;

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

/// The median wall time of five `secret plugins check FILE` runs.
fn check_time(home: &Path, file: &Path) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            secret(home)
                .args(["plugins", "check"])
                .arg(file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

/// `secret plugins check` on each hostile file beside a valid file of the
/// same size (plugins with an id and a command): when checking is linear
/// the two stay close; before, the hostile ones took 23 to 78 s.
fn check_costs(home: &Path, dir: &Path) {
    let cases = [
        ("100,000 unknown keys", hostile::unknown_keys(100_000)),
        ("a cycle through 3,000 plugins", hostile::cycle(3000)),
        ("a chain of 3,000 plugins", hostile::chain(3000)),
        (
            "20,000 unknown dependencies",
            hostile::unknown_dependencies(20_000),
        ),
    ];
    println!("secret plugins check, median of 5 runs, beside a valid file of the same size:");
    for (name, text) in cases {
        let hostile = dir.join("hostile.toml");
        std::fs::write(&hostile, &text).unwrap();
        let mut valid = String::new();
        let mut i = 0;
        while valid.len() < text.len() {
            let _ = write!(valid, "[[plugins]]\nid = \"v{i}\"\ncommand = \"true\"\n");
            i += 1;
        }
        let same_size = dir.join("valid.toml");
        std::fs::write(&same_size, valid).unwrap();
        let (h, v) = (check_time(home, &hostile), check_time(home, &same_size));
        println!(
            "  {name:<30} {:>5} KB   {:>7.1} ms   valid file: {:>7.1} ms",
            text.len() >> 10,
            h.as_secs_f64() * 1e3,
            v.as_secs_f64() * 1e3
        );
    }
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

    check_costs(&home, dir.path());

    let (mut plugins, mut grants) = (String::new(), String::new());
    for i in 0..PLUGINS {
        let _ = write!(
            plugins,
            "[[plugins]]\nid = \"p{i}\"\ncommand = \"/bin/sleep\"\nargs = [\"3600\"]\noutput = \"discard\"\nsecret_env_refs = {{ TOKEN = \"@token\" }}\n\n"
        );
        let _ = write!(
            grants,
            "[[grants]]\nsecret_ref = \"token\"\nconsumer = \"plugin:p{i}\"\n\n"
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

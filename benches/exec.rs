//! `cargo bench --bench exec`: what `secret exec` costs a launch, against
//! baselines measured in the same run, on the same machine, interleaved so
//! that noise hits every contender alike. Prints medians and ratios; asserts
//! nothing (these machines are shared and noisy).
//!
//! - `/bin/true` alone, and `env K=v /bin/true` (the cost of any wrapper);
//! - `secret exec --env K=@k -- /bin/true`, vault unlocked by the cache;
//! - the Argon2id unlock on its own line (`secret list` with a passphrase);
//! - peak RSS of `secret exec` with the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 300;

fn secret(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secret"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SECRET_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

fn time(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let status = cmd.status().unwrap();
    let elapsed = start.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn max_rss_of_children_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0)
}

/// Peak RSS of `secret exec` alone: measured in a fresh copy of this
/// program, whose only children are those launches (getrusage reports the
/// largest child ever waited for, and the KDF runs above are large).
fn rss_phase(home: &str) {
    for _ in 0..20 {
        time(secret(Path::new(home)).args(["exec", "--env", "K=@k", "--", "/bin/true"]));
    }
    println!("{}", max_rss_of_children_kib());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--rss-of") {
        return rss_phase(&args[pos + 1]);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let home = dir.path().join("home");
    let pass = "bench passphrase";
    assert!(
        secret(&home)
            .arg("init")
            .env("SECRET_PASSPHRASE", pass)
            .status()
            .unwrap()
            .success()
    );
    let mut add = secret(&home);
    add.args(["add", "@k", "--stdin"])
        .env("SECRET_PASSPHRASE", pass)
        .stdin(Stdio::piped());
    let mut child = add.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"sk-bench-0123456789").unwrap();
    assert!(child.wait().unwrap().success());

    // The Argon2id unlock, on its own (default parameters, no cache).
    let kdf: Vec<_> = (0..7)
        .map(|_| time(secret(&home).arg("list").env("SECRET_PASSPHRASE", pass)))
        .collect();
    let kdf = median(kdf);

    assert!(
        secret(&home)
            .args(["unlock", "--for", "10m"])
            .env("SECRET_PASSPHRASE", pass)
            .status()
            .unwrap()
            .success()
    );
    let (mut bare, mut env_wrapper, mut wrapped) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        bare.push(time(Command::new("/bin/true").stdout(Stdio::null())));
        env_wrapper.push(time(
            Command::new("env")
                .args(["K=v", "/bin/true"])
                .stdout(Stdio::null()),
        ));
        wrapped.push(time(secret(&home).args([
            "exec",
            "--env",
            "K=@k",
            "--",
            "/bin/true",
        ])));
    }
    let rss = Command::new(std::env::current_exe().unwrap())
        .args(["--rss-of", home.to_str().unwrap()])
        .output()
        .unwrap();
    let rss: f64 = String::from_utf8_lossy(&rss.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    let _ = secret(&home).arg("lock").status();
    let (bare, env_wrapper, wrapped) = (median(bare), median(env_wrapper), median(wrapped));

    println!("secret exec launch cost, median of {RUNS} interleaved runs (release build):");
    println!("  /bin/true                                   {}", ms(bare));
    println!(
        "  env K=v /bin/true                           {}",
        ms(env_wrapper)
    );
    println!(
        "  secret exec --env K=@k -- /bin/true         {}   (vault unlocked by the cache)",
        ms(wrapped)
    );
    println!(
        "  overhead over /bin/true                     {}   ({:.2}x)",
        ms(wrapped.saturating_sub(bare)),
        wrapped.as_secs_f64() / bare.as_secs_f64()
    );
    println!(
        "  overhead over env K=v /bin/true             {}   ({:.2}x)",
        ms(wrapped.saturating_sub(env_wrapper)),
        wrapped.as_secs_f64() / env_wrapper.as_secs_f64()
    );
    println!(
        "  peak RSS of secret exec                     {:.1} MiB",
        rss / 1024.0
    );
    println!(
        "Argon2id unlock (secret list, m=64 MiB t=3 p=4, no cache): {}",
        ms(kdf)
    );
}

//! `cargo bench --bench exec`: what `secret exec` costs a launch, against
//! baselines measured in the same run, on the same machine, interleaved so
//! that noise hits every contender alike. Prints, per contender, the median
//! wall time of a launch, its peak RSS and its minor page faults (both from
//! the `rusage` that `wait4` returns for that one child), then the overheads.
//! Asserts nothing about speed (these machines are shared and noisy).
//!
//! The kernel counts the launching process's memory before exec in a
//! child's peak RSS (`/bin/true`'s figure is that floor here): compare the
//! RSS of the wrappers with each other, above that floor.
//!
//! - `/bin/true` alone, `env K=v /bin/true` (the cost of any wrapper that
//!   execs) and `tini -s -- /bin/true` (a wrapper that stays as the parent,
//!   as `secret exec` does; skipped with a note when `tini` is missing);
//! - `secret exec --env K=@k -- /bin/true` and the same with `--exec`, the
//!   vault unlocked by the cache, run from a copy of the binary (as
//!   installed, see `main`);
//! - the Argon2id unlock on its own line (`secret list` with a passphrase).
//!
//! `SECRET_BENCH_BEFORE=/path/to/an/older/secret` adds that binary's two
//! launches (same vault, same cache), for before/after figures from one run.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 300;

/// What one launch cost.
#[derive(Clone, Copy)]
struct Cost {
    wall: Duration,
    /// Peak resident set, KiB.
    max_rss: i64,
    /// Minor page faults.
    minflt: i64,
}

fn secret(home: &Path) -> Command {
    secret_at(Path::new(env!("CARGO_BIN_EXE_secret")), home)
}

fn secret_at(binary: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SECRET_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// Runs `cmd` to its end and reads its own rusage from `wait4` (not
/// `RUSAGE_CHILDREN`, which keeps the largest child ever waited for).
#[allow(clippy::zombie_processes)] // reaped by wait4, not Child::wait
fn launch(cmd: &mut Command) -> Cost {
    let start = Instant::now();
    let child = cmd.spawn().unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped (`Child` only reaps in
    // `wait`, which is never called); both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    let wall = start.elapsed();
    assert_eq!(reaped, pid, "wait4 failed for {cmd:?}");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed: status {status:#x}"
    );
    Cost {
        wall,
        max_rss: usage.ru_maxrss,
        minflt: usage.ru_minflt,
    }
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The medians of one contender's launches.
struct Summary {
    name: String,
    wall: Duration,
    max_rss: i64,
    minflt: i64,
}

fn summarise(name: &str, costs: &[Cost]) -> Summary {
    Summary {
        name: name.to_owned(),
        wall: median(costs.iter().map(|c| c.wall).collect()),
        max_rss: median(costs.iter().map(|c| c.max_rss).collect()),
        minflt: median(costs.iter().map(|c| c.minflt).collect()),
    }
}

fn tini() -> Option<String> {
    ["/usr/bin/tini", "/bin/tini", "/usr/local/bin/tini"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(str::to_owned)
}

fn main() {
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
        .map(|_| launch(secret(&home).arg("list").env("SECRET_PASSPHRASE", pass)).wall)
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

    // Each build is measured as an installed copy: the file the linker
    // just wrote sits in the page cache in small pieces, which cost this
    // machine 4 more page faults and 0.05-0.09 ms per launch than a copy
    // of the same binary (and would favour an older build copied aside).
    let before = std::env::var_os("SECRET_BENCH_BEFORE").map(std::path::PathBuf::from);
    let installed: Vec<(&str, std::path::PathBuf)> = before
        .as_deref()
        .map(|b| ("before: ", b))
        .into_iter()
        .chain([("", Path::new(env!("CARGO_BIN_EXE_secret")))])
        .enumerate()
        .map(|(i, (label, built))| {
            let copy = dir.path().join(format!("bin-{i}")).join("secret");
            std::fs::create_dir(copy.parent().unwrap()).unwrap();
            std::fs::copy(built, &copy).unwrap();
            (label, copy)
        })
        .collect();
    let builds: Vec<(&str, &Path)> = installed
        .iter()
        .map(|(label, copy)| (*label, copy.as_path()))
        .collect();
    let names: Vec<(String, String)> = builds
        .iter()
        .map(|(label, _)| {
            (
                format!("{label}secret exec --env K=@k -- /bin/true"),
                format!("{label}secret exec --exec --env K=@k -- /bin/true"),
            )
        })
        .collect();
    let tini = tini();
    // Absolute paths, so std spawns every contender the same way
    // (posix_spawn; a PATH search with a changed PATH would fork instead).
    let plain = |program: &str, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    };
    type Make<'a> = Box<dyn Fn() -> Command + 'a>;
    let mut contenders: Vec<(&str, Make<'_>)> = vec![
        ("/bin/true", Box::new(|| plain("/bin/true", &[]))),
        (
            "env K=v /bin/true",
            Box::new(|| plain("/usr/bin/env", &["K=v", "/bin/true"])),
        ),
    ];
    if let Some(t) = &tini {
        contenders.push((
            "tini -s -- /bin/true",
            Box::new(move || plain(t, &["-s", "--", "/bin/true"])),
        ));
    }
    for ((_, binary), (exec, replace)) in builds.iter().zip(&names) {
        let home = &home;
        contenders.push((
            exec,
            Box::new(move || {
                let mut c = secret_at(binary, home);
                c.args(["exec", "--env", "K=@k", "--", "/bin/true"]);
                c
            }),
        ));
        contenders.push((
            replace,
            Box::new(move || {
                let mut c = secret_at(binary, home);
                c.args(["exec", "--exec", "--env", "K=@k", "--", "/bin/true"]);
                c
            }),
        ));
    }

    // Warm up the page cache, then interleave.
    for (_, make) in &contenders {
        launch(&mut make());
    }
    let mut costs: Vec<Vec<Cost>> = vec![Vec::with_capacity(RUNS); contenders.len()];
    for _ in 0..RUNS {
        for (i, (_, make)) in contenders.iter().enumerate() {
            costs[i].push(launch(&mut make()));
        }
    }
    let _ = secret(&home).arg("lock").status();
    let rows: Vec<Summary> = contenders
        .iter()
        .zip(&costs)
        .map(|((name, _), c)| summarise(name, c))
        .collect();

    println!("launch cost, medians of {RUNS} interleaved runs (release build):");
    println!(
        "  {:<44} {:>10} {:>10} {:>12}",
        "", "wall", "peak RSS", "page faults"
    );
    for r in &rows {
        println!(
            "  {:<44} {:>10} {:>6.1} MiB {:>12}",
            r.name,
            ms(r.wall),
            r.max_rss as f64 / 1024.0,
            r.minflt
        );
    }
    if tini.is_none() {
        println!("  (tini is not installed: apt-get install tini to compare with it)");
    }
    let by = |name: &str| rows.iter().find(|r| r.name == name).unwrap();
    let env = by("env K=v /bin/true");
    for (exec, replace) in &names {
        for (name, mode, target) in [(exec, "exec", "0.3"), (replace, "--exec", "0.15")] {
            let r = by(name);
            let label = if name.starts_with("before: ") {
                "before: "
            } else {
                ""
            };
            println!(
                "  {:<44} {:>10}   ({:+} page faults; target <= {target} ms)",
                format!("{label}overhead over env, {mode}"),
                ms(r.wall.saturating_sub(env.wall)),
                r.minflt - env.minflt
            );
        }
    }
    println!("  (peak RSS target: <= 3 MiB)");
    println!(
        "Argon2id unlock (secret list, m=64 MiB t=3 p=4, no cache): {}",
        ms(kdf)
    );
}

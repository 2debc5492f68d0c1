//! `cargo bench --bench broker`: what the broker costs, against a local
//! HTTPS upstream (hyper + rustls in this process, test CA made by
//! tests/standins/echo_upstream.py), all figures from one run:
//!
//! - latency of a small keep-alive GET, one caller: direct, through
//!   `secret broker`, through `mitmproxy` (reverse mode, a one-line addon
//!   that sets the Authorization header) — median and p99;
//! - requests per second with 64 concurrent keep-alive callers;
//! - time to the first byte of a streamed (SSE) response;
//! - the broker's RSS idle and under load.
//!
//! Loopback only, bounded loops; mitmproxy (`pip install mitmproxy`) is
//! skipped with a note when `mitmdump` is not on PATH. Prints a table and
//! the ratios; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const VALUE: &str = "sk-bench-value-0123456789abcdef";
const CALLERS: usize = 64;
const LOAD_FOR: Duration = Duration::from_secs(4);
const LATENCY_RUNS: usize = 2000;
const TTFB_RUNS: usize = 200;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a caller sends its requests.
#[derive(Clone)]
struct Target {
    port: u16,
    /// TLS to the upstream itself, or plain HTTP to a local proxy.
    tls: Option<Arc<rustls::ClientConfig>>,
    prefix: String,
    headers: Vec<(String, String)>,
}

type Caller = SendRequest<Empty<Bytes>>;

async fn connect(t: &Target) -> Caller {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", t.port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    if let Some(config) = &t.tls {
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(c);
        s
    } else {
        let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(c);
        s
    }
}

fn request(t: &Target, path: &str) -> http::Request<Empty<Bytes>> {
    let mut b = http::Request::get(format!("{}{path}", t.prefix))
        .header(http::header::HOST, format!("127.0.0.1:{}", t.port));
    for (k, v) in &t.headers {
        b = b.header(k, v);
    }
    b.body(Empty::new()).unwrap()
}

/// One request; returns (time to the first body byte, time to the end).
async fn once(caller: &mut Caller, t: &Target, path: &str) -> (Duration, Duration) {
    caller.ready().await.unwrap();
    let start = Instant::now();
    let response = caller.send_request(request(t, path)).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut body = response.into_body();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if first.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            first = Some(start.elapsed());
        }
    }
    (first.unwrap_or_else(|| start.elapsed()), start.elapsed())
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

struct Figures {
    median: Duration,
    p99: Duration,
    rps: f64,
    ttfb: Duration,
    rss_load_kib: Option<u64>,
}

fn measure(rt: &tokio::runtime::Runtime, t: &Target, pid: Option<u32>) -> Figures {
    rt.block_on(async {
        let mut caller = connect(t).await;
        for _ in 0..200 {
            once(&mut caller, t, "/small").await;
        }
        let mut lat = Vec::with_capacity(LATENCY_RUNS);
        for _ in 0..LATENCY_RUNS {
            lat.push(once(&mut caller, t, "/small").await.1);
        }
        let mut ttfb = Vec::with_capacity(TTFB_RUNS);
        for _ in 0..TTFB_RUNS {
            ttfb.push(once(&mut caller, t, "/stream").await.0);
        }
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = pid.map(|pid| {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        });
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CALLERS {
            let (t, done) = (t.clone(), Arc::clone(&done));
            tasks.push(tokio::spawn(async move {
                let mut caller = connect(&t).await;
                while start.elapsed() < LOAD_FOR {
                    once(&mut caller, &t, "/small").await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let rps = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        if let Some(s) = sampler {
            s.join().unwrap();
        }
        Figures {
            median: percentile(&mut lat, 0.5),
            p99: percentile(&mut lat, 0.99),
            rps,
            ttfb: percentile(&mut ttfb, 0.5),
            rss_load_kib: pid.map(|_| peak.load(Ordering::Relaxed)),
        }
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A streamed body fed by a channel.
struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Fed {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

type Reply = http_body_util::Either<http_body_util::Full<Bytes>, Fed>;

/// The HTTPS upstream: /small answers 2 bytes; /stream sends one event at
/// once and another 20 ms later. One thread, like a modest server.
fn upstream(dir: &Path) -> u16 {
    let certs: Vec<_> = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|req: http::Request<_>| async move {
                        let body: Reply = if req.uri().path().ends_with("/stream") {
                            let (tx, rx) = tokio::sync::mpsc::channel(2);
                            tokio::spawn(async move {
                                let _ = tx.send(Bytes::from_static(b"data: first\n\n")).await;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                let _ = tx.send(Bytes::from_static(b"data: second\n\n")).await;
                            });
                            http_body_util::Either::Right(Fed(rx))
                        } else {
                            http_body_util::Either::Left(http_body_util::Full::new(
                                Bytes::from_static(b"ok"),
                            ))
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    port
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn secret(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_secret"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SECRET_HOME", home)
        .env("SECRET_PASSPHRASE", "bench passphrase");
    c
}

fn run_ok(mut c: Command, stdin: Option<&str>) -> String {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The broker for `upstream_port`: (process, its TCP port, caller token).
fn broker(home: &Path, ca: &Path, upstream_port: u16) -> (Killed, u16, String) {
    std::fs::create_dir_all(home).unwrap();
    std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut init = secret(home);
    init.arg("init");
    run_ok(init, None);
    let mut add = secret(home);
    add.args(["add", "@bench_key", "--stdin"]);
    run_ok(add, Some(VALUE));
    let grants = home.join("grants.toml");
    let mut text = std::fs::read_to_string(&grants).unwrap();
    text.push_str("\n[[grants]]\nsecret_ref = \"bench_key\"\nconsumer = \"broker\"\ndelivery = [\"http\"]\nallowed_hosts = [\"127.0.0.1\"]\n");
    std::fs::write(&grants, text).unwrap();
    let port = free_port();
    let file = home.join("broker.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[[routes]]\nname = \"bench\"\nupstream = \"https://127.0.0.1:{upstream_port}\"\nsecret = \"@bench_key\"\nallowed_paths = [\"/small\", \"/stream\"]\nca_file = \"{}\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let mut token = secret(home);
    token.args(["broker", "token"]).arg(&file);
    let token = run_ok(token, None).trim().to_owned();
    let mut run = secret(home);
    run.args(["broker", "run"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = Killed(run.spawn().unwrap());
    wait_port(port);
    (child, port, token)
}

/// mitmdump in reverse mode with a one-line header-injecting addon.
fn mitmproxy(dir: &Path, ca: &Path, upstream_port: u16) -> Option<(Killed, u16)> {
    let found = Command::new("mitmdump")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("(mitmproxy skipped: `pip install mitmproxy` puts mitmdump on PATH)");
        return None;
    }
    let addon = dir.join("inject.py");
    std::fs::write(
        &addon,
        format!(
            "def request(flow): flow.request.headers[\"Authorization\"] = \"Bearer {VALUE}\"\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("mitmdump")
        .args(["-q", "--mode"])
        .arg(format!("reverse:https://127.0.0.1:{upstream_port}"))
        .args([
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            &port.to_string(),
        ])
        .arg("--set")
        .arg(format!("ssl_verify_upstream_trusted_ca={}", ca.display()))
        .arg("--set")
        .arg(format!("confdir={}", dir.join("mitm").display()))
        // Stream bodies as they come (mitmproxy buffers them by default),
        // so time to first byte compares like with like.
        .args(["--set", "stream_large_bodies=1"])
        .arg("-s")
        .arg(&addon)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    wait_port(port);
    Some((child, port))
}

/// Makes the test CA and leaf with the tests' stand-in (which prints its
/// port once they exist), then stops it.
fn certificates(dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins/echo_upstream.py");
    let mut child = Killed(
        Command::new("python3")
            .arg(script)
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    dir.join("ca.pem")
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    let upstream_port = upstream(dir.path());
    wait_port(upstream_port);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let client_tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let (broker_process, broker_port, token) = broker(&dir.path().join("home"), &ca, upstream_port);
    let broker_pid = broker_process.0.id();
    let mitm = mitmproxy(dir.path(), &ca, upstream_port);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let direct = Target {
        port: upstream_port,
        tls: Some(client_tls),
        prefix: String::new(),
        headers: vec![("authorization".into(), format!("Bearer {VALUE}"))],
    };
    let brokered = Target {
        port: broker_port,
        tls: None,
        prefix: "/proxy/bench".into(),
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
    };
    let rss_idle = rss_kib(broker_pid);
    let d = measure(&rt, &direct, None);
    let b = measure(&rt, &brokered, Some(broker_pid));
    let m = mitm.as_ref().map(|(child, port)| {
        let target = Target {
            port: *port,
            tls: None,
            prefix: String::new(),
            headers: Vec::new(),
        };
        measure(&rt, &target, Some(child.0.id()))
    });

    println!("\nsecret broker vs direct vs mitmproxy (loopback HTTPS upstream, one run)");
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "", "direct", "broker", "mitmproxy"
    );
    let row = |name: &str, f: fn(&Figures) -> String| {
        let third = m.as_ref().map_or_else(|| "-".to_owned(), f);
        println!("{name:<34} {:>12} {:>12} {third:>12}", f(&d), f(&b));
    };
    row("keep-alive GET, median", |x| ms(x.median));
    row("keep-alive GET, p99", |x| ms(x.p99));
    row("requests/s, 64 callers", |x| format!("{:.0}", x.rps));
    row("stream: time to first byte", |x| ms(x.ttfb));
    row("RSS under load", |x| {
        x.rss_load_kib.map_or_else(
            || "-".to_owned(),
            |k| format!("{:.1} MiB", k as f64 / 1024.0),
        )
    });
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "RSS idle",
        "-",
        format!("{:.1} MiB", rss_idle as f64 / 1024.0),
        "-"
    );
    let added = |x: &Figures| x.median.saturating_sub(d.median);
    println!(
        "\nadded at the median: broker {} (target <= 0.5 ms){}",
        ms(added(&b)),
        m.as_ref()
            .map_or(String::new(), |m| format!(", mitmproxy {}", ms(added(m))))
    );
    println!(
        "broker throughput: {:.0}/s (target >= 10000/s), {:.2}x direct",
        b.rps,
        b.rps / d.rps
    );
    if let Some(m) = &m {
        println!(
            "ratios broker : mitmproxy — throughput {:.1}x, added latency {:.2}x less, p99 {:.2}x less, TTFB {:.2}x less",
            b.rps / m.rps,
            added(m).as_secs_f64() / added(&b).as_secs_f64().max(1e-9),
            m.p99.as_secs_f64() / b.p99.as_secs_f64(),
            m.ttfb.as_secs_f64() / b.ttfb.as_secs_f64(),
        );
    }
    drop(broker_process);
    drop(mitm);
}

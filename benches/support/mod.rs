//! What the HTTP benchmarks (`broker`, `proxy`) share: a local HTTPS
//! upstream (hyper + rustls in this process, with the test CA made by
//! tests/standins/echo_upstream.py), running `secret` in a private home,
//! mitmproxy's presence, and the statistics and process figures.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The value the upstream wants in `Authorization: Bearer …`.
pub(crate) const VALUE: &str = "sk-bench-value-0123456789abcdef";

/// A child process killed and reaped when dropped.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// The HTTPS upstream (HTTP/1.1): /small answers "ok" when the request
/// carries `Authorization: Bearer VALUE` and 403 otherwise (so a figure
/// through a proxy counts only requests that got the value); /stream
/// sends one event at once and another 20 ms later. One thread, like a
/// modest server.
pub(crate) fn upstream(dir: &Path) -> u16 {
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
    let wanted = format!("Bearer {VALUE}");
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
                let wanted = wanted.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: http::Request<_>| {
                        let ok = req
                            .headers()
                            .get(http::header::AUTHORIZATION)
                            .is_some_and(|v| v.as_bytes() == wanted.as_bytes());
                        async move {
                            if !ok {
                                let mut r = http::Response::new(Reply::Left(
                                    http_body_util::Full::new(Bytes::from_static(b"no")),
                                ));
                                *r.status_mut() = http::StatusCode::FORBIDDEN;
                                return Ok::<_, std::convert::Infallible>(r);
                            }
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
                            Ok(http::Response::new(body))
                        }
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

/// Waits (at most 30 s) until something listens on `port`.
pub(crate) fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `secret` with only PATH and the bench's home and passphrase.
pub(crate) fn secret(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_secret"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SECRET_HOME", home)
        .env("SECRET_PASSPHRASE", "bench passphrase");
    c
}

/// Runs `c` (with `stdin`), fails unless it succeeds; its stdout.
pub(crate) fn run_ok(mut c: Command, stdin: Option<&str>) -> String {
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

/// A private home with a vault holding @bench_key = VALUE, granted to
/// `consumer` for delivery http to `host`.
pub(crate) fn home_with_key(home: &Path, consumer: &str, host: &str) {
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
    text.push_str(&format!(
        "\n[[grants]]\nsecret_ref = \"bench_key\"\nconsumer = \"{consumer}\"\ndelivery = [\"http\"]\nallowed_hosts = [\"{host}\"]\n"
    ));
    std::fs::write(&grants, text).unwrap();
}

/// Whether `mitmdump` runs; a note when it does not.
pub(crate) fn mitmdump_present() -> bool {
    let found = Command::new("mitmdump")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("(mitmproxy skipped: `pip install mitmproxy` puts mitmdump on PATH)");
    }
    found
}

/// Makes the test CA and leaf with the tests' stand-in (which prints its
/// port once they exist), then stops it.
pub(crate) fn certificates(dir: &Path) -> PathBuf {
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

/// A rustls client trusting the certificates in the PEM file `roots`.
pub(crate) fn client_tls(roots: &Path) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(roots).unwrap() {
        let _ = store.add(cert.unwrap());
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth(),
    )
}

/// The `p` quantile (0–1) of `v`, which it sorts.
pub(crate) fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// A `/proc/PID/status` figure in KiB (`VmRSS:`, `VmHWM:`), 0 if unknown.
pub(crate) fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The largest resident set of a process, sampled every 50 ms on a thread
/// from `start` until `peak`.
pub(crate) struct RssPeak {
    stop: Arc<std::sync::atomic::AtomicBool>,
    peak: Arc<std::sync::atomic::AtomicU64>,
    sampler: std::thread::JoinHandle<()>,
}

impl RssPeak {
    pub(crate) fn start(pid: u32) -> Self {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let sampler = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self {
            stop,
            peak,
            sampler,
        }
    }

    /// Stops sampling: the peak in KiB.
    pub(crate) fn peak(self) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// Requests per second that `clients` keep-alive clients reach in
/// `duration`: each is made by `connect` and then sends `request` after
/// `request` until the time is up. The clients are shared out between two
/// threads with a current-thread runtime each (a load from both cores;
/// tokio's multi-thread scheduler would also be compiled into the
/// `secret` binary that `cargo bench` builds, which must not change).
pub(crate) fn throughput<T>(
    clients: usize,
    duration: Duration,
    connect: impl AsyncFn() -> T + Sync,
    request: impl AsyncFn(&mut T) + Sync,
) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const THREADS: usize = 2;
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let share = clients / THREADS + usize::from(thread < clients % THREADS);
            let (connect, request, done) = (&connect, &request, &done);
            scope.spawn(move || {
                let client = async || {
                    let mut client = connect().await;
                    while start.elapsed() < duration {
                        request(&mut client).await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                };
                let mut running: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> =
                    (0..share).map(|_| Box::pin(client()) as _).collect();
                current_thread().block_on(std::future::poll_fn(|cx| {
                    running.retain_mut(|f| f.as_mut().poll(cx).is_pending());
                    if running.is_empty() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                }));
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// A tokio runtime on the calling thread, I/O and timers enabled.
pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

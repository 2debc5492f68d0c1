//! `cargo bench --bench proxy`: what `secret exec --proxy` costs, against
//! a local HTTPS upstream (hyper + rustls in this process, test CA made by
//! tests/standins/echo_upstream.py) that answers only requests carrying
//! the real value, all figures from one run:
//!
//! - a small GET on a warm keep-alive connection, one client: direct (the
//!   client holds the value), through `secret exec --proxy` (the client
//!   holds a placeholder; the proxy swaps it in), through `mitmproxy` as a
//!   forward proxy with a one-line addon that swaps the placeholder in the
//!   Authorization header — median and p99;
//! - the same GET on a new connection each time (CONNECT, TLS with a leaf
//!   the proxy has cached for the host, the request) — median and p99;
//! - requests per second with 16 concurrent keep-alive clients;
//! - the RSS of the process that proxies (`secret` itself, or mitmdump)
//!   while measured, and its high-water mark (for `secret`, the Argon2id
//!   unlock before the child starts sets it).
//!
//! The client is this program: through `secret exec --proxy` it runs as
//! the child (started again with `PROXY_BENCH_CHILD` set), with only what
//! the child gets — a placeholder, `HTTPS_PROXY` and `SSL_CERT_FILE` — and
//! reports its figures on stdout. Loopback only, bounded loops; mitmproxy
//! (`pip install mitmproxy`) is skipped with a note when `mitmdump` is not
//! on PATH. Prints a table and the ratios; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64ct::Encoding;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{
    Killed, RssPeak, VALUE, certificates, client_tls, current_thread, free_port, home_with_key,
    mib, mitmdump_present, ms, percentile, run_ok, secret, status_kib, throughput, upstream,
    wait_port,
};

const CLIENTS: usize = 16;
const LOAD_FOR: Duration = Duration::from_secs(4);
const LATENCY_RUNS: usize = 2000;
const CONNECT_RUNS: usize = 300;
/// What the mitmproxy client holds instead of the value (the addon swaps
/// it); `secret` makes its own.
const MITM_PLACEHOLDER: &str = "sk-bench-PLACEHOLDER-0123456789";

/// How a client reaches the upstream.
#[derive(Clone)]
struct Route {
    upstream: u16,
    /// A forward proxy: its port and `user:password`.
    proxy: Option<(u16, Option<String>)>,
    tls: Arc<rustls::ClientConfig>,
    authorization: String,
}

type Client = SendRequest<Empty<Bytes>>;

/// A new connection: TCP (through CONNECT when proxied), TLS, HTTP/1.1.
async fn open(r: &Route) -> Client {
    let port = r.proxy.as_ref().map_or(r.upstream, |(p, _)| *p);
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    if let Some((_, credentials)) = &r.proxy {
        let auth = credentials.as_ref().map_or(String::new(), |c| {
            format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64ct::Base64::encode_string(c.as_bytes())
            )
        });
        let head = format!(
            "CONNECT 127.0.0.1:{up} HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\n{auth}\r\n",
            up = r.upstream
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\n") {
            answer.push(tcp.read_u8().await.unwrap());
        }
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(&r.tls))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(c);
    s
}

/// One GET /small; its time.
async fn once(client: &mut Client, r: &Route) -> Duration {
    client.ready().await.unwrap();
    let start = Instant::now();
    let request = http::Request::get("/small")
        .header(http::header::HOST, format!("127.0.0.1:{}", r.upstream))
        .header(http::header::AUTHORIZATION, &r.authorization)
        .body(Empty::new())
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.into_body().collect().await.unwrap();
    start.elapsed()
}

/// What one route measured.
struct Figures {
    warm_p50: Duration,
    warm_p99: Duration,
    new_p50: Duration,
    new_p99: Duration,
    rps: f64,
    /// The largest RSS of the process that proxies, sampled while measured.
    rss_kib: Option<u64>,
    /// Its high-water mark over its whole life (VmHWM).
    hwm_kib: Option<u64>,
}

impl Figures {
    /// One line, for a child to report to the bench.
    fn line(&self) -> String {
        format!(
            "FIGURES {} {} {} {} {} {} {}",
            self.warm_p50.as_nanos(),
            self.warm_p99.as_nanos(),
            self.new_p50.as_nanos(),
            self.new_p99.as_nanos(),
            self.rps,
            self.rss_kib.unwrap_or(0),
            self.hwm_kib.unwrap_or(0)
        )
    }

    fn parse(text: &str) -> Self {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("FIGURES "))
            .unwrap_or_else(|| panic!("the child reported no figures:\n{text}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        let d = |i: usize| Duration::from_nanos(f[i].parse().unwrap());
        Self {
            warm_p50: d(0),
            warm_p99: d(1),
            new_p50: d(2),
            new_p99: d(3),
            rps: f[4].parse().unwrap(),
            rss_kib: f[5].parse().ok().filter(|k| *k > 0),
            hwm_kib: f[6].parse().ok().filter(|k| *k > 0),
        }
    }
}

fn measure(r: &Route, proxy_pid: Option<u32>) -> Figures {
    let sampler = proxy_pid.map(RssPeak::start);
    let (mut warm, mut new) = current_thread().block_on(async {
        let mut client = open(r).await;
        for _ in 0..200 {
            once(&mut client, r).await;
        }
        let mut warm = Vec::with_capacity(LATENCY_RUNS);
        for _ in 0..LATENCY_RUNS {
            warm.push(once(&mut client, r).await);
        }
        let mut new = Vec::with_capacity(CONNECT_RUNS);
        for _ in 0..CONNECT_RUNS {
            let start = Instant::now();
            let mut c = open(r).await;
            once(&mut c, r).await;
            new.push(start.elapsed());
        }
        (warm, new)
    });
    let rps = throughput(
        CLIENTS,
        LOAD_FOR,
        async || open(r).await,
        async |client| {
            once(client, r).await;
        },
    );
    Figures {
        warm_p50: percentile(&mut warm, 0.5),
        warm_p99: percentile(&mut warm, 0.99),
        new_p50: percentile(&mut new, 0.5),
        new_p99: percentile(&mut new, 0.99),
        rps,
        rss_kib: sampler.map(RssPeak::peak),
        hwm_kib: proxy_pid.map(|pid| status_kib(pid, "VmHWM:")),
    }
}

/// The child of `secret exec --proxy`: measures through the proxy with
/// only what it was given, and reports.
fn child() {
    let proxy = std::env::var("HTTPS_PROXY").unwrap();
    let (credentials, port) = proxy
        .strip_prefix("http://")
        .and_then(|rest| rest.rsplit_once('@'))
        .expect("HTTPS_PROXY is http://user:password@127.0.0.1:port");
    let port: u16 = port.rsplit_once(':').unwrap().1.parse().unwrap();
    let route = Route {
        upstream: std::env::var("PROXY_BENCH_UPSTREAM")
            .unwrap()
            .parse()
            .unwrap(),
        proxy: Some((port, Some(credentials.to_owned()))),
        tls: client_tls(Path::new(&std::env::var("SSL_CERT_FILE").unwrap())),
        authorization: format!("Bearer {}", std::env::var("BENCH_KEY").unwrap()),
    };
    // The proxy runs inside `secret`, this process's parent.
    let parent = std::os::unix::process::parent_id();
    println!("{}", measure(&route, Some(parent)).line());
}

/// The figures through `secret exec --proxy BENCH_KEY=@bench_key`.
fn through_secret(home: &Path, ca: &Path, upstream_port: u16) -> Figures {
    home_with_key(home, "exec", "127.0.0.1");
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!("[proxy]\nupstream_ca_file = \"{}\"\n", ca.display()),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut exec = secret(home);
    exec.args(["exec", "--no-mask", "--proxy", "BENCH_KEY=@bench_key", "--"])
        .arg(std::env::current_exe().unwrap())
        .env("PROXY_BENCH_CHILD", "1")
        .env("PROXY_BENCH_UPSTREAM", upstream_port.to_string());
    Figures::parse(&run_ok(exec, None))
}

/// mitmdump as a forward proxy that swaps the placeholder in
/// `Authorization` (its own CA trusted by the client), upstream verified
/// against the test CA.
fn through_mitmproxy(dir: &Path, ca: &Path, upstream_port: u16) -> Option<Figures> {
    if !mitmdump_present() {
        return None;
    }
    let addon = dir.join("swap.py");
    std::fs::write(
        &addon,
        format!(
            "def request(flow):\n    a = flow.request.headers.get(\"Authorization\", \"\")\n    flow.request.headers[\"Authorization\"] = a.replace(\"{MITM_PLACEHOLDER}\", \"{VALUE}\")\n"
        ),
    )
    .unwrap();
    let confdir = dir.join("mitm");
    let port = free_port();
    let child = Command::new("mitmdump")
        .args(["-q", "--listen-host", "127.0.0.1", "--listen-port"])
        .arg(port.to_string())
        .arg("--set")
        .arg(format!("ssl_verify_upstream_trusted_ca={}", ca.display()))
        .arg("--set")
        .arg(format!("confdir={}", confdir.display()))
        .arg("-s")
        .arg(&addon)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    wait_port(port);
    let route = Route {
        upstream: upstream_port,
        proxy: Some((port, None)),
        tls: client_tls(&confdir.join("mitmproxy-ca-cert.pem")),
        authorization: format!("Bearer {MITM_PLACEHOLDER}"),
    };
    Some(measure(&route, Some(child.0.id())))
}

fn main() {
    if std::env::var_os("PROXY_BENCH_CHILD").is_some() {
        return child();
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    let upstream_port = upstream(dir.path());
    wait_port(upstream_port);
    let direct = measure(
        &Route {
            upstream: upstream_port,
            proxy: None,
            tls: client_tls(&ca),
            authorization: format!("Bearer {VALUE}"),
        },
        None,
    );
    let s = through_secret(&dir.path().join("home"), &ca, upstream_port);
    let m = through_mitmproxy(dir.path(), &ca, upstream_port);

    println!(
        "\nsecret exec --proxy vs direct vs mitmproxy (loopback HTTPS upstream, one run; client, proxy and upstream share the machine's cores)"
    );
    println!(
        "{:<36} {:>12} {:>14} {:>12}",
        "", "direct", "exec --proxy", "mitmproxy"
    );
    let row = |name: &str, f: fn(&Figures) -> String| {
        let third = m.as_ref().map_or_else(|| "-".to_owned(), f);
        println!("{name:<36} {:>12} {:>14} {third:>12}", f(&direct), f(&s));
    };
    row("warm keep-alive GET, median", |x| ms(x.warm_p50));
    row("warm keep-alive GET, p99", |x| ms(x.warm_p99));
    row("new connection + GET, median", |x| ms(x.new_p50));
    row("new connection + GET, p99", |x| ms(x.new_p99));
    row("requests/s, 16 keep-alive clients", |x| {
        format!("{:.0}", x.rps)
    });
    row("RSS of the proxy while measured", |x| {
        x.rss_kib.map_or_else(|| "-".to_owned(), mib)
    });
    row("its peak RSS, whole life (VmHWM)", |x| {
        x.hwm_kib.map_or_else(|| "-".to_owned(), mib)
    });
    let added = |x: &Figures| x.warm_p50.saturating_sub(direct.warm_p50);
    let added_new = |x: &Figures| x.new_p50.saturating_sub(direct.new_p50);
    println!(
        "\nadded per request, warm connection: exec --proxy {} (target <= 1 ms){}",
        ms(added(&s)),
        m.as_ref()
            .map_or(String::new(), |m| format!(", mitmproxy {}", ms(added(m))))
    );
    println!(
        "added per new connection: exec --proxy {}{}",
        ms(added_new(&s)),
        m.as_ref().map_or(String::new(), |m| format!(
            ", mitmproxy {}",
            ms(added_new(m))
        ))
    );
    if let Some(m) = &m {
        println!(
            "exec --proxy : mitmproxy — throughput {:.1}x (target >= 10x), added warm latency {:.1}x less, RSS while measured {:.1}x less",
            s.rps / m.rps,
            added(m).as_secs_f64() / added(&s).as_secs_f64().max(1e-9),
            m.rss_kib.unwrap_or(0) as f64 / s.rss_kib.unwrap_or(1).max(1) as f64,
        );
    }
    println!(
        "(secret's VmHWM includes the Argon2id vault unlock before the child starts: 64 MiB by default)"
    );
}

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

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use support::{
    Killed, RssPeak, VALUE, certificates, client_tls, current_thread, free_port, home_with_key,
    mib, mitmdump_present, ms, percentile, rss_kib, run_ok, secret, throughput, upstream,
    wait_port,
};

const CALLERS: usize = 64;
const LOAD_FOR: Duration = Duration::from_secs(4);
const LATENCY_RUNS: usize = 2000;
const TTFB_RUNS: usize = 200;

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

struct Figures {
    median: Duration,
    p99: Duration,
    rps: f64,
    ttfb: Duration,
    rss_load_kib: Option<u64>,
}

fn measure(t: &Target, pid: Option<u32>) -> Figures {
    let (mut lat, mut ttfb) = current_thread().block_on(async {
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
        (lat, ttfb)
    });
    let sampler = pid.map(RssPeak::start);
    let rps = throughput(
        CALLERS,
        LOAD_FOR,
        async || connect(t).await,
        async |caller| {
            once(caller, t, "/small").await;
        },
    );
    Figures {
        median: percentile(&mut lat, 0.5),
        p99: percentile(&mut lat, 0.99),
        rps,
        ttfb: percentile(&mut ttfb, 0.5),
        rss_load_kib: sampler.map(RssPeak::peak),
    }
}

/// The broker for `upstream_port`: (process, its TCP port, caller token).
fn broker(home: &Path, ca: &Path, upstream_port: u16) -> (Killed, u16, String) {
    home_with_key(home, "broker", "127.0.0.1");
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
    if !mitmdump_present() {
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

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    let upstream_port = upstream(dir.path());
    wait_port(upstream_port);
    let client_tls = client_tls(&ca);
    let (broker_process, broker_port, token) = broker(&dir.path().join("home"), &ca, upstream_port);
    let broker_pid = broker_process.0.id();
    let mitm = mitmproxy(dir.path(), &ca, upstream_port);

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
    let d = measure(&direct, None);
    let b = measure(&brokered, Some(broker_pid));
    let m = mitm.as_ref().map(|(child, port)| {
        let target = Target {
            port: *port,
            tls: None,
            prefix: String::new(),
            headers: Vec::new(),
        };
        measure(&target, Some(child.0.id()))
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
        x.rss_load_kib.map_or_else(|| "-".to_owned(), mib)
    });
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "RSS idle",
        "-",
        mib(rss_idle),
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

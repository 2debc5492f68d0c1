//! The loopback proxy of `exec --proxy`: an HTTP/1.1 forward proxy that the
//! child reaches through `HTTPS_PROXY`/`HTTP_PROXY`, authenticated by the
//! random credentials in that URL (407 without them).
//!
//! - `CONNECT host:port` to a host some value may go to: TLS is terminated
//!   with a leaf for `host` from the launch's CA (`ca`), each request gets
//!   its placeholders swapped (`substitute`) and goes to the real host over
//!   TLS verified against the system's roots plus `[proxy]
//!   upstream_ca_file`, through the broker's `upstream` client; the
//!   response streams back with values turned into placeholders. Upgrades
//!   (websockets) pass through once the upstream agrees.
//! - `CONNECT` anywhere else: tunnelled untouched (the proxy sees only
//!   ciphertext), or refused with `--proxy-egress deny`.
//! - Plain `http://` requests: forwarded, but never with a value: a
//!   placeholder in one is refused, as on a host outside a grant.
//!
//! Every refusal is an audit record; a placeholder going where its value
//! may not is recorded as an attempted leak. It never logs a body or a
//! credential header.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::ca::Authority;
use super::config::Upstream as Target;
use super::status::Audit;
use super::substitute::{Leak, Redacted, Table};
use super::token::Token;
use super::upstream::{Body, CONNECT_TIMEOUT, Failure, Metered, Upstream};
use crate::audit::Event;

/// The user name in the proxy URL (the password is the token).
pub const PROXY_USER: &str = "secret";
/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections open at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 4096;
/// Upstream pools kept (one per host, port and scheme).
const MAX_POOLS: usize = 1024;

/// Hop-by-hop headers (RFC 9110 7.6.1): not forwarded, except `Connection`
/// and `Upgrade` on an upgrade.
const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// What the proxy counted, for the summary at the end.
#[derive(Default)]
pub struct Counts {
    pub substituted: AtomicU64,
    pub intercepted: AtomicU64,
    pub tunnelled: AtomicU64,
    pub refused: AtomicU64,
    pub bytes: Arc<AtomicU64>,
}

/// Everything a connection needs.
pub struct Proxy {
    pub table: Table,
    pub ca: Authority,
    pub token: Token,
    /// `--proxy-egress deny`: refuse every host no value may go to.
    pub egress_deny: bool,
    pub upstream_ca: Option<PathBuf>,
    pub audit: Audit,
    pub consumer: String,
    pub counts: Counts,
    pools: Mutex<HashMap<(String, u16, bool), Arc<Upstream>>>,
}

impl Proxy {
    #[must_use]
    pub fn new(
        table: Table,
        ca: Authority,
        token: Token,
        egress_deny: bool,
        upstream_ca: Option<PathBuf>,
        audit: Audit,
        consumer: String,
    ) -> Self {
        Self {
            table,
            ca,
            token,
            egress_deny,
            upstream_ca,
            audit,
            consumer,
            counts: Counts::default(),
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The client pool for one upstream, made on first use.
    fn upstream(&self, host: &str, port: u16, tls: bool) -> Result<Arc<Upstream>, Deny> {
        let key = (host.to_ascii_lowercase(), port, tls);
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(u) = pools.get(&key) {
            return Ok(Arc::clone(u));
        }
        let target = Target {
            tls,
            host: key.0.clone(),
            port,
            base: String::new(),
        };
        let upstream = Upstream::new(target, self.upstream_ca.as_deref())
            .map(Arc::new)
            .map_err(|e| deny(StatusCode::BAD_GATEWAY, "upstream", e.to_string()))?;
        if pools.len() >= MAX_POOLS {
            pools.clear();
        }
        pools.insert(key, Arc::clone(&upstream));
        Ok(upstream)
    }

    fn record(&self, action: &'static str, handle: Option<String>, outcome: String) {
        self.counts.refused.fetch_add(1, Ordering::Relaxed);
        self.audit.deny(Event {
            action,
            handle,
            consumer: self.consumer.clone(),
            outcome,
            ..Event::default()
        });
    }

    fn leak(&self, leak: &Leak, method: &Method, host: &str, port: u16) -> Deny {
        let s = &self.table.secrets[leak.secret];
        self.record(
            "proxy-leak",
            s.handle.clone(),
            format!(
                "refused {method} to {host}:{port}: it carried the placeholder of {} ({}; allowed_hosts {:?})",
                s.label, leak.why, s.allowed_hosts
            ),
        );
        deny(
            StatusCode::FORBIDDEN,
            "leak",
            format!(
                "this request carries the placeholder of {} and {}; it was not sent",
                s.label, leak.why
            ),
        )
    }
}

/// A refusal from the proxy itself.
struct Deny {
    status: StatusCode,
    rule: &'static str,
    message: String,
}

fn deny(status: StatusCode, rule: &'static str, message: impl Into<String>) -> Deny {
    Deny {
        status,
        rule,
        message: message.into(),
    }
}

fn refusal(d: &Deny) -> Response<Body> {
    let json = serde_json::json!({
        "error": {
            "message": format!("secret exec --proxy: {}", d.message),
            "type": "proxy_refused",
            "rule": d.rule,
            "code": d.status.as_u16(),
        }
    });
    let mut response = Response::new(
        Full::new(Bytes::from(serde_json::to_vec(&json).unwrap_or_default()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = d.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if d.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        response.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"secret exec --proxy\""),
        );
    }
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r
}

/// Accepts connections until the task is aborted.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, Infallible>(outer(&proxy, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            drop(permit);
        });
    }
}

/// A request to the proxy itself: CONNECT or an absolute-form http:// one.
async fn outer(proxy: &Arc<Proxy>, req: Request<Incoming>) -> Response<Body> {
    if !authorized(&proxy.token, req.headers()) {
        proxy.record(
            "proxy-deny",
            None,
            format!(
                "{} {}: no or wrong proxy credentials",
                req.method(),
                cut(&req.uri().to_string())
            ),
        );
        return refusal(&deny(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "auth",
            "use the proxy URL from HTTPS_PROXY, with its credentials",
        ));
    }
    let result = if req.method() == Method::CONNECT {
        connect(proxy, req).await
    } else {
        plain(proxy, req).await
    };
    result.unwrap_or_else(|d| refusal(&d))
}

/// Whether `Proxy-Authorization: Basic` carries our user and token.
fn authorized(token: &Token, headers: &HeaderMap) -> bool {
    let Some(v) = headers.get(header::PROXY_AUTHORIZATION) else {
        return false;
    };
    let b = v.as_bytes();
    if b.len() < 6 || !b[..6].eq_ignore_ascii_case(b"basic ") {
        return false;
    }
    let Some(decoded) = std::str::from_utf8(&b[6..])
        .ok()
        .and_then(|t| Base64::decode_vec(t.trim()).ok())
        .map(zeroize::Zeroizing::new)
    else {
        return false;
    };
    match decoded.iter().position(|&c| c == b':') {
        Some(i) => &decoded[..i] == PROXY_USER.as_bytes() && token.matches(&decoded[i + 1..]),
        None => false,
    }
}

/// The host (lowercase, without brackets) and port of an authority.
fn host_port(uri: &Uri, default_port: u16) -> Option<(String, u16)> {
    let authority = uri.authority()?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (!host.is_empty()).then(|| (host, authority.port_u16().unwrap_or(default_port)))
}

async fn connect(proxy: &Arc<Proxy>, mut req: Request<Incoming>) -> Result<Response<Body>, Deny> {
    let Some((host, port)) = host_port(req.uri(), 443) else {
        return Err(deny(
            StatusCode::BAD_REQUEST,
            "connect",
            "CONNECT needs host:port",
        ));
    };
    let upgrade = hyper::upgrade::on(&mut req);
    if proxy.table.any_allowed(&host) {
        let tls = proxy
            .ca
            .server_config(&host)
            .map_err(|e| deny(StatusCode::BAD_GATEWAY, "tls", e.to_string()))?;
        proxy.counts.intercepted.fetch_add(1, Ordering::Relaxed);
        let proxy = Arc::clone(proxy);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let Ok(stream) = TlsAcceptor::from(tls).accept(TokioIo::new(upgraded)).await else {
                return;
            };
            let service = service_fn(move |req| {
                let proxy = Arc::clone(&proxy);
                let host = host.clone();
                async move {
                    Ok::<_, Infallible>(
                        inner(&proxy, &host, port, req)
                            .await
                            .unwrap_or_else(|d| refusal(&d)),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
        return Ok(empty(StatusCode::OK));
    }
    if proxy.egress_deny {
        proxy.record(
            "proxy-deny",
            None,
            format!(
                "refused CONNECT {host}:{port}: no proxied value may go there (--proxy-egress deny)"
            ),
        );
        return Err(deny(
            StatusCode::FORBIDDEN,
            "egress",
            format!("{host} is not a host any proxied secret may go to (--proxy-egress deny)"),
        ));
    }
    let remote = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| deny(StatusCode::GATEWAY_TIMEOUT, "upstream", "connect timed out"))?
        .map_err(|e| {
            deny(
                StatusCode::BAD_GATEWAY,
                "upstream",
                format!("connecting to {host}:{port}: {e}"),
            )
        })?;
    let _ = remote.set_nodelay(true);
    proxy.counts.tunnelled.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let mut client = TokioIo::new(upgraded);
            let mut remote = remote;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut remote).await;
        }
    });
    Ok(empty(StatusCode::OK))
}

/// A plain `http://` request through the proxy: never carries a value.
async fn plain(proxy: &Arc<Proxy>, req: Request<Incoming>) -> Result<Response<Body>, Deny> {
    if req.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
        return Err(deny(
            StatusCode::BAD_REQUEST,
            "proxy",
            "this is a proxy: send CONNECT host:port, or an absolute http:// URL",
        ));
    }
    let Some((host, port)) = host_port(req.uri(), 80) else {
        return Err(deny(
            StatusCode::BAD_REQUEST,
            "proxy",
            "the URL has no host",
        ));
    };
    if proxy.egress_deny && !proxy.table.any_allowed(&host) {
        proxy.record(
            "proxy-deny",
            None,
            format!(
                "refused {} http://{host}:{port}: --proxy-egress deny",
                req.method()
            ),
        );
        return Err(deny(
            StatusCode::FORBIDDEN,
            "egress",
            format!("{host} is not a host any proxied secret may go to (--proxy-egress deny)"),
        ));
    }
    let (mut parts, body) = req.into_parts();
    proxy
        .table
        .request(&host, false, &mut parts.uri, &mut parts.headers)
        .map_err(|l| proxy.leak(&l, &parts.method, &host, port))?;
    let origin = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .parse::<Uri>()
        .map_err(|_| deny(StatusCode::BAD_REQUEST, "proxy", "bad request target"))?;
    parts.uri = origin;
    let upstream = proxy.upstream(&host, port, false)?;
    send(proxy, &upstream, Request::from_parts(parts, body), false).await
}

/// A request inside an intercepted TLS connection to `host:port`.
async fn inner(
    proxy: &Arc<Proxy>,
    host: &str,
    port: u16,
    req: Request<Incoming>,
) -> Result<Response<Body>, Deny> {
    let (mut parts, body) = req.into_parts();
    let n = proxy
        .table
        .request(host, true, &mut parts.uri, &mut parts.headers)
        .map_err(|l| proxy.leak(&l, &parts.method, host, port))?;
    if n > 0 {
        proxy.counts.substituted.fetch_add(1, Ordering::Relaxed);
    }
    // Responses must be readable to be redacted: no compression.
    parts.headers.remove(header::ACCEPT_ENCODING);
    let upstream = proxy.upstream(host, port, true)?;
    send(proxy, &upstream, Request::from_parts(parts, body), true).await
}

/// Forwards a request (origin-form URI) and streams the response back,
/// values turned into placeholders when `redact`.
async fn send(
    proxy: &Arc<Proxy>,
    upstream: &Arc<Upstream>,
    req: Request<Incoming>,
    redact: bool,
) -> Result<Response<Body>, Deny> {
    let (mut parts, body) = req.into_parts();
    let mut client_upgrade = None;
    let upgrading = parts.headers.contains_key(header::UPGRADE);
    if upgrading {
        let mut probe = Request::from_parts(parts, ());
        client_upgrade = Some(hyper::upgrade::on(&mut probe));
        parts = probe.into_parts().0;
    }
    strip_hop_by_hop(&mut parts.headers, upgrading);
    if !parts.headers.contains_key(header::HOST) {
        let authority = HeaderValue::from_str(&upstream.target.authority())
            .map_err(|_| deny(StatusCode::BAD_GATEWAY, "upstream", "bad host"))?;
        parts.headers.insert(header::HOST, authority);
    }
    parts.version = http::Version::HTTP_11;
    let body = Metered::new(body, Arc::clone(&proxy.counts.bytes)).boxed();
    let mut response = upstream
        .send(Request::from_parts(parts, body))
        .await
        .map_err(|f| match f {
            Failure::Connect(m) => deny(StatusCode::BAD_GATEWAY, "upstream", m),
            Failure::Timeout => deny(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream",
                "the upstream did not answer in time",
            ),
            Failure::Exchange { message, .. } => deny(StatusCode::BAD_GATEWAY, "upstream", message),
        })?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client) = client_upgrade
    {
        let server = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(a), Ok(b)) = (client.await, server.await) {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b)).await;
            }
        });
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(
            parts,
            Empty::new().map_err(|never| match never {}).boxed(),
        ));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    let body = Metered::new(body, Arc::clone(&proxy.counts.bytes)).boxed();
    if redact {
        proxy.table.response_headers(&mut parts.headers);
        let body = Redacted::new(body, proxy.table.response_redactor());
        return Ok(Response::from_parts(parts, body.boxed()));
    }
    Ok(Response::from_parts(parts, body))
}

/// Removes hop-by-hop headers and those `Connection` names; on an upgrade
/// `Connection` and `Upgrade` stay.
fn strip_hop_by_hop(h: &mut HeaderMap, upgrading: bool) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(upgrading && *n == header::UPGRADE))
        .collect();
    for name in named {
        h.remove(name);
    }
    for name in HOP_BY_HOP {
        h.remove(*name);
    }
    if !upgrading {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
}

/// At most 200 characters, control characters replaced.
fn cut(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

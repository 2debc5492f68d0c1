//! The server side: accept loops on the Unix socket and the loopback TCP
//! listener, one hyper HTTP/1.1 connection task each, and the request
//! handler that decides (Host, Origin, caller token, route, path, method,
//! rate limit, body size, concurrency) and then forwards through
//! `upstream` with the route's credential header. Every refusal is a JSON
//! error naming the rule and an audit record. Bodies stream; nothing here
//! reads, buffers or logs one, nor any credential header.
//!
//! The route table is swapped whole on reload (`RwLock<Arc<Table>>`):
//! requests in flight keep the table they started with, so a rotated
//! secret reaches new requests without dropping a connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::Route;
use super::limit::{Bucket, retry_after_secs};
use super::route::{self, PROXY_PREFIX};
use super::status::{Audit, RouteStatus, Snapshot, Stats};
use super::token::Token;
use super::upstream::{Body, Failure, Metered, Upstream};
use crate::audit::Event;

/// Requests handled at once; more get 503.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;
/// Connections open at once; more wait to be accepted.
pub(crate) const MAX_CONNECTIONS: usize = 4096;
/// How long a caller may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Hop-by-hop headers (RFC 9110 7.6.1) and ours: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
const CALLER_TOKEN_HEADER: &str = "x-broker-token";

/// A route ready to serve: its settings, its credential header (built once
/// from the resolved value; the bytes are wiped when the last request that
/// uses them is done), its connection pool, limit and counters.
pub(crate) struct Live {
    pub route: Route,
    pub credential: HeaderValue,
    pub upstream: Arc<Upstream>,
    pub bucket: Option<Arc<Bucket>>,
    pub stats: Arc<Stats>,
    /// The handle that answered (local), or the remote reference: for audit.
    pub handle: Option<String>,
    pub reference: Option<String>,
}

/// Every route, as of the last (re)load.
#[derive(Default)]
pub(crate) struct Table {
    pub routes: Vec<Arc<Live>>,
}

impl Table {
    fn get(&self, name: &str) -> Option<&Arc<Live>> {
        self.routes.iter().find(|l| l.route.name == name)
    }
}

/// What the main thread asks of the server, and the server of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Reload,
    Stop,
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub table: RwLock<Arc<Table>>,
    pub token: RwLock<Arc<Token>>,
    pub audit: Audit,
    pub in_flight: Arc<Semaphore>,
    /// The TCP listener's real address, when there is one.
    pub listen: Option<SocketAddr>,
    pub file: String,
    pub socket: String,
    pub started: Instant,
    pub control: std::sync::mpsc::Sender<Control>,
}

impl Shared {
    fn table(&self) -> Arc<Table> {
        Arc::clone(
            &self
                .table
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The status snapshot.
    #[must_use]
    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        Snapshot {
            pid: std::process::id(),
            file: self.file.clone(),
            socket: self.socket.clone(),
            listen: self.listen.map(|a| a.to_string()),
            uptime_secs: self.started.elapsed().as_secs(),
            in_flight: (MAX_IN_FLIGHT - self.in_flight.available_permits()) as u64,
            audit_dropped: self.audit.dropped(),
            routes: self
                .table()
                .routes
                .iter()
                .map(|l| {
                    let mut r = RouteStatus::from_stats(
                        &l.route.name,
                        l.route.upstream.url(),
                        l.route.secret_text.clone(),
                        &l.stats,
                    );
                    if let (Some(rate), Some(bucket)) = (l.route.rate_limit, &l.bucket) {
                        r.rate_limit = Some(format!(
                            "{}/{}",
                            rate.count,
                            match rate.per.as_secs() {
                                1 => "s",
                                60 => "m",
                                _ => "h",
                            }
                        ));
                        r.rate_available = Some(bucket.available(now));
                    }
                    r
                })
                .collect(),
        }
    }

    /// The audit summaries of the traffic since the last ones.
    pub(crate) fn summaries(&self) -> Vec<Event> {
        self.table()
            .routes
            .iter()
            .filter_map(|l| {
                l.stats
                    .summary(&l.route.name, l.handle.as_deref(), l.reference.as_deref())
            })
            .collect()
    }
}

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Via {
    Unix,
    Tcp(SocketAddr),
}

/// Serves one accepted connection until it ends or shutdown drains it.
pub(crate) fn connection<S>(
    stream: S,
    via: Via,
    shared: &Arc<Shared>,
    graceful: &GracefulShutdown,
    permit: OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::clone(shared);
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, via, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let done = graceful.watch(conn);
    tokio::spawn(async move {
        let _ = done.await;
        drop(permit);
    });
}

/// A refusal: status, the rule that refused, and the message.
struct Deny {
    status: StatusCode,
    rule: &'static str,
    message: String,
    retry_after: Option<u64>,
}

fn deny(status: StatusCode, rule: &'static str, message: impl Into<String>) -> Deny {
    Deny {
        status,
        rule,
        message: message.into(),
        retry_after: None,
    }
}

async fn handle(shared: &Arc<Shared>, via: Via, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let table = shared.table();
    let live = route::split(&path)
        .and_then(|(name, _)| table.get(name))
        .cloned();
    match forward(shared, via, req, live.as_ref()).await {
        Ok(response) => response,
        Err(d) => {
            let audited = !matches!(
                d.status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::GATEWAY_TIMEOUT
                    | StatusCode::SERVICE_UNAVAILABLE
            );
            if let Some(l) = &live {
                l.stats.count(d.status.as_u16());
                if audited {
                    l.stats.denied.fetch_add(1, Ordering::Relaxed);
                }
            }
            if audited {
                shared.audit.deny(Event {
                    action: "broker-deny",
                    handle: live.as_ref().and_then(|l| l.handle.clone()),
                    reference: live.as_ref().and_then(|l| l.reference.clone()),
                    consumer: "broker".into(),
                    purpose: live.as_ref().map(|l| l.route.name.clone()),
                    outcome: format!(
                        "{} {method} {}: {} ({})",
                        d.status.as_u16(),
                        cut(&path, 200),
                        d.rule,
                        cut(&d.message, 300)
                    ),
                    fingerprint: None,
                });
            }
            error_response(&d)
        }
    }
}

async fn forward(
    shared: &Arc<Shared>,
    via: Via,
    req: Request<Incoming>,
    live: Option<&Arc<Live>>,
) -> Result<Response<Body>, Deny> {
    let headers = req.headers();
    if headers.contains_key(header::ORIGIN) {
        return Err(deny(
            StatusCode::FORBIDDEN,
            "origin",
            "requests with an Origin header are refused (a web page must not reach the broker)",
        ));
    }
    if !host_ok(via, headers.get(header::HOST)) {
        return Err(deny(
            StatusCode::FORBIDDEN,
            "host",
            "the Host header is not the broker's own address or localhost",
        ));
    }
    if matches!(via, Via::Tcp(_)) && !caller_ok(shared, headers) {
        return Err(deny(
            StatusCode::UNAUTHORIZED,
            "token",
            "a caller token is required: Authorization: Bearer TOKEN or X-Broker-Token: TOKEN (see `secret broker token`)",
        ));
    }
    let path = req.uri().path();
    if matches!(via, Via::Unix) && path.starts_with("/broker/") {
        return Ok(control(shared, req.method(), path));
    }
    let Some((name, rest)) = route::split(path) else {
        return Err(deny(
            StatusCode::NOT_FOUND,
            "route",
            format!("requests go to {PROXY_PREFIX}ROUTE/PATH"),
        ));
    };
    let Some(live) = live else {
        return Err(deny(
            StatusCode::NOT_FOUND,
            "route",
            format!("there is no route \"{}\"", cut(name, 64)),
        ));
    };
    let r = &live.route;
    route::allowed(
        &r.allowed_paths,
        r.allowed_methods.as_deref(),
        req.method(),
        rest,
    )
    .map_err(|why| {
        let rule = if why.contains("allowed_methods") {
            "allowed_methods"
        } else {
            "allowed_paths"
        };
        deny(
            StatusCode::FORBIDDEN,
            rule,
            format!("route {}: {why}", r.name),
        )
    })?;
    if let Some(bucket) = &live.bucket
        && let Err(wait) = bucket.take(Instant::now())
    {
        let mut d = deny(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit",
            format!("route {}: over its rate limit", r.name),
        );
        d.retry_after = Some(retry_after_secs(wait));
        return Err(d);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > r.max_request_body) {
        return Err(too_large(r));
    }
    let permit = Arc::clone(&shared.in_flight)
        .try_acquire_owned()
        .map_err(|_| {
            deny(
                StatusCode::SERVICE_UNAVAILABLE,
                "concurrency",
                format!("more than {MAX_IN_FLIGHT} requests in flight; try again"),
            )
        })?;
    let rest_len = rest.len();
    let upstream_req = outgoing(live, req, rest_len)?;
    let response = live
        .upstream
        .send(upstream_req)
        .await
        .map_err(|f| match f {
            Failure::Connect(m) => deny(StatusCode::BAD_GATEWAY, "upstream", m),
            Failure::Timeout => deny(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream",
                "the upstream did not answer in time",
            ),
            Failure::Exchange {
                body_limit: true, ..
            } => too_large(r),
            Failure::Exchange { message, .. } => deny(StatusCode::BAD_GATEWAY, "upstream", message),
        })?;
    live.stats.count(response.status().as_u16());
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = Metered::new(body, Arc::clone(&live.stats.bytes_out)).holding(permit);
    Ok(Response::from_parts(parts, body.boxed()))
}

fn too_large(r: &Route) -> Deny {
    deny(
        StatusCode::PAYLOAD_TOO_LARGE,
        "max_request_body",
        format!(
            "route {}: the request body is over max_request_body ({} bytes)",
            r.name, r.max_request_body
        ),
    )
}

/// The request as it goes upstream: REST (and the query) under the
/// upstream's base path, hop-by-hop and caller credentials removed, `Host`
/// the upstream's, and the route's header set to the credential.
fn outgoing(live: &Live, req: Request<Incoming>, rest_len: usize) -> Result<Request<Body>, Deny> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path();
    let rest = &path[path.len() - rest_len..];
    let target = match parts.uri.query() {
        Some(q) => format!("{}{rest}?{q}", live.route.upstream.base),
        None => format!("{}{rest}", live.route.upstream.base),
    };
    parts.uri = target.parse::<Uri>().map_err(|_| {
        deny(
            StatusCode::BAD_REQUEST,
            "path",
            "the request target is not valid",
        )
    })?;
    parts.version = http::Version::HTTP_11;
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    for name in [
        header::AUTHORIZATION,
        header::HOST,
        header::EXPECT,
        HeaderName::from_static(CALLER_TOKEN_HEADER),
    ] {
        h.remove(name);
    }
    h.remove(&live.route.header);
    let authority = HeaderValue::from_str(&live.route.upstream.authority())
        .map_err(|_| deny(StatusCode::BAD_GATEWAY, "upstream", "bad upstream host"))?;
    h.insert(header::HOST, authority);
    h.insert(live.route.header.clone(), live.credential.clone());
    let max = usize::try_from(live.route.max_request_body).unwrap_or(usize::MAX);
    let body = Limited::new(Metered::new(body, Arc::clone(&live.stats.bytes_in)), max).boxed();
    Ok(Request::from_parts(parts, body))
}

/// Removes hop-by-hop headers, including those `Connection` names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        h.remove(name);
    }
    for name in HOP_BY_HOP {
        h.remove(*name);
    }
}

/// `Host` must be `localhost` or, on TCP, the listener's own address (with
/// its port when one is given). A DNS-rebinding page sends its own name.
fn host_ok(via: Via, host: Option<&HeaderValue>) -> bool {
    let Some(host) = host else {
        return matches!(via, Via::Unix);
    };
    let Some(authority) = host
        .to_str()
        .ok()
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
    else {
        return false;
    };
    let name = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    match via {
        Via::Unix => name.eq_ignore_ascii_case("localhost"),
        Via::Tcp(addr) => {
            let port_ok = authority.port_u16().is_none_or(|p| p == addr.port());
            port_ok
                && (name.eq_ignore_ascii_case("localhost")
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip == addr.ip()))
        }
    }
}

/// The caller token, from `Authorization: Bearer` or `X-Broker-Token`.
fn caller_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    let token = Arc::clone(
        &shared
            .token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| {
            let b = v.as_bytes();
            (b.len() > 7 && b[..7].eq_ignore_ascii_case(b"bearer ")).then(|| &b[7..])
        });
    let direct = headers
        .get_all(CALLER_TOKEN_HEADER)
        .iter()
        .map(HeaderValue::as_bytes);
    let mut ok = false;
    for presented in bearer.chain(direct) {
        ok |= token.matches(presented.trim_ascii());
    }
    ok
}

/// `/broker/status` and `/broker/reload`, on the Unix socket only.
fn control(shared: &Shared, method: &Method, path: &str) -> Response<Body> {
    match (method, path) {
        (&Method::GET, "/broker/status") => {
            let json = serde_json::to_vec(&shared.snapshot()).unwrap_or_default();
            json_response(StatusCode::OK, json)
        }
        (&Method::POST, "/broker/reload") => {
            let _ = shared.control.send(Control::Reload);
            json_response(StatusCode::ACCEPTED, b"{\"reload\":\"requested\"}".to_vec())
        }
        _ => error_response(&deny(
            StatusCode::NOT_FOUND,
            "route",
            "GET /broker/status or POST /broker/reload",
        )),
    }
}

/// An OpenAI-style error body, so SDKs show the message.
fn error_response(d: &Deny) -> Response<Body> {
    let json = serde_json::json!({
        "error": {
            "message": format!("secret broker: {}", d.message),
            "type": "broker_refused",
            "rule": d.rule,
            "code": d.status.as_u16(),
        }
    });
    let mut response = json_response(d.status, serde_json::to_vec(&json).unwrap_or_default());
    if let Some(secs) = d.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if d.status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"secret broker\""),
        );
    }
    response
}

fn json_response(status: StatusCode, json: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(json))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// At most `max` characters of `text`, control characters replaced.
fn cut(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// The accept loop of one listener; ends when aborted at shutdown.
pub(crate) async fn accept<L>(listener: L, shared: Arc<Shared>, graceful: Arc<GracefulShutdown>)
where
    L: Listener,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        match listener.next().await {
            Ok((stream, via)) => connection(stream, via, &shared, &graceful, permit),
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A listener the accept loop can take connections from.
pub(crate) trait Listener: Send + 'static {
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn next(&self) -> impl Future<Output = std::io::Result<(Self::Stream, Via)>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn next(&self) -> std::io::Result<(Self::Stream, Via)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, Via::Unix))
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn next(&self) -> std::io::Result<(Self::Stream, Via)> {
        let (stream, _) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Via::Tcp(self.local_addr()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn only_localhost_or_the_listeners_own_address_is_a_host() {
        let tcp = Via::Tcp("127.0.0.1:18443".parse().expect("addr"));
        let ok = |via, host: &'static str| host_ok(via, Some(&HeaderValue::from_static(host)));
        assert!(ok(tcp, "127.0.0.1:18443"));
        assert!(ok(tcp, "localhost:18443"));
        assert!(ok(tcp, "LOCALHOST"));
        assert!(!ok(tcp, "127.0.0.1:80"));
        assert!(!ok(tcp, "evil.example:18443"));
        assert!(!ok(tcp, "127.0.0.2:18443"));
        assert!(!host_ok(tcp, None));
        assert!(ok(Via::Unix, "localhost"));
        assert!(!ok(Via::Unix, "evil.example"));
        assert!(host_ok(Via::Unix, None));
    }
}

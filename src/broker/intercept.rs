//! The loopback proxy of `exec --proxy` and of the plugin supervisor: an
//! HTTP/1.1 forward proxy that each consumer (the child of `exec`, or each
//! plugin) reaches through `HTTPS_PROXY`/`HTTP_PROXY`, authenticated by the
//! user name and random password in that URL (407 without them, or with
//! another's). A consumer is bound to its own placeholders, grants and CA:
//! a request carrying another consumer's placeholder is refused as a leak.
//!
//! - `CONNECT host:port` to a host some value may go to: TLS is terminated
//!   with a leaf for `host` from the launch's CA (`ca`), each request gets
//!   its placeholders swapped (`substitute`) and goes to the real host over
//!   TLS verified against the system's roots plus `[proxy]
//!   upstream_ca_file`, through the broker's `upstream` client; the
//!   response streams back with values turned into placeholders. The
//!   child may speak HTTP/2 (ALPN `h2`) or HTTP/1.1 inside the tunnel,
//!   whatever the upstream speaks; upgrades (websockets, HTTP/1.1) pass
//!   through once the upstream agrees, what the upstream sends on them
//!   redacted as responses are.
//! - `CONNECT` anywhere else: tunnelled untouched (the proxy sees only
//!   ciphertext), or refused with `--proxy-egress deny` (a plugin's
//!   `proxy_egress = "deny"`).
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
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::ca::Authority;
use super::config::Upstream as Target;
use super::status::Audit;
use super::substitute::{Leak, Redacted, Table};
use super::token::Token;
use super::upstream::{Body, CONNECT_TIMEOUT, Failure, Metered, Upstream};
use crate::audit::Event;
use crate::mask::Redactor;

/// The user name in the proxy URL (the password is the token).
pub(crate) const PROXY_USER: &str = "secret";
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

/// What the proxy counted for one consumer, for the summary at the end.
#[derive(Default)]
pub(crate) struct Counts {
    pub substituted: AtomicU64,
    pub intercepted: AtomicU64,
    pub tunnelled: AtomicU64,
    pub refused: AtomicU64,
    pub bytes: Arc<AtomicU64>,
}

/// One consumer of the proxy (the child of `exec --proxy`, or one plugin):
/// the credentials it authenticates with, its placeholders and where their
/// values may go, and the CA its trust bundle holds.
pub(crate) struct Tenant {
    /// The user name in its proxy URL.
    pub user: String,
    pub token: Token,
    pub table: Table,
    pub ca: Authority,
    /// As in grants.toml and the audit trail (`exec`, `plugin:<id>`).
    pub consumer: String,
    /// `--proxy-egress deny` (plugins.toml `proxy_egress = "deny"`):
    /// refuse every host no value may go to.
    pub egress_deny: bool,
    pub counts: Counts,
}

impl Tenant {
    /// The audit record of what the proxy did for it.
    #[must_use]
    pub(crate) fn summary(&self) -> Event {
        let c = &self.counts;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Event {
            action: "proxy-stop",
            consumer: self.consumer.clone(),
            outcome: format!(
                "{} requests with values swapped in, {} connections intercepted, {} tunnelled, {} refused, {} bytes",
                load(&c.substituted),
                load(&c.intercepted),
                load(&c.tunnelled),
                load(&c.refused),
                load(&c.bytes),
            ),
            ..Event::default()
        }
    }
}

/// The proxy: its consumers by user name, and what they share (the
/// upstream pools, their TLS client, its extra CA, the audit writer).
pub(crate) struct Proxy {
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    pub upstream_ca: Option<PathBuf>,
    pub audit: Audit,
    pools: Mutex<HashMap<(String, u16, bool), Arc<Upstream>>>,
    /// The TLS client of every upstream, and when it was made: the
    /// system's roots (and `upstream_ca`) read and parsed on the first
    /// https upstream, and again once `TLS_REFRESH` has passed, not once
    /// per host.
    tls: Mutex<Option<(Instant, Arc<rustls::ClientConfig>)>>,
    /// `TLS_REFRESH`, but for tests.
    tls_refresh: Duration,
}

/// How long the proxy's upstream TLS client is used before the roots are
/// read again: `plugins run` keeps its proxy for as long as it runs, and a
/// CA bundle updated meanwhile reaches the upstreams first met after that.
const TLS_REFRESH: Duration = Duration::from_secs(300);

impl Proxy {
    #[must_use]
    pub(crate) fn new(upstream_ca: Option<PathBuf>, audit: Audit) -> Self {
        Self {
            tenants: RwLock::new(HashMap::new()),
            upstream_ca,
            audit,
            pools: Mutex::new(HashMap::new()),
            tls: Mutex::new(None),
            tls_refresh: TLS_REFRESH,
        }
    }

    /// The TLS client configuration the upstreams share, made on first
    /// use and again after `TLS_REFRESH`.
    fn client_tls(&self) -> crate::error::Result<Arc<rustls::ClientConfig>> {
        let mut tls = self.tls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((made, config)) = tls.as_ref()
            && made.elapsed() < self.tls_refresh
        {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(super::upstream::client_config(self.upstream_ca.as_deref())?);
        *tls = Some((Instant::now(), Arc::clone(&config)));
        Ok(config)
    }

    /// Lets `tenant` in (replacing one of the same user name).
    pub(crate) fn admit(&self, tenant: Tenant) {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        tenants.insert(tenant.user.clone(), Arc::new(tenant));
    }

    /// Shuts `user` out: its credentials stop working at once, and its
    /// open connections at their next request.
    pub(crate) fn evict(&self, user: &str) -> Option<Arc<Tenant>> {
        self.tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(user)
    }

    /// Whether `tenant` is still let in (it was not evicted or replaced).
    fn admitted(&self, tenant: &Arc<Tenant>) -> bool {
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tenant.user)
            .is_some_and(|t| Arc::ptr_eq(t, tenant))
    }

    /// The consumer whose credentials `headers` carry (`Proxy-Authorization:
    /// Basic`), or what was wrong, for the audit record.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Tenant>, String> {
        let Some((user, password)) = headers
            .get(header::PROXY_AUTHORIZATION)
            .and_then(basic_credentials)
        else {
            return Err("no proxy credentials".into());
        };
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        match tenants.get(&user) {
            Some(t) if t.token.matches(&password) => Ok(Arc::clone(t)),
            Some(_) => Err(format!("wrong proxy password for user \"{}\"", cut(&user))),
            None => Err(format!("unknown proxy user \"{}\"", cut(&user))),
        }
    }

    /// Another consumer's value whose placeholder this request carries.
    fn foreign(&self, me: &Tenant, uri: &Uri, headers: &HeaderMap) -> Option<(String, String)> {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        tenants
            .values()
            .filter(|t| t.user != me.user)
            .find_map(|t| {
                t.table
                    .carried(uri, headers)
                    .map(|s| (t.consumer.clone(), s.label.clone()))
            })
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
        let config = if tls { Some(self.client_tls()) } else { None };
        let upstream = config
            .transpose()
            .and_then(|config| Upstream::with_tls(target, config))
            .map(Arc::new)
            .map_err(|e| deny(StatusCode::BAD_GATEWAY, "upstream", e.to_string()))?;
        if pools.len() >= MAX_POOLS {
            pools.clear();
        }
        pools.insert(key, Arc::clone(&upstream));
        Ok(upstream)
    }

    fn record(
        &self,
        tenant: Option<&Tenant>,
        action: &'static str,
        handle: Option<String>,
        outcome: String,
    ) {
        if let Some(t) = tenant {
            t.counts.refused.fetch_add(1, Ordering::Relaxed);
        }
        self.audit.deny(Event {
            action,
            handle,
            consumer: tenant.map_or_else(|| "unknown".to_owned(), |t| t.consumer.clone()),
            outcome,
            ..Event::default()
        });
    }

    fn leak(&self, tenant: &Tenant, leak: &Leak, method: &Method, host: &str, port: u16) -> Deny {
        let s = &tenant.table.secrets[leak.secret];
        self.record(
            Some(tenant),
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

    /// Refuses a request that carries another consumer's placeholder.
    fn check_foreign(
        &self,
        tenant: &Tenant,
        parts: &http::request::Parts,
        host: &str,
        port: u16,
    ) -> Result<(), Deny> {
        let Some((owner, label)) = self.foreign(tenant, &parts.uri, &parts.headers) else {
            return Ok(());
        };
        self.record(
            Some(tenant),
            "proxy-leak",
            None,
            format!(
                "refused {} to {host}:{port}: it carried the placeholder of {label}, which belongs to {owner}",
                parts.method
            ),
        );
        Err(deny(
            StatusCode::FORBIDDEN,
            "leak",
            "this request carries a placeholder that is not yours; it was not sent",
        ))
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
pub(crate) async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
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

/// A request to the proxy itself: CONNECT or an absolute-form http:// one,
/// from a consumer its credentials name.
async fn outer(proxy: &Arc<Proxy>, req: Request<Incoming>) -> Response<Body> {
    let tenant = match proxy.authenticate(req.headers()) {
        Ok(t) => t,
        Err(why) => {
            proxy.record(
                None,
                "proxy-deny",
                None,
                format!("{} {}: {why}", req.method(), cut(&req.uri().to_string())),
            );
            return refusal(&deny(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "auth",
                "use the proxy URL from HTTPS_PROXY, with its credentials",
            ));
        }
    };
    let result = if req.method() == Method::CONNECT {
        connect(proxy, tenant, req).await
    } else {
        plain(proxy, &tenant, req).await
    };
    result.unwrap_or_else(|d| refusal(&d))
}

/// The user and password of a `Basic` credentials header.
fn basic_credentials(v: &HeaderValue) -> Option<(String, zeroize::Zeroizing<Vec<u8>>)> {
    let b = v.as_bytes();
    if b.len() < 6 || !b[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = std::str::from_utf8(&b[6..])
        .ok()
        .and_then(|t| Base64::decode_vec(t.trim()).ok())
        .map(zeroize::Zeroizing::new)?;
    let colon = decoded.iter().position(|&c| c == b':')?;
    let user = String::from_utf8_lossy(&decoded[..colon]).into_owned();
    Some((user, zeroize::Zeroizing::new(decoded[colon + 1..].to_vec())))
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

async fn connect(
    proxy: &Arc<Proxy>,
    tenant: Arc<Tenant>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Deny> {
    let Some((host, port)) = host_port(req.uri(), 443) else {
        return Err(deny(
            StatusCode::BAD_REQUEST,
            "connect",
            "CONNECT needs host:port",
        ));
    };
    let upgrade = hyper::upgrade::on(&mut req);
    if tenant.table.any_allowed(&host) {
        let tls = tenant
            .ca
            .server_config(&host)
            .map_err(|e| deny(StatusCode::BAD_GATEWAY, "tls", e.to_string()))?;
        tenant.counts.intercepted.fetch_add(1, Ordering::Relaxed);
        let proxy = Arc::clone(proxy);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let Ok(stream) = TlsAcceptor::from(tls).accept(TokioIo::new(upgraded)).await else {
                return;
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let service = service_fn(move |req| {
                let proxy = Arc::clone(&proxy);
                let tenant = Arc::clone(&tenant);
                let host = host.clone();
                async move {
                    Ok::<_, Infallible>(
                        inner(&proxy, &tenant, &host, port, req)
                            .await
                            .unwrap_or_else(|d| refusal(&d)),
                    )
                }
            });
            let io = TokioIo::new(stream);
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(io, service)
                    .with_upgrades()
                    .await;
            }
        });
        return Ok(empty(StatusCode::OK));
    }
    if tenant.egress_deny {
        proxy.record(
            Some(&tenant),
            "proxy-deny",
            None,
            format!(
                "refused CONNECT {host}:{port}: no proxied value may go there, and egress is deny"
            ),
        );
        return Err(deny(
            StatusCode::FORBIDDEN,
            "egress",
            format!(
                "{host} is not a host any proxied secret may go to, and egress is deny (--proxy-egress, proxy_egress)"
            ),
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
    tenant.counts.tunnelled.fetch_add(1, Ordering::Relaxed);
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
async fn plain(
    proxy: &Arc<Proxy>,
    tenant: &Arc<Tenant>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Deny> {
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
    if tenant.egress_deny && !tenant.table.any_allowed(&host) {
        proxy.record(
            Some(tenant),
            "proxy-deny",
            None,
            format!(
                "refused {} http://{host}:{port}: no proxied value may go there, and egress is deny",
                req.method()
            ),
        );
        return Err(deny(
            StatusCode::FORBIDDEN,
            "egress",
            format!(
                "{host} is not a host any proxied secret may go to, and egress is deny (--proxy-egress, proxy_egress)"
            ),
        ));
    }
    let (mut parts, body) = req.into_parts();
    proxy.check_foreign(tenant, &parts, &host, port)?;
    tenant
        .table
        .request(&host, false, &mut parts.uri, &mut parts.headers)
        .map_err(|l| proxy.leak(tenant, &l, &parts.method, &host, port))?;
    let upstream = proxy.upstream(&host, port, false)?;
    send(tenant, &upstream, Request::from_parts(parts, body), false).await
}

/// A request inside an intercepted TLS connection to `host:port` (HTTP/1.1
/// or HTTP/2, origin or absolute form).
async fn inner(
    proxy: &Arc<Proxy>,
    tenant: &Arc<Tenant>,
    host: &str,
    port: u16,
    req: Request<Incoming>,
) -> Result<Response<Body>, Deny> {
    // A plugin restarted (or stopped) since this connection was opened:
    // its old placeholders are no longer its own.
    if !proxy.admitted(tenant) {
        return Err(deny(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "auth",
            "these proxy credentials were withdrawn; reconnect with the current ones",
        ));
    }
    let (mut parts, body) = req.into_parts();
    proxy.check_foreign(tenant, &parts, host, port)?;
    let n = tenant
        .table
        .request(host, true, &mut parts.uri, &mut parts.headers)
        .map_err(|l| proxy.leak(tenant, &l, &parts.method, host, port))?;
    if n > 0 {
        tenant.counts.substituted.fetch_add(1, Ordering::Relaxed);
    }
    // Responses must be readable to be redacted: no compression.
    parts.headers.remove(header::ACCEPT_ENCODING);
    let upstream = proxy.upstream(host, port, true)?;
    send(tenant, &upstream, Request::from_parts(parts, body), true).await
}

/// Forwards a request and streams the response back, values turned into
/// placeholders when `redact`. The upstream client puts the request in the
/// form its connection's protocol wants.
async fn send(
    tenant: &Arc<Tenant>,
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
    let body = Metered::new(body, Arc::clone(&tenant.counts.bytes)).boxed();
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
        let redactor = redact.then(|| tenant.table.response_redactor());
        tokio::spawn(async move {
            if let (Ok(a), Ok(b)) = (client.await, server.await) {
                relay_upgraded(TokioIo::new(a), TokioIo::new(b), redactor).await;
            }
        });
        let (mut parts, _) = response.into_parts();
        if redact {
            tenant.table.response_headers(&mut parts.headers);
        }
        return Ok(Response::from_parts(
            parts,
            Empty::new().map_err(|never| match never {}).boxed(),
        ));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    // Whatever the upstream spoke, the child's connection says what it is.
    parts.version = http::Version::HTTP_11;
    let body = Metered::new(body, Arc::clone(&tenant.counts.bytes)).boxed();
    if redact {
        tenant.table.response_headers(&mut parts.headers);
        let body = Redacted::new(body, tenant.table.response_redactor());
        return Ok(Response::from_parts(parts, body.boxed()));
    }
    Ok(Response::from_parts(parts, body))
}

/// Relays an upgraded connection (a websocket) both ways until each side
/// is done. What the upstream sends goes through `redactor` when there is
/// one, so an upstream that echoes the value hands the child its
/// placeholder: same length, so framing is kept. Bytes held back as the
/// possible start of a value are released once the upstream has been
/// quiet for the relay's idle time, as `--mask` does for a prompt.
async fn relay_upgraded<C, S>(mut client: C, mut server: S, redactor: Option<Redactor>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(mut redactor) = redactor else {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return;
    };
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    // The upstream's bytes may hold the value until redacted.
    let mut buf = zeroize::Zeroizing::new(vec![0u8; 16 << 10]);
    let mut out = Vec::with_capacity(buf.len() + 256);
    loop {
        out.clear();
        let read = if redactor.held() > 0 {
            let Ok(read) =
                tokio::time::timeout(crate::child::relay::IDLE, server_read.read(&mut buf)).await
            else {
                redactor.flush_held(&mut out);
                if client_write.write_all(&out).await.is_err() {
                    return;
                }
                continue;
            };
            read
        } else {
            server_read.read(&mut buf).await
        };
        match read {
            Ok(n) if n > 0 => redactor.push(&buf[..n], &mut out),
            _ => {
                redactor.finish(&mut out);
                let _ = client_write.write_all(&out).await;
                let _ = client_write.shutdown().await;
                return;
            }
        }
        if client_write.write_all(&out).await.is_err() {
            return;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every https upstream shares one TLS client: the roots are read and
    /// parsed on the first, not again for each host, until the client is
    /// `TLS_REFRESH` old.
    #[test]
    fn upstreams_share_one_tls_client() {
        let dir = crate::fsio::private_tempdir();
        let paths = crate::paths::Paths {
            config_dir: dir.path().to_owned(),
            data_dir: dir.path().to_owned(),
            audit: None,
        };
        let (audit, _writer) = Audit::start(&paths);
        let proxy = Proxy::new(None, audit);
        let first = proxy.client_tls().expect("system roots");
        let second = proxy.client_tls().expect("system roots");
        assert!(Arc::ptr_eq(&first, &second));
        assert!(proxy.upstream("a.example", 443, true).is_ok());
        assert!(proxy.upstream("b.example", 443, true).is_ok());
        assert!(Arc::ptr_eq(&first, &proxy.client_tls().expect("roots")));
        // Once it is as old as the refresh interval: made afresh.
        let mut proxy = proxy;
        proxy.tls_refresh = Duration::ZERO;
        let fresh = proxy.client_tls().expect("roots");
        assert!(!Arc::ptr_eq(&first, &fresh));
    }
}

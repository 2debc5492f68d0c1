//! The client side: one `Upstream` per route target, with its own pool of
//! keep-alive connections (over rustls for https, verified against the
//! system's roots plus the route's `ca_file`), a connect timeout, a timeout
//! for the response head, an idle timeout between body frames, and a cap
//! on idle connections kept. Bodies stream in both directions; this module
//! never looks inside them.
//!
//! Over TLS it offers HTTP/2 and HTTP/1.1 by ALPN: an upstream that picks
//! HTTP/2 gets one multiplexed connection, shared by every request until
//! it closes; otherwise HTTP/1.1 connections are pooled. A request asking
//! for an upgrade (a websocket) always goes on an HTTP/1.1 connection of
//! its own. The caller hands over a request in either form (origin-form
//! with `Host`, or absolute); it is reshaped for the protocol the
//! connection speaks.
//!
//! It knows nothing about routes, tokens or secrets: the caller hands it a
//! finished request. The `exec --proxy` interceptor can reuse it as is.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Request, Response, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::Upstream as Target;
use crate::error::{Error, Result};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type both directions use.
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// How long a TCP connect plus TLS handshake may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the upstream may take to start its response (a model thinking
/// before its first token is slow, but not this slow).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a body may go without a frame, in either direction.
pub(crate) const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Idle pooled connections older than this are closed.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per upstream.
const POOL_MAX_IDLE: usize = 256;

/// Why a request could not be completed upstream.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Connecting or the TLS handshake failed (502).
    Connect(String),
    /// The upstream did not answer in time (504).
    Timeout,
    /// The exchange broke (502); `body_limit` when our request-body cap cut
    /// it (413).
    Exchange { message: String, body_limit: bool },
}

/// The ALPN names.
const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";

/// How often an idle HTTP/2 connection is pinged, so a dead one is noticed.
const H2_KEEPALIVE: Duration = Duration::from_secs(30);

/// The TLS side of an upstream: a connector offering HTTP/2 and HTTP/1.1,
/// one offering HTTP/1.1 only (for upgrades), and the server's name.
struct Tls {
    any: TlsConnector,
    http1: TlsConnector,
    name: ServerName<'static>,
}

/// A connection ready for a request.
enum Sender {
    Http1(http1::SendRequest<Body>),
    Http2(http2::SendRequest<Body>),
}

/// One upstream and its idle connections.
pub(crate) struct Upstream {
    pub target: Target,
    tls: Option<Tls>,
    idle: Mutex<Vec<(http1::SendRequest<Body>, Instant)>>,
    /// The shared HTTP/2 connection, once the upstream chose HTTP/2.
    h2: Mutex<Option<http2::SendRequest<Body>>>,
}

impl Upstream {
    /// Prepares (does not connect) an upstream; `ca_file` adds roots.
    pub(crate) fn new(target: Target, ca_file: Option<&Path>) -> Result<Self> {
        let tls = if target.tls {
            Some(Arc::new(client_config(ca_file)?))
        } else {
            None
        };
        Self::with_tls(target, tls)
    }

    /// Prepares an upstream with a TLS configuration of the caller's (the
    /// remote stores trust only a named CA file when one is set); `tls` is
    /// used only when the target is https, and its ALPN protocols are set
    /// here (HTTP/2 and HTTP/1.1).
    pub(crate) fn with_tls(target: Target, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self> {
        let tls = match tls.filter(|_| target.tls) {
            Some(config) => {
                let name = ServerName::try_from(target.host.clone()).map_err(|_| {
                    Error::usage(format!("{} is not a valid TLS server name", target.host))
                })?;
                // The caller's configuration, twice: one offering HTTP/2
                // and HTTP/1.1, one HTTP/1.1 only (for upgrades).
                let mut any = Arc::unwrap_or_clone(config);
                let mut http1 = any.clone();
                any.alpn_protocols = vec![H2.to_vec(), HTTP11.to_vec()];
                http1.alpn_protocols = vec![HTTP11.to_vec()];
                Some(Tls {
                    any: TlsConnector::from(Arc::new(any)),
                    http1: TlsConnector::from(Arc::new(http1)),
                    name,
                })
            }
            None if target.tls => {
                return Err(Error::internal(format!(
                    "no TLS configuration for https://{}",
                    target.authority()
                )));
            }
            None => None,
        };
        Ok(Self {
            target,
            tls,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
        })
    }

    /// Sends `req` and returns the response head; the body streams as the
    /// upstream sends it. A request with `Upgrade` goes over HTTP/1.1.
    pub(crate) async fn send(
        self: &Arc<Self>,
        req: Request<Body>,
    ) -> std::result::Result<Response<Incoming>, Failure> {
        let mut req = req;
        let upgrade = req.headers().contains_key(header::UPGRADE);
        if !upgrade && let Some(mut sender) = self.shared_h2() {
            match tokio::time::timeout(
                HEAD_TIMEOUT,
                sender.try_send_request(self.shape(req, Version::HTTP_2)),
            )
            .await
            {
                Err(_) => return Err(Failure::Timeout),
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(mut e)) => match e.take_message() {
                    // The connection went away before the request left:
                    // it goes on a new one (which replaces the shared one).
                    Some(unsent) => req = unsent,
                    None => return Err(exchange(&e.into_error())),
                },
            }
        }
        // A pooled connection may have been closed by the peer since; its
        // request is handed back unsent, and goes on a fresh connection.
        while let Some(mut sender) = self.pooled() {
            match tokio::time::timeout(
                HEAD_TIMEOUT,
                sender.try_send_request(self.shape(req, Version::HTTP_11)),
            )
            .await
            {
                Err(_) => return Err(Failure::Timeout),
                Ok(Ok(response)) => {
                    self.recycle(sender);
                    return Ok(response);
                }
                Ok(Err(mut e)) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(exchange(&e.into_error())),
                },
            }
        }
        let sender = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(upgrade))
            .await
            .map_err(|_| Failure::Connect(format!("no connection within {CONNECT_TIMEOUT:?}")))??;
        match sender {
            Sender::Http1(mut sender) => {
                let req = self.shape(req, Version::HTTP_11);
                match tokio::time::timeout(HEAD_TIMEOUT, sender.send_request(req)).await {
                    Err(_) => Err(Failure::Timeout),
                    Ok(Ok(response)) => {
                        self.recycle(sender);
                        Ok(response)
                    }
                    Ok(Err(e)) => Err(exchange(&e)),
                }
            }
            Sender::Http2(mut sender) => {
                *self.h2.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender.clone());
                let req = self.shape(req, Version::HTTP_2);
                match tokio::time::timeout(HEAD_TIMEOUT, sender.send_request(req)).await {
                    Err(_) => Err(Failure::Timeout),
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(e)) => Err(exchange(&e)),
                }
            }
        }
    }

    /// The request as `version` wants it: HTTP/1.1 takes the origin form
    /// and `Host`; HTTP/2 takes the absolute form (`:scheme`, `:authority`)
    /// and no `Host`. The authority is the request's `Host`, else its URI's,
    /// else the target's.
    fn shape(&self, req: Request<Body>, version: Version) -> Request<Body> {
        let (mut parts, body) = req.into_parts();
        let authority = parts
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| {
                parts
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            })
            .or_else(|| HeaderValue::from_str(&self.target.authority()).ok());
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut uri = http::uri::Parts::default();
        if version == Version::HTTP_2 {
            parts.headers.remove(header::HOST);
            uri.scheme = Some(if self.target.tls {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            });
            uri.authority = authority.and_then(|a| a.to_str().ok()?.parse().ok());
        } else if let Some(a) = authority {
            parts.headers.insert(header::HOST, a);
        }
        uri.path_and_query = Some(path);
        if let Ok(u) = Uri::from_parts(uri) {
            parts.uri = u;
        }
        parts.version = version;
        Request::from_parts(parts, body)
    }

    /// The shared HTTP/2 connection while it is open.
    fn shared_h2(&self) -> Option<http2::SendRequest<Body>> {
        let mut h2 = self.h2.lock().unwrap_or_else(PoisonError::into_inner);
        if h2.as_ref().is_some_and(http2::SendRequest::is_closed) {
            *h2 = None;
        }
        h2.clone()
    }

    /// An idle connection that is still open, if any.
    fn pooled(&self) -> Option<http1::SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && now.saturating_duration_since(since) < POOL_IDLE {
                return Some(sender);
            }
        }
        None
    }

    /// Puts `sender` back in the pool once its response has been read.
    fn recycle(self: &Arc<Self>, mut sender: http1::SendRequest<Body>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = this.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < POOL_MAX_IDLE {
                    idle.push((sender, Instant::now()));
                }
            }
        });
    }

    /// A new connection: HTTP/2 when the upstream picks it by ALPN (never
    /// for an `upgrade`), else HTTP/1.1.
    async fn connect(&self, upgrade: bool) -> std::result::Result<Sender, Failure> {
        let address = format!("{}:{}", self.target.host, self.target.port);
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|e| Failure::Connect(format!("connecting to {address}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let handshake = |e: hyper::Error| Failure::Connect(format!("HTTP with {address}: {e}"));
        let Some(tls) = &self.tls else {
            return http1_over(TokioIo::new(tcp)).await.map_err(handshake);
        };
        let connector = if upgrade { &tls.http1 } else { &tls.any };
        let stream = connector
            .connect(tls.name.clone(), tcp)
            .await
            .map_err(|e| Failure::Connect(format!("TLS with {address}: {e}")))?;
        if stream.get_ref().1.alpn_protocol() == Some(H2) {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(H2_KEEPALIVE)
                .handshake(TokioIo::new(stream))
                .await
                .map_err(handshake)?;
            tokio::spawn(conn);
            return Ok(Sender::Http2(sender));
        }
        http1_over(TokioIo::new(stream)).await.map_err(handshake)
    }
}

/// An HTTP/1.1 connection over `io`, its driver spawned.
async fn http1_over<T>(io: T) -> std::result::Result<Sender, hyper::Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await?;
    tokio::spawn(conn.with_upgrades());
    Ok(Sender::Http1(sender))
}

fn exchange(e: &hyper::Error) -> Failure {
    let mut body_limit = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        body_limit |= s.is::<http_body_util::LengthLimitError>();
        source = s.source();
    }
    Failure::Exchange {
        message: e.to_string(),
        body_limit,
    }
}

/// TLS 1.2/1.3 with ring, verified (by rustls' WebPKI verifier) against
/// the system's roots (`SSL_CERT_FILE`, else the distribution's bundle,
/// and the certificates of `SSL_CERT_DIR`) plus those in `ca_file`.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let system = super::proxy::system_roots().map(|(_, pem)| pem);
    for pem in system.into_iter().chain([super::proxy::cert_dir_roots()]) {
        roots.add_parsable_certificates(
            CertificateDer::pem_slice_iter(&pem).filter_map(std::result::Result::ok),
        );
    }
    if let Some(path) = ca_file {
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::usage(format!("ca_file {}: {e}", path.display())))?
            .filter_map(std::result::Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(Error::usage_hint(
                format!("ca_file {} holds no PEM certificate", path.display()),
                "point ca_file at a PEM file of CA certificates",
            ));
        }
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Err(Error::usage_hint(
            "no trust roots: no system CA bundle was found",
            "install the ca-certificates package, set SSL_CERT_FILE to a PEM bundle (or SSL_CERT_DIR to a hashed directory), or name one with ca_file",
        ));
    }
    trusting(roots)
}

/// TLS 1.2/1.3 with ring, verified against `roots` only.
pub(crate) fn trusting(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A body that counts the bytes that pass, and fails when no frame came
/// for `BODY_IDLE_TIMEOUT`.
pub(crate) struct Metered<B> {
    inner: B,
    counter: Arc<AtomicU64>,
    idle: Pin<Box<tokio::time::Sleep>>,
    /// Released when the body is done (a concurrency slot).
    _held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<B> Metered<B> {
    pub(crate) fn new(inner: B, counter: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            counter,
            idle: Box::pin(tokio::time::sleep(BODY_IDLE_TIMEOUT)),
            _held: None,
        }
    }

    /// Keeps `permit` until the body is dropped.
    #[must_use]
    pub(crate) fn holding(mut self, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        self._held = Some(permit);
        self
    }
}

impl<B> HttpBody for Metered<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                this.idle
                    .as_mut()
                    .reset(tokio::time::Instant::now() + BODY_IDLE_TIMEOUT);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "no data for {}s",
                    BODY_IDLE_TIMEOUT.as_secs()
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_tls_config_offers_http2_except_for_upgrades() {
        let target = Target {
            tls: true,
            host: "example.test".into(),
            port: 443,
            base: String::new(),
        };
        // As the remote stores hand it over: whatever ALPN it had is set here.
        let mut config = client_config(None).expect("roots");
        config.alpn_protocols = vec![HTTP11.to_vec()];
        let upstream = Upstream::with_tls(target, Some(Arc::new(config))).expect("upstream");
        let tls = upstream.tls.as_ref().expect("tls");
        assert_eq!(tls.any.config().alpn_protocols, [H2, HTTP11]);
        assert_eq!(tls.http1.config().alpn_protocols, [HTTP11]);
    }
}

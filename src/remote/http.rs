//! What the HTTP-speaking remote stores share: one request, sent over the
//! broker's hyper client (`broker::upstream`: HTTP/2 when the server picks
//! it by ALPN, else HTTP/1.1) on a small current-thread tokio runtime that
//! exists only once a remote store is used; trust roots
//! (the system's, or a PEM file named by an environment variable, which
//! replaces them); a deadline for the whole exchange; bodies read with a
//! size cap into wiping buffers; and error bodies cut to 512 bytes for
//! messages. Redirects are never followed (they would carry the token).

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

use crate::broker::config::Upstream as Target;
use crate::broker::upstream::{self, Failure, Upstream};
use crate::error::{Error, Result};

/// The most of an error body a message shows.
pub(crate) const ERROR_BODY_SHOWN: usize = 512;
/// The largest response body read (a value is at most 1 MiB, plus JSON).
pub(crate) const MAX_BODY: usize = (1 << 20) + 64 * 1024;
/// How long one exchange (connect, TLS, request, whole response) may take.
const DEADLINE: Duration = Duration::from_secs(15);

/// One request to a remote store.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) url: &'a str,
    /// Header values may hold tokens: they are marked sensitive.
    pub(crate) headers: &'a [(&'static str, &'a str)],
    pub(crate) body: Option<(&'static str, &'a [u8])>,
}

/// What came back: the status and the body, in a wiping buffer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// Sends `call` and reads the whole reply, trusting the system roots or
/// the PEM file named by the first of `ca_vars` that is set. `reference`
/// names the reference in messages; `address` the server.
pub(crate) fn send(
    reference: &str,
    address: &str,
    ca_vars: &[&str],
    call: &Call<'_>,
) -> Result<Reply> {
    let uri: Uri = call.url.parse().map_err(|_| {
        remote_error(
            reference,
            format!("{} is not a URL", escape(call.url)),
            "check the server address",
        )
    })?;
    let target = target(&uri).ok_or_else(|| {
        remote_error(
            reference,
            format!("{} is not an http:// or https:// URL", escape(call.url)),
            "check the server address",
        )
    })?;
    let upstream = upstream(reference, target, ca_vars)?;
    let mut request = Request::builder()
        .method(call.method.clone())
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, upstream.target.authority());
    for (name, value) in call.headers {
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            remote_error(
                reference,
                format!("the {name} header would not be valid HTTP"),
                "check the token or namespace for control characters",
            )
        })?;
        value.set_sensitive(true);
        request = request.header(*name, value);
    }
    let body = match call.body {
        Some((content_type, bytes)) => {
            request = request.header(http::header::CONTENT_TYPE, content_type);
            Bytes::copy_from_slice(bytes)
        }
        None => Bytes::new(),
    };
    let request = request
        .body(
            http_body_util::Full::new(body)
                .map_err(|never| match never {})
                .boxed(),
        )
        .map_err(|e| Error::internal(format!("building a request: {e}")))?;
    let exchange = async {
        let response = upstream
            .send(request)
            .await
            .map_err(|f| failure(reference, address, f))?;
        let status = response.status().as_u16();
        let body = read_body(reference, response.into_body()).await?;
        Ok(Reply { status, body })
    };
    block_on(async {
        tokio::time::timeout(DEADLINE, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(remote_error(
                    reference,
                    format!("{address} did not answer within {}s", DEADLINE.as_secs()),
                    "check the network",
                ))
            })
    })
}

/// `application/x-www-form-urlencoded` text of `pairs`, in a wiping buffer
/// (a client secret goes through it).
pub(crate) fn form(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, part) in [name, value].into_iter().enumerate() {
            if j > 0 {
                out.push('=');
            }
            for &b in part.as_bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                        out.push(char::from(b));
                    }
                    b' ' => out.push('+'),
                    _ => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.push('%');
                        out.push(char::from(HEX[usize::from(b >> 4)]));
                        out.push(char::from(HEX[usize::from(b & 15)]));
                    }
                }
            }
        }
    }
    out
}

/// Runs `future` on the remote stores' runtime: a current-thread runtime
/// made on first use and shared, so concurrent fetches (one thread each)
/// share its connections. Called from inside another runtime, it runs on
/// a thread of its own (a runtime cannot block inside a runtime).
fn block_on<T: Send>(future: impl Future<Output = Result<T>> + Send) -> Result<T> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = match RUNTIME.get() {
        Some(r) => r,
        None => {
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| Error::io("starting the runtime for remote stores", e))?;
            RUNTIME.get_or_init(|| built)
        }
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|_| Err(Error::internal("a remote fetch thread failed")))
        });
    }
    runtime.block_on(future)
}

/// The upstream for `target` with the trust in force, made once per
/// server and trust setting and shared, so its connections are reused and
/// the system roots are loaded once, not per fetch.
fn upstream(reference: &str, target: Target, ca_vars: &[&str]) -> Result<Arc<Upstream>> {
    type Key = (bool, String, u16, Option<OsString>);
    static UPSTREAMS: OnceLock<Mutex<HashMap<Key, Arc<Upstream>>>> = OnceLock::new();
    let ca = ca_vars.iter().find_map(|v| {
        std::env::var_os(v)
            .filter(|p| !p.is_empty())
            .map(|p| (*v, p))
    });
    let key = (
        target.tls,
        target.host.clone(),
        target.port,
        ca.as_ref().map(|(_, p)| p.clone()),
    );
    // Built under the lock, so concurrent first fetches build it once.
    let mut upstreams = UPSTREAMS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(u) = upstreams.get(&key) {
        return Ok(Arc::clone(u));
    }
    let tls = if target.tls {
        Some(Arc::new(match &ca {
            None => upstream::client_config(None).map_err(|e| {
                remote_error(reference, e.to_string(), "check the system's CA roots")
            })?,
            Some((var, path)) => only_roots(reference, var, path)?,
        }))
    } else {
        None
    };
    let made = Arc::new(
        Upstream::with_tls(target, tls)
            .map_err(|e| remote_error(reference, e.to_string(), "check the server address"))?,
    );
    upstreams.insert(key, Arc::clone(&made));
    Ok(made)
}

/// TLS that trusts only the certificates in the PEM file at `path` (named
/// by `var`), as `VAULT_CACERT` does for the vault CLI.
fn only_roots(reference: &str, var: &str, path: &OsString) -> Result<rustls::ClientConfig> {
    let shown = path.to_string_lossy();
    let fix = "point it at a PEM file of CA certificates";
    let pem = std::fs::read(path)
        .map_err(|e| remote_error(reference, format!("{var}: reading {shown}: {e}"), fix))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).filter_map(std::result::Result::ok) {
        roots.add(cert).map_err(|e| {
            remote_error(
                reference,
                format!("{var}: {shown}: a certificate was refused ({e})"),
                fix,
            )
        })?;
    }
    if roots.is_empty() {
        return Err(remote_error(
            reference,
            format!("{var}: {shown} holds no certificate"),
            fix,
        ));
    }
    upstream::trusting(roots)
}

/// Scheme, host and port of `uri`, if it is an http(s) URL with a host and
/// no credentials.
fn target(uri: &Uri) -> Option<Target> {
    let tls = match uri.scheme_str()? {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    Some(Target {
        tls,
        host: authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        base: String::new(),
    })
}

/// Reads a body of at most `MAX_BODY` bytes into a wiping buffer, sized
/// from the declared length when there is one. A buffer that must grow is
/// copied into a larger one and wiped, never reallocated in place (that
/// would leave an unwiped copy behind).
async fn read_body(reference: &str, mut body: hyper::body::Incoming) -> Result<Zeroizing<Vec<u8>>> {
    let too_large = || {
        remote_error(
            reference,
            "the response is larger than 1 MiB",
            "check the reference",
        )
    };
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let first = declared.map_or(16 << 10, |n| usize::try_from(n).unwrap_or(MAX_BODY));
    let mut buf = Zeroizing::new(Vec::with_capacity(first));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            remote_error(
                reference,
                format!("reading the response: {e}"),
                "try again; check the network",
            )
        })?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let wanted = buf.len() + data.len();
        if wanted > MAX_BODY {
            return Err(too_large());
        }
        if wanted > buf.capacity() {
            let mut larger = Zeroizing::new(Vec::with_capacity(
                wanted.max(buf.capacity() * 2).min(MAX_BODY),
            ));
            larger.extend_from_slice(&buf);
            buf = larger;
        }
        buf.extend_from_slice(data);
    }
    Ok(buf)
}

/// At most `ERROR_BODY_SHOWN` bytes of an error body, on one line.
#[must_use]
pub(crate) fn cut(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_SHOWN)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > ERROR_BODY_SHOWN {
        out.push_str("… (cut)");
    }
    out
}

/// Maps a failure before any HTTP status to a clear message.
fn failure(reference: &str, address: &str, f: Failure) -> Error {
    let (what, hint) = match f {
        Failure::Connect(m) if m.starts_with("TLS") || m.contains("certificate") => (
            format!("TLS with {address} failed ({m})"),
            "check the server's certificate, or set the CA file variable",
        ),
        Failure::Connect(m) => (
            format!("{address} is unreachable ({m})"),
            "check the address and that the server runs",
        ),
        Failure::Timeout => (
            format!("{address} did not answer in time"),
            "check the network",
        ),
        Failure::Exchange { message, .. } => (
            format!("talking to {address} failed ({message})"),
            "check the address",
        ),
    };
    remote_error(reference, what, hint)
}

fn escape(text: &str) -> String {
    super::escape_for_terminal(text)
}

pub(crate) fn remote_error(
    reference: &str,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> Error {
    Error::Remote {
        reference: reference.to_owned(),
        message: message.into(),
        hint: hint.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_cut_to_512_bytes_on_one_line() {
        let long = "x".repeat(2000);
        let shown = cut(long.as_bytes());
        assert!(shown.starts_with(&"x".repeat(512)));
        assert!(shown.ends_with("(cut)"));
        assert!(shown.len() < 530);
        assert_eq!(cut(b"a\nb"), "a b");
    }

    #[test]
    fn forms_encode_reserved_bytes() {
        let text = form(&[
            ("grant_type", "client_credentials"),
            ("secret", "a b&c=d/é~"),
        ]);
        assert_eq!(
            text.as_str(),
            "grant_type=client_credentials&secret=a+b%26c%3Dd%2F%C3%A9%7E"
        );
    }

    #[test]
    fn only_http_urls_with_a_host_are_targets() {
        let t = target(&"https://[::1]:8200/v1/x?y=1".parse().expect("uri")).expect("target");
        assert_eq!((t.tls, t.host.as_str(), t.port), (true, "::1", 8200));
        let t = target(&"http://Vault.example".parse().expect("uri")).expect("target");
        assert_eq!(
            (t.tls, t.host.as_str(), t.port),
            (false, "vault.example", 80)
        );
        assert!(target(&"ftp://x/y".parse().expect("uri")).is_none());
        assert!(target(&"https://user:pw@x/y".parse().expect("uri")).is_none());
    }
}

//! Swapping placeholders for values and back, for `exec --proxy`. A
//! request's headers (including the user:password inside `Basic`
//! credentials), its path and its query string get each placeholder replaced by its
//! value, but only when the request goes over TLS to a host the value's
//! grant allows; a placeholder bound anywhere else makes the request a
//! [`Leak`]. Responses go the other way: the streaming redactor
//! (`mask`) replaces each value, raw or in base64/hex, with the same form
//! of its placeholder. Placeholders have the value's length, so lengths
//! (and `Content-Length`) never change. Bodies of requests are not looked
//! into.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64ct::{Base64, Base64Unpadded, Base64Url, Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue, PROXY_AUTHORIZATION};
use http::uri::{PathAndQuery, Uri};
use http_body::{Body as HttpBody, Frame};
use zeroize::Zeroizing;

use super::upstream::BoxError;
use crate::error::Result;
use crate::grants;
use crate::mask::Redactor;
use crate::value::SecretValue;

/// One proxied value: what the child holds instead, and where it may go.
pub(crate) struct Proxied {
    /// The reference as written (`@openai`), for messages and audit.
    pub label: String,
    /// The handle that answered (no `@`), for audit records.
    pub handle: Option<String>,
    pub placeholder: Vec<u8>,
    pub value: SecretValue,
    /// From the grant: exact names or `*.domain`.
    pub allowed_hosts: Vec<String>,
}

/// Every proxied value of a launch.
pub(crate) struct Table {
    pub secrets: Vec<Proxied>,
    /// Values back to placeholders, in responses.
    redactor: Redactor,
}

/// A placeholder on its way somewhere its value may not go.
#[derive(Debug)]
pub(crate) struct Leak {
    /// Which secret (index into `Table::secrets`).
    pub secret: usize,
    pub why: &'static str,
}

impl Table {
    pub(crate) fn new(secrets: Vec<Proxied>) -> Result<Self> {
        let mut pairs = Vec::new();
        for s in &secrets {
            pairs.extend(forms(s.value.expose(), &s.placeholder));
        }
        let redactor = Redactor::replacing(pairs)?;
        Ok(Self { secrets, redactor })
    }

    /// Whether any value may go to `host` (then its connections are
    /// intercepted).
    #[must_use]
    pub(crate) fn any_allowed(&self, host: &str) -> bool {
        self.secrets
            .iter()
            .any(|s| grants::host_allowed(&s.allowed_hosts, host))
    }

    /// Every host pattern any value may go to.
    #[must_use]
    pub(crate) fn hosts(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in self.secrets.iter().flat_map(|s| &s.allowed_hosts) {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
        out
    }

    /// A redactor for one response body.
    #[must_use]
    pub(crate) fn response_redactor(&self) -> Redactor {
        self.redactor.fresh()
    }

    /// Rewrites a request bound for `host` (`tls`: over a verified TLS
    /// connection): placeholders become values where allowed. Returns how
    /// many were substituted, or the first leak (nothing is changed then).
    pub(crate) fn request(
        &self,
        host: &str,
        tls: bool,
        uri: &mut Uri,
        headers: &mut HeaderMap,
    ) -> std::result::Result<usize, Leak> {
        // Check everything first, so a refused request is never half-done.
        for (i, s) in self.secrets.iter().enumerate() {
            if !seen(s, uri, headers) {
                continue;
            }
            if !tls {
                return Err(Leak {
                    secret: i,
                    why: "it would travel in clear text (plain http)",
                });
            }
            if !grants::host_allowed(&s.allowed_hosts, host) {
                return Err(Leak {
                    secret: i,
                    why: "the host is not in its grant's allowed_hosts",
                });
            }
        }
        let mut count = 0;
        for (name, v) in headers.iter_mut() {
            let mut bytes = Zeroizing::new(v.as_bytes().to_vec());
            let mut n = self.swap(&mut bytes);
            if n == 0
                && is_credentials(name)
                && let Some(mut decoded) = basic(v)
            {
                n = self.swap(&mut decoded);
                if n > 0 {
                    let mut encoded = Zeroizing::new(b"Basic ".to_vec());
                    encoded.extend_from_slice(Base64::encode_string(&decoded).as_bytes());
                    bytes = encoded;
                }
            }
            if n > 0 {
                let mut value = HeaderValue::from_bytes(&bytes).map_err(|_| Leak {
                    secret: 0,
                    why: "the substituted header is not valid",
                })?;
                value.set_sensitive(true);
                *v = value;
                count += n;
            }
        }
        if let Some(pq) = uri.path_and_query() {
            let mut text = Zeroizing::new(pq.as_str().as_bytes().to_vec());
            let n = self.swap(&mut text);
            if n > 0 {
                let pq = PathAndQuery::try_from(text.as_slice()).map_err(|_| Leak {
                    secret: 0,
                    why: "the substituted query is not valid",
                })?;
                let mut parts = uri.clone().into_parts();
                parts.path_and_query = Some(pq);
                *uri = Uri::from_parts(parts).map_err(|_| Leak {
                    secret: 0,
                    why: "the substituted query is not valid",
                })?;
                count += n;
            }
        }
        Ok(count)
    }

    /// The first value whose placeholder `uri` or `headers` carry, if any
    /// (for a placeholder that is not the sender's own).
    #[must_use]
    pub(crate) fn carried(&self, uri: &Uri, headers: &HeaderMap) -> Option<&Proxied> {
        self.secrets.iter().find(|s| seen(s, uri, headers))
    }

    /// Replaces every placeholder in `bytes` by its value, in place (the
    /// lengths are equal); returns how many.
    fn swap(&self, bytes: &mut [u8]) -> usize {
        let mut n = 0;
        for s in &self.secrets {
            let mut from = 0;
            while let Some(at) = find(&bytes[from..], &s.placeholder) {
                let start = from + at;
                let end = start + s.placeholder.len();
                bytes[start..end].copy_from_slice(s.value.expose());
                from = end;
                n += 1;
            }
        }
        n
    }

    /// Replaces values by placeholders in response headers.
    pub(crate) fn response_headers(&self, headers: &mut HeaderMap) {
        for v in headers.values_mut() {
            let mut bytes = v.as_bytes().to_vec();
            let mut changed = false;
            for s in &self.secrets {
                let mut from = 0;
                while let Some(at) = find(&bytes[from..], s.value.expose()) {
                    let start = from + at;
                    let end = start + s.placeholder.len();
                    bytes[start..end].copy_from_slice(&s.placeholder);
                    from = end;
                    changed = true;
                }
            }
            if changed && let Ok(new) = HeaderValue::from_bytes(&bytes) {
                *v = new;
            }
        }
    }
}

/// Whether `s`'s placeholder is anywhere a value would be swapped in: a
/// header (or the credentials inside `Basic`), the path or the query.
fn seen(s: &Proxied, uri: &Uri, headers: &HeaderMap) -> bool {
    headers.iter().any(|(name, v)| {
        find(v.as_bytes(), &s.placeholder).is_some()
            || (is_credentials(name)
                && basic(v).is_some_and(|d| find(&d, &s.placeholder).is_some()))
    }) || uri
        .path_and_query()
        .is_some_and(|pq| find(pq.as_str().as_bytes(), &s.placeholder).is_some())
}

fn is_credentials(name: &http::HeaderName) -> bool {
    name == AUTHORIZATION || name == PROXY_AUTHORIZATION
}

/// The decoded `user:password` of a `Basic` header value.
fn basic(v: &HeaderValue) -> Option<Zeroizing<Vec<u8>>> {
    let b = v.as_bytes();
    if b.len() < 6 || !b[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let text = std::str::from_utf8(&b[6..]).ok()?.trim();
    Base64::decode_vec(text).ok().map(Zeroizing::new)
}

/// Where `needle` first occurs in `hay`.
#[must_use]
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value and its placeholder in the forms a response may carry them:
/// raw, base64 (both alphabets, padded or not) and hex (both cases).
fn forms(value: &[u8], placeholder: &[u8]) -> Vec<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    let encoders: [fn(&[u8]) -> String; 6] = [
        |b| Base64::encode_string(b),
        |b| Base64Unpadded::encode_string(b),
        |b| Base64Url::encode_string(b),
        |b| Base64UrlUnpadded::encode_string(b),
        |b| b.iter().map(|x| format!("{x:02x}")).collect(),
        |b| b.iter().map(|x| format!("{x:02X}")).collect(),
    ];
    let mut out = vec![(Zeroizing::new(value.to_vec()), placeholder.to_vec())];
    for encode in encoders {
        let from = Zeroizing::new(encode(value).into_bytes());
        if !out.iter().any(|(p, _)| **p == *from) {
            out.push((from, encode(placeholder).into_bytes()));
        }
    }
    out
}

/// A response body with every value replaced by its placeholder, as it
/// streams: only a possible start of a value is held back, and only until
/// more comes or the upstream has been quiet for the relay's idle time
/// (then it is released, as `--mask` releases a prompt), so a stream
/// whose event ends like the start of a value is not held up.
pub(crate) struct Redacted<B> {
    inner: B,
    redactor: Redactor,
    /// Trailers waiting for the held-back bytes to go first.
    trailers: Option<HeaderMap>,
    done: bool,
    /// Running while bytes are held and the upstream is quiet.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Redacted<B> {
    pub(crate) fn new(inner: B, redactor: Redactor) -> Self {
        Self {
            inner,
            redactor,
            trailers: None,
            done: false,
            idle: None,
        }
    }

    /// With bytes held and nothing new: once the idle time has passed,
    /// the held bytes (redacted as at the end of a stream).
    fn idle_release(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        if self.redactor.held() == 0 {
            self.idle = None;
            return None;
        }
        let idle = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(crate::child::relay::IDLE)));
        if idle.as_mut().poll(cx).is_pending() {
            return None;
        }
        self.idle = None;
        let mut out = Vec::new();
        self.redactor.flush_held(&mut out);
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

impl<B> HttpBody for Redacted<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(t) = this.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(t))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let polled = Pin::new(&mut this.inner).poll_frame(cx);
            if !polled.is_pending() {
                this.idle = None;
            }
            match polled {
                Poll::Pending => {
                    return match this.idle_release(cx) {
                        Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                        None => Poll::Pending,
                    };
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let mut out = Vec::with_capacity(data.len() + 64);
                        this.redactor.push(&data, &mut out);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok();
                        this.done = true;
                        let mut out = Vec::new();
                        this.redactor.finish(&mut out);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                },
                Poll::Ready(None) => {
                    this.done = true;
                    let mut out = Vec::new();
                    this.redactor.finish(&mut out);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::new(vec![Proxied {
            label: "@k".into(),
            handle: Some("k".into()),
            placeholder: b"sk-PLACEHOLDERxxxxxxxxxx".to_vec(),
            value: SecretValue::new(b"sk-realvalue0123456789ab".to_vec()),
            allowed_hosts: vec!["api.example.com".into()],
        }])
        .expect("table")
    }

    #[test]
    fn headers_query_and_basic_are_substituted_only_where_allowed() {
        let t = table();
        let mut uri: Uri = "/v1/x?key=sk-PLACEHOLDERxxxxxxxxxx&a=1"
            .parse()
            .expect("uri");
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-PLACEHOLDERxxxxxxxxxx"),
        );
        h.insert(
            PROXY_AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "Basic {}",
                Base64::encode_string(b"user:sk-PLACEHOLDERxxxxxxxxxx")
            ))
            .expect("basic"),
        );
        let mut u2 = uri.clone();
        let mut h2 = h.clone();
        let leak = t
            .request("evil.example.net", true, &mut u2, &mut h2)
            .expect_err("leak");
        assert_eq!(leak.secret, 0);
        assert_eq!(h2, h, "nothing changed on a refusal");
        // In the path too: swapped there, so checked there.
        let mut in_path: Uri = "/v1/sk-PLACEHOLDERxxxxxxxxxx/x".parse().expect("uri");
        let before = in_path.clone();
        assert!(
            t.request(
                "evil.example.net",
                true,
                &mut in_path,
                &mut HeaderMap::new()
            )
            .is_err()
        );
        assert_eq!(in_path, before);
        assert!(t.carried(&before, &HeaderMap::new()).is_some());
        assert!(
            t.carried(&"/v1/x".parse().expect("uri"), &HeaderMap::new())
                .is_none()
        );
        assert!(
            t.request("api.example.com", false, &mut u2, &mut h2)
                .is_err()
        );
        let n = t
            .request("api.example.com", true, &mut uri, &mut h)
            .expect("allowed");
        assert_eq!(n, 3);
        assert_eq!(uri.query(), Some("key=sk-realvalue0123456789ab&a=1"));
        assert_eq!(h[AUTHORIZATION], "Bearer sk-realvalue0123456789ab");
        let decoded = basic(&h[PROXY_AUTHORIZATION]).expect("basic");
        assert_eq!(&decoded[..], b"user:sk-realvalue0123456789ab");
    }

    #[test]
    fn responses_get_placeholders_back() {
        let t = table();
        let mut r = t.response_redactor();
        let mut out = Vec::new();
        r.push(b"{\"echo\":\"sk-realval", &mut out);
        r.push(b"ue0123456789ab\"} ", &mut out);
        r.push(
            Base64::encode_string(b"sk-realvalue0123456789ab").as_bytes(),
            &mut out,
        );
        r.finish(&mut out);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("sk-PLACEHOLDERxxxxxxxxxx"), "{text}");
        assert!(!text.contains("realvalue"), "{text}");
        assert!(text.ends_with(&Base64::encode_string(b"sk-PLACEHOLDERxxxxxxxxxx")));
    }
}

//! What the HTTP-speaking remote stores share: an agent with timeouts and
//! the right trust roots (the system's, or a PEM file named by an
//! environment variable), bodies read with a size cap into wiping buffers,
//! and error bodies cut to 512 bytes for messages.

use std::io::Read;
use std::time::Duration;

use ureq::tls::{PemItem, RootCerts, TlsConfig};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The most of an error body a message shows.
pub const ERROR_BODY_SHOWN: usize = 512;
/// The largest response body read (a value is at most 1 MiB, plus JSON).
pub const MAX_BODY: usize = (1 << 20) + 64 * 1024;

/// An agent that does not treat HTTP errors as transport errors (we map
/// status codes ourselves), with timeouts, trusting the system roots or the
/// PEM file in `ca_var` (the first of them that is set).
///
/// Agents are made once per trust setting and shared: they pool
/// connections, and building the system roots is costly, so concurrent
/// fetches must not each pay for it.
pub fn agent(reference: &str, ca_vars: &[&str]) -> Result<ureq::Agent> {
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static AGENTS: OnceLock<Mutex<HashMap<Option<OsString>, ureq::Agent>>> = OnceLock::new();
    let ca = ca_vars.iter().find_map(|v| {
        std::env::var_os(v)
            .filter(|p| !p.is_empty())
            .map(|p| (*v, p))
    });
    // Built under the lock, so concurrent first fetches build it once.
    let mut agents = AGENTS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let key = ca.as_ref().map(|(_, p)| p.clone());
    if let Some(agent) = agents.get(&key) {
        return Ok(agent.clone());
    }
    let agent = new_agent(reference, ca)?;
    agents.insert(key, agent.clone());
    Ok(agent)
}

fn new_agent(reference: &str, ca: Option<(&str, std::ffi::OsString)>) -> Result<ureq::Agent> {
    let roots = match ca {
        None => RootCerts::PlatformVerifier,
        Some((var, path)) => {
            let pem = std::fs::read(&path).map_err(|e| {
                remote_error(
                    reference,
                    format!("{var}: reading {}: {e}", path.to_string_lossy()),
                    "point it at a PEM file of CA certificates",
                )
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(remote_error(
                    reference,
                    format!("{var}: {} holds no certificate", path.to_string_lossy()),
                    "point it at a PEM file of CA certificates",
                ));
            }
            RootCerts::new_with_certs(&certs)
        }
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A redirect would carry the token to wherever it points: report it.
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(15)))
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build();
    Ok(config.into())
}

/// Reads a body of at most `MAX_BODY` bytes into a wiping buffer.
pub fn read_body(
    reference: &str,
    response: &mut ureq::http::Response<ureq::Body>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_BODY + 1));
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY as u64 + 1)
        .reader();
    let read = (&mut reader)
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut buf);
    if let Err(e) = read {
        if buf.len() > MAX_BODY {
            return Err(remote_error(
                reference,
                "the response is larger than 1 MiB",
                "check the reference",
            ));
        }
        return Err(remote_error(
            reference,
            format!("reading the response: {e}"),
            "try again; check the network",
        ));
    }
    if buf.len() > MAX_BODY {
        return Err(remote_error(
            reference,
            "the response is larger than 1 MiB",
            "check the reference",
        ));
    }
    Ok(buf)
}

/// At most `ERROR_BODY_SHOWN` bytes of an error body, on one line.
#[must_use]
pub fn cut(body: &[u8]) -> String {
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

/// Maps a transport failure (no HTTP status) to a clear message.
pub fn transport_error(reference: &str, address: &str, e: &ureq::Error) -> Error {
    let (what, hint) = match e {
        // rustls reports a refused certificate through an I/O error.
        ureq::Error::Io(io) if io.to_string().contains("certificate") => (
            format!("TLS with {address} failed ({io})"),
            "check the server's certificate, or set the CA file variable",
        ),
        ureq::Error::Io(io) => (
            format!("{address} is unreachable ({io})"),
            "check the address and that the server runs",
        ),
        ureq::Error::HostNotFound => (
            format!("{address} is unreachable (host not found)"),
            "check the address",
        ),
        ureq::Error::ConnectionFailed => (
            format!("{address} is unreachable (connection failed)"),
            "check the address and that the server runs",
        ),
        ureq::Error::Timeout(t) => (
            format!("{address} did not answer in time ({t})"),
            "check the network",
        ),
        ureq::Error::Tls(t) => (
            format!("TLS with {address} failed ({t})"),
            "check the server's certificate, or set the CA file variable",
        ),
        other => (
            format!("talking to {address} failed ({other})"),
            "check the address",
        ),
    };
    remote_error(reference, what, hint)
}

pub fn remote_error(reference: &str, message: impl Into<String>, hint: impl Into<String>) -> Error {
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
}

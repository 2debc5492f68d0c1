//! OpenBao and HashiCorp Vault, KV version 2: `vault://MOUNT/PATH#FIELD`,
//! optionally pinned with `?version=N`. It owns the reference syntax, the
//! settings read from the environment (`VAULT_ADDR`/`BAO_ADDR`,
//! `VAULT_TOKEN`/`BAO_TOKEN` or `~/.vault-token`, AppRole with
//! `VAULT_ROLE_ID`/`VAULT_SECRET_ID`, `VAULT_NAMESPACE`,
//! `VAULT_CACERT`/`BAO_CACERT`), the AppRole login (once per process) and
//! the read. Tokens and values stay in wiping buffers and never reach a
//! message. A string field's bytes are the value; any other JSON field is
//! handed over as its compact JSON text.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use ::http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::http::{self, remote_error};
use crate::error::{Error, Result};
use crate::value::SecretValue;

/// The variables naming a CA file that replaces the system roots.
const CA_VARS: &[&str] = &["VAULT_CACERT", "BAO_CACERT"];

/// A parsed `vault://` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    mount: String,
    path: String,
    field: String,
    version: Option<u64>,
}

impl Reference {
    /// Parses what follows `vault://`: `MOUNT/PATH#FIELD`, with
    /// `?version=N` before or after `#FIELD`.
    pub fn parse(rest: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::usage_hint(
                format!("vault://{rest}: {why}"),
                "write vault://MOUNT/PATH#FIELD, e.g. vault://secret/openai#api_key (optionally ?version=N)",
            )
        };
        let (location, field) = rest.split_once('#').ok_or_else(|| bad("no #FIELD"))?;
        let (location, query_a) = split_query(location);
        let (field, query_b) = split_query(field);
        let version = match query_a.or(query_b) {
            None => None,
            Some(q) => Some(
                q.strip_prefix("version=")
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("the only query is ?version=N with N a positive number"))?,
            ),
        };
        let (mount, path) = location
            .split_once('/')
            .ok_or_else(|| bad("no PATH after the mount"))?;
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c))
        };
        if !segment_ok(mount)
            || !path.split('/').all(segment_ok)
            || path.split('/').any(|s| s == "." || s == "..")
        {
            return Err(bad(
                "the mount and path are segments of A-Z a-z 0-9 - _ . @ +",
            ));
        }
        if field.is_empty() || field.chars().any(char::is_control) {
            return Err(bad("the field is empty"));
        }
        Ok(Self {
            mount: mount.to_owned(),
            path: path.to_owned(),
            field: field.to_owned(),
            version,
        })
    }

    /// Reads the value, with settings from the environment.
    pub fn fetch(&self) -> Result<SecretValue> {
        self.fetch_with(&Settings::from_env())
    }

    /// Reads the value with explicit settings.
    pub fn fetch_with(&self, settings: &Settings) -> Result<SecretValue> {
        let me = super::escape_for_terminal(&self.to_string());
        let address = settings.address.as_deref().ok_or_else(|| {
            remote_error(
                &me,
                "no server address: VAULT_ADDR (or BAO_ADDR) is not set",
                "export VAULT_ADDR=https://vault.example.com:8200",
            )
        })?;
        let address = address.trim_end_matches('/');
        let token = settings.token(address, &me)?;
        let mut url = format!("{address}/v1/{}/data/{}", self.mount, self.path);
        if let Some(v) = self.version {
            url.push_str(&format!("?version={v}"));
        }
        let mut headers = vec![("X-Vault-Token", token_header(&token, &me)?)];
        if let Some(ns) = &settings.namespace {
            headers.push(("X-Vault-Namespace", ns.as_str()));
        }
        let http::Reply { status, body } = http::send(
            &me,
            address,
            CA_VARS,
            &http::Call {
                method: Method::GET,
                url: &url,
                headers: &headers,
                body: None,
            },
        )?;
        match status {
            200 => self.field_of(&me, &body),
            403 => Err(remote_error(
                &me,
                format!("permission denied (403): {}", errors(&body)),
                "check the token and its policy (VAULT_TOKEN, or the AppRole)",
            )),
            404 => Err(remote_error(
                &me,
                format!(
                    "no such path {}/{}{} (404)",
                    self.mount,
                    self.path,
                    self.version
                        .map_or(String::new(), |v| format!(" at version {v}"))
                ),
                "check the mount and path: bao kv get -mount=MOUNT PATH",
            )),
            503 => Err(remote_error(
                &me,
                format!(
                    "the server is sealed or unavailable (503): {}",
                    errors(&body)
                ),
                "unseal the server, or try again",
            )),
            other => Err(remote_error(
                &me,
                format!("the server answered {other}: {}", errors(&body)),
                "check the server's logs",
            )),
        }
    }

    /// Picks FIELD out of a KV v2 read, without copying the value through a
    /// `serde_json::Value`.
    fn field_of(&self, me: &str, body: &[u8]) -> Result<SecretValue> {
        #[derive(Deserialize)]
        struct Read<'a> {
            #[serde(borrow)]
            data: Option<Outer<'a>>,
        }
        #[derive(Deserialize)]
        struct Outer<'a> {
            #[serde(borrow)]
            data: Option<HashMap<&'a str, &'a RawValue>>,
        }
        let read: Read<'_> = serde_json::from_slice(body).map_err(|_| {
            remote_error(
                me,
                "the response is not a KV version 2 read",
                "is the mount a KV version 2 engine?",
            )
        })?;
        let fields = read.data.and_then(|d| d.data).ok_or_else(|| {
            remote_error(
                me,
                "the secret has no data (deleted or destroyed at this version?)",
                "check with: bao kv get -mount=MOUNT PATH",
            )
        })?;
        let Some(raw) = fields.get(self.field.as_str()) else {
            let mut names: Vec<&str> = fields.keys().copied().collect();
            names.sort_unstable();
            return Err(remote_error(
                me,
                format!(
                    "no field \"{}\"; the secret has: {}",
                    self.field,
                    names.join(", ")
                ),
                "use one of those field names after #",
            ));
        };
        let text = raw.get();
        if text.starts_with('"') {
            let s: Cow<'_, str> = serde_json::from_str(text).map_err(|_| {
                remote_error(me, "the field is not valid JSON text", "check the secret")
            })?;
            Ok(match s {
                Cow::Borrowed(b) => SecretValue::new(b.as_bytes().to_vec()),
                Cow::Owned(o) => SecretValue::new(o.into_bytes()),
            })
        } else {
            Ok(SecretValue::new(text.as_bytes().to_vec()))
        }
    }
}

fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (s, None),
    }
}

/// `{"errors":[…]}` as one line, cut to 512 bytes.
fn errors(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => http::cut(e.errors.join("; ").as_bytes()),
        _ => http::cut(body),
    }
}

fn token_header<'a>(token: &'a SecretValue, me: &str) -> Result<&'a str> {
    std::str::from_utf8(token.expose())
        .map_err(|_| remote_error(me, "the token is not text", "check VAULT_TOKEN"))
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vault://{}/{}", self.mount, self.path)?;
        if let Some(v) = self.version {
            write!(f, "?version={v}")?;
        }
        write!(f, "#{}", self.field)
    }
}

/// Where the server is and how to log in.
pub struct Settings {
    pub address: Option<String>,
    pub namespace: Option<String>,
    /// A token given directly (VAULT_TOKEN, BAO_TOKEN or ~/.vault-token).
    pub token: Option<SecretValue>,
    /// AppRole credentials (role id, secret id) and the auth mount.
    pub approle: Option<(String, SecretValue, String)>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field(
                "approle",
                &self.approle.as_ref().map(|(r, _, m)| (r, "[REDACTED]", m)),
            )
            .finish()
    }
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn env_secret(names: &[&str]) -> Option<SecretValue> {
    use std::os::unix::ffi::OsStringExt;
    names
        .iter()
        .find_map(|n| std::env::var_os(n).filter(|v| !v.is_empty()))
        .map(|v| SecretValue::new(v.into_vec()))
}

impl Settings {
    /// From the environment, as the `vault` and `bao` CLIs read it.
    #[must_use]
    pub fn from_env() -> Self {
        let token = env_secret(&["VAULT_TOKEN", "BAO_TOKEN"]).or_else(|| {
            let home = std::env::var_os("HOME")?;
            let bytes = std::fs::read(std::path::Path::new(&home).join(".vault-token")).ok()?;
            let value = SecretValue::new(bytes);
            let trimmed = value.expose().trim_ascii();
            (!trimmed.is_empty()).then(|| SecretValue::new(trimmed.to_vec()))
        });
        let approle = match (
            env(&["VAULT_ROLE_ID", "BAO_ROLE_ID"]),
            env_secret(&["VAULT_SECRET_ID", "BAO_SECRET_ID"]),
        ) {
            (Some(role), Some(secret)) => Some((
                role,
                secret,
                env(&["VAULT_APPROLE_MOUNT"]).unwrap_or_else(|| "approle".into()),
            )),
            _ => None,
        };
        Self {
            address: env(&["VAULT_ADDR", "BAO_ADDR"]),
            namespace: env(&["VAULT_NAMESPACE", "BAO_NAMESPACE"]),
            token,
            approle,
        }
    }

    /// The token to use: given, or from an AppRole login done once per
    /// process (concurrent fetches wait for the first login).
    fn token(&self, address: &str, me: &str) -> Result<SecretValue> {
        if let Some(t) = &self.token {
            return Ok(SecretValue::new(t.expose().to_vec()));
        }
        let Some((role_id, secret_id, mount)) = &self.approle else {
            return Err(remote_error(
                me,
                "no token: set VAULT_TOKEN (or BAO_TOKEN), write ~/.vault-token, or set VAULT_ROLE_ID and VAULT_SECRET_ID",
                "for CI, AppRole: export VAULT_ROLE_ID=… VAULT_SECRET_ID=…",
            ));
        };
        static LOGIN: Mutex<Option<(String, SecretValue)>> = Mutex::new(None);
        let mut cached = LOGIN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((for_role, token)) = cached.as_ref()
            && for_role == role_id
        {
            return Ok(SecretValue::new(token.expose().to_vec()));
        }
        let secret_id = std::str::from_utf8(secret_id.expose())
            .map_err(|_| remote_error(me, "VAULT_SECRET_ID is not text", "check it"))?;
        let body = serde_json::json!({ "role_id": role_id, "secret_id": secret_id }).to_string();
        let body = zeroize::Zeroizing::new(body);
        let url = format!("{address}/v1/auth/{mount}/login");
        let headers: Vec<(&'static str, &str)> = self
            .namespace
            .iter()
            .map(|ns| ("X-Vault-Namespace", ns.as_str()))
            .collect();
        let http::Reply {
            status,
            body: reply,
        } = http::send(
            me,
            address,
            CA_VARS,
            &http::Call {
                method: Method::POST,
                url: &url,
                headers: &headers,
                body: Some(("application/json", body.as_bytes())),
            },
        )?;
        if status != 200 {
            return Err(remote_error(
                me,
                format!("AppRole login failed ({status}): {}", errors(&reply)),
                "check VAULT_ROLE_ID, VAULT_SECRET_ID and VAULT_APPROLE_MOUNT",
            ));
        }
        #[derive(Deserialize)]
        struct Login<'a> {
            #[serde(borrow)]
            auth: Auth<'a>,
        }
        #[derive(Deserialize)]
        struct Auth<'a> {
            client_token: &'a str,
        }
        let login: Login<'_> = serde_json::from_slice(&reply).map_err(|_| {
            remote_error(
                me,
                "the AppRole login reply has no client_token",
                "check the auth mount",
            )
        })?;
        let token = SecretValue::new(login.auth.client_token.as_bytes().to_vec());
        *cached = Some((role_id.clone(), SecretValue::new(token.expose().to_vec())));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_or_without_a_version() {
        let r = Reference::parse("secret/team/openai#api_key").expect("parse");
        assert_eq!(
            (
                r.mount.as_str(),
                r.path.as_str(),
                r.field.as_str(),
                r.version
            ),
            ("secret", "team/openai", "api_key", None)
        );
        assert_eq!(r.to_string(), "vault://secret/team/openai#api_key");
        let a = Reference::parse("secret/demo?version=2#k").expect("before");
        let b = Reference::parse("secret/demo#k?version=2").expect("after");
        assert_eq!(a, b);
        assert_eq!(a.version, Some(2));
        assert_eq!(a.to_string(), "vault://secret/demo?version=2#k");
        for bad in [
            "secret/demo",
            "secret#k",
            "secret/#k",
            "secret/a/../b#k",
            "secret/demo#",
            "secret/demo#k?version=0",
            "secret/demo#k?v=1",
            "/x#k",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_never_show_secrets() {
        let s = Settings {
            address: Some("http://x".into()),
            namespace: None,
            token: Some(SecretValue::new(b"hvs.SECRET-TOKEN".to_vec())),
            approle: Some((
                "role".into(),
                SecretValue::new(b"SECRET-ID".to_vec()),
                "approle".into(),
            )),
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("SECRET-TOKEN") && !shown.contains("SECRET-ID"),
            "{shown}"
        );
    }
}

//! Azure Key Vault: `azure-kv://VAULT/SECRET[/VERSION]`. It owns the
//! reference syntax, the endpoint (`https://VAULT.vault.azure.net`, the
//! suffix from `AZURE_KEYVAULT_DNS_SUFFIX`, or a whole
//! `AZURE_KEYVAULT_ENDPOINT` for private endpoints and tests), the token
//! (`AZURE_KEYVAULT_TOKEN`, or the client-credentials flow with
//! `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` against
//! `AZURE_AUTHORITY_HOST`, cached until five minutes before it expires) and
//! the read. HTTPS only; `AZURE_KEYVAULT_CACERT` replaces the system roots.
//! Tokens, client secrets and values stay in wiping buffers and never reach
//! a message.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::http::Method;
use serde::Deserialize;

use super::http::{self, remote_error};
use crate::error::{Error, Result};
use crate::value::SecretValue;

const API_VERSION: &str = "7.4";
/// The variable naming a CA file that replaces the system roots.
const CA_VARS: &[&str] = &["AZURE_KEYVAULT_CACERT"];

/// A parsed `azure-kv://` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    vault: String,
    secret: String,
    version: Option<String>,
}

impl Reference {
    /// Parses what follows `azure-kv://`: `VAULT/SECRET[/VERSION]`.
    pub fn parse(rest: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::usage_hint(
                format!("azure-kv://{rest}: {why}"),
                "write azure-kv://VAULT/SECRET or azure-kv://VAULT/SECRET/VERSION",
            )
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (vault, secret, version) = match parts.as_slice() {
            [v, s] => (*v, *s, None),
            [v, s, ver] => (*v, *s, Some(*ver)),
            _ => return Err(bad("expected VAULT/SECRET[/VERSION]")),
        };
        let name_ok = |s: &str, max: usize| {
            (1..=max).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !name_ok(vault, 24) || vault.len() < 3 {
            return Err(bad("a vault name is 3-24 letters, digits and -"));
        }
        if !name_ok(secret, 127) {
            return Err(bad("a secret name is 1-127 letters, digits and -"));
        }
        if version.is_some_and(|v| !name_ok(v, 64)) {
            return Err(bad("a version is letters and digits"));
        }
        Ok(Self {
            vault: vault.to_owned(),
            secret: secret.to_owned(),
            version: version.map(str::to_owned),
        })
    }

    /// Reads the value.
    pub fn fetch(&self) -> Result<SecretValue> {
        let me = super::escape_for_terminal(&self.to_string());
        let endpoint = match env("AZURE_KEYVAULT_ENDPOINT") {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!(
                "https://{}.{}",
                self.vault,
                env("AZURE_KEYVAULT_DNS_SUFFIX").unwrap_or_else(|| "vault.azure.net".into())
            ),
        };
        if !endpoint.starts_with("https://") {
            return Err(remote_error(
                &me,
                format!("{endpoint} is not HTTPS"),
                "Azure Key Vault is reached over HTTPS only",
            ));
        }
        let token = token(&me)?;
        let mut url = format!("{endpoint}/secrets/{}", self.secret);
        if let Some(v) = &self.version {
            url.push_str(&format!("/{v}"));
        }
        url.push_str(&format!("?api-version={API_VERSION}"));
        let bearer = zeroize::Zeroizing::new(format!("Bearer {}", text(&token, &me)?));
        let http::Reply { status, body } = http::send(
            &me,
            &endpoint,
            CA_VARS,
            &http::Call {
                method: Method::GET,
                url: &url,
                headers: &[("Authorization", bearer.as_str())],
                body: None,
            },
        )?;
        match status {
            200 => {
                #[derive(Deserialize)]
                struct Bundle<'a> {
                    #[serde(borrow)]
                    value: Option<std::borrow::Cow<'a, str>>,
                }
                let bundle: Bundle<'_> = serde_json::from_slice(&body).map_err(|_| {
                    remote_error(
                        &me,
                        "the response is not a secret bundle",
                        "check the endpoint",
                    )
                })?;
                match bundle.value {
                    Some(std::borrow::Cow::Borrowed(b)) => {
                        Ok(SecretValue::new(b.as_bytes().to_vec()))
                    }
                    Some(std::borrow::Cow::Owned(o)) => Ok(SecretValue::new(o.into_bytes())),
                    None => Err(remote_error(
                        &me,
                        "the secret bundle has no value",
                        "check the secret",
                    )),
                }
            }
            401 | 403 => Err(remote_error(
                &me,
                format!("permission denied ({status}): {}", azure_error(&body)),
                "check the token, or the app's access policy / RBAC role on the vault",
            )),
            404 => Err(remote_error(
                &me,
                format!(
                    "no such secret{} ({status}): {}",
                    self.version
                        .as_ref()
                        .map_or(String::new(), |v| format!(" version {v}")),
                    azure_error(&body)
                ),
                "check the vault, secret and version names",
            )),
            other => Err(remote_error(
                &me,
                format!("the vault answered {other}: {}", azure_error(&body)),
                "try again; check the vault",
            )),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "azure-kv://{}/{}", self.vault, self.secret)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn text<'a>(v: &'a SecretValue, me: &str) -> Result<&'a str> {
    std::str::from_utf8(v.expose())
        .map_err(|_| remote_error(me, "the token is not text", "check AZURE_KEYVAULT_TOKEN"))
}

/// `{"error":{"code":…,"message":…}}` as one line, cut to 512 bytes.
fn azure_error(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) => http::cut(
            format!(
                "{}: {}",
                o.error.code.unwrap_or_default(),
                o.error.message.unwrap_or_default()
            )
            .as_bytes(),
        ),
        Err(_) => http::cut(body),
    }
}

/// The bearer token: given, or from the client-credentials flow, cached
/// (process-wide, so concurrent fetches log in once) until five minutes
/// before it expires.
fn token(me: &str) -> Result<SecretValue> {
    use std::os::unix::ffi::OsStringExt;
    if let Some(t) = std::env::var_os("AZURE_KEYVAULT_TOKEN").filter(|t| !t.is_empty()) {
        return Ok(SecretValue::new(t.into_vec()));
    }
    let (Some(tenant), Some(client), Some(secret)) = (
        env("AZURE_TENANT_ID"),
        env("AZURE_CLIENT_ID"),
        std::env::var_os("AZURE_CLIENT_SECRET")
            .filter(|s| !s.is_empty())
            .map(|s| SecretValue::new(s.into_vec())),
    ) else {
        return Err(remote_error(
            me,
            "no credentials: set AZURE_KEYVAULT_TOKEN, or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
            "for a service principal: export AZURE_TENANT_ID=… AZURE_CLIENT_ID=… AZURE_CLIENT_SECRET=…",
        ));
    };
    static CACHE: Mutex<Option<(String, SecretValue, Instant)>> = Mutex::new(None);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let who = format!("{tenant}/{client}");
    if let Some((for_who, token, until)) = cache.as_ref()
        && *for_who == who
        && Instant::now() < *until
    {
        return Ok(SecretValue::new(token.expose().to_vec()));
    }
    let authority =
        env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com".into());
    let authority = authority.trim_end_matches('/');
    if !authority.starts_with("https://") {
        return Err(remote_error(
            me,
            format!("{authority} is not HTTPS"),
            "AZURE_AUTHORITY_HOST must be an https:// URL",
        ));
    }
    let suffix = env("AZURE_KEYVAULT_DNS_SUFFIX").unwrap_or_else(|| "vault.azure.net".into());
    let scope = format!("https://{suffix}/.default");
    let secret = text(&secret, me)?;
    let form = http::form(&[
        ("grant_type", "client_credentials"),
        ("client_id", client.as_str()),
        ("client_secret", secret),
        ("scope", scope.as_str()),
    ]);
    let http::Reply { status, body } = http::send(
        me,
        authority,
        CA_VARS,
        &http::Call {
            method: Method::POST,
            url: &format!("{authority}/{tenant}/oauth2/v2.0/token"),
            headers: &[],
            body: Some(("application/x-www-form-urlencoded", form.as_bytes())),
        },
    )?;
    if status != 200 {
        #[derive(Deserialize)]
        struct Failure {
            error: Option<String>,
            error_description: Option<String>,
        }
        let why = serde_json::from_slice::<Failure>(&body).map_or_else(
            |_| http::cut(&body),
            |f| {
                http::cut(
                    format!(
                        "{}: {}",
                        f.error.unwrap_or_default(),
                        f.error_description.unwrap_or_default()
                    )
                    .as_bytes(),
                )
            },
        );
        return Err(remote_error(
            me,
            format!("signing in failed ({status}): {why}"),
            "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
        ));
    }
    #[derive(Deserialize)]
    struct Granted<'a> {
        access_token: &'a str,
        expires_in: u64,
    }
    let granted: Granted<'_> = serde_json::from_slice(&body).map_err(|_| {
        remote_error(
            me,
            "the sign-in reply has no access_token",
            "check AZURE_AUTHORITY_HOST",
        )
    })?;
    let token = SecretValue::new(granted.access_token.as_bytes().to_vec());
    // The server's number is trusted for at most a day, and a deadline that
    // does not fit is no deadline: the token is then not cached.
    let lifetime = Duration::from_secs(granted.expires_in.saturating_sub(300).min(24 * 3600));
    if let Some(until) = Instant::now().checked_add(lifetime) {
        *cache = Some((who, SecretValue::new(token.expose().to_vec()), until));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_print() {
        let r = Reference::parse("my-vault/db-password").expect("parse");
        assert_eq!(r.to_string(), "azure-kv://my-vault/db-password");
        let v = Reference::parse("my-vault/db-password/0123abcd").expect("version");
        assert_eq!(v.version.as_deref(), Some("0123abcd"));
        assert_eq!(v.to_string(), "azure-kv://my-vault/db-password/0123abcd");
        for bad in [
            "vault",
            "ab/x",
            "my-vault/",
            "my-vault/a_b",
            "my-vault/a/b/c",
            &format!("{}/x", "v".repeat(25)),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}

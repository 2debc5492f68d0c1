//! `broker.toml`: its schema, strict parsing and validation. Every problem
//! is reported in one run as `FILE:LINE:COL: key: message`, a misspelt key
//! with a did-you-mean (positions and suggestions come from `diag`). It resolves no secret and opens no socket.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Method};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::route::PathRule;
use crate::diag::{Diag, suggestion};
use crate::handle::{Source, ValueSpec};
use crate::supervise::config::Invalid;

const TOP_KEYS: &[&str] = &["listen", "routes"];
const ROUTE_KEYS: &[&str] = &[
    "name",
    "upstream",
    "secret",
    "header",
    "format",
    "allowed_paths",
    "allowed_methods",
    "rate_limit",
    "max_request_body",
    "ca_file",
];
/// Headers a route may not set: they frame the message or name the peer.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "x-broker-token",
];
/// The default `max_request_body`: 10 MiB.
pub(crate) const DEFAULT_MAX_BODY: u64 = 10 << 20;
/// The largest `max_request_body` accepted: 1 GiB.
const MAX_MAX_BODY: u64 = 1 << 30;

/// The validated file.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub path: PathBuf,
    /// The loopback TCP address, when one is served.
    pub listen: Option<SocketAddr>,
    pub routes: Vec<Route>,
}

/// Where a route sends its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path prefix, without a trailing `/` (often empty).
    pub base: String,
}

impl Upstream {
    /// `host:port` as the `Host` header wants it (the port only when it is
    /// not the scheme's default).
    #[must_use]
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    #[must_use]
    pub(crate) fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.tls { "https" } else { "http" },
            self.authority(),
            self.base
        )
    }
}

/// `rate_limit`: so many requests per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// One `[[routes]]` entry.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub name: String,
    pub upstream: Upstream,
    /// The reference as written, for messages.
    pub secret_text: String,
    pub secret: Source,
    pub header: HeaderName,
    /// `format` split around `{secret}`.
    pub format: (String, String),
    pub allowed_paths: Vec<PathRule>,
    /// `None`: any method.
    pub allowed_methods: Option<Vec<Method>>,
    pub rate_limit: Option<Rate>,
    pub max_request_body: u64,
    pub ca_file: Option<PathBuf>,
}

impl Config {
    /// Reads and validates `path`; `remote` says whether `scheme://…` is a
    /// remote reference.
    pub(crate) fn load(path: &Path, remote: &dyn Fn(&str) -> bool) -> Result<Self, Invalid> {
        let text = Invalid::read(path)?;
        let dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/"));
        let doc = match DeTable::parse(&text) {
            Ok(doc) => doc,
            Err(e) => {
                let diags = vec![Diag::new(
                    e.span().unwrap_or(0..0),
                    format!("not valid TOML: {}", e.message().trim_end()),
                )];
                return Err(Invalid {
                    path: path.to_owned(),
                    text,
                    diags,
                });
            }
        };
        let mut p = Parser {
            dir: &dir,
            remote,
            diags: Vec::new(),
        };
        let (listen, routes) = p.document(doc.get_ref());
        let mut diags = p.diags;
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        diags.dedup();
        if !diags.is_empty() {
            return Err(Invalid {
                path: path.to_owned(),
                text,
                diags,
            });
        }
        Ok(Self {
            path: path.to_owned(),
            listen,
            routes,
        })
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

struct Parser<'a> {
    dir: &'a Path,
    remote: &'a dyn Fn(&str) -> bool,
    diags: Vec<Diag>,
}

impl Parser<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(Diag::new(span, message));
    }

    /// The string at `v`, or an error naming `key` and what it should be.
    fn text(&mut self, key: &str, v: &Value<'_>, what: &str) -> Option<String> {
        match v.get_ref().as_str() {
            Some(s) if !s.contains(['\0', '\r', '\n']) => Some(s.to_owned()),
            Some(_) => {
                self.error(v.span(), format!("{key}: contains a control character"));
                None
            }
            None => {
                self.error(v.span(), format!("{key}: expected {what}"));
                None
            }
        }
    }

    fn list(&mut self, key: &str, v: &Value<'_>) -> Option<Vec<(String, Range<usize>)>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.error(v.span(), format!("{key}: expected an array of strings"));
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            out.push((
                self.text(&format!("{key}[{i}]"), item, "a string")?,
                item.span(),
            ));
        }
        Some(out)
    }

    fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], place: &str) {
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if !known.contains(&name) {
                let hint = suggestion(name, known.iter().copied());
                self.error(
                    key.span(),
                    format!("unknown key \"{}\" in {place}{hint}", name.escape_default()),
                );
            }
        }
    }

    fn document(&mut self, doc: &DeTable<'_>) -> (Option<SocketAddr>, Vec<Route>) {
        self.unknown_keys(doc, TOP_KEYS, "the top level");
        let listen = doc.get("listen").and_then(|v| self.listen(v));
        let mut routes = Vec::new();
        match doc.get("routes") {
            None => self.error(
                0..0,
                "routes: no [[routes]] entry; a broker with no route serves nothing",
            ),
            Some(v) => match v.get_ref() {
                DeValue::Array(items) => {
                    let mut names: Vec<&str> = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        if let Some(route) = self.route(i, item) {
                            routes.push(route);
                        }
                        let name = match item.get_ref() {
                            DeValue::Table(t) => t.get("name"),
                            _ => None,
                        };
                        if let Some(name) = name
                            && let Some(text) = name.get_ref().as_str()
                        {
                            if names.contains(&text) {
                                self.error(
                                    name.span(),
                                    format!(
                                        "routes[{i}].name: \"{}\" is already the name of an earlier route",
                                        text.escape_default()
                                    ),
                                );
                            }
                            names.push(text);
                        }
                    }
                }
                _ => self.error(v.span(), "routes: expected [[routes]] tables"),
            },
        }
        (listen, routes)
    }

    fn listen(&mut self, v: &Value<'_>) -> Option<SocketAddr> {
        let text = self.text("listen", v, "an address such as \"127.0.0.1:18443\"")?;
        match text.parse::<SocketAddr>() {
            Ok(addr) if addr.ip().is_loopback() => Some(addr),
            Ok(addr) => {
                self.error(
                    v.span(),
                    format!(
                        "listen: {addr} is not a loopback address; the broker listens on 127.0.0.1 or [::1] only (other hosts would reach your credentials)"
                    ),
                );
                None
            }
            Err(_) => {
                self.error(
                    v.span(),
                    format!(
                        "listen: \"{}\" is not IP:PORT (as in \"127.0.0.1:18443\")",
                        text.escape_default()
                    ),
                );
                None
            }
        }
    }

    #[allow(clippy::too_many_lines)]
    fn route(&mut self, i: usize, v: &Value<'_>) -> Option<Route> {
        let base = format!("routes[{i}]");
        let DeValue::Table(t) = v.get_ref() else {
            self.error(v.span(), format!("{base}: expected a table"));
            return None;
        };
        self.unknown_keys(t, ROUTE_KEYS, &base);
        let key = |k: &str| format!("{base}.{k}");
        let required = |p: &mut Self, k: &str| {
            let found = t.get(k);
            if found.is_none() {
                p.error(v.span(), format!("{base}: missing key \"{k}\""));
            }
            found
        };
        let name = required(self, "name").and_then(|v| self.name(&key("name"), v));
        let upstream = required(self, "upstream").and_then(|v| self.upstream(&key("upstream"), v));
        let secret = required(self, "secret").and_then(|v| self.secret(&key("secret"), v));
        let header = match t.get("header") {
            None => Some(http::header::AUTHORIZATION),
            Some(v) => self.header(&key("header"), v),
        };
        let format = match t.get("format") {
            None => Some(("Bearer ".to_owned(), String::new())),
            Some(v) => self.format(&key("format"), v),
        };
        let allowed_paths =
            required(self, "allowed_paths").and_then(|v| self.paths(&key("allowed_paths"), v));
        let allowed_methods = match t.get("allowed_methods") {
            None => Some(None),
            Some(v) => self.methods(&key("allowed_methods"), v).map(Some),
        };
        let rate_limit = match t.get("rate_limit") {
            None => Some(None),
            Some(v) => self.rate(&key("rate_limit"), v).map(Some),
        };
        let max_request_body = match t.get("max_request_body") {
            None => Some(DEFAULT_MAX_BODY),
            Some(v) => self.size(&key("max_request_body"), v),
        };
        let ca_file = match t.get("ca_file") {
            None => Some(None),
            Some(v) => self.ca_file(&key("ca_file"), v).map(Some),
        };
        let (secret_text, secret) = secret?;
        Some(Route {
            name: name?,
            upstream: upstream?,
            secret_text,
            secret,
            header: header?,
            format: format?,
            allowed_paths: allowed_paths?,
            allowed_methods: allowed_methods?,
            rate_limit: rate_limit?,
            max_request_body: max_request_body?,
            ca_file: ca_file?,
        })
    }

    fn name(&mut self, key: &str, v: &Value<'_>) -> Option<String> {
        let name = self.text(key, v, "a string")?;
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.len() <= 64
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if !valid {
            self.error(
                v.span(),
                format!(
                    "{key}: \"{}\" is not a route name (1-64 of a-z 0-9 . _ -, starting with a letter or digit; it becomes /proxy/NAME/)",
                    name.escape_default()
                ),
            );
            return None;
        }
        Some(name)
    }

    fn upstream(&mut self, key: &str, v: &Value<'_>) -> Option<Upstream> {
        let text = self.text(key, v, "a URL such as \"https://api.openai.com\"")?;
        match parse_upstream(&text) {
            Ok(u) => Some(u),
            Err(why) => {
                self.error(v.span(), format!("{key}: {why}"));
                None
            }
        }
    }

    fn secret(&mut self, key: &str, v: &Value<'_>) -> Option<(String, Source)> {
        let text = self.text(key, v, "a secret reference such as \"@openai_api_key\"")?;
        match ValueSpec::parse_with(&text, self.remote) {
            Ok(ValueSpec::Handle(h)) => Some((text, Source::Local(h))),
            Ok(ValueSpec::Remote(r)) => Some((text, Source::Remote(r))),
            Err(e) if text.starts_with('@') && !text.starts_with("@@") => {
                self.error(v.span(), format!("{key}: {e}"));
                None
            }
            // Never echo the text: a value pasted here by mistake is likely
            // the secret itself.
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "{key}: not a secret reference (write \"@handle\" or a remote reference such as vault://mount/path#field)"
                    ),
                );
                None
            }
        }
    }

    fn header(&mut self, key: &str, v: &Value<'_>) -> Option<HeaderName> {
        let text = self.text(key, v, "a header name such as \"Authorization\"")?;
        match HeaderName::from_bytes(text.as_bytes()) {
            Ok(h) if RESERVED_HEADERS.contains(&h.as_str()) => {
                self.error(
                    v.span(),
                    format!("{key}: the broker manages \"{text}\" itself; name the credential header (Authorization, api-key, x-api-key, …)"),
                );
                None
            }
            Ok(h) => Some(h),
            Err(_) => {
                self.error(
                    v.span(),
                    format!("{key}: \"{}\" is not a header name", text.escape_default()),
                );
                None
            }
        }
    }

    fn format(&mut self, key: &str, v: &Value<'_>) -> Option<(String, String)> {
        let text = self.text(key, v, "a string such as \"Bearer {secret}\"")?;
        match text.split_once("{secret}") {
            Some((before, after)) if !after.contains("{secret}") => {
                Some((before.to_owned(), after.to_owned()))
            }
            _ => {
                self.error(
                    v.span(),
                    format!("{key}: must contain \"{{secret}}\" exactly once (as in \"Bearer {{secret}}\")"),
                );
                None
            }
        }
    }

    fn paths(&mut self, key: &str, v: &Value<'_>) -> Option<Vec<PathRule>> {
        let items = self.list(key, v)?;
        if items.is_empty() {
            self.error(
                v.span(),
                format!("{key}: is empty, so the route allows nothing; list paths such as \"/v1/chat/completions\" or \"/v1/models/*\""),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, (text, span)) in items.into_iter().enumerate() {
            match PathRule::parse(&text) {
                Ok(rule) => out.push(rule),
                Err(why) => {
                    self.error(span, format!("{key}[{i}]: {why}"));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn methods(&mut self, key: &str, v: &Value<'_>) -> Option<Vec<Method>> {
        const KNOWN: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let items = self.list(key, v)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, (text, span)) in items.into_iter().enumerate() {
            if KNOWN.contains(&text.as_str()) {
                out.push(Method::from_bytes(text.as_bytes()).ok()?);
            } else {
                let hint = suggestion(&text, KNOWN.iter().copied());
                self.error(
                    span,
                    format!(
                        "{key}[{i}]: unknown method \"{}\"{hint}",
                        text.escape_default()
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(out)
    }

    fn rate(&mut self, key: &str, v: &Value<'_>) -> Option<Rate> {
        let text = self.text(key, v, "a rate such as \"60/m\"")?;
        match parse_rate(&text) {
            Some(rate) => Some(rate),
            None => {
                self.error(
                    v.span(),
                    format!(
                        "{key}: \"{}\" is not a rate; write COUNT/UNIT with COUNT 1 to 1000000 and UNIT s, m or h (\"60/m\")",
                        text.escape_default()
                    ),
                );
                None
            }
        }
    }

    fn size(&mut self, key: &str, v: &Value<'_>) -> Option<u64> {
        let text = self.text(key, v, "a size such as \"10MiB\"")?;
        match parse_size(&text) {
            Some(n) if n <= MAX_MAX_BODY => Some(n),
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "{key}: \"{}\" is not a size up to 1GiB; write a number with B, KiB, MiB, GiB, kB, MB or GB (\"10MiB\")",
                        text.escape_default()
                    ),
                );
                None
            }
        }
    }

    fn ca_file(&mut self, key: &str, v: &Value<'_>) -> Option<PathBuf> {
        let text = self.text(key, v, "a path to a PEM file")?;
        let path = self.dir.join(&text);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Some(path),
            Ok(_) => {
                self.error(v.span(), format!("{key}: {} is not a file", path.display()));
                None
            }
            Err(e) => {
                self.error(v.span(), format!("{key}: {}: {e}", path.display()));
                None
            }
        }
    }
}

/// `https://host[:port][/base]`, or `http://` for a loopback host.
fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|_| format!("\"{}\" is not a URL", text.escape_default()))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the upstream must be an https:// URL".into()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| "the URL has no host".to_owned())?;
    if authority.as_str().contains('@') {
        return Err(
            "credentials in the URL are not allowed; the route's secret is the credential".into(),
        );
    }
    if uri.query().is_some() || text.contains('#') {
        return Err("the upstream may not have a query or fragment".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if !tls && !is_loopback_host(&host) {
        return Err(format!(
            "http:// is only allowed for a loopback upstream; use https://{host}"
        ));
    }
    Ok(Upstream {
        tls,
        port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        host,
        base: uri.path().trim_end_matches('/').to_owned(),
    })
}

/// `localhost`, `127.0.0.0/8` or `::1`.
#[must_use]
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `60/m`, `10/s`, `1000/h` (also `/sec`, `/min`, `/hour`).
fn parse_rate(text: &str) -> Option<Rate> {
    let (count, unit) = text.split_once('/')?;
    let count: u32 = count.trim().parse().ok()?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        _ => return None,
    };
    (1..=1_000_000).contains(&count).then_some(Rate {
        count,
        per: Duration::from_secs(per),
    })
}

/// `10MiB`, `512KiB`, `1MB`, `100` (bytes).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..digits].parse().ok()?;
    let unit: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, Vec<String>> {
        let dir = crate::fsio::private_tempdir();
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, text).expect("write");
        Config::load(&path, &|s| s == "vault").map_err(|e| {
            e.lines()
                .into_iter()
                .map(|l| {
                    l.rsplit_once("broker.toml:")
                        .map_or(l.clone(), |(_, r)| r.to_owned())
                })
                .collect()
        })
    }

    #[test]
    fn the_issue_example_is_valid_with_its_defaults() {
        let c = load(
            "listen = \"127.0.0.1:18443\"\n[[routes]]\nname = \"openai\"\nupstream = \"https://api.openai.com\"\nsecret = \"@openai_api_key\"\nallowed_paths = [\"/v1/chat/completions\", \"/v1/models/*\"]\nallowed_methods = [\"GET\", \"POST\"]\nrate_limit = \"60/m\"\n",
        )
        .expect("valid");
        let r = &c.routes[0];
        assert_eq!(r.upstream.url(), "https://api.openai.com");
        assert_eq!(r.header, http::header::AUTHORIZATION);
        assert_eq!(r.format, ("Bearer ".into(), String::new()));
        assert_eq!(r.max_request_body, DEFAULT_MAX_BODY);
        assert_eq!(
            r.rate_limit,
            Some(Rate {
                count: 60,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!(c.listen.map(|a| a.port()), Some(18443));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_positions() {
        let errors = load(
            "listen = \"0.0.0.0:80\"\nlisen = 1\n[[routes]]\nname = \"a\"\nupstream = \"http://api.openai.com\"\nsecret = \"sk-pasted-value\"\nallowed_paths = [\"v1\"]\nratelimit = \"1/m\"\nformat = \"Bearer\"\nmax_request_body = \"2TiB\"\n[[routes]]\nname = \"a\"\nupstream = \"https://x.example\"\nsecret = \"@k\"\nallowed_paths = [\"/a/../b\"]\nallowed_methods = [\"PSOT\"]\n",
        )
        .expect_err("invalid");
        let all = errors.join("\n");
        for expected in [
            "1:10: listen: 0.0.0.0:80 is not a loopback address",
            "2:1: unknown key \"lisen\" in the top level; did you mean \"listen\"?",
            "5:12: routes[0].upstream: http:// is only allowed for a loopback upstream",
            "6:10: routes[0].secret: not a secret reference",
            "7:18: routes[0].allowed_paths[0]:",
            "8:1: unknown key \"ratelimit\" in routes[0]; did you mean \"rate_limit\"?",
            "9:10: routes[0].format: must contain \"{secret}\"",
            "10:20: routes[0].max_request_body:",
            "routes[1].name: \"a\" is already the name",
            "15:18: routes[1].allowed_paths[0]:",
            "16:20: routes[1].allowed_methods[0]: unknown method \"PSOT\"; did you mean \"POST\"?",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert!(!all.contains("sk-pasted-value"), "{all}");
    }

    #[test]
    fn sizes_rates_and_upstreams() {
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size("1 kB"), Some(1000));
        assert_eq!(parse_size("99999999999999999999GiB"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_rate("0/s"), None);
        assert_eq!(parse_rate("5/d"), None);
        let u = parse_upstream("http://127.0.0.1:8080/base/").expect("loopback http");
        assert_eq!((u.tls, u.port, u.base.as_str()), (false, 8080, "/base"));
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert!(parse_upstream("https://user:pw@x.example").is_err());
        assert!(parse_upstream("ftp://x.example").is_err());
        assert!(parse_upstream("https://x.example/?q=1").is_err());
        assert_eq!(
            parse_upstream("https://[::1]:8443")
                .expect("v6")
                .authority(),
            "[::1]:8443"
        );
    }
}

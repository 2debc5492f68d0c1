//! Grants: who may have which secret, for what, delivered how. `grants.toml`
//! in the configuration directory is deny-by-default, and a missing file
//! denies everything. This module owns the file's schema, matching and the
//! explanation of a decision; resolution asks it before every value is
//! handed out, and the audit trail records the answer.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::paths::Paths;

/// The file `secret init` writes: one grant, consumer `exec`, every handle.
pub const DEFAULT_FILE: &str = r#"# Who may have which secret. Deny by default: a request no grant allows is
# refused, and a missing file refuses everything.
#
# [[grants]]
# secret_ref = "openai_api_key"   # a handle (no @), "prefix/*", "*", or a
#                                 # remote reference such as "vault://secret/*"
# consumer   = "plugin:my-plugin" # plugin:ID, or "exec" for secret exec
# purposes   = ["llm.chat"]       # optional: then --purpose must be one of these
# delivery   = ["env", "file"]    # optional: env variables, in-memory files
# ttl_secs   = 300                # optional: the lease length
# allowed_hosts = ["api.openai.com"]  # optional: where a value may be sent
#                                 # over the network ("*.domain" allowed)

# secret exec may have every handle.
[[grants]]
secret_ref = "*"
consumer = "exec"
"#;

/// The longest lease (`ttl_secs`), `config::MAX_DURATION`. Bounded when
/// read, so no renewal deadline can overflow.
pub(crate) const MAX_TTL_SECS: u64 = crate::config::MAX_DURATION.as_secs();

/// How a value reaches its consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Delivery {
    Env,
    File,
    /// Put on the wire by `secret broker` as a request header.
    Http,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Env => "env",
            Self::File => "file",
            Self::Http => "http",
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    secret_ref: String,
    consumer: String,
    #[serde(default)]
    purposes: Option<Vec<String>>,
    #[serde(default)]
    delivery: Option<Vec<Delivery>>,
    #[serde(default)]
    ttl_secs: Option<u64>,
    #[serde(default)]
    allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    grants: Vec<toml::Spanned<RawGrant>>,
}

/// One `[[grants]]` entry and where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub secret_ref: String,
    pub consumer: String,
    pub purposes: Option<Vec<String>>,
    pub delivery: Option<Vec<Delivery>>,
    pub ttl_secs: Option<u64>,
    /// The hosts a value may be sent to over the network (`http`
    /// delivery): exact names or `*.domain`; `None` does not restrict.
    pub allowed_hosts: Option<Vec<String>>,
    /// 1-based line of the entry in the file.
    pub line: usize,
}

/// What is asked for.
#[derive(Clone, Debug)]
pub(crate) struct Request<'a> {
    /// The handle name (no `@`) as resolved, or a remote reference.
    pub secret: &'a str,
    pub consumer: &'a str,
    pub purpose: Option<&'a str>,
    pub delivery: Delivery,
}

/// The answer, with the reason.
#[derive(Clone, Debug)]
pub(crate) enum Decision {
    /// Allowed by this grant.
    Allowed(Grant),
    /// Denied; the text says why (which grants came close and what they lack).
    Denied(String),
}

/// The parsed `grants.toml`, or the fact that there is none.
#[derive(Clone, Debug)]
pub(crate) struct Grants {
    path: PathBuf,
    grants: Option<Vec<Grant>>,
}

impl Grants {
    /// Reads the file; a missing file is not an error (it denies everything).
    pub(crate) fn load(paths: &Paths) -> Result<Self> {
        let path = paths.config_dir.join("grants.toml");
        let Some(text) =
            crate::fsio::read_policy_file(&path, "grants.toml", crate::config::MAX_POLICY_LEN)?
        else {
            return Ok(Self { path, grants: None });
        };
        let grants = parse(&path, &text)?;
        Ok(Self {
            path,
            grants: Some(grants),
        })
    }

    #[must_use]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Decides a request: the first grant that allows it wins.
    #[must_use]
    pub(crate) fn decide(&self, req: &Request<'_>) -> Decision {
        let Some(grants) = &self.grants else {
            return Decision::Denied(format!(
                "there is no grants file at {}, so everything is denied",
                self.path.display()
            ));
        };
        let mut near = Vec::new();
        for g in grants {
            if !matches_ref(&g.secret_ref, req.secret) || g.consumer != req.consumer {
                continue;
            }
            let (purpose_ok, delivery_ok) = fits(g, req);
            if purpose_ok && delivery_ok {
                return Decision::Allowed(g.clone());
            }
            let mut lacks = Vec::new();
            if !purpose_ok {
                lacks.push(match req.purpose {
                    Some(p) => format!(
                        "purpose \"{p}\" is not in {:?}",
                        g.purposes.clone().unwrap_or_default()
                    ),
                    None => format!(
                        "it requires a purpose (one of {:?}; pass --purpose)",
                        g.purposes.clone().unwrap_or_default()
                    ),
                });
            }
            if !delivery_ok {
                lacks.push(format!("delivery \"{}\" is not allowed", req.delivery));
            }
            near.push(format!(
                "{}:{}: {}",
                self.path.display(),
                g.line,
                lacks.join("; ")
            ));
        }
        if near.is_empty() {
            Decision::Denied(format!(
                "no grant in {} gives \"{}\" to consumer \"{}\"",
                self.path.display(),
                req.secret,
                req.consumer
            ))
        } else {
            Decision::Denied(format!("the grants for it do not fit: {}", near.join(", ")))
        }
    }

    /// The first grant that allows `req` and names `allowed_hosts` (what
    /// `exec --proxy` needs), else the first that allows it at all.
    #[must_use]
    pub(crate) fn decide_hosts(&self, req: &Request<'_>) -> Decision {
        let with_hosts = self.grants.iter().flatten().find(|g| {
            matches_ref(&g.secret_ref, req.secret)
                && g.consumer == req.consumer
                && fits(g, req) == (true, true)
                && g.allowed_hosts.as_ref().is_some_and(|h| !h.is_empty())
        });
        match with_hosts {
            Some(g) => Decision::Allowed(g.clone()),
            None => self.decide(req),
        }
    }

    /// The `[[grants]]` entry that would allow `req`, for hints.
    #[must_use]
    pub(crate) fn suggestion(req: &Request<'_>) -> String {
        let mut s = format!(
            "[[grants]]\nsecret_ref = \"{}\"\nconsumer = \"{}\"",
            req.secret, req.consumer
        );
        if let Some(p) = req.purpose {
            s.push_str(&format!("\npurposes = [\"{p}\"]"));
        }
        s
    }
}

/// Whether `g`'s purposes and deliveries fit `req`: (purpose, delivery).
fn fits(g: &Grant, req: &Request<'_>) -> (bool, bool) {
    let purpose_ok = match (&g.purposes, req.purpose) {
        (None, _) => true,
        (Some(list), Some(p)) => list.iter().any(|x| x == p),
        (Some(_), None) => false,
    };
    let delivery_ok = g
        .delivery
        .as_ref()
        .is_none_or(|d| d.contains(&req.delivery));
    (purpose_ok, delivery_ok)
}

/// `"*"`, `"prefix/*"` (anything under the prefix) or exact.
fn matches_ref(pattern: &str, secret: &str) -> bool {
    // `secret_ref = "@db"` means what `"db"` means: handles are written
    // with their "@" everywhere else, so a grant may be too.
    let pattern = pattern.strip_prefix('@').unwrap_or(pattern);
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => secret.starts_with(prefix),
        None => pattern == secret.strip_prefix('@').unwrap_or(secret),
    }
}

/// Whether `host` is one of `patterns`: an exact name (any case), or
/// `*.domain` for any name under `domain` (not `domain` itself).
#[must_use]
pub(crate) fn host_allowed(patterns: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.');
    patterns.iter().any(|p| match p.strip_prefix("*.") {
        Some(domain) => host
            .len()
            .checked_sub(domain.len() + 1)
            .and_then(|cut| host.get(cut..))
            .is_some_and(|tail| tail.starts_with('.') && tail[1..].eq_ignore_ascii_case(domain)),
        None => p.eq_ignore_ascii_case(host),
    })
}

/// A host name (letters, digits, `-`, `.`; or an IP address) optionally
/// led by `*.`.
fn is_host_pattern(p: &str) -> bool {
    let name = p.strip_prefix("*.").unwrap_or(p);
    !name.is_empty()
        && name.len() <= 253
        && (name.parse::<std::net::IpAddr>().is_ok()
            || name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

fn parse(path: &Path, text: &str) -> Result<Vec<Grant>> {
    // Where each line starts, found once: a byte offset's line is then a
    // binary search, not a rescan of the text.
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |offset: usize| starts.partition_point(|&s| s <= offset);
    let at = |span: Option<Range<usize>>| {
        span.map_or(String::new(), |r| format!(":{}", line_of(r.start)))
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        Error::usage_hint(
            format!("{}{}: {}", path.display(), at(e.span()), e.message()),
            "each [[grants]] entry takes secret_ref, consumer, and optionally purposes, delivery, ttl_secs, allowed_hosts",
        )
    })?;
    raw.grants
        .into_iter()
        .map(|spanned| {
            let line = line_of(spanned.span().start);
            let g = spanned.into_inner();
            let bad = |what: &str| Error::usage(format!("{}:{line}: {what}", path.display()));
            if g.secret_ref.is_empty() {
                return Err(bad("secret_ref is empty"));
            }
            if g.secret_ref
                .find('*')
                .is_some_and(|i| i + 1 != g.secret_ref.len())
            {
                return Err(bad("a \"*\" may only end secret_ref (\"*\", \"prefix/*\")"));
            }
            if g.consumer.is_empty() {
                return Err(bad("consumer is empty"));
            }
            if let Some(ttl) = g.ttl_secs.filter(|t| *t > MAX_TTL_SECS) {
                return Err(bad(&format!(
                    "ttl_secs = {ttl} is over the maximum of {MAX_TTL_SECS} (1 year)"
                )));
            }
            if let Some(bad_host) = g
                .allowed_hosts
                .iter()
                .flatten()
                .find(|h| !is_host_pattern(h))
            {
                return Err(bad(&format!(
                    "allowed_hosts: \"{}\" is not a host name or \"*.domain\"",
                    bad_host.escape_default()
                )));
            }
            Ok(Grant {
                secret_ref: g.secret_ref,
                consumer: g.consumer,
                purposes: g.purposes,
                delivery: g.delivery,
                ttl_secs: g.ttl_secs,
                allowed_hosts: g.allowed_hosts,
                line,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(text: &str) -> Grants {
        Grants {
            path: PathBuf::from("grants.toml"),
            grants: Some(parse(Path::new("grants.toml"), text).expect("parse")),
        }
    }

    fn req<'a>(
        secret: &'a str,
        consumer: &'a str,
        purpose: Option<&'a str>,
        delivery: Delivery,
    ) -> Request<'a> {
        Request {
            secret,
            consumer,
            purpose,
            delivery,
        }
    }

    #[test]
    fn the_default_file_lets_exec_have_everything_and_nobody_else() {
        let g = grants(DEFAULT_FILE);
        assert!(matches!(
            g.decide(&req("x", "exec", None, Delivery::Env)),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            g.decide(&req("a/b", "exec", Some("p"), Delivery::File)),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            g.decide(&req("x", "plugin", None, Delivery::Env)),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn refs_purposes_and_delivery() {
        let g = grants(
            "[[grants]]\nsecret_ref = \"prod/*\"\nconsumer = \"api\"\npurposes = [\"db\"]\ndelivery = [\"file\"]\nttl_secs = 60\n\n[[grants]]\nsecret_ref = \"openai\"\nconsumer = \"agent\"\n",
        );
        let Decision::Allowed(found) =
            g.decide(&req("prod/db_pw", "api", Some("db"), Delivery::File))
        else {
            panic!("should be allowed")
        };
        assert_eq!((found.line, found.ttl_secs), (1, Some(60)));
        let Decision::Denied(why) = g.decide(&req("prod/db_pw", "api", None, Delivery::File))
        else {
            panic!("purpose required")
        };
        assert!(
            why.contains("grants.toml:1") && why.contains("--purpose"),
            "{why}"
        );
        assert!(matches!(
            g.decide(&req("prod/db_pw", "api", Some("db"), Delivery::Env)),
            Decision::Denied(_)
        ));
        assert!(matches!(
            g.decide(&req("staging/db_pw", "api", Some("db"), Delivery::File)),
            Decision::Denied(_)
        ));
        let Decision::Allowed(found) =
            g.decide(&req("openai", "agent", Some("any"), Delivery::Env))
        else {
            panic!("no purposes listed means any purpose")
        };
        assert_eq!(found.line, 8);
        assert!(matches!(
            g.decide(&req("openai2", "agent", None, Delivery::Env)),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn allowed_hosts_are_exact_or_a_subdomain_wildcard() {
        let g = grants(
            "[[grants]]\nsecret_ref = \"k\"\nconsumer = \"broker\"\ndelivery = [\"http\"]\nallowed_hosts = [\"api.openai.com\", \"*.example.org\"]\n",
        );
        let Decision::Allowed(found) = g.decide(&req("k", "broker", None, Delivery::Http)) else {
            panic!("http delivery granted")
        };
        let hosts = found.allowed_hosts.expect("hosts");
        assert!(host_allowed(&hosts, "api.openai.com"));
        assert!(host_allowed(&hosts, "API.OpenAI.com."));
        assert!(host_allowed(&hosts, "a.b.example.org"));
        assert!(!host_allowed(&hosts, "example.org"));
        assert!(!host_allowed(&hosts, "evilexample.org"));
        assert!(!host_allowed(&hosts, "api.openai.com.evil.net"));
        assert!(matches!(
            g.decide(&req("k", "broker", None, Delivery::Env)),
            Decision::Denied(_)
        ));
        let err = parse(
            Path::new("g.toml"),
            "[[grants]]\nsecret_ref = \"k\"\nconsumer = \"b\"\nallowed_hosts = [\"http://x\"]\n",
        )
        .expect_err("not a host");
        assert!(err.to_string().contains("allowed_hosts"), "{err}");
    }

    #[test]
    fn a_missing_file_denies_and_bad_files_name_the_line() {
        let none = Grants {
            path: PathBuf::from("/x/grants.toml"),
            grants: None,
        };
        let Decision::Denied(why) = none.decide(&req("x", "exec", None, Delivery::Env)) else {
            panic!("missing file must deny")
        };
        assert!(why.contains("no grants file"));
        let err = parse(
            Path::new("g.toml"),
            "[[grants]]\nsecret_ref = \"x\"\nconsumr = \"exec\"\n",
        )
        .expect_err("typo");
        assert!(err.to_string().contains("g.toml:3"), "{err}");
        let err = parse(
            Path::new("g.toml"),
            "[[grants]]\nsecret_ref = \"a*b\"\nconsumer = \"exec\"\n",
        )
        .expect_err("glob");
        assert!(err.to_string().contains("g.toml:1"), "{err}");
    }
}

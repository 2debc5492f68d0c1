//! Resolution: turning the sources a launch needs (local handles, remote
//! references) into values for one consumer, and recording each resolution
//! in the audit trail. It owns the order of lookup: scopes (narrowest
//! first), links (a local handle that points at a remote reference), then
//! remote fetches, run concurrently. It does not spawn anything.

use std::collections::BTreeMap;

use crate::audit::Event;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::grants::{Decision, Delivery, Grants, Request};
use crate::handle::{Handle, Source};
use crate::remote::Remote;
use crate::store::{EntryMeta, Store, check_value, link_target};
use crate::value::SecretValue;

/// How many remote fetches run at once: enough that a launch with a few
/// dozen references costs about one round trip, few enough to be polite to
/// the server.
pub const MAX_PARALLEL_FETCHES: usize = 32;

/// `--scope a/b`: `@db` is looked up as `a/b/db`, then `a/db`, then `db`.
#[derive(Clone, Debug, Default)]
pub struct Scope(Vec<String>);

impl Scope {
    pub fn parse(text: Option<&str>) -> Result<Self> {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Self::default());
        };
        let text = text.trim_end_matches('/');
        Handle::from_name(text).map_err(|_| {
            Error::usage_hint(
                format!("scope \"{text}\" is not a valid scope"),
                "a scope is handle-like: segments of A-Z a-z 0-9 _ . - separated by /, as in team-a/ws-1",
            )
        })?;
        Ok(Self(text.split('/').map(str::to_owned).collect()))
    }

    /// The names to try for `handle`, narrowest first.
    #[must_use]
    pub fn candidates(&self, handle: &Handle) -> Vec<Handle> {
        let mut out: Vec<Handle> = (1..=self.0.len())
            .rev()
            .filter_map(|n| {
                Handle::from_name(&format!("{}/{}", self.0[..n].join("/"), handle.name())).ok()
            })
            .collect();
        out.push(handle.clone());
        out
    }
}

/// Finds the entry that answers for `handle` under `scope`: the first
/// candidate the store has. `NoSuchSecret` names the handle as asked.
pub fn find(store: &dyn Store, scope: &Scope, handle: &Handle) -> Result<EntryMeta> {
    for candidate in scope.candidates(handle) {
        match store.meta(&candidate) {
            Ok(meta) => return Ok(meta),
            Err(Error::NoSuchSecret { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Err(Error::NoSuchSecret {
        handle: handle.clone(),
    })
}

/// One resolution's outcome, for the audit trail.
struct Outcome {
    source: Source,
    /// The handle that answered (after scopes), for local sources.
    answered: Option<String>,
    /// The remote reference fetched, for remote sources and links.
    reference: Option<String>,
    fingerprint: Option<String>,
    result: Result<SecretValue>,
}

/// Who is asking, and under which policy.
pub struct Asker<'a> {
    pub consumer: &'a str,
    pub purpose: Option<&'a str>,
    pub grants: &'a Grants,
}

impl Asker<'_> {
    /// Checks every delivery `source` is wanted for; `Err` says why not.
    fn check(&self, secret: &str, deliveries: &[Delivery]) -> Result<Option<u64>> {
        let mut ttl: Option<u64> = None;
        for &delivery in deliveries {
            let req = Request {
                secret,
                consumer: self.consumer,
                purpose: self.purpose,
                delivery,
            };
            match self.grants.decide(&req) {
                Decision::Allowed(g) => {
                    ttl = match (ttl, g.ttl_secs) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                }
                Decision::Denied(why) => {
                    return Err(Error::Denied {
                        message: format!(
                            "consumer \"{}\" may not have {} ({delivery} delivery{}): {why}",
                            self.consumer,
                            shown(secret),
                            self.purpose
                                .map_or(String::new(), |p| format!(", purpose \"{p}\""))
                        ),
                        hint: format!(
                            "if it should, add to {}:\n{}",
                            self.grants.path().display(),
                            Grants::suggestion(&req)
                        ),
                    });
                }
            }
        }
        Ok(ttl)
    }
}

fn shown(secret: &str) -> String {
    if crate::handle::scheme(secret).is_some() {
        secret.to_owned()
    } else {
        format!("@{secret}")
    }
}

/// Resolves every source, each wanted for the given deliveries.
/// `open_store` is called at most once, and only if a local handle is
/// needed. Each request is checked against the grants before any value is
/// decrypted or fetched; every resolution and denial is audited. The first
/// failure is returned after all were tried, so nothing runs with a missing
/// or denied value.
pub fn resolve(
    requests: &[(Source, Vec<Delivery>)],
    scope: &Scope,
    config: &Config,
    asker: &Asker<'_>,
    open_store: impl FnOnce() -> Result<Box<dyn Store>>,
    record: impl FnOnce(&[Event]) -> Result<()>,
) -> Result<Resolved> {
    if requests.is_empty() {
        return Ok(Resolved::default());
    }
    let consumer = asker.consumer;
    let mut outcomes = Vec::new();
    let mut remote: Vec<(usize, String)> = Vec::new();
    let needs_store = requests.iter().any(|(s, _)| matches!(s, Source::Local(_)));
    let store = if needs_store {
        Some(open_store()?)
    } else {
        None
    };
    let mut leases: Vec<Option<u64>> = Vec::new();
    for (source, deliveries) in requests {
        match (source, &store) {
            (Source::Local(handle), Some(store)) => {
                let mut outcome = Outcome {
                    source: source.clone(),
                    answered: None,
                    reference: None,
                    fingerprint: None,
                    result: Err(Error::NoSuchSecret {
                        handle: handle.clone(),
                    }),
                };
                let found = find(store.as_ref(), scope, handle).and_then(|meta| {
                    let ttl = asker.check(&meta.handle, deliveries)?;
                    Ok((meta, ttl))
                });
                match found {
                    Ok((meta, ttl)) => {
                        leases.push(ttl);
                        outcome.answered = Some(meta.handle.clone());
                        match link_target(store.as_ref(), &meta) {
                            Ok(Some(target)) => {
                                outcome.reference = Some(target.clone());
                                remote.push((outcomes.len(), target));
                            }
                            Ok(None) => {
                                outcome.fingerprint = Some(meta.fingerprint.clone());
                                outcome.result =
                                    Handle::from_name(&meta.handle).and_then(|h| store.get(&h));
                            }
                            Err(e) => outcome.result = Err(e),
                        }
                    }
                    Err(e) => {
                        leases.push(None);
                        outcome.result = Err(e);
                    }
                }
                outcomes.push(outcome);
            }
            (Source::Remote(text), _) => {
                let checked = asker.check(text, deliveries);
                if checked.is_ok() {
                    remote.push((outcomes.len(), text.clone()));
                }
                leases.push(checked.as_ref().ok().copied().flatten());
                outcomes.push(Outcome {
                    source: source.clone(),
                    answered: None,
                    reference: Some(text.clone()),
                    fingerprint: None,
                    result: checked.and(Err(Error::usage("not fetched"))),
                });
            }
            (Source::Local(_), None) => {}
        }
    }
    drop(store);
    for (i, result) in fetch_all(&remote, config) {
        outcomes[i].result = result;
    }
    let events: Vec<Event> = outcomes
        .iter()
        .zip(&leases)
        .map(|(o, lease)| Event {
            action: "resolve",
            handle: match &o.source {
                Source::Local(h) => Some(o.answered.clone().unwrap_or_else(|| h.name().to_owned())),
                Source::Remote(_) => None,
            },
            reference: o.reference.clone(),
            consumer: consumer.to_owned(),
            outcome: match (&o.result, lease) {
                (Ok(_), Some(ttl)) => format!("ok (lease {ttl}s)"),
                (Ok(_), None) => "ok".into(),
                (Err(Error::NoSuchSecret { .. }), _) => "missing".into(),
                (Err(Error::Denied { .. }), _) => "denied".into(),
                (Err(_), _) => "error".into(),
            },
            fingerprint: o.fingerprint.clone().filter(|_| o.result.is_ok()),
            ..Event::default()
        })
        .collect();
    record(&events)?;
    let mut resolved = Resolved::default();
    let mut failure = None;
    for ((o, lease), (_, deliveries)) in outcomes.into_iter().zip(leases).zip(requests) {
        match o.result {
            Ok(v) => {
                if let (Some(ttl), Some(secret)) = (lease, o.answered.or(o.reference)) {
                    resolved.leases.push(Lease {
                        secret,
                        deliveries: deliveries.clone(),
                        ttl,
                    });
                }
                resolved.values.insert(o.source, v);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(resolved),
    }
}

/// What a resolution hands out: the values, and the leases that must be
/// renewed while their holder runs.
#[derive(Debug, Default)]
pub struct Resolved {
    pub values: BTreeMap<Source, SecretValue>,
    pub leases: Vec<Lease>,
}

/// A grant with `ttl_secs`: renewed (the grant checked again) before it
/// expires; if the grant was withdrawn, the holder is stopped.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The handle name that answered, or the remote reference.
    pub secret: String,
    pub deliveries: Vec<Delivery>,
    pub ttl: u64,
}

/// Checks every lease against the grants as they are now: `Err` names the
/// first one whose grant is gone.
pub fn renew(leases: &[Lease], asker: &Asker<'_>) -> Result<()> {
    for lease in leases {
        asker.check(&lease.secret, &lease.deliveries)?;
    }
    Ok(())
}

/// Fetches every remote reference, at most `MAX_PARALLEL_FETCHES` at once,
/// so a launch with many references costs about one round trip.
fn fetch_all(refs: &[(usize, String)], config: &Config) -> Vec<(usize, Result<SecretValue>)> {
    let fetch = |text: &str| -> Result<SecretValue> {
        let remote = Remote::parse(text, config).unwrap_or_else(|| {
            Err(Error::usage_hint(
                format!("{text} is not a remote reference"),
                "links point at references such as vault://mount/path#field",
            ))
        })?;
        let value = remote.fetch(config)?;
        check_value(&value).map_err(|e| Error::Remote {
            reference: text.to_owned(),
            message: format!("the value fetched is not usable: {e}"),
            hint: "fix the value in the remote store".into(),
        })?;
        Ok(value)
    };
    if refs.len() <= 1 {
        return refs.iter().map(|(i, t)| (*i, fetch(t))).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = refs.len().min(MAX_PARALLEL_FETCHES);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((i, text)) = refs.get(k) else {
                            break done;
                        };
                        done.push((*i, fetch(text)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_go_from_narrowest_to_bare() {
        let scope = Scope::parse(Some("team-a/ws-1")).expect("scope");
        let names: Vec<String> = scope
            .candidates(&Handle::from_name("db").expect("h"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["@team-a/ws-1/db", "@team-a/db", "@db"]);
        assert_eq!(
            Scope::parse(None)
                .expect("none")
                .candidates(&Handle::from_name("db").expect("h"))
                .len(),
            1
        );
        assert!(Scope::parse(Some("bad scope")).is_err());
        assert!(Scope::parse(Some("a//b")).is_err());
    }
}

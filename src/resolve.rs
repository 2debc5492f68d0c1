//! Resolution: turning the sources a launch needs (local handles, remote
//! references) into values for one consumer, and recording each resolution
//! in the audit trail. It owns the order of lookup: scopes (narrowest
//! first), links (a local handle that points at a remote reference), then
//! remote fetches, run concurrently. It does not spawn anything.

use std::collections::BTreeMap;

use crate::audit::Event;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::grants::{self, Decision, Delivery, Grants};
use crate::handle::{Handle, Source};
use crate::remote::Remote;
use crate::store::{EntryMeta, Store, check_value, link_target};
use crate::value::SecretValue;

/// How many remote fetches run at once: enough that a launch with a few
/// dozen references costs about one round trip, few enough to be polite to
/// the server.
pub(crate) const MAX_PARALLEL_FETCHES: usize = 32;

/// `--scope a/b`: `@db` is looked up as `a/b/db`, then `a/db`, then `db`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope(Vec<String>);

impl Scope {
    pub(crate) fn parse(text: Option<&str>) -> Result<Self> {
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

    /// `handle` inside the narrowest scope (itself without a scope): where
    /// `add` puts a new secret.
    pub(crate) fn narrowest(&self, handle: &Handle) -> Result<Handle> {
        if self.0.is_empty() {
            return Ok(handle.clone());
        }
        Ok(Handle::from_name(&format!(
            "{}/{}",
            self.0.join("/"),
            handle.name()
        ))?)
    }

    /// The names to try for `handle`, narrowest first.
    #[must_use]
    pub(crate) fn candidates(&self, handle: &Handle) -> Vec<Handle> {
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
/// candidate the store has. `NoSuchSecret` names the handle as asked, and
/// the stored handle closest to it when that looks like a typo.
pub(crate) fn find(store: &dyn Store, scope: &Scope, handle: &Handle) -> Result<EntryMeta> {
    let candidates = scope.candidates(handle);
    for candidate in &candidates {
        match store.meta(candidate) {
            Ok(meta) => return Ok(meta),
            Err(Error::NoSuchSecret { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let stored: Vec<String> = store
        .list()
        .map(|all| all.into_iter().map(|m| m.handle).collect())
        .unwrap_or_default();
    let near = candidates
        .iter()
        .find_map(|c| crate::diag::did_you_mean(c.name(), stored.iter().map(String::as_str)));
    Err(Error::NoSuchSecret {
        handle: handle.clone(),
        near: near.map(str::to_owned),
        hint: None,
    })
}

/// Who is asking, and under which policy.
pub(crate) struct Asker<'a> {
    pub consumer: &'a str,
    pub purpose: Option<&'a str>,
    pub grants: &'a Grants,
}

impl Asker<'_> {
    /// Checks every delivery `source` is wanted for; `Err` says why not.
    fn check(&self, secret: &str, deliveries: &[Delivery]) -> Result<Option<u64>> {
        let mut ttl: Option<u64> = None;
        for &delivery in deliveries {
            let req = grants::Request {
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

/// One source a launch needs, and every way it will be delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub source: Source,
    pub deliveries: Vec<Delivery>,
}

/// The requests for `wanted` (source, delivery) pairs: one per source, in
/// first-use order, with every delivery it is wanted for.
#[must_use]
pub(crate) fn requests(wanted: impl IntoIterator<Item = (Source, Delivery)>) -> Vec<Request> {
    let mut out: Vec<Request> = Vec::new();
    for (source, delivery) in wanted {
        match out.iter_mut().find(|r| r.source == source) {
            Some(r) if r.deliveries.contains(&delivery) => {}
            Some(r) => r.deliveries.push(delivery),
            None => out.push(Request {
                source,
                deliveries: vec![delivery],
            }),
        }
    }
    out
}

/// Whether any request needs the local store (so the caller opens it).
#[must_use]
pub(crate) fn needs_store(requests: &[Request]) -> bool {
    requests
        .iter()
        .any(|r| matches!(r.source, Source::Local(_)))
}

/// What one request came to.
#[derive(Debug)]
pub(crate) struct Resolution {
    /// As asked.
    pub source: Source,
    /// What answered: the handle found in scope (a link's own handle), or
    /// the remote reference; `None` when nothing did.
    pub answered: Option<Source>,
    /// The remote reference fetched, for remote sources and links.
    pub reference: Option<String>,
    /// The lease terms, when the grant that allowed it has a ttl.
    pub lease: Option<Lease>,
    pub value: Result<SecretValue>,
}

/// Resolves every request for one consumer: the one resolver, used alike
/// by `exec`, `run`, `plugins` and (through `find`) `grants check`.
///
/// `store` is the store in force, open when `needs_store(requests)` (a
/// local source without it fails as an internal error). Each request is
/// checked against the grants before any value is decrypted or fetched;
/// remote references (and links) are fetched concurrently; every
/// resolution and denial is recorded through `record` in one batch.
/// Returns one `Resolution` per request, in order; `Err` only when the
/// audit could not be written (then nothing may be used).
pub(crate) fn resolve(
    requests: &[Request],
    scope: &Scope,
    config: &Config,
    asker: &Asker<'_>,
    store: Option<&dyn Store>,
    record: impl FnOnce(&[Event]) -> Result<()>,
) -> Result<Vec<Resolution>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(requests.len());
    let mut fingerprints: Vec<Option<String>> = Vec::with_capacity(requests.len());
    let mut remote: Vec<(usize, String)> = Vec::new();
    let lease = |secret: Source, deliveries: &[Delivery], ttl: Option<u64>| {
        ttl.map(|ttl| Lease {
            secret,
            deliveries: deliveries.to_vec(),
            ttl,
        })
    };
    for request in requests {
        let mut r = Resolution {
            source: request.source.clone(),
            answered: None,
            reference: None,
            lease: None,
            value: Err(Error::internal("not resolved")),
        };
        let mut fingerprint = None;
        match (&request.source, store) {
            (Source::Local(handle), Some(store)) => {
                let found = find(store, scope, handle).and_then(|meta| {
                    let ttl = asker.check(&meta.handle, &request.deliveries)?;
                    Ok((meta, ttl))
                });
                match found
                    .and_then(|(meta, ttl)| Ok((Handle::from_name(&meta.handle)?, meta, ttl)))
                {
                    Ok((answered, meta, ttl)) => {
                        r.answered = Some(Source::Local(answered.clone()));
                        r.lease = lease(Source::Local(answered.clone()), &request.deliveries, ttl);
                        // A link needs a grant for its target too: a
                        // grant on @x must not reach whatever @x points at.
                        match link_target(store, &meta).and_then(|target| {
                            if let Some(target) = &target {
                                crate::handle::check_remote_path(target)?;
                                let target_ttl = asker.check(target, &request.deliveries)?;
                                let ttl = match (ttl, target_ttl) {
                                    (Some(a), Some(b)) => Some(a.min(b)),
                                    (a, b) => a.or(b),
                                };
                                r.lease = lease(
                                    Source::Local(answered.clone()),
                                    &request.deliveries,
                                    ttl,
                                );
                            }
                            Ok(target)
                        }) {
                            Ok(Some(target)) => {
                                r.reference = Some(target.clone());
                                remote.push((out.len(), target));
                            }
                            Ok(None) => {
                                fingerprint = Some(meta.fingerprint.clone());
                                r.value = store.get(&answered);
                            }
                            Err(e) => r.value = Err(e),
                        }
                    }
                    Err(e) => r.value = Err(e),
                }
            }
            (Source::Local(_), None) => {
                r.value = Err(Error::internal(
                    "the store is not open, but a local handle needs it",
                ));
            }
            (Source::Remote(text), _) => {
                r.reference = Some(text.clone());
                match asker.check(text, &request.deliveries) {
                    Ok(ttl) => {
                        r.answered = Some(request.source.clone());
                        r.lease = lease(request.source.clone(), &request.deliveries, ttl);
                        remote.push((out.len(), text.clone()));
                    }
                    Err(e) => r.value = Err(e),
                }
            }
        }
        out.push(r);
        fingerprints.push(fingerprint);
    }
    for (i, result) in fetch_all(&remote, config) {
        out[i].value = result;
    }
    let events: Vec<Event> = out
        .iter()
        .zip(fingerprints)
        .map(|(r, fingerprint)| Event {
            action: "resolve",
            handle: match &r.source {
                Source::Local(h) => Some(
                    r.answered
                        .as_ref()
                        .map_or(h.name(), Source::grant_key)
                        .to_owned(),
                ),
                Source::Remote(_) => None,
            },
            reference: r.reference.clone(),
            consumer: asker.consumer.to_owned(),
            outcome: match (&r.value, &r.lease) {
                (Ok(_), Some(l)) => format!("ok (lease {}s)", l.ttl),
                (Ok(_), None) => "ok".into(),
                (Err(Error::NoSuchSecret { .. }), _) => "missing".into(),
                (Err(Error::Denied { .. }), _) => "denied".into(),
                (Err(_), _) => "error".into(),
            },
            fingerprint: fingerprint.filter(|_| r.value.is_ok()),
            ..Event::default()
        })
        .collect();
    record(&events)?;
    Ok(out)
}

/// All or nothing, for a launch: every value by source and the leases, or
/// every failure at once (all were tried, so nothing runs with a missing
/// or denied value, and one run names every one to fix).
pub(crate) fn all(resolutions: Vec<Resolution>) -> Result<Resolved> {
    let mut resolved = Resolved::default();
    let mut problems = Vec::new();
    for r in resolutions {
        match r.value {
            Ok(value) => {
                resolved.values.insert(r.source, value);
                resolved.leases.extend(r.lease);
            }
            Err(e) => problems.push((r.source.to_string(), e)),
        }
    }
    match problems.len() {
        0 => Ok(resolved),
        1 => Err(problems.remove(0).1),
        _ => Err(Error::Unresolved { problems }),
    }
}

/// What a launch hands out: the values, and the leases that must be
/// renewed while their holder runs.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub values: BTreeMap<Source, SecretValue>,
    pub leases: Vec<Lease>,
}

/// A grant with `ttl_secs`: renewed (the grant checked again) before it
/// expires; if the grant was withdrawn, the holder is stopped.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    /// What answered: the handle found in scope, or the remote reference.
    pub secret: Source,
    pub deliveries: Vec<Delivery>,
    pub ttl: u64,
}

/// Checks every lease against the grants as they are now: `Err` names the
/// first one whose grant is gone.
pub(crate) fn renew(leases: &[Lease], asker: &Asker<'_>) -> Result<()> {
    for lease in leases {
        asker.check(lease.secret.grant_key(), &lease.deliveries)?;
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

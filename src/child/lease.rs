//! Leases: a grant with `ttl_secs` is renewed while its holder runs, at
//! half the shortest ttl. One policy for `exec`, `run` and plugins: a
//! renewal checks every lease against grants.toml as it is then and records
//! one `renew` event per lease; a withdrawn grant stops the holder (the
//! stop signal, then SIGKILL after the stop timeout). Values are not
//! fetched again: a renewal never unlocks the store. (The supervisor also
//! watches for rotated values at the same moment, to restart a plugin; that
//! is its own feature, not the lease's.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::audit::{self, Event};
use crate::error::Result;
use crate::grants::Grants;
use crate::paths::Paths;
use crate::resolve::{self, Lease};

/// The shortest time between renewals.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// How often leases of `ttl_secs` are renewed: at half the ttl, at least
/// every `MIN_INTERVAL` (no overflow whatever the ttl).
#[must_use]
pub(crate) fn interval(ttl_secs: u64) -> Duration {
    Duration::from_millis(ttl_secs.saturating_mul(500)).max(MIN_INTERVAL)
}

/// Who holds the leases.
#[derive(Clone, Debug)]
pub(crate) struct Holder {
    pub(crate) paths: Paths,
    pub(crate) consumer: String,
    pub(crate) purpose: Option<String>,
}

impl Holder {
    /// Checks every lease against the grants as they are now and records
    /// the outcome; `Err` says which grant is gone.
    pub(crate) fn renew(&self, leases: &[Lease]) -> Result<()> {
        let grants = Grants::load(&self.paths)?;
        let asker = resolve::Asker {
            consumer: &self.consumer,
            purpose: self.purpose.as_deref(),
            grants: &grants,
        };
        let outcome = resolve::renew(leases, &asker);
        let events: Vec<Event> = leases
            .iter()
            .map(|l| Event {
                action: "renew",
                handle: l.secret.handle().map(str::to_owned),
                reference: l.secret.reference().map(str::to_owned),
                consumer: self.consumer.clone(),
                purpose: self.purpose.clone(),
                outcome: match &outcome {
                    Ok(()) => format!("ok (lease {}s)", l.ttl),
                    Err(_) => "revoked: the grant was withdrawn; stopping the holder".into(),
                },
                ..Event::default()
            })
            .collect();
        audit::append(&self.paths, &events)?;
        outcome
    }
}

/// Lease renewal for one running child (`exec`, `run`).
pub(crate) struct Watch {
    pub(crate) holder: Holder,
    pub(crate) leases: Vec<Lease>,
    /// After the stop signal, how long before SIGKILL.
    pub(crate) stop_timeout: Duration,
}

impl Watch {
    /// The watch for `leases`, if any has a ttl.
    pub(crate) fn new(holder: Holder, leases: Vec<Lease>, stop_timeout: Duration) -> Option<Self> {
        (!leases.is_empty()).then_some(Self {
            holder,
            leases,
            stop_timeout,
        })
    }

    /// Renews on a thread until `done`; on a withdrawn grant, stops `child`
    /// (TERM, then KILL after the timeout).
    pub(crate) fn spawn(self, child: Pid, done: Arc<AtomicBool>) {
        let Some(ttl) = self.leases.iter().map(|l| l.ttl).min() else {
            return;
        };
        let every = interval(ttl);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(every);
                if done.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = self.holder.renew(&self.leases) {
                    eprintln!("secret: {e}; stopping {child}");
                    let _ = nix::sys::signal::kill(child, Signal::SIGTERM);
                    let start = Instant::now();
                    while start.elapsed() < self.stop_timeout {
                        if done.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_half_the_ttl_never_too_often_and_never_overflows() {
        assert_eq!(interval(300), Duration::from_secs(150));
        assert_eq!(interval(0), MIN_INTERVAL);
        assert_eq!(interval(u64::MAX), Duration::from_millis(u64::MAX));
        assert!(
            Instant::now()
                .checked_add(interval(crate::grants::MAX_TTL_SECS))
                .is_some()
        );
    }
}

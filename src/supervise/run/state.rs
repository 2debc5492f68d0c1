//! The per-plugin state machine's pure part: the states a plugin goes
//! through, and what a run's end leads to (exited, failed by a crash loop,
//! or a restart after a backoff). No clock is read and nothing is
//! signalled here: the event loop passes `now` and acts on the answer, so
//! every transition is unit-tested.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::super::config::{Plugin, Restart};

/// A plugin's state, as `status` would show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Disabled,
    Waiting,
    Starting,
    Running,
    Ready,
    Backoff,
    Stopping,
    Exited,
    Failed,
}

impl State {
    /// No further transition happens without a reload.
    #[must_use]
    pub(crate) fn terminal(self) -> bool {
        matches!(self, Self::Disabled | Self::Exited | Self::Failed)
    }

    #[must_use]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Waiting => "waiting",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Ready => "ready",
            Self::Backoff => "backoff",
            Self::Stopping => "stopping",
            Self::Exited => "exited",
            Self::Failed => "failed",
        }
    }
}

/// A plugin's recent failures, for backoff and the crash-loop limit.
#[derive(Debug, Default)]
pub(super) struct History {
    /// Failures in a row (reset by a run that lasted `stable_after`).
    pub consecutive: u32,
    /// When each failure inside the crash-loop window happened.
    pub failures: VecDeque<Instant>,
}

/// What a run that ended by itself leads to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// `exited`: no restart (the policy says so).
    Exited,
    /// `failed`: this many failures inside the crash-loop window.
    CrashLoop { failures: usize },
    /// `backoff`, then a restart after `delay`.
    Restart { delay: Duration },
}

/// Classifies the end of a run that started at `started` and ended `now`,
/// successfully or not, updating `history`: a run that lasted
/// `stable_after` resets the count of failures in a row; a failure counts
/// toward the crash-loop limit (`crash_loop.max` in `crash_loop.window`);
/// then `restart` decides. After a failure the delay is
/// `restart_delay × 2^(k-1)` capped at `restart_delay_max`; after a success
/// it is `restart_delay`.
pub(super) fn after_exit(
    plugin: &Plugin,
    history: &mut History,
    success: bool,
    started: Instant,
    now: Instant,
) -> Next {
    if now.saturating_duration_since(started) >= plugin.stable_after {
        history.consecutive = 0;
    }
    if !success {
        history.consecutive = history.consecutive.saturating_add(1);
        history.failures.push_back(now);
        let window = plugin.crash_loop.window;
        while history
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            history.failures.pop_front();
        }
        let max = plugin.crash_loop.max;
        if max > 0 && history.failures.len() >= max as usize {
            return Next::CrashLoop {
                failures: history.failures.len(),
            };
        }
    }
    let restart = match plugin.restart {
        Restart::No => false,
        Restart::OnFailure => !success,
        Restart::Always => true,
    };
    if !restart {
        return Next::Exited;
    }
    let delay = if success {
        plugin.restart_delay
    } else {
        let doublings = history.consecutive.saturating_sub(1).min(30);
        plugin
            .restart_delay
            .saturating_mul(1 << doublings)
            .min(plugin.restart_delay_max)
    };
    Next::Restart { delay }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::config::PluginsFile;
    use std::path::Path;

    fn plugin(extra: &str) -> Plugin {
        let text = format!("[[plugins]]\nid = \"a\"\ncommand = \"x\"\n{extra}\n");
        let mut c = PluginsFile::parse(&text, Path::new("p.toml"), Path::new("/"), &|_| false)
            .expect("valid");
        c.plugins.remove(0)
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let p = plugin(
            "restart = \"on-failure\"\nrestart_delay = \"1s\"\nrestart_delay_max = \"5s\"\ncrash_loop = { max = 0 }",
        );
        let mut h = History::default();
        let t0 = Instant::now();
        let delays: Vec<Next> = (0..5)
            .map(|k| after_exit(&p, &mut h, false, t0, t0 + S * k))
            .collect();
        let want = [1, 2, 4, 5, 5].map(|s| Next::Restart {
            delay: Duration::from_secs(s),
        });
        assert_eq!(delays, want);
        assert_eq!(h.consecutive, 5);
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let p = plugin(
            "restart_delay = \"1s\"\nrestart_delay_max = \"60s\"\nstable_after = \"10s\"\ncrash_loop = { max = 0 }",
        );
        let mut h = History {
            consecutive: 4,
            failures: VecDeque::new(),
        };
        let t0 = Instant::now();
        assert_eq!(
            after_exit(&p, &mut h, false, t0, t0 + S * 11),
            Next::Restart { delay: S }
        );
        assert_eq!(h.consecutive, 1);
    }

    #[test]
    fn the_policy_decides_whether_to_restart() {
        let t0 = Instant::now();
        let no = plugin("restart = \"no\"");
        assert_eq!(
            after_exit(&no, &mut History::default(), true, t0, t0),
            Next::Exited
        );
        assert_eq!(
            after_exit(&no, &mut History::default(), false, t0, t0),
            Next::Exited
        );
        let on_failure = plugin("restart = \"on-failure\"");
        assert_eq!(
            after_exit(&on_failure, &mut History::default(), true, t0, t0),
            Next::Exited
        );
        let always = plugin("restart = \"always\"\nrestart_delay = \"3s\"");
        assert_eq!(
            after_exit(&always, &mut History::default(), true, t0, t0),
            Next::Restart {
                delay: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn a_crash_loop_fails_the_plugin_only_inside_its_window() {
        let p = plugin("restart_delay = \"1s\"\ncrash_loop = { max = 3, window = \"10s\" }");
        let t0 = Instant::now();
        let mut h = History::default();
        assert!(matches!(
            after_exit(&p, &mut h, false, t0, t0),
            Next::Restart { .. }
        ));
        assert!(matches!(
            after_exit(&p, &mut h, false, t0, t0 + S),
            Next::Restart { .. }
        ));
        // The first failure has left the window: two inside, no loop.
        assert!(matches!(
            after_exit(&p, &mut h, false, t0, t0 + S * 11),
            Next::Restart { .. }
        ));
        assert_eq!(
            after_exit(&p, &mut h, false, t0, t0 + S * 11),
            Next::CrashLoop { failures: 3 }
        );
        // A success never counts toward the limit.
        let mut h = History::default();
        for k in 0..5 {
            assert!(!matches!(
                after_exit(&p, &mut h, true, t0, t0 + S * k),
                Next::CrashLoop { .. }
            ));
        }
    }

    #[test]
    fn terminal_states() {
        let terminal: Vec<&str> = [
            State::Disabled,
            State::Waiting,
            State::Starting,
            State::Running,
            State::Ready,
            State::Backoff,
            State::Stopping,
            State::Exited,
            State::Failed,
        ]
        .into_iter()
        .filter(|s| s.terminal())
        .map(State::name)
        .collect();
        assert_eq!(terminal, ["disabled", "exited", "failed"]);
    }
}

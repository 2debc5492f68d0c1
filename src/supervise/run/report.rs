//! What the supervisor tells: the status snapshot, its exit code, and
//! the audit records of plugin starts and exits.

use super::*;

impl Supervisor<'_> {
    /// Every plugin's state, as JSON, for `secret plugins status`.
    pub(super) fn snapshot(&self) -> String {
        let now = Instant::now();
        let plugins = self
            .units
            .iter()
            .filter(|u| !u.removed)
            .map(|u| status::PluginStatus {
                id: u.plugin.id.clone(),
                state: u.state.name().to_owned(),
                pid: u.leader.map(Pid::as_raw),
                uptime_secs: u.leader.map(|_| now.duration_since(u.started_at).as_secs()),
                restarts: u.generation.saturating_sub(1),
                reason: u.reason.clone(),
            })
            .collect();
        let snapshot = status::Snapshot {
            supervisor_pid: std::process::id(),
            // Absolute: `status` without FILE lists supervisors started
            // from other directories.
            file: std::path::absolute(&self.config.path)
                .unwrap_or_else(|_| self.config.path.clone())
                .display()
                .to_string(),
            shutting_down: self.shutdown.is_some(),
            plugins,
            omitted: 0,
        };
        snapshot.encode(status::MAX_ANSWER)
    }

    /// The exit code once nothing is left to do.
    pub(super) fn finished(&self) -> Option<u8> {
        if self.units.iter().any(Unit::alive) {
            return None;
        }
        if let Some(sd) = &self.shutdown {
            let done = self
                .units
                .iter()
                .all(|u| u.removed || u.state.terminal() || u.state == State::Waiting);
            return done.then(|| {
                sd.forced
                    .map_or(sd.code, |s| u8::try_from(128 + s).unwrap_or(255))
            });
        }
        let settled = self.units.iter().all(|u| {
            u.removed
                || u.state.terminal()
                || (u.state == State::Waiting && self.blocker(u).is_some())
        });
        if !settled {
            return None;
        }
        let failed = self
            .units
            .iter()
            .any(|u| !u.removed && matches!(u.state, State::Failed | State::Waiting));
        Some(u8::from(failed))
    }

    pub(super) fn audit(&self, id: &str, action: &'static str, outcome: String) {
        let event = AuditEvent {
            action,
            consumer: crate::supervise::consumer(id),
            outcome,
            ..AuditEvent::default()
        };
        if let Err(e) = crate::audit::append(self.host.paths, &[event]) {
            log(&format!("warning: cannot write the audit trail: {e}"));
        }
    }
}

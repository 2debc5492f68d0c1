//! Stopping: a group's stop (signal, timeout, SIGKILL), the end of a run
//! and its classification (through `state`), failure, and shutdown.

use super::*;

impl Supervisor<'_> {
    /// Sends the stop signal (and SIGCONT) to unit `i`'s group.
    pub(super) fn begin_stop(&mut self, i: usize, then: Then, now: Instant) {
        self.end_probe(i);
        let unit = &mut self.units[i];
        if let Some(stop) = unit.stop.as_mut() {
            // Already stopping: only what follows changes.
            if then.rank() > stop.then.rank() {
                stop.then = then;
            }
            return;
        }
        let Some(target) = unit.target() else {
            return;
        };
        let signal = unit.plugin.stop_signal;
        let immediate = signal == Signal::SIGKILL || unit.plugin.stop_timeout.is_zero();
        unit.stop = Some(Stop {
            then,
            kill_at: after(now, unit.plugin.stop_timeout),
            killed: immediate,
        });
        unit.state = State::Stopping;
        if immediate {
            let _ = kill(target, Signal::SIGKILL);
        } else {
            let _ = kill(target, signal);
            let _ = kill(target, Signal::SIGCONT);
        }
    }

    /// The run of unit `i` is over: the leader was reaped and the group is
    /// empty (or it never started). Decide what comes next.
    pub(super) fn run_over(&mut self, i: usize, now: Instant) {
        self.end_probe(i);
        let unit = &mut self.units[i];
        let stop = unit.stop.take();
        let exit = unit.exit.take();
        unit.last_exit.clone_from(&exit);
        let id = unit.plugin.id.clone();
        let described = exit
            .as_ref()
            .map_or_else(|| "ended".to_owned(), Exit::describe);
        match stop.map(|s| s.then) {
            Some(Then::Stopped) => {
                unit.state = State::Exited;
                unit.reason = Some(format!("stopped ({described})"));
                log(&format!("{id} stopped ({described})"));
                self.audit(&id, "plugin-exit", format!("stopped ({described})"));
                return;
            }
            Some(Then::Fail(reason)) => {
                self.audit(&id, "plugin-exit", format!("stopped ({described})"));
                return self.fail(i, reason);
            }
            Some(Then::Restart) => {
                if let Some(p) = unit.pending.take() {
                    unit.plugin = p;
                }
                unit.reset();
                unit.state = State::Waiting;
                log(&format!(
                    "{id} stopped ({described}); starting it with its new settings"
                ));
                self.audit(
                    &id,
                    "plugin-exit",
                    format!("stopped for reload ({described})"),
                );
                return;
            }
            Some(Then::Remove) => {
                unit.removed = true;
                unit.state = State::Exited;
                log(&format!(
                    "{id} stopped ({described}); removed from the configuration"
                ));
                self.audit(
                    &id,
                    "plugin-exit",
                    format!("stopped: removed ({described})"),
                );
                return;
            }
            Some(Then::Disable) => {
                if let Some(p) = unit.pending.take() {
                    unit.plugin = p;
                }
                unit.state = State::Disabled;
                log(&format!("{id} stopped ({described}); disabled"));
                self.audit(
                    &id,
                    "plugin-exit",
                    format!("stopped: disabled ({described})"),
                );
                return;
            }
            Some(Then::Classify) | None => {}
        }
        self.audit(&id, "plugin-exit", described.clone());
        let unit = &mut self.units[i];
        let plugin = &unit.plugin;
        let success = matches!(exit, Some(Exit::Code(c)) if plugin.success_exit_codes.contains(&c));
        if self.shutdown.is_some() {
            unit.state = State::Exited;
            unit.completed_ok = success;
            unit.reason = Some(described.clone());
            log(&format!("{id} exited ({described})"));
            return;
        }
        let mut history = state::History {
            consecutive: unit.consecutive,
            failures: std::mem::take(&mut unit.failures),
        };
        let next = state::after_exit(plugin, &mut history, success, unit.started_at, now);
        unit.consecutive = history.consecutive;
        unit.failures = history.failures;
        let delay = match next {
            Next::CrashLoop { failures } => {
                let reason = format!(
                    "{failures} failures in {} (last: {described}); not restarting",
                    plugin.crash_loop.window_text
                );
                return self.fail(i, reason);
            }
            Next::Exited => {
                unit.state = State::Exited;
                unit.completed_ok = success;
                unit.reason = Some(described.clone());
                let why = if success {
                    String::new()
                } else {
                    format!(
                        "; not restarting (restart = \"{}\")",
                        restart_name(plugin.restart)
                    )
                };
                log(&format!("{id} exited ({described}){why}"));
                return;
            }
            Next::Restart { delay } => delay,
        };
        unit.state = State::Backoff;
        unit.backoff_until = Some(after(now, delay));
        unit.reason = Some(described.clone());
        log(&format!(
            "{id} exited ({described}); restarting in {}",
            crate::duration::format(delay)
        ));
    }

    /// Unit `i` is `failed` (terminal).
    pub(super) fn fail(&mut self, i: usize, reason: String) {
        self.fail_hinted(i, reason, None);
    }

    /// Unit `i` is `failed` because of `e`: its message is the reason, and
    /// its hint (the fix) is logged under it, as `secret` prints errors.
    pub(super) fn fail_with(&mut self, i: usize, e: &Error) {
        self.fail_hinted(i, e.to_string(), e.hint());
    }

    fn fail_hinted(&mut self, i: usize, reason: String, hint: Option<String>) {
        let unit = &mut self.units[i];
        unit.state = State::Failed;
        unit.backoff_until = None;
        log(&format!("plugin {} failed: {reason}", unit.plugin.id));
        for line in hint.iter().flat_map(|h| h.lines()) {
            log(&format!("  hint: {line}"));
        }
        unit.reason = Some(reason);
        if self.config.supervisor.on_plugin_failed == OnFailed::Shutdown && self.shutdown.is_none()
        {
            log("on_plugin_failed = \"shutdown\": stopping every plugin");
            self.begin_shutdown(1);
        }
    }

    pub(super) fn begin_shutdown(&mut self, code: u8) {
        self.shutdown = Some(Shutdown {
            deadline: after(Instant::now(), self.config.supervisor.shutdown_deadline),
            deadline_hit: false,
            code,
            forced: None,
        });
        for unit in &mut self.units {
            if matches!(unit.state, State::Waiting | State::Backoff) && !unit.alive() {
                unit.state = State::Exited;
                unit.backoff_until = None;
                unit.reason = Some("not started: the supervisor is shutting down".into());
            }
        }
    }

    /// Stops every live plugin none of whose live dependents remain.
    pub(super) fn progress_shutdown(&mut self, now: Instant) {
        for i in 0..self.units.len() {
            let unit = &self.units[i];
            if !unit.alive() {
                continue;
            }
            if unit
                .stop
                .as_ref()
                .is_some_and(|s| !matches!(s.then, Then::Classify | Then::Restart))
            {
                continue;
            }
            let id = &unit.plugin.id;
            let dependents_alive = self.units.iter().any(|u| {
                !u.removed && u.alive() && u.plugin.depends_on.iter().any(|(d, _)| d == id)
            });
            if !dependents_alive {
                self.begin_stop(i, Then::Stopped, now);
            }
        }
    }

    /// SIGKILL to every live group at once.
    pub(super) fn kill_all(&mut self) {
        let now = Instant::now();
        for unit in &mut self.units {
            if !unit.alive() {
                continue;
            }
            if let Some(target) = unit.target() {
                let _ = kill(target, Signal::SIGKILL);
            }
            match unit.stop.as_mut() {
                Some(stop) => {
                    stop.killed = true;
                    if matches!(stop.then, Then::Classify | Then::Restart) {
                        stop.then = Then::Stopped;
                    }
                }
                None => {
                    unit.state = State::Stopping;
                    unit.stop = Some(Stop {
                        then: Then::Stopped,
                        kill_at: now,
                        killed: true,
                    });
                }
            }
        }
    }

    /// Finds groups whose leader is gone: empty ones end their run; others
    /// are stopped (if nobody is stopping them yet).
    pub(super) fn check_groups(&mut self, now: Instant) {
        for i in 0..self.units.len() {
            let unit = &self.units[i];
            if unit.leader.is_some() {
                continue;
            }
            match unit.group {
                Some(g) if group_empty(g) => {
                    self.group_gone(i);
                    self.run_over(i, now);
                }
                Some(_) if unit.stop.is_none() => {
                    log(&format!(
                        "{} exited ({}); stopping what is left of its process group",
                        unit.plugin.id,
                        unit.exit.as_ref().map_or_else(String::new, Exit::describe)
                    ));
                    self.begin_stop(i, Then::Classify, now);
                }
                Some(_) => {}
                None if unit.exit.is_some() => self.run_over(i, now),
                None => {}
            }
        }
    }

    /// The group of unit `i` is empty (or not ours to watch): the run is
    /// over once the leader is reaped.
    pub(super) fn group_gone(&mut self, i: usize) {
        // Nothing of the run is left to use its proxy credentials.
        self.units[i].proxy = None;
        if let Some(g) = self.units[i].group.take()
            && let Some(keeper) = self.keeper.as_mut()
        {
            keeper.remove(g);
        }
    }
}

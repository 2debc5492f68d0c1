//! Starting plugins: which are due (dependencies met), and one start:
//! its secrets, environment, masking, pipes and spawn, through `launch`.

use super::*;
use crate::broker::proxy::{Admission, Plan, Server, Wanted};

impl Supervisor<'_> {
    /// Starts every waiting plugin whose dependencies are met, until none
    /// is left to start (a dependency started in this pass may let its
    /// dependents start in the next).
    pub(super) fn start_ready_units(&mut self, now: Instant) {
        loop {
            let mut started = false;
            for i in 0..self.units.len() {
                if self.units[i].state != State::Waiting || self.units[i].removed {
                    continue;
                }
                let unit = &self.units[i];
                if let Some(blocker) = self.blocker(unit) {
                    if !unit.blocked_logged {
                        log(&format!(
                            "{} is blocked by {blocker}; not starting it",
                            unit.plugin.id
                        ));
                        let reason = format!("blocked by {blocker}");
                        let unit = &mut self.units[i];
                        unit.blocked_logged = true;
                        unit.reason = Some(reason);
                    }
                    continue;
                }
                let met = unit
                    .plugin
                    .depends_on
                    .iter()
                    .all(|(dep, c)| self.satisfied(dep, *c));
                if met {
                    self.start(i, now);
                    started = true;
                }
            }
            if !started {
                return;
            }
        }
    }

    /// Resolves the plugin's secrets and spawns it.
    pub(super) fn start(&mut self, i: usize, now: Instant) {
        let plugin = self.units[i].plugin.clone();
        self.units[i].generation += 1;
        self.units[i].reason = None;
        let generation = self.units[i].generation;
        self.units[i].settings_print = Some(fingerprint::settings(&plugin));
        self.units[i].secret_print = None;
        let secrets = match launch::secrets(&plugin, self.host, &self.store) {
            Ok(s) => s,
            Err(e) => return self.fail_with(i, &e),
        };
        self.units[i].lease = secrets.shortest_lease().map(Duration::from_secs);
        self.units[i].renew_at = secrets
            .shortest_lease()
            .map(|ttl| after(now, lease::interval(ttl)));
        let launch::Secrets {
            values: secrets,
            grant_keys,
            leases,
        } = secrets;
        self.units[i].leases = leases;
        self.units[i].secret_print = Some(fingerprint::secrets(&self.key, &secrets));
        // A new run, new credentials: the last run's stop working now.
        self.units[i].proxy = None;
        let admission = match self.admit(&plugin, &secrets, &grant_keys) {
            Ok(a) => a,
            Err(e) => return self.fail_with(i, &e),
        };
        let in_env: Vec<(String, crate::value::SecretValue)> = plugin
            .secret_env_refs
            .iter()
            .zip(&secrets)
            .filter(|(r, _)| !r.proxy)
            .map(|(_, (var, v))| {
                (
                    var.clone(),
                    crate::value::SecretValue::new(v.expose().to_vec()),
                )
            })
            .collect();
        let proxy_vars = admission.as_ref().map_or(&[][..], |a| &a.vars[..]);
        let env = launch::environment(&plugin, std::env::vars_os(), &in_env, proxy_vars);
        drop(in_env);
        self.units[i].proxy = admission;
        let labelled: Vec<(String, &crate::value::SecretValue)> = if plugin.mask_output {
            plugin
                .secret_env_refs
                .iter()
                .zip(&secrets)
                .map(|(r, (_, v))| (r.text.clone(), v))
                .collect()
        } else {
            Vec::new()
        };
        let id = plugin.id.clone();
        let redactor = match crate::child::relay::redactor(labelled, |w| {
            log(&format!("warning: {id}: {w}"));
        }) {
            Ok(r) => r,
            Err(e) => return self.fail(i, format!("cannot set up masking: {e}")),
        };
        drop(secrets);
        let streams = match Streams::new(plugin.output) {
            Ok(s) => s,
            Err(e) => return self.fail_with(i, &e),
        };
        let mut wiring = Wiring {
            stdio: streams.stdio(),
            extra: Vec::new(),
        };
        let mut notify: Option<(OwnedFd, OwnedFd)> = None;
        if let Some(Probe::NotifyFd(n)) = plugin.ready.as_ref().map(|r| &r.probe) {
            match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                Ok((r, w)) => {
                    wiring.extra.push((std::os::fd::AsRawFd::as_raw_fd(&w), *n));
                    notify = Some((r, w));
                }
                Err(e) => return self.fail(i, format!("cannot create the notify_fd pipe: {e}")),
            }
        }
        let spawned = launch::spawn(&plugin, &env, &wiring);
        drop(env);
        let on_line = self.log_line_hook(i, generation);
        let unit = &mut self.units[i];
        unit.started_at = now;
        match spawned {
            Err(e) => {
                drop(streams);
                for line in e.hint().iter().flat_map(|h| h.lines()) {
                    log(&format!("{}: hint: {line}", unit.plugin.id));
                }
                unit.exit = Some(Exit::SpawnError(e.to_string()));
                unit.state = State::Running;
                // check_groups sees no leader and no group: the run is over.
            }
            Ok(pid) => {
                unit.leader = Some(pid);
                unit.group = Some(pid);
                unit.exit = None;
                unit.ever_started = true;
                if let Some(keeper) = self.keeper.as_mut() {
                    keeper.add(pid);
                }
                let cancel = Arc::new(AtomicBool::new(false));
                let style = match plugin.output {
                    crate::supervise::config::Output::Prefix => Style::new(
                        &plugin.prefix,
                        self.width,
                        unit.style_index,
                        self.color,
                        self.config.supervisor.timestamps,
                    ),
                    _ => Style::raw(),
                };
                if let Some(relay) =
                    streams.start(style, &redactor, Arc::clone(&self.quit), on_line)
                {
                    self.relays.retain(|r| !r.is_finished());
                    self.relays.push(relay);
                }
                let unit = &mut self.units[i];
                match &plugin.ready {
                    Some(ready) => {
                        unit.state = State::Starting;
                        unit.probe = Some(ProbeRun {
                            cancel: Arc::clone(&cancel),
                            deadline: after(now, ready.timeout),
                            exec_pid: None,
                            exec_next: matches!(ready.probe, Probe::Exec(_)).then_some(now),
                        });
                        match &ready.probe {
                            Probe::NotifyFd(_) => {
                                if let Some((r, w)) = notify.take() {
                                    drop(w);
                                    self.watch_notify(i, generation, r);
                                }
                            }
                            Probe::Tcp(addr) => {
                                self.watch_tcp(i, generation, addr.clone(), ready.interval, cancel)
                            }
                            Probe::LogLine(_) | Probe::Exec(_) => {}
                        }
                    }
                    None => {
                        unit.state = State::Running;
                        unit.ever_ready = true;
                    }
                }
                log(&format!("{} started (pid {pid})", plugin.id));
                self.audit(&plugin.id, "plugin-start", format!("pid {pid}"));
            }
        }
    }

    /// Admits the plugin to the supervisor's proxy (started on first use)
    /// with its `secret_proxy_refs`, as user `<id>`; `None` when it has
    /// none.
    fn admit(
        &mut self,
        plugin: &Plugin,
        secrets: &[(String, crate::value::SecretValue)],
        grant_keys: &[String],
    ) -> Result<Option<Admission>> {
        let wanted: Vec<Wanted<'_>> = plugin
            .secret_env_refs
            .iter()
            .zip(secrets)
            .zip(grant_keys)
            .filter(|((r, _), _)| r.proxy)
            .map(|((r, (var, value)), key)| Wanted {
                var,
                source: &r.source,
                grant_key: key,
                value,
            })
            .collect();
        if wanted.is_empty() {
            return Ok(None);
        }
        let grants = self.store.grants(self.host.paths)?;
        let consumer = crate::supervise::consumer(&plugin.id);
        let plan = Plan {
            wanted,
            grants: &grants,
            consumer: &consumer,
            purpose: None,
            egress_deny: plugin.proxy_egress == crate::supervise::config::Egress::Deny,
            paths: self.host.paths,
        };
        if self.proxy.is_none() {
            self.proxy = Some(Server::start(self.host.paths, self.host.config)?);
            log("proxy started for secret_proxy_refs");
        }
        match &self.proxy {
            Some(server) => server.admit(&plan, &plugin.id).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn satisfied(&self, dep: &str, condition: Condition) -> bool {
        let Some(d) = self.unit(dep) else {
            return true;
        };
        match condition {
            Condition::Started => d.ever_started,
            Condition::Ready => d.ever_ready,
            Condition::Completed => d.state == State::Exited && d.completed_ok,
        }
    }

    /// The first dependency that can no longer be met, described.
    pub(super) fn blocker(&self, unit: &Unit) -> Option<String> {
        unit.plugin.depends_on.iter().find_map(|(dep, condition)| {
            let d = self.unit(dep)?;
            if !d.state.terminal() || self.satisfied(dep, *condition) {
                return None;
            }
            Some(match (&d.state, &d.last_exit) {
                (State::Failed, _) => format!("{dep} (failed)"),
                (_, Some(exit)) => {
                    format!("{dep} ({}; needed: {})", exit.describe(), condition.name())
                }
                _ => format!("{dep} ({}; needed: {})", d.state.name(), condition.name()),
            })
        })
    }

    /// The (not removed) unit named `id`.
    pub(super) fn unit(&self, id: &str) -> Option<&Unit> {
        self.units.iter().find(|u| !u.removed && u.plugin.id == id)
    }
}

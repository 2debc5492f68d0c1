//! SIGHUP reloads (what changed restarts, what is gone stops) and lease
//! renewal (through `child::lease`) with the rotation watch.

use super::*;

impl Supervisor<'_> {
    /// SIGHUP, debounced: re-reads plugins.toml and applies it. An
    /// invalid file changes nothing. Each enabled plugin's references are
    /// resolved again; a plugin restarts only when its spawn fingerprint
    /// (settings, or secret values unless `on_secret_change = "ignore"`)
    /// changed. A reference that no longer resolves leaves a running
    /// plugin as it is.
    pub(super) fn reload(&mut self, now: Instant) {
        let host = self.host;
        let new = match PluginsFile::load(&self.config.path, &|s| host.is_remote(s)) {
            Ok(c) => c,
            Err(invalid) => {
                for line in invalid.lines() {
                    log(&format!("reload: {line}"));
                }
                log(
                    "reload: the file is invalid; the running configuration stays, no plugin was touched",
                );
                return;
            }
        };
        if new
            .plugins
            .iter()
            .any(|p| p.enabled && launch::needs_store(p))
            && let Err(e) = self.store.open(host)
        {
            log(&format!(
                "reload: cannot open the store: {e}; the running configuration stays"
            ));
            return;
        }
        let mut counts = Counts::default();
        for p in &new.plugins {
            match self
                .units
                .iter()
                .position(|u| !u.removed && u.plugin.id == p.id)
            {
                Some(i) => self.reload_unit(i, p.clone(), now, &mut counts),
                None => {
                    if p.enabled {
                        counts.started += 1;
                    }
                    let index = self.units.len();
                    self.units.push(Unit::new(p.clone(), index));
                }
            }
        }
        for i in 0..self.units.len() {
            let unit = &mut self.units[i];
            if unit.removed || new.plugins.iter().any(|p| p.id == unit.plugin.id) {
                continue;
            }
            counts.stopped += 1;
            if unit.alive() {
                self.begin_stop(i, Then::Remove, now);
            } else {
                unit.removed = true;
                unit.state = State::Exited;
                unit.backoff_until = None;
            }
        }
        self.width = prefix_width(&new);
        self.color = use_color(&new);
        self.config = new;
        log(&format!(
            "reload: {} restarted, {} started, {} stopped, {} unchanged",
            counts.restarted, counts.started, counts.stopped, counts.unchanged
        ));
    }

    /// Renews unit `i`'s lease: resolves its secrets again through the
    /// grants as they are now. A withdrawn grant stops the plugin and marks
    /// it failed; a rotated value restarts it (`on_secret_change =
    /// "restart"`); otherwise the lease runs on.
    pub(super) fn renew(&mut self, i: usize, now: Instant) {
        let plugin = self.units[i].plugin.clone();
        let id = plugin.id.clone();
        let holder = lease::Holder {
            paths: self.host.paths.clone(),
            consumer: crate::supervise::consumer(&id),
            purpose: None,
        };
        if let Err(e) = holder.renew(&self.units[i].leases) {
            self.units[i].renew_at = None;
            log(&format!("{id}: lease not renewed: {e}; stopping it"));
            self.begin_stop(i, Then::Fail(format!("lease not renewed: {e}")), now);
            return;
        }
        let unit = &mut self.units[i];
        unit.renew_at = unit
            .lease
            .map(|l| after(now, (l / 2).max(lease::MIN_INTERVAL)));
        if plugin.on_secret_change != OnSecretChange::Restart {
            return;
        }
        // The rotation watch (not the lease's business): a value that
        // changed restarts the plugin with the new one.
        match launch::secrets(&plugin, self.host, &self.store) {
            Ok(secrets)
                if Some(fingerprint::secrets(&self.key, &secrets.values))
                    != self.units[i].secret_print =>
            {
                log(&format!(
                    "{id}: a secret was rotated; restarting it with the new value"
                ));
                self.units[i].pending = Some(plugin);
                self.begin_stop(i, Then::Restart, now);
            }
            Ok(_) => {}
            Err(e) => log(&format!(
                "{id}: {e}; it keeps running with the values it was started with"
            )),
        }
    }

    /// Applies `p`, the reloaded settings of unit `i`.
    pub(super) fn reload_unit(&mut self, i: usize, p: Plugin, now: Instant, counts: &mut Counts) {
        let unit = &mut self.units[i];
        if !p.enabled {
            if unit.state == State::Disabled {
                unit.plugin = p;
                counts.unchanged += 1;
            } else if unit.alive() {
                counts.stopped += 1;
                unit.pending = Some(p);
                self.begin_stop(i, Then::Disable, now);
            } else {
                counts.stopped += 1;
                unit.plugin = p;
                unit.state = State::Disabled;
                unit.reset();
            }
            return;
        }
        if unit.state == State::Disabled {
            counts.started += 1;
            unit.plugin = p;
            unit.reset();
            unit.state = State::Waiting;
            return;
        }
        let settings_changed = unit.settings_print != Some(fingerprint::settings(&p));
        let alive = unit.alive();
        let id = p.id.clone();
        let secrets_changed = match launch::secrets(&p, self.host, &self.store) {
            Ok(secrets) => {
                Some(fingerprint::secrets(&self.key, &secrets.values)) != self.units[i].secret_print
            }
            Err(reason) => {
                if alive {
                    log(&format!(
                        "reload: {id}: {reason}; it keeps running with the values it was started with"
                    ));
                }
                false
            }
        };
        let unit = &mut self.units[i];
        let restart =
            settings_changed || (secrets_changed && p.on_secret_change == OnSecretChange::Restart);
        if alive {
            if restart {
                counts.restarted += 1;
                unit.pending = Some(p);
                self.begin_stop(i, Then::Restart, now);
            } else {
                if secrets_changed {
                    log(&format!(
                        "reload: {id}: a secret changed; on_secret_change = \"ignore\" leaves it running"
                    ));
                }
                counts.unchanged += 1;
                unit.plugin = p;
            }
            return;
        }
        let revive = matches!(unit.state, State::Failed | State::Exited)
            && (settings_changed || secrets_changed);
        unit.plugin = p;
        if revive {
            counts.restarted += 1;
            unit.reset();
            unit.state = State::Waiting;
        } else {
            counts.unchanged += 1;
        }
    }
}

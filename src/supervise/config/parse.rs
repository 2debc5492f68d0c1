//! Walking the document: the top level, `[supervisor]`, `[defaults]` and
//! each `[[plugins]]` entry, merged with the defaults into the resolved
//! `Plugin`s. Values are checked by `validate`, relations by `graph`.

use super::*;

impl Parser<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(Diag::new(span, message));
    }

    /// Reports keys of `table` not in `known`; `place` is where, as in
    /// `plugins[0]` ("the top level" for the document). The first
    /// `MAX_UNKNOWN_KEYS` are named one by one, the rest counted in one
    /// more problem at the first of them.
    pub(super) fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], place: &str) {
        let mut unknown: Vec<(Range<usize>, &str)> = Vec::new();
        for (key, _) in table.iter() {
            self.work += 1;
            let name: &str = key.get_ref();
            if !known.contains(&name) {
                unknown.push((key.span(), name));
            }
        }
        // The table iterates in key order; name the first in the file.
        unknown.sort_unstable_by_key(|(span, _)| span.start);
        for (span, name) in unknown.iter().take(MAX_UNKNOWN_KEYS) {
            let hint = suggestion(name, known.iter().copied());
            self.error(
                span.clone(),
                format!("unknown key \"{}\" in {place}{hint}", shown(name)),
            );
        }
        if let Some((span, _)) = unknown.get(MAX_UNKNOWN_KEYS) {
            let n = unknown.len() - MAX_UNKNOWN_KEYS;
            self.error(
                span.clone(),
                format!(
                    "{n} more unknown key{} in {place} (only the first {MAX_UNKNOWN_KEYS} are named)",
                    if n == 1 { "" } else { "s" }
                ),
            );
        }
    }

    pub(super) fn expected(&mut self, path: &str, v: &Value<'_>, what: &str) {
        self.error(
            v.span(),
            format!("{path}: expected {what}, found {}", type_name(v.get_ref())),
        );
    }

    pub(super) fn table<'v, 'i>(
        &mut self,
        path: &str,
        v: &'v Value<'i>,
    ) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.expected(path, v, "a table");
                None
            }
        }
    }

    pub(super) fn document(&mut self, doc: &DeTable<'_>, path: &Path) -> PluginsFile {
        self.unknown_keys(doc, TOP_KEYS, "the top level");
        if let Some(v) = doc.get("version")
            && let Some(n) = self.integer("version", v, 0..i64::MAX)
            && n != VERSION
        {
            self.error(
                v.span(),
                format!("version: unsupported version {n} (this build reads version {VERSION})"),
            );
        }
        let supervisor = doc
            .get("supervisor")
            .and_then(|v| {
                let t = self.table("supervisor", v)?;
                Some(self.supervisor(t))
            })
            .unwrap_or_default();
        let defaults = doc
            .get("defaults")
            .and_then(|v| {
                let t = self.table("defaults", v)?;
                for (key, _) in t.iter() {
                    let name: &str = key.get_ref();
                    if PER_PLUGIN_ONLY.contains(&name) {
                        self.error(
                            key.span(),
                            format!(
                                "defaults.{name}: \"{name}\" is per-plugin only; set it in each [[plugins]] entry"
                            ),
                        );
                    }
                }
                let known: Vec<&str> = PLUGIN_KEYS
                    .iter()
                    .copied()
                    .filter(|k| !PER_PLUGIN_ONLY.contains(k))
                    .collect();
                let unknown: Vec<&str> = PLUGIN_KEYS.to_vec();
                self.unknown_keys(t, &unknown, "defaults");
                Some(self.settings(t, "defaults", &known))
            })
            .unwrap_or_default();
        let mut entries = Vec::new();
        let mut plugins = Vec::new();
        if let Some(v) = doc.get("plugins") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let place = format!("plugins[{i}]");
                        let Some(t) = self.table(&place, item) else {
                            continue;
                        };
                        let (entry, plugin) = self.plugin(i, item.span(), t, &defaults);
                        entries.push(entry);
                        plugins.extend(plugin);
                    }
                }
                _ => self.expected("plugins", v, "an array of tables ([[plugins]])"),
            }
        }
        self.relations(&entries, &plugins);
        PluginsFile {
            path: path.to_owned(),
            dir: self.dir.to_owned(),
            supervisor,
            plugins,
        }
    }

    pub(super) fn supervisor(&mut self, t: &DeTable<'_>) -> Supervisor {
        self.unknown_keys(t, SUPERVISOR_KEYS, "supervisor");
        let mut s = Supervisor::default();
        if let Some(v) = t.get("on_plugin_failed") {
            let choices = [
                ("continue", OnFailed::Continue),
                ("shutdown", OnFailed::Shutdown),
            ];
            if let Some(x) = self.choice("supervisor.on_plugin_failed", v, &choices) {
                s.on_plugin_failed = x;
            }
        }
        if let Some(v) = t.get("shutdown_deadline")
            && let Some((d, _)) = self.duration("supervisor.shutdown_deadline", v)
        {
            s.shutdown_deadline = d;
        }
        if let Some(v) = t.get("color") {
            let choices = [
                ("auto", Color::Auto),
                ("always", Color::Always),
                ("never", Color::Never),
            ];
            if let Some(x) = self.choice("supervisor.color", v, &choices) {
                s.color = x;
            }
        }
        if let Some(v) = t.get("timestamps")
            && let Some(b) = self.boolean("supervisor.timestamps", v)
        {
            s.timestamps = b;
        }
        if let Some(v) = t.get("reload_debounce")
            && let Some((d, _)) = self.duration("supervisor.reload_debounce", v)
        {
            s.reload_debounce = d;
        }
        s
    }

    /// The shared keys of `t` (only those in `keys`).
    pub(super) fn settings(&mut self, t: &DeTable<'_>, base: &str, keys: &[&str]) -> Settings {
        let mut s = Settings::default();
        for (key, v) in t.iter() {
            let name: &str = key.get_ref();
            if !keys.contains(&name) {
                continue;
            }
            let path = join(base, name);
            // A closure per use: each wraps a different type.
            macro_rules! at {
                () => {
                    |value| At {
                        value,
                        span: v.span(),
                        path: path.clone(),
                    }
                };
            }
            match name {
                "enabled" => s.enabled = self.boolean(&path, v).map(at!()),
                "kill_group" => s.kill_group = self.boolean(&path, v).map(at!()),
                "mask_output" => s.mask_output = self.boolean(&path, v).map(at!()),
                "cwd" => s.cwd = self.cwd(&path, v).map(at!()),
                "inherit_env" => {
                    let choices = [
                        ("minimal", InheritEnv::Minimal),
                        ("all", InheritEnv::All),
                        ("none", InheritEnv::None),
                    ];
                    s.inherit_env = self.choice(&path, v, &choices).map(at!());
                }
                "pass_env" => s.pass_env = self.pass_env(&path, v).map(at!()),
                "restart" => {
                    let choices = [
                        ("no", Restart::No),
                        ("on-failure", Restart::OnFailure),
                        ("always", Restart::Always),
                    ];
                    s.restart = self.choice(&path, v, &choices).map(at!());
                }
                "success_exit_codes" => s.success_exit_codes = self.exit_codes(&path, v).map(at!()),
                "restart_delay" => {
                    s.restart_delay = self.duration(&path, v).and_then(|(d, text)| {
                        if d < MIN_RESTART_DELAY {
                            self.error(
                                v.span(),
                                format!(
                                    "{path}: \"{}\" is below the minimum of 100ms",
                                    text.escape_default()
                                ),
                            );
                            None
                        } else {
                            Some(at!()(d))
                        }
                    });
                }
                "restart_delay_max" => {
                    s.restart_delay_max = self.duration(&path, v).map(|(d, _)| at!()(d));
                }
                "stable_after" => s.stable_after = self.duration(&path, v).map(|(d, _)| at!()(d)),
                "stop_timeout" => s.stop_timeout = self.duration(&path, v).map(|(d, _)| at!()(d)),
                "crash_loop" => s.crash_loop = self.crash_loop(&path, v).map(at!()),
                "stop_signal" => s.stop_signal = self.signal(&path, v, STOP_SIGNALS).map(at!()),
                "ready" => s.ready = self.ready(&path, v).map(at!()),
                "on_secret_change" => {
                    let choices = [
                        ("restart", OnSecretChange::Restart),
                        ("ignore", OnSecretChange::Ignore),
                    ];
                    s.on_secret_change = self.choice(&path, v, &choices).map(at!());
                }
                "proxy_egress" => {
                    let choices = [("allow", Egress::Allow), ("deny", Egress::Deny)];
                    s.proxy_egress = self.choice(&path, v, &choices).map(at!());
                }
                "output" => {
                    let choices = [
                        ("prefix", Output::Prefix),
                        ("raw", Output::Raw),
                        ("discard", Output::Discard),
                    ];
                    s.output = self.choice(&path, v, &choices).map(at!());
                }
                "prefix" => {
                    s.prefix = self.string(&path, v).and_then(|p| {
                        if p.is_empty() || p.chars().any(char::is_control) {
                            self.error(
                                v.span(),
                                format!("{path}: must be non-empty, without control characters"),
                            );
                            None
                        } else {
                            Some(at!()(p))
                        }
                    });
                }
                _ => {}
            }
        }
        s
    }

    pub(super) fn ready(&mut self, path: &str, v: &Value<'_>) -> Option<Ready> {
        let t = self.table(path, v)?;
        self.unknown_keys(t, READY_KEYS, path);
        let set: Vec<&str> = PROBE_KEYS
            .iter()
            .copied()
            .filter(|k| t.get(*k).is_some())
            .collect();
        if set.len() > 1 {
            self.error(
                v.span(),
                format!("{path}: only one of log_line, notify_fd, exec, tcp may be set"),
            );
            return None;
        }
        let Some(kind) = set.first().copied() else {
            self.error(
                v.span(),
                format!("{path}: set one of log_line, notify_fd, exec, tcp"),
            );
            return None;
        };
        let pv = t.get(kind)?;
        let ppath = join(path, kind);
        let probe = match kind {
            "log_line" => {
                let pattern = self.string(&ppath, pv)?;
                if let Err(e) = regex_lite::Regex::new(&pattern) {
                    let text = e.to_string();
                    let last = text.lines().last().unwrap_or_default().trim();
                    let first = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                    self.error(pv.span(), format!("{ppath}: invalid regex: {first}"));
                    return None;
                }
                Probe::LogLine(pattern)
            }
            "notify_fd" => {
                let fd = self.integer(&ppath, pv, i64::MIN..i64::MAX)?;
                if !(3..=1023).contains(&fd) {
                    self.error(
                        pv.span(),
                        format!("{ppath}: must be >= 3 (and at most 1023)"),
                    );
                    return None;
                }
                Probe::NotifyFd(i32::try_from(fd).unwrap_or(3))
            }
            "exec" => {
                let argv = self.strings(&ppath, pv)?;
                if argv.is_empty() {
                    self.error(pv.span(), format!("{ppath}: needs at least the program"));
                    return None;
                }
                Probe::Exec(argv.into_iter().map(|(s, _)| s).collect())
            }
            _ => {
                let addr = self.string(&ppath, pv)?;
                let port_ok = addr
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !port_ok {
                    self.error(
                        pv.span(),
                        format!(
                            "{ppath}: \"{}\" is not HOST:PORT (as in \"127.0.0.1:8080\")",
                            addr.escape_default()
                        ),
                    );
                    return None;
                }
                Probe::Tcp(addr)
            }
        };
        let timeout = match t.get("timeout") {
            Some(x) => self.duration(&join(path, "timeout"), x)?.0,
            None => Duration::from_secs(30),
        };
        let interval = match t.get("interval") {
            Some(x) => {
                if !matches!(probe, Probe::Exec(_) | Probe::Tcp(_)) {
                    self.error(
                        x.span(),
                        format!("{path}.interval: applies to exec and tcp probes only"),
                    );
                    return None;
                }
                let d = self.duration(&join(path, "interval"), x)?.0;
                if d < Duration::from_millis(10) {
                    self.error(x.span(), format!("{path}.interval: must be at least 10ms"));
                    return None;
                }
                d
            }
            None => Duration::from_millis(500),
        };
        Some(Ready {
            probe,
            timeout,
            interval,
        })
    }

    /// One `[[plugins]]` entry: its own keys, merged with `defaults`.
    pub(super) fn plugin(
        &mut self,
        index: usize,
        span: Range<usize>,
        t: &DeTable<'_>,
        defaults: &Settings,
    ) -> (Entry, Option<Plugin>) {
        let base = format!("plugins[{index}]");
        self.unknown_keys(t, PLUGIN_KEYS, &base);
        let before = self.diags.len();
        let id = self.id(&base, t, &span);
        let command = match t.get("command") {
            Some(v) => self.string(&join(&base, "command"), v).and_then(|c| {
                if c.is_empty() {
                    self.error(v.span(), format!("{base}.command: must not be empty"));
                    None
                } else {
                    Some(c)
                }
            }),
            None => {
                self.error(
                    span.clone(),
                    format!("{base}: missing required key \"command\""),
                );
                None
            }
        };
        let args = t
            .get("args")
            .map_or(Some(Vec::new()), |v| self.strings(&join(&base, "args"), v))
            .map(|a| a.into_iter().map(|(s, _)| s).collect::<Vec<_>>());
        let env_refs = t.get("secret_env_refs").map_or(Some(Vec::new()), |v| {
            self.secret_refs(&base, "secret_env_refs", v)
        });
        let proxy_refs = t.get("secret_proxy_refs").map_or(Some(Vec::new()), |v| {
            self.secret_refs(&base, "secret_proxy_refs", v)
        });
        let refs = env_refs.zip(proxy_refs).and_then(|(mut refs, proxied)| {
            let ok = self.no_var_twice(&base, &refs, t.get("secret_proxy_refs"));
            refs.extend(proxied.into_iter().map(|r| SecretRef { proxy: true, ..r }));
            ok.then_some(refs)
        });
        let env = t.get("env").map_or(Some(BTreeMap::new()), |v| {
            self.env(&base, v, t.get("secret_env_refs"))
                .filter(|env| self.no_var_twice_env(&base, env, t.get("secret_proxy_refs")))
        });
        let depends_on = t.get("depends_on").and_then(|v| self.depends_on(&base, v));
        let own = self.settings(t, &base, PLUGIN_KEYS);
        // Only the proxy can refuse a connection: without a proxied value
        // the plugin gets no proxy, and `deny` would promise nothing.
        let proxied = t
            .get("secret_proxy_refs")
            .is_some_and(|v| matches!(v.get_ref(), DeValue::Table(p) if !p.is_empty()));
        if let Some(e) = &own.proxy_egress
            && !proxied
        {
            self.error(
                e.span.clone(),
                format!(
                    "{}: applies only to a plugin with secret_proxy_refs (its proxy is what refuses the other hosts); add secret_proxy_refs or remove proxy_egress",
                    e.path
                ),
            );
        }
        let merged = merge(own, defaults);
        let restart_delay = merged
            .restart_delay
            .as_ref()
            .map_or(Duration::from_secs(1), |a| a.value);
        let restart_delay_max = merged
            .restart_delay_max
            .as_ref()
            .map_or(Duration::from_secs(30), |a| a.value);
        if restart_delay_max < restart_delay {
            match (&merged.restart_delay_max, &merged.restart_delay) {
                (Some(max), _) => self.error(
                    max.span.clone(),
                    format!(
                        "{}: must be greater than or equal to restart_delay",
                        max.path
                    ),
                ),
                (None, Some(delay)) => self.error(
                    delay.span.clone(),
                    format!(
                        "{}: must be at most restart_delay_max (30s unless set)",
                        delay.path
                    ),
                ),
                (None, None) => {}
            }
        }
        let entry = Entry {
            index,
            span: span.clone(),
            id: id.clone(),
            depends_on: depends_on.clone(),
        };
        if self.diags.len() > before {
            return (entry, None);
        }
        let (Some(id), Some(command), Some(args), Some(refs), Some(env)) =
            (id, command, args, refs, env)
        else {
            return (entry, None);
        };
        let program = if command.contains('/') {
            self.dir.join(&command)
        } else {
            PathBuf::from(&command)
        };
        let get = |o: Option<At<bool>>, d: bool| o.map_or(d, |a| a.value);
        let dur = |o: Option<At<Duration>>, d: Duration| o.map_or(d, |a| a.value);
        let line = self.line_of(id.span.start);
        let plugin = Plugin {
            line,
            prefix: merged.prefix.map_or_else(|| id.value.clone(), |a| a.value),
            id: id.value,
            enabled: get(merged.enabled, true),
            command,
            program,
            args,
            cwd: merged.cwd.map_or_else(|| self.dir.to_owned(), |a| a.value),
            env,
            proxy_egress: merged.proxy_egress.map_or(Egress::Allow, |a| a.value),
            secret_env_refs: refs,
            inherit_env: merged.inherit_env.map_or(InheritEnv::Minimal, |a| a.value),
            pass_env: merged.pass_env.map_or_else(Vec::new, |a| a.value),
            restart: merged.restart.map_or(Restart::OnFailure, |a| a.value),
            success_exit_codes: merged
                .success_exit_codes
                .map_or_else(|| vec![0], |a| a.value),
            restart_delay,
            restart_delay_max,
            stable_after: dur(merged.stable_after, Duration::from_secs(10)),
            crash_loop: merged.crash_loop.map_or_else(
                || CrashLoop {
                    max: 5,
                    window: Duration::from_secs(60),
                    window_text: "60s".into(),
                },
                |a| a.value,
            ),
            stop_signal: merged.stop_signal.map_or(Signal::SIGTERM, |a| a.value),
            stop_timeout: dur(merged.stop_timeout, Duration::from_secs(10)),
            kill_group: get(merged.kill_group, true),
            depends_on: depends_on
                .map(|d| d.value.into_iter().map(|(id, c, _)| (id, c)).collect())
                .unwrap_or_default(),
            ready: merged.ready.map(|a| a.value),
            on_secret_change: merged
                .on_secret_change
                .map_or(OnSecretChange::Restart, |a| a.value),
            output: merged.output.map_or(Output::Prefix, |a| a.value),
            mask_output: get(merged.mask_output, true),
        };
        (entry, Some(plugin))
    }

    /// `secret_proxy_refs` names no variable `secret_env_refs` sets.
    fn no_var_twice(
        &mut self,
        base: &str,
        refs: &[SecretRef],
        proxied: Option<&Value<'_>>,
    ) -> bool {
        self.proxy_vars_clash(
            base,
            proxied,
            |var| refs.iter().any(|r| r.var == var),
            "secret_env_refs",
        )
    }

    /// `secret_proxy_refs` names no variable `env` sets.
    fn no_var_twice_env(
        &mut self,
        base: &str,
        env: &BTreeMap<String, String>,
        proxied: Option<&Value<'_>>,
    ) -> bool {
        self.proxy_vars_clash(base, proxied, |var| env.contains_key(var), "env")
    }

    fn proxy_vars_clash(
        &mut self,
        base: &str,
        proxied: Option<&Value<'_>>,
        taken: impl Fn(&str) -> bool,
        other: &str,
    ) -> bool {
        let Some(DeValue::Table(t)) = proxied.map(Spanned::get_ref) else {
            return true;
        };
        let mut ok = true;
        for (key, _) in t.iter() {
            let var: &str = key.get_ref();
            if taken(var) {
                self.error(
                    key.span(),
                    format!(
                        "{}: \"{var}\" is also set in {other}",
                        join(&join(base, "secret_proxy_refs"), var)
                    ),
                );
                ok = false;
            }
        }
        ok
    }

    pub(super) fn secret_refs(
        &mut self,
        base: &str,
        key: &str,
        v: &Value<'_>,
    ) -> Option<Vec<SecretRef>> {
        let path = join(base, key);
        let t = self.table(&path, v)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value) in t.iter() {
            let var: &str = key.get_ref();
            let vpath = join(&path, var);
            ok &= self.env_name(&vpath, var, key.span());
            let Some(text) = value.get_ref().as_str() else {
                self.expected(&vpath, value, "a secret reference such as \"@name\"");
                ok = false;
                continue;
            };
            // Never echo the text unless it is a reference: a value pasted
            // here by mistake is likely the secret itself.
            match ValueSpec::parse_with(text, self.remote) {
                Ok(ValueSpec::Handle(h)) => out.push(SecretRef {
                    var: var.to_owned(),
                    text: text.to_owned(),
                    source: Source::Local(h),
                    proxy: false,
                }),
                Ok(ValueSpec::Remote(r)) => out.push(SecretRef {
                    var: var.to_owned(),
                    text: text.to_owned(),
                    source: Source::Remote(r),
                    proxy: false,
                }),
                Ok(ValueSpec::Template(_)) => {
                    self.error(
                        value.span(),
                        format!("{vpath}: templates are not supported here; give a single reference such as \"@name\""),
                    );
                    ok = false;
                }
                Err(e) if text.starts_with('@') && !text.starts_with("@@") => {
                    self.error(value.span(), format!("{vpath}: {e}"));
                    ok = false;
                }
                Ok(ValueSpec::Literal(_)) | Err(_) => {
                    self.error(
                        value.span(),
                        format!(
                            "{vpath}: the value is not a secret reference (must start with \"@\", as in \"@{}\", or be a remote reference); plain values go in env",
                            var.to_ascii_lowercase()
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    pub(super) fn env(
        &mut self,
        base: &str,
        v: &Value<'_>,
        refs: Option<&Value<'_>>,
    ) -> Option<BTreeMap<String, String>> {
        let path = join(base, "env");
        let t = self.table(&path, v)?;
        let secret_names: BTreeSet<String> = refs
            .and_then(|r| match r.get_ref() {
                DeValue::Table(rt) => {
                    Some(rt.iter().map(|(k, _)| k.get_ref().to_string()).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in t.iter() {
            let var: &str = key.get_ref();
            let vpath = join(&path, var);
            ok &= self.env_name(&vpath, var, key.span());
            if secret_names.contains(var) {
                self.error(
                    key.span(),
                    format!("{vpath}: \"{var}\" is also set in secret_env_refs"),
                );
                ok = false;
            }
            let Some(text) = value.get_ref().as_str() else {
                self.error(
                    value.span(),
                    format!(
                        "{vpath}: expected a string, found {} (quote it)",
                        type_name(value.get_ref())
                    ),
                );
                ok = false;
                continue;
            };
            if text.contains('\0') {
                self.error(value.span(), format!("{vpath}: contains a NUL character"));
                ok = false;
            } else if let Some(rest) = text.strip_prefix("@@") {
                out.insert(var.to_owned(), format!("@{rest}"));
            } else if text.starts_with('@') {
                self.error(
                    value.span(),
                    format!("{vpath}: value starts with \"@\"; put secret references in secret_env_refs (write \"@@\" for a literal \"@\")"),
                );
                ok = false;
            } else {
                out.insert(var.to_owned(), text.to_owned());
            }
        }
        ok.then_some(out)
    }

    pub(super) fn depends_on(&mut self, base: &str, v: &Value<'_>) -> Option<At<Deps>> {
        let path = join(base, "depends_on");
        let mut out = Vec::new();
        let mut ok = true;
        match v.get_ref() {
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match self.string(&format!("{path}[{i}]"), item) {
                        Some(id) => out.push((id, Condition::Started, item.span())),
                        None => ok = false,
                    }
                }
            }
            DeValue::Table(t) => {
                let choices = [
                    ("started", Condition::Started),
                    ("ready", Condition::Ready),
                    ("completed", Condition::Completed),
                ];
                for (key, value) in t.iter() {
                    match self.choice(&join(&path, key.get_ref()), value, &choices) {
                        Some(c) => out.push((key.get_ref().to_string(), c, key.span())),
                        None => ok = false,
                    }
                }
            }
            _ => {
                self.expected(
                    &path,
                    v,
                    "an array of plugin ids or a table of id = condition",
                );
                return None;
            }
        }
        ok.then(|| At {
            value: out,
            span: v.span(),
            path,
        })
    }
}

/// The plugin's own settings, else the defaults'.
fn merge(own: Settings, d: &Settings) -> Settings {
    Settings {
        enabled: own.enabled.or_else(|| d.enabled.clone()),
        cwd: own.cwd.or_else(|| d.cwd.clone()),
        inherit_env: own.inherit_env.or_else(|| d.inherit_env.clone()),
        pass_env: own.pass_env.or_else(|| d.pass_env.clone()),
        restart: own.restart.or_else(|| d.restart.clone()),
        success_exit_codes: own
            .success_exit_codes
            .or_else(|| d.success_exit_codes.clone()),
        restart_delay: own.restart_delay.or_else(|| d.restart_delay.clone()),
        restart_delay_max: own
            .restart_delay_max
            .or_else(|| d.restart_delay_max.clone()),
        stable_after: own.stable_after.or_else(|| d.stable_after.clone()),
        crash_loop: own.crash_loop.or_else(|| d.crash_loop.clone()),
        stop_signal: own.stop_signal.or_else(|| d.stop_signal.clone()),
        stop_timeout: own.stop_timeout.or_else(|| d.stop_timeout.clone()),
        kill_group: own.kill_group.or_else(|| d.kill_group.clone()),
        ready: own.ready.or_else(|| d.ready.clone()),
        on_secret_change: own.on_secret_change.or_else(|| d.on_secret_change.clone()),
        output: own.output.or_else(|| d.output.clone()),
        prefix: own.prefix.or_else(|| d.prefix.clone()),
        mask_output: own.mask_output.or_else(|| d.mask_output.clone()),
        proxy_egress: own.proxy_egress.or_else(|| d.proxy_egress.clone()),
    }
}

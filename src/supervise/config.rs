//! `plugins.toml`: its schema, strict parsing and validation, and the
//! resolved configuration the supervisor runs from. It owns every rule in
//! PLUGINS.md's "Validation errors" list and the merging of `[defaults]`
//! into each plugin; it starts nothing and resolves no secret.
//!
//! The file is parsed into toml's spanned document tree and walked by hand
//! rather than through `#[derive(Deserialize)]` with `deny_unknown_fields`:
//! serde stops at the first problem, and we want every problem in one run,
//! each with its `file:line:col`, key path and, for a misspelt key, value,
//! signal or plugin id, a did-you-mean.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diag, suggestion};
use crate::child::env::CONTROL_VARIABLES;
use crate::handle::{Reference, Source, is_env_name};

/// The only format version this build reads.
pub const VERSION: i64 = 1;

const TOP_KEYS: &[&str] = &["version", "supervisor", "defaults", "plugins"];
const SUPERVISOR_KEYS: &[&str] = &[
    "on_plugin_failed",
    "shutdown_deadline",
    "color",
    "timestamps",
    "reload_debounce",
];
/// Every key a `[[plugins]]` entry accepts.
pub const PLUGIN_KEYS: &[&str] = &[
    "id",
    "enabled",
    "command",
    "args",
    "cwd",
    "env",
    "secret_env_refs",
    "inherit_env",
    "pass_env",
    "restart",
    "success_exit_codes",
    "restart_delay",
    "restart_delay_max",
    "stable_after",
    "crash_loop",
    "stop_signal",
    "stop_timeout",
    "kill_group",
    "depends_on",
    "ready",
    "on_secret_change",
    "output",
    "prefix",
    "mask_output",
];
/// Keys `[defaults]` does not accept: a secret is never granted implicitly.
pub const PER_PLUGIN_ONLY: &[&str] = &[
    "id",
    "command",
    "args",
    "env",
    "secret_env_refs",
    "depends_on",
];
const READY_KEYS: &[&str] = &[
    "log_line",
    "notify_fd",
    "exec",
    "tcp",
    "timeout",
    "interval",
];
const PROBE_KEYS: &[&str] = &["log_line", "notify_fd", "exec", "tcp"];
/// Signals a plugin may be stopped with.
pub const STOP_SIGNALS: &[&str] = &["HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "KILL"];
/// The shortest `restart_delay`.
pub const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);
/// `inherit_env = "minimal"`: these names (and `LC_*`).
pub const MINIMAL_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_*", "TERM", "TZ", "TMPDIR",
];

pub use crate::config::MAX_DURATION;

/// `[supervisor] on_plugin_failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailed {
    Continue,
    Shutdown,
}

/// `[supervisor] color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// `inherit_env`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InheritEnv {
    Minimal,
    All,
    None,
}

/// `restart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    No,
    OnFailure,
    Always,
}

/// `on_secret_change`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSecretChange {
    Restart,
    Ignore,
}

/// `output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Prefix,
    Raw,
    Discard,
}

/// A `depends_on` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Started,
    Ready,
    Completed,
}

impl Condition {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Ready => "ready",
            Self::Completed => "completed",
        }
    }
}

/// `crash_loop = { max, window }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashLoop {
    /// 0: no limit.
    pub max: u32,
    pub window: Duration,
    /// The window as written, for the log line.
    pub window_text: String,
}

/// The readiness probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    LogLine(String),
    NotifyFd(i32),
    Exec(Vec<String>),
    Tcp(String),
}

/// `ready = { … }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub probe: Probe,
    pub timeout: Duration,
    pub interval: Duration,
}

/// One `secret_env_refs` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub var: String,
    /// As written (`@name` or a remote reference): never a value.
    pub text: String,
    pub source: Source,
}

/// `[supervisor]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supervisor {
    pub on_plugin_failed: OnFailed,
    pub shutdown_deadline: Duration,
    pub color: Color,
    pub timestamps: bool,
    pub reload_debounce: Duration,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self {
            on_plugin_failed: OnFailed::Continue,
            shutdown_deadline: Duration::from_secs(60),
            color: Color::Auto,
            timestamps: false,
            reload_debounce: Duration::from_millis(500),
        }
    }
}

/// One plugin, with `[defaults]` and the built-in defaults applied and
/// every path absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plugin {
    pub id: String,
    /// 1-based line of its `id` (or its table), for messages.
    pub line: usize,
    pub enabled: bool,
    /// As written.
    pub command: String,
    /// What to exec: `command` made absolute when it has a `/`, else the
    /// name to look up in the child's PATH.
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Plain values, `@@` already turned into `@`.
    pub env: BTreeMap<String, String>,
    pub secret_env_refs: Vec<SecretRef>,
    pub inherit_env: InheritEnv,
    pub pass_env: Vec<String>,
    pub restart: Restart,
    pub success_exit_codes: Vec<i32>,
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    pub stable_after: Duration,
    pub crash_loop: CrashLoop,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub kill_group: bool,
    pub depends_on: Vec<(String, Condition)>,
    pub ready: Option<Ready>,
    pub on_secret_change: OnSecretChange,
    pub output: Output,
    pub prefix: String,
    pub mask_output: bool,
}

/// A valid `plugins.toml`.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    /// The directory relative paths resolve against.
    pub dir: PathBuf,
    pub supervisor: Supervisor,
    pub plugins: Vec<Plugin>,
}

/// Why a file was refused: every problem found, in file order.
#[derive(Debug)]
pub struct Invalid {
    pub path: PathBuf,
    /// The file's text, for positions (empty when it could not be read).
    pub text: String,
    pub diags: Vec<Diag>,
}

impl Invalid {
    /// One line per problem.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.diags
            .iter()
            .map(|d| d.render(&self.path, &self.text))
            .collect()
    }

    /// Every problem, one per line, then `secret: N problems in FILE;
    /// nothing was started` (for `plugins` and `broker`).
    #[must_use]
    pub fn report(&self) -> String {
        let mut text = String::new();
        for line in self.lines() {
            text.push_str(&line);
            text.push('\n');
        }
        let n = self.diags.len();
        text.push_str(&format!(
            "secret: {n} problem{} in {}; nothing was started\n",
            if n == 1 { "" } else { "s" },
            self.path.display()
        ));
        text
    }
}

impl Config {
    /// Reads and validates `path`. `remote` says whether `scheme://…` is a
    /// remote reference.
    pub fn load(path: &Path, remote: &dyn Fn(&str) -> bool) -> Result<Self, Invalid> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                return Err(Invalid {
                    path: path.to_owned(),
                    text: String::new(),
                    diags: vec![Diag::new(0..0, format!("cannot read the file: {e}"))],
                });
            }
        };
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let dir = absolute
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        Self::parse(&text, path, &dir, remote).map_err(|diags| Invalid {
            path: path.to_owned(),
            text,
            diags,
        })
    }

    /// Validates `text` as the file at `path`, relative paths resolving
    /// against `dir`.
    pub fn parse(
        text: &str,
        path: &Path,
        dir: &Path,
        remote: &dyn Fn(&str) -> bool,
    ) -> Result<Self, Vec<Diag>> {
        let doc = DeTable::parse(text).map_err(|e| {
            vec![Diag::new(
                e.span().unwrap_or(0..0),
                format!("not valid TOML: {}", e.message().trim_end()),
            )]
        })?;
        let mut p = Parser {
            text,
            dir,
            remote,
            diags: Vec::new(),
        };
        let config = p.document(doc.get_ref(), path);
        let mut diags = p.diags;
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        diags.dedup();
        if diags.is_empty() {
            Ok(config)
        } else {
            Err(diags)
        }
    }
}

/// A value and where it was written.
#[derive(Clone, Debug)]
struct At<T> {
    value: T,
    span: Range<usize>,
    path: String,
}

/// The keys `[defaults]` and a plugin share, as written.
#[derive(Clone, Debug, Default)]
struct Settings {
    enabled: Option<At<bool>>,
    cwd: Option<At<PathBuf>>,
    inherit_env: Option<At<InheritEnv>>,
    pass_env: Option<At<Vec<String>>>,
    restart: Option<At<Restart>>,
    success_exit_codes: Option<At<Vec<i32>>>,
    restart_delay: Option<At<Duration>>,
    restart_delay_max: Option<At<Duration>>,
    stable_after: Option<At<Duration>>,
    crash_loop: Option<At<CrashLoop>>,
    stop_signal: Option<At<Signal>>,
    stop_timeout: Option<At<Duration>>,
    kill_group: Option<At<bool>>,
    ready: Option<At<Ready>>,
    on_secret_change: Option<At<OnSecretChange>>,
    output: Option<At<Output>>,
    prefix: Option<At<String>>,
    mask_output: Option<At<bool>>,
}

/// A plugin's per-plugin keys, as written.
struct Entry {
    index: usize,
    span: Range<usize>,
    id: Option<At<String>>,
    depends_on: Option<At<Deps>>,
}

type Value<'i> = Spanned<DeValue<'i>>;

/// `depends_on` as written: (id, condition, where).
type Deps = Vec<(String, Condition, Range<usize>)>;

struct Parser<'a> {
    text: &'a str,
    dir: &'a Path,
    remote: &'a dyn Fn(&str) -> bool,
    diags: Vec<Diag>,
}

/// `base.key`, quoting a key that is not a bare word.
fn join(base: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    let key = if bare {
        key.to_owned()
    } else {
        format!("\"{}\"", key.escape_default())
    };
    if base.is_empty() {
        key
    } else {
        format!("{base}.{key}")
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.len() <= 64
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

impl Parser<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(Diag::new(span, message));
    }

    /// Reports keys of `table` not in `known`; `place` is where, as in
    /// `plugins[0]` ("the top level" for the document).
    fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], place: &str) {
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if !known.contains(&name) {
                let hint = suggestion(name, known.iter().copied());
                self.error(
                    key.span(),
                    format!("unknown key \"{}\" in {place}{hint}", name.escape_default()),
                );
            }
        }
    }

    fn expected(&mut self, path: &str, v: &Value<'_>, what: &str) {
        self.error(
            v.span(),
            format!("{path}: expected {what}, found {}", type_name(v.get_ref())),
        );
    }

    fn table<'v, 'i>(&mut self, path: &str, v: &'v Value<'i>) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.expected(path, v, "a table");
                None
            }
        }
    }

    fn string(&mut self, path: &str, v: &Value<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) if s.contains('\0') => {
                self.error(v.span(), format!("{path}: contains a NUL character"));
                None
            }
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.expected(path, v, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, path: &str, v: &Value<'_>) -> Option<bool> {
        if let Some(b) = v.get_ref().as_bool() {
            return Some(b);
        }
        self.expected(path, v, "true or false");
        None
    }

    fn integer(&mut self, path: &str, v: &Value<'_>, range: Range<i64>) -> Option<i64> {
        let Some(n) = v.get_ref().as_integer() else {
            self.expected(path, v, "an integer");
            return None;
        };
        match i64::from_str_radix(&n.as_str().replace('_', ""), n.radix()) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "{path}: must be from {} to {}",
                        range.start,
                        range.end.saturating_sub(1)
                    ),
                );
                None
            }
        }
    }

    fn duration(&mut self, path: &str, v: &Value<'_>) -> Option<(Duration, String)> {
        let Some(text) = v.get_ref().as_str() else {
            self.error(
                v.span(),
                format!("{path}: must be a duration like \"60s\" (a string with a unit)"),
            );
            return None;
        };
        match humantime::parse_duration(text) {
            Ok(d) if d > MAX_DURATION => {
                self.error(
                    v.span(),
                    format!(
                        "{path}: \"{}\" is longer than the maximum of {}",
                        text.escape_default(),
                        humantime::format_duration(MAX_DURATION)
                    ),
                );
                None
            }
            Ok(d) => Some((d, text.to_owned())),
            Err(e) => {
                self.error(
                    v.span(),
                    format!(
                        "{path}: \"{}\" is not a duration ({e}); use a number with a unit: \"250ms\", \"10s\", \"2m\"",
                        text.escape_default()
                    ),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, path: &str, v: &Value<'_>, choices: &[(&str, T)]) -> Option<T> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let listed = names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(text) = v.get_ref().as_str() else {
            self.expected(path, v, &format!("one of {listed}"));
            return None;
        };
        if let Some((_, t)) = choices.iter().find(|(n, _)| *n == text) {
            return Some(*t);
        }
        let hint = suggestion(text, names.iter().copied());
        let hint = if hint.is_empty() {
            format!("; use one of {listed}")
        } else {
            hint
        };
        self.error(
            v.span(),
            format!("{path}: unknown value \"{}\"{hint}", text.escape_default()),
        );
        None
    }

    fn strings(&mut self, path: &str, v: &Value<'_>) -> Option<Vec<(String, Range<usize>)>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.expected(path, v, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(&format!("{path}[{i}]"), item) {
                Some(s) => out.push((s, item.span())),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn signal(&mut self, path: &str, v: &Value<'_>, allowed: &[&str]) -> Option<Signal> {
        let text = self.string(path, v)?;
        let named: Vec<String> = allowed.iter().map(|s| format!("SIG{s}")).collect();
        match crate::child::supervise::parse_signal(&text) {
            Ok(sig) if allowed.iter().any(|a| sig.as_str() == format!("SIG{a}")) => Some(sig),
            Ok(sig) => {
                self.error(
                    v.span(),
                    format!(
                        "{path}: {} is not allowed here (use one of {})",
                        sig.as_str(),
                        allowed.join(", ")
                    ),
                );
                None
            }
            Err(_) => {
                let upper = text.to_ascii_uppercase();
                let hint = suggestion(&upper, named.iter().map(String::as_str)).to_owned();
                let hint = if hint.is_empty() {
                    suggestion(&upper, allowed.iter().copied())
                } else {
                    hint
                };
                self.error(
                    v.span(),
                    format!("{path}: unknown signal \"{}\"{hint}", text.escape_default()),
                );
                None
            }
        }
    }

    fn document(&mut self, doc: &DeTable<'_>, path: &Path) -> Config {
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
        Config {
            path: path.to_owned(),
            dir: self.dir.to_owned(),
            supervisor,
            plugins,
        }
    }

    fn supervisor(&mut self, t: &DeTable<'_>) -> Supervisor {
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
    fn settings(&mut self, t: &DeTable<'_>, base: &str, keys: &[&str]) -> Settings {
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

    fn cwd(&mut self, path: &str, v: &Value<'_>) -> Option<PathBuf> {
        let text = self.string(path, v)?;
        let dir = self.dir.join(&text);
        if dir.is_dir() {
            Some(dir)
        } else {
            self.error(
                v.span(),
                format!(
                    "{path}: directory \"{}\" does not exist",
                    text.escape_default()
                ),
            );
            None
        }
    }

    fn pass_env(&mut self, path: &str, v: &Value<'_>) -> Option<Vec<String>> {
        let globs = self.strings(path, v)?;
        let mut ok = true;
        for (i, (g, span)) in globs.iter().enumerate() {
            if g.is_empty()
                || !g
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '*' | '?'))
            {
                self.error(
                    span.clone(),
                    format!(
                        "{path}[{i}]: \"{}\" is not a variable name or glob (letters, digits, _, * and ?)",
                        g.escape_default()
                    ),
                );
                ok = false;
            }
        }
        ok.then(|| globs.into_iter().map(|(g, _)| g).collect())
    }

    fn exit_codes(&mut self, path: &str, v: &Value<'_>) -> Option<Vec<i32>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.expected(path, v, "an array of integers from 0 to 255");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.integer(&format!("{path}[{i}]"), item, 0..256) {
                Some(n) => out.push(i32::try_from(n).unwrap_or(0)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn crash_loop(&mut self, path: &str, v: &Value<'_>) -> Option<CrashLoop> {
        let t = self.table(path, v)?;
        self.unknown_keys(t, &["max", "window"], path);
        let max = match t.get("max") {
            Some(m) => self
                .integer(&join(path, "max"), m, 0..i64::from(u32::MAX))
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            None => Some(5),
        };
        let window = match t.get("window") {
            Some(w) => self.duration(&join(path, "window"), w),
            None => Some((Duration::from_secs(60), "60s".to_owned())),
        };
        let (max, (window, window_text)) = (max?, window?);
        if max > 0 && window.is_zero() {
            self.error(
                v.span(),
                format!("{path}.window: must be more than 0s when max is set"),
            );
            return None;
        }
        Some(CrashLoop {
            max,
            window,
            window_text,
        })
    }

    fn ready(&mut self, path: &str, v: &Value<'_>) -> Option<Ready> {
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
                if let Err(e) = regex::Regex::new(&pattern) {
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
    fn plugin(
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
        let refs = t
            .get("secret_env_refs")
            .map_or(Some(Vec::new()), |v| self.secret_refs(&base, v));
        let env = t.get("env").map_or(Some(BTreeMap::new()), |v| {
            self.env(&base, v, t.get("secret_env_refs"))
        });
        let depends_on = t.get("depends_on").and_then(|v| self.depends_on(&base, v));
        let own = self.settings(t, &base, PLUGIN_KEYS);
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

    fn id(&mut self, base: &str, t: &DeTable<'_>, span: &Range<usize>) -> Option<At<String>> {
        let Some(v) = t.get("id") else {
            self.error(span.clone(), format!("{base}: missing required key \"id\""));
            return None;
        };
        let path = join(base, "id");
        let id = self.string(&path, v)?;
        if !is_valid_id(&id) {
            self.error(
                v.span(),
                format!(
                    "{path}: \"{}\" is not a valid id (use lowercase letters, digits, \".\", \"_\", \"-\"; start with a letter or digit; at most 64)",
                    id.escape_default()
                ),
            );
            return None;
        }
        Some(At {
            value: id,
            span: v.span(),
            path,
        })
    }

    fn env_name(&mut self, path: &str, name: &str, span: Range<usize>) -> bool {
        if !is_env_name(name) {
            self.error(
                span,
                format!("{path}: not a valid environment variable name"),
            );
            false
        } else if CONTROL_VARIABLES.contains(&name) {
            self.error(
                span,
                format!("{path}: {name} is one of secret's own control variables; variables named SECRET_* that steer secret are reserved for secret itself"),
            );
            false
        } else {
            true
        }
    }

    fn secret_refs(&mut self, base: &str, v: &Value<'_>) -> Option<Vec<SecretRef>> {
        let path = join(base, "secret_env_refs");
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
            match Reference::parse_with(text, self.remote) {
                Ok(Reference::Handle(h)) => out.push(SecretRef {
                    var: var.to_owned(),
                    text: text.to_owned(),
                    source: Source::Local(h),
                }),
                Ok(Reference::Remote(r)) => out.push(SecretRef {
                    var: var.to_owned(),
                    text: text.to_owned(),
                    source: Source::Remote(r),
                }),
                Ok(Reference::Template(_)) => {
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
                Ok(Reference::Literal(_)) | Err(_) => {
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

    fn env(
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

    fn depends_on(&mut self, base: &str, v: &Value<'_>) -> Option<At<Deps>> {
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

    /// Rules between plugins: unique ids, known and enabled dependencies,
    /// no cycles.
    fn relations(&mut self, entries: &[Entry], plugins: &[Plugin]) {
        let mut first: BTreeMap<&str, &At<String>> = BTreeMap::new();
        for e in entries {
            if let Some(id) = &e.id {
                if let Some(prev) = first.get(id.value.as_str()) {
                    let line = self.line_of(prev.span.start);
                    self.error(
                        id.span.clone(),
                        format!(
                            "plugins[{}]: duplicate plugin id \"{}\" (first defined at line {line})",
                            e.index, id.value
                        ),
                    );
                } else {
                    first.insert(&id.value, id);
                }
            }
        }
        let ids: Vec<&str> = first.keys().copied().collect();
        let enabled = |id: &str| {
            plugins
                .iter()
                .find(|p| p.id == id)
                .is_none_or(|p| p.enabled)
        };
        for e in entries {
            let Some(deps) = &e.depends_on else { continue };
            let me_enabled = e.id.as_ref().is_none_or(|id| enabled(&id.value));
            for (dep, _, span) in &deps.value {
                if !ids.contains(&dep.as_str()) {
                    let hint = suggestion(dep, ids.iter().copied());
                    self.error(
                        span.clone(),
                        format!(
                            "{}: unknown plugin \"{}\"{hint}",
                            deps.path,
                            dep.escape_default()
                        ),
                    );
                } else if me_enabled && !enabled(dep) {
                    self.error(
                        span.clone(),
                        format!("{}: depends on disabled plugin \"{dep}\"", deps.path),
                    );
                }
            }
        }
        self.cycles(entries);
    }

    fn line_of(&self, offset: usize) -> usize {
        super::diag::line_col(self.text, offset).0
    }

    fn cycles(&mut self, entries: &[Entry]) {
        let edges: BTreeMap<&str, Vec<&str>> = entries
            .iter()
            .filter_map(|e| {
                let id = e.id.as_ref()?;
                let deps = e
                    .depends_on
                    .as_ref()
                    .map(|d| d.value.iter().map(|(x, _, _)| x.as_str()).collect())
                    .unwrap_or_default();
                Some((id.value.as_str(), deps))
            })
            .collect();
        let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
        for e in entries {
            // A cycle passes through some entry with dependencies: report
            // it there.
            let (Some(id), Some(_)) = (&e.id, &e.depends_on) else {
                continue;
            };
            let mut stack = vec![id.value.as_str()];
            if let Some(cycle) = find_cycle(&edges, &mut stack) {
                let mut key = cycle.clone();
                key.sort_unstable();
                key.dedup();
                if reported.insert(key) {
                    let span = e
                        .depends_on
                        .as_ref()
                        .map_or(e.span.clone(), |d| d.span.clone());
                    self.error(span, format!("dependency cycle: {}", cycle.join(" -> ")));
                }
            }
        }
    }
}

/// A cycle through `stack[0]`, as the list of ids from it back to it.
fn find_cycle<'a>(
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    stack: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    let last = *stack.last()?;
    for &next in edges.get(last).map_or(&[][..], Vec::as_slice) {
        if next == stack[0] {
            let mut cycle = stack.clone();
            cycle.push(next);
            return Some(cycle);
        }
        if stack.contains(&next) {
            continue;
        }
        stack.push(next);
        if let Some(c) = find_cycle(edges, stack) {
            return Some(c);
        }
        stack.pop();
    }
    None
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
    }
}

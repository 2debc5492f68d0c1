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

pub(crate) use crate::broker::proxy::Egress;
use crate::child::env::CONTROL_VARIABLES;
use crate::diag::{Diag, Lines, shown, suggestion};
use crate::handle::{Source, ValueSpec, is_env_name};

mod graph;
mod parse;
mod validate;

/// The only format version this build reads.
pub(crate) const VERSION: i64 = 1;
/// Unknown keys of one table named one by one; the rest are counted.
const MAX_UNKNOWN_KEYS: usize = 10;
/// Problems printed one by one; the rest are counted.
pub(crate) const MAX_SHOWN: usize = 50;

const TOP_KEYS: &[&str] = &["version", "supervisor", "defaults", "plugins"];
const SUPERVISOR_KEYS: &[&str] = &[
    "on_plugin_failed",
    "shutdown_deadline",
    "color",
    "timestamps",
    "reload_debounce",
];
/// Every key a `[[plugins]]` entry accepts.
pub(crate) const PLUGIN_KEYS: &[&str] = &[
    "id",
    "enabled",
    "command",
    "args",
    "cwd",
    "env",
    "secret_env_refs",
    "secret_proxy_refs",
    "proxy_egress",
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
pub(crate) const PER_PLUGIN_ONLY: &[&str] = &[
    "id",
    "command",
    "args",
    "env",
    "secret_env_refs",
    "secret_proxy_refs",
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
pub(crate) const STOP_SIGNALS: &[&str] = &["HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "KILL"];
/// The shortest `restart_delay`.
pub(crate) const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);
/// `inherit_env = "minimal"`: these names (and `LC_*`).
pub(crate) const MINIMAL_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_*", "TERM", "TZ", "TMPDIR",
];

pub(crate) use crate::config::MAX_DURATION;

/// `[supervisor] on_plugin_failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFailed {
    Continue,
    Shutdown,
}

/// `[supervisor] color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

/// `inherit_env`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InheritEnv {
    Minimal,
    All,
    None,
}

/// `restart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Restart {
    No,
    OnFailure,
    Always,
}

/// `on_secret_change`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnSecretChange {
    Restart,
    Ignore,
}

/// `output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Prefix,
    Raw,
    Discard,
}

/// A `depends_on` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    Started,
    Ready,
    Completed,
}

impl Condition {
    #[must_use]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Ready => "ready",
            Self::Completed => "completed",
        }
    }
}

/// `crash_loop = { max, window }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CrashLoop {
    /// 0: no limit.
    pub max: u32,
    pub window: Duration,
    /// The window as written, for the log line.
    pub window_text: String,
}

/// The readiness probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    LogLine(String),
    NotifyFd(i32),
    Exec(Vec<String>),
    Tcp(String),
}

/// `ready = { … }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ready {
    pub probe: Probe,
    pub timeout: Duration,
    pub interval: Duration,
}

/// One `secret_env_refs` or `secret_proxy_refs` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretRef {
    pub var: String,
    /// As written (`@name` or a remote reference): never a value.
    pub text: String,
    pub source: Source,
    /// From `secret_proxy_refs`: the plugin gets a placeholder, and the
    /// supervisor's proxy swaps in the value on the way to its grant's
    /// `allowed_hosts` (delivery `http`).
    pub proxy: bool,
}

/// `[supervisor]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Supervisor {
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
pub(crate) struct Plugin {
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
    /// `secret_env_refs`, then `secret_proxy_refs` (`proxy` set).
    pub secret_env_refs: Vec<SecretRef>,
    /// What the proxy does with a `CONNECT` to a host none of its proxied
    /// values may go to: tunnel it (`allow`) or refuse it (`deny`).
    pub proxy_egress: Egress,
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
pub(crate) struct PluginsFile {
    pub path: PathBuf,
    /// The directory relative paths resolve against.
    pub dir: PathBuf,
    pub supervisor: Supervisor,
    pub plugins: Vec<Plugin>,
}

/// Why a file was refused: every problem found, in file order.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub path: PathBuf,
    /// The file's text, for positions (empty when it could not be read).
    pub text: String,
    pub diags: Vec<Diag>,
}

impl Invalid {
    /// Reads `path` (`plugins.toml`, `broker.toml`: it names programs to
    /// run and secrets to hand them) as `fsio` reads any file `secret`
    /// trusts: regular, ours, nobody else can change it or its directory,
    /// at most `MAX_POLICY_LEN` bytes, never blocking on a FIFO. A problem
    /// is a diagnostic at 1:1 that says what fixes it.
    pub(crate) fn read(path: &Path) -> Result<String, Self> {
        let fail = |message: String| Self {
            path: path.to_owned(),
            text: String::new(),
            diags: vec![Diag::new(0..0, message)],
        };
        let what = path.file_name().map_or_else(
            || "the file".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        match crate::fsio::read_private_file(
            path,
            &what,
            crate::config::MAX_POLICY_LEN,
            crate::fsio::Readers::Anyone,
        ) {
            Ok(Some(bytes)) => String::from_utf8(bytes)
                .map_err(|_| fail("cannot read the file: it is not UTF-8 text".into())),
            Ok(None) => Err(fail("cannot read the file: it does not exist".into())),
            Err(e) => Err(fail(match e.hint() {
                Some(hint) => format!("cannot read the file: {e}; {hint}"),
                None => format!("cannot read the file: {e}"),
            })),
        }
    }

    /// One line per problem, for the first `MAX_SHOWN`; then one line that
    /// counts the rest.
    #[must_use]
    pub(crate) fn lines(&self) -> Vec<String> {
        let index = Lines::new(&self.text);
        let mut out: Vec<String> = self
            .diags
            .iter()
            .take(MAX_SHOWN)
            .map(|d| d.render(&self.path, &self.text, &index))
            .collect();
        if let Some(rest) = self.diags.len().checked_sub(MAX_SHOWN).filter(|n| *n > 0) {
            out.push(format!(
                "{}: … and {rest} more problem{} (fix these and check again)",
                self.path.display(),
                if rest == 1 { "" } else { "s" }
            ));
        }
        out
    }

    /// Every problem, one per line, then `secret: N problems in FILE;
    /// nothing was started` (for `plugins` and `broker`).
    #[must_use]
    pub(crate) fn report(&self) -> String {
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

impl PluginsFile {
    /// Reads and validates `path`. `remote` says whether `scheme://…` is a
    /// remote reference.
    pub(crate) fn load(path: &Path, remote: &dyn Fn(&str) -> bool) -> Result<Self, Invalid> {
        let text = Invalid::read(path)?;
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
    pub(crate) fn parse(
        text: &str,
        path: &Path,
        dir: &Path,
        remote: &dyn Fn(&str) -> bool,
    ) -> Result<Self, Vec<Diag>> {
        Self::parse_counted(text, path, dir, remote).0
    }

    /// `parse`, and the steps its checks took (see `Parser::work`).
    fn parse_counted(
        text: &str,
        path: &Path,
        dir: &Path,
        remote: &dyn Fn(&str) -> bool,
    ) -> (Result<Self, Vec<Diag>>, u64) {
        let doc = match DeTable::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let diag = Diag::new(
                    e.span().unwrap_or(0..0),
                    format!("not valid TOML: {}", e.message().trim_end()),
                );
                return (Err(vec![diag]), 0);
            }
        };
        let mut p = Parser {
            lines: Lines::new(text),
            dir,
            remote,
            diags: Vec::new(),
            work: 0,
        };
        let config = p.document(doc.get_ref(), path);
        let mut diags = p.diags;
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        diags.dedup();
        let result = if diags.is_empty() {
            Ok(config)
        } else {
            Err(diags)
        };
        (result, p.work)
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
    proxy_egress: Option<At<Egress>>,
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
    /// Where the file's lines start, for `line_of`.
    lines: Lines,
    dir: &'a Path,
    remote: &'a dyn Fn(&str) -> bool,
    diags: Vec<Diag>,
    /// Steps taken by the checks that loop over keys, plugins and
    /// dependencies; a test asserts it grows in proportion to the file,
    /// so a quadratic check cannot come back unnoticed.
    work: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every problem `text` has, as printed.
    fn problems(text: &str) -> Vec<String> {
        match PluginsFile::parse(text, Path::new("p.toml"), Path::new("/srv"), &|s| {
            s == "vault"
        }) {
            Ok(_) => Vec::new(),
            Err(diags) => Invalid {
                path: "p.toml".into(),
                text: text.to_owned(),
                diags,
            }
            .lines(),
        }
    }

    #[track_caller]
    fn refused(text: &str, want: &str) {
        let got = problems(text);
        assert!(
            got.iter().any(|l| l.contains(want)),
            "{want:?} not in {got:?}"
        );
    }

    const A: &str = "[[plugins]]\nid = \"a\"\ncommand = \"x\"\n";

    #[test]
    fn values_are_checked_one_by_one() {
        refused("version = 2\n", "version");
        refused("colour = true\n", "unknown key \"colour\"");
        refused("[supervisor]\ncolor = \"sometimes\"\n", "supervisor.color");
        refused(&format!("{A}enabled = \"yes\"\n"), "plugins[0].enabled");
        refused(
            &format!("{A}inherit_env = \"al\"\n"),
            "did you mean \"all\"",
        );
        refused(
            &format!("{A}stop_timeout = \"soon\"\n"),
            "is not a duration",
        );
        refused(
            &format!("{A}stop_timeout = \"2y\"\n"),
            "longer than the maximum of 1year",
        );
        refused(
            &format!("{A}stop_signal = \"SEGV\"\n"),
            "plugins[0].stop_signal",
        );
        refused(
            &format!("{A}success_exit_codes = [256]\n"),
            "success_exit_codes[0]",
        );
        refused(&format!("{A}pass_env = \"PATH\"\n"), "plugins[0].pass_env");
        refused(
            &format!(
                "[[plugins]]\nid = \"{}\"\ncommand = \"x\"\n",
                "a".repeat(65)
            ),
            "is not a valid id",
        );
        refused(
            &format!("{A}secret_env_refs = {{ T = \"vault:/x\" }}\n"),
            "secret_env_refs.T",
        );
    }

    #[test]
    fn proxy_egress_is_a_choice_for_proxied_plugins() {
        let proxied = format!("{A}secret_proxy_refs = {{ T = \"@t\" }}\n");
        refused(
            &format!("{proxied}proxy_egress = \"dney\"\n"),
            "plugins[0].proxy_egress: unknown value \"dney\"; did you mean \"deny\"",
        );
        refused(
            &format!("{proxied}proxy_egres = \"deny\"\n"),
            "did you mean \"proxy_egress\"",
        );
        refused(
            &format!("{A}proxy_egress = \"deny\"\n"),
            "plugins[0].proxy_egress: applies only to a plugin with secret_proxy_refs",
        );
        let parse = |text: &str| {
            PluginsFile::parse(text, Path::new("p.toml"), Path::new("/srv"), &|_| false)
                .expect("valid")
                .plugins
        };
        assert_eq!(parse(&proxied)[0].proxy_egress, Egress::Allow);
        let own = parse(&format!("{proxied}proxy_egress = \"deny\"\n"));
        assert_eq!(own[0].proxy_egress, Egress::Deny);
        // From [defaults]: it applies to the proxied plugins, and is no
        // error for the others (they get no proxy).
        let both = parse(&format!(
            "[defaults]\nproxy_egress = \"deny\"\n{proxied}[[plugins]]\nid = \"b\"\ncommand = \"x\"\n"
        ));
        assert_eq!(both[0].proxy_egress, Egress::Deny);
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let got = problems(&format!(
            "{A}restart = \"sometimes\"\nstop_timeout = 5\n[[plugins]]\nid = \"a\"\ncommand = \"y\"\n"
        ));
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("p.toml:4:"), "{got:?}");
        assert!(got[1].starts_with("p.toml:5:"), "{got:?}");
        assert!(got[2].contains("duplicate plugin id \"a\""), "{got:?}");
    }

    #[test]
    fn dependencies_must_exist_be_enabled_and_not_loop() {
        refused(
            &format!("{A}depends_on = [\"a\"]\n"),
            "dependency cycle: a -> a",
        );
        refused(
            &format!("{A}depends_on = {{ b = \"soon\" }}\n"),
            "depends_on.b",
        );
        refused(
            &format!("{A}depends_on = [\"b\"]\n"),
            "unknown plugin \"b\"",
        );
    }

    /// `n` plugins `p0`… each made by `each(i)` (the lines after `command`).
    fn plugins(n: usize, each: impl Fn(usize) -> String) -> String {
        (0..n)
            .map(|i| format!("[[plugins]]\nid = \"p{i}\"\ncommand = \"x\"\n{}", each(i)))
            .collect()
    }

    /// Files that made the old checks quadratic (or worse), at size `n`.
    fn adversarial(n: usize) -> Vec<(&'static str, String)> {
        let unknown: String = (0..n).map(|i| format!("k{i} = 1\n")).collect();
        vec![
            ("unknown keys", format!("{A}{unknown}")),
            (
                "unknown keys in defaults and at the top",
                format!("{unknown}[defaults]\n{unknown}"),
            ),
            (
                "one cycle through every plugin",
                plugins(n, |i| format!("depends_on = [\"p{}\"]\n", (i + 1) % n)),
            ),
            (
                "a chain",
                plugins(n, |i| {
                    format!("depends_on = [\"p{}\"]\n", i + 1).repeat(usize::from(i + 1 < n))
                }),
            ),
            (
                "a star",
                plugins(n, |i| {
                    if i == 0 {
                        String::new()
                    } else {
                        "depends_on = [\"p0\"]\n".into()
                    }
                }),
            ),
            (
                "unknown dependencies",
                plugins(n, |i| format!("depends_on = [\"q{i}\"]\n")),
            ),
            (
                "disabled dependencies",
                plugins(n, |i| {
                    format!("enabled = false\ndepends_on = [\"p{}\"]\n", (i + 1) % n)
                }),
            ),
            ("duplicate ids", (0..n).map(|_| A).collect::<String>()),
        ]
    }

    /// Steps the checks take on `text`.
    fn work(text: &str) -> u64 {
        PluginsFile::parse_counted(text, Path::new("p.toml"), Path::new("/srv"), &|_| false).1
    }

    /// Structural, not timed: at four times the size, the checks take at
    /// most about four times the steps (a quadratic check takes sixteen),
    /// and a few steps per line of the file.
    #[test]
    fn checks_take_steps_in_proportion_to_the_file() {
        let (small, big) = (adversarial(500), adversarial(2000));
        for ((name, s), (_, b)) in small.iter().zip(&big) {
            let (ws, wb) = (work(s), work(b));
            assert!(ws > 0, "{name}: nothing counted");
            assert!(
                wb * 2 <= ws * 9,
                "{name}: {ws} steps at 500, {wb} at 2000: more than linear"
            );
            let lines = b.lines().count() as u64;
            assert!(wb <= 8 * lines, "{name}: {wb} steps for {lines} lines");
        }
    }

    #[test]
    fn unknown_keys_are_named_up_to_a_bound_and_then_counted() {
        let unknown: String = (0..1000).map(|i| format!("k{i} = 1\n")).collect();
        let got = problems(&format!("{A}{unknown}"));
        assert_eq!(got.len(), MAX_UNKNOWN_KEYS + 1, "{got:?}");
        assert!(
            got[0].contains("unknown key \"k0\" in plugins[0]"),
            "{got:?}"
        );
        assert!(
            got[9].contains("unknown key \"k9\" in plugins[0]"),
            "file order: {got:?}"
        );
        assert!(
            got[MAX_UNKNOWN_KEYS].contains("990 more unknown keys in plugins[0]"),
            "{got:?}"
        );
        let many = Invalid {
            path: "p.toml".into(),
            text: String::new(),
            diags: vec![Diag::new(0..0, "x"); MAX_SHOWN + 7],
        };
        let lines = many.lines();
        assert_eq!(lines.len(), MAX_SHOWN + 1);
        assert!(lines[MAX_SHOWN].ends_with("and 7 more problems (fix these and check again)"));
        assert!(
            many.report()
                .contains(&format!("{} problems", MAX_SHOWN + 7))
        );
    }

    #[test]
    fn each_group_of_plugins_in_a_cycle_is_reported_once() {
        let ring = plugins(3000, |i| {
            format!("depends_on = [\"p{}\"]\n", (i + 1) % 3000)
        });
        let got = problems(&ring);
        assert_eq!(got.len(), 1, "{:?}", &got[..got.len().min(3)]);
        assert!(
            got[0].ends_with(
                "p.toml:4:14: dependency cycle: p0 -> p1 -> p2 -> p3 -> p4 -> p5 -> p6 -> p7 -> p8 -> p9 -> … 2988 more … -> p2998 -> p2999 -> p0"
            ),
            "{got:?}"
        );
        // Two loops, one of them a plugin on itself, and a chain 100,000
        // deep (recursion would overflow the stack).
        let got = problems(&format!(
            "{}{}",
            plugins(4, |i| [
                "depends_on = [\"p1\"]\n",
                "depends_on = { p0 = \"ready\", p3 = \"started\" }\n",
                "depends_on = [\"p2\"]\n",
                "depends_on = [\"p0\"]\n"
            ][i]
                .into()),
            "[[plugins]]\nid = \"z\"\ncommand = \"x\"\n",
        ));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].ends_with("dependency cycle: p0 -> p1 -> p0"),
            "{got:?}"
        );
        assert!(got[1].ends_with("dependency cycle: p2 -> p2"), "{got:?}");
        let chain = plugins(100_000, |i| {
            if i + 1 < 100_000 {
                format!("depends_on = [\"p{}\"]\n", i + 1)
            } else {
                "depends_on = [\"p0\"]\n".into()
            }
        });
        let got = problems(&chain);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].ends_with(" -> … 99988 more … -> p99998 -> p99999 -> p0"),
            "{got:?}"
        );
    }

    #[test]
    fn defaults_apply_and_a_valid_file_resolves() {
        let c = PluginsFile::parse(
            &format!("[defaults]\nrestart_delay = \"2s\"\n{A}remote_ref = 1\n"),
            Path::new("p.toml"),
            Path::new("/srv"),
            &|_| false,
        );
        assert!(c.is_err(), "unknown key in a plugin");
        let c = PluginsFile::parse(
            &format!("[defaults]\nrestart_delay = \"2s\"\n{A}secret_env_refs = {{ T = \"vault://kv/x#k\" }}\n"),
            Path::new("p.toml"),
            Path::new("/srv"),
            &|s| s == "vault",
        )
        .expect("valid");
        let p = &c.plugins[0];
        assert_eq!(p.restart_delay, Duration::from_secs(2));
        assert_eq!(p.cwd, Path::new("/srv"));
        assert_eq!(p.secret_env_refs[0].var, "T");
    }
}

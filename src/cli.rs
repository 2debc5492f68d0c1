//! The command line, as clap definitions. Doc comments are the help text:
//! the first line is the short help, the rest the long help. The same
//! definitions generate `man/` and `completions/` (`examples/generate.rs`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub(crate) mod launch;

/// The help heading of the options every subcommand takes.
const GLOBAL: &str = "Global options";

// Defaults, for clap and for `launch`, which fills them in as clap does.
const DEFAULT_CONSUMER: &str = "exec";
const DEFAULT_EGRESS: &str = "allow";
const DEFAULT_STOP_TIMEOUT: &str = "10s";
const DEFAULT_DEATH_SIGNAL: &str = "TERM";

/// Keep API keys out of files, history, logs and prompts: hand each one only
/// to the process that needs it.
///
/// Values live in an encrypted file vault (the default) or the OS keychain and
/// are referred to by handles such as @openai_api_key. `secret exec` resolves
/// handles and sets the values only in the child's environment.
///
/// Exit codes: 0 success; 1 failure; 2 usage error. `secret exec` returns the
/// command's own code; when a signal N killed it, secret dies of N too (a
/// shell reports 128+N; as PID 1, secret exits 128+N); 125 when secret itself
/// failed (the command did not run), 126 when the command cannot be executed
/// and 127 when it is not found.

#[derive(Debug, Parser)]
#[command(
    name = "secret",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub globals: Globals,

    #[command(subcommand)]
    pub command: Command,
}

// The options every subcommand takes, before or after its name (a `//`
// comment: a doc comment on a flattened struct becomes about text).
#[derive(Debug, Args)]
pub(crate) struct Globals {
    /// Read the vault passphrase from file descriptor N.
    ///
    /// Takes precedence over SECRET_PASSPHRASE and the terminal prompt. The
    /// passphrase is read to end of file, less one trailing newline.
    #[arg(long, global = true, value_name = "N", help_heading = GLOBAL)]
    pub passphrase_fd: Option<i32>,

    /// Look handles up in a scope first: with team-a/ws-1, @db is
    /// team-a/ws-1/db, then team-a/db, then db (the narrowest wins).
    #[arg(
        long,
        global = true,
        value_name = "SCOPE",
        env = "SECRET_SCOPE",
        hide_env_values = true,
        help_heading = GLOBAL
    )]
    pub scope: Option<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// Create the store.
    ///
    /// The file vault asks for a new passphrase (or takes SECRET_PASSPHRASE or
    /// --passphrase-fd). The keychain backend keeps values in the OS keychain
    /// and needs no passphrase. Files go to SECRET_HOME, or to
    /// $XDG_CONFIG_HOME/secret and $XDG_DATA_HOME/secret.
    Init {
        /// Where values are kept.
        #[arg(
            long,
            value_enum,
            env = "SECRET_BACKEND",
            hide_env_values = true,
            default_value_t = BackendArg::File
        )]
        backend: BackendArg,
    },

    /// Store a new secret.
    ///
    /// The value is read from standard input with --stdin (one trailing
    /// newline is stripped), or typed at a prompt that does not echo when
    /// standard input is a terminal. There is deliberately no --value flag: a
    /// value on the command line lands in shell history and /proc. Values
    /// are bytes up to 1 MiB, without NUL.
    Add {
        /// The handle, such as @openai_api_key or @prod/db_password.
        handle: String,
        /// Read the value from standard input.
        #[arg(long)]
        stdin: bool,
        /// Who issued the secret (openai, github, …).
        #[arg(long, value_name = "P")]
        provider: Option<String>,
        /// What the secret is (api_key, password, …).
        #[arg(long, value_name = "K")]
        kind: Option<String>,
    },

    /// Replace a secret's value.
    ///
    /// The version goes up by one. Processes already running keep the value
    /// they were given; the next launch gets the new one.
    Rotate {
        /// The handle to rotate.
        handle: String,
        /// Read the value from standard input.
        #[arg(long)]
        stdin: bool,
    },

    /// Remove a secret.
    Rm {
        /// The handle to remove.
        handle: String,
    },

    /// List secrets: metadata only, never values.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Show one secret's metadata: provider, kind, fingerprint, times,
    /// version, backend. Never the value.
    Inspect {
        /// The handle to show.
        handle: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Make a local handle that resolves to a remote reference.
    ///
    /// Scripts keep using @openai_api_key while the value lives in the
    /// organisation's secret manager: secret link @openai_api_key
    /// vault://secret/openai#api_key. Running it again points the link
    /// elsewhere. list and inspect show where a link points.
    Link {
        /// The local handle.
        handle: String,
        /// vault://MOUNT/PATH#FIELD, azure-kv://VAULT/SECRET[/VERSION],
        /// op://…, pass://…, aws-sm://…, gcp-sm://… or a configured provider.
        reference: String,
    },

    /// Explain what grants.toml allows.
    #[command(subcommand)]
    Grants(GrantsCommand),

    /// Show or verify the audit trail.
    ///
    /// Every add, rotate, rm, passwd and resolution is one line of JSON in
    /// audit.jsonl, carrying the SHA-256 of the line before it.
    Audit {
        /// Only the events of this handle.
        handle: Option<String>,
        /// Print the JSON lines as stored.
        #[arg(long)]
        json: bool,
        /// Check the hash chain; exit 1 naming the first bad line.
        #[arg(long)]
        verify: bool,
    },

    /// Change the vault passphrase.
    ///
    /// The vault key is re-wrapped under the new passphrase with a fresh
    /// salt; values are untouched. The new passphrase comes from
    /// --new-passphrase-fd, SECRET_NEW_PASSPHRASE, or is typed twice.
    Passwd {
        /// Read the new passphrase from file descriptor N.
        #[arg(long, value_name = "N")]
        new_passphrase_fd: Option<i32>,
    },

    /// Cache the vault key for a while, so commands skip the passphrase.
    ///
    /// The key goes into the kernel's per-user keyring with a timeout,
    /// readable by your own processes (as an ssh-agent would be) and root,
    /// never written to disk. `secret lock` drops it early.
    Unlock {
        /// How long: 15m, 2h, … (at most 24h).
        #[arg(long = "for", value_name = "DURATION", default_value = "15m", value_parser = crate::unlock::parse_duration)]
        duration: std::time::Duration,
    },

    /// Drop the cached vault key now.
    Lock,

    /// Run a command with secrets in its environment.
    ///
    /// Every handle is resolved with one unlock before the command starts; a
    /// missing one stops the launch (exit 125) rather than run the command
    /// with an empty credential. The child inherits the environment less
    /// secret's own control variables (SECRET_HOME, SECRET_PASSPHRASE, …).
    Exec(ExecArgs),

    /// Run a script with the secrets its header asks for (shebang mode).
    ///
    /// Start a script with `#!/usr/bin/env -S secret run bash` and declare,
    /// in the comment block under it, `# secret: VAR=@handle` lines (and
    /// `# secret-file: VAR=@handle` for in-memory files). `secret run
    /// INTERPRETER SCRIPT ARGS…` resolves them and runs INTERPRETER SCRIPT
    /// ARGS… as `secret exec` would.
    Run(RunArgs),

    /// Supervise long-running plugins declared in plugins.toml.
    ///
    /// Each plugin runs in its own process group with only its own secrets
    /// (grants.toml consumer = the plugin id), its output prefixed with its
    /// id and masked. The file is FILE, else plugins.toml in the
    /// configuration directory. See docs/plugins.md for the schema.
    #[command(subcommand)]
    Plugins(PluginsCommand),

    /// Store a .env file's values in the store and write a references-only
    /// env file.
    ///
    /// Each KEY=value becomes @name (or @PREFIX/name with --prefix), where
    /// name is KEY in lower case; the env file maps KEY=@name and holds no
    /// value, so it is safe to commit and ready for `secret exec
    /// --env-file`. Existing handles are kept unless --force (every conflict
    /// is reported and nothing is stored). Empty values are skipped, and
    /// $VAR substitution is refused rather than filled in from secret's own
    /// environment. FILE itself is left as it is: delete it afterwards.
    Import(ImportArgs),

    /// Resolve every reference a launch would need, without launching.
    ///
    /// Takes the options `secret exec` takes and prints, for each variable,
    /// its reference and whether it resolves: ok, missing, denied by grant
    /// or provider error, with the fix. Grants are checked for --consumer
    /// and --purpose as exec would. Nothing is started and no value is
    /// printed. Exit 0 when every reference resolves, 1 when one does not,
    /// 2 for a malformed mapping or env file. For a script's `# secret:`
    /// header use `secret run --check INTERPRETER SCRIPT`.
    Check(CheckArgs),

    /// Print one secret's value on the terminal, for debugging.
    ///
    /// Refused when standard output is not a terminal (a pipe, a file, an
    /// agent's captured output) unless --force. On a terminal, control
    /// characters other than newline and tab are shown escaped (\x1b), so a
    /// value cannot drive the terminal; with --force to a pipe the bytes are
    /// exact. Asks as consumer exec (grants.toml decides, as for `secret
    /// exec -- printenv`, which could print it too) and is audited as a
    /// reveal.
    Reveal(RevealArgs),

    /// There is no `get`: values go to a terminal (reveal) or a program
    /// (exec), never to a pipe by default.
    #[command(hide = true)]
    Get {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },

    /// A local capability broker: callers use a key without holding it.
    ///
    /// Routes /proxy/NAME/PATH to the route's upstream with its credential
    /// header added, after checking the caller token, the path and method
    /// allowlists and the rate limit. The file is FILE, else broker.toml in
    /// the configuration directory. See docs/broker.md.
    #[command(subcommand)]
    Broker(BrokerCommand),

    /// The handle names the completion scripts offer after @, one a line,
    /// read without the key (never a prompt; nothing without a store).
    #[command(name = "__complete-handles", hide = true)]
    CompleteHandles,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    pub mappings: MappingArgs,

    #[command(flatten)]
    pub child: ChildArgs,

    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum GrantsCommand {
    /// Say whether a consumer may have a secret, and which rule decides.
    ///
    /// Exit 0 when allowed, 1 when denied. Scopes apply as in exec.
    Check {
        /// A handle (@name) or a remote reference.
        handle: String,
        /// The consumer: exec, broker, or plugin:ID for a plugin.
        #[arg(long, default_value = DEFAULT_CONSUMER)]
        consumer: String,
        /// The purpose the consumer states.
        #[arg(long)]
        purpose: Option<String>,
        /// How the value would be delivered.
        #[arg(long, value_enum, default_value = "env")]
        delivery: DeliveryArg,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum PluginsCommand {
    /// Start every enabled plugin and supervise them.
    ///
    /// The store is unlocked once; each plugin's secret_env_refs are
    /// resolved at each spawn. Plugins restart by their policy with
    /// exponential backoff; a crash loop marks one failed. SIGTERM or SIGINT
    /// stops them in reverse dependency order (a second one kills them at
    /// once). Exit 0 after a requested shutdown, 1 when a plugin failed and
    /// nothing is left running (or on_plugin_failed = "shutdown"), 2 for an
    /// invalid file (nothing started), 128+N when forced down by a second
    /// signal N.
    Run {
        /// The plugins file (default: plugins.toml in the configuration
        /// directory).
        file: Option<PathBuf>,
    },
    /// Validate the file and resolve every plugin's secrets.
    ///
    /// Prints, for each plugin, the variables it would get (never a value).
    /// Exit 0 when valid and every reference resolves; 2 when the file is
    /// invalid, a reference does not resolve or is denied, or the store
    /// cannot be opened.
    Check {
        /// The plugins file (default: plugins.toml in the configuration
        /// directory).
        file: Option<PathBuf>,
    },
    /// Show the state of every plugin of a running supervisor.
    ///
    /// Asks the supervisor of FILE over its status socket (mode 0600 in the
    /// runtime directory). Without FILE, asks every supervisor of this user
    /// whose socket is in the runtime directory, whatever file it runs
    /// (--json then prints an array). Exit 0, or 1 when none answers.
    Status {
        /// The plugins file of the supervisor to ask (default: every
        /// running supervisor).
        file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The helper that kills every plugin group if the supervisor dies.
    #[command(hide = true)]
    Keeper,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum BrokerCommand {
    /// Serve the routes of FILE until SIGTERM.
    ///
    /// The store is unlocked once and each route's secret resolved as
    /// consumer "broker" (delivery "http"). Serves a Unix socket (0600, in
    /// a 0700 runtime directory) and, with `listen`, a loopback TCP port.
    /// SIGHUP reloads FILE, the secrets and the caller token; SIGTERM or
    /// SIGINT drains requests in flight (10s at most) and exits 0. Exit 2
    /// for an invalid file, 1 when a secret does not resolve or is denied.
    Run {
        /// The broker file (default: broker.toml in the configuration
        /// directory).
        file: Option<PathBuf>,
    },
    /// Validate FILE and resolve every route's secret.
    ///
    /// Prints what each route would do (never a value). Exit 0 when valid
    /// and every secret resolves, 1 when one does not, 2 when the file is
    /// invalid (every problem listed as FILE:LINE:COL: key: message).
    Check {
        /// The broker file (default: broker.toml in the configuration
        /// directory).
        file: Option<PathBuf>,
    },
    /// Show the routes, request counts, bytes and rate limits of the broker
    /// running FILE. Exit 0, or 1 when none runs.
    Status {
        /// The broker file (default: broker.toml in the configuration
        /// directory).
        file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the caller token (created when there is none).
    ///
    /// The token is in broker.token beside FILE (mode 0600). TCP callers
    /// send it as `Authorization: Bearer TOKEN` (an OpenAI SDK's api_key)
    /// or `X-Broker-Token: TOKEN`.
    Token {
        /// The broker file (default: broker.toml in the configuration
        /// directory).
        file: Option<PathBuf>,
        /// Replace the token with a new one; a running broker switches to
        /// it at once.
        #[arg(long)]
        rotate: bool,
    },
}

// The environment mappings of `exec` and `check` (a `//` comment: a doc
// comment here would replace their about text, the subcommands being deferred).
#[derive(Debug, Args)]
pub(crate) struct MappingArgs {
    /// Set VAR in the child: to the secret behind @handle, or to a literal.
    ///
    /// Write @@ for a literal value starting with @. Repeatable; a later
    /// mapping of the same variable wins.
    #[arg(long = "env", short = 'e', value_name = "VAR=REF")]
    pub env: Vec<String>,

    /// Read VAR=@handle lines from FILE (comments and blank lines allowed).
    ///
    /// Literal values are refused, so the file is safe to commit. Read before
    /// the --env mappings, which override it.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub mappings: MappingArgs,

    #[command(flatten)]
    pub child: ChildArgs,

    /// Ignored: a `secret exec … -- COMMAND` line becomes a check by
    /// changing exec to check. Nothing is started.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The dotenv file to read (KEY=value lines; quotes, escapes, `export`,
    /// comments and multi-line quoted values as dotenv parsers read them).
    pub file: PathBuf,

    /// Store each value as @PREFIX/name instead of @name.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// Write the references-only env file here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Replace the values of handles that already exist (and an existing
    /// --out file).
    #[arg(long)]
    pub force: bool,

    /// Say what would be stored and written; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RevealArgs {
    /// The handle (@name) or remote reference to show.
    pub handle: String,

    /// Print even when standard output is not a terminal (a pipe or a file
    /// then gets the value's exact bytes).
    #[arg(long)]
    pub force: bool,

    /// Ask as this consumer (grants.toml decides what it may have).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CONSUMER)]
    pub consumer: String,

    /// The purpose to state (checked against the grant's purposes).
    #[arg(long, value_name = "P")]
    pub purpose: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Check the script's header instead of running it: resolve every
    /// reference and report each one, as `secret check` does. Put it before
    /// INTERPRETER.
    #[arg(long)]
    pub check: bool,

    #[command(flatten)]
    pub child: ChildArgs,

    /// The interpreter (bash, python3, …), the script whose header names its
    /// secrets, then the script's arguments.
    ///
    /// secret's own options go before INTERPRETER: everything after it
    /// reaches the script byte for byte (--help, -i, a lone -- …).
    #[arg(
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        value_name = "INTERPRETER SCRIPT [ARGS]"
    )]
    pub command: Vec<OsString>,
}

// Options shared by `exec` and `run`: the child's environment, files and
// supervision (a `//` comment, as for MappingArgs).
#[derive(Debug, Args)]
pub(crate) struct ChildArgs {
    /// Give the child VAR=/dev/fd/N, an in-memory file holding the secret.
    ///
    /// The file is a sealed memfd: never on disk, readable only through the
    /// child's descriptor, gone when the child exits. For tools that want a
    /// credentials path (GOOGLE_APPLICATION_CREDENTIALS and the like).
    #[arg(long = "file", value_name = "VAR=@HANDLE")]
    pub file: Vec<String>,

    /// Give the child a placeholder for the secret; a loopback proxy puts
    /// the value on the wire, only to the hosts its grant allows.
    ///
    /// VAR gets a random placeholder shaped like the value (same length,
    /// character classes and prefix such as sk-proj- or ghp_). HTTPS_PROXY
    /// and HTTP_PROXY (and lowercase) point at a proxy that lives as long as
    /// the child; SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
    /// NODE_EXTRA_CA_CERTS, GIT_SSL_CAINFO, PIP_CERT and AWS_CA_BUNDLE name
    /// a bundle with a per-launch CA. On TLS connections to the grant's
    /// allowed_hosts the proxy swaps the placeholder for the value in
    /// headers and the query string, and the value back for the
    /// placeholder in responses. The grant must allow delivery http and
    /// name allowed_hosts. In env files: VAR=proxy:@ref.
    #[arg(long = "proxy", value_name = "VAR=REF")]
    pub proxy: Vec<String>,

    /// With --proxy: what happens to connections to hosts no proxied secret
    /// may go to: tunnelled untouched (allow), or refused (deny).
    #[arg(
        long = "proxy-egress",
        value_enum,
        default_value = DEFAULT_EGRESS,
        value_name = "POLICY"
    )]
    pub proxy_egress: EgressArg,

    /// Start the child with an empty environment (plus --keep and mappings).
    #[arg(short = 'i', long)]
    pub ignore_environment: bool,

    /// With -i: keep this inherited variable (a name or a glob like LC_*).
    #[arg(long, value_name = "NAME|GLOB")]
    pub keep: Vec<String>,

    /// Remove this inherited variable.
    #[arg(long, value_name = "NAME")]
    pub unset: Vec<String>,

    /// Replace secret with the command (no supervision, no masking).
    ///
    /// Zero overhead after the launch, but nobody forwards signals, reaps
    /// zombies or kills the child if secret's parent dies. Refused with
    /// --mask, and when CI is set unless --no-mask is given, since nothing
    /// would be left to mask the output.
    #[arg(long = "exec")]
    pub replace: bool,

    /// Ask as this consumer (grants.toml decides what it may have).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CONSUMER)]
    pub consumer: String,

    /// The purpose to state (checked against the grant's purposes).
    #[arg(long, value_name = "P")]
    pub purpose: Option<String>,

    /// Mask secrets in the child's output (the default when CI is set).
    ///
    /// stdout and stderr pass through a streaming redactor that replaces each
    /// projected value, and its base64, base64url, hex and URL-encoded forms,
    /// with <secret:@handle>. When stdout is a terminal the child gets a
    /// pseudo-terminal, so colours and full-screen programs keep working.
    /// Values under 4 bytes are not masked (with a warning). secret exits
    /// once every process writing the output has closed it: a server the
    /// command left in the background keeps being masked, and secret waits
    /// for it (send its output elsewhere, as in `server >log 2>&1 &`, not
    /// to wait).
    #[arg(long, overrides_with = "no_mask")]
    pub mask: bool,

    /// Do not mask, even when CI is set.
    #[arg(long, overrides_with = "mask")]
    pub no_mask: bool,

    /// Reap every orphaned descendant, as PID 1 does (PR_SET_CHILD_SUBREAPER).
    #[arg(long)]
    pub subreaper: bool,

    /// After a withdrawn grant's stop signal (TERM), how long the child has
    /// before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_STOP_TIMEOUT, value_parser = parse_timeout)]
    pub stop_timeout: std::time::Duration,

    /// The signal the child gets if secret is killed.
    #[arg(long, value_name = "SIG", default_value = DEFAULT_DEATH_SIGNAL, value_parser = crate::child::supervise::parse_signal)]
    pub death_signal: nix::sys::signal::Signal,
}

impl ChildArgs {
    /// `--mask`, `--no-mask`, else whether `CI` is set to a true value.
    #[must_use]
    pub(crate) fn mask_wanted(&self) -> bool {
        if self.mask || self.no_mask {
            return self.mask;
        }
        std::env::var("CI").is_ok_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            !v.is_empty() && !matches!(v.as_str(), "0" | "false" | "no" | "off")
        })
    }
}

/// `--backend`: the clap face of `store::Backend`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BackendArg {
    /// The encrypted file vault (the default; works anywhere, no daemon).
    File,
    /// The OS keychain (Secret Service on Linux).
    Keychain,
}

impl std::fmt::Display for BackendArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::store::Backend::from(*self).fmt(f)
    }
}

impl From<BackendArg> for crate::store::Backend {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::File => Self::File,
            BackendArg::Keychain => Self::Keychain,
        }
    }
}

/// `--delivery`: the clap face of `grants::Delivery`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum DeliveryArg {
    Env,
    File,
    Http,
}

/// `--proxy-egress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EgressArg {
    /// Tunnel connections to other hosts untouched.
    Allow,
    /// Refuse them: only the hosts of the proxied secrets are reachable.
    Deny,
}

impl From<DeliveryArg> for crate::grants::Delivery {
    fn from(arg: DeliveryArg) -> Self {
        match arg {
            DeliveryArg::Env => Self::Env,
            DeliveryArg::File => Self::File,
            DeliveryArg::Http => Self::Http,
        }
    }
}

/// Before parsing succeeds, whether `args` look like a launch (`exec` or
/// `run` before `--` and before any `plugins`, whose own `run` is not one;
/// `run --check`, with the flag among `run`'s own options, is not one either).
#[must_use]
pub(crate) fn looks_like_launch(args: &[OsString]) -> bool {
    let mut words = args.iter().skip(1).take_while(|a| *a != "--");
    match words.find(|a| *a == "exec" || *a == "run" || *a == "plugins") {
        Some(a) if a == "run" => !words
            .take_while(|a| a.as_encoded_bytes().starts_with(b"-"))
            .any(|a| a == "--check"),
        Some(a) => a != "plugins",
        None => false,
    }
}

impl Command {
    /// Whether this command launches a child (its own failures exit 125).
    #[must_use]
    pub(crate) fn is_launch(&self) -> bool {
        match self {
            Self::Exec(_) => true,
            Self::Run(args) => !args.check,
            _ => false,
        }
    }
}

/// Parses a duration such as `10s` or `2m`, at most `config::MAX_DURATION`.
pub(crate) fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    use crate::duration::{Error, SYNTAX, format, parse};
    parse(text).map_err(|e| match e {
        Error::OverMaximum => format!(
            "{} is longer than the maximum of {}",
            text.escape_default(),
            format(crate::config::MAX_DURATION)
        ),
        e => format!("not a duration ({e}); write {SYNTAX}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_root_help_says_what_secret_is_and_its_exit_codes() {
        let root = Cli::command();
        let about = root
            .get_about()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(about.starts_with("Keep API keys out of files"), "{about:?}");
        let long = root
            .get_long_about()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(long.contains("Exit codes: 0 success"), "{long:?}");
    }
}

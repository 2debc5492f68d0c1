//! The plugin supervisor: `secret plugins run|check|status [FILE]`. It
//! runs the long-lived children declared in `plugins.toml`, each in its own
//! process group with only its own secrets (consumer = its id), and
//! restarts, stops, reloads and reports them as PLUGINS.md lays out.
//!
//! Rooms:
//!
//! - `diag`: positions (`file:line:col`) and did-you-mean;
//! - `config`: the schema, strict parsing and every validation rule;
//! - `launch`: resolving one plugin's secrets through the grants, building
//!   its environment in wiping buffers and starting it;
//! - `output`: the pipes from each plugin and the threads that prefix and
//!   mask its lines;
//! - `run`: the state machine and the event loop (signals, reaping,
//!   backoff, readiness, stops, shutdown, reload);
//! - `fingerprint`: what a spawn was made from, so a reload restarts only
//!   what changed;
//! - `keeper`: the helper process that kills every plugin group if the
//!   supervisor is killed with SIGKILL;
//! - `status`: the status socket and `secret plugins status`.
//!
//! This module owns the commands' entry points, the one store unlock
//! shared by every plugin (and the grants file, parsed once per change),
//! and `check`.
//!
//! # Choices where PLUGINS.md is silent, and deviations
//!
//! - **Where the file is.** `secret plugins run|check|status [FILE]`: a
//!   positional path (DESIGN.md's form) rather than `--plugins PATH`;
//!   without it, the configuration directory's `plugins.toml`
//!   (`$SECRET_HOME/plugins.toml` or `$XDG_CONFIG_HOME/secret/plugins.toml`).
//! - **Every error at once.** The file is walked as toml's spanned document
//!   tree, not deserialised with serde's `deny_unknown_fields` (which stops
//!   at the first problem), so one run lists every problem, in file order,
//!   as `FILE:LINE:COL: key.path: message`, then `secret: N problems in
//!   FILE; nothing was started` (exit 2, for `run` and `check`).
//! - **Messages never echo env or secret_env_refs values.** A
//!   `secret_env_refs` value that is not a reference is reported without
//!   its text (PLUGINS.md's example quotes it): a value pasted there by
//!   mistake is likely the secret itself.
//! - **`SECRET_*`.** Every inherited variable named `SECRET_*` is removed
//!   (whatever `inherit_env` and `pass_env` say). A plugin may set a
//!   `SECRET_*` name explicitly through `env` or `secret_env_refs` (Rails'
//!   `SECRET_KEY_BASE`), except secret's own control variables
//!   (`SECRET_HOME`, `SECRET_PASSPHRASE`, …), which are a validation error.
//! - **`[defaults]`.** A plugin's key replaces the default's whole value
//!   (`crash_loop`, `ready` and `pass_env` are not merged key by key).
//!   `defaults.cwd` is relative to plugins.toml's directory. A per-plugin
//!   key in `[defaults]` gets its own message ("is per-plugin only").
//! - **Values in `env` must be strings** (`PORT = "8080"`, not `8080`).
//! - **`secret_env_refs`** takes one `@handle` or remote reference per
//!   variable; templates (`x{{@a}}`) and `@@literals` are refused there.
//! - **Signals.** `stop_signal` accepts HUP, INT, QUIT, TERM, USR1, USR2 and
//!   KILL; another real signal (WINCH) is "not allowed here", a misspelt
//!   one "unknown" with a did-you-mean.
//! - **`ready = {}` needs a probe key**, and `interval` is refused on
//!   log_line and notify_fd probes, where it means nothing (it must be at
//!   least 10ms). `notify_fd` is at most 1023. The `exec` probe runs with
//!   the plugin's cwd and environment *without* its secrets, output
//!   discarded; `log_line` is matched against each output line after
//!   masking; `tcp` resolves HOST:PORT at each attempt. A readiness timeout
//!   stops the plugin (stop_signal, stop_timeout, SIGKILL) and marks it
//!   `failed`.
//! - **One unlock.** `run` and `check` open the store once, before any
//!   plugin starts, when some enabled plugin names a local `@handle`; a
//!   store that cannot be opened (locked, wrong passphrase) stops the
//!   command (exit 1) with nothing started. Every spawn then resolves that
//!   plugin's references again, audited with consumer = the plugin id,
//!   through grants.toml as it is then (re-parsed only when the file
//!   changed), from the open store (re-read, with the keys already
//!   unlocked, when the vault file changed: a rotation reaches the next
//!   spawn). Remote references are fetched at each spawn.
//! - **Resolution runs on the supervisor's one thread**: a slow remote
//!   store delays the supervisor's reactions (not the running plugins)
//!   while it fetches.
//! - **References are resolved one at a time**, so a failure names the
//!   reference: `secret reference @x could not be resolved: …`; the
//!   plugin is `failed` at once (no backoff), others start.
//! - **Leases** (`ttl_secs` in grants.toml) are renewed at half the
//!   shortest ttl while a plugin runs: its secrets are resolved again
//!   through the grants as they are then. A withdrawn grant stops the plugin
//!   (stop_signal, stop_timeout, SIGKILL) and marks it `failed`; a rotated
//!   value restarts it when `on_secret_change = "restart"`.
//! - **`check` exit codes**: 0 when the file is valid and every enabled
//!   plugin's references resolve; 1 when the file is valid but some
//!   reference does not resolve (each is listed under its plugin, with the
//!   grant that would allow it); 2 when the file is invalid. `check`
//!   resolves for real, so its resolutions are in the audit trail.
//! - **Output.** A plugin's stdout goes to the supervisor's stdout and its
//!   stderr to the supervisor's stderr, line by line (a line is never
//!   interleaved with another), prefixed `PREFIX | ` with the prefixes
//!   padded to the same width and coloured by plugin. A last line without
//!   a newline is printed with one; a line over 64 KiB is cut. Masking
//!   uses exec's redactor, so a value shows as `<secret:@handle>`
//!   (PLUGINS.md says `***`): one marker format across the tool, and the
//!   base64/hex/URL forms are caught too. `timestamps = true` prints
//!   `HH:MM:SS` in UTC. The supervisor's own messages go to stderr as
//!   `secret: …`.
//! - **Descriptors.** Every descriptor the supervisor inherited above 2 is
//!   made close-on-exec at start, so a plugin holds exactly its 0, 1, 2
//!   (and its `notify_fd`).
//! - **The parent-death signal is SIGKILL**: once the supervisor is gone
//!   nobody would escalate a gentler signal.
//! - **The kill -9 guarantee** (PLUGINS.md option (a)): one keeper process
//!   (our binary as the hidden `secret plugins keeper`) for all plugins,
//!   told each group over a pipe; end of file on it (the supervisor died,
//!   however) makes it SIGKILL every group still listed. A descendant that
//!   leaves its process group (setsid) is not covered. If the keeper dies,
//!   it is replaced (three times at most), with a warning.
//! - **Exit classification.** A plugin whose main process exits while
//!   other members of its process group live on is stopped as a whole
//!   (stop_signal, stop_timeout, SIGKILL) before it is restarted or
//!   declared exited/failed; the main process's status decides the
//!   classification. With `kill_group = false` only the main process is
//!   signalled and waited for, and what it leaves behind is left alone
//!   (unless the supervisor itself is killed: the keeper kills the group).
//! - **Restart delays.** After a failure, `restart_delay × 2^(k-1)` capped
//!   at `restart_delay_max`; after a success under `restart = "always"`,
//!   `restart_delay`. `restart = "no"` ends in `exited` whatever the code
//!   (as PLUGINS.md's states say); `completed` dependencies still look at
//!   the code. The crash-loop line names the window as written
//!   (`4 failures in 60s`).
//! - **Dependencies.** `started` is met once the dependency has been
//!   started (it stays met across its restarts); `ready` likewise once its
//!   probe passed (without a probe, once started); `completed` when it
//!   ended in `exited` with a success code. A dependent whose dependency is
//!   terminal without meeting the condition is `blocked` (logged once,
//!   shown by `status`) and counts as failed for the exit code; once every
//!   plugin is terminal or blocked the supervisor exits (1).
//! - **Stopping** re-checks the emptiness of a group whose leader is gone
//!   on every SIGCHLD and, because a member whose parent is outside the
//!   group dies silently, every 50 ms while such a stop is under way. Idle,
//!   nothing is polled: the loop blocks on one channel fed by the signal
//!   thread, the probes and the status socket, with a timeout only when a
//!   backoff, stop, readiness, reload or shutdown deadline is pending.
//! - **Shutdown exit code** is 0 after SIGTERM/SIGINT even when a plugin
//!   had failed before (PLUGINS.md's 0 rule wins over its 1 rule), 1 when
//!   `on_plugin_failed = "shutdown"` caused it, 128+N after a second
//!   signal N. Plugins waiting or in backoff are not started any more.
//! - **Reload** (SIGHUP, debounced by `reload_debounce`: further SIGHUPs
//!   in the window are absorbed). The spawn fingerprint covers command,
//!   args, cwd, env, which reference feeds which variable, inherit/pass
//!   env, output/prefix/masking, the readiness probe, and stop and kill
//!   settings; restart policy, backoff and dependencies apply without a
//!   restart. A plugin that is `failed` or `exited` starts again when its
//!   fingerprint changed (a grant added for a denied plugin, then SIGHUP,
//!   starts it). A changed plugin restarts with a fresh backoff. Removed or
//!   now-disabled plugins are stopped. New `[supervisor]` settings apply
//!   at once (colour and timestamps to output from new spawns). A store that was never opened (no local handle at start)
//!   is opened at the reload that first needs it. One summary line:
//!   `reload: N restarted, N started, N stopped, N unchanged`.
//! - **Status.** `secret plugins status [FILE] [--json]` asks the
//!   supervisor of FILE over a Unix socket (0600, in a 0700 directory:
//!   `$XDG_RUNTIME_DIR/secret` when set and SECRET_HOME is not, else the
//!   data directory's `run/`), named after a hash of FILE's absolute path.
//!   Exit 0, or 1 when no supervisor answers. A second `plugins run` of
//!   the same file is refused (exit 2) while the first answers there.
//! - **Audit.** Besides each resolution, `plugin-start` (outcome `pid N`)
//!   and `plugin-exit` (how it ended) are recorded with consumer = the id.

pub mod config;
pub mod diag;
pub mod fingerprint;
pub mod keeper;
pub mod launch;
pub mod output;
pub mod run;
pub mod status;

use std::cell::{OnceCell, RefCell};
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;

use crate::cli::PluginsCommand;
use crate::error::{Error, Result};
use crate::grants::Grants;
use crate::handle::Handle;
use crate::paths::Paths;
use crate::resolve::Scope;
use crate::store::{Backend, EntryMeta, Store};
use crate::value::SecretValue;

use config::Config;

/// What the supervisor needs from the rest of `secret`.
pub struct Host<'a> {
    pub paths: &'a Paths,
    pub scope: &'a Scope,
    pub config: &'a crate::store::Config,
    /// Opens (unlocks) the store in force; called at most once.
    pub open_store: &'a dyn Fn() -> Result<Box<dyn Store>>,
}

impl Host<'_> {
    /// Says whether `scheme://…` is a remote reference.
    fn is_remote(&self, scheme: &str) -> bool {
        crate::remote::is_scheme(scheme, self.config)
    }
}

/// Runs `secret plugins …`; returns the exit code.
pub fn command(command: PluginsCommand, host: &Host<'_>) -> Result<u8> {
    match command {
        PluginsCommand::Check { file } => {
            let Some(config) = load(file, host)? else {
                return Ok(2);
            };
            check(&config, host)
        }
        PluginsCommand::Run { file } => {
            let Some(config) = load(file, host)? else {
                return Ok(2);
            };
            run::run(config, host)
        }
        PluginsCommand::Status { file, json } => {
            let path = file.unwrap_or_else(|| default_path(host.paths));
            let socket = status::socket_path(host.paths, &path);
            let Some(snapshot) = status::query(&socket)? else {
                let _ = writeln!(
                    std::io::stderr(),
                    "secret: no supervisor is running {} (nothing answers on {})",
                    path.display(),
                    socket.display()
                );
                return Ok(1);
            };
            let text = if json {
                let mut t = serde_json::to_string_pretty(&snapshot)
                    .map_err(|e| Error::usage(format!("cannot show the status: {e}")))?;
                t.push('\n');
                t
            } else {
                status::table(&snapshot)
            };
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| Error::io("writing to standard output", e))?;
            Ok(0)
        }
        PluginsCommand::Keeper => Ok(keeper::main()),
    }
}

/// The file named, else the configuration directory's `plugins.toml`.
#[must_use]
pub fn default_path(paths: &Paths) -> PathBuf {
    paths.config_dir.join("plugins.toml")
}

/// Loads and validates; on problems prints them all and returns `None`.
fn load(file: Option<PathBuf>, host: &Host<'_>) -> Result<Option<Config>> {
    let path = file.unwrap_or_else(|| default_path(host.paths));
    match Config::load(&path, &|s| host.is_remote(s)) {
        Ok(config) => Ok(Some(config)),
        Err(invalid) => {
            let _ = std::io::stderr().write_all(invalid.report().as_bytes());
            Ok(None)
        }
    }
}

/// A file's identity and version, to notice that it changed: device,
/// inode, size, modification time (seconds, nanoseconds).
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The store, unlocked once and shared by every resolution, and the grants
/// file. Resolution wants to open a store (`FnOnce() -> Box<dyn Store>`);
/// each call gets a read-only view of the one already open, re-read first
/// if its file changed since (a rotation reaches the next spawn without a
/// second unlock). grants.toml is parsed again only when it changed.
pub struct SharedStore {
    store: OnceCell<Rc<RefCell<Box<dyn Store>>>>,
    /// The vault file's stamp when the store was last read.
    seen: RefCell<Stamp>,
    vault_file: PathBuf,
    /// grants.toml as last parsed, and its stamp then.
    grants: RefCell<Option<(Stamp, Rc<Grants>)>>,
}

impl SharedStore {
    /// Opens the store now when `config` needs it (some enabled plugin names
    /// a local handle); else leaves it closed.
    pub fn open_for(config: &Config, host: &Host<'_>) -> Result<Self> {
        let shared = Self {
            store: OnceCell::new(),
            seen: RefCell::new(None),
            vault_file: host.paths.vault_file(),
            grants: RefCell::new(None),
        };
        let needed = config
            .plugins
            .iter()
            .filter(|p| p.enabled)
            .any(launch::needs_store);
        if needed {
            shared.open(host)?;
        }
        Ok(shared)
    }

    /// A store not opened yet (for `secret broker`, which opens it with
    /// `open` when a route names a local handle).
    #[must_use]
    pub fn closed(paths: &Paths) -> Self {
        Self {
            store: OnceCell::new(),
            seen: RefCell::new(None),
            vault_file: paths.vault_file(),
            grants: RefCell::new(None),
        }
    }

    /// Opens (unlocks) the store unless it is open.
    pub fn open(&self, host: &Host<'_>) -> Result<()> {
        if self.store.get().is_none() {
            *self.seen.borrow_mut() = stamp(&self.vault_file);
            let store = (host.open_store)()?;
            let _ = self.store.set(Rc::new(RefCell::new(store)));
        }
        Ok(())
    }

    /// grants.toml as it is now: parsed again only when the file changed
    /// (a grant withdrawn or added applies at the next spawn).
    pub fn grants(&self, paths: &Paths) -> Result<Rc<Grants>> {
        let now = stamp(&paths.config_dir.join("grants.toml"));
        if let Some((seen, grants)) = self.grants.borrow().as_ref()
            && *seen == now
        {
            return Ok(Rc::clone(grants));
        }
        let grants = Rc::new(Grants::load(paths)?);
        *self.grants.borrow_mut() = Some((now, Rc::clone(&grants)));
        Ok(grants)
    }

    /// A view of the open store, for `resolve::resolve`.
    pub fn view(&self) -> Result<Box<dyn Store>> {
        let store = self.store.get().ok_or_else(|| {
            Error::usage(
                "the store is not open: no plugin named a local handle when the supervisor started",
            )
        })?;
        let now = stamp(&self.vault_file);
        if store.borrow().backend() == Backend::File && *self.seen.borrow() != now {
            store.borrow_mut().refresh()?;
            *self.seen.borrow_mut() = now;
        }
        Ok(Box::new(View(Rc::clone(store))))
    }
}

/// A read-only view of a shared store.
struct View(Rc<RefCell<Box<dyn Store>>>);

impl Store for View {
    fn backend(&self) -> Backend {
        self.0.borrow().backend()
    }
    fn list(&self) -> Result<Vec<EntryMeta>> {
        self.0.borrow().list()
    }
    fn get(&self, handle: &Handle) -> Result<SecretValue> {
        self.0.borrow().get(handle)
    }
    fn meta(&self, handle: &Handle) -> Result<EntryMeta> {
        self.0.borrow().meta(handle)
    }
    fn add(&mut self, _: &Handle, _: &SecretValue, _: &str, _: &str) -> Result<EntryMeta> {
        Err(read_only())
    }
    fn rotate(&mut self, _: &Handle, _: &SecretValue) -> Result<EntryMeta> {
        Err(read_only())
    }
    fn remove(&mut self, _: &Handle) -> Result<EntryMeta> {
        Err(read_only())
    }
}

fn read_only() -> Error {
    Error::usage("the supervisor's view of the store is read-only")
}

/// `secret plugins check`: the file is valid; now say what each plugin
/// would get, resolving every reference (never printing a value).
fn check(config: &Config, host: &Host<'_>) -> Result<u8> {
    let store = SharedStore::open_for(config, host)?;
    let mut out = String::new();
    let enabled = config.plugins.iter().filter(|p| p.enabled).count();
    out.push_str(&format!(
        "{}: valid; {} plugin{}, {enabled} enabled\n",
        config.path.display(),
        config.plugins.len(),
        if config.plugins.len() == 1 { "" } else { "s" },
    ));
    let mut unresolved = 0;
    for plugin in &config.plugins {
        if !plugin.enabled {
            out.push_str(&format!(
                "{}: disabled (validated, never started)\n",
                plugin.id
            ));
            continue;
        }
        let resolved = launch::resolve_each(plugin, host, &store);
        let mut secrets = Vec::new();
        let mut problems = Vec::new();
        for (r, result) in plugin.secret_env_refs.iter().zip(resolved) {
            match result {
                Ok(_) => secrets.push(format!("{} ({})", r.var, r.text)),
                Err(e) => problems.push((r, e)),
            }
        }
        let plain: Vec<&str> = plugin.env.keys().map(String::as_str).collect();
        out.push_str(&format!(
            "{}: secrets: {}; env: {}\n",
            plugin.id,
            if secrets.is_empty() {
                "none".to_owned()
            } else {
                secrets.join(", ")
            },
            if plain.is_empty() {
                "none".to_owned()
            } else {
                plain.join(", ")
            }
        ));
        for (r, e) in problems {
            unresolved += 1;
            out.push_str(&format!(
                "{}: error: {} ({}) could not be resolved: {e}\n",
                plugin.id, r.var, r.text
            ));
            if let Some(hint) = e.hint() {
                for line in hint.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    if unresolved > 0 {
        out.push_str(&format!(
            "secret: {unresolved} secret reference{} could not be resolved; those plugins would fail\n",
            if unresolved == 1 { "" } else { "s" }
        ));
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(if unresolved > 0 { 1 } else { 0 })
}

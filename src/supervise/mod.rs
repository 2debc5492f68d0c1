//! The plugin supervisor: `secret plugins run|check|status [FILE]`. It
//! runs the long-lived children declared in `plugins.toml`, each in its own
//! process group with only its own secrets (consumer = its id), and
//! restarts, stops, reloads and reports them as PLUGINS.md lays out.
//!
//! Rooms:
//!
//! - `config`: the schema, strict parsing and every validation rule;
//! - `launch`: resolving one plugin's secrets through the grants, building
//!   its environment and starting it, through `resolve` and `child`;
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
//! This module owns the one store unlock shared by every plugin (and the
//! grants file, parsed once per change); the commands' flows are in
//! `cmd/plugins.rs`.
//!
//! The choices made where PLUGINS.md is silent, and the deviations, are
//! in `docs/supervisor.md`.

pub(crate) mod config;
pub(crate) mod fingerprint;
pub(crate) mod keeper;
pub(crate) mod launch;
pub(crate) mod output;
pub(crate) mod run;
pub(crate) mod status;

use std::cell::{OnceCell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::grants::Grants;
use crate::paths::Paths;
use crate::resolve::Scope;
use crate::store::{Backend, Store};

use config::PluginsFile;

/// What the supervisor needs from the rest of `secret`.
pub(crate) struct Host<'a> {
    pub paths: &'a Paths,
    pub scope: &'a Scope,
    pub config: &'a crate::config::Config,
    /// Opens (unlocks) the store in force; called at most once.
    pub open_store: &'a dyn Fn() -> Result<Box<dyn Store>>,
}

impl Host<'_> {
    /// Says whether `scheme://…` is a remote reference.
    fn is_remote(&self, scheme: &str) -> bool {
        crate::remote::is_scheme(scheme, self.config)
    }
}

/// The file named, else the configuration directory's `plugins.toml`.
#[must_use]
/// The consumer a plugin is in grants.toml and the audit trail:
/// `plugin:<id>`. Plugins live in a namespace of their own, so a plugin
/// with `id = "exec"` is not the CLI and gets none of its grants.
pub(crate) fn consumer(id: &str) -> String {
    format!("{PLUGIN_CONSUMER_PREFIX}{id}")
}

/// The namespace of plugin consumers.
pub(crate) const PLUGIN_CONSUMER_PREFIX: &str = "plugin:";

pub(crate) fn default_path(paths: &Paths) -> PathBuf {
    paths.config_dir.join("plugins.toml")
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

/// The store, unlocked once and lent to every resolution (re-read first if
/// its file changed since: a rotation reaches the next spawn without a
/// second unlock), and the grants file, parsed again only when it changed.
pub(crate) struct SharedStore {
    store: OnceCell<RefCell<Box<dyn Store>>>,
    /// The vault file's stamp when the store was last read.
    seen: RefCell<Stamp>,
    vault_file: PathBuf,
    /// grants.toml as last parsed, and its stamp then.
    grants: RefCell<Option<(Stamp, Rc<Grants>)>>,
}

impl SharedStore {
    /// Opens the store now when `config` needs it (some enabled plugin names
    /// a local handle); else leaves it closed.
    pub(crate) fn open_for(config: &PluginsFile, host: &Host<'_>) -> Result<Self> {
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
    pub(crate) fn closed(paths: &Paths) -> Self {
        Self {
            store: OnceCell::new(),
            seen: RefCell::new(None),
            vault_file: paths.vault_file(),
            grants: RefCell::new(None),
        }
    }

    /// Opens (unlocks) the store unless it is open.
    pub(crate) fn open(&self, host: &Host<'_>) -> Result<()> {
        if self.store.get().is_none() {
            *self.seen.borrow_mut() = stamp(&self.vault_file);
            let store = (host.open_store)()?;
            let _ = self.store.set(RefCell::new(store));
        }
        Ok(())
    }

    /// grants.toml as it is now: parsed again only when the file changed
    /// (a grant withdrawn or added applies at the next spawn).
    pub(crate) fn grants(&self, paths: &Paths) -> Result<Rc<Grants>> {
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

    /// Runs `f` with the open store (re-read first if its file changed
    /// since, so a rotation reaches the next spawn without a second
    /// unlock), or with `None` when `needed` is false. A store that is
    /// needed but was never opened is an internal error.
    pub(crate) fn with<T>(
        &self,
        needed: bool,
        f: impl FnOnce(Option<&dyn Store>) -> T,
    ) -> Result<T> {
        if !needed {
            return Ok(f(None));
        }
        let store = self.store.get().ok_or_else(|| {
            Error::internal(
                "the store is not open: no plugin named a local handle when the supervisor started",
            )
        })?;
        let now = stamp(&self.vault_file);
        if store.borrow().backend() == Backend::File && *self.seen.borrow() != now {
            store.borrow_mut().refresh()?;
            *self.seen.borrow_mut() = now;
        }
        let store = store.borrow();
        Ok(f(Some(store.as_ref())))
    }
}

//! What every command needs and nothing more: where files live, config.toml,
//! the scope, the passphrase sources, the store in force and the audit
//! helper. Commands call into it; it never calls a command.

use std::io::Write;

use crate::audit::{self, Event};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::passphrase::Sources;
use crate::paths::Paths;
use crate::resolve::Scope;
use crate::store::keychain::Keychain;
use crate::store::vault::Vault;
use crate::store::{Backend, Store};

/// The shared context of one command.
pub(crate) struct Context {
    /// Where files live; `Err` when nothing says (no `SECRET_HOME`, XDG
    /// directory or `HOME`), reported only when a command needs a file, so
    /// a launch that resolves nothing runs anywhere.
    paths: std::result::Result<Paths, (String, String)>,
    pub(crate) sources: Sources,
    pub(crate) scope: Scope,
    pub(crate) config: Config,
}

impl Context {
    /// Reads the paths, config.toml and the scope.
    pub(crate) fn load(passphrase_fd: Option<i32>, scope: Option<&str>) -> Result<Self> {
        let (paths, config) = match Paths::from_env() {
            Ok(paths) => {
                let config = Config::load(&paths)?;
                (Ok(paths), config)
            }
            Err(Error::Usage { message, hint }) => {
                (Err((message, hint.unwrap_or_default())), Config::default())
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            paths,
            sources: Sources {
                fd: passphrase_fd,
                new_fd: None,
            },
            scope: Scope::parse(scope)?,
            config,
        })
    }

    /// Where files live, or why that is not known.
    pub(crate) fn paths(&self) -> Result<&Paths> {
        self.paths
            .as_ref()
            .map_err(|(message, hint)| Error::usage_hint(message.clone(), hint.clone()))
    }

    /// Opens the store in force, unlocking it once.
    pub(crate) fn open_store(&self) -> Result<Box<dyn Store>> {
        let paths = self.paths()?;
        match self.config.backend_in_force()? {
            // A missing vault is `NotInitialized`, from reading it.
            Backend::File => Ok(Box::new(Vault::open_cached_or(paths, || {
                self.sources.current()
            })?)),
            Backend::Keychain => Ok(Box::new(Keychain::open(paths)?)),
        }
    }

    /// Opens the file vault with the passphrase, never the cache (for
    /// commands that must prove knowledge of it).
    pub(crate) fn open_vault_with_passphrase(&self, command: &str) -> Result<Vault> {
        if self.config.backend_in_force()? != Backend::File {
            return Err(Error::usage(format!(
                "secret {command} is for the file vault; the keychain backend has no passphrase"
            )));
        }
        let paths = self.paths()?;
        let path = paths.vault_file();
        if !path.exists() {
            return Err(Error::NotInitialized { path });
        }
        Vault::open(paths, &self.sources.current()?)
    }

    /// Which `scheme://` prefixes are remote references.
    pub(crate) fn schemes(&self) -> impl Fn(&str) -> bool + '_ {
        |scheme| crate::remote::is_scheme(scheme, &self.config)
    }

    /// An audit event from the command line (consumer `cli`).
    pub(crate) fn event(&self) -> Event {
        Event {
            consumer: "cli".into(),
            ..Event::default()
        }
    }

    /// Appends `events` to the audit trail.
    pub(crate) fn record(&self, events: &[Event]) -> Result<()> {
        audit::append(self.paths()?, events)
    }
}

/// Writes `text` to standard output; the command's exit code is then 0.
pub(crate) fn print(text: &str) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(0)
}

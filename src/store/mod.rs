//! The store: where values live. One trait, one implementation per backend
//! (`vault`: the encrypted file, the embedded default; `keychain`: the OS
//! keychain). This module owns the metadata model shared by both and the
//! choice of backend; it does not know about exec, grants or audit.

pub mod keychain;
pub mod vault;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::fsio;
use crate::handle::Handle;
use crate::paths::Paths;
use crate::value::{MAX_VALUE_LEN, SecretValue};

/// Which kind of store holds the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The encrypted file vault (the default; works anywhere, no daemon).
    File,
    /// The OS keychain (Secret Service on Linux).
    Keychain,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::File => "file",
            Self::Keychain => "keychain",
        })
    }
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "file" => Ok(Self::File),
            "keychain" => Ok(Self::Keychain),
            other => Err(Error::usage_hint(
                format!("unknown backend \"{other}\""),
                "use \"file\" or \"keychain\"",
            )),
        }
    }
}

/// What is known about a secret without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub handle: String,
    /// Who issued it (`openai`, `github`, …); free text, may be empty.
    pub provider: String,
    /// What it is (`api_key`, `password`, …); free text, may be empty.
    pub kind: String,
    /// Keyed hash of the value (see `crypto::fingerprint`).
    pub fingerprint: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last rotation, if any.
    pub rotated: Option<u64>,
    /// 1 when added, +1 on each rotation.
    pub version: u64,
}

/// The store interface every backend implements.
pub trait Store {
    fn backend(&self) -> Backend;
    /// Every entry's metadata, sorted by handle.
    fn list(&self) -> Result<Vec<EntryMeta>>;
    /// Decrypts or fetches one value.
    fn get(&self, handle: &Handle) -> Result<SecretValue>;
    fn add(
        &mut self,
        handle: &Handle,
        value: &SecretValue,
        provider: &str,
        kind: &str,
    ) -> Result<EntryMeta>;
    fn rotate(&mut self, handle: &Handle, value: &SecretValue) -> Result<EntryMeta>;
    fn remove(&mut self, handle: &Handle) -> Result<EntryMeta>;

    /// Sees what other commands changed since this store was opened (a
    /// long-running reader such as the plugin supervisor picks up a
    /// rotation). Backends that read live need not do anything.
    fn refresh(&mut self) -> Result<()> {
        Ok(())
    }

    /// One entry's metadata.
    fn meta(&self, handle: &Handle) -> Result<EntryMeta> {
        self.list()?
            .into_iter()
            .find(|m| m.handle == handle.name())
            .ok_or_else(|| Error::NoSuchSecret {
                handle: handle.clone(),
            })
    }
}

/// `config.toml`: what `secret init` chose.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub backend: Option<Backend>,
    /// `[providers.NAME]`: command providers (see `remote::command`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub providers: std::collections::BTreeMap<String, crate::remote::command::ProviderConfig>,
}

impl Config {
    pub fn load(paths: &Paths) -> Result<Self> {
        let path = paths.config_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                Error::usage_hint(
                    format!("{}: {}", path.display(), e.message()),
                    "fix the file, or remove it to use the file vault",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        let text = format!(
            "# secret configuration, written by `secret init`.\n{}",
            toml::to_string(self).map_err(|e| Error::usage(e.to_string()))?
        );
        fsio::write_atomic(&paths.config_file(), text.as_bytes())
    }
}

/// The backend in force: `SECRET_BACKEND`, else `config.toml`, else the file vault.
pub fn backend_in_force(config: &Config) -> Result<Backend> {
    if let Some(name) = std::env::var_os("SECRET_BACKEND").filter(|v| !v.is_empty()) {
        return name.to_string_lossy().parse();
    }
    Ok(config.backend.unwrap_or(Backend::File))
}

/// Checks a value before it is stored: not empty, no NUL (an environment
/// variable cannot carry one), at most 1 MiB.
pub fn check_value(value: &SecretValue) -> Result<()> {
    if value.is_empty() {
        return Err(Error::usage("the value is empty; nothing was stored"));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::usage(format!(
            "the value is {} bytes, over the limit of {MAX_VALUE_LEN} bytes (1 MiB); nothing was stored",
            value.len()
        )));
    }
    if value.expose().contains(&0) {
        return Err(Error::usage(
            "the value contains a NUL byte, which an environment variable cannot carry; nothing was stored",
        ));
    }
    Ok(())
}

/// Checks a `--provider` or `--kind` label.
pub fn check_label(what: &str, label: &str) -> Result<()> {
    if label.len() > 64 || label.chars().any(char::is_control) {
        return Err(Error::usage(format!(
            "--{what} must be at most 64 printable characters"
        )));
    }
    Ok(())
}

/// Now, in Unix seconds.
#[must_use]
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A store's root key and the independent subkeys derived from it: one seals
/// values, one commits to the entry set, one keys fingerprints.
pub(crate) struct Keys {
    pub value: Key,
    pub commit: Key,
    pub fingerprint: Key,
    pub root: Key,
}

impl Keys {
    pub fn from_root(root: Key) -> Self {
        Self {
            value: root.subkey("secret/v1/value"),
            commit: root.subkey("secret/v1/commit"),
            fingerprint: root.subkey("secret/v1/fingerprint"),
            root,
        }
    }
}

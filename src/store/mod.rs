//! The store: where values live. One trait, one implementation per backend
//! (`vault`: the encrypted file, the embedded default; `keychain`: the OS
//! keychain). This module owns the metadata model shared by both and the
//! choice of backend; it does not know about exec, grants or audit.

pub(crate) mod keychain;
pub(crate) mod vault;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::value::{MAX_VALUE_LEN, SecretValue};

/// Which kind of store holds the values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
pub(crate) struct EntryMeta {
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

/// The `kind` that marks a link entry; its value is the reference.
pub(crate) const LINK_KIND: &str = "link";

/// Where a link points, if `meta` is a link.
pub(crate) fn link_target(store: &dyn Store, meta: &EntryMeta) -> Result<Option<String>> {
    if meta.kind != LINK_KIND {
        return Ok(None);
    }
    let handle = Handle::from_name(&meta.handle)?;
    let value = store.get(&handle)?;
    Ok(Some(String::from_utf8_lossy(value.expose()).into_owned()))
}

/// The store interface every backend implements.
pub(crate) trait Store {
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
            .ok_or_else(|| Error::no_such_secret(handle))
    }
}

/// Checks a value before it is stored: not empty, no NUL (an environment
/// variable cannot carry one), at most 1 MiB.
pub(crate) fn check_value(value: &SecretValue) -> Result<()> {
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
pub(crate) fn check_label(what: &str, label: &str) -> Result<()> {
    if label.len() > 64 || label.chars().any(char::is_control) {
        return Err(Error::usage(format!(
            "--{what} must be at most 64 printable characters"
        )));
    }
    Ok(())
}

/// Now, in Unix seconds.
#[must_use]
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A store's root key and the independent subkeys derived from it: one seals
/// values, one commits to the entry set, one keys fingerprints, one keys
/// the audit trail's lines.
pub(crate) struct Keys {
    pub value: Key,
    pub commit: Key,
    pub fingerprint: Key,
    pub audit: Key,
    pub root: Key,
}

impl Keys {
    pub(crate) fn from_root(root: Key) -> Self {
        let [value, commit, fingerprint, audit] = root.subkeys([
            "secret/v1/value",
            "secret/v1/commit",
            "secret/v1/fingerprint",
            crate::audit::KEY_LABEL,
        ]);
        Self {
            value,
            commit,
            fingerprint,
            audit,
            root,
        }
    }
}

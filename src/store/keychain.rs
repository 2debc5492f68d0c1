//! The OS keychain backend: each value is an item in the Secret Service
//! (Linux, over D-Bus), metadata is a local JSON file. A random root
//! key, itself kept in the keychain, keys the fingerprints and an HMAC over
//! the metadata file, so an edited metadata file or a value swapped between
//! items is refused. It owns nothing of the file vault's format.

use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, Key};
use crate::error::{Error, Result};
use crate::fsio;
use crate::handle::Handle;
use crate::paths::Paths;
use crate::store::{Backend, EntryMeta, Keys, Store, check_value, now};
use crate::value::SecretValue;

/// The `service` attribute of every item `secret` creates.
pub const SERVICE: &str = "secret";

/// The metadata file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaFile {
    version: u32,
    store_id: String,
    entries: Vec<EntryMeta>,
    /// HMAC-SHA-256 under the commit subkey of the JSON of the other fields.
    mac: String,
}

/// The part of the metadata the MAC covers.
#[derive(Serialize)]
struct Signed<'a> {
    version: u32,
    store_id: &'a str,
    entries: &'a [EntryMeta],
}

impl MetaFile {
    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Signed {
            version: self.version,
            store_id: &self.store_id,
            entries: &self.entries,
        })
        .unwrap_or_default()
    }

    fn seal(&mut self, keys: &Keys) {
        self.mac = crypto::hex(&crypto::hmac(&keys.commit, &[&self.signed_bytes()]));
    }
}

/// An opened keychain store.
pub struct Keychain {
    paths: Paths,
    keys: Keys,
    meta: MetaFile,
}

impl Keychain {
    /// Creates the root key in the keychain and an empty metadata file.
    pub fn create(paths: &Paths) -> Result<()> {
        fsio::ensure_private_dir(&paths.data_dir)?;
        let _lock = fsio::lock_exclusive(&paths.lock_file())?;
        let path = paths.keychain_meta_file();
        if path.exists() {
            return Err(Error::AlreadyInitialized { path });
        }
        let store_id = crypto::hex(&crypto::random::<16>()?);
        let root = Key::generate()?;
        items::set(&root_user(&store_id), root.as_bytes())
            .map_err(|e| keychain_error("storing the root key", &e))?;
        crate::audit::use_key(&root);
        let keys = Keys::from_root(root);
        let mut meta = MetaFile {
            version: 1,
            store_id,
            entries: Vec::new(),
            mac: String::new(),
        };
        meta.seal(&keys);
        write_meta(&path, &meta)
    }

    /// Reads the metadata and fetches the root key from the keychain.
    pub fn open(paths: &Paths) -> Result<Self> {
        let path = paths.keychain_meta_file();
        let (store_id, bytes) = read_unverified(&path)?;
        let secret = items::get(&root_user(&store_id))
            .map_err(|e| keychain_error("reading the root key", &e))?;
        let root: [u8; KEY_LEN] = secret.as_slice().try_into().map_err(|_| Error::Keychain {
            message: "the keychain item holding secret's root key has the wrong length".into(),
            hint: "it was changed by another program; restore it or run `secret init` in a new SECRET_HOME".into(),
        })?;
        let keys = Keys::from_root(Key::from_bytes(Zeroizing::new(root)));
        crate::audit::use_key(&keys.root);
        let meta = verify(&path, &bytes, &keys)?;
        Ok(Self {
            paths: paths.clone(),
            keys,
            meta,
        })
    }

    /// Re-reads the metadata under the writers' lock, applies `change`, and
    /// writes it back atomically. The change (`action` on `handle`) is
    /// audited before `change` touches the keychain, so no change is made
    /// without its record; the command adds the outcome after.
    fn modify<T>(
        &mut self,
        action: &'static str,
        handle: &Handle,
        change: impl FnOnce(&mut MetaFile, &Keys) -> Result<T>,
    ) -> Result<T> {
        let _lock = fsio::lock_exclusive(&self.paths.lock_file())?;
        let path = self.paths.keychain_meta_file();
        let (_, bytes) = read_unverified(&path)?;
        let mut meta = verify(&path, &bytes, &self.keys)?;
        crate::audit::append(
            &self.paths,
            &[crate::audit::Event {
                action,
                handle: Some(handle.name().to_owned()),
                consumer: "cli".into(),
                outcome: "committing".into(),
                ..crate::audit::Event::default()
            }],
        )?;
        let out = change(&mut meta, &self.keys)?;
        meta.seal(&self.keys);
        write_meta(&path, &meta)?;
        self.meta = meta;
        Ok(out)
    }

    fn find(meta: &MetaFile, handle: &Handle) -> Result<usize> {
        meta.entries
            .binary_search_by(|e| e.handle.as_str().cmp(handle.name()))
            .map_err(|_| Error::no_such_secret(handle))
    }
}

impl Store for Keychain {
    fn backend(&self) -> Backend {
        Backend::Keychain
    }

    fn list(&self) -> Result<Vec<EntryMeta>> {
        Ok(self.meta.entries.clone())
    }

    fn get(&self, handle: &Handle) -> Result<SecretValue> {
        let meta = &self.meta.entries[Self::find(&self.meta, handle)?];
        let value = items::get(&value_user(&self.meta.store_id, handle))
            .map(|mut bytes| SecretValue::new(std::mem::take(&mut *bytes)))
            .map_err(|e| keychain_error(&format!("reading {handle}"), &e))?;
        if crypto::fingerprint(&self.keys.fingerprint, &value) != meta.fingerprint {
            return Err(Error::Keychain {
                message: format!(
                    "the keychain item for {handle} does not match its recorded fingerprint"
                ),
                hint: format!(
                    "it was changed outside secret; set it again with: secret rotate {handle} --stdin"
                ),
            });
        }
        Ok(value)
    }

    fn add(
        &mut self,
        handle: &Handle,
        value: &SecretValue,
        provider: &str,
        kind: &str,
    ) -> Result<EntryMeta> {
        check_value(value)?;
        if Self::find(&self.meta, handle).is_ok() {
            return Err(Error::SecretExists {
                handle: handle.clone(),
            });
        }
        self.modify("add", handle, |meta, keys| {
            let at = match Self::find(meta, handle) {
                Ok(_) => {
                    return Err(Error::SecretExists {
                        handle: handle.clone(),
                    });
                }
                Err(_) => meta
                    .entries
                    .partition_point(|e| e.handle.as_str() < handle.name()),
            };
            let fingerprint = put(&meta.store_id, keys, handle, value)?;
            let entry = EntryMeta {
                handle: handle.name().to_owned(),
                provider: provider.to_owned(),
                kind: kind.to_owned(),
                fingerprint,
                created: now(),
                rotated: None,
                version: 1,
            };
            meta.entries.insert(at, entry.clone());
            Ok(entry)
        })
    }

    fn rotate(&mut self, handle: &Handle, value: &SecretValue) -> Result<EntryMeta> {
        check_value(value)?;
        Self::find(&self.meta, handle)?;
        self.modify("rotate", handle, |meta, keys| {
            let i = Self::find(meta, handle)?;
            let fingerprint = put(&meta.store_id, keys, handle, value)?;
            let entry = &mut meta.entries[i];
            entry.version += 1;
            entry.rotated = Some(now());
            entry.fingerprint = fingerprint;
            Ok(entry.clone())
        })
    }

    fn remove(&mut self, handle: &Handle) -> Result<EntryMeta> {
        self.modify("rm", handle, |meta, _| {
            let i = Self::find(meta, handle)?;
            delete(&meta.store_id, handle)?;
            Ok(meta.entries.remove(i))
        })
    }
}

/// Writes `value` into the keychain item for `handle` and returns its
/// fingerprint. Called under the writers' lock, after the metadata was
/// re-read, so concurrent commands cannot overwrite each other's items.
fn put(store_id: &str, keys: &Keys, handle: &Handle, value: &SecretValue) -> Result<String> {
    items::set(&value_user(store_id, handle), value.expose())
        .map_err(|e| keychain_error(&format!("storing {handle}"), &e))?;
    Ok(crypto::fingerprint(&keys.fingerprint, value))
}

/// Deletes the keychain item for `handle` (under the writers' lock).
fn delete(store_id: &str, handle: &Handle) -> Result<()> {
    match items::delete(&value_user(store_id, handle)) {
        Ok(()) | Err(Failure::NoEntry) => Ok(()),
        Err(e) => Err(keychain_error(&format!("removing {handle}"), &e)),
    }
}

fn value_user(store_id: &str, handle: &Handle) -> String {
    format!("{store_id}/{}", handle.name())
}

fn root_user(store_id: &str) -> String {
    format!("{store_id}:root")
}

/// The handle names in the metadata at `paths`, read without the keychain
/// (unverified: for shell completion only).
pub fn names_unverified(paths: &Paths) -> Result<Vec<String>> {
    let path = paths.keychain_meta_file();
    let (_, bytes) = read_unverified(&path)?;
    let meta: MetaFile = serde_json::from_slice(&bytes)
        .map_err(|e| Error::damaged(&path, format!("it is not keychain metadata ({e})")))?;
    Ok(meta
        .entries
        .into_iter()
        .map(|e| e.handle)
        .filter(|name| Handle::from_name(name).is_ok())
        .collect())
}

fn read_unverified(path: &Path) -> Result<(String, Vec<u8>)> {
    let bytes = fsio::read_private(path)?.ok_or_else(|| Error::NotInitialized {
        path: path.to_owned(),
    })?;
    let meta: MetaFile = serde_json::from_slice(&bytes)
        .map_err(|e| Error::damaged(path, format!("it is not keychain metadata ({e})")))?;
    Ok((meta.store_id, bytes))
}

fn verify(path: &Path, bytes: &[u8], keys: &Keys) -> Result<MetaFile> {
    let meta: MetaFile = serde_json::from_slice(bytes)
        .map_err(|e| Error::damaged(path, format!("it is not keychain metadata ({e})")))?;
    let tag = (0..meta.mac.len() / 2)
        .map(|i| u8::from_str_radix(meta.mac.get(2 * i..2 * i + 2).unwrap_or("zz"), 16).ok())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_default();
    if meta.version != 1
        || meta.mac.len() != 2 * crypto::MAC_LEN
        || !crypto::verify_hmac(&keys.commit, &[&meta.signed_bytes()], &tag)
    {
        return Err(Error::damaged(
            path,
            "its metadata does not match its commitment (edited, or from another store)",
        ));
    }
    Ok(meta)
}

fn write_meta(path: &Path, meta: &MetaFile) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(meta)
        .map_err(|e| Error::io("encoding keychain metadata", e.into()))?;
    text.push(b'\n');
    fsio::write_atomic(path, &text)
}

/// Why a keychain call failed, without the data it may have carried.
#[derive(Debug)]
enum Failure {
    /// The keychain is locked, or its unlock prompt was dismissed.
    Locked(String),
    /// No bus, no Secret Service on it, or a call failed.
    Platform(String),
    /// No item has these attributes.
    NoEntry,
    /// This many items have them.
    Ambiguous(usize),
}

/// The items `secret` keeps in the Secret Service (Linux): one per value
/// and one for the root key, found by the attributes `service = "secret"`
/// and `username = USER`, created in the default collection with the label
/// `keyring:USER@secret` and the content type `application/octet-stream`:
/// the layout of the keyring crates, so stores made with them still open.
///
/// The session is the Secret Service's `plain` one: values cross the
/// session bus unencrypted, between our process and the keychain daemon,
/// both the user's own. The `dh-ietf1024` session would only hide them
/// from another process of the same user watching the bus, which could as
/// well ask the unlocked keychain for them; it costs twelve crates.
#[cfg(target_os = "linux")]
mod items {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use dbus_secret_service::{EncryptionType, Error as DbusError, Item, SecretService};
    use zeroize::Zeroizing;

    use super::{Failure, SERVICE};

    const CONTENT_TYPE: &str = "application/octet-stream";

    /// The connection, made on first use and kept for the process.
    fn with<T>(f: impl FnOnce(&SecretService) -> Result<T, Failure>) -> Result<T, Failure> {
        static SERVICE_CONNECTION: OnceLock<Mutex<SecretService>> = OnceLock::new();
        let service = match SERVICE_CONNECTION.get() {
            Some(s) => s,
            None => {
                let connected =
                    SecretService::connect(EncryptionType::Plain).map_err(|e| platform(&e))?;
                SERVICE_CONNECTION.get_or_init(|| Mutex::new(connected))
            }
        };
        f(&service.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn attributes(user: &str) -> HashMap<&str, &str> {
        HashMap::from([("service", SERVICE), ("username", user)])
    }

    /// The one item for `user`, unlocked (the Secret Service may prompt).
    fn find<'a>(ss: &'a SecretService, user: &str) -> Result<Item<'a>, Failure> {
        let mut found = ss.search_items(attributes(user)).map_err(|e| decode(&e))?;
        if !found.locked.is_empty() {
            let locked: Vec<&Item<'_>> = found.locked.iter().collect();
            ss.unlock_all(&locked).map_err(|e| decode(&e))?;
        }
        found.unlocked.append(&mut found.locked);
        match found.unlocked.len() {
            0 => Err(Failure::NoEntry),
            1 => Ok(found.unlocked.swap_remove(0)),
            n => Err(Failure::Ambiguous(n)),
        }
    }

    pub(super) fn get(user: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
        with(|ss| {
            find(ss, user)?
                .get_secret()
                .map(Zeroizing::new)
                .map_err(|e| decode(&e))
        })
    }

    /// Replaces the secret of `user`'s item, or creates the item.
    pub(super) fn set(user: &str, secret: &[u8]) -> Result<(), Failure> {
        with(|ss| match find(ss, user) {
            Ok(item) => item
                .set_secret(secret, CONTENT_TYPE)
                .map_err(|e| decode(&e)),
            Err(Failure::NoEntry) => {
                let collection = ss.get_default_collection().map_err(|e| decode(&e))?;
                if collection.is_locked().map_err(|e| decode(&e))? {
                    collection.unlock().map_err(|e| decode(&e))?;
                }
                collection
                    .create_item(
                        &format!("keyring:{user}@{SERVICE}"),
                        attributes(user),
                        secret,
                        true,
                        CONTENT_TYPE,
                    )
                    .map(drop)
                    .map_err(|e| platform(&e))
            }
            Err(e) => Err(e),
        })
    }

    pub(super) fn delete(user: &str) -> Result<(), Failure> {
        with(|ss| find(ss, user)?.delete().map_err(|e| decode(&e)))
    }

    fn decode(e: &DbusError) -> Failure {
        match e {
            DbusError::Locked | DbusError::NoResult | DbusError::Prompt => {
                Failure::Locked(e.to_string())
            }
            other => platform(other),
        }
    }

    fn platform(e: &DbusError) -> Failure {
        Failure::Platform(e.to_string())
    }
}

#[cfg(not(target_os = "linux"))]
mod items {
    use zeroize::Zeroizing;

    use super::Failure;

    fn absent<T>() -> Result<T, Failure> {
        Err(Failure::Platform(
            "the keychain backend is only built for Linux (Secret Service) so far".into(),
        ))
    }

    pub(super) fn get(_user: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
        absent()
    }

    pub(super) fn set(_user: &str, _secret: &[u8]) -> Result<(), Failure> {
        absent()
    }

    pub(super) fn delete(_user: &str) -> Result<(), Failure> {
        absent()
    }
}

/// Turns a keychain failure into ours.
fn keychain_error(doing: &str, e: &Failure) -> Error {
    let (what, hint) = match e {
        Failure::Locked(p) => (
            format!("the keychain is locked or unreachable ({p})"),
            "unlock your login keyring, or start a Secret Service (gnome-keyring) in this D-Bus session",
        ),
        Failure::Platform(p) => (
            format!("the Secret Service failed ({p})"),
            "check that a Secret Service (gnome-keyring, KeePassXC) runs on the D-Bus session bus (DBUS_SESSION_BUS_ADDRESS)",
        ),
        Failure::NoEntry => (
            "the keychain has no such item".to_owned(),
            "it was removed outside secret; add the secret again",
        ),
        Failure::Ambiguous(n) => (
            format!("{n} keychain items match"),
            "remove the duplicates with your keychain manager (seahorse, secret-tool)",
        ),
    };
    Error::Keychain {
        message: format!("{doing}: {what}"),
        hint: hint.into(),
    }
}

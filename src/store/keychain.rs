//! The OS keychain backend: each value is an item in the Secret Service
//! (Linux, via `keyring-core`), metadata is a local JSON file. A random root
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
        item(&root_user(&store_id))?
            .set_secret(root.as_bytes())
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
        let secret = item(&root_user(&store_id))?
            .get_secret()
            .map_err(|e| keychain_error("reading the root key", &e))?;
        let secret = Zeroizing::new(secret);
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
        let value = item(&value_user(&self.meta.store_id, handle))?
            .get_secret()
            .map(SecretValue::new)
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
    item(&value_user(store_id, handle))?
        .set_secret(value.expose())
        .map_err(|e| keychain_error(&format!("storing {handle}"), &e))?;
    Ok(crypto::fingerprint(&keys.fingerprint, value))
}

/// Deletes the keychain item for `handle` (under the writers' lock).
fn delete(store_id: &str, handle: &Handle) -> Result<()> {
    match item(&value_user(store_id, handle))?.delete_credential() {
        Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
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

#[cfg(target_os = "linux")]
fn item(user: &str) -> Result<keyring_core::Entry> {
    use std::sync::OnceLock;
    static STORE: OnceLock<std::sync::Arc<keyring_core::CredentialStore>> = OnceLock::new();
    let store = match STORE.get() {
        Some(s) => s,
        None => {
            let s = dbus_secret_service_keyring_store::Store::new()
                .map_err(|e| keychain_error("connecting to the Secret Service", &e))?;
            STORE.get_or_init(|| s)
        }
    };
    store
        .build(SERVICE, user, None)
        .map_err(|e| keychain_error("opening a keychain item", &e))
}

#[cfg(not(target_os = "linux"))]
fn item(_user: &str) -> Result<keyring_core::Entry> {
    Err(Error::Keychain {
        message: "the keychain backend is only built for Linux (Secret Service) so far".into(),
        hint: "use the file vault: secret init --backend file".into(),
    })
}

/// Turns a keychain error into ours, never formatting data the error may
/// carry (some variants hold the bytes that were read).
fn keychain_error(doing: &str, e: &keyring_core::Error) -> Error {
    use keyring_core::Error as K;
    let (what, hint) = match e {
        K::NoStorageAccess(p) => (
            format!("the keychain is locked or unreachable ({p})"),
            "unlock your login keyring, or start a Secret Service (gnome-keyring) in this D-Bus session",
        ),
        K::PlatformFailure(p) => (
            format!("the Secret Service failed ({p})"),
            "check that a Secret Service (gnome-keyring, KeePassXC) runs on the D-Bus session bus (DBUS_SESSION_BUS_ADDRESS)",
        ),
        K::NoEntry => (
            "the keychain has no such item".to_owned(),
            "it was removed outside secret; add the secret again",
        ),
        K::Ambiguous(items) => (
            format!("{} keychain items match", items.len()),
            "remove the duplicates with your keychain manager (seahorse, secret-tool)",
        ),
        K::BadEncoding(_) | K::BadDataFormat(..) => (
            "the keychain item is malformed".to_owned(),
            "set it again with secret rotate",
        ),
        other => (
            format!("keychain error: {}", kind_only(other)),
            "see the keychain's own logs",
        ),
    };
    Error::Keychain {
        message: format!("{doing}: {what}"),
        hint: hint.into(),
    }
}

fn kind_only(e: &keyring_core::Error) -> String {
    use keyring_core::Error as K;
    match e {
        K::BadEncoding(_) | K::BadDataFormat(..) => "malformed data".into(),
        other => other.to_string(),
    }
}

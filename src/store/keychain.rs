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
pub(crate) const SERVICE: &str = "secret";

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
pub(crate) struct Keychain {
    paths: Paths,
    keys: Keys,
    meta: MetaFile,
}

impl Keychain {
    /// Creates the root key in the keychain and an empty metadata file.
    pub(crate) fn create(paths: &Paths) -> Result<()> {
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
        let keys = Keys::from_root(root);
        crate::audit::use_key(&keys);
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
    pub(crate) fn open(paths: &Paths) -> Result<Self> {
        let path = paths.keychain_meta_file();
        let (store_id, bytes) = read_unverified(&path)?;
        let secret = items::get(&root_user(&store_id))
            .map_err(|e| keychain_error("reading the root key", &e))?;
        let root: [u8; KEY_LEN] = secret.as_slice().try_into().map_err(|_| Error::Keychain {
            message: "the keychain item holding secret's root key has the wrong length".into(),
            hint: "it was changed by another program; restore it or run `secret init` in a new SECRET_HOME".into(),
        })?;
        let keys = Keys::from_root(Key::from_bytes(Zeroizing::new(root)));
        crate::audit::use_key(&keys);
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
pub(crate) fn names_unverified(paths: &Paths) -> Result<Vec<String>> {
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
/// The calls are the freedesktop Secret Service API's, made directly with
/// the `dbus` crate. A locked item or collection is unlocked through the
/// service's prompt (its unlock dialog), which is waited for.
///
/// The session is the Secret Service's `plain` one: values cross the
/// session bus unencrypted, between our process and the keychain daemon,
/// both the user's own. The `dh-ietf1024` session would only hide them
/// from another process of the same user watching the bus, which could as
/// well ask the unlocked keychain for them; it needs Diffie-Hellman,
/// AES-CBC and HKDF (twelve crates with dbus-secret-service's).
#[cfg(target_os = "linux")]
mod items {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError, mpsc};
    use std::time::{Duration, Instant};

    use dbus::arg::{AppendAll, IterAppend, PropMap, RefArg, TypeMismatchError, Variant};
    use dbus::blocking::{BlockingSender, Connection};
    use dbus::message::MatchRule;
    use dbus::{Message, Path};
    use zeroize::Zeroizing;

    use super::{Failure, SERVICE};

    /// Where the Secret Service API lives on the session bus.
    const BUS_NAME: &str = "org.freedesktop.secrets";
    const SERVICE_PATH: &str = "/org/freedesktop/secrets";
    const SERVICE_IF: &str = "org.freedesktop.Secret.Service";
    const COLLECTION_IF: &str = "org.freedesktop.Secret.Collection";
    const ITEM_IF: &str = "org.freedesktop.Secret.Item";
    const PROMPT_IF: &str = "org.freedesktop.Secret.Prompt";
    /// The path the service returns for "no such object" (no prompt, no alias).
    const NONE: &str = "/";

    const CONTENT_TYPE: &str = "application/octet-stream";

    /// How long the service may take to answer one call.
    const CALL_TIMEOUT: Duration = Duration::from_secs(2);

    /// How long an unlock dialog may stay open before we dismiss it.
    const PROMPT_TIMEOUT: Duration = Duration::from_secs(600);

    /// The API's `Secret` struct, `(oayays)`: the session, the algorithm's
    /// parameters (none for `plain`), the value, its content type.
    type Secret<'a> = (Path<'a>, &'a [u8], &'a [u8], &'a str);

    /// A connection to the session bus and our `plain` session on it.
    struct Session {
        bus: Connection,
        path: Path<'static>,
    }

    /// Runs `f` with the session, opened on first use and kept for the process.
    fn with<T>(f: impl FnOnce(&Session) -> Result<T, Failure>) -> Result<T, Failure> {
        static SESSION: Mutex<Option<Session>> = Mutex::new(None);
        let mut guard = SESSION.lock().unwrap_or_else(PoisonError::into_inner);
        let session = match &mut *guard {
            Some(session) => session,
            empty @ None => empty.insert(Session::open()?),
        };
        f(session)
    }

    pub(super) fn get(user: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
        with(|session| {
            let item = session.find(user)?;
            // GetSecret: the item's secret, in our (plain) session.
            let reply = call(&session.bus, &item, ITEM_IF, "GetSecret", (&session.path,))?;
            read_secret(&reply)
        })
    }

    /// Replaces the secret of `user`'s item, or creates the item.
    pub(super) fn set(user: &str, value: &[u8]) -> Result<(), Failure> {
        with(|session| match session.find(user) {
            Ok(item) => {
                // SetSecret: replaces the item's secret.
                let secret = (session.secret(value),);
                call(&session.bus, &item, ITEM_IF, "SetSecret", secret).map(drop)
            }
            Err(Failure::NoEntry) => {
                // ReadAlias: the default collection, "/" if there is none.
                let alias = ("default",);
                let reply = call(&session.bus, SERVICE_PATH, SERVICE_IF, "ReadAlias", alias)?;
                let collection: Path<'_> = reply.read1()?;
                if &*collection == NONE {
                    return Err(Failure::Locked("there is no default collection".into()));
                }
                session.unlock(std::slice::from_ref(&collection))?;
                // CreateItem: the new item, or a prompt to create it through.
                let args = create_item_args(session.secret(value), user);
                let reply = call(&session.bus, &collection, COLLECTION_IF, "CreateItem", args)?;
                let (_, prompt): (Path<'_>, Path<'_>) = reply.read2()?;
                session.prompt(&prompt)
            }
            Err(e) => Err(e),
        })
    }

    pub(super) fn delete(user: &str) -> Result<(), Failure> {
        with(|session| {
            let item = session.find(user)?;
            // Delete: removes the item, or returns a prompt to remove it through.
            let prompt: Path<'_> = call(&session.bus, &item, ITEM_IF, "Delete", ())?.read1()?;
            session.prompt(&prompt)
        })
    }

    impl Session {
        fn open() -> Result<Self, Failure> {
            let bus = Connection::new_session()?;
            // OpenSession: a session whose secrets travel as they are.
            let args = ("plain", Variant(""));
            let reply = call(&bus, SERVICE_PATH, SERVICE_IF, "OpenSession", args)?;
            let (_, path): (Variant<Box<dyn RefArg>>, Path<'_>) = reply.read2()?;
            Ok(Self {
                bus,
                path: path.into_static(),
            })
        }

        fn secret<'a>(&'a self, value: &'a [u8]) -> Secret<'a> {
            (self.path.clone(), &[], value, CONTENT_TYPE)
        }

        /// The one item for `user`, unlocked (the Secret Service may prompt).
        fn find(&self, user: &str) -> Result<Path<'static>, Failure> {
            // SearchItems: the items with these attributes, unlocked and locked.
            let args = (attributes(user),);
            let reply = call(&self.bus, SERVICE_PATH, SERVICE_IF, "SearchItems", args)?;
            let (mut unlocked, locked): (Vec<Path<'static>>, Vec<Path<'static>>) = reply.read2()?;
            if !locked.is_empty() {
                self.unlock(&locked)?;
                unlocked.extend(locked);
            }
            match unlocked.len() {
                0 => Err(Failure::NoEntry),
                1 => Ok(unlocked.swap_remove(0)),
                n => Err(Failure::Ambiguous(n)),
            }
        }

        fn unlock(&self, objects: &[Path<'_>]) -> Result<(), Failure> {
            // Unlock: unlocks these items or collections (a no-op for those
            // already unlocked), or returns a prompt to unlock them through.
            let reply = call(&self.bus, SERVICE_PATH, SERVICE_IF, "Unlock", (objects,))?;
            let (_, prompt): (Vec<Path<'_>>, Path<'_>) = reply.read2()?;
            self.prompt(&prompt)
        }

        /// Shows the prompt at `prompt` (none if it is "/") and waits for the
        /// user's answer: a dismissed prompt leaves the keychain locked.
        fn prompt(&self, prompt: &Path<'_>) -> Result<(), Failure> {
            if &**prompt == NONE {
                return Ok(());
            }
            let (answered, answer) = mpsc::channel();
            let rule = MatchRule::new_signal(PROMPT_IF, "Completed")
                .with_sender(BUS_NAME)
                .with_path(prompt.clone().into_static());
            // AddMatch: the bus routes the prompt's Completed(dismissed, result) to us.
            let token = self
                .bus
                .add_match(rule, move |(dismissed,): (bool,), _: &_, _: &_| {
                    let _ = answered.send(dismissed);
                    true
                })?;
            // Prompt: shows the dialog ("": it has no parent window).
            let outcome = call(&self.bus, prompt, PROMPT_IF, "Prompt", ("",))
                .and_then(|_| self.await_answer(prompt, &answer));
            // RemoveMatch: no more signals from this prompt.
            let _ = self.bus.remove_match(token);
            outcome
        }

        fn await_answer(
            &self,
            prompt: &Path<'_>,
            answer: &mpsc::Receiver<bool>,
        ) -> Result<(), Failure> {
            let deadline = Instant::now() + PROMPT_TIMEOUT;
            loop {
                match answer.try_recv() {
                    Ok(false) => return Ok(()),
                    Ok(true) => {
                        return Err(Failure::Locked("the unlock prompt was dismissed".into()));
                    }
                    Err(mpsc::TryRecvError::Empty) => {}
                    Err(mpsc::TryRecvError::Disconnected) => {
                        return Err(Failure::Platform("the prompt's answer was lost".into()));
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Dismiss: closes the dialog nobody answered.
                    let _ = call(&self.bus, prompt, PROMPT_IF, "Dismiss", ());
                    return Err(Failure::Locked(format!(
                        "the unlock prompt was not answered within {} s",
                        PROMPT_TIMEOUT.as_secs()
                    )));
                }
                self.bus.process(left)?;
            }
        }
    }

    /// Calls `method` of `interface` on the service's object at `path` and
    /// waits for the reply.
    fn call<'p>(
        bus: &Connection,
        path: impl Into<Path<'p>>,
        interface: &str,
        method: &str,
        args: impl AppendAll,
    ) -> Result<Message, Failure> {
        let mut call = Message::new_method_call(BUS_NAME, path, interface, method)
            .map_err(Failure::Platform)?;
        args.append(&mut IterAppend::new(&mut call));
        Ok(bus.send_with_reply_and_block(call, CALL_TIMEOUT)?)
    }

    fn attributes(user: &str) -> HashMap<String, String> {
        HashMap::from([
            ("service".to_owned(), SERVICE.to_owned()),
            ("username".to_owned(), user.to_owned()),
        ])
    }

    /// The arguments of `CreateItem` for `user`'s item: its label and
    /// attributes, the secret, and `replace` (an item with the same
    /// attributes is overwritten).
    fn create_item_args<'a>(secret: Secret<'a>, user: &str) -> (PropMap, Secret<'a>, bool) {
        let label = format!("keyring:{user}@{SERVICE}");
        let properties = PropMap::from([
            (
                "org.freedesktop.Secret.Item.Label".to_owned(),
                Variant(Box::new(label) as Box<dyn RefArg>),
            ),
            (
                "org.freedesktop.Secret.Item.Attributes".to_owned(),
                Variant(Box::new(attributes(user)) as Box<dyn RefArg>),
            ),
        ]);
        (properties, secret, true)
    }

    /// The value in a `GetSecret` reply, copied straight from the message
    /// into a buffer that is wiped when dropped.
    fn read_secret(reply: &Message) -> Result<Zeroizing<Vec<u8>>, Failure> {
        let (_, _, value, _): Secret<'_> = reply.read1()?;
        Ok(Zeroizing::new(value.to_vec()))
    }

    impl From<dbus::Error> for Failure {
        fn from(e: dbus::Error) -> Self {
            Failure::Platform(format!("D-Bus error: {e}"))
        }
    }

    impl From<TypeMismatchError> for Failure {
        fn from(e: TypeMismatchError) -> Self {
            Failure::Platform(format!("unexpected reply from the Secret Service: {e}"))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn message(method: &str) -> Message {
            Message::new_method_call(BUS_NAME, SERVICE_PATH, ITEM_IF, method).expect("message")
        }

        const SESSION: &str = "/org/freedesktop/secrets/session/s7";

        #[test]
        fn create_item_sends_the_keyring_crates_layout() {
            let value: &[u8] = b"\x00sk\xff";
            let secret = (Path::from(SESSION), &[][..], value, CONTENT_TYPE);
            let mut call = message("CreateItem");
            create_item_args(secret, "id/h").append(&mut IterAppend::new(&mut call));
            // Read back as `a{sv}`, `(oayays)` and `b`, or fail.
            let (properties, secret, replace): (PropMap, Secret<'_>, bool) =
                call.read3().expect("read back");
            assert!(replace, "an item with the same attributes must be replaced");
            let label = properties["org.freedesktop.Secret.Item.Label"].0.as_str();
            assert_eq!(label, Some("keyring:id/h@secret"));
            let attributes = &properties["org.freedesktop.Secret.Item.Attributes"].0;
            let attributes: HashMap<String, String> = attributes
                .as_iter()
                .expect("a dict")
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .expect("strings")
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect();
            assert_eq!(attributes, super::attributes("id/h"));
            assert_eq!(attributes.len(), 2, "{attributes:?}");
            assert_eq!(secret, (Path::from(SESSION), &[][..], value, CONTENT_TYPE));
        }

        #[test]
        fn a_secret_reply_reads_back_byte_for_byte() {
            for value in [&b""[..], b"x", b"\xff\xfe\x00ab", &[7; 4096]] {
                let mut reply = message("GetSecret");
                let secret: Secret<'_> = (Path::from(SESSION), &[], value, "text/plain");
                reply = reply.append1(secret);
                assert_eq!(read_secret(&reply).expect("read").as_slice(), value);
            }
        }

        #[test]
        fn a_reply_of_another_shape_is_a_platform_failure() {
            for reply in [
                message("GetSecret"),
                message("GetSecret").append1("a string"),
                message("GetSecret").append1((Path::from(SESSION), "params", "value", "t")),
            ] {
                match read_secret(&reply) {
                    Err(Failure::Platform(message)) => {
                        assert!(message.contains("unexpected reply"), "{message}");
                    }
                    other => panic!("{:?}", other.map(|v| v.len())),
                }
            }
        }
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

//! The file vault: one encrypted file, the embedded default store. It owns
//! the on-disk format (documented in `docs/vault-format.md`), unlocking,
//! integrity checks and locked atomic writes. Cryptographic primitives come
//! from `crypto`; file mechanics from `fsio`.
//!
//! Every value is sealed with XChaCha20-Poly1305 under a subkey of a random
//! vault key, with the vault id, handle name and version as AAD. The vault key
//! is wrapped in key slots (today: one Argon2id passphrase slot). An HMAC
//! under another subkey commits to every byte of the file, so a removed,
//! reordered, truncated or edited entry is refused, not only a flipped bit.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, KdfParams, Key, MAC_LEN, NONCE_LEN, SALT_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::fsio;
use crate::handle::Handle;
use crate::paths::Paths;
use crate::store::{Backend, EntryMeta, Keys, Store, check_value, now};
use crate::value::{MAX_VALUE_LEN, SecretValue};

/// The first eight bytes of every vault file.
pub(crate) const MAGIC: &[u8; 8] = b"SECRETVT";
/// The format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;

const SLOT_PASSPHRASE: u8 = 1;
const KDF_ARGON2ID_13: u8 = 1;
const FINGERPRINT_LEN: usize = 8;
const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;

/// A key slot: one way to unwrap the vault key.
#[derive(Clone, Debug)]
enum Slot {
    Passphrase(PassphraseSlot),
    /// A slot kind this build does not know; kept as is on rewrite.
    Other {
        kind: u8,
        body: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
struct PassphraseSlot {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; WRAPPED_LEN],
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    version: u64,
    created: u64,
    rotated: u64,
    provider: String,
    kind: String,
    fingerprint: [u8; FINGERPRINT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl Entry {
    fn meta(&self) -> EntryMeta {
        EntryMeta {
            handle: self.name.clone(),
            provider: self.provider.clone(),
            kind: self.kind.clone(),
            fingerprint: crypto::hex(&self.fingerprint),
            created: self.created,
            rotated: (self.rotated != 0).then_some(self.rotated),
            version: self.version,
        }
    }
}

/// The decoded file. Entries are kept sorted by name.
#[derive(Clone, Debug)]
struct Contents {
    vault_id: [u8; 16],
    generation: u64,
    slots: Vec<Slot>,
    entries: Vec<Entry>,
}

/// An unlocked file vault.
pub(crate) struct Vault {
    path: PathBuf,
    paths: Paths,
    keys: Keys,
    contents: Contents,
}

impl Vault {
    /// Creates a new, empty vault protected by `passphrase`. Fails, changing
    /// nothing, if anything is at the vault's path. Atomic: the file appears
    /// whole (temp file, fsync, rename) or not at all, so it is the commit
    /// point of `init`: write config.toml and grants.toml first, call this
    /// last, and an `init` killed before it leaves no vault, so the next
    /// `init` simply runs again. Its record ("init", "committing") is in the
    /// trail before the vault exists.
    pub(crate) fn create(paths: &Paths, passphrase: &SecretValue, params: KdfParams) -> Result<()> {
        params.check_for_create()?;
        fsio::ensure_private_dir(&paths.data_dir)?;
        let _lock = fsio::lock_exclusive(&paths.lock_file())?;
        let path = paths.vault_file();
        // Anything there, even a dangling link, is not ours to replace.
        if path.symlink_metadata().is_ok() {
            return Err(Error::AlreadyInitialized { path });
        }
        let root = Key::generate()?;
        let vault_id = crypto::random()?;
        let slot = PassphraseSlot::wrap(&vault_id, &root, passphrase, params)?;
        let contents = Contents {
            vault_id,
            generation: 1,
            slots: vec![Slot::Passphrase(slot)],
            entries: Vec::new(),
        };
        let keys = Keys::from_root(root);
        crate::audit::use_key(&keys);
        let encoded = encode(&contents, &keys.commit);
        crate::audit::append(
            paths,
            &[crate::audit::Event {
                action: "init",
                consumer: "cli".into(),
                outcome: "committing (generation 1)".into(),
                ..crate::audit::Event::default()
            }],
        )?;
        fsio::write_atomic(&path, &encoded)?;
        record_generation(paths, &contents);
        Ok(())
    }

    /// Opens and unlocks the vault with the passphrase: one key derivation,
    /// then the whole file is checked against its commitment. No value is
    /// decrypted.
    pub(crate) fn open(paths: &Paths, passphrase: &SecretValue) -> Result<Self> {
        Self::open_with(paths, false, || {
            Ok(SecretValue::new(passphrase.expose().to_vec()))
        })
    }

    /// Opens with the unlock cache's key when it has one for this vault (no
    /// passphrase, no KDF), else with the passphrase `ask` returns.
    pub(crate) fn open_cached_or(
        paths: &Paths,
        ask: impl FnOnce() -> Result<SecretValue>,
    ) -> Result<Self> {
        Self::open_with(paths, true, ask)
    }

    fn open_with(
        paths: &Paths,
        use_cache: bool,
        ask: impl FnOnce() -> Result<SecretValue>,
    ) -> Result<Self> {
        let path = paths.vault_file();
        let bytes = read_vault_bytes(&path)?;
        if let Some(version) = newer_version(&bytes) {
            return Err(classify_newer(&path, &bytes, version, use_cache, ask));
        }
        let contents = decode(&bytes).map_err(|reason| Error::damaged(&path, reason))?;
        // A cached key counts only if it opens this very file (a vault
        // replaced under the same id falls back to the passphrase).
        let cached = use_cache
            .then(|| crate::unlock::cached(&contents.vault_id))
            .flatten()
            .map(Keys::from_root)
            .filter(|keys| verify_commitment(&path, &bytes, &keys.commit).is_ok());
        let keys = match cached {
            Some(keys) => keys,
            None => {
                let keys = Keys::from_root(unlock(&path, &contents, &ask()?)?);
                verify_commitment(&path, &bytes, &keys.commit)?;
                keys
            }
        };
        crate::audit::use_key(&keys);
        check_generation(paths, &contents, &keys);
        Ok(Self {
            path,
            paths: paths.clone(),
            keys,
            contents,
        })
    }

    /// The vault's random id.
    #[must_use]
    pub(crate) fn id(&self) -> &[u8; 16] {
        &self.contents.vault_id
    }

    /// The vault key, for the unlock cache.
    #[must_use]
    pub(crate) fn root_key(&self) -> &Key {
        &self.keys.root
    }

    /// Re-wraps the vault key under a new passphrase with a fresh salt, and
    /// the same cost parameters. Values are untouched.
    pub(crate) fn change_passphrase(&mut self, new: &SecretValue) -> Result<()> {
        let root = Key::from_bytes(Zeroizing::new(*self.keys.root.as_bytes()));
        self.modify("passwd", None, |contents, _| {
            let params = contents
                .slots
                .iter()
                .find_map(|s| match s {
                    Slot::Passphrase(p) => Some(p.params),
                    Slot::Other { .. } => None,
                })
                .unwrap_or(KdfParams::DEFAULT);
            let slot = PassphraseSlot::wrap(&contents.vault_id, &root, new, params)?;
            contents.slots.retain(|s| !matches!(s, Slot::Passphrase(_)));
            contents.slots.insert(0, Slot::Passphrase(slot));
            Ok(())
        })
    }

    /// Runs `change` on the newest contents under the writers' lock, then
    /// writes the result atomically with the next generation number. The
    /// change is audited *before* it is committed (`action` on `handle`,
    /// outcome "committing (generation N)"), so a command killed after the
    /// rename cannot leave a change without its record; the command adds
    /// the outcome after. If the record cannot be written, nothing changes.
    fn modify<T>(
        &mut self,
        action: &'static str,
        handle: Option<&Handle>,
        change: impl FnOnce(&mut Contents, &Keys) -> Result<T>,
    ) -> Result<T> {
        let _lock = fsio::lock_exclusive(&self.paths.lock_file())?;
        let bytes = read_vault(&self.path)?;
        verify_commitment(&self.path, &bytes, &self.keys.commit)?;
        let mut contents = decode(&bytes).map_err(|reason| Error::damaged(&self.path, reason))?;
        if contents.vault_id != self.contents.vault_id {
            return Err(Error::damaged(
                &self.path,
                "it was replaced by another vault while this command ran",
            ));
        }
        let out = change(&mut contents, &self.keys)?;
        // Writing on top of an older copy would bake the rollback in and
        // silence the warning: refuse, and say how to accept the copy.
        let seen = seen_generation(&self.paths, &contents.vault_id);
        if seen > contents.generation {
            return Err(Error::RolledBack {
                path: self.path.clone(),
                generation: contents.generation,
                seen,
                record: self.paths.generation_file(),
            });
        }
        contents.generation += 1;
        let encoded = encode(&contents, &self.keys.commit);
        crate::audit::append(
            &self.paths,
            &[crate::audit::Event {
                action,
                handle: handle.map(|h| h.name().to_owned()),
                consumer: "cli".into(),
                outcome: format!("committing (generation {})", contents.generation),
                ..crate::audit::Event::default()
            }],
        )?;
        fsio::write_atomic(&self.path, &encoded)?;
        record_generation(&self.paths, &contents);
        self.contents = contents;
        Ok(out)
    }

    fn seal(
        keys: &Keys,
        vault_id: &[u8; 16],
        entry: &mut Entry,
        value: &SecretValue,
    ) -> Result<()> {
        let aad = value_aad(vault_id, &entry.name, entry.version);
        let (nonce, ciphertext) = crypto::seal(&keys.value, &aad, value.expose())?;
        entry.nonce = nonce;
        entry.ciphertext = ciphertext;
        let fp = crypto::hmac(&keys.fingerprint, &[value.expose()]);
        entry.fingerprint.copy_from_slice(&fp[..FINGERPRINT_LEN]);
        Ok(())
    }
}

impl Store for Vault {
    fn backend(&self) -> Backend {
        Backend::File
    }

    /// Reads the file again with the keys already unlocked: the same
    /// checks as opening it (commitment, same vault, generation), no
    /// passphrase.
    fn refresh(&mut self) -> Result<()> {
        let bytes = read_vault(&self.path)?;
        verify_commitment(&self.path, &bytes, &self.keys.commit)?;
        let contents = decode(&bytes).map_err(|reason| Error::damaged(&self.path, reason))?;
        if contents.vault_id != self.contents.vault_id {
            return Err(Error::damaged(
                &self.path,
                "it was replaced by another vault since it was unlocked",
            ));
        }
        check_generation(&self.paths, &contents, &self.keys);
        self.contents = contents;
        Ok(())
    }

    fn list(&self) -> Result<Vec<EntryMeta>> {
        Ok(self.contents.entries.iter().map(Entry::meta).collect())
    }

    fn meta(&self, handle: &Handle) -> Result<EntryMeta> {
        find(&self.contents.entries, handle).map(|i| self.contents.entries[i].meta())
    }

    fn get(&self, handle: &Handle) -> Result<SecretValue> {
        let entry = &self.contents.entries[find(&self.contents.entries, handle)?];
        let aad = value_aad(&self.contents.vault_id, &entry.name, entry.version);
        crypto::open(&self.keys.value, &entry.nonce, &aad, &entry.ciphertext).ok_or_else(|| {
            Error::damaged(
                &self.path,
                format!("the value of {handle} fails authentication"),
            )
        })
    }

    fn add(
        &mut self,
        handle: &Handle,
        value: &SecretValue,
        provider: &str,
        kind: &str,
    ) -> Result<EntryMeta> {
        check_value(value)?;
        self.modify("add", Some(handle), |contents, keys| {
            let at = match find(&contents.entries, handle) {
                Ok(_) => {
                    return Err(Error::SecretExists {
                        handle: handle.clone(),
                    });
                }
                Err(_) => contents
                    .entries
                    .partition_point(|e| e.name.as_str() < handle.name()),
            };
            let mut entry = Entry {
                name: handle.name().to_owned(),
                version: 1,
                created: now(),
                rotated: 0,
                provider: provider.to_owned(),
                kind: kind.to_owned(),
                fingerprint: [0; FINGERPRINT_LEN],
                nonce: [0; NONCE_LEN],
                ciphertext: Vec::new(),
            };
            Self::seal(keys, &contents.vault_id, &mut entry, value)?;
            let meta = entry.meta();
            contents.entries.insert(at, entry);
            Ok(meta)
        })
    }

    fn rotate(&mut self, handle: &Handle, value: &SecretValue) -> Result<EntryMeta> {
        check_value(value)?;
        self.modify("rotate", Some(handle), |contents, keys| {
            let i = find(&contents.entries, handle)?;
            let vault_id = contents.vault_id;
            let entry = &mut contents.entries[i];
            entry.version += 1;
            entry.rotated = now();
            Self::seal(keys, &vault_id, entry, value)?;
            Ok(entry.meta())
        })
    }

    fn remove(&mut self, handle: &Handle) -> Result<EntryMeta> {
        self.modify("rm", Some(handle), |contents, _| {
            let i = find(&contents.entries, handle)?;
            Ok(contents.entries.remove(i).meta())
        })
    }
}

/// The handle names of the vault at `paths`, read without the key: they
/// are stored in the clear, but nothing vouches for them until the vault
/// is unlocked, so they serve only shell completion.
pub(crate) fn names_unverified(paths: &Paths) -> Result<Vec<String>> {
    let path = paths.vault_file();
    let bytes = read_vault(&path)?;
    let contents = decode(&bytes).map_err(|reason| Error::damaged(&path, reason))?;
    Ok(contents.entries.into_iter().map(|e| e.name).collect())
}

/// The vault id of an encoded vault, read without any key (for `lock`).
#[must_use]
pub(crate) fn vault_id(bytes: &[u8]) -> Option<[u8; 16]> {
    decode(bytes).ok().map(|c| c.vault_id)
}

fn find(entries: &[Entry], handle: &Handle) -> Result<usize> {
    entries
        .binary_search_by(|e| e.name.as_str().cmp(handle.name()))
        .map_err(|_| Error::no_such_secret(handle))
}

fn value_aad(vault_id: &[u8; 16], name: &str, version: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + name.len());
    aad.extend_from_slice(b"secret/v1/value\0");
    aad.extend_from_slice(vault_id);
    aad.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// The largest vault file read (100,000 entries take about 20 MiB).
pub(crate) const MAX_VAULT_LEN: u64 = 256 << 20;

fn read_vault_bytes(path: &Path) -> Result<Vec<u8>> {
    fsio::read_private_file(path, "the vault", MAX_VAULT_LEN, fsio::Readers::OwnerOnly)?.ok_or_else(
        || Error::NotInitialized {
            path: path.to_owned(),
        },
    )
}

/// Reads the vault; a newer format is reported before decoding.
fn read_vault(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_vault_bytes(path)?;
    match newer_version(&bytes) {
        Some(version) => Err(Error::NewerFormat {
            path: path.to_owned(),
            version,
        }),
        None => Ok(bytes),
    }
}

/// The format version, when it is newer than this build's.
fn newer_version(bytes: &[u8]) -> Option<u16> {
    if !bytes.starts_with(MAGIC) {
        return None;
    }
    let v = bytes.get(MAGIC.len()..MAGIC.len() + 2)?;
    let version = u16::from_be_bytes([v[0], v[1]]);
    (version > FORMAT_VERSION).then_some(version)
}

/// A file that says it is a newer format may be one, or a vault of this
/// format whose version bytes were damaged. A newer format's commitment
/// cannot be checked by this build; but if the file, read as this format,
/// unlocks and its commitment verifies, it is damage, and is called so.
fn classify_newer(
    path: &Path,
    bytes: &[u8],
    version: u16,
    use_cache: bool,
    ask: impl FnOnce() -> Result<SecretValue>,
) -> Error {
    let newer = Error::NewerFormat {
        path: path.to_owned(),
        version,
    };
    let mut patched = bytes.to_vec();
    patched[MAGIC.len()..MAGIC.len() + 2].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    let Ok(contents) = decode(&patched) else {
        return newer;
    };
    let key = use_cache
        .then(|| crate::unlock::cached(&contents.vault_id))
        .flatten()
        .or_else(|| {
            let passphrase = ask().ok()?;
            unlock(path, &contents, &passphrase).ok()
        });
    match key.map(Keys::from_root) {
        Some(keys) if verify_commitment(path, &patched, &keys.commit).is_ok() => Error::damaged(
            path,
            format!(
                "it has format version {version}, newer than this build reads, yet everything else is an intact version-{FORMAT_VERSION} vault whose commitment checks out as version {FORMAT_VERSION}: its version bytes were changed"
            ),
        ),
        _ => newer,
    }
}

impl PassphraseSlot {
    fn wrap(
        vault_id: &[u8; 16],
        root: &Key,
        passphrase: &SecretValue,
        params: KdfParams,
    ) -> Result<Self> {
        let salt = crypto::random()?;
        let kek = params.derive(passphrase.expose(), &salt)?;
        let aad = Self::aad(vault_id, params, &salt);
        let (nonce, ct) = crypto::seal(&kek, &aad, root.as_bytes())?;
        let wrapped = ct
            .try_into()
            .map_err(|_| Error::usage("wrapped key has an unexpected length"))?;
        Ok(Self {
            params,
            salt,
            nonce,
            wrapped,
        })
    }

    /// What the wrapped key authenticates: the fixed header and this slot's
    /// parameters and salt.
    fn aad(vault_id: &[u8; 16], params: KdfParams, salt: &[u8; SALT_LEN]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(MAGIC);
        aad.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        aad.extend_from_slice(vault_id);
        aad.push(SLOT_PASSPHRASE);
        aad.push(KDF_ARGON2ID_13);
        for n in [params.m_kib, params.t, params.p] {
            aad.extend_from_slice(&n.to_be_bytes());
        }
        aad.extend_from_slice(salt);
        aad
    }

    fn unwrap_key(&self, vault_id: &[u8; 16], passphrase: &SecretValue) -> Result<Option<Key>> {
        let kek = self.params.derive(passphrase.expose(), &self.salt)?;
        let aad = Self::aad(vault_id, self.params, &self.salt);
        Ok(
            crypto::open(&kek, &self.nonce, &aad, &self.wrapped).and_then(|v| {
                let bytes: [u8; KEY_LEN] = v.expose().try_into().ok()?;
                Some(Key::from_bytes(Zeroizing::new(bytes)))
            }),
        )
    }
}

/// Refuses to run a key derivation far above what `secret` creates,
/// unless `SECRET_ALLOW_EXPENSIVE_KDF=1` says the user means it.
fn check_cost(path: &Path, params: KdfParams) -> Result<()> {
    if !params.is_expensive()
        || std::env::var_os("SECRET_ALLOW_EXPENSIVE_KDF").is_some_and(|v| v == "1")
    {
        return Ok(());
    }
    let d = KdfParams::DEFAULT;
    Err(Error::UnsafeFile {
        path: path.to_owned(),
        problem: format!(
            "its passphrase slot asks for Argon2id with {} MiB and {} passes, more than {}x what secret creates ({} MiB, {} passes): one attempt could take minutes and that much memory",
            params.m_kib / 1024,
            params.t,
            KdfParams::EXPENSIVE_FACTOR,
            d.m_kib / 1024,
            d.t
        ),
        fix: "if you set this cost on purpose, allow it with SECRET_ALLOW_EXPENSIVE_KDF=1; otherwise the header was altered: restore the vault from a backup".into(),
    })
}

/// Unwraps the vault key from the first passphrase slot that opens.
fn unlock(path: &Path, header: &Contents, passphrase: &SecretValue) -> Result<Key> {
    let mut saw_slot = false;
    for slot in &header.slots {
        if let Slot::Passphrase(p) = slot {
            saw_slot = true;
            check_cost(path, p.params)?;
            if let Some(key) = p.unwrap_key(&header.vault_id, passphrase)? {
                return Ok(key);
            }
        }
    }
    if saw_slot {
        Err(Error::WrongPassphrase {
            path: path.to_owned(),
        })
    } else {
        Err(Error::damaged(path, "it has no passphrase key slot"))
    }
}

/// Checks the HMAC over the whole file; `bytes` has already decoded, so it
/// is long enough to hold a tag.
fn verify_commitment(path: &Path, bytes: &[u8], commit: &Key) -> Result<()> {
    if bytes.len() < MAC_LEN {
        return Err(Error::damaged(path, "it is truncated"));
    }
    let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    if !crypto::verify_hmac(commit, &[body], tag) {
        return Err(Error::damaged(
            path,
            "its contents do not match their commitment (an entry was edited, removed, reordered or the file was cut)",
        ));
    }
    Ok(())
}

fn encode(c: &Contents, commit: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + c.entries.len() * 160);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&c.vault_id);
    out.extend_from_slice(&c.generation.to_be_bytes());
    out.push(u8::try_from(c.slots.len()).unwrap_or(u8::MAX));
    for slot in &c.slots {
        let (kind, body) = match slot {
            Slot::Passphrase(p) => {
                let mut body = vec![KDF_ARGON2ID_13];
                for n in [p.params.m_kib, p.params.t, p.params.p] {
                    body.extend_from_slice(&n.to_be_bytes());
                }
                body.extend_from_slice(&p.salt);
                body.extend_from_slice(&p.nonce);
                body.extend_from_slice(&p.wrapped);
                (SLOT_PASSPHRASE, body)
            }
            Slot::Other { kind, body } => (*kind, body.clone()),
        };
        out.push(kind);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out.extend_from_slice(
        &u32::try_from(c.entries.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for e in &c.entries {
        put_str(&mut out, &e.name);
        out.extend_from_slice(&e.version.to_be_bytes());
        out.extend_from_slice(&e.created.to_be_bytes());
        out.extend_from_slice(&e.rotated.to_be_bytes());
        put_str(&mut out, &e.provider);
        put_str(&mut out, &e.kind);
        out.extend_from_slice(&e.fingerprint);
        out.extend_from_slice(&e.nonce);
        out.extend_from_slice(
            &u32::try_from(e.ciphertext.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&e.ciphertext);
    }
    let tag = crypto::hmac(commit, &[&out]);
    out.extend_from_slice(&tag);
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked cursor: every read can fail, none can panic.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("it is truncated (in {what})"));
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = usize::from(self.u8(what)?);
        String::from_utf8(self.take(n, what)?.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// Decodes the structure, with every length checked; the commitment is
/// checked by the caller once it has the key.
fn decode(bytes: &[u8]) -> Result<Contents, String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("it is not a secret vault (bad magic bytes)".into());
    }
    if bytes.len() < MAGIC.len() + 2 + MAC_LEN {
        return Err("it is truncated (in the header)".into());
    }
    let body = &bytes[..bytes.len() - MAC_LEN];
    let mut r = Reader {
        bytes: body,
        at: MAGIC.len(),
    };
    let version = r.u16("the format version")?;
    if version != FORMAT_VERSION {
        // Newer versions are reported before decoding (`read_vault`).
        return Err(format!(
            "it has format version {version}, which this build does not read"
        ));
    }
    let vault_id = r.array("the vault id")?;
    let generation = r.u64("the generation")?;
    let slot_count = r.u8("the key slots")?;
    let mut slots = Vec::new();
    for _ in 0..slot_count {
        let kind = r.u8("a key slot")?;
        let len = usize::from(r.u16("a key slot")?);
        let body = r.take(len, "a key slot")?;
        slots.push(if kind == SLOT_PASSPHRASE {
            Slot::Passphrase(decode_passphrase_slot(body)?)
        } else {
            Slot::Other {
                kind,
                body: body.to_vec(),
            }
        });
    }
    let count = r.u32("the entry count")?;
    let mut entries: Vec<Entry> = Vec::new();
    for i in 0..count {
        let what = format!("entry {}", i + 1);
        let name = r.string(&what)?;
        Handle::from_name(&name).map_err(|_| format!("{what} has an invalid handle name"))?;
        if entries.last().is_some_and(|prev| prev.name >= name) {
            return Err(format!("{what} is out of order or duplicated"));
        }
        let version = r.u64(&what)?;
        let created = r.u64(&what)?;
        let rotated = r.u64(&what)?;
        let provider = r.string(&what)?;
        let kind = r.string(&what)?;
        let fingerprint = r.array(&what)?;
        let nonce = r.array(&what)?;
        let len = r.u32(&what)? as usize;
        if len > MAX_VALUE_LEN + TAG_LEN {
            return Err(format!("{what} claims a value larger than 1 MiB"));
        }
        let ciphertext = r.take(len, &what)?.to_vec();
        entries.push(Entry {
            name,
            version,
            created,
            rotated,
            provider,
            kind,
            fingerprint,
            nonce,
            ciphertext,
        });
    }
    if r.at != body.len() {
        return Err("it has trailing bytes after the last entry".into());
    }
    Ok(Contents {
        vault_id,
        generation,
        slots,
        entries,
    })
}

fn decode_passphrase_slot(body: &[u8]) -> Result<PassphraseSlot, String> {
    let mut r = Reader { bytes: body, at: 0 };
    let alg = r.u8("the passphrase slot")?;
    if alg != KDF_ARGON2ID_13 {
        return Err(format!("its passphrase slot uses unknown KDF {alg}"));
    }
    let params = KdfParams {
        m_kib: r.u32("the passphrase slot")?,
        t: r.u32("the passphrase slot")?,
        p: r.u32("the passphrase slot")?,
    };
    params.check_for_open()?;
    let slot = PassphraseSlot {
        params,
        salt: r.array("the passphrase slot")?,
        nonce: r.array("the passphrase slot")?,
        wrapped: r.array("the passphrase slot")?,
    };
    if r.at != body.len() {
        return Err("its passphrase slot has trailing bytes".into());
    }
    Ok(slot)
}

/// Warns when the vault's generation is lower than one seen before: the file
/// may have been replaced by an older copy (a rollback). A writer that
/// committed between our read and our look at the record is not one: the
/// file is read again, and only a file that is still older (and authentic)
/// draws the warning.
fn check_generation(paths: &Paths, contents: &Contents, keys: &Keys) {
    let seen = seen_generation(paths, &contents.vault_id);
    if seen > contents.generation {
        let path = paths.vault_file();
        let on_disk = read_vault(&path).ok().and_then(|bytes| {
            verify_commitment(&path, &bytes, &keys.commit).ok()?;
            decode(&bytes)
                .ok()
                .filter(|c| c.vault_id == contents.vault_id)
                .map(|c| c.generation)
        });
        let now = on_disk.unwrap_or(contents.generation);
        if now >= seen {
            return;
        }
        eprintln!(
            "secret: warning: the vault at {} is at generation {now}, but generation {seen} was seen before: it may be an older copy (rolled back), so removed or rotated secrets may have come back",
            path.display(),
        );
    } else if seen < contents.generation
        && let Ok(_lock) = fsio::lock_exclusive(&paths.lock_file())
    {
        record_generation(paths, contents);
    }
}

/// The highest generation recorded for this vault (0 if none).
fn seen_generation(paths: &Paths, vault_id: &[u8; 16]) -> u64 {
    read_generation(paths)
        .filter(|(id, _)| id == vault_id)
        .map_or(0, |(_, generation)| generation)
}

fn read_generation(paths: &Paths) -> Option<([u8; 16], u64)> {
    let bytes = fsio::read_private_file(
        &paths.generation_file(),
        "the generation record",
        256,
        fsio::Readers::OwnerOnly,
    )
    .ok()??;
    let text = String::from_utf8(bytes).ok()?;
    let (id, generation) = text.trim().split_once(' ')?;
    let id: [u8; 16] = (0..16)
        .map(|i| u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?
        .try_into()
        .ok()?;
    Some((id, generation.parse().ok()?))
}

/// Records `contents.generation` as the highest seen, never lowering what
/// is recorded. The caller holds the writers' lock.
fn record_generation(paths: &Paths, contents: &Contents) {
    if seen_generation(paths, &contents.vault_id) >= contents.generation {
        return;
    }
    let text = format!(
        "{} {}\n",
        crypto::hex(&contents.vault_id),
        contents.generation
    );
    if fsio::ensure_private_dir(&paths.config_dir).is_ok() {
        let _ = fsio::write_atomic(&paths.generation_file(), text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Paths) {
        let dir = crate::fsio::private_tempdir();
        let paths = Paths {
            config_dir: dir.path().to_owned(),
            data_dir: dir.path().to_owned(),
            audit: None,
        };
        (dir, paths)
    }

    fn pass(s: &str) -> SecretValue {
        SecretValue::new(s.as_bytes().to_vec())
    }

    fn h(name: &str) -> Handle {
        Handle::from_name(name).expect("handle")
    }

    #[test]
    fn round_trip_add_rotate_remove() {
        let (_d, paths) = setup();
        Vault::create(&paths, &pass("pw"), KdfParams::TEST_ONLY).expect("create");
        let mut v = Vault::open(&paths, &pass("pw")).expect("open");
        v.add(&h("b"), &pass("B1"), "prov", "api_key").expect("add");
        v.add(&h("a"), &pass("A1"), "", "").expect("add");
        assert!(matches!(
            v.add(&h("a"), &pass("x"), "", ""),
            Err(Error::SecretExists { .. })
        ));
        let m = v.rotate(&h("b"), &pass("B2")).expect("rotate");
        assert_eq!(m.version, 2);
        assert!(m.rotated.is_some());
        let v = Vault::open(&paths, &pass("pw")).expect("reopen");
        assert_eq!(v.get(&h("b")).expect("get").expose(), b"B2");
        let names: Vec<_> = v
            .list()
            .expect("list")
            .into_iter()
            .map(|m| m.handle)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let mut v = v;
        v.remove(&h("a")).expect("rm");
        assert!(matches!(v.get(&h("a")), Err(Error::NoSuchSecret { .. })));
    }

    #[test]
    fn wrong_passphrase_is_refused() {
        let (_d, paths) = setup();
        Vault::create(&paths, &pass("pw"), KdfParams::TEST_ONLY).expect("create");
        assert!(matches!(
            Vault::open(&paths, &pass("nope")),
            Err(Error::WrongPassphrase { .. })
        ));
    }

    #[test]
    fn every_flipped_byte_is_refused_without_panic() {
        let (_d, paths) = setup();
        Vault::create(&paths, &pass("pw"), KdfParams::TEST_ONLY).expect("create");
        let mut v = Vault::open(&paths, &pass("pw")).expect("open");
        v.add(&h("k"), &pass("value-1"), "p", "k").expect("add");
        let good = std::fs::read(paths.vault_file()).expect("read");
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                std::fs::write(paths.vault_file(), &bad).expect("write");
                let opened = Vault::open(&paths, &pass("pw"));
                assert!(opened.is_err(), "byte {i} bit {bit:#x} was accepted");
            }
        }
        for len in 0..good.len() {
            std::fs::write(paths.vault_file(), &good[..len]).expect("write");
            assert!(
                Vault::open(&paths, &pass("pw")).is_err(),
                "truncated to {len}"
            );
        }
    }

    #[test]
    fn passphrase_change_keeps_values_and_fresh_salt() {
        let (_d, paths) = setup();
        Vault::create(&paths, &pass("old"), KdfParams::TEST_ONLY).expect("create");
        let mut v = Vault::open(&paths, &pass("old")).expect("open");
        v.add(&h("k"), &pass("value"), "", "").expect("add");
        let before = std::fs::read(paths.vault_file()).expect("read");
        v.change_passphrase(&pass("new")).expect("passwd");
        let after = std::fs::read(paths.vault_file()).expect("read");
        assert_ne!(before[..80], after[..80], "salt and wrap must change");
        assert!(matches!(
            Vault::open(&paths, &pass("old")),
            Err(Error::WrongPassphrase { .. })
        ));
        let v = Vault::open(&paths, &pass("new")).expect("open new");
        assert_eq!(v.get(&h("k")).expect("get").expose(), b"value");
    }
}

//! Cryptography, composed from RustCrypto parts and nothing of our own:
//! Argon2id to turn a passphrase into a key-encryption key, XChaCha20-Poly1305
//! for every value and wrapped key, HMAC-SHA-256 as a PRF for subkeys, the
//! entry-set commitment and fingerprints. It knows nothing of files.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::value::SecretValue;

pub(crate) const KEY_LEN: usize = 32;
pub(crate) const SALT_LEN: usize = 16;
pub(crate) const NONCE_LEN: usize = 24;
pub(crate) const TAG_LEN: usize = 16;
pub(crate) const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Fills `N` bytes from the operating system's CSPRNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(|e| {
        Error::io(
            "reading the system random number generator",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(out)
}

/// A 256-bit symmetric key, wiped on drop.
pub(crate) struct Key(Zeroizing<[u8; KEY_LEN]>);

impl Key {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self(Zeroizing::new(random()?)))
    }

    #[must_use]
    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }

    #[must_use]
    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// An independent key for each purpose: HMAC-SHA-256(self, label),
    /// with the HMAC keyed once for all of them (a launch derives four;
    /// keying is half of each one's work).
    #[must_use]
    pub(crate) fn subkeys<const N: usize>(&self, labels: [&str; N]) -> [Self; N] {
        let keyed = <HmacSha256 as Mac>::new_from_slice(self.as_bytes())
            .expect("HMAC takes any key length");
        labels.map(|label| {
            let mut mac = keyed.clone();
            mac.update(label.as_bytes());
            Self(Zeroizing::new(mac.finalize().into_bytes().into()))
        })
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

/// Argon2id cost parameters, stored in the vault header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended option: 64 MiB, 3 passes, 4 lanes.
    pub(crate) const DEFAULT: Self = Self {
        m_kib: 64 * 1024,
        t: 3,
        p: 4,
    };
    /// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    pub(crate) const FLOOR: Self = Self {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };
    /// Far below the floor, for tests that make many vaults. Only debug
    /// builds create it (`SECRET_TEST_FAST_KDF=1`).
    pub(crate) const TEST_ONLY: Self = Self {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    /// A stored cost more than this many times `DEFAULT`'s memory or
    /// passes is run only when the user allows it
    /// (`SECRET_ALLOW_EXPENSIVE_KDF=1`): within the caps below, a header
    /// can still ask for 4 GiB and t=16, over a minute per attempt.
    pub(crate) const EXPENSIVE_FACTOR: u32 = 4;

    /// Whether running these parameters costs far more than `DEFAULT`.
    #[must_use]
    pub(crate) fn is_expensive(self) -> bool {
        self.m_kib > Self::DEFAULT.m_kib.saturating_mul(Self::EXPENSIVE_FACTOR)
            || self.t > Self::DEFAULT.t.saturating_mul(Self::EXPENSIVE_FACTOR)
    }

    /// Caps on open, so a crafted header cannot exhaust memory or time.
    pub(crate) const MAX_M_KIB: u32 = 4 * 1024 * 1024;
    pub(crate) const MAX_T: u32 = 16;
    pub(crate) const MAX_P: u32 = 16;

    /// Checks a header's parameters before they cost anything.
    pub(crate) fn check_for_open(self) -> std::result::Result<(), String> {
        if self.m_kib > Self::MAX_M_KIB || self.t > Self::MAX_T || self.p > Self::MAX_P {
            return Err(format!(
                "its key-derivation parameters (m={} KiB, t={}, p={}) exceed the caps (4 GiB, t=16, p=16)",
                self.m_kib, self.t, self.p
            ));
        }
        if self.t == 0 || self.p == 0 || self.m_kib < 8 * self.p {
            return Err(format!(
                "its key-derivation parameters (m={} KiB, t={}, p={}) are not valid Argon2id parameters",
                self.m_kib, self.t, self.p
            ));
        }
        Ok(())
    }

    /// Checks parameters for a new vault or a new passphrase slot.
    pub(crate) fn check_for_create(self) -> Result<()> {
        self.check_for_open().map_err(Error::usage)?;
        let test_only = self == Self::TEST_ONLY && cfg!(debug_assertions);
        if !test_only && (self.m_kib < Self::FLOOR.m_kib || self.t < Self::FLOOR.t) {
            return Err(Error::usage(format!(
                "Argon2id parameters m={} KiB, t={} are below the OWASP minimum (m=19456 KiB, t=2)",
                self.m_kib, self.t
            )));
        }
        Ok(())
    }

    /// Derives a key-encryption key from a passphrase.
    ///
    /// The memory the passes fill (`m_kib`, 1 KiB a block) is ours, not
    /// argon2's (its `alloc` feature pulls in password-hash and
    /// rand_core): a failed allocation is an error rather than an abort,
    /// and the blocks, from which the key can be recomputed, are wiped
    /// before they are freed.
    pub(crate) fn derive(self, passphrase: &[u8], salt: &[u8; SALT_LEN]) -> Result<Key> {
        let params = Params::new(self.m_kib, self.t, self.p, Some(KEY_LEN))
            .map_err(|e| Error::usage(format!("invalid Argon2id parameters: {e}")))?;
        let count = params.block_count();
        let mut memory = Zeroizing::new(Vec::new());
        memory.try_reserve_exact(count).map_err(|_| {
            Error::io(
                format!("allocating {} KiB for the key derivation", self.m_kib),
                std::io::ErrorKind::OutOfMemory.into(),
            )
        })?;
        memory.resize(count, Block::default());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(passphrase, salt, out.as_mut(), memory.as_mut_slice())
            .map_err(|e| Error::usage(format!("key derivation failed: {e}")))?;
        Ok(Key(out))
    }
}

/// Encrypts `plaintext` under `key` with a fresh random nonce, binding `aad`.
pub(crate) fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    let nonce: [u8; NONCE_LEN] = random()?;
    let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::usage("encryption failed"))?;
    Ok((nonce, ct))
}

/// Decrypts and authenticates; `None` when the key, nonce, AAD or
/// ciphertext is wrong. The plaintext goes straight into a wiping buffer.
#[must_use]
pub(crate) fn open(
    key: &Key,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct: &[u8],
) -> Option<SecretValue> {
    let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(SecretValue::new)
}

/// HMAC-SHA-256 over the concatenation of `parts`.
#[must_use]
pub(crate) fn hmac(key: &Key, parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time check of an HMAC-SHA-256 tag.
#[must_use]
pub(crate) fn verify_hmac(key: &Key, parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(tag).is_ok()
}

/// A keyed fingerprint of a value: recognisable across rotations by whoever
/// holds the store, not guessable offline. 16 hex digits.
#[must_use]
pub(crate) fn fingerprint(key: &Key, value: &SecretValue) -> String {
    hex(&hmac(key, &[value.expose()])[..8])
}

/// SHA-256 as lowercase hex (the audit trail's chain).
#[must_use]
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

#[must_use]
pub(crate) fn hex(bytes: &[u8]) -> String {
    // A table, not `write!("{b:02x}")`: a launch hexes a few hundred bytes
    // (audit MACs, fingerprints) and the formatter cost 300 instructions each.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0x10, 0xa5, 0xff]), "000f10a5ff");
        let all: Vec<u8> = (0..=255).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), want);
    }

    #[test]
    fn seal_binds_the_aad() {
        let key = Key::generate().expect("key");
        let (nonce, ct) = seal(&key, b"vault|a|1", b"value").expect("seal");
        assert_eq!(
            open(&key, &nonce, b"vault|a|1", &ct)
                .expect("open")
                .expose(),
            b"value"
        );
        assert!(open(&key, &nonce, b"vault|b|1", &ct).is_none());
        assert!(open(&Key::generate().expect("key"), &nonce, b"vault|a|1", &ct).is_none());
    }

    #[test]
    fn subkeys_differ_by_label_and_fingerprints_by_key() {
        let key = Key::generate().expect("key");
        let [a, b] = key.subkeys(["a", "b"]);
        assert_ne!(a.as_bytes(), b.as_bytes());
        // Each is HMAC(key, label), whatever else is derived with it (the
        // vault format depends on it).
        assert_eq!(a.as_bytes(), &hmac(&key, &[b"a"]));
        assert_eq!(b.as_bytes(), &key.subkeys(["b"])[0].0[..]);
        let [fp_key, other] = key.subkeys(["fp", "other"]);
        let v = SecretValue::new(b"sk-1".to_vec());
        let fp = fingerprint(&fp_key, &v);
        assert_eq!(fp.len(), 16);
        assert_eq!(fp, fingerprint(&key.subkeys(["fp"])[0], &v));
        assert_ne!(fp, fingerprint(&other, &v));
    }

    #[test]
    fn parameters_are_checked() {
        assert!(KdfParams::DEFAULT.check_for_create().is_ok());
        assert!(KdfParams::FLOOR.check_for_create().is_ok());
        let weak = KdfParams {
            m_kib: 8192,
            t: 2,
            p: 1,
        };
        assert!(weak.check_for_create().is_err());
        assert!(weak.check_for_open().is_ok());
        let huge = KdfParams {
            m_kib: KdfParams::MAX_M_KIB + 1,
            t: 1,
            p: 1,
        };
        assert!(huge.check_for_open().is_err());
        assert!(
            KdfParams {
                m_kib: 64,
                t: 17,
                p: 1
            }
            .check_for_open()
            .is_err()
        );
        assert!(
            KdfParams {
                m_kib: 1024,
                t: 1,
                p: 17
            }
            .check_for_open()
            .is_err()
        );
    }

    /// Known answers: what `derive` gave before its memory came from us
    /// (argon2's `alloc` feature), one lane and four. A change in them
    /// means no existing vault opens.
    #[test]
    fn derive_known_answers() {
        let salt = [7; SALT_LEN];
        let pass = b"correct horse battery staple";
        let one_lane = KdfParams::TEST_ONLY.derive(pass, &salt).expect("derive");
        assert_eq!(
            hex(one_lane.as_bytes()),
            "96a88be15c9689b19b1453a1b6a93f5c630c5adf3fde1bd9ad08ceb8e81ada54"
        );
        let four_lanes = KdfParams {
            m_kib: 128,
            t: 2,
            p: 4,
        }
        .derive(pass, &salt)
        .expect("derive");
        assert_eq!(
            hex(four_lanes.as_bytes()),
            "5cb8e458e716c4f8a117c8f1b8475f77e0298c720bef28e8efba14507ed70a5d"
        );
    }

    #[test]
    fn derive_depends_on_passphrase_and_salt() {
        let p = KdfParams::TEST_ONLY;
        let a = p.derive(b"one", &[1; SALT_LEN]).expect("derive");
        let b = p.derive(b"two", &[1; SALT_LEN]).expect("derive");
        let c = p.derive(b"one", &[2; SALT_LEN]).expect("derive");
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), c.as_bytes());
        assert_eq!(
            a.as_bytes(),
            p.derive(b"one", &[1; SALT_LEN]).expect("derive").as_bytes()
        );
    }
}

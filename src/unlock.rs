//! The unlock cache: `secret unlock --for 15m` keeps the vault key in the
//! kernel's per-user keyring (`@u`) with a timeout, so launches skip the
//! passphrase and the Argon2id cost until it expires or `secret lock` drops
//! it. The key is readable by processes of the same user (as an ssh-agent
//! would be) and by root; it never touches a disk. This module owns only the
//! keyring calls; the vault decides when to use them.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::crypto::{KEY_LEN, Key};
use crate::error::{Error, Result};

/// The longest an unlock may last.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

fn description(vault_id: &[u8; 16]) -> String {
    format!("secret:vault:{}", crate::crypto::hex(vault_id))
}

#[cfg(target_os = "linux")]
mod imp {
    use linux_keyutils::{KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};

    use super::{Duration, Error, KEY_LEN, Key, Result, Zeroizing, description};

    fn user_keyring(create: bool) -> Option<KeyRing> {
        KeyRing::from_special_id(KeyRingIdentifier::User, create).ok()
    }

    /// The cached key for this vault, if any (expired keys are gone).
    pub fn cached(vault_id: &[u8; 16]) -> Option<Key> {
        let key = user_keyring(false)?.search(&description(vault_id)).ok()?;
        let mut buf = Zeroizing::new([0u8; KEY_LEN + 1]);
        let n = key.read(&mut *buf).ok()?;
        if n != KEY_LEN {
            return None;
        }
        let mut root = Zeroizing::new([0u8; KEY_LEN]);
        root.copy_from_slice(&buf[..KEY_LEN]);
        Some(Key::from_bytes(root))
    }

    /// Stores `root` for `ttl`, readable by this user only.
    pub fn store(vault_id: &[u8; 16], root: &Key, ttl: Duration) -> Result<()> {
        let fail = |what: &str, e: linux_keyutils::KeyError| Error::Keychain {
            message: format!("caching the vault key in the kernel keyring: {what}: {e:?}"),
            hint:
                "check that the kernel keyring works here (keyctl show @u); unlocking is optional"
                    .into(),
        };
        let ring = user_keyring(true).ok_or_else(|| Error::Keychain {
            message: "the kernel's user keyring is not available".into(),
            hint: "unlocking needs Linux keyrings (keyctl show @u); without it, every launch asks for the passphrase".into(),
        })?;
        let key = ring
            .add_key(&description(vault_id), root.as_bytes())
            .map_err(|e| fail("add", e))?;
        let perms = KeyPermissionsBuilder::builder()
            .posessor(Permission::ALL)
            .user(Permission::VIEW | Permission::READ | Permission::SEARCH)
            .build();
        key.set_perms(perms).map_err(|e| fail("permissions", e))?;
        let secs = usize::try_from(ttl.as_secs().max(1)).unwrap_or(usize::MAX);
        key.set_timeout(secs).map_err(|e| fail("timeout", e))?;
        Ok(())
    }

    /// Drops the cached key. Returns whether there was one.
    pub fn forget(vault_id: &[u8; 16]) -> bool {
        let Some(ring) = user_keyring(false) else {
            return false;
        };
        match ring.search(&description(vault_id)) {
            Ok(key) => {
                let _ = key.invalidate();
                let _ = ring.unlink_key(key);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{Duration, Error, Key, Result};

    pub fn cached(_: &[u8; 16]) -> Option<Key> {
        None
    }

    pub fn store(_: &[u8; 16], _: &Key, _: Duration) -> Result<()> {
        Err(Error::usage("secret unlock needs Linux kernel keyrings"))
    }

    pub fn forget(_: &[u8; 16]) -> bool {
        false
    }
}

pub use imp::{cached, forget, store};

/// Parses `--for 15m` (humantime syntax), capped at 24 hours.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("\"{text}\" is not a duration like 15m or 2h ({e})"))?;
    if d.is_zero() || d > MAX_DURATION {
        return Err(format!("\"{text}\" must be more than 0 and at most 24h"));
    }
    Ok(d)
}

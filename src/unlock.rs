//! The unlock cache: `secret unlock --for 15m` keeps the vault key in the
//! kernel keyring with a timeout, so launches skip the passphrase and the
//! Argon2id cost until it expires or `secret lock` drops it. It never
//! touches a disk. This module owns only the keyring calls; the vault
//! decides when to use them, and the launch path calls `isolate_children`.
//!
//! Who can read the key is decided by the kernel's *possession* rule
//! (keyrings(7)): a process possesses a key it can reach by searching from
//! its own session keyring. So:
//!
//! - the key lives in the **session keyring** `secret unlock` ran in (the
//!   login session's, or the per-user default session keyring `@us` when
//!   there is none), never in `@u`, with permissions for its possessor only:
//!   a same-user process that does not possess it cannot read, search, link
//!   or even see it;
//! - that session keyring loses the *user* link, search, write and setattr
//!   permissions (its possessors keep theirs), so a process outside the
//!   session cannot link it into its own keyrings or join it by name to
//!   gain possession, and cannot give those permissions back;
//! - before it starts any child, `secret` moves itself into a fresh,
//!   empty anonymous session keyring (`isolate_children`), so every child
//!   starts possessing nothing. Linking `@u` gains it nothing: the key is
//!   not there.
//!
//! What is not covered (said in the README's threat model): root; another
//! process of the same session that was not started by `secret`; a child
//! that gets a process started outside `secret`'s tree (a cron job,
//! `systemd-run --user`, `ssh localhost`) in a session that possesses the
//! key.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::crypto::{KEY_LEN, Key};
use crate::error::{Error, Result};

/// The longest an unlock may last.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

fn description(vault_id: &[u8; 16]) -> String {
    format!("secret:vault:{}", crate::crypto::hex(vault_id))
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::OnceLock;

    use linux_keyutils::{
        Key as KernelKey, KeyPermissions, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier,
        KeySerialId, Permission,
    };
    use nix::errno::Errno;
    use nix::libc::{self, c_int, c_long};

    use super::{Duration, Error, KEY_LEN, Key, Result, Zeroizing, description};

    const KEYCTL_GET_KEYRING_ID: c_int = 0;
    const KEYCTL_JOIN_SESSION_KEYRING: c_int = 1;
    const KEYCTL_LINK: c_int = 8;
    const KEYCTL_SESSION_TO_PARENT: c_int = 18;
    const KEY_SPEC_USER_SESSION_KEYRING: c_long = -5;
    const KEY_SPEC_PROCESS_KEYRING: c_long = -2;
    const KEY_SPEC_SESSION_KEYRING: c_long = -3;
    /// The user bits a session keyring keeps: view and list its contents.
    const USER_KEEP: u32 = ((Permission::VIEW.bits() | Permission::READ.bits()) as u32) << 16;
    const USER_MASK: u32 = 0xff << 16;

    /// The session keyring this process started in, once
    /// `isolate_children` has left it (it stays possessed through the
    /// process keyring, which no child inherits).
    static ANCHOR: OnceLock<i32> = OnceLock::new();

    /// keyctl(2) with integer arguments only.
    #[allow(unsafe_code)]
    fn keyctl(op: c_int, a: c_long, b: c_long) -> std::result::Result<c_long, Errno> {
        // SAFETY: every operation used here takes serial numbers, flags or
        // a null name pointer (0) as arguments, so the kernel reads no
        // memory of ours; the result is checked.
        let r = unsafe { libc::syscall(libc::SYS_keyctl, op, a, b) };
        if r < 0 { Err(Errno::last()) } else { Ok(r) }
    }

    /// The session keyring the cache lives in, as a serial number.
    fn anchor_id() -> Option<i32> {
        if let Some(id) = ANCHOR.get() {
            return Some(*id);
        }
        let id = keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0).ok()?;
        i32::try_from(id).ok()
    }

    /// Where a search for the cached key starts: the session keyring, or
    /// after isolation the process keyring that still links it.
    fn search_root() -> Option<KeyRing> {
        let id = if ANCHOR.get().is_some() {
            KeyRingIdentifier::Process
        } else {
            KeyRingIdentifier::Session
        };
        KeyRing::from_special_id(id, false).ok()
    }

    /// The cached key for this vault, if this process possesses one.
    pub(crate) fn cached(vault_id: &[u8; 16]) -> Option<Key> {
        let key = search_root()?.search(&description(vault_id)).ok()?;
        let mut buf = Zeroizing::new([0u8; KEY_LEN + 1]);
        let n = key.read(&mut *buf).ok()?;
        if n != KEY_LEN {
            return None;
        }
        let mut root = Zeroizing::new([0u8; KEY_LEN]);
        root.copy_from_slice(&buf[..KEY_LEN]);
        Some(Key::from_bytes(root))
    }

    fn keychain_error(what: &str, e: impl std::fmt::Debug) -> Error {
        Error::Keychain {
            message: format!("caching the vault key in the kernel keyring: {what}: {e:?}"),
            hint:
                "check that the kernel keyring works here (keyctl show @s); unlocking is optional"
                    .into(),
        }
    }

    /// A session keyring only this session possesses. The per-user
    /// session keyring (`@us`, what a process without a session keyring
    /// uses) will not do: every process of the user may name it and so
    /// possesses it. Then a new session keyring is made and handed to the
    /// calling program (a shell), as `keyctl new_session` does, so the
    /// commands it runs next find the key.
    fn own_session(anchor: i32) -> Result<i32> {
        let user_session = keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_SESSION_KEYRING, 0)
            .map_err(|e| keychain_error("finding the user session keyring", e))?;
        if c_long::from(anchor) != user_session {
            return Ok(anchor);
        }
        let fresh = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0)
            .map_err(|e| keychain_error("making a session keyring", e))?;
        keyctl(KEYCTL_SESSION_TO_PARENT, 0, 0).map_err(|e| Error::Keychain {
            message: format!(
                "there is no session keyring to keep the key in, and the program that ran secret cannot be given one ({e})"
            ),
            hint: "run secret unlock from a shell, or start a session keyring first: keyctl session - bash".into(),
        })?;
        i32::try_from(fresh).map_err(|e| keychain_error("session keyring id", e))
    }

    /// Takes the user's link, search, write and setattr rights (and all of
    /// group's and others') off the session keyring: only its possessors
    /// may reach into it, and nobody else can give those rights back.
    fn harden(anchor: i32) -> Result<()> {
        let ring = KernelKey::from_id(KeySerialId::new(anchor));
        let perms = ring
            .metadata()
            .map_err(|e| keychain_error("reading the session keyring", e))?
            .get_perms()
            .bits();
        let want = (perms & !USER_MASK & !0xffff) | (perms & USER_KEEP);
        if want != perms {
            ring.set_perms(KeyPermissions::from_u32(want))
                .map_err(|e| keychain_error("restricting the session keyring", e))?;
        }
        Ok(())
    }

    /// Stores `root` for `ttl` in this session's keyring, for its
    /// possessors only.
    pub(crate) fn store(vault_id: &[u8; 16], root: &Key, ttl: Duration) -> Result<()> {
        let anchor = anchor_id().ok_or_else(|| Error::Keychain {
            message: "the kernel's session keyring is not available".into(),
            hint: "unlocking needs Linux keyrings (keyctl show @s); without it, every launch asks for the passphrase".into(),
        })?;
        let anchor = own_session(anchor)?;
        harden(anchor)?;
        forget(vault_id);
        // Made in our own process keyring with a placeholder, restricted,
        // filled, then linked where the next launch finds it: the value is
        // never in a key another process could read.
        let scratch = KeyRing::from_special_id(KeyRingIdentifier::Process, true)
            .map_err(|e| keychain_error("process keyring", e))?;
        let key = scratch
            .add_key(&description(vault_id), &[0u8; KEY_LEN])
            .map_err(|e| keychain_error("add", e))?;
        let perms = KeyPermissionsBuilder::builder()
            .posessor(Permission::ALL)
            .build();
        let secs = usize::try_from(ttl.as_secs().max(1)).unwrap_or(usize::MAX);
        let filled = key
            .set_perms(perms)
            .map_err(|e| keychain_error("permissions", e))
            .and_then(|()| {
                key.update(root.as_bytes())
                    .map_err(|e| keychain_error("write", e))
            })
            .and_then(|()| {
                key.set_timeout(secs)
                    .map_err(|e| keychain_error("timeout", e))
            })
            .and_then(|()| {
                keyctl(KEYCTL_LINK, key.get_id().as_raw_id().into(), anchor.into())
                    .map_err(|e| keychain_error("link", e))
            });
        let _ = scratch.unlink_key(key);
        if filled.is_err() {
            let _ = key.invalidate();
        }
        filled.map(|_| ())
    }

    /// Drops the cached key (and one an older build left in `@u`). Returns
    /// whether there was one.
    pub(crate) fn forget(vault_id: &[u8; 16]) -> bool {
        let mut had = false;
        let user = KeyRing::from_special_id(KeyRingIdentifier::User, false).ok();
        for ring in [search_root(), user].into_iter().flatten() {
            for _ in 0..8 {
                let Ok(key) = ring.search(&description(vault_id)) else {
                    break;
                };
                let _ = key.invalidate();
                had = true;
            }
        }
        had
    }

    /// Moves this process into a new, empty anonymous session keyring, so
    /// no child it starts (nor a program it execs) possesses any key; it
    /// keeps the session it started in through its process keyring, which
    /// children do not inherit and `execve` discards. Call it once, before
    /// any thread or child exists (a session keyring is per thread).
    /// Fails only when keyrings work here and the move failed.
    pub(crate) fn isolate_children() -> Result<()> {
        if ANCHOR.get().is_some() {
            return Ok(());
        }
        let anchor = match keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) {
            Ok(id) => i32::try_from(id).unwrap_or(0),
            // No keyrings here (not built in, or blocked by a seccomp
            // profile): there is no cache to protect.
            Err(Errno::ENOSYS | Errno::EPERM | Errno::EACCES) => return Ok(()),
            Err(e) => return Err(isolation_failed(e)),
        };
        keyctl(KEYCTL_LINK, anchor.into(), KEY_SPEC_PROCESS_KEYRING)
            .and_then(|_| keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0))
            .map_err(isolation_failed)?;
        let _ = ANCHOR.set(anchor);
        Ok(())
    }

    fn isolation_failed(errno: Errno) -> Error {
        Error::Keychain {
            message: format!(
                "cannot start commands in a fresh session keyring ({errno}), so they could read the unlock cache"
            ),
            hint: "free some kernel keys (keyctl show), or run `secret lock` first".into(),
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

    pub fn isolate_children() -> Result<()> {
        Ok(())
    }
}

pub(crate) use imp::{cached, forget, isolate_children, store};

/// Parses `--for 15m` (durations like 30s, 5m, 1h30m), capped at 24 hours.
pub(crate) fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let shown = text.escape_default();
    match crate::duration::parse(text) {
        Ok(d) if !d.is_zero() && d <= MAX_DURATION => Ok(d),
        Ok(_) | Err(crate::duration::Error::OverMaximum) => {
            Err(format!("\"{shown}\" must be more than 0 and at most 24h"))
        }
        Err(e) => Err(format!(
            "\"{shown}\" is not a duration like 15m or 2h ({e})"
        )),
    }
}

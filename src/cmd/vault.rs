//! `secret init | unlock | lock | passwd`: creating the store and managing
//! the vault's passphrase and unlock cache.

use std::time::Duration;

use super::context::{Context, print};
use crate::audit::Event;
use crate::crypto::KdfParams;
use crate::error::{Error, Result};
use crate::fsio;
use crate::grants;
use crate::store::keychain::Keychain;
use crate::store::vault::Vault;
use crate::store::{self, Backend};
use crate::unlock;

/// `secret init [--backend B]`: a default grants.toml, the store, then
/// config.toml. The store is the commit point: grants.toml is written
/// before it, so an init killed at any moment leaves either no store (and
/// the next `init` completes the job) or a store that works, never one
/// that denies everything and refuses a new `init`. config.toml comes
/// after the store, so a store that could not be made changes no backend
/// (and a missing backend means the file vault, which is then complete).
pub(crate) fn init(ctx: &Context, backend: Backend) -> Result<u8> {
    let paths = ctx.paths()?;
    let location = match backend {
        Backend::File => paths.vault_file(),
        Backend::Keychain => paths.keychain_meta_file(),
    };
    // Checked again under the store's lock; here so that an init refused
    // for an existing store writes nothing at all.
    if location.symlink_metadata().is_ok() {
        return Err(Error::AlreadyInitialized { path: location });
    }
    // Everything that can refuse (the passphrase, the KDF parameters)
    // before anything is written.
    let vault = match backend {
        Backend::File => Some((ctx.sources.for_new_vault()?, new_vault_params()?)),
        Backend::Keychain => None,
    };
    fsio::ensure_private_dir(&paths.config_dir)?;
    let grants_file = paths.config_dir.join("grants.toml");
    if !grants_file.exists() {
        fsio::write_atomic(&grants_file, grants::DEFAULT_FILE.as_bytes())?;
    }
    match vault {
        Some((passphrase, params)) => Vault::create(paths, &passphrase, params)?,
        None => Keychain::create(paths)?,
    }
    crate::config::Config::save_backend(paths, backend)?;
    ctx.record(&[Event {
        action: "init",
        outcome: "ok".into(),
        ..ctx.event()
    }])?;
    let what = match backend {
        Backend::File => "an encrypted file vault",
        Backend::Keychain => "a keychain store (values in the OS keychain) with its metadata",
    };
    print(&format!(
        "created {what} at {}\nnext: printf %s \"$MY_KEY\" | secret add @my_key --stdin\n",
        location.display()
    ))
}

/// The parameters for a new vault: the default, or (debug builds only, for
/// tests that make many vaults) a fast set below the floor.
fn new_vault_params() -> Result<KdfParams> {
    if std::env::var_os("SECRET_TEST_FAST_KDF").is_some_and(|v| v == "1") {
        if cfg!(debug_assertions) {
            return Ok(KdfParams::TEST_ONLY);
        }
        return Err(Error::usage(
            "SECRET_TEST_FAST_KDF is only honoured by debug builds; unset it",
        ));
    }
    Ok(KdfParams::DEFAULT)
}

/// `secret unlock --for D`: checks the passphrase, then caches the vault
/// key in the kernel keyring for D.
pub(crate) fn unlock(ctx: &Context, duration: Duration) -> Result<u8> {
    let vault = ctx.open_vault_with_passphrase("unlock")?;
    unlock::store(vault.id(), vault.root_key(), duration)?;
    ctx.record(&[Event {
        action: "unlock",
        outcome: format!("ok for {}", crate::duration::format(duration)),
        ..ctx.event()
    }])?;
    print(&format!(
        "unlocked for {}: commands skip the passphrase until then or `secret lock`\n",
        crate::duration::format(duration)
    ))
}

/// `secret lock`: drops the cached key.
pub(crate) fn lock(ctx: &Context) -> Result<u8> {
    let paths = ctx.paths()?;
    let path = paths.vault_file();
    let bytes = fsio::read_private(&path)?.ok_or(Error::NotInitialized { path })?;
    let id = store::vault::vault_id(&bytes)
        .ok_or_else(|| Error::damaged(paths.vault_file(), "it has no readable header"))?;
    let had = unlock::forget(&id);
    ctx.record(&[Event {
        action: "lock",
        outcome: if had { "ok" } else { "ok (was not unlocked)" }.into(),
        ..ctx.event()
    }])?;
    print(if had {
        "locked: the cached key is gone\n"
    } else {
        "not unlocked: nothing to do\n"
    })
}

/// `secret passwd`: re-wraps the vault key under a new passphrase.
pub(crate) fn passwd(ctx: &mut Context, new_passphrase_fd: Option<i32>) -> Result<u8> {
    ctx.sources.new_fd = new_passphrase_fd;
    let mut vault = ctx.open_vault_with_passphrase("passwd")?;
    let new = ctx.sources.replacement()?;
    vault.change_passphrase(&new)?;
    ctx.record(&[Event {
        action: "passwd",
        outcome: "ok".into(),
        ..ctx.event()
    }])?;
    print("passphrase changed; the old one no longer opens the vault\n")
}

//! Where things live. `SECRET_HOME` puts everything in one directory;
//! otherwise configuration goes under `$XDG_CONFIG_HOME/secret` and data
//! (vault, keychain metadata, audit trail) under `$XDG_DATA_HOME/secret`.
//! `SECRET_AUDIT` moves the audit trail (and its `audit.head`) elsewhere, so
//! a read-only `SECRET_HOME` (a container image) can still launch.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    /// `SECRET_AUDIT`: the audit trail, when not `audit.jsonl` in `data_dir`.
    pub audit: Option<PathBuf>,
}

impl Paths {
    /// Reads `SECRET_HOME`, `XDG_CONFIG_HOME`, `XDG_DATA_HOME`, `HOME` and
    /// `SECRET_AUDIT`.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// The same, from any source of variables (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<Self> {
        let nonempty = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let audit = nonempty("SECRET_AUDIT");
        if let Some(file) = &audit
            && (!file.is_absolute() || file.file_name().is_none())
        {
            return Err(Error::usage_hint(
                format!(
                    "SECRET_AUDIT={}: the audit trail must be an absolute file path",
                    file.display()
                ),
                "name a file in a writable directory of yours, e.g. SECRET_AUDIT=/tmp/secret-audit/audit.jsonl",
            ));
        }
        if let Some(home) = nonempty("SECRET_HOME") {
            return Ok(Self {
                config_dir: home.clone(),
                data_dir: home,
                audit,
            });
        }
        let home = nonempty("HOME");
        let base = |xdg: &str, fallback: &str| -> Result<PathBuf> {
            nonempty(xdg)
                .filter(|p| p.is_absolute())
                .or_else(|| home.as_ref().map(|h| h.join(fallback)))
                .map(|p| p.join("secret"))
                .ok_or_else(|| {
                    Error::usage_hint(
                        format!("cannot tell where to keep secrets: neither SECRET_HOME, {xdg} nor HOME is set"),
                        "set SECRET_HOME to a directory",
                    )
                })
        };
        Ok(Self {
            config_dir: base("XDG_CONFIG_HOME", ".config")?,
            data_dir: base("XDG_DATA_HOME", ".local/share")?,
            audit,
        })
    }

    #[must_use]
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    #[must_use]
    pub fn vault_file(&self) -> PathBuf {
        self.data_dir.join("vault.secret")
    }

    #[must_use]
    pub fn keychain_meta_file(&self) -> PathBuf {
        self.data_dir.join("keychain.json")
    }

    /// `SECRET_AUDIT`, else `audit.jsonl` in the data directory.
    #[must_use]
    pub fn audit_file(&self) -> PathBuf {
        self.audit
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.jsonl"))
    }

    /// Held exclusively by every command that changes the store.
    #[must_use]
    pub fn lock_file(&self) -> PathBuf {
        self.data_dir.join("store.lock")
    }

    /// The highest vault generation seen, kept beside the configuration so
    /// that a vault file restored from an old copy is noticed.
    #[must_use]
    pub fn generation_file(&self) -> PathBuf {
        self.config_dir.join("vault.generation")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| owned.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())
    }

    #[test]
    fn secret_home_wins() {
        let p = Paths::from_vars(vars(&[("SECRET_HOME", "/s"), ("HOME", "/h")])).expect("paths");
        assert_eq!(p.vault_file(), PathBuf::from("/s/vault.secret"));
        assert_eq!(p.config_file(), PathBuf::from("/s/config.toml"));
        assert_eq!(p.audit_file(), PathBuf::from("/s/audit.jsonl"));
    }

    #[test]
    fn secret_audit_moves_only_the_trail() {
        let p = Paths::from_vars(vars(&[
            ("SECRET_HOME", "/s"),
            ("SECRET_AUDIT", "/w/a.jsonl"),
        ]))
        .expect("paths");
        assert_eq!(p.audit_file(), PathBuf::from("/w/a.jsonl"));
        assert_eq!(p.vault_file(), PathBuf::from("/s/vault.secret"));
        assert!(
            Paths::from_vars(vars(&[("SECRET_HOME", "/s"), ("SECRET_AUDIT", "a.jsonl")])).is_err()
        );
    }

    #[test]
    fn xdg_then_home() {
        let p = Paths::from_vars(vars(&[("XDG_DATA_HOME", "/d"), ("HOME", "/h")])).expect("paths");
        assert_eq!(p.data_dir, PathBuf::from("/d/secret"));
        assert_eq!(p.config_dir, PathBuf::from("/h/.config/secret"));
        assert!(Paths::from_vars(vars(&[])).is_err());
    }
}

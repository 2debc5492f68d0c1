//! `config.toml`: what `secret init` chose (the backend) and the configured
//! command providers. Read once per command; written by `secret init`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsio;
use crate::paths::Paths;
use crate::store::Backend;

/// The longest duration any file, flag or server may set (a year, as
/// humantime counts it): far beyond any sensible delay, timeout or lease,
/// and small enough that adding it to a clock reading cannot overflow.
/// Every duration read is checked against it when it is read.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(31_557_600);

/// The largest `config.toml`, `grants.toml`, env file, `plugins.toml` or
/// `broker.toml` read (4 MiB): far beyond any hand-written file, small
/// enough that a device or a runaway file fails at once.
pub const MAX_POLICY_LEN: u64 = 4 << 20;

/// `config.toml`: what `secret init` chose.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub backend: Option<Backend>,
    /// `[providers.NAME]`: command providers (see `remote::command`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub providers: std::collections::BTreeMap<String, crate::remote::command::ProviderConfig>,
    /// `[proxy]`: settings of `secret exec --proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyConfig>,
}

/// `[proxy]` in `config.toml`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Extra roots (PEM) the proxy trusts for real upstreams, besides the
    /// system's: a private CA, or a test's.
    pub upstream_ca_file: Option<std::path::PathBuf>,
}

impl Config {
    pub fn load(paths: &Paths) -> Result<Self> {
        let path = paths.config_file();
        match fsio::read_policy_file(&path, "config.toml", MAX_POLICY_LEN)? {
            Some(text) => toml::from_str(&text).map_err(|e| {
                Error::usage_hint(
                    format!("{}: {}", path.display(), e.message()),
                    "fix the file, or remove it to use the file vault",
                )
            }),
            None => Ok(Self::default()),
        }
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        let text = format!(
            "# secret configuration, written by `secret init`.\n{}",
            toml::to_string(self)
                .map_err(|e| Error::internal(format!("cannot write config.toml: {e}")))?
        );
        fsio::write_atomic(&paths.config_file(), text.as_bytes())
    }

    /// The backend in force: `SECRET_BACKEND`, else this file's, else the
    /// file vault.
    pub fn backend_in_force(&self) -> Result<Backend> {
        if let Some(name) = std::env::var_os("SECRET_BACKEND").filter(|v| !v.is_empty()) {
            return name.to_string_lossy().parse();
        }
        Ok(self.backend.unwrap_or(Backend::File))
    }
}

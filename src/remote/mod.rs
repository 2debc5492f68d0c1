//! Remote references: values that live in an organisation's secret manager
//! rather than the local store. This module owns the reference grammar
//! (`vault://`, `azure-kv://`, and command-provider schemes such as `op://`
//! and `pass://`) and dispatches a fetch to the client that speaks it; each
//! client lives in its own submodule. Resolution order, links, scopes, grants
//! and audit are the caller's.

pub(crate) mod azure;
pub mod command;
mod http;
pub(crate) mod openbao;

use std::fmt;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::value::SecretValue;

/// A parsed remote reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// `vault://MOUNT/PATH#FIELD[?version=N]`: OpenBao / HashiCorp Vault KV v2.
    OpenBao(openbao::Reference),
    /// `azure-kv://VAULT/SECRET[/VERSION]`: Azure Key Vault.
    Azure(azure::Reference),
    /// `SCHEME://…` for a configured or built-in command provider.
    Command(command::Reference),
}

/// Whether `scheme://…` is a remote reference: a built-in store, a
/// command-provider preset, or a provider configured in config.toml.
#[must_use]
pub(crate) fn is_scheme(scheme: &str, config: &Config) -> bool {
    matches!(scheme, "vault" | "openbao" | "bao" | "azure-kv")
        || command::Reference::parse(scheme, "", config).is_some()
}

impl Remote {
    /// Parses `text` if it has the form `scheme://…`; `None` when it does
    /// not look like a remote reference at all.
    pub fn parse(text: &str, config: &Config) -> Option<Result<Self>> {
        let (scheme, rest) = text.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return None;
        }
        Some(match scheme {
            "vault" | "openbao" | "bao" => openbao::Reference::parse(rest).map(Self::OpenBao),
            "azure-kv" => azure::Reference::parse(rest).map(Self::Azure),
            other => match command::Reference::parse(other, rest, config) {
                Some(r) => r.map(Self::Command),
                None => Err(Error::usage_hint(
                    format!(
                        "unknown reference scheme \"{}://\"",
                        escape_for_terminal(other)
                    ),
                    "use vault://, azure-kv://, op://, pass://, aws-sm://, gcp-sm:// or a provider from [providers.NAME] in config.toml",
                )),
            },
        })
    }

    /// Fetches the value.
    pub fn fetch(&self, config: &Config) -> Result<SecretValue> {
        match self {
            Self::OpenBao(r) => r.fetch(),
            Self::Azure(r) => r.fetch(),
            Self::Command(r) => r.fetch(config),
        }
    }
}

/// `text` with every control character written as an escape (`\n`,
/// `\u{1b}`), for messages: a reference from an env file must not be able
/// to retitle, clear or rewrite the terminal it is printed on.
#[must_use]
pub(crate) fn escape_for_terminal(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OpenBao(r) => r.fmt(f),
            Self::Azure(r) => r.fmt(f),
            Self::Command(r) => r.fmt(f),
        }
    }
}

//! `config.toml`: what `secret init` chose (the backend) and the configured
//! command providers. Read once per command; written by `secret init`.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fsio;
use crate::paths::Paths;
use crate::store::Backend;

/// The longest duration any file, flag or server may set (a year of 365.25
/// days): far beyond any sensible delay, timeout or lease, and small enough
/// that adding it to a clock reading cannot overflow. Every duration read is
/// checked against it when it is read (`crate::duration::parse` does).
pub(crate) const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(31_557_600);

/// The largest `config.toml`, `grants.toml`, env file, `plugins.toml` or
/// `broker.toml` read (4 MiB): far beyond any hand-written file, small
/// enough that a device or a runaway file fails at once.
pub(crate) const MAX_POLICY_LEN: u64 = 4 << 20;

/// `config.toml`: what `secret init` chose.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub backend: Option<Backend>,
    /// `[providers.NAME]`: command providers (see `remote::command`).
    #[serde(default)]
    pub providers: std::collections::BTreeMap<String, crate::remote::command::ProviderConfig>,
    /// `[proxy]`: settings of `secret exec --proxy`.
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
}

/// `[proxy]` in `config.toml`.
#[derive(Debug, Default, Deserialize)]
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
            Some(text) => toml::from_str(&text).map_err(|e| parse_error(&path, &text, &e)),
            None => Ok(Self::default()),
        }
    }

    /// Records `backend` in config.toml, as `secret init` chose it, and
    /// keeps the rest of the file as written (comments, providers, proxy).
    pub fn save_backend(paths: &Paths, backend: Backend) -> Result<()> {
        let path = paths.config_file();
        let line = format!("backend = \"{backend}\"");
        let text = match fsio::read_policy_file(&path, "config.toml", MAX_POLICY_LEN)? {
            None => format!("# secret configuration, written by `secret init`.\n{line}\n"),
            Some(text) => with_top_level_line(&text, "backend", &line),
        };
        let fix = || {
            Error::usage_hint(
                format!("{}: cannot set the backend in it", path.display()),
                format!("put {line} at the top of the file, before any [table]"),
            )
        };
        match toml::from_str::<Self>(&text) {
            Ok(written) if written.backend == Some(backend) => {
                fsio::write_atomic(&path, text.as_bytes())
            }
            _ => Err(fix()),
        }
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

/// `text` with the top-level `key = …` line replaced by `line`, or `line`
/// added before the first table (at the end when there is none).
fn with_top_level_line(text: &str, key: &str, line: &str) -> String {
    let mut out = String::with_capacity(text.len() + line.len() + 1);
    let mut placed = false;
    for l in text.split_inclusive('\n') {
        let t = l.trim_start();
        let table = t.starts_with('[');
        let same_key = t
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='));
        if !placed && (table || same_key) {
            out.push_str(line);
            out.push('\n');
            placed = true;
            if same_key {
                continue;
            }
        }
        out.push_str(l);
    }
    if !placed {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A config.toml that does not parse: FILE:LINE:COL, toml's message, and
/// the fix. A bare word where a string belongs (`backend = file`) is the
/// common slip: the hint shows the line with the quotes it needs.
fn parse_error(path: &std::path::Path, text: &str, e: &toml::de::Error) -> Error {
    let Some(span) = e.span() else {
        return Error::usage_hint(
            format!("{}: {}", path.display(), e.message()),
            "fix the file, or remove it to use the file vault",
        );
    };
    let (line, col) = crate::diag::Lines::new(text).line_col(text, span.start);
    let at = format!("{}:{line}:{col}", path.display());
    let bare = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .filter(|(key, value)| {
            !key.is_empty()
                && !value.is_empty()
                && !matches!(*value, "true" | "false")
                && value.starts_with(|c: char| c.is_ascii_alphabetic())
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    match bare {
        Some((key, value)) => Error::usage_hint(
            format!("{at}: {value} is not quoted; TOML strings need quotes"),
            format!("write it as: {key} = \"{value}\""),
        ),
        None => Error::usage_hint(
            format!("{at}: {}", e.message()),
            "fix the file, or remove it to use the file vault",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_line_is_set_and_the_rest_kept() {
        let line = "backend = \"keychain\"";
        for (before, after) in [
            (
                "# mine\nbackend = \"file\"\n[proxy]\n",
                "# mine\nbackend = \"keychain\"\n[proxy]\n",
            ),
            (
                "# mine\n\n[providers.x]\nbackend_x = 1\n",
                "# mine\n\nbackend = \"keychain\"\n[providers.x]\nbackend_x = 1\n",
            ),
            (
                "# only a comment",
                "# only a comment\nbackend = \"keychain\"\n",
            ),
            ("", "backend = \"keychain\"\n"),
        ] {
            assert_eq!(with_top_level_line(before, "backend", line), after);
        }
    }

    fn error(text: &str) -> Error {
        let e = toml::from_str::<Config>(text).expect_err("invalid");
        parse_error(std::path::Path::new("config.toml"), text, &e)
    }

    #[test]
    fn a_bare_word_gets_its_line_and_the_quotes_it_needs() {
        let e = error("# written by hand\nbackend = file\n");
        assert_eq!(
            e.to_string(),
            "config.toml:2:11: file is not quoted; TOML strings need quotes"
        );
        assert_eq!(e.hint().as_deref(), Some("write it as: backend = \"file\""));
        let e = error("backend = \"flie\"\n");
        assert!(
            e.to_string()
                .starts_with("config.toml:1:11: unknown variant"),
            "{e}"
        );
    }
}

//! The caller token: 256 random bits, base64url, in `broker.token` beside
//! `broker.toml` (mode 0600). TCP callers present it as `Authorization:
//! Bearer TOKEN` or `X-Broker-Token: TOKEN`; it is compared in constant
//! time. It is a capability to use the routes, not a provider credential:
//! `secret broker token` prints it so callers can be configured.

use std::path::{Path, PathBuf};

use base64ct::Encoding;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsio;

/// The token file of the broker configured by `file`.
#[must_use]
pub(crate) fn path(file: &Path) -> PathBuf {
    file.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("broker.token")
}

/// A caller token held in a wiping buffer.
pub(crate) struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([REDACTED])")
    }
}

impl Token {
    /// Whether `presented` is this token, in time independent of where they
    /// differ.
    #[must_use]
    pub(crate) fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented))
    }

    #[must_use]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Reads the token at `path`; `Ok(None)` when there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Token>> {
    let Some(bytes) = fsio::read_private(path)? else {
        return Ok(None);
    };
    let bytes = Zeroizing::new(bytes);
    let text = std::str::from_utf8(&bytes)
        .ok()
        .map(str::trim)
        .filter(|t| {
            t.len() >= 32
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| {
            Error::usage_hint(
                format!("{} does not hold a caller token", path.display()),
                "make a new one with: secret broker token --rotate",
            )
        })?;
    Ok(Some(Token(Zeroizing::new(text.to_owned()))))
}

/// Writes a fresh token to `path` (atomically, mode 0600).
pub(crate) fn create(path: &Path) -> Result<Token> {
    if let Some(dir) = path.parent() {
        fsio::ensure_private_dir(dir)?;
    }
    let token = generate()?;
    let mut line = Zeroizing::new(token.0.as_bytes().to_vec());
    line.push(b'\n');
    fsio::write_atomic(path, &line)?;
    Ok(token)
}

/// A fresh token, in memory only (`exec --proxy` puts one in its proxy URL).
pub(crate) fn generate() -> Result<Token> {
    let bytes = Zeroizing::new(crate::crypto::random::<32>()?);
    Ok(Token(Zeroizing::new(
        base64ct::Base64UrlUnpadded::encode_string(&*bytes),
    )))
}

/// The token at `path`, created when there is none.
pub(crate) fn read_or_create(path: &Path) -> Result<Token> {
    match read(path)? {
        Some(t) => Ok(t),
        None => create(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_private_and_compared_whole() {
        let dir = crate::fsio::private_tempdir();
        let p = path(&dir.path().join("broker.toml"));
        let t = read_or_create(&p).expect("create");
        assert_eq!(t.as_str().len(), 43);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = read_or_create(&p).expect("read");
        assert!(again.matches(t.as_str().as_bytes()));
        assert!(!again.matches(&t.as_str().as_bytes()[..42]));
        assert!(!again.matches(b""));
        let rotated = create(&p).expect("rotate");
        assert!(!rotated.matches(t.as_str().as_bytes()));
        assert!(!format!("{rotated:?}").contains(rotated.as_str()));
    }
}

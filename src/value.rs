//! The secret value type: bytes that are wiped when dropped and cannot be
//! printed. It owns nothing else; where values come from is `store`, where
//! they go is `exec`.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};

/// The largest value `secret` stores (1 MiB): more is not a credential.
pub(crate) const MAX_VALUE_LEN: usize = 1 << 20;

/// A secret value. `Debug` is redacted and there is no `Display`, so no
/// error message or log line can carry one by accident.
pub struct SecretValue(SecretBox<Vec<u8>>);

impl SecretValue {
    /// Takes ownership of `bytes` without copying them, so no unwiped copy is
    /// left behind; the whole capacity is wiped on drop.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// The bytes, for the few places that must hand them on (encryption,
    /// the child's environment, the keychain).
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let v = SecretValue::new(b"sk-live-123456".to_vec());
        let shown = format!("{v:?} {v:#?}");
        assert!(!shown.contains("sk-live"), "{shown}");
        assert_eq!(v.expose(), b"sk-live-123456");
    }
}

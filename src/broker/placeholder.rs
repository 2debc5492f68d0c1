//! Shaped placeholders for `exec --proxy`: what the child gets instead of a
//! value. A placeholder is random per launch, never equal to the value, and
//! looks like it (same length, same character class at each position, the
//! same recognisable prefix such as `sk-proj-` or `ghp_`, separators where
//! the value has them), so an SDK that checks a key's format accepts it.
//! It owns only the shape; where placeholders are swapped is `substitute`.
//!
//! A value must be printable ASCII (it goes in a header) and leave at least
//! [`MIN_RANDOM`] characters to randomise after its prefix, so a
//! placeholder cannot be guessed or collide with ordinary text.

use crate::error::{Error, Result};
use crate::value::SecretValue;

/// The fewest random characters a placeholder may have: 53 bits for
/// digits only, 75 for letters.
pub(crate) const MIN_RANDOM: usize = 16;

/// Prefixes that identify a provider's keys, longest first where one
/// starts another.
const KNOWN_PREFIXES: &[&str] = &[
    "sk-ant-api03-",
    "sk-ant-admin01-",
    "sk-ant-",
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "sk-or-v1-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "pk_live_",
    "pk_test_",
    "sk-",
    "github_pat_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xapp-",
    "hf_",
    "npm_",
    "pypi-",
    "dop_v1_",
    "AKIA",
    "ASIA",
    "AIza",
    "gsk_",
    "r8_",
];

/// The part of `value` kept verbatim: a known prefix, or a short run of
/// lowercase letters closed by `-` or `_` (`abc_`, `key-`).
fn prefix(value: &[u8]) -> usize {
    if let Some(p) = KNOWN_PREFIXES
        .iter()
        .find(|p| value.starts_with(p.as_bytes()))
    {
        return p.len();
    }
    let letters = value.iter().take_while(|b| b.is_ascii_lowercase()).count();
    match value.get(letters) {
        Some(b'-' | b'_') if (1..=8).contains(&letters) => letters + 1,
        _ => 0,
    }
}

/// A new placeholder shaped like `value`. `label` (the reference as
/// written) names the value in errors.
pub(crate) fn shape(label: &str, value: &SecretValue) -> Result<Vec<u8>> {
    let v = value.expose();
    if let Some(at) = v.iter().position(|b| !b.is_ascii_graphic()) {
        return Err(Error::usage_hint(
            format!(
                "--proxy {label}: the value has a character that cannot go in an HTTP header (at byte {})",
                at + 1
            ),
            "--proxy is for API keys and tokens: printable ASCII without spaces",
        ));
    }
    let keep = prefix(v);
    let random_len = v[keep..]
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .count();
    if random_len < MIN_RANDOM {
        return Err(Error::usage_hint(
            format!(
                "--proxy {label}: the value is too short to stand in for ({random_len} letters and digits after its prefix, at least {MIN_RANDOM} needed)"
            ),
            "pass a short value with --env instead; a placeholder that short could be guessed",
        ));
    }
    // Hex values keep to hex digits, so a format check accepts them.
    let hex = v[keep..].iter().all(u8::is_ascii_hexdigit);
    loop {
        let mut noise = vec![0u8; v.len()];
        getrandom::getrandom(&mut noise)
            .map_err(|e| Error::internal(format!("no randomness: {e}")))?;
        let out: Vec<u8> = v
            .iter()
            .zip(noise)
            .enumerate()
            .map(|(i, (&b, r))| {
                if i < keep {
                    return b;
                }
                let pick = |set: &[u8]| set[usize::from(r) % set.len()];
                match b {
                    b'a'..=b'f' | b'A'..=b'F' if hex => {
                        if b.is_ascii_lowercase() {
                            pick(b"0123456789abcdef")
                        } else {
                            pick(b"0123456789ABCDEF")
                        }
                    }
                    b'0'..=b'9' if hex => pick(b"0123456789abcdef"),
                    b'a'..=b'z' => pick(b"abcdefghijklmnopqrstuvwxyz"),
                    b'A'..=b'Z' => pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                    b'0'..=b'9' => pick(b"0123456789"),
                    other => other,
                }
            })
            .collect();
        if out != v {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(b: u8) -> u8 {
        match b {
            b'a'..=b'z' => b'a',
            b'A'..=b'Z' => b'A',
            b'0'..=b'9' => b'0',
            other => other,
        }
    }

    #[test]
    fn placeholders_keep_prefix_length_and_classes() {
        for value in [
            "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_AbCdEf",
            "ghp_0123456789abcdefABCDEF0123456789abcd",
            "xyz_abcdefghijklmnopqrstu",
            "AKIAABCDEFGHIJKLMNOP1234",
        ] {
            let v = SecretValue::new(value.as_bytes().to_vec());
            let p = shape("@k", &v).expect("shaped");
            let again = shape("@k", &v).expect("shaped");
            assert_ne!(p, value.as_bytes());
            assert_ne!(p, again, "random per launch");
            assert_eq!(p.len(), value.len());
            let keep = prefix(value.as_bytes());
            assert_eq!(&p[..keep], &value.as_bytes()[..keep]);
            assert!(keep > 0, "{value}");
        }
        let v = SecretValue::new(b"sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z".to_vec());
        let p = shape("@k", &v).expect("shaped");
        assert!(p.starts_with(b"sk-proj-"));
        assert!(
            p.iter()
                .zip(v.expose())
                .all(|(a, b)| class(*a) == class(*b))
        );
    }

    #[test]
    fn hex_stays_hex_and_bad_values_are_refused() {
        let v = SecretValue::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let p = shape("@k", &v).expect("shaped");
        assert!(p.iter().all(u8::is_ascii_hexdigit));
        for bad in [
            &b"sk-short"[..],
            b"has space 0123456789abcdefghij",
            b"\xff0123456789abcdefghij",
        ] {
            let v = SecretValue::new(bad.to_vec());
            let e = shape("@k", &v).expect_err("refused");
            assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
        }
    }
}

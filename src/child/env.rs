//! The child's environment: one policy for every child `secret` starts
//! (`exec`, `run`, plugins and their probes).
//!
//! The rule for `SECRET_*`: exactly `secret`'s own control variables
//! ([`CONTROL_VARIABLES`] and every `SECRET_TEST_*`) never reach a child,
//! whatever the caller asks; any other variable, `SECRET_KEY_BASE` included,
//! is the child's business and passes like any other. On top of that the
//! caller chooses a base (everything inherited, or only names matching
//! `keep` globs), minus `unset`, then layers of its own variables in order
//! (a later layer wins). Entries are built in wiping buffers; our own
//! environment is never changed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use zeroize::Zeroizing;

/// Environment variables that steer `secret` itself (with every
/// `SECRET_TEST_*`): no child gets them.
pub(crate) const CONTROL_VARIABLES: &[&str] = &[
    "SECRET_HOME",
    "SECRET_BACKEND",
    "SECRET_PASSPHRASE",
    "SECRET_NEW_PASSPHRASE",
    "SECRET_SCOPE",
    "SECRET_AUDIT",
    "SECRET_TEST_FAST_KDF",
];

/// Whether `name` is one of `secret`'s control variables.
#[must_use]
pub(crate) fn is_control(name: &str) -> bool {
    CONTROL_VARIABLES.contains(&name) || name.starts_with("SECRET_TEST_")
}

/// Which inherited variables the child keeps.
#[derive(Debug, Default)]
pub(crate) struct Inherit {
    /// Start from nothing (`-i`, `inherit_env = "none"|"minimal"`) rather
    /// than everything; then only names matching `keep` pass.
    pub(crate) nothing: bool,
    /// Globs (`*`, `?`) of names to keep: `--keep`, `pass_env`, the
    /// minimal base.
    pub(crate) keep: Vec<String>,
    /// Names to drop (`--unset`).
    pub(crate) unset: Vec<String>,
}

impl Inherit {
    fn admits(&self, name: &str) -> bool {
        if is_control(name) || self.unset.iter().any(|u| u == name) {
            return false;
        }
        !self.nothing || self.keep.iter().any(|g| glob(g, name))
    }
}

/// One variable the caller sets, in a wiping buffer.
pub(crate) type Var = (String, Zeroizing<Vec<u8>>);

/// The child's environment as `NAME=value\0` entries in wiping buffers: the
/// inherited variables `inherit` admits, then `vars` in order (a later one
/// wins). A value holding NUL cannot be passed and is left out.
#[must_use]
pub(crate) fn build(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    inherit: &Inherit,
    vars: impl IntoIterator<Item = Var>,
) -> Vec<Zeroizing<Vec<u8>>> {
    let mut env: BTreeMap<Vec<u8>, Zeroizing<Vec<u8>>> = BTreeMap::new();
    for (k, v) in inherited {
        if inherit.admits(&k.to_string_lossy()) {
            env.insert(k.into_vec(), Zeroizing::new(v.into_vec()));
        }
    }
    for (k, v) in vars {
        env.insert(k.into_bytes(), v);
    }
    env.into_iter()
        .filter(|(_, v)| !v.contains(&0))
        .map(|(k, v)| {
            let mut entry = Zeroizing::new(Vec::with_capacity(k.len() + v.len() + 2));
            entry.extend_from_slice(&k);
            entry.push(b'=');
            entry.extend_from_slice(&v);
            entry.push(0);
            entry
        })
        .collect()
}

/// `*` matches any run, `?` one character; everything else itself.
#[must_use]
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn names(env: &[Zeroizing<Vec<u8>>]) -> Vec<String> {
        env.iter()
            .map(|e| {
                let s = String::from_utf8_lossy(e);
                s.split('=').next().unwrap_or_default().to_owned()
            })
            .collect()
    }

    fn inherited() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/bin"),
            ("LC_TIME", "C"),
            ("EDITOR", "vi"),
            ("SECRET_PASSPHRASE", "pw"),
            ("SECRET_HOME", "/h"),
            ("SECRET_TEST_FAST_KDF", "1"),
            ("SECRET_KEY_BASE", "rails"),
        ]
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
    }

    #[test]
    fn control_variables_never_pass_even_when_asked_for() {
        let all = build(inherited(), &Inherit::default(), []);
        assert_eq!(
            names(&all),
            ["EDITOR", "LC_TIME", "PATH", "SECRET_KEY_BASE"]
        );
        let asked = Inherit {
            nothing: true,
            keep: vec!["SECRET_*".into()],
            unset: Vec::new(),
        };
        assert_eq!(names(&build(inherited(), &asked, [])), ["SECRET_KEY_BASE"]);
    }

    #[test]
    fn keep_unset_and_layers() {
        let inherit = Inherit {
            nothing: true,
            keep: vec!["PATH".into(), "LC_*".into(), "EDITOR".into()],
            unset: vec!["EDITOR".into()],
        };
        let vars = [
            ("PATH".to_owned(), Zeroizing::new(b"/mine".to_vec())),
            ("BAD".to_owned(), Zeroizing::new(b"a\0b".to_vec())),
        ];
        let env = build(inherited(), &inherit, vars);
        assert_eq!(names(&env), ["LC_TIME", "PATH"]);
        assert_eq!(&env[1][..], b"PATH=/mine\0");
    }

    #[test]
    fn globs() {
        assert!(glob("LC_*", "LC_ALL"));
        assert!(glob("*", ""));
        assert!(glob("A?C", "ABC"));
        assert!(!glob("LC_*", "LANG"));
        assert!(glob("*_KEY", "OPENAI_API_KEY"));
        assert!(!glob("*_KEY", "OPENAI_API_KEYS"));
    }
}

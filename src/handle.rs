//! Handles: the `@name` grammar by which users refer to secrets. It owns
//! parsing and validation, not resolution (that is `store`'s job).

use std::fmt;

/// Why a handle, reference or template does not parse: a message naming
/// the text, and the fix. `error::Error` takes it as a usage error (this
/// module stays below `error` and does not import it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub hint: Option<String>,
}

impl Invalid {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    fn hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Invalid {}

/// The longest handle name, in bytes.
pub(crate) const MAX_HANDLE_LEN: usize = 128;

/// A validated handle name, without its leading `@`: 1–128 characters of
/// `A-Z a-z 0-9 _ . - /`, where `/` separates namespaces (no empty segment).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(String);

impl Handle {
    /// Parses `@name` as typed by a user.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        match text.strip_prefix('@') {
            Some(name) if name.starts_with('@') => Err(Invalid::new(format!(
                "\"{text}\" is a literal (\"@@\" escapes \"@\"), not a handle"
            ))),
            Some(name) => Self::from_name(name),
            None => Err(Invalid::hint(
                format!("\"{text}\" is not a handle: handles start with \"@\""),
                format!("write @{text}"),
            )),
        }
    }

    /// Validates a bare name (no `@`), as stored in a vault.
    pub fn from_name(name: &str) -> Result<Self, Invalid> {
        let problem = if name.is_empty() {
            Some("is empty".to_owned())
        } else if name.len() > MAX_HANDLE_LEN {
            Some(format!("is longer than {MAX_HANDLE_LEN} characters"))
        } else if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
        {
            Some(format!("contains {c:?}"))
        } else if name.split('/').any(str::is_empty) {
            Some("has an empty namespace segment (leading, trailing or double \"/\")".to_owned())
        } else if name.split('/').any(|s| s == "." || s == "..") {
            Some("has a \".\" or \"..\" segment".to_owned())
        } else {
            None
        };
        match problem {
            Some(p) => Err(Invalid::hint(
                format!("handle \"@{}\" {p}", name.escape_default()),
                "a handle is 1-128 characters of A-Z a-z 0-9 _ . - / (\"/\" makes namespaces, as in @prod/db_password)",
            )),
            None => Ok(Self(name.to_owned())),
        }
    }

    /// The name without `@`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

/// Checks the path of a remote reference (`scheme://a/b#field`) before
/// anything matches grants against it or hands it to a provider: no empty,
/// `.` or `..` segment (plain or percent-encoded), no encoded `/`, and no
/// control character, so that `catstore://public/../private/y` cannot pass
/// a grant on `catstore://public/*` and then name another secret.
pub(crate) fn check_remote_path(text: &str) -> Result<(), Invalid> {
    let problem = |what: &str| {
        Err(Invalid::hint(
            format!("reference \"{}\" {what}", text.escape_default()),
            "write the reference with plain path segments, as in vault://secret/app#api_key",
        ))
    };
    if text.chars().any(char::is_control) {
        return problem("contains a control character");
    }
    let Some((_, rest)) = text.split_once("://") else {
        return Ok(());
    };
    let path = rest.split(['#', '?']).next().unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return problem("has an encoded \"/\" or \"\\\"");
    }
    let decoded = lower.replace("%2e", ".");
    if decoded
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return problem("has an empty, \".\" or \"..\" path segment");
    }
    Ok(())
}

/// The scheme of `text` when it has the `scheme://` shape of a remote
/// reference (whether that scheme is configured is `remote`'s to say). The
/// one place that tells a reference's shape from a handle's.
#[must_use]
pub(crate) fn scheme(text: &str) -> Option<&str> {
    text.split_once("://").map(|(s, _)| s)
}

/// What the right-hand side of an `--env VAR=…` mapping means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ValueSpec {
    /// `@name`: resolved from the store.
    Handle(Handle),
    /// Anything else: passed through as is (`@@x` stands for the literal `@x`).
    Literal(String),
    /// Text with handles embedded as `{{@name}}`.
    Template(Vec<Part>),
    /// `scheme://…` of a known remote store or command provider.
    Remote(String),
}

/// What a reference points at: a handle in the local store, or a remote
/// reference. The key under which resolved values are kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Source {
    Local(Handle),
    Remote(String),
}

impl Source {
    /// The name grants.toml matches: the handle's name, or the reference.
    #[must_use]
    pub(crate) fn grant_key(&self) -> &str {
        match self {
            Self::Local(h) => h.name(),
            Self::Remote(r) => r,
        }
    }

    /// The handle's name, for a local source (the audit's `handle`).
    #[must_use]
    pub(crate) fn handle(&self) -> Option<&str> {
        match self {
            Self::Local(h) => Some(h.name()),
            Self::Remote(_) => None,
        }
    }

    /// The remote reference, for a remote source (the audit's `reference`).
    #[must_use]
    pub(crate) fn reference(&self) -> Option<&str> {
        match self {
            Self::Local(_) => None,
            Self::Remote(r) => Some(r),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(h) => h.fmt(f),
            Self::Remote(r) => f.write_str(r),
        }
    }
}

/// A piece of a template.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    Handle(Handle),
}

impl ValueSpec {
    /// Parses; `remote(scheme)` says whether `scheme://…` is a remote
    /// reference (anything else, like `https://…`, is a literal).
    pub(crate) fn parse_with(text: &str, remote: &dyn Fn(&str) -> bool) -> Result<Self, Invalid> {
        if let Some(scheme) = scheme(text)
            && remote(scheme)
        {
            check_remote_path(text)?;
            return Ok(Self::Remote(text.to_owned()));
        }
        if let Some(rest) = text.strip_prefix("@@") {
            Ok(Self::Literal(format!("@{rest}")))
        } else if text.starts_with('@') {
            Handle::parse(text).map(Self::Handle)
        } else if text.contains("{{") {
            parse_template(text)
        } else {
            Ok(Self::Literal(text.to_owned()))
        }
    }

    /// What this reference needs resolved.
    #[must_use]
    pub(crate) fn sources(&self) -> Vec<Source> {
        match self {
            Self::Handle(h) => vec![Source::Local(h.clone())],
            Self::Remote(r) => vec![Source::Remote(r.clone())],
            Self::Literal(_) => Vec::new(),
            Self::Template(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Handle(h) => Some(Source::Local(h.clone())),
                    Part::Text(_) => None,
                })
                .collect(),
        }
    }
}

/// Splits `postgres://app:{{@db_pw}}@db/app` into text and handles. Only
/// `{{@name}}` is a reference; anything else between `{{` and `}}` that
/// looks like one (`{{ @db }}`, `{{db}}`) is refused rather than passed on
/// as literal text, so a typo never runs a command with a silently wrong
/// value. Single braces pass through.
fn parse_template(text: &str) -> Result<ValueSpec, Invalid> {
    if let Some(bad) = near_miss(text) {
        return Err(Invalid::hint(
            format!(
                "\"{}\" in \"{}\" looks like a template but is not one",
                bad.escape_default(),
                text.escape_default()
            ),
            "write handles in templates as {{@name}}, with no spaces inside the braces",
        ));
    }
    if !text.contains("{{@") {
        return Ok(ValueSpec::Literal(text.to_owned()));
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{@") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(Invalid::hint(
                format!(
                    "unclosed \"{{{{\" in template \"{}\"",
                    text.escape_default()
                ),
                "write handles in templates as {{@name}}",
            ));
        };
        parts.push(Part::Handle(Handle::parse(&after[..end])?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(ValueSpec::Template(parts))
}

/// The first `{{…}}` in `text` that is not `{{@name}}` but whose inside,
/// trimmed and without a leading `@`, is a plausible handle name.
fn near_miss(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let inner = &after[..end];
        let name = inner
            .trim()
            .strip_prefix('@')
            .unwrap_or(inner.trim())
            .trim();
        let plausible = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
        let exact = inner.starts_with('@') && !inner[1..].contains(char::is_whitespace);
        if plausible && !exact {
            return Some(&rest[start..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    None
}

/// Is `name` usable as an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`)?
#[must_use]
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ValueSpec {
        /// Parses with no remote schemes known.
        fn parse(text: &str) -> Result<Self, Invalid> {
            Self::parse_with(text, &|_| false)
        }
    }

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in [
            "a",
            "openai_api_key",
            "prod/db_password",
            "A.b-c_9",
            &"x".repeat(128),
        ] {
            let h = Handle::parse(&format!("@{ok}")).expect(ok);
            assert_eq!(h.name(), ok);
            assert_eq!(h.to_string(), format!("@{ok}"));
        }
    }

    #[test]
    fn rejects_the_rest_with_a_reason() {
        for (bad, why) in [
            ("@", "is empty"),
            ("@a b", "contains ' '"),
            ("@/a", "empty namespace"),
            ("@a//b", "empty namespace"),
            ("@a/", "empty namespace"),
            ("@é", "contains 'é'"),
            ("name", "start with \"@\""),
            ("@@x", "literal"),
        ] {
            let err = Handle::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!("@{}", "x".repeat(129));
        assert!(Handle::parse(&long).is_err());
    }

    #[test]
    fn references_distinguish_handles_and_literals() {
        assert_eq!(
            ValueSpec::parse("@k").expect("handle"),
            ValueSpec::Handle(Handle::from_name("k").expect("k"))
        );
        assert_eq!(
            ValueSpec::parse("@@k").expect("escaped"),
            ValueSpec::Literal("@k".into())
        );
        assert_eq!(
            ValueSpec::parse("plain").expect("literal"),
            ValueSpec::Literal("plain".into())
        );
    }

    #[test]
    fn templates_embed_handles() {
        let t = ValueSpec::parse("postgres://app:{{@db_pw}}@db/{{@name}}?x={y}").expect("template");
        let ValueSpec::Template(parts) = &t else {
            panic!("{t:?}")
        };
        assert_eq!(parts.len(), 5);
        let names: Vec<_> = t.sources().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["@db_pw", "@name"]);
        let remote = |s: &str| s == "vault";
        assert_eq!(
            ValueSpec::parse_with("vault://secret/x#k", &remote).expect("remote"),
            ValueSpec::Remote("vault://secret/x#k".into())
        );
        assert_eq!(
            ValueSpec::parse_with("https://api.example.com", &remote).expect("literal"),
            ValueSpec::Literal("https://api.example.com".into())
        );
        assert!(ValueSpec::parse("a {{@x").is_err());
        for near in ["a{{ @db }}b", "{{db}}", "{{@db }}", "x{{ db}}"] {
            let err = ValueSpec::parse(near).expect_err(near);
            assert!(err.to_string().contains("looks like a template"), "{err}");
            assert!(
                err.hint
                    .as_deref()
                    .unwrap_or_default()
                    .contains("{{@name}}")
            );
        }
        assert_eq!(
            ValueSpec::parse("{{ not a handle! }}").expect("literal"),
            ValueSpec::Literal("{{ not a handle! }}".into())
        );
        assert!(ValueSpec::parse("{{@bad name}}").is_err());
        assert_eq!(
            ValueSpec::parse("{plain}").expect("literal"),
            ValueSpec::Literal("{plain}".into())
        );
    }

    #[test]
    fn dot_segments_never_pass() {
        assert!(Handle::parse("@a/../b").is_err());
        assert!(Handle::parse("@./b").is_err());
        assert!(Handle::parse("@a.b/c..d").is_ok());
        let remote = |s: &str| s == "catstore";
        for bad in [
            "catstore://public/../private/y",
            "catstore://public/./y",
            "catstore://public//y",
            "catstore://public/%2e%2E/private/y",
            "catstore://public%2fprivate",
            "catstore://public/y\u{1b}]0;title\u{7}",
        ] {
            assert!(ValueSpec::parse_with(bad, &remote).is_err(), "{bad}");
        }
        assert!(ValueSpec::parse_with("catstore://public/y#f..g", &remote).is_ok());
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("OPENAI_API_KEY"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1BAD"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("A-B"));
    }
}

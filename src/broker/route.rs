//! Which requests a route lets through: `/proxy/NAME/REST` is split into
//! the route name and REST, REST is checked for tricks (`..`, `.`, `//`,
//! percent-encoded slashes, backslashes and dots) and matched against the
//! route's `allowed_paths` (exact, or a trailing `/*` for everything below
//! a prefix) and `allowed_methods`. REST is forwarded as it was sent (never
//! decoded and re-encoded), so what was checked is what goes upstream.

use http::Method;

/// The prefix every routed request starts with.
pub(crate) const PROXY_PREFIX: &str = "/proxy/";

/// One `allowed_paths` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathRule {
    Exact(String),
    /// `/v1/models/*`: anything strictly below `/v1/models/`.
    Below(String),
}

impl PathRule {
    /// Parses an `allowed_paths` entry; `Err` says what is wrong.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "\"{}\" must start with \"/\" (as in \"/v1/chat/completions\")",
                text.escape_default()
            ));
        }
        let (path, below) = match text.strip_suffix("/*") {
            Some(prefix) => (prefix, true),
            None => (text, false),
        };
        if path.contains('*') {
            return Err(format!(
                "\"{}\": \"*\" is only allowed as a final \"/*\"",
                text.escape_default()
            ));
        }
        if !path.is_empty() {
            check(path).map_err(|why| format!("\"{}\" {why}", text.escape_default()))?;
        }
        let path = path.to_owned();
        Ok(if below {
            Self::Below(format!("{path}/"))
        } else {
            Self::Exact(path)
        })
    }

    #[must_use]
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Below(prefix) => path.len() > prefix.len() && path.starts_with(prefix.as_str()),
        }
    }
}

impl std::fmt::Display for PathRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(p) => f.write_str(p),
            Self::Below(p) => write!(f, "{p}*"),
        }
    }
}

/// Splits a request path into the route name and REST (which starts with
/// `/`). `None` when the path is not under `/proxy/NAME`.
#[must_use]
pub(crate) fn split(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix(PROXY_PREFIX)?;
    match after.find('/') {
        Some(i) => Some((&after[..i], &after[i..])),
        None => Some((after, "/")),
    }
}

/// Refuses a path that could mean something else once an upstream
/// decodes or normalises it. `Err` says why.
pub(crate) fn check(path: &str) -> Result<(), &'static str> {
    if path.contains("//") {
        return Err("contains an empty segment (\"//\")");
    }
    if path.contains('\\') {
        return Err("contains a backslash");
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err("contains a percent-encoded slash or backslash");
    }
    if lower.contains("%2e") {
        return Err("contains a percent-encoded dot");
    }
    if lower.contains("%00") {
        return Err("contains a percent-encoded NUL");
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err("contains a \".\" or \"..\" segment");
    }
    Ok(())
}

/// Why a request is not allowed by a route, naming the rule.
pub(crate) fn allowed(
    rules: &[PathRule],
    methods: Option<&[Method]>,
    method: &Method,
    path: &str,
) -> Result<(), String> {
    check(path).map_err(|why| format!("the path {why}"))?;
    if !rules.iter().any(|r| r.matches(path)) {
        return Err(format!(
            "the path {path} is not in allowed_paths [{}]",
            rules
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(methods) = methods
        && !methods.contains(method)
    {
        return Err(format!(
            "the method {method} is not in allowed_methods [{}]",
            methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_exactly_or_strictly_below() {
        let rules = [
            PathRule::parse("/v1/chat/completions").expect("exact"),
            PathRule::parse("/v1/models/*").expect("below"),
        ];
        let get = Method::GET;
        assert!(allowed(&rules, None, &get, "/v1/chat/completions").is_ok());
        assert!(allowed(&rules, None, &get, "/v1/models/gpt-4").is_ok());
        assert!(allowed(&rules, None, &get, "/v1/models/").is_err());
        assert!(allowed(&rules, None, &get, "/v1/models").is_err());
        assert!(allowed(&rules, None, &get, "/v1/chat/completions/x").is_err());
        assert!(allowed(&rules, None, &get, "/v1/modelsx/a").is_err());
        let why = allowed(&rules, Some(&[Method::POST]), &get, "/v1/models/a").expect_err("method");
        assert!(why.contains("allowed_methods [POST]"), "{why}");
    }

    #[test]
    fn tricks_are_refused_before_matching() {
        let rules = [PathRule::parse("/v1/models/*").expect("below")];
        for path in [
            "/v1/models/../../admin",
            "/v1/models/./a",
            "/v1/models//a",
            "/v1/models/a%2F..%2Fb",
            "/v1/models/%2e%2e/x",
            "/v1/models/a\\b",
        ] {
            assert!(allowed(&rules, None, &Method::GET, path).is_err(), "{path}");
        }
        assert!(PathRule::parse("v1").is_err());
        assert!(PathRule::parse("/v1/*/x").is_err());
        assert!(PathRule::parse("/a/../b").is_err());
        assert_eq!(
            PathRule::parse("/*").expect("all"),
            PathRule::Below("/".into())
        );
    }

    #[test]
    fn the_route_name_and_rest() {
        assert_eq!(
            split("/proxy/openai/v1/models"),
            Some(("openai", "/v1/models"))
        );
        assert_eq!(split("/proxy/openai"), Some(("openai", "/")));
        assert_eq!(split("/v1/models"), None);
    }
}

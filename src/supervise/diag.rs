//! Diagnostics for `plugins.toml`: an error tied to a byte span of the file,
//! rendered as `file:line:col: key.path: message`, and the did-you-mean
//! suggestion for a misspelt key, value or plugin id. It owns no schema;
//! `config` decides what is wrong, this module only says where.

use std::ops::Range;
use std::path::Path;

/// One problem in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Diag {
    /// Bytes of the file the problem is about (for line and column).
    pub span: Range<usize>,
    /// The whole message, key path first. Never holds a value from `env`
    /// or `secret_env_refs` (those could be secrets pasted by mistake).
    pub message: String,
}

impl Diag {
    pub(crate) fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
        }
    }

    /// `file:line:col: message`.
    #[must_use]
    pub(crate) fn render(&self, file: &Path, text: &str) -> String {
        let (line, col) = line_col(text, self.span.start);
        format!("{}:{line}:{col}: {}", file.display(), self.message)
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
#[must_use]
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// The Levenshtein distance between `a` and `b`, in characters.
#[must_use]
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The candidate closest to `typed`, if it is close enough to be a typo:
/// at most a third of the length apart (at least 1, at most 3 edits), or
/// equal but for case.
#[must_use]
pub(crate) fn did_you_mean<'a>(
    typed: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = typed.chars().count().div_ceil(3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(typed) {
                0
            } else {
                distance(&typed.to_ascii_lowercase(), &c.to_ascii_lowercase())
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean "x"?` or nothing.
#[must_use]
pub(crate) fn suggestion<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(typed, candidates).map_or(String::new(), |s| format!("; did you mean \"{s}\"?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_characters() {
        let text = "a = 1\n[é]\nbad = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        let bad = text.find("bad").expect("bad");
        assert_eq!(line_col(text, bad), (3, 1));
        assert_eq!(line_col(text, text.find(']').expect("]")), (2, 3));
    }

    #[test]
    fn typos_are_recognised_and_strangers_are_not() {
        assert_eq!(distance("comand", "command"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        let keys = ["command", "cwd", "crash_loop", "restart"];
        assert_eq!(did_you_mean("comand", keys), Some("command"));
        assert_eq!(did_you_mean("Command", keys), Some("command"));
        assert_eq!(did_you_mean("restrat", keys), Some("restart"));
        assert_eq!(did_you_mean("colour", keys), None);
        assert_eq!(did_you_mean("dbb", ["db", "web"]), Some("db"));
        assert_eq!(suggestion("zzz", ["db"]), "");
    }
}

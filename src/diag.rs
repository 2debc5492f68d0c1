//! Diagnostics for the files people write by hand (`config.toml`,
//! `plugins.toml`, `broker.toml`) and for names they type: an error tied to
//! a byte span of a file, rendered as `file:line:col: key.path: message`;
//! the line/column index behind it; names quoted short and escaped; and the
//! did-you-mean suggestion for a misspelt key, value, plugin id or handle.
//! It owns no schema and knows no file: each file's parser decides what is
//! wrong, this module only says where and what was probably meant. It sits
//! below everything that uses it and imports nothing of the crate.

use std::ops::Range;
use std::path::Path;

/// One problem in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Diag {
    /// Bytes of the file the problem is about (for line and column).
    pub span: Range<usize>,
    /// The whole message, key path first. Never holds a value that could be
    /// a secret pasted by mistake (plugins' `env` and `secret_env_refs`, a
    /// broker route's `secret`).
    pub message: String,
}

impl Diag {
    pub(crate) fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
        }
    }

    /// `file:line:col: message`; `lines` indexes `text`.
    #[must_use]
    pub(crate) fn render(&self, file: &Path, text: &str, lines: &Lines) -> String {
        let (line, col) = lines.line_col(text, self.span.start);
        format!("{}:{line}:{col}: {}", file.display(), self.message)
    }
}

/// Where each line of a text starts, so that finding the line of an offset
/// costs a binary search rather than a scan from the start (a file with
/// 100,000 problems would otherwise be scanned 100,000 times).
#[derive(Clone, Debug)]
pub(crate) struct Lines {
    /// Byte offset of the start of each line; the first is 0.
    starts: Vec<usize>,
}

impl Lines {
    #[must_use]
    pub(crate) fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    /// The 1-based line of byte `offset`.
    #[must_use]
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// The 1-based line and column (in characters) of byte `offset` of
    /// `text`, the text this index was built from.
    #[must_use]
    pub(crate) fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.line(offset);
        let start = self.starts.get(line - 1).copied().unwrap_or(0).min(offset);
        let col = text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }
}

/// The longest name (in characters) a message quotes whole.
const SHOWN_CHARS: usize = 64;

/// `name` as a message quotes it: escaped, and cut after `SHOWN_CHARS`
/// characters with "…" (a key can be megabytes long).
#[must_use]
pub(crate) fn shown(name: &str) -> String {
    let mut chars = name.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let mut out = head.escape_default().to_string();
    if chars.next().is_some() {
        out.push('…');
    }
    out
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
    let len = typed.chars().count();
    let limit = len.div_ceil(3).clamp(1, 3);
    let lower = typed.to_ascii_lowercase();
    candidates
        .into_iter()
        // The distance is at least the difference in length: skip the
        // computation when that alone is too far (a long key costs nothing).
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(typed) {
                0
            } else {
                distance(&lower, &c.to_ascii_lowercase())
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
        let line_col = |text, offset| Lines::new(text).line_col(text, offset);
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        let bad = text.find("bad").expect("bad");
        assert_eq!(line_col(text, bad), (3, 1));
        assert_eq!(line_col(text, text.find(']').expect("]")), (2, 3));
        assert_eq!(line_col(text, text.len() + 5), (4, 1));
        let lines = Lines::new(text);
        assert_eq!(lines.line(0), 1);
        assert_eq!(lines.line(5), 1, "the newline ends its line");
        assert_eq!(lines.line(bad), 3);
    }

    #[test]
    fn long_names_are_cut_when_shown() {
        assert_eq!(shown("a\tb"), "a\\tb");
        let long = "k".repeat(100_000);
        let s = shown(&long);
        assert_eq!(s.chars().count(), SHOWN_CHARS + 1);
        assert!(s.ends_with('…'));
        assert_eq!(did_you_mean(&long, ["command"]), None);
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

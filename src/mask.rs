//! Streaming redaction for `secret exec --mask`: the [`Redactor`] that the
//! child's stdout and stderr pass through (one per stream), replacing every
//! secret value, and the usual encodings of it, with `<secret:@handle>`. It
//! owns the patterns, the matching and the hold-back of bytes that may yet
//! become a secret; where the values come from is `store`, where the bytes
//! go (and when an idle stream's held bytes are released) is the relay's.
//!
//! What is masked, for each value of at least [`MIN_MASKED_LEN`] bytes
//! (shorter values would mask ordinary text; [`Redactor::new`] returns
//! their labels so the caller can warn):
//!
//! - the raw bytes;
//! - a value with line breaks also with every `\n` written `\r\n` (what a
//!   terminal's ONLCR makes of it, or `sed 's/$/\r/'`), a value with `\r\n`
//!   also with `\n`; and each of its lines alone, without the blanks around
//!   it, when at least [`MIN_MASKED_LEN`] bytes remain (so a line that is
//!   printed alone, or a key printed in any other line ending, is caught);
//! - standard base64 and base64url, each with and without `=` padding, and
//!   MIME base64 (standard, padded, lines of 76 characters as `base64` and
//!   Python's `base64.encodebytes` write it, and of 64 as `openssl base64`
//!   and PEM do; each with `\n` and with `\r\n`) when it is that long;
//! - lowercase and uppercase hex;
//! - URL percent-encoding as RFC 3986 has it (unreserved characters as they
//!   are, every other byte `%XX`), in uppercase and lowercase hex;
//! - for a text (UTF-8) value, the other usual sets of bytes left as they
//!   are, in uppercase hex: RFC 3986's and `/` (Python's `quote`),
//!   JavaScript's `encodeURIComponent` and `encodeURI`; form encoding, with
//!   `+` for a space (Python's `quote_plus`, Go's `QueryEscape`, the WHATWG
//!   set of `URLSearchParams`); and JSON string escaping: `\"`, `\\`, `\b \f \n \r \t` and `\u00xx` for
//!   other control bytes (`JSON.stringify`, serde_json, `json.dumps` with
//!   `ensure_ascii=False`); that with `/` as `\/` (PHP), with every
//!   non-ASCII character as `\uxxxx` (Python's `json.dumps`; UTF-8 values
//!   only), both (PHP's `json_encode`), and with `<`, `>`, `&` as `\u003c`,
//!   `\u003e`, `\u0026` (Go's `encoding/json`). Binary values are printed in
//!   hex or base64, not in these;
//! - the value inside a larger base64 blob: base64 works on 3-byte groups,
//!   so a value that starts at offset 1 or 2 (mod 3) of the encoded data, or
//!   that is followed by more data, is not a substring of its own encoding.
//!   For each of the three alignments the characters whose six bits come
//!   from the value alone are the same whatever surrounds it; that stable
//!   inner part is masked too (both alphabets), but only when it is at
//!   least [`MIN_INNER_BASE64_LEN`] characters (48 bits of the value), so
//!   that a short value cannot mask ordinary base64 by chance: values of 7
//!   bytes or more get it at every alignment. A larger blob wrapped into
//!   lines is caught only where a line holds such a stable part.
//!
//! Hex and percent-encoding are byte-aligned, so a value inside a larger
//! hex or percent-encoded string is always caught. The README lists what is
//! not masked.
//!
//! Values over [`MAX_ENCODED_LEN`] (64 KiB: certificates, key files, not API
//! keys) are masked as they are and in the other line ending only. Their
//! encodings would make some thirty times their length in patterns, and the
//! automaton for those costs seconds and gigabytes to build for a 1 MiB
//! value, against about 0.1 s for the raw form alone (0.2 s with the other
//! line ending; its lines alone, many short patterns, would add over a
//! second). At 64 KiB, every form of a binary value builds in about 0.35 s.
//! Identical patterns are kept once.
//!
//! Matching: at each position, the longest form that starts there (of equal
//! forms, the first secret's) begins a masked span. Forms overlap (two
//! secrets sharing bytes, a value that overlaps itself as `abab` does in
//! `ababab`): the span then grows to the end of every form that starts
//! inside it and ends beyond it, so no tail of a secret is left in clear,
//! and the whole span becomes one marker naming, in order and once each,
//! the secrets whose forms made it: `<secret:@a,@b>`. A form nested inside
//! the span (a line of a value inside the whole value) names nobody.
//!
//! Streaming: the output is exactly what redacting the whole stream at once
//! would give, however the input is cut into pushes. After each push, the
//! only bytes held back are the longest suffix of the not yet emitted input
//! that is a proper prefix of some pattern, so text that cannot begin a
//! secret (a prompt without a newline) is emitted at once; see
//! [`Redactor::push`] for how. A caller that cannot wait for more input
//! releases the held bytes with [`Redactor::flush_held`].
//!
//! Memory: the patterns, the held-back bytes and the scratch space are wiped
//! when dropped, and their buffers are sized up front so that they never
//! move. The aho-corasick automaton keeps its own copy of the patterns,
//! which cannot be wiped: masking keeps the values in memory by design, for
//! as long as the child runs.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, Match, MatchKind, StartKind};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::value::SecretValue;

/// Values shorter than this (in bytes) are not masked.
pub(crate) const MIN_MASKED_LEN: usize = 4;

/// Values longer than this (in bytes) are masked in their raw forms only.
pub const MAX_ENCODED_LEN: usize = 64 << 10;

/// The shortest stable inner part of a misaligned base64 encoding that is
/// masked, in characters.
pub(crate) const MIN_INNER_BASE64_LEN: usize = 8;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UPPER: &[u8; 16] = b"0123456789ABCDEF";
const LOWER: &[u8; 16] = b"0123456789abcdef";

/// A streaming redactor for one output stream.
pub struct Redactor {
    /// `None` when no value was long enough to mask: bytes pass through.
    set: Option<Arc<PatternSet>>,
    /// Bytes of the stream not yet emitted: always a proper prefix of some
    /// pattern (between pushes), shorter than the longest pattern. The first
    /// `covered` of them are accounted for already (see `open`).
    pending: Zeroizing<Vec<u8>>,
    /// How many leading bytes of `pending` lie in a masked span whose marker
    /// is still owed (`open` is not empty), or, after
    /// [`flush_held`](Self::flush_held), were emitted already (`open` is
    /// empty): they are kept only so that a form starting there can still
    /// be found.
    covered: usize,
    /// The markers the open span names so far, in order.
    open: Vec<usize>,
    /// The held-back bytes plus the head of the next input, to find the
    /// matches that straddle a push boundary.
    scratch: Zeroizing<Vec<u8>>,
}

/// The compiled patterns, shared by the redactors of one child.
struct PatternSet {
    /// Anchored only: it says which pattern, if any, starts at a candidate
    /// position that the skip table let through.
    automaton: AhoCorasick,
    /// The skip table: for a hashed block of [`BLOCK`] bytes ending a
    /// window of `window` bytes, how far the window can move without
    /// passing the start of a pattern (0: a pattern may start here).
    skip: Vec<u8>,
    window: usize,
    /// Every pattern, sorted and without duplicates; the automaton's pattern
    /// IDs index this.
    patterns: Vec<Zeroizing<Vec<u8>>>,
    /// For each pattern, the index of its label.
    marker_of: Vec<usize>,
    /// The labels that have patterns, and `<secret:LABEL>` for each.
    labels: Vec<String>,
    markers: Vec<Vec<u8>>,
    max_len: usize,
    /// The first byte of some pattern, bit per byte.
    first: [u64; 4],
    /// The first two bytes of some pattern, bit per pair.
    pairs: Vec<u64>,
}

/// Where a scan stands in a haystack: every byte before `next` is emitted
/// or masked, except that a masked span is open up to `end` when `end >
/// next`, and the forms starting at `next..end` may still extend it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    next: usize,
    end: usize,
}

impl Cursor {
    const START: Self = Self { next: 0, end: 0 };
}

impl Redactor {
    /// A redactor for the values of `secrets`, each a label (the handle as
    /// typed, `@name`) and its value. Returns it with the labels of the
    /// values that are too short to mask (under [`MIN_MASKED_LEN`] bytes),
    /// for the caller to warn about.
    ///
    /// # Errors
    ///
    /// When the automaton cannot be built (far more or far longer values than
    /// `secret` stores).
    pub fn new<'a, L: AsRef<str>>(
        secrets: impl IntoIterator<Item = (L, &'a SecretValue)>,
    ) -> Result<(Self, Vec<String>)> {
        let mut skipped = Vec::new();
        let mut labels = Vec::new();
        let mut found: Vec<(Zeroizing<Vec<u8>>, usize)> = Vec::new();
        for (label, value) in secrets {
            let label = label.as_ref();
            if value.len() < MIN_MASKED_LEN {
                skipped.push(label.to_owned());
                continue;
            }
            let marker = labels.len();
            labels.push(label.to_owned());
            found.extend(encodings(value.expose()).into_iter().map(|p| (p, marker)));
        }
        let set = if found.is_empty() {
            None
        } else {
            Some(Arc::new(PatternSet::new(found, labels, None)?))
        };
        Ok((Self::with(set), skipped))
    }

    /// A redactor that replaces each pattern by its own replacement rather
    /// than a marker (`exec --proxy` puts a placeholder where a value
    /// was). Patterns under [`MIN_MASKED_LEN`] bytes are left out.
    ///
    /// # Errors
    ///
    /// When the automaton cannot be built.
    pub fn replacing(pairs: Vec<(Zeroizing<Vec<u8>>, Vec<u8>)>) -> Result<Self> {
        let mut markers = Vec::new();
        let mut found = Vec::new();
        for (pattern, replacement) in pairs {
            if pattern.len() >= MIN_MASKED_LEN {
                found.push((pattern, markers.len()));
                markers.push(replacement);
            }
        }
        let set = if found.is_empty() {
            None
        } else {
            let labels = markers
                .iter()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect();
            Some(Arc::new(PatternSet::new(found, labels, Some(markers))?))
        };
        Ok(Self::with(set))
    }

    /// A redactor for another stream of the same child: the same values,
    /// nothing held back. The patterns are shared, not copied.
    #[must_use]
    pub fn fresh(&self) -> Self {
        Self::with(self.set.clone())
    }

    fn with(set: Option<Arc<PatternSet>>) -> Self {
        // Pending never exceeds two patterns' worth (held bytes plus a short
        // input), nor scratch (held bytes plus one pattern's worth of input):
        // reserved now, neither buffer ever reallocates and leaves an
        // unwiped copy behind.
        let room = set.as_ref().map_or(0, |s| 2 * s.max_len);
        Self {
            set,
            pending: Zeroizing::new(Vec::with_capacity(room)),
            covered: 0,
            open: Vec::new(),
            scratch: Zeroizing::new(Vec::with_capacity(room)),
        }
    }

    /// How many bytes are held back: the start of a possible match, emitted
    /// (or masked) by the next push, by [`flush_held`](Self::flush_held) or
    /// by [`finish`](Self::finish). Not zero while a marker is owed.
    #[must_use]
    pub fn held(&self) -> usize {
        if self.open.is_empty() {
            self.pending.len() - self.covered
        } else {
            self.pending.len()
        }
    }

    /// Redacts `input`, the next bytes of the stream, appending to `out`
    /// everything that can no longer be part of a match.
    ///
    /// The data is D = held bytes + `input`. Let T be the positions t where
    /// D\[t..\] is a proper prefix of some pattern: only there can a match
    /// start that needs bytes not yet seen. From the current position, the
    /// leftmost-longest match in D is taken when it starts before the first
    /// t in T (nothing unseen can start earlier or make it longer);
    /// otherwise D is emitted up to that t and the rest is held. A taken
    /// match opens a masked span, which every later match starting inside it
    /// extends; the span's marker is emitted once no position of it is left
    /// to look at, or the rest of it is held (from its first position in T)
    /// with the marker owed. T is found in the last (longest pattern − 1)
    /// bytes only, with a two-byte filter and a binary search of the sorted
    /// patterns.
    ///
    /// The search runs over `input` in place; only the held bytes and the
    /// first (longest pattern) bytes of `input` are copied, to find the
    /// matches across the boundary. On ordinary text a push costs time in
    /// proportion to its length plus the held bytes (rescanned; shorter than
    /// the longest pattern). Text made to resemble the start of a pattern
    /// at every position can cost up to the longest pattern's length per
    /// byte, and so can the masked text of a value that overlaps itself
    /// over most of its length (a long run of one byte).
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Some(set) = self.set.as_deref() else {
            out.extend_from_slice(input);
            return;
        };
        let held = self.pending.len();
        if held == 0 {
            let at = set.redact(input, Cursor::START, input.len(), true, &mut self.open, out);
            self.pending.extend_from_slice(&input[at.next..]);
            self.covered = at.end - at.next;
        } else if input.len() < set.max_len {
            self.pending.extend_from_slice(input);
            let from = Cursor {
                next: 0,
                end: self.covered,
            };
            let at = set.redact(
                &self.pending,
                from,
                self.pending.len(),
                true,
                &mut self.open,
                out,
            );
            self.pending.drain(..at.next);
            self.covered = at.end - at.next;
        } else {
            // Every match that starts in the held bytes ends within the next
            // max_len bytes, and no position up to the end of the held bytes
            // is in T (the input is at least max_len long): what the scan
            // does there is final. It stops at the end of the held bytes, the
            // masked span perhaps still open, and goes on in the input.
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.pending);
            self.scratch.extend_from_slice(&input[..set.max_len]);
            let from = Cursor {
                next: 0,
                end: self.covered,
            };
            let at = set.redact(&self.scratch, from, held, false, &mut self.open, out);
            let from = Cursor {
                next: 0,
                end: at.end - held,
            };
            self.pending.clear();
            let at = set.redact(input, from, input.len(), true, &mut self.open, out);
            self.pending.extend_from_slice(&input[at.next..]);
            self.covered = at.end - at.next;
        }
    }

    /// Releases the held bytes now, for a stream that has been idle (a
    /// prompt waiting for an answer): redacts them as at the end of the
    /// stream (a whole form among them is masked, an owed marker emitted, a
    /// partial prefix of a form shown as it is), but keeps watching them. If
    /// later bytes complete a form that began in the released ones, the
    /// part not yet shown is masked: `sk-ab`, released, then `c123` comes out
    /// as `sk-ab<secret:@k>`. That released prefix (shorter than the longest
    /// form) is the price of not holding a prompt back forever; with no
    /// release the whole value would be masked.
    pub fn flush_held(&mut self, out: &mut Vec<u8>) {
        let Some(set) = self.set.as_deref() else {
            return;
        };
        let from = Cursor {
            next: 0,
            end: self.covered,
        };
        let len = self.pending.len();
        set.redact(&self.pending, from, len, false, &mut self.open, out);
        let watch = set.first_possible_start(&self.pending, 0);
        self.pending.drain(..watch);
        self.covered = self.pending.len();
    }

    /// The end of the stream: redacts and emits the held bytes. A partial
    /// prefix of a secret comes out unchanged (it is not the secret). The
    /// redactor can then start another stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(set) = self.set.as_deref() {
            let from = Cursor {
                next: 0,
                end: self.covered,
            };
            set.redact(
                &self.pending,
                from,
                self.pending.len(),
                false,
                &mut self.open,
                out,
            );
        }
        self.pending.clear();
        self.covered = 0;
        self.open.clear();
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field(
                "patterns",
                &self.set.as_ref().map_or(0, |s| s.patterns.len()),
            )
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

impl PatternSet {
    /// `markers`, when given, replace `<secret:LABEL>` one for one (the
    /// proxy's placeholders).
    fn new(
        mut found: Vec<(Zeroizing<Vec<u8>>, usize)>,
        labels: Vec<String>,
        markers: Option<Vec<Vec<u8>>>,
    ) -> Result<Self> {
        // Stable: of equal patterns, the first secret's stays first.
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.dedup_by(|later, earlier| later.0 == earlier.0);
        let (patterns, marker_of): (Vec<_>, Vec<_>) = found.into_iter().unzip();
        let automaton = build(&patterns)?;
        let mut first = [0u64; 4];
        let mut pairs = vec![0u64; 1 << 10];
        for p in &patterns {
            if let [a, rest @ ..] = p.as_slice() {
                first[usize::from(*a) >> 6] |= 1 << (a & 63);
                if let [b, ..] = rest {
                    let pair = usize::from(*a) << 8 | usize::from(*b);
                    pairs[pair >> 6] |= 1 << (pair & 63);
                }
            }
        }
        let min_len = patterns.iter().map(|p| p.len()).min().unwrap_or(0);
        // Every pattern is at least MIN_MASKED_LEN > BLOCK bytes long.
        let window = min_len.min(MAX_WINDOW);
        let mut skip = vec![u8::try_from(window + 1 - BLOCK).unwrap_or(u8::MAX); 1 << SKIP_BITS];
        for p in &patterns {
            for end in BLOCK - 1..window {
                let shift = u8::try_from(window - 1 - end).unwrap_or(u8::MAX);
                let slot = &mut skip[block_hash(p, end)];
                *slot = (*slot).min(shift);
            }
        }
        let markers = markers.unwrap_or_else(|| {
            labels
                .iter()
                .map(|l| format!("<secret:{l}>").into_bytes())
                .collect()
        });
        Ok(Self {
            max_len: patterns.iter().map(|p| p.len()).max().unwrap_or(0),
            automaton,
            skip,
            window,
            patterns,
            marker_of,
            labels,
            markers,
            first,
            pairs,
        })
    }

    /// The leftmost-longest match in `hay[pos..]`.
    ///
    /// A Wu-Manber scan: a window of `window` bytes (no longer than the
    /// shortest pattern) slides over the haystack; the hashed block of
    /// [`BLOCK`] bytes at its end says how far it can jump, and where it
    /// cannot, the anchored automaton checks for a pattern at the window's
    /// start. Candidates come in increasing order, so the first match is the
    /// leftmost, and the anchored leftmost-longest search makes it the
    /// longest there. On text without secrets most windows jump by nearly
    /// their length: this is what makes masking run at several GB/s where
    /// the automaton alone manages well under one.
    fn find(&self, hay: &[u8], pos: usize) -> Option<Match> {
        let mut end = pos + self.window - 1;
        while end < hay.len() {
            let shift = self.skip[block_hash(hay, end)];
            if shift != 0 {
                end += usize::from(shift);
                continue;
            }
            let start = end + 1 - self.window;
            if self.could_start_here(&hay[start..]) {
                let input = Input::new(hay).range(start..).anchored(Anchored::Yes);
                if let Some(m) = self.automaton.find(input) {
                    return Some(m);
                }
            }
            end += 1;
        }
        None
    }

    /// Redacts `hay` from `at` into `out`, taking matches that start before
    /// `limit` only. With `hold`, also stops at the first position of T (see
    /// [`Redactor::push`]). Returns where it stopped: the caller keeps
    /// `hay[next..]`, of which `end - next` bytes lie in the masked span
    /// still open, whose markers `open` holds. Without `hold` and with
    /// `limit` at the end (end of stream), every span is closed.
    fn redact(
        &self,
        hay: &[u8],
        mut at: Cursor,
        limit: usize,
        hold: bool,
        open: &mut Vec<usize>,
        out: &mut Vec<u8>,
    ) -> Cursor {
        let stop = if hold {
            self.first_possible_start(hay, at.next).min(limit)
        } else {
            limit
        };
        loop {
            match self.find(hay, at.next).filter(|m| m.start() < stop) {
                // Inside the open span: it grows to the end of this match.
                Some(m) if m.start() < at.end => {
                    if m.end() > at.end {
                        let marker = self.marker_of[m.pattern().as_usize()];
                        if !open.contains(&marker) {
                            open.push(marker);
                        }
                        at.end = m.end();
                    }
                    at.next = m.start() + 1;
                }
                Some(m) => {
                    self.close(open, out);
                    out.extend_from_slice(&hay[at.end..m.start()]);
                    open.push(self.marker_of[m.pattern().as_usize()]);
                    at = Cursor {
                        next: m.start() + 1,
                        end: m.end(),
                    };
                }
                None if stop < at.end => return Cursor { next: stop, ..at },
                None => {
                    self.close(open, out);
                    out.extend_from_slice(&hay[at.end..stop]);
                    return Cursor {
                        next: stop,
                        end: stop,
                    };
                }
            }
        }
    }

    /// Emits the marker of the masked span that `open` names, if any:
    /// `<secret:@a>`, or `<secret:@a,@b>` for the union of two secrets'.
    fn close(&self, open: &mut Vec<usize>, out: &mut Vec<u8>) {
        match open.as_slice() {
            [] => {}
            [one] => out.extend_from_slice(&self.markers[*one]),
            [first, rest @ ..] => {
                out.extend_from_slice(b"<secret:");
                out.extend_from_slice(self.labels[*first].as_bytes());
                for i in rest {
                    out.push(b',');
                    out.extend_from_slice(self.labels[*i].as_bytes());
                }
                out.push(b'>');
            }
        }
        open.clear();
    }

    /// The first `t >= from` where `hay[t..]` is a proper prefix of some
    /// pattern, or `hay.len()`.
    fn first_possible_start(&self, hay: &[u8], from: usize) -> usize {
        let end = hay.len();
        let lo = from.max(end.saturating_sub(self.max_len.saturating_sub(1)));
        (lo..end)
            .find(|&t| self.is_proper_prefix(&hay[t..]))
            .unwrap_or(end)
    }

    /// Whether some pattern starts with the first two bytes of `x` (or its
    /// only byte): a quick filter.
    fn could_start_here(&self, x: &[u8]) -> bool {
        match x {
            [] => false,
            [a] => self.first[usize::from(*a) >> 6] & 1 << (a & 63) != 0,
            [a, b, ..] => {
                let pair = usize::from(*a) << 8 | usize::from(*b);
                self.pairs[pair >> 6] & 1 << (pair & 63) != 0
            }
        }
    }

    fn is_proper_prefix(&self, x: &[u8]) -> bool {
        if !self.could_start_here(x) {
            return false;
        }
        // The patterns that start with x are contiguous and begin at the
        // first one not less than x; that one may be x itself.
        let i = self.patterns.partition_point(|p| p.as_slice() < x);
        self.patterns[i..]
            .iter()
            .take(2)
            .any(|p| p.len() > x.len() && p.starts_with(x))
    }
}

/// The skip table's block length, in bytes.
const BLOCK: usize = 3;
/// The skip table has 2^SKIP_BITS one-byte entries.
const SKIP_BITS: u32 = 16;
/// The longest window: longer ones fill the table with short shifts.
const MAX_WINDOW: usize = 32;

/// The skip table slot of the [`BLOCK`] bytes that end at `hay[end]`
/// (`end >= BLOCK - 1`).
fn block_hash(hay: &[u8], end: usize) -> usize {
    let x = u32::from(hay[end - 2]) | u32::from(hay[end - 1]) << 8 | u32::from(hay[end]) << 16;
    (x.wrapping_mul(0x9E37_79B1) >> (32 - SKIP_BITS)) as usize
}

/// The automaton, anchored only (the skip scan finds where to try it). A
/// contiguous NFA: it checks a candidate as fast as a DFA would (candidates
/// are rare), builds several times faster (2.5 ms against 17 for 100 keys,
/// which `secret exec` pays at every launch) and its size grows with the
/// patterns' total length, where a DFA's could reach gigabytes for a large
/// value.
fn build(patterns: &[Zeroizing<Vec<u8>>]) -> Result<AhoCorasick> {
    let builder = |kind| {
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .prefilter(false)
            .kind(kind)
            .build(patterns.iter().map(|p| p.as_slice()))
    };
    builder(Some(AhoCorasickKind::ContiguousNFA))
        .or_else(|_| builder(Some(AhoCorasickKind::NoncontiguousNFA)))
        .map_err(|_| {
            Error::usage_hint(
                "the secrets are too many or too long to mask",
                "run without --mask, or with fewer secrets",
            )
        })
}

/// Every form of `value` to mask, each once.
fn encodings(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = vec![Zeroizing::new(value.to_vec())];
    forms.extend(other_line_ending(value));
    if value.len() <= MAX_ENCODED_LEN {
        forms.extend(lines(value));
        for alphabet in [STANDARD, URL_SAFE] {
            forms.push(base64(value, alphabet, true));
            forms.push(base64(value, alphabet, false));
            for offset in 0..3 {
                if let Some(inner) = base64_inner(value, offset, alphabet) {
                    forms.push(inner);
                }
            }
        }
        let mime = base64(value, STANDARD, true);
        for width in [76, 64] {
            if mime.len() > width {
                forms.push(wrap(&mime, width, b"\n"));
                forms.push(wrap(&mime, width, b"\r\n"));
            }
        }
        forms.push(hex(value, LOWER));
        forms.push(hex(value, UPPER));
        forms.push(percent(value, is_unreserved, false, UPPER));
        forms.push(percent(value, is_unreserved, false, LOWER));
        // Text escapings: for text only (JSON cannot carry other bytes, and
        // binary keys are printed in hex or base64), which also keeps a
        // 64 KiB binary value's patterns to some 25 times its length.
        if let Ok(text) = std::str::from_utf8(value) {
            for (keep, plus) in PERCENT_SETS {
                forms.push(percent(value, keep, plus, UPPER));
            }
            forms.extend(json_forms(text));
        }
    }
    forms.sort_unstable_by(|a, b| a.cmp(b));
    forms.dedup();
    forms
}

/// A value with line breaks in the other line ending: every `\n` as
/// `\r\n`, and every `\r\n` as `\n` (when that differs from the value).
fn other_line_ending(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = Vec::new();
    if !value.contains(&b'\n') {
        return forms;
    }
    let mut crlf = Zeroizing::new(Vec::with_capacity(2 * value.len()));
    let mut lf = Zeroizing::new(Vec::with_capacity(value.len()));
    for (i, &b) in value.iter().enumerate() {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
        if !(b == b'\r' && value.get(i + 1) == Some(&b'\n')) {
            lf.push(b);
        }
    }
    forms.push(crlf);
    forms.push(lf);
    forms
}

/// Each line of a value with line breaks alone, blanks around it trimmed,
/// when at least [`MIN_MASKED_LEN`] bytes are left.
fn lines(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    if !value.contains(&b'\n') {
        return Vec::new();
    }
    value
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| line.len() >= MIN_MASKED_LEN)
        .map(|line| Zeroizing::new(line.to_vec()))
        .collect()
}

fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(data.len().div_ceil(3) * 4));
    for group in data.chunks(3) {
        let b = [0, 1, 2].map(|i| group.get(i).copied().unwrap_or(0));
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let chars = group.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize]);
            } else if pad {
                out.push(b'=');
            }
        }
    }
    out
}

/// `text` cut into lines of `width` bytes joined by `eol` (none after the
/// last: what follows the encoding is not part of it).
fn wrap(text: &[u8], width: usize, eol: &[u8]) -> Zeroizing<Vec<u8>> {
    let lines = text.len().div_ceil(width);
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() + lines * eol.len()));
    for (i, line) in text.chunks(width).enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(line);
    }
    out
}

/// The characters of the base64 encoding of `value`, placed `offset` bytes
/// into a 3-byte group and followed by anything, that depend on `value`
/// alone: character i carries bits 6i..6i+6, stable when they all fall
/// within the value's bits 8·offset..8·(offset + len).
fn base64_inner(value: &[u8], offset: usize, alphabet: &[u8; 64]) -> Option<Zeroizing<Vec<u8>>> {
    let first = (8 * offset).div_ceil(6);
    let end = 8 * (offset + value.len()) / 6;
    if end < first + MIN_INNER_BASE64_LEN {
        return None;
    }
    let mut shifted = Zeroizing::new(Vec::with_capacity(offset + value.len()));
    shifted.resize(offset, 0);
    shifted.extend_from_slice(value);
    let encoded = base64(&shifted, alphabet, false);
    Some(Zeroizing::new(encoded[first..end].to_vec()))
}

fn hex(value: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(2 * value.len()));
    for &b in value {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 15)]);
    }
    out
}

/// RFC 3986's unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// What JavaScript's `encodeURIComponent` leaves as it is.
fn is_uri_component(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Which bytes a percent-encoding leaves as they are.
type Keep = fn(u8) -> bool;

/// The bytes left as they are by each percent-encoding of text masked (in
/// uppercase hex), and whether a space is `+`.
const PERCENT_SETS: [(Keep, bool); 5] = [
    // Python's quote(): safe="/".
    (|b| is_unreserved(b) || b == b'/', false),
    (is_uri_component, false),
    // encodeURI: also the reserved characters and '#'.
    (
        |b| is_uri_component(b) || b";,/?:@&=+$#".contains(&b),
        false,
    ),
    // Python's quote_plus and urlencode, Go's QueryEscape.
    (is_unreserved, true),
    // application/x-www-form-urlencoded as WHATWG (URLSearchParams) has it.
    (|b| b.is_ascii_alphanumeric() || b"*-._".contains(&b), true),
];

fn percent(
    value: &[u8],
    keep: fn(u8) -> bool,
    plus: bool,
    digits: &[u8; 16],
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(3 * value.len()));
    for &b in value {
        if keep(b) {
            out.push(b);
        } else if plus && b == b' ' {
            out.push(b'+');
        } else {
            out.push(b'%');
            out.push(digits[usize::from(b >> 4)]);
            out.push(digits[usize::from(b & 15)]);
        }
    }
    out
}

/// The JSON string escapings of `value` (see the module documentation).
fn json_forms(text: &str) -> Vec<Zeroizing<Vec<u8>>> {
    let value = text.as_bytes();
    let mut forms = Vec::with_capacity(5);
    for (slash, html) in [(false, false), (true, false), (false, true)] {
        forms.push(json(value, slash, html));
    }
    if !text.is_ascii() {
        for slash in [false, true] {
            let mut out = Zeroizing::new(Vec::with_capacity(6 * value.len()));
            let mut units = [0u16; 2];
            for (i, c) in text.char_indices() {
                if c.is_ascii() {
                    json_byte(value[i], slash, false, &mut out);
                } else {
                    for &u in c.encode_utf16(&mut units).iter() {
                        push_u_escape(u, &mut out);
                    }
                }
            }
            forms.push(out);
        }
    }
    forms
}

/// `value` JSON-escaped byte by byte, non-ASCII bytes as they are; `/` as
/// `\/` with `slash`; `<`, `>`, `&` as `\u00xx` with `html`.
fn json(value: &[u8], slash: bool, html: bool) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(6 * value.len()));
    for &b in value {
        json_byte(b, slash, html, &mut out);
    }
    out
}

fn json_byte(b: u8, slash: bool, html: bool, out: &mut Vec<u8>) {
    let short = match b {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'/' if slash => Some(b'/'),
        0x08 => Some(b'b'),
        0x0c => Some(b'f'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        _ => None,
    };
    if let Some(c) = short {
        out.extend_from_slice(&[b'\\', c]);
    } else if b < 0x20 || html && matches!(b, b'<' | b'>' | b'&') {
        push_u_escape(u16::from(b), out);
    } else {
        out.push(b);
    }
}

/// `\uxxxx`, lowercase hex as Python, JavaScript and Go write it.
fn push_u_escape(unit: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(LOWER[usize::from(unit >> shift & 15)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"sk-abc123";

    fn redactor(secrets: &[(&str, &[u8])]) -> (Redactor, Vec<String>) {
        let values: Vec<(&str, SecretValue)> = secrets
            .iter()
            .map(|(l, v)| (*l, SecretValue::new(v.to_vec())))
            .collect();
        Redactor::new(values.iter().map(|(l, v)| (*l, v))).expect("redactor")
    }

    fn one(value: &[u8]) -> Redactor {
        redactor(&[("@k", value)]).0
    }

    /// The whole input in one push, then finish.
    fn at_once(r: &mut Redactor, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        r.push(input, &mut out);
        r.finish(&mut out);
        out
    }

    fn in_pieces<'a>(r: &mut Redactor, pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            r.push(p, &mut out);
        }
        r.finish(&mut out);
        out
    }

    fn show(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn the_raw_value_is_masked() {
        let out = at_once(&mut one(KEY), b"key=sk-abc123 and again sk-abc123\n");
        assert_eq!(show(&out), "key=<secret:@k> and again <secret:@k>\n");
    }

    #[test]
    fn the_marker_names_the_label_never_the_value() {
        let (mut r, _) = redactor(&[("@openai_api_key", b"sk-proj-0123456789")]);
        let out = at_once(&mut r, b"Authorization: Bearer sk-proj-0123456789\r\n");
        let out = show(&out);
        assert_eq!(out, "Authorization: Bearer <secret:@openai_api_key>\r\n");
        assert!(!out.contains("sk-proj"), "{out}");
        assert!(!format!("{r:?}").contains("sk-proj"));
    }

    #[test]
    fn every_encoding_is_masked() {
        // '+' and '/' in base64, '-' and '_' in base64url, reserved bytes
        // for percent-encoding, a length that needs padding.
        let value: &[u8] = b"p@ss w/rd:\xfb\xff?&=10";
        let forms: Vec<(&str, Vec<u8>)> = vec![
            ("base64", base64(value, STANDARD, true).to_vec()),
            ("base64 unpadded", base64(value, STANDARD, false).to_vec()),
            ("base64url", base64(value, URL_SAFE, true).to_vec()),
            (
                "base64url unpadded",
                base64(value, URL_SAFE, false).to_vec(),
            ),
            ("hex", hex(value, b"0123456789abcdef").to_vec()),
            ("HEX", hex(value, b"0123456789ABCDEF").to_vec()),
            (
                "percent",
                percent(value, is_unreserved, false, UPPER).to_vec(),
            ),
            (
                "percent lower",
                percent(value, is_unreserved, false, LOWER).to_vec(),
            ),
        ];
        // The encoders against known answers, so the masking below is of the
        // right strings.
        assert_eq!(show(&forms[0].1), "cEBzcyB3L3JkOvv/PyY9MTA=");
        assert_eq!(show(&forms[1].1), "cEBzcyB3L3JkOvv/PyY9MTA");
        assert_eq!(show(&forms[2].1), "cEBzcyB3L3JkOvv_PyY9MTA=");
        assert_eq!(show(&forms[4].1), "7040737320772f72643afbff3f263d3130");
        assert_eq!(show(&forms[5].1), "7040737320772F72643AFBFF3F263D3130");
        assert_eq!(show(&forms[6].1), "p%40ss%20w%2Frd%3A%FB%FF%3F%26%3D10");
        assert_eq!(show(&forms[7].1), "p%40ss%20w%2frd%3a%fb%ff%3f%26%3d10");
        for (name, form) in forms {
            let mut input = b"before ".to_vec();
            input.extend_from_slice(&form);
            input.extend_from_slice(b" after");
            let out = at_once(&mut one(value), &input);
            assert_eq!(show(&out), "before <secret:@k> after", "{name}");
        }
    }

    #[test]
    fn a_very_long_value_is_masked_raw_only() {
        let long: Vec<u8> = Rng(7)
            .bytes(MAX_ENCODED_LEN + 1)
            .into_iter()
            .map(|b| b'A' + b % 26)
            .collect();
        assert_eq!(encodings(&long).len(), 1);
        assert!(encodings(&long[1..]).len() > 8);
        let mut input = b"[".to_vec();
        input.extend_from_slice(&long);
        input.push(b']');
        assert_eq!(at_once(&mut one(&long), &input), b"[<secret:@k>]");
    }

    #[test]
    fn forms_equal_to_the_raw_value_are_kept_once() {
        // An API key's characters: every URL and JSON form is the value.
        let forms = encodings(b"plain-value_1.0");
        assert!(
            !forms
                .iter()
                .any(|f| f.contains(&b'%') || f.contains(&b'\\'))
        );
        assert_eq!(
            forms
                .iter()
                .filter(|f| f.as_slice() == b"plain-value_1.0")
                .count(),
            1
        );
        // '~' is kept by all but the WHATWG form encoding.
        let forms = encodings(b"plain~value");
        let percent: Vec<_> = forms.iter().filter(|f| f.contains(&b'%')).collect();
        assert_eq!(percent.len(), 1);
        assert_eq!(percent[0].as_slice(), b"plain%7Evalue");
    }

    #[test]
    fn a_value_inside_a_larger_base64_blob_is_masked() {
        let value: &[u8] = b"ghp_0123456789abcdefXYZ";
        for before in 0..6 {
            for after in 0..4 {
                let mut data = b"{\"k\":\"".to_vec();
                data.truncate(before);
                data.extend_from_slice(value);
                data.extend_from_slice(&b"\"}\n"[..after.min(3)]);
                for alphabet in [STANDARD, URL_SAFE] {
                    let blob = base64(&data, alphabet, true);
                    let out = at_once(&mut one(value), &blob);
                    let out = show(&out);
                    assert!(out.contains("<secret:@k>"), "{before} {after}: {out}");
                    // Only the characters that carry the neighbours' bits
                    // (and padding) are left.
                    let left = out.len() - "<secret:@k>".len();
                    assert!(left <= 4 * (before + after) / 3 + 6, "{out}");
                }
            }
        }
    }

    #[test]
    fn short_values_have_no_inner_base64_form() {
        // 4 bytes: at most 5 stable characters, under the floor of 8.
        assert!((0..3).all(|o| base64_inner(b"abcd", o, STANDARD).is_none()));
        assert!(base64_inner(b"abcdefgh", 1, STANDARD).is_some());
        for o in 0..3 {
            if let Some(inner) = base64_inner(b"abcdefgh", o, STANDARD) {
                assert!(inner.len() >= MIN_INNER_BASE64_LEN);
            }
        }
    }

    #[test]
    fn a_value_split_anywhere_across_two_pushes_is_masked() {
        let input = b"token: sk-abc123\n";
        for cut in 0..=input.len() {
            let out = in_pieces(&mut one(KEY), [&input[..cut], &input[cut..]]);
            assert_eq!(show(&out), "token: <secret:@k>\n", "cut at {cut}");
        }
    }

    #[test]
    fn a_value_fed_one_byte_at_a_time_is_masked() {
        let input = b"a sk-abc123 b c2stYWJjMTIz c sk-sk-abc123";
        let out = in_pieces(&mut one(KEY), input.chunks(1));
        assert_eq!(show(&out), "a <secret:@k> b <secret:@k> c sk-<secret:@k>");
    }

    /// The specification, naively: at each position the longest form of any
    /// secret (the first secret's on a tie) starts a span, which grows to
    /// the end of the longest form starting at each later position inside
    /// it when that ends beyond it; the span is replaced by a marker naming
    /// the secrets that made it. Else the byte is kept.
    fn reference(secrets: &[(&str, &[u8])], input: &[u8]) -> Vec<u8> {
        let forms = forms(secrets);
        let longest_at = |i: usize| {
            forms
                .iter()
                .filter(|(f, _)| input[i..].starts_with(f))
                .fold(None::<&(Vec<u8>, String)>, |best, f| match best {
                    Some(b) if b.0.len() >= f.0.len() => Some(b),
                    _ => Some(f),
                })
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            let Some((form, label)) = longest_at(i) else {
                out.push(input[i]);
                i += 1;
                continue;
            };
            let mut names = vec![label.as_str()];
            let mut end = i + form.len();
            let mut t = i + 1;
            while t < end {
                if let Some((f, l)) = longest_at(t).filter(|(f, _)| t + f.len() > end) {
                    end = t + f.len();
                    if !names.contains(&l.as_str()) {
                        names.push(l);
                    }
                }
                t += 1;
            }
            out.extend_from_slice(format!("<secret:{}>", names.join(",")).as_bytes());
            i = end;
        }
        out
    }

    fn forms(secrets: &[(&str, &[u8])]) -> Vec<(Vec<u8>, String)> {
        secrets
            .iter()
            .filter(|(_, v)| v.len() >= MIN_MASKED_LEN)
            .flat_map(|(l, v)| {
                encodings(v)
                    .into_iter()
                    .map(move |f| (f.to_vec(), (*l).to_owned()))
            })
            .collect()
    }

    /// Random secrets over a small alphabet (so that they overlap and share
    /// prefixes), random text with their forms planted in it, cut into
    /// random pieces: the output is the reference's, and after every push
    /// the held bytes are a proper prefix of a pattern; before any match,
    /// exactly the longest such suffix.
    #[test]
    fn random_streams_match_the_reference() {
        let mut rng = Rng(0x5eed_0fc0_ffee);
        const ALPHABET: &[u8] = b"ab+/=%-_\x00\xff\n\"";
        for round in 0..400 {
            let values: Vec<Vec<u8>> = (0..1 + rng.below(4))
                .map(|_| {
                    let n = 2 + rng.below(if round % 2 == 0 { 8 } else { 24 });
                    (0..n)
                        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                        .collect()
                })
                .collect();
            let labels = ["@a", "@b", "@c", "@d"];
            let secrets: Vec<(&str, &[u8])> = labels
                .iter()
                .copied()
                .zip(values.iter().map(Vec::as_slice))
                .collect();
            let forms = forms(&secrets);
            let mut input = Vec::new();
            for _ in 0..rng.below(12) {
                for _ in 0..rng.below(30) {
                    input.push(ALPHABET[rng.below(ALPHABET.len())]);
                }
                if !forms.is_empty() && rng.below(3) > 0 {
                    let form = &forms[rng.below(forms.len())].0;
                    // Whole, or cut short.
                    let end = if rng.below(4) == 0 {
                        rng.below(form.len() + 1)
                    } else {
                        form.len()
                    };
                    input.extend_from_slice(&form[..end]);
                }
            }
            let expected = reference(&secrets, &input);
            let is_proper_prefix = |x: &[u8]| {
                forms
                    .iter()
                    .any(|(f, _)| f.len() > x.len() && f.starts_with(x))
            };

            let (mut r, _) = redactor(&secrets);
            let capacity = r.pending.capacity();
            let mut out = Vec::new();
            let mut rest = input.as_slice();
            let mut seen = 0;
            while !rest.is_empty() {
                let most = if rng.below(2) == 0 { 3 } else { 64 };
                let n = 1 + rng.below(rest.len().min(most));
                let (piece, tail) = rest.split_at(n);
                r.push(piece, &mut out);
                rest = tail;
                seen += n;
                let stream = &input[..seen];
                let held = &r.pending[..];
                assert!(stream.ends_with(held));
                assert!(held.is_empty() || is_proper_prefix(held), "round {round}");
                if !out.contains(&b'<') && r.open.is_empty() {
                    let longest = (0..=seen)
                        .find(|&t| t == seen || is_proper_prefix(&stream[t..]))
                        .map_or(0, |t| seen - t);
                    assert_eq!(held.len(), longest, "round {round}");
                    assert_eq!(out, stream[..seen - held.len()]);
                }
            }
            r.finish(&mut out);
            assert_eq!(r.pending.capacity(), capacity, "the held bytes never moved");
            assert_eq!(
                show(&out),
                show(&expected),
                "round {round}: {}",
                show(&input)
            );
        }
    }

    #[test]
    fn any_cutting_gives_the_same_output_as_one_push() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let secrets: &[(&str, &[u8])] = &[
            ("@a", b"abab"),
            ("@b", b"ababab"),
            ("@c", b"babba"),
            ("@d", b"aab%b"),
        ];
        for _ in 0..300 {
            let n = rng.below(80);
            let input: Vec<u8> = (0..n).map(|_| b"ab%2"[rng.below(4)]).collect();
            let whole = at_once(&mut redactor(secrets).0, &input);
            let mut r = redactor(secrets).0;
            let mut out = Vec::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(1 + rng.below(rest.len().min(12)));
                r.push(piece, &mut out);
                rest = tail;
            }
            r.finish(&mut out);
            assert_eq!(show(&out), show(&whole), "input {}", show(&input));
            assert_eq!(show(&out), show(&reference(secrets, &input)));
        }
    }

    #[test]
    fn text_without_secrets_passes_through_unchanged() {
        let text = b"2024-05-01T12:00:00Z INFO listening on 0.0.0.0:8080\nready> ";
        let mut r = one(KEY);
        let mut out = Vec::new();
        r.push(text, &mut out);
        assert_eq!(out, text, "all of it at once, nothing held");
        assert_eq!(r.held(), 0);

        let mut rng = Rng(42);
        let random = rng.bytes(1 << 16);
        let (mut many, _) = redactor(&[("@a", b"\x00\x01\x02\x03\x04"), ("@b", KEY)]);
        assert_eq!(at_once(&mut many, &random), random);
        let mut out = Vec::new();
        for piece in random.chunks(977) {
            many.push(piece, &mut out);
        }
        many.finish(&mut out);
        assert_eq!(out, random);
    }

    #[test]
    fn only_a_possible_start_of_a_secret_is_held() {
        let mut r = one(KEY);
        let mut out = Vec::new();
        r.push(b"hello sk-ab", &mut out);
        assert_eq!(show(&out), "hello ");
        assert_eq!(r.held(), "sk-ab".len());

        r.push(b"x", &mut out);
        assert_eq!(show(&out), "hello sk-abx");
        assert_eq!(r.held(), 0);

        let mut r = one(KEY);
        let mut out = Vec::new();
        r.push(b"hello world", &mut out);
        assert_eq!(show(&out), "hello world");
        assert_eq!(r.held(), 0);

        // The longest such suffix: "sk-sk-" could be "sk-" + "sk-abc123".
        let mut r = one(KEY);
        let mut out = Vec::new();
        r.push(b"> sk-sk-", &mut out);
        assert_eq!(show(&out), "> sk-");
        assert_eq!(r.held(), 3);
    }

    #[test]
    fn finish_flushes_a_held_prefix_unchanged() {
        let mut r = one(KEY);
        let mut out = Vec::new();
        r.push(b"partial: sk-abc12", &mut out);
        assert_eq!(r.held(), "sk-abc12".len());
        r.finish(&mut out);
        assert_eq!(show(&out), "partial: sk-abc12");
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn a_shorter_match_waits_for_a_possible_longer_one() {
        let (mut r, _) = redactor(&[("@short", b"abcd"), ("@long", b"abcdefgh")]);
        let mut out = Vec::new();
        r.push(b"x abcdef", &mut out);
        assert_eq!(show(&out), "x ", "abcd could still become abcdefgh");
        r.push(b"gh y abcd", &mut out);
        assert_eq!(show(&out), "x <secret:@long> y ");
        r.push(b"!", &mut out);
        assert_eq!(show(&out), "x <secret:@long> y <secret:@short>!");
    }

    #[test]
    fn overlapping_secrets_pick_the_longest() {
        let secrets: &[(&str, &[u8])] = &[("@short", b"abcd"), ("@long", b"abcdefgh")];
        let out = at_once(&mut redactor(secrets).0, b"abcdefgh abcdefg abcd");
        assert_eq!(
            show(&out),
            "<secret:@long> <secret:@short>efg <secret:@short>"
        );
        // Given in the other order, the same.
        let secrets: &[(&str, &[u8])] = &[("@long", b"abcdefgh"), ("@short", b"abcd")];
        let out = at_once(&mut redactor(secrets).0, b"abcdefgh abcdefg abcd");
        assert_eq!(
            show(&out),
            "<secret:@long> <secret:@short>efg <secret:@short>"
        );
    }

    #[test]
    fn overlapping_secrets_are_masked_whole() {
        let secrets: &[(&str, &[u8])] = &[("@x", b"1234"), ("@y", b"34567")];
        let out = at_once(&mut redactor(secrets).0, b"1234567 1234 34567");
        assert_eq!(show(&out), "<secret:@x,@y> <secret:@x> <secret:@y>");
        // The issue's case: no tail of the second is left.
        let secrets: &[(&str, &[u8])] = &[("@a", b"abcd5678"), ("@b", b"5678ijkl")];
        let out = at_once(&mut redactor(secrets).0, b"[abcd5678ijkl]");
        assert_eq!(show(&out), "[<secret:@a,@b>]");
        // A chain: each extends the span; each secret named once, in order.
        let secrets: &[(&str, &[u8])] = &[("@a", b"aaaXbbb"), ("@b", b"bbbYaaa")];
        let out = at_once(&mut redactor(secrets).0, b"-aaaXbbbYaaaXbbbYaaa-");
        assert_eq!(show(&out), "-<secret:@a,@b>-");
        // A value that overlaps itself.
        let out = at_once(&mut one(b"abab"), b"ababab abab");
        assert_eq!(show(&out), "<secret:@k> <secret:@k>");
        // Adjacent, not overlapping: two markers.
        let out = at_once(&mut redactor(secrets).0, b"aaaXbbbbbbYaaa");
        assert_eq!(show(&out), "<secret:@a><secret:@b>");
        // Every cut of the stream gives the same.
        let secrets: &[(&str, &[u8])] = &[("@a", b"abcd5678"), ("@b", b"5678ijkl")];
        let input = b"x abcd5678ijkl y";
        for cut in 0..=input.len() {
            let out = in_pieces(&mut redactor(secrets).0, [&input[..cut], &input[cut..]]);
            assert_eq!(show(&out), "x <secret:@a,@b> y", "cut at {cut}");
        }
    }

    #[test]
    fn an_open_span_is_held_with_its_marker_owed() {
        let secrets: &[(&str, &[u8])] = &[("@x", b"1234"), ("@y", b"34567")];
        let mut r = redactor(secrets).0;
        let mut out = Vec::new();
        r.push(b"> 1234", &mut out);
        // "34" could begin @y: the span is open, its marker not emitted.
        assert_eq!(show(&out), "> ");
        assert_eq!(r.held(), 2);
        r.push(b"5", &mut out);
        assert_eq!(show(&out), "> ");
        r.push(b"67 <", &mut out);
        assert_eq!(show(&out), "> <secret:@x,@y> <");
        // The span closes where the continuation fails.
        let mut out = Vec::new();
        r.push(b"12345", &mut out);
        r.push(b"!", &mut out);
        assert_eq!(show(&out), "<secret:@x>5!");
        // A long push after an open span: the boundary path.
        let mut out = Vec::new();
        r.push(b"1234", &mut out);
        let mut long = b"567".to_vec();
        long.extend_from_slice(&[b'.'; 64]);
        r.push(&long, &mut out);
        r.finish(&mut out);
        assert_eq!(show(&out), format!("<secret:@x,@y>{}", ".".repeat(64)));
    }

    #[test]
    fn short_values_are_skipped_and_reported() {
        let (mut r, skipped) = redactor(&[("@pin", b"123"), ("@empty", b""), ("@k", KEY)]);
        assert_eq!(skipped, ["@pin", "@empty"]);
        let out = at_once(&mut r, b"pin 123 key sk-abc123");
        assert_eq!(show(&out), "pin 123 key <secret:@k>");

        let (mut r, skipped) = redactor(&[("@pin", b"123")]);
        assert_eq!(skipped, ["@pin"]);
        assert!(r.set.is_none(), "nothing to mask");
        assert_eq!(at_once(&mut r, b"123"), b"123");

        let (mut r, skipped) = redactor(&[("@four", b"1234")]);
        assert!(skipped.is_empty());
        assert!(r.set.is_some());
        assert_eq!(show(&at_once(&mut r, b"x1234")), "x<secret:@four>");
    }

    #[test]
    fn a_fresh_redactor_shares_the_values_but_not_the_held_bytes() {
        let mut out_r = one(KEY);
        let mut err_r = out_r.fresh();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        out_r.push(b"sk-abc", &mut out);
        err_r.push(b"123 sk-abc123", &mut err);
        out_r.push(b"123", &mut out);
        out_r.finish(&mut out);
        err_r.finish(&mut err);
        assert_eq!(show(&out), "<secret:@k>");
        assert_eq!(show(&err), "123 <secret:@k>");
    }

    #[test]
    fn a_match_across_a_long_push_after_held_bytes() {
        // The boundary path: held bytes, then an input longer than any
        // pattern.
        let mut r = one(KEY);
        let mut out = Vec::new();
        r.push(b"a sk-ab", &mut out);
        let mut long = b"c123 ".to_vec();
        long.extend_from_slice(&[b'.'; 100]);
        long.extend_from_slice(b" sk-abc123 sk-");
        r.push(&long, &mut out);
        assert_eq!(r.held(), 3);
        r.finish(&mut out);
        let expected = format!("a <secret:@k> {} <secret:@k> sk-", ".".repeat(100));
        assert_eq!(show(&out), expected);
    }

    const PEM: &[u8] =
        b"-----BEGIN KEY-----\nMIIBVgIBADANBgkq\nhkiG9w0BAQEFAASC\nab\n-----END KEY-----";

    #[test]
    fn a_multi_line_value_is_masked_in_crlf_line_by_line_and_json() {
        let mut r = one(PEM);
        // As a terminal's ONLCR, or `sed 's/$/\r/'`, prints it.
        let crlf = show(PEM).replace('\n', "\r\n");
        let out = at_once(&mut r, format!("$ cat key\r\n{crlf}\r\n$ ").as_bytes());
        assert_eq!(show(&out), "$ cat key\r\n<secret:@k>\r\n$ ");
        // Each line alone, indented or not, in any line ending.
        let out = at_once(
            &mut r,
            b"line 2: MIIBVgIBADANBgkq\r\n    hkiG9w0BAQEFAASC\n",
        );
        assert_eq!(show(&out), "line 2: <secret:@k>\r\n    <secret:@k>\n");
        // A line shorter than the minimum is ordinary text.
        assert_eq!(at_once(&mut r, b"ab\n"), b"ab\n");
        // JSON-escaped, as json.dumps prints it.
        let json = show(PEM).replace('\n', "\\n");
        let out = at_once(&mut r, format!("{{\"key\": \"{json}\"}}").as_bytes());
        assert_eq!(show(&out), "{\"key\": \"<secret:@k>\"}");
        // A value stored with CRLF is also masked with LF.
        let crlf_value = crlf.as_bytes();
        let out = at_once(&mut one(crlf_value), PEM);
        assert_eq!(show(&out), "<secret:@k>");
    }

    #[test]
    fn lines_of_blanks_and_short_lines_are_not_patterns() {
        let forms = lines(b"{\n    \n  \"k\": \"v1234\",\n}\n");
        let shown: Vec<String> = forms.iter().map(|f| show(f)).collect();
        assert_eq!(shown, ["\"k\": \"v1234\","]);
        assert!(lines(b"one line").is_empty());
        assert!(other_line_ending(b"one line").is_empty());
    }

    /// Known answers from Python 3.11 and Node 20 for a value with every
    /// kind of byte that the escapings treat differently.
    #[test]
    fn url_and_json_escapings_are_those_of_the_usual_libraries() {
        let value = "pä$$ w/rd:\"é\\<x>&+~*'(!)#;,?@=\t\u{1}€😀10".as_bytes();
        let cases = [
            (
                "quote",
                "p%C3%A4%24%24%20w/rd%3A%22%C3%A9%5C%3Cx%3E%26%2B~%2A%27%28%21%29%23%3B%2C%3F%40%3D%09%01%E2%82%AC%F0%9F%98%8010",
            ),
            (
                "quote_plus",
                "p%C3%A4%24%24+w%2Frd%3A%22%C3%A9%5C%3Cx%3E%26%2B~%2A%27%28%21%29%23%3B%2C%3F%40%3D%09%01%E2%82%AC%F0%9F%98%8010",
            ),
            (
                "encodeURIComponent",
                "p%C3%A4%24%24%20w%2Frd%3A%22%C3%A9%5C%3Cx%3E%26%2B~*'(!)%23%3B%2C%3F%40%3D%09%01%E2%82%AC%F0%9F%98%8010",
            ),
            (
                "encodeURI",
                "p%C3%A4$$%20w/rd:%22%C3%A9%5C%3Cx%3E&+~*'(!)#;,?@=%09%01%E2%82%AC%F0%9F%98%8010",
            ),
            (
                "URLSearchParams",
                "p%C3%A4%24%24+w%2Frd%3A%22%C3%A9%5C%3Cx%3E%26%2B%7E*%27%28%21%29%23%3B%2C%3F%40%3D%09%01%E2%82%AC%F0%9F%98%8010",
            ),
            (
                "json.dumps",
                r#"p\u00e4$$ w/rd:\"\u00e9\\<x>&+~*'(!)#;,?@=\t\u0001\u20ac\ud83d\ude0010"#,
            ),
            (
                "JSON.stringify",
                r#"pä$$ w/rd:\"é\\<x>&+~*'(!)#;,?@=\t\u0001€😀10"#,
            ),
            (
                "json_encode",
                r#"p\u00e4$$ w\/rd:\"\u00e9\\<x>&+~*'(!)#;,?@=\t\u0001\u20ac\ud83d\ude0010"#,
            ),
            (
                "JSON.stringify, \\/",
                r#"pä$$ w\/rd:\"é\\<x>&+~*'(!)#;,?@=\t\u0001€😀10"#,
            ),
            (
                "Go json.Marshal",
                r#"pä$$ w/rd:\"é\\\u003cx\u003e\u0026+~*'(!)#;,?@=\t\u0001€😀10"#,
            ),
        ];
        let forms = encodings(value);
        let mut r = one(value);
        for (name, form) in cases {
            assert!(
                forms.iter().any(|f| f.as_slice() == form.as_bytes()),
                "{name}"
            );
            let out = at_once(&mut r, format!("[{form}]").as_bytes());
            assert_eq!(show(&out), "[<secret:@k>]", "{name}");
        }
        // Not text: hex, base64 and RFC 3986 forms only.
        let forms = encodings(b"a b/\xff\xfecd");
        assert!(forms.iter().any(|f| f.as_slice() == b"a%20b%2F%FF%FEcd"));
        assert!(
            !forms
                .iter()
                .any(|f| f.starts_with(b"a+") || f.starts_with(b"a%20b/"))
        );
    }

    #[test]
    fn mime_base64_wrapped_at_76_and_64_columns_is_masked() {
        let value: &[u8] = b"MIME-test-value-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ";
        // base64.encodebytes / `base64`:
        let python = "TUlNRS10ZXN0LXZhbHVlLTAxMjM0NTY3ODktYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXotQUJD\nREVGR0hJSg==\n";
        let openssl = wrap(python.replace('\n', "").as_bytes(), 64, b"\n");
        assert_eq!(show(&openssl[64..]), "\ndnd4eXotQUJDREVGR0hJSg==");
        let mut r = one(value);
        for text in [
            python.to_owned(),
            python.replace('\n', "\r\n"),
            show(&openssl) + "\n",
        ] {
            let out = at_once(&mut r, format!("Content: {text}").as_bytes());
            let out = show(&out);
            assert!(out.starts_with("Content: <secret:@k>"), "{out}");
            assert!(out.len() <= "Content: <secret:@k>\r\n".len(), "{out}");
        }
    }

    #[test]
    fn flush_held_releases_a_prompt_and_masks_what_completes_later() {
        let mut r = one(KEY);
        let mut out = Vec::new();
        r.push(b"Press ENTER to continue? sk-ab", &mut out);
        assert_eq!(show(&out), "Press ENTER to continue? ");
        assert_eq!(r.held(), 5);
        r.flush_held(&mut out);
        assert_eq!(show(&out), "Press ENTER to continue? sk-ab");
        assert_eq!(r.held(), 0, "nothing owed after a release");
        r.flush_held(&mut out);
        assert_eq!(show(&out), "Press ENTER to continue? sk-ab", "idempotent");
        // The accepted trade-off: the released prefix stays shown, the rest
        // of the secret is masked.
        r.push(b"c123 and sk-abc123\n", &mut out);
        assert_eq!(
            show(&out),
            "Press ENTER to continue? sk-ab<secret:@k> and <secret:@k>\n"
        );

        // A continuation that is no secret passes.
        let mut r = one(KEY);
        let mut out = Vec::new();
        r.push(b"sk-ab", &mut out);
        r.flush_held(&mut out);
        r.push(b"x", &mut out);
        r.finish(&mut out);
        assert_eq!(show(&out), "sk-abx");

        // A whole shorter form among the held bytes is masked on release.
        let (mut r, _) = redactor(&[("@short", b"abcd"), ("@long", b"abcdefgh")]);
        let mut out = Vec::new();
        r.push(b"abcdef", &mut out);
        r.flush_held(&mut out);
        assert_eq!(show(&out), "<secret:@short>ef");
        r.push(b"gh.", &mut out);
        assert_eq!(show(&out), "<secret:@short>ef<secret:@long>.");

        // An owed marker is emitted on release.
        let (mut r, _) = redactor(&[("@x", b"1234"), ("@y", b"34567")]);
        let mut out = Vec::new();
        r.push(b"1234", &mut out);
        assert!(r.held() > 0);
        r.flush_held(&mut out);
        assert_eq!(show(&out), "<secret:@x>");
        r.push(b"567", &mut out);
        r.finish(&mut out);
        assert_eq!(show(&out), "<secret:@x><secret:@y>");
    }

    /// Random streams, cut at random and released at random: no stretch of
    /// output between markers holds a whole form, the held bytes stay
    /// bounded, and with no release the output is the reference's.
    #[test]
    fn random_releases_never_show_a_whole_form() {
        let mut rng = Rng(0x0f1a_54ed);
        const ALPHABET: &[u8] = b"abc%=\n";
        for round in 0..400 {
            let values: Vec<Vec<u8>> = (0..1 + rng.below(3))
                .map(|_| {
                    let n = 4 + rng.below(10);
                    (0..n)
                        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                        .collect()
                })
                .collect();
            let secrets: Vec<(&str, &[u8])> = ["@a", "@b", "@c"]
                .into_iter()
                .zip(values.iter().map(Vec::as_slice))
                .collect();
            let forms = forms(&secrets);
            let mut input = Vec::new();
            for _ in 0..rng.below(10) {
                for _ in 0..rng.below(8) {
                    input.push(ALPHABET[rng.below(ALPHABET.len())]);
                }
                let form = &forms[rng.below(forms.len())].0;
                input.extend_from_slice(&form[..rng.below(form.len() + 1)]);
            }
            let (mut r, _) = redactor(&secrets);
            let capacity = r.pending.capacity();
            let max_len = forms.iter().map(|f| f.0.len()).max().unwrap_or(0);
            let mut out = Vec::new();
            for piece in input.chunks(1 + rng.below(6)) {
                r.push(piece, &mut out);
                assert!(r.pending.len() < max_len, "round {round}");
                if rng.below(3) == 0 {
                    r.flush_held(&mut out);
                    assert_eq!(r.held(), 0);
                }
            }
            r.finish(&mut out);
            assert_eq!(r.pending.capacity(), capacity, "round {round}");
            let text = show(&out);
            for clear in text
                .split("<secret:")
                .map(|s| s.rsplit('>').next().unwrap_or(s))
            {
                for (form, _) in &forms {
                    assert!(
                        !clear.as_bytes().windows(form.len()).any(|w| w == form),
                        "round {round}: {} in {text:?} from {:?}",
                        show(form),
                        show(&input)
                    );
                }
            }
        }
    }
}

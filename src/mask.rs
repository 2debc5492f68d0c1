//! Streaming redaction for `secret exec --mask`: the [`Redactor`] that the
//! child's stdout and stderr pass through (one per stream), replacing every
//! secret value, and the usual encodings of it, with `<secret:@handle>`. It
//! owns the patterns, the matching and the hold-back of bytes that may yet
//! become a secret; where the values come from is `store`, where the bytes
//! go is `exec`.
//!
//! What is masked, for each value of at least [`MIN_MASKED_LEN`] bytes
//! (shorter values would mask ordinary text; [`Redactor::new`] returns
//! their labels so the caller can warn):
//!
//! - the raw bytes;
//! - standard base64 and base64url, each with and without `=` padding;
//! - lowercase and uppercase hex;
//! - URL percent-encoding (RFC 3986: unreserved characters as they are,
//!   every other byte `%XX`), in uppercase and lowercase hex, when it
//!   differs from the raw value;
//! - the value inside a larger base64 blob: base64 works on 3-byte groups,
//!   so a value that starts at offset 1 or 2 (mod 3) of the encoded data, or
//!   that is followed by more data, is not a substring of its own encoding.
//!   For each of the three alignments the characters whose six bits come
//!   from the value alone are the same whatever surrounds it; that stable
//!   inner part is masked too (both alphabets), but only when it is at
//!   least [`MIN_INNER_BASE64_LEN`] characters (48 bits of the value), so
//!   that a short value cannot mask ordinary base64 by chance: values of 7
//!   bytes or more get it at every alignment. A blob with line breaks
//!   inside the value (MIME, PEM) is not caught.
//!
//! Hex and percent-encoding are byte-aligned, so a value inside a larger
//! hex or percent-encoded string is always caught.
//!
//! Values over [`MAX_ENCODED_LEN`] (64 KiB: certificates, key files, not API
//! keys) are masked in their raw form only. Their encodings would make some
//! thirteen times their length in patterns, and the automaton for those
//! costs about 2 s and 0.9 GB to build for a 1 MiB value, against 70 ms and
//! a tenth of the memory for the raw form alone.
//!
//! Matching is leftmost-longest: where patterns overlap or one is a prefix of
//! another, the match that starts first wins, then the longest. When two
//! secrets produce the same pattern, the first one given names it.
//!
//! Streaming: the output is exactly what redacting the whole stream at once
//! would give, however the input is cut into pushes. After each push, the
//! only bytes held back are the longest suffix of the not yet emitted input
//! that is a proper prefix of some pattern, so text that cannot begin a
//! secret (a prompt without a newline) is emitted at once; see
//! [`Redactor::push`] for how.
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
pub const MIN_MASKED_LEN: usize = 4;

/// Values longer than this (in bytes) are masked in their raw form only.
pub const MAX_ENCODED_LEN: usize = 64 << 10;

/// The shortest stable inner part of a misaligned base64 encoding that is
/// masked, in characters.
pub const MIN_INNER_BASE64_LEN: usize = 8;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A streaming redactor for one output stream.
pub struct Redactor {
    /// `None` when no value was long enough to mask: bytes pass through.
    set: Option<Arc<PatternSet>>,
    /// Bytes of the stream not yet emitted: always a proper prefix of some
    /// pattern (between pushes), shorter than the longest pattern.
    pending: Zeroizing<Vec<u8>>,
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
    /// For each pattern, the index of its marker.
    marker_of: Vec<usize>,
    /// `<secret:LABEL>` for each label that has patterns.
    markers: Vec<Vec<u8>>,
    max_len: usize,
    /// The first byte of some pattern, bit per byte.
    first: [u64; 4],
    /// The first two bytes of some pattern, bit per pair.
    pairs: Vec<u64>,
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
        let mut markers = Vec::new();
        let mut found: Vec<(Zeroizing<Vec<u8>>, usize)> = Vec::new();
        for (label, value) in secrets {
            let label = label.as_ref();
            if value.len() < MIN_MASKED_LEN {
                skipped.push(label.to_owned());
                continue;
            }
            let marker = markers.len();
            markers.push(format!("<secret:{label}>").into_bytes());
            found.extend(encodings(value.expose()).into_iter().map(|p| (p, marker)));
        }
        let set = if found.is_empty() {
            None
        } else {
            Some(Arc::new(PatternSet::new(found, markers)?))
        };
        Ok((Self::with(set), skipped))
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
            scratch: Zeroizing::new(Vec::with_capacity(room)),
        }
    }

    /// How many bytes are held back: the start of a possible match, emitted
    /// (or masked) by the next push or by [`finish`](Self::finish).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn held(&self) -> usize {
        self.pending.len()
    }

    /// Redacts `input`, the next bytes of the stream, appending to `out`
    /// everything that can no longer be part of a match.
    ///
    /// The data is D = held bytes + `input`. Let T be the positions t where
    /// D\[t..\] is a proper prefix of some pattern: only there can a match
    /// start that needs bytes not yet seen. From the current position, the
    /// leftmost-longest match in D is committed when it starts before the
    /// first t in T (nothing unseen can start earlier or make it longer);
    /// otherwise D is emitted up to that t and the rest is held. T is found
    /// in the last (longest pattern − 1) bytes only, with a two-byte filter
    /// and a binary search of the sorted patterns.
    ///
    /// The search runs over `input` in place; only the held bytes and the
    /// first (longest pattern) bytes of `input` are copied, to find the
    /// matches across the boundary. On ordinary text a push costs time in
    /// proportion to its length plus the held bytes (rescanned; shorter than
    /// the longest pattern). Text made to resemble the start of a pattern
    /// at every position can cost up to the longest pattern's length per
    /// byte.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Some(set) = self.set.as_deref() else {
            out.extend_from_slice(input);
            return;
        };
        let held = self.pending.len();
        if held == 0 {
            let keep = set.redact(input, 0, true, out);
            self.pending.extend_from_slice(&input[keep..]);
        } else if input.len() < set.max_len {
            self.pending.extend_from_slice(input);
            let keep = set.redact(&self.pending, 0, true, out);
            self.pending.drain(..keep);
        } else {
            // Every match that starts in the held bytes ends within the next
            // max_len bytes, and no position up to the end of the held bytes
            // is in T (the input is at least max_len long): matches starting
            // there are final.
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.pending);
            self.scratch.extend_from_slice(&input[..set.max_len]);
            let mut pos = 0;
            while let Some(m) = set.find(&self.scratch, pos) {
                if m.start() >= held {
                    break;
                }
                out.extend_from_slice(&self.scratch[pos..m.start()]);
                out.extend_from_slice(set.marker(m.pattern().as_usize()));
                pos = m.end();
            }
            if pos < held {
                out.extend_from_slice(&self.scratch[pos..held]);
                pos = held;
            }
            self.pending.clear();
            let keep = set.redact(input, pos - held, true, out);
            self.pending.extend_from_slice(&input[keep..]);
        }
    }

    /// The end of the stream: redacts and emits the held bytes. A partial
    /// prefix of a secret comes out unchanged (it is not the secret). The
    /// redactor can then start another stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(set) = self.set.as_deref() {
            set.redact(&self.pending, 0, false, out);
        }
        self.pending.clear();
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field(
                "patterns",
                &self.set.as_ref().map_or(0, |s| s.patterns.len()),
            )
            .field("held", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl PatternSet {
    fn new(mut found: Vec<(Zeroizing<Vec<u8>>, usize)>, markers: Vec<Vec<u8>>) -> Result<Self> {
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
        Ok(Self {
            max_len: patterns.iter().map(|p| p.len()).max().unwrap_or(0),
            automaton,
            skip,
            window,
            patterns,
            marker_of,
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

    fn marker(&self, pattern: usize) -> &[u8] {
        &self.markers[self.marker_of[pattern]]
    }

    /// Redacts `hay[pos..]` into `out`. With `hold`, stops at the first
    /// position of T (see [`Redactor::push`]) and returns it: the caller
    /// keeps the rest. Without (end of stream), returns `hay.len()`.
    fn redact(&self, hay: &[u8], mut pos: usize, hold: bool, out: &mut Vec<u8>) -> usize {
        let end = hay.len();
        let hold_at = |from: usize| {
            if hold {
                self.first_possible_start(hay, from)
            } else {
                end
            }
        };
        let mut stop = hold_at(pos);
        while pos < stop {
            match self.find(hay, pos) {
                Some(m) if m.start() < stop => {
                    out.extend_from_slice(&hay[pos..m.start()]);
                    out.extend_from_slice(self.marker(m.pattern().as_usize()));
                    pos = m.end();
                    if pos > stop {
                        stop = hold_at(pos);
                    }
                }
                _ => break,
            }
        }
        out.extend_from_slice(&hay[pos..stop]);
        stop
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

/// Every form of `value` to mask (possibly with duplicates).
fn encodings(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = vec![Zeroizing::new(value.to_vec())];
    if value.len() > MAX_ENCODED_LEN {
        return forms;
    }
    for alphabet in [STANDARD, URL_SAFE] {
        forms.push(base64(value, alphabet, true));
        forms.push(base64(value, alphabet, false));
        for offset in 0..3 {
            if let Some(inner) = base64_inner(value, offset, alphabet) {
                forms.push(inner);
            }
        }
    }
    forms.push(hex(value, b"0123456789abcdef"));
    forms.push(hex(value, b"0123456789ABCDEF"));
    if value.iter().any(|&b| !is_unreserved(b)) {
        forms.push(percent(value, b"0123456789ABCDEF"));
        forms.push(percent(value, b"0123456789abcdef"));
    }
    forms
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

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn percent(value: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(3 * value.len()));
    for &b in value {
        if is_unreserved(b) {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(digits[usize::from(b >> 4)]);
            out.push(digits[usize::from(b & 15)]);
        }
    }
    out
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
            ("percent", percent(value, b"0123456789ABCDEF").to_vec()),
            (
                "percent lower",
                percent(value, b"0123456789abcdef").to_vec(),
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
        let long = vec![b'k'; MAX_ENCODED_LEN + 1];
        assert_eq!(encodings(&long).len(), 1);
        assert!(encodings(&long[1..]).len() > 8);
        let mut input = b"[".to_vec();
        input.extend_from_slice(&long);
        input.push(b']');
        assert_eq!(at_once(&mut one(&long), &input), b"[<secret:@k>]");
    }

    #[test]
    fn percent_encoding_is_not_added_when_it_is_the_raw_value() {
        let forms = encodings(b"plain-value_1.0~");
        assert!(!forms.iter().any(|f| f.contains(&b'%')));
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
    /// secret (the first secret's on a tie) is replaced, else the byte is
    /// kept.
    fn reference(secrets: &[(&str, &[u8])], input: &[u8]) -> Vec<u8> {
        let forms = forms(secrets);
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            let best = forms
                .iter()
                .filter(|(f, _)| input[i..].starts_with(f))
                .fold(None::<&(Vec<u8>, String)>, |best, f| match best {
                    Some(b) if b.0.len() >= f.0.len() => Some(b),
                    _ => Some(f),
                });
            match best {
                Some((form, marker)) => {
                    out.extend_from_slice(marker.as_bytes());
                    i += form.len();
                }
                None => {
                    out.push(input[i]);
                    i += 1;
                }
            }
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
                    .map(move |f| (f.to_vec(), format!("<secret:{l}>")))
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
        const ALPHABET: &[u8] = b"ab+/=%-_\x00\xff";
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
                if !out.contains(&b'<') {
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
        // Overlapping, not nested: the leftmost wins.
        let secrets: &[(&str, &[u8])] = &[("@x", b"1234"), ("@y", b"34567")];
        let out = at_once(&mut redactor(secrets).0, b"1234567");
        assert_eq!(show(&out), "<secret:@x>567");
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
}

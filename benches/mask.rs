//! `cargo bench --bench mask`: the throughput of `secret exec --mask`'s
//! redactor on log-like text that contains no secret, against a plain copy
//! (what `cat` does to the bytes) measured in the same run, interleaved so
//! that noise hits every contender alike. 256 MiB in 64 KiB chunks, as a
//! pipe would deliver them; prints the best of a few rounds in MB/s and the
//! ratio to the copy, then the rate on base64 text (the alphabet of most
//! patterns). API-key-shaped secrets have one pattern per encoding (their
//! URL and JSON forms are the value itself); secrets with symbols and a
//! multi-line key have all of theirs, so they are measured too, with the
//! build time of the largest values. Asserts only that the output is as
//! long as the input (a marker is shorter than the values).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use secret::mask::Redactor;
use secret::value::SecretValue;

const TOTAL: usize = 256 << 20;
const CHUNK: usize = 64 << 10;
const BASE64_TOTAL: usize = 64 << 20;
const ROUNDS: usize = 3;

/// xorshift64*: the same text every run.
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
}

/// Log lines: timestamps, levels, paths, ids, numbers, the odd message.
fn log_text(rng: &mut Rng) -> Vec<u8> {
    use std::io::Write;
    const LEVELS: [&str; 4] = ["INFO ", "DEBUG", "WARN ", "ERROR"];
    const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    const PATHS: [&str; 6] = [
        "/api/v1/users",
        "/api/v1/orders",
        "/healthz",
        "/api/v2/search",
        "/static/app.js",
        "/login",
    ];
    const WORDS: [&str; 12] = [
        "connection",
        "established",
        "retrying",
        "cache",
        "miss",
        "upstream",
        "timeout",
        "worker",
        "started",
        "request",
        "completed",
        "queue",
    ];
    let mut text = Vec::with_capacity(TOTAL + 512);
    while text.len() < TOTAL {
        let t = rng.next();
        write!(
            text,
            "2024-05-{:02}T{:02}:{:02}:{:02}.{:03}Z {} [{}] req={:016x} {} {}/{} status={} {}ms",
            1 + t % 28,
            t >> 8 & 15,
            (t >> 16) % 60,
            (t >> 24) % 60,
            (t >> 32) % 1000,
            LEVELS[rng.below(4)],
            WORDS[rng.below(12)],
            rng.next(),
            METHODS[rng.below(4)],
            PATHS[rng.below(6)],
            rng.below(100_000),
            [200, 200, 200, 201, 304, 404, 500][rng.below(7)],
            rng.below(2000),
        )
        .unwrap();
        for _ in 0..rng.below(4) {
            write!(text, " {}", WORDS[rng.below(12)]).unwrap();
        }
        text.push(b'\n');
    }
    text.truncate(TOTAL);
    text
}

/// Secrets shaped like API keys: a prefix and 40 random alphanumerics.
fn secrets(rng: &mut Rng, n: usize) -> Vec<(String, SecretValue)> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const PREFIXES: [&str; 4] = ["sk-", "ghp_", "xoxb-", "AKIA"];
    (0..n)
        .map(|i| {
            let mut v = PREFIXES[i % 4].as_bytes().to_vec();
            v.extend((0..40).map(|_| ALNUM[rng.below(ALNUM.len())]));
            (format!("@key_{i}"), SecretValue::new(v))
        })
        .collect()
}

/// Secrets with the bytes that every URL and JSON form escapes (so each
/// form is a pattern of its own), one of them a multi-line PEM-like key of
/// 28 lines (so its CRLF form and its lines are patterns too).
fn symbol_secrets(rng: &mut Rng, n: usize) -> Vec<(String, SecretValue)> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=@:!*~ ";
    let mut pem = b"-----BEGIN PRIVATE KEY-----".to_vec();
    for _ in 0..26 {
        pem.push(b'\n');
        pem.extend((0..64).map(|_| CHARS[rng.below(64)]));
    }
    pem.extend_from_slice(b"\n-----END PRIVATE KEY-----");
    let mut all = vec![("@pem".to_owned(), SecretValue::new(pem))];
    all.extend((1..n).map(|i| {
        let v: Vec<u8> = (0..32).map(|_| CHARS[rng.below(CHARS.len())]).collect();
        (format!("@pw_{i}"), SecretValue::new(v))
    }));
    all
}

fn copy(text: &[u8], out: &mut Vec<u8>) -> usize {
    let mut total = 0;
    for chunk in text.chunks(CHUNK) {
        out.clear();
        out.extend_from_slice(chunk);
        total += black_box(&*out).len();
    }
    total
}

fn redact(r: &mut Redactor, text: &[u8], out: &mut Vec<u8>) -> usize {
    let mut total = 0;
    for chunk in text.chunks(CHUNK) {
        out.clear();
        r.push(chunk, out);
        total += black_box(&*out).len();
    }
    out.clear();
    r.finish(out);
    total + out.len()
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let text = log_text(&mut rng);
    println!(
        "{} MiB of log-like text in {} KiB chunks (generated in {:.2} s)",
        TOTAL >> 20,
        CHUNK >> 10,
        start.elapsed().as_secs_f64()
    );

    let one = secrets(&mut rng, 1);
    let hundred = secrets(&mut rng, 100);
    let build = |s: &[(String, SecretValue)]| {
        let start = Instant::now();
        let (r, skipped) = Redactor::new(s.iter().map(|(l, v)| (l.as_str(), v))).unwrap();
        assert!(skipped.is_empty());
        (r, start.elapsed())
    };
    let symbols = symbol_secrets(&mut rng, 100);
    let (mut r1, build1) = build(&one);
    let (mut r100, build100) = build(&hundred);
    let (mut rsym, build_sym) = build(&symbols);
    println!(
        "build: 1 secret {:.2} ms, 100 secrets {:.2} ms, 100 with symbols and a PEM {:.2} ms",
        build1.as_secs_f64() * 1e3,
        build100.as_secs_f64() * 1e3,
        build_sym.as_secs_f64() * 1e3,
    );
    // The largest values: one of MAX_ENCODED_LEN bytes of random binary
    // (every encoded form, none shared), one PEM bundle of 1 MiB (raw forms
    // only: the value, its CRLF form and its 16k lines).
    let mut big = Vec::with_capacity(secret::mask::MAX_ENCODED_LEN);
    big.extend((0..secret::mask::MAX_ENCODED_LEN).map(|_| rng.next() as u8));
    let mut bundle = Vec::with_capacity(1 << 20);
    while bundle.len() + 65 <= 1 << 20 {
        bundle.extend((0..64).map(|_| b'A' + (rng.next() % 26) as u8));
        bundle.push(b'\n');
    }
    for (name, value) in [("64 KiB binary value", big), ("1 MiB PEM bundle", bundle)] {
        let one = [("@big".to_owned(), SecretValue::new(value))];
        let (_, took) = build(&one);
        println!("build: {name} {:.0} ms", took.as_secs_f64() * 1e3);
    }

    let mut out = Vec::with_capacity(2 * CHUNK);
    let names = [
        "copy (cat)",
        "redact, 1 secret",
        "redact, 100 secrets",
        "100 symbols and a PEM",
    ];
    let mut best = [Duration::MAX; 4];
    for _ in 0..ROUNDS {
        for (i, best) in best.iter_mut().enumerate() {
            let start = Instant::now();
            let n = match i {
                0 => copy(&text, &mut out),
                1 => redact(&mut r1, &text, &mut out),
                2 => redact(&mut r100, &text, &mut out),
                _ => redact(&mut rsym, &text, &mut out),
            };
            let elapsed = start.elapsed();
            assert_eq!(n, text.len(), "text without secrets must pass unchanged");
            *best = (*best).min(elapsed);
        }
    }
    let copy_rate = mb_per_s(text.len(), best[0]);
    for (name, d) in names.iter().zip(best) {
        let rate = mb_per_s(text.len(), d);
        println!(
            "{name:<22} {rate:>9.0} MB/s   {:>6.3} of copy",
            rate / copy_rate
        );
    }

    // Not log-like: base64 all the way, the alphabet of every pattern but
    // the hex ones, so the skip table's shifts could be shorter.
    const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let blob: Vec<u8> = (0..BASE64_TOTAL)
        .map(|i| {
            if i % 77 == 76 {
                b'\n'
            } else {
                BASE64[rng.below(64)]
            }
        })
        .collect();
    let mut fastest = Duration::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        assert_eq!(redact(&mut r100, &blob, &mut out), blob.len());
        fastest = fastest.min(start.elapsed());
    }
    println!(
        "{:<22} {:>9.0} MB/s   ({} MiB of base64 text)",
        "redact, 100 secrets",
        mb_per_s(blob.len(), fastest),
        BASE64_TOTAL >> 20
    );
}

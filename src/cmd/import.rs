//! `secret import FILE`: a project's `.env` into the store, and the
//! references-only env file that replaces it. The file is read with
//! `dotenvy` (quotes, escapes, `export `, comments, multi-line quoted
//! values); each value goes straight into a wiping `SecretValue` and then
//! the store, never to output. Everything is checked before anything is
//! stored: every problem (a bad line, a `$` substitution, an existing
//! handle) is reported at once and nothing changes. FILE is never
//! modified.
//!
//! Handle names: `KEY` becomes `@key` (`@PREFIX/key` with `--prefix`).
//! A variable name's characters (`A-Z a-z 0-9 _`) are all handle
//! characters, so lowercasing is the whole rule; a key no environment can
//! carry (dotenv also allows `.`) is refused, as are two keys that differ
//! only in case.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use nix::libc;
use std::path::Path;

use zeroize::Zeroizing;

use super::context::{Context, print};
use crate::audit::Event;
use crate::cli::ImportArgs;
use crate::error::{Error, Result};
use crate::handle::{Handle, is_env_name};
use crate::store::{self, Store};
use crate::value::SecretValue;

/// The largest dotenv file read: room for many values of the largest size
/// a value may have, bounded so no file can exhaust memory.
const MAX_DOTENV_LEN: u64 = 16 << 20;

/// One variable of the file, ready to store.
struct Entry {
    key: String,
    /// As written in the env file: `@PREFIX/key`.
    handle: Handle,
    /// Where it is stored: `handle` inside the narrowest `--scope`.
    target: Handle,
    value: SecretValue,
    /// The version it replaces (with `--force`).
    replaces: Option<u64>,
}

/// `secret import FILE [--prefix P] [--out F] [--force] [--dry-run]`.
pub(crate) fn import(ctx: &Context, args: &ImportArgs) -> Result<u8> {
    let file = &args.file;
    let prefix = prefix(args.prefix.as_deref())?;
    let mut problems = Vec::new();
    if let Some(out) = &args.out {
        if same_file(out, file) {
            return Err(Error::usage_hint(
                format!(
                    "--out {} is the file being imported; it is left as it is",
                    out.display()
                ),
                "write the references elsewhere, as in --out app.env",
            ));
        }
        if out.symlink_metadata().is_ok() && !args.force {
            problems.push(format!(
                "--out {} already exists (--force replaces it)",
                out.display()
            ));
        }
    }
    let text = read(file)?;
    let (parsed, skipped) = parse(file, &text, &mut problems);
    drop(text);
    let mut entries = Vec::new();
    for (key, value) in parsed {
        let name = match &prefix {
            Some(p) => format!("{p}/{}", key.to_lowercase()),
            None => key.to_lowercase(),
        };
        let handle = match Handle::from_name(&name) {
            Ok(h) => h,
            Err(e) => {
                problems.push(format!("{key}: {e}"));
                continue;
            }
        };
        if let Some(other) = entries.iter().find(|e: &&Entry| e.handle == handle) {
            problems.push(format!(
                "{key} and {} would both be {handle}; rename one",
                other.key
            ));
            continue;
        }
        entries.push(Entry {
            key,
            target: ctx.scope.narrowest(&handle)?,
            handle,
            value,
            replaces: None,
        });
    }
    if !problems.is_empty() {
        return Err(refused(file, &problems));
    }

    let mut store = ctx.open_store()?;
    for entry in &mut entries {
        match store.meta(&entry.target) {
            Ok(meta) if meta.kind == store::LINK_KIND => problems.push(format!(
                "{}: {} is a link; remove it first (secret rm {})",
                entry.key, entry.target, entry.target
            )),
            Ok(meta) if !args.force => problems.push(format!(
                "{}: {} already exists (version {}); --force replaces its value",
                entry.key, entry.target, meta.version
            )),
            Ok(meta) => entry.replaces = Some(meta.version),
            Err(Error::NoSuchSecret { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if args.dry_run {
        return dry_run(file, args, &entries, &skipped, &problems);
    }
    if !problems.is_empty() {
        return Err(refused(file, &problems));
    }

    let refs = references(file, &entries);
    let events = store_all(ctx, store.as_mut(), &entries);
    drop(store);
    let stored = events.as_ref().map_or(0, Vec::len);
    let events = events?;
    ctx.record(&events)?;
    let dest = match &args.out {
        Some(out) => {
            // A bare name is in the current directory (its parent is "").
            let path = Path::new(".").join(out);
            crate::fsio::write_atomic(&path, refs.as_bytes()).map_err(|e| {
                Error::usage_hint(
                    format!("{e} ({stored} values were stored)"),
                    "write the references yourself, or run the import again with --force --out FILE",
                )
            })?;
            out.display().to_string()
        }
        None => {
            print(&refs)?;
            "standard output".to_owned()
        }
    };
    eprint!(
        "{}",
        summary(file, &entries, &skipped, &dest, args.out.as_deref())
    );
    Ok(0)
}

/// `--prefix`: a handle-like name, with or without `@` and a trailing `/`.
fn prefix(text: Option<&str>) -> Result<Option<String>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let bare = text.trim_start_matches('@').trim_end_matches('/');
    Handle::from_name(bare).map_err(|_| {
        Error::usage_hint(
            format!("--prefix \"{}\" is not a usable prefix", text.escape_default()),
            "a prefix is handle-like: segments of A-Z a-z 0-9 _ . - separated by /, as in --prefix myapp/prod",
        )
    })?;
    Ok(Some(bare.to_owned()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The whole file, into a wiping buffer: a regular file (a FIFO or a
/// device fails at once), at most `MAX_DOTENV_LEN` bytes, UTF-8, less a
/// leading byte-order mark.
fn read(path: &Path) -> Result<Zeroizing<String>> {
    let io = |e| Error::io(format!("reading {}", path.display()), e);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::usage(format!(
            "{} is not a regular file; import reads a .env file",
            path.display()
        )));
    }
    let too_big = |len: u64| {
        Error::usage(format!(
            "{} is {len} bytes, over the limit of {MAX_DOTENV_LEN} bytes for a .env file",
            path.display()
        ))
    };
    if meta.len() > MAX_DOTENV_LEN {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(
        usize::try_from(meta.len()).unwrap_or(0).saturating_add(1),
    ));
    file.take(MAX_DOTENV_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_DOTENV_LEN {
        return Err(too_big(bytes.len() as u64));
    }
    let start = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    match std::str::from_utf8(&bytes[start..]) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(e) => Err(Error::usage(format!(
            "{}:{}: not UTF-8 text",
            path.display(),
            line_of(&bytes[start..], e.valid_up_to())
        ))),
    }
}

/// 1-based line number of byte `at`.
fn line_of(bytes: &[u8], at: usize) -> usize {
    bytes[..at.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The variables of `text` in order, and the keys skipped for an empty
/// value; what cannot be imported goes to `problems` (by line number and
/// key, never with any of the file's text).
fn parse(
    path: &Path,
    text: &str,
    problems: &mut Vec<String>,
) -> (Vec<(String, SecretValue)>, Vec<String>) {
    for line in substitutions(text) {
        problems.push(format!(
            "{}:{line}: \"$\" would be filled in from the environment (dotenv substitution); import stores values as written: single-quote the value ('…') or escape the $ (\\$) to keep it, or write the value out",
            path.display()
        ));
    }
    let mut out: Vec<(String, SecretValue)> = Vec::new();
    let mut skipped = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (key, value) = match item {
            Ok(pair) => pair,
            Err(dotenvy::Error::LineParse(at, _)) => {
                // `at` is text of the file (the entry, or its value): used
                // to find where the entry starts, never shown.
                let line = text
                    .find(at.as_str())
                    .map_or(0, |start| line_of(text.as_bytes(), start));
                drop(Zeroizing::new(at));
                problems.push(format!(
                    "{}:{line}: the entry starting here cannot be parsed: check its name (letters, digits, _) and the = after it, that its quotes close, that its escapes are ones dotenv knows (\\n \\\" \\\\ \\' \\$; write a tab as it is), and quote a value with blanks in it",
                    path.display()
                ));
                continue;
            }
            Err(_) => {
                problems.push(format!("{}: cannot be parsed", path.display()));
                continue;
            }
        };
        let value = SecretValue::new(value.into_bytes());
        if !is_env_name(&key) {
            problems.push(format!(
                "{}: {key} is not an environment variable name (letters, digits and _), so no program could be given it",
                path.display()
            ));
        } else if out.iter().any(|(k, _)| *k == key) {
            problems.push(format!(
                "{}: {key} is set more than once; keep the one the program should get",
                path.display()
            ));
        } else if value.is_empty() {
            skipped.push(key);
        } else if let Err(e) = store::check_value(&value) {
            problems.push(format!("{}: {key}: {e}", path.display()));
        } else {
            out.push((key, value));
        }
    }
    (out, skipped)
}

/// The lines where an unescaped `$` stands outside single quotes: dotenv
/// parsers replace it (and the name after it) with a variable from the
/// environment, which here would be secret's own (SECRET_PASSPHRASE
/// among them). Follows dotenv's quoting: `'…'` is literal, `"…"` and bare
/// values substitute, `\` escapes the next character outside single
/// quotes, and `#` after a blank (or at the start of a line) outside
/// quotes starts a comment.
fn substitutions(text: &str) -> Vec<usize> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut quote = Quote::None;
    let (mut line, mut escaped, mut comment, mut after_blank) = (1, false, false, true);
    let mut found: Vec<usize> = Vec::new();
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            comment = false;
            escaped = false;
            after_blank = true;
            continue;
        }
        if comment {
            continue;
        }
        if escaped {
            escaped = false;
        } else {
            match (&quote, c) {
                (Quote::None, '#') if after_blank => comment = true,
                (Quote::None | Quote::Double, '\\') => escaped = true,
                (Quote::None | Quote::Double, '$') if found.last() != Some(&line) => {
                    found.push(line);
                }
                (Quote::None, '\'') => quote = Quote::Single,
                (Quote::None, '"') => quote = Quote::Double,
                (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
                _ => {}
            }
        }
        after_blank = quote == Quote::None && (c == ' ' || c == '\t');
    }
    found
}

fn refused(file: &Path, problems: &[String]) -> Error {
    Error::usage_hint(
        format!(
            "{} cannot be imported; nothing was stored:\n  {}",
            file.display(),
            problems.join("\n  ")
        ),
        "fix these and run the import again (--dry-run shows what it would do)",
    )
}

/// The references-only env file.
fn references(file: &Path, entries: &[Entry]) -> String {
    let mut out = format!(
        "# References only (no values), written by `secret import {}`.\n# Safe to commit. Use: secret exec --env-file FILE -- COMMAND\n",
        file.display()
    );
    for e in entries {
        out.push_str(&format!("{}={}\n", e.key, e.handle));
    }
    out
}

/// Stores every entry; the audit events of those stored (all of them, or
/// the error that stopped it).
fn store_all(ctx: &Context, store: &mut dyn Store, entries: &[Entry]) -> Result<Vec<Event>> {
    let mut events = Vec::with_capacity(entries.len());
    for e in entries {
        let (action, meta) = match e.replaces {
            Some(_) => ("rotate", store.rotate(&e.target, &e.value)),
            None => ("add", store.add(&e.target, &e.value, "", "")),
        };
        let meta = match meta {
            Ok(meta) => meta,
            Err(err) => {
                ctx.record(&events)?;
                return Err(err);
            }
        };
        events.push(Event {
            action,
            handle: Some(meta.handle.clone()),
            outcome: "ok".into(),
            fingerprint: Some(meta.fingerprint),
            ..ctx.event()
        });
    }
    Ok(events)
}

fn dry_run(
    file: &Path,
    args: &ImportArgs,
    entries: &[Entry],
    skipped: &[String],
    problems: &[String],
) -> Result<u8> {
    let mut out = String::from("dry run: nothing is stored or written\n");
    for e in entries {
        out.push_str(&match e.replaces {
            Some(v) => format!(
                "{}: would replace {} (version {v}, --force)\n",
                e.key, e.target
            ),
            None => format!("{}: would add {}\n", e.key, e.target),
        });
    }
    for key in skipped {
        out.push_str(&format!("{key}: would be skipped (empty value)\n"));
    }
    out.push_str(&format!(
        "would write {} reference{} to {}\n",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        args.out
            .as_ref()
            .map_or("standard output".to_owned(), |o| o.display().to_string())
    ));
    if problems.is_empty() {
        print(&out)?;
        return Ok(0);
    }
    print(&out)?;
    Err(refused(file, problems))
}

/// What happened, and what to do with FILE now.
fn summary(
    file: &Path,
    entries: &[Entry],
    skipped: &[String],
    dest: &str,
    out: Option<&Path>,
) -> String {
    let replaced = entries.iter().filter(|e| e.replaces.is_some()).count();
    let mut s = format!(
        "secret: imported {} value{} from {} ({} new, {replaced} replaced); references written to {dest}\n",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        file.display(),
        entries.len() - replaced,
    );
    if !skipped.is_empty() {
        s.push_str(&format!(
            "secret: skipped {} (empty: nothing to keep secret; pass it with --env VAR= if the program needs it)\n",
            skipped.join(", ")
        ));
    }
    let env_file = out.map_or("app.env".to_owned(), |o| o.display().to_string());
    s.push_str(&format!(
        "secret: {0} still holds the values in plain text. Check the program runs with\n  secret exec --env-file {env_file} -- COMMAND\nthen delete it: shred -u {0} (or rm {0})\n",
        file.display()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutions_follow_dotenv_quoting() {
        let text = "A=$HOME\nB='$kept'\nC=\"x${Y}\"\nD=\\$kept\n# $comment\nE=v # $also comment\nF=v#$not-a-comment\nG=\"multi\nline $Z\"\nH='it''s $kept'\n";
        assert_eq!(substitutions(text), [1, 3, 7, 9]);
        assert!(substitutions("A=plain\nB='a \"$b\" c'\n").is_empty());
    }
}

//! The audit trail: append-only JSON lines, one per event (add, rotate, rm,
//! resolve, passwd, init), each carrying the SHA-256 of the line before it
//! and a sequence number, so `secret audit --verify` finds a line that was
//! edited, removed or reordered. It records handles, outcomes and
//! fingerprints, never a value.
//!
//! Anchoring: a command that unlocked the store gives this module a key
//! derived from the vault key (`use_key`); every line it writes then ends
//! in `"mac"`, an HMAC of the line under that key, and the line's `prev`
//! chains it to everything before. Someone who can edit the trail but does
//! not have the vault key cannot rewrite a keyed line, nor any line before
//! one. The head is kept in a small sidecar, `audit.head`: the trail's
//! length, the last line's number and hash (so an append never reads the
//! trail), and the last *keyed* line's number and hash under an HMAC (so
//! cutting or editing the end of the trail, or stripping a line's mac, is
//! found). Lines written without the key (`lock`, a launch that needed no
//! local secret) are chained but sealed only by the next keyed line;
//! `--verify` says how many there are.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::error::{Error, Result};
use crate::fsio;
use crate::paths::Paths;

/// The `prev` of the first line.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub seq: u64,
    pub time: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// The remote reference fetched (directly, or through a link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub consumer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    pub outcome: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub prev: String,
    /// HMAC-SHA-256 (hex) of the line without this field, under the audit
    /// key; always the last field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The audit key of the store this command unlocked, if it unlocked one.
static KEY: std::sync::OnceLock<crypto::Key> = std::sync::OnceLock::new();

/// The label of the audit key, a subkey of a store's root key.
pub(crate) const KEY_LABEL: &str = "secret/v1/audit";

/// Lets this process key the lines it writes and check keyed lines:
/// called by a store when it is unlocked, with its keys.
pub(crate) fn use_key(keys: &crate::store::Keys) {
    let _ = KEY.set(crypto::Key::from_bytes(zeroize::Zeroizing::new(
        *keys.audit.as_bytes(),
    )));
}

/// The sidecar holding the trail's head.
fn head_file(paths: &Paths) -> std::path::PathBuf {
    paths.audit_file().with_file_name("audit.head")
}

/// What `audit.head` records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Head {
    /// The trail's length in bytes when this was written.
    len: u64,
    seq: u64,
    hash: String,
    /// The last keyed line: its number and hash, and an HMAC of both.
    keyed: Option<(u64, String, String)>,
}

/// The sidecar is written in place, padded to one fixed size, in one write.
const HEAD_LEN: usize = 320;

impl Head {
    fn anchor_mac(key: &crypto::Key, seq: u64, hash: &str) -> String {
        crypto::hex(&crypto::hmac(
            key,
            &[
                b"secret/v1/audit-head\0",
                seq.to_string().as_bytes(),
                b" ",
                hash.as_bytes(),
            ],
        ))
    }

    fn encode(&self) -> Vec<u8> {
        let keyed = match &self.keyed {
            Some((seq, hash, mac)) => format!("{seq} {hash} {mac}"),
            None => "- - -".into(),
        };
        let mut out = format!(
            "secret-audit-head/1 {} {} {} {keyed}\n",
            self.len, self.seq, self.hash
        )
        .into_bytes();
        out.resize(HEAD_LEN.max(out.len()), b' ');
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        // ASCII: the head is written padded with spaces, and Unicode's
        // whitespace test costs ten times as much per byte.
        let f: Vec<&str> = text.split_ascii_whitespace().collect();
        if f.len() != 7 || f[0] != "secret-audit-head/1" {
            return None;
        }
        let keyed = if f[4] == "-" {
            None
        } else {
            Some((f[4].parse().ok()?, f[5].to_owned(), f[6].to_owned()))
        };
        Some(Self {
            len: f[1].parse().ok()?,
            seq: f[2].parse().ok()?,
            hash: f[3].to_owned(),
            keyed,
        })
    }
}

fn read_head(paths: &Paths) -> Result<Option<Head>> {
    let bytes = fsio::read_private_file(
        &head_file(paths),
        "the audit head",
        4096,
        fsio::Readers::OwnerOnly,
    )?;
    Ok(bytes.map(|b| Head::decode(&b).unwrap_or_default()))
}

/// `audit.head`, opened once by `append` to read the head and then
/// rewrite it in place.
struct HeadFile {
    path: std::path::PathBuf,
    file: File,
}

impl HeadFile {
    fn open(paths: &Paths, dir: fsio::PrivateDir<'_>) -> Result<Self> {
        let path = head_file(paths);
        let file = dir
            .open(
                &path,
                "the audit head",
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600),
            )?
            .ok_or_else(|| {
                Error::io(
                    format!("writing {}", path.display()),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
        Ok(Self { path, file })
    }

    /// The head it holds; `None` when it is empty, too long or unreadable
    /// (then `append` finds the end of the trail by reading it).
    fn read(&self) -> Option<Head> {
        let mut bytes = Vec::with_capacity(HEAD_LEN);
        (&self.file).take(4097).read_to_end(&mut bytes).ok()?;
        if bytes.is_empty() || bytes.len() > 4096 {
            return None;
        }
        Some(Head::decode(&bytes).unwrap_or_default())
    }

    fn write(&self, head: &Head) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(&head.encode(), 0)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }
}

/// Splits a keyed line into the text its mac covers and the mac.
fn split_mac(line: &str) -> Option<(String, &str)> {
    const TAIL: &str = ",\"mac\":\"";
    let body = line.strip_suffix("\"}")?;
    let at = body.rfind(TAIL)?;
    let mac = &body[at + TAIL.len()..];
    Some((format!("{}}}", &body[..at]), mac))
}

/// What a caller reports; `append` adds the time, pid, sequence and chain.
#[derive(Clone, Debug, Default)]
pub(crate) struct Event {
    pub action: &'static str,
    pub handle: Option<String>,
    pub reference: Option<String>,
    pub consumer: String,
    pub purpose: Option<String>,
    pub outcome: String,
    pub fingerprint: Option<String>,
}

/// Appends `events` as consecutive lines, under an exclusive lock on the
/// trail so concurrent commands cannot interleave or fork the chain. The
/// head comes from `audit.head` when it matches the trail's length, so the
/// trail itself is not read.
pub(crate) fn append(paths: &Paths, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let path = paths.audit_file();
    let dir =
        fsio::ensure_private_dir(fsio::parent_dir(&path)).map_err(|e| unwritable(&path, e))?;
    let io =
        |e: std::io::Error| Error::io(format!("writing the audit trail {}", path.display()), e);
    let file = dir
        .open(
            &path,
            "the audit trail",
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600),
        )
        .map_err(|e| unwritable(&path, e))?
        .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io(e.into()))?;
    let len = file.metadata().map_err(io)?.len();
    let head_file = HeadFile::open(paths, dir).map_err(|e| unwritable(&path, e))?;
    let head = head_file.read();
    let (mut seq, mut prev, ends_cleanly) = match &head {
        Some(h) if h.len == len && !h.hash.is_empty() => (h.seq, h.hash.clone(), true),
        _ => tail(&mut file).map_err(io)?,
    };
    let mut keyed = head.and_then(|h| h.keyed);
    let mut out = Vec::new();
    if !ends_cleanly {
        // A torn line from a crash: close it so `--verify` reports it.
        out.push(b'\n');
    }
    let time = crate::timestamp::rfc3339(std::time::SystemTime::now());
    let key = KEY.get();
    for event in events {
        seq += 1;
        let record = Record {
            seq,
            time: time.clone(),
            action: event.action.to_owned(),
            handle: event.handle.clone(),
            reference: event.reference.clone(),
            consumer: event.consumer.clone(),
            purpose: event.purpose.clone(),
            outcome: event.outcome.clone(),
            pid: std::process::id(),
            fingerprint: event.fingerprint.clone(),
            prev,
            mac: None,
        };
        let mut line = serde_json::to_string(&record).map_err(|e| io(e.into()))?;
        if let Some(key) = key {
            let mac = crypto::hex(&crypto::hmac(key, &[line.as_bytes()]));
            line.pop();
            line.push_str(&format!(",\"mac\":\"{mac}\"}}"));
        }
        prev = crypto::sha256_hex(line.as_bytes());
        if let Some(key) = key {
            keyed = Some((seq, prev.clone(), Head::anchor_mac(key, seq, &prev)));
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    file.write_all(&out).map_err(io)?;
    head_file.write(&Head {
        len: len + out.len() as u64,
        seq,
        hash: prev,
        keyed,
    })
}

/// A trail that cannot be written (a read-only `SECRET_HOME`, as in a
/// container image): nothing may be handed out unrecorded, so say where
/// else the trail can go.
fn unwritable(path: &Path, e: Error) -> Error {
    match &e {
        Error::Io { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(nix::libc::EROFS | nix::libc::EACCES | nix::libc::EPERM)
            ) =>
        {
            Error::usage_hint(
                format!("cannot write the audit trail {}: {source}", path.display()),
                "every resolution is recorded before a value is handed out; point SECRET_AUDIT at a file in a writable directory of yours, e.g. SECRET_AUDIT=/tmp/secret-audit/audit.jsonl",
            )
        }
        _ => e,
    }
}

/// The last line's sequence number and hash, and whether the file ends in a
/// newline.
fn tail(file: &mut File) -> std::io::Result<(u64, String, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, GENESIS.to_owned(), true));
    }
    let mut window = 4096u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; usize::try_from(len - start).unwrap_or(0)];
        file.read_exact(&mut buf)?;
        let ends_cleanly = buf.last() == Some(&b'\n');
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match body.iter().rposition(|&b| b == b'\n') {
            Some(i) => return Ok(last_line(&body[i + 1..], ends_cleanly)),
            None if start == 0 => return Ok(last_line(body, ends_cleanly)),
            None => window *= 4,
        }
    }
}

fn last_line(line: &[u8], ends_cleanly: bool) -> (u64, String, bool) {
    let seq = serde_json::from_slice::<Record>(line).map_or(0, |r| r.seq);
    (seq, crypto::sha256_hex(line), ends_cleanly)
}

/// Every record, in order; a line that does not parse is an error naming it.
pub(crate) fn read(paths: &Paths) -> Result<Vec<Record>> {
    let path = paths.audit_file();
    let Some(bytes) = fsio::read_private(&path)? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| broken(&path, i + 1, format!("not an audit record ({e})")))
        })
        .collect()
}

fn broken(path: &Path, line: usize, reason: String) -> Error {
    Error::AuditBroken {
        path: path.to_owned(),
        line,
        reason,
    }
}

/// What `verify` found.
#[derive(Debug)]
pub(crate) struct Verified {
    /// Lines in the trail.
    pub count: usize,
    /// The hash of the last line.
    pub head: String,
    /// Lines whose mac was checked under the vault key.
    pub keyed: usize,
    /// Lines after the last keyed one, written without the key: chained,
    /// but not yet sealed by a keyed line.
    pub unsealed: usize,
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "audit trail intact: {} records; last record hash {}",
            self.count, self.head
        )?;
        if self.count > 0 {
            writeln!(
                f,
                "{} records checked under the vault key; {} after the last of them written without it (chained, not yet sealed)",
                self.keyed, self.unsealed
            )?;
        }
        Ok(())
    }
}

/// Checks the whole chain, every keyed line's mac (when this process has
/// the key), and the end of the trail against `audit.head`.
pub(crate) fn verify(paths: &Paths) -> Result<Verified> {
    let path = paths.audit_file();
    let head = read_head(paths)?;
    let Some(bytes) = fsio::read_private(&path)? else {
        if head.as_ref().is_some_and(|h| h.seq > 0) {
            return Err(broken(
                &path,
                1,
                "the trail is gone, but its head record says it had lines".into(),
            ));
        }
        return Ok(Verified {
            count: 0,
            head: GENESIS.to_owned(),
            keyed: 0,
            unsealed: 0,
        });
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        broken(&path, line, "not UTF-8".into())
    })?;
    if !text.is_empty() && !text.ends_with('\n') {
        let line = text.lines().count();
        return Err(broken(
            &path,
            line,
            "the last line is incomplete (cut short)".into(),
        ));
    }
    let key = KEY.get();
    let mut prev = GENESIS.to_owned();
    let mut count = 0;
    let mut keyed = 0;
    let mut last_keyed: Option<(u64, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let record: Record = serde_json::from_str(line)
            .map_err(|e| broken(&path, n, format!("not an audit record ({e})")))?;
        if record.seq != n as u64 {
            return Err(broken(
                &path,
                n,
                format!(
                    "sequence number {} where {n} was expected (a line was removed or reordered)",
                    record.seq
                ),
            ));
        }
        if record.prev != prev {
            return Err(broken(
                &path,
                n,
                "its hash of the previous line does not match (the line before it was edited, removed or reordered)".into(),
            ));
        }
        prev = crypto::sha256_hex(line.as_bytes());
        if record.mac.is_some() {
            let ok = split_mac(line).is_some_and(|(body, mac)| {
                key.is_none_or(|k| crypto::hex(&crypto::hmac(k, &[body.as_bytes()])) == mac)
            });
            if !ok {
                return Err(broken(
                    &path,
                    n,
                    "its mac does not match: the line was edited (or written for another vault)"
                        .into(),
                ));
            }
            if key.is_some() {
                keyed += 1;
            }
            last_keyed = Some((n as u64, prev.clone()));
        }
        count = n;
    }
    let sealed = last_keyed
        .as_ref()
        .map_or(0, |(n, _)| usize::try_from(*n).unwrap_or(0));
    check_head(&path, head, count, &prev, last_keyed, key)?;
    let unsealed = count - sealed;
    Ok(Verified {
        count,
        head: prev,
        keyed,
        unsealed,
    })
}

/// The end of the trail against the head record: the last line is the one
/// recorded, and the last keyed line is where the keyed anchor says.
fn check_head(
    path: &Path,
    head: Option<Head>,
    count: usize,
    last: &str,
    last_keyed: Option<(u64, String)>,
    key: Option<&crypto::Key>,
) -> Result<()> {
    let Some(head) = head else {
        if last_keyed.is_some() {
            return Err(broken(
                path,
                count,
                "audit.head, which anchors the end of the trail, is missing".into(),
            ));
        }
        // A trail from before the head record: nothing to check it against.
        return Ok(());
    };
    if let Some((seq, hash, mac)) = &head.keyed {
        if key.is_some_and(|k| Head::anchor_mac(k, *seq, hash) != *mac) {
            return Err(broken(
                path,
                count,
                "audit.head was altered (its mac does not match)".into(),
            ));
        }
        if last_keyed
            .as_ref()
            .is_none_or(|(n, h)| n < seq || (n == seq && h != hash))
        {
            let at = usize::try_from(*seq)
                .unwrap_or(usize::MAX)
                .min(count.max(1));
            return Err(broken(
                path,
                at,
                format!(
                    "line {seq}, the last one written with the vault key, was edited, removed or stripped of its mac"
                ),
            ));
        }
    }
    if head.seq != count as u64 || head.hash != last {
        return Err(broken(
            path,
            count.max(1),
            format!(
                "the trail ends at line {count}, but its head record says line {} (the end was cut or edited)",
                head.seq
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Paths) {
        let dir = crate::fsio::private_tempdir();
        let paths = Paths {
            config_dir: dir.path().to_owned(),
            data_dir: dir.path().to_owned(),
            audit: None,
        };
        (dir, paths)
    }

    fn event(action: &'static str, handle: &str) -> Event {
        Event {
            action,
            handle: Some(handle.to_owned()),
            consumer: "cli".into(),
            outcome: "ok".into(),
            ..Event::default()
        }
    }

    #[test]
    fn chain_verifies_and_detects_edits_removals_and_reorders() {
        let (_d, paths) = setup();
        append(&paths, &[event("add", "a"), event("add", "b")]).expect("append");
        append(&paths, &[event("rotate", "a")]).expect("append");
        append(&paths, &[event("rm", "b")]).expect("append");
        let v = verify(&paths).expect("intact");
        assert_eq!(v.count, 4);
        assert_ne!(v.head, GENESIS);
        assert_eq!(read(&paths).expect("read")[2].action, "rotate");

        let good = std::fs::read_to_string(paths.audit_file()).expect("read");
        let lines: Vec<&str> = good.lines().collect();
        let write = |ls: &[&str]| {
            std::fs::write(
                paths.audit_file(),
                ls.iter().map(|l| format!("{l}\n")).collect::<String>(),
            )
            .expect("write");
        };
        let edited = lines[1].replace("\"b\"", "\"c\"");
        write(&[lines[0], &edited, lines[2], lines[3]]);
        assert!(matches!(
            verify(&paths),
            Err(Error::AuditBroken { line: 3, .. })
        ));
        write(&[lines[0], lines[2], lines[3]]);
        assert!(matches!(
            verify(&paths),
            Err(Error::AuditBroken { line: 2, .. })
        ));
        write(&[lines[0], lines[2], lines[1], lines[3]]);
        assert!(verify(&paths).is_err());
        std::fs::write(paths.audit_file(), &good[..good.len() - 5]).expect("write");
        assert!(verify(&paths).is_err());
    }

    #[test]
    fn a_missing_or_garbled_head_is_rebuilt_from_the_trail() {
        let (_d, paths) = setup();
        append(&paths, &[event("add", "a")]).expect("append");
        std::fs::remove_file(head_file(&paths)).expect("rm head");
        append(&paths, &[event("add", "b")]).expect("append without a head");
        std::fs::write(head_file(&paths), b"not a head").expect("garble");
        append(&paths, &[event("rm", "a")]).expect("append over a garbled head");
        let v = verify(&paths).expect("intact");
        assert_eq!(v.count, 3);
        let head = read_head(&paths).expect("read").expect("a head");
        assert_eq!(head.seq, 3);
        let len = std::fs::metadata(paths.audit_file()).expect("trail").len();
        assert_eq!(head.len, len);
    }
}

//! The audit trail: append-only JSON lines, one per event (add, rotate, rm,
//! resolve, passwd, init), each carrying the SHA-256 of the line before it
//! and a sequence number, so `secret audit --verify` finds a line that was
//! edited, removed or reordered. It records handles, outcomes and
//! fingerprints, never a value.

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
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
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
}

/// What a caller reports; `append` adds the time, pid, sequence and chain.
#[derive(Clone, Debug, Default)]
pub struct Event {
    pub action: &'static str,
    pub handle: Option<String>,
    pub reference: Option<String>,
    pub consumer: String,
    pub purpose: Option<String>,
    pub outcome: String,
    pub fingerprint: Option<String>,
}

/// Appends `events` as consecutive lines, under an exclusive lock on the
/// trail so concurrent commands cannot interleave or fork the chain.
pub fn append(paths: &Paths, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    fsio::ensure_private_dir(&paths.data_dir)?;
    let path = paths.audit_file();
    let io =
        |e: std::io::Error| Error::io(format!("writing the audit trail {}", path.display()), e);
    let file = fsio::open_trusted(
        &path,
        "the audit trail",
        fsio::Readers::OwnerOnly,
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600),
    )?
    .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io(e.into()))?;
    let (mut seq, mut prev, ends_cleanly) = tail(&mut file).map_err(io)?;
    let mut out = Vec::new();
    if !ends_cleanly {
        // A torn line from a crash: close it so `--verify` reports it.
        out.push(b'\n');
    }
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
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
        };
        let line = serde_json::to_string(&record).map_err(|e| io(e.into()))?;
        prev = crypto::sha256_hex(line.as_bytes());
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    file.write_all(&out).map_err(io)?;
    Ok(())
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
pub fn read(paths: &Paths) -> Result<Vec<Record>> {
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

/// Checks the whole chain. Returns the number of lines and the hash of the
/// last one (keep it elsewhere to detect a trail cut at its end).
pub fn verify(paths: &Paths) -> Result<(usize, String)> {
    let path = paths.audit_file();
    let Some(bytes) = fsio::read_private(&path)? else {
        return Ok((0, GENESIS.to_owned()));
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
    let mut prev = GENESIS.to_owned();
    let mut count = 0;
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
        count = n;
    }
    Ok((count, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Paths) {
        let dir = crate::fsio::private_tempdir();
        let paths = Paths {
            config_dir: dir.path().to_owned(),
            data_dir: dir.path().to_owned(),
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
        let (n, head) = verify(&paths).expect("intact");
        assert_eq!(n, 4);
        assert_ne!(head, GENESIS);
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
}

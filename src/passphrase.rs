//! Getting secrets from the person or the pipeline: the vault passphrase
//! (`--passphrase-fd N`, then `SECRET_PASSPHRASE`, then a no-echo prompt on
//! `/dev/tty`, never stdin, which belongs to the child) and values for `add`
//! and `rotate` (stdin, or a no-echo prompt when stdin is a terminal). Every
//! buffer is reserved up front and wiped, so no stray copy is left behind.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

use nix::sys::termios::{self, LocalFlags, SetArg};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::value::{MAX_VALUE_LEN, SecretValue};

/// The longest passphrase we read.
const MAX_PASSPHRASE_LEN: usize = 64 * 1024;

/// Where the current passphrase comes from, in order of precedence.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sources {
    /// `--passphrase-fd N`.
    pub fd: Option<i32>,
    /// For a new passphrase (`passwd`): `--new-passphrase-fd N`.
    pub new_fd: Option<i32>,
}

impl Sources {
    /// The current vault passphrase.
    pub fn current(&self) -> Result<SecretValue> {
        if let Some(fd) = self.fd {
            return nonempty(read_fd(fd, "--passphrase-fd")?, "--passphrase-fd");
        }
        if let Some(v) = env_value("SECRET_PASSPHRASE") {
            return nonempty(v, "SECRET_PASSPHRASE");
        }
        let p = prompt_tty("Vault passphrase: ")?;
        nonempty(p, "the passphrase typed")
    }

    /// A passphrase for a new vault: the same sources as `current`, and a
    /// typed one is asked twice.
    pub fn for_new_vault(&self) -> Result<SecretValue> {
        if self.fd.is_some() || std::env::var_os("SECRET_PASSPHRASE").is_some() {
            return self.current();
        }
        confirmed("New vault passphrase: ")
    }

    /// The new passphrase for `passwd`: `--new-passphrase-fd`,
    /// `SECRET_NEW_PASSPHRASE`, or typed twice.
    pub fn replacement(&self) -> Result<SecretValue> {
        if let Some(fd) = self.new_fd {
            return nonempty(read_fd(fd, "--new-passphrase-fd")?, "--new-passphrase-fd");
        }
        if let Some(v) = env_value("SECRET_NEW_PASSPHRASE") {
            return nonempty(v, "SECRET_NEW_PASSPHRASE");
        }
        confirmed("New passphrase: ")
    }
}

fn env_value(name: &str) -> Option<SecretValue> {
    use std::os::unix::ffi::OsStringExt;
    std::env::var_os(name).map(|v| SecretValue::new(v.into_vec()))
}

fn nonempty(v: SecretValue, from: &str) -> Result<SecretValue> {
    if v.is_empty() {
        Err(Error::Passphrase {
            message: format!("the passphrase from {from} is empty"),
            hint: "use a non-empty passphrase".into(),
        })
    } else {
        Ok(v)
    }
}

fn confirmed(prompt: &str) -> Result<SecretValue> {
    let first = nonempty(prompt_tty(prompt)?, "the passphrase typed")?;
    let again = prompt_tty("Repeat it: ")?;
    if first.expose() != again.expose() {
        return Err(Error::Passphrase {
            message: "the two passphrases differ; nothing was changed".into(),
            hint: "type the same passphrase twice".into(),
        });
    }
    Ok(first)
}

/// Reads a whole passphrase from an inherited descriptor (through
/// `/dev/fd/N`, so no unsafe ownership games), stripping one newline.
fn read_fd(fd: i32, flag: &str) -> Result<SecretValue> {
    let path = format!("/dev/fd/{fd}");
    let file = File::open(&path).map_err(|e| Error::Passphrase {
        message: format!("{flag} {fd}: cannot read descriptor {fd}: {e}"),
        hint: format!("open descriptor {fd} for reading, e.g. `{flag} 3 3<passphrase-file`"),
    })?;
    let value = read_bounded(file, MAX_PASSPHRASE_LEN)
        .map_err(|e| Error::io(format!("reading {flag} {fd}"), e))?;
    match value {
        Some(v) => Ok(strip_newline(v)),
        None => Err(Error::Passphrase {
            message: format!("{flag} {fd}: the passphrase is longer than 64 KiB"),
            hint: "use a shorter passphrase".into(),
        }),
    }
}

/// Reads at most `limit` bytes into a buffer reserved up front (no
/// reallocation leaves an unwiped copy). `None` when there is more.
fn read_bounded(reader: impl Read, limit: usize) -> std::io::Result<Option<SecretValue>> {
    let mut buf = Vec::with_capacity(limit + 2);
    let read = reader.take(limit as u64 + 1).read_to_end(&mut buf);
    // Wrapped before the result is checked, so the bytes are wiped on every path.
    let value = SecretValue::new(buf);
    read?;
    Ok((value.len() <= limit).then_some(value))
}

/// Strips one trailing `\n` (or `\r\n`), in place.
fn strip_newline(v: SecretValue) -> SecretValue {
    let bytes = v.expose();
    let cut = if bytes.ends_with(b"\r\n") {
        2
    } else {
        usize::from(bytes.ends_with(b"\n"))
    };
    if cut == 0 {
        return v;
    }
    let mut out = Vec::with_capacity(bytes.len() - cut);
    out.extend_from_slice(&bytes[..bytes.len() - cut]);
    SecretValue::new(out)
}

/// Prompts on the controlling terminal with echo off.
fn prompt_tty(prompt: &str) -> Result<SecretValue> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(|_| Error::Passphrase {
        message: "no passphrase given and no terminal to ask on (and the vault is not unlocked: the unlock cache is empty, expired or was ended by `secret lock`)".into(),
        hint: "set SECRET_PASSPHRASE, or pass --passphrase-fd N with the passphrase on descriptor N; or cache the vault key for a while with `secret unlock --for 15m` from a shell".into(),
    })?;
    prompt_no_echo(tty, prompt)
}

/// Writes `prompt` to `term`, reads one line with echo off, restores the
/// terminal.
fn prompt_no_echo(mut term: File, prompt: &str) -> Result<SecretValue> {
    let io = |e: std::io::Error| Error::io("reading from the terminal", e);
    let saved = termios::tcgetattr(term.as_fd()).map_err(|e| io(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    // Echo goes off before the prompt shows, so nothing typed in answer to
    // the prompt can be echoed or flushed away.
    termios::tcsetattr(term.as_fd(), SetArg::TCSAFLUSH, &quiet).map_err(|e| io(e.into()))?;
    term.write_all(prompt.as_bytes()).map_err(io)?;
    let mut line = Vec::with_capacity(MAX_VALUE_LEN + 1);
    let mut byte = Zeroizing::new([0u8; 1]);
    let read = loop {
        match term.read(byte.as_mut()) {
            Ok(0) => break Ok(()),
            Ok(_) if byte[0] == b'\n' => break Ok(()),
            Ok(_) if line.len() < MAX_VALUE_LEN => line.push(byte[0]),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let _ = termios::tcsetattr(term.as_fd(), SetArg::TCSAFLUSH, &saved);
    let value = SecretValue::new(line);
    read.map_err(io)?;
    Ok(strip_newline(value))
}

/// The value for `add` or `rotate`: stdin (one trailing newline stripped),
/// or a no-echo prompt when stdin is a terminal.
pub fn read_value(handle: &str, from_stdin: bool) -> Result<SecretValue> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let tty = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(|e| Error::io("opening the terminal", e))?;
        return prompt_no_echo(tty, &format!("Value for {handle} (not shown): "));
    }
    if !from_stdin {
        return Err(Error::usage_hint(
            "standard input is not a terminal and --stdin was not given",
            format!(
                "pipe the value in with --stdin, e.g. `printenv MY_KEY | secret add {handle} --stdin`"
            ),
        ));
    }
    let value = read_bounded(stdin.lock(), MAX_VALUE_LEN + 2)
        .map_err(|e| Error::io("reading the value from stdin", e))?;
    let value = value
        .map(strip_newline)
        .filter(|v| v.len() <= MAX_VALUE_LEN);
    value.ok_or_else(|| {
        Error::usage(format!(
            "the value on stdin is over the limit of {MAX_VALUE_LEN} bytes (1 MiB); nothing was stored"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_exactly_one_newline() {
        let s = |b: &[u8]| {
            strip_newline(SecretValue::new(b.to_vec()))
                .expose()
                .to_vec()
        };
        assert_eq!(s(b"sk-1\n"), b"sk-1");
        assert_eq!(s(b"sk-1\r\n"), b"sk-1");
        assert_eq!(s(b"sk-1\n\n"), b"sk-1\n");
        assert_eq!(s(b"sk-1"), b"sk-1");
    }

    #[test]
    fn bounded_read_says_when_there_is_more() {
        let ok = read_bounded(&b"abc"[..], 3).expect("read").expect("fits");
        assert_eq!(ok.expose(), b"abc");
        assert!(read_bounded(&b"abcd"[..], 3).expect("read").is_none());
    }
}

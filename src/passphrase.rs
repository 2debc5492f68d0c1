//! Getting secrets from the person or the pipeline: the vault passphrase
//! (`--passphrase-fd N`, then `SECRET_PASSPHRASE`, then a no-echo prompt on
//! `/dev/tty`, never stdin, which belongs to the child) and values for `add`
//! and `rotate` (stdin, or a no-echo prompt when stdin is a terminal). Every
//! buffer is reserved up front and wiped, so no stray copy is left behind.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask, raise};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, LocalFlags, SetArg};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::value::{MAX_VALUE_LEN, SecretValue};

/// The longest passphrase we read.
const MAX_PASSPHRASE_LEN: usize = 64 * 1024;

/// The shortest new passphrase `init` and `passwd` accept, in characters:
/// Argon2id slows guessing down, it cannot make `a` safe.
pub(crate) const MIN_NEW_PASSPHRASE_CHARS: usize = 8;

/// Where the current passphrase comes from, in order of precedence.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sources {
    /// `--passphrase-fd N`.
    pub fd: Option<i32>,
    /// For a new passphrase (`passwd`): `--new-passphrase-fd N`.
    pub new_fd: Option<i32>,
}

impl Sources {
    /// The current vault passphrase.
    pub(crate) fn current(&self) -> Result<SecretValue> {
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
    pub(crate) fn for_new_vault(&self) -> Result<SecretValue> {
        if self.fd.is_some() || std::env::var_os("SECRET_PASSPHRASE").is_some() {
            return long_enough(self.current()?);
        }
        confirmed("New vault passphrase: ")
    }

    /// The new passphrase for `passwd`: `--new-passphrase-fd`,
    /// `SECRET_NEW_PASSPHRASE`, or typed twice.
    pub(crate) fn replacement(&self) -> Result<SecretValue> {
        if let Some(fd) = self.new_fd {
            return long_enough(read_fd(fd, "--new-passphrase-fd")?);
        }
        if let Some(v) = env_value("SECRET_NEW_PASSPHRASE") {
            return long_enough(v);
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

/// Refuses a new passphrase under `MIN_NEW_PASSPHRASE_CHARS` characters
/// (bytes, when it is not UTF-8).
fn long_enough(v: SecretValue) -> Result<SecretValue> {
    let bytes = v.expose();
    let chars = std::str::from_utf8(bytes).map_or(bytes.len(), |s| s.chars().count());
    if chars < MIN_NEW_PASSPHRASE_CHARS {
        return Err(Error::Passphrase {
            message: format!(
                "the new passphrase is too short: the minimum is {MIN_NEW_PASSPHRASE_CHARS} characters; nothing was changed"
            ),
            hint: format!(
                "choose a passphrase of at least {MIN_NEW_PASSPHRASE_CHARS} characters (a few random words are easy to type and hard to guess)"
            ),
        });
    }
    Ok(v)
}

fn confirmed(prompt: &str) -> Result<SecretValue> {
    let first = long_enough(prompt_tty(prompt)?)?;
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

/// The signals that end a prompt (Ctrl-C, Ctrl-\\, a hangup, `kill`): held
/// while echo is off, so that the terminal is restored before one acts.
const PROMPT_SIGNALS: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGHUP,
];

/// Writes `prompt` to `term`, reads one line with echo off, restores the
/// terminal.
///
/// A signal that ends the prompt must not leave the terminal without echo:
/// the prompt's signals are blocked and read from a signalfd beside the
/// terminal; one that arrives restores the terminal first, then is raised
/// again with the mask as it was, so it ends `secret` as it would have
/// (a shell sees 130 for Ctrl-C). One that was ignored stays ignored.
fn prompt_no_echo(mut term: File, prompt: &str) -> Result<SecretValue> {
    let io = |e: std::io::Error| Error::io("reading from the terminal", e);
    let mut held = SigSet::empty();
    for signal in PROMPT_SIGNALS {
        held.add(signal);
    }
    let mut before = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&held), Some(&mut before))
        .map_err(|e| io(e.into()))?;
    let outcome = SignalFd::with_flags(&held, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| io(e.into()))
        .and_then(|signals| read_quietly(&mut term, prompt, &signals));
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None);
    match outcome? {
        Typed::Line(value) => Ok(value),
        Typed::Interrupted(signal) => {
            let _ = raise(signal);
            Err(Error::Passphrase {
                message: format!("interrupted by {signal} at the prompt; nothing was changed"),
                hint: "run the command again".into(),
            })
        }
    }
}

/// What came of a prompt.
enum Typed {
    Line(SecretValue),
    Interrupted(Signal),
}

/// The prompt itself, with `signals` held: echo off, one line read while
/// watching `signals`, the terminal restored on every path.
fn read_quietly(term: &mut File, prompt: &str, signals: &SignalFd) -> Result<Typed> {
    let io = |e: std::io::Error| Error::io("reading from the terminal", e);
    let saved = termios::tcgetattr(term.as_fd()).map_err(|e| io(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    // Echo goes off before the prompt shows, so nothing typed in answer to
    // the prompt can be echoed or flushed away.
    termios::tcsetattr(term.as_fd(), SetArg::TCSAFLUSH, &quiet).map_err(|e| io(e.into()))?;
    let mut line = Vec::with_capacity(MAX_VALUE_LEN + 1);
    let read = term
        .write_all(prompt.as_bytes())
        .and_then(|()| read_line(term, signals, &mut line));
    let _ = termios::tcsetattr(term.as_fd(), SetArg::TCSAFLUSH, &saved);
    let value = SecretValue::new(line);
    match read.map_err(io)? {
        Some(signal) => {
            let _ = term.write_all(b"\n");
            Ok(Typed::Interrupted(signal))
        }
        None => Ok(Typed::Line(strip_newline(value))),
    }
}

/// Reads bytes into `line` up to a newline or end of file; `Some` when one
/// of `signals` came first.
fn read_line(
    term: &mut File,
    signals: &SignalFd,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<Signal>> {
    let mut byte = Zeroizing::new([0u8; 1]);
    loop {
        let mut fds = [
            PollFd::new(term.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1])
            && let Ok(Some(info)) = signals.read_signal()
        {
            let signal = i32::try_from(info.ssi_signo)
                .ok()
                .and_then(|n| Signal::try_from(n).ok())
                .unwrap_or(Signal::SIGINT);
            return Ok(Some(signal));
        }
        if !ready(&fds[0]) {
            continue;
        }
        match term.read(byte.as_mut()) {
            Ok(0) => return Ok(None),
            Ok(_) if byte[0] == b'\n' => return Ok(None),
            Ok(_) if line.len() < MAX_VALUE_LEN => line.push(byte[0]),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The value for `add` or `rotate` (`command`): stdin (one trailing
/// newline stripped), or a no-echo prompt when stdin is a terminal.
pub(crate) fn read_value(command: &str, handle: &str, from_stdin: bool) -> Result<SecretValue> {
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
                "pipe the value in with --stdin, e.g. `printenv MY_KEY | secret {command} {handle} --stdin`"
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

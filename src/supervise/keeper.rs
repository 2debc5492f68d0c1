//! The kill -9 guarantee: a small helper process (our own binary, re-run as
//! the hidden `secret plugins keeper`) that knows every live plugin process
//! group and SIGKILLs them all when the supervisor disappears, however it
//! disappears.
//!
//! PDEATHSIG only reaches a plugin's main process; its children in the
//! same group would live on after a `kill -9` of the supervisor. The
//! keeper runs in a process group of its own, ignores the terminal's
//! signals, and reads `+PGID` / `-PGID` lines from a pipe whose only writer
//! is the supervisor (close-on-exec, so no plugin inherits it). When the
//! supervisor dies the kernel closes that end: the keeper reads end of
//! file, SIGKILLs every group it still knows and exits. A group the
//! supervisor saw empty is withdrawn first, so a normal exit kills
//! nothing. A plugin descendant that leaves its process group (setsid)
//! escapes it, as it escapes every group stop.

use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::sys::{self, SpawnSpec};

/// The supervisor's side: the keeper's pid and the pipe to it.
pub(crate) struct Keeper {
    pid: Pid,
    pipe: std::fs::File,
}

impl Keeper {
    /// Starts the keeper (`/proc/self/exe plugins keeper`, empty
    /// environment but HOME=/, cwd /).
    pub(crate) fn start() -> Result<Self> {
        let io = |e: nix::errno::Errno| Error::io("starting the plugin keeper", e.into());
        let (r, w): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
        let devnull = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| Error::io("opening /dev/null", e))?;
        let argv =
            ["secret", "plugins", "keeper"].map(|a| std::ffi::CString::new(a).unwrap_or_default());
        let candidates = [std::ffi::CString::new("/proc/self/exe").unwrap_or_default()];
        let home = Zeroizing::new(b"HOME=/\0".to_vec());
        let envp = [std::ffi::CStr::from_bytes_with_nul(&home)
            .map_err(|_| io(nix::errno::Errno::EINVAL))?];
        let root = std::ffi::CString::new("/").unwrap_or_default();
        let spec = SpawnSpec {
            candidates: &candidates,
            argv: &argv,
            envp: &envp,
            new_group: true,
            foreground_of: None,
            death_signal: None,
            stdio: [Some(r.as_raw_fd()), Some(devnull.as_raw_fd()), None],
            keep_fds: &[],
            controlling_tty: None,
            cwd: Some(&root),
            extra_fds: &[],
            monitor: None,
        };
        let pid = crate::child::spawn::spawn(&spec, "the plugin keeper (/proc/self/exe)")?;
        Ok(Self {
            pid,
            pipe: std::fs::File::from(w),
        })
    }

    #[must_use]
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Tells the keeper about a new group.
    pub(crate) fn add(&mut self, pgid: Pid) {
        let _ = writeln!(self.pipe, "+{pgid}");
    }

    /// Tells the keeper a group is gone.
    pub(crate) fn remove(&mut self, pgid: Pid) {
        let _ = writeln!(self.pipe, "-{pgid}");
    }

    /// Closes the pipe (the keeper exits, killing whatever it still knows)
    /// and reaps it.
    pub(crate) fn finish(self) {
        let Self { pid, pipe } = self;
        drop(pipe);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// The keeper itself (`secret plugins keeper`): reads `+PGID`/`-PGID` lines
/// from stdin; at end of file SIGKILLs every group still listed.
pub(crate) fn main() -> u8 {
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGPIPE,
    ] {
        sys::ignore_signal(sig);
    }
    let mut groups: Vec<i32> = Vec::new();
    let stdin = std::io::stdin();
    // Bytes, not text: a line that is not `+PGID`/`-PGID` (whatever its
    // bytes) is skipped; only end of file (or a read error) ends the watch.
    for line in stdin.lock().split(b'\n') {
        let Ok(line) = line else { break };
        match parse_line(&line) {
            Some((true, pgid)) => groups.push(pgid),
            Some((false, pgid)) => groups.retain(|g| *g != pgid),
            None => {}
        }
    }
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    0
}

/// `+PGID` (true) or `-PGID` (false), for a group id above 1.
fn parse_line(line: &[u8]) -> Option<(bool, i32)> {
    let (&sign, number) = line.split_first()?;
    let add = match sign {
        b'+' => true,
        b'-' => false,
        _ => return None,
    };
    let pgid: i32 = std::str::from_utf8(number).ok()?.trim().parse().ok()?;
    (pgid > 1).then_some((add, pgid))
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn lines_are_bytes_and_junk_is_skipped() {
        assert_eq!(parse_line(b"+42"), Some((true, 42)));
        assert_eq!(parse_line(b"-42\r"), Some((false, 42)));
        assert_eq!(parse_line(b"+1"), None);
        assert_eq!(parse_line(b"\xff+42"), None);
        assert_eq!(parse_line("é42".as_bytes()), None);
        assert_eq!(parse_line(b"+\xff"), None);
        assert_eq!(parse_line(b""), None);
    }
}

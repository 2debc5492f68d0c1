//! Job control for a child on a pseudo-terminal of its own (`--mask` on a
//! terminal): the monitor, a small process that leads the child's session
//! so that Ctrl-Z stops the job and `fg` resumes it, as without masking.
//!
//! Why. A process group whose members' parents are all outside its session
//! is orphaned, and the kernel discards the terminal's stop signals
//! (SIGTSTP, SIGTTIN, SIGTTOU) for it. The child's session is new, its
//! parent (`secret`) outside it: a command leading that session could
//! never be stopped. So the monitor leads it, and the command runs in a
//! process group of its own holding the terminal's foreground; its parent,
//! the monitor, is in the same session, and the group is not orphaned (as
//! sudo's `use_pty` does).
//!
//! How. `sys::spawn` starts the monitor, which starts the session, starts the
//! command and execs our own binary in its monitor mode ([`MARKER`]): the
//! monitor's memory holds no value and no redactor. Then:
//! - the command stops (Ctrl-Z arrives as a byte on its terminal, which
//!   sends SIGTSTP): the monitor writes the signal's number on its link to
//!   us and stops itself; we see it stop, give our terminal its mode back
//!   and stop our own process group with the same signal, so the shell sees
//!   the job stop;
//! - the job is continued (`fg`, `bg`): we put our terminal back in raw mode
//!   if we are in its foreground, write `f` (foreground) or `b` (background)
//!   on the link and continue the monitor, which gives the command's group
//!   the foreground of its terminal (or takes it, in the background, so a
//!   read stops the command as a background job's would) and continues it;
//! - the command ends: the monitor takes the terminal's foreground (so what
//!   the command left in the background gets no SIGHUP when the session
//!   ends) and ends as the command did (same code, or dies of the same
//!   signal), which we mirror in turn;
//! - signals we forward reach the command through the monitor; window sizes
//!   are copied by us to the terminal, whose kernel tells the command.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::libc as sig;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpgrp, getpid, getsid, tcgetpgrp, tcsetpgrp};

use super::supervise::{Ended, in_foreground, listen};
use crate::error::{Error, Result};
use crate::sys::{self, MonitorSpec};

/// The first argument that runs our binary as a monitor.
pub(crate) const MARKER: &str = "__pty-monitor";

/// Our side of a monitor: what starts it, and the link to it.
pub(crate) struct Link {
    ours: UnixStream,
    /// The monitor's end, until it runs.
    theirs: Option<UnixStream>,
    program: CString,
    argv: Vec<CString>,
    /// Whether the command has its terminal's foreground: as our job had
    /// ours when it started, then as we last told the monitor (shared with
    /// the keys thread).
    command_foreground: Arc<AtomicBool>,
}

impl Link {
    pub(crate) fn new() -> Result<Self> {
        let io = |e| Error::io("setting up the terminal monitor", e);
        // Both ends close-on-exec; the monitor clears it on its own.
        let (ours, theirs) = UnixStream::pair().map_err(io)?;
        ours.set_nonblocking(true).map_err(io)?;
        let argv = ["secret", MARKER, &theirs.as_raw_fd().to_string()]
            .into_iter()
            .map(CString::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Error::internal("a monitor argument holds a NUL byte"))?;
        Ok(Self {
            ours,
            theirs: Some(theirs),
            program: CString::from(c"/proc/self/exe"),
            argv,
            command_foreground: Arc::new(AtomicBool::new(job_in_foreground())),
        })
    }

    /// The monitor to start, for `SpawnSpec::monitor` (no environment).
    #[must_use]
    pub(crate) fn spec(&self) -> Option<MonitorSpec<'_>> {
        self.theirs.as_ref().map(|theirs| MonitorSpec {
            program: &self.program,
            argv: &self.argv,
            envp: &[],
            link: theirs.as_raw_fd(),
            background: !self.command_foreground(),
        })
    }

    /// Once the monitor runs: closes its end here.
    pub(crate) fn spawned(&mut self) {
        self.theirs = None;
    }

    /// The signal the command last stopped with, as the monitor reported it.
    #[must_use]
    pub(crate) fn stop_signal(&self) -> Option<Signal> {
        last_byte(&self.ours).and_then(|b| Signal::try_from(i32::from(b)).ok())
    }

    /// Tells the monitor how to continue the command: with its terminal's
    /// foreground (we are in ours) or without. Sent before SIGCONT.
    pub(crate) fn resume(&self, foreground: bool) {
        self.command_foreground.store(foreground, Ordering::SeqCst);
        let _ = (&self.ours).write_all(if foreground { b"f" } else { b"b" });
    }

    /// Whether the command has its terminal's foreground (see `resume`).
    #[must_use]
    pub(crate) fn command_foreground(&self) -> bool {
        self.command_foreground.load(Ordering::SeqCst)
    }

    /// The same, as the keys thread watches it.
    #[must_use]
    pub(crate) fn command_foreground_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.command_foreground)
    }
}

/// Whether our job is in the foreground of our terminal (true without
/// one: there is no job control then).
fn job_in_foreground() -> bool {
    let tty = File::options().read(true).write(true).open("/dev/tty").ok();
    in_foreground(tty.as_ref())
}

/// Drains what is waiting on `link`; returns the last byte.
fn last_byte(mut link: &UnixStream) -> Option<u8> {
    let mut buf = [0u8; 64];
    let mut last = None;
    loop {
        match link.read(&mut buf) {
            Ok(0) => return last,
            Ok(n) => last = buf.get(n - 1).copied().or(last),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return last,
        }
    }
}

/// The monitor mode's entry: `args` are what follows [`MARKER`] (the
/// link's descriptor and the command's pid). Returns the exit code, or
/// dies of the command's signal.
pub(crate) fn main(args: &[OsString]) -> u8 {
    match serve(args) {
        Ok(ended) => ended.mirror(),
        Err(e) => {
            eprintln!("secret: {e}");
            125
        }
    }
}

/// The monitor's state.
struct Monitor {
    link: UnixStream,
    tty: File,
    command: Pid,
    /// Our own group, which holds the terminal when the command may not.
    own: Pid,
    /// The group to give the terminal back to: the one that held it when
    /// the command stopped.
    foreground: Pid,
}

fn serve(args: &[OsString]) -> Result<Ended> {
    let number = |a: Option<&OsString>| {
        a.and_then(|a| a.to_str()?.parse::<i32>().ok())
            .filter(|n| *n > 2)
    };
    let internal = || {
        Error::usage(format!(
            "{MARKER} is internal to secret exec --mask; it is not for direct use"
        ))
    };
    let (Some(fd), Some(pid)) = (number(args.first()), number(args.get(1))) else {
        return Err(internal());
    };
    if getsid(None).ok() != Some(getpid()) {
        return Err(internal());
    }
    let link = UnixStream::from(sys::adopt_inherited_fd(fd).ok_or_else(internal)?);
    let io = |e| Error::io("monitoring the command's terminal", e);
    link.set_nonblocking(true).map_err(io)?;
    let tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(io)?;
    let command = Pid::from_raw(pid);
    let mut monitor = Monitor {
        link,
        tty,
        command,
        own: getpgrp(),
        foreground: command,
    };
    let signals = listen()?;
    // Blocked since before the clone: what came meanwhile is delivered now.
    let _ =
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // The command may have changed state before our handlers were in place.
    let mut check = true;
    loop {
        if check && let Some(ended) = monitor.reap() {
            monitor.take_terminal();
            return Ok(ended);
        }
        check = false;
        for origin in signals.wait() {
            match origin.signal {
                sig::SIGCHLD => check = true,
                sig::SIGCONT => monitor.resume(),
                other => {
                    if let Ok(signal) = Signal::try_from(other) {
                        let _ = kill(monitor.command, signal);
                    }
                }
            }
        }
    }
}

impl Monitor {
    /// Collects the command's state changes; returns how it ended, once it
    /// has. When it stopped, reports the signal and stops (until `resume`).
    fn reap(&mut self) -> Option<Ended> {
        loop {
            match waitpid(
                self.command,
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED),
            ) {
                Ok(WaitStatus::Exited(_, code)) => {
                    return Some(Ended::Exited(u8::try_from(code & 0xff).unwrap_or(1)));
                }
                Ok(WaitStatus::Signaled(_, signal, _)) => return Some(Ended::Signaled(signal)),
                Ok(WaitStatus::Stopped(_, signal)) => self.stopped(signal),
                Ok(WaitStatus::StillAlive) => return None,
                Err(Errno::ECHILD) => return Some(Ended::Exited(125)),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return None,
            }
        }
    }

    /// The command stopped with `signal`: tells our parent, then stops
    /// with it (our group is orphaned, so with SIGSTOP).
    fn stopped(&mut self, signal: Signal) {
        if let Ok(group) = tcgetpgrp(self.tty.as_fd())
            && group != self.own
        {
            self.foreground = group;
        }
        let number = u8::try_from(signal as i32).unwrap_or(0);
        if (&self.link).write_all(&[number]).is_ok() {
            sys::stop_self();
        }
    }

    /// SIGCONT: continues the command, in the terminal's foreground or
    /// not as our parent said; a plain SIGCONT (nothing said) is forwarded.
    fn resume(&self) {
        let give =
            |group: Pid| sys::with_sigttou_blocked(|| tcsetpgrp(self.tty.as_fd(), group)).is_ok();
        match last_byte(&self.link) {
            Some(b'f') => {
                if !give(self.foreground) {
                    give(self.command);
                }
                let _ = killpg(self.command, Signal::SIGCONT);
            }
            Some(b'b') => {
                give(self.own);
                let _ = killpg(self.command, Signal::SIGCONT);
            }
            _ => {
                let _ = kill(self.command, Signal::SIGCONT);
            }
        }
    }

    /// Takes the terminal's foreground, so what the command left in the
    /// background is not hung up when we end.
    fn take_terminal(&self) {
        let _ = sys::with_sigttou_blocked(|| tcsetpgrp(self.tty.as_fd(), self.own));
    }
}

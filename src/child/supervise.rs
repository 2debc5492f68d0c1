//! Running one child as a transparent parent, to the standard of tini and
//! dumb-init: process group and terminal, signal forwarding, job control,
//! reaping (as PID 1 or a subreaper) and the exit status. It knows nothing
//! of secrets: `child::launch` hands it a prepared command.
//!
//! Process groups. When a job-control shell made `secret` a job of its own
//! (we lead our process group, and neither stdin nor stdout is a pipe), the
//! child gets a process group of its own and, while the job is in the
//! foreground, the terminal's foreground: Ctrl-C, Ctrl-\ and Ctrl-Z go to
//! the child alone, exactly once, and a shell's `kill %1` (which signals our
//! group) reaches the child once, through us. On Ctrl-Z we take the terminal
//! back and stop ourselves with the child's signal, so the shell sees the
//! job stop; on `fg` we hand the terminal back and continue the child. A
//! job started in the background (`&`) stops the same way when its child
//! reads the terminal ("Stopped (tty input)"); brought to the foreground
//! while it runs (`fg` then sends no SIGCONT), the child that reads is
//! given the terminal and continued, as if it had had it all along. When
//! we are a member of someone else's group (a script, a pipeline), the
//! child stays in our group: the terminal's signals reach the script, us
//! and the child together, so they are not forwarded again, and a
//! background read stops them together. Without a terminal (CI,
//! containers) the child gets its own group and every signal reaches it
//! through us.
//!
//! Signals. A signal ignored when `secret` started is neither caught nor
//! forwarded, and stays ignored in the child (`nohup`, `trap '' INT`).
//! When the child dies of signal N, `secret` dies of N too (default
//! disposition, raised on itself), so a shell running a loop of `secret
//! exec` stops on Ctrl-C as it would with the command alone; as PID 1,
//! where that is impossible, it exits 128+N.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::libc as sig;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpgrp, getpid, tcgetpgrp, tcsetpgrp};

use crate::error::{Error, Result};
use crate::sys::{self, Catcher, Caught, SpawnSpec};

/// Signals passed on to the child.
pub(crate) const FORWARDED: &[i32] = &[
    sig::SIGHUP,
    sig::SIGINT,
    sig::SIGQUIT,
    sig::SIGTERM,
    sig::SIGUSR1,
    sig::SIGUSR2,
    sig::SIGWINCH,
    sig::SIGALRM,
    sig::SIGCONT,
    sig::SIGTSTP,
    sig::SIGTTIN,
    sig::SIGTTOU,
    sig::SIGPWR,
    sig::SIGURG,
    sig::SIGVTALRM,
    sig::SIGPROF,
    sig::SIGXCPU,
    sig::SIGXFSZ,
];

/// How the child relates to our terminal.
enum Terminal {
    /// No controlling terminal.
    None,
    /// We are a job of our own: the child has its own group, and the
    /// terminal's foreground while we are in it.
    Handed(File),
    /// The child shares our group (a pipeline, a script: a group that is
    /// not ours alone, on a terminal).
    Shared,
    /// The child has a pseudo-terminal of its own under a monitor (see
    /// `monitor`); ours, when we have one, stays ours and we relay to it.
    Relayed(Option<File>),
}

/// A child on a pseudo-terminal of its own, relayed to ours, with its
/// monitor: what supervision asks of them as the job stops and continues.
pub(crate) trait Console {
    /// Copies our window size to the child's terminal (on SIGWINCH).
    fn resize(&self);
    /// The signal the command stopped with, as its monitor reported it.
    fn stop_signal(&self) -> Option<Signal>;
    /// Whether the command has its terminal's foreground: false while the
    /// job is (or started) in the background.
    fn command_foreground(&self) -> bool;
    /// The job stops: gives our terminal its mode back when we are in
    /// its foreground.
    fn suspend(&self, foreground: bool);
    /// The job continues: raw mode again in the foreground, the window
    /// size, and the monitor is told whether the command gets its
    /// terminal's foreground. The caller then sends SIGCONT.
    fn resume(&self, foreground: bool);
}

/// What the caller decided about supervision.
pub(crate) struct Supervision {
    /// Reap every orphan (PR_SET_CHILD_SUBREAPER); implied as PID 1.
    pub subreaper: bool,
}

/// Decides the process-group arrangement from where we are running.
fn terminal_mode() -> Terminal {
    let Ok(tty) = File::options().read(true).write(true).open("/dev/tty") else {
        return Terminal::None;
    };
    if tcgetpgrp(tty.as_fd()).is_err() {
        return Terminal::None;
    }
    // A pipe (or a socket, as some shells use) on stdin or stdout: we are
    // one member of a pipeline, whose other members share our group.
    let piped = |fd: std::os::fd::BorrowedFd<'_>| {
        nix::sys::stat::fstat(fd).is_ok_and(|st| {
            matches!(
                st.st_mode & nix::libc::S_IFMT,
                nix::libc::S_IFIFO | nix::libc::S_IFSOCK
            )
        })
    };
    if getpgrp() == getpid()
        && !piped(std::io::stdin().as_fd())
        && !piped(std::io::stdout().as_fd())
    {
        Terminal::Handed(tty)
    } else {
        Terminal::Shared
    }
}

/// Gives `tty`'s foreground to `to` if `from` holds it (never taking it
/// from anyone else, such as the shell while we are in the background).
fn pass_terminal(tty: &File, from: Pid, to: Pid) {
    if tcgetpgrp(tty.as_fd()).ok() == Some(from) {
        sys::with_sigttou_blocked(|| tcsetpgrp(tty.as_fd(), to).ok());
    }
}

/// Whether a child's stop is a read or write of a terminal whose
/// foreground it did not have, while our job now has it: a shell's `fg` of
/// a job running in the background, which sends no SIGCONT.
fn stopped_for_want_of_a_terminal_we_hold(signal: Signal, tty: &File) -> bool {
    matches!(signal, Signal::SIGTTIN | Signal::SIGTTOU) && in_foreground(Some(tty))
}

/// Parses `TERM`, `SIGTERM` or `15` (any case).
pub(crate) fn parse_signal(text: &str) -> std::result::Result<Signal, String> {
    let upper = text.to_ascii_uppercase();
    let named = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    text.parse::<i32>()
        .ok()
        .and_then(|n| Signal::try_from(n).ok())
        .or_else(|| named.parse().ok())
        .ok_or_else(|| {
            format!("unknown signal \"{text}\" (use a name such as TERM or a number such as 15)")
        })
}

/// The signals we catch and forward: those of `FORWARDED` our parent did
/// not leave ignored.
fn forwarded() -> Vec<i32> {
    FORWARDED
        .iter()
        .copied()
        .filter(|s| !sys::ignored_at_start(*s))
        .collect()
}

/// Catches the signals we forward (before the clone, so none is lost).
pub(crate) fn listen() -> Result<Catcher> {
    let mut signals = forwarded();
    signals.push(sig::SIGCHLD);
    Catcher::new(&signals).map_err(|e| Error::io("installing signal handlers", e))
}

/// How the child ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ended {
    Exited(u8),
    Signaled(Signal),
}

impl Ended {
    /// The code to exit with: the child's, or 128+N for signal N.
    #[must_use]
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(signal) => u8::try_from(128 + signal as i32).unwrap_or(255),
        }
    }

    /// Ends as the child did: for a death by signal, dies of the same
    /// signal (PID 1 cannot, and exits 128+N); otherwise returns the code.
    #[must_use]
    pub(crate) fn mirror(self) -> u8 {
        if let Self::Signaled(signal) = self
            && getpid().as_raw() != 1
        {
            sys::die_of(signal);
        }
        self.code()
    }
}

/// A started child, to be supervised.
pub(crate) struct Running {
    child: Pid,
    terminal: Terminal,
    signals: Catcher,
}

/// Spawns the child described by `spec` (whose `new_group` this sets).
/// The caller drops every secret buffer before calling `supervise`.
pub(crate) fn start(
    spec: &mut SpawnSpec<'_>,
    shown: &str,
    supervision: &Supervision,
) -> Result<Running> {
    // With a pseudo-terminal of its own the child is in a session of its
    // own: our terminal stays ours (in raw mode, relaying keys).
    let terminal = if spec.monitor.is_some() {
        Terminal::Relayed(File::options().read(true).write(true).open("/dev/tty").ok())
    } else if spec.controlling_tty.is_some() {
        Terminal::None
    } else {
        terminal_mode()
    };
    spec.new_group = !matches!(terminal, Terminal::Shared);
    if let Terminal::Handed(tty) = &terminal
        && in_foreground(Some(tty))
    {
        spec.foreground_of = Some(tty.as_raw_fd());
    }
    if supervision.subreaper || nix::unistd::getpid().as_raw() == 1 {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::io("becoming a subreaper", e.into()))?;
    }
    let signals = listen()?;
    let child = super::spawn::spawn(spec, shown).inspect_err(|_| {
        // The child may have taken the terminal before its exec failed.
        if let Terminal::Handed(tty) = &terminal
            && spec.foreground_of.is_some()
        {
            sys::with_sigttou_blocked(|| tcsetpgrp(tty.as_fd(), getpgrp()).ok());
        }
    })?;
    Ok(Running {
        child,
        terminal,
        signals,
    })
}

impl Running {
    #[must_use]
    pub(crate) fn pid(&self) -> Pid {
        self.child
    }

    /// Forwards signals and reaps until the child ends; returns how it
    /// ended. `console`, for a child on a pseudo-terminal of its own,
    /// handles SIGWINCH instead of forwarding it (the pseudo-terminal is
    /// resized, and the kernel tells the child) and the job's stops. Once
    /// it has ended, the signals we caught act on us again.
    pub(crate) fn supervise(self, console: Option<&dyn Console>) -> Ended {
        let mut skip_cont = false;
        loop {
            for origin in self.signals.wait() {
                if origin.signal == sig::SIGCHLD {
                    if let Some(code) = reap(self.child, &self.terminal, &mut skip_cont, console) {
                        if let Terminal::Handed(tty) = &self.terminal {
                            pass_terminal(tty, self.child, getpgrp());
                        }
                        // Returning drops the catcher: the signals act on
                        // us again as they did before it.
                        return code;
                    }
                } else if let (sig::SIGWINCH, Some(console)) = (origin.signal, console) {
                    console.resize();
                } else {
                    forward(&origin, self.child, &self.terminal, &mut skip_cont, console);
                }
            }
        }
    }
}

/// Passes one signal on, unless the child has had it already.
fn forward(
    origin: &Caught,
    child: Pid,
    terminal: &Terminal,
    skip_cont: &mut bool,
    console: Option<&dyn Console>,
) {
    let Ok(signal) = Signal::try_from(origin.signal) else {
        return;
    };
    let from_terminal = origin.from_kernel;
    if matches!(terminal, Terminal::Shared) && from_terminal {
        // The terminal signalled the whole group, the child included.
        if signal == Signal::SIGTSTP {
            sys::stop_self();
        }
        return;
    }
    if signal == Signal::SIGCONT && std::mem::take(skip_cont) {
        return;
    }
    if let (Signal::SIGCONT, Terminal::Relayed(tty), Some(console)) = (signal, terminal, console) {
        // Continued by someone else than the stop below (a shell's `fg`
        // of a running background job, `kill -CONT`).
        console.resume(in_foreground(tty.as_ref()));
    }
    let _ = kill(child, signal);
}

/// Whether we are in the foreground of our terminal (true without one: no
/// job control then).
pub(super) fn in_foreground(tty: Option<&File>) -> bool {
    tty.is_none_or(|tty| tcgetpgrp(tty.as_fd()).ok() == Some(getpgrp()))
}

/// Collects every child that changed state. Returns the code to exit with
/// once our child has ended.
fn reap(
    child: Pid,
    terminal: &Terminal,
    skip_cont: &mut bool,
    console: Option<&dyn Console>,
) -> Option<Ended> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                return Some(Ended::Exited(u8::try_from(code & 0xff).unwrap_or(1)));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                return Some(Ended::Signaled(signal));
            }
            Ok(WaitStatus::Stopped(pid, signal)) if pid == child => {
                job_stopped(child, terminal, skip_cont, console, signal);
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return None,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// The child stopped (Ctrl-Z, SIGTSTP, SIGSTOP). With a terminal, stop with
/// it so the shell sees the job stop; when continued, continue the child.
fn job_stopped(
    child: Pid,
    terminal: &Terminal,
    skip_cont: &mut bool,
    console: Option<&dyn Console>,
    signal: Signal,
) {
    match terminal {
        Terminal::None | Terminal::Relayed(None) => {}
        Terminal::Relayed(Some(tty)) => {
            // The monitor stopped because the command did: stop our group
            // with the command's signal, as the terminal would have.
            let signal = console.and_then(Console::stop_signal).unwrap_or(signal);
            let held_back = console.is_some_and(|c| !c.command_foreground());
            if !(held_back && stopped_for_want_of_a_terminal_we_hold(signal, tty)) {
                if let Some(console) = console {
                    console.suspend(in_foreground(Some(tty)));
                }
                *skip_cont = sys::stop_group_with(signal);
            }
            if let Some(console) = console {
                console.resume(in_foreground(Some(tty)));
            }
            let _ = kill(child, Signal::SIGCONT);
        }
        Terminal::Shared => sys::stop_self(),
        Terminal::Handed(tty) => {
            if stopped_for_want_of_a_terminal_we_hold(signal, tty) {
                pass_terminal(tty, getpgrp(), child);
                let _ = killpg(child, Signal::SIGCONT);
                return;
            }
            pass_terminal(tty, child, getpgrp());
            *skip_cont = sys::stop_group_with(signal);
            // Continued (fg or bg), or not stopped at all. Give the
            // terminal back only if we are in the foreground.
            pass_terminal(tty, getpgrp(), child);
            let _ = killpg(child, Signal::SIGCONT);
        }
    }
}

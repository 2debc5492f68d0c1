//! Moving a masked child's output to ours: each output stream runs through
//! its own `mask::Redactor` on a thread of its own. When our stdout is a
//! terminal, the child gets a pseudo-terminal instead of a pipe (so colours,
//! progress bars and full-screen programs keep working): our terminal goes to
//! raw mode, keystrokes are relayed to the child's terminal, and window-size
//! changes are copied over. It owns no secrets beyond the redactors' patterns.
//! A monitor leads the child's session there, so job control works (see
//! `monitor`): when the job stops, our terminal gets its mode back; when it
//! continues in the foreground, raw mode and the keystrokes come back;
//! in the background, nothing is read from our terminal.
//!
//! Order. When our stdout and stderr are one open file (`2>&1`, a CI
//! runner's log), the child gets one pipe for both, so the log shows its
//! writes in exactly the order it made them. Otherwise each stream keeps
//! its own order, and a stream writes only whole lines while another one
//! is relayed too (a partial line once the stream is idle), so no line is
//! ever spliced into another.
//!
//! Idle. A stream quiet for [`IDLE`] releases what it holds: the partial
//! line, and the redactor's held prefix of a possible secret (a prompt
//! without a newline shows at once, a typed key echoes).
//!
//! End. Relaying ends when every writer has closed the pipes, not when the
//! child exits: a process the child left in the background keeps its
//! output relayed and masked (and does not die of SIGPIPE), and `secret`
//! waits for it. Redirecting such a process's output elsewhere avoids the
//! wait.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, SetArg, Termios};

use super::monitor::Link;
use super::supervise::Console;
use crate::error::{Error, Result};
use crate::mask::Redactor;
use crate::sys::MonitorSpec;

/// The child's side of the plumbing, and ours. Every descriptor is
/// close-on-exec: the child gets its ends through dup2 onto 0, 1, 2, and
/// keeps none of ours.
pub(crate) struct Plumbing {
    /// Descriptors to install as the child's 0, 1, 2.
    pub child_stdio: [Option<OwnedFd>; 3],
    /// With a pseudo-terminal: its slave, to become the child's controlling
    /// terminal in a session of its own.
    pub child_tty: Option<RawFd>,
    /// Our ends: (what the child writes into, where it goes: 1 or 2).
    sources: Vec<(OwnedFd, i32)>,
    /// The pseudo-terminal's master, for keystrokes and window sizes.
    master: Option<Arc<OwnedFd>>,
    /// With a pseudo-terminal: the monitor that leads its session.
    monitor: Option<Link>,
    /// See `Mode::child_pending`.
    child_pending: Option<(std::path::PathBuf, Termios)>,
}

/// Running relay threads.
pub(crate) struct Relay {
    threads: Vec<JoinHandle<()>>,
    master: Option<Arc<OwnedFd>>,
    monitor: Option<Link>,
    /// Whether keystrokes are relayed (our stdin is a terminal too).
    relays_keys: bool,
    /// Our terminal's mode while keystrokes are relayed. The keys thread
    /// reads our terminal only under this lock, and only in raw mode.
    mode: Arc<Mutex<Mode>>,
    /// Opened when we are in our terminal's foreground again.
    keys_gate: Arc<Gate>,
}

/// Our terminal's mode: the one to restore, and whether it is raw now.
#[derive(Default)]
struct Mode {
    saved: Option<Termios>,
    raw: bool,
    /// Started in the background: the child's terminal, still to be given
    /// our terminal's mode when we first take it over, unless the child
    /// has set a mode of its own by then (its path, and the mode it had).
    child_pending: Option<(std::path::PathBuf, Termios)>,
}

/// Where the keystroke relay waits while we are in the background: a
/// count of returns to the foreground.
#[derive(Default)]
struct Gate {
    opened: Mutex<u64>,
    cond: Condvar,
}

impl Gate {
    fn count(&self) -> u64 {
        *self.opened.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self) {
        *self.opened.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.cond.notify_all();
    }

    /// Waits until opened after `count`, or for at most `timeout`.
    fn wait_past(&self, count: u64, timeout: Duration) {
        let opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .cond
            .wait_timeout_while(opened, timeout, |opened| *opened == count)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

impl Plumbing {
    /// Pipes for stdout and stderr, or a pseudo-terminal when our stdout is
    /// a terminal.
    pub(crate) fn new() -> Result<Self> {
        let io = |e: nix::errno::Errno| Error::io("setting up masked output", e.into());
        let stdout_tty = std::io::stdout().is_terminal();
        let stderr_tty = std::io::stderr().is_terminal();
        if stdout_tty {
            let winsize = window_size(std::io::stdout().as_raw_fd());
            let pty = nix::pty::openpty(winsize.as_ref(), None).map_err(io)?;
            for fd in [&pty.master, &pty.slave] {
                nix::fcntl::fcntl(
                    fd,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                )
                .map_err(io)?;
            }
            // Our terminal's mode, when the terminal is ours. In the
            // background it is the shell's line editor's (no canonical
            // input, no echo, newlines mapped): the child starts with the
            // pseudo-terminal's defaults, and gets ours when we first take
            // the terminal over (`Relay::raw_mode`).
            let stdout = std::io::stdout();
            let mut child_pending = None;
            if nix::unistd::tcgetpgrp(stdout.as_fd()).ok() == Some(nix::unistd::getpgrp()) {
                if let Ok(mode) = termios::tcgetattr(stdout.as_fd()) {
                    let _ = termios::tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &mode);
                }
            } else if let (Ok(path), Ok(defaults)) = (
                std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())),
                termios::tcgetattr(pty.slave.as_fd()),
            ) {
                child_pending = Some((path, defaults));
            }
            let slave_raw = pty.slave.as_raw_fd();
            let stdin = if std::io::stdin().is_terminal() {
                Some(pty.slave.try_clone().map_err(|e| Error::io("pty", e))?)
            } else {
                None
            };
            let mut sources = Vec::new();
            let stderr = if stderr_tty {
                Some(pty.slave.try_clone().map_err(|e| Error::io("pty", e))?)
            } else {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
                sources.push((r, 2));
                Some(w)
            };
            let master = Arc::new(pty.master);
            sources.insert(0, (dup(&master)?, 1));
            Ok(Self {
                child_stdio: [stdin, Some(pty.slave), stderr],
                child_tty: Some(slave_raw),
                sources,
                master: Some(master),
                monitor: Some(Link::new()?),
                child_pending,
            })
        } else if stdout_is_stderr() {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
            let w2 = dup(&w)?;
            Ok(Self {
                child_stdio: [None, Some(w), Some(w2)],
                child_tty: None,
                sources: vec![(r, 1)],
                master: None,
                monitor: None,
                child_pending: None,
            })
        } else {
            let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
            let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
            Ok(Self {
                child_stdio: [None, Some(out_w), Some(err_w)],
                child_tty: None,
                sources: vec![(out_r, 1), (err_r, 2)],
                master: None,
                monitor: None,
                child_pending: None,
            })
        }
    }

    /// The raw descriptors for `SpawnSpec::stdio`.
    #[must_use]
    pub(crate) fn stdio(&self) -> [Option<RawFd>; 3] {
        [0, 1, 2].map(|i| self.child_stdio[i].as_ref().map(AsRawFd::as_raw_fd))
    }

    /// With a pseudo-terminal, the monitor to lead its session, for
    /// `SpawnSpec::monitor`.
    #[must_use]
    pub(crate) fn monitor(&self) -> Option<MonitorSpec<'_>> {
        self.monitor.as_ref().and_then(Link::spec)
    }

    /// Once the child runs: closes its ends here (so EOF can come), puts our
    /// terminal in raw mode when relaying keystrokes, and starts the threads.
    /// `redactor` makes one redactor per stream.
    pub(crate) fn start(self, redactor: impl Fn() -> Redactor) -> Relay {
        let Self {
            child_stdio,
            sources,
            master,
            mut monitor,
            child_pending,
            ..
        } = self;
        let relays_keys = master.is_some() && child_stdio[0].is_some();
        drop(child_stdio);
        if let Some(link) = &mut monitor {
            link.spawned();
        }
        let whole_lines = sources.len() > 1;
        let writing = Arc::new(Mutex::new(()));
        let mut threads = Vec::new();
        for (fd, target) in sources {
            let writing = Arc::clone(&writing);
            let mut stream = Stream {
                target,
                filter: redactor(),
                whole_lines,
                writing,
                unwritten: Vec::new(),
            };
            threads.push(std::thread::spawn(move || pump(&fd, &mut stream)));
        }
        let relay = Relay {
            threads,
            master,
            monitor,
            relays_keys,
            mode: Arc::new(Mutex::new(Mode {
                child_pending,
                ..Mode::default()
            })),
            keys_gate: Arc::default(),
        };
        if let Some(master) = relay.master.as_ref().filter(|_| relays_keys) {
            if stdin_in_foreground() {
                relay.raw_mode();
            }
            let keys_of = Keys {
                master: Arc::clone(master),
                mode: Arc::clone(&relay.mode),
                gate: Arc::clone(&relay.keys_gate),
                command_foreground: relay.monitor.as_ref().map_or_else(
                    || Arc::new(AtomicBool::new(true)),
                    Link::command_foreground_flag,
                ),
            };
            // Not joined: it sits in poll(2) on our stdin until we exit.
            std::thread::spawn(move || keys(&keys_of));
        }
        relay
    }
}

impl Relay {
    /// Copies our window size to the child's terminal (on SIGWINCH).
    pub(crate) fn resize(&self) {
        if let (Some(master), Some(size)) =
            (&self.master, window_size(std::io::stdout().as_raw_fd()))
        {
            set_window_size(master.as_raw_fd(), &size);
        }
    }

    /// Whether the child's output goes through a pseudo-terminal.
    #[must_use]
    pub(crate) fn has_pty(&self) -> bool {
        self.master.is_some()
    }

    /// After the child ended: relays until every writer has closed the
    /// pipes (the child's background processes included), flushes the
    /// redactors and restores our terminal.
    pub(crate) fn finish(self) {
        let Self { threads, mode, .. } = self;
        for t in threads {
            let _ = t.join();
        }
        restore_mode(&mut mode.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Puts our terminal (stdin) in raw mode, keeping the mode to restore
    /// (the one we find, unless we already made it raw). What the terminal
    /// holds in the mode we find is passed on first (`pass_typeahead`):
    /// under the mode lock, so the keys thread reads nothing meanwhile.
    fn raw_mode(&self) {
        let mut mode = self.mode.lock().unwrap_or_else(PoisonError::into_inner);
        let stdin = std::io::stdin();
        if !mode.raw {
            mode.saved = termios::tcgetattr(stdin.as_fd()).ok();
            if let (Some(found), Some(master)) = (&mode.saved, &self.master) {
                pass_typeahead(&stdin, master, found);
            }
            if let (Some((path, defaults)), Some(found)) = (mode.child_pending.take(), &mode.saved)
            {
                give_mode(&path, &defaults, found);
            }
        }
        let Some(mut raw) = mode.saved.clone() else {
            return;
        };
        termios::cfmakeraw(&mut raw);
        mode.raw = termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw).is_ok();
    }
}

/// Moves what our terminal holds in canonical mode (`mode`) to the
/// child's terminal before ours leaves that mode: whole lines as typed,
/// and an end of input (Ctrl-D) as the `VEOF` key, which the child's
/// terminal, in our mode, reads as end of input too. Left there, a pending
/// end of input would reach the child as a NUL byte, since the kernel
/// turns it into one when the mode changes. What is typed of an unfinished
/// line stays, and comes through raw. Only under the mode lock: nothing
/// else may read our terminal meanwhile (a read that another reader beat
/// us to would wait for the next line).
fn pass_typeahead(stdin: &std::io::Stdin, master: &OwnedFd, mode: &Termios) {
    use nix::sys::termios::{LocalFlags, SpecialCharacterIndices as Key};
    if !mode.local_flags.contains(LocalFlags::ICANON) {
        return;
    }
    let key = |k: Key| mode.control_chars[k as usize];
    let eof = key(Key::VEOF);
    let line_ends = [b'\n', key(Key::VEOL), key(Key::VEOL2)];
    // A canonical line is at most 4096 bytes; a bounded number of them.
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        // In canonical mode, readable means a whole line or an end of input.
        if input_ready(stdin, PollTimeout::ZERO) != Ok(true) {
            return;
        }
        let Ok(n) = nix::unistd::read(stdin.as_fd(), &mut buf) else {
            return;
        };
        let line = &buf[..n];
        // An end of input ends the read without a line end: typed alone
        // (nothing read) or after part of a line.
        let ended = line
            .last()
            .is_some_and(|b| *b != 0 && line_ends.contains(b));
        let mut out = line.to_vec();
        if !ended && n < buf.len() {
            out.push(eof);
        }
        if write_all(master, &out).is_err() {
            return;
        }
    }
}

impl Console for Relay {
    fn resize(&self) {
        Relay::resize(self);
    }

    fn stop_signal(&self) -> Option<nix::sys::signal::Signal> {
        self.monitor.as_ref().and_then(Link::stop_signal)
    }

    fn command_foreground(&self) -> bool {
        self.monitor.as_ref().is_none_or(Link::command_foreground)
    }

    fn suspend(&self, foreground: bool) {
        if foreground {
            restore_mode(&mut self.mode.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }

    fn resume(&self, foreground: bool) {
        if foreground && self.relays_keys {
            self.raw_mode();
            self.keys_gate.open();
        }
        self.resize();
        if let Some(link) = &self.monitor {
            link.resume(foreground);
        }
    }
}

/// Sets the terminal at `path` (the child's) to `mode`, unless it has left
/// the mode `initial` (the child set one of its own).
fn give_mode(path: &std::path::Path, initial: &Termios, mode: &Termios) {
    let same = |a: &Termios, b: &Termios| {
        a.input_flags == b.input_flags
            && a.output_flags == b.output_flags
            && a.control_flags == b.control_flags
            && a.local_flags == b.local_flags
            && a.control_chars == b.control_chars
    };
    let Ok(tty) = File::options()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(path)
    else {
        return;
    };
    if termios::tcgetattr(tty.as_fd()).is_ok_and(|now| same(&now, initial)) {
        let _ = termios::tcsetattr(tty.as_fd(), SetArg::TCSANOW, mode);
    }
}

/// Gives our terminal back the mode we found, if we made it raw.
fn restore_mode(mode: &mut Mode) {
    if let (true, Some(saved)) = (mode.raw, &mode.saved) {
        let stdin = std::io::stdin();
        // Should we be in the background by now, still restore it (we
        // made it raw) rather than stop on SIGTTOU.
        let _ = crate::sys::with_sigttou_blocked(|| {
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, saved)
        });
        mode.raw = false;
    }
}

/// Whether our stdin, a terminal, has our process group in its foreground;
/// true when it is not our controlling terminal (no job control there, as
/// after `setsid`).
fn stdin_in_foreground() -> bool {
    match nix::unistd::tcgetpgrp(std::io::stdin().as_fd()) {
        Ok(group) => group == nix::unistd::getpgrp(),
        Err(e) => e == nix::errno::Errno::ENOTTY,
    }
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone()
        .map_err(|e| Error::io("duplicating a descriptor", e))
}

/// How long a stream may be quiet before what it holds is released.
pub(crate) const IDLE: Duration = Duration::from_millis(30);

/// Output that, once past the last newline, is written anyway.
const MAX_PARTIAL_LINE: usize = 64 * 1024;

/// One output stream of the child, on its way to our descriptor `target`.
struct Stream {
    target: i32,
    filter: Redactor,
    /// Write only whole lines until idle (another stream shares the writer).
    whole_lines: bool,
    /// Held while writing, so no stream's line is spliced into another's.
    writing: Arc<Mutex<()>>,
    /// Redacted bytes not yet written: a partial line.
    unwritten: Vec<u8>,
}

impl Stream {
    /// Whether anything waits for more input or for the stream to idle.
    fn holds(&self) -> bool {
        self.filter.held() > 0 || !self.unwritten.is_empty()
    }

    /// Redacts `input`; writes what is ready. False once our side is gone.
    fn push(&mut self, input: &[u8]) -> bool {
        self.filter.push(input, &mut self.unwritten);
        let ready = if self.whole_lines && self.unwritten.len() < MAX_PARTIAL_LINE {
            self.unwritten
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
        } else {
            self.unwritten.len()
        };
        self.write(ready)
    }

    /// The stream is idle or over: releases everything held.
    fn release(&mut self, end: bool) -> bool {
        if end {
            self.filter.finish(&mut self.unwritten);
        } else {
            self.filter.flush_held(&mut self.unwritten);
        }
        self.write(self.unwritten.len())
    }

    fn write(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let ok = {
            let _turn = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
            if self.target == 1 {
                let mut out = std::io::stdout().lock();
                out.write_all(&self.unwritten[..n])
                    .and_then(|()| out.flush())
            } else {
                std::io::stderr().lock().write_all(&self.unwritten[..n])
            }
        };
        self.unwritten.drain(..n);
        ok.is_ok()
    }
}

/// Reads `fd` until every writer has closed it (EOF, or EIO for a
/// pseudo-terminal), redacting into our descriptor; after [`IDLE`] without
/// input, releases what the stream holds.
fn pump(fd: &OwnedFd, stream: &mut Stream) {
    let mut file = File::from(match fd.try_clone() {
        Ok(f) => f,
        Err(_) => return,
    });
    let mut buf = vec![0u8; 64 * 1024];
    let idle = u16::try_from(IDLE.as_millis()).map_or(PollTimeout::MAX, PollTimeout::from);
    loop {
        let timeout = if stream.holds() {
            idle
        } else {
            PollTimeout::NONE
        };
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => {
                if !stream.release(false) {
                    return;
                }
                continue;
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !stream.push(&buf[..n]) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: the pseudo-terminal's last slave closed.
            Err(_) => break,
        }
    }
    stream.release(true);
}

/// Whether our stdout and stderr lead to one file (`2>&1`): the same
/// device and inode, open for writing alike. Two separate opens of one
/// file pass too: their writes land in one file, so one pipe keeps their
/// order there as well. (fstat rather than kcmp(2), which container
/// seccomp profiles often refuse.)
fn stdout_is_stderr() -> bool {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let (out, err) = (std::io::stdout(), std::io::stderr());
    let same_file = match (
        nix::sys::stat::fstat(out.as_fd()),
        nix::sys::stat::fstat(err.as_fd()),
    ) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    };
    let access =
        |fd| fcntl(fd, FcntlArg::F_GETFL).map(|f| OFlag::from_bits_truncate(f) & OFlag::O_ACCMODE);
    same_file && access(out.as_fd()).ok() == access(err.as_fd()).ok()
}

/// Relays our keystrokes to the child's terminal. It waits for input
/// outside the `mode` lock and reads only under it, in raw mode: a key is
/// never read in the mode we give back while the job is stopped (where an
/// end of input would end the relay, or turn into a NUL byte as the mode
/// changes), and `raw_mode` passes on what was typed meanwhile. Stopped
/// or in the background, it reads nothing and waits until `gate` opens
/// (with SIGTTIN blocked here, a read in the background fails with EIO
/// instead of stopping us). Being in the foreground while the command is
/// held back (it ran in the background) means a shell's `fg` brought the
/// job there while it ran, which sends no SIGCONT: it sends us one, so the
/// supervisor takes the terminal as on any `fg`. It notices that when
/// keys come, or within [`FOREGROUND_CHECK`] when keys typed before wait
/// unread. It writes outside the lock, so a child that does not read its
/// terminal cannot hold up a stop.
fn keys(keys: &Keys) {
    use nix::errno::Errno;
    let Keys {
        master,
        mode,
        gate,
        command_foreground,
    } = keys;
    let mut ttin = nix::sys::signal::SigSet::empty();
    ttin.add(nix::sys::signal::Signal::SIGTTIN);
    let _ = ttin.thread_block();
    let stdin = std::io::stdin();
    let mut buf = [0u8; 4096];
    loop {
        let opened = gate.count();
        match input_ready(&stdin, PollTimeout::NONE) {
            Ok(true) => {}
            Ok(false) | Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
        let n = {
            let mode = mode.lock().unwrap_or_else(PoisonError::into_inner);
            if !mode.raw {
                drop(mode);
                if !command_foreground.load(Ordering::SeqCst) && stdin_in_foreground() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::getpid(),
                        nix::sys::signal::Signal::SIGCONT,
                    );
                }
                gate.wait_past(opened, FOREGROUND_CHECK);
                continue;
            }
            // `raw_mode` may have taken it meanwhile: never block here.
            if input_ready(&stdin, PollTimeout::ZERO) != Ok(true) {
                continue;
            }
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(Errno::EIO) => {
                    drop(mode);
                    gate.wait_past(opened, FOREGROUND_CHECK);
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            }
        };
        if write_all(master, &buf[..n]).is_err() {
            return;
        }
    }
}

/// What the keys thread works with.
struct Keys {
    /// The child's terminal.
    master: Arc<OwnedFd>,
    mode: Arc<Mutex<Mode>>,
    /// Opened when we are in our terminal's foreground again.
    gate: Arc<Gate>,
    /// Whether the command has its terminal's foreground (`Link`).
    command_foreground: Arc<AtomicBool>,
}

/// How long the keys thread, kept from reading, waits before it looks
/// again whether a shell's `fg` brought the job to the foreground.
const FOREGROUND_CHECK: Duration = Duration::from_millis(100);

/// Whether our stdin has input within `timeout`; an error once it has
/// none to come (hung up, closed).
fn input_ready(stdin: &std::io::Stdin, timeout: PollTimeout) -> nix::Result<bool> {
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, timeout)? == 0 {
        return Ok(false);
    }
    let events = fds[0].revents().unwrap_or(PollFlags::empty());
    if events.contains(PollFlags::POLLIN) {
        Ok(true)
    } else {
        Err(nix::errno::Errno::EIO)
    }
}

/// Writes all of `bytes` to `fd`.
fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> nix::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return Err(nix::errno::Errno::EIO),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn window_size(fd: RawFd) -> Option<nix::pty::Winsize> {
    crate::sys::window_size(fd)
}

fn set_window_size(fd: RawFd, size: &nix::pty::Winsize) {
    crate::sys::set_window_size(fd, size);
}

/// The redactor for `labelled` values (label: the handle or reference, for
/// the warning). Each value too short to mask is passed to `warn` with the
/// sentence to show, so every child's output is masked by the same rule.
pub(crate) fn redactor<'a>(
    labelled: impl IntoIterator<Item = (String, &'a crate::value::SecretValue)>,
    warn: impl Fn(&str),
) -> Result<Redactor> {
    let (redactor, skipped) = Redactor::new(labelled)?;
    for label in skipped {
        warn(&format!(
            "{label} is shorter than {} bytes, too short to mask; it will show in the output if printed",
            crate::mask::MIN_MASKED_LEN
        ));
    }
    Ok(redactor)
}

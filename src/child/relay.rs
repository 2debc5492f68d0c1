//! Moving a masked child's output to ours: each output stream runs through
//! its own `mask::Redactor` on a thread of its own. When our stdout is a
//! terminal, the child gets a pseudo-terminal instead of a pipe (so colours,
//! progress bars and full-screen programs keep working): our terminal goes to
//! raw mode, keystrokes are relayed to the child's terminal, and window-size
//! changes are copied over. It owns no secrets beyond the redactors' patterns.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, SetArg, Termios};

use crate::error::{Error, Result};
use crate::mask::Redactor;

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
}

/// Running relay threads.
pub(crate) struct Relay {
    done: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    saved_mode: Option<Termios>,
    master: Option<Arc<OwnedFd>>,
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
            if let Ok(mode) = termios::tcgetattr(std::io::stdout().as_fd()) {
                let _ = termios::tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &mode);
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
            })
        } else {
            let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
            let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
            Ok(Self {
                child_stdio: [None, Some(out_w), Some(err_w)],
                child_tty: None,
                sources: vec![(out_r, 1), (err_r, 2)],
                master: None,
            })
        }
    }

    /// The raw descriptors for `SpawnSpec::stdio`.
    #[must_use]
    pub(crate) fn stdio(&self) -> [Option<RawFd>; 3] {
        [0, 1, 2].map(|i| self.child_stdio[i].as_ref().map(AsRawFd::as_raw_fd))
    }

    /// Once the child runs: closes its ends here (so EOF can come), puts our
    /// terminal in raw mode when relaying keystrokes, and starts the threads.
    /// `redactor` makes one redactor per stream.
    pub(crate) fn start(self, redactor: impl Fn() -> Redactor) -> Relay {
        let Self {
            child_stdio,
            sources,
            master,
            ..
        } = self;
        let relays_keys = master.is_some() && child_stdio[0].is_some();
        drop(child_stdio);
        let done = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (fd, target) in sources {
            let done = Arc::clone(&done);
            let mut filter = redactor();
            threads.push(std::thread::spawn(move || {
                pump(&fd, target, &mut filter, &done)
            }));
        }
        let mut saved_mode = None;
        if let Some(master) = master.as_ref().filter(|_| relays_keys) {
            saved_mode = raw_mode();
            let master = Arc::clone(master);
            // Not joined: it sits in read(2) on our stdin until we exit.
            std::thread::spawn(move || keys(&master));
        }
        Relay {
            done,
            threads,
            saved_mode,
            master,
        }
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

    /// After the child ended: drains what is left, flushes the redactors and
    /// restores our terminal.
    pub(crate) fn finish(self) {
        self.done.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(mode) = self.saved_mode {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &mode);
        }
    }
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone()
        .map_err(|e| Error::io("duplicating a descriptor", e))
}

/// Reads `fd` until EOF, or until the child is done and nothing more comes
/// for a moment (a grandchild may hold the pipe open forever), redacting into
/// our descriptor `target`.
fn pump(fd: &OwnedFd, target: i32, filter: &mut Redactor, done: &AtomicBool) {
    let mut out: Box<dyn Write> = if target == 1 {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::io::stderr())
    };
    let mut file = File::from(match fd.try_clone() {
        Ok(f) => f,
        Err(_) => return,
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut redacted = Vec::with_capacity(64 * 1024);
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) if done.load(Ordering::SeqCst) => break,
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                redacted.clear();
                filter.push(&buf[..n], &mut redacted);
                if out.write_all(&redacted).and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: the pseudo-terminal's last slave closed.
            Err(_) => break,
        }
    }
    redacted.clear();
    filter.finish(&mut redacted);
    let _ = out.write_all(&redacted).and_then(|()| out.flush());
}

/// Relays our keystrokes to the child's terminal.
fn keys(master: &OwnedFd) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 4096];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if nix::unistd::write(master, &buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Puts our terminal (stdin) in raw mode; returns the mode to restore.
fn raw_mode() -> Option<Termios> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw).ok()?;
    Some(saved)
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

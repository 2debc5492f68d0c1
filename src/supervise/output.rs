//! A plugin's output: the pipes it writes into (stdin is `/dev/null`), and
//! the thread per spawn that reads them, masks them with *that plugin's*
//! values only, cuts them into lines and writes each line whole to our
//! stdout or stderr, prefixed `PREFIX | ` (`output = "prefix"`), as is
//! (`"raw"`), or not at all (`"discard"`: the plugin writes to /dev/null).
//! It never sees another plugin's values and holds none itself beyond the
//! redactor's patterns.
//!
//! A relay ends at end of file on both pipes, or when the supervisor
//! closes the shared quit pipe at exit: it then reads whatever is still
//! buffered without waiting (a process outside the group may hold the pipe
//! open forever), flushes and returns, so nothing written before the
//! plugin's group emptied is lost.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::config::Output;
use crate::error::{Error, Result};
use crate::mask::Redactor;

/// Sees each output line (masked, without prefix or newline).
pub(crate) type LineHook = Box<dyn FnMut(&[u8]) + Send>;

/// A line longer than this is cut and printed in pieces.
const MAX_LINE: usize = 64 * 1024;

/// Colours for prefixes, by plugin index (cyan, yellow, green, magenta,
/// blue, then their bright forms).
const PALETTE: &[u8] = &[36, 33, 32, 35, 34, 96, 93, 92, 95, 94];

/// How one plugin's lines look.
pub(crate) struct Style {
    /// `PREFIX | ` (padded, maybe coloured), or empty for raw output.
    pub label: String,
    pub timestamps: bool,
}

impl Style {
    /// The label for `prefix`, padded to `width`, coloured when `color`.
    #[must_use]
    pub(crate) fn new(
        prefix: &str,
        width: usize,
        index: usize,
        color: bool,
        timestamps: bool,
    ) -> Self {
        let label = if color {
            let code = PALETTE[index % PALETTE.len()];
            format!("\x1b[{code}m{prefix:<width$} |\x1b[0m ")
        } else {
            format!("{prefix:<width$} | ")
        };
        Self { label, timestamps }
    }

    /// No prefix.
    #[must_use]
    pub(crate) fn raw() -> Self {
        Self {
            label: String::new(),
            timestamps: false,
        }
    }
}

/// Which of our streams a pipe goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Out,
    Err,
}

/// One spawn's descriptors.
pub(crate) struct Streams {
    /// The child's 0, 1, 2.
    child: [OwnedFd; 3],
    /// Our read ends (none when output is discarded).
    ours: Vec<(OwnedFd, Target)>,
}

fn devnull(write: bool) -> Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map_err(|e| Error::io("opening /dev/null", e))?;
    Ok(OwnedFd::from(file))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("creating a pipe for a plugin's output", e.into()))
}

impl Streams {
    /// stdin from /dev/null; stdout and stderr into pipes (or /dev/null when
    /// discarded). Every descriptor is close-on-exec on our side, so no
    /// other plugin inherits it.
    pub(crate) fn new(mode: Output) -> Result<Self> {
        let stdin = devnull(false)?;
        if mode == Output::Discard {
            return Ok(Self {
                child: [stdin, devnull(true)?, devnull(true)?],
                ours: Vec::new(),
            });
        }
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        Ok(Self {
            child: [stdin, out_w, err_w],
            ours: vec![(out_r, Target::Out), (err_r, Target::Err)],
        })
    }

    /// The raw descriptors for the spawn.
    #[must_use]
    pub(crate) fn stdio(&self) -> [Option<RawFd>; 3] {
        [0, 1, 2].map(|i| Some(self.child[i].as_raw_fd()))
    }

    /// Once the plugin runs: closes its ends here (so end of file can come)
    /// and starts the relay. `on_line` sees each complete line, masked and
    /// without its prefix (the `log_line` readiness probe).
    pub(crate) fn start(
        self,
        style: Style,
        redactor: &Redactor,
        quit: Arc<OwnedFd>,
        on_line: Option<LineHook>,
    ) -> Option<JoinHandle<()>> {
        let Self { child, ours } = self;
        drop(child);
        if ours.is_empty() {
            return None;
        }
        let streams: Vec<Stream> = ours
            .into_iter()
            .map(|(fd, target)| Stream {
                fd: Some(fd),
                target,
                redactor: redactor.fresh(),
                line: Vec::new(),
            })
            .collect();
        let mut relay = Relay {
            streams,
            style,
            on_line,
        };
        Some(std::thread::spawn(move || relay.run(&quit)))
    }
}

struct Stream {
    fd: Option<OwnedFd>,
    target: Target,
    redactor: Redactor,
    line: Vec<u8>,
}

struct Relay {
    streams: Vec<Stream>,
    style: Style,
    on_line: Option<LineHook>,
}

impl Relay {
    fn run(&mut self, quit: &OwnedFd) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let open: Vec<usize> = (0..self.streams.len())
                .filter(|&i| self.streams[i].fd.is_some())
                .collect();
            if open.is_empty() {
                return;
            }
            let (ready, quitting) = {
                let mut fds: Vec<PollFd<'_>> = open
                    .iter()
                    .filter_map(|&i| self.streams[i].fd.as_ref())
                    .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                    .collect();
                fds.push(PollFd::new(quit.as_fd(), PollFlags::POLLIN));
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(_) => return self.drain_all(&mut buf),
                }
                let has = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                let ready: Vec<usize> = open
                    .iter()
                    .zip(&fds)
                    .filter(|(_, fd)| has(fd))
                    .map(|(&i, _)| i)
                    .collect();
                (ready, fds.last().is_some_and(has))
            };
            if quitting {
                return self.drain_all(&mut buf);
            }
            for i in ready {
                self.read_once(i, &mut buf);
            }
        }
    }

    /// One read from stream `i`; at end of file (or an error) it is closed.
    fn read_once(&mut self, i: usize, buf: &mut [u8]) {
        let Some(fd) = self.streams[i].fd.as_ref() else {
            return;
        };
        match nix::unistd::read(fd, buf) {
            Ok(0) => self.close(i),
            Ok(n) => self.feed(i, &buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.close(i),
        }
    }

    /// Reads what every pipe still holds, without waiting, then closes.
    fn drain_all(&mut self, buf: &mut [u8]) {
        for i in 0..self.streams.len() {
            if let Some(fd) = self.streams[i].fd.as_ref() {
                let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
            }
            while let Some(fd) = self.streams[i].fd.as_ref() {
                match nix::unistd::read(fd, buf) {
                    Ok(0) | Err(_) => {
                        self.close(i);
                        break;
                    }
                    Ok(n) => self.feed(i, &buf[..n]),
                }
            }
        }
    }

    fn feed(&mut self, i: usize, bytes: &[u8]) {
        let mut masked = Vec::with_capacity(bytes.len());
        self.streams[i].redactor.push(bytes, &mut masked);
        self.streams[i].line.extend_from_slice(&masked);
        self.emit_lines(i, false);
    }

    fn close(&mut self, i: usize) {
        self.streams[i].fd = None;
        let mut rest = Vec::new();
        self.streams[i].redactor.finish(&mut rest);
        self.streams[i].line.extend_from_slice(&rest);
        self.emit_lines(i, true);
    }

    /// Writes every complete line of stream `i` (and, at the end, the rest).
    fn emit_lines(&mut self, i: usize, last: bool) {
        let mut pending = std::mem::take(&mut self.streams[i].line);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos + 1;
            self.write_line(self.streams[i].target, &pending[start..end]);
            start = end;
        }
        while pending.len() - start > MAX_LINE {
            let end = start + MAX_LINE;
            let mut piece = pending[start..end].to_vec();
            piece.push(b'\n');
            self.write_line(self.streams[i].target, &piece);
            start = end;
        }
        if last && start < pending.len() {
            let mut piece = pending[start..].to_vec();
            piece.push(b'\n');
            self.write_line(self.streams[i].target, &piece);
            start = pending.len();
        }
        pending.drain(..start);
        self.streams[i].line = pending;
    }

    /// One whole line (ending in `\n`), prefixed, in one write.
    fn write_line(&mut self, target: Target, line: &[u8]) {
        if let Some(hook) = self.on_line.as_mut() {
            hook(line.strip_suffix(b"\n").unwrap_or(line));
        }
        let mut out = Vec::with_capacity(line.len() + self.style.label.len() + 9);
        if self.style.timestamps {
            out.extend_from_slice(clock().as_bytes());
        }
        out.extend_from_slice(self.style.label.as_bytes());
        out.extend_from_slice(line);
        // A closed stdout must not stop the relay: the plugin would block
        // on a full pipe. The line is dropped.
        let _ = match target {
            Target::Out => {
                let mut o = std::io::stdout().lock();
                o.write_all(&out).and_then(|()| o.flush())
            }
            Target::Err => {
                let mut e = std::io::stderr().lock();
                e.write_all(&out).and_then(|()| e.flush())
            }
        };
    }
}

/// `HH:MM:SS ` in UTC.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02} ", secs / 3600, secs / 60 % 60, secs % 60)
}

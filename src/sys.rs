//! The one module allowed `unsafe`: process creation and the few process-wide
//! calls that have no safe binding. Every block says why it is sound.
//!
//! `spawn` forks and execs by hand rather than through `std::process`, so the
//! child's environment is built from our own wiping buffers (std copies every
//! variable into buffers it frees without wiping) and so the child can be
//! placed in a process group and given a parent-death signal before it runs.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal};
use nix::unistd::{ForkResult, Pid};

/// What the child must be, prepared before the fork so that the child
/// allocates nothing between fork and exec.
pub(crate) struct SpawnSpec<'a> {
    /// Paths to try in order (the PATH search is done beforehand).
    pub candidates: &'a [CString],
    pub argv: &'a [CString],
    /// `NAME=value` entries, each NUL-terminated, owned by the caller in
    /// wiping buffers.
    pub envp: &'a [&'a CStr],
    /// Put the child in a new process group of its own.
    pub new_group: bool,
    /// Signal the child gets when `secret` dies.
    pub death_signal: Option<Signal>,
    /// Descriptors to install as the child's 0, 1, 2 (`None` keeps ours).
    pub stdio: [Option<RawFd>; 3],
    /// Descriptors the child must keep open across exec (`--file` memfds).
    pub keep_fds: &'a [RawFd],
    /// Start a new session with this terminal (a pseudo-terminal's slave)
    /// as its controlling terminal; implies a new process group.
    pub controlling_tty: Option<RawFd>,
    /// Working directory to change to before exec (`None`: ours).
    pub cwd: Option<&'a CStr>,
    /// Descriptors to install at other numbers: (ours, the child's), as
    /// `notify_fd` needs.
    pub extra_fds: &'a [(RawFd, RawFd)],
    /// With `controlling_tty`: a monitor leads the new session instead of
    /// the command (see `MonitorSpec`).
    pub monitor: Option<MonitorSpec<'a>>,
}

/// The process that leads a child's session on its pseudo-terminal, so that
/// the command's process group is not orphaned and job control works
/// there (Ctrl-Z stops it). We fork it; it starts the session, forks the
/// command (its own process group, the terminal's foreground), then execs
/// `program` with `argv` plus the command's pid: our own binary in its
/// monitor mode, so the monitor's memory holds no value.
pub(crate) struct MonitorSpec<'a> {
    pub program: &'a CStr,
    pub argv: &'a [CString],
    pub envp: &'a [&'a CStr],
    /// The monitor's end of its link to us, kept open across its exec.
    pub link: RawFd,
}

/// Why the command did not start.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// No candidate existed.
    NotFound,
    /// A candidate existed but exec failed with this error.
    NotExecutable(Errno),
    /// fork or pipe failed.
    System(Errno),
}

/// Forks and execs `spec`. Returns the child's pid once exec has succeeded
/// (with a monitor: the monitor's, once it and the command both run).
pub(crate) fn spawn(spec: &SpawnSpec<'_>) -> Result<Pid, SpawnError> {
    let argv: Vec<*const c_char> = spec
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const c_char> = spec
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    // The monitor's argv, with a slot the monitor fills with the command's
    // pid (in decimal) before its exec: no allocation after the fork.
    let mut pid_text = [0u8; 16];
    let monitor_argv: Option<Vec<*const c_char>> = spec.monitor.as_ref().map(|m| {
        m.argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([pid_text.as_ptr().cast(), std::ptr::null()])
            .collect()
    });
    let monitor_envp: Option<Vec<*const c_char>> = spec.monitor.as_ref().map(|m| {
        m.envp
            .iter()
            .map(|e| e.as_ptr())
            .chain([std::ptr::null()])
            .collect()
    });
    let monitor = spec
        .monitor
        .as_ref()
        .zip(monitor_argv.as_deref().zip(monitor_envp.as_deref()))
        .map(|(m, (argv, envp))| MonitorExec {
            program: m.program,
            argv,
            envp,
            link: m.link,
            pid_text: (&raw mut pid_text).cast(),
        });
    let parent = nix::unistd::getpid();
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::System)?;
    // SAFETY: between fork and exec the child calls only async-signal-safe
    // functions (setpgid, setsid, ioctl, tcsetpgrp, fork, kill, prctl,
    // sigaction, sigprocmask, dup2, fcntl, chdir, execve, write, _exit) on
    // data prepared before the fork; it allocates nothing.
    match unsafe { nix::unistd::fork() }.map_err(SpawnError::System)? {
        ForkResult::Child => {
            drop(report_r);
            let errno = child_setup_and_exec(spec, monitor.as_ref(), parent, &argv, &envp);
            let bytes = errno.to_ne_bytes();
            // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer
            // lives on this stack frame.
            unsafe {
                libc::write(report_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        ForkResult::Parent { child } => {
            drop(report_w);
            if spec.new_group && spec.controlling_tty.is_none() {
                // Also done in the child; doing it here too closes the race
                // in which we signal the group before the child set it.
                let _ = nix::unistd::setpgid(child, child);
            }
            match read_report(&report_r) {
                None => Ok(child),
                Some(errno) => {
                    let _ = nix::sys::wait::waitpid(child, None);
                    // Negative: the monitor, not the command, failed.
                    if errno < 0 {
                        return Err(SpawnError::System(Errno::from_raw(
                            errno.checked_neg().unwrap_or(libc::EINVAL),
                        )));
                    }
                    let errno = Errno::from_raw(errno);
                    Err(match errno {
                        Errno::ENOENT | Errno::ENOTDIR => SpawnError::NotFound,
                        other => SpawnError::NotExecutable(other),
                    })
                }
            }
        }
    }
}

/// Reads the child's exec report: nothing (EOF) means exec succeeded.
fn read_report(fd: &OwnedFd) -> Option<i32> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    (got == 4).then(|| i32::from_ne_bytes(buf))
}

/// A `MonitorSpec` made ready before the fork.
struct MonitorExec<'a> {
    program: &'a CStr,
    /// NUL-terminated; its second-to-last entry points at `pid_text`.
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    link: RawFd,
    /// 16 zeroed bytes for the command's pid.
    pid_text: *mut u8,
}

/// Runs in the forked child. Returns the errno to report if no exec worked
/// (negated when the monitor failed rather than the command).
fn child_setup_and_exec(
    spec: &SpawnSpec<'_>,
    monitor: Option<&MonitorExec<'_>>,
    mut parent: Pid,
    argv: &[*const c_char],
    envp: &[*const c_char],
) -> i32 {
    // SAFETY: every call below is async-signal-safe and uses only memory
    // prepared before the fork.
    unsafe {
        if let (Some(monitor), Some(tty)) = (monitor, spec.controlling_tty) {
            // Only the command returns here; the monitor execs or fails.
            match become_monitor(spec, monitor, tty, parent) {
                Ok(monitor_pid) => parent = monitor_pid,
                Err(errno) => return errno,
            }
        } else if let Some(tty) = spec.controlling_tty {
            if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
                return Errno::last_raw();
            }
        } else if spec.new_group && libc::setpgid(0, 0) != 0 {
            return Errno::last_raw();
        }
        if let Some(sig) = spec.death_signal {
            libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong);
            // The parent may have died before prctl: then no signal comes.
            if libc::getppid() != parent.as_raw() {
                libc::raise(sig as libc::c_int);
            }
        }
        // The dispositions `secret` inherited and an empty mask: the
        // command starts as if launched by our parent (see
        // `record_inherited_dispositions`).
        inherited_dispositions();
        for (target, fd) in spec.stdio.iter().enumerate() {
            if let Some(fd) = fd
                && libc::dup2(*fd, target as libc::c_int) < 0
            {
                return Errno::last_raw();
            }
        }
        for (ours, theirs) in spec.extra_fds {
            if ours == theirs {
                // dup2 would keep close-on-exec set: clear it instead.
                let flags = libc::fcntl(*ours, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(*ours, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            } else if libc::dup2(*ours, *theirs) < 0 {
                return Errno::last_raw();
            }
        }
        if let Some(dir) = spec.cwd
            && libc::chdir(dir.as_ptr()) != 0
        {
            return Errno::last_raw();
        }
        for fd in spec.keep_fds {
            let flags = libc::fcntl(*fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(*fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
        let mut report = libc::ENOENT;
        for path in spec.candidates {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let errno = Errno::last_raw();
            // Keep looking past a missing file; remember anything worse,
            // as execvp does.
            if errno != libc::ENOENT && errno != libc::ENOTDIR {
                report = errno;
            }
        }
        report
    }
}

/// In the forked child: leads a new session on the pseudo-terminal `tty`,
/// forks the command into a process group of its own holding the
/// terminal's foreground, and execs the monitor. Returns `Ok` (the
/// monitor's pid) in the command, which goes on to its own exec;
/// returns `Err` with the errno to report (negated once the command runs,
/// which is then killed) if the monitor could not start.
///
/// # Safety
///
/// Between fork and exec: only async-signal-safe calls, on memory
/// prepared before the fork.
unsafe fn become_monitor(
    spec: &SpawnSpec<'_>,
    monitor: &MonitorExec<'_>,
    tty: RawFd,
    parent: Pid,
) -> Result<Pid, i32> {
    // SAFETY: async-signal-safe calls only (sigprocmask, setsid, ioctl,
    // prctl, getppid, raise, getpid, fork, setpgid, tcsetpgrp, dup2,
    // fcntl, execve, kill); `pid_text` points at 16 live bytes and
    // `argv`/`envp` are NUL-terminated arrays of live C strings.
    unsafe {
        // Nothing is handled until the monitor runs (our handlers stay
        // installed until the exec and must not run here); the command
        // empties its mask before its exec.
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const all, std::ptr::null_mut());
        if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
            return Err(Errno::last_raw());
        }
        if let Some(sig) = spec.death_signal {
            libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong);
            if libc::getppid() != parent.as_raw() {
                libc::raise(sig as libc::c_int);
            }
        }
        // The monitor's own descriptors 0, 1, 2 are the command's too:
        // it never holds our terminal.
        for (target, fd) in spec.stdio.iter().enumerate() {
            if let Some(fd) = fd
                && libc::dup2(*fd, target as libc::c_int) < 0
            {
                return Err(Errno::last_raw());
            }
        }
        let me = libc::getpid();
        let command = libc::fork();
        if command < 0 {
            return Err(-Errno::last_raw());
        }
        if command == 0 {
            // The command: its own group, the terminal's foreground
            // (SIGTTOU is blocked), before its exec so that no job of its
            // own can lose the foreground to us.
            if libc::setpgid(0, 0) != 0 || libc::tcsetpgrp(tty, libc::getpid()) != 0 {
                return Err(Errno::last_raw());
            }
            return Ok(Pid::from_raw(me));
        }
        // Also done in the command; here too so the group exists whenever
        // the monitor first signals it.
        libc::setpgid(command, command);
        write_decimal(monitor.pid_text, command);
        let flags = libc::fcntl(monitor.link, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(monitor.link, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
        }
        libc::execve(
            monitor.program.as_ptr(),
            monitor.argv.as_ptr(),
            monitor.envp.as_ptr(),
        );
        let errno = Errno::last_raw();
        libc::kill(command, libc::SIGKILL);
        Err(-errno)
    }
}

/// Writes `n` (not negative) in decimal, NUL-terminated, into the 16 bytes
/// at `out`, allocating nothing.
///
/// # Safety
///
/// `out` points at 16 writable bytes.
unsafe fn write_decimal(out: *mut u8, n: libc::pid_t) {
    let mut digits = [0u8; 15];
    let mut len = 0;
    let mut rest = n.max(0).unsigned_abs();
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 || len == digits.len() {
            break;
        }
    }
    for i in 0..len {
        // SAFETY: i < len <= 15, so i and the terminator at len stay
        // within the 16 bytes the caller vouches for.
        unsafe { out.add(i).write(digits[len - 1 - i]) };
    }
    // SAFETY: as above.
    unsafe { out.add(len).write(0) };
}

/// Replaces this process with the command (`secret exec --exec`).
pub(crate) fn exec_in_place(
    candidates: &[CString],
    argv: &[CString],
    envp: &[&CStr],
) -> SpawnError {
    let argv: Vec<*const c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const c_char> = envp
        .iter()
        .map(|e| e.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    reset_signals();
    let mut report = libc::ENOENT;
    for path in candidates {
        // SAFETY: the pointer arrays are NUL-terminated and point into
        // CStrings that outlive the call; execve only returns on failure.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let errno = Errno::last_raw();
        if errno != libc::ENOENT && errno != libc::ENOTDIR {
            report = errno;
        }
    }
    match report {
        libc::ENOENT => SpawnError::NotFound,
        other => SpawnError::NotExecutable(Errno::from_raw(other)),
    }
}

/// Gives every signal the disposition `secret` inherited, for `--exec`.
fn reset_signals() {
    // SAFETY: installing SIG_DFL or SIG_IGN runs no handler code.
    unsafe { inherited_dispositions() };
}

/// Signals 1-31 that were ignored when `secret` started, bit N for signal N.
static IGNORED_AT_START: AtomicU32 = AtomicU32::new(0);

/// Notes which signals our parent left ignored (`nohup`, `trap '' INT`, the
/// background jobs of a non-interactive shell), before any handler of ours
/// is installed: such a signal stays ignored in every child and is never
/// forwarded, as if the child had been started by our parent directly.
/// SIGPIPE is the exception: the Rust runtime ignores it before `main`, so
/// whether our parent did is lost; children get the default (what nearly
/// every parent gives), so a `cmd | head` pipeline ends as it would
/// without `secret`.
pub(crate) fn record_inherited_dispositions() {
    let mut ignored = 0u32;
    for sig in 1..32 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == libc::SIGPIPE {
            continue;
        }
        // SAFETY: sigaction with a null new action only reads the current
        // one into `old`, a live, zeroed struct sigaction.
        let ignored_now = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &raw mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        };
        if ignored_now {
            ignored |= 1 << sig;
        }
    }
    IGNORED_AT_START.store(ignored, Ordering::Relaxed);
}

/// Whether signal `sig` was ignored when `secret` started.
#[must_use]
pub(crate) fn ignored_at_start(sig: i32) -> bool {
    (1..32).contains(&sig) && IGNORED_AT_START.load(Ordering::Relaxed) & (1 << sig) != 0
}

/// Sets signals 1-31 to SIG_IGN if they were ignored at our start, else
/// SIG_DFL, and empties the signal mask.
///
/// # Safety
///
/// Async-signal-safe (an atomic load, signal, sigprocmask), so callable
/// between fork and exec.
unsafe fn inherited_dispositions() {
    let ignored = IGNORED_AT_START.load(Ordering::Relaxed);
    // SAFETY: installing SIG_DFL or SIG_IGN runs no handler code; the
    // signal set is a live local.
    unsafe {
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                let action = if ignored & (1 << sig) != 0 {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                libc::signal(sig, action);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
    }
}

/// Gives `signals` back the disposition we inherited (SIG_DFL unless they
/// were ignored): once the child is gone, a Ctrl-C or `kill` that reaches
/// us while we still relay its background writers' output acts on us as
/// on any process.
pub(crate) fn restore_inherited(signals: &[i32]) {
    for &sig in signals {
        if !ignored_at_start(sig) && sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: installing SIG_DFL runs no handler code.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

/// Dies of `sig` as our child did, so that our parent sees "killed by
/// `sig`" (a shell's loop, `xargs` and `find -exec` stop on that, not on
/// an exit code): its default disposition, unblocked, raised on ourselves
/// (what sudo and GNU timeout do). Returns only if `sig` does not kill by
/// default.
pub(crate) fn die_of(sig: Signal) {
    // SAFETY: installing SIG_DFL runs no handler code.
    let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let _ = nix::sys::signal::raise(sig);
    // A pending signal is delivered before raise returns; should it still
    // be blocked in another way, give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(10));
}

/// Marks every descriptor above 2 close-on-exec, so that nothing this
/// process inherited (a shell's `exec 3>file`, `--passphrase-fd N`, a leaky
/// parent) reaches the children or providers it starts; like sudo, a child
/// gets 0, 1, 2 and only what we hand it on purpose (`--file`). Reading such
/// a descriptor ourselves (`/dev/fd/N`) still works. Descriptors we open
/// ourselves already are close-on-exec.
pub(crate) fn close_on_exec_inherited() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on the
    // descriptors in the range; it closes nothing and touches no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: walk /proc/self/fd.
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD only change the descriptor's flags; a
        // number that is no longer open (the directory's own) fails with
        // EBADF, harmlessly.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Takes ownership of descriptor `fd`, which this process inherited and
/// was told about on its command line (the terminal monitor's link to
/// `secret`); `None` unless it is open and above 2. Call once per
/// descriptor.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open (checked above) and nothing else in
    // this process owns it: it was inherited, and only the caller was told
    // its number.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Ignores `sig` in this process from now on (the plugin keeper).
pub(crate) fn ignore_signal(sig: Signal) {
    // SAFETY: installing SIG_IGN runs no handler code.
    let _ = unsafe { signal(sig, SigHandler::SigIgn) };
}

/// Runs `f` with SIGTTOU blocked, so a background process may change the
/// terminal's foreground group (tcsetpgrp) without being stopped.
pub(crate) fn with_sigttou_blocked<T>(f: impl FnOnce() -> T) -> T {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old));
    let out = f();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    out
}

/// Makes `secret` itself undumpable and without core files, so a crash or
/// `gcore` cannot write a value to disk and other processes of the same user
/// cannot ptrace it or read its memory.
pub(crate) fn harden() {
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
}

/// Stops this process (as a terminal's Ctrl-Z would) until SIGCONT.
pub(crate) fn stop_self() {
    let _ = nix::sys::signal::raise(Signal::SIGSTOP);
}

/// Stops our whole process group with `sig`, as the terminal would have
/// on Ctrl-Z (or on a background read), and returns once we are
/// continued. Our own handler for `sig`, if any, is set aside meanwhile.
pub(crate) fn stop_group_with(sig: Signal) {
    if sig == Signal::SIGSTOP {
        let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), sig);
        // Thread-directed: we stop before this returns.
        let _ = nix::sys::signal::raise(sig);
        return;
    }
    let mut set = SigSet::empty();
    set.add(sig);
    let mut mask = SigSet::empty();
    // SAFETY: sigaction reads and writes live, zeroed structs; the
    // dispositions installed (SIG_IGN, SIG_DFL, then the saved one) run no
    // code of ours.
    unsafe {
        let mut saved: libc::sigaction = std::mem::zeroed();
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigemptyset(&raw mut action.sa_mask);
        action.sa_sigaction = libc::SIG_IGN;
        if libc::sigaction(sig as libc::c_int, &raw const action, &raw mut saved) != 0 {
            return;
        }
        // The rest of the group; we ignore it here.
        libc::killpg(libc::getpgrp(), sig as libc::c_int);
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig as libc::c_int, &raw const action, std::ptr::null_mut());
        let _ =
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), Some(&mut mask));
        // Thread-directed and unblocked: delivered (we stop) before this
        // returns. An orphaned group is not stopped by the kernel.
        libc::raise(sig as libc::c_int);
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
        libc::sigaction(sig as libc::c_int, &raw const saved, std::ptr::null_mut());
    }
}

/// The window size of the terminal on `fd`, if it is one.
#[must_use]
pub(crate) fn window_size(fd: RawFd) -> Option<nix::pty::Winsize> {
    let mut size = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` into the pointer, which
    // points at a live value of exactly that type.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &raw mut size) };
    (rc == 0).then_some(size)
}

/// Sets the window size of the terminal on `fd` (the kernel then sends
/// SIGWINCH to its foreground group).
pub(crate) fn set_window_size(fd: RawFd, size: &nix::pty::Winsize) {
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer, which
    // points at a live value of exactly that type.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, std::ptr::from_ref(size)) };
}

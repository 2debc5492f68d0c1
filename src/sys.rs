//! The one module allowed `unsafe`: process creation and the few process-wide
//! calls that have no safe binding. Every block says why it is sound.
//!
//! `spawn` starts a child by hand rather than through `std::process`, so the
//! child's environment is built from our own wiping buffers (std copies every
//! variable into buffers it frees without wiping) and so the child can be
//! placed in a process group and given a parent-death signal before it runs.
//! It does what `posix_spawn` does: the child shares our memory until it
//! execs (`clone` with `CLONE_VM | CLONE_VFORK`, on a stack of its own), so
//! no page table is copied and no page of ours becomes copy-on-write; a
//! fork would cost a launch about a third of a millisecond more.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal};
use nix::unistd::Pid;

/// What the child must be, prepared before the clone so that the child
/// allocates nothing between clone and exec.
pub(crate) struct SpawnSpec<'a> {
    /// Paths to try in order (the PATH search is done beforehand).
    pub candidates: &'a [CString],
    pub argv: &'a [CString],
    /// `NAME=value` entries, each NUL-terminated, owned by the caller in
    /// wiping buffers.
    pub envp: &'a [&'a CStr],
    /// Put the child in a new process group of its own.
    pub new_group: bool,
    /// With `new_group`: give this terminal's foreground to that group
    /// before exec (a job-control shell's child, such as an interactive
    /// shell, checks it before anything else).
    pub foreground_of: Option<RawFd>,
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
/// there (Ctrl-Z stops it). `spawn` starts it as any child; it starts the
/// session and the command (its own process group, the terminal's
/// foreground), then execs `program` with `argv` plus the command's pid:
/// our own binary in its monitor mode, so the monitor's memory holds no
/// value.
pub(crate) struct MonitorSpec<'a> {
    pub program: &'a CStr,
    pub argv: &'a [CString],
    pub envp: &'a [&'a CStr],
    /// The monitor's end of its link to us, kept open across its exec.
    pub link: RawFd,
    /// The job starts in the background: the command does not get its
    /// terminal's foreground (the monitor's group keeps it), so its first
    /// read or write there stops it, as a background job's would.
    pub background: bool,
}

/// Why the command did not start.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// No candidate existed.
    NotFound,
    /// A candidate existed but exec failed with this error.
    NotExecutable(Errno),
    /// clone (or its stack) failed, or the monitor could not start.
    System(Errno),
}

/// A child's stack: what `child_setup_and_exec` (or `start_monitor`) and
/// the libc calls it makes need, many times over (neither recurses nor
/// allocates).
const CHILD_STACK: usize = 64 << 10;

/// What a child reads (all of it prepared before the clone by its parent,
/// which is suspended until the child execs or exits) and where it
/// reports.
struct ChildArgs<'a> {
    spec: &'a SpawnSpec<'a>,
    parent: Pid,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    /// With a monitor: this child becomes it (see `start_monitor`).
    monitor: Option<&'a MonitorExec<'a>>,
    /// This child is the command under a monitor, on this terminal.
    under_monitor: Option<RawFd>,
    /// The first failure: 0 while none; the errno of the command's last
    /// exec tried; negated when the monitor, not the command, failed.
    errno: &'a AtomicI32,
}

/// A `MonitorSpec` made ready before the clone.
struct MonitorExec<'a> {
    program: &'a CStr,
    /// NUL-terminated; its second-to-last entry points at `pid_text`.
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    link: RawFd,
    /// 16 zeroed bytes for the command's pid.
    pid_text: *mut u8,
    /// The command's stack (it shares our memory too).
    stack: &'a ChildStack,
}

/// Starts `spec` as a child. Returns the child's pid once exec has
/// succeeded (with a monitor: the monitor's, once it and the command both
/// run).
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
    // pid (in decimal) before its exec: no allocation after the clone.
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
    let command_stack = match spec.monitor {
        Some(_) => Some(ChildStack::new().map_err(SpawnError::System)?),
        None => None,
    };
    let monitor = spec
        .monitor
        .as_ref()
        .zip(monitor_argv.as_deref().zip(monitor_envp.as_deref()))
        .zip(command_stack.as_ref())
        .map(|((m, (argv, envp)), stack)| MonitorExec {
            program: m.program,
            argv,
            envp,
            link: m.link,
            pid_text: (&raw mut pid_text).cast(),
            stack,
        });
    let errno = AtomicI32::new(0);
    let args = ChildArgs {
        spec,
        parent: nix::unistd::getpid(),
        argv: &argv,
        envp: &envp,
        monitor: monitor.as_ref(),
        under_monitor: None,
        errno: &errno,
    };
    let stack = ChildStack::new().map_err(SpawnError::System)?;
    // Every signal is blocked around the clone: the child shares our
    // memory, so no handler of ours may run in it; it resets every
    // disposition, then clears its mask, before exec (a monitor keeps them
    // blocked across its exec, until it listens).
    let mut old = SigSet::empty();
    let _ = nix::sys::signal::pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    );
    let pid = clone_vfork(&stack, &args);
    let clone_errno = Errno::last();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    drop(stack);
    drop(command_stack);
    if pid < 0 {
        return Err(SpawnError::System(clone_errno));
    }
    let child = Pid::from_raw(pid);
    match errno.load(Ordering::SeqCst) {
        0 => Ok(child),
        errno => {
            let _ = nix::sys::wait::waitpid(child, None);
            if errno < 0 {
                return Err(SpawnError::System(Errno::from_raw(
                    errno.checked_neg().unwrap_or(libc::EINVAL),
                )));
            }
            Err(match Errno::from_raw(errno) {
                Errno::ENOENT | Errno::ENOTDIR => SpawnError::NotFound,
                other => SpawnError::NotExecutable(other),
            })
        }
    }
}

/// Starts a child that runs `child_main(args)` on `stack`, sharing our
/// memory, and returns (its pid, or -1 with errno set) once it has exec'd
/// or exited. Called with every signal blocked, by `spawn` and, in its
/// child, by `start_monitor`.
fn clone_vfork(stack: &ChildStack, args: &ChildArgs<'_>) -> libc::c_int {
    // SAFETY: `child_main` runs on `stack`, a live mapping of its own with
    // a guard page below, used by no one else meanwhile; it reads only
    // `args`, which outlives the call (CLONE_VFORK suspends this thread
    // until the child has exec'd or exited), and makes only
    // async-signal-safe calls that allocate nothing. SIGCHLD tells the
    // caller of its end as of any child.
    unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(args).cast_mut().cast(),
        )
    }
}

/// A stack for a child: `CHILD_STACK` bytes above a guard page.
struct ChildStack {
    base: std::ptr::NonNull<libc::c_void>,
    len: usize,
}

impl ChildStack {
    fn new() -> Result<Self, Errno> {
        let page = 4096;
        let len = CHILD_STACK + page;
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let base = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                std::num::NonZeroUsize::new(len).ok_or(Errno::EINVAL)?,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_PRIVATE | nix::sys::mman::MapFlags::MAP_STACK,
            )?
        };
        let stack = Self { base, len };
        // SAFETY: the lowest page of our own mapping becomes inaccessible.
        unsafe { nix::sys::mman::mprotect(base, page, nix::sys::mman::ProtFlags::PROT_NONE)? };
        Ok(stack)
    }

    /// The top of the stack (it grows down), 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, which the child's first
        // push moves below; the length is a multiple of 16.
        unsafe { self.base.as_ptr().cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no longer used: the child has
        // exec'd or exited before `clone` returned.
        let _ = unsafe { nix::sys::mman::munmap(self.base, self.len) };
    }
}

/// A child's entry point: sets up and execs (or becomes the monitor), and
/// on failure leaves the errno in `ChildArgs` and exits.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` `clone_vfork` passed, alive and
    // unchanged while this runs (its owner is suspended).
    let args = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    let errno = match (args.monitor, args.spec.controlling_tty) {
        // SAFETY: we are that child, between clone and exec.
        (Some(monitor), Some(tty)) => unsafe { start_monitor(args, monitor, tty) },
        _ => child_setup_and_exec(args),
    };
    // The first failure stays: a command's, not its monitor's view of it.
    let errno = if errno == 0 { 1 } else { errno };
    let _ = args
        .errno
        .compare_exchange(0, errno, Ordering::SeqCst, Ordering::SeqCst);
    // SAFETY: _exit(2) is async-signal-safe and runs no destructor or
    // exit handler of the (shared) parent.
    unsafe { libc::_exit(127) }
}

/// Runs in the child. Returns the errno to report if no exec worked.
fn child_setup_and_exec(args: &ChildArgs<'_>) -> i32 {
    let spec = args.spec;
    // SAFETY: every call below is async-signal-safe and uses only memory
    // prepared before the clone.
    unsafe {
        if let Some(tty) = args.under_monitor {
            // The command under its monitor: its own group, the terminal's
            // foreground (SIGTTOU is blocked) unless the job starts in the
            // background, before its exec so that no job of its own can
            // lose the foreground to the monitor.
            let background = spec.monitor.as_ref().is_some_and(|m| m.background);
            if libc::setpgid(0, 0) != 0
                || (!background && libc::tcsetpgrp(tty, libc::getpid()) != 0)
            {
                return Errno::last_raw();
            }
        } else if let Some(tty) = spec.controlling_tty {
            if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
                return Errno::last_raw();
            }
        } else if spec.new_group {
            if libc::setpgid(0, 0) != 0 {
                return Errno::last_raw();
            }
            // SIGTTOU is blocked, as every signal here. A terminal that
            // refuses (hung up) leaves the foreground where it was.
            if let Some(tty) = spec.foreground_of {
                libc::tcsetpgrp(tty, libc::getpid());
            }
        }
        if let Some(sig) = spec.death_signal {
            death_signal(sig, args.parent);
        }
        // The dispositions `secret` inherited and an empty mask: the
        // command starts as if launched by our parent (see `INHERITED`).
        inherited_dispositions();
        if let Some(errno) = install_stdio(spec) {
            return errno;
        }
        for (ours, theirs) in spec.extra_fds {
            if ours == theirs {
                // dup2 would keep close-on-exec set: clear it instead.
                keep_open(*ours);
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
            keep_open(*fd);
        }
        let mut report = libc::ENOENT;
        for path in spec.candidates {
            libc::execve(path.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr());
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

/// In a child: asks for `sig` when the thread that started us (`parent`)
/// dies, and sends it at once if it already has.
///
/// # Safety
///
/// Between clone and exec: async-signal-safe calls only.
unsafe fn death_signal(sig: Signal, parent: Pid) {
    // SAFETY: prctl, getppid, kill and getpid are async-signal-safe.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong);
        // The parent may have died before prctl: then no signal comes.
        // kill, not raise: raise signals the thread in our (shared)
        // thread-local storage, which is the parent's.
        if libc::getppid() != parent.as_raw() {
            libc::kill(libc::getpid(), sig as libc::c_int);
        }
    }
}

/// In a child: installs `spec.stdio` as 0, 1, 2; the errno if one failed.
///
/// # Safety
///
/// Between clone and exec: async-signal-safe calls only.
unsafe fn install_stdio(spec: &SpawnSpec<'_>) -> Option<i32> {
    for (target, fd) in spec.stdio.iter().enumerate() {
        let Some(fd) = fd else { continue };
        // SAFETY: dup2 is async-signal-safe and only changes descriptors.
        if unsafe { libc::dup2(*fd, target as libc::c_int) } < 0 {
            return Some(Errno::last_raw());
        }
    }
    None
}

/// Clears close-on-exec on `fd` (async-signal-safe: fcntl only).
fn keep_open(fd: RawFd) {
    // SAFETY: fcntl only reads and sets the descriptor's flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
        }
    }
}

/// In the child, when a monitor leads the session: leads a new session on
/// the pseudo-terminal `tty`, starts the command as `spawn` started us (a
/// clone sharing our memory, on `monitor.stack`, which becomes its own
/// process group holding the terminal's foreground, then execs), and once
/// it runs, execs the monitor. Returns only on failure, with the errno to
/// report: the command's (already recorded) when its exec failed, else
/// the monitor's, negated (the command, if it runs, is then killed).
///
/// Nothing here forks: a fork in a child that shares our memory would run
/// libc's fork handlers and take its locks, which are ours.
///
/// # Safety
///
/// Between clone and exec: only async-signal-safe calls, on memory
/// prepared before the clone, with every signal blocked.
unsafe fn start_monitor(args: &ChildArgs<'_>, monitor: &MonitorExec<'_>, tty: RawFd) -> i32 {
    let spec = args.spec;
    // SAFETY: async-signal-safe calls only (setsid, ioctl, prctl, getppid,
    // kill, getpid, dup2, clone, waitpid, fcntl, execve); `pid_text`
    // points at 16 live bytes and `argv`/`envp` are NUL-terminated arrays
    // of live C strings. Every signal stays blocked (spawn blocked them
    // before its clone): none of our handlers may run here, and the
    // monitor unblocks them once it listens; the command empties its mask
    // before its exec.
    unsafe {
        if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
            return -Errno::last_raw();
        }
        if let Some(sig) = spec.death_signal {
            death_signal(sig, args.parent);
        }
        // The monitor's own descriptors 0, 1, 2 are the command's too:
        // it never holds our terminal.
        if let Some(errno) = install_stdio(spec) {
            return -errno;
        }
        let command_args = ChildArgs {
            spec,
            parent: Pid::from_raw(libc::getpid()),
            argv: args.argv,
            envp: args.envp,
            monitor: None,
            under_monitor: Some(tty),
            errno: args.errno,
        };
        let command = clone_vfork(monitor.stack, &command_args);
        if command < 0 {
            return -Errno::last_raw();
        }
        if args.errno.load(Ordering::SeqCst) != 0 {
            // The command did not start (its errno is recorded).
            libc::waitpid(command, std::ptr::null_mut(), 0);
            return 1;
        }
        write_decimal(monitor.pid_text, command);
        keep_open(monitor.link);
        libc::execve(
            monitor.program.as_ptr(),
            monitor.argv.as_ptr(),
            monitor.envp.as_ptr(),
        );
        let errno = Errno::last_raw();
        libc::kill(command, libc::SIGKILL);
        libc::waitpid(command, std::ptr::null_mut(), 0);
        -errno
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

/// What Rust's start-up would have done and `secret` needs (its `main` is
/// the C one, see main.rs): descriptors 0, 1 and 2 that are closed are
/// opened on /dev/null, so no file we open takes their place and receives
/// what we print; SIGPIPE is ignored, so writing to a closed pipe is an
/// error we handle (a broken pipe exits quietly), not a silent death.
pub(crate) fn start_up() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes exactly `fds.len()` live pollfd structs.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if polled >= 0 {
        for pollfd in &fds {
            if pollfd.revents & libc::POLLNVAL != 0 {
                // SAFETY: open takes a NUL-terminated path; the lowest free
                // descriptor, the closed one, is what it returns.
                let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
                if fd != pollfd.fd {
                    // Without 0-2 we could leak output into our own files.
                    std::process::abort();
                }
            }
        }
    }
    // Whether our parent ignored SIGPIPE is not recorded: children get the
    // default (what nearly every parent gives), so a `cmd | head` pipeline
    // ends as it would without `secret`.
    INHERITED.fetch_or(1 << libc::SIGPIPE, Ordering::SeqCst);
    // SAFETY: installing SIG_IGN runs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// What we know of the dispositions of signals 1-31 as `secret` inherited
/// them: bit N is set once signal N's is recorded, bit 32 + N if it was
/// SIG_IGN (`nohup`, `trap '' INT`, the background jobs of a
/// non-interactive shell; such a signal stays ignored in every child and
/// is never forwarded, as if the child had been started by our parent
/// directly). A signal's disposition is recorded before this process
/// first changes it, so every signal we changed is recorded, and a child
/// gets back the recorded ones (`inherited_dispositions`) and keeps every
/// other one as it is. One atomic word: a child cloned at any moment sees
/// a consistent record.
static INHERITED: AtomicU64 = AtomicU64::new(0);

/// Records signal `sig`'s inherited disposition, if it is not yet: called
/// before every change of a disposition (while unchanged, the disposition
/// it has is the inherited one).
fn before_changing(sig: i32) {
    let _ = ignored_at_start(sig);
}

/// Whether signal `sig` was ignored when `secret` started, recording it
/// if it is not yet. SIGPIPE counts as not ignored (see `start_up`).
pub(crate) fn ignored_at_start(sig: i32) -> bool {
    let Some(n) = u32::try_from(sig).ok().filter(|s| (1..32).contains(s)) else {
        return false;
    };
    let (known, ignored) = (1u64 << n, 1u64 << (32 + n));
    let record = INHERITED.load(Ordering::SeqCst);
    if record & known != 0 {
        return record & ignored != 0;
    }
    // SAFETY: sigaction with a null new action only reads the current one
    // into `old`, a live, zeroed struct sigaction.
    let ignored_now = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &raw mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    };
    let mine = known | if ignored_now { ignored } else { 0 };
    // Recorded meanwhile by another thread: its record stands.
    match INHERITED.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
        (r & known == 0).then_some(r | mine)
    }) {
        Ok(_) => ignored_now,
        Err(r) => r & ignored != 0,
    }
}

/// Gives every signal whose inherited disposition is recorded (every one
/// we changed among them) that disposition again (SIG_IGN if it was
/// ignored at our start, else SIG_DFL; the others still have theirs, and
/// exec resets handlers, all of which are among the recorded), and
/// empties the signal mask.
///
/// # Safety
///
/// Async-signal-safe (an atomic load, signal, sigprocmask), so callable
/// between clone and exec.
unsafe fn inherited_dispositions() {
    let record = INHERITED.load(Ordering::SeqCst);
    let (recorded, ignored) = (record as u32, (record >> 32) as u32);
    // SAFETY: installing SIG_DFL or SIG_IGN runs no handler code; the
    // signal set is a live local.
    unsafe {
        for sig in 1..32 {
            if recorded & (1 << sig) != 0 {
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

/// Dies of `sig` as our child did, so that our parent sees "killed by
/// `sig`" (a shell's loop, `xargs` and `find -exec` stop on that, not on
/// an exit code): its default disposition, unblocked, raised on ourselves
/// (what sudo and GNU timeout do). Returns only if `sig` does not kill by
/// default.
pub(crate) fn die_of(sig: Signal) {
    before_changing(sig as i32);
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

/// Whether a `Catcher` is alive: there is one handler, one wake-up pipe
/// and one pending table per process, so a second one would steal the
/// first one's signals, and dropping either would uninstall both.
static CATCHING: AtomicBool = AtomicBool::new(false);
/// The write end of the current `Catcher`'s wake-up pipe (-1: none).
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// How many handlers are running: a `Catcher` closes the wake-up pipe
/// only once none is, so none writes to a descriptor number the process
/// has meanwhile reused.
static HANDLING: AtomicU32 = AtomicU32::new(0);
/// Per signal: 0, or `PENDING_BIT` | the `si_code` of the last arrival
/// not yet collected.
static PENDING: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
const PENDING_BIT: u64 = 1 << 63;

/// The handler of every caught signal: records its origin and writes a
/// wake-up byte. Async-signal-safe: atomics, `write` and `errno` only.
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let Some(slot) = usize::try_from(sig).ok().and_then(|s| PENDING.get(s)) else {
        return;
    };
    // Counted before `WAKE` is read: `Catcher::drop` clears `WAKE`, then
    // waits for the count to be zero before it closes the descriptor.
    HANDLING.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler
    // (checked for null all the same).
    let code = unsafe { info.as_ref() }.map_or(0, |i| i.si_code);
    slot.store(
        PENDING_BIT | u64::from(code.cast_unsigned()),
        Ordering::SeqCst,
    );
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: errno is saved and restored around write(2), which is
        // async-signal-safe; `fd` stays open until `HANDLING` is back to
        // zero; a full pipe (EAGAIN) already wakes the reader.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, [1u8].as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
    HANDLING.fetch_sub(1, Ordering::SeqCst);
}

/// One signal collected by `Catcher::wait`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caught {
    pub signal: i32,
    /// Sent by the kernel (a terminal's Ctrl-C, Ctrl-\, Ctrl-Z), not by a
    /// process with kill(2).
    pub from_kernel: bool,
}

/// Catches `signals`: a handler of our own records each signal's last
/// origin and wakes `wait` through a pipe (the self-pipe of signal-hook's
/// iterator, without its registry, whose per-signal copies of every
/// handler cost more than the rest of a launch). Every part of `secret`
/// that takes signals over uses it: `exec` and its terminal monitor while
/// the child runs, `plugins run` and `broker run` for their whole life, on
/// a thread of their own (`relay`).
///
/// The contract: one per process at a time. The handler, the wake-up
/// pipe and the pending signals are process-wide, so `new` fails while
/// another `Catcher` is alive rather than take its signals away. Dropping
/// it gives the signals their inherited disposition (SIG_IGN if they were
/// ignored when `secret` started, SIG_DFL otherwise).
pub(crate) struct Catcher {
    wake_r: OwnedFd,
    wake_w: Option<OwnedFd>,
    signals: Vec<i32>,
}

impl Catcher {
    /// Installs the handler for `signals`; fails if another `Catcher` is
    /// alive in this process.
    pub(crate) fn new(signals: &[i32]) -> std::io::Result<Self> {
        let (wake_r, wake_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        nix::fcntl::fcntl(
            &wake_w,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        if CATCHING
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                "signals are already caught elsewhere in this process",
            ));
        }
        for slot in &PENDING {
            slot.store(0, Ordering::SeqCst);
        }
        WAKE.store(wake_w.as_raw_fd(), Ordering::SeqCst);
        // From here on, an early return drops it: CATCHING is released.
        let catcher = Self {
            wake_r,
            wake_w: Some(wake_w),
            signals: signals.to_vec(),
        };
        for &sig in signals {
            before_changing(sig);
            // SAFETY: `on_signal` is async-signal-safe (see there); the
            // action is a live, fully initialised struct sigaction.
            let rc = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&raw mut action.sa_mask);
                libc::sigaction(sig, &raw const action, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(catcher)
    }

    /// Blocks until a signal came, then returns every signal pending, in
    /// the order of their numbers. A signal that came again before it was
    /// collected is returned once, as the kernel holds one pending
    /// instance of each; the list may be empty (a wake-up whose signal an
    /// earlier call already collected).
    pub(crate) fn wait(&self) -> Vec<Caught> {
        let mut buf = [0u8; 64];
        while let Err(Errno::EINTR) = nix::unistd::read(&self.wake_r, &mut buf) {}
        PENDING
            .iter()
            .enumerate()
            .filter_map(|(sig, slot)| {
                let v = slot.swap(0, Ordering::SeqCst);
                (v & PENDING_BIT != 0).then(|| Caught {
                    signal: i32::try_from(sig).unwrap_or(0),
                    from_kernel: v & 0xffff_ffff == u64::from(libc::SI_KERNEL.cast_unsigned()),
                })
            })
            .collect()
    }

    /// Moves the catcher to a thread of its own (`plugins run`, `broker
    /// run`) that hands each signal caught to `deliver`, in `wait`'s order,
    /// until `deliver` returns false (its receiver is gone); the catcher is
    /// then dropped. Until then the thread lives as long as the process:
    /// at exit it is not joined, so the handler stays installed to the
    /// end.
    pub(crate) fn relay(
        self,
        mut deliver: impl FnMut(i32) -> bool + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                loop {
                    for caught in self.wait() {
                        if !deliver(caught.signal) {
                            return;
                        }
                    }
                }
            })
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        for &sig in &self.signals {
            let action = if ignored_at_start(sig) {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            // SAFETY: installing SIG_DFL or SIG_IGN runs no handler code.
            unsafe { libc::signal(sig, action) };
        }
        WAKE.store(-1, Ordering::SeqCst);
        // A handler on another thread may have read the descriptor just
        // before: it is closed only once that handler has written (a few
        // instructions; a handler never blocks).
        while HANDLING.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        drop(self.wake_w.take());
        CATCHING.store(false, Ordering::SeqCst);
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
    before_changing(sig as i32);
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
/// on Ctrl-Z (or on a background read), and returns true once we are
/// continued. Our own handler for `sig`, if any, is set aside meanwhile.
///
/// In an orphaned group (no member has a parent in another group of our
/// session: its shell is gone, or we lead the session, as under `ssh -t`
/// or `script -c`) the kernel discards the terminal's stop signals, and
/// nobody would continue us. There a Ctrl-Z (SIGTSTP) is dropped as the
/// kernel drops it for a command run bare, and false is returned: the
/// caller continues the child. A read or write of the terminal (SIGTTIN,
/// SIGTTOU), which would only stop the child again, stops us with SIGSTOP.
pub(crate) fn stop_group_with(sig: Signal) -> bool {
    let sig = match sig {
        Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU if group_orphaned() => {
            if sig == Signal::SIGTSTP {
                return false;
            }
            Signal::SIGSTOP
        }
        _ => sig,
    };
    if sig == Signal::SIGSTOP {
        // Process-directed, and we are in the group: we stop before this
        // returns.
        let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), sig);
        return true;
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
        // Set aside for a moment, put back below: a child started meanwhile
        // must still get the inherited disposition.
        before_changing(sig as libc::c_int);
        if libc::sigaction(sig as libc::c_int, &raw const action, &raw mut saved) != 0 {
            return false;
        }
        // The rest of the group; we ignore it here.
        libc::killpg(libc::getpgrp(), sig as libc::c_int);
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig as libc::c_int, &raw const action, std::ptr::null_mut());
        let _ =
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), Some(&mut mask));
        // Thread-directed and unblocked: delivered (we stop) before this
        // returns.
        libc::raise(sig as libc::c_int);
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
        libc::sigaction(sig as libc::c_int, &raw const saved, std::ptr::null_mut());
    }
    true
}

/// Whether our process group is orphaned, as far as our line of
/// ancestors tells: the first of them outside our group is outside our
/// session too (or gone). Another member's parent could still hold the
/// group, which this does not look for.
fn group_orphaned() -> bool {
    let group = nix::unistd::getpgrp();
    let session = nix::unistd::getsid(None).ok();
    let mut pid = nix::unistd::getpid();
    // Bounded: a line of ancestors is short, and pid 1 has parent 0.
    for _ in 0..64 {
        let Some(parent) = parent_of(pid) else {
            return true;
        };
        if nix::unistd::getpgid(Some(parent)).ok() != Some(group) {
            return parent.as_raw() == 0 || nix::unistd::getsid(Some(parent)).ok() != session;
        }
        pid = parent;
    }
    true
}

/// The parent of `pid`, from /proc (0 for pid 1).
fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...; comm may hold spaces and parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some(Pid::from_raw(ppid))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(sig: i32) -> libc::sighandler_t {
        // SAFETY: a null new action only reads the current one into a
        // live, zeroed struct sigaction.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &raw mut old);
            old.sa_sigaction
        }
    }

    /// The only test that catches signals: the catcher is process-wide,
    /// and the unit tests share a process.
    #[test]
    fn one_catcher_coalesces_orders_and_relays() {
        fn sendable<T: Send>(_: &T) {}
        let (usr1, usr2) = (libc::SIGUSR1, libc::SIGUSR2);
        let catcher = Catcher::new(&[usr1, usr2]).expect("a first catcher");
        sendable(&catcher);
        let second = Catcher::new(&[usr1]).err().map(|e| e.kind());
        assert_eq!(second, Some(std::io::ErrorKind::ResourceBusy));

        // The refused second one took nothing: the first still catches.
        // raise(3) is delivered to this thread before it returns.
        for sig in [Signal::SIGUSR2, Signal::SIGUSR1, Signal::SIGUSR1] {
            nix::sys::signal::raise(sig).expect("raise");
        }
        let caught = catcher.wait();
        let numbers: Vec<i32> = caught.iter().map(|c| c.signal).collect();
        assert_eq!(numbers, [usr1, usr2], "coalesced, in number order");
        assert!(caught.iter().all(|c| !c.from_kernel));

        drop(catcher);
        assert_eq!(disposition(usr1), libc::SIG_DFL);
        assert_eq!(disposition(usr2), libc::SIG_DFL);

        // Free again once dropped; a relay ends when its receiver is gone
        // and then lets go of the signals.
        let catcher = Catcher::new(&[usr1]).expect("a catcher after the first");
        let (tx, rx) = std::sync::mpsc::channel();
        let relay = catcher
            .relay(move |sig| tx.send(sig).is_ok())
            .expect("the relay thread");
        nix::sys::signal::raise(Signal::SIGUSR1).expect("raise");
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(usr1)
        );
        drop(rx);
        nix::sys::signal::raise(Signal::SIGUSR1).expect("raise");
        relay.join().expect("the relay ends");
        assert_eq!(disposition(usr1), libc::SIG_DFL);
        drop(Catcher::new(&[usr1]).expect("free after the relay"));
    }
}

//! `secret plugins run`: the supervisor's state machine and event loop.
//!
//! One thread (the main one, which lives as long as the supervisor, so the
//! parent-death signal it sets on each plugin holds) owns every plugin's
//! state, resolves secrets, forks, reaps and signals. It blocks on one
//! channel fed by the signal thread (SIGTERM, SIGINT, SIGHUP, SIGCHLD) and
//! by the readiness probes, waking early only for a pending deadline
//! (backoff, stop timeout, readiness timeout, shutdown deadline), so an
//! idle supervisor uses no CPU. Output is relayed by `output`'s threads.
//!
//! A plugin's life: `waiting` (for its dependencies) → `starting` (a probe
//! is pending) or `running` → `ready` → … → `stopping` (its group is being
//! stopped) → `backoff` (a restart is due) or `exited` / `failed`
//! (terminal). A run ends when the main process has been reaped **and** the
//! process group is empty; only then is it classified and restarted.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc as sig;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::config::{
    Color, Condition, OnFailed, OnSecretChange, Plugin, PluginsFile, Probe, Restart,
};
use super::fingerprint;
use super::keeper::Keeper;
use super::launch::{self, Wiring};
use super::output::{LineHook, Streams, Style};
use super::{Host, SharedStore, status};
use crate::audit::Event as AuditEvent;
use crate::child::lease;
use crate::error::{Error, Result};
use crate::sys::Catcher;

mod probes;
mod reload;
mod report;
mod start;
mod state;
mod stop;

use state::Next;
pub(crate) use state::State;

/// While a group whose leader is gone is being stopped, how often its
/// emptiness is re-checked (a member whose parent is outside the group
/// dies without a SIGCHLD to us).
const GROUP_RECHECK: Duration = Duration::from_millis(50);

/// How many times a dead keeper is replaced.
const KEEPER_RESTARTS: u32 = 3;

/// What wakes the loop.
enum Wake {
    Signal(i32),
    /// Plugin `index`'s run `generation` passed its readiness probe.
    Ready(usize, u64),
    /// The status socket wants a snapshot (JSON).
    Status(Sender<String>),
}

/// How a run ended.
#[derive(Clone, Debug)]
enum Exit {
    Code(i32),
    Signal(Signal),
    SpawnError(String),
}

impl Exit {
    fn describe(&self) -> String {
        match self {
            Self::Code(c) => format!("exit code {c}"),
            Self::Signal(s) => format!("killed by {}", s.as_str()),
            Self::SpawnError(e) => e.clone(),
        }
    }
}

/// What to do once a stop has emptied the group.
#[derive(Clone, Debug)]
enum Then {
    /// The main process exited by itself; the rest of the group was
    /// stopped. Classify the exit.
    Classify,
    /// The supervisor asked (shutdown): the plugin is `exited`.
    Stopped,
    /// Mark it `failed` with this reason (readiness timeout).
    Fail(String),
    /// Reload changed it: start it again with the new settings.
    Restart,
    /// Reload removed it.
    Remove,
    /// Reload disabled it.
    Disable,
}

impl Then {
    /// When a stop is asked for while one is under way, the weightier
    /// purpose wins: shutdown over reload over a plain clean-up; a
    /// readiness failure is never hidden.
    fn rank(&self) -> u8 {
        match self {
            Self::Classify => 0,
            Self::Restart => 1,
            Self::Remove | Self::Disable => 2,
            Self::Stopped => 3,
            Self::Fail(_) => 4,
        }
    }
}

/// A stop in progress.
struct Stop {
    then: Then,
    kill_at: Instant,
    killed: bool,
}

/// A probe running for the current run.
struct ProbeRun {
    /// Tells probe threads the run is over.
    cancel: Arc<AtomicBool>,
    deadline: Instant,
    /// `exec` probes: the command's pid while it runs, and when to run it
    /// next.
    exec_pid: Option<Pid>,
    exec_next: Option<Instant>,
}

/// One plugin and its runtime state.
struct Unit {
    plugin: Plugin,
    state: State,
    /// The main process, until reaped.
    leader: Option<Pid>,
    /// The process group, until seen empty.
    group: Option<Pid>,
    started_at: Instant,
    exit: Option<Exit>,
    /// How the last run ended.
    last_exit: Option<Exit>,
    stop: Option<Stop>,
    probe: Option<ProbeRun>,
    /// Consecutive failures (for the backoff).
    consecutive: u32,
    /// Failure times within the crash-loop window.
    failures: VecDeque<Instant>,
    backoff_until: Option<Instant>,
    ever_started: bool,
    ever_ready: bool,
    /// `exited` with a success code (a `completed` dependency is met).
    completed_ok: bool,
    reason: Option<String>,
    blocked_logged: bool,
    generation: u64,
    style_index: usize,
    /// Removed from the configuration by a reload (kept so indices stay
    /// valid; ignored everywhere).
    removed: bool,
    /// What the current or last spawn was made from (reload compares).
    settings_print: Option<[u8; 32]>,
    secret_print: Option<[u8; 32]>,
    /// The settings to apply once a reload's stop is over.
    pending: Option<Plugin>,
    /// The shortest lease of the grants behind the current run's secrets,
    /// and when to renew it next (at half of it).
    lease: Option<Duration>,
    renew_at: Option<Instant>,
    /// The leases behind the current run's secrets, renewed together.
    leases: Vec<crate::resolve::Lease>,
    /// The current run's place at the proxy (`secret_proxy_refs`), until
    /// its group is gone.
    proxy: Option<crate::broker::proxy::Admission>,
}

impl Unit {
    fn new(plugin: Plugin, style_index: usize) -> Self {
        Self {
            state: if plugin.enabled {
                State::Waiting
            } else {
                State::Disabled
            },
            plugin,
            leader: None,
            group: None,
            started_at: Instant::now(),
            exit: None,
            last_exit: None,
            stop: None,
            probe: None,
            consecutive: 0,
            failures: VecDeque::new(),
            backoff_until: None,
            ever_started: false,
            ever_ready: false,
            completed_ok: false,
            reason: None,
            blocked_logged: false,
            generation: 0,
            style_index,
            removed: false,
            settings_print: None,
            secret_print: None,
            pending: None,
            lease: None,
            renew_at: None,
            leases: Vec::new(),
            proxy: None,
        }
    }

    /// Forgets the previous runs' failures (a reload's fresh start).
    fn reset(&mut self) {
        self.consecutive = 0;
        self.failures.clear();
        self.backoff_until = None;
        self.blocked_logged = false;
        self.reason = None;
    }

    fn alive(&self) -> bool {
        self.leader.is_some() || self.group.is_some()
    }

    /// The pid or group signals go to.
    fn target(&self) -> Option<Pid> {
        if self.plugin.kill_group {
            self.group.map(|g| Pid::from_raw(-g.as_raw()))
        } else {
            self.leader
        }
    }
}

/// What a reload did, for its log line.
#[derive(Default)]
struct Counts {
    restarted: usize,
    started: usize,
    stopped: usize,
    unchanged: usize,
}

struct Shutdown {
    deadline: Instant,
    deadline_hit: bool,
    /// The code to exit with unless forced.
    code: u8,
    /// The second signal, when one came.
    forced: Option<i32>,
}

struct Supervisor<'h> {
    host: &'h Host<'h>,
    store: SharedStore,
    config: PluginsFile,
    units: Vec<Unit>,
    shutdown: Option<Shutdown>,
    /// When a debounced reload is due.
    reload_at: Option<Instant>,
    key: fingerprint::Key,
    tx: Sender<Wake>,
    quit: Arc<OwnedFd>,
    relays: Vec<JoinHandle<()>>,
    keeper: Option<Keeper>,
    keeper_restarts: u32,
    color: bool,
    width: usize,
    /// The one proxy of every plugin with `secret_proxy_refs`, started at
    /// the first such start; last, so it stops after every admission.
    proxy: Option<crate::broker::proxy::Server>,
}

/// Runs the supervisor until every plugin is terminal or a shutdown
/// completes; returns the exit code.
pub(crate) fn run(config: PluginsFile, host: &Host<'_>) -> Result<u8> {
    // First make sure no other supervisor runs this file, then unlock (a
    // passphrase prompt may still be interrupted the ordinary way), then
    // take over the signals.
    let (tx, rx) = std::sync::mpsc::channel();
    let socket = status::socket_path(host.paths, &config.path);
    let status_tx = tx.clone();
    let _server = match status::serve(&socket, move || {
        let (reply, answer) = std::sync::mpsc::channel();
        status_tx.send(Wake::Status(reply)).ok()?;
        answer.recv_timeout(Duration::from_secs(2)).ok()
    }) {
        Ok(server) => Some(server),
        Err(e @ Error::Usage { .. }) => return Err(e),
        Err(e) => {
            log(&format!(
                "warning: no status socket ({e}); `secret plugins status` will not answer"
            ));
            None
        }
    };
    let store = SharedStore::open_for(&config, host)?;
    let signal_tx = tx.clone();
    Catcher::new(&[sig::SIGTERM, sig::SIGINT, sig::SIGHUP, sig::SIGCHLD])
        .and_then(|signals| signals.relay(move |s| signal_tx.send(Wake::Signal(s)).is_ok()))
        .map_err(|e| Error::io("installing signal handlers", e))?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| Error::io("becoming a subreaper", e.into()))?;
    let keeper = Keeper::start()?;
    let (quit_r, quit_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("creating a pipe", e.into()))?;
    let color = use_color(&config);
    let width = prefix_width(&config);
    let units = config
        .plugins
        .iter()
        .enumerate()
        .map(|(i, p)| Unit::new(p.clone(), i))
        .collect();
    let mut sup = Supervisor {
        host,
        store,
        config,
        units,
        shutdown: None,
        reload_at: None,
        key: fingerprint::Key::generate()?,
        tx,
        quit: Arc::new(quit_r),
        relays: Vec::new(),
        keeper: Some(keeper),
        keeper_restarts: 0,
        color,
        width,
        proxy: None,
    };
    let code = sup.event_loop(&rx);
    drop(quit_w);
    for relay in sup.relays.drain(..) {
        let _ = relay.join();
    }
    if let Some(keeper) = sup.keeper.take() {
        keeper.finish();
    }
    Ok(code)
}

/// Whether prefixes are coloured: `auto` = stdout is a terminal and
/// NO_COLOR is unset or empty.
fn use_color(config: &PluginsFile) -> bool {
    match config.supervisor.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            use std::io::IsTerminal;
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// The widest enabled prefix, so the `|` line up.
fn prefix_width(config: &PluginsFile) -> usize {
    config
        .plugins
        .iter()
        .filter(|p| p.enabled)
        .map(|p| p.prefix.chars().count())
        .max()
        .unwrap_or(0)
}

/// Writes one line of the supervisor's own to stderr.
fn log(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "secret: {message}");
    let _ = err.flush();
}

/// Whether the process group `pgid` has no member left.
fn group_empty(pgid: Pid) -> bool {
    killpg(pgid, None) == Err(Errno::ESRCH)
}

impl Supervisor<'_> {
    fn event_loop(&mut self, rx: &Receiver<Wake>) -> u8 {
        self.step(Instant::now());
        loop {
            if let Some(code) = self.finished() {
                return code;
            }
            let now = Instant::now();
            let event = match self.next_deadline(now) {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(now)) {
                    Ok(e) => Some(e),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return 1,
                },
                None => match rx.recv() {
                    Ok(e) => Some(e),
                    Err(_) => return 1,
                },
            };
            if let Some(event) = event {
                self.handle(event);
            }
            self.step(Instant::now());
        }
    }

    fn handle(&mut self, event: Wake) {
        match event {
            Wake::Signal(sig::SIGCHLD) => self.reap(),
            Wake::Signal(s @ (sig::SIGTERM | sig::SIGINT)) => {
                let name = Signal::try_from(s).map_or("signal", Signal::as_str);
                if self.shutdown.is_none() {
                    log(&format!(
                        "{name} received: stopping every plugin (send it again to kill them at once)"
                    ));
                    self.begin_shutdown(0);
                } else if self.shutdown.as_ref().is_some_and(|s| s.forced.is_none()) {
                    log(&format!(
                        "{name} received again: killing every plugin's process group"
                    ));
                    if let Some(sd) = self.shutdown.as_mut() {
                        sd.forced = Some(s);
                    }
                    self.kill_all();
                }
            }
            Wake::Signal(sig::SIGHUP) => {
                if self.shutdown.is_some() {
                    log("SIGHUP received while shutting down: not reloading");
                } else if self.reload_at.is_none() {
                    let debounce = self.config.supervisor.reload_debounce;
                    log(&format!(
                        "SIGHUP received: reloading {} in {}",
                        self.config.path.display(),
                        crate::duration::format(debounce)
                    ));
                    self.reload_at = Some(after(Instant::now(), debounce));
                }
            }
            Wake::Signal(_) => {}
            Wake::Ready(i, generation) => self.mark_ready(i, generation),
            Wake::Status(reply) => {
                let _ = reply.send(self.snapshot());
            }
        }
    }

    /// Reaps every child that ended.
    fn reap(&mut self) {
        loop {
            let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Code(code)),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, Exit::Signal(signal)),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            self.reaped(pid, exit);
        }
    }

    fn reaped(&mut self, pid: Pid, exit: Exit) {
        if self.keeper.as_ref().is_some_and(|k| k.pid() == pid) {
            self.keeper = None;
            self.replace_keeper();
            return;
        }
        let now = Instant::now();
        for i in 0..self.units.len() {
            let unit = &mut self.units[i];
            if unit.leader == Some(pid) {
                unit.leader = None;
                unit.exit = Some(exit);
                if !unit.plugin.kill_group {
                    self.group_gone(i);
                }
                return;
            }
            if let Some(probe) = unit.probe.as_mut()
                && probe.exec_pid == Some(pid)
            {
                probe.exec_pid = None;
                let generation = unit.generation;
                if matches!(exit, Exit::Code(0)) {
                    self.mark_ready(i, generation);
                } else {
                    let interval = unit
                        .plugin
                        .ready
                        .as_ref()
                        .map_or(GROUP_RECHECK, |r| r.interval);
                    probe.exec_next = Some(after(now, interval));
                }
                return;
            }
        }
        // An orphan we adopted as subreaper, or a probe of an old run.
    }

    fn replace_keeper(&mut self) {
        if self.keeper_restarts >= KEEPER_RESTARTS {
            log(
                "warning: the plugin keeper died again; if the supervisor is killed with SIGKILL, plugin processes may survive it",
            );
            return;
        }
        self.keeper_restarts += 1;
        match Keeper::start() {
            Ok(mut keeper) => {
                for unit in &self.units {
                    if let Some(g) = unit.group {
                        keeper.add(g);
                    }
                }
                log("warning: the plugin keeper died; started a new one");
                self.keeper = Some(keeper);
            }
            Err(e) => log(&format!(
                "warning: the plugin keeper died and could not be replaced: {e}"
            )),
        }
    }

    /// Everything time- or state-driven.
    fn step(&mut self, now: Instant) {
        self.check_groups(now);
        self.timers(now);
        if self.shutdown.is_some() {
            self.progress_shutdown(now);
        } else {
            self.start_ready_units(now);
        }
        // Starting may have failed at once (spawn errors): settle again.
        self.check_groups(now);
    }

    fn timers(&mut self, now: Instant) {
        for i in 0..self.units.len() {
            let unit = &mut self.units[i];
            if let Some(stop) = unit.stop.as_mut()
                && !stop.killed
                && stop.kill_at <= now
            {
                stop.killed = true;
                if let Some(target) = unit.target() {
                    log(&format!(
                        "warning: {} still running {} after {}; sending SIGKILL to its {}",
                        unit.plugin.id,
                        crate::duration::format(unit.plugin.stop_timeout),
                        unit.plugin.stop_signal.as_str(),
                        if unit.plugin.kill_group {
                            "process group"
                        } else {
                            "main process"
                        }
                    ));
                    let _ = kill(target, Signal::SIGKILL);
                }
            }
            if unit.state == State::Backoff
                && self.shutdown.is_none()
                && unit.backoff_until.is_some_and(|t| t <= now)
            {
                unit.backoff_until = None;
                self.start(i, now);
                continue;
            }
            if self.shutdown.is_none()
                && unit.stop.is_none()
                && unit.leader.is_some()
                && unit.renew_at.is_some_and(|t| t <= now)
            {
                self.renew(i, now);
            }
            self.probe_timers(i, now);
        }
        if self.shutdown.is_none() && self.reload_at.is_some_and(|t| t <= now) {
            self.reload_at = None;
            self.reload(now);
        }
        if let Some(sd) = self.shutdown.as_mut()
            && !sd.deadline_hit
            && sd.deadline <= now
        {
            sd.deadline_hit = true;
            log(&format!(
                "warning: shutdown_deadline ({}) reached; killing every remaining process group",
                crate::duration::format(self.config.supervisor.shutdown_deadline)
            ));
            self.kill_all();
        }
    }

    /// The nearest moment something is due, if any.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for unit in &self.units {
            if let Some(stop) = &unit.stop
                && !stop.killed
            {
                consider(stop.kill_at);
            }
            if unit.leader.is_none() && unit.group.is_some() {
                consider(after(now, GROUP_RECHECK));
            }
            if unit.state == State::Backoff
                && self.shutdown.is_none()
                && let Some(t) = unit.backoff_until
            {
                consider(t);
            }
            if unit.stop.is_none()
                && unit.leader.is_some()
                && self.shutdown.is_none()
                && let Some(t) = unit.renew_at
            {
                consider(t);
            }
            if unit.state == State::Starting
                && let Some(p) = &unit.probe
            {
                consider(p.deadline);
                if let Some(t) = p.exec_next {
                    consider(t);
                }
            }
        }
        if let Some(sd) = &self.shutdown
            && !sd.deadline_hit
        {
            consider(sd.deadline);
        }
        if let Some(t) = self.reload_at
            && self.shutdown.is_none()
        {
            consider(t);
        }
        next
    }
}

fn restart_name(r: Restart) -> &'static str {
    match r {
        Restart::No => "no",
        Restart::OnFailure => "on-failure",
        Restart::Always => "always",
    }
}

fn probe_name(p: &Probe) -> String {
    match p {
        Probe::LogLine(re) => format!("log_line \"{re}\""),
        Probe::NotifyFd(fd) => format!("notify_fd {fd}"),
        Probe::Exec(argv) => format!("exec {}", argv.join(" ")),
        Probe::Tcp(addr) => format!("tcp {addr}"),
    }
}

/// `now + d` without overflow: durations are bounded when read (a year at
/// most), and a deadline past what the clock holds becomes the latest one
/// it does.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(super::config::MAX_DURATION))
        .unwrap_or(now)
}

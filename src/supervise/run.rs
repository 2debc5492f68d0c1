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
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use signal_hook::consts::signal as sig;

use super::config::{Color, Condition, Config, OnFailed, OnSecretChange, Plugin, Probe, Restart};
use super::fingerprint;
use super::keeper::Keeper;
use super::launch::{self, Wiring};
use super::output::{LineHook, Streams, Style};
use super::{Host, SharedStore, status};
use crate::audit::Event as AuditEvent;
use crate::child::lease;
use crate::error::{Error, Result};

/// While a group whose leader is gone is being stopped, how often its
/// emptiness is re-checked (a member whose parent is outside the group
/// dies without a SIGCHLD to us).
const GROUP_RECHECK: Duration = Duration::from_millis(50);

/// How many times a dead keeper is replaced.
const KEEPER_RESTARTS: u32 = 3;

/// What wakes the loop.
enum Event {
    Signal(i32),
    /// Plugin `index`'s run `generation` passed its readiness probe.
    Ready(usize, u64),
    /// The status socket wants a snapshot (JSON).
    Status(Sender<String>),
}

/// A plugin's state, as `status` would show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Disabled,
    Waiting,
    Starting,
    Running,
    Ready,
    Backoff,
    Stopping,
    Exited,
    Failed,
}

impl State {
    fn terminal(self) -> bool {
        matches!(self, Self::Disabled | Self::Exited | Self::Failed)
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Waiting => "waiting",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Ready => "ready",
            Self::Backoff => "backoff",
            Self::Stopping => "stopping",
            Self::Exited => "exited",
            Self::Failed => "failed",
        }
    }
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
    config: Config,
    units: Vec<Unit>,
    shutdown: Option<Shutdown>,
    /// When a debounced reload is due.
    reload_at: Option<Instant>,
    key: fingerprint::Key,
    tx: Sender<Event>,
    quit: Arc<OwnedFd>,
    relays: Vec<JoinHandle<()>>,
    keeper: Option<Keeper>,
    keeper_restarts: u32,
    color: bool,
    width: usize,
}

/// Runs the supervisor until every plugin is terminal or a shutdown
/// completes; returns the exit code.
pub fn run(config: Config, host: &Host<'_>) -> Result<u8> {
    // First make sure no other supervisor runs this file, then unlock (a
    // passphrase prompt may still be interrupted the ordinary way), then
    // take over the signals.
    let (tx, rx) = std::sync::mpsc::channel();
    let socket = status::socket_path(host.paths, &config.path);
    let status_tx = tx.clone();
    let _server = match status::serve(&socket, move || {
        let (reply, answer) = std::sync::mpsc::channel();
        status_tx.send(Event::Status(reply)).ok()?;
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
    let mut signals =
        signal_hook::iterator::Signals::new([sig::SIGTERM, sig::SIGINT, sig::SIGHUP, sig::SIGCHLD])
            .map_err(|e| Error::io("installing signal handlers", e))?;
    let signal_tx = tx.clone();
    std::thread::spawn(move || {
        for s in signals.forever() {
            if signal_tx.send(Event::Signal(s)).is_err() {
                break;
            }
        }
    });
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
fn use_color(config: &Config) -> bool {
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
fn prefix_width(config: &Config) -> usize {
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
    fn event_loop(&mut self, rx: &Receiver<Event>) -> u8 {
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

    fn handle(&mut self, event: Event) {
        match event {
            Event::Signal(sig::SIGCHLD) => self.reap(),
            Event::Signal(s @ (sig::SIGTERM | sig::SIGINT)) => {
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
            Event::Signal(sig::SIGHUP) => {
                if self.shutdown.is_some() {
                    log("SIGHUP received while shutting down: not reloading");
                } else if self.reload_at.is_none() {
                    let debounce = self.config.supervisor.reload_debounce;
                    log(&format!(
                        "SIGHUP received: reloading {} in {}",
                        self.config.path.display(),
                        humantime::format_duration(debounce)
                    ));
                    self.reload_at = Some(after(Instant::now(), debounce));
                }
            }
            Event::Signal(_) => {}
            Event::Ready(i, generation) => self.mark_ready(i, generation),
            Event::Status(reply) => {
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

    /// The group of unit `i` is empty (or not ours to watch): the run is
    /// over once the leader is reaped.
    fn group_gone(&mut self, i: usize) {
        if let Some(g) = self.units[i].group.take()
            && let Some(keeper) = self.keeper.as_mut()
        {
            keeper.remove(g);
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

    /// Finds groups whose leader is gone: empty ones end their run; others
    /// are stopped (if nobody is stopping them yet).
    fn check_groups(&mut self, now: Instant) {
        for i in 0..self.units.len() {
            let unit = &self.units[i];
            if unit.leader.is_some() {
                continue;
            }
            match unit.group {
                Some(g) if group_empty(g) => {
                    self.group_gone(i);
                    self.run_over(i, now);
                }
                Some(_) if unit.stop.is_none() => {
                    log(&format!(
                        "{} exited ({}); stopping what is left of its process group",
                        unit.plugin.id,
                        unit.exit.as_ref().map_or_else(String::new, Exit::describe)
                    ));
                    self.begin_stop(i, Then::Classify, now);
                }
                Some(_) => {}
                None if unit.exit.is_some() => self.run_over(i, now),
                None => {}
            }
        }
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
                        humantime::format_duration(unit.plugin.stop_timeout),
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
                humantime::format_duration(self.config.supervisor.shutdown_deadline)
            ));
            self.kill_all();
        }
    }

    fn probe_timers(&mut self, i: usize, now: Instant) {
        let unit = &mut self.units[i];
        let Some(probe) = unit.probe.as_mut() else {
            return;
        };
        if unit.state != State::Starting {
            return;
        }
        if probe.deadline <= now {
            let what = unit
                .plugin
                .ready
                .as_ref()
                .map_or(String::new(), |r| probe_name(&r.probe));
            let reason = format!(
                "not ready within {} ({what})",
                humantime::format_duration(
                    unit.plugin
                        .ready
                        .as_ref()
                        .map_or(Duration::ZERO, |r| r.timeout)
                )
            );
            self.end_probe(i);
            self.begin_stop(i, Then::Fail(reason), now);
            return;
        }
        if probe.exec_pid.is_none() && probe.exec_next.is_some_and(|t| t <= now) {
            probe.exec_next = None;
            let pid = self.spawn_exec_probe(i);
            let interval = self.units[i]
                .plugin
                .ready
                .as_ref()
                .map_or(GROUP_RECHECK, |r| r.interval);
            if let Some(probe) = self.units[i].probe.as_mut() {
                match pid {
                    Some(pid) => probe.exec_pid = Some(pid),
                    None => probe.exec_next = Some(after(now, interval)),
                }
            }
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

    fn satisfied(&self, dep: &str, condition: Condition) -> bool {
        let Some(d) = self.unit(dep) else {
            return true;
        };
        match condition {
            Condition::Started => d.ever_started,
            Condition::Ready => d.ever_ready,
            Condition::Completed => d.state == State::Exited && d.completed_ok,
        }
    }

    /// The first dependency that can no longer be met, described.
    fn blocker(&self, unit: &Unit) -> Option<String> {
        unit.plugin.depends_on.iter().find_map(|(dep, condition)| {
            let d = self.unit(dep)?;
            if !d.state.terminal() || self.satisfied(dep, *condition) {
                return None;
            }
            Some(match (&d.state, &d.last_exit) {
                (State::Failed, _) => format!("{dep} (failed)"),
                (_, Some(exit)) => {
                    format!("{dep} ({}; needed: {})", exit.describe(), condition.name())
                }
                _ => format!("{dep} ({}; needed: {})", d.state.name(), condition.name()),
            })
        })
    }

    /// The (not removed) unit named `id`.
    fn unit(&self, id: &str) -> Option<&Unit> {
        self.units.iter().find(|u| !u.removed && u.plugin.id == id)
    }

    /// Starts every waiting plugin whose dependencies are met, until none
    /// is left to start (a dependency started in this pass may let its
    /// dependents start in the next).
    fn start_ready_units(&mut self, now: Instant) {
        loop {
            let mut started = false;
            for i in 0..self.units.len() {
                if self.units[i].state != State::Waiting || self.units[i].removed {
                    continue;
                }
                let unit = &self.units[i];
                if let Some(blocker) = self.blocker(unit) {
                    if !unit.blocked_logged {
                        log(&format!(
                            "{} is blocked by {blocker}; not starting it",
                            unit.plugin.id
                        ));
                        let reason = format!("blocked by {blocker}");
                        let unit = &mut self.units[i];
                        unit.blocked_logged = true;
                        unit.reason = Some(reason);
                    }
                    continue;
                }
                let met = unit
                    .plugin
                    .depends_on
                    .iter()
                    .all(|(dep, c)| self.satisfied(dep, *c));
                if met {
                    self.start(i, now);
                    started = true;
                }
            }
            if !started {
                return;
            }
        }
    }

    /// Resolves the plugin's secrets and spawns it.
    fn start(&mut self, i: usize, now: Instant) {
        let plugin = self.units[i].plugin.clone();
        self.units[i].generation += 1;
        self.units[i].reason = None;
        let generation = self.units[i].generation;
        self.units[i].settings_print = Some(fingerprint::settings(&plugin));
        self.units[i].secret_print = None;
        let secrets = match launch::secrets(&plugin, self.host, &self.store) {
            Ok(s) => s,
            Err(e) => return self.fail(i, e.to_string()),
        };
        self.units[i].lease = secrets.shortest_lease().map(Duration::from_secs);
        self.units[i].renew_at = secrets
            .shortest_lease()
            .map(|ttl| after(now, lease::interval(ttl)));
        let launch::Secrets {
            values: secrets,
            leases,
        } = secrets;
        self.units[i].leases = leases;
        self.units[i].secret_print = Some(fingerprint::secrets(&self.key, &secrets));
        let env = launch::environment(&plugin, std::env::vars_os(), &secrets);
        let labelled: Vec<(String, &crate::value::SecretValue)> = if plugin.mask_output {
            plugin
                .secret_env_refs
                .iter()
                .zip(&secrets)
                .map(|(r, (_, v))| (r.text.clone(), v))
                .collect()
        } else {
            Vec::new()
        };
        let id = plugin.id.clone();
        let redactor = match crate::child::relay::redactor(labelled, |w| {
            log(&format!("warning: {id}: {w}"));
        }) {
            Ok(r) => r,
            Err(e) => return self.fail(i, format!("cannot set up masking: {e}")),
        };
        drop(secrets);
        let streams = match Streams::new(plugin.output) {
            Ok(s) => s,
            Err(e) => return self.fail(i, e.to_string()),
        };
        let mut wiring = Wiring {
            stdio: streams.stdio(),
            extra: Vec::new(),
        };
        let mut notify: Option<(OwnedFd, OwnedFd)> = None;
        if let Some(Probe::NotifyFd(n)) = plugin.ready.as_ref().map(|r| &r.probe) {
            match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                Ok((r, w)) => {
                    wiring.extra.push((std::os::fd::AsRawFd::as_raw_fd(&w), *n));
                    notify = Some((r, w));
                }
                Err(e) => return self.fail(i, format!("cannot create the notify_fd pipe: {e}")),
            }
        }
        let spawned = launch::spawn(&plugin, &env, &wiring);
        drop(env);
        let on_line = self.log_line_hook(i, generation);
        let unit = &mut self.units[i];
        unit.started_at = now;
        match spawned {
            Err(e) => {
                drop(streams);
                unit.exit = Some(Exit::SpawnError(e.to_string()));
                unit.state = State::Running;
                // check_groups sees no leader and no group: the run is over.
            }
            Ok(pid) => {
                unit.leader = Some(pid);
                unit.group = Some(pid);
                unit.exit = None;
                unit.ever_started = true;
                if let Some(keeper) = self.keeper.as_mut() {
                    keeper.add(pid);
                }
                let cancel = Arc::new(AtomicBool::new(false));
                let style = match plugin.output {
                    super::config::Output::Prefix => Style::new(
                        &plugin.prefix,
                        self.width,
                        unit.style_index,
                        self.color,
                        self.config.supervisor.timestamps,
                    ),
                    _ => Style::raw(),
                };
                if let Some(relay) =
                    streams.start(style, &redactor, Arc::clone(&self.quit), on_line)
                {
                    self.relays.retain(|r| !r.is_finished());
                    self.relays.push(relay);
                }
                let unit = &mut self.units[i];
                match &plugin.ready {
                    Some(ready) => {
                        unit.state = State::Starting;
                        unit.probe = Some(ProbeRun {
                            cancel: Arc::clone(&cancel),
                            deadline: after(now, ready.timeout),
                            exec_pid: None,
                            exec_next: matches!(ready.probe, Probe::Exec(_)).then_some(now),
                        });
                        match &ready.probe {
                            Probe::NotifyFd(_) => {
                                if let Some((r, w)) = notify.take() {
                                    drop(w);
                                    self.watch_notify(i, generation, r);
                                }
                            }
                            Probe::Tcp(addr) => {
                                self.watch_tcp(i, generation, addr.clone(), ready.interval, cancel)
                            }
                            Probe::LogLine(_) | Probe::Exec(_) => {}
                        }
                    }
                    None => {
                        unit.state = State::Running;
                        unit.ever_ready = true;
                    }
                }
                log(&format!("{} started (pid {pid})", plugin.id));
                self.audit(&plugin.id, "plugin-start", format!("pid {pid}"));
            }
        }
    }

    fn log_line_hook(&self, i: usize, generation: u64) -> Option<LineHook> {
        let Some(Probe::LogLine(pattern)) = self.units[i].plugin.ready.as_ref().map(|r| &r.probe)
        else {
            return None;
        };
        let regex = regex::bytes::Regex::new(pattern).ok()?;
        let tx = self.tx.clone();
        let mut done = false;
        Some(Box::new(move |line: &[u8]| {
            if !done && regex.is_match(line) {
                done = true;
                let _ = tx.send(Event::Ready(i, generation));
            }
        }))
    }

    fn watch_notify(&self, i: usize, generation: u64, read: OwnedFd) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                match nix::unistd::read(&read, &mut buf) {
                    Ok(0) => return,
                    Ok(n) if buf[..n].contains(&b'\n') => {
                        let _ = tx.send(Event::Ready(i, generation));
                        return;
                    }
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => return,
                }
            }
        });
    }

    fn watch_tcp(
        &self,
        i: usize,
        generation: u64,
        addr: String,
        interval: Duration,
        cancel: Arc<AtomicBool>,
    ) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            use std::net::ToSocketAddrs;
            while !cancel.load(Ordering::SeqCst) {
                let addrs: Vec<_> = addr
                    .to_socket_addrs()
                    .map(Iterator::collect)
                    .unwrap_or_default();
                if addrs
                    .iter()
                    .any(|a| std::net::TcpStream::connect_timeout(a, interval).is_ok())
                {
                    let _ = tx.send(Event::Ready(i, generation));
                    return;
                }
                std::thread::sleep(interval);
            }
        });
    }

    /// Starts the `exec` probe command (the plugin's environment without
    /// its secrets, output discarded).
    fn spawn_exec_probe(&self, i: usize) -> Option<Pid> {
        let plugin = &self.units[i].plugin;
        let Some(Probe::Exec(argv)) = plugin.ready.as_ref().map(|r| &r.probe) else {
            return None;
        };
        let mut probe = plugin.clone();
        probe.command = argv.first()?.clone();
        probe.program = if probe.command.contains('/') {
            self.config.dir.join(&probe.command)
        } else {
            probe.command.clone().into()
        };
        probe.args = argv[1..].to_vec();
        let env = launch::environment(&probe, std::env::vars_os(), &[]);
        let streams = Streams::new(super::config::Output::Discard).ok()?;
        let wiring = Wiring {
            stdio: streams.stdio(),
            extra: Vec::new(),
        };
        launch::spawn(&probe, &env, &wiring).ok()
    }

    fn mark_ready(&mut self, i: usize, generation: u64) {
        let unit = &mut self.units[i];
        if unit.generation != generation || unit.state != State::Starting {
            return;
        }
        unit.state = State::Ready;
        unit.ever_ready = true;
        self.end_probe(i);
        log(&format!("{} is ready", self.units[i].plugin.id));
    }

    fn end_probe(&mut self, i: usize) {
        if let Some(probe) = self.units[i].probe.take() {
            probe.cancel.store(true, Ordering::SeqCst);
            if let Some(pid) = probe.exec_pid {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }

    /// Sends the stop signal (and SIGCONT) to unit `i`'s group.
    fn begin_stop(&mut self, i: usize, then: Then, now: Instant) {
        self.end_probe(i);
        let unit = &mut self.units[i];
        if let Some(stop) = unit.stop.as_mut() {
            // Already stopping: only what follows changes.
            if then.rank() > stop.then.rank() {
                stop.then = then;
            }
            return;
        }
        let Some(target) = unit.target() else {
            return;
        };
        let signal = unit.plugin.stop_signal;
        let immediate = signal == Signal::SIGKILL || unit.plugin.stop_timeout.is_zero();
        unit.stop = Some(Stop {
            then,
            kill_at: after(now, unit.plugin.stop_timeout),
            killed: immediate,
        });
        unit.state = State::Stopping;
        if immediate {
            let _ = kill(target, Signal::SIGKILL);
        } else {
            let _ = kill(target, signal);
            let _ = kill(target, Signal::SIGCONT);
        }
    }

    /// The run of unit `i` is over: the leader was reaped and the group is
    /// empty (or it never started). Decide what comes next.
    fn run_over(&mut self, i: usize, now: Instant) {
        self.end_probe(i);
        let unit = &mut self.units[i];
        let stop = unit.stop.take();
        let exit = unit.exit.take();
        unit.last_exit.clone_from(&exit);
        let id = unit.plugin.id.clone();
        let described = exit
            .as_ref()
            .map_or_else(|| "ended".to_owned(), Exit::describe);
        match stop.map(|s| s.then) {
            Some(Then::Stopped) => {
                unit.state = State::Exited;
                unit.reason = Some(format!("stopped ({described})"));
                log(&format!("{id} stopped ({described})"));
                self.audit(&id, "plugin-exit", format!("stopped ({described})"));
                return;
            }
            Some(Then::Fail(reason)) => {
                self.audit(&id, "plugin-exit", format!("stopped ({described})"));
                return self.fail(i, reason);
            }
            Some(Then::Restart) => {
                if let Some(p) = unit.pending.take() {
                    unit.plugin = p;
                }
                unit.reset();
                unit.state = State::Waiting;
                log(&format!(
                    "{id} stopped ({described}); starting it with its new settings"
                ));
                self.audit(
                    &id,
                    "plugin-exit",
                    format!("stopped for reload ({described})"),
                );
                return;
            }
            Some(Then::Remove) => {
                unit.removed = true;
                unit.state = State::Exited;
                log(&format!(
                    "{id} stopped ({described}); removed from the configuration"
                ));
                self.audit(
                    &id,
                    "plugin-exit",
                    format!("stopped: removed ({described})"),
                );
                return;
            }
            Some(Then::Disable) => {
                if let Some(p) = unit.pending.take() {
                    unit.plugin = p;
                }
                unit.state = State::Disabled;
                log(&format!("{id} stopped ({described}); disabled"));
                self.audit(
                    &id,
                    "plugin-exit",
                    format!("stopped: disabled ({described})"),
                );
                return;
            }
            Some(Then::Classify) | None => {}
        }
        self.audit(&id, "plugin-exit", described.clone());
        let unit = &mut self.units[i];
        let plugin = &unit.plugin;
        let success = matches!(exit, Some(Exit::Code(c)) if plugin.success_exit_codes.contains(&c));
        if self.shutdown.is_some() {
            unit.state = State::Exited;
            unit.completed_ok = success;
            unit.reason = Some(described.clone());
            log(&format!("{id} exited ({described})"));
            return;
        }
        if now.duration_since(unit.started_at) >= plugin.stable_after {
            unit.consecutive = 0;
        }
        if !success {
            unit.consecutive += 1;
            unit.failures.push_back(now);
            let window = plugin.crash_loop.window;
            while unit
                .failures
                .front()
                .is_some_and(|t| now.duration_since(*t) > window)
            {
                unit.failures.pop_front();
            }
            let max = plugin.crash_loop.max;
            if max > 0 && unit.failures.len() >= max as usize {
                let reason = format!(
                    "{} failures in {} (last: {described}); not restarting",
                    unit.failures.len(),
                    plugin.crash_loop.window_text
                );
                return self.fail(i, reason);
            }
        }
        let restart = match plugin.restart {
            Restart::No => false,
            Restart::OnFailure => !success,
            Restart::Always => true,
        };
        if !restart {
            unit.state = State::Exited;
            unit.completed_ok = success;
            unit.reason = Some(described.clone());
            let why = if success {
                String::new()
            } else {
                format!(
                    "; not restarting (restart = \"{}\")",
                    restart_name(plugin.restart)
                )
            };
            log(&format!("{id} exited ({described}){why}"));
            return;
        }
        let delay = if success {
            plugin.restart_delay
        } else {
            let doublings = unit.consecutive.saturating_sub(1).min(30);
            plugin
                .restart_delay
                .saturating_mul(1 << doublings)
                .min(plugin.restart_delay_max)
        };
        unit.state = State::Backoff;
        unit.backoff_until = Some(after(now, delay));
        unit.reason = Some(described.clone());
        log(&format!(
            "{id} exited ({described}); restarting in {}",
            humantime::format_duration(delay)
        ));
    }

    /// Unit `i` is `failed` (terminal).
    fn fail(&mut self, i: usize, reason: String) {
        let unit = &mut self.units[i];
        unit.state = State::Failed;
        unit.backoff_until = None;
        log(&format!("plugin {} failed: {reason}", unit.plugin.id));
        unit.reason = Some(reason);
        if self.config.supervisor.on_plugin_failed == OnFailed::Shutdown && self.shutdown.is_none()
        {
            log("on_plugin_failed = \"shutdown\": stopping every plugin");
            self.begin_shutdown(1);
        }
    }

    fn begin_shutdown(&mut self, code: u8) {
        self.shutdown = Some(Shutdown {
            deadline: after(Instant::now(), self.config.supervisor.shutdown_deadline),
            deadline_hit: false,
            code,
            forced: None,
        });
        for unit in &mut self.units {
            if matches!(unit.state, State::Waiting | State::Backoff) && !unit.alive() {
                unit.state = State::Exited;
                unit.backoff_until = None;
                unit.reason = Some("not started: the supervisor is shutting down".into());
            }
        }
    }

    /// Stops every live plugin none of whose live dependents remain.
    fn progress_shutdown(&mut self, now: Instant) {
        for i in 0..self.units.len() {
            let unit = &self.units[i];
            if !unit.alive() {
                continue;
            }
            if unit
                .stop
                .as_ref()
                .is_some_and(|s| !matches!(s.then, Then::Classify | Then::Restart))
            {
                continue;
            }
            let id = &unit.plugin.id;
            let dependents_alive = self.units.iter().any(|u| {
                !u.removed && u.alive() && u.plugin.depends_on.iter().any(|(d, _)| d == id)
            });
            if !dependents_alive {
                self.begin_stop(i, Then::Stopped, now);
            }
        }
    }

    /// SIGKILL to every live group at once.
    fn kill_all(&mut self) {
        let now = Instant::now();
        for unit in &mut self.units {
            if !unit.alive() {
                continue;
            }
            if let Some(target) = unit.target() {
                let _ = kill(target, Signal::SIGKILL);
            }
            match unit.stop.as_mut() {
                Some(stop) => {
                    stop.killed = true;
                    if matches!(stop.then, Then::Classify | Then::Restart) {
                        stop.then = Then::Stopped;
                    }
                }
                None => {
                    unit.state = State::Stopping;
                    unit.stop = Some(Stop {
                        then: Then::Stopped,
                        kill_at: now,
                        killed: true,
                    });
                }
            }
        }
    }

    /// SIGHUP, debounced: re-reads plugins.toml and applies it. An
    /// invalid file changes nothing. Each enabled plugin's references are
    /// resolved again; a plugin restarts only when its spawn fingerprint
    /// (settings, or secret values unless `on_secret_change = "ignore"`)
    /// changed. A reference that no longer resolves leaves a running
    /// plugin as it is.
    fn reload(&mut self, now: Instant) {
        let host = self.host;
        let new = match Config::load(&self.config.path, &|s| host.is_remote(s)) {
            Ok(c) => c,
            Err(invalid) => {
                for line in invalid.lines() {
                    log(&format!("reload: {line}"));
                }
                log(
                    "reload: the file is invalid; the running configuration stays, no plugin was touched",
                );
                return;
            }
        };
        if new
            .plugins
            .iter()
            .any(|p| p.enabled && launch::needs_store(p))
            && let Err(e) = self.store.open(host)
        {
            log(&format!(
                "reload: cannot open the store: {e}; the running configuration stays"
            ));
            return;
        }
        let mut counts = Counts::default();
        for p in &new.plugins {
            match self
                .units
                .iter()
                .position(|u| !u.removed && u.plugin.id == p.id)
            {
                Some(i) => self.reload_unit(i, p.clone(), now, &mut counts),
                None => {
                    if p.enabled {
                        counts.started += 1;
                    }
                    let index = self.units.len();
                    self.units.push(Unit::new(p.clone(), index));
                }
            }
        }
        for i in 0..self.units.len() {
            let unit = &mut self.units[i];
            if unit.removed || new.plugins.iter().any(|p| p.id == unit.plugin.id) {
                continue;
            }
            counts.stopped += 1;
            if unit.alive() {
                self.begin_stop(i, Then::Remove, now);
            } else {
                unit.removed = true;
                unit.state = State::Exited;
                unit.backoff_until = None;
            }
        }
        self.width = prefix_width(&new);
        self.color = use_color(&new);
        self.config = new;
        log(&format!(
            "reload: {} restarted, {} started, {} stopped, {} unchanged",
            counts.restarted, counts.started, counts.stopped, counts.unchanged
        ));
    }

    /// Renews unit `i`'s lease: resolves its secrets again through the
    /// grants as they are now. A withdrawn grant stops the plugin and marks
    /// it failed; a rotated value restarts it (`on_secret_change =
    /// "restart"`); otherwise the lease runs on.
    fn renew(&mut self, i: usize, now: Instant) {
        let plugin = self.units[i].plugin.clone();
        let id = plugin.id.clone();
        let holder = lease::Holder {
            paths: self.host.paths.clone(),
            consumer: id.clone(),
            purpose: None,
        };
        if let Err(e) = holder.renew(&self.units[i].leases) {
            self.units[i].renew_at = None;
            log(&format!("{id}: lease not renewed: {e}; stopping it"));
            self.begin_stop(i, Then::Fail(format!("lease not renewed: {e}")), now);
            return;
        }
        let unit = &mut self.units[i];
        unit.renew_at = unit
            .lease
            .map(|l| after(now, (l / 2).max(lease::MIN_INTERVAL)));
        if plugin.on_secret_change != OnSecretChange::Restart {
            return;
        }
        // The rotation watch (not the lease's business): a value that
        // changed restarts the plugin with the new one.
        match launch::secrets(&plugin, self.host, &self.store) {
            Ok(secrets)
                if Some(fingerprint::secrets(&self.key, &secrets.values))
                    != self.units[i].secret_print =>
            {
                log(&format!(
                    "{id}: a secret was rotated; restarting it with the new value"
                ));
                self.units[i].pending = Some(plugin);
                self.begin_stop(i, Then::Restart, now);
            }
            Ok(_) => {}
            Err(e) => log(&format!(
                "{id}: {e}; it keeps running with the values it was started with"
            )),
        }
    }

    /// Applies `p`, the reloaded settings of unit `i`.
    fn reload_unit(&mut self, i: usize, p: Plugin, now: Instant, counts: &mut Counts) {
        let unit = &mut self.units[i];
        if !p.enabled {
            if unit.state == State::Disabled {
                unit.plugin = p;
                counts.unchanged += 1;
            } else if unit.alive() {
                counts.stopped += 1;
                unit.pending = Some(p);
                self.begin_stop(i, Then::Disable, now);
            } else {
                counts.stopped += 1;
                unit.plugin = p;
                unit.state = State::Disabled;
                unit.reset();
            }
            return;
        }
        if unit.state == State::Disabled {
            counts.started += 1;
            unit.plugin = p;
            unit.reset();
            unit.state = State::Waiting;
            return;
        }
        let settings_changed = unit.settings_print != Some(fingerprint::settings(&p));
        let alive = unit.alive();
        let id = p.id.clone();
        let secrets_changed = match launch::secrets(&p, self.host, &self.store) {
            Ok(secrets) => {
                Some(fingerprint::secrets(&self.key, &secrets.values)) != self.units[i].secret_print
            }
            Err(reason) => {
                if alive {
                    log(&format!(
                        "reload: {id}: {reason}; it keeps running with the values it was started with"
                    ));
                }
                false
            }
        };
        let unit = &mut self.units[i];
        let restart =
            settings_changed || (secrets_changed && p.on_secret_change == OnSecretChange::Restart);
        if alive {
            if restart {
                counts.restarted += 1;
                unit.pending = Some(p);
                self.begin_stop(i, Then::Restart, now);
            } else {
                if secrets_changed {
                    log(&format!(
                        "reload: {id}: a secret changed; on_secret_change = \"ignore\" leaves it running"
                    ));
                }
                counts.unchanged += 1;
                unit.plugin = p;
            }
            return;
        }
        let revive = matches!(unit.state, State::Failed | State::Exited)
            && (settings_changed || secrets_changed);
        unit.plugin = p;
        if revive {
            counts.restarted += 1;
            unit.reset();
            unit.state = State::Waiting;
        } else {
            counts.unchanged += 1;
        }
    }

    /// Every plugin's state, as JSON, for `secret plugins status`.
    fn snapshot(&self) -> String {
        let now = Instant::now();
        let plugins = self
            .units
            .iter()
            .filter(|u| !u.removed)
            .map(|u| status::PluginStatus {
                id: u.plugin.id.clone(),
                state: u.state.name().to_owned(),
                pid: u.leader.map(Pid::as_raw),
                uptime_secs: u.leader.map(|_| now.duration_since(u.started_at).as_secs()),
                restarts: u.generation.saturating_sub(1),
                reason: u.reason.clone(),
            })
            .collect();
        let snapshot = status::Snapshot {
            supervisor_pid: std::process::id(),
            file: self.config.path.display().to_string(),
            shutting_down: self.shutdown.is_some(),
            plugins,
        };
        serde_json::to_string(&snapshot).unwrap_or_default()
    }

    /// The exit code once nothing is left to do.
    fn finished(&self) -> Option<u8> {
        if self.units.iter().any(Unit::alive) {
            return None;
        }
        if let Some(sd) = &self.shutdown {
            let done = self
                .units
                .iter()
                .all(|u| u.removed || u.state.terminal() || u.state == State::Waiting);
            return done.then(|| {
                sd.forced
                    .map_or(sd.code, |s| u8::try_from(128 + s).unwrap_or(255))
            });
        }
        let settled = self.units.iter().all(|u| {
            u.removed
                || u.state.terminal()
                || (u.state == State::Waiting && self.blocker(u).is_some())
        });
        if !settled {
            return None;
        }
        let failed = self
            .units
            .iter()
            .any(|u| !u.removed && matches!(u.state, State::Failed | State::Waiting));
        Some(u8::from(failed))
    }

    fn audit(&self, id: &str, action: &'static str, outcome: String) {
        let event = AuditEvent {
            action,
            consumer: id.to_owned(),
            outcome,
            ..AuditEvent::default()
        };
        if let Err(e) = crate::audit::append(self.host.paths, &[event]) {
            log(&format!("warning: cannot write the audit trail: {e}"));
        }
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

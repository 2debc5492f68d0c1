//! Readiness probes: `log_line`, `notify_fd`, `tcp` and `exec`, their
//! timers, and the move from `starting` to `ready`.

use super::*;

impl Supervisor<'_> {
    pub(super) fn probe_timers(&mut self, i: usize, now: Instant) {
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
                crate::duration::format(
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

    pub(super) fn log_line_hook(&self, i: usize, generation: u64) -> Option<LineHook> {
        let Some(Probe::LogLine(pattern)) = self.units[i].plugin.ready.as_ref().map(|r| &r.probe)
        else {
            return None;
        };
        let regex = regex_lite::Regex::new(pattern).ok()?;
        let tx = self.tx.clone();
        let mut done = false;
        Some(Box::new(move |line: &[u8]| {
            if !done && regex.is_match(&String::from_utf8_lossy(line)) {
                done = true;
                let _ = tx.send(Wake::Ready(i, generation));
            }
        }))
    }

    pub(super) fn watch_notify(&self, i: usize, generation: u64, read: OwnedFd) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                match nix::unistd::read(&read, &mut buf) {
                    Ok(0) => return,
                    Ok(n) if buf[..n].contains(&b'\n') => {
                        let _ = tx.send(Wake::Ready(i, generation));
                        return;
                    }
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => return,
                }
            }
        });
    }

    pub(super) fn watch_tcp(
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
                    let _ = tx.send(Wake::Ready(i, generation));
                    return;
                }
                std::thread::sleep(interval);
            }
        });
    }

    /// Starts the `exec` probe command (the plugin's environment without
    /// its secrets, output discarded).
    pub(super) fn spawn_exec_probe(&self, i: usize) -> Option<Pid> {
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
        let env = launch::environment(&probe, std::env::vars_os(), &[], &[]);
        let streams = Streams::new(crate::supervise::config::Output::Discard).ok()?;
        let wiring = Wiring {
            stdio: streams.stdio(),
            extra: Vec::new(),
        };
        launch::spawn(&probe, &env, &wiring).ok()
    }

    pub(super) fn mark_ready(&mut self, i: usize, generation: u64) {
        let unit = &mut self.units[i];
        if unit.generation != generation || unit.state != State::Starting {
            return;
        }
        unit.state = State::Ready;
        unit.ever_ready = true;
        self.end_probe(i);
        log(&format!("{} is ready", self.units[i].plugin.id));
    }

    pub(super) fn end_probe(&mut self, i: usize) {
        if let Some(probe) = self.units[i].probe.take() {
            probe.cancel.store(true, Ordering::SeqCst);
            if let Some(pid) = probe.exec_pid {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }
}

//! The one way a child starts, for `secret exec`/`run` and for the plugin
//! supervisor alike: its environment (`env`: one rule for `SECRET_*`), its
//! in-memory files (`memfd`), the spawn and exec-failure mapping (`spawn`,
//! over `sys`, the only `unsafe`), masked output (`relay`, over the
//! `mask` redactor), job control on the child's own pseudo-terminal
//! (`monitor`), transparent supervision of one child (`supervise`:
//! signals, job control, reaping, exit status) and lease renewal (`lease`).
//! A fix to any of these is made once, here.
//!
//! It resolves nothing: callers hand it values already granted, and it
//! drops every buffer holding one as soon as the child runs.

pub(crate) mod env;
pub(crate) mod lease;
pub(crate) mod memfd;
pub(crate) mod monitor;
pub(crate) mod relay;
pub(crate) mod spawn;
pub(crate) mod supervise;

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::Signal;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mask::Redactor;
use crate::sys::SpawnSpec;
use memfd::MemFile;
use relay::Plumbing;

/// One child for `exec`/`run`, prepared: every value already in `env`,
/// `files` or the redactor.
pub(crate) struct Launch<'a> {
    pub(crate) command: &'a [OsString],
    /// The whole environment, from `env::build`.
    pub(crate) env: Vec<Zeroizing<Vec<u8>>>,
    /// In-memory files the child keeps open.
    pub(crate) files: Vec<MemFile>,
    /// `--exec`: replace `secret` with the command.
    pub(crate) replace: bool,
    pub(crate) death_signal: Option<Signal>,
    pub(crate) supervision: supervise::Supervision,
    /// Pass the child's output through this redactor.
    pub(crate) redactor: Option<Redactor>,
    /// Renew leases while the child runs.
    pub(crate) leases: Option<lease::Watch>,
}

/// Starts the child, drops every buffer holding a value, then supervises
/// it. Returns the exit code to report.
pub(crate) fn launch(plan: Launch<'_>) -> Result<u8> {
    let Some(program) = plan.command.first() else {
        return Err(Error::usage_hint(
            "no command given",
            "put the command after --: secret exec --env K=@k -- CMD ARGS",
        ));
    };
    let shown = program.to_string_lossy().into_owned();
    let argv = spawn::argv(plan.command)?;
    let envp = spawn::envp(&plan.env)?;
    let candidates = spawn::candidates(program, &plan.env);
    if plan.replace {
        return Err(spawn::replace(&candidates, &argv, &envp, &shown));
    }
    let keep_fds: Vec<_> = plan.files.iter().map(|f| f.fd.as_raw_fd()).collect();
    let plumbing = plan
        .redactor
        .as_ref()
        .map(|_| Plumbing::new())
        .transpose()?;
    let mut spec = SpawnSpec {
        candidates: &candidates,
        argv: &argv,
        envp: &envp,
        new_group: true,
        foreground_of: None,
        death_signal: plan.death_signal,
        stdio: plumbing.as_ref().map_or([None; 3], Plumbing::stdio),
        keep_fds: &keep_fds,
        controlling_tty: plumbing.as_ref().and_then(|p| p.child_tty),
        cwd: None,
        extra_fds: &[],
        monitor: plumbing.as_ref().and_then(Plumbing::monitor),
    };
    let running = supervise::start(&mut spec, &shown, &plan.supervision)?;
    drop(envp);
    drop(plan.env);
    drop(plan.files);
    let done = Arc::new(AtomicBool::new(false));
    if let Some(watch) = plan.leases {
        watch.spawn(running.pid(), Arc::clone(&done));
    }
    let relay = plumbing
        .zip(plan.redactor)
        .map(|(p, r)| p.start(|| r.fresh()));
    let console = relay
        .as_ref()
        .filter(|r| r.has_pty())
        .map(|r| r as &dyn supervise::Console);
    let ended = running.supervise(console);
    done.store(true, Ordering::SeqCst);
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(ended.mirror())
}

//! The one module allowed `unsafe`: thin wrappers over process-wide system
//! calls that have no safe binding. Every block says why it is sound.
#![allow(unsafe_code)]

use nix::sys::signal::{SigHandler, Signal, signal};

/// Ignores SIGINT and SIGQUIT in `secret` itself, after the child is
/// spawned (the child keeps the default dispositions).
pub fn ignore_terminal_interrupts() {
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: installing SIG_IGN runs no handler code, so there is no
        // async-signal-safety requirement to uphold.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}

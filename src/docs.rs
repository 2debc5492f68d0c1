//! Generated documentation: the clap definitions in `cli` as a
//! `clap::Command`, for `examples/generate.rs` (which writes `man/` and
//! `completions/`) and the test that checks those files are current. The
//! generators themselves are dev-dependencies: they are not linked into the
//! `secret` binary.

use clap::CommandFactory;

use crate::cli::Cli;

/// The whole command line, as man pages and completions describe it.
#[doc(hidden)]
#[must_use]
pub fn command() -> clap::Command {
    Cli::command()
}

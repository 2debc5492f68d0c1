//! `secret`: keeps credentials out of files, history, logs and prompts, and
//! hands each one only to the process that needs it.
//!
//! The binary calls [`run`]: it parses the command line, hands it to the
//! subcommand's module under `cmd/`, and turns the outcome into an exit
//! code (`error::exit`). Everything else lives in one module per concept.
//! Modules and items are crate-private; the `pub` modules are the ones
//! tests/, benches/ and examples/ drive directly.

mod audit;
mod broker;
mod child;
mod cli;
mod cmd;
pub mod config;
mod crypto;
mod diag;
pub mod docs;
mod duration;
pub mod error;
mod fsio;
pub mod grants;
mod handle;
mod mapping;
pub mod mask;
mod passphrase;
pub mod paths;
pub mod remote;
mod resolve;
mod show;
mod store;
mod supervise;
mod sys;
mod timestamp;
mod unlock;
pub mod value;

use std::ffi::OsString;

/// Runs the command line `args` (program name first) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    sys::start_up();
    let args: Vec<OsString> = args.into_iter().collect();
    // Until parsing succeeds, guess whether this is a launch (whose own
    // failures exit 125).
    let mut launch = cli::looks_like_launch(&args);
    sys::harden();
    sys::close_on_exec_inherited();
    if args.get(1).is_some_and(|a| a == child::monitor::MARKER) {
        return child::monitor::main(&args[2..]);
    }
    let outcome = parse(&args)
        .map_err(|e| {
            let _ = e.print();
            error::Error::CommandLine {
                informational: !e.use_stderr(),
            }
        })
        .and_then(|cli| {
            launch = cli.command.is_launch();
            cmd::dispatch(cli)
        });
    error::exit(outcome, launch)
}

/// Parses `args` as `Cli::try_parse_from` does: the plain launch lines
/// without building clap's command tree (`cli::launch`), every other line
/// with it.
fn parse(args: &[OsString]) -> Result<cli::Cli, clap::Error> {
    if let Some(cli) = cli::launch::parse(args, std::env::var_os("SECRET_SCOPE").as_deref()) {
        return Ok(cli);
    }
    let mut command = <cli::Cli as clap::CommandFactory>::command();
    command
        .try_get_matches_from_mut(args)
        .and_then(|matches| <cli::Cli as clap::FromArgMatches>::from_arg_matches(&matches))
        .map_err(|e| e.format(&mut command))
}

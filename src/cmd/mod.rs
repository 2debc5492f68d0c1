//! One module per subcommand (or small family), each owning its flow from
//! parsed arguments to exit code. `dispatch` only picks the module; shared
//! machinery (`context`) sits below and never calls back up.

mod audit;
mod check;
mod context;
mod exec;
mod grants;
mod import;
mod plan;
mod plugins;
mod reveal;
mod store;
mod vault;

use crate::cli::{Cli, Command, GrantsCommand};
use crate::error::Result;
use context::Context;

/// Runs the parsed command line; returns the exit code.
pub(crate) fn dispatch(cli: Cli) -> Result<u8> {
    // Before any thread or child exists: nothing we start may possess the
    // unlock cache's keyring.
    crate::unlock::isolate_children()?;
    let mut ctx = Context::load(cli.globals.passphrase_fd, cli.globals.scope.as_deref())?;
    match cli.command {
        Command::Init { backend } => vault::init(&ctx, backend.into()),
        Command::Unlock { duration } => vault::unlock(&ctx, duration),
        Command::Lock => vault::lock(&ctx),
        Command::Passwd { new_passphrase_fd } => vault::passwd(&mut ctx, new_passphrase_fd),
        Command::Add {
            handle,
            stdin,
            provider,
            kind,
        } => store::add(
            &ctx,
            &handle,
            stdin,
            provider.as_deref().unwrap_or_default(),
            kind.as_deref().unwrap_or_default(),
        ),
        Command::Rotate { handle, stdin } => store::rotate(&ctx, &handle, stdin),
        Command::Rm { handle } => store::rm(&ctx, &handle),
        Command::List { json } => store::list(&ctx, json),
        Command::Inspect { handle, json } => store::inspect(&ctx, &handle, json),
        Command::Link { handle, reference } => store::link(&ctx, &handle, &reference),
        Command::Grants(GrantsCommand::Check {
            handle,
            consumer,
            purpose,
            delivery,
        }) => grants::check(
            &ctx,
            &handle,
            &consumer,
            purpose.as_deref(),
            delivery.into(),
        ),
        Command::Audit {
            handle,
            json,
            verify,
        } => audit::audit(&ctx, handle.as_deref(), json, verify),
        Command::Exec(args) => exec::exec(&ctx, args),
        Command::Run(args) if args.check => check::script(&ctx, args),
        Command::Run(args) => exec::run(&ctx, args),
        Command::Check(args) => check::check(&ctx, args),
        Command::Import(args) => import::import(&ctx, &args),
        Command::Reveal(args) => reveal::reveal(&ctx, &args),
        Command::Get { args } => reveal::get(&args),
        Command::Plugins(command) => plugins::plugins(&ctx, command),
        Command::Broker(command) => plugins::broker(&ctx, command),
        Command::CompleteHandles => store::complete_handles(&ctx),
    }
}

//! `secret exec` and `secret run`: from parsed arguments to the child's
//! exit code. Mappings are parsed here; the launch itself (resolution,
//! environment, spawn, supervision) goes through `resolve` and `child`.

use std::ffi::OsString;

use super::context::Context;
use crate::audit::Event;
use crate::cli::{ChildArgs, ExecArgs, RunArgs};
use crate::error::{Error, Result};
use crate::exec::{self, Mapping};
use crate::grants::{Delivery, Grants};
use crate::handle::Source;
use crate::process;
use crate::resolve;

/// `secret exec [--env VAR=REF]… [--env-file F]… [--file VAR=REF]… -- CMD`.
pub(crate) fn exec(ctx: &Context, args: ExecArgs) -> Result<u8> {
    if let Some(first) = args.command.first().and_then(|c| c.to_str())
        && first.starts_with('-')
    {
        return Err(Error::usage_hint(
            format!("unknown option {first} for secret exec"),
            "see `secret exec --help`; put the command after --, as in: secret exec --env K=@k -- CMD ARGS",
        ));
    }
    let mut mappings = Vec::new();
    for file in &args.env_file {
        mappings.extend(exec::parse_env_file(file, &ctx.schemes())?);
    }
    for arg in &args.env {
        mappings.push(exec::parse_env_arg(arg, &ctx.schemes())?);
    }
    launch(ctx, &args.command, mappings, Vec::new(), &args.child)
}

/// `secret run INTERPRETER SCRIPT ARGS…`: the script's header names its
/// secrets.
pub(crate) fn run(ctx: &Context, args: RunArgs) -> Result<u8> {
    let (mappings, files) = exec::parse_script_header(&args.script, &ctx.schemes())?;
    let mut command = vec![args.interpreter, args.script.into_os_string()];
    command.extend(args.args);
    launch(ctx, &command, mappings, files, &args.child)
}

fn launch(
    ctx: &Context,
    command: &[OsString],
    mappings: Vec<Mapping>,
    mut files: Vec<Mapping>,
    child: &ChildArgs,
) -> Result<u8> {
    for arg in &child.file {
        files.push(exec::parse_file_arg(arg, &ctx.schemes())?);
    }
    let mut requests: Vec<(Source, Vec<Delivery>)> = Vec::new();
    let wanted = exec::sources(&mappings)
        .into_iter()
        .map(|s| (s, Delivery::Env))
        .chain(
            exec::sources(&files)
                .into_iter()
                .map(|s| (s, Delivery::File)),
        );
    for (source, delivery) in wanted {
        match requests.iter_mut().find(|(s, _)| *s == source) {
            Some((_, d)) => d.push(delivery),
            None => requests.push((source, vec![delivery])),
        }
    }
    let grants = Grants::load(&ctx.paths)?;
    let asker = resolve::Asker {
        consumer: &child.consumer,
        purpose: child.purpose.as_deref(),
        grants: &grants,
    };
    let resolved = resolve::resolve(
        &requests,
        &ctx.scope,
        &ctx.config,
        &asker,
        || ctx.open_store(),
        |events| ctx.record(events),
    )?;
    let watch = lease_watch(ctx, resolved.leases, child);
    let inherit = exec::Inherit {
        ignore_environment: child.ignore_environment,
        keep: child.keep.clone(),
        unset: child.unset.clone(),
    };
    let plan = exec::Launch {
        command,
        mappings: &mappings,
        files: &files,
        inherit: &inherit,
        replace: child.replace,
        death_signal: Some(child.death_signal),
        supervision: process::Supervision {
            subreaper: child.subreaper,
        },
        mask: child.mask_wanted(),
        leases: watch,
    };
    exec::launch(plan, resolved.values)
}

/// While the child runs, renew its leases before they expire (every half
/// of the shortest ttl): each renewal checks the grants as they are then.
/// A withdrawn grant stops the child, and the audit trail says why.
fn lease_watch(
    ctx: &Context,
    leases: Vec<resolve::Lease>,
    child: &ChildArgs,
) -> Option<exec::LeaseWatch> {
    let ttl = leases.iter().map(|l| l.ttl).min()?;
    let paths = ctx.paths.clone();
    let consumer = child.consumer.clone();
    let purpose = child.purpose.clone();
    let renew = move || -> Result<()> {
        let grants = Grants::load(&paths)?;
        let asker = resolve::Asker {
            consumer: &consumer,
            purpose: purpose.as_deref(),
            grants: &grants,
        };
        let outcome = resolve::renew(&leases, &asker);
        let events: Vec<Event> = leases
            .iter()
            .map(|l| Event {
                action: "renew",
                handle: crate::handle::scheme(&l.secret)
                    .is_none()
                    .then(|| l.secret.clone()),
                reference: crate::handle::scheme(&l.secret).map(|_| l.secret.clone()),
                consumer: consumer.clone(),
                purpose: purpose.clone(),
                outcome: match &outcome {
                    Ok(()) => format!("ok (lease {}s)", l.ttl),
                    Err(_) => "revoked: the grant was withdrawn; stopping the holder".into(),
                },
                ..Event::default()
            })
            .collect();
        crate::audit::append(&paths, &events)?;
        outcome
    };
    Some(exec::LeaseWatch {
        every: std::time::Duration::from_millis(ttl.saturating_mul(500).max(200)),
        renew: Box::new(renew),
        stop_timeout: child.stop_timeout,
    })
}

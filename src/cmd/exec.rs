//! `secret exec` and `secret run`: from parsed arguments to the child's
//! exit code. Mappings are parsed and resolved through `plan` (shared with
//! `check`); the launch itself (environment, spawn, supervision) goes
//! through `child`.

use std::ffi::OsString;

use zeroize::Zeroizing;

use super::context::Context;
use crate::child::env::Inherit;
use crate::child::lease;
use crate::child::memfd::MemFile;
use crate::child::supervise::Supervision;
use crate::cli::{ChildArgs, ExecArgs, RunArgs};
use crate::error::{Error, Result};
use crate::mapping::{self, Mapping};
use crate::resolve;

use super::plan::{self, Asking, Plan};

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
    let mappings = plan::env_mappings(ctx, &args.mappings.env_file, &args.mappings.env)?;
    launch(ctx, &args.command, mappings, Vec::new(), &args.child)
}

/// `secret run INTERPRETER SCRIPT ARGS…`: the script's header names its
/// secrets.
pub(crate) fn run(ctx: &Context, args: RunArgs) -> Result<u8> {
    let Some(script) = args.command.get(1) else {
        return Err(Error::usage("secret run needs INTERPRETER SCRIPT"));
    };
    let (mappings, files) =
        mapping::parse_script_header(std::path::Path::new(script), &ctx.schemes())?;
    launch(ctx, &args.command, mappings, files, &args.child)
}

fn launch(
    ctx: &Context,
    command: &[OsString],
    mappings: Vec<Mapping>,
    files: Vec<Mapping>,
    child: &ChildArgs,
) -> Result<u8> {
    refuse_unmasked_exec(child)?;
    if let Some(kept) = child.keep.first()
        && !child.ignore_environment
    {
        return Err(Error::usage_hint(
            format!(
                "--keep {kept} does nothing without -i: the child inherits every variable already"
            ),
            "add -i (--ignore-environment) to start from an empty environment that keeps only what --keep names; or drop --keep (--unset NAME removes one variable)",
        ));
    }
    let who = Asking::of(child);
    who.check()?;
    let plan = Plan::new(ctx, mappings, files, &child.file, &child.proxy)?;
    if !plan.proxied.is_empty() && child.replace {
        return Err(Error::usage_hint(
            "--proxy cannot be used with --exec",
            "the proxy lives in secret for as long as the child runs; drop --exec",
        ));
    }
    // A launch that resolves nothing reads no file of secret's, so it runs
    // where nothing says where those live (HOME unset, no SECRET_HOME).
    let requests = plan.requests();
    let (resolutions, grants) = if requests.is_empty() {
        (Vec::new(), None)
    } else {
        let (resolutions, grants) = plan::resolve(ctx, &requests, &who, "resolve")?;
        (resolutions, Some(grants))
    };
    let Plan {
        env: mappings,
        files,
        proxied,
    } = plan;
    let answered = crate::broker::proxy::answered(&resolutions);
    let resolved = resolve::all(resolutions)?;
    let values = resolved.values;
    // The proxy keeps its own copies of the proxied values while it runs.
    // (Something is proxied only when something was resolved, under grants.)
    let proxy = match &grants {
        Some(grants) if !proxied.is_empty() => {
            use crate::broker::proxy;
            let pairs = proxy::sources(&proxied);
            let plan = proxy::Plan {
                wanted: proxy::wanted(&pairs, &answered, &values)?,
                grants,
                consumer: &child.consumer,
                purpose: child.purpose.as_deref(),
                egress_deny: child.proxy_egress == crate::cli::EgressArg::Deny,
                paths: ctx.paths()?,
            };
            Some(proxy::start(&plan, &ctx.config)?)
        }
        _ => None,
    };

    // Every value goes into the child's environment, its in-memory files
    // or the redactor, then is dropped before the child starts.
    let mut memfiles = Vec::new();
    let mut vars = mapping::expand(&mappings, &values)?;
    if let Some(p) = &proxy {
        vars.extend(p.vars().iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for m in &files {
        let Some(source) = m.reference.sources().into_iter().next() else {
            continue;
        };
        let file = MemFile::new(&m.var, mapping::lookup(&values, &source)?)?;
        vars.push((m.var.clone(), Zeroizing::new(file.path().into_bytes())));
        memfiles.push(file);
    }
    let redactor = if child.mask_wanted() {
        let labelled = values.iter().map(|(s, v)| (s.to_string(), v));
        Some(crate::child::relay::redactor(labelled, |w| {
            eprintln!("secret: warning: {w}");
        })?)
    } else {
        None
    };
    drop(values);
    let inherit = Inherit {
        nothing: child.ignore_environment,
        keep: child.keep.clone(),
        unset: child.unset.clone(),
    };
    let env = crate::child::env::build(std::env::vars_os(), &inherit, vars);
    let leases = if resolved.leases.is_empty() {
        None
    } else {
        let holder = lease::Holder {
            paths: ctx.paths()?.clone(),
            consumer: child.consumer.clone(),
            purpose: child.purpose.clone(),
        };
        lease::Watch::new(holder, resolved.leases, child.stop_timeout)
    };
    let code = crate::child::launch(crate::child::Launch {
        command,
        env,
        files: memfiles,
        replace: child.replace,
        death_signal: Some(child.death_signal),
        supervision: Supervision {
            subreaper: child.subreaper,
        },
        redactor,
        leases,
    });
    // The proxy lives exactly as long as the child.
    drop(proxy);
    code
}

/// `--exec` replaces `secret` with the command, so nothing is left to mask
/// its output: refused with `--mask`, and under `CI` (where masking is the
/// default) unless `--no-mask` says raw output is wanted.
fn refuse_unmasked_exec(child: &ChildArgs) -> Result<()> {
    if !child.replace || !child.mask_wanted() {
        return Ok(());
    }
    if child.mask {
        return Err(Error::usage_hint(
            "--exec and --mask cannot be combined: --exec replaces secret with the command, so nothing would be left to mask its output",
            "drop --exec to keep masking, or pass --no-mask to run the command unmasked",
        ));
    }
    Err(Error::usage_hint(
        "--exec would print secrets unmasked: CI is set, so masking is on by default, and --exec replaces secret with the command, leaving nothing to mask its output",
        "drop --exec to keep masking, or add --no-mask to run the command unmasked",
    ))
}

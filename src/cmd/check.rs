//! `secret check` and `secret run --check`: resolve every reference a
//! launch would need, under the same grants, and say for each one whether
//! it resolves (ok, missing, denied by grant, provider error) and how to
//! fix it. Nothing is started; values are dropped (wiped) as soon as they
//! are resolved and never printed. Each resolution is audited as a
//! "check", so the trail tells a check from a launch.

use std::collections::BTreeMap;

use super::context::{Context, print};
use super::plan::{self, Asking, Plan};
use crate::cli::{CheckArgs, RunArgs};
use crate::error::{Error, Result};
use crate::grants::Delivery;
use crate::handle::Source;

/// `secret check [--env-file F]… [--env VAR=REF]… [--file …] [--proxy …]`.
pub(crate) fn check(ctx: &Context, args: CheckArgs) -> Result<u8> {
    let env = plan::env_mappings(ctx, &args.mappings.env_file, &args.mappings.env)?;
    let plan = Plan::new(ctx, env, Vec::new(), &args.child.file, &args.child.proxy)?;
    report(ctx, &plan, &Asking::of(&args.child))
}

/// `secret run --check INTERPRETER SCRIPT …`: the script's header.
pub(crate) fn script(ctx: &Context, args: RunArgs) -> Result<u8> {
    let Some(script) = args.command.get(1) else {
        return Err(Error::usage("secret run --check needs INTERPRETER SCRIPT"));
    };
    let (env, files) =
        crate::mapping::parse_script_header(std::path::Path::new(script), &ctx.schemes())?;
    let plan = Plan::new(ctx, env, files, &args.child.file, &args.child.proxy)?;
    report(ctx, &plan, &Asking::of(&args.child))
}

/// The reference column of a literal mapping, which needs nothing.
const LITERAL: &str = "(literal)";

/// What became of one source.
struct Outcome {
    /// The handle that answered in scope, when it is not the one asked.
    answered: Option<Source>,
    /// Where a link points.
    link: Option<String>,
    result: Result<()>,
}

/// Resolves the plan, prints one row per variable and source, then every
/// problem with its hint; exit 0 when all resolve, 1 otherwise.
fn report(ctx: &Context, plan: &Plan, who: &Asking<'_>) -> Result<u8> {
    let (resolutions, grants) = plan::resolve(ctx, &plan.requests(), who, "check")?;
    let answered = crate::broker::proxy::answered(&resolutions);
    // The values are wiped here: only what became of each source is kept.
    let outcomes: BTreeMap<Source, Outcome> = resolutions
        .into_iter()
        .map(|r| {
            let link = match &r.source {
                Source::Local(_) => r.reference,
                Source::Remote(_) => None,
            };
            let outcome = Outcome {
                answered: r.answered.filter(|a| *a != r.source),
                link,
                result: r.value.map(drop),
            };
            (r.source, outcome)
        })
        .collect();
    let mut rows = Vec::new();
    let mut problems = String::new();
    let mut failed = 0usize;
    for (m, delivery) in plan.each() {
        let how = match delivery {
            Delivery::Env => "env",
            Delivery::File => "file",
            Delivery::Http => "proxy",
        };
        let sources = m.reference.sources();
        if sources.is_empty() {
            rows.push(vec![m.var.clone(), how.into(), LITERAL.into(), "ok".into()]);
        }
        for source in sources {
            let label = source.to_string();
            let outcome = outcomes.get(&source);
            // The proxy also needs the grant to name the hosts the value
            // may be sent to.
            let hosts = match outcome {
                Some(o) if o.result.is_ok() && delivery == Delivery::Http => {
                    let key = answered
                        .iter()
                        .find(|(s, _)| *s == source)
                        .map_or_else(|| source.grant_key().to_owned(), |(_, k)| k.clone());
                    crate::broker::proxy::allowed_hosts(
                        &grants,
                        who.consumer,
                        who.purpose,
                        &key,
                        &label,
                    )
                    .err()
                }
                Some(_) => None,
                None => Some(Error::internal(format!("{label} was not resolved"))),
            };
            let error = outcome
                .and_then(|o| o.result.as_ref().err())
                .or(hosts.as_ref());
            let status = match (error, outcome) {
                (Some(e), _) => {
                    failed += 1;
                    problems.push_str(&format!("{} ({label}): {e}\n", m.var));
                    if let Some(hint) = e.hint() {
                        for (i, line) in hint.lines().enumerate() {
                            let lead = if i == 0 { "hint: " } else { "      " };
                            problems.push_str(&format!("  {lead}{line}\n"));
                        }
                    }
                    status_word(e).into()
                }
                (
                    None,
                    Some(Outcome {
                        link: Some(target), ..
                    }),
                ) => {
                    format!("ok (link to {target})")
                }
                (
                    None,
                    Some(Outcome {
                        answered: Some(a), ..
                    }),
                ) => format!("ok (answered by {a})"),
                (None, _) => "ok".into(),
            };
            rows.push(vec![m.var.clone(), how.into(), label, status]);
        }
    }
    let mut out = if rows.is_empty() {
        "nothing to check: no mappings were given (--env, --env-file, --file, --proxy)\n".into()
    } else {
        crate::show::columns(&["VARIABLE", "AS", "REFERENCE", "STATUS"], &rows)
    };
    if !problems.is_empty() {
        out.push('\n');
        out.push_str(&problems);
    }
    let total = rows.iter().filter(|r| r[2] != LITERAL).count();
    out.push_str(&if failed == 0 {
        format!(
            "{total} reference{} checked, all resolve; nothing was started\n",
            plural(total)
        )
    } else {
        format!(
            "{failed} of {total} reference{} do not resolve: a launch would stop before starting its command (exit 125)\n",
            plural(total)
        )
    });
    print(&out)?;
    Ok(u8::from(failed > 0))
}

/// The status column for an error.
fn status_word(e: &Error) -> &'static str {
    match e {
        Error::NoSuchSecret { .. } => "missing",
        Error::Denied { .. } => "denied by grant",
        Error::Remote { .. } => "provider error",
        _ => "error",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

//! What a launch needs, shared by the commands that launch (`exec`, `run`)
//! and those that only ask (`check`, `run --check`, `reveal`): the parsed
//! mappings, one resolution request per source with every delivery it is
//! wanted for, and the one call into the resolver under the launch's
//! grants. It starts nothing; what to do with the answers is the caller's.

use std::path::PathBuf;

use super::context::Context;
use crate::audit::Event;
use crate::error::{Error, Result};
use crate::grants::{Delivery, Grants};
use crate::mapping::{self, Mapping};
use crate::resolve::{self, Request, Resolution};

/// The mappings of one launch, by how the child gets each value.
pub(super) struct Plan {
    /// Environment variables (`--env`, `--env-file`, `# secret:`).
    pub env: Vec<Mapping>,
    /// In-memory files (`--file`, `# secret-file:`).
    pub files: Vec<Mapping>,
    /// Placeholders swapped on the wire (`--proxy`, `VAR=proxy:@ref`).
    pub proxied: Vec<Mapping>,
}

/// Parses `--env-file FILE…` then `--env VAR=REF…` (which override them).
pub(super) fn env_mappings(
    ctx: &Context,
    env_files: &[PathBuf],
    env: &[String],
) -> Result<Vec<Mapping>> {
    let mut mappings = Vec::new();
    for file in env_files {
        mappings.extend(mapping::parse_env_file(file, &ctx.schemes())?);
    }
    for arg in env {
        mappings.push(mapping::parse_env_arg(arg, &ctx.schemes())?);
    }
    Ok(mappings)
}

impl Plan {
    /// Sorts `env` (proxied ones apart) and `files`, and adds the
    /// `--file` and `--proxy` arguments.
    pub(super) fn new(
        ctx: &Context,
        env: Vec<Mapping>,
        mut files: Vec<Mapping>,
        file_args: &[String],
        proxy_args: &[String],
    ) -> Result<Self> {
        for arg in file_args {
            files.push(mapping::parse_file_arg(arg, &ctx.schemes())?);
        }
        let (mut proxied, env): (Vec<Mapping>, Vec<Mapping>) =
            env.into_iter().partition(|m| m.proxy);
        for arg in proxy_args {
            proxied.push(mapping::parse_proxy_arg(arg, &ctx.schemes())?);
        }
        Ok(Self {
            env,
            files,
            proxied,
        })
    }

    /// Every mapping with the delivery it is for.
    pub(super) fn each(&self) -> impl Iterator<Item = (&Mapping, Delivery)> {
        self.env
            .iter()
            .map(|m| (m, Delivery::Env))
            .chain(self.files.iter().map(|m| (m, Delivery::File)))
            .chain(self.proxied.iter().map(|m| (m, Delivery::Http)))
    }

    /// One request per source, with every delivery it is wanted for.
    pub(super) fn requests(&self) -> Vec<Request> {
        resolve::requests(
            [
                (&self.env, Delivery::Env),
                (&self.files, Delivery::File),
                (&self.proxied, Delivery::Http),
            ]
            .into_iter()
            .flat_map(|(ms, d)| mapping::sources(ms).into_iter().map(move |s| (s, d))),
        )
    }
}

/// Who asks, as `--consumer` and `--purpose` say.
pub(super) struct Asking<'a> {
    pub consumer: &'a str,
    pub purpose: Option<&'a str>,
}

impl<'a> Asking<'a> {
    /// `--consumer` and `--purpose` of exec, run and check.
    pub(super) fn of(child: &'a crate::cli::ChildArgs) -> Self {
        Self {
            consumer: &child.consumer,
            purpose: child.purpose.as_deref(),
        }
    }

    /// Refuses consumer names reserved for plugins.
    pub(super) fn check(&self) -> Result<()> {
        if self.consumer.contains(':') {
            return Err(Error::usage_hint(
                format!(
                    "--consumer \"{}\": names with \":\" are reserved (plugins are \"plugin:ID\")",
                    self.consumer.escape_default()
                ),
                "give exec a consumer name of its own, without \":\"",
            ));
        }
        Ok(())
    }
}

/// Resolves `requests` for `who` under grants.toml, unlocking the store
/// only when a local handle needs it. Every resolution is audited, under
/// `action` ("resolve" for a launch, "check", "reveal").
pub(super) fn resolve(
    ctx: &Context,
    requests: &[Request],
    who: &Asking<'_>,
    action: &'static str,
) -> Result<(Vec<Resolution>, Grants)> {
    who.check()?;
    let grants = Grants::load(ctx.paths()?)?;
    let asker = resolve::Asker {
        consumer: who.consumer,
        purpose: who.purpose,
        grants: &grants,
    };
    let store = if resolve::needs_store(requests) {
        Some(ctx.open_store()?)
    } else {
        None
    };
    let resolutions = resolve::resolve(
        requests,
        &ctx.scope,
        &ctx.config,
        &asker,
        store.as_deref(),
        |events| {
            let events: Vec<Event> = events
                .iter()
                .map(|e| Event {
                    action,
                    ..e.clone()
                })
                .collect();
            ctx.record(&events)
        },
    )?;
    Ok((resolutions, grants))
}

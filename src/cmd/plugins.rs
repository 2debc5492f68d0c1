//! `secret plugins run | check | status`: from parsed arguments to the
//! supervisor's exit code. Loading and validating plugins.toml, the check
//! report and the status query are here; supervision is `supervise`'s.

use std::io::Write;
use std::path::PathBuf;

use super::context::{Context, print};
use crate::cli::PluginsCommand;
use crate::error::{Error, Result};
use crate::supervise::config::PluginsFile;
use crate::supervise::{self, Host, SharedStore, keeper, launch, run, status};

/// Runs `secret plugins …`; returns the exit code.
pub(crate) fn plugins(ctx: &Context, command: PluginsCommand) -> Result<u8> {
    let host = Host {
        paths: ctx.paths()?,
        scope: &ctx.scope,
        config: &ctx.config,
        open_store: &|| ctx.open_store(),
    };
    dispatch(command, &host)
}

/// Runs `secret broker …`; returns the exit code. The broker shares the
/// supervisor's host (one unlock, one store for every route).
pub(crate) fn broker(ctx: &Context, command: crate::cli::BrokerCommand) -> Result<u8> {
    let host = Host {
        paths: ctx.paths()?,
        scope: &ctx.scope,
        config: &ctx.config,
        open_store: &|| ctx.open_store(),
    };
    crate::broker::cmd::command(command, &host)
}

fn dispatch(command: PluginsCommand, host: &Host<'_>) -> Result<u8> {
    match command {
        PluginsCommand::Check { file } => {
            let Some(config) = load(file, host)? else {
                return Ok(2);
            };
            check(&config, host)
        }
        PluginsCommand::Run { file } => {
            let Some(config) = load(file, host)? else {
                return Ok(2);
            };
            run::run(config, host)
        }
        PluginsCommand::Status {
            file: Some(path),
            json,
        } => {
            let socket = status::socket_path(host.paths, &path);
            let Some(snapshot) = status::query(&socket)? else {
                let _ = writeln!(
                    std::io::stderr(),
                    "secret: no supervisor is running {} (nothing answers on {})",
                    path.display(),
                    socket.display()
                );
                return Ok(1);
            };
            let text = if json {
                to_json(&snapshot)?
            } else {
                status::table(&snapshot)
            };
            print(&text)
        }
        PluginsCommand::Status { file: None, json } => every_status(host, json),
        PluginsCommand::Keeper => Ok(keeper::main()),
    }
}

/// `secret plugins status` without FILE: every supervisor of this user
/// that answers on a socket in the runtime directory, whatever file it
/// runs; one table each, or one JSON array. Exit 1 when none answers.
fn every_status(host: &Host<'_>, json: bool) -> Result<u8> {
    let mut snapshots = Vec::new();
    for socket in status::sockets(host.paths) {
        match status::query(&socket) {
            Ok(Some(s)) => snapshots.push(s),
            // Left by a supervisor that was killed.
            Ok(None) => {}
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "secret: warning: {e}");
            }
        }
    }
    if snapshots.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "secret: no supervisor is running (nothing answers in {})",
            status::runtime_dir(host.paths).display()
        );
        return Ok(1);
    }
    snapshots.sort_by(|a, b| a.file.cmp(&b.file));
    let text = if json {
        to_json(&snapshots)?
    } else {
        snapshots
            .iter()
            .map(status::table)
            .collect::<Vec<_>>()
            .join("\n")
    };
    print(&text)
}

/// Pretty JSON and a newline.
fn to_json(value: &impl serde::Serialize) -> Result<String> {
    let mut t = serde_json::to_string_pretty(value)
        .map_err(|e| Error::internal(format!("cannot show the status: {e}")))?;
    t.push('\n');
    Ok(t)
}

/// Loads and validates; on problems prints them all and returns `None`.
fn load(file: Option<PathBuf>, host: &Host<'_>) -> Result<Option<PluginsFile>> {
    let path = file.unwrap_or_else(|| supervise::default_path(host.paths));
    match PluginsFile::load(&path, &|s| crate::remote::is_scheme(s, host.config)) {
        Ok(config) => Ok(Some(config)),
        Err(invalid) => {
            let _ = std::io::stderr().write_all(invalid.report().as_bytes());
            Ok(None)
        }
    }
}

/// For a `secret_proxy_refs` entry, the hosts its grant lets the value go
/// to (an error with the line to add when it names none); `None` for an
/// environment one.
fn proxied_hosts(
    plugin: &crate::supervise::config::Plugin,
    r: &crate::supervise::config::SecretRef,
    grant_key: &str,
    host: &Host<'_>,
    store: &SharedStore,
) -> Result<Option<Vec<String>>> {
    if !r.proxy {
        return Ok(None);
    }
    let grants = store.grants(host.paths)?;
    crate::broker::proxy::allowed_hosts(
        &grants,
        &supervise::consumer(&plugin.id),
        None,
        grant_key,
        &r.text,
    )
    .map(Some)
}

/// `secret plugins check`: the file is valid; now say what each plugin
/// would get, resolving every reference (never printing a value). Exit 0
/// when everything resolves, else 2 (the contract has no other code): a
/// reference that does not resolve, or a store that cannot be opened, is
/// a configuration that would not run as written.
fn check(config: &PluginsFile, host: &Host<'_>) -> Result<u8> {
    let store = SharedStore::open_for(config, host).map_err(|e| Error::Usage {
        message: e.to_string(),
        hint: e.hint(),
    })?;
    let mut out = String::new();
    let enabled = config.plugins.iter().filter(|p| p.enabled).count();
    out.push_str(&format!(
        "{}: valid; {} plugin{}, {enabled} enabled\n",
        config.path.display(),
        config.plugins.len(),
        if config.plugins.len() == 1 { "" } else { "s" },
    ));
    let mut unresolved = 0;
    for plugin in &config.plugins {
        if !plugin.enabled {
            out.push_str(&format!(
                "{}: disabled (validated, never started)\n",
                plugin.id
            ));
            continue;
        }
        let resolved = launch::resolve_each(plugin, host, &store);
        let mut secrets = Vec::new();
        let mut problems = Vec::new();
        for ((r, result), key) in plugin
            .secret_env_refs
            .iter()
            .zip(resolved.values)
            .zip(&resolved.grant_keys)
        {
            match result.and_then(|_| proxied_hosts(plugin, r, key, host, &store)) {
                Ok(None) => secrets.push(format!("{} ({})", r.var, r.text)),
                Ok(Some(hosts)) => secrets.push(format!(
                    "{} ({}, proxied to {})",
                    r.var,
                    r.text,
                    hosts.join(", ")
                )),
                Err(e) => problems.push((r, e)),
            }
        }
        let plain: Vec<&str> = plugin.env.keys().map(String::as_str).collect();
        out.push_str(&format!(
            "{}: secrets: {}; env: {}\n",
            plugin.id,
            if secrets.is_empty() {
                "none".to_owned()
            } else {
                secrets.join(", ")
            },
            if plain.is_empty() {
                "none".to_owned()
            } else {
                plain.join(", ")
            }
        ));
        for (r, e) in problems {
            unresolved += 1;
            out.push_str(&format!(
                "{}: error: {} ({}) could not be resolved: {e}\n",
                plugin.id, r.var, r.text
            ));
            if let Some(hint) = e.hint() {
                for line in hint.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    if unresolved > 0 {
        out.push_str(&format!(
            "secret: {unresolved} secret reference{} could not be resolved; those plugins would fail\n",
            if unresolved == 1 { "" } else { "s" }
        ));
    }
    print(&out)?;
    Ok(if unresolved > 0 { 2 } else { 0 })
}

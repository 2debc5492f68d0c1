//! Starting one plugin: resolving its `secret_env_refs` for consumer = its
//! id (through grants.toml, audited), building its environment in wiping
//! buffers (inherit base, `pass_env`, `env`, then secrets; `SECRET_*`
//! inherited variables dropped) and forking it into a process group of its
//! own. It never touches our own environment and never puts a value on
//! argv. What happens to the plugin afterwards is `run`'s.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use zeroize::Zeroizing;

use super::config::{InheritEnv, MINIMAL_ENV, Plugin};
use super::{Host, SharedStore};
use crate::error::{Error, Result};
use crate::exec::glob;
use crate::grants::Delivery;
use crate::handle::Source;
use crate::sys::{self, SpawnError, SpawnSpec};
use crate::value::SecretValue;

/// Resolves each of the plugin's references on its own (so a failure names
/// it), in order. Each resolution and denial is audited by `resolve`.
pub fn resolve_each(
    plugin: &Plugin,
    host: &Host<'_>,
    store: &SharedStore,
) -> Vec<Result<SecretValue>> {
    resolve_each_with_lease(plugin, host, store).0
}

/// As `resolve_each`, with the shortest lease (`ttl_secs`) of the grants
/// that allowed them, if any has one.
pub fn resolve_each_with_lease(
    plugin: &Plugin,
    host: &Host<'_>,
    store: &SharedStore,
) -> (Vec<Result<SecretValue>>, Option<u64>) {
    let lease = std::cell::Cell::new(None::<u64>);
    let values = resolve_refs(plugin, host, store, &lease);
    (values, lease.get())
}

fn resolve_refs(
    plugin: &Plugin,
    host: &Host<'_>,
    store: &SharedStore,
    lease: &std::cell::Cell<Option<u64>>,
) -> Vec<Result<SecretValue>> {
    if plugin.secret_env_refs.is_empty() {
        return Vec::new();
    }
    let grants = match store.grants(host.paths) {
        Ok(g) => g,
        Err(e) => {
            let text = e.to_string();
            return plugin
                .secret_env_refs
                .iter()
                .map(|_| Err(Error::usage(text.clone())))
                .collect();
        }
    };
    let asker = crate::resolve::Asker {
        consumer: &plugin.id,
        purpose: None,
        grants: &grants,
    };
    plugin
        .secret_env_refs
        .iter()
        .map(|r| {
            let requests = [(r.source.clone(), vec![Delivery::Env])];
            let mut resolved = crate::resolve::resolve(
                &requests,
                host.scope,
                host.config,
                &asker,
                || store.view(),
                |events| crate::audit::append(host.paths, events),
            )?;
            for l in &resolved.leases {
                lease.set(Some(lease.get().map_or(l.ttl, |t| t.min(l.ttl))));
            }
            resolved
                .values
                .remove(&r.source)
                .ok_or_else(|| Error::usage(format!("{} was not resolved", r.text)))
        })
        .collect()
}

/// The plugin's secrets by variable, or why it cannot have them (every
/// failing reference named, never a value).
pub fn secrets(
    plugin: &Plugin,
    host: &Host<'_>,
    store: &SharedStore,
) -> std::result::Result<Vec<(String, SecretValue)>, String> {
    secrets_and_lease(plugin, host, store).map(|(values, _)| values)
}

/// A plugin's secrets by variable name.
pub type Secrets = Vec<(String, SecretValue)>;

/// As `secrets`, with the shortest lease of the grants that allowed them.
pub fn secrets_and_lease(
    plugin: &Plugin,
    host: &Host<'_>,
    store: &SharedStore,
) -> std::result::Result<(Secrets, Option<u64>), String> {
    let mut values = Vec::new();
    let mut problems = Vec::new();
    let (results, lease) = resolve_each_with_lease(plugin, host, store);
    for (r, result) in plugin.secret_env_refs.iter().zip(results) {
        match result {
            Ok(v) => values.push((r.var.clone(), v)),
            Err(e) => problems.push(format!(
                "secret reference {} could not be resolved: {e}",
                r.text
            )),
        }
    }
    if problems.is_empty() {
        Ok((values, lease))
    } else {
        Err(problems.join("; "))
    }
}

/// Whether `name` is in the `minimal` base.
fn minimal(name: &str) -> bool {
    MINIMAL_ENV.iter().any(|g| glob(g, name))
}

/// The plugin's environment as `NAME=value\0` entries in wiping buffers:
/// the `inherit_env` base and `pass_env` names from `inherited` (never a
/// `SECRET_*` one), then `env`, then the secrets (which win).
#[must_use]
pub fn environment(
    plugin: &Plugin,
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    secrets: &[(String, SecretValue)],
) -> Vec<Zeroizing<Vec<u8>>> {
    let mut env: BTreeMap<Vec<u8>, Zeroizing<Vec<u8>>> = BTreeMap::new();
    for (k, v) in inherited {
        let name = k.to_string_lossy();
        let base = match plugin.inherit_env {
            InheritEnv::All => true,
            InheritEnv::Minimal => minimal(&name),
            InheritEnv::None => false,
        };
        let wanted = base || plugin.pass_env.iter().any(|g| glob(g, &name));
        if wanted && !name.starts_with("SECRET_") {
            env.insert(k.into_vec(), Zeroizing::new(v.into_vec()));
        }
    }
    for (k, v) in &plugin.env {
        env.insert(k.as_bytes().to_vec(), Zeroizing::new(v.as_bytes().to_vec()));
    }
    for (k, v) in secrets {
        env.insert(k.as_bytes().to_vec(), Zeroizing::new(v.expose().to_vec()));
    }
    env.into_iter()
        .filter(|(_, v)| !v.contains(&0))
        .map(|(k, v)| {
            let mut entry = Zeroizing::new(Vec::with_capacity(k.len() + v.len() + 2));
            entry.extend_from_slice(&k);
            entry.push(b'=');
            entry.extend_from_slice(&v);
            entry.push(0);
            entry
        })
        .collect()
}

/// How the plugin's descriptors are wired.
pub struct Wiring {
    /// The child's 0, 1, 2.
    pub stdio: [Option<RawFd>; 3],
    /// (ours, the child's): `notify_fd`.
    pub extra: Vec<(RawFd, RawFd)>,
}

/// Forks and execs the plugin in a new process group, with `env` as its
/// whole environment. `Err` says why it did not start, naming the path.
pub fn spawn(
    plugin: &Plugin,
    env: &[Zeroizing<Vec<u8>>],
    wiring: &Wiring,
) -> std::result::Result<Pid, String> {
    let nul = |what: &str| format!("{what} contains a NUL byte");
    let argv: Vec<CString> = std::iter::once(plugin.command.as_str())
        .chain(plugin.args.iter().map(String::as_str))
        .map(|a| CString::new(a).map_err(|_| nul("an argument")))
        .collect::<std::result::Result<_, _>>()?;
    let envp: Vec<&CStr> = env
        .iter()
        .filter_map(|e| CStr::from_bytes_with_nul(e).ok())
        .collect();
    let program = plugin.program.as_os_str();
    let candidates = if program.as_bytes().contains(&b'/') {
        vec![CString::new(program.as_bytes()).map_err(|_| nul("the command"))?]
    } else {
        crate::exec::candidates(program, env)
    };
    let cwd = CString::new(plugin.cwd.as_os_str().as_bytes()).map_err(|_| nul("cwd"))?;
    let spec = SpawnSpec {
        candidates: &candidates,
        argv: &argv,
        envp: &envp,
        new_group: true,
        death_signal: Some(Signal::SIGKILL),
        stdio: wiring.stdio,
        keep_fds: &[],
        controlling_tty: None,
        cwd: Some(&cwd),
        extra_fds: &wiring.extra,
    };
    let shown = plugin.program.display();
    sys::spawn(&spec).map_err(|e| match e {
        SpawnError::NotFound if candidates.len() == 1 => {
            format!("command not found: {shown}")
        }
        SpawnError::NotFound => format!("command not found: {shown} (not in the plugin's PATH)"),
        SpawnError::NotExecutable(errno) => {
            format!("cannot execute {shown}: {}", std::io::Error::from(errno))
        }
        SpawnError::System(errno) => {
            format!("cannot start {shown}: {}", std::io::Error::from(errno))
        }
    })
}

/// Whether any reference is to the local store.
#[must_use]
pub fn needs_store(plugin: &Plugin) -> bool {
    plugin
        .secret_env_refs
        .iter()
        .any(|r| matches!(r.source, Source::Local(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::config::Config;
    use std::path::Path;

    fn plugin(extra: &str) -> Plugin {
        let text = format!("[[plugins]]\nid = \"a\"\ncommand = \"x\"\n{extra}\n");
        let dir = std::env::temp_dir();
        let mut c = Config::parse(&text, Path::new("p.toml"), &dir, &|_| false).expect("valid");
        c.plugins.remove(0)
    }

    fn names(env: &[Zeroizing<Vec<u8>>]) -> Vec<String> {
        env.iter()
            .map(|e| {
                let s = String::from_utf8_lossy(e);
                s.split('=').next().unwrap_or_default().to_owned()
            })
            .collect()
    }

    fn inherited() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/bin"),
            ("HOME", "/h"),
            ("LC_TIME", "C"),
            ("EDITOR", "vi"),
            ("AWS_REGION", "eu"),
            ("SECRET_PASSPHRASE", "pw"),
            ("SECRET_KEY_BASE", "inherited"),
        ]
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
    }

    #[test]
    fn the_environment_is_built_in_layers() {
        let p = plugin("pass_env = [\"AWS_*\"]\nenv = { EDITOR = \"nano\", AT = \"@@x\" }");
        let secrets = vec![("TOKEN".to_owned(), SecretValue::new(b"tok".to_vec()))];
        let env = environment(&p, inherited(), &secrets);
        assert_eq!(
            names(&env),
            [
                "AT",
                "AWS_REGION",
                "EDITOR",
                "HOME",
                "LC_TIME",
                "PATH",
                "TOKEN"
            ]
        );
        assert!(env.iter().any(|e| &e[..] == b"EDITOR=nano\0"));
        assert!(env.iter().any(|e| &e[..] == b"AT=@x\0"));

        let all = plugin("inherit_env = \"all\"\nenv = { SECRET_KEY_BASE = \"mine\" }");
        let env = environment(&all, inherited(), &[]);
        assert!(!names(&env).contains(&"SECRET_PASSPHRASE".to_owned()));
        assert!(env.iter().any(|e| &e[..] == b"SECRET_KEY_BASE=mine\0"));
        assert!(names(&env).contains(&"EDITOR".to_owned()));

        let none = plugin("inherit_env = \"none\"\npass_env = [\"SECRET_*\", \"HOME\"]");
        assert_eq!(names(&environment(&none, inherited(), &[])), ["HOME"]);
    }
}

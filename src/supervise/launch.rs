//! Starting one plugin: resolving its `secret_env_refs` and
//! `secret_proxy_refs` for consumer = its id (through grants.toml, audited,
//! by the one resolver), building its environment (the `inherit_env` base
//! and `pass_env`, then `env`, then secrets, then the proxy's variables)
//! and spawning it in a process group of its own, both through `child`, as
//! `exec` does. It never touches our own environment and never
//! puts a value on argv. What happens to the plugin afterwards is `run`'s.

use std::ffi::{CString, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use zeroize::Zeroizing;

use super::config::{InheritEnv, MINIMAL_ENV, Plugin};
use super::{Host, SharedStore};
use crate::child::env::{Inherit, Var};
use crate::child::{self};
use crate::error::{Error, Result};
use crate::grants::Delivery;
use crate::handle::Source;
use crate::resolve::{self, Lease};
use crate::sys::SpawnSpec;
use crate::value::SecretValue;

/// What resolving a plugin's references came to: one result per
/// reference, in order (so a failure names it), the name each one's grant
/// is decided by (the handle that answered in scope), and the leases of
/// the grants that allowed them.
pub(crate) struct Resolved {
    pub values: Vec<Result<SecretValue>>,
    pub grant_keys: Vec<String>,
    pub leases: Vec<Lease>,
}

/// Resolves every reference of the plugin at once (delivery `env`, or
/// `http` for `secret_proxy_refs`). Each resolution and denial is audited.
pub(crate) fn resolve_each(plugin: &Plugin, host: &Host<'_>, store: &SharedStore) -> Resolved {
    let refs = &plugin.secret_env_refs;
    let grant_keys = refs
        .iter()
        .map(|r| r.source.grant_key().to_owned())
        .collect();
    if refs.is_empty() {
        return Resolved {
            values: Vec::new(),
            grant_keys,
            leases: Vec::new(),
        };
    }
    let requests = resolve::requests(refs.iter().map(|r| {
        let delivery = if r.proxy {
            Delivery::Http
        } else {
            Delivery::Env
        };
        (r.source.clone(), delivery)
    }));
    let resolved = store.grants(host.paths).and_then(|grants| {
        let consumer = super::consumer(&plugin.id);
        let asker = resolve::Asker {
            consumer: &consumer,
            purpose: None,
            grants: &grants,
        };
        store.with(resolve::needs_store(&requests), |open| {
            resolve::resolve(&requests, host.scope, host.config, &asker, open, |events| {
                crate::audit::append(host.paths, events)
            })
        })?
    });
    let mut resolutions = match resolved {
        Ok(r) => r,
        Err(e) => {
            let text = e.to_string();
            let hint = e.hint();
            let values = refs
                .iter()
                .map(|_| {
                    Err(match &hint {
                        Some(h) => Error::usage_hint(text.clone(), h.clone()),
                        None => Error::usage(text.clone()),
                    })
                })
                .collect();
            return Resolved {
                values,
                grant_keys,
                leases: Vec::new(),
            };
        }
    };
    let leases = resolutions.iter().filter_map(|r| r.lease.clone()).collect();
    let answered = crate::broker::proxy::answered(&resolutions);
    let grant_keys = refs
        .iter()
        .map(|r| {
            answered
                .iter()
                .find(|(s, _)| *s == r.source)
                .map_or_else(|| r.source.grant_key().to_owned(), |(_, k)| k.clone())
        })
        .collect();
    let values = refs
        .iter()
        .map(|r| {
            let found = resolutions.iter_mut().find(|x| x.source == r.source);
            match found.map(|x| &mut x.value) {
                // A source named twice: each variable gets its own copy.
                Some(Ok(v)) => Ok(SecretValue::new(v.expose().to_vec())),
                Some(slot) => std::mem::replace(
                    slot,
                    Err(Error::internal(format!("{} failed; see above", r.text))),
                ),
                None => Err(Error::internal(format!("{} was not resolved", r.text))),
            }
        })
        .collect();
    Resolved {
        values,
        grant_keys,
        leases,
    }
}

/// A plugin's secrets by variable name (one per reference, in order), the
/// name each one's grant is decided by, and the leases behind them.
pub(crate) struct Secrets {
    pub values: Vec<(String, SecretValue)>,
    pub grant_keys: Vec<String>,
    pub leases: Vec<Lease>,
}

impl Secrets {
    /// The shortest lease, if any grant has a ttl.
    #[must_use]
    pub(crate) fn shortest_lease(&self) -> Option<u64> {
        self.leases.iter().map(|l| l.ttl).min()
    }
}

/// The plugin's secrets, or why it cannot have them (every failing
/// reference named, never a value).
pub(crate) fn secrets(plugin: &Plugin, host: &Host<'_>, store: &SharedStore) -> Result<Secrets> {
    let mut values = Vec::new();
    let mut problems = Vec::new();
    let resolved = resolve_each(plugin, host, store);
    for (r, result) in plugin.secret_env_refs.iter().zip(resolved.values) {
        match result {
            Ok(v) => values.push((r.var.clone(), v)),
            Err(e) => problems.push((r.text.clone(), e)),
        }
    }
    if problems.is_empty() {
        Ok(Secrets {
            values,
            grant_keys: resolved.grant_keys,
            leases: resolved.leases,
        })
    } else {
        Err(Error::Unresolved { problems })
    }
}

/// The plugin's environment as `NAME=value\0` entries in wiping buffers,
/// built by `child::env` (so `SECRET_*` follows the one rule): the
/// `inherit_env` base and `pass_env` names from `inherited`, then `env`,
/// then the secrets, then the proxy's variables (which win).
#[must_use]
pub(crate) fn environment(
    plugin: &Plugin,
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    secrets: &[(String, SecretValue)],
    proxy: &[Var],
) -> Vec<Zeroizing<Vec<u8>>> {
    let mut keep: Vec<String> = plugin.pass_env.clone();
    if plugin.inherit_env == InheritEnv::Minimal {
        keep.extend(MINIMAL_ENV.iter().map(|g| (*g).to_owned()));
    }
    let inherit = Inherit {
        nothing: plugin.inherit_env != InheritEnv::All,
        keep,
        unset: Vec::new(),
    };
    let vars = plugin
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Zeroizing::new(v.as_bytes().to_vec())))
        .chain(
            secrets
                .iter()
                .map(|(k, v)| (k.clone(), Zeroizing::new(v.expose().to_vec()))),
        )
        .chain(proxy.iter().cloned());
    child::env::build(inherited, &inherit, vars)
}

/// How the plugin's descriptors are wired.
pub(crate) struct Wiring {
    /// The child's 0, 1, 2.
    pub stdio: [Option<RawFd>; 3],
    /// (ours, the child's): `notify_fd`.
    pub extra: Vec<(RawFd, RawFd)>,
}

/// Starts the plugin through `child::spawn` in a new process group, with
/// `env` as its whole environment. `Err` says why it did not start, naming
/// the path.
pub(crate) fn spawn(plugin: &Plugin, env: &[Zeroizing<Vec<u8>>], wiring: &Wiring) -> Result<Pid> {
    let argv = child::spawn::argv(
        &std::iter::once(plugin.command.as_str())
            .chain(plugin.args.iter().map(String::as_str))
            .collect::<Vec<_>>(),
    )?;
    let envp = child::spawn::envp(env)?;
    let program = plugin.program.as_os_str();
    let candidates = child::spawn::candidates(program, env);
    let cwd = CString::new(plugin.cwd.as_os_str().as_bytes())
        .map_err(|_| Error::usage("cwd contains a NUL byte"))?;
    let spec = SpawnSpec {
        candidates: &candidates,
        argv: &argv,
        envp: &envp,
        new_group: true,
        foreground_of: None,
        death_signal: Some(Signal::SIGKILL),
        stdio: wiring.stdio,
        keep_fds: &[],
        controlling_tty: None,
        cwd: Some(&cwd),
        extra_fds: &wiring.extra,
        monitor: None,
    };
    let shown = plugin.program.display().to_string();
    child::spawn::spawn(&spec, &shown).map_err(|e| match e {
        Error::CommandNotFound { program } if !program_has_slash(plugin) => {
            Error::CommandNotFound {
                program: format!("{program} (not in the plugin's PATH)"),
            }
        }
        other => other,
    })
}

fn program_has_slash(plugin: &Plugin) -> bool {
    plugin.program.as_os_str().as_bytes().contains(&b'/')
}

/// Whether any reference is to the local store.
#[must_use]
pub(crate) fn needs_store(plugin: &Plugin) -> bool {
    plugin
        .secret_env_refs
        .iter()
        .any(|r| matches!(r.source, Source::Local(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::config::PluginsFile;
    use std::path::Path;

    fn plugin(extra: &str) -> Plugin {
        let text = format!("[[plugins]]\nid = \"a\"\ncommand = \"x\"\n{extra}\n");
        let dir = std::env::temp_dir();
        let mut c =
            PluginsFile::parse(&text, Path::new("p.toml"), &dir, &|_| false).expect("valid");
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
        let proxy = vec![(
            "HTTPS_PROXY".to_owned(),
            Zeroizing::new(b"http://a".to_vec()),
        )];
        let env = environment(&p, inherited(), &secrets, &proxy);
        assert_eq!(
            names(&env),
            [
                "AT",
                "AWS_REGION",
                "EDITOR",
                "HOME",
                "HTTPS_PROXY",
                "LC_TIME",
                "PATH",
                "TOKEN"
            ]
        );
        assert!(env.iter().any(|e| &e[..] == b"EDITOR=nano\0"));
        assert!(env.iter().any(|e| &e[..] == b"AT=@x\0"));

        let all = plugin("inherit_env = \"all\"\nenv = { SECRET_KEY_BASE = \"mine\" }");
        let env = environment(&all, inherited(), &[], &[]);
        assert!(!names(&env).contains(&"SECRET_PASSPHRASE".to_owned()));
        assert!(env.iter().any(|e| &e[..] == b"SECRET_KEY_BASE=mine\0"));
        assert!(names(&env).contains(&"EDITOR".to_owned()));

        // The one rule for SECRET_*: control variables never pass, even
        // when asked for; other SECRET_ names are the plugin's business.
        let none = plugin("inherit_env = \"none\"\npass_env = [\"SECRET_*\", \"HOME\"]");
        assert_eq!(
            names(&environment(&none, inherited(), &[], &[])),
            ["HOME", "SECRET_KEY_BASE"]
        );
    }
}

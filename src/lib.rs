//! `secret`: keeps credentials out of files, history, logs and prompts, and
//! hands each one only to the process that needs it.
//!
//! The binary calls [`run`]; everything else lives in one module per
//! concept (see DESIGN notes in the README).

pub mod audit;
pub mod cli;
pub mod crypto;
pub mod docs;
pub mod error;
pub mod exec;
pub mod fsio;
pub mod grants;
pub mod handle;
pub mod mask;
pub mod passphrase;
pub mod paths;
pub mod process;
pub mod relay;
pub mod remote;
pub mod resolve;
pub mod show;
pub mod store;
pub mod supervise;
mod sys;
pub mod unlock;
pub mod value;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::audit::Event;
use crate::cli::{ChildArgs, Cli, Command, ExecArgs, GrantsCommand, RunArgs};
use crate::crypto::KdfParams;
use crate::error::{EXIT_EXEC_FAILED, Error, Result};
use crate::exec::Mapping;
use crate::grants::{Decision, Delivery, Grants};
use crate::handle::{Handle, Source};
use crate::passphrase::Sources;
use crate::paths::Paths;
use crate::show::Shown;
use crate::store::keychain::Keychain;
use crate::store::vault::Vault;
use crate::store::{Backend, Config, EntryMeta, Store};
use crate::value::SecretValue;

/// Runs the command line `args` (program name first) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    // Before parsing succeeds we can only guess whether this is a launch:
    // an `exec` or `run` word before `--` (and before any `plugins`, whose
    // own `run` is not one) makes our failures 125.
    let mut is_exec = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .find(|a| *a == "exec" || *a == "run" || *a == "plugins")
        .is_some_and(|a| a != "plugins");
    sys::harden();
    sys::close_on_exec_inherited();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => {
            is_exec = matches!(cli.command, Command::Exec(_) | Command::Run(_));
            cli
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(match (e.use_stderr(), is_exec) {
                (false, _) => 0,
                (true, true) => EXIT_EXEC_FAILED,
                (true, false) => 2,
            });
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut msg = format!("secret: {e}\n");
            if let Some(hint) = e.hint() {
                msg.push_str(&format!("  hint: {hint}\n"));
            }
            let _ = std::io::stderr().write_all(msg.as_bytes());
            ExitCode::from(e.exit_code(is_exec))
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    unlock::isolate_children()?;
    let sources = Sources {
        fd: cli.passphrase_fd,
        new_fd: None,
    };
    match cli.command {
        Command::Generate { what, dir } => docs::generate(what, &dir).map(|()| 0),
        command => {
            let paths = Paths::from_env()?;
            let config = Config::load(&paths)?;
            let scope = resolve::Scope::parse(cli.scope.as_deref())?;
            let ctx = Context {
                paths,
                sources,
                scope,
                config,
            };
            ctx.command(command)
        }
    }
}

struct Context {
    paths: Paths,
    sources: Sources,
    scope: resolve::Scope,
    config: Config,
}

impl Context {
    fn command(mut self, command: Command) -> Result<u8> {
        match command {
            Command::Init { backend } => self.init(backend),
            Command::Add {
                handle,
                stdin,
                provider,
                kind,
            } => {
                let handle = Handle::parse(&handle)?;
                store::check_label("provider", &provider)?;
                store::check_label("kind", &kind)?;
                if kind == resolve::LINK_KIND {
                    return Err(Error::usage_hint(
                        "--kind link is reserved for links",
                        format!("make a link with: secret link {handle} vault://mount/path#field"),
                    ));
                }
                let mut store = self.open_store()?;
                let value = passphrase::read_value(&handle.to_string(), stdin)?;
                let meta = store.add(&handle, &value, &provider, &kind)?;
                self.changed("add", &meta, "added")
            }
            Command::Rotate { handle, stdin } => {
                let handle = Handle::parse(&handle)?;
                let mut store = self.open_store()?;
                if store.meta(&handle)?.kind == resolve::LINK_KIND {
                    return Err(Error::usage_hint(
                        format!("{handle} is a link; its value lives in the remote store"),
                        format!(
                            "rotate it there, or point the link elsewhere with: secret link {handle} REFERENCE"
                        ),
                    ));
                }
                let value = passphrase::read_value(&handle.to_string(), stdin)?;
                let meta = store.rotate(&handle, &value)?;
                self.changed("rotate", &meta, "rotated")
            }
            Command::Rm { handle } => {
                let handle = Handle::parse(&handle)?;
                let meta = self.open_store()?.remove(&handle)?;
                self.changed("rm", &meta, "removed")
            }
            Command::List { json } => {
                let store = self.open_store()?;
                let shown = store
                    .list()?
                    .into_iter()
                    .map(|meta| Shown::new(store.as_ref(), meta, None))
                    .collect::<Result<Vec<_>>>()?;
                print(&if json {
                    show::json_list(&shown)
                } else {
                    show::table(&shown)
                })
            }
            Command::Inspect { handle, json } => {
                let handle = Handle::parse(&handle)?;
                let store = self.open_store()?;
                let meta = resolve::find(store.as_ref(), &self.scope, &handle)?;
                let shown = Shown::new(store.as_ref(), meta, Some(&handle))?;
                print(&if json {
                    format!("{}\n", shown.json())
                } else {
                    shown.text()
                })
            }
            Command::Link { handle, reference } => self.link(&handle, &reference),
            Command::Grants(GrantsCommand::Check {
                handle,
                consumer,
                purpose,
                delivery,
            }) => self.grants_check(&handle, &consumer, purpose.as_deref(), delivery),
            Command::Audit {
                handle,
                json,
                verify,
            } => self.audit(handle, json, verify),
            Command::Passwd { new_passphrase_fd } => {
                self.sources.new_fd = new_passphrase_fd;
                self.passwd()
            }
            Command::Unlock { duration } => self.unlock(duration),
            Command::Lock => self.lock(),
            Command::Exec(args) => self.exec(args),
            Command::Run(args) => self.run_script(args),
            Command::Plugins(command) => supervise::command(
                command,
                &supervise::Host {
                    paths: &self.paths,
                    scope: &self.scope,
                    config: &self.config,
                    open_store: &|| self.open_store(),
                },
            ),
            Command::Generate { .. } => Ok(0),
        }
    }

    fn init(&self, backend: Backend) -> Result<u8> {
        let location = match backend {
            Backend::File => {
                let path = self.paths.vault_file();
                if path.exists() {
                    return Err(Error::AlreadyInitialized { path });
                }
                let passphrase = self.sources.for_new_vault()?;
                Vault::create(&self.paths, &passphrase, new_vault_params()?)?;
                path
            }
            Backend::Keychain => {
                Keychain::create(&self.paths)?;
                self.paths.keychain_meta_file()
            }
        };
        fsio::ensure_private_dir(&self.paths.config_dir)?;
        let mut config = Config::load(&self.paths)?;
        config.backend = Some(backend);
        config.save(&self.paths)?;
        let grants_file = self.paths.config_dir.join("grants.toml");
        if !grants_file.exists() {
            fsio::write_atomic(&grants_file, grants::DEFAULT_FILE.as_bytes())?;
        }
        self.record(&[Event {
            action: "init",
            outcome: "ok".into(),
            ..self.event()
        }])?;
        let what = match backend {
            Backend::File => "an encrypted file vault",
            Backend::Keychain => "a keychain store (values in the OS keychain) with its metadata",
        };
        print(&format!(
            "created {what} at {}\nnext: printf %s \"$MY_KEY\" | secret add @my_key --stdin\n",
            location.display()
        ))
    }

    /// Opens the store in force, unlocking it once.
    fn open_store(&self) -> Result<Box<dyn Store>> {
        match store::backend_in_force(&self.config)? {
            Backend::File => {
                let path = self.paths.vault_file();
                if !path.exists() {
                    return Err(Error::NotInitialized { path });
                }
                Ok(Box::new(Vault::open_cached_or(&self.paths, || {
                    self.sources.current()
                })?))
            }
            Backend::Keychain => Ok(Box::new(Keychain::open(&self.paths)?)),
        }
    }

    /// `secret grants check @name --consumer C`: explains what the grants
    /// decide, as `exec` would (after scopes). Exit 0 allowed, 1 denied.
    fn grants_check(
        &self,
        reference: &str,
        consumer: &str,
        purpose: Option<&str>,
        delivery: Delivery,
    ) -> Result<u8> {
        let grants = Grants::load(&self.paths)?;
        let secret = if reference.starts_with('@') {
            let handle = Handle::parse(reference)?;
            // Match what exec would resolve: the handle that answers in scope.
            match self
                .open_store()
                .and_then(|store| resolve::find(store.as_ref(), &self.scope, &handle))
            {
                Ok(meta) => meta.handle,
                Err(Error::NoSuchSecret { .. } | Error::NotInitialized { .. }) => {
                    handle.name().to_owned()
                }
                Err(e) => return Err(e),
            }
        } else {
            reference.to_owned()
        };
        let req = grants::Request {
            secret: &secret,
            consumer,
            purpose,
            delivery,
        };
        match grants.decide(&req) {
            Decision::Allowed(g) => print(&format!(
                "allowed: {}:{} grants secret_ref \"{}\" to consumer \"{}\"{}{}\n",
                grants.path().display(),
                g.line,
                g.secret_ref,
                g.consumer,
                g.purposes
                    .as_ref()
                    .map_or(String::new(), |p| format!(", purposes {p:?}")),
                g.ttl_secs
                    .map_or(String::new(), |t| format!(", lease {t}s")),
            )),
            Decision::Denied(why) => {
                print(&format!(
                    "denied: {why}\nto allow it, add to {}:\n{}\n",
                    grants.path().display(),
                    Grants::suggestion(&req)
                ))?;
                Ok(1)
            }
        }
    }

    /// `secret link @name REFERENCE`: a local handle that resolves remotely.
    /// Re-linking an existing link points it elsewhere; a stored secret is
    /// never replaced by a link.
    fn link(&self, handle: &str, reference: &str) -> Result<u8> {
        let handle = Handle::parse(handle)?;
        let remote = remote::Remote::parse(reference, &self.config).unwrap_or_else(|| {
            Err(Error::usage_hint(
                format!("\"{reference}\" is not a remote reference"),
                "use vault://MOUNT/PATH#FIELD, azure-kv://VAULT/SECRET, op://…, pass://… or a configured provider",
            ))
        })?;
        let text = remote.to_string();
        let scheme = text.split_once("://").map_or("", |(s, _)| s).to_owned();
        let value = SecretValue::new(text.clone().into_bytes());
        let mut store = self.open_store()?;
        let meta = match store.meta(&handle) {
            Ok(m) if m.kind == resolve::LINK_KIND => store.rotate(&handle, &value)?,
            Ok(_) => {
                return Err(Error::usage_hint(
                    format!("{handle} holds a secret; a link would replace it"),
                    format!("remove it first with: secret rm {handle}"),
                ));
            }
            Err(Error::NoSuchSecret { .. }) => {
                store.add(&handle, &value, &scheme, resolve::LINK_KIND)?
            }
            Err(e) => return Err(e),
        };
        self.record(&[Event {
            action: "link",
            handle: Some(meta.handle.clone()),
            reference: Some(text.clone()),
            outcome: "ok".into(),
            ..self.event()
        }])?;
        print(&format!("linked @{} -> {text}\n", meta.handle))
    }

    /// Which `scheme://` prefixes are remote references.
    fn schemes(&self) -> impl Fn(&str) -> bool + '_ {
        |scheme| remote::is_scheme(scheme, &self.config)
    }

    fn event(&self) -> Event {
        Event {
            consumer: "cli".into(),
            ..Event::default()
        }
    }

    fn record(&self, events: &[Event]) -> Result<()> {
        audit::append(&self.paths, events)
    }

    fn changed(&self, action: &'static str, meta: &EntryMeta, verb: &str) -> Result<u8> {
        self.record(&[Event {
            action,
            handle: Some(meta.handle.clone()),
            outcome: "ok".into(),
            fingerprint: Some(meta.fingerprint.clone()),
            ..self.event()
        }])?;
        print(&format!(
            "{verb} @{} (version {}, fingerprint {})\n",
            meta.handle, meta.version, meta.fingerprint
        ))
    }

    /// `secret unlock --for D`: checks the passphrase, then caches the vault
    /// key in the kernel keyring for D.
    fn unlock(&self, duration: std::time::Duration) -> Result<u8> {
        let vault = self.open_vault_with_passphrase("unlock")?;
        unlock::store(vault.id(), vault.root_key(), duration)?;
        self.record(&[Event {
            action: "unlock",
            outcome: format!("ok for {}", humantime::format_duration(duration)),
            ..self.event()
        }])?;
        print(&format!(
            "unlocked for {}: commands skip the passphrase until then or `secret lock`\n",
            humantime::format_duration(duration)
        ))
    }

    /// `secret lock`: drops the cached key.
    fn lock(&self) -> Result<u8> {
        let path = self.paths.vault_file();
        let bytes = fsio::read_private(&path)?.ok_or(Error::NotInitialized { path })?;
        let id = store::vault::vault_id(&bytes)
            .ok_or_else(|| Error::damaged(self.paths.vault_file(), "it has no readable header"))?;
        let had = unlock::forget(&id);
        self.record(&[Event {
            action: "lock",
            outcome: if had { "ok" } else { "ok (was not unlocked)" }.into(),
            ..self.event()
        }])?;
        print(if had {
            "locked: the cached key is gone\n"
        } else {
            "not unlocked: nothing to do\n"
        })
    }

    /// Opens the file vault with the passphrase, never the cache (for
    /// commands that must prove knowledge of it).
    fn open_vault_with_passphrase(&self, command: &str) -> Result<Vault> {
        if store::backend_in_force(&self.config)? != Backend::File {
            return Err(Error::usage(format!(
                "secret {command} is for the file vault; the keychain backend has no passphrase"
            )));
        }
        let path = self.paths.vault_file();
        if !path.exists() {
            return Err(Error::NotInitialized { path });
        }
        Vault::open(&self.paths, &self.sources.current()?)
    }

    fn passwd(&self) -> Result<u8> {
        let mut vault = self.open_vault_with_passphrase("passwd")?;
        let new = self.sources.replacement()?;
        vault.change_passphrase(&new)?;
        self.record(&[Event {
            action: "passwd",
            outcome: "ok".into(),
            ..self.event()
        }])?;
        print("passphrase changed; the old one no longer opens the vault\n")
    }

    fn audit(&self, handle: Option<String>, json: bool, verify: bool) -> Result<u8> {
        if verify {
            let _store = self.open_store()?; // its key checks each line's mac
            return print(&audit::verify(&self.paths)?.to_string());
        }
        let handle = handle.map(|h| Handle::parse(&h)).transpose()?;
        let records = audit::read(&self.paths)?;
        let mut out = String::new();
        for r in records.iter().filter(|r| {
            handle
                .as_ref()
                .is_none_or(|h| r.handle.as_deref() == Some(h.name()))
        }) {
            if json {
                out.push_str(&serde_json::to_string(r).unwrap_or_default());
                out.push('\n');
            } else {
                out.push_str(&format!(
                    "{:>5}  {}  {:<8} {:<24} {:<8} {}{}\n",
                    r.seq,
                    r.time,
                    r.action,
                    r.handle
                        .as_ref()
                        .map_or("-".to_owned(), |h| format!("@{h}")),
                    r.consumer,
                    r.outcome,
                    r.fingerprint
                        .as_ref()
                        .map_or(String::new(), |f| format!("  fingerprint {f}")),
                ));
            }
        }
        print(&out)
    }

    fn exec(&self, args: ExecArgs) -> Result<u8> {
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
            mappings.extend(exec::parse_env_file(file, &self.schemes())?);
        }
        for arg in &args.env {
            mappings.push(exec::parse_env_arg(arg, &self.schemes())?);
        }
        self.launch(&args.command, mappings, Vec::new(), &args.child)
    }

    /// `secret run INTERPRETER SCRIPT ARGS…`: the script's header names its
    /// secrets.
    fn run_script(&self, args: RunArgs) -> Result<u8> {
        let (mappings, files) = exec::parse_script_header(&args.script, &self.schemes())?;
        let mut command = vec![args.interpreter, args.script.into_os_string()];
        command.extend(args.args);
        self.launch(&command, mappings, files, &args.child)
    }

    fn launch(
        &self,
        command: &[OsString],
        mappings: Vec<Mapping>,
        mut files: Vec<Mapping>,
        child: &ChildArgs,
    ) -> Result<u8> {
        for arg in &child.file {
            files.push(exec::parse_file_arg(arg, &self.schemes())?);
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
        let grants = Grants::load(&self.paths)?;
        let asker = resolve::Asker {
            consumer: &child.consumer,
            purpose: child.purpose.as_deref(),
            grants: &grants,
        };
        let resolved = self.resolve(&requests, &asker)?;
        let watch = self.lease_watch(resolved.leases, child);
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
        &self,
        leases: Vec<resolve::Lease>,
        child: &ChildArgs,
    ) -> Option<exec::LeaseWatch> {
        let ttl = leases.iter().map(|l| l.ttl).min()?;
        let paths = self.paths.clone();
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
                    handle: (!l.secret.contains("://")).then(|| l.secret.clone()),
                    reference: l.secret.contains("://").then(|| l.secret.clone()),
                    consumer: consumer.clone(),
                    purpose: purpose.clone(),
                    outcome: match &outcome {
                        Ok(()) => format!("ok (lease {}s)", l.ttl),
                        Err(_) => "revoked: the grant was withdrawn; stopping the holder".into(),
                    },
                    ..Event::default()
                })
                .collect();
            audit::append(&paths, &events)?;
            outcome
        };
        Some(exec::LeaseWatch {
            every: std::time::Duration::from_millis(ttl.saturating_mul(500).max(200)),
            renew: Box::new(renew),
            stop_timeout: child.stop_timeout,
        })
    }

    /// Resolves every request with at most one unlock, through the grants,
    /// recording each resolution. A missing or denied one stops everything:
    /// no command runs with an empty value.
    fn resolve(
        &self,
        requests: &[(Source, Vec<Delivery>)],
        asker: &resolve::Asker<'_>,
    ) -> Result<resolve::Resolved> {
        resolve::resolve(
            requests,
            &self.scope,
            &self.config,
            asker,
            || self.open_store(),
            |events| self.record(events),
        )
    }
}

/// The parameters for a new vault: the default, or (debug builds only, for
/// tests that make many vaults) a fast set below the floor.
fn new_vault_params() -> Result<KdfParams> {
    if std::env::var_os("SECRET_TEST_FAST_KDF").is_some_and(|v| v == "1") {
        if cfg!(debug_assertions) {
            return Ok(KdfParams::TEST_ONLY);
        }
        return Err(Error::usage(
            "SECRET_TEST_FAST_KDF is only honoured by debug builds; unset it",
        ));
    }
    Ok(KdfParams::DEFAULT)
}

fn print(text: &str) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(0)
}

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
pub mod handle;
pub mod mask;
pub mod passphrase;
pub mod paths;
pub mod process;
pub mod relay;
pub mod store;
mod sys;
pub mod unlock;
pub mod value;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::audit::Event;
use crate::cli::{ChildArgs, Cli, Command, ExecArgs, RunArgs};
use crate::crypto::KdfParams;
use crate::error::{EXIT_EXEC_FAILED, Error, Result};
use crate::exec::Mapping;
use crate::handle::Handle;
use crate::passphrase::Sources;
use crate::paths::Paths;
use crate::store::keychain::Keychain;
use crate::store::vault::Vault;
use crate::store::{Backend, Config, EntryMeta, Store};
use crate::value::SecretValue;

/// Runs the command line `args` (program name first) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let is_exec = args.get(1).is_some_and(|a| a == "exec" || a == "run");
    sys::harden();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
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
    let sources = Sources {
        fd: cli.passphrase_fd,
        new_fd: None,
    };
    match cli.command {
        Command::Generate { what, dir } => docs::generate(what, &dir).map(|()| 0),
        command => {
            let paths = Paths::from_env()?;
            let ctx = Context { paths, sources };
            ctx.command(command)
        }
    }
}

struct Context {
    paths: Paths,
    sources: Sources,
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
                let mut store = self.open_store()?;
                let value = passphrase::read_value(&handle.to_string(), stdin)?;
                let meta = store.add(&handle, &value, &provider, &kind)?;
                self.changed("add", &meta, "added")
            }
            Command::Rotate { handle, stdin } => {
                let handle = Handle::parse(&handle)?;
                let mut store = self.open_store()?;
                store.meta(&handle)?;
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
                let entries = store.list()?;
                print(&if json {
                    json_list(&entries, store.backend())
                } else {
                    table(&entries, store.backend())
                })
            }
            Command::Inspect { handle, json } => {
                let handle = Handle::parse(&handle)?;
                let store = self.open_store()?;
                let meta = store.meta(&handle)?;
                print(&if json {
                    format!("{}\n", json_entry(&meta, store.backend()))
                } else {
                    inspect_text(&meta, store.backend())
                })
            }
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
        Config {
            backend: Some(backend),
        }
        .save(&self.paths)?;
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
        match store::backend_in_force(&self.paths)? {
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
        if store::backend_in_force(&self.paths)? != Backend::File {
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
            let (count, head) = audit::verify(&self.paths)?;
            return print(&format!(
                "audit trail intact: {count} records; last record hash {head}\n"
            ));
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
            mappings.extend(exec::parse_env_file(file)?);
        }
        for arg in &args.env {
            mappings.push(exec::parse_env_arg(arg)?);
        }
        self.launch(&args.command, mappings, Vec::new(), &args.child)
    }

    /// `secret run INTERPRETER SCRIPT ARGS…`: the script's header names its
    /// secrets.
    fn run_script(&self, args: RunArgs) -> Result<u8> {
        let (mappings, files) = exec::parse_script_header(&args.script)?;
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
            files.push(exec::parse_file_arg(arg)?);
        }
        let values = self.resolve(&exec::handles(mappings.iter().chain(&files)), "exec")?;
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
        };
        exec::launch(&plan, values)
    }

    /// Resolves every handle with one unlock, recording each resolution.
    /// A missing handle stops everything: no command runs with an empty value.
    fn resolve(&self, handles: &[Handle], consumer: &str) -> Result<BTreeMap<Handle, SecretValue>> {
        let mut values = BTreeMap::new();
        if handles.is_empty() {
            return Ok(values);
        }
        let store = self.open_store()?;
        let mut events = Vec::new();
        let mut failure = None;
        for handle in handles {
            let event = Event {
                action: "resolve",
                handle: Some(handle.name().to_owned()),
                consumer: consumer.to_owned(),
                ..Event::default()
            };
            match store.get(handle) {
                Ok(value) => {
                    let fingerprint = store.meta(handle).ok().map(|m| m.fingerprint);
                    events.push(Event {
                        outcome: "ok".into(),
                        fingerprint,
                        ..event
                    });
                    values.insert(handle.clone(), value);
                }
                Err(e) => {
                    events.push(Event {
                        outcome: match e {
                            Error::NoSuchSecret { .. } => "missing".into(),
                            _ => "error".into(),
                        },
                        ..event
                    });
                    failure.get_or_insert(e);
                }
            }
        }
        self.record(&events)?;
        match failure {
            Some(e) => Err(e),
            None => Ok(values),
        }
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

fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

fn json_entry(m: &EntryMeta, backend: Backend) -> serde_json::Value {
    serde_json::json!({
        "handle": format!("@{}", m.handle),
        "provider": m.provider,
        "kind": m.kind,
        "fingerprint": m.fingerprint,
        "created": time(m.created),
        "rotated": m.rotated.map(time),
        "version": m.version,
        "backend": backend.to_string(),
    })
}

fn json_list(entries: &[EntryMeta], backend: Backend) -> String {
    let list: Vec<_> = entries.iter().map(|m| json_entry(m, backend)).collect();
    format!("{}\n", serde_json::Value::Array(list))
}

fn table(entries: &[EntryMeta], backend: Backend) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|m| {
            [
                format!("@{}", m.handle),
                dash(&m.provider),
                dash(&m.kind),
                m.version.to_string(),
                m.fingerprint.clone(),
                time(m.rotated.unwrap_or(m.created)),
                backend.to_string(),
            ]
        })
        .collect();
    let header = [
        "HANDLE",
        "PROVIDER",
        "KIND",
        "VERSION",
        "FINGERPRINT",
        "UPDATED",
        "BACKEND",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn inspect_text(m: &EntryMeta, backend: Backend) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    format!(
        "handle:      @{}\nprovider:    {}\nkind:        {}\nfingerprint: {}\ncreated:     {}\nrotated:     {}\nversion:     {}\nbackend:     {}\n",
        m.handle,
        dash(&m.provider),
        dash(&m.kind),
        m.fingerprint,
        time(m.created),
        m.rotated.map_or("never".to_owned(), time),
        m.version,
        backend
    )
}

//! `secret exec`: turning `--env`, `--env-file` and `--file` mappings into a
//! child's environment and in-memory files, then starting the child through
//! `process`. The environment is built explicitly in wiping buffers (never
//! `set_var` in our own process) and handed to the child alone; once the child
//! runs, every buffer holding a value is dropped. Resolution of handles is the
//! caller's (`lib.rs` asks the store once for every handle).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::signal::Signal;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::handle::{Part, Reference, Source, is_env_name};
use crate::mask::{MIN_MASKED_LEN, Redactor};
use crate::paths::CONTROL_VARIABLES;
use crate::process::{self, Supervision};
use crate::relay::Plumbing;
use crate::sys::{self, SpawnSpec};
use crate::value::SecretValue;

/// One `VAR=REF` mapping and where it was written, for messages.
#[derive(Debug)]
pub struct Mapping {
    pub var: String,
    pub reference: Reference,
    pub origin: String,
}

/// Says whether `scheme://…` is a remote reference.
pub type Schemes<'a> = &'a dyn Fn(&str) -> bool;

/// Parses `--env VAR=REF`.
pub fn parse_env_arg(arg: &str, remote: Schemes<'_>) -> Result<Mapping> {
    parse_mapping(arg, "--env", remote)
}

/// Parses `--file VAR=@handle`.
pub fn parse_file_arg(arg: &str, remote: Schemes<'_>) -> Result<Mapping> {
    parse_file_arg_mapping(parse_mapping(arg, "--file", remote)?)
}

fn parse_mapping(text: &str, origin: &str, remote: Schemes<'_>) -> Result<Mapping> {
    let Some((var, reference)) = text.split_once('=') else {
        return Err(Error::usage_hint(
            format!(
                "{origin}: \"{}\" is not VAR=REFERENCE",
                text.escape_default()
            ),
            "write it as OPENAI_API_KEY=@openai_api_key",
        ));
    };
    if !is_env_name(var) {
        return Err(Error::usage(format!(
            "{origin}: \"{}\" is not a valid environment variable name (letters, digits and _, not starting with a digit)",
            var.escape_default()
        )));
    }
    let reference = Reference::parse_with(reference, remote).map_err(|e| match e {
        Error::Usage { message, hint } => Error::Usage {
            message: format!("{origin}: {var}: {message}"),
            hint,
        },
        other => other,
    })?;
    Ok(Mapping {
        var: var.to_owned(),
        reference,
        origin: origin.to_owned(),
    })
}

/// Parses an env file: `VAR=@handle` (or template) lines, `#` comments and
/// blank lines (an optional leading `export ` is allowed). Literal values are
/// refused: the file is meant to be safe to commit.
pub fn parse_env_file(path: &Path, remote: Schemes<'_>) -> Result<Vec<Mapping>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading env file {}", path.display()), e))?;
    let mut out: Vec<Mapping> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let origin = format!("{}:{}", path.display(), i + 1);
        let mapping = parse_mapping(line, &origin, remote)?;
        if let Reference::Literal(_) = mapping.reference {
            return Err(Error::usage_hint(
                format!(
                    "{origin}: {} has a literal value; env files hold only references",
                    mapping.var
                ),
                format!(
                    "store the value with `secret add @{} --stdin` and write {}=@{} (\"@@\" starts a literal \"@\"; pass other literals with --env)",
                    mapping.var.to_lowercase(),
                    mapping.var,
                    mapping.var.to_lowercase()
                ),
            ));
        }
        if let Some(first) = out.iter().find(|m| m.var == mapping.var) {
            return Err(Error::usage(format!(
                "{origin}: {} is already set at {}",
                mapping.var, first.origin
            )));
        }
        out.push(mapping);
    }
    Ok(out)
}

/// Reads the `# secret: VAR=@ref` and `# secret-file: VAR=@ref` lines of a
/// script's header: the comment block after the `#!` line (blank lines
/// allowed), up to the first line of code. Returns (env, file) mappings.
pub fn parse_script_header(
    path: &Path,
    remote: Schemes<'_>,
) -> Result<(Vec<Mapping>, Vec<Mapping>)> {
    let text = std::fs::read(path)
        .map_err(|e| Error::io(format!("reading script {}", path.display()), e))?;
    let text = String::from_utf8_lossy(&text);
    let (mut env, mut files) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if (i == 0 && line.starts_with("#!")) || line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let comment = comment.trim();
        let origin = format!("{}:{}", path.display(), i + 1);
        if let Some(rest) = comment.strip_prefix("secret-file:") {
            let mapping = parse_mapping(rest.trim(), &origin, remote)?;
            files.push(parse_file_arg_mapping(mapping)?);
        } else if let Some(rest) = comment.strip_prefix("secret:") {
            let mapping = parse_mapping(rest.trim(), &origin, remote)?;
            if let Reference::Literal(_) = mapping.reference {
                return Err(Error::usage(format!(
                    "{origin}: {} has a literal value; `# secret:` lines hold references such as {}=@name",
                    mapping.var, mapping.var
                )));
            }
            env.push(mapping);
        }
    }
    Ok((env, files))
}

fn parse_file_arg_mapping(mapping: Mapping) -> Result<Mapping> {
    match mapping.reference {
        Reference::Handle(_) | Reference::Remote(_) => Ok(mapping),
        _ => Err(Error::usage_hint(
            format!(
                "{}: {}: a file's value must be a handle",
                mapping.origin, mapping.var
            ),
            format!("write {}=@name", mapping.var),
        )),
    }
}

/// The distinct sources the mappings refer to, in first-use order.
#[must_use]
pub fn sources<'a>(mappings: impl IntoIterator<Item = &'a Mapping>) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for s in mappings.into_iter().flat_map(|m| m.reference.sources()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// How the inherited environment is trimmed before the mappings apply.
#[derive(Debug, Default)]
pub struct Inherit {
    /// `-i`: start empty, then add back `keep`.
    pub ignore_environment: bool,
    /// `--keep NAME|GLOB` (with `-i`).
    pub keep: Vec<String>,
    /// `--unset NAME`.
    pub unset: Vec<String>,
}

impl Inherit {
    fn admits(&self, name: &OsStr) -> bool {
        let name = name.to_string_lossy();
        if CONTROL_VARIABLES.contains(&name.as_ref()) || self.unset.iter().any(|u| *u == name) {
            return false;
        }
        !self.ignore_environment || self.keep.iter().any(|g| glob(g, &name))
    }
}

/// `*` matches any run, `?` one character; everything else itself.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The child's environment as `NAME=value` C strings in wiping buffers:
/// the inherited variables `inherit` admits, then the mappings in order (a
/// later mapping of the same variable wins), then the `--file` paths.
pub fn child_env(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    inherit: &Inherit,
    mappings: &[Mapping],
    files: &[(String, String)],
    values: &BTreeMap<Source, SecretValue>,
) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    let mut env: BTreeMap<Vec<u8>, Zeroizing<Vec<u8>>> = BTreeMap::new();
    for (k, v) in inherited {
        if inherit.admits(&k) {
            env.insert(k.as_bytes().to_vec(), Zeroizing::new(v.as_bytes().to_vec()));
        }
    }
    for m in mappings {
        let value = match &m.reference {
            Reference::Literal(s) => Zeroizing::new(s.as_bytes().to_vec()),
            Reference::Handle(h) => {
                Zeroizing::new(lookup(values, &Source::Local(h.clone()))?.to_vec())
            }
            Reference::Remote(r) => {
                Zeroizing::new(lookup(values, &Source::Remote(r.clone()))?.to_vec())
            }
            Reference::Template(parts) => {
                let mut out = Zeroizing::new(Vec::new());
                for part in parts {
                    match part {
                        Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                        Part::Handle(h) => {
                            out.extend_from_slice(lookup(values, &Source::Local(h.clone()))?)
                        }
                    }
                }
                out
            }
        };
        env.insert(m.var.as_bytes().to_vec(), value);
    }
    for (var, path) in files {
        env.insert(
            var.as_bytes().to_vec(),
            Zeroizing::new(path.as_bytes().to_vec()),
        );
    }
    let mut out = Vec::with_capacity(env.len());
    for (k, v) in env {
        if v.contains(&0) {
            // Inherited variables cannot hold NUL; stored values are checked.
            continue;
        }
        let mut entry = Zeroizing::new(Vec::with_capacity(k.len() + v.len() + 2));
        entry.extend_from_slice(&k);
        entry.push(b'=');
        entry.extend_from_slice(&v);
        entry.push(0);
        out.push(entry);
    }
    Ok(out)
}

fn lookup<'a>(values: &'a BTreeMap<Source, SecretValue>, source: &Source) -> Result<&'a [u8]> {
    values
        .get(source)
        .map(SecretValue::expose)
        .ok_or_else(|| match source {
            Source::Local(h) => Error::NoSuchSecret { handle: h.clone() },
            Source::Remote(r) => Error::usage(format!("{r} was not resolved")),
        })
}

/// Where to look for `program`: itself when it has a `/`, else each
/// directory of the child's PATH, as execvp would (but with the child's PATH).
pub(crate) fn candidates(program: &OsStr, env: &[Zeroizing<Vec<u8>>]) -> Vec<CString> {
    let bytes = program.as_bytes();
    if bytes.contains(&b'/') {
        return CString::new(bytes).into_iter().collect();
    }
    let path = env
        .iter()
        .find_map(|e| {
            e.strip_prefix(b"PATH=")
                .map(|v| v.strip_suffix(b"\0").unwrap_or(v).to_vec())
        })
        .unwrap_or_else(|| b"/usr/local/bin:/usr/bin:/bin".to_vec());
    path.split(|&b| b == b':')
        .filter_map(|dir| {
            let dir = if dir.is_empty() { &b"."[..] } else { dir };
            let mut full = dir.to_vec();
            full.push(b'/');
            full.extend_from_slice(bytes);
            CString::new(full).ok()
        })
        .collect()
}

/// A value projected as an in-memory file: a sealed memfd the child
/// inherits, named by `/dev/fd/N`. It is gone when the child exits.
fn memfd_for(var: &str, value: &SecretValue) -> Result<OwnedFd> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let io = |e: nix::errno::Errno| {
        Error::io(
            format!("--file {var}: creating the in-memory file"),
            e.into(),
        )
    };
    let name =
        CString::new(format!("secret-{var}")).map_err(|_| Error::usage("bad --file name"))?;
    let fd = memfd_create(
        name.as_c_str(),
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(io)?;
    let mut written = 0;
    while written < value.len() {
        written += nix::unistd::write(&fd, &value.expose()[written..]).map_err(io)?;
    }
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_SEAL;
    fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).map_err(io)?;
    Ok(fd)
}

/// Everything `launch` needs besides the resolved values.
pub struct Launch<'a> {
    pub command: &'a [OsString],
    pub mappings: &'a [Mapping],
    pub files: &'a [Mapping],
    pub inherit: &'a Inherit,
    /// `--exec`: replace `secret` with the command.
    pub replace: bool,
    pub death_signal: Option<Signal>,
    pub supervision: Supervision,
    /// Pass the child's output through the redactor.
    pub mask: bool,
    /// Renew leases while the child runs.
    pub leases: Option<LeaseWatch>,
}

/// Lease renewal for a running child.
pub struct LeaseWatch {
    /// How often to renew.
    pub every: std::time::Duration,
    /// Checks the grants again (and records it); `Err` when withdrawn.
    pub renew: Box<dyn Fn() -> Result<()> + Send>,
    /// After the stop signal, how long before SIGKILL.
    pub stop_timeout: std::time::Duration,
}

impl LeaseWatch {
    /// Renews until `done`; on a withdrawn grant, stops `child` (TERM, then
    /// KILL after the timeout).
    fn spawn(self, child: nix::unistd::Pid, done: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        use std::sync::atomic::Ordering;
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(self.every);
                if done.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = (self.renew)() {
                    eprintln!("secret: {e}; stopping {child}");
                    let _ = nix::sys::signal::kill(child, Signal::SIGTERM);
                    let deadline = std::time::Instant::now() + self.stop_timeout;
                    while std::time::Instant::now() < deadline {
                        if done.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                    return;
                }
            }
        });
    }
}

/// Builds the child's environment and files from `values`, starts it, drops
/// every value, then supervises it. Returns the exit code to report.
pub fn launch(plan: Launch<'_>, values: BTreeMap<Source, SecretValue>) -> Result<u8> {
    let Some(program) = plan.command.first() else {
        return Err(Error::usage_hint(
            "no command given",
            "put the command after --: secret exec --env K=@k -- CMD ARGS",
        ));
    };
    let shown = program.to_string_lossy().into_owned();
    let argv = plan
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::usage("an argument contains a NUL byte"))?;
    let mut memfds = Vec::new();
    let mut file_paths = Vec::new();
    for m in plan.files {
        let Some(source) = m.reference.sources().into_iter().next() else {
            continue;
        };
        let value = values.get(&source).ok_or_else(|| match &source {
            Source::Local(h) => Error::NoSuchSecret { handle: h.clone() },
            Source::Remote(r) => Error::usage(format!("{r} was not resolved")),
        })?;
        let fd = memfd_for(&m.var, value)?;
        file_paths.push((m.var.clone(), format!("/dev/fd/{}", fd.as_raw_fd())));
        memfds.push(fd);
    }
    let env = child_env(
        std::env::vars_os(),
        plan.inherit,
        plan.mappings,
        &file_paths,
        &values,
    )?;
    let redactor = if plan.mask && !plan.replace {
        Some(redactor_for(&values)?)
    } else {
        None
    };
    drop(values);
    let envp: Vec<&CStr> = env
        .iter()
        .map(|e| {
            CStr::from_bytes_with_nul(e)
                .map_err(|_| Error::usage("an environment entry holds a NUL byte"))
        })
        .collect::<Result<_>>()?;
    let candidates = candidates(program, &env);
    if plan.replace {
        let err = sys::exec_in_place(&candidates, &argv, &envp);
        return Err(process::spawn_error(err, &shown));
    }
    let keep_fds: Vec<_> = memfds.iter().map(AsRawFd::as_raw_fd).collect();
    let plumbing = redactor.as_ref().map(|_| Plumbing::new()).transpose()?;
    let mut spec = SpawnSpec {
        candidates: &candidates,
        argv: &argv,
        envp: &envp,
        new_group: true,
        death_signal: plan.death_signal,
        stdio: plumbing.as_ref().map_or([None; 3], Plumbing::stdio),
        keep_fds: &keep_fds,
        controlling_tty: plumbing.as_ref().and_then(|p| p.child_tty),
        cwd: None,
        extra_fds: &[],
    };
    let running = process::start(&mut spec, &shown, &plan.supervision)?;
    drop(envp);
    drop(env);
    drop(memfds);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(watch) = plan.leases {
        watch.spawn(running.pid(), std::sync::Arc::clone(&done));
    }
    let relay = plumbing.zip(redactor).map(|(p, r)| p.start(|| r.fresh()));
    let resize = || {
        if let Some(relay) = &relay {
            relay.resize();
        }
    };
    let on_winch: Option<&dyn Fn()> = relay
        .as_ref()
        .filter(|r| r.has_pty())
        .map(|_| &resize as &dyn Fn());
    let code = running.supervise(on_winch);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(code)
}

/// The redactor for every projected value, labelled by handle; warns about
/// values too short to mask.
fn redactor_for(values: &BTreeMap<Source, SecretValue>) -> Result<Redactor> {
    let labelled: Vec<(String, &SecretValue)> =
        values.iter().map(|(h, v)| (h.to_string(), v)).collect();
    let (redactor, skipped) = Redactor::new(labelled)?;
    for label in skipped {
        eprintln!(
            "secret: warning: {label} is shorter than {MIN_MASKED_LEN} bytes, too short to mask; it will show in the output if printed"
        );
    }
    Ok(redactor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::Handle;

    const NONE: Schemes<'static> = &|_| false;

    #[test]
    fn env_file_accepts_references_and_refuses_literals() {
        let dir = crate::fsio::private_tempdir();
        let path = dir.path().join("refs.env");
        std::fs::write(
            &path,
            "# refs only\n\nOPENAI_API_KEY=@openai\nexport DB=@prod/db\nURL=pg://u:{{@pw}}@h\n",
        )
        .expect("write");
        let m = parse_env_file(&path, NONE).expect("parse");
        assert_eq!(m.len(), 3);
        assert_eq!(sources(&m).len(), 3);

        std::fs::write(&path, "A=@a\nTOKEN=sk-live-1\n").expect("write");
        let err = parse_env_file(&path, NONE).expect_err("literal");
        assert!(
            err.to_string().contains(":2: TOKEN has a literal value"),
            "{err}"
        );
        assert!(!err.to_string().contains("sk-live-1"));

        std::fs::write(&path, "A=@a\nA=@b\n").expect("write");
        assert!(
            parse_env_file(&path, NONE)
                .expect_err("dup")
                .to_string()
                .contains("already set")
        );
        std::fs::write(&path, "1A=@a\n").expect("write");
        assert!(parse_env_file(&path, NONE).is_err());
    }

    fn names(env: &[Zeroizing<Vec<u8>>]) -> Vec<String> {
        env.iter()
            .map(|e| {
                let s = String::from_utf8_lossy(e);
                s.split('=').next().unwrap_or_default().to_owned()
            })
            .collect()
    }

    #[test]
    fn control_variables_never_reach_the_child() {
        let inherited = vec![
            ("PATH".into(), "/bin".into()),
            ("SECRET_PASSPHRASE".into(), "pw".into()),
            ("SECRET_HOME".into(), "/h".into()),
            ("SECRET_KEY_BASE".into(), "rails".into()),
        ];
        let m = vec![
            parse_env_arg("GREETING=hi", NONE).expect("literal"),
            parse_env_arg("AT=@@x", NONE).expect("escaped"),
        ];
        let env =
            child_env(inherited, &Inherit::default(), &m, &[], &BTreeMap::new()).expect("env");
        assert_eq!(names(&env), ["AT", "GREETING", "PATH", "SECRET_KEY_BASE"]);
        assert_eq!(&env[0][..], b"AT=@x\0");
    }

    #[test]
    fn ignore_keep_unset_and_templates() {
        let inherited = vec![
            ("PATH".into(), "/bin".into()),
            ("LC_ALL".into(), "C".into()),
            ("LC_TIME".into(), "C".into()),
            ("HOME".into(), "/root".into()),
            ("EDITOR".into(), "vi".into()),
        ];
        let h = Handle::from_name("pw").expect("h");
        let values = BTreeMap::from([(Source::Local(h), SecretValue::new(b"s3cr3t".to_vec()))]);
        let inherit = Inherit {
            ignore_environment: true,
            keep: vec!["PATH".into(), "LC_*".into(), "EDITOR".into()],
            unset: vec!["EDITOR".into()],
        };
        let m = vec![parse_env_arg("URL=pg://app:{{@pw}}@db/app", NONE).expect("template")];
        let env = child_env(
            inherited,
            &inherit,
            &m,
            &[("F".into(), "/dev/fd/9".into())],
            &values,
        )
        .expect("env");
        assert_eq!(names(&env), ["F", "LC_ALL", "LC_TIME", "PATH", "URL"]);
        assert_eq!(&env[4][..], b"URL=pg://app:s3cr3t@db/app\0");
    }

    #[test]
    fn globs() {
        assert!(glob("LC_*", "LC_ALL"));
        assert!(glob("*", ""));
        assert!(glob("A?C", "ABC"));
        assert!(!glob("LC_*", "LANG"));
        assert!(glob("*_KEY", "OPENAI_API_KEY"));
        assert!(!glob("*_KEY", "OPENAI_API_KEYS"));
    }

    #[test]
    fn path_search_uses_the_childs_path() {
        let env = vec![Zeroizing::new(b"PATH=/a::/b\0".to_vec())];
        let c: Vec<_> = candidates(OsStr::new("tool"), &env)
            .into_iter()
            .map(|c| c.into_string().expect("utf8"))
            .collect();
        assert_eq!(c, ["/a/tool", "./tool", "/b/tool"]);
        assert_eq!(candidates(OsStr::new("./x"), &env).len(), 1);
    }
}

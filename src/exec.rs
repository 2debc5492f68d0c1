//! `secret exec`: turning `--env` and `--env-file` mappings into a child's
//! environment, spawning the command and reporting its exit status. The
//! environment is built explicitly (never `set_var` in our own process) and
//! values go only to the child. Resolution of handles is the caller's
//! (`lib.rs` asks the store once for every handle); signals, terminals and
//! masking grow here.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};
use crate::handle::{Handle, Reference, is_env_name};
use crate::paths::CONTROL_VARIABLES;
use crate::sys;
use crate::value::SecretValue;

/// One `VAR=REF` mapping and where it was written, for messages.
#[derive(Debug)]
pub struct Mapping {
    pub var: String,
    pub reference: Reference,
    pub origin: String,
}

/// Parses `--env VAR=REF`.
pub fn parse_env_arg(arg: &str) -> Result<Mapping> {
    parse_mapping(arg, "--env")
}

fn parse_mapping(text: &str, origin: &str) -> Result<Mapping> {
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
    let reference = Reference::parse(reference).map_err(|e| match e {
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

/// Parses an env file: `VAR=@handle` lines, `#` comments and blank lines
/// (an optional leading `export ` is allowed). Literal values are refused:
/// the file is meant to be safe to commit.
pub fn parse_env_file(path: &Path) -> Result<Vec<Mapping>> {
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
        let mapping = parse_mapping(line, &origin)?;
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

/// The distinct handles the mappings refer to, in first-use order.
#[must_use]
pub fn handles(mappings: &[Mapping]) -> Vec<Handle> {
    let mut out: Vec<Handle> = Vec::new();
    for m in mappings {
        if let Reference::Handle(h) = &m.reference
            && !out.contains(h)
        {
            out.push(h.clone());
        }
    }
    out
}

/// The child's environment: ours minus `secret`'s control variables, then the
/// mappings in order (a later mapping of the same variable wins).
#[must_use]
pub fn child_env<'a>(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    mappings: &[Mapping],
    values: &'a BTreeMap<Handle, SecretValue>,
) -> Vec<(OsString, EnvValue<'a>)> {
    let mut env: BTreeMap<OsString, EnvValue<'a>> = inherited
        .into_iter()
        .filter(|(k, _)| !CONTROL_VARIABLES.iter().any(|c| OsStr::new(c) == k))
        .map(|(k, v)| (k, EnvValue::Plain(v)))
        .collect();
    for m in mappings {
        let value = match &m.reference {
            Reference::Literal(s) => EnvValue::Plain(s.into()),
            Reference::Handle(h) => match values.get(h) {
                Some(v) => EnvValue::Secret(v),
                None => continue,
            },
        };
        env.insert(m.var.clone().into(), value);
    }
    env.into_iter().collect()
}

/// A value in the child's environment.
pub enum EnvValue<'a> {
    Plain(OsString),
    Secret(&'a SecretValue),
}

impl EnvValue<'_> {
    fn as_os_str(&self) -> &OsStr {
        match self {
            Self::Plain(s) => s,
            Self::Secret(v) => OsStr::from_bytes(v.expose()),
        }
    }
}

/// Spawns `argv` with exactly `env`, waits, and returns the exit code to
/// report: the child's own, or 128+N when a signal N ended it.
pub fn spawn_and_wait(argv: &[OsString], env: &[(OsString, EnvValue<'_>)]) -> Result<u8> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::usage_hint(
            "no command given",
            "put the command after --: secret exec --env K=@k -- CMD ARGS…",
        ));
    };
    let shown = program.to_string_lossy().into_owned();
    let mut command = Command::new(program);
    command.args(args).env_clear();
    for (k, v) in env {
        command.env(k, v.as_os_str());
    }
    let mut child = command.spawn().map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error::CommandNotFound {
            program: shown.clone(),
        },
        _ => Error::CommandNotExecutable {
            program: shown.clone(),
            source: e,
        },
    })?;
    drop(command);
    // A terminal's Ctrl-C and Ctrl-\ reach the whole foreground group: the
    // child decides what they mean, and we report how it ended.
    sys::ignore_terminal_interrupts();
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("waiting for {shown}"), e))?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_accepts_references_and_refuses_literals() {
        let dir = crate::fsio::private_tempdir();
        let path = dir.path().join("refs.env");
        std::fs::write(
            &path,
            "# refs only\n\nOPENAI_API_KEY=@openai\nexport DB=@prod/db\n",
        )
        .expect("write");
        let m = parse_env_file(&path).expect("parse");
        assert_eq!(m.len(), 2);
        assert_eq!(handles(&m).len(), 2);

        std::fs::write(&path, "A=@a\nTOKEN=sk-live-1\n").expect("write");
        let err = parse_env_file(&path).expect_err("literal");
        assert!(
            err.to_string().contains(":2: TOKEN has a literal value"),
            "{err}"
        );
        assert!(!err.to_string().contains("sk-live-1"));

        std::fs::write(&path, "A=@a\nA=@b\n").expect("write");
        assert!(
            parse_env_file(&path)
                .expect_err("dup")
                .to_string()
                .contains("already set")
        );
        std::fs::write(&path, "1A=@a\n").expect("write");
        assert!(parse_env_file(&path).is_err());
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
            parse_env_arg("GREETING=hi").expect("literal"),
            parse_env_arg("AT=@@x").expect("escaped"),
        ];
        let none = BTreeMap::new();
        let env = child_env(inherited, &m, &none);
        let names: Vec<_> = env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["AT", "GREETING", "PATH", "SECRET_KEY_BASE"]);
        assert_eq!(env[0].1.as_os_str(), "@x");
    }
}

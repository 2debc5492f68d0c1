//! `VAR=REF` mappings: how `secret exec` and `secret run` name what a child
//! gets (`--env`, `--env-file`, `--file`, a script's `# secret:` header),
//! and how a mapping becomes a variable once its sources are resolved.
//! Parsing never sees a value; `expand` builds values in wiping buffers.

use std::collections::BTreeMap;
use std::path::Path;

use zeroize::Zeroizing;

use crate::child::env::Var;
use crate::error::{Error, Result};
use crate::handle::{Part, Source, ValueSpec, is_env_name};
use crate::value::SecretValue;

/// One `VAR=REF` mapping and where it was written, for messages.
#[derive(Debug)]
pub(crate) struct Mapping {
    pub var: String,
    pub reference: ValueSpec,
    pub origin: String,
    /// `--proxy`, `VAR=proxy:@ref`, `# secret-proxy:`: the child gets a
    /// placeholder and the value goes only on the wire (`broker::proxy`).
    pub proxy: bool,
}

/// Says whether `scheme://…` is a remote reference.
pub(crate) type Schemes<'a> = &'a dyn Fn(&str) -> bool;

/// Parses `--env VAR=REF`.
pub(crate) fn parse_env_arg(arg: &str, remote: Schemes<'_>) -> Result<Mapping> {
    parse_mapping(arg, "--env", remote)
}

/// Parses `--proxy VAR=REF` (a handle or remote reference).
pub(crate) fn parse_proxy_arg(arg: &str, remote: Schemes<'_>) -> Result<Mapping> {
    proxied(parse_mapping(arg, "--proxy", remote)?)
}

fn proxied(mut mapping: Mapping) -> Result<Mapping> {
    mapping.proxy = true;
    match mapping.reference {
        ValueSpec::Handle(_) | ValueSpec::Remote(_) => Ok(mapping),
        _ => Err(Error::usage_hint(
            format!(
                "{}: {}: a proxied value must be a handle or a remote reference",
                mapping.origin, mapping.var
            ),
            format!("write {}=@name", mapping.var),
        )),
    }
}

/// Parses `--file VAR=@handle`.
pub(crate) fn parse_file_arg(arg: &str, remote: Schemes<'_>) -> Result<Mapping> {
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
    let reference = ValueSpec::parse_with(reference, remote).map_err(|e| Error::Usage {
        message: format!("{origin}: {var}: {}", e.message),
        hint: e.hint,
    })?;
    Ok(Mapping {
        var: var.to_owned(),
        reference,
        origin: origin.to_owned(),
        proxy: false,
    })
}

/// Variables whose text decides what runs or what a program loads: the
/// search path, the dynamic loader's hooks, shells' and interpreters'
/// start-up hooks and option variables, git's ssh command. A file (env
/// file, script header) may set them only to a plain reference, never to
/// a literal or a template whose literal text could point the launch at
/// another program (`PATH=/evil:{{@k}}`, `LD_PRELOAD={{@k}}`).
fn is_hook_var(var: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PROMPT_COMMAND",
        "IFS",
        "CDPATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONINSPECT",
        "PYTHONUSERBASE",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_EXEC_PATH",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "GCONV_PATH",
        "LOCPATH",
        "HOSTALIASES",
        "MALLOC_CONF",
    ];
    EXACT.contains(&var) || var.starts_with("LD_") || var.starts_with("DYLD_")
}

/// Refuses a literal or template for a hook variable read from a file.
fn check_hook(mapping: &Mapping) -> Result<()> {
    match mapping.reference {
        ValueSpec::Handle(_) | ValueSpec::Remote(_) => Ok(()),
        _ if is_hook_var(&mapping.var) => Err(Error::usage_hint(
            format!(
                "{}: {} decides what runs or what gets loaded; in a file it may only be a plain reference, not a literal or a template",
                mapping.origin, mapping.var
            ),
            format!(
                "write {}=@name, or set {} on the command line (--env) or in the environment if you mean it",
                mapping.var, mapping.var
            ),
        )),
        _ => Ok(()),
    }
}

/// Parses an env file: `VAR=@handle` (or template) lines, `#` comments and
/// blank lines (an optional leading `export ` is allowed). Literal values are
/// refused: the file is meant to be safe to commit.
pub(crate) fn parse_env_file(path: &Path, remote: Schemes<'_>) -> Result<Vec<Mapping>> {
    let text = crate::fsio::read_private_file(
        path,
        "the env file",
        crate::config::MAX_POLICY_LEN,
        crate::fsio::Readers::Anyone,
    )?
    .ok_or_else(|| {
        Error::io(
            format!("reading env file {}", path.display()),
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    let text = String::from_utf8(text).map_err(|_| {
        Error::usage_hint(
            format!("env file {} is not UTF-8 text", path.display()),
            "an env file holds VAR=@name lines",
        )
    })?;
    let mut out: Vec<Mapping> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let origin = format!("{}:{}", path.display(), i + 1);
        let mapping = match line.split_once('=') {
            Some((var, rest)) if rest.starts_with("proxy:") => proxied(parse_mapping(
                &format!("{var}={}", &rest[6..]),
                &origin,
                remote,
            )?)?,
            _ => parse_mapping(line, &origin, remote)?,
        };
        check_hook(&mapping)?;
        if let ValueSpec::Literal(_) = mapping.reference {
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

/// Reads the `# secret: VAR=@ref`, `# secret-file: VAR=@ref` and
/// `# secret-proxy: VAR=@ref` lines of a script's header (proxied ones
/// come with the env mappings, marked `proxy`): the comment block after the `#!` line (blank lines
/// allowed), up to the first line of code. Returns (env, file) mappings.
pub(crate) fn parse_script_header(
    path: &Path,
    remote: Schemes<'_>,
) -> Result<(Vec<Mapping>, Vec<Mapping>)> {
    let (text, whole) = read_script_start(path)?;
    let text = String::from_utf8_lossy(&text);
    let (mut env, mut files) = (Vec::new(), Vec::new());
    let mut code_seen = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if (i == 0 && line.starts_with("#!")) || line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            code_seen = true;
            break;
        };
        let comment = comment.trim();
        let origin = format!("{}:{}", path.display(), i + 1);
        if let Some(rest) = comment.strip_prefix("secret-proxy:") {
            env.push(proxied(parse_mapping(rest.trim(), &origin, remote)?)?);
        } else if let Some(rest) = comment.strip_prefix("secret-file:") {
            let mapping = parse_mapping(rest.trim(), &origin, remote)?;
            files.push(parse_file_arg_mapping(mapping)?);
        } else if let Some(rest) = comment.strip_prefix("secret:") {
            let mapping = parse_mapping(rest.trim(), &origin, remote)?;
            check_hook(&mapping)?;
            if let ValueSpec::Literal(_) = mapping.reference {
                return Err(Error::usage(format!(
                    "{origin}: {} has a literal value; `# secret:` lines hold references such as {}=@name",
                    mapping.var, mapping.var
                )));
            }
            env.push(mapping);
        }
    }
    if !whole && !code_seen {
        return Err(Error::usage_hint(
            format!(
                "{}: the header is longer than {} bytes",
                path.display(),
                crate::config::MAX_POLICY_LEN
            ),
            "keep the `# secret:` lines at the top of the script",
        ));
    }
    Ok((env, files))
}

/// The start of a script, as far as a header can reach, opened like any
/// file `secret` trusts (regular, ours, nobody else can change it, no
/// blocking on a FIFO); `true` when that is the whole file.
fn read_script_start(path: &Path) -> Result<(Vec<u8>, bool)> {
    use std::io::Read;
    let max = crate::config::MAX_POLICY_LEN;
    let file = crate::fsio::open_trusted(
        path,
        "the script",
        crate::fsio::Readers::Anyone,
        std::fs::OpenOptions::new().read(true),
    )?
    .ok_or_else(|| {
        Error::io(
            format!("reading script {}", path.display()),
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading script {}", path.display()), e))?;
    let whole = bytes.len() as u64 <= max;
    bytes.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    Ok((bytes, whole))
}

fn parse_file_arg_mapping(mapping: Mapping) -> Result<Mapping> {
    match mapping.reference {
        ValueSpec::Handle(_) | ValueSpec::Remote(_) => Ok(mapping),
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
pub(crate) fn sources<'a>(mappings: impl IntoIterator<Item = &'a Mapping>) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for s in mappings.into_iter().flat_map(|m| m.reference.sources()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The variables the mappings set, in order, with the resolved `values`
/// substituted (templates expanded).
pub(crate) fn expand(
    mappings: &[Mapping],
    values: &BTreeMap<Source, SecretValue>,
) -> Result<Vec<Var>> {
    mappings
        .iter()
        .map(|m| {
            let value = match &m.reference {
                ValueSpec::Literal(s) => Zeroizing::new(s.as_bytes().to_vec()),
                ValueSpec::Handle(h) => {
                    Zeroizing::new(lookup(values, &Source::Local(h.clone()))?.expose().to_vec())
                }
                ValueSpec::Remote(r) => Zeroizing::new(
                    lookup(values, &Source::Remote(r.clone()))?
                        .expose()
                        .to_vec(),
                ),
                ValueSpec::Template(parts) => {
                    let mut out = Zeroizing::new(Vec::new());
                    for part in parts {
                        match part {
                            Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                            Part::Handle(h) => {
                                out.extend_from_slice(
                                    lookup(values, &Source::Local(h.clone()))?.expose(),
                                );
                            }
                        }
                    }
                    out
                }
            };
            Ok((m.var.clone(), value))
        })
        .collect()
}

/// The value resolved for `source`.
pub(crate) fn lookup<'a>(
    values: &'a BTreeMap<Source, SecretValue>,
    source: &Source,
) -> Result<&'a SecretValue> {
    values.get(source).ok_or_else(|| match source {
        Source::Local(h) => Error::no_such_secret(h),
        Source::Remote(r) => Error::internal(format!("{r} was not resolved")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::env::{Inherit, build};
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

    #[test]
    fn files_cannot_point_hook_variables_elsewhere() {
        let dir = crate::fsio::private_tempdir();
        let path = dir.path().join("refs.env");
        for line in [
            "PATH=/evil:{{@k}}",
            "LD_PRELOAD={{@k}}",
            "DYLD_INSERT_LIBRARIES=x{{@k}}",
            "BASH_ENV={{@k}}",
            "NODE_OPTIONS=--require {{@k}}",
            "GIT_SSH_COMMAND=@@evil",
        ] {
            std::fs::write(&path, format!("{line}\n")).expect("write");
            let err = parse_env_file(&path, NONE).expect_err(line).to_string();
            assert!(err.contains("decides what runs"), "{line}: {err}");
        }
        std::fs::write(&path, "PATH=@path\nLD_LIBRARY_PATH=@libs\nURL=x{{@k}}\n").expect("write");
        assert_eq!(parse_env_file(&path, NONE).expect("plain refs").len(), 3);
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
    fn literals_and_escapes_pass_and_control_variables_do_not() {
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
        let vars = expand(&m, &BTreeMap::new()).expect("expand");
        let env = build(inherited, &Inherit::default(), vars);
        assert_eq!(names(&env), ["AT", "GREETING", "PATH", "SECRET_KEY_BASE"]);
        assert_eq!(&env[0][..], b"AT=@x\0");
    }

    #[test]
    fn templates_expand_with_the_resolved_values() {
        let h = Handle::from_name("pw").expect("h");
        let values = BTreeMap::from([(Source::Local(h), SecretValue::new(b"s3cr3t".to_vec()))]);
        let m = vec![parse_env_arg("URL=pg://app:{{@pw}}@db/app", NONE).expect("template")];
        let vars = expand(&m, &values).expect("expand");
        assert_eq!(vars[0].0, "URL");
        assert_eq!(&vars[0].1[..], b"pg://app:s3cr3t@db/app");
        let missing = vec![parse_env_arg("K=@absent", NONE).expect("handle")];
        assert!(matches!(
            expand(&missing, &values),
            Err(Error::NoSuchSecret { .. })
        ));
    }
}

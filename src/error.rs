//! Errors that speak to the user, and the one function that maps them to exit
//! codes. Every message names the object (handle, path, line) and, through
//! `hint`, the fix. No variant can hold a secret value: `SecretValue` has no
//! `Display`, and stores hand us their errors as text they vetted.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::handle::Handle;

/// Exit code when `secret exec` itself fails (bad arguments, locked vault,
/// missing secret): the child never ran.
pub(crate) const EXIT_EXEC_FAILED: u8 = 125;
/// The command was found but could not be executed.
pub(crate) const EXIT_NOT_EXECUTABLE: u8 = 126;
/// The command was not found.
pub(crate) const EXIT_NOT_FOUND: u8 = 127;

#[derive(Debug)]
pub enum Error {
    /// Bad arguments or input.
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// The command line did not parse, or asked for `--help`/`--version`:
    /// clap has printed what there is to say.
    CommandLine {
        /// Help or version was printed (exit 0).
        informational: bool,
    },
    /// Something failed inside `secret` that the user's input did not cause
    /// ("encryption failed", "the store is not open").
    Internal {
        message: String,
    },
    NotInitialized {
        path: PathBuf,
    },
    AlreadyInitialized {
        path: PathBuf,
    },
    NoSuchSecret {
        handle: Handle,
        /// A stored handle close enough to be what was meant.
        near: Option<String>,
        /// What to do instead of adding it (`rm` has nothing to add).
        hint: Option<String>,
    },
    SecretExists {
        handle: Handle,
    },
    WrongPassphrase {
        path: PathBuf,
    },
    /// The vault failed a format or integrity check.
    Damaged {
        path: PathBuf,
        reason: String,
    },
    /// The grants do not allow a request.
    Denied {
        message: String,
        hint: String,
    },
    /// The vault is older than one seen before; writing would bake it in.
    RolledBack {
        path: PathBuf,
        generation: u64,
        seen: u64,
        record: PathBuf,
    },
    /// The vault was written by a newer build.
    NewerFormat {
        path: PathBuf,
        version: u16,
    },
    InsecurePermissions {
        path: PathBuf,
        mode: u32,
        fix: String,
    },
    /// A file `secret` must trust is not what it should be: not a regular
    /// file, a symbolic link, someone else's, too large.
    UnsafeFile {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    /// No passphrase could be had, or the one given is unusable.
    Passphrase {
        message: String,
        hint: String,
    },
    Keychain {
        message: String,
        hint: String,
    },
    Io {
        context: String,
        source: io::Error,
    },
    /// A remote store failed or refused. `message` never holds a token or a
    /// value; response bodies in it are cut to 512 bytes.
    Remote {
        reference: String,
        message: String,
        hint: String,
    },
    AuditBroken {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// Some of a plugin's secret references did not resolve: each named,
    /// with why.
    Unresolved {
        problems: Vec<(String, Error)>,
    },
    CommandNotFound {
        program: String,
    },
    CommandNotExecutable {
        program: String,
        source: io::Error,
    },
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// No secret `handle` (no suggestion yet; see `resolve::find`).
    #[must_use]
    pub fn no_such_secret(handle: &Handle) -> Self {
        Self::NoSuchSecret {
            handle: handle.clone(),
            near: None,
            hint: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub fn damaged(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Damaged {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// What the user can do about it, when we know.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Usage { hint, .. } => hint.clone(),
            Self::CommandLine { .. } => None,
            Self::Internal { .. } => Some("this is a bug in secret; please report it".into()),
            Self::NotInitialized { .. } => Some(
                "create one with: secret init (or point SECRET_HOME at an existing one)".into(),
            ),
            Self::AlreadyInitialized { .. } => {
                Some("use it as it is, or choose another directory with SECRET_HOME".into())
            }
            Self::NoSuchSecret { handle, hint, .. } => Some(hint.clone().unwrap_or_else(|| {
                format!("`secret list` shows the handles there are; add this one with: secret add {handle} --stdin")
            })),
            Self::SecretExists { handle } => Some(format!(
                "replace its value with: secret rotate {handle} --stdin"
            )),
            Self::WrongPassphrase { .. } => {
                Some("check SECRET_PASSPHRASE or --passphrase-fd; nothing was changed".into())
            }
            Self::Damaged { .. } => Some(
                "restore it from a backup; secret will not use a store that fails its checks"
                    .into(),
            ),
            Self::InsecurePermissions { fix, .. } | Self::UnsafeFile { fix, .. } => {
                Some(fix.clone())
            }
            Self::RolledBack { record, .. } => Some(format!(
                "restore the newer copy; or, if you restored this one on purpose, accept it by removing {}",
                record.display()
            )),
            Self::NewerFormat { .. } => Some(
                "if a newer secret wrote it, upgrade secret; if not, the file is damaged (this build cannot check a newer format): restore it from a backup".into(),
            ),
            Self::Passphrase { hint, .. } | Self::Keychain { hint, .. } => Some(hint.clone()),
            Self::Io { .. } => None,
            Self::Remote { hint, .. } | Self::Denied { hint, .. } => Some(hint.clone()),
            Self::AuditBroken { .. } => Some(
                "compare with a copy kept elsewhere; the trail was changed after it was written"
                    .into(),
            ),
            Self::Unresolved { problems }
                if problems.len() > 1
                    && problems
                        .iter()
                        .all(|(_, e)| matches!(e, Self::NoSuchSecret { .. })) =>
            {
                Some("`secret list` shows the handles there are; add each missing one with: secret add @HANDLE --stdin".into())
            }
            Self::Unresolved { problems } => problems.iter().find_map(|(_, e)| e.hint()),
            Self::CommandNotFound { .. } => {
                Some("check the spelling, or give the full path of the program".into())
            }
            Self::CommandNotExecutable { source, .. }
                if source.kind() == io::ErrorKind::ArgumentListTooLong =>
            {
                Some("give a large value to the program as an in-memory file instead: --file VAR=@handle sets VAR to a path the program reads the value from".into())
            }
            Self::CommandNotExecutable { .. } => {
                Some("check that the file is a program and has its execute bit (chmod +x)".into())
            }
        }
    }

    /// The process exit code for this error. `exec` is true for `secret
    /// exec`, whose own failures must not be confused with the child's codes.
    #[must_use]
    pub fn exit_code(&self, exec: bool) -> u8 {
        match self {
            Self::CommandLine {
                informational: true,
            } => 0,
            Self::CommandNotFound { .. } => EXIT_NOT_FOUND,
            Self::CommandNotExecutable { .. } => EXIT_NOT_EXECUTABLE,
            _ if exec => EXIT_EXEC_FAILED,
            Self::Usage { .. } | Self::CommandLine { .. } => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage { message, .. } | Self::Internal { message } => f.write_str(message),
            Self::CommandLine { .. } => f.write_str("invalid command line"),
            Self::NotInitialized { path } => write!(f, "no store at {}", path.display()),
            Self::AlreadyInitialized { path } => {
                write!(
                    f,
                    "a store already exists at {}; nothing was changed",
                    path.display()
                )
            }
            Self::NoSuchSecret { handle, near, .. } => {
                write!(f, "no secret {handle} in the store")?;
                match near {
                    Some(near) => write!(f, "; did you mean @{near}?"),
                    None => Ok(()),
                }
            }
            Self::SecretExists { handle } => write!(f, "secret {handle} already exists"),
            Self::WrongPassphrase { path } => write!(
                f,
                "wrong passphrase for the vault at {} (or its header was altered)",
                path.display()
            ),
            Self::Damaged { path, reason } => {
                write!(f, "{} is damaged: {reason}", path.display())
            }
            Self::RolledBack {
                path,
                generation,
                seen,
                ..
            } => write!(
                f,
                "{} is at generation {generation}, older than generation {seen} seen before (rolled back?); nothing was changed",
                path.display()
            ),
            Self::NewerFormat { path, version } => write!(
                f,
                "{} has format version {version}, newer than this build reads",
                path.display()
            ),
            Self::UnsafeFile { path, problem, .. } => {
                write!(f, "{}: {problem}; refusing to use it", path.display())
            }
            Self::InsecurePermissions { path, mode, .. } => write!(
                f,
                "{} can be accessed by group or others (mode {mode:04o}); refusing to use it",
                path.display()
            ),
            Self::Passphrase { message, .. } | Self::Keychain { message, .. } => {
                f.write_str(message)
            }
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::Remote {
                reference, message, ..
            } => write!(f, "{reference}: {message}"),
            Self::Denied { message, .. } => write!(f, "denied: {message}"),
            Self::AuditBroken { path, line, reason } => {
                write!(f, "audit trail {} line {line}: {reason}", path.display())
            }
            Self::Unresolved { problems } => {
                for (i, (reference, e)) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "secret reference {reference} could not be resolved: {e}")?;
                }
                Ok(())
            }
            Self::CommandNotFound { program } => write!(f, "command not found: {program}"),
            Self::CommandNotExecutable { program, source } => {
                write!(f, "cannot execute {program}: {source}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::handle::Invalid> for Error {
    fn from(e: crate::handle::Invalid) -> Self {
        Self::Usage {
            message: e.message,
            hint: e.hint,
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The one place an outcome becomes an exit code: prints the error and its
/// hint (a broken pipe exits quietly, as does a command line clap has
/// already answered). `launch` is true for `secret exec`/`run`.
#[must_use]
pub(crate) fn exit(outcome: Result<u8>, launch: bool) -> u8 {
    use std::io::Write;
    let e = match outcome {
        Ok(code) => return code,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
            return 0;
        }
        Err(e) => e,
    };
    if !matches!(e, Error::CommandLine { .. }) {
        let mut msg = match &e {
            // On a terminal, one line per reference (the one-line form is
            // for logs).
            Error::Unresolved { problems } if problems.len() > 1 => {
                let mut msg = format!(
                    "secret: {} secret references could not be resolved:\n",
                    problems.len()
                );
                for (reference, e) in problems {
                    msg.push_str(&format!("  {reference}: {e}\n"));
                }
                msg
            }
            _ => format!("secret: {e}\n"),
        };
        if let Some(hint) = e.hint() {
            msg.push_str(&format!("  hint: {hint}\n"));
        }
        let _ = io::stderr().write_all(msg.as_bytes());
    }
    e.exit_code(launch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failures_are_125_unless_the_command_is_at_fault() {
        let missing = Error::no_such_secret(&Handle::from_name("k").expect("k"));
        assert_eq!(missing.exit_code(true), 125);
        assert_eq!(missing.exit_code(false), 1);
        assert_eq!(Error::usage("x").exit_code(false), 2);
        assert_eq!(Error::usage("x").exit_code(true), 125);
        assert_eq!(Error::internal("x").exit_code(false), 1);
        assert_eq!(Error::internal("x").exit_code(true), 125);
        let help = Error::CommandLine {
            informational: true,
        };
        assert_eq!(help.exit_code(true), 0);
        let bad = Error::CommandLine {
            informational: false,
        };
        assert_eq!((bad.exit_code(false), bad.exit_code(true)), (2, 125));
        let nf = Error::CommandNotFound {
            program: "x".into(),
        };
        assert_eq!(nf.exit_code(true), 127);
        let ne = Error::CommandNotExecutable {
            program: "x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(ne.exit_code(true), 126);
    }
}

//! Starting a program: the one path from a prepared environment to a
//! running (or replaced) process, over `sys::spawn` and `sys::exec_in_place`
//! (the only `unsafe`). It also owns the search of the child's PATH and the
//! mapping of exec failures to our errors (127 not found, 126 not
//! executable).
//!
//! The spawn contract (what `sys::spawn` guarantees and the caller owes):
//! - the caller passes the whole environment (`envp`): the child gets that
//!   and nothing else, and our own environment is never changed;
//! - argv holds no value: values travel only in `envp` or in-memory files;
//! - in the child, before exec: the signal mask is cleared and signals
//!   1-31 get the disposition `secret` inherited (ignored if they were,
//!   else the default; SIGPIPE always the default): those we changed are
//!   put back, the others were never touched; the `stdio` and
//!   `extra_fds` are installed, `keep_fds` lose close-on-exec and every
//!   other descriptor keeps it, `death_signal` is set, and `new_group` or
//!   `controlling_tty` decide the process group and session (with
//!   `foreground_of`, the new group takes that terminal's foreground);
//! - the child shares our memory until it execs (as with `posix_spawn`),
//!   with every signal blocked until its dispositions are reset; between
//!   clone and exec it only makes async-signal-safe calls, and leaves an
//!   exec failure's errno in memory we read once it is gone, so `spawn`
//!   returns only once the program runs or has failed to.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;

use nix::unistd::Pid;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::sys::{self, SpawnError, SpawnSpec};

/// `argv` as C strings; an argument holding NUL cannot be passed.
pub(crate) fn argv<S: AsRef<OsStr>>(args: &[S]) -> Result<Vec<CString>> {
    args.iter()
        .map(|a| CString::new(a.as_ref().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::usage("an argument contains a NUL byte"))
}

/// The entries of `env` as the C strings `execve` wants.
pub(crate) fn envp(env: &[Zeroizing<Vec<u8>>]) -> Result<Vec<&CStr>> {
    env.iter()
        .map(|e| {
            CStr::from_bytes_with_nul(e)
                .map_err(|_| Error::internal("an environment entry holds a NUL byte"))
        })
        .collect()
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

/// Starts the program as `spec` says (see the contract above). `shown` names
/// the program in errors.
pub(crate) fn spawn(spec: &SpawnSpec<'_>, shown: &str) -> Result<Pid> {
    sys::spawn(spec).map_err(|e| spawn_error(e, shown, spec.argv, spec.envp))
}

/// Replaces `secret` with the program (`--exec`); returns only on failure.
pub(crate) fn replace(
    candidates: &[CString],
    argv: &[CString],
    envp: &[&CStr],
    shown: &str,
) -> Error {
    spawn_error(
        sys::exec_in_place(candidates, argv, envp),
        shown,
        argv,
        envp,
    )
}

/// Our error for a program that did not start.
fn spawn_error(
    e: SpawnError,
    shown: &str,
    argv: &[impl AsRef<CStr>],
    envp: &[impl AsRef<CStr>],
) -> Error {
    match e {
        SpawnError::NotFound => Error::CommandNotFound {
            program: shown.to_owned(),
        },
        SpawnError::NotExecutable(nix::errno::Errno::E2BIG) => Error::CommandNotExecutable {
            program: shown.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::ArgumentListTooLong,
                too_large(argv, envp),
            ),
        },
        SpawnError::NotExecutable(errno) => Error::CommandNotExecutable {
            program: shown.to_owned(),
            source: errno.into(),
        },
        SpawnError::System(errno) => Error::io(format!("starting {shown}"), errno.into()),
    }
}

/// The most one argument or `NAME=value` string may be, with its NUL
/// (Linux's MAX_ARG_STRLEN: 32 pages of 4 KiB).
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// What made execve fail with E2BIG, by name and size, never by value: a
/// variable (or argument) over the kernel's limit for one string, else the
/// total over its limit for all of them.
fn too_large(argv: &[impl AsRef<CStr>], envp: &[impl AsRef<CStr>]) -> String {
    let size = |c: &CStr| c.to_bytes_with_nul().len();
    let biggest_var = envp
        .iter()
        .map(AsRef::as_ref)
        .max_by_key(|e| size(e))
        .filter(|e| size(e) > MAX_ARG_STRLEN);
    let biggest_arg = argv
        .iter()
        .enumerate()
        .max_by_key(|(_, a)| size(a.as_ref()))
        .filter(|(_, a)| size(a.as_ref()) > MAX_ARG_STRLEN);
    if let Some(var) = biggest_var {
        let bytes = var.to_bytes();
        let name = bytes.split(|&b| b == b'=').next().unwrap_or_default();
        format!(
            "the value of {} is too large for the environment ({} bytes; the kernel takes at most {} KiB for one variable)",
            String::from_utf8_lossy(name).escape_default(),
            bytes.len().saturating_sub(name.len() + 1),
            MAX_ARG_STRLEN >> 10
        )
    } else if let Some((i, arg)) = biggest_arg {
        format!(
            "argument {i} is too large ({} bytes; the kernel takes at most {} KiB for one argument)",
            arg.as_ref().to_bytes().len(),
            MAX_ARG_STRLEN >> 10
        )
    } else {
        let total: usize = envp.iter().map(|e| size(e.as_ref()) + 8).sum::<usize>()
            + argv.iter().map(|a| size(a.as_ref()) + 8).sum::<usize>();
        format!(
            "the environment and arguments are too large together ({total} bytes, over the kernel's limit for both)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_oversized_launch_names_the_variable_never_the_value() {
        let value = "v".repeat(200_000);
        let env = [
            CString::new("SMALL=1").expect("c"),
            CString::new(format!("BIG={value}")).expect("c"),
        ];
        let argv = [CString::new("true").expect("c")];
        let e = spawn_error(
            SpawnError::NotExecutable(nix::errno::Errno::E2BIG),
            "true",
            &argv,
            &env,
        );
        let text = e.to_string();
        assert!(
            text.contains("the value of BIG is too large for the environment (200000 bytes"),
            "{text}"
        );
        assert!(!text.contains(&value[..64]));
        assert_eq!(e.exit_code(true), 126);
        assert!(
            e.hint().is_some_and(|h| h.contains("--file VAR=@")),
            "{:?}",
            e.hint()
        );
        let many: Vec<CString> = (0..40)
            .map(|i| CString::new(format!("V{i}={}", "x".repeat(100_000))).expect("c"))
            .collect();
        let text = spawn_error(
            SpawnError::NotExecutable(nix::errno::Errno::E2BIG),
            "true",
            &argv,
            &many,
        )
        .to_string();
        assert!(text.contains("too large together"), "{text}");
    }
}

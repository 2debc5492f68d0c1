//! The command lines of nearly every launch, `secret exec …` and
//! `secret run …` with options in their plain forms, read without clap.
//!
//! Building clap's command tree for `exec` (its ~20 options, each a large
//! `Arg`) is most of what parsing costs: about 390 k instructions, 23 page
//! faults and 0.08 ms of every launch (README, "Performance"). This reader
//! knows the same options and fills the same `Cli` the clap definitions
//! describe, but only for the forms it is sure of; anything else (help,
//! version, a global option before the subcommand, a short-option cluster,
//! a value that starts with `-`, a repeated single option, any error) gets
//! `None`, and clap reads the line as always, so help and errors are clap's.
//! The unit tests hold it to that: on every line it accepts, clap builds
//! the same `Cli`.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{
    ChildArgs, Cli, Command, DEFAULT_CONSUMER, DEFAULT_DEATH_SIGNAL, DEFAULT_EGRESS,
    DEFAULT_STOP_TIMEOUT, EgressArg, ExecArgs, Globals, MappingArgs, RunArgs,
};

/// `args` (the whole argv) as `Cli::try_parse_from` reads it, or `None`
/// when clap must read it. `scope_env` is SECRET_SCOPE, which clap reads
/// for `--scope`.
pub(crate) fn parse(args: &[OsString], scope_env: Option<&OsStr>) -> Option<Cli> {
    let exec = match args.get(1)?.to_str()? {
        "exec" => true,
        "run" => false,
        _ => return None,
    };
    let mut seen = Seen::default();
    let mut words = args.get(2..)?.iter();
    let mut command = Vec::new();
    while let Some(word) = words.next() {
        let text = word.to_str()?;
        if text == "--" {
            break;
        } else if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            seen.long(exec, name, inline, &mut words)?;
        } else if text == "-e" && exec {
            seen.env.push(value(None, &mut words)?);
        } else if text == "-i" {
            flag(&mut seen.ignore_environment, None)?;
        } else if text.starts_with('-') {
            return None;
        } else {
            command.push(word.clone());
            break;
        }
    }
    command.extend(words.cloned());
    if command.len() < if exec { 1 } else { 2 } || (seen.mask && seen.no_mask) {
        return None;
    }
    let scope = match (seen.scope, scope_env) {
        (Some(scope), _) => Some(scope),
        (None, None) => None,
        (None, Some(env)) => Some(env.to_str().filter(|s| !s.is_empty())?.to_owned()),
    };
    let child = ChildArgs {
        file: seen.file,
        proxy: seen.proxy,
        proxy_egress: egress(seen.proxy_egress.as_deref().unwrap_or(DEFAULT_EGRESS))?,
        ignore_environment: seen.ignore_environment,
        keep: seen.keep,
        unset: seen.unset,
        replace: seen.replace,
        consumer: seen.consumer.unwrap_or_else(|| DEFAULT_CONSUMER.to_owned()),
        purpose: seen.purpose,
        mask: seen.mask,
        no_mask: seen.no_mask,
        subreaper: seen.subreaper,
        stop_timeout: stop_timeout(seen.stop_timeout.as_deref())?,
        death_signal: death_signal(seen.death_signal.as_deref())?,
    };
    let passphrase_fd = match seen.passphrase_fd {
        Some(fd) => Some(fd.parse().ok()?),
        None => None,
    };
    Some(Cli {
        globals: Globals {
            passphrase_fd,
            scope,
        },
        command: if exec {
            Command::Exec(ExecArgs {
                mappings: MappingArgs {
                    env: seen.env,
                    env_file: seen.env_file.into_iter().map(PathBuf::from).collect(),
                },
                child,
                command,
            })
        } else {
            Command::Run(RunArgs {
                check: seen.check,
                child,
                command,
            })
        },
    })
}

/// The options met so far, as written.
#[derive(Default)]
struct Seen {
    env: Vec<String>,
    env_file: Vec<String>,
    file: Vec<String>,
    proxy: Vec<String>,
    proxy_egress: Option<String>,
    ignore_environment: bool,
    keep: Vec<String>,
    unset: Vec<String>,
    replace: bool,
    consumer: Option<String>,
    purpose: Option<String>,
    mask: bool,
    no_mask: bool,
    subreaper: bool,
    stop_timeout: Option<String>,
    death_signal: Option<String>,
    check: bool,
    scope: Option<String>,
    passphrase_fd: Option<String>,
}

impl Seen {
    /// Records `--name[=inline]`, taking its value from `words` when it
    /// has one and none is inline. `None` for a name this reader does not
    /// know (for this subcommand) or a form it leaves to clap.
    fn long<'a>(
        &mut self,
        exec: bool,
        name: &str,
        inline: Option<&str>,
        words: &mut impl Iterator<Item = &'a OsString>,
    ) -> Option<()> {
        match name {
            "env" if exec => self.env.push(value(inline, words)?),
            "env-file" if exec => self.env_file.push(value(inline, words)?),
            "file" => self.file.push(value(inline, words)?),
            "proxy" => self.proxy.push(value(inline, words)?),
            "keep" => self.keep.push(value(inline, words)?),
            "unset" => self.unset.push(value(inline, words)?),
            "proxy-egress" => once(&mut self.proxy_egress, value(inline, words)?)?,
            "consumer" => once(&mut self.consumer, value(inline, words)?)?,
            "purpose" => once(&mut self.purpose, value(inline, words)?)?,
            "stop-timeout" => once(&mut self.stop_timeout, value(inline, words)?)?,
            "death-signal" => once(&mut self.death_signal, value(inline, words)?)?,
            "scope" => once(&mut self.scope, value(inline, words)?)?,
            "passphrase-fd" => once(&mut self.passphrase_fd, value(inline, words)?)?,
            "ignore-environment" => flag(&mut self.ignore_environment, inline)?,
            "exec" => flag(&mut self.replace, inline)?,
            "mask" => flag(&mut self.mask, inline)?,
            "no-mask" => flag(&mut self.no_mask, inline)?,
            "subreaper" => flag(&mut self.subreaper, inline)?,
            "check" if !exec => flag(&mut self.check, inline)?,
            _ => return None,
        }
        Some(())
    }
}

/// An option's value: inline (`--name=value`) or the next word. Empty
/// values, values that start with `-` and values that are not UTF-8 are
/// left to clap.
fn value<'a>(
    inline: Option<&str>,
    words: &mut impl Iterator<Item = &'a OsString>,
) -> Option<String> {
    let text = match inline {
        Some(text) => text,
        None => words.next()?.to_str()?,
    };
    (!text.is_empty() && !text.starts_with('-')).then(|| text.to_owned())
}

/// An option that takes one value: a second one is left to clap.
fn once(slot: &mut Option<String>, value: String) -> Option<()> {
    slot.is_none().then(|| *slot = Some(value))
}

/// A flag: given once, without a value.
fn flag(slot: &mut bool, inline: Option<&str>) -> Option<()> {
    (!*slot && inline.is_none()).then(|| *slot = true)
}

fn egress(text: &str) -> Option<EgressArg> {
    match text {
        "allow" => Some(EgressArg::Allow),
        "deny" => Some(EgressArg::Deny),
        _ => None,
    }
}

fn stop_timeout(text: Option<&str>) -> Option<Duration> {
    super::parse_timeout(text.unwrap_or(DEFAULT_STOP_TIMEOUT)).ok()
}

fn death_signal(text: Option<&str>) -> Option<Signal> {
    crate::child::supervise::parse_signal(text.unwrap_or(DEFAULT_DEATH_SIGNAL)).ok()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn scope_env() -> Option<OsString> {
        std::env::var_os("SECRET_SCOPE")
    }

    /// What this reader makes of `words`, checked against clap when it
    /// accepts them.
    fn read(words: &[OsString]) -> Option<Cli> {
        let cli = parse(words, scope_env().as_deref())?;
        let clap = Cli::try_parse_from(words)
            .unwrap_or_else(|e| panic!("accepted {words:?}, which clap refuses: {e}"));
        assert_eq!(format!("{cli:?}"), format!("{clap:?}"), "{words:?}");
        Some(cli)
    }

    #[test]
    fn reads_the_plain_forms_as_clap_does() {
        let lines: &[&[&str]] = &[
            &["secret", "exec", "--env", "K=@k", "--", "true"],
            &["secret", "exec", "--env=K=@k", "true"],
            &[
                "secret",
                "exec",
                "-e",
                "K=@k",
                "-e",
                "L=vault://a/b#c",
                "printf",
                "%s",
                "-x",
            ],
            &[
                "secret",
                "exec",
                "--env-file",
                ".env.secret",
                "--file",
                "F=@f",
                "-i",
                "--keep",
                "LC_*",
                "--unset",
                "X",
                "--exec",
                "--consumer",
                "agent",
                "--purpose",
                "ci",
                "--mask",
                "--subreaper",
                "--stop-timeout",
                "5s",
                "--death-signal",
                "INT",
                "--scope",
                "team/ws",
                "--passphrase-fd",
                "3",
                "--",
                "sh",
                "-c",
                "exit 3",
            ],
            &[
                "secret",
                "exec",
                "--proxy",
                "K=@k",
                "--proxy-egress=deny",
                "--no-mask",
                "--ignore-environment",
                "curl",
                "--",
                "-x",
            ],
            &["secret", "exec", "--", "--weird-name", "--env", "K=@k"],
            &["secret", "run", "bash", "./script.sh", "--flag", "arg"],
            &["secret", "run", "--check", "bash", "./script.sh"],
            &[
                "secret", "run", "--exec", "--keep", "PATH", "--", "python3", "x.py", "--", "-i",
            ],
        ];
        for line in lines {
            assert!(read(&argv(line)).is_some(), "left to clap: {line:?}");
        }
    }

    #[test]
    fn leaves_every_other_line_to_clap() {
        let lines: &[&[&str]] = &[
            &["secret", "exec", "--help"],
            &["secret", "exec", "-h", "true"],
            &["secret", "exec", "-V"],
            &["secret", "exec"],
            &["secret", "exec", "--"],
            &["secret", "exec", "--env"],
            &["secret", "exec", "--env", "--", "true"],
            &["secret", "exec", "--env=", "true"],
            &["secret", "exec", "-eK=@k", "true"],
            &["secret", "exec", "-ie", "K=@k", "true"],
            &["secret", "exec", "--proxy-egress", "sometimes", "true"],
            &["secret", "exec", "--proxy-egress", "DENY", "true"],
            &["secret", "exec", "--purpose", "a", "--purpose", "b", "true"],
            &["secret", "exec", "--mask", "--no-mask", "true"],
            &["secret", "exec", "--exec", "--exec", "true"],
            &["secret", "exec", "--exec=yes", "true"],
            &["secret", "exec", "--check", "true"],
            &["secret", "exec", "--en", "K=@k", "true"],
            &["secret", "exec", "-x", "true"],
            &["secret", "exec", "-", "true"],
            &["secret", "--scope", "s", "exec", "true"],
            &["secret", "run", "--stop-timeout", "1000y", "bash", "x"],
            &["secret", "run", "--death-signal", "NOPE", "bash", "x"],
            &["secret", "run", "--passphrase-fd", "three", "bash", "x"],
            &["secret", "run", "--env", "K=@k", "bash", "x"],
            &["secret", "run", "bash"],
            &["secret", "list"],
            &["secret"],
        ];
        for line in lines {
            assert!(
                parse(&argv(line), None).is_none(),
                "read without clap: {line:?}"
            );
        }
        let not_utf8 = std::os::unix::ffi::OsStringExt::from_vec(vec![0xff]);
        let mut line = argv(&["secret", "exec", "--env"]);
        line.extend([not_utf8, "true".into()]);
        assert!(parse(&line, None).is_none());
    }

    /// Lines drawn from options in every form (valid or not, once or
    /// twice, with or without `--`): whatever this reader accepts, clap
    /// reads the same way (checked in `read`).
    #[test]
    fn reads_generated_lines_as_clap_does() {
        const WORDS: &[&[&str]] = &[
            &["--env", "K=@k"],
            &["--env=L=@l"],
            &["-e", "M=vault://p/q#r"],
            &["--env-file", "a.env"],
            &["--file", "F=@f"],
            &["--proxy", "P=@p"],
            &["--proxy-egress", "deny"],
            &["--proxy-egress=allow"],
            &["-i"],
            &["--ignore-environment"],
            &["--keep", "LC_*"],
            &["--unset=X"],
            &["--exec"],
            &["--consumer", "agent"],
            &["--purpose", "ci"],
            &["--mask"],
            &["--no-mask"],
            &["--subreaper"],
            &["--stop-timeout", "250ms"],
            &["--stop-timeout", "99999y"],
            &["--death-signal", "sigkill"],
            &["--scope", "team"],
            &["--passphrase-fd", "+7"],
            &["--check"],
            &["--"],
            &["-x"],
            &["--env"],
        ];
        const COMMAND: &[&str] = &["python3", "agent.py", "-v", "--env", "--", "x"];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % n as u64).expect("small")
        };
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut line = vec!["secret", if next(3) == 0 { "run" } else { "exec" }];
            for _ in 0..next(6) {
                line.extend(WORDS[next(WORDS.len())]);
            }
            if next(2) == 0 {
                line.push("--");
            }
            line.extend(&COMMAND[..next(COMMAND.len() + 1)]);
            accepted += usize::from(read(&argv(&line)).is_some());
        }
        assert!(accepted > 300, "only {accepted} of 3000 lines read");
    }
}

//! `secret reveal @name`: one value on the terminal, for debugging, and
//! the hint `secret get` answers with. The value is printed only when
//! standard output is a terminal (a pipe or a file with `--force`), after
//! the grants allow it (consumer `exec` by default: reveal shows what
//! `secret exec -- printenv` could print anyway), and every reveal is in
//! the audit trail as a "reveal".

use std::io::{IsTerminal, Write};

use zeroize::Zeroizing;

use super::context::Context;
use super::plan::{self, Asking};
use crate::cli::RevealArgs;
use crate::error::{Error, Result};
use crate::grants::Delivery;
use crate::handle::{Source, ValueSpec};
use crate::resolve;

/// `secret reveal @name [--force] [--consumer C] [--purpose P]`.
pub(crate) fn reveal(ctx: &Context, args: &RevealArgs) -> Result<u8> {
    let source = match ValueSpec::parse_with(&args.handle, &ctx.schemes())? {
        ValueSpec::Handle(h) => Source::Local(h),
        ValueSpec::Remote(r) => Source::Remote(r),
        ValueSpec::Literal(_) | ValueSpec::Template(_) => {
            return Err(Error::usage_hint(
                format!(
                    "\"{}\" is not a handle or a remote reference",
                    args.handle.escape_default()
                ),
                "write the handle with its @, as in: secret reveal @openai_api_key",
            ));
        }
    };
    let terminal = std::io::stdout().is_terminal();
    if !terminal && !args.force {
        return Err(Error::usage_hint(
            format!(
                "not revealing {source}: standard output is not a terminal, so the value would go into a pipe or a file (and from there into logs, scrollback or an agent's context)"
            ),
            format!(
                "run it in a terminal to look at the value; give it to a program with: secret exec --env VAR={source} -- COMMAND; or add --force if the pipe is really meant to get it"
            ),
        ));
    }
    let who = Asking {
        consumer: &args.consumer,
        purpose: args.purpose.as_deref(),
    };
    let requests = resolve::requests([(source, Delivery::Env)]);
    let (resolutions, _) = plan::resolve(ctx, &requests, &who, "reveal")?;
    let value = resolve::all(resolutions)?
        .values
        .into_values()
        .next()
        .ok_or_else(|| Error::internal("nothing was resolved"))?;
    let shown = if terminal {
        escape_controls(value.expose())
    } else {
        Zeroizing::new(value.expose().to_vec())
    };
    drop(value);
    let mut out = std::io::stdout().lock();
    out.write_all(&shown)
        .and_then(|()| {
            if terminal && !shown.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            out.flush()
        })
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(0)
}

/// The value as a terminal may show it: newlines and tabs as they are,
/// every other control byte (ESC, BEL, CR, DEL…) and every byte that is
/// not UTF-8 escaped as `\xNN`, so a value cannot move the cursor, set the
/// title or write the clipboard. Everything else, backslashes included, is
/// shown as it is, so printable text can be copied from the screen.
fn escape_controls(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut rest = bytes;
    while !rest.is_empty() {
        let (text, bad) = match std::str::from_utf8(rest) {
            Ok(text) => (text, 0),
            Err(e) => {
                let valid = e.valid_up_to();
                let text = std::str::from_utf8(&rest[..valid]).unwrap_or_default();
                (text, e.error_len().unwrap_or(rest.len() - valid))
            }
        };
        for c in text.chars() {
            match c {
                '\n' | '\t' => out.push(c as u8),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let consumed = text.len();
        for b in &rest[consumed..consumed + bad] {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
        rest = &rest[consumed + bad..];
    }
    out
}

/// `secret get …`: there is no such command; say what to use instead.
pub(crate) fn get(args: &[std::ffi::OsString]) -> Result<u8> {
    let handle = args
        .iter()
        .filter_map(|a| a.to_str())
        .find(|a| crate::handle::Handle::parse(a).is_ok())
        .unwrap_or("@name");
    Err(Error::usage_hint(
        "secret has no get command: it does not print values where a program could capture them",
        format!(
            "to look at the value on your terminal: secret reveal {handle}\n        to hand it to a program: secret exec --env VAR={handle} -- COMMAND"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_shown_escaped_and_text_is_kept() {
        let shown = escape_controls(b"a\tb\nc\x1b]52;c;x\x07\\ \xff\xfe\xc3\xa9\x7f");
        assert_eq!(
            String::from_utf8_lossy(&shown),
            "a\tb\nc\\x1b]52;c;x\\x07\\ \\xff\\xfe\u{e9}\\x7f"
        );
        assert_eq!(&escape_controls(b"sk-live-123")[..], b"sk-live-123");
    }
}

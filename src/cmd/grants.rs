//! `secret grants check @name --consumer C`: explains what the grants
//! decide, as a launch would (after scopes). Exit 0 allowed, 1 denied.

use super::context::{Context, print};
use crate::error::{Error, Result};
use crate::grants::{self, Decision, Delivery, Grants};
use crate::handle::Handle;
use crate::resolve;

/// Prints the grant that allows the request, or why none does and the
/// grant that would.
pub(crate) fn check(
    ctx: &Context,
    reference: &str,
    consumer: &str,
    purpose: Option<&str>,
    delivery: Delivery,
) -> Result<u8> {
    let grants = Grants::load(ctx.paths()?)?;
    let secret = if reference.starts_with('@') {
        let handle = Handle::parse(reference)?;
        // Match what a launch would resolve: the handle that answers in scope.
        match ctx
            .open_store()
            .and_then(|store| resolve::find(store.as_ref(), &ctx.scope, &handle))
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
    // Delivery http is decided as the proxy decides it: by the grant that
    // names where the value may go, when one does.
    let decision = if delivery == Delivery::Http {
        grants.decide_hosts(&req)
    } else {
        grants.decide(&req)
    };
    match decision {
        Decision::Allowed(g) => {
            let hosts = g.allowed_hosts.as_ref().filter(|h| !h.is_empty());
            let mut text = format!(
                "allowed: {}:{} grants secret_ref \"{}\" to consumer \"{}\"{}{}{}\n",
                grants.path().display(),
                g.line,
                g.secret_ref,
                g.consumer,
                g.purposes
                    .as_ref()
                    .map_or(String::new(), |p| format!(", purposes {p:?}")),
                g.ttl_secs
                    .map_or(String::new(), |t| format!(", lease {t}s")),
                hosts.map_or(String::new(), |h| format!(", allowed_hosts {h:?}")),
            );
            // The broker may do without: its routes name their upstream.
            if delivery == Delivery::Http && hosts.is_none() && consumer != "broker" {
                text.push_str(
                    "note: it names no allowed_hosts: exec --proxy and secret_proxy_refs refuse it until it does (allowed_hosts = [\"api.openai.com\"])\n",
                );
            }
            print(&text)
        }
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

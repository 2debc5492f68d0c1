//! `secret add | rotate | rm | list | inspect | link`: changing and showing
//! what the store holds. Never a value on output: metadata only.

use super::context::{Context, print};
use crate::audit::Event;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::passphrase;
use crate::resolve;
use crate::show::{self, Shown};
use crate::store::{self, EntryMeta};
use crate::value::SecretValue;

/// `secret add @name [--stdin] [--provider P] [--kind K]`.
pub(crate) fn add(
    ctx: &Context,
    handle: &str,
    stdin: bool,
    provider: &str,
    kind: &str,
) -> Result<u8> {
    let handle = Handle::parse(handle)?;
    store::check_label("provider", provider)?;
    store::check_label("kind", kind)?;
    if kind == store::LINK_KIND {
        return Err(Error::usage_hint(
            "--kind link is reserved for links",
            format!("make a link with: secret link {handle} vault://mount/path#field"),
        ));
    }
    // Under a scope a new secret belongs to the scope: `--scope team-a/ws-1
    // add @db` creates @team-a/ws-1/db, whatever a wider scope holds.
    let handle = ctx.scope.narrowest(&handle)?;
    let mut store = ctx.open_store()?;
    let value = passphrase::read_value("add", &handle.to_string(), stdin)?;
    let meta = store.add(&handle, &value, provider, kind)?;
    changed(ctx, "add", &meta, "added")
}

/// `secret rotate @name [--stdin]`: a link's value lives elsewhere.
pub(crate) fn rotate(ctx: &Context, handle: &str, stdin: bool) -> Result<u8> {
    // The entry that answers in scope, as exec and inspect would use it.
    let asked = Handle::parse(handle)?;
    let mut store = ctx.open_store()?;
    let found = resolve::find(store.as_ref(), &ctx.scope, &asked)?;
    let handle = Handle::from_name(&found.handle)?;
    if found.kind == store::LINK_KIND {
        return Err(Error::usage_hint(
            format!("{handle} is a link; its value lives in the remote store"),
            format!(
                "rotate it there, or point the link elsewhere with: secret link {handle} REFERENCE"
            ),
        ));
    }
    let value = passphrase::read_value("rotate", &handle.to_string(), stdin)?;
    let meta = store.rotate(&handle, &value)?;
    changed(ctx, "rotate", &meta, "rotated")
}

/// `secret rm @name`.
pub(crate) fn rm(ctx: &Context, handle: &str) -> Result<u8> {
    let asked = Handle::parse(handle)?;
    let mut store = ctx.open_store()?;
    let found = resolve::find(store.as_ref(), &ctx.scope, &asked).map_err(|e| match e {
        Error::NoSuchSecret { handle, near, .. } => Error::NoSuchSecret {
            hint: Some(match &near {
                Some(near) => format!("nothing was removed; to remove @{near}: secret rm @{near}"),
                None => "nothing was removed; `secret list` shows the handles there are".into(),
            }),
            handle,
            near,
        },
        e => e,
    })?;
    let meta = store.remove(&Handle::from_name(&found.handle)?)?;
    changed(ctx, "rm", &meta, "removed")
}

/// `secret list [--json]`.
pub(crate) fn list(ctx: &Context, json: bool) -> Result<u8> {
    let store = ctx.open_store()?;
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

/// `secret inspect @name [--json]`: the entry that answers in scope.
pub(crate) fn inspect(ctx: &Context, handle: &str, json: bool) -> Result<u8> {
    let handle = Handle::parse(handle)?;
    let store = ctx.open_store()?;
    let meta = resolve::find(store.as_ref(), &ctx.scope, &handle)?;
    let shown = Shown::new(store.as_ref(), meta, Some(&handle))?;
    print(&if json {
        format!("{}\n", shown.json())
    } else {
        shown.text()
    })
}

/// `secret link @name REFERENCE`: a local handle that resolves remotely.
/// Re-linking an existing link points it elsewhere; a stored secret is
/// never replaced by a link.
pub(crate) fn link(ctx: &Context, handle: &str, reference: &str) -> Result<u8> {
    let handle = Handle::parse(handle)?;
    crate::handle::check_remote_path(reference)?;
    let remote = crate::remote::Remote::parse(reference, &ctx.config).unwrap_or_else(|| {
        Err(Error::usage_hint(
            format!("\"{reference}\" is not a remote reference"),
            "use vault://MOUNT/PATH#FIELD, azure-kv://VAULT/SECRET, op://…, pass://… or a configured provider",
        ))
    })?;
    let text = remote.to_string();
    let scheme = crate::handle::scheme(&text).unwrap_or_default().to_owned();
    let value = SecretValue::new(text.clone().into_bytes());
    let mut store = ctx.open_store()?;
    let meta = match store.meta(&handle) {
        Ok(m) if m.kind == store::LINK_KIND => store.rotate(&handle, &value)?,
        Ok(_) => {
            return Err(Error::usage_hint(
                format!("{handle} holds a secret; a link would replace it"),
                format!("remove it first with: secret rm {handle}"),
            ));
        }
        Err(Error::NoSuchSecret { .. }) => store.add(&handle, &value, &scheme, store::LINK_KIND)?,
        Err(e) => return Err(e),
    };
    ctx.record(&[Event {
        action: "link",
        handle: Some(meta.handle.clone()),
        reference: Some(text.clone()),
        outcome: "ok".into(),
        ..ctx.event()
    }])?;
    print(&format!("linked @{} -> {text}\n", meta.handle))
}

/// Records a change to `meta` and says what happened.
fn changed(ctx: &Context, action: &'static str, meta: &EntryMeta, verb: &str) -> Result<u8> {
    ctx.record(&[Event {
        action,
        handle: Some(meta.handle.clone()),
        outcome: "ok".into(),
        fingerprint: Some(meta.fingerprint.clone()),
        ..ctx.event()
    }])?;
    print(&format!(
        "{verb} @{} (version {}, fingerprint {})\n",
        meta.handle, meta.version, meta.fingerprint
    ))
}

/// `secret __complete-handles` (hidden, for the completion scripts): the
/// handle names a shell offers after `@`, one `@name` a line. Read from the
/// store's metadata without the key, so it never prompts or unlocks; it
/// prints nothing when there is no store.
pub(crate) fn complete_handles(ctx: &Context) -> Result<u8> {
    let paths = ctx.paths()?;
    let names = match ctx.config.backend_in_force()? {
        store::Backend::File => store::vault::names_unverified(paths)?,
        store::Backend::Keychain => store::keychain::names_unverified(paths)?,
    };
    print(&names.iter().map(|n| format!("@{n}\n")).collect::<String>())
}

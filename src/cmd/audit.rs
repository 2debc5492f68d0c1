//! `secret audit [@name] [--json] [--verify]`: the trail, or its check.

use super::context::{Context, print};
use crate::audit;
use crate::error::Result;
use crate::handle::Handle;

/// Prints the trail (one handle's records with `@name`), or verifies it.
pub(crate) fn audit(ctx: &Context, handle: Option<&str>, json: bool, verify: bool) -> Result<u8> {
    if verify {
        let _store = ctx.open_store()?; // its key checks each line's mac
        return print(&audit::verify(ctx.paths()?)?.to_string());
    }
    let handle = handle.map(Handle::parse).transpose()?;
    let records = audit::read(ctx.paths()?)?;
    let mut out = String::new();
    let mut rows = Vec::new();
    for r in records.iter().filter(|r| {
        handle
            .as_ref()
            .is_none_or(|h| r.handle.as_deref() == Some(h.name()))
    }) {
        if json {
            out.push_str(&serde_json::to_string(r).unwrap_or_default());
            out.push('\n');
        } else {
            // A remote reference resolved directly has no handle: the
            // reference is the secret; a link's target follows its handle.
            let (secret, via) = match (&r.handle, &r.reference) {
                (Some(h), Some(reference)) => (format!("@{h}"), format!("  via {reference}")),
                (Some(h), None) => (format!("@{h}"), String::new()),
                (None, Some(reference)) => (reference.clone(), String::new()),
                (None, None) => ("-".to_owned(), String::new()),
            };
            let fingerprint = r
                .fingerprint
                .as_ref()
                .map_or(String::new(), |f| format!("  fingerprint {f}"));
            rows.push(vec![
                r.seq.to_string(),
                r.time.clone(),
                r.action.clone(),
                secret,
                r.consumer.clone(),
                format!("{}{fingerprint}{via}", r.outcome),
            ]);
        }
    }
    if !json {
        // Columns as wide as their widest cell: a long remote reference
        // does not push the rest of its row out of line.
        out = crate::show::columns(
            &["SEQ", "TIME", "ACTION", "SECRET", "CONSUMER", "OUTCOME"],
            &rows,
        );
    }
    print(&out)
}

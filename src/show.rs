//! How secrets' metadata is shown: the `list` table, `inspect` text and
//! both as JSON. Never a value; a link's target (a reference, not a secret)
//! is shown, and so is the handle a scope made answer.

use crate::error::Result;
use crate::handle::Handle;
use crate::store::{Backend, EntryMeta, Store};
use crate::timestamp::rfc3339_unix;

/// One entry as shown.
pub(crate) struct Shown {
    meta: EntryMeta,
    backend: Backend,
    /// For a link: the reference it points at.
    link: Option<String>,
    /// When a scope made another handle answer: the handle asked for.
    asked: Option<String>,
}

impl Shown {
    pub(crate) fn new(store: &dyn Store, meta: EntryMeta, asked: Option<&Handle>) -> Result<Self> {
        let link = crate::store::link_target(store, &meta)?;
        let asked = asked
            .filter(|h| h.name() != meta.handle)
            .map(ToString::to_string);
        Ok(Self {
            backend: store.backend(),
            meta,
            link,
            asked,
        })
    }

    #[must_use]
    pub(crate) fn json(&self) -> serde_json::Value {
        let m = &self.meta;
        let mut v = serde_json::json!({
            "handle": format!("@{}", m.handle),
            "provider": m.provider,
            "kind": m.kind,
            "fingerprint": m.fingerprint,
            "created": rfc3339_unix(m.created),
            "rotated": m.rotated.map(rfc3339_unix),
            "version": m.version,
            "backend": self.backend.to_string(),
            "link": self.link,
        });
        if let Some(asked) = &self.asked {
            v["asked_for"] = asked.clone().into();
        }
        v
    }

    #[must_use]
    pub(crate) fn text(&self) -> String {
        let m = &self.meta;
        let mut out = format!("handle:      @{}\n", m.handle);
        if let Some(asked) = &self.asked {
            out.push_str(&format!(
                "asked for:   {asked} (answered through the scope)\n"
            ));
        }
        if let Some(link) = &self.link {
            out.push_str(&format!("points to:   {link}\n"));
        }
        out.push_str(&format!(
            "provider:    {}\nkind:        {}\nfingerprint: {}\ncreated:     {}\nrotated:     {}\nversion:     {}\nbackend:     {}\n",
            dash(&m.provider),
            dash(&m.kind),
            m.fingerprint,
            rfc3339_unix(m.created),
            m.rotated.map_or("never".to_owned(), rfc3339_unix),
            m.version,
            self.backend
        ));
        out
    }
}

pub(crate) fn json_list(entries: &[Shown]) -> String {
    let list: Vec<_> = entries.iter().map(Shown::json).collect();
    format!("{}\n", serde_json::Value::Array(list))
}

pub(crate) fn table(entries: &[Shown]) -> String {
    let any_link = entries.iter().any(|e| e.link.is_some());
    let mut header = vec![
        "HANDLE",
        "PROVIDER",
        "KIND",
        "VERSION",
        "FINGERPRINT",
        "UPDATED",
        "BACKEND",
    ];
    if any_link {
        header.push("POINTS TO");
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let m = &e.meta;
            let mut row = vec![
                format!("@{}", m.handle),
                dash(&m.provider),
                dash(&m.kind),
                m.version.to_string(),
                m.fingerprint.clone(),
                rfc3339_unix(m.rotated.unwrap_or(m.created)),
                e.backend.to_string(),
            ];
            if any_link {
                row.push(e.link.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    columns(&header, &rows)
}

/// Lays `rows` out under `header` in left-aligned columns two spaces
/// apart, one line each.
pub(crate) fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|&h| h.to_owned()).collect();
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

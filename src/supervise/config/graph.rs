//! The rules between plugins: unique ids, dependencies that exist and
//! are enabled, and no dependency cycle.

use super::*;

impl Parser<'_> {
    /// Rules between plugins: unique ids, known and enabled dependencies,
    /// no cycles.
    pub(super) fn relations(&mut self, entries: &[Entry], plugins: &[Plugin]) {
        let mut first: BTreeMap<&str, &At<String>> = BTreeMap::new();
        for e in entries {
            if let Some(id) = &e.id {
                if let Some(prev) = first.get(id.value.as_str()) {
                    let line = self.line_of(prev.span.start);
                    self.error(
                        id.span.clone(),
                        format!(
                            "plugins[{}]: duplicate plugin id \"{}\" (first defined at line {line})",
                            e.index, id.value
                        ),
                    );
                } else {
                    first.insert(&id.value, id);
                }
            }
        }
        let ids: Vec<&str> = first.keys().copied().collect();
        let enabled = |id: &str| {
            plugins
                .iter()
                .find(|p| p.id == id)
                .is_none_or(|p| p.enabled)
        };
        for e in entries {
            let Some(deps) = &e.depends_on else { continue };
            let me_enabled = e.id.as_ref().is_none_or(|id| enabled(&id.value));
            for (dep, _, span) in &deps.value {
                if !ids.contains(&dep.as_str()) {
                    let hint = suggestion(dep, ids.iter().copied());
                    self.error(
                        span.clone(),
                        format!(
                            "{}: unknown plugin \"{}\"{hint}",
                            deps.path,
                            dep.escape_default()
                        ),
                    );
                } else if me_enabled && !enabled(dep) {
                    self.error(
                        span.clone(),
                        format!("{}: depends on disabled plugin \"{dep}\"", deps.path),
                    );
                }
            }
        }
        self.cycles(entries);
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        crate::supervise::diag::line_col(self.text, offset).0
    }

    pub(super) fn cycles(&mut self, entries: &[Entry]) {
        let edges: BTreeMap<&str, Vec<&str>> = entries
            .iter()
            .filter_map(|e| {
                let id = e.id.as_ref()?;
                let deps = e
                    .depends_on
                    .as_ref()
                    .map(|d| d.value.iter().map(|(x, _, _)| x.as_str()).collect())
                    .unwrap_or_default();
                Some((id.value.as_str(), deps))
            })
            .collect();
        let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
        for e in entries {
            // A cycle passes through some entry with dependencies: report
            // it there.
            let (Some(id), Some(_)) = (&e.id, &e.depends_on) else {
                continue;
            };
            let mut stack = vec![id.value.as_str()];
            if let Some(cycle) = find_cycle(&edges, &mut stack) {
                let mut key = cycle.clone();
                key.sort_unstable();
                key.dedup();
                if reported.insert(key) {
                    let span = e
                        .depends_on
                        .as_ref()
                        .map_or(e.span.clone(), |d| d.span.clone());
                    self.error(span, format!("dependency cycle: {}", cycle.join(" -> ")));
                }
            }
        }
    }
}

/// A cycle through `stack[0]`, as the list of ids from it back to it.
fn find_cycle<'a>(
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    stack: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    let last = *stack.last()?;
    for &next in edges.get(last).map_or(&[][..], Vec::as_slice) {
        if next == stack[0] {
            let mut cycle = stack.clone();
            cycle.push(next);
            return Some(cycle);
        }
        if stack.contains(&next) {
            continue;
        }
        stack.push(next);
        if let Some(c) = find_cycle(edges, stack) {
            return Some(c);
        }
        stack.pop();
    }
    None
}

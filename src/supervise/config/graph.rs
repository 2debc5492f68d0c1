//! The rules between plugins: unique ids, dependencies that exist and
//! are enabled, and no dependency cycle. Every check here is linear in the
//! number of plugins and dependencies (maps for lookups, one iterative
//! strongly-connected-components pass for cycles), so a file with
//! thousands of plugins, or a cycle through all of them, is checked at
//! once and cannot exhaust the stack.

use super::*;

/// Unknown dependency ids that get a did-you-mean: each costs a comparison
/// with every id in the file.
const MAX_SUGGESTED_IDS: usize = 20;
/// A cycle longer than these two and one is shown as its first
/// `CYCLE_HEAD` ids, a count, and its last `CYCLE_TAIL`.
const CYCLE_HEAD: usize = 10;
const CYCLE_TAIL: usize = 3;

impl Parser<'_> {
    /// Rules between plugins: unique ids, known and enabled dependencies,
    /// no cycles.
    pub(super) fn relations(&mut self, entries: &[Entry], plugins: &[Plugin]) {
        let mut first: BTreeMap<&str, &At<String>> = BTreeMap::new();
        for e in entries {
            self.work += 1;
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
        // A plugin that did not validate counts as enabled: its own
        // problems are reported already.
        let mut enabled: BTreeMap<&str, bool> = BTreeMap::new();
        for p in plugins {
            enabled.entry(p.id.as_str()).or_insert(p.enabled);
        }
        let is_enabled = |id: &str| enabled.get(id).is_none_or(|e| *e);
        let mut suggestions_left = MAX_SUGGESTED_IDS;
        for e in entries {
            let Some(deps) = &e.depends_on else { continue };
            let me_enabled = e.id.as_ref().is_none_or(|id| is_enabled(&id.value));
            for (dep, _, span) in &deps.value {
                self.work += 1;
                if !first.contains_key(dep.as_str()) {
                    let hint = if suggestions_left > 0 {
                        suggestions_left -= 1;
                        self.work += first.len() as u64;
                        suggestion(dep, first.keys().copied())
                    } else {
                        String::new()
                    };
                    self.error(
                        span.clone(),
                        format!("{}: unknown plugin \"{}\"{hint}", deps.path, shown(dep)),
                    );
                } else if me_enabled && !is_enabled(dep) {
                    self.error(
                        span.clone(),
                        format!("{}: depends on disabled plugin \"{dep}\"", deps.path),
                    );
                }
            }
        }
        self.cycles(entries);
    }

    pub(super) fn line_of(&mut self, offset: usize) -> usize {
        self.work += 1;
        self.lines.line(offset)
    }

    /// One `dependency cycle: a -> b -> a` per group of plugins that
    /// depend on each other (a strongly connected component with more than
    /// one plugin, or one that depends on itself), reported at the
    /// `depends_on` of its first plugin in the file.
    pub(super) fn cycles(&mut self, entries: &[Entry]) {
        let graph = Graph::new(entries);
        self.work += graph.edge_count() as u64;
        let (components, steps) = graph.components();
        self.work += steps;
        for component in components {
            let Some((cycle, steps)) = graph.cycle(&component) else {
                continue;
            };
            self.work += steps;
            let e = &entries[graph.entry[cycle[0]]];
            let span = e
                .depends_on
                .as_ref()
                .map_or(e.span.clone(), |d| d.span.clone());
            let mut names: Vec<String> = cycle.iter().map(|&n| graph.names[n].to_owned()).collect();
            // A long cycle: its start and its end are enough to find it.
            if names.len() > CYCLE_HEAD + CYCLE_TAIL + 1 {
                let hidden = names.len() - CYCLE_HEAD - CYCLE_TAIL;
                names.splice(
                    CYCLE_HEAD..names.len() - CYCLE_TAIL,
                    [format!("… {hidden} more …")],
                );
            }
            self.error(span, format!("dependency cycle: {}", names.join(" -> ")));
        }
    }
}

/// The dependencies between known ids, as node numbers in file order.
struct Graph<'a> {
    names: Vec<&'a str>,
    /// The entry that first defined each node.
    entry: Vec<usize>,
    /// Each node's dependencies on known ids, as written (a duplicate id's
    /// dependencies join the first definition's).
    edges: Vec<Vec<usize>>,
}

impl<'a> Graph<'a> {
    fn new(entries: &'a [Entry]) -> Self {
        let mut number: BTreeMap<&str, usize> = BTreeMap::new();
        let mut names = Vec::new();
        let mut entry = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(id) = &e.id {
                number.entry(id.value.as_str()).or_insert_with(|| {
                    names.push(id.value.as_str());
                    entry.push(i);
                    names.len() - 1
                });
            }
        }
        let mut edges = vec![Vec::new(); names.len()];
        for e in entries {
            let (Some(id), Some(deps)) = (&e.id, &e.depends_on) else {
                continue;
            };
            let from = number[id.value.as_str()];
            edges[from].extend(
                deps.value
                    .iter()
                    .filter_map(|(d, _, _)| number.get(d.as_str())),
            );
        }
        Self {
            names,
            entry,
            edges,
        }
    }

    fn edge_count(&self) -> usize {
        self.edges.iter().map(Vec::len).sum()
    }

    /// The strongly connected components (Tarjan's algorithm, with an
    /// explicit stack instead of recursion), and the steps taken.
    fn components(&self) -> (Vec<Vec<usize>>, u64) {
        const NEW: usize = usize::MAX;
        let n = self.names.len();
        let mut index = vec![NEW; n];
        let mut low = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut next = 0;
        let mut out = Vec::new();
        let mut steps = 0u64;
        // (node, how many of its edges were followed)
        let mut calls: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if index[root] != NEW {
                continue;
            }
            let mut discovered = Some(root);
            loop {
                if let Some(v) = discovered.take() {
                    index[v] = next;
                    low[v] = next;
                    next += 1;
                    stack.push(v);
                    on_stack[v] = true;
                    calls.push((v, 0));
                }
                let Some((v, followed)) = calls.last_mut() else {
                    break;
                };
                let v = *v;
                steps += 1;
                if let Some(&w) = self.edges[v].get(*followed) {
                    *followed += 1;
                    if index[w] == NEW {
                        discovered = Some(w);
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        steps += 1;
                        if w == v {
                            break;
                        }
                    }
                    out.push(component);
                }
            }
        }
        (out, steps)
    }

    /// A shortest cycle through the component's first node (in file
    /// order), as nodes from it back to it; `None` when the component is
    /// one node that does not depend on itself. Also the steps taken.
    fn cycle(&self, component: &[usize]) -> Option<(Vec<usize>, u64)> {
        let &start = component.iter().min()?;
        let members: BTreeSet<usize> = component.iter().copied().collect();
        let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut steps = component.len() as u64;
        while let Some(v) = queue.pop_front() {
            for &w in &self.edges[v] {
                steps += 1;
                if w == start {
                    let mut back = Vec::new();
                    let mut at = v;
                    while at != start {
                        back.push(at);
                        at = parent[&at];
                    }
                    let path: Vec<usize> = std::iter::once(start)
                        .chain(back.into_iter().rev())
                        .chain([start])
                        .collect();
                    let steps = steps + path.len() as u64;
                    return Some((path, steps));
                }
                if members.contains(&w) && !parent.contains_key(&w) {
                    parent.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        None
    }
}

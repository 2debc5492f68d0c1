//! The rules for single values: types, ranges, durations (bounded by
//! `MAX_DURATION`), signals, ids, variable names, paths. Each problem is a
//! diagnostic at the value's `file:line:col`; nothing stops at the first.

use super::*;

impl Parser<'_> {
    pub(super) fn string(&mut self, path: &str, v: &Value<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) if s.contains('\0') => {
                self.error(v.span(), format!("{path}: contains a NUL character"));
                None
            }
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.expected(path, v, "a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, path: &str, v: &Value<'_>) -> Option<bool> {
        if let Some(b) = v.get_ref().as_bool() {
            return Some(b);
        }
        self.expected(path, v, "true or false");
        None
    }

    pub(super) fn integer(&mut self, path: &str, v: &Value<'_>, range: Range<i64>) -> Option<i64> {
        let Some(n) = v.get_ref().as_integer() else {
            self.expected(path, v, "an integer");
            return None;
        };
        match i64::from_str_radix(&n.as_str().replace('_', ""), n.radix()) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "{path}: must be from {} to {}",
                        range.start,
                        range.end.saturating_sub(1)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn duration(&mut self, path: &str, v: &Value<'_>) -> Option<(Duration, String)> {
        let Some(text) = v.get_ref().as_str() else {
            self.error(
                v.span(),
                format!("{path}: must be a duration like \"60s\" (a string with a unit)"),
            );
            return None;
        };
        match crate::duration::parse(text) {
            Ok(d) => Some((d, text.to_owned())),
            Err(crate::duration::Error::OverMaximum) => {
                self.error(
                    v.span(),
                    format!(
                        "{path}: \"{}\" is longer than the maximum of {}",
                        text.escape_default(),
                        crate::duration::format(MAX_DURATION)
                    ),
                );
                None
            }
            Err(e) => {
                self.error(
                    v.span(),
                    format!(
                        "{path}: \"{}\" is not a duration ({e}); use a number with a unit: \"250ms\", \"10s\", \"2m\"",
                        text.escape_default()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        path: &str,
        v: &Value<'_>,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let listed = names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(text) = v.get_ref().as_str() else {
            self.expected(path, v, &format!("one of {listed}"));
            return None;
        };
        if let Some((_, t)) = choices.iter().find(|(n, _)| *n == text) {
            return Some(*t);
        }
        let hint = suggestion(text, names.iter().copied());
        let hint = if hint.is_empty() {
            format!("; use one of {listed}")
        } else {
            hint
        };
        self.error(
            v.span(),
            format!("{path}: unknown value \"{}\"{hint}", text.escape_default()),
        );
        None
    }

    pub(super) fn strings(
        &mut self,
        path: &str,
        v: &Value<'_>,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.expected(path, v, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(&format!("{path}[{i}]"), item) {
                Some(s) => out.push((s, item.span())),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn signal(&mut self, path: &str, v: &Value<'_>, allowed: &[&str]) -> Option<Signal> {
        let text = self.string(path, v)?;
        let named: Vec<String> = allowed.iter().map(|s| format!("SIG{s}")).collect();
        match crate::child::supervise::parse_signal(&text) {
            Ok(sig) if allowed.iter().any(|a| sig.as_str() == format!("SIG{a}")) => Some(sig),
            Ok(sig) => {
                self.error(
                    v.span(),
                    format!(
                        "{path}: {} is not allowed here (use one of {})",
                        sig.as_str(),
                        allowed.join(", ")
                    ),
                );
                None
            }
            Err(_) => {
                let upper = text.to_ascii_uppercase();
                let hint = suggestion(&upper, named.iter().map(String::as_str)).to_owned();
                let hint = if hint.is_empty() {
                    suggestion(&upper, allowed.iter().copied())
                } else {
                    hint
                };
                self.error(
                    v.span(),
                    format!("{path}: unknown signal \"{}\"{hint}", text.escape_default()),
                );
                None
            }
        }
    }

    pub(super) fn cwd(&mut self, path: &str, v: &Value<'_>) -> Option<PathBuf> {
        let text = self.string(path, v)?;
        let dir = self.dir.join(&text);
        if dir.is_dir() {
            Some(dir)
        } else {
            self.error(
                v.span(),
                format!(
                    "{path}: directory \"{}\" does not exist",
                    text.escape_default()
                ),
            );
            None
        }
    }

    pub(super) fn pass_env(&mut self, path: &str, v: &Value<'_>) -> Option<Vec<String>> {
        let globs = self.strings(path, v)?;
        let mut ok = true;
        for (i, (g, span)) in globs.iter().enumerate() {
            if g.is_empty()
                || !g
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '*' | '?'))
            {
                self.error(
                    span.clone(),
                    format!(
                        "{path}[{i}]: \"{}\" is not a variable name or glob (letters, digits, _, * and ?)",
                        g.escape_default()
                    ),
                );
                ok = false;
            }
        }
        ok.then(|| globs.into_iter().map(|(g, _)| g).collect())
    }

    pub(super) fn exit_codes(&mut self, path: &str, v: &Value<'_>) -> Option<Vec<i32>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.expected(path, v, "an array of integers from 0 to 255");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.integer(&format!("{path}[{i}]"), item, 0..256) {
                Some(n) => out.push(i32::try_from(n).unwrap_or(0)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn crash_loop(&mut self, path: &str, v: &Value<'_>) -> Option<CrashLoop> {
        let t = self.table(path, v)?;
        self.unknown_keys(t, &["max", "window"], path);
        let max = match t.get("max") {
            Some(m) => self
                .integer(&join(path, "max"), m, 0..i64::from(u32::MAX))
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            None => Some(5),
        };
        let window = match t.get("window") {
            Some(w) => self.duration(&join(path, "window"), w),
            None => Some((Duration::from_secs(60), "60s".to_owned())),
        };
        let (max, (window, window_text)) = (max?, window?);
        if max > 0 && window.is_zero() {
            self.error(
                v.span(),
                format!("{path}.window: must be more than 0s when max is set"),
            );
            return None;
        }
        Some(CrashLoop {
            max,
            window,
            window_text,
        })
    }

    pub(super) fn id(
        &mut self,
        base: &str,
        t: &DeTable<'_>,
        span: &Range<usize>,
    ) -> Option<At<String>> {
        let Some(v) = t.get("id") else {
            self.error(span.clone(), format!("{base}: missing required key \"id\""));
            return None;
        };
        let path = join(base, "id");
        let id = self.string(&path, v)?;
        if !is_valid_id(&id) {
            self.error(
                v.span(),
                format!(
                    "{path}: \"{}\" is not a valid id (use lowercase letters, digits, \".\", \"_\", \"-\"; start with a letter or digit; at most 64)",
                    id.escape_default()
                ),
            );
            return None;
        }
        Some(At {
            value: id,
            span: v.span(),
            path,
        })
    }

    pub(super) fn env_name(&mut self, path: &str, name: &str, span: Range<usize>) -> bool {
        if !is_env_name(name) {
            self.error(
                span,
                format!("{path}: not a valid environment variable name"),
            );
            false
        } else if CONTROL_VARIABLES.contains(&name) {
            self.error(
                span,
                format!("{path}: {name} is one of secret's own control variables; variables named SECRET_* that steer secret are reserved for secret itself"),
            );
            false
        } else {
            true
        }
    }
}

fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.len() <= 64
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

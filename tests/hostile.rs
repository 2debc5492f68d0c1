//! The `plugins.toml` files that once made `secret plugins check`
//! super-linear (issue #10): shared by the test that pins their messages
//! (`limits`) and the benchmark that times them (`benches/plugins.rs`).

/// `n` plugins `p0`… running `true`, each followed by `more(i)`.
pub(crate) fn plugins(n: usize, more: &dyn Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[plugins]]\nid = \"p{i}\"\ncommand = \"true\"\n{}",
                more(i)
            )
        })
        .collect()
}

/// One plugin with `n` unknown keys `k0`….
pub(crate) fn unknown_keys(n: usize) -> String {
    let keys: String = (0..n).map(|i| format!("k{i} = 1\n")).collect();
    format!("[[plugins]]\nid = \"a\"\ncommand = \"true\"\n{keys}")
}

/// `n` plugins, each depending on the next and the last on the first.
pub(crate) fn cycle(n: usize) -> String {
    plugins(n, &|i| format!("depends_on = [\"p{}\"]\n", (i + 1) % n))
}

/// `n` plugins, each depending on the next; valid.
pub(crate) fn chain(n: usize) -> String {
    plugins(n, &|i| {
        if i + 1 < n {
            format!("depends_on = [\"p{}\"]\n", i + 1)
        } else {
            String::new()
        }
    })
}

/// `n` plugins, each depending on a plugin that does not exist.
pub(crate) fn unknown_dependencies(n: usize) -> String {
    plugins(n, &|i| format!("depends_on = [\"q{i}\"]\n"))
}

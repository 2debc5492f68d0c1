//! The committed man pages and completions are what the clap definitions
//! generate today.

use std::path::Path;

use crate::util::Env;

fn compare(kind: &str, committed: &Path) {
    let env = Env::new();
    let fresh = env.root().join(kind);
    env.secret(["generate", kind, fresh.to_str().unwrap()])
        .run()
        .success();
    let mut names: Vec<_> = std::fs::read_dir(&fresh)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    let mut committed_names: Vec<_> = std::fs::read_dir(committed)
        .unwrap_or_else(|e| panic!("{}: {e}", committed.display()))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    committed_names.sort();
    assert_eq!(
        names, committed_names,
        "{kind}/ lists other files than are generated"
    );
    for name in names {
        let want = std::fs::read(fresh.join(&name)).unwrap();
        let have = std::fs::read(committed.join(&name)).unwrap();
        assert!(
            want == have,
            "{}/{} is stale: run `cargo run -- generate {kind} {kind}`",
            kind,
            name.to_string_lossy()
        );
    }
}

#[test]
fn man_pages_are_current() {
    compare("man", &Path::new(env!("CARGO_MANIFEST_DIR")).join("man"));
}

#[test]
fn completions_are_current() {
    compare(
        "completions",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("completions"),
    );
}

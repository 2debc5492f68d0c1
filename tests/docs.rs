//! The committed man pages and completions are what the clap definitions
//! generate today (the generator is `examples/generate.rs`, shared here so
//! the test and the files cannot disagree on how they are made).

use std::path::Path;

#[path = "../examples/generate.rs"]
#[allow(dead_code, unreachable_pub)]
mod generate;

use generate::Kind;

fn compare(kind: Kind) {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join(kind.dir());
    let scratch = tempfile::tempdir().unwrap();
    let fresh = scratch.path().join(kind.dir());
    generate::write(kind, &fresh).unwrap();
    let list = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        names
    };
    let names = list(&fresh);
    assert_eq!(
        names,
        list(&committed),
        "{}/ lists other files than are generated: run `cargo run --example generate`",
        kind.dir()
    );
    for name in names {
        let want = std::fs::read(fresh.join(&name)).unwrap();
        let have = std::fs::read(committed.join(&name)).unwrap();
        assert!(
            want == have,
            "{}/{} is stale: run `cargo run --example generate`",
            kind.dir(),
            name.to_string_lossy()
        );
    }
}

#[test]
fn man_pages_are_current() {
    compare(Kind::Man);
}

#[test]
fn completions_are_current() {
    compare(Kind::Completions);
}

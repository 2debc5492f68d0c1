//! `cargo run --example generate`: writes `man/` (one page per command) and
//! `completions/` (bash, zsh, fish) from the clap definitions. The
//! generators are dev-dependencies, so the `secret` binary does not carry
//! them; `tests/docs.rs` runs the same function and fails on a stale file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use clap_complete::Shell;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `man/secret.1` and one page per subcommand.
    Man,
    /// bash, zsh and fish completions.
    Completions,
}

impl Kind {
    /// The directory name under the repository root.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Man => "man",
            Kind::Completions => "completions",
        }
    }
}

/// Writes the `kind` files into `dir` (created if missing).
pub fn write(kind: Kind, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    match kind {
        Kind::Man => clap_mangen::generate_to(secret::docs::command(), dir),
        Kind::Completions => {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(shell, &mut secret::docs::command(), "secret", dir)?;
            }
            Ok(())
        }
    }
}

#[allow(dead_code)]
fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for kind in [Kind::Man, Kind::Completions] {
        let dir = root.join(kind.dir());
        write(kind, &dir).unwrap_or_else(|e| panic!("writing {}: {e}", dir.display()));
        println!("wrote {}", dir.display());
    }
}

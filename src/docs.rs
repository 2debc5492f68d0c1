//! Generated documentation: man pages and shell completions, both from the
//! clap definitions in `cli`, so they cannot drift from the real flags.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, Generated};
use crate::error::{Error, Result};

/// Writes `man/` pages or `completions/` scripts into `dir`.
pub fn generate(what: Generated, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let cmd = Cli::command();
    let io = |e: std::io::Error| Error::io(format!("writing into {}", dir.display()), e);
    match what {
        Generated::Man => {
            clap_mangen::generate_to(cmd, dir).map_err(io)?;
        }
        Generated::Completions => {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let mut cmd = Cli::command();
                clap_complete::generate_to(shell, &mut cmd, "secret", dir).map_err(io)?;
            }
            drop(cmd);
        }
    }
    Ok(())
}

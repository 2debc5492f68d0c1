//! Link arguments of the `secret` binary on x86_64 Linux, where rustc links
//! with its bundled LLD (the default since Rust 1.90, Cargo.toml's
//! rust-version). None changes what the program does (README,
//! "Performance"):
//!
//! - `-z pack-relative-relocs`: the ~6,900 relative relocations of the
//!   position-independent executable take 2 KB (DT_RELR) instead of 165 KB;
//!   glibc 2.36 or newer applies them.
//! - `link/no-unwind-tables.ld`, release builds only: `.eh_frame` is
//!   discarded, 0.46 MB. With `panic = "abort"` nothing unwinds; the tables
//!   only served backtraces, so a panic prints its message and location
//!   without one (and a debugger cannot walk the stack of a stripped
//!   release binary either). rustc's `-C force-unwind-tables=no` does not
//!   remove them under LTO with the precompiled std.
//! - `link/launch.ld`: the functions a launch runs, placed together at the
//!   start of the code, so that a launch maps a few hundred KB of it
//!   instead of most of it (written by `link/launch-order.py`). Not with
//!   `--icf=all` (50 KB less code): the copy a fold keeps can lie outside
//!   the launch section, which then maps its page run after all.

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=link/launch.ld");
    println!("cargo::rerun-if-changed=link/no-unwind-tables.ld");
    println!("cargo::rerun-if-env-changed=SECRET_NO_LAUNCH_ORDER");
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    let Ok(root) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    // A linker script of link/, passed to the binary's link.
    let script = |name: &str| {
        let path = Path::new(&root).join("link").join(name);
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", path.display());
    };
    println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    if let Some(dir) = libgcc_eh_dir() {
        println!("cargo::rustc-link-search=native={}", dir.display());
        println!("cargo::rustc-link-lib=static=gcc_eh");
    }
    // Set by link/launch-order.py, which builds the binary it traces.
    if std::env::var_os("SECRET_NO_LAUNCH_ORDER").is_none() {
        script("launch.ld");
    }
    // The release profile aborts on panic (Cargo.toml); PROFILE says
    // "release" for it and the profiles that inherit it (bench).
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        script("no-unwind-tables.ld");
    }
}

/// Where the C compiler keeps `libgcc_eh.a`, the static build of the
/// unwinder (std's backtraces call it): linked from there, the binary does
/// not load `libgcc_s.so.1`, whose start-up code alone runs seven CPUID
/// instructions (each a trap to the hypervisor on a virtual machine).
fn libgcc_eh_dir() -> Option<std::path::PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = std::process::Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = std::path::PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // An unknown file is printed back as its bare name.
    if !path.is_absolute() || !path.is_file() {
        return None;
    }
    path.parent().map(Path::to_path_buf)
}

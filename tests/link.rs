//! The binary's link layout from build.rs (x86_64 Linux, rustc's LLD): the
//! launch path's functions in their own section at the start of the code,
//! packed relative relocations, and no libgcc_s. Read with readelf
//! (binutils, which the C compiler needs anyway).
#![cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]

use std::process::Command;

fn readelf(flag: &str) -> String {
    let out = Command::new("readelf")
        .args(["-W", flag, env!("CARGO_BIN_EXE_secret")])
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf {flag} failed");
    String::from_utf8(out.stdout).expect("UTF-8 from readelf")
}

/// Size of the section `name` from `readelf -S` output, if there is one.
fn section_size(sections: &str, name: &str) -> Option<u64> {
    sections.lines().find_map(|line| {
        let (_, rest) = line.split_once("] ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        (fields.first() == Some(&name)).then(|| u64::from_str_radix(fields.get(4)?, 16).ok())?
    })
}

#[test]
fn the_launch_path_is_laid_out_together_before_the_rest_of_the_code() {
    let sections = readelf("-S");
    let launch = section_size(&sections, ".text.launch")
        .expect("a .text.launch section: build.rs passes link/launch.ld");
    // Hundreds of functions matched link/launch.ld's patterns: a stale or
    // unparsed script would leave the section (nearly) empty.
    assert!(launch > 64 * 1024, ".text.launch is only {launch} bytes");
    let order: Vec<&str> = sections
        .lines()
        .filter_map(|l| l.split_once("] ")?.1.split_whitespace().next())
        .collect();
    let at = |name: &str| order.iter().position(|s| *s == name);
    assert!(at(".text.launch") < at(".text"), "sections: {order:?}");
}

#[test]
fn relocations_are_packed_and_libgcc_s_is_not_loaded() {
    let dynamic = readelf("-d");
    assert!(dynamic.contains("(RELR)"), "no DT_RELR:\n{dynamic}");
    assert!(
        !dynamic.contains("libgcc_s"),
        "libgcc_s is needed:\n{dynamic}"
    );
}

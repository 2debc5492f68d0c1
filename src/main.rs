//! The `secret` binary: everything lives in the library so tests reuse it.
//!
//! `main` is the C `main`, not Rust's: Rust's start-up reads
//! `/proc/self/maps` (glibc's `pthread_getattr_np`, to find the main
//! thread's stack guard) and maps an alternate signal stack on every
//! launch, about a tenth of what `secret exec` costs before its child
//! starts. What of it matters, `secret::run` does itself: SIGPIPE ignored,
//! descriptors 0-2 opened on /dev/null when they are closed. A stack
//! overflow then ends in a plain SIGSEGV instead of a message.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

// SAFETY: the only `main` symbol in this binary (Rust's is not generated
// under `no_main`); the arguments are read with std::env::args_os, which
// glibc hands to std before `main` runs, not through these pointers.
// (Not in `cargo test`'s build of this file: its harness has the `main`.)
#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    let code = secret::run(std::env::args_os());
    // exit, not return: std::process::exit flushes standard output.
    std::process::exit(c_int::from(code))
}

//! The `secret` binary: everything lives in the library so tests reuse it.

fn main() -> std::process::ExitCode {
    secret::run(std::env::args_os())
}

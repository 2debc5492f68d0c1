//! A probe child for the process tests: records every signal it receives
//! (one line each, appended to a file), writes its pid once its handlers are
//! in place, and otherwise waits, reads or exits as told.
//!
//!     probe signals LOG READY     record signals until killed
//!     probe spawn-orphans N READY leave N orphaned zombies-to-be, then wait
//!     probe sleep READY           write pid to READY, then sleep until killed
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use signal_hook::consts::signal::*;
use signal_hook::iterator::Signals;

fn ready(path: &str) {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, std::process::id().to_string()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("signals") => {
            let names = [
                (SIGHUP, "HUP"),
                (SIGINT, "INT"),
                (SIGQUIT, "QUIT"),
                (SIGTERM, "TERM"),
                (SIGUSR1, "USR1"),
                (SIGUSR2, "USR2"),
                (SIGWINCH, "WINCH"),
                (SIGALRM, "ALRM"),
                (SIGCONT, "CONT"),
            ];
            let mut signals = Signals::new(names.iter().map(|(s, _)| *s)).unwrap();
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&args[1])
                .unwrap();
            ready(&args[2]);
            for s in signals.forever() {
                let name = names
                    .iter()
                    .find(|(n, _)| *n == s)
                    .map_or("?", |(_, name)| name);
                writeln!(log, "{name}").unwrap();
            }
        }
        Some("spawn-orphans") => {
            let n: usize = args[1].parse().unwrap();
            for _ in 0..n {
                // sh forks a sleeper and exits at once: the sleeper is
                // orphaned and, when it ends, must be reaped by PID 1 or a
                // subreaper.
                std::process::Command::new("sh")
                    .args(["-c", "sleep 0.2 &"])
                    .status()
                    .unwrap();
            }
            ready(&args[2]);
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        Some("sleep") => {
            ready(&args[1]);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        }
        _ => {
            eprintln!("usage: probe signals LOG READY | spawn-orphans N READY | sleep READY");
            std::process::exit(2);
        }
    }
}

//! A probe child for the process tests: records every signal it receives
//! (one line each, appended to a file), writes its pid once its handlers are
//! in place, and otherwise waits, reads or exits as told.
//!
//!     probe signals LOG READY     record signals until killed
//!     probe spawn-orphans N READY leave N orphaned zombies-to-be, then wait
//!     probe sleep READY           write pid to READY, then sleep until killed
//!     probe leader LOG READY CLOG CREADY
//!                                 start `probe signals CLOG CREADY` in our
//!                                 process group, then record signals like
//!                                 `signals`, but exit 0 on TERM
//!     probe crash LOG CODE        append "PID UNIX_MS" to LOG, exit CODE
//!     probe say VAR N             print N lines "I VAR=value", then
//!                                 "end VAR=value" without a newline; exit 0
//!     probe notify FD READY       write pid to READY, after 200ms write a
//!                                 newline to descriptor FD, then sleep
//!     probe listen ADDR           after 200ms listen on ADDR (TCP) and
//!                                 accept connections until killed
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use nix::sys::signal::{SigSet, Signal};

fn ready(path: &str) {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, std::process::id().to_string()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// Appends the name of every signal received to `log`; writes our pid to
/// `ready_path` once listening. With `exit_on_term`, TERM ends the process.
fn record_signals(log: &str, ready_path: &str, exit_on_term: bool) {
    let names = [
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGINT, "INT"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGTERM, "TERM"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGWINCH, "WINCH"),
        (Signal::SIGALRM, "ALRM"),
        (Signal::SIGCONT, "CONT"),
    ];
    // Blocked (this thread is the only one) and taken with sigwait: each
    // stays pending until read, even one our parent left ignored (Linux
    // never discards a blocked signal). SIGCONT still continues us.
    let mut signals = SigSet::empty();
    for (s, _) in names {
        signals.add(s);
    }
    signals.thread_block().unwrap();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    ready(ready_path);
    loop {
        let s = signals.wait().unwrap();
        let name = names
            .iter()
            .find(|(n, _)| *n == s)
            .map_or("?", |(_, name)| name);
        writeln!(log, "{name}").unwrap();
        if exit_on_term && s == Signal::SIGTERM {
            std::process::exit(0);
        }
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("signals") => record_signals(&args[1], &args[2], false),
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
            sleep_forever();
        }
        Some("leader") => {
            let child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["signals", &args[3], &args[4]])
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap();
            while !std::path::Path::new(&args[4]).exists() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            // Left to its fate: we exit on TERM without waiting for it.
            std::mem::forget(child);
            record_signals(&args[1], &args[2], true);
        }
        Some("crash") => {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&args[1])
                .unwrap();
            writeln!(log, "{} {ms}", std::process::id()).unwrap();
            std::process::exit(args[2].parse().unwrap());
        }
        Some("say") => {
            let value = std::env::var(&args[1]).unwrap_or_default();
            let n: usize = args[2].parse().unwrap();
            let mut out = std::io::stdout().lock();
            for i in 1..=n {
                writeln!(out, "{i} {}={value}", args[1]).unwrap();
            }
            write!(out, "end {}={value}", args[1]).unwrap();
            out.flush().unwrap();
        }
        Some("notify") => {
            let fd = args[1].clone();
            ready(&args[2]);
            std::thread::sleep(std::time::Duration::from_millis(200));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/self/fd/{fd}"))
                .unwrap();
            file.write_all(b"\n").unwrap();
            sleep_forever();
        }
        Some("listen") => {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let listener = std::net::TcpListener::bind(&args[1]).unwrap();
            for conn in listener.incoming() {
                drop(conn);
            }
        }
        _ => {
            eprintln!(
                "usage: probe signals LOG READY | spawn-orphans N READY | sleep READY | \
                 leader LOG READY CLOG CREADY | crash LOG CODE | say VAR N | notify FD READY | listen ADDR"
            );
            std::process::exit(2);
        }
    }
}

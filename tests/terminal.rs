//! `secret exec` in a real terminal, typed at like a person: an interactive
//! bash on a pseudo-terminal (util-linux `script`), keys sent as bytes
//! (Ctrl-C is \x03, Ctrl-Z \x1a), the screen read back, process states from
//! /proc. Every wait is on an event, bounded.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};

use crate::process::{env_with_key, shebang_env, state};
use crate::util::Env;
use crate::util::{KillOnDrop, probe, read_pid, wait_for};

/// An interactive bash (or any `command`) on a pseudo-terminal, with
/// `secret` on its PATH.
pub(crate) struct Terminal {
    shell: Child,
    keys: ChildStdin,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    pub(crate) fn start(env: &Env) -> Self {
        Self::run(env, "bash --norc --noprofile -i", shebang_env(env))
    }

    /// `command` (a shell line) on a pseudo-terminal, with only `vars`
    /// (and TERM) in its environment.
    pub(crate) fn run(env: &Env, command: &str, vars: Vec<(String, String)>) -> Self {
        let mut shell = std::process::Command::new("script")
            .args(["-qfec", command, "/dev/null"])
            .env_clear()
            .envs(vars)
            .env("TERM", "dumb")
            .env("PS1", "$ ")
            .current_dir(env.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let keys = shell.stdin.take().unwrap();
        let mut out = shell.stdout.take().unwrap();
        let screen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            shell,
            keys,
            screen,
        }
    }

    pub(crate) fn type_keys(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).unwrap();
        self.keys.flush().unwrap();
    }

    pub(crate) fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    #[track_caller]
    pub(crate) fn wait_screen(&self, needle: &str) {
        wait_for(&format!("{needle:?} on the screen"), || {
            self.screen().contains(needle)
        });
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.keys.write_all(b"\x04exit\n");
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

fn script(env: &Env, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = env.root().join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn ready(env: &Env, name: &str) -> std::path::PathBuf {
    env.root().join(name)
}

/// Issue 9, item 1: one Ctrl-C ends a script that runs `secret exec` in a
/// loop, as it ends the same loop around the bare command.
#[test]
fn ctrl_c_stops_a_script_looping_over_secret_exec() {
    let env = env_with_key();
    let probe = probe();
    script(
        &env,
        "loop.sh",
        &format!(
            "#!/bin/bash\nfor i in 1 2 3; do secret exec -e K=@k -- {} sleep ready$i; echo \"rc=$?\"; done\necho END\n",
            probe.display()
        ),
    );
    let mut term = Terminal::start(&env);
    term.type_keys("./loop.sh\n");
    let first = read_pid(ready(&env, "ready1"));
    let _cleanup = KillOnDrop(first);
    term.type_keys("\x03");
    // Read by the shell once the script is over (the quotes keep the
    // echoed keys from matching).
    term.type_keys("echo \"aft\"\"er=$?\"\n");
    term.wait_screen("after=130");
    let screen = term.screen();
    assert!(!screen.contains("END"), "the loop went on:\n{screen}");
    assert!(!Path::new(&ready(&env, "ready2")).exists(), "{screen}");
}

/// At the prompt of an interactive shell, Ctrl-C ends `secret exec` and
/// its child, and the shell reports the interrupt (130), as for the bare
/// command.
#[test]
fn ctrl_c_at_the_prompt_reports_an_interrupt() {
    let env = env_with_key();
    let mut term = Terminal::start(&env);
    let ready = ready(&env, "ready");
    term.type_keys(&format!(
        "secret exec -e K=@k -- {} sleep {}\n",
        probe().display(),
        ready.display()
    ));
    let pid = read_pid(&ready);
    let _cleanup = KillOnDrop(pid);
    term.type_keys("\x03");
    term.type_keys("echo \"aft\"\"er=$?\"\n");
    term.wait_screen("after=130");
    wait_for("the child to end", || matches!(state(pid), 'Z' | '?'));
    let _ = kill(pid, Signal::SIGKILL);
}

//! `secret exec` in a real terminal, typed at like a person: an interactive
//! bash on a pseudo-terminal (util-linux `script`), keys sent as bytes
//! (Ctrl-C is \x03, Ctrl-Z \x1a), the screen read back, process states from
//! /proc. Every wait is on an event, bounded.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};

use crate::process::{
    VALUE, assert_value_not_in_memory, can_scan_memory, env_with_key, shebang_env, state,
};
use crate::util::Env;
use crate::util::{KillOnDrop, alive, parent_of, probe, read_pid, wait_for};

/// An interactive shell (or any `command`) on a pseudo-terminal, with
/// `secret` on its PATH.
pub(crate) struct Terminal {
    shell: Child,
    keys: ChildStdin,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    /// An interactive bash.
    pub(crate) fn start(env: &Env) -> Self {
        Self::with_shell(env, "bash --norc --noprofile -i")
    }

    /// `shell`, interactive with job control.
    fn with_shell(env: &Env, shell: &str) -> Self {
        Self::run(env, shell, shebang_env(env))
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
        self.wait_screen_times(needle, 1);
    }

    /// Waits until `needle` shows `times` times on the screen.
    #[track_caller]
    fn wait_screen_times(&self, needle: &str, times: usize) {
        let start = std::time::Instant::now();
        while self.screen().matches(needle).count() < times {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "timed out waiting for {needle:?} {times} times on the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
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

/// A program that asks for a line on its terminal: it writes its pid to
/// `ready`, prints "asked", reads a line, prints it, `$K` and its
/// terminal's size, exits 7.
fn asker(env: &Env) -> std::path::PathBuf {
    let ready = ready(env, "ready");
    script(
        env,
        "asker.sh",
        &format!(
            "#!/bin/sh\necho $$ > {0}.tmp && mv {0}.tmp {0}\necho asked\nread line\necho \"got-$line $K\"\nstty size\nexit 7\n",
            ready.display()
        ),
    );
    ready
}

const MASKED_ASKER: &str = "secret exec --mask -e K=@k -- ./asker.sh\n";

/// The job's processes, from the command up: the command, the monitor
/// leading its pseudo-terminal's session, `secret`.
fn job(command: nix::unistd::Pid) -> [nix::unistd::Pid; 3] {
    let monitor = parent_of(command);
    [command, monitor, parent_of(monitor)]
}

/// Runs the masked asker in `term`, then Ctrl-Z once it asked; returns
/// its processes (see `job`) once the shell reported the stop, and the
/// guard that kills the command.
fn ask_then_ctrl_z(term: &mut Terminal, ready: &Path) -> ([nix::unistd::Pid; 3], KillOnDrop) {
    term.type_keys(MASKED_ASKER);
    let command = read_pid(ready);
    let cleanup = KillOnDrop(command);
    term.wait_screen("asked");
    let processes = job(command);
    term.type_keys("\x1a");
    term.wait_screen("Stopped");
    (processes, cleanup)
}

/// After Ctrl-Z: `fg`, a line typed to the program, its exit status.
fn fg_answer_and_exit(term: &mut Terminal, command: nix::unistd::Pid, secret: nix::unistd::Pid) {
    term.type_keys("fg\n");
    wait_for("the command to continue", || state(command) != 'T');
    term.type_keys("hello\n");
    term.wait_screen("got-hello");
    wait_for("secret to end", || !alive(secret));
    term.type_keys("echo \"aft\"\"er=$?\"\n");
    term.wait_screen("after=7");
    let screen = term.screen();
    assert!(screen.contains("got-hello <secret:@k>"), "{screen}");
    assert!(
        !screen.contains(std::str::from_utf8(VALUE).unwrap()),
        "{screen}"
    );
}

/// Issue 9, item 4: under `--mask` on a terminal (the child on a
/// pseudo-terminal of its own), Ctrl-Z stops the job as the shell sees it,
/// `fg` resumes it (it reads what is typed next), and its exit status comes
/// through, as without `--mask`.
#[test]
fn ctrl_z_and_fg_under_mask() {
    let env = env_with_key();
    let ready = asker(&env);
    let mut term = Terminal::start(&env);
    let ([command, monitor, secret], _cleanup) = ask_then_ctrl_z(&mut term, &ready);
    // The whole job stopped, so the shell's prompt is back.
    wait_for("the command, the monitor and secret to stop", || {
        [command, monitor, secret].iter().all(|p| state(*p) == 'T')
    });
    term.type_keys("jobs\n");
    term.wait_screen_times("Stopped", 2);
    // Resized while stopped: the command sees the new size once resumed.
    term.type_keys("stty rows 41 cols 101\n");
    fg_answer_and_exit(&mut term, command, secret);
    term.wait_screen("41 101");
}

/// After Ctrl-Z, `bg`: the command runs in the background, and reading
/// its terminal stops the job as a background read would ("Stopped (tty
/// input)"); `fg` then gives it the terminal.
#[test]
fn bg_then_a_read_stops_the_job_under_mask() {
    let env = env_with_key();
    let ready = asker(&env);
    let mut term = Terminal::start(&env);
    term.type_keys("set -b\n");
    let ([command, _, secret], _cleanup) = ask_then_ctrl_z(&mut term, &ready);
    term.type_keys("bg\n");
    // `set -b`: the shell reports the new stop at once.
    term.wait_screen_times("Stopped", 2);
    assert_eq!(state(command), 'T');
    term.type_keys("jobs -l\n");
    term.wait_screen("Stopped (tty input)");
    fg_answer_and_exit(&mut term, command, secret);
}

/// While the job is stopped, our terminal has its own mode back (dash,
/// unlike bash, does not restore it itself): canonical input and echo.
#[test]
fn the_terminal_mode_is_restored_while_stopped() {
    let env = env_with_key();
    let ready = asker(&env);
    let mut term = Terminal::with_shell(&env, "dash -i");
    let ([command, _, secret], _cleanup) = ask_then_ctrl_z(&mut term, &ready);
    // Typed at dash: it runs only if the terminal is back in canonical
    // mode (in raw mode Enter sends a bare carriage return).
    term.type_keys(
        "stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | tr '\\n' +; echo \"mo\"\"de\"\n",
    );
    term.wait_screen("mode");
    assert!(
        term.screen().contains("icanon+echo+mode"),
        "{}",
        term.screen()
    );
    fg_answer_and_exit(&mut term, command, secret);
}

/// The monitor that leads the child's session under `--mask` is our binary
/// started afresh without an environment: no value in its environment,
/// its arguments or its memory.
#[test]
fn the_monitor_holds_no_value() {
    let env = env_with_key();
    let ready = ready(&env, "ready");
    let mut term = Terminal::start(&env);
    term.type_keys(&format!(
        "secret exec --mask -e K=@k -- {} sleep {}\n",
        probe().display(),
        ready.display()
    ));
    let command = read_pid(&ready);
    let _cleanup = KillOnDrop(command);
    let [_, monitor, secret] = job(command);
    // The monitor starts the command before its own exec (it is still a
    // vfork child of secret, sharing its memory, until then): wait for it.
    let cmdline = || std::fs::read(format!("/proc/{monitor}/cmdline")).unwrap_or_default();
    wait_for("the monitor's exec", || {
        crate::util::contains(&cmdline(), b"__pty-monitor")
    });
    let cmdline = cmdline();
    assert!(!crate::util::contains(&cmdline, VALUE));
    assert_eq!(
        std::fs::read(format!("/proc/{monitor}/environ")).unwrap(),
        b""
    );
    // The command does have it, so the checks are not vacuous.
    let environ = std::fs::read(format!("/proc/{command}/environ")).unwrap();
    assert!(crate::util::contains(&environ, VALUE));
    if can_scan_memory() {
        assert_value_not_in_memory(monitor.as_raw().unsigned_abs(), "the monitor");
    }
    term.type_keys("\x03");
    // Keys typed before it ends would go to the job.
    wait_for("secret to end", || !alive(secret));
    term.type_keys("echo \"aft\"\"er=$?\"\n");
    term.wait_screen("after=130");
}

/// Keys typed before `secret` takes the terminal over under `--mask`
/// reach the command as typed: a whole line, part of a line pushed with
/// Ctrl-D, then Ctrl-D alone (end of input), not a NUL byte (what the
/// kernel turns a pending end of input into when the terminal leaves
/// canonical mode).
#[test]
fn typeahead_and_ctrl_d_before_mask_takes_the_terminal() {
    let env = env_with_key();
    let go = ready(&env, "go");
    let waiting = ready(&env, "waiting");
    let line = format!(
        ": > {waiting}; while [ ! -e {go} ]; do sleep 0.01; done; \
         secret exec --mask -e K=@k -- sh -c 'cat; echo \"cat e\"\"nded\"'",
        waiting = waiting.display(),
        go = go.display(),
    );
    let mut term = Terminal::run(&env, &line, shebang_env(&env));
    wait_for("the shell to wait for the go", || waiting.exists());
    // Typed while nothing reads the terminal: it holds them, canonical.
    term.type_keys("typed ahead\npart of a line\x04\x04");
    // Echoed: the terminal holds them.
    term.wait_screen("part of a line");
    std::fs::write(&go, "").unwrap();
    term.wait_screen("cat ended");
    assert!(term.screen().contains("typed ahead"), "{}", term.screen());
    // cat wrote what it read, then the shell its line, without a newline
    // between: the part was pushed, not ended by Enter.
    assert!(
        term.screen().contains("part of a linecat ended"),
        "{}",
        term.screen()
    );
    assert!(!term.screen().contains("^@"), "{}", term.screen());
}

/// A bash script with job control that starts `secret exec {flags} -e
/// K=@k -- bash -c {command}` in the background, writes secret's pid to
/// `secret`, waits for the file `go`, lists its jobs, brings the job to
/// the foreground with `fg` and prints its exit status ("status=N").
fn background_job(env: &Env, flags: &str, command: &str) -> Terminal {
    background_job_around(env, flags, command, ("", ""))
}

/// `background_job`, with shell lines run before the job starts and
/// before `fg` (`around`).
fn background_job_around(
    env: &Env,
    flags: &str,
    command: &str,
    (before, before_fg): (&str, &str),
) -> Terminal {
    let at = |name: &str| ready(env, name).display().to_string();
    script(
        env,
        "job.sh",
        &format!(
            "#!/bin/bash\nset -m\n{before}\nsecret exec {flags} -e K=@k -- bash -c '{command}' &\n\
             echo $! > {secret}.tmp && mv {secret}.tmp {secret}\nwhile [ ! -e {go} ]; do sleep 0.01; done\n\
             {before_fg}\njobs -l\nfg\necho \"sta\"\"tus=$?\"\n",
            secret = at("secret"),
            go = at("go"),
        ),
    );
    Terminal::run(env, "./job.sh", shebang_env(env))
}

/// A job started in the background (`&`) whose command reads the terminal
/// stops as the command alone would ("Stopped (tty input)"), and `fg`
/// continues it with the terminal: what was typed meanwhile reaches it as
/// typed (a line, part of a line pushed with Ctrl-D, then Ctrl-D alone:
/// end of input). Under `--mask`, `secret` takes the terminal over only
/// then, with its key relay running already.
fn background_start_then_a_read_then_fg(flags: &str) {
    let env = env_with_key();
    let mut term = background_job(&env, flags, "cat; echo \"cat e\"\"nded\"");
    let secret = read_pid(ready(&env, "secret"));
    let _cleanup = KillOnDrop(secret);
    wait_for("the job to stop on its read", || state(secret) == 'T');
    // Nothing reads the terminal now: it holds them, canonical, and
    // echoes them.
    term.type_keys("typed ahead\npart of a line\x04\x04");
    term.wait_screen("part of a line");
    std::fs::write(ready(&env, "go"), "").unwrap();
    term.wait_screen("status=0");
    let screen = term.screen();
    assert!(screen.contains("Stopped (tty input)"), "{screen}");
    assert!(screen.contains("typed ahead"), "{screen}");
    assert!(screen.contains("part of a linecat ended"), "{screen}");
    assert!(!screen.contains("^@"), "{screen}");
}

#[test]
fn a_job_started_in_the_background_stops_on_a_read_and_fg_continues_it() {
    background_start_then_a_read_then_fg("");
}

#[test]
fn a_masked_job_started_in_the_background_stops_on_a_read_and_fg_continues_it() {
    background_start_then_a_read_then_fg("--mask");
}

/// `fg` of a job that runs in the background sends it no SIGCONT (it is
/// not stopped): when its command then reads the terminal, it gets it, and
/// the job does not stop. Keys typed before that read (`typed_first`)
/// reach it too.
fn fg_while_running_then_a_read(flags: &str, typed_first: bool) {
    let env = env_with_key();
    let started = ready(&env, "started");
    let go_on = ready(&env, "go-on");
    let mut term = background_job(
        &env,
        flags,
        &format!(
            "echo $$ > {started}.tmp && mv {started}.tmp {started}; while [ ! -e {go_on} ]; do sleep 0.01; done; exec sed s/^/got-/",
            started = started.display(),
            go_on = go_on.display(),
        ),
    );
    let command = read_pid(&started);
    let _cleanup = KillOnDrop(command);
    std::fs::write(ready(&env, "go"), "").unwrap();
    // `fg` prints the job's command line as it brings it to the foreground.
    term.wait_screen("exec sed");
    if typed_first {
        term.type_keys("hello\n\x04");
    }
    std::fs::write(&go_on, "").unwrap();
    if !typed_first {
        let comm = || std::fs::read_to_string(format!("/proc/{command}/comm")).unwrap_or_default();
        wait_for("sed to wait for input", || {
            comm() == "sed\n" && state(command) == 'S'
        });
        term.type_keys("hello\n\x04");
    }
    term.wait_screen("status=0");
    let screen = term.screen();
    assert!(screen.contains("got-hello"), "{screen}");
    assert!(!screen.contains("Stopped"), "{screen}");
}

#[test]
fn fg_of_a_running_job_gives_its_command_the_terminal() {
    fg_while_running_then_a_read("", false);
    fg_while_running_then_a_read("", true);
}

#[test]
fn fg_of_a_running_masked_job_gives_its_command_the_terminal() {
    fg_while_running_then_a_read("--mask", false);
    fg_while_running_then_a_read("--mask", true);
}

/// Under `--mask`, after `fg` of a job running in the background, keys
/// typed earlier and left unread reach a command that only polls its
/// terminal (it never reads before input is there, so its reads cannot
/// tell `secret` that the job came to the foreground).
#[test]
fn fg_of_a_running_masked_job_relays_keys_to_a_command_that_polls() {
    let env = env_with_key();
    let started = ready(&env, "started");
    let mut term = background_job(
        &env,
        "--mask",
        &format!(
            "echo $$ > {started}.tmp && mv {started}.tmp {started}; until read -t 0; do sleep 0.02; done; read l; echo got-$l",
            started = started.display(),
        ),
    );
    let command = read_pid(&started);
    let _cleanup = KillOnDrop(command);
    // Typed while the job runs in the background: the terminal holds it.
    term.type_keys("hello\n");
    term.wait_screen("hello");
    std::fs::write(ready(&env, "go"), "").unwrap();
    term.wait_screen("status=0");
    let screen = term.screen();
    assert!(screen.contains("got-hello"), "{screen}");
    assert!(!screen.contains("Stopped"), "{screen}");
}

/// A job-control shell as the child (`bash -i`) finds the terminal's
/// foreground its own from its first instruction: it gets a prompt and
/// runs what is typed, and the job does not stop (it used to, now and
/// then, when bash looked before `secret` had handed the terminal over).
#[test]
fn an_interactive_shell_as_the_child_never_stops_at_its_start() {
    let env = env_with_key();
    let mut term = Terminal::start(&env);
    for round in 1..=5 {
        term.type_keys("secret exec -e K=@k -- bash --norc --noprofile -i\n");
        term.type_keys(&format!("echo \"inn\"\"er-{round}=${{#K}}\"; exit\n"));
        term.wait_screen(&format!("inner-{round}={}", VALUE.len()));
    }
    term.type_keys("echo \"aft\"\"er\"\n");
    term.wait_screen("after");
    assert!(!term.screen().contains("Stopped"), "{}", term.screen());
}

/// A job whose shell is gone (its process group orphaned) cannot be
/// stopped by a terminal's stop signals, which the kernel then discards:
/// when its child stops on a read of the terminal, `secret` stops with
/// SIGSTOP (as the child stays stopped), instead of continuing it into the
/// same stop again and again.
#[test]
fn an_orphaned_job_whose_child_reads_the_terminal_stops_instead_of_spinning() {
    let env = env_with_key();
    let secret_pid = ready(&env, "secret");
    script(
        &env,
        "orphan.sh",
        &format!(
            "#!/bin/bash\nset -m\n\
             secret exec -e K=@k -- sh -c 'while [ -e /proc/'$$' ]; do sleep 0.01; done; read x' &\n\
             echo $! > {0}.tmp && mv {0}.tmp {0}\n",
            secret_pid.display()
        ),
    );
    let mut term = Terminal::start(&env);
    term.type_keys("./orphan.sh\n");
    let secret = read_pid(&secret_pid);
    let _cleanup = KillOnDrop(secret);
    let child = || {
        std::fs::read_to_string(format!("/proc/{secret}/task/{secret}/children"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<i32>().ok())
            .map(nix::unistd::Pid::from_raw)
    };
    wait_for("secret to start its child", || child().is_some());
    let _child = KillOnDrop(child().unwrap());
    wait_for("secret to stop", || state(secret) == 'T');
    assert_eq!(child().map(state), Some('T'));
}

/// A masked job started in the background while the shell's line editor
/// holds the terminal in its own mode (no canonical input, no echo,
/// newlines read as carriage returns, as zsh's leaves it) does not give
/// its command that mode but the user's, once `fg` brings it to the
/// foreground: a line typed reaches the command as a line, and the user's
/// own settings (here Ctrl-H to erase) hold on its terminal.
#[test]
fn a_masked_job_started_in_the_background_does_not_take_the_line_editors_mode() {
    let env = env_with_key();
    let mut term = background_job_around(
        &env,
        "--mask",
        "read l; echo got-$l; stty -a | grep -o \"erase = [^;]*\"",
        (
            "stty erase ^H; saved=$(stty -g); stty -icanon -echo -icrnl inlcr",
            "stty \"$saved\"",
        ),
    );
    let secret = read_pid(ready(&env, "secret"));
    let _cleanup = KillOnDrop(secret);
    wait_for("the job to stop on its read", || state(secret) == 'T');
    std::fs::write(ready(&env, "go"), "").unwrap();
    wait_for("the job to continue", || state(secret) != 'T');
    term.type_keys("hello\n");
    term.wait_screen("status=0");
    assert!(term.screen().contains("got-hello"), "{}", term.screen());
    assert!(term.screen().contains("erase = ^H"), "{}", term.screen());
}

/// A job started in the background with its output in a file (`> log &`)
/// is a job of its own as well: its child's read of the terminal stops
/// the job (it used to stop the child alone, and `fg` then hung), and
/// `fg` continues it with the terminal.
#[test]
fn a_background_job_with_its_output_in_a_file_stops_on_a_read_and_fg_continues_it() {
    let env = env_with_key();
    let log = ready(&env, "out.log");
    let mut term = background_job(&env, &format!("> {}", log.display()), "read l; echo got-$l");
    let secret = read_pid(ready(&env, "secret"));
    let _cleanup = KillOnDrop(secret);
    wait_for("the job to stop on its read", || state(secret) == 'T');
    term.type_keys("hello\n");
    term.wait_screen("hello");
    std::fs::write(ready(&env, "go"), "").unwrap();
    term.wait_screen("status=0");
    assert!(
        term.screen().contains("Stopped (tty input)"),
        "{}",
        term.screen()
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "got-hello\n");
}

/// A child stopped with SIGSTOP (not by the terminal) stops the job with
/// SIGSTOP; `fg` then continues both, once.
#[test]
fn a_child_stopped_with_sigstop_stops_the_job_and_fg_continues_it() {
    let env = env_with_key();
    let ready = ready(&env, "ready");
    let mut term = Terminal::start(&env);
    term.type_keys(&format!(
        "secret exec -e K=@k -- {} sleep {}\n",
        probe().display(),
        ready.display()
    ));
    let child = read_pid(&ready);
    let _cleanup = KillOnDrop(child);
    let secret = parent_of(child);
    kill(child, Signal::SIGSTOP).unwrap();
    wait_for("secret to stop", || state(secret) == 'T');
    term.type_keys("fg\n");
    wait_for("the child and secret to continue", || {
        state(child) != 'T' && state(secret) != 'T'
    });
    term.type_keys("\x03");
    term.type_keys("echo \"aft\"\"er=$?\"\n");
    term.wait_screen("after=130");
}

/// Where nobody could continue a stopped job (`secret` leads its session,
/// as under `ssh -t` or `script -c`: its group is orphaned), Ctrl-Z is
/// dropped, as the kernel drops it for the command run bare: the child
/// goes on.
#[test]
fn ctrl_z_is_dropped_where_no_shell_could_continue_the_job() {
    let env = env_with_key();
    let term = Terminal::run(
        &env,
        "exec secret exec -e K=@k -- sh -c 'kill -TSTP $$; echo \"ba\"\"ck\"'",
        shebang_env(&env),
    );
    term.wait_screen("back");
}

/// A command that cannot be started leaves the terminal to `secret`, which
/// reports it (even with `stty tostop`, where a write from the background
/// would stop it).
#[test]
fn a_command_not_found_leaves_the_terminal_to_secret() {
    let env = env_with_key();
    let mut term = Terminal::start(&env);
    term.type_keys("stty tostop; secret exec -e K=@k -- /nonexistent/command\n");
    term.type_keys("echo \"aft\"\"er=$?\"\n");
    term.wait_screen("after=127");
    assert!(!term.screen().contains("Stopped"), "{}", term.screen());
}

/// Without a controlling terminal (`setsid`) but with a terminal as stdin,
/// `--mask` still relays what is typed to the command.
#[test]
fn keys_are_relayed_without_a_controlling_terminal() {
    let env = env_with_key();
    let mut term = Terminal::run(
        &env,
        "setsid -w secret exec --mask -e K=@k -- sh -c 'read l; echo got-$l'",
        shebang_env(&env),
    );
    term.type_keys("hello\n");
    term.wait_screen("got-hello");
}

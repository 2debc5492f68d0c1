//! `--mask`: the child's output reaches ours with every projected value,
//! and its encodings, replaced by a marker naming the handle.

use crate::util::{Env, wait_for};

const VALUE: &str = "sk-mask-test-8c7b6a5f4e3d";

fn env_with_key() -> Env {
    let env = Env::with_vault();
    env.add("@openai_api_key", VALUE.as_bytes());
    env
}

fn masked(env: &Env, script: &str) -> crate::util::Output {
    env.secret([
        "exec",
        "--mask",
        "-e",
        "K=@openai_api_key",
        "--",
        "sh",
        "-c",
        script,
    ])
    .run()
}

#[test]
fn stdout_and_stderr_are_masked_and_stay_separate() {
    let env = env_with_key();
    let out = masked(&env, "echo \"out $K\"; echo \"err $K\" >&2; exit 7");
    out.code(7).no_leak(VALUE.as_bytes());
    assert_eq!(out.stdout(), "out <secret:@openai_api_key>\n");
    assert_eq!(out.stderr(), "err <secret:@openai_api_key>\n");
}

#[test]
fn a_value_split_across_writes_is_masked_and_a_pause_releases_only_its_start() {
    let env = env_with_key();
    // Two writes in one burst: the whole value is masked.
    let out = masked(
        &env,
        "printf 'a %s' \"${K%????????????}\"; printf '%s b\\n' \"${K#?????????????}\"",
    );
    out.success()
        .no_leak(VALUE.as_bytes())
        .no_leak(b"sk-mask-test");
    assert_eq!(out.stdout(), "a <secret:@openai_api_key> b\n");
    // A pause longer than the relay's idle time releases the held start (a
    // prompt is never held back); the rest is still masked, so the value
    // never appears whole. The README documents this trade-off.
    let out = masked(
        &env,
        "printf 'a %s' \"${K%????????????}\"; sleep 0.3; printf '%s b\\n' \"${K#?????????????}\"",
    );
    out.success().no_leak(VALUE.as_bytes());
    assert!(
        out.stdout().ends_with("<secret:@openai_api_key> b\n"),
        "{}",
        out.stdout()
    );
}

#[test]
fn encoded_forms_are_masked() {
    let env = env_with_key();
    let script = "printf %s \"$K\" | base64; printf %s \"$K\" | od -An -tx1 | tr -d ' \\n'; echo; printf 'x%s' \"$K\" | base64";
    let out = masked(&env, script);
    out.success();
    let stdout = out.stdout();
    assert_eq!(
        stdout.lines().next(),
        Some("<secret:@openai_api_key>"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().nth(1),
        Some("<secret:@openai_api_key>"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .nth(2)
            .unwrap()
            .contains("<secret:@openai_api_key>"),
        "base64 at an offset: {stdout}"
    );
}

#[test]
fn ci_turns_masking_on_and_no_mask_turns_it_off() {
    let env = env_with_key();
    let run = |flags: &[&str], ci: &str| {
        let mut args = vec!["exec"];
        args.extend(flags);
        args.extend([
            "-e",
            "K=@openai_api_key",
            "--",
            "sh",
            "-c",
            "printf '%s\\001\\377' \"$K\"",
        ]);
        env.secret(args).env("CI", ci).run()
    };
    let on = run(&[], "true");
    assert_eq!(on.stdout, b"<secret:@openai_api_key>\x01\xff");
    let off = run(&["--no-mask"], "true");
    assert_eq!(
        off.stdout,
        [VALUE.as_bytes(), b"\x01\xff"].concat(),
        "--no-mask passes bytes unchanged"
    );
    let not_ci = run(&[], "false");
    assert_eq!(not_ci.stdout, [VALUE.as_bytes(), b"\x01\xff"].concat());
}

#[test]
fn short_values_are_not_masked_and_say_so() {
    let env = Env::with_vault();
    env.add("@pin", b"123");
    let out = env
        .secret([
            "exec", "--mask", "-e", "P=@pin", "--", "sh", "-c", "echo $P",
        ])
        .run();
    out.success().stderr_has("@pin is shorter than 4 bytes");
    assert_eq!(out.stdout(), "123\n");
}

#[test]
fn large_output_passes_intact_and_nothing_is_lost_at_exit() {
    let env = env_with_key();
    let data: Vec<u8> = (0..4_000_000u32)
        .map(|i| b"abcdefghij\n"[(i % 11) as usize])
        .collect();
    let out = env
        .secret(["exec", "--mask", "-e", "K=@openai_api_key", "--", "cat"])
        .stdin(&data)
        .run();
    out.success();
    assert!(
        out.stdout == data,
        "{} bytes out of {}",
        out.stdout.len(),
        data.len()
    );
}

/// On a terminal the child gets a pseudo-terminal: it sees a tty, its
/// output is masked, the window size and keystrokes carry over.
#[test]
fn a_terminal_stays_a_terminal() {
    use std::io::{Read, Write};
    let env = env_with_key();
    let inner = format!(
        "stty rows 33 cols 99; {} exec --mask -e K=@openai_api_key -- sh -c 'test -t 1 && echo tty-ok; stty size; echo \"v=$K\"; read line; echo \"got=$line\"'",
        env!("CARGO_BIN_EXE_secret")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("SECRET_HOME", env.home())
        .env("SECRET_PASSPHRASE", crate::util::PASSPHRASE)
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while !seen.contains("v=") || !seen.contains('>') {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    stdin.write_all(b"typed words\r").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let all = seen + &rest;
    assert!(child.wait().unwrap().success(), "{all}");
    assert!(all.contains("tty-ok"), "{all}");
    assert!(all.contains("33 99"), "window size: {all}");
    assert!(all.contains("v=<secret:@openai_api_key>"), "{all}");
    assert!(all.contains("got=typed words"), "keystrokes: {all}");
    assert!(!all.contains(VALUE), "{all}");
}

/// A four-line PEM-like value, as in issue 9.
const PEM: &str = "-----BEGIN TEST KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END TEST KEY-----";

fn env_with_pem() -> Env {
    let env = Env::with_vault();
    env.add("@pem", PEM.as_bytes());
    env
}

/// Asserts that neither the value nor any of its lines is in the output.
#[track_caller]
fn no_line_leaks(out: &crate::util::Output) {
    out.no_leak(PEM.as_bytes());
    for line in PEM.lines() {
        out.no_leak(line.as_bytes());
    }
}

#[test]
fn a_multi_line_value_is_masked_in_crlf_json_and_line_by_line() {
    if !crate::util::tools_present(
        "multi-line masking",
        &["python3", "sed"],
        "apt-get install python3 sed",
    ) {
        return;
    }
    let env = env_with_pem();
    let script = r#"echo "$P"
printf '%s\n' "$P" | sed 's/$/\r/'
printf '%s\n' "$P" | sed -n 2p
printf '%s\n' "$P" | sed -n 3p | tr -d '\n'; echo ' <- line 3'
python3 -c 'import json, os; print(json.dumps(os.environ["P"]))'"#;
    let out = env
        .secret(["exec", "--mask", "-e", "P=@pem", "--", "sh", "-c", script])
        .run();
    out.success();
    no_line_leaks(&out);
    assert_eq!(
        out.stdout(),
        "<secret:@pem>\n<secret:@pem>\r\n<secret:@pem>\n<secret:@pem> <- line 3\n\"<secret:@pem>\"\n"
    );
}

/// On a terminal the inner pseudo-terminal turns every `\n` into `\r\n`.
#[test]
fn a_multi_line_value_is_masked_on_a_terminal() {
    if !crate::util::tools_present(
        "terminal masking",
        &["script"],
        "apt-get install util-linux",
    ) {
        return;
    }
    let env = env_with_pem();
    let inner = format!(
        "{} exec --mask -e P=@pem -- sh -c 'echo \"$P\"; echo done'",
        env!("CARGO_BIN_EXE_secret")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("SECRET_HOME", env.home())
        .env("SECRET_PASSPHRASE", crate::util::PASSPHRASE)
        .env("SECRET_TEST_FAST_KDF", "1")
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Held open until the end: at the end of its input, script types an
    // end-of-file byte on the terminal, which reaches the child's terminal
    // (keys are relayed) and is echoed there, anywhere in the output.
    let stdin = child.stdin.take();
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    let all = String::from_utf8_lossy(&stdout);
    assert!(status.success(), "{all}");
    assert!(all.contains("<secret:@pem>\r\ndone"), "{all:?}");
    for line in PEM.lines() {
        assert!(!all.contains(line), "{line} in {all:?}");
    }
}

/// Each form as the library that makes it prints it: Python's `quote`,
/// `quote_plus` and `json.dumps` (with and without `ensure_ascii`),
/// `quote` with the sets of JavaScript's `encodeURI` and
/// `encodeURIComponent`, MIME base64 from `base64`, Python and `openssl`.
#[test]
fn url_json_and_mime_forms_are_masked() {
    if !crate::util::tools_present(
        "encoded-form masking",
        &["python3", "base64", "openssl", "sed"],
        "apt-get install python3 coreutils openssl sed",
    ) {
        return;
    }
    let env = Env::with_vault();
    let password = "pä$$ w/rd:\"é\\<x>&+*'(!)#;,?@=€10";
    let long = "MIME-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789";
    env.add("@pw", password.as_bytes());
    env.add("@long", long.as_bytes());
    let script = r#"python3 -c '
import json, os, urllib.parse as u
v = os.environ["K"]
for form in (u.quote(v), u.quote_plus(v), json.dumps(v), json.dumps(v, ensure_ascii=False),
             u.quote(v, safe=";,/?:@&=+$#-_.!~*()'"'"'"), u.quote(v, safe="-_.!~*()'"'"'")):
    print(form)
'
printf %s "$L" | base64
printf %s "$L" | base64 | sed 's/$/\r/'
python3 -c 'import base64, os, sys; sys.stdout.write(base64.encodebytes(os.environ["L"].encode()).decode())'
printf %s "$L" | openssl base64"#;
    let out = env
        .secret([
            "exec", "--mask", "-e", "K=@pw", "-e", "L=@long", "--", "sh", "-c", script,
        ])
        .run();
    out.success()
        .no_leak(password.as_bytes())
        .no_leak(long.as_bytes())
        .no_leak(b"w/rd")
        .no_leak(b"w%2Frd")
        .no_leak(b"TUlNRS");
    assert_eq!(
        out.stdout(),
        format!(
            "{}{}",
            "<secret:@pw>\n<secret:@pw>\n\"<secret:@pw>\"\n\"<secret:@pw>\"\n<secret:@pw>\n<secret:@pw>\n",
            "<secret:@long>\n<secret:@long>\r\n<secret:@long>\n<secret:@long>\n"
        ),
        "{}",
        out.stdout()
    );
}

#[test]
fn overlapping_secrets_are_masked_whole() {
    let env = Env::with_vault();
    env.add("@a", b"alpha-1234-5678");
    env.add("@b", b"5678-omega-9");
    let out = env
        .secret([
            "exec",
            "--mask",
            "-e",
            "A=@a",
            "-e",
            "B=@b",
            "--",
            "sh",
            "-c",
            "printf '%s-omega-9|%s|%s\\n' \"$A\" \"$A\" \"$B\"",
        ])
        .run();
    out.success().no_leak(b"omega").no_leak(b"alpha");
    assert_eq!(out.stdout(), "<secret:@a,@b>|<secret:@a>|<secret:@b>\n");
}

/// `secret exec --mask … 2>&1` through a shell, the way a CI runner gives
/// a step one log for both streams.
fn masked_2to1(env: &Env, script: &str) -> crate::util::Output {
    let line = format!(
        "exec \"$SECRET_BIN\" exec --mask -e K=@openai_api_key -- sh -c '{script}' 2>&1 </dev/null"
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &line])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.root())
        .env("SECRET_HOME", env.home())
        .env("SECRET_PASSPHRASE", crate::util::PASSPHRASE)
        .env("SECRET_TEST_FAST_KDF", "1")
        .env("SECRET_BIN", env!("CARGO_BIN_EXE_secret"))
        .output()
        .expect("sh");
    crate::util::Output {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

#[test]
fn one_log_for_both_streams_keeps_the_childs_order() {
    let env = env_with_key();
    // The issue's replay: 40 runs, each must come out in write order.
    for _ in 0..40 {
        let out = masked_2to1(&env, "echo step1; ls /nonexistent-dir; echo step2");
        let lines: Vec<String> = out.stdout().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "step1", "{lines:?}");
        assert!(lines[1].contains("nonexistent-dir"), "{lines:?}");
        assert_eq!(lines[2], "step2", "{lines:?}");
    }
    // A long alternating run: exactly the child's order, masked.
    let out = masked_2to1(
        &env,
        "i=0; while [ $i -lt 500 ]; do echo \"out $i $K\"; echo \"err $i\" >&2; i=$((i+1)); done",
    );
    out.success().no_leak(VALUE.as_bytes());
    let want: String = (0..500)
        .map(|i| format!("out {i} <secret:@openai_api_key>\nerr {i}\n"))
        .collect();
    assert_eq!(out.stdout(), want);
}

#[test]
fn separate_streams_never_splice_a_line() {
    let env = env_with_key();
    let out = masked(
        &env,
        "i=0; while [ $i -lt 300 ]; do printf 'out-%s-' $i; printf 'err-%s\\n' $i >&2; echo end; i=$((i+1)); done",
    );
    out.success();
    for (i, line) in out.stdout().lines().enumerate() {
        assert_eq!(line, format!("out-{i}-end"));
    }
    for (i, line) in out.stderr().lines().enumerate() {
        assert_eq!(line, format!("err-{i}"));
    }
}

#[test]
fn a_background_writer_outlives_the_child_and_is_still_masked() {
    let env = env_with_key();
    let marker = env.root().join("bg-alive");
    let script = format!(
        "(sleep 0.5; echo \"late $K\"; touch {}) & echo done",
        marker.display()
    );
    let out = masked(&env, &script);
    out.success().no_leak(VALUE.as_bytes());
    // secret waited for the background writer: it was not killed by SIGPIPE.
    assert!(marker.exists(), "the background process died");
    assert_eq!(out.stdout(), "done\nlate <secret:@openai_api_key>\n");
}

/// The way not to wait, as the README and `--mask`'s help give it: a
/// background process whose output goes elsewhere does not hold `secret`,
/// which ends with its command while that process runs on.
#[test]
fn a_background_process_with_its_own_output_is_not_waited_for() {
    let env = env_with_key();
    let fifo = env.root().join("go");
    let marker = env.root().join("bg-alive");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // It blocks on the FIFO until the test opens it, after secret is gone.
    let script = format!(
        "(cat {} >/dev/null; touch {}) >/dev/null 2>&1 & echo started",
        fifo.display(),
        marker.display()
    );
    let mut child = env
        .secret(["exec", "--mask", "-e", "K=@openai_api_key", "--"])
        .into_command()
        .args(["sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_for("secret to exit with its command", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "started\n");
    // Still there, reading the FIFO: opening it lets it finish its work.
    // (A writer's open without a reader fails at once, rather than block.)
    let mut writer = None;
    wait_for("the background process to open the FIFO", || {
        use std::os::unix::fs::OpenOptionsExt;
        writer = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .ok();
        writer.is_some()
    });
    drop(writer);
    wait_for("the background process to finish", || marker.exists());
}

#[test]
fn a_prompt_is_shown_at_once_not_held_back() {
    use std::io::Read;
    let env = env_with_key();
    // "continu" is a prefix of nothing secret, but "e" could start one of
    // the patterns: the whole prompt must arrive before the child goes on.
    let mut child = env
        .secret([
            "exec",
            "--mask",
            "-e",
            "K=@openai_api_key",
            "--",
            "sh",
            "-c",
            "printf 'Press ENTER to continue'; read x; echo",
        ])
        .into_command()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    // Waits on the bytes themselves; the child blocks on `read` until we
    // answer, so only an idle release can deliver the last letter.
    while got.len() < b"Press ENTER to continue".len() {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "output ended early: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"Press ENTER to continue");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

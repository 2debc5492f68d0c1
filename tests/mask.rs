//! `--mask`: the child's output reaches ours with every projected value,
//! and its encodings, replaced by a marker naming the handle.

use crate::util::Env;

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
fn a_value_split_across_writes_100ms_apart_is_masked() {
    let env = env_with_key();
    let out = masked(
        &env,
        "printf 'a %s' \"${K%????????????}\"; sleep 0.1; printf '%s b\\n' \"${K#?????????????}\"",
    );
    out.success()
        .no_leak(VALUE.as_bytes())
        .no_leak(b"sk-mask-test");
    assert_eq!(out.stdout(), "a <secret:@openai_api_key> b\n");
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

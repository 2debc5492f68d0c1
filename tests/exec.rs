//! `secret exec`: the environment it builds, the exit codes it reports, and
//! that the command never runs with a missing secret.

use crate::util::{Env, PASSPHRASE};

const VALUE: &[u8] = b"sk-exec-9f8e7d6c5b4a";

fn env_with_key() -> Env {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    env
}

#[test]
fn exit_codes_are_the_childs() {
    let env = env_with_key();
    for code in [0, 1, 42, 255] {
        env.secret([
            "exec",
            "-e",
            "K=@k",
            "--",
            "sh",
            "-c",
            &format!("exit {code}"),
        ])
        .run()
        .code(code);
    }
}

/// `sh -c SCRIPT` with the world's vault, for scripts that call `secret`.
fn shell(env: &Env, script: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .args(["-c", script])
        .env("SECRET_HOME", env.home())
        .env("SECRET_PASSPHRASE", PASSPHRASE)
        .env("SECRET_TEST_FAST_KDF", "1")
        .env_remove("CI")
        .current_dir(env.root())
        .output()
        .unwrap()
}

/// A child killed by signal N: `secret` dies of N too, so its parent sees
/// what it would see of the bare command, and a shell's `$?` is 128+N.
#[test]
fn death_by_signal_is_mirrored() {
    use std::os::unix::process::ExitStatusExt;
    let env = env_with_key();
    for (sig, n) in [("TERM", 15), ("KILL", 9), ("USR1", 10), ("INT", 2)] {
        let script = format!("kill -{sig} $$");
        let mut cmd = env
            .secret(["exec", "-e", "K=@k", "--", "sh", "-c", &script])
            .into_command();
        let status = cmd.status().unwrap();
        assert_eq!(status.signal(), Some(n), "{sig}: {status:?}");
        let looped = format!(
            "{} exec -e K=@k -- sh -c 'kill -{sig} $$'; echo \"rc=$?\"",
            env!("CARGO_BIN_EXE_secret")
        );
        let out = shell(&env, &looped);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("rc={}", 128 + n)),
            "{sig}: {out:?}"
        );
    }
}

/// `--exec` leaves nothing behind to mask the output: refused with
/// `--mask`, and under CI unless `--no-mask` says so.
#[test]
fn exec_is_refused_where_it_would_drop_masking() {
    let env = env_with_key();
    let print = ["sh", "-c", "printf %s \"$K\""];
    let with = |flags: &[&str]| {
        let mut args = vec!["exec", "-e", "K=@k"];
        args.extend(flags);
        args.push("--");
        args.extend(print);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    env.secret(with(&["--exec", "--mask"]))
        .run()
        .code(125)
        .no_leak(VALUE)
        .stderr_has("--exec and --mask cannot be combined");
    env.secret(with(&["--exec"]))
        .env("CI", "true")
        .run()
        .code(125)
        .no_leak(VALUE)
        .stderr_has("--no-mask");
    let out = env
        .secret(with(&["--exec", "--no-mask"]))
        .env("CI", "true")
        .run();
    out.success();
    assert_eq!(out.stdout, VALUE);
    env.secret(with(&[]))
        .env("CI", "true")
        .run()
        .success()
        .no_leak(VALUE)
        .stdout_has("<secret:@k>");
}

/// A signal ignored when `secret` starts (`trap '' INT TERM`, `nohup`)
/// stays ignored in the child, as without `secret`, in both launch modes;
/// SIGPIPE, which `secret` ignores for itself, is the default there.
#[test]
fn ignored_signals_stay_ignored_in_the_child() {
    let env = env_with_key();
    let ignored_in = |stdout: &str| {
        stdout
            .split_whitespace()
            .nth(1)
            .and_then(|m| u64::from_str_radix(m, 16).ok())
            .expect("a SigIgn line")
    };
    let (int, pipe, term) = (1u64 << (2 - 1), 1u64 << (13 - 1), 1u64 << (15 - 1));
    for mode in ["", "--exec"] {
        let script = format!(
            "trap '' INT TERM; {} exec {mode} -e K=@k -- sh -c 'grep SigIgn /proc/$$/status'",
            env!("CARGO_BIN_EXE_secret")
        );
        let out = shell(&env, &script);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mask = ignored_in(&stdout);
        assert_eq!(mask & (int | pipe | term), int | term, "{mode}: {stdout}");
        let mut args = vec!["exec"];
        args.extend((!mode.is_empty()).then_some(mode));
        args.extend(["--", "sh", "-c", "grep SigIgn /proc/$$/status"]);
        let plain = env.secret(args).run();
        // Signals 1-31 (what secret manages) start at their default.
        let plain_mask = ignored_in(&plain.stdout());
        assert_eq!(plain_mask & 0x7fff_ffff, 0, "{mode}: {}", plain.stdout());
    }
}

#[test]
fn a_missing_secret_stops_the_launch_with_125() {
    let env = env_with_key();
    let marker = env.root().join("ran");
    let script = format!("touch {}", marker.display());
    env.secret([
        "exec",
        "-e",
        "K=@k",
        "-e",
        "M=@missing",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .run()
    .code(125)
    .stderr_has("@missing")
    .stderr_has("secret add @missing --stdin")
    .no_leak(VALUE);
    assert!(!marker.exists(), "the command ran without its secret");
}

#[test]
fn own_failures_are_125_not_found_127_not_executable_126() {
    let env = env_with_key();
    env.secret(["exec", "-e", "K=@k", "--", "no-such-command-xyz"])
        .run()
        .code(127)
        .stderr_has("not found");
    let script = env.root().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    env.secret(["exec", "--", script.to_str().unwrap()])
        .run()
        .code(126)
        .stderr_has("cannot execute");
    env.secret(["exec", "-e", "K=@k"]).run().code(125);
    env.secret(["exec", "--bogus-flag", "--", "true"])
        .run()
        .code(125)
        .stderr_has("unknown option --bogus-flag");
    env.secret(["exec", "-e", "1BAD=@k", "--", "true"])
        .run()
        .code(125)
        .stderr_has("not a valid environment variable name");
    env.secret(["exec", "-e", "K=@k", "--", "true"])
        .env("SECRET_PASSPHRASE", "wrong")
        .run()
        .code(125)
        .stderr_has("wrong passphrase");
}

#[test]
fn the_child_gets_the_value_and_never_the_control_variables() {
    let env = env_with_key();
    let out = env
        .secret(["exec", "-e", "OPENAI_API_KEY=@k", "--", "env"])
        .env("SECRET_SCOPE", "team")
        .env("SECRET_BACKEND", "file")
        .env("SECRET_KEY_BASE", "rails-keeps-this")
        .env("UNRELATED", "kept")
        .run();
    out.success();
    let stdout = out.stdout();
    let vars: Vec<&str> = stdout.lines().collect();
    assert!(
        vars.contains(&"OPENAI_API_KEY=sk-exec-9f8e7d6c5b4a"),
        "{stdout}"
    );
    assert!(vars.contains(&"UNRELATED=kept"));
    assert!(
        vars.contains(&"SECRET_KEY_BASE=rails-keeps-this"),
        "only our own control variables are removed"
    );
    for control in crate::util::CONTROL_VARIABLES {
        assert!(
            !stdout.contains(&format!("{control}=")),
            "{control} reached the child"
        );
    }
    assert!(!out.stdout().contains(PASSPHRASE));
}

#[test]
fn literals_escapes_and_later_mappings() {
    let env = env_with_key();
    let out = env
        .secret([
            "exec",
            "-e",
            "A=plain",
            "-e",
            "B=@@handle-like",
            "-e",
            "C=@k",
            "-e",
            "C=override",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$A\" \"$B\" \"$C\"",
        ])
        .run();
    out.success();
    assert_eq!(out.stdout(), "plain|@handle-like|override");
}

#[test]
fn env_files_hold_references_only() {
    let env = env_with_key();
    env.add("@db/password", b"db-pw-123456");
    let file = env.root().join("app.env");
    std::fs::write(
        &file,
        "# safe to commit\n\nOPENAI_API_KEY=@k\nexport DB_PASSWORD=@db/password\n",
    )
    .unwrap();
    let out = env
        .secret([
            "exec",
            "--env-file",
            file.to_str().unwrap(),
            "-e",
            "DB_PASSWORD=@k",
            "--",
            "sh",
            "-c",
            "printf '%s %s' \"$OPENAI_API_KEY\" \"$DB_PASSWORD\"",
        ])
        .run();
    out.success();
    assert_eq!(
        out.stdout,
        [VALUE, b" ", VALUE].concat(),
        "--env overrides the file"
    );

    std::fs::write(&file, "OPENAI_API_KEY=@k\nTOKEN=sk-literal-in-file\n").unwrap();
    env.secret(["exec", "--env-file", file.to_str().unwrap(), "--", "true"])
        .run()
        .code(125)
        .stderr_has("app.env:2")
        .stderr_has("literal value")
        .no_leak(b"sk-literal-in-file");
    env.secret(["exec", "--env-file", "/no/such/file.env", "--", "true"])
        .run()
        .code(125)
        .stderr_has("/no/such/file.env");
}

#[test]
fn arguments_and_stdin_pass_through_intact() {
    let env = env_with_key();
    let args = [
        "with space",
        "quote\"s and 'single'",
        "ünïcødé ✓",
        "",
        "--flag",
        "-e",
        "$HOME",
    ];
    let mut cmd = vec![
        "exec",
        "-e",
        "K=@k",
        "--",
        "sh",
        "-c",
        "for a in \"$@\"; do printf '[%s]' \"$a\"; done; cat",
        "sh",
    ];
    cmd.extend(args);
    let out = env.secret(cmd).stdin(b"from stdin\n").run();
    out.success();
    let expected: String =
        args.iter().map(|a| format!("[{a}]")).collect::<String>() + "from stdin\n";
    assert_eq!(out.stdout(), expected);
}

#[test]
fn exec_without_handles_needs_no_vault() {
    let env = Env::new();
    env.secret(["exec", "-e", "A=1", "--", "sh", "-c", "test \"$A\" = 1"])
        .run()
        .success();
}

#[test]
fn the_value_is_not_on_the_command_line_of_any_process() {
    let env = env_with_key();
    let out = env
        .secret([
            "exec",
            "-e",
            "K=@k",
            "--",
            "sh",
            "-c",
            "cat /proc/$$/cmdline /proc/$PPID/cmdline",
        ])
        .run();
    out.success().no_leak(VALUE);
    assert!(
        out.stdout().contains("exec"),
        "read the parent's cmdline: {}",
        out.stdout()
    );
}

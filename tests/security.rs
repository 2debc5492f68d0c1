//! What `secret` trusts and what it hands over: odd files where the vault
//! and the trail should be, readers racing writers, inputs from providers.

use crate::util::Env;

/// A reader that unlocks while another command writes must not cry
/// rollback: only a file that is still older after a re-read is one.
#[test]
fn concurrent_rotations_draw_no_rollback_warning() {
    // The real KDF: its cost is the window in which a writer commits
    // between the reader's read of the file and its look at the record.
    let env = Env::new().var("SECRET_TEST_FAST_KDF", "0");
    env.secret(["init"]).run().success();
    env.add("@a", b"v0-initial");
    let warnings = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            (1..=8)
                .map(|i| {
                    let out = env
                        .secret(["rotate", "@a", "--stdin"])
                        .stdin(format!("v{i}-rotated\n").as_bytes())
                        .run();
                    out.success();
                    out.stderr()
                })
                .collect::<Vec<_>>()
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    (0..4)
                        .map(|_| {
                            let out = env.secret(["exec", "--env", "V=@a", "--", "true"]).run();
                            out.success();
                            out.stderr()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = writer.join().expect("writer");
        for r in readers {
            all.extend(r.join().expect("reader"));
        }
        all
    });
    let bad: Vec<&String> = warnings
        .iter()
        .filter(|e| e.contains("older copy"))
        .collect();
    assert!(bad.is_empty(), "false rollback warnings: {bad:?}");
}

/// A real rollback still warns: an older copy put back over a newer vault.
#[test]
fn a_real_rollback_still_warns() {
    let env = Env::with_vault();
    env.add("@a", b"v0-initial");
    let old = std::fs::read(env.vault()).expect("vault");
    env.secret(["rotate", "@a", "--stdin"])
        .stdin(b"v1-rotated")
        .run()
        .success();
    std::fs::write(env.vault(), old).expect("roll back");
    env.secret(["list"])
        .run()
        .success()
        .stderr_has("older copy");
}

/// Runs `cmd`, killing it if it has not finished within `limit`; returns
/// its stderr and whether it finished in time.
fn run_within(cmd: crate::util::Cmd, limit: std::time::Duration) -> (bool, String) {
    use std::io::Read;
    let mut cmd = cmd.into_command();
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn secret");
    let start = std::time::Instant::now();
    let finished = loop {
        if child.try_wait().expect("wait").is_some() {
            break true;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    (finished, err)
}

#[test]
fn a_fifo_at_the_vault_fails_fast() {
    let env = Env::with_vault();
    std::fs::remove_file(env.vault()).expect("rm vault");
    nix::unistd::mkfifo(
        &env.vault(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    for args in [
        &["exec", "--env", "K=@k", "--", "true"][..],
        &["list"],
        &["lock"],
    ] {
        let (finished, err) = run_within(env.secret(args), std::time::Duration::from_secs(1));
        assert!(finished, "secret {args:?} hung on a FIFO vault");
        assert!(
            err.contains("a FIFO, not a regular file"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_huge_sparse_vault_is_refused_without_reading_it() {
    let env = Env::with_vault();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(env.vault())
        .expect("open");
    file.set_len(6 << 30).expect("sparse 6 GiB");
    let (finished, err) = run_within(env.secret(["list"]), std::time::Duration::from_secs(2));
    assert!(finished, "secret read a 6 GiB vault");
    assert!(err.contains("over the limit"), "{err}");
}

#[test]
fn a_symlinked_vault_is_refused_and_never_forked() {
    let env = Env::with_vault();
    env.add("@k", b"sk-linked-value");
    let elsewhere = env.root().join("real.secret");
    std::fs::rename(env.vault(), &elsewhere).expect("move");
    std::os::unix::fs::symlink(&elsewhere, env.vault()).expect("symlink");
    let before = std::fs::read(&elsewhere).expect("read");
    env.secret(["list"])
        .run()
        .code(1)
        .stderr_has("symbolic link");
    env.secret(["rotate", "@k", "--stdin"])
        .stdin(b"sk-new-value")
        .run()
        .code(1)
        .stderr_has("symbolic link");
    env.secret(["init"]).run().code(1);
    assert!(
        env.vault().symlink_metadata().expect("link").is_symlink(),
        "the link was replaced"
    );
    assert_eq!(
        std::fs::read(&elsewhere).expect("read"),
        before,
        "the target changed"
    );
}

#[test]
fn the_audit_trail_is_never_followed_through_a_symlink() {
    let env = Env::with_vault();
    let trail = env.home().join("audit.jsonl");
    let elsewhere = env.root().join("elsewhere.jsonl");
    std::fs::rename(&trail, &elsewhere).expect("move");
    std::os::unix::fs::symlink(&elsewhere, &trail).expect("symlink");
    let before = std::fs::read(&elsewhere).expect("read");
    env.secret(["add", "@k", "--stdin"])
        .stdin(b"sk-some-value")
        .run()
        .code(1)
        .stderr_has("symbolic link");
    env.secret(["audit"])
        .run()
        .code(1)
        .stderr_has("symbolic link");
    assert_eq!(std::fs::read(&elsewhere).expect("read"), before);
}

/// Appends `text` to config.toml (mode 0600).
fn configure(env: &Env, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = env.home().join("config.toml");
    let mut config = std::fs::read_to_string(&path).unwrap_or_default();
    config.push_str(text);
    std::fs::write(&path, config).expect("write config.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

#[test]
fn aws_ids_the_cli_would_load_are_refused() {
    let env = Env::with_vault();
    for id in [
        "file:///etc/hostname",
        "fileb:///etc/hostname",
        "http://example.com/x",
        "https://example.com/x#k",
    ] {
        // Refused either by the shared path check (the empty segment of
        // "scheme://") or by the AWS preset's own rule; never run.
        let out = env
            .secret(["exec", "-e", &format!("K=aws-sm://{id}"), "--", "true"])
            .run();
        out.code(125).no_panic();
        assert!(
            out.stderr().contains("AWS CLI would read") || out.stderr().contains("path segment"),
            "{}",
            out.stderr()
        );
    }
}

#[test]
fn a_providers_crlf_is_stripped_like_stdins() {
    let env = Env::with_vault();
    configure(
        &env,
        "[providers.crlf]\ncommand = [\"/bin/sh\", \"-c\", \"printf 'line-one\\\\r\\\\n'\", \"sh\", \"{path}\"]\n\
         [providers.crlf1]\ncommand = [\"/bin/sh\", \"-c\", \"printf 'first\\\\r\\\\nsecond\\\\r\\\\n'\", \"sh\", \"{path}\"]\nfirst_line = true\n",
    );
    for (reference, want) in [("crlf://x", "line-one"), ("crlf1://x", "first")] {
        let out = env
            .secret([
                "exec",
                "-e",
                &format!("K={reference}"),
                "--",
                "sh",
                "-c",
                "printf %s \"$K\"",
            ])
            .run();
        out.success();
        assert_eq!(out.stdout(), want, "{reference}");
    }
}

#[test]
fn an_absurd_provider_timeout_is_a_clear_error() {
    let env = Env::with_vault();
    configure(
        &env,
        "[providers.slow]\ncommand = [\"/bin/echo\", \"{path}\"]\ntimeout = \"500000000000y\"\n\
         [providers.long]\ncommand = [\"/bin/echo\", \"{path}\"]\ntimeout = \"2h\"\n",
    );
    env.secret(["exec", "-e", "K=slow://x", "--", "true"])
        .run()
        .no_panic()
        .code(125)
        .stderr_has("timeout");
    env.secret(["exec", "-e", "K=long://x", "--", "true"])
        .run()
        .no_panic()
        .code(125)
        .stderr_has("at most 1h");
}

#[test]
fn control_characters_in_a_reference_are_printed_escaped() {
    let env = Env::with_vault();
    let evil = "pass://a\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let out = env
        .secret(["exec", "-e", &format!("K={evil}"), "--", "true"])
        .run();
    out.code(125).no_panic();
    let err = out.stderr();
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}'),
        "raw control characters: {err:?}"
    );
    assert!(err.contains("\\u{1b}"), "{err:?}");
}

#[test]
fn a_flipped_version_byte_is_called_damage_not_a_newer_format() {
    let env = Env::with_vault();
    env.add("@k", b"sk-version-value");
    let good = std::fs::read(env.vault()).expect("vault");
    let mut flipped = good.clone();
    flipped[9] ^= 0x02; // version 1 -> 3
    std::fs::write(env.vault(), &flipped).expect("write");
    let out = env.secret(["list"]).run();
    out.code(1)
        .stderr_has("is damaged")
        .stderr_has("version bytes were changed");
    assert!(
        !out.stderr().contains("vault itself is fine"),
        "{}",
        out.stderr()
    );

    // What cannot be read as this format is reported as newer, honestly.
    let mut newer = flipped;
    newer.extend_from_slice(b"a newer format's extra bytes");
    std::fs::write(env.vault(), &newer).expect("write");
    env.secret(["list"])
        .run()
        .code(1)
        .stderr_has("newer than this build reads")
        .stderr_has("if not, the file is damaged");
}

#[test]
fn a_kdf_far_above_the_defaults_needs_consent() {
    let env = Env::with_vault();
    let mut bytes = std::fs::read(env.vault()).expect("vault");
    bytes[43..47].copy_from_slice(&13u32.to_be_bytes()); // t = 13 > 4 x 3
    std::fs::write(env.vault(), &bytes).expect("write");
    let start = std::time::Instant::now();
    env.secret(["list"])
        .run()
        .code(1)
        .stderr_has("13 passes")
        .stderr_has("SECRET_ALLOW_EXPENSIVE_KDF=1");
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    // Allowed, it runs (and the altered header then fails its check).
    env.secret(["list"])
        .env("SECRET_ALLOW_EXPENSIVE_KDF", "1")
        .run()
        .code(1)
        .stderr_has("wrong passphrase");
}

#[test]
fn after_lock_the_error_points_at_the_unlock_cache() {
    let env = Env::with_vault();
    env.add("@k", b"sk-locked-value");
    env.secret(["lock"]).run().success();
    env.secret(["exec", "-e", "K=@k", "--", "true"])
        .env_remove("SECRET_PASSPHRASE")
        .run()
        .code(125)
        .stderr_has("no passphrase given")
        .stderr_has("secret lock")
        .stderr_has("secret unlock --for");
}

/// A group member who can write into `SECRET_HOME` could name a program in
/// config.toml: the directory is refused before config.toml is used, so
/// the program never runs.
#[test]
fn a_group_writable_home_runs_no_provider() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::with_vault();
    let marker = env.root().join("evil-ran");
    let evil = env.root().join("evil.sh");
    std::fs::write(
        &evil,
        format!("#!/bin/sh\ntouch {}\necho stolen\n", marker.display()),
    )
    .expect("write evil.sh");
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    configure(
        &env,
        &format!(
            "[providers.evil]\ncommand = [\"{}\", \"{{path}}\"]\n",
            evil.display()
        ),
    );
    std::fs::set_permissions(env.home(), std::fs::Permissions::from_mode(0o770))
        .expect("chmod home");
    let out = env
        .secret(["exec", "--env", "T=evil://x", "--", "true"])
        .run();
    assert_ne!(out.code, Some(0));
    out.stderr_has(&format!("chmod 700 {}", env.home().display()));
    assert!(
        !marker.exists(),
        "the provider ran from a group-writable home"
    );
    std::fs::set_permissions(env.home(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod home");
}

#[test]
fn a_grants_file_others_can_change_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::with_vault();
    env.add("@k", b"sk-grant-guarded");
    let grants = env.home().join("grants.toml");
    std::fs::write(
        &grants,
        "[[grants]]\nsecret_ref = \"@k\"\nconsumer = \"exec\"\n",
    )
    .expect("write grants");
    std::fs::set_permissions(&grants, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let launch = || {
        env.secret([
            "exec",
            "--env",
            "V=@k",
            "--",
            "sh",
            "-c",
            "printf %s \"$V\"",
        ])
        .run()
    };
    let out = launch();
    out.code(125)
        .stderr_has("grants.toml")
        .stderr_has(&format!("chmod go-w {}", grants.display()));
    assert!(!out.stdout().contains("sk-grant-guarded"));
    std::fs::set_permissions(&grants, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let ok = launch();
    ok.success();
    assert_eq!(ok.stdout(), "sk-grant-guarded");
}

/// Runs `secret ARGS…`, which must give up within 2 s with `problem`.
fn fails_fast(env: &Env, args: &[&str], problem: &str) {
    let (finished, err) = run_within(env.secret(args), std::time::Duration::from_secs(2));
    assert!(finished, "secret {args:?} did not stop");
    assert!(err.contains(problem), "{args:?}: {err}");
}

#[test]
fn odd_env_files_fail_fast() {
    let env = Env::with_vault();
    let fifo = env.root().join("env.fifo");
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    nix::unistd::mkfifo(&fifo, mode).expect("mkfifo");
    let big = env.root().join("big.env");
    std::fs::File::create(&big)
        .expect("create")
        .set_len(64 << 20)
        .expect("sparse");
    let script = env.root().join("script.sh");
    nix::unistd::mkfifo(&script, mode).expect("mkfifo");
    let (fifo, big, script) = (
        fifo.to_str().unwrap(),
        big.to_str().unwrap(),
        script.to_str().unwrap(),
    );
    for (args, problem) in [
        (
            &["exec", "--env-file", "/dev/zero", "--", "true"][..],
            "a character device, not a regular file",
        ),
        (
            &["exec", "--env-file", fifo, "--", "true"],
            "a FIFO, not a regular file",
        ),
        (&["exec", "--env-file", big, "--", "true"], "over the limit"),
        (&["run", "sh", script], "a FIFO, not a regular file"),
    ] {
        fails_fast(&env, args, problem);
    }
}

#[test]
fn plugin_and_broker_files_others_can_change_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::with_vault();
    for (name, args) in [
        ("plugins.toml", &["plugins", "check"][..]),
        ("broker.toml", &["broker", "check"][..]),
    ] {
        let file = env.root().join(name);
        std::fs::write(&file, "").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let mut argv: Vec<&str> = args.to_vec();
        argv.push(file.to_str().unwrap());
        let out = env.secret(argv).run();
        assert_ne!(out.code, Some(0), "{name}");
        out.stderr_has("group or others can change")
            .stderr_has(&format!("chmod go-w {}", file.display()));
    }
}

/// Past `exec` itself (tests/lifecycle.rs), the passphrase descriptor and
/// any other the caller left open reach none of: a process that replaces
/// `secret` (`--exec`), a `run` script, a command provider. Each lists the
/// descriptors its shell holds and tries to read 3 and 4; a shell's own
/// script descriptor (dash's 10, bash's 255) is not ours and is ignored.
#[test]
fn the_passphrase_descriptor_reaches_no_script_provider_or_replacement() {
    use crate::util::PASSPHRASE;
    let env = Env::with_vault();
    env.add("@k", b"sk-descriptor-value");
    let report = env.root().join("provider-fds");
    configure(
        &env,
        &format!(
            "[providers.fds]\ncommand = [\"/bin/sh\", \"-c\", \"{{ ls /proc/$$/fd; cat <&3 && echo READ3; cat <&4 && echo READ4; }} > \\\"$0\\\" 2>&1; echo provider-value\", \"{}\", \"{{path}}\"]\n",
            report.display()
        ),
    );
    let probe = "ls /proc/$$/fd; cat <&3 && echo READ3; cat <&4 && echo READ4; exit 0";
    let script = env.root().join("s.sh");
    std::fs::write(&script, format!("#!/bin/sh\n# secret: V=@k\n{probe}\n")).unwrap();
    let shell = |line: &str| {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("{line} 3<<'EOF' 4</etc/hostname\n{PASSPHRASE}\nEOF"),
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SECRET_BIN", env!("CARGO_BIN_EXE_secret"))
            .env("SECRET_HOME", env.home())
            .env("SECRET_TEST_FAST_KDF", "1")
            .env("CI", "true")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{line}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let only_ours = |what: &str, listing: &str| {
        let fds: Vec<&str> = listing
            .lines()
            .filter(|l| l.parse::<u32>().is_ok_and(|n| n < 10))
            .collect();
        assert_eq!(fds, ["0", "1", "2"], "{what}: {listing}");
        assert!(
            !listing.contains("READ") && !listing.contains(PASSPHRASE),
            "{what}: {listing}"
        );
    };
    only_ours(
        "exec --exec",
        &shell(&format!(
            "\"$SECRET_BIN\" --passphrase-fd 3 exec --exec --no-mask --env V=@k -- sh -c '{probe}'"
        )),
    );
    only_ours(
        "run",
        &shell(&format!(
            "\"$SECRET_BIN\" --passphrase-fd 3 run --no-mask sh {}",
            script.display()
        )),
    );
    let out = shell(
        "\"$SECRET_BIN\" --passphrase-fd 3 exec --no-mask --env V=fds://x -- sh -c 'printf %s \"$V\"'",
    );
    assert_eq!(out, "provider-value");
    only_ours("provider", &std::fs::read_to_string(&report).unwrap());
}

/// `init` killed at any moment leaves no store (and a new `init` finishes
/// the job) or a store that works, never one that denies everything and
/// refuses a new `init`: grants.toml is written before the vault, which is
/// the commit point. The real KDF gives a window to kill in; each kill
/// follows the file it waits for within microseconds (a tight loop, not a
/// timer).
#[test]
fn a_killed_init_leaves_no_store_or_a_working_one() {
    let kill_init_when = |env: &Env, file: std::path::PathBuf| {
        let mut child = env
            .secret(["init"])
            .into_command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !file.exists() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "init never wrote {}",
                file.display()
            );
            std::hint::spin_loop();
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    let works = |env: &Env| {
        env.add("@k", b"sk-after-a-killed-init");
        let out = env
            .secret([
                "exec",
                "--env",
                "K=@k",
                "--",
                "sh",
                "-c",
                "printf %s \"$K\"",
            ])
            .run();
        out.success();
        assert_eq!(out.stdout(), "sk-after-a-killed-init");
    };

    // Killed the moment the vault exists: the store already grants.
    let env = Env::new().var("SECRET_TEST_FAST_KDF", "0");
    kill_init_when(&env, env.vault());
    env.secret(["init"])
        .run()
        .code(1)
        .stderr_has("already exists");
    works(&env);

    // Killed once grants.toml exists, during the KDF: no store yet, and a
    // new init completes it.
    let env = Env::new().var("SECRET_TEST_FAST_KDF", "0");
    kill_init_when(&env, env.home().join("grants.toml"));
    assert!(
        !env.vault().exists(),
        "the vault was written before grants.toml"
    );
    env.secret(["init"]).run().success();
    works(&env);
}

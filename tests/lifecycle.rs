//! init, add, rotate, rm, list, inspect, passwd: the exact spellings, and
//! that no value ever shows.

use crate::util::{Env, PASSPHRASE};

const VALUE: &[u8] = b"sk-lifecycle-0123456789";

#[test]
fn init_creates_a_private_vault_and_refuses_a_second_time() {
    let env = Env::new();
    env.secret(["init"])
        .run()
        .success()
        .stdout_has("encrypted file vault");
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&env.vault()), 0o600);
    assert_eq!(mode(&env.home()), 0o700);
    let before = std::fs::read(env.vault()).unwrap();
    env.secret(["init"])
        .run()
        .code(1)
        .stderr_has("already exists");
    assert_eq!(
        std::fs::read(env.vault()).unwrap(),
        before,
        "a failed init changed the vault"
    );
}

#[test]
fn commands_before_init_say_how_to_start() {
    let env = Env::new();
    env.secret(["list"]).run().code(1).stderr_has("secret init");
}

#[test]
fn add_strips_one_newline_and_never_echoes_the_value() {
    let env = Env::with_vault();
    let mut piped = VALUE.to_vec();
    piped.push(b'\n');
    env.secret([
        "add",
        "@openai_api_key",
        "--stdin",
        "--provider",
        "openai",
        "--kind",
        "api_key",
    ])
    .stdin(&piped)
    .run()
    .success()
    .stdout_has("added @openai_api_key")
    .no_leak(VALUE);
    let out = env
        .secret([
            "exec",
            "--env",
            "K=@openai_api_key",
            "--",
            "sh",
            "-c",
            "printf %s \"$K\"",
        ])
        .run();
    out.success();
    assert_eq!(out.stdout, VALUE);
    env.assert_not_on_disk(VALUE);
}

#[test]
fn list_and_inspect_show_metadata_only() {
    let env = Env::with_vault();
    env.secret([
        "add",
        "@prod/db_password",
        "--stdin",
        "--provider",
        "postgres",
        "--kind",
        "password",
    ])
    .stdin(VALUE)
    .run()
    .success();
    let list = env.secret(["list", "--json"]).run();
    list.success().no_leak(VALUE);
    let json: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let entry = &json[0];
    assert_eq!(entry["handle"], "@prod/db_password");
    assert_eq!(entry["provider"], "postgres");
    assert_eq!(entry["kind"], "password");
    assert_eq!(entry["version"], 1);
    assert_eq!(entry["backend"], "file");
    assert_eq!(entry["rotated"], serde_json::Value::Null);
    assert_eq!(entry["fingerprint"].as_str().unwrap().len(), 16);
    assert!(entry["created"].as_str().unwrap().ends_with('Z'));

    env.secret(["list"])
        .run()
        .success()
        .stdout_has("@prod/db_password")
        .no_leak(VALUE);
    let inspect = env.secret(["inspect", "@prod/db_password", "--json"]).run();
    inspect.success().no_leak(VALUE);
    let one: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(&one, entry);
    env.secret(["inspect", "@prod/db_password"])
        .run()
        .success()
        .stdout_has("fingerprint:")
        .no_leak(VALUE);
    env.secret(["inspect", "@nope"])
        .run()
        .code(1)
        .stderr_has("no secret @nope");
}

#[test]
fn rotate_bumps_the_version_and_changes_the_fingerprint() {
    let env = Env::with_vault();
    env.add("@k", b"old-value-1");
    let fp = |env: &Env| {
        let out = env.secret(["inspect", "@k", "--json"]).run();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["fingerprint"].as_str().unwrap().to_owned(),
            v["version"].as_u64().unwrap(),
            v["rotated"].is_string(),
        )
    };
    let (fp1, v1, rotated1) = fp(&env);
    env.secret(["rotate", "@k", "--stdin"])
        .stdin(b"new-value-2\n")
        .run()
        .success()
        .no_leak(b"new-value-2");
    let (fp2, v2, rotated2) = fp(&env);
    assert_eq!((v1, v2), (1, 2));
    assert!(!rotated1 && rotated2);
    assert_ne!(fp1, fp2);
    let out = env
        .secret(["exec", "-e", "K=@k", "--", "sh", "-c", "printf %s \"$K\""])
        .run();
    assert_eq!(out.stdout, b"new-value-2");
    env.secret(["rotate", "@missing", "--stdin"])
        .stdin(b"x")
        .run()
        .code(1)
        .stderr_has("no secret @missing");
}

#[test]
fn fingerprints_are_keyed_per_vault() {
    let a = Env::with_vault();
    let b = Env::with_vault();
    a.add("@k", VALUE);
    b.add("@k", VALUE);
    let fp = |env: &Env| {
        let out = env.secret(["inspect", "@k", "--json"]).run();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["fingerprint"].clone()
    };
    assert_ne!(
        fp(&a),
        fp(&b),
        "the same value must not be recognisable across vaults"
    );
}

#[test]
fn rm_removes_and_add_refuses_duplicates() {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    env.secret(["add", "@k", "--stdin"])
        .stdin(b"other")
        .run()
        .code(1)
        .stderr_has("already exists")
        .stderr_has("secret rotate @k");
    env.secret(["rm", "@k"])
        .run()
        .success()
        .stdout_has("removed @k");
    env.secret(["rm", "@k"])
        .run()
        .code(1)
        .stderr_has("no secret @k");
    let list = env.secret(["list", "--json"]).run();
    assert_eq!(list.stdout(), "[]\n");
}

#[test]
fn values_are_bytes_with_clear_limits() {
    let env = Env::with_vault();
    let binary = b"\xff\xfe\x01binary\x7f";
    env.add("@bin", binary);
    let out = env
        .secret([
            "exec",
            "-e",
            "B=@bin",
            "--",
            "sh",
            "-c",
            "printf %s \"$B\" | od -An -tx1",
        ])
        .run();
    out.success();
    let hex: String = out.stdout().split_whitespace().collect();
    assert_eq!(hex, "fffe0162696e6172797f");

    env.secret(["add", "@nul", "--stdin"])
        .stdin(b"a\0b")
        .run()
        .code(2)
        .stderr_has("NUL");
    let big = vec![b'x'; (1 << 20) + 1];
    env.secret(["add", "@big", "--stdin"])
        .stdin(&big)
        .run()
        .code(2)
        .stderr_has("1 MiB");
    let exact = vec![b'y'; 1 << 20];
    env.add("@exact", &exact);
    env.secret(["add", "@empty", "--stdin"])
        .stdin(b"\n")
        .run()
        .code(2)
        .stderr_has("empty");
    let list = env.secret(["list", "--json"]).run();
    let names: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&list.stdout)
        .unwrap()
        .iter()
        .map(|e| e["handle"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["@bin", "@exact"]);
}

#[test]
fn there_is_no_value_flag_and_stdin_must_be_asked_for() {
    let env = Env::with_vault();
    env.secret(["add", "@k", "--value", "sk-1"])
        .run()
        .code(2)
        .stderr_has("--value");
    env.secret(["add", "@k"])
        .stdin(VALUE)
        .run()
        .code(2)
        .stderr_has("--stdin");
}

#[test]
fn bad_handles_are_explained() {
    let env = Env::with_vault();
    env.secret(["add", "k", "--stdin"])
        .stdin(VALUE)
        .run()
        .code(2)
        .stderr_has("write @k");
    env.secret(["add", "@a b", "--stdin"])
        .stdin(VALUE)
        .run()
        .code(2)
        .stderr_has("contains ' '");
    env.secret(["add", "@a//b", "--stdin"])
        .stdin(VALUE)
        .run()
        .code(2)
        .stderr_has("namespace");
}

#[test]
fn wrong_passphrase_says_so_and_changes_nothing() {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    let before = std::fs::read(env.vault()).unwrap();
    env.secret(["add", "@k2", "--stdin"])
        .env("SECRET_PASSPHRASE", "wrong")
        .stdin(b"v2")
        .run()
        .code(1)
        .stderr_has("wrong passphrase");
    env.secret(["rm", "@k"])
        .env("SECRET_PASSPHRASE", "wrong")
        .run()
        .code(1);
    assert_eq!(std::fs::read(env.vault()).unwrap(), before);
}

#[test]
fn passphrase_from_a_descriptor_wins_and_no_source_is_explained() {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    let script = format!("exec \"$SECRET_BIN\" --passphrase-fd 3 list 3<<'EOF'\n{PASSPHRASE}\nEOF");
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env_clear()
        .env("SECRET_BIN", env!("CARGO_BIN_EXE_secret"))
        .env("SECRET_HOME", env.home())
        .env("SECRET_PASSPHRASE", "wrong-one-is-overridden")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("@k"));

    env.secret(["list"])
        .env_remove("SECRET_PASSPHRASE")
        .run()
        .code(1)
        .stderr_has("SECRET_PASSPHRASE");
    env.secret(["list"])
        .env("SECRET_PASSPHRASE", "")
        .run()
        .code(1);
}

#[test]
fn the_passphrase_descriptor_and_other_inherited_ones_never_reach_the_child() {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    // fd 3: the passphrase; fd 4: some other descriptor the caller left open.
    let script = format!(
        "exec \"$SECRET_BIN\" --passphrase-fd 3 exec --env V=@k -- \
         sh -c 'ls /proc/self/fd; cat <&3 && echo READ3; cat <&4 && echo READ4; exit 0' \
         3<<'EOF' 4</etc/hostname\n{PASSPHRASE}\nEOF"
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SECRET_BIN", env!("CARGO_BIN_EXE_secret"))
        .env("SECRET_HOME", env.home())
        .env("SECRET_TEST_FAST_KDF", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let fds: Vec<&str> = stdout
        .lines()
        .take_while(|l| l.parse::<u32>().is_ok())
        .collect();
    // sh's own ls sees 0, 1, 2 and the directory it reads (3): nothing of ours.
    assert_eq!(fds, ["0", "1", "2", "3"], "{stdout}");
    assert!(
        !stdout.contains("READ3") && !stdout.contains("READ4"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(PASSPHRASE),
        "the passphrase reached the child"
    );
}

#[test]
fn passwd_keeps_values_and_retires_the_old_passphrase() {
    let env = Env::with_vault();
    env.add("@a", b"value-a");
    env.add("@b", b"value-b");
    env.secret(["passwd"])
        .env("SECRET_NEW_PASSPHRASE", "a new passphrase")
        .run()
        .success()
        .no_leak(b"a new passphrase");
    env.secret(["list"])
        .run()
        .code(1)
        .stderr_has("wrong passphrase");
    let out = env
        .secret([
            "exec",
            "-e",
            "A=@a",
            "-e",
            "B=@b",
            "--",
            "sh",
            "-c",
            "printf %s:%s \"$A\" \"$B\"",
        ])
        .env("SECRET_PASSPHRASE", "a new passphrase")
        .run();
    out.success();
    assert_eq!(out.stdout, b"value-a:value-b");
    env.secret(["passwd"])
        .env("SECRET_PASSPHRASE", "wrong")
        .env("SECRET_NEW_PASSPHRASE", "x")
        .run()
        .code(1)
        .stderr_has("wrong passphrase");
}

#[test]
fn sixteen_parallel_adds_keep_all_sixteen() {
    let env = Env::with_vault();
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut cmd = env
                .secret(["add", &format!("@k{i:02}"), "--stdin"])
                .into_command();
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null());
            let mut child = cmd.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("value-{i}").as_bytes())
                .unwrap();
            child
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let list = env.secret(["list", "--json"]).run();
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(entries.len(), 16, "{}", list.stdout());
    for i in [0, 7, 15] {
        let out = env
            .secret([
                "exec",
                "-e",
                &format!("V=@k{i:02}"),
                "--",
                "sh",
                "-c",
                "printf %s \"$V\"",
            ])
            .run();
        assert_eq!(out.stdout(), format!("value-{i}"));
    }
}

/// Runs `secret ARGS` on a pseudo-terminal (util-linux `script`), answering
/// each prompt once it appears; returns the whole transcript.
fn on_terminal(env: &Env, args: &str, answers: &[(&str, &str)]) -> (String, bool) {
    use std::io::{Read, Write};
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_secret"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", env.root())
        .env("SECRET_HOME", env.home())
        .env("SECRET_TEST_FAST_KDF", "1")
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    for (prompt, answer) in answers {
        while !seen.contains(prompt) {
            let n = stdout.read(&mut buf).unwrap();
            assert!(n > 0, "no prompt {prompt:?}; got {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen = seen.replacen(prompt, "", 1);
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    drop(stdin);
    let ok = child.wait().unwrap().success();
    (seen + &rest, ok)
}

#[test]
fn typed_passphrases_and_values_are_not_echoed() {
    let env = Env::new();
    let (out, ok) = on_terminal(
        &env,
        "init",
        &[
            ("New vault passphrase: ", "typed-pass-123"),
            ("Repeat it: ", "typed-pass-123"),
        ],
    );
    assert!(ok, "{out}");
    assert!(!out.contains("typed-pass-123"), "passphrase echoed: {out}");
    let (out, ok) = on_terminal(
        &env,
        "add @typed",
        &[
            ("Vault passphrase: ", "typed-pass-123"),
            ("Value for @typed (not shown): ", "sk-typed-value-42"),
        ],
    );
    assert!(ok, "{out}");
    assert!(!out.contains("sk-typed-value-42"), "value echoed: {out}");
    let got = env
        .secret([
            "exec",
            "-e",
            "V=@typed",
            "--",
            "sh",
            "-c",
            "printf %s \"$V\"",
        ])
        .env("SECRET_PASSPHRASE", "typed-pass-123")
        .run();
    assert_eq!(got.stdout(), "sk-typed-value-42");

    let (out, ok) = on_terminal(
        &Env::new(),
        "init",
        &[
            ("New vault passphrase: ", "first-one"),
            ("Repeat it: ", "second-one"),
        ],
    );
    assert!(!ok && out.contains("differ"), "{out}");
}

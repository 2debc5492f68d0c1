//! The file vault's integrity through the binary: killed writers, flipped
//! and cut bytes, loose permissions, rollback.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::util::Env;

fn value_of(env: &Env, handle: &str) -> crate::util::Output {
    env.secret([
        "exec",
        "-e",
        &format!("V=@{handle}"),
        "--",
        "sh",
        "-c",
        "printf %s \"$V\"",
    ])
    .run()
}

#[test]
fn kill_9_during_rotate_leaves_the_old_or_the_new_value() {
    let env = Env::with_vault();
    env.add("@k", b"value-0");
    let mut current = b"value-0".to_vec();
    for round in 1..=40u64 {
        let new = format!("value-{round}").into_bytes();
        let mut cmd = env.secret(["rotate", "@k", "--stdin"]).into_command();
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(&new).unwrap();
        }
        // Spread the kills over the whole life of the command (a few ms).
        std::thread::sleep(Duration::from_micros((round * 337) % 12_000));
        let _ = child.kill();
        let _ = child.wait();
        let out = value_of(&env, "k");
        out.success();
        assert!(
            out.stdout == current || out.stdout == new,
            "round {round}: vault holds neither the old nor the new value"
        );
        current = out.stdout;
    }
    let leftovers: Vec<_> = std::fs::read_dir(env.home())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.len() <= 1, "temp files pile up: {leftovers:?}");
}

#[test]
fn flipped_bytes_never_yield_another_value_and_never_panic() {
    let env = Env::with_vault();
    env.add("@k", b"the-real-value");
    let good = std::fs::read(env.vault()).unwrap();
    // Every 7th byte and both ends: the unit tests flip every bit of a
    // smaller vault in-process; this proves the binary behaves the same.
    let positions: Vec<usize> = (0..good.len()).step_by(7).chain([good.len() - 1]).collect();
    for i in positions {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        std::fs::write(env.vault(), &bad).unwrap();
        let out = value_of(&env, "k");
        out.no_panic();
        assert_eq!(out.code, Some(125), "byte {i}: {}", out.stderr());
        assert!(out.stdout.is_empty(), "byte {i}: the command ran");
    }
    std::fs::write(env.vault(), &good).unwrap();
    assert_eq!(value_of(&env, "k").stdout, b"the-real-value");
}

#[test]
fn a_truncated_vault_is_refused() {
    let env = Env::with_vault();
    env.add("@k", b"the-real-value");
    let good = std::fs::read(env.vault()).unwrap();
    for len in [0, 8, 40, good.len() / 2, good.len() - 1] {
        std::fs::write(env.vault(), &good[..len]).unwrap();
        let out = env.secret(["list"]).run();
        out.code(1).no_panic().stderr_has("damaged");
    }
}

#[test]
fn loose_permissions_are_refused_with_the_fix() {
    let env = Env::with_vault();
    env.add("@k", b"v1");
    std::fs::set_permissions(env.vault(), std::fs::Permissions::from_mode(0o640)).unwrap();
    env.secret(["list"])
        .run()
        .code(1)
        .stderr_has("group or others")
        .stderr_has("chmod 600");
    std::fs::set_permissions(env.vault(), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(env.home(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.secret(["list"]).run().code(1).stderr_has("chmod 700");
    std::fs::set_permissions(env.home(), std::fs::Permissions::from_mode(0o700)).unwrap();
    env.secret(["list"]).run().success();
}

#[test]
fn a_rolled_back_vault_is_reported() {
    let env = Env::with_vault();
    env.add("@k", b"v1");
    let old = std::fs::read(env.vault()).unwrap();
    env.secret(["rotate", "@k", "--stdin"])
        .stdin(b"v2")
        .run()
        .success();
    std::fs::write(env.vault(), &old).unwrap();
    env.secret(["list"])
        .run()
        .success()
        .stderr_has("rolled back");
}

#[test]
fn a_file_that_is_not_a_vault_is_named_as_such() {
    let env = Env::with_vault();
    std::fs::write(env.vault(), b"# just some text file\n").unwrap();
    env.secret(["list"])
        .run()
        .code(1)
        .no_panic()
        .stderr_has("not a secret vault");
}

#[test]
fn a_write_on_a_rolled_back_vault_is_refused_until_accepted() {
    let env = Env::with_vault();
    env.add("@k", b"v1");
    let old = std::fs::read(env.vault()).unwrap();
    env.add("@newer", b"v2");
    std::fs::write(env.vault(), &old).unwrap();
    env.secret(["add", "@x", "--stdin"])
        .stdin(b"v3")
        .run()
        .code(1)
        .stderr_has("rolled back")
        .stderr_has("vault.generation");
    assert_eq!(
        std::fs::read(env.vault()).unwrap(),
        old,
        "the refused write changed the vault"
    );
    env.secret(["list"])
        .run()
        .success()
        .stderr_has("rolled back");
    std::fs::remove_file(env.home().join("vault.generation")).unwrap();
    env.secret(["add", "@x", "--stdin"])
        .stdin(b"v3")
        .run()
        .success();
    env.secret(["list"]).run().success();
    assert!(!env.secret(["list"]).run().stderr().contains("rolled back"));
}

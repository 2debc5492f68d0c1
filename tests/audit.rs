//! The audit trail through the binary: what is recorded, that values are
//! not, and that `--verify` catches edits.

use crate::util::Env;

const VALUE: &[u8] = b"sk-audit-secret-value";

#[test]
fn every_change_and_resolution_is_recorded_without_values() {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    env.secret(["rotate", "@k", "--stdin"])
        .stdin(b"sk-audit-second-value")
        .run()
        .success();
    env.secret(["exec", "-e", "K=@k", "--", "true"])
        .run()
        .success();
    env.secret(["exec", "-e", "K=@missing", "--", "true"])
        .run()
        .code(125);
    env.secret(["rm", "@k"]).run().success();

    let out = env.secret(["audit", "--json"]).run();
    out.success()
        .no_leak(VALUE)
        .no_leak(b"sk-audit-second-value");
    let records: Vec<serde_json::Value> = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["handle"].as_str().unwrap_or("-").to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Each change is recorded before it is committed, and its outcome after.
    let expect = [
        ("init", "-", "committing (generation 1)"),
        ("init", "-", "ok"),
        ("add", "k", "committing (generation 2)"),
        ("add", "k", "ok"),
        ("rotate", "k", "committing (generation 3)"),
        ("rotate", "k", "ok"),
        ("resolve", "k", "ok"),
        ("resolve", "missing", "missing"),
        ("rm", "k", "committing (generation 4)"),
        ("rm", "k", "ok"),
    ];
    assert_eq!(
        summary,
        expect
            .map(|(a, h, o)| (a.to_owned(), h.to_owned(), o.to_owned()))
            .to_vec()
    );
    assert_eq!(records[6]["consumer"], "exec");
    assert!(records[6]["fingerprint"].is_string());
    assert!(
        records
            .iter()
            .all(|r| r["pid"].is_u64() && r["time"].is_string())
    );
    env.assert_not_on_disk(VALUE);

    let only_k = env.secret(["audit", "@k"]).run();
    only_k.success();
    // A header row, then @k's seven records.
    assert_eq!(only_k.stdout().lines().count(), 8, "{}", only_k.stdout());
    env.secret(["audit", "--verify"])
        .run()
        .success()
        .stdout_has("intact: 10 records");
}

#[test]
fn verify_names_the_first_bad_line() {
    let env = Env::with_vault();
    for i in 0..4 {
        env.add(&format!("@k{i}"), b"v");
    }
    let path = env.home().join("audit.jsonl");
    let good = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let write = |ls: Vec<String>| std::fs::write(&path, ls.join("\n") + "\n").unwrap();
    let owned = |ls: &[&str]| ls.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    // The first line about k1 (each change is recorded twice).
    let at = lines.iter().position(|l| l.contains("\"k1\"")).unwrap();
    let mut edited = owned(&lines);
    edited[at] = edited[at].replace("\"k1\"", "\"kX\"");
    write(edited);
    env.secret(["audit", "--verify"])
        .run()
        .code(1)
        .stderr_has(&format!("line {}", at + 1));

    let mut removed = owned(&lines);
    removed.remove(1);
    write(removed);
    env.secret(["audit", "--verify"])
        .run()
        .code(1)
        .stderr_has("line 2");

    let mut swapped = owned(&lines);
    swapped.swap(1, 2);
    write(swapped);
    env.secret(["audit", "--verify"]).run().code(1);

    write(owned(&lines));
    env.secret(["audit", "--verify"]).run().success();
}

/// The end of the trail is anchored: an edited last line is caught, even
/// when the editor also strips its mac and fixes up the chain and the head.
#[test]
fn an_edited_last_line_is_caught() {
    let env = Env::with_vault();
    env.add("@k", b"sk-anchored-value");
    env.secret(["exec", "--consumer", "stranger", "-e", "K=@k", "--", "true"])
        .run()
        .code(125);
    let path = env.home().join("audit.jsonl");
    let good = std::fs::read_to_string(&path).unwrap();
    let last = good.lines().last().unwrap().to_owned();
    assert!(last.contains("\"denied\""), "{last}");
    env.secret(["audit", "--verify"]).run().success();

    // The plain edit: "denied" becomes "ok".
    std::fs::write(&path, good.replace("\"denied\"", "\"ok\"")).unwrap();
    env.secret(["audit", "--verify"])
        .run()
        .code(1)
        .stderr_has("mac does not match");

    // The careful edit: no mac, and the head record rewritten to match.
    let edited = last.replace("\"denied\"", "\"ok\"");
    let edited = format!("{}}}", &edited[..edited.rfind(",\"mac\"").unwrap()]);
    let trail = good.replace(&last, &edited);
    std::fs::write(&path, &trail).unwrap();
    let head_path = env.home().join("audit.head");
    let head = std::fs::read_to_string(&head_path).unwrap();
    let f: Vec<&str> = head.split_whitespace().collect();
    let hash = sha256_hex(edited.as_bytes());
    let forged = format!(
        "{} {} {} {hash} {} {} {}\n",
        f[0],
        trail.len(),
        f[2],
        f[4],
        f[5],
        f[6]
    );
    std::fs::write(&head_path, forged).unwrap();
    env.secret(["audit", "--verify"])
        .run()
        .code(1)
        .stderr_has("the last one written with the vault key");

    // And deleting the head record does not hide it either.
    std::fs::remove_file(&head_path).unwrap();
    env.secret(["audit", "--verify"])
        .run()
        .code(1)
        .stderr_has("audit.head");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The launch's audit line is appended without reading the trail: its head
/// comes from the small `audit.head` record.
#[test]
fn a_launch_does_not_read_the_trail() {
    if !crate::util::tools_present("audit append", &["strace"], "apt-get install strace") {
        return;
    }
    let env = Env::with_vault();
    env.add("@k", b"sk-strace-value");
    let log = env.root().join("strace.log");
    let out = std::process::Command::new("strace")
        .arg("-f")
        .arg("-y")
        .args(["-e", "trace=read,pread64,readv,preadv,preadv2,write", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_secret"))
        .args(["exec", "-e", "K=@k", "--", "true"])
        .env("SECRET_HOME", env.home())
        .env("SECRET_PASSPHRASE", crate::util::PASSPHRASE)
        .env("SECRET_TEST_FAST_KDF", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(
        trace
            .lines()
            .any(|l| l.contains("audit.jsonl>") && l.contains("write(")),
        "the launch wrote no audit line:\n{trace}"
    );
    let reads: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("audit.jsonl>") && !l.contains("write("))
        .collect();
    assert!(reads.is_empty(), "the launch read the trail: {reads:?}");
}

/// A change killed at any point is never committed without its record:
/// every generation the vault reached has a "committing" line.
#[test]
fn a_killed_change_is_never_committed_unaudited() {
    let env = Env::with_vault();
    env.add("@a", b"v0-initial");
    for i in 0..40u64 {
        let mut child = env
            .secret(["rotate", "@a", "--stdin"])
            .into_command()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(format!("v{i}-rotated").as_bytes());
        }
        std::thread::sleep(std::time::Duration::from_micros((i * 397) % 12_000));
        let _ = child.kill();
        let _ = child.wait();
    }
    let vault = std::fs::read(env.vault()).unwrap();
    let generation = u64::from_be_bytes(vault[26..34].try_into().unwrap());
    let trail = std::fs::read_to_string(env.home().join("audit.jsonl")).unwrap();
    let recorded: std::collections::BTreeSet<u64> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| {
            r["outcome"]
                .as_str()?
                .strip_prefix("committing (generation ")?
                .strip_suffix(')')?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        generation > 2,
        "no rotation got through; the test proves nothing"
    );
    for g in 2..=generation {
        assert!(
            recorded.contains(&g),
            "generation {g} was committed without a record"
        );
    }
}

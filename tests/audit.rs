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
    let expect = [
        ("init", "-", "ok"),
        ("add", "k", "ok"),
        ("rotate", "k", "ok"),
        ("resolve", "k", "ok"),
        ("resolve", "missing", "missing"),
        ("rm", "k", "ok"),
    ];
    assert_eq!(
        summary,
        expect
            .map(|(a, h, o)| (a.to_owned(), h.to_owned(), o.to_owned()))
            .to_vec()
    );
    assert_eq!(records[3]["consumer"], "exec");
    assert!(records[3]["fingerprint"].is_string());
    assert!(
        records
            .iter()
            .all(|r| r["pid"].is_u64() && r["time"].is_string())
    );
    env.assert_not_on_disk(VALUE);

    let only_k = env.secret(["audit", "@k"]).run();
    only_k.success();
    assert_eq!(only_k.stdout().lines().count(), 4, "{}", only_k.stdout());
    env.secret(["audit", "--verify"])
        .run()
        .success()
        .stdout_has("intact: 6 records");
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

    let mut edited = owned(&lines);
    edited[2] = edited[2].replace("\"k1\"", "\"kX\"");
    write(edited);
    env.secret(["audit", "--verify"])
        .run()
        .code(1)
        .stderr_has("line 4");

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

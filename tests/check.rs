//! `secret check` and `secret run --check`: every reference a launch would
//! need, resolved under the same grants and reported one by one, without
//! starting anything or printing a value.

use crate::util::Env;

fn write(env: &Env, name: &str, text: &str) {
    std::fs::write(env.root().join(name), text).unwrap();
}

/// The fields of the report row of `var` (columns are two or more spaces
/// apart).
#[track_caller]
fn row(out: &crate::util::Output, var: &str) -> Vec<String> {
    let text = out.stdout();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{var} ")))
        .unwrap_or_else(|| panic!("no row for {var}:\n{text}"));
    line.split("  ")
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The audit records' actions, in order.
fn actions(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.home().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["action"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn a_good_env_file_checks_clean_and_nothing_starts() {
    let env = Env::with_vault();
    env.add("@openai", b"sk-check-value-1");
    env.add("@db", b"db-check-value-2");
    write(
        &env,
        "app.env",
        "OPENAI_API_KEY=@openai\nexport DB=@db\nURL=pg://u:{{@db}}@h/app\n",
    );
    let marker = env.root().join("ran");
    let script = format!("touch {}", marker.display());
    let out = env
        .secret([
            "check",
            "--env-file",
            "app.env",
            "-e",
            "MODE=dev",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .run();
    out.success()
        .stdout_has("VARIABLE")
        .stdout_has("3 references checked, all resolve; nothing was started")
        .no_leak(b"sk-check-value-1")
        .no_leak(b"db-check-value-2");
    assert_eq!(
        row(&out, "OPENAI_API_KEY"),
        ["OPENAI_API_KEY", "env", "@openai", "ok"]
    );
    assert_eq!(row(&out, "URL"), ["URL", "env", "@db", "ok"]);
    assert_eq!(row(&out, "MODE"), ["MODE", "env", "(literal)", "ok"]);
    assert!(!marker.exists(), "check started the command");
    // Audited as checks, not as a launch's resolutions.
    let acts = actions(&env);
    assert_eq!(acts.iter().filter(|a| *a == "check").count(), 2, "{acts:?}");
    assert!(!acts.contains(&"resolve".to_owned()), "{acts:?}");
}

#[test]
fn a_broken_launch_reports_every_problem_with_its_fix() {
    let env = Env::with_vault();
    env.add("@ok", b"fine-value-1");
    env.add("@prod/db", b"prod-value-2");
    std::fs::write(
        env.home().join("grants.toml"),
        "[[grants]]\nsecret_ref = \"ok\"\nconsumer = \"exec\"\n\n[[grants]]\nsecret_ref = \"vault://secret/*\"\nconsumer = \"exec\"\n",
    )
    .unwrap();
    write(
        &env,
        "app.env",
        "GOOD=@ok\nTYPO=@okk\nDB=@prod/db\nREMOTE=vault://secret/app#token\n",
    );
    let out = env
        .secret([
            "check",
            "--env-file",
            "app.env",
            "--file",
            "CREDS=@missing_file",
        ])
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .run();
    assert_eq!(row(&out, "GOOD"), ["GOOD", "env", "@ok", "ok"]);
    assert_eq!(row(&out, "TYPO"), ["TYPO", "env", "@okk", "missing"]);
    assert_eq!(
        row(&out, "DB"),
        ["DB", "env", "@prod/db", "denied by grant"]
    );
    assert_eq!(
        row(&out, "REMOTE"),
        [
            "REMOTE",
            "env",
            "vault://secret/app#token",
            "provider error"
        ]
    );
    assert_eq!(
        row(&out, "CREDS"),
        ["CREDS", "file", "@missing_file", "missing"]
    );
    out.code(1)
        .stdout_has("TYPO (@okk): no secret @okk in the store")
        .stdout_has("DB (@prod/db): denied:")
        .stdout_has("hint: if it should, add to")
        .stdout_has("4 of 5 references do not resolve")
        .no_leak(b"fine-value-1")
        .no_leak(b"prod-value-2");
    let acts = actions(&env);
    assert_eq!(acts.iter().filter(|a| *a == "check").count(), 5, "{acts:?}");

    // The same mappings as exec: a malformed one is a usage error.
    write(&env, "bad.env", "TOKEN=sk-literal-in-file\n");
    env.secret(["check", "--env-file", "bad.env"])
        .run()
        .code(2)
        .stderr_has("literal value")
        .no_leak(b"sk-literal-in-file");
}

#[test]
fn grants_are_checked_for_the_consumer_purpose_and_proxy_hosts() {
    let env = Env::with_vault();
    env.add("@api", b"sk-proxy-value-1");
    std::fs::write(
        env.home().join("grants.toml"),
        "[[grants]]\nsecret_ref = \"api\"\nconsumer = \"agent\"\npurposes = [\"chat\"]\ndelivery = [\"env\", \"http\"]\n",
    )
    .unwrap();
    env.secret(["check", "--consumer", "agent", "-e", "K=@api"])
        .run()
        .code(1)
        .stdout_has("denied by grant")
        .stdout_has("--purpose");
    env.secret([
        "check",
        "--consumer",
        "agent",
        "--purpose",
        "chat",
        "-e",
        "K=@api",
    ])
    .run()
    .success();
    // --proxy needs allowed_hosts too, as the launch would.
    let out = env
        .secret([
            "check",
            "--consumer",
            "agent",
            "--purpose",
            "chat",
            "--proxy",
            "K=@api",
        ])
        .run();
    out.code(1)
        .stdout_has("names no allowed_hosts")
        .no_leak(b"sk-proxy-value-1");
    assert_eq!(row(&out, "K"), ["K", "proxy", "@api", "denied by grant"]);
}

#[test]
fn run_check_reports_a_scripts_header_without_running_it() {
    let env = Env::with_vault();
    env.add("@k", b"script-value-1");
    let marker = env.root().join("ran");
    write(
        &env,
        "job.sh",
        &format!(
            "#!/usr/bin/env -S secret run bash\n# secret: K=@k\n# secret-file: F=@k\n\ntouch {}\n",
            marker.display()
        ),
    );
    let out = env
        .secret(["run", "--check", "bash", "job.sh", "--its-own-flag"])
        .run();
    out.success()
        .stdout_has("all resolve")
        .no_leak(b"script-value-1");
    assert_eq!(row(&out, "K"), ["K", "env", "@k", "ok"]);
    assert_eq!(row(&out, "F"), ["F", "file", "@k", "ok"]);
    assert!(!marker.exists(), "run --check ran the script");
    write(
        &env,
        "broken.sh",
        "#!/bin/bash\n# secret: K=@absent\necho hi\n",
    );
    // Not a launch: 1 when a reference does not resolve, not 125.
    let out = env.secret(["run", "--check", "bash", "broken.sh"]).run();
    out.code(1);
    assert_eq!(row(&out, "K"), ["K", "env", "@absent", "missing"]);
    // A command line that does not parse is a usage error (2), not a
    // launch failure (125), when --check is among run's own options.
    env.secret(["run", "--check"]).run().code(2);
    env.secret(["run", "--check", "--no-such-flag", "bash"])
        .run()
        .code(2);
    // After the script path, --check belongs to the script.
    env.secret(["run", "bash", "job.sh", "--check"])
        .run()
        .success();
    assert!(marker.exists());
}

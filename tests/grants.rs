//! grants.toml: deny by default, checked before any value is handed out,
//! explained by `secret grants check`, recorded in the audit trail.

use crate::util::Env;

fn grants(env: &Env, text: &str) {
    std::fs::write(env.home().join("grants.toml"), text).unwrap();
}

fn launch(env: &Env, extra: &[&str]) -> crate::util::Output {
    let marker = env.root().join("ran");
    let _ = std::fs::remove_file(&marker);
    let mut args = vec!["exec"];
    args.extend(extra);
    let script = format!("touch {}", marker.display());
    args.extend(["--", "sh", "-c", &script]);
    let out = env.secret(args).run();
    assert_eq!(
        out.code == Some(0),
        marker.exists(),
        "the command ran iff secret succeeded"
    );
    out
}

#[test]
fn init_grants_exec_everything_and_a_missing_file_denies_all() {
    let env = Env::with_vault();
    env.add("@k", b"value-1234");
    let text = std::fs::read_to_string(env.home().join("grants.toml")).unwrap();
    assert!(text.contains("consumer = \"exec\""), "{text}");
    launch(&env, &["-e", "K=@k"]).success();
    std::fs::remove_file(env.home().join("grants.toml")).unwrap();
    launch(&env, &["-e", "K=@k"])
        .code(125)
        .stderr_has("no grants file")
        .stderr_has("secret_ref = \"k\"")
        .no_leak(b"value-1234");
    launch(&env, &["-e", "A=literal"]).success();
}

#[test]
fn refs_consumers_purposes_and_delivery_are_enforced() {
    let env = Env::with_vault();
    env.add("@prod/db", b"db-value-1");
    env.add("@other", b"other-value-1");
    grants(
        &env,
        "[[grants]]\nsecret_ref = \"prod/*\"\nconsumer = \"deployer\"\npurposes = [\"deploy\"]\ndelivery = [\"env\"]\nttl_secs = 300\n",
    );
    launch(
        &env,
        &[
            "--consumer",
            "deployer",
            "--purpose",
            "deploy",
            "-e",
            "D=@prod/db",
        ],
    )
    .success();
    launch(&env, &["--consumer", "deployer", "-e", "D=@prod/db"])
        .code(125)
        .stderr_has("--purpose");
    launch(
        &env,
        &[
            "--consumer",
            "deployer",
            "--purpose",
            "other",
            "-e",
            "D=@prod/db",
        ],
    )
    .code(125)
    .stderr_has("\"other\"");
    launch(
        &env,
        &[
            "--consumer",
            "deployer",
            "--purpose",
            "deploy",
            "--file",
            "D=@prod/db",
        ],
    )
    .code(125)
    .stderr_has("file delivery");
    launch(
        &env,
        &[
            "--consumer",
            "deployer",
            "--purpose",
            "deploy",
            "-e",
            "O=@other",
        ],
    )
    .code(125)
    .stderr_has("@other");
    launch(&env, &["-e", "D=@prod/db"])
        .code(125)
        .stderr_has("consumer \"exec\"");
    // One denied handle stops the launch even when the others are allowed.
    launch(
        &env,
        &[
            "--consumer",
            "deployer",
            "--purpose",
            "deploy",
            "-e",
            "D=@prod/db",
            "-e",
            "O=@other",
        ],
    )
    .code(125);

    let audit = env.secret(["audit", "--json"]).run();
    let outcomes: Vec<String> = audit
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["action"] == "resolve")
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes.first().map(String::as_str),
        Some("ok (lease 300s)")
    );
    assert!(
        outcomes.iter().filter(|o| *o == "denied").count() >= 5,
        "{outcomes:?}"
    );
}

#[test]
fn grants_check_explains_and_matches_exec() {
    let env = Env::with_vault();
    env.add("@team/db", b"db-value-2");
    grants(
        &env,
        "# header\n[[grants]]\nsecret_ref = \"team/*\"\nconsumer = \"api\"\npurposes = [\"read\"]\n",
    );
    let cases: [(&[&str], bool); 4] = [
        (&["--consumer", "api", "--purpose", "read"], true),
        (&["--consumer", "api"], false),
        (&["--consumer", "web", "--purpose", "read"], false),
        (&[], false),
    ];
    for (flags, allowed) in cases {
        let mut check = vec!["grants", "check", "@team/db"];
        check.extend(flags);
        let explained = env.secret(check).run();
        let mut exec = flags.to_vec();
        exec.extend(["-e", "D=@team/db"]);
        let launched = launch(&env, &exec);
        if allowed {
            explained
                .success()
                .stdout_has("allowed")
                .stdout_has("grants.toml:2");
            launched.success();
        } else {
            explained
                .code(1)
                .stdout_has("denied")
                .stdout_has("[[grants]]");
            launched.code(125);
        }
    }
    grants(&env, "[[grants]]\nsecret_ref = \"x\"\nconsumr = \"exec\"\n");
    env.secret(["grants", "check", "@x"])
        .run()
        .code(2)
        .stderr_has("grants.toml:3");
}

#[test]
fn leases_are_renewed_and_a_withdrawn_grant_stops_the_holder() {
    let env = Env::with_vault();
    env.add("@k", b"lease-value-1");
    grants(
        &env,
        "[[grants]]\nsecret_ref = \"k\"\nconsumer = \"exec\"\nttl_secs = 1\n",
    );
    env.secret(["exec", "-e", "K=@k", "--", "sleep", "1.2"])
        .run()
        .success();
    let audit = env.secret(["audit", "@k"]).run().stdout();
    assert!(
        audit.contains("renew") && audit.contains("ok (lease 1s)"),
        "{audit}"
    );

    let mut cmd = env
        .secret([
            "exec",
            "--stop-timeout",
            "2s",
            "-e",
            "K=@k",
            "--",
            "sleep",
            "30",
        ])
        .into_command();
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let started = std::time::Instant::now();
    let child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    grants(&env, "# withdrawn\n");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(15),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "not stopped within its lease"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("denied"));
    let audit = env.secret(["audit", "@k"]).run().stdout();
    assert!(audit.contains("revoked"), "{audit}");
}

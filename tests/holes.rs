//! What a reference, template or env file may not do: walk out of a grant
//! with `..`, pass a near-miss template as literal text, or point a launch
//! at another program through PATH or a loader hook.

use crate::util::Env;

#[test]
fn env_files_and_headers_cannot_hijack_what_runs() {
    let env = Env::with_vault();
    env.add("@k", b"hook-secret-value");
    for line in ["PATH=/evil:{{@k}}", "LD_PRELOAD={{@k}}", "BASH_ENV=x{{@k}}"] {
        std::fs::write(env.root().join("app.env"), format!("{line}\n")).unwrap();
        let out = env
            .secret([
                "exec",
                "--env-file",
                "app.env",
                "--",
                "sh",
                "-c",
                "echo RAN",
            ])
            .run();
        out.code(125).stderr_has("decides what runs");
        assert!(!out.stdout().contains("RAN"), "{line}: the command ran");
        assert!(!out.stderr().contains("hook-secret-value"));
    }
    let script = env.root().join("s.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n# secret: LD_PRELOAD={{@k}}\necho RAN\n",
    )
    .unwrap();
    let out = env.secret(["run", "sh", script.to_str().unwrap()]).run();
    out.code(125).stderr_has("decides what runs");
    assert!(!out.stdout().contains("RAN"));
}

/// Every variable the README lists as one an env file may set only to a
/// plain reference is refused as a template and as a literal, and is
/// accepted as a reference; a variable not on the list takes a template.
#[test]
fn the_readmes_list_of_hook_variables_is_what_is_refused() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("runs. These are ")
        .expect("the list in the README")
        + 16;
    let end = start
        + readme[start..]
            .find("; such a line")
            .expect("end of the list");
    let names: Vec<String> = readme[start..end]
        .split(['`', ',', ' ', '\n'])
        .map(|w| w.trim_end_matches('*'))
        .filter(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(|w| {
            if w.ends_with('_') {
                format!("{w}X")
            } else {
                w.to_owned()
            }
        })
        .collect();
    assert!(names.len() > 30, "{names:?}");
    let env = Env::with_vault();
    env.add("@k", b"hook-list-value");
    let exec = |line: &str| {
        std::fs::write(env.root().join("app.env"), format!("{line}\n")).unwrap();
        env.secret([
            "exec",
            "--env-file",
            "app.env",
            "--",
            "/bin/sh",
            "-c",
            "exit 0",
        ])
        .run()
    };
    for name in &names {
        for line in [format!("{name}=x{{{{@k}}}}"), format!("{name}=/plain")] {
            exec(&line)
                .code(125)
                .stderr_has(&format!("{name} decides what runs"));
        }
        exec(&format!("{name}=@k")).success();
    }
    exec("GREETING=x{{@k}}").success();
}

#[test]
fn dot_segments_are_refused_before_grants_see_them() {
    let env = Env::with_vault();
    std::fs::write(
        env.home().join("config.toml"),
        "[providers.catstore]\ncommand = [\"cat\", \"{path}\"]\n",
    )
    .unwrap();
    for reference in [
        "catstore://public/../private/y",
        "catstore://public/./y",
        "catstore://public//y",
        "catstore://public/%2E%2E/private/y",
    ] {
        let out = env
            .secret(["exec", "--env", &format!("V={reference}"), "--", "true"])
            .run();
        out.code(125).stderr_has("path segment");
    }
    let out = env.secret(["audit"]).run();
    assert!(!out.stdout().contains("private"), "{}", out.stdout());
    env.secret(["link", "@l", "catstore://public/../private/y"])
        .run()
        .code(2)
        .stderr_has("path segment");
}

#[test]
fn near_miss_templates_are_refused_with_the_accepted_form() {
    let env = Env::with_vault();
    env.add("@db", b"templated-value");
    for text in ["X=a{{ @db }}b", "X={{db}}", "X=pg://{{@db }}@h"] {
        env.secret(["exec", "--env", text, "--", "true"])
            .run()
            .code(125)
            .stderr_has("looks like a template")
            .stderr_has("{{@name}}");
    }
    let out = env
        .secret([
            "exec",
            "--env",
            "X=a{{@db}}b",
            "--",
            "sh",
            "-c",
            "printf %s \"$X\"",
        ])
        .run();
    out.success();
    assert_eq!(out.stdout(), "atemplated-valueb");
}

#[test]
fn a_link_needs_a_grant_for_its_target_too() {
    let env = Env::with_vault();
    std::fs::write(env.root().join("private-y"), "linked-target-value").unwrap();
    std::fs::write(
        env.home().join("config.toml"),
        format!(
            "[providers.catstore]\ncommand = [\"cat\", \"{}/{{path}}\"]\n",
            env.root().display()
        ),
    )
    .unwrap();
    env.secret(["link", "@mylink", "catstore://private-y"])
        .run()
        .success();
    let grants = env.home().join("grants.toml");
    let only_link = "[[grants]]\nsecret_ref = \"@mylink\"\nconsumer = \"app\"\n";
    std::fs::write(&grants, only_link).unwrap();
    let launch = || {
        env.secret([
            "exec",
            "--consumer",
            "app",
            "--env",
            "V=@mylink",
            "--",
            "sh",
            "-c",
            "printf %s \"$V\"",
        ])
        .run()
    };
    let denied = launch();
    denied.code(125).stderr_has("catstore://private-y");
    assert!(!denied.stdout().contains("linked-target-value"));
    std::fs::write(
        &grants,
        format!(
            "{only_link}\n[[grants]]\nsecret_ref = \"catstore://private-y\"\nconsumer = \"app\"\n"
        ),
    )
    .unwrap();
    let allowed = launch();
    allowed.success();
    assert_eq!(allowed.stdout(), "linked-target-value");
}

/// A value over the kernel's limit for one variable (128 KiB) cannot go in
/// the environment: execve fails with E2BIG. The error names the variable
/// and its size (never the value), says it is too large for the
/// environment, points at `--file`, and exits 126 as any exec failure;
/// `--file` then delivers the same value.
#[test]
fn a_value_too_large_for_the_environment_points_at_file() {
    let env = Env::with_vault();
    let value: String = "big-secret-".repeat(20_000);
    env.add("@big", value.as_bytes());
    for mode in [&[][..], &["--exec"][..]] {
        let mut argv = vec!["exec", "--env", "BIG=@big"];
        argv.extend_from_slice(mode);
        argv.extend(["--", "sh", "-c", "echo RAN"]);
        let out = env.secret(argv).run();
        out.code(126)
            .stderr_has("the value of BIG is too large for the environment (220000 bytes")
            .stderr_has("--file VAR=@handle")
            .no_leak(value.as_bytes());
        assert!(!out.stdout().contains("RAN"), "{mode:?}: the command ran");
        assert!(!out.stderr().contains("execute bit"), "{}", out.stderr());
    }
    env.secret([
        "exec",
        "--file",
        "BIG=@big",
        "--",
        "sh",
        "-c",
        "wc -c < \"$BIG\"",
    ])
    .run()
    .success()
    .stdout_has("220000")
    .no_leak(value.as_bytes());
}

/// A reference whose path a provider's CLI could load as a file or URL
/// (`file:`, `fileb:`, `http:`, `https:`, any case, any number of slashes)
/// is refused before any provider runs: the AWS preset and a configured
/// provider alike. A stand-in `aws` on PATH records each run, and a plain
/// secret id reaches it, so the refusals are not a missing program.
#[test]
fn references_a_cli_would_load_as_a_file_or_url_never_reach_it() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::with_vault();
    let bin = env.root().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let ran = env.root().join("ran");
    for name in ["aws", "catstore"] {
        let program = bin.join(name);
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nprintf '%s %s\\n' {name} \"$*\" >> '{}'\necho '{{\"k\":\"stand-in\"}}'\n",
                ran.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        env.home().join("config.toml"),
        format!(
            "[providers.catstore]\ncommand = [\"{}\", \"{{path}}\"]\n",
            bin.join("catstore").display()
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let exec = |reference: &str| {
        env.secret(["exec", "-e", &format!("K={reference}"), "--", "true"])
            .env("PATH", &path)
            .run()
    };
    for reference in [
        "aws-sm://file:/etc/hostname",
        "aws-sm://FILE:/etc/hostname",
        "aws-sm://fileb:/etc/hostname#k",
        "aws-sm://http:/example.com/x",
        "aws-sm://HttpS:example.com",
        "catstore://file:/etc/hostname",
        "catstore://https:/example.com/x",
    ] {
        let out = exec(reference);
        out.code(125)
            .stderr_has("local file or URL")
            .stderr_has(reference)
            .no_panic();
        assert!(!ran.exists(), "{reference} reached a provider");
    }
    env.secret(["link", "@l", "aws-sm://file:/etc/hostname"])
        .run()
        .code(2)
        .stderr_has("local file or URL");
    exec("aws-sm://prod/file-db#k").success();
    exec("catstore://files/https-key").success();
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "aws secretsmanager get-secret-value --secret-id prod/file-db --query SecretString --output text\n\
         catstore files/https-key\n"
    );
}

/// One secret that does not resolve, four checks: `secret check`, `broker
/// check` and `broker run` exit 1 (the rule of the rest of `secret`),
/// `plugins check` exits 2 (the plugin contract allows only 0 and 2); a
/// malformed file is 2 for both files. docs/broker.md says why.
#[test]
fn a_secret_that_does_not_resolve_exits_as_each_check_documents() {
    let env = Env::with_vault();
    env.secret(["check", "--env", "V=@missing"])
        .run()
        .code(1)
        .stdout_has("missing");
    let broker = env.home().join("broker.toml");
    let route = "[[routes]]\nname = \"api\"\nupstream = \"https://api.example.com\"\nallowed_paths = [\"/*\"]\n";
    std::fs::write(&broker, format!("{route}secret = \"@missing\"\n")).unwrap();
    env.secret(["broker", "check"])
        .run()
        .code(1)
        .stdout_has("@missing");
    env.secret(["broker", "run"])
        .run()
        .code(1)
        .stderr_has("the broker did not start");
    std::fs::write(
        &broker,
        format!("{route}secret = \"@missing\"\nsecrte = 1\n"),
    )
    .unwrap();
    env.secret(["broker", "check"])
        .run()
        .code(2)
        .stderr_has("did you mean \"secret\"");
    let plugins = env.home().join("plugins.toml");
    std::fs::write(
        &plugins,
        "[[plugins]]\nid = \"a\"\ncommand = \"true\"\nsecret_env_refs = { V = \"@missing\" }\n",
    )
    .unwrap();
    env.secret(["plugins", "check"])
        .run()
        .code(2)
        .stdout_has("could not be resolved");
    std::fs::write(&plugins, "[[plugins]]\nid = \"a\"\ncomand = \"true\"\n").unwrap();
    env.secret(["plugins", "check"])
        .run()
        .code(2)
        .stderr_has("did you mean \"command\"");
}

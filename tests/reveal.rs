//! `secret reveal`: a value on a real terminal (a pty), refused to a pipe
//! unless forced, under the grants, audited as a reveal; `secret get`
//! points at reveal and exec without printing anything.

use crate::terminal::Terminal;
use crate::util::{Env, contains};

const VALUE: &[u8] = b"sk-reveal-7f6e5d4c3b";

fn audit_has_reveal(env: &Env, handle: &str, outcome: &str) -> bool {
    std::fs::read_to_string(env.home().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .any(|r| r["action"] == "reveal" && r["handle"] == handle && r["outcome"] == outcome)
}

#[test]
fn reveal_prints_to_a_terminal_with_control_bytes_escaped() {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    // A value that would set the terminal's title if printed raw.
    env.add("@esc", b"before\x1b]0;pwned\x07after");
    let mut term = Terminal::start(&env);
    term.type_keys("secret reveal @k; echo \"rc\"\"=$?\"\n");
    term.wait_screen("rc=0");
    assert!(
        term.screen().contains(std::str::from_utf8(VALUE).unwrap()),
        "{}",
        term.screen()
    );
    term.type_keys("secret reveal @esc; echo \"rc\"\"=$?\" \"do\"\"ne\"\n");
    term.wait_screen("done");
    let screen = term.screen();
    assert!(screen.contains("before\\x1b]0;pwned\\x07after"), "{screen}");
    assert!(
        !screen.contains("\x1b]0;pwned"),
        "a raw escape reached the terminal"
    );
    assert!(audit_has_reveal(&env, "k", "ok"));
    assert!(audit_has_reveal(&env, "esc", "ok"));
    let trail = std::fs::read(env.home().join("audit.jsonl")).unwrap();
    assert!(!contains(&trail, VALUE));
}

#[test]
fn reveal_refuses_a_pipe_unless_forced_and_obeys_the_grants() {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    // The test's stdout is a pipe: refused before anything is unlocked.
    env.secret(["reveal", "@k"])
        .run()
        .code(2)
        .stderr_has("standard output is not a terminal")
        .stderr_has("--force")
        .stderr_has("secret exec --env VAR=@k")
        .no_leak(VALUE);
    assert!(!audit_has_reveal(&env, "k", "ok"));
    // Forced, a pipe gets the exact bytes (no newline added).
    let out = env.secret(["reveal", "@k", "--force"]).run();
    assert_eq!(out.success().stdout, VALUE);
    assert!(audit_has_reveal(&env, "k", "ok"));
    // Grants apply: reveal asks as consumer exec.
    std::fs::write(
        env.home().join("grants.toml"),
        "[[grants]]\nsecret_ref = \"other\"\nconsumer = \"exec\"\n",
    )
    .unwrap();
    env.secret(["reveal", "@k", "--force"])
        .run()
        .code(1)
        .stderr_has("denied: consumer \"exec\" may not have @k")
        .no_leak(VALUE);
    assert!(audit_has_reveal(&env, "k", "denied"));
    env.secret(["reveal", "@missing", "--force"])
        .run()
        .code(1)
        .stderr_has("no secret @missing");
    env.secret(["reveal", "plain", "--force"])
        .run()
        .code(2)
        .stderr_has("not a handle");
}

#[test]
fn get_points_at_reveal_and_exec_and_prints_no_value() {
    let env = Env::with_vault();
    env.add("@k", VALUE);
    let out = env.secret(["get", "@k"]).run();
    out.code(2)
        .stderr_has("secret has no get command")
        .stderr_has("secret reveal @k")
        .stderr_has("secret exec --env VAR=@k -- COMMAND")
        .no_leak(VALUE);
    assert!(out.stdout.is_empty());
    env.secret(["get", "--json", "-x"])
        .run()
        .code(2)
        .stderr_has("secret reveal @name");
}

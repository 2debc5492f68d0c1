//! Scopes: with `--scope a/b` (or SECRET_SCOPE), `@db` is `a/b/db`, then
//! `a/db`, then `db`; the narrowest wins and `inspect` says which answered.

use crate::util::Env;

fn value(env: &Env, scope: Option<&str>) -> String {
    let mut args = vec!["exec", "-e", "V=@db", "--", "sh", "-c", "printf %s \"$V\""];
    if let Some(s) = scope {
        args.splice(0..0, ["--scope", s]);
    }
    let out = env.secret(args).run();
    out.success();
    out.stdout()
}

#[test]
fn the_narrowest_scope_wins() {
    let env = Env::with_vault();
    env.add("@db", b"global-db");
    env.add("@team-a/db", b"team-db");
    env.add("@team-a/ws-1/db", b"workspace-db");
    assert_eq!(value(&env, None), "global-db");
    assert_eq!(value(&env, Some("team-a/ws-1")), "workspace-db");
    assert_eq!(value(&env, Some("team-a/ws-2")), "team-db");
    assert_eq!(value(&env, Some("team-b")), "global-db");
    let via_env = env
        .secret(["exec", "-e", "V=@db", "--", "sh", "-c", "printf %s \"$V\""])
        .env("SECRET_SCOPE", "team-a")
        .run();
    assert_eq!(via_env.stdout(), "team-db");
    assert!(!via_env.stdout().contains("SECRET_SCOPE"));
}

#[test]
fn inspect_says_which_handle_answered() {
    let env = Env::with_vault();
    env.add("@db", b"global-db");
    env.add("@team-a/db", b"team-db");
    let out = env
        .secret(["--scope", "team-a/ws-9", "inspect", "@db"])
        .run();
    out.success()
        .stdout_has("handle:      @team-a/db")
        .stdout_has("asked for:   @db");
    let json = env
        .secret(["--scope", "team-a/ws-9", "inspect", "@db", "--json"])
        .run();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["handle"], "@team-a/db");
    assert_eq!(v["asked_for"], "@db");
    let audit = env
        .secret(["--scope", "team-a", "exec", "-e", "V=@db", "--", "true"])
        .run();
    audit.success();
    env.secret(["audit", "@team-a/db"])
        .run()
        .stdout_has("resolve");
}

#[test]
fn a_missing_handle_names_what_was_asked_and_bad_scopes_are_refused() {
    let env = Env::with_vault();
    env.secret(["--scope", "team-a", "exec", "-e", "V=@nope", "--", "true"])
        .run()
        .code(125)
        .stderr_has("@nope");
    env.secret(["--scope", "bad scope", "list"])
        .run()
        .code(2)
        .stderr_has("not a valid scope");
}

#[test]
fn links_are_checked_and_never_replace_a_secret() {
    let env = Env::with_vault();
    env.add("@k", b"stored-value");
    env.secret(["link", "@k", "vault://secret/app#key"])
        .run()
        .code(2)
        .stderr_has("holds a secret");
    env.secret(["link", "@l", "https://example.com"])
        .run()
        .code(2)
        .stderr_has("unknown reference scheme");
    env.secret(["link", "@l", "vault://secret/app#key"])
        .run()
        .success()
        .stdout_has("linked @l -> vault://secret/app#key");
    env.secret(["link", "@l", "vault://secret/other#key"])
        .run()
        .success();
    let inspect = env.secret(["inspect", "@l"]).run();
    inspect
        .success()
        .stdout_has("points to:   vault://secret/other#key")
        .stdout_has("kind:        link");
    env.secret(["list"])
        .run()
        .success()
        .stdout_has("POINTS TO")
        .stdout_has("vault://secret/other#key");
    env.secret(["rotate", "@l", "--stdin"])
        .stdin(b"x")
        .run()
        .code(2)
        .stderr_has("is a link");
    env.secret(["add", "@m", "--stdin", "--kind", "link"])
        .stdin(b"x")
        .run()
        .code(2)
        .stderr_has("reserved");
}

#[test]
fn writes_act_on_the_handle_the_scope_resolves_to() {
    let env = Env::with_vault();
    env.add("@db", b"global-db");
    env.add("@team-a/db", b"team-db");
    let scoped = |args: &[&str]| {
        let mut all = vec!["--scope", "team-a/ws-1"];
        all.extend_from_slice(args);
        env.secret(all)
    };
    // rotate and rm change the entry exec would use, and say which.
    scoped(&["rotate", "@db", "--stdin"])
        .stdin(b"team-db-2")
        .run()
        .success()
        .stdout_has("rotated @team-a/db");
    assert_eq!(value(&env, Some("team-a/ws-1")), "team-db-2");
    assert_eq!(value(&env, None), "global-db");
    // add under a scope creates SCOPE/name, even where a wider one exists.
    scoped(&["add", "@db", "--stdin"])
        .stdin(b"ws-db")
        .run()
        .success()
        .stdout_has("added @team-a/ws-1/db");
    assert_eq!(value(&env, Some("team-a/ws-1")), "ws-db");
    scoped(&["rm", "@db"])
        .run()
        .success()
        .stdout_has("removed @team-a/ws-1/db");
    assert_eq!(value(&env, Some("team-a/ws-1")), "team-db-2");
    assert_eq!(value(&env, None), "global-db");
}

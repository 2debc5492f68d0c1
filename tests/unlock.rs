//! `secret unlock` caches the vault key in the kernel keyring so launches
//! skip the passphrase; `secret lock` ends that.

use crate::util::Env;

#[test]
fn unlock_lets_launches_skip_the_passphrase_until_lock() {
    let env = Env::with_vault();
    env.add("@k", b"sk-unlocked-value");
    let launch = || {
        env.secret(["exec", "-e", "K=@k", "--", "sh", "-c", "printf %s \"$K\""])
            .env_remove("SECRET_PASSPHRASE")
            .run()
    };
    launch().code(125).stderr_has("no passphrase");

    env.secret(["unlock", "--for", "2m"])
        .env("SECRET_PASSPHRASE", "wrong")
        .run()
        .code(1)
        .stderr_has("wrong passphrase");
    env.secret(["unlock", "--for", "2m"])
        .run()
        .success()
        .stdout_has("unlocked for 2m");
    let out = launch();
    out.success();
    assert_eq!(out.stdout(), "sk-unlocked-value");
    env.secret(["list"])
        .env_remove("SECRET_PASSPHRASE")
        .run()
        .success()
        .stdout_has("@k");

    env.secret(["lock"]).run().success().stdout_has("locked");
    launch().code(125);
    env.secret(["lock"])
        .run()
        .success()
        .stdout_has("not unlocked");
    let audit = env.secret(["audit"]).run();
    audit.stdout_has("unlock").stdout_has("lock");
}

#[test]
fn a_stale_cached_key_is_ignored() {
    let a = Env::with_vault();
    a.secret(["unlock", "--for", "1m"]).run().success();
    // Another vault never matches this cached key (it is looked up by vault id).
    let b = Env::with_vault();
    b.secret(["list"])
        .env_remove("SECRET_PASSPHRASE")
        .run()
        .code(1);
    a.secret(["lock"]).run().success();
}

#[test]
fn durations_are_checked() {
    let env = Env::with_vault();
    env.secret(["unlock", "--for", "soon"])
        .run()
        .code(2)
        .stderr_has("not a duration");
    env.secret(["unlock", "--for", "25h"])
        .run()
        .code(2)
        .stderr_has("at most 24h");
}

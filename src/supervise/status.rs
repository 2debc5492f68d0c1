//! `secret plugins status`: a running supervisor answers on a Unix socket
//! (mode 0600, in a 0700 runtime directory) with a JSON snapshot of every
//! plugin's state; the command prints it as a table or as the JSON. One
//! socket per plugins.toml, named after a hash of its absolute path, so
//! `status FILE` finds the supervisor of FILE. The snapshot holds states,
//! pids and reasons, never a value or an environment.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths::Paths;

/// One plugin in a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PluginStatus {
    pub id: String,
    pub state: String,
    pub pid: Option<i32>,
    /// Seconds since the current run started, while it runs.
    pub uptime_secs: Option<u64>,
    /// Starts after the first.
    pub restarts: u64,
    /// Why it is in its state: the last exit, the failure, the blocker.
    pub reason: Option<String>,
}

/// What `status` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub supervisor_pid: u32,
    pub file: String,
    pub shutting_down: bool,
    pub plugins: Vec<PluginStatus>,
}

/// Where sockets live: `$XDG_RUNTIME_DIR/secret` when set (and
/// SECRET_HOME is not), else the data directory's `run/`.
#[must_use]
pub(crate) fn runtime_dir(paths: &Paths) -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir)
            if !dir.is_empty() && std::env::var_os("SECRET_HOME").is_none_or(|h| h.is_empty()) =>
        {
            PathBuf::from(dir).join("secret")
        }
        _ => paths.data_dir.join("run"),
    }
}

/// The socket of the supervisor running `file`.
#[must_use]
pub(crate) fn socket_path(paths: &Paths, file: &Path) -> PathBuf {
    let absolute = std::fs::canonicalize(file)
        .or_else(|_| std::path::absolute(file))
        .unwrap_or_else(|_| file.to_owned());
    let hash = crate::crypto::sha256_hex(absolute.as_os_str().as_encoded_bytes());
    runtime_dir(paths).join(format!("plugins-{}.sock", &hash[..16]))
}

/// The listening socket; removed when dropped.
pub(crate) struct Server {
    path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on `path`; each connection gets `snapshot()` (JSON). Refuses
/// when another supervisor already answers there.
pub(crate) fn serve(
    path: &Path,
    snapshot: impl Fn() -> Option<String> + Send + 'static,
) -> Result<Server> {
    if let Some(dir) = path.parent() {
        crate::fsio::ensure_private_dir(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(Error::usage_hint(
                format!(
                    "a supervisor is already running this file (its status socket {} answers)",
                    path.display()
                ),
                "see it with: secret plugins status FILE; stop it before starting another",
            ));
        }
        // Left by a supervisor that was killed.
        let _ = std::fs::remove_file(path);
    }
    let io = |e| Error::io(format!("listening on {}", path.display()), e);
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            if let Some(json) = snapshot() {
                let _ = stream.write_all(json.as_bytes());
            }
        }
    });
    Ok(Server {
        path: path.to_owned(),
    })
}

/// Asks the supervisor of `path` for its snapshot; `None` when none
/// answers there.
pub(crate) fn query(path: &Path) -> Result<Option<Snapshot>> {
    let Ok(mut stream) = UnixStream::connect(path) else {
        return Ok(None);
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("reading from {}", path.display()), e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::internal(format!(
            "the supervisor on {} answered something unreadable: {e}",
            path.display()
        ))
    })
}

/// The table `status` prints.
#[must_use]
pub(crate) fn table(s: &Snapshot) -> String {
    let width = s
        .plugins
        .iter()
        .map(|p| p.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let mut out = format!(
        "supervisor pid {} running {}{}\n{:<width$}  {:<9} {:>7} {:>9} {:>8}  NOTE\n",
        s.supervisor_pid,
        s.file,
        if s.shutting_down {
            " (shutting down)"
        } else {
            ""
        },
        "ID",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS"
    );
    for p in &s.plugins {
        let dash = || "-".to_owned();
        out.push_str(&format!(
            "{:<width$}  {:<9} {:>7} {:>9} {:>8}  {}\n",
            p.id,
            p.state,
            p.pid.map_or_else(dash, |x| x.to_string()),
            p.uptime_secs
                .map_or_else(dash, |x| humantime::format_duration(Duration::from_secs(x))
                    .to_string()),
            p.restarts,
            p.reason.as_deref().unwrap_or("")
        ));
        let end = out.trim_end().len();
        out.truncate(end);
        out.push('\n');
    }
    out
}

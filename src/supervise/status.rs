//! `secret plugins status`: a running supervisor answers on a Unix socket
//! (mode 0600, in a 0700 runtime directory) with a JSON snapshot of every
//! plugin's state; the command prints it as a table or as the JSON. One
//! socket per plugins.toml, named after a hash of its absolute path, so
//! `status FILE` finds the supervisor of FILE, and `status` alone finds
//! every supervisor by the sockets in the runtime directory. The snapshot
//! holds states, pids and reasons, never a value or an environment.
//!
//! Both ends are bounded: the supervisor never reads from a connection and
//! sends at most `MAX_ANSWER` bytes (reasons cut, plugins past the cap
//! counted in `omitted`); the client reads at most `MAX_ANSWER` bytes
//! within `ANSWER_WITHIN` in all, then gives up with an error that says so.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Plugins left out to keep the answer under `MAX_ANSWER`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The most a status answer may be, either way.
pub(crate) const MAX_ANSWER: usize = 16 << 20;
/// How long the client waits for the whole answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// The longest reason an answer carries, in bytes.
const MAX_REASON: usize = 1024;
/// Sockets `status` without FILE asks, at most.
const MAX_SUPERVISORS: usize = 256;

impl Snapshot {
    /// The JSON the supervisor sends: at most `max` bytes, with each reason
    /// cut to `MAX_REASON` bytes and, if that is not enough, the plugins
    /// that do not fit left out and counted in `omitted`.
    #[must_use]
    pub(crate) fn encode(mut self, max: usize) -> String {
        for p in &mut self.plugins {
            if let Some(r) = &mut p.reason
                && r.len() > MAX_REASON
            {
                let mut end = MAX_REASON;
                while !r.is_char_boundary(end) {
                    end -= 1;
                }
                r.truncate(end);
                r.push('…');
            }
        }
        let json = serde_json::to_string(&self).unwrap_or_default();
        if json.len() <= max {
            return json;
        }
        let plugins = std::mem::take(&mut self.plugins);
        self.omitted = plugins.len();
        // The rest of the snapshot, with room for the count.
        let mut used = serde_json::to_string(&self).map_or(max, |t| t.len()) + 24;
        for p in plugins {
            let len = serde_json::to_string(&p).map_or(max, |t| t.len()) + 1;
            if used + len > max {
                break;
            }
            used += len;
            self.plugins.push(p);
            self.omitted -= 1;
        }
        serde_json::to_string(&self).unwrap_or_default()
    }
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
    let bytes = read_answer(&mut stream, path, MAX_ANSWER, ANSWER_WITHIN)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::internal(format!(
            "the supervisor on {} answered something unreadable: {e}",
            path.display()
        ))
    })
}

/// Reads until the other end closes: at most `max` bytes, all within
/// `within` (a per-read timeout alone would let a slow drip go on forever).
fn read_answer(
    stream: &mut UnixStream,
    path: &Path,
    max: usize,
    within: Duration,
) -> Result<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timed_out = || {
            Error::internal(format!(
                "the supervisor on {} did not finish answering within {}; try again, or restart it if it stays stuck",
                path.display(),
                crate::duration::format(within)
            ))
        };
        if left.is_zero() {
            return Err(timed_out());
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| Error::io(format!("reading from {}", path.display()), e))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) if out.len() + n > max => {
                return Err(Error::internal(format!(
                    "the supervisor on {} answered more than {} bytes, the most a status answer may be; refusing to read the rest (is something other than secret listening there?)",
                    path.display(),
                    max
                )));
            }
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(Error::io(format!("reading from {}", path.display()), e)),
        }
    }
}

/// The status sockets of running supervisors in the runtime directory:
/// `plugins-*.sock`, sockets owned by this user, sorted by name, at most
/// `MAX_SUPERVISORS`. A socket left by a supervisor that was killed is
/// listed too; `query` finds nobody answering it.
#[must_use]
pub(crate) fn sockets(paths: &Paths) -> Vec<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let Ok(entries) = std::fs::read_dir(runtime_dir(paths)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("plugins-") && name.ends_with(".sock")
        })
        .filter(|e| {
            std::fs::symlink_metadata(e.path())
                .is_ok_and(|m| m.file_type().is_socket() && m.uid() == uid)
        })
        .map(|e| e.path())
        .take(MAX_SUPERVISORS)
        .collect();
    out.sort();
    out
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
                .map_or_else(dash, |x| crate::duration::format(Duration::from_secs(x))),
            p.restarts,
            p.reason.as_deref().unwrap_or("")
        ));
        let end = out.trim_end().len();
        out.truncate(end);
        out.push('\n');
    }
    if s.omitted > 0 {
        out.push_str(&format!(
            "… and {} more plugin{} (left out to keep the answer under {} MiB)\n",
            s.omitted,
            if s.omitted == 1 { "" } else { "s" },
            MAX_ANSWER >> 20
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(i: usize, reason: &str) -> PluginStatus {
        PluginStatus {
            id: format!("p{i}"),
            state: "failed".into(),
            pid: None,
            uptime_secs: None,
            restarts: 0,
            reason: Some(reason.into()),
        }
    }

    fn snapshot(plugins: Vec<PluginStatus>) -> Snapshot {
        Snapshot {
            supervisor_pid: 1,
            file: "/p.toml".into(),
            shutting_down: false,
            plugins,
            omitted: 0,
        }
    }

    #[test]
    fn an_answer_is_capped_and_says_what_it_left_out() {
        let small = snapshot(vec![plugin(0, "exit code 1")]).encode(MAX_ANSWER);
        assert!(!small.contains("omitted"), "{small}");
        let long = snapshot(vec![plugin(0, &"é".repeat(4000))]).encode(MAX_ANSWER);
        let back: Snapshot = serde_json::from_str(&long).expect("json");
        let reason = back.plugins[0].reason.clone().unwrap_or_default();
        assert!(reason.len() <= MAX_REASON + 3 && reason.ends_with('…'));
        let many = snapshot((0..1000).map(|i| plugin(i, "x")).collect()).encode(4096);
        assert!(many.len() <= 4096, "{}", many.len());
        let back: Snapshot = serde_json::from_str(&many).expect("json");
        assert!(!back.plugins.is_empty());
        assert_eq!(back.plugins.len() + back.omitted, 1000);
        assert!(table(&back).contains(&format!("… and {} more plugins", back.omitted)));
    }

    #[test]
    fn the_client_reads_a_bounded_answer_within_a_bounded_time() {
        let path = Path::new("test.sock");
        // Too much: refused once past the cap.
        let (mut ours, mut theirs) = UnixStream::pair().expect("pair");
        let writer = std::thread::spawn(move || {
            let _ = theirs.write_all(&vec![b' '; 1 << 20]);
        });
        let e =
            read_answer(&mut ours, path, 1000, Duration::from_secs(5)).expect_err("over the cap");
        assert!(e.to_string().contains("more than 1000 bytes"), "{e}");
        drop(ours);
        writer.join().expect("writer");
        // Nothing, never closed: refused at the deadline.
        let (mut ours, _theirs) = UnixStream::pair().expect("pair");
        let e =
            read_answer(&mut ours, path, 1000, Duration::from_millis(100)).expect_err("no answer");
        assert!(
            e.to_string()
                .contains("did not finish answering within 100ms"),
            "{e}"
        );
        // An answer that fits.
        let (mut ours, mut theirs) = UnixStream::pair().expect("pair");
        theirs.write_all(b"{}").expect("write");
        drop(theirs);
        assert_eq!(
            read_answer(&mut ours, path, 1000, Duration::from_secs(5)).expect("read"),
            b"{}"
        );
    }
}

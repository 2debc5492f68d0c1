//! What the broker counts and tells: per-route counters (requests, status
//! classes, bytes, denials), the snapshot `secret broker status` prints
//! (asked over the broker's own Unix socket, `GET /broker/status`), and the
//! audit summaries of allowed traffic (the deltas since the last summary),
//! written at least once a minute and at shutdown so the trail stays small
//! under load. Nothing here holds a body, a header or a value.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::audit::Event;
use crate::paths::Paths;

/// One route's counters, kept across reloads (by route name).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub requests: AtomicU64,
    /// 1xx, 2xx, 3xx, 4xx, 5xx of upstream answers and the broker's own.
    pub classes: [AtomicU64; 5],
    pub denied: AtomicU64,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
    /// The counts at the last audit summary.
    summarised: Mutex<[u64; 8]>,
}

impl Stats {
    pub(crate) fn count(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.classes.get(usize::from(status / 100).wrapping_sub(1)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn now(&self) -> [u64; 8] {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            c(&self.requests),
            c(&self.classes[0]),
            c(&self.classes[1]),
            c(&self.classes[2]),
            c(&self.classes[3]),
            c(&self.classes[4]),
            c(&self.bytes_in),
            c(&self.bytes_out),
        ]
    }

    /// The audit summary of the traffic since the last one, if any.
    pub(crate) fn summary(
        &self,
        route: &str,
        secret: Option<&str>,
        reference: Option<&str>,
    ) -> Option<Event> {
        let now = self.now();
        let mut last = self
            .summarised
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let d: Vec<u64> = now
            .iter()
            .zip(last.iter())
            .map(|(n, l)| n.saturating_sub(*l))
            .collect();
        *last = now;
        (d[0] > 0).then(|| Event {
            action: "broker-traffic",
            handle: secret.map(str::to_owned),
            reference: reference.map(str::to_owned),
            consumer: "broker".into(),
            purpose: Some(route.to_owned()),
            outcome: format!(
                "route {route}: {} requests (1xx {}, 2xx {}, 3xx {}, 4xx {}, 5xx {}), {} bytes in, {} bytes out",
                d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
            ),
            fingerprint: None,
        })
    }
}

/// The audit trail's writer: one thread that appends what it is sent, in
/// batches. Denials are queued without waiting (a flood of bad requests
/// must not slow the broker); when the queue is full they are counted as
/// dropped and the count is shown by `status`.
pub(crate) struct Audit {
    tx: std::sync::mpsc::SyncSender<Event>,
    dropped: AtomicU64,
}

/// How many records may wait for the writer.
const AUDIT_QUEUE: usize = 10_000;

impl Audit {
    /// Starts the writer thread; it ends when every `Audit` is dropped.
    pub(crate) fn start(paths: &Paths) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Event>(AUDIT_QUEUE);
        let paths = paths.clone();
        let writer = std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < 1000
                    && let Ok(more) = rx.try_recv()
                {
                    batch.push(more);
                }
                if let Err(e) = crate::audit::append(&paths, &batch) {
                    eprintln!("secret broker: cannot write the audit trail: {e}");
                }
            }
        });
        (
            Self {
                tx,
                dropped: AtomicU64::new(0),
            },
            writer,
        )
    }

    /// Queues a denial without waiting.
    pub(crate) fn deny(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues records that must not be lost (summaries, start, stop).
    pub(crate) fn record(&self, events: Vec<Event>) {
        for event in events {
            let _ = self.tx.send(event);
        }
    }

    #[must_use]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// One route in a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RouteStatus {
    pub name: String,
    pub upstream: String,
    pub secret: String,
    pub requests: u64,
    /// Requests by status class: "1xx" … "5xx".
    pub status: std::collections::BTreeMap<String, u64>,
    pub denied: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `60/m`, when limited.
    pub rate_limit: Option<String>,
    /// Requests that could be made right now under the limit.
    pub rate_available: Option<u32>,
}

/// What `status` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub pid: u32,
    pub file: String,
    pub socket: String,
    pub listen: Option<String>,
    pub uptime_secs: u64,
    pub in_flight: u64,
    /// Denials the audit queue could not take (it was full).
    pub audit_dropped: u64,
    pub routes: Vec<RouteStatus>,
}

impl RouteStatus {
    #[must_use]
    pub(crate) fn from_stats(name: &str, upstream: String, secret: String, stats: &Stats) -> Self {
        let n = stats.now();
        let status = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .zip(&n[1..6])
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        Self {
            name: name.to_owned(),
            upstream,
            secret,
            requests: n[0],
            status,
            denied: stats.denied.load(Ordering::Relaxed),
            bytes_in: n[6],
            bytes_out: n[7],
            rate_limit: None,
            rate_available: None,
        }
    }
}

/// A table for people.
#[must_use]
pub(crate) fn table(s: &Snapshot) -> String {
    let mut out = format!(
        "broker pid {} for {}: up {}s, {} in flight\n  unix socket {}\n",
        s.pid, s.file, s.uptime_secs, s.in_flight, s.socket
    );
    if let Some(listen) = &s.listen {
        let _ = writeln!(out, "  listening on http://{listen}");
    }
    if s.audit_dropped > 0 {
        let _ = writeln!(
            out,
            "  {} denials were not audited (queue full)",
            s.audit_dropped
        );
    }
    let _ = writeln!(
        out,
        "{:<16} {:>9} {:>7} {:>7} {:>7} {:>7} {:>12} {:>12}  RATE LIMIT",
        "ROUTE", "REQUESTS", "2xx", "4xx", "5xx", "DENIED", "BYTES IN", "BYTES OUT"
    );
    for r in &s.routes {
        let class = |k: &str| r.status.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>7} {:>7} {:>7} {:>7} {:>12} {:>12}  {}",
            r.name,
            r.requests,
            class("2xx"),
            class("4xx"),
            class("5xx"),
            r.denied,
            r.bytes_in,
            r.bytes_out,
            match (&r.rate_limit, r.rate_available) {
                (Some(l), Some(a)) => format!("{l} ({a} available)"),
                _ => "-".into(),
            }
        );
    }
    out
}

/// The broker's Unix socket for `file`: in the runtime directory (0700),
/// named after a hash of the file's absolute path.
#[must_use]
pub(crate) fn socket_path(paths: &Paths, file: &Path) -> PathBuf {
    // The supervisor's naming (runtime dir, hash of the absolute path),
    // with our own prefix so a broker and a supervisor of one file differ.
    let plugins = crate::supervise::status::socket_path(paths, file);
    let name = plugins
        .file_name()
        .map(|n| n.to_string_lossy().replacen("plugins-", "broker-", 1))
        .unwrap_or_default();
    plugins.with_file_name(name)
}

//! The tokio runtime of the broker and of the proxy: a current-thread
//! runtime driven by a thread of its own, so the caller's thread stays
//! free (the broker's waits on its control channel, `exec`'s on its child).
//!
//! One thread, not tokio's multi-thread scheduler: both serve one machine's
//! local callers, where one thread keeps up with tens of thousands of
//! requests a second (README, "Performance"), and the multi-thread
//! scheduler is the only user of the maths library (`powf`), which every
//! launch of `secret` would otherwise load.

use std::future::Future;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, EnterGuard, Handle};
use tokio::sync::oneshot;

/// How long stopping waits for the runtime's blocking tasks (name
/// lookups) before it lets their threads go.
const SHUTDOWN: Duration = Duration::from_secs(1);

/// A running runtime. Dropping it stops it: every task still running is
/// dropped, and the driving thread is joined.
pub(crate) struct Runtime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Starts a runtime (I/O and timers) on a new thread called `name`.
    pub(crate) fn start(name: &str) -> std::io::Result<Self> {
        let runtime = Builder::new_current_thread()
            .thread_name(name)
            .enable_io()
            .enable_time()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Spawned tasks run while this thread blocks here.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(SHUTDOWN);
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `task` on the runtime.
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }

    /// Makes the runtime current on this thread while the guard lives
    /// (what turning a std listener into a tokio one needs).
    pub(crate) fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }

    /// Waits on this thread for `future`, which the runtime's thread wakes.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_tasks_run_and_a_dropped_runtime_drops_its_tasks() {
        let runtime = Runtime::start("test-runtime").expect("runtime");
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            tx.send(std::thread::current().name().map(str::to_owned))
                .expect("send");
        });
        let ran_on = rx.recv_timeout(Duration::from_secs(10)).expect("task ran");
        assert_eq!(ran_on.as_deref(), Some("test-runtime"));

        // A timer wakes a future waited for on this thread.
        let slept = runtime.block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            7
        });
        assert_eq!(slept, 7);

        // A task that never ends is dropped with the runtime.
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
        runtime.spawn(async move {
            let _tell_on_drop = dropped_tx;
            std::future::pending::<()>().await;
        });
        drop(runtime);
        assert_eq!(
            dropped_rx.recv_timeout(Duration::from_secs(10)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}

//! Graceful stop of a worker's connections.
//!
//! What hyper-util's `GracefulShutdown` does, for less per poll: its watcher polls a watch
//! channel beside the connection on every wake-up, and that locks a mutex each time. Here a
//! poll costs one atomic load and a waker registration; the lock is taken only when a
//! connection opens or closes, and once at the stop.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

/// A connection that can be asked to finish its request in flight and close.
pub(super) trait Graceful: Future {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Graceful for C {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self)
    }
}

pin_project_lite::pin_project! {
    /// A connection that reads `Drain::stopping` itself (between requests, and while idle:
    /// the stop wakes every watched connection).
    pub(super) struct SelfWatching<F> {
        #[pin]
        pub(super) conn: F,
    }
}

impl<F: Future> Future for SelfWatching<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().conn.poll(cx)
    }
}

impl<F: Future> Graceful for SelfWatching<F> {
    fn graceful_shutdown(self: Pin<&mut Self>) {}
}

/// The open connections of one accept loop.
#[derive(Default)]
pub(super) struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Each open connection's waker, to wake idle ones at the stop.
    open: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
    /// Told when the last connection closes after the stop.
    all_closed: Notify,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<AtomicWaker>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drain {
    /// Follows `conn`: at the stop it is told to finish its request in flight and close.
    pub(super) fn watch<C: Graceful>(&self, conn: C) -> Watched<C> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.shared.open().insert(id, waker.clone());
        Watched {
            conn: Box::pin(conn),
            shared: self.shared.clone(),
            waker,
            id,
            told: false,
        }
    }

    /// Whether the stop has begun (for connections that watch for it themselves).
    pub(super) fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// Tells every open connection to close once its request in flight is answered, and
    /// waits until all have closed.
    pub(super) async fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        for waker in self.shared.open().values() {
            waker.wake();
        }
        loop {
            let closed = self.shared.all_closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.shared.open().is_empty() {
                return;
            }
            closed.await;
        }
    }
}

/// A connection under a `Drain`.
pub(super) struct Watched<C> {
    conn: Pin<Box<C>>,
    shared: Arc<Shared>,
    waker: Arc<AtomicWaker>,
    id: u64,
    told: bool,
}

impl<C: Graceful> Future for Watched<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.told {
            // Registered before the flag is read: a stop after the read wakes us again.
            this.waker.register(cx.waker());
            if this.shared.stopping.load(Ordering::Acquire) {
                this.told = true;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.as_mut().poll(cx)
    }
}

impl<C> Drop for Watched<C> {
    fn drop(&mut self) {
        let last = {
            let mut open = self.shared.open();
            open.remove(&self.id);
            open.is_empty()
        };
        if last && self.shared.stopping.load(Ordering::Acquire) {
            self.shared.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A connection that finishes only once told to shut down.
    struct UntilTold(bool);

    impl Future for UntilTold {
        type Output = &'static str;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<&'static str> {
            if self.0 {
                Poll::Ready("closed")
            } else {
                Poll::Pending
            }
        }
    }

    impl Graceful for UntilTold {
        fn graceful_shutdown(self: Pin<&mut Self>) {
            self.get_mut().0 = true;
        }
    }

    #[tokio::test]
    async fn stop_tells_idle_connections_and_waits_for_them() {
        let drain = Drain::default();
        let a = tokio::spawn(drain.watch(UntilTold(false)));
        let b = tokio::spawn(drain.watch(UntilTold(false)));
        tokio::task::yield_now().await;
        assert!(!a.is_finished() && !b.is_finished());
        tokio::time::timeout(Duration::from_secs(5), drain.stop())
            .await
            .expect("the stop waits for the connections, not forever");
        assert_eq!(a.await.unwrap(), "closed");
        assert_eq!(b.await.unwrap(), "closed");
    }

    #[tokio::test]
    async fn stop_without_connections_returns_at_once() {
        let drain = Drain::default();
        tokio::time::timeout(Duration::from_secs(1), drain.stop())
            .await
            .expect("nothing to wait for");
    }

    #[tokio::test]
    async fn a_connection_opened_after_the_stop_is_told_at_once() {
        let drain = Drain::default();
        drain.stop().await;
        let late = tokio::time::timeout(Duration::from_secs(1), drain.watch(UntilTold(false)));
        assert_eq!(late.await.unwrap(), "closed");
    }
}

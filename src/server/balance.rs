//! Even shares of open connections across the workers.
//!
//! Each worker accepts on its own `SO_REUSEPORT` socket, and the kernel picks the socket by a
//! hash of the connection's addresses. With few long-lived connections (a load balancer's
//! keep-alive pool, a benchmark's 32) that hash leaves one worker with noticeably more than
//! another, and that worker's connections wait for it while the other idles. So a worker that
//! accepts a connection while it holds more than the least busy worker hands the connection to
//! that worker (Envoy's "exact balance", done only when the shares differ). A handed-over
//! connection costs a channel send and a re-registration with the other worker's poller, once
//! per connection, never per request.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::telemetry::OpenConnections;

/// A connection on its way to another worker, already counted there.
pub(super) struct Handover {
    pub(super) stream: std::net::TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) open: Open,
    /// Its place among `server.max_connections`.
    pub(super) permit: tokio::sync::OwnedSemaphorePermit,
}

/// The workers' open-connection counts and the way into each worker.
pub(super) struct Balance {
    open: Arc<OpenConnections>,
    inbox: Box<[mpsc::UnboundedSender<Handover>]>,
}

impl Balance {
    /// A balance over the workers `open` counts, and each worker's inbox.
    pub(super) fn new(
        open: Arc<OpenConnections>,
    ) -> (Arc<Self>, Vec<mpsc::UnboundedReceiver<Handover>>) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..open.workers())
            .map(|_| mpsc::unbounded_channel())
            .unzip();
        let balance = Balance {
            open,
            inbox: senders.into_boxed_slice(),
        };
        (Arc::new(balance), receivers)
    }

    /// The worker that should serve a connection worker `me` just accepted, counted as open
    /// there: `me` unless another worker has fewer open connections.
    pub(super) fn place(self: &Arc<Self>, me: usize) -> (usize, Open) {
        let mut target = me;
        let mut least = self.open.get(me);
        for i in 0..self.open.workers() {
            let n = self.open.get(i);
            if n < least {
                target = i;
                least = n;
            }
        }
        (target, self.opened(target))
    }

    /// Counts a connection as open on `worker` until the returned guard drops.
    pub(super) fn opened(self: &Arc<Self>, worker: usize) -> Open {
        self.open.opened(worker);
        Open {
            balance: self.clone(),
            worker,
        }
    }

    /// Sends a connection to the worker it is counted on. `Err` gives it back when that
    /// worker has stopped.
    pub(super) fn hand_over(&self, conn: Handover) -> Result<(), Handover> {
        self.inbox[conn.open.worker].send(conn).map_err(|e| e.0)
    }

    #[cfg(test)]
    fn counts(&self) -> Vec<usize> {
        (0..self.open.workers()).map(|i| self.open.get(i)).collect()
    }
}

/// An open connection, counted on its worker while it lives.
pub(super) struct Open {
    balance: Arc<Balance>,
    worker: usize,
}

impl Open {
    /// Moves the count to another worker (the connection was handed over).
    pub(super) fn moved_to(self, worker: usize) -> Open {
        self.balance.opened(worker)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.balance.open.closed(self.worker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_worker_with_fewest() {
        let (b, _inboxes) = Balance::new(Arc::new(OpenConnections::new(3)));
        // Worker 0 accepts everything (an unlucky hash): the shares still come out even.
        let mut open = Vec::new();
        for _ in 0..9 {
            let (_, o) = b.place(0);
            open.push(o);
        }
        assert_eq!(b.counts(), vec![3, 3, 3]);
        // A worker keeps what it accepts while it is not above the least busy.
        let (target, o) = b.place(1);
        assert_eq!(target, 1);
        open.push(o);
        assert_eq!(b.counts(), vec![3, 4, 3]);
        // Closed connections leave the count.
        open.clear();
        assert_eq!(b.counts(), vec![0, 0, 0]);
    }

    #[test]
    fn a_moved_count_follows_the_connection() {
        let (b, _inboxes) = Balance::new(Arc::new(OpenConnections::new(2)));
        let o = b.opened(0);
        let o = o.moved_to(1);
        assert_eq!(b.counts(), vec![0, 1]);
        drop(o);
        assert_eq!(b.counts(), vec![0, 0]);
    }
}

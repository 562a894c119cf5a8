//! Idle keep-alive connections parked outside the runtime: what an idle connection costs
//! is its socket and one small entry here, as in nginx (a connection structure and its
//! events), not a task, a future and a runtime registration.
//!
//! A plain-HTTP connection of the fast loop (`fast`) that has had no request for `PARK_AFTER`
//! leaves its task: its socket is taken out of the runtime's poller and put, with its place
//! among `server.max_connections`, its count on the worker and its header-read deadline, in
//! this worker's parking lot. One task per worker waits on the lot's own poller (a mio
//! `Poll`, itself registered with the runtime) and gives a connection its task back as soon
//! as its socket has bytes or an end to read; it also closes those whose deadline passed
//! (`server.header_read_timeout`, looked at every `SWEEP`) and, at the stop, all of them.
//!
//! Parking costs two poller calls and unparking two more and a task: paid once per idle
//! period of a second or more (or per idle period at all, beyond `WAITING` idle connections
//! on the worker), never by a connection whose next request is already there.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use mio::{Interest, Token};
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::balance;
use super::connection::{self, Accepted, Worker};

/// How long a connection waits in its task without a request before it is parked.
pub(super) const PARK_AFTER: Duration = Duration::from_secs(1);
/// Connections per worker that may wait so (a keep-alive pool between two requests, a
/// browser between two clicks); beyond it an idle connection parks at once, so a burst of
/// thousands does not leave their tasks' memory with the process.
pub(super) const WAITING: usize = 128;
/// How often the lot looks for connections past their header-read deadline: two ticks of
/// the coarse clock, so one closes about as punctually as a connection in its task.
const SWEEP: Duration = Duration::from_millis(200);
/// Readiness events taken from the lot's poller per call.
const EVENTS: usize = 256;

/// One worker's parked connections, and the way to park one.
pub(super) struct Parking {
    registry: mio::Registry,
    metrics: Arc<crate::telemetry::Metrics>,
    lot: Mutex<Lot>,
    /// The lot's task has ended (the stop, or its poller failed): no more parking.
    closed: AtomicBool,
}

/// The lot's poller, waited on by its task (`Parking::run`).
pub(super) struct Poller(AsyncFd<mio::Poll>);

#[derive(Default)]
struct Lot {
    /// A connection's token is its index here.
    places: Vec<Option<Parked>>,
    free: Vec<usize>,
    len: usize,
}

/// What a parked connection keeps: everything its task held that outlives a request.
struct Parked {
    stream: mio::net::TcpStream,
    peer: SocketAddr,
    /// Its next request head must have arrived by then (`server.header_read_timeout`).
    until: Instant,
    open: Option<balance::Open>,
    permit: OwnedSemaphorePermit,
}

impl Parking {
    /// A lot and its poller (within a runtime: the poller is registered with it).
    pub(super) fn new(
        metrics: Arc<crate::telemetry::Metrics>,
    ) -> io::Result<(Arc<Parking>, Poller)> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // Deprecated because a caller could pass an `AsRawFd` whose descriptor is closed or
        // replaced while registered (the safe replacement is an `unsafe fn`, which this
        // crate forbids). A `mio::Poll` owns its epoll descriptor for its whole life, and
        // the `AsyncFd` owns the `Poll`: the descriptor stays the same until both are gone.
        #[allow(deprecated)]
        let poller = Poller(AsyncFd::with_interest(poll, tokio::io::Interest::READABLE)?);
        let parking = Parking {
            registry,
            metrics,
            lot: Mutex::new(Lot::default()),
            closed: AtomicBool::new(false),
        };
        Ok((Arc::new(parking), poller))
    }

    /// Whether a connection may park here.
    pub(super) fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }

    fn lot(&self) -> MutexGuard<'_, Lot> {
        self.lot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks an idle connection (its read buffer empty) until its client sends more. When it
    /// cannot be parked, it gets a task again at once.
    pub(super) fn park(&self, w: &Arc<Worker>, conn: Accepted, until: Instant) {
        let Accepted {
            stream,
            peer,
            open,
            permit,
            ..
        } = conn;
        let std = match stream.into_std() {
            Ok(std) => std,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "an idle connection could not leave the runtime");
                return;
            }
        };
        let mut stream = mio::net::TcpStream::from_std(std);
        let mut lot = self.lot();
        let index = lot.free.pop().unwrap_or(lot.places.len());
        let registered = self.is_open()
            && self
                .registry
                .register(&mut stream, Token(index), Interest::READABLE)
                .is_ok();
        if !registered {
            if index < lot.places.len() {
                lot.free.push(index);
            }
            drop(lot);
            resume(w, stream, peer, until, open, permit);
            return;
        }
        let parked = Parked {
            stream,
            peer,
            until,
            open,
            permit,
        };
        if index == lot.places.len() {
            lot.places.push(Some(parked));
        } else {
            lot.places[index] = Some(parked);
        }
        lot.len += 1;
        self.parked(1, true);
    }

    /// Keeps `ssogate_parked_connections`.
    fn parked(&self, n: usize, more: bool) {
        let gauge = &self.metrics.parked_connections;
        if more {
            gauge.fetch_add(n, Ordering::Relaxed);
        } else {
            gauge.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Takes the connection parked under `token` out of the lot and the lot's poller.
    fn unpark(&self, token: Token) -> Option<Parked> {
        let mut lot = self.lot();
        let mut parked = lot.places.get_mut(token.0)?.take()?;
        lot.free.push(token.0);
        lot.len -= 1;
        drop(lot);
        self.parked(1, false);
        let _ = self.registry.deregister(&mut parked.stream);
        Some(parked)
    }

    /// Closes the connections whose next request head is overdue; with `all`, every one.
    fn close_overdue(&self, now: Instant, all: bool) {
        let mut closing = Vec::new();
        {
            let mut lot = self.lot();
            let lot = &mut *lot;
            if lot.len == 0 {
                return;
            }
            for (i, place) in lot.places.iter_mut().enumerate() {
                if place.as_ref().is_some_and(|p| all || p.until <= now) {
                    closing.extend(place.take());
                    lot.free.push(i);
                }
            }
            lot.len -= closing.len();
            self.parked(closing.len(), false);
            if lot.len == 0 {
                // A burst's worth of places goes back to the allocator.
                *lot = Lot::default();
            }
        }
        // Closing a socket takes it out of every poller.
        drop(closing);
    }

    /// Gives parked connections their task back when their socket is readable, until the
    /// stop (which closes them all).
    pub(super) async fn run(self: Arc<Self>, mut poller: Poller, w: Arc<Worker>) {
        let mut events = mio::Events::with_capacity(EVENTS);
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woke = poll_fn(|cx| {
                if w.drain.stopping() {
                    return Poll::Ready(Woke::Stop);
                }
                match poller.0.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut ready)) => {
                        // Cleared before the events are taken: one that comes after the
                        // last take wakes this task again.
                        ready.clear_ready();
                        return Poll::Ready(Woke::Ready);
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Woke::Failed(e)),
                    Poll::Pending => {}
                }
                sweep.poll_tick(cx).map(|_| Woke::Sweep)
            })
            .await;
            match woke {
                Woke::Ready => {
                    if let Err(e) = self.take_ready(&mut poller, &mut events, &w) {
                        self.fail(e, &w);
                        return;
                    }
                }
                Woke::Sweep => self.close_overdue(crate::coarse::now(), false),
                Woke::Stop => {
                    self.closed.store(true, Ordering::Relaxed);
                    self.close_overdue(crate::coarse::now(), true);
                    return;
                }
                Woke::Failed(e) => {
                    self.fail(e, &w);
                    return;
                }
            }
        }
    }

    /// Resumes every connection whose socket is readable; until the poller has no more.
    fn take_ready(
        &self,
        poller: &mut Poller,
        events: &mut mio::Events,
        w: &Arc<Worker>,
    ) -> io::Result<()> {
        loop {
            match poller.0.get_mut().poll(events, Some(Duration::ZERO)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut taken = 0;
            for event in events.iter() {
                taken += 1;
                if let Some(p) = self.unpark(event.token()) {
                    resume(w, p.stream, p.peer, p.until, p.open, p.permit);
                }
            }
            if taken < EVENTS {
                return Ok(());
            }
        }
    }

    /// The lot's poller failed: its connections get their tasks back, and none parks again.
    fn fail(&self, e: io::Error, w: &Arc<Worker>) {
        tracing::warn!(error = %e, "the idle-connection poller failed; idle connections keep their tasks from now on");
        self.closed.store(true, Ordering::Relaxed);
        let places = std::mem::take(&mut *self.lot());
        self.parked(places.len, false);
        for mut p in places.places.into_iter().flatten() {
            let _ = self.registry.deregister(&mut p.stream);
            resume(w, p.stream, p.peer, p.until, p.open, p.permit);
        }
    }
}

enum Woke {
    Ready,
    Sweep,
    Stop,
    Failed(io::Error),
}

/// Gives a connection its task again, back in the runtime's poller.
fn resume(
    w: &Arc<Worker>,
    stream: mio::net::TcpStream,
    peer: SocketAddr,
    until: Instant,
    open: Option<balance::Open>,
    permit: OwnedSemaphorePermit,
) {
    let stream = match TcpStream::from_std(std::net::TcpStream::from(stream)) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "a parked connection could not be registered again");
            return;
        }
    };
    let conn = Accepted {
        stream,
        peer,
        open,
        permit,
        until: Some(until),
    };
    connection::spawn(w, conn);
}

//! `server.idle_timeout` for the connections hyper serves (HTTP/2, and HTTP/1.1 ones handed
//! over by the fast loop): a connection on which no byte moved either way for that long is
//! asked to close, as nginx's `keepalive_timeout` closes an idle HTTP/2 connection. hyper's
//! own header-read timeout covers HTTP/1 only, so without this an HTTP/2 client (or a
//! slowloris sending its preface a byte at a time) could hold a connection for ever.
//!
//! The IO counts its reads and writes; a timer looks every `idle_timeout` whether the count
//! moved since it last looked. So an idle connection closes after one to two timeouts, and
//! traffic costs one relaxed atomic add per read or write, never a clock read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::drain::Graceful;

pin_project_lite::pin_project! {
    /// An IO that counts the reads and writes that moved bytes.
    pub(super) struct Counted<IO> {
        #[pin]
        io: IO,
        moved: Arc<AtomicU64>,
    }
}

impl<IO> Counted<IO> {
    pub(super) fn new(io: IO) -> (Counted<IO>, Arc<AtomicU64>) {
        let moved = Arc::new(AtomicU64::new(0));
        (
            Counted {
                io,
                moved: moved.clone(),
            },
            moved,
        )
    }
}

impl<IO: AsyncRead> AsyncRead for Counted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.moved.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<IO: AsyncWrite> AsyncWrite for Counted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.io.poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.moved.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.io.poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.moved.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

pin_project_lite::pin_project! {
    /// A connection asked to close (gracefully: a request in flight finishes) once its IO
    /// has not moved for `timeout`, and dropped if it has not closed `timeout` later.
    pub(super) struct IdleClosing<C> {
        #[pin]
        conn: C,
        #[pin]
        timer: tokio::time::Sleep,
        moved: Arc<AtomicU64>,
        seen: u64,
        timeout: Duration,
        asked: bool,
    }
}

impl<C> IdleClosing<C> {
    pub(super) fn new(conn: C, moved: Arc<AtomicU64>, timeout: Duration) -> IdleClosing<C> {
        IdleClosing {
            conn,
            timer: tokio::time::sleep(timeout),
            moved,
            seen: 0,
            timeout,
            asked: false,
        }
    }
}

impl<C: Graceful<Output = Result<(), E>>, E: From<io::Error>> Future for IdleClosing<C> {
    type Output = Result<(), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
            return Poll::Ready(done);
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            let now = this.moved.load(Ordering::Relaxed);
            if *this.asked {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "idle connection did not close when asked",
                )
                .into()));
            }
            if now == *this.seen {
                tracing::debug!(after = ?*this.timeout, "closing an idle connection (server.idle_timeout)");
                *this.asked = true;
                this.conn.as_mut().graceful_shutdown();
                if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
                    return Poll::Ready(done);
                }
            }
            *this.seen = now;
            let next = tokio::time::Instant::now() + *this.timeout;
            this.timer.as_mut().reset(next);
        }
        Poll::Pending
    }
}

impl<C: Graceful<Output = Result<(), E>>, E: From<io::Error>> Graceful for IdleClosing<C> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.project().conn.graceful_shutdown();
    }
}

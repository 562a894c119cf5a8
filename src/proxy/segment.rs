//! Writes of at most `MAX_WRITE` bytes: one TCP segment each on loopback.
//!
//! Loopback's MTU is 64 KiB, so its segments carry at most 65,483 bytes. A write a little
//! over that (64 KiB exactly: a body read 64 KiB at a time) leaves a second segment of a few
//! bytes in the same send, and under BBR (a common default on cloud hosts) the kernel paces
//! that one out from a timer: sending 64 KiB writes costs the sender about five times the
//! CPU per byte of 64,000-byte writes (bench/README, session 22). A sidecar talks to its app
//! over loopback, so every body the gateway streams is cut to writes under one segment, in
//! even shares (`share`): the fast loop's own writer, the connection hyper serves
//! (`server::fast`'s handover), and the hyper client's upstream connections
//! (`CappedConnector`). Fewer, larger syscalls buy nothing past this size.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::{MapOk, TryFutureExt};
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};

/// The most bytes one write carries (see the module doc).
pub const MAX_WRITE: usize = 60 * 1024;

/// How much of `len` bytes the next write carries: all of them up to `MAX_WRITE`, else an
/// even share of the fewest writes under it. Even shares, not `MAX_WRITE` and a remainder:
/// a small write right behind a full one is paced out from a timer just as a small second
/// segment is (64 KiB cut as 60 KiB + 4 KiB costs what 64 KiB does; as 2 x 32 KiB, what
/// 60 KiB does).
pub fn share(len: usize) -> usize {
    if len <= MAX_WRITE {
        len
    } else {
        len.div_ceil(len.div_ceil(MAX_WRITE))
    }
}

/// Slices a vectored write passes on at most (hyper queues 16).
const MAX_SLICES: usize = 64;

/// The leading part of `bufs` that holds the next write's `share` of them, the last slice cut.
pub fn capped<'a>(bufs: &'a [IoSlice<'_>], out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
    let bufs = &bufs[..bufs.len().min(MAX_SLICES)];
    let limit = share(bufs.iter().map(|b| b.len()).sum());
    let mut total = 0;
    let mut n = 0;
    for b in bufs {
        if total == limit {
            break;
        }
        let take = b.len().min(limit - total);
        out[n] = IoSlice::new(&b[..take]);
        total += take;
        n += 1;
    }
    n
}

/// Empty slices to fill with `capped`.
pub fn slices<'a>() -> [IoSlice<'a>; MAX_SLICES] {
    [IoSlice::new(&[]); MAX_SLICES]
}

/// An upstream connection of hyper's client whose writes are cut to `MAX_WRITE` bytes.
pub struct Capped<T>(T);

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Capped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Capped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = share(buf.len());
        Pin::new(&mut self.0).poll_write(cx, &buf[..n])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut out = slices();
        let n = capped(bufs, &mut out);
        Pin::new(&mut self.0).poll_write_vectored(cx, &out[..n])
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for Capped<T> {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

/// A connector whose connections are `Capped`.
#[derive(Clone)]
pub struct CappedConnector<C>(pub C);

impl<C> tower_service::Service<Uri> for CappedConnector<C>
where
    C: tower_service::Service<Uri>,
{
    type Response = Capped<C::Response>;
    type Error = C::Error;
    type Future = MapOk<C::Future, fn(C::Response) -> Capped<C::Response>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        self.0
            .call(uri)
            .map_ok(Capped as fn(C::Response) -> Capped<C::Response>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vectored_write_is_cut_into_even_shares_under_max_write() {
        let head = [b'h'; 100];
        let body = vec![b'b'; 64 * 1024];
        let tail = [b't'; 10];
        let bufs = [
            IoSlice::new(&head),
            IoSlice::new(&body),
            IoSlice::new(&tail),
        ];
        let mut out = slices();
        let n = capped(&bufs, &mut out);
        // 65,646 bytes: two even writes, not 60 KiB and a remainder.
        assert_eq!(n, 2);
        assert_eq!(out[0].len(), 100);
        assert_eq!(out[1].len(), 32_823 - 100);
        assert_eq!(share(65_646), 32_823);
        assert_eq!(share(65_536), 32_768);
        assert_eq!(share(MAX_WRITE), MAX_WRITE);
        assert_eq!(share(3 * MAX_WRITE + 1), 3 * MAX_WRITE / 4 + 1);
        // What fits passes whole.
        let small = [IoSlice::new(&head), IoSlice::new(&tail)];
        assert_eq!(capped(&small, &mut out), 2);
        assert_eq!(out[0].len() + out[1].len(), 110);
    }
}

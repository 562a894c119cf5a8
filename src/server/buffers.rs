//! A worker's spare read and write buffers, lent to a connection of the HTTP/1 loop (`fast`)
//! while it reads a request head or writes a response, and given back before it waits idle
//! for its client's next request. So an idle keep-alive connection holds no buffer (as
//! nginx frees its header buffer on a keep-alive connection), and a busy one still gets a
//! buffer without an allocation per request. Never shared between threads: each worker
//! thread keeps its own few.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;

/// Bytes of a read buffer (what one read asks of the socket).
pub(super) const READ_SIZE: usize = 4096;
/// Buffers kept spare per thread and kind: enough for the connections of a worker that are
/// busy at once; beyond that a buffer given back is freed.
const SPARE: usize = 64;
/// A write buffer that grew past this (a long body gathered) is freed, not kept.
const WRITE_KEEP: usize = 16 * 1024;

/// Connections per worker that may wait for their next request with their request state
/// kept (`fast`'s busy period). Beyond it a connection gives its state back at once: what a
/// burst of thousands of keep-alive connections allocates would otherwise stay with the
/// process (the allocator keeps freed memory between live blocks), though all went idle.
pub(super) const LINGERING: usize = 64;

thread_local! {
    static READS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A worker's places for connections that wait in a way that holds memory: with their
/// request state (`LINGERING`), or in their task rather than parked (`park::WAITING`).
pub(super) struct Places(AtomicUsize);

impl Places {
    pub(super) fn new(places: usize) -> Places {
        Places(AtomicUsize::new(places))
    }

    /// A place, held until dropped; `None` when all are taken.
    pub(super) fn take(&self) -> Option<Place<'_>> {
        let free = &self.0;
        free.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .ok()
            .map(|_| Place(free))
    }
}

pub(super) struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// An empty read buffer with room for at least `READ_SIZE` bytes.
pub(super) fn read_buffer() -> BytesMut {
    let mut buf = READS
        .with(|r| r.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(READ_SIZE));
    // A spare one is empty and unshared, so this makes no allocation.
    buf.reserve(READ_SIZE);
    buf
}

/// Takes `buf` back when it is empty (a connection with bytes of a next request keeps them);
/// `buf` is left without an allocation.
pub(super) fn give_back_read(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    let mut buf = std::mem::take(buf);
    // Its space is whole again only when no request head still shares it; one still shared
    // is left to the head (freed with it).
    if !buf.try_reclaim(READ_SIZE) || buf.capacity() > 4 * READ_SIZE {
        return;
    }
    READS.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() < SPARE {
            r.push(buf);
        }
    });
}

/// An empty write buffer.
pub(super) fn write_buffer() -> Vec<u8> {
    WRITES.with(|w| w.borrow_mut().pop()).unwrap_or_default()
}

/// Takes a write buffer back (emptied); one that grew large is freed instead.
pub(super) fn give_back_write(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > WRITE_KEEP {
        return;
    }
    buf.clear();
    WRITES.with(|w| {
        let mut w = w.borrow_mut();
        if w.len() < SPARE {
            w.push(buf);
        }
    });
}

#[cfg(test)]
pub(super) fn spare_reads() -> usize {
    READS.with(|r| r.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_buffer_goes_back_and_comes_out_again_without_an_allocation() {
        let mut buf = read_buffer();
        let at = buf.as_ptr();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = buf.split_to(buf.len()).freeze();
        drop(head);
        give_back_read(&mut buf);
        assert_eq!(buf.capacity(), 0, "the connection keeps no buffer");
        assert_eq!(spare_reads(), 1);
        let again = read_buffer();
        assert_eq!(again.as_ptr(), at, "the same space, whole again");
        assert!(again.capacity() >= READ_SIZE && again.is_empty());
    }

    #[test]
    fn a_buffer_with_bytes_of_the_next_request_stays_with_its_connection() {
        let mut buf = read_buffer();
        buf.extend_from_slice(b"GET /next");
        give_back_read(&mut buf);
        assert_eq!(&buf[..], b"GET /next");
        assert_eq!(spare_reads(), 0);
    }

    #[test]
    fn linger_places_run_out_and_come_back() {
        let places = Places::new(LINGERING);
        let taken: Vec<_> = (0..LINGERING).map(|_| places.take().unwrap()).collect();
        assert!(places.take().is_none(), "all {LINGERING} are taken");
        drop(taken);
        assert!(places.take().is_some());
    }

    #[test]
    fn large_write_buffers_are_freed_and_small_ones_kept() {
        let mut small = write_buffer();
        small.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        give_back_write(small);
        let again = write_buffer();
        assert!(again.is_empty() && again.capacity() > 0);
        give_back_write(vec![0; WRITE_KEEP + 1]);
        assert_eq!(WRITES.with(|w| w.borrow().len()), 0);
    }
}

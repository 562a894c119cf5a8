//! WebSocket handshakes read by the gateway's own HTTP/1.1 loop (`server::fast`, which marks
//! them `RequestBody::Upgrade`). The handshake goes upstream on a connection of its own (never
//! a pooled one); a 101 to the WebSocket asked for comes back with that connection as the
//! response's body (`Tunnel`), and the loop splices it to its client in the connection's own
//! task. Any other answer is an ordinary response. Connections hyper serves keep hyper's
//! upgrade path (`Proxy::forward_client`), as does an `https://` upstream, whose upgraded
//! connection the tunnel then carries.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::Scheme;
use http::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{h1, Body, ClientInfo, Kind, Outgoing, Proxy, ProxyError, RequestBody, Upstream};

/// The upstream's side of a WebSocket, once it has answered 101.
pub struct Tunnel {
    io: Io,
    /// What the upstream sent after its 101 head, read with it: the client's first bytes.
    early: Bytes,
}

enum Io {
    Tcp(TcpStream),
    Hyper(TokioIo<hyper::upgrade::Upgraded>),
}

impl Tunnel {
    pub(super) fn hyper(upgraded: hyper::upgrade::Upgraded) -> Tunnel {
        Tunnel {
            io: Io::Hyper(TokioIo::new(upgraded)),
            early: Bytes::new(),
        }
    }

    /// The bytes the upstream sent right after its 101, to go to the client before anything
    /// read from the tunnel.
    pub fn take_early(&mut self) -> Bytes {
        std::mem::take(&mut self.early)
    }
}

impl Proxy {
    /// Sends a WebSocket handshake the gateway's own loop read upstream (see the module doc).
    pub(super) async fn forward_tunnel(
        &self,
        upstream: &Upstream,
        req: Request<RequestBody>,
        new_path: Option<&str>,
        client: &ClientInfo,
        out: Outgoing<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let pool = match self.inline.get(upstream.index) {
            Some(pool) if upstream.scheme == Scheme::HTTP => pool,
            _ => {
                return self
                    .forward_client(upstream, req, new_path, client, out)
                    .await
            }
        };
        // `RequestBody::Upgrade` marks only a WebSocket handshake (`server::fast::parse`).
        let head = upstream.request_head(&req, new_path, out, client, true);
        drop(req);
        let exchange = h1::upgrade(
            pool,
            &upstream.authority,
            self.connect_timeout,
            &head,
            out.filter,
        );
        match self.inline_answer(upstream, exchange).await? {
            h1::Switched::Yes(head, io, early) => {
                let tunnel = Tunnel {
                    io: Io::Tcp(io),
                    early,
                };
                let mut resp = Response::new(Body {
                    kind: Kind::Tunnel(Box::new(tunnel)),
                    head: Some(head.lines),
                });
                *resp.status_mut() = head.status;
                switching_headers(&mut resp);
                Ok(resp)
            }
            h1::Switched::No(head, body) => Ok(self.inline_response(upstream, head, body)),
        }
    }
}

/// The two lines a 101 to a WebSocket carries to the client (the upstream's own were read as
/// hop-by-hop and left behind).
fn switching_headers(resp: &mut Response<Body>) {
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

impl AsyncRead for Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            Io::Hyper(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            Io::Hyper(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(io) => Pin::new(io).poll_flush(cx),
            Io::Hyper(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            Io::Hyper(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// How much one direction of a tunnel reads at a time (as `tokio::io::copy_bidirectional`).
const RELAY_BUF: usize = 8 * 1024;

/// Carries bytes both ways between `a` and `b` until either side ends (EOF or an error), or
/// `stopping()` says so when polled. Then it returns, and the caller drops both sides: a
/// WebSocket has no use for a half-closed connection, so the first end closes both (as
/// nginx's proxying of upgraded connections does), with none of `copy_bidirectional`'s
/// half-close hand-over (a `shutdown` each way and the wait for the second EOF). Everything
/// read from a side before its end has been written to the other when this returns.
pub async fn relay<A, B>(a: &mut A, b: &mut B, stopping: impl Fn() -> bool)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut ab = Half::new();
    let mut ba = Half::new();
    std::future::poll_fn(|cx| {
        if ab.poll(cx, a, b).is_ready() || ba.poll(cx, b, a).is_ready() || stopping() {
            return Poll::Ready(());
        }
        Poll::Pending
    })
    .await;
}

/// One direction of a `relay`: what was read from one side and is not yet written to the other.
struct Half {
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Written since the last flush (a TLS side holds written bytes until flushed).
    unflushed: bool,
}

impl Half {
    fn new() -> Half {
        Half {
            buf: vec![0; RELAY_BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            unflushed: false,
        }
    }

    /// Moves what `from` has to `to` until one of them would block (`Pending`), or the
    /// direction is over (`Ready`): `from` reached its end, or either side failed.
    fn poll<R, W>(&mut self, cx: &mut Context<'_>, from: &mut R, to: &mut W) -> Poll<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            while self.pos < self.end {
                match Pin::new(&mut *to).poll_write(cx, &self.buf[self.pos..self.end]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(n)) => {
                        self.pos += n;
                        self.unflushed = true;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            let mut read = ReadBuf::new(&mut self.buf);
            match Pin::new(&mut *from).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        // The end: what was written goes out before the caller closes.
                        return match self.flush(cx, to) {
                            Poll::Pending => Poll::Pending,
                            Poll::Ready(_) => Poll::Ready(()),
                        };
                    }
                    self.pos = 0;
                    self.end = n;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {
                    // Nothing more to read for now: what was written must not wait in `to`.
                    return match self.flush(cx, to) {
                        Poll::Ready(Err(())) => Poll::Ready(()),
                        _ => Poll::Pending,
                    };
                }
            }
        }
    }

    fn flush<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut W,
    ) -> Poll<Result<(), ()>> {
        if !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(to).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::relay;

    #[tokio::test]
    async fn a_relay_carries_both_ways_and_ends_at_the_first_end_with_nothing_left_behind() {
        // Pipes far smaller than what crosses them: every write is partial, every side waits.
        let (mut client, mut a) = tokio::io::duplex(64);
        let (mut b, mut upstream) = tokio::io::duplex(64);
        let relay = tokio::spawn(async move { relay(&mut a, &mut b, || false).await });

        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        upstream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");

        // The upstream sends 100 KB and ends: all of it reaches the client, then its end.
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            upstream.write_all(&to_send).await.unwrap();
            upstream.shutdown().await.unwrap();
            upstream
        });
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "the bytes came out changed");
        relay.await.unwrap();
        // The client's side was closed with the upstream's, though the client never ended it.
        let mut upstream = writer.await.unwrap();
        let mut rest = Vec::new();
        upstream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_relay_stops_when_told_though_both_sides_are_open() {
        let (mut client, mut a) = tokio::io::duplex(64);
        let (mut b, _upstream) = tokio::io::duplex(64);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let told = stop.clone();
        let relay = tokio::spawn(async move {
            relay(&mut a, &mut b, || {
                told.load(std::sync::atomic::Ordering::Relaxed)
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!relay.is_finished());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // `stopping` is looked at when the relay is polled (the drain wakes it; here a byte).
        client.write_all(b"x").await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), relay)
            .await
            .expect("the relay did not stop")
            .unwrap();
    }
}

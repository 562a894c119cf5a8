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

//! HTTP/1.1 connections (plain TCP, or TLS that did not negotiate h2) served without hyper
//! while their requests are the common kind: GET or HEAD, HTTP/1.1, no body, no `Expect`, no
//! upgrade but to a WebSocket (whose tunnel this loop splices, `splice`). The loop reads a
//! head, runs the request through the stages and writes the response head and a body that is
//! already there in one write. On the first request it does
//! not take (a body, another method, HTTP/1.0 or /2, a head it cannot parse) it hands the
//! connection, with the bytes already read, to hyper, which serves it from then on exactly as
//! it serves every h2 connection. So everything unusual keeps hyper's behaviour (its 400s,
//! `Expect`, other upgrades, HTTP/2), and what nearly all traffic costs is this loop.
//!
//! Like hyper with `header_read_timeout`, a connection that does not complete a request
//! head within the timeout (an idle keep-alive one included) is closed.
//!
//! An idle keep-alive connection holds little: it waits for its socket to become readable
//! without a buffer (the worker lends one, `buffers`, once bytes arrive), and what a request
//! needs while it is answered (the stages' state, the response being written) lives in a box
//! made for that request, not in the connection's future for its whole life.
//! A plain-TCP one idle for `park::PARK_AFTER` (at once when its worker has many waiting)
//! leaves this loop altogether (`Served::Idle`) and waits parked, without its task (`park`).

use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::buffers::{self, READ_SIZE};
use super::connection::Worker;
use super::drain::Drain;
use super::park::PARK_AFTER;
use super::{handler, Gateway};
use crate::proxy::{segment, Body, ClientInfo, HeaderSpan, Proxy, RequestBody, Tunnel};

mod write;
use write::write_response;

/// A request head larger than this goes to hyper (which has its own, larger, limit). Big
/// enough for a session split over several cookies.
const MAX_HEAD: usize = 64 * 1024;
/// More header lines than this: the request goes to hyper (which refuses more than 100).
const MAX_HEADERS: usize = 64;

/// A client connection as this loop reads it: what is there now, without waiting, and a wait
/// for more.
pub(super) trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether the client reached us over TLS.
    const TLS: bool;

    /// Whether closing needs a shutdown first: TLS sends its close_notify; a TCP stream's
    /// close sends the same FIN a shutdown would, so it saves the system call.
    const SHUTDOWN_TO_CLOSE: bool;

    /// Whether the connection can wait for its next request parked, without its task
    /// (`park`): a plain TCP one, not one with TLS session state.
    const PARKS: bool;

    /// Reads what has arrived into `buf`; `WouldBlock` when nothing has.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize>;

    /// Ready when a read may find more (it may also have read some into `buf`).
    fn poll_more(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<()>>;

    /// Ready when the socket has bytes (or an end) to read, without a buffer to read into:
    /// the wait of an idle connection, after a read found nothing.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// A read came back shorter than asked: nothing more has arrived.
    fn drained(&self) {}
}

impl Conn for TcpStream {
    const TLS: bool = false;
    const SHUTDOWN_TO_CLOSE: bool = false;
    const PARKS: bool = true;

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        TcpStream::try_read_buf(self, buf)
    }

    fn poll_more(&mut self, cx: &mut Context<'_>, _: &mut BytesMut) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn drained(&self) {
        crate::proxy::drained(self)
    }
}

/// rustls has no readiness of its own: what it decrypted may already be waiting in it, and a
/// read may have to wait for the socket either way. So both reads are reads.
impl Conn for TlsStream<TcpStream> {
    const TLS: bool = true;
    const SHUTDOWN_TO_CLOSE: bool = true;
    const PARKS: bool = false;

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let waker = futures_util::task::noop_waker_ref();
        match read_tls(self, &mut Context::from_waker(waker), buf) {
            Poll::Ready(read) => read,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn poll_more(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<()>> {
        read_tls(self, cx, buf).map_ok(|_| ())
    }

    /// A read that found nothing left rustls without plaintext and the socket without bytes
    /// (tokio-rustls reads the socket until it would block), so the socket says when to
    /// read again.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }
}

/// One read of decrypted bytes onto the end of `buf`.
fn read_tls(
    io: &mut TlsStream<TcpStream>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// How a connection left this loop.
pub(super) enum Served<S> {
    /// Closed, or served to its end by hyper.
    Ended,
    /// Idle past its park time, its read buffer empty: to be parked (`park`) until its next
    /// request, whose head is due by then.
    Idle(S, Instant),
}

/// Serves `stream` until the client closes, the header-read timeout or the drain; hands it
/// to hyper on the first request this loop does not take. `until`: when the first request
/// head is due, for a connection resumed from the parking lot.
pub(super) async fn serve<S: Conn>(
    w: &Worker,
    mut io: S,
    peer: SocketAddr,
    until: Option<Instant>,
) -> Served<S> {
    let gw = &w.gw;
    let link = Link {
        gw,
        proxy: &w.proxy,
        drain: &w.drain,
        lingering: &w.lingering,
        waiting: &w.waiting,
        client: gw.client_info(peer, S::TLS),
        limits: HeadLimits {
            bytes: gw.config.server.max_request_head.min(MAX_HEAD),
            headers: gw.config.server.max_request_headers.min(MAX_HEADERS),
        },
        header_timeout: gw.config.server.header_read_timeout,
        peer,
        parks: S::PARKS && w.parking.as_ref().is_some_and(|p| p.is_open()),
    };
    // No allocation until the client's bytes arrive (see `buffers`).
    let mut rbuf = BytesMut::new();
    let now = crate::coarse::now();
    let mut until = until.unwrap_or(now + link.header_timeout);
    // A connection that sends nothing for `PARK_AFTER` parks (a resumed one again).
    let mut park_at = link.parks.then_some(now + PARK_AFTER);
    // Until its first read reaches the socket, a connection (new, or resumed because its
    // socket became readable) does not know whether bytes wait: the runtime has not said
    // yet. Parked then, it would be woken at once, and again.
    let mut first = true;
    loop {
        // Waiting in the task for the park time takes one of the worker's places; with
        // none left the connection parks as soon as it is idle.
        let place = (!std::mem::take(&mut first)
            && park_at.is_some_and(|p| p > crate::coarse::now()))
        .then(|| link.waiting.take());
        if let Some(None) = place {
            park_at = Some(crate::coarse::now());
        }
        let next = read_request(
            &mut io,
            &mut rbuf,
            until,
            Idle::GiveBack { park_at },
            &link.limits,
            link.drain,
        )
        .await;
        drop(place);
        let next = match next {
            // Boxed for the busy period: the stages' state is most of a connection's
            // future, and an idle connection need not carry it.
            Next::Request(req, keep_alive) => {
                match Box::pin(busy(&link, &mut io, &mut rbuf, req, keep_alive)).await {
                    Busy::Quiet {
                        until: next_until,
                        park_at: next_park,
                    } => {
                        until = next_until;
                        park_at = next_park.filter(|_| link.parks);
                        continue;
                    }
                    Busy::Ended(next) => next,
                }
            }
            Next::Park => return Served::Idle(io, until),
            next => next,
        };
        match next {
            Next::Handoff => {
                let io = Rewind {
                    pre: rbuf.freeze(),
                    inner: io,
                };
                // Boxed: hyper's connection state would otherwise size every connection's
                // future, handed over or not.
                let serving = super::serve_connection(
                    &w.builder,
                    &w.drain,
                    gw.clone(),
                    w.proxy.clone(),
                    io,
                    peer,
                    S::TLS,
                );
                Box::pin(serving).await;
            }
            Next::BadRequest => Box::pin(answer_bad_request(&mut io)).await,
            Next::Request(..) | Next::Close | Next::Quiet | Next::Partial | Next::Park => {}
        }
        return Served::Ended;
    }
}

/// How long a connection keeps its request state and buffers after an answer, while one of
/// its worker's few places for that is free (`buffers::LingerPlaces`): a client that asks
/// again within it (a browser loading a page, a busy keep-alive pool) pays no allocation per
/// request; one quiet for longer holds only the idle loop. A second, so the wait stays on
/// the coarse clock (`coarse`).
const LINGER: Duration = Duration::from_secs(1);

/// What the requests of one connection share.
struct Link<'a> {
    gw: &'a Gateway,
    proxy: &'a Proxy,
    drain: &'a Drain,
    lingering: &'a buffers::Places,
    waiting: &'a buffers::Places,
    client: ClientInfo,
    limits: HeadLimits,
    header_timeout: Duration,
    peer: SocketAddr,
    /// Whether the connection parks when idle (`park`).
    parks: bool,
}

/// How a busy period ended.
// `Ended` never holds a request (the busy period answers those): not worth a box.
#[allow(clippy::large_enum_variant)]
enum Busy {
    /// No request for now: the next head must still arrive by `until`; the connection parks
    /// if none has begun by `park_at`.
    Quiet {
        until: Instant,
        park_at: Option<Instant>,
    },
    /// The connection is done with this loop (closed, or one for hyper, or a bad head).
    Ended(Next),
}

/// Answers `req` and every request that follows within `LINGER` of the previous answer,
/// with one write buffer.
async fn busy<S: Conn>(
    link: &Link<'_>,
    io: &mut S,
    rbuf: &mut BytesMut,
    mut req: Request<RequestBody>,
    mut keep_alive: bool,
) -> Busy {
    let mut wbuf = buffers::write_buffer();
    let ended = loop {
        if !answer(link, io, rbuf, &mut wbuf, req, keep_alive).await {
            break Busy::Ended(Next::Close);
        }
        let now = crate::coarse::now();
        let until = now + link.header_timeout;
        let Some(_place) = link.lingering.take() else {
            break Busy::Quiet {
                until,
                park_at: Some(now + PARK_AFTER),
            };
        };
        let linger = until.min(now + LINGER);
        match read_request(io, rbuf, linger, Idle::Keep, &link.limits, link.drain).await {
            Next::Request(next, next_keep_alive) => (req, keep_alive) = (next, next_keep_alive),
            // Quiet for `LINGER` already: it parks as soon as it is idle.
            Next::Quiet => {
                break Busy::Quiet {
                    until,
                    park_at: Some(crate::coarse::now()),
                }
            }
            next => break Busy::Ended(next),
        }
    };
    buffers::give_back_write(wbuf);
    ended
}

/// Answers one request; returns whether the connection stays open for the next.
async fn answer<S: Conn>(
    link: &Link<'_>,
    io: &mut S,
    rbuf: &mut BytesMut,
    wbuf: &mut Vec<u8>,
    req: Request<RequestBody>,
    keep_alive: bool,
) -> bool {
    let head_request = req.method() == Method::HEAD;
    let mut resp = handler::handle(link.gw, link.proxy, &link.client, req).await;
    if let Some(tunnel) = resp.body_mut().take_tunnel() {
        // Boxed: a rare path, which would otherwise size every request's future.
        Box::pin(splice(link, io, rbuf, wbuf, resp, tunnel)).await;
        return false;
    }
    let keep_alive = keep_alive && !link.drain.stopping();
    match write_response(io, wbuf, resp, head_request, keep_alive).await {
        Ok(true) => true,
        Ok(false) => {
            if S::SHUTDOWN_TO_CLOSE {
                let _ = io.shutdown().await;
            }
            false
        }
        Err(e) => {
            tracing::debug!(peer = %link.peer, error = %e, "connection ended with an error");
            false
        }
    }
}

/// A WebSocket the upstream accepted (101): the head goes to the client, then bytes flow both
/// ways until either side closes, or the drain begins (as a tunnel hyper upgraded would end
/// with the process). The connection ends with it.
async fn splice<S: Conn>(
    link: &Link<'_>,
    io: &mut S,
    rbuf: &mut BytesMut,
    wbuf: &mut Vec<u8>,
    resp: Response<Body>,
    mut tunnel: Tunnel,
) {
    if write_response(io, wbuf, resp, false, true).await.is_err() {
        return;
    }
    // What the upstream sent right after its head, and what the client sent right after its
    // handshake, go first.
    let early = tunnel.take_early();
    if !early.is_empty() && io.write_all(&early).await.is_err() {
        return;
    }
    if !rbuf.is_empty() {
        if tunnel.write_all(rbuf).await.is_err() {
            return;
        }
        rbuf.clear();
    }
    buffers::give_back_read(rbuf);
    let drain = link.drain;
    crate::proxy::relay(io, &mut tunnel, || drain.stopping()).await;
}

async fn answer_bad_request<S: Conn>(io: &mut S) {
    let mut wbuf = Vec::new();
    let _ = write_response(io, &mut wbuf, bad_request(), false, false).await;
    let _ = io.shutdown().await;
}

// The request is the common variant: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A request this loop takes, and whether the client keeps the connection open.
    Request(Request<RequestBody>, bool),
    /// Not one for this loop: hyper takes the connection over.
    Handoff,
    /// A head this loop cannot turn into a request although it parsed (a bad target).
    BadRequest,
    /// The client closed, or the drain began while idle.
    Close,
    /// The deadline passed before a complete head.
    Quiet,
    /// Idle past its `park_at`: to be parked.
    Park,
    /// (Within `read_request`: more may be read.)
    Partial,
}

/// What a wait for the next request does with an empty read buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// Gives it back to the worker (see `buffers`); with `park_at`, the connection is
    /// to be parked when it is still idle then.
    GiveBack { park_at: Option<Instant> },
    /// Keeps it: a next request is likely soon.
    Keep,
}

/// Where this loop stops and hands a request to hyper, which refuses what is over
/// `server.max_request_head` / `max_request_headers` with 431.
struct HeadLimits {
    bytes: usize,
    headers: usize,
}

/// Reads the next request head, until `until`.
async fn read_request<S: Conn>(
    io: &mut S,
    buf: &mut BytesMut,
    until: Instant,
    idle_buffer: Idle,
    limits: &HeadLimits,
    drain: &Drain,
) -> Next {
    let mut deadline = None;
    // Whether `deadline` is the park time (before `until`) rather than `until`.
    let mut park_at = match idle_buffer {
        Idle::GiveBack { park_at } => park_at.filter(|p| *p < until),
        Idle::Keep => None,
    };
    loop {
        if !buf.is_empty() {
            match parse(buf, limits.headers) {
                Parsed::Request(req, keep_alive) => return Next::Request(req, keep_alive),
                Parsed::Handoff => return Next::Handoff,
                Parsed::BadRequest => return Next::BadRequest,
                Parsed::Partial if buf.len() >= limits.bytes => return Next::Handoff,
                Parsed::Partial => {}
            }
        }
        if buf.capacity() == 0 {
            *buf = buffers::read_buffer();
        }
        buf.reserve(READ_SIZE);
        let asked = buf.capacity() - buf.len();
        match io.try_read_buf(buf) {
            Ok(0) => return Next::Close,
            Ok(n) if n < asked => {
                io.drained();
                continue;
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Next::Close,
        }
        let idle = buf.is_empty();
        if idle && drain.stopping() {
            return Next::Close;
        }
        // Between requests: the buffer goes back to the worker while the client thinks.
        let bufferless = idle && idle_buffer != Idle::Keep;
        if bufferless {
            buffers::give_back_read(buf);
            if park_at.is_some_and(|p| p <= crate::coarse::now()) {
                return Next::Park;
            }
        }
        let sleep =
            deadline.get_or_insert_with(|| crate::coarse::sleep_until(park_at.unwrap_or(until)));
        let ready = poll_fn(|cx| {
            let more = if bufferless {
                io.poll_readable(cx)
            } else {
                io.poll_more(cx, buf)
            };
            if let Poll::Ready(r) = more {
                return Poll::Ready(r.map_or(Next::Close, |()| Next::Partial));
            }
            if idle && drain.stopping() {
                return Poll::Ready(Next::Close);
            }
            Pin::new(&mut *sleep).poll(cx).map(|()| Next::Quiet)
        })
        .await;
        match ready {
            Next::Partial => {}
            // The park time passed; mid-head, the connection waits on until `until`.
            Next::Quiet if park_at.is_some() => {
                if buf.is_empty() {
                    return Next::Park;
                }
                park_at = None;
                deadline = Some(crate::coarse::sleep_until(until));
            }
            ready => return ready,
        }
    }
}

#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    Request(Request<RequestBody>, bool),
    Partial,
    Handoff,
    BadRequest,
}

/// Parses a request head at the start of `buf`, taking it out of the buffer when it is one
/// this loop takes; anything else (more than `max_headers` lines too) is left in place for
/// hyper.
pub(crate) fn parse(buf: &mut BytesMut, max_headers: usize) -> Parsed {
    if buf.len() >= 24 && buf.starts_with(b"PRI * HTTP/2.0") {
        return Parsed::Handoff;
    }
    // Header positions in `buf`, so the values can share the head's bytes once it is frozen.
    let mut spans = [HeaderSpan::default(); MAX_HEADERS];
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let (len, head_method, target, count, keep_alive, handshake) = {
        let mut req = httparse::Request::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut req,
            buf,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Parsed::Partial,
            Err(_) => return Parsed::Handoff,
        };
        let head_method = match req.method {
            Some("GET") => false,
            Some("HEAD") => true,
            _ => return Parsed::Handoff,
        };
        if req.version != Some(1) || req.headers.len() > max_headers {
            return Parsed::Handoff;
        }
        let Some(target) = req.path.map(str::as_bytes) else {
            return Parsed::Handoff;
        };
        let start = target.as_ptr() as usize - buf.as_ptr() as usize;
        let target = start..start + target.len();
        let mut keep_alive = true;
        // A WebSocket handshake (RFC 6455 4.1) is this loop's: one `Upgrade: websocket` and
        // a `Connection: upgrade` on a GET. Any other upgrade goes to hyper.
        let (mut upgrades, mut websocket, mut connection_upgrade) = (0, false, false);
        for (span, h) in spans.iter_mut().zip(req.headers.iter()) {
            let name = h.name.as_bytes();
            // Whatever frames a body or changes the protocol is hyper's to handle. A
            // `Content-Length: 0` (some clients send it on every GET) frames no body.
            if (name.eq_ignore_ascii_case(b"content-length") && h.value.trim_ascii() != b"0")
                || name.eq_ignore_ascii_case(b"transfer-encoding")
                || name.eq_ignore_ascii_case(b"expect")
            {
                return Parsed::Handoff;
            }
            if name.eq_ignore_ascii_case(b"upgrade") {
                upgrades += 1;
                websocket = h.value.trim_ascii().eq_ignore_ascii_case(b"websocket");
            }
            if name.eq_ignore_ascii_case(b"connection") {
                for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        connection_upgrade = true;
                    }
                }
            }
            *span = HeaderSpan::of(buf.as_ptr(), h);
        }
        let handshake = upgrades > 0 || connection_upgrade;
        if handshake && !(upgrades == 1 && websocket && connection_upgrade && !head_method) {
            return Parsed::Handoff;
        }
        (
            len,
            head_method,
            target,
            req.headers.len(),
            keep_alive,
            handshake,
        )
    };

    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(target)) else {
        return Parsed::BadRequest;
    };
    let mut map = HeaderMap::with_capacity(count);
    for span in &spans[..count] {
        let Ok(name) = HeaderName::from_bytes(span.name(&head)) else {
            return Parsed::BadRequest;
        };
        let Ok(value) = HeaderValue::from_maybe_shared(head.slice(span.value_range())) else {
            return Parsed::BadRequest;
        };
        map.append(name, value);
    }
    let mut req = Request::new(if handshake {
        RequestBody::Upgrade
    } else {
        RequestBody::Empty
    });
    *req.method_mut() = if head_method {
        Method::HEAD
    } else {
        Method::GET
    };
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = map;
    Parsed::Request(req, keep_alive)
}

/// The gateway's "malformed address" page (400), as for a path that cannot be normalised.
fn bad_request() -> Response<Body> {
    super::pages::GatewayError::BadPath(crate::policy::PathError::BadTarget)
        .into_response(false, None)
}

/// The connection for hyper, with the bytes this loop read first.
struct Rewind<S> {
    pre: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Writes are cut to one loopback segment each (`proxy::segment`), as this loop's own are.
impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = segment::share(buf.len());
        Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut out = segment::slices();
        let n = segment::capped(bufs, &mut out);
        Pin::new(&mut self.inner).poll_write_vectored(cx, &out[..n])
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &[u8]) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(raw);
        (parse(&mut buf, MAX_HEADERS), buf)
    }

    #[test]
    fn plain_gets_and_heads_are_taken_with_the_rest_left_in_the_buffer() {
        let (p, rest) =
            parsed(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next");
        let Parsed::Request(req, keep_alive) = p else {
            panic!("taken")
        };
        assert!(keep_alive);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), "/a");
        assert_eq!(req.uri().query(), Some("b=1"));
        assert_eq!(req.headers()["host"], "x");
        assert_eq!(req.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(
            &rest[..],
            b"GET /next",
            "a pipelined request stays for the next turn"
        );

        let (p, _) = parsed(b"HEAD / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n");
        let Parsed::Request(req, keep_alive) = p else {
            panic!("taken")
        };
        assert_eq!((req.method(), keep_alive), (&Method::HEAD, false));

        assert!(matches!(
            parsed(b"GET / HTTP/1.1\r\nHost: x\r\n").0,
            Parsed::Partial
        ));
        assert!(
            matches!(
                parsed(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0,
                Parsed::Request(..)
            ),
            "a zero length frames no body"
        );
    }

    #[test]
    fn anything_unusual_goes_to_hyper_untouched() {
        for raw in [
            &b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"[..],
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"HEAD /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
        ] {
            let (p, rest) = parsed(raw);
            assert!(matches!(p, Parsed::Handoff), "{raw:?}");
            assert_eq!(&rest[..], raw, "left in place for hyper: {raw:?}");
        }
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS + 1 {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(parsed(&many).0, Parsed::Handoff));
    }

    #[test]
    fn a_websocket_handshake_is_taken_and_marked_with_what_follows_it_left_in_the_buffer() {
        let raw = b"GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
                    Sec-WebSocket-Version: 13\r\n\r\nframe";
        let (p, rest) = parsed(raw);
        let Parsed::Request(req, keep_alive) = p else {
            panic!("not taken");
        };
        assert!(matches!(req.body(), RequestBody::Upgrade));
        assert!(keep_alive);
        assert_eq!(req.headers()["upgrade"], "WebSocket");
        assert_eq!(&rest[..], b"frame");
        // A plain GET is not marked.
        let (p, _) = parsed(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(p, Parsed::Request(req, _) if matches!(req.body(), RequestBody::Empty)));
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_read_buffer() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let limits = HeadLimits {
            bytes: MAX_HEAD,
            headers: MAX_HEADERS,
        };
        let drain = Drain::default();
        let until = || crate::coarse::now() + Duration::from_secs(5);
        let read = Idle::GiveBack { park_at: None };
        let mut buf = BytesMut::new();

        client.write_all(b"GET /a HTTP/1.1\r\n\r\n").await.unwrap();
        let first = read_request(&mut server, &mut buf, until(), read, &limits, &drain).await;
        assert!(matches!(first, Next::Request(..)));
        drop(first); // answered: its head no longer shares the buffer

        // Waiting for the client's next request.
        let waited = tokio::time::timeout(
            Duration::from_millis(50),
            read_request(&mut server, &mut buf, until(), read, &limits, &drain),
        )
        .await;
        assert!(waited.is_err(), "no request yet");
        assert_eq!(buf.capacity(), 0, "the idle connection keeps no buffer");
        assert_eq!(buffers::spare_reads(), 1, "it went back to the worker");

        client.write_all(b"GET /b HTTP/1.1\r\n\r\n").await.unwrap();
        let Next::Request(req, _) =
            read_request(&mut server, &mut buf, until(), read, &limits, &drain).await
        else {
            panic!("the next request is read")
        };
        assert_eq!(req.uri().path(), "/b");
        assert_eq!(buffers::spare_reads(), 0, "a spare buffer was lent for it");
    }
}

//! HTTP/1.1 to plain-`http://` upstreams for requests without a body (GET and HEAD, nearly
//! all traffic), done in the request's own task: the request head is written and the
//! response head read on a pooled connection right here, and a body that arrived with the
//! head goes back as one frame. No connection task, no channels between tasks, no pool
//! checkout future: on a loopback upstream this is most of what a proxied request costs in
//! user space. A WebSocket handshake from the gateway's own loop goes upstream here too, on a
//! connection of its own (`upgrade`). Everything else (bodies, upgrades on connections hyper
//! serves, TLS upstreams) goes through hyper's client.
//!
//! Framing follows RFC 9112 section 6.3: no body for HEAD, 1xx, 204 and 304; chunked when
//! Transfer-Encoding ends in chunked; Content-Length otherwise; else until the upstream closes.
//! A connection is reused only after its whole response was read with nothing after it, not
//! after a HEAD, and only while it stays quiet in the pool (no bytes, not closed: checked when
//! it is taken).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::identity::InboundFilter;

pub(crate) use super::framing::{decode, Chunk, Framing};
pub use super::span::HeaderSpan;

/// A response head larger than this is refused (hyper's client allows about the same).
pub(super) const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// Bytes asked of the socket per read of a body being streamed.
const READ_SIZE: usize = 32 * 1024;
/// Bytes asked of the socket per read of a response head (and what came with it): a page,
/// as nginx's `proxy_buffer_size`. Most responses of a busy app fit whole; a burst of
/// hundreds of new upstream connections does not take 32 KiB each.
const HEAD_READ_SIZE: usize = 4 * 1024;
/// Idle pooled connections that keep their read buffer: the most recently used ones, which
/// the next requests take. The others wait without one (it is freed once the response that
/// shares it is written).
const KEEP_BUFFERED: usize = 16;

/// Idle keep-alive connections to one upstream, most recently used last.
pub(super) struct Pool {
    /// Boxed, so a response body holding one stays small (it is moved several times per
    /// request) and the box goes back and forth with the connection, never reallocated.
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<Conn>>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// The task that closes connections idle past `idle_timeout` runs (started with the
    /// first connection put back, on that worker's runtime).
    reaping: std::sync::atomic::AtomicBool,
}

struct Conn {
    io: TcpStream,
    /// Read but not yet used; empty whenever the connection is idle.
    buf: BytesMut,
    idle_since: Instant,
}

/// Why an exchange failed, before any of the response reached the client.
#[derive(Debug)]
pub(crate) enum Failure {
    Connect(io::Error),
    ConnectTimeout(Duration),
    Io(io::Error),
    Closed,
    Invalid(&'static str),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::ConnectTimeout(after) => write!(f, "no connection within {after:?}"),
            Failure::Io(e) => write!(f, "connection error: {e}"),
            Failure::Closed => f.write_str("the connection closed before a complete response"),
            Failure::Invalid(what) => write!(f, "invalid response: {what}"),
        }
    }
}

impl Pool {
    pub(super) fn new(max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
            reaping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Closes the connections idle for `idle_timeout` or longer: an app closes its end of an
    /// idle keep-alive connection after a while, and ours would sit in CLOSE_WAIT, holding a
    /// descriptor, until the next request took it.
    fn reap(&self) {
        let now = crate::coarse::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Most recently used last: the expired ones are at the front.
        let expired = idle
            .iter()
            .take_while(|c| now.saturating_duration_since(c.idle_since) >= self.idle_timeout)
            .count();
        idle.drain(..expired);
    }

    /// Starts the reaper on the current runtime, once; it ends with the pool.
    fn start_reaping(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.reaping.load(Ordering::Relaxed) || self.reaping.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reaping.store(false, Ordering::Relaxed);
            return;
        };
        let pool = Arc::downgrade(self);
        let every = (self.idle_timeout / 2).max(Duration::from_millis(250));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match pool.upgrade() {
                    Some(pool) => pool.reap(),
                    None => return,
                }
            }
        });
    }

    /// The most recently used idle connection that is still quiet (`quiet`).
    fn take(&self) -> Option<Box<Conn>> {
        loop {
            let conn = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let conn = idle.pop()?;
                let waited = crate::coarse::now().saturating_duration_since(conn.idle_since);
                if waited >= self.idle_timeout {
                    // The rest waited longer still.
                    idle.clear();
                    return None;
                }
                conn
            };
            match quiet(&conn.io) {
                Quiet::Yes => return Some(conn),
                Quiet::Closed => {}
                Quiet::Unasked => tracing::warn!(
                    "the upstream sent bytes no request asked for on an idle connection (a body \
                     after a HEAD, a 204 or its Content-Length?); closed it rather than read them \
                     as the next request's response"
                ),
            }
        }
    }

    fn put(self: &Arc<Self>, mut conn: Box<Conn>) {
        self.start_reaping();
        conn.idle_since = crate::coarse::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
            // Most recently used last: the one now just outside the kept few gives its
            // buffer up (those further in front did when they were here).
            if let Some(cold) = idle.len().checked_sub(KEEP_BUFFERED + 1) {
                idle[cold].buf = BytesMut::new();
            }
        }
    }

    /// Sends `head` (a complete request head; the request has no body) and reads the
    /// response head. A pooled connection that turns out to be closed by the upstream is
    /// replaced by a new one once: the request is a GET or HEAD, so sending it again is safe.
    pub(super) async fn exchange(
        self: &Arc<Self>,
        authority: &Authority,
        connect_timeout: Duration,
        head: &[u8],
        head_request: bool,
        filter: &InboundFilter,
    ) -> Result<(Head, InlineBody), Failure> {
        loop {
            let (mut conn, reused) = match self.take() {
                Some(conn) => (conn, true),
                None => (connect(authority, connect_timeout).await?, false),
            };
            if let Err(e) = conn.io.write_all(head).await {
                if reused {
                    continue;
                }
                return Err(Failure::Io(e));
            }
            match read_head(&mut conn, head_request, false, filter).await {
                Err(Failure::Closed | Failure::Io(_)) if reused && conn.buf.is_empty() => continue,
                Err(e) => return Err(e),
                Ok((head, framing, reusable)) => {
                    let mut body = InlineBody {
                        conn: Some(conn),
                        framing,
                        reusable,
                        pool: self.clone(),
                    };
                    if body.settle().is_err() {
                        return Err(Failure::Invalid("malformed chunked body"));
                    }
                    return Ok((head, body));
                }
            }
        }
    }
}

/// The upstream's answer to a WebSocket handshake (`upgrade`).
pub(super) enum Switched {
    /// 101 to the WebSocket asked for: the connection is the tunnel's, with the bytes that
    /// followed the head.
    Yes(Head, TcpStream, Bytes),
    /// Any other answer, passed on as a response; its connection is not reused.
    No(Head, InlineBody),
}

/// Sends a WebSocket handshake (`head`, a GET with `Upgrade: websocket`) on a new connection,
/// never a pooled one (it may become a tunnel), and reads the answer's head. A 101 to
/// anything but the WebSocket asked for is refused.
pub(super) async fn upgrade(
    pool: &Arc<Pool>,
    authority: &Authority,
    connect_timeout: Duration,
    head: &[u8],
    filter: &InboundFilter,
) -> Result<Switched, Failure> {
    let mut conn = connect(authority, connect_timeout).await?;
    conn.io.write_all(head).await.map_err(Failure::Io)?;
    let (head, framing, _) = read_head(&mut conn, false, true, filter).await?;
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        let Conn { io, buf, .. } = *conn;
        return Ok(Switched::Yes(head, io, buf.freeze()));
    }
    let mut body = InlineBody {
        conn: Some(conn),
        framing,
        reusable: false,
        pool: pool.clone(),
    };
    if body.settle().is_err() {
        return Err(Failure::Invalid("malformed chunked body"));
    }
    Ok(Switched::No(head, body))
}

async fn connect(authority: &Authority, timeout: Duration) -> Result<Box<Conn>, Failure> {
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = authority.port_u16().unwrap_or(80);
    let io = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => return Err(Failure::Connect(e)),
        Err(_) => return Err(Failure::ConnectTimeout(timeout)),
    };
    let _ = io.set_nodelay(true);
    Ok(Box::new(Conn {
        io,
        buf: BytesMut::with_capacity(HEAD_READ_SIZE),
        idle_since: Instant::now(),
    }))
}

/// Reads until a final (non-1xx) response head is complete; returns its parts, the body's
/// framing and whether the connection may be reused after the body. With `upgrade` (a
/// WebSocket handshake was sent), a 101 to a WebSocket is final.
async fn read_head(
    conn: &mut Conn,
    head_request: bool,
    upgrade: bool,
    filter: &InboundFilter,
) -> Result<(Head, Framing, bool), Failure> {
    loop {
        if let Some(parsed) = parse_response(&mut conn.buf, head_request, upgrade, filter)? {
            match parsed {
                Parsed::Interim => continue,
                Parsed::Final(head, framing, reusable) => return Ok((head, framing, reusable)),
            }
        }
        if conn.buf.len() >= MAX_HEAD {
            return Err(Failure::Invalid("response head too large"));
        }
        conn.buf.reserve(HEAD_READ_SIZE);
        let asked = conn.buf.capacity() - conn.buf.len();
        match conn.io.read_buf(&mut conn.buf).await {
            Ok(0) => return Err(Failure::Closed),
            Ok(n) if n < asked => drained(&conn.io),
            Ok(_) => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

pub(crate) enum Parsed {
    /// A 1xx response other than 101, consumed: the real one follows.
    Interim,
    Final(Head, Framing, bool),
}

/// A final response head as the client will get it.
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) lines: RawHead,
}

/// Runs of kept header lines a `RawHead` refers to before it copies them instead.
const RUNS: usize = 4;

/// An upstream's end-to-end header lines, passed on as received: runs of the head's own
/// bytes, with the hop-by-hop lines (and what `Connection` names) left out. A response
/// with a body keeps its Content-Length only when the body is sent with that length.
/// Nothing is parsed into a `HeaderMap` unless hyper serves the client (`lines`).
#[derive(Clone)]
pub struct RawHead {
    head: Bytes,
    runs: [(u32, u32); RUNS],
    used: u8,
    has_date: bool,
    has_length: bool,
    /// The gateway made the response private (`respond::make_private`): the upstream's
    /// caching lines stay behind.
    no_store: bool,
}

impl RawHead {
    /// The kept lines, each `name: value\r\n`, in runs of whole lines.
    pub fn runs(&self) -> impl Iterator<Item = &[u8]> {
        self.runs[..self.used as usize]
            .iter()
            .map(|&(at, len)| &self.head[at as usize..(at + len) as usize])
    }

    /// Whether a Date line is among them.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// Whether a Content-Length line is among them.
    pub fn has_length(&self) -> bool {
        self.has_length
    }

    pub fn no_store(&self) -> bool {
        self.no_store
    }

    pub(super) fn set_no_store(&mut self) {
        self.no_store = true;
    }

    /// Each kept line as (name, the whole line with its CRLF).
    pub fn each_line(&self, mut f: impl FnMut(&[u8], &[u8])) {
        for run in self.runs() {
            let mut rest = run;
            while !rest.is_empty() {
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
                let (line, after) = rest.split_at(end);
                let name = line
                    .iter()
                    .position(|&b| b == b':')
                    .map_or(line, |colon| &line[..colon]);
                f(name, line);
                rest = after;
            }
        }
    }

    /// Appends the headers of `lines` (some of this head's kept lines) to `map`, sharing the
    /// head's bytes (for hyper, which needs a `HeaderMap`).
    pub fn append_lines(&self, lines: &[u8], map: &mut HeaderMap) {
        for line in lines.split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let value = line[colon + 1..].trim_ascii();
            let name = HeaderName::from_bytes(&line[..colon]);
            let value = HeaderValue::from_maybe_shared(self.head.slice_ref(value));
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
    }

    /// Appends all the kept headers to `map`.
    #[cfg(test)]
    pub fn append_to(&self, map: &mut HeaderMap) {
        for run in self.runs() {
            self.append_lines(run, map);
        }
    }
}

/// What a response header line means to the proxy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    EndToEnd,
    Date,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade.
    HopByHop,
    /// Set-Cookie: end to end, unless it sets one of the gateway's own cookies.
    SetCookie,
}

fn role(name: &[u8]) -> Role {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    // Length and first letter first: most names are decided without comparing bytes.
    match (name.len(), name.first().map_or(0, |b| b | 0x20)) {
        (4, b'd') if is(b"date") => Role::Date,
        (14, b'c') if is(b"content-length") => Role::ContentLength,
        (17, b't') if is(b"transfer-encoding") => Role::TransferEncoding,
        (10, b'c') if is(b"connection") => Role::Connection,
        (10, b'k') if is(b"keep-alive") => Role::HopByHop,
        (16, b'p') if is(b"proxy-connection") => Role::HopByHop,
        (2, b't') if is(b"te") => Role::HopByHop,
        (7, b't') if is(b"trailer") => Role::HopByHop,
        (7, b'u') if is(b"upgrade") => Role::HopByHop,
        (10, b's') if is(b"set-cookie") => Role::SetCookie,
        _ => Role::EndToEnd,
    }
}

/// Parses a response head at the start of `buf`, taking it out of the buffer when complete.
/// Set-Cookie lines for the gateway's own cookies (`filter`) are left out.
#[cfg(any(test, fuzzing))]
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    filter: &InboundFilter,
) -> Result<Option<Parsed>, Failure> {
    parse_response(buf, head_request, false, filter)
}

/// `parse_head`; with `upgrade` (a WebSocket handshake was sent), a 101 whose only Upgrade
/// is `websocket` is a final head without a body, never to be reused.
fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
    upgrade: bool,
    filter: &InboundFilter,
) -> Result<Option<Parsed>, Failure> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Header positions in `buf`, so the lines can be passed on from the head's bytes.
    let mut spans = [HeaderSpan::default(); MAX_HEADERS];
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let (len, code, minor, count) = {
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut headers,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Failure::Invalid("too many headers"))
            }
            Err(_) => return Err(Failure::Invalid("malformed response head")),
        };
        for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
            *span = HeaderSpan::of(buf.as_ptr(), h);
        }
        (
            len,
            resp.code.unwrap_or(0),
            resp.version.unwrap_or(1),
            resp.headers.len(),
        )
    };
    let head = buf.split_to(len).freeze();
    let switching = code == 101 && upgrade;
    if (100..200).contains(&code) && !switching {
        if code == 101 {
            return Err(Failure::Invalid(
                "101 Switching Protocols without an upgrade",
            ));
        }
        return Ok(Some(Parsed::Interim));
    }
    let status = StatusCode::from_u16(code).map_err(|_| Failure::Invalid("bad status code"))?;
    let name = |i: usize| spans[i].name(&head);
    let value = |i: usize| spans[i].value(&head);
    if switching {
        // Only the WebSocket asked for is tunnelled: any other switch would carry bytes past
        // every check the gateway makes.
        let mut upgrades = (0..count).filter(|&i| name(i).eq_ignore_ascii_case(b"upgrade"));
        let websocket = matches!(
            (upgrades.next(), upgrades.next()),
            (Some(i), None) if value(i).trim_ascii().eq_ignore_ascii_case(b"websocket")
        );
        if !websocket {
            return Err(Failure::Invalid(
                "101 Switching Protocols to something other than the WebSocket asked for",
            ));
        }
    }

    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    // Not reused after a HEAD either: apps that answer HEAD as GET send the body anyway, and
    // bytes arriving after the connection was taken again would be read as the next
    // request's response (another user's). HEAD is rare; a new connection is cheap.
    let mut close = minor == 0 || head_request || switching;
    // A `close` on any Connection line wins over a `keep-alive` on another (as in hyper).
    let (mut asked_close, mut kept_alive) = (false, false);
    // Whether a Connection header names other headers, to be left out too (rare).
    let mut names_others = false;
    let mut roles = [Role::EndToEnd; MAX_HEADERS];
    for (i, slot) in roles[..count].iter_mut().enumerate() {
        *slot = role(name(i));
        match *slot {
            Role::ContentLength => {
                let n = parse_length(value(i))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Failure::Invalid("conflicting Content-Length"));
                }
                length = Some(n);
            }
            Role::TransferEncoding => {
                if !is_visible_ascii(value(i)) {
                    // hyper reads such a value as no coding it knows (a body until the
                    // close), a byte-wise reading finds `chunked` in it: no one framing.
                    return Err(Failure::Invalid("Transfer-Encoding that is not ASCII"));
                }
                encoded = true;
                // Only the last coding counts; a later header line replaces the verdict.
                chunked = value(i)
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            Role::Connection => {
                let v = value(i);
                if contains_token(v, b"close") {
                    asked_close = true;
                } else if contains_token(v, b"keep-alive")
                    // hyper does not read a value that is not visible ASCII: nor do we here.
                    && is_visible_ascii(v)
                {
                    kept_alive = true;
                }
                names_others |= super::headers::names_other_headers(v);
            }
            Role::SetCookie if filter.sets_gateway_cookie(value(i)) => {
                // An app (a public one on the same host, say) could sign users out, break
                // their session or plant one of its choosing.
                tracing::warn!(
                    "the upstream sent a Set-Cookie for the gateway's own cookie; dropped it"
                );
                *slot = Role::HopByHop;
            }
            _ => {}
        }
    }

    if asked_close {
        close = true;
    } else if minor == 0 && kept_alive && !head_request {
        close = false;
    }
    let no_body = head_request
        || switching
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Done
    } else if encoded && minor == 0 {
        // Faulty framing (RFC 9112 6.1): an HTTP/1.0 reader reads the body until the close,
        // chunks and all. hyper refuses it too.
        return Err(Failure::Invalid(
            "Transfer-Encoding in an HTTP/1.0 response",
        ));
    } else if encoded {
        // With Transfer-Encoding, Content-Length is ignored and the connection must not be
        // reused (RFC 9112 6.3 item 3).
        if length.is_some() {
            close = true;
        }
        if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            close = true;
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        close = true;
        Framing::Close
    };
    // The client gets the upstream's Content-Length when the body goes on with that length
    // (or there is none and it says what a GET would get: HEAD, 304; never on a 204);
    // otherwise the gateway frames the body itself.
    let pass_length = if no_body {
        super::respond::keeps_length_without_body(status, head_request)
    } else {
        matches!(framing, Framing::Length(_))
    };

    let named_by_connection = |n: &[u8]| {
        names_others
            && (0..count).any(|j| {
                roles[j] == Role::Connection
                    && value(j)
                        .split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(n))
            })
    };
    let mut runs = [(0u32, 0u32); RUNS];
    let mut used = 0;
    let (mut has_date, mut has_length) = (false, false);
    // Lines run from one name to the next (the last to the blank line), CRLF included.
    let end_of = |i: usize| {
        if i + 1 < count {
            spans[i + 1].start()
        } else {
            len - 2
        }
    };
    let mut fits = true;
    for (i, span) in spans[..count].iter().enumerate() {
        let from = span.start() as u32;
        let role = roles[i];
        let keep = match role {
            Role::ContentLength => pass_length && !has_length,
            Role::TransferEncoding | Role::Connection | Role::HopByHop => false,
            Role::Date | Role::EndToEnd | Role::SetCookie => !named_by_connection(name(i)),
        };
        if !keep {
            continue;
        }
        has_length |= role == Role::ContentLength;
        has_date |= role == Role::Date;
        let to = end_of(i) as u32;
        if !head[..to as usize].ends_with(b"\r\n") {
            fits = false; // a bare LF line end: copied below, with CRLF
        }
        if used > 0 && runs[used - 1].0 + runs[used - 1].1 == from {
            runs[used - 1].1 += to - from;
        } else if used < RUNS {
            runs[used] = (from, to - from);
            used += 1;
        } else {
            fits = false;
        }
    }
    let lines = if fits {
        RawHead {
            head,
            runs,
            used: used as u8,
            has_date,
            has_length,
            no_store: false,
        }
    } else {
        // Too many gaps (or bare LF line ends): the kept lines are copied, as one run.
        let mut copy = BytesMut::with_capacity(len);
        let mut length_kept = false;
        for (i, role) in roles[..count].iter().enumerate() {
            let keep = match role {
                Role::ContentLength => pass_length && !std::mem::replace(&mut length_kept, true),
                Role::TransferEncoding | Role::Connection | Role::HopByHop => false,
                Role::Date | Role::EndToEnd | Role::SetCookie => !named_by_connection(name(i)),
            };
            if keep {
                copy.extend_from_slice(name(i));
                copy.extend_from_slice(b": ");
                copy.extend_from_slice(value(i));
                copy.extend_from_slice(b"\r\n");
            }
        }
        let copied = copy.len() as u32;
        RawHead {
            head: copy.freeze(),
            runs: [(0, copied), (0, 0), (0, 0), (0, 0)],
            used: 1,
            has_date,
            has_length,
            no_store: false,
        }
    };
    Ok(Some(Parsed::Final(Head { status, lines }, framing, !close)))
}

fn parse_length(v: &[u8]) -> Result<u64, Failure> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(Failure::Invalid("bad Content-Length"));
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Visible ASCII, spaces and tabs: a value `HeaderValue::to_str` (so hyper) reads.
fn is_visible_ascii(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The rest of a response read from an inline exchange. The connection goes back to the
/// pool as soon as the body is complete (hyper may never poll again once
/// `is_end_stream` says so); dropped early, the connection is closed.
pub struct InlineBody {
    /// `None` once the body is complete (or failed).
    conn: Option<Box<Conn>>,
    framing: Framing,
    reusable: bool,
    pool: Arc<Pool>,
}

impl InlineBody {
    /// The next data, or `None` when more must be read or the body is complete.
    fn next_data(&mut self) -> Result<Option<Bytes>, &'static str> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let data = decode(&mut self.framing, &mut conn.buf, true)?;
        if let Err(what) = self.settle() {
            if data.is_none() {
                return Err(what);
            }
            // The data is good: it goes on, and the body fails at the next read.
            self.framing = Framing::Broken(what);
        }
        Ok(data)
    }

    /// Consumes framing that carries no data and, once the body is complete, returns the
    /// connection to the pool (when it may be reused and nothing else arrived).
    fn settle(&mut self) -> Result<(), &'static str> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        decode(&mut self.framing, &mut conn.buf, false)?;
        if self.framing == Framing::Done {
            if let Some(conn) = self.conn.take() {
                if self.reusable && conn.buf.is_empty() {
                    self.pool.put(conn);
                }
            }
        }
        Ok(())
    }

    /// The whole body when it has already arrived with the head (most small responses),
    /// `Ok(None)` for no body; otherwise the body to stream.
    pub fn into_complete(mut self) -> Result<Option<Bytes>, InlineBody> {
        if self.framing == Framing::Done {
            return Ok(None);
        }
        if let (Framing::Length(rem), Some(conn)) = (self.framing, &self.conn) {
            if conn.buf.len() as u64 >= rem {
                if let Ok(data) = self.next_data() {
                    return Ok(data);
                }
            }
        }
        Err(self)
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.conn = None;
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(e)))
    }
}

enum Quiet {
    Yes,
    Closed,
    /// Bytes arrived that no request asked for.
    Unasked,
}

/// Whether an idle pooled connection is as it was left: not closed by the upstream, and no
/// bytes in it. Read by readiness, so a quiet connection costs no syscall; one the poller saw
/// become readable is read (a byte), and dropped either way.
fn quiet(io: &TcpStream) -> Quiet {
    let mut byte = [0u8; 1];
    match io.try_read(&mut byte) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Quiet::Yes,
        Ok(0) | Err(_) => Quiet::Closed,
        Ok(_) => Quiet::Unasked,
    }
}

/// Called after a read returned less than it asked for: the socket's receive queue was
/// empty then, so tokio's readiness is cleared without the read that would only say
/// `WouldBlock` (nginx reads the same way). Data arriving later is a new (edge-triggered)
/// event and sets it again; an end of stream stays seen (tokio keeps closed states).
pub fn drained(io: &TcpStream) {
    let _ = io.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}

impl http_body::Body for InlineBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            match this.next_data() {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(None) => {}
                Err(what) => return this.fail(io::Error::new(io::ErrorKind::InvalidData, what)),
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            conn.buf.reserve(READ_SIZE);
            let asked = conn.buf.capacity() - conn.buf.len();
            match conn.io.try_read_buf(&mut conn.buf) {
                Ok(n) if n > 0 && n < asked => drained(&conn.io),
                Ok(0) if this.framing == Framing::Close => {
                    this.conn = None;
                    this.framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upstream closed the connection in the middle of the body",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(conn.io.poll_read_ready(cx)) {
                        return this.fail(e);
                    }
                }
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;

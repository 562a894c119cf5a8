//! The one place that decides which header lines of a response reach the client, for every
//! path a response takes: the gateway's own HTTP/1.1 writer (`server::fast`) and hyper
//! (HTTP/1.0, HTTP/2, a connection hyper took over), whether the response came from the
//! inline upstream path (raw header lines) or hyper's client (a `HeaderMap`), or is a page of
//! the gateway's own. The writers only frame the message (Content-Length or chunked, Date,
//! `Connection: close`); what goes in it is decided here, so the paths cannot drift apart.
//!
//! What the client gets:
//! - the upstream's end-to-end headers, as received (hop-by-hop ones, those `Connection`
//!   names, and Set-Cookie lines for the gateway's own cookies were left behind when the head
//!   was read);
//! - never Transfer-Encoding, Connection, Keep-Alive, Proxy-Connection, TE, Trailer, nor
//!   Upgrade (except `Connection: upgrade` and `Upgrade` on a 101);
//! - Content-Length only where it describes what is sent: with a body sent at that length,
//!   or on an answer to HEAD and a 304; never on a 1xx or 204 (RFC 9110 8.6);
//! - every value of a repeated header (each Set-Cookie of a chunked session);
//! - when the gateway adds a cookie or identity to a response (`make_private`):
//!   `Cache-Control: private, no-store` in place of the upstream's Cache-Control, Expires and
//!   Pragma, so no shared cache keeps one person's session or identity for the next.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::{Body, RawHead};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Where the header lines go.
pub trait HeadSink {
    /// Lines of an upstream's head (`head`) as received, each `name: value\r\n`.
    fn lines(&mut self, head: &RawHead, raw: &[u8]);
    fn header(&mut self, name: &HeaderName, value: &HeaderValue);
}

/// What the writer needs to know about the lines it was given, to frame the message.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub date: bool,
    pub content_length: bool,
}

/// Whether a response that carries no body (an answer to HEAD, a 304, a 204, a 1xx) keeps
/// its Content-Length: on HEAD and 304 it says what a GET would have got; a 204 or 1xx has
/// none (RFC 9110 8.6).
pub fn keeps_length_without_body(status: StatusCode, head_request: bool) -> bool {
    status != StatusCode::NO_CONTENT
        && !status.is_informational()
        && (head_request || status == StatusCode::NOT_MODIFIED)
}

/// Hands `sink` every header line of a response the client gets (see the module doc), in
/// order: the upstream's (`body.upstream_head()`), then those in the response's `HeaderMap`.
/// Takes the parts, so a writer need not put a response back together to ask.
pub fn client_headers(
    status: StatusCode,
    headers: &HeaderMap,
    body: &Body,
    head_request: bool,
    sink: &mut impl HeadSink,
) -> Written {
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length_allowed = !no_body || keeps_length_without_body(status, head_request);
    let mut written = Written::default();
    if let Some(head) = body.upstream_head() {
        let drop_length = head.has_length() && !length_allowed;
        if head.no_store() || drop_length {
            head.each_line(|name, line| {
                let cache = is_caching(name);
                let length = name.eq_ignore_ascii_case(b"content-length");
                if (head.no_store() && cache) || (drop_length && length) {
                    return;
                }
                written.date |= name.eq_ignore_ascii_case(b"date");
                written.content_length |= length;
                sink.lines(head, line);
            });
        } else {
            for run in head.runs() {
                sink.lines(head, run);
            }
            written.date = head.has_date();
            written.content_length = head.has_length();
        }
    }
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        if *name == header::CONTENT_LENGTH {
            // With a body, the writer frames it from the body itself.
            if no_body && length_allowed && !written.content_length {
                written.content_length = true;
                sink.header(name, value);
            }
            continue;
        }
        if *name == header::TRANSFER_ENCODING
            || (*name == header::CONNECTION && !upgrade)
            || *name == header::TE
            || *name == header::TRAILER
            || *name == KEEP_ALIVE
            || *name == PROXY_CONNECTION
            || (*name == header::UPGRADE && !upgrade)
        {
            continue;
        }
        written.date |= *name == header::DATE;
        sink.header(name, value);
    }
    written
}

/// Cache-Control, Expires, Pragma: what a cache reads to decide whether to keep a response.
fn is_caching(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"cache-control")
        || name.eq_ignore_ascii_case(b"expires")
        || name.eq_ignore_ascii_case(b"pragma")
}

/// The gateway added a cookie or identity to this response: no cache may keep it, whatever
/// the upstream said.
pub fn make_private(resp: &mut Response<Body>) {
    let headers = resp.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    headers.remove(header::EXPIRES);
    headers.remove(header::PRAGMA);
    if let Some(head) = resp.body_mut().head.as_mut() {
        head.set_no_store();
    }
}

/// Adds the gateway's Set-Cookie lines (a refreshed or ended session) to a response, which
/// then must not be cached.
pub fn add_gateway_cookies(resp: &mut Response<Body>, cookies: &[HeaderValue]) {
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    make_private(resp);
}

/// Collects the lines into a `HeaderMap` (for hyper), each value of a repeated header kept.
pub struct MapSink<'m>(pub &'m mut HeaderMap);

impl HeadSink for MapSink<'_> {
    fn lines(&mut self, head: &RawHead, raw: &[u8]) {
        head.append_lines(raw, self.0);
    }

    fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.0.append(name.clone(), value.clone());
    }
}

/// Writes the lines as HTTP/1.1 header lines (for the gateway's own writer).
pub struct BytesSink<'b>(pub &'b mut Vec<u8>);

impl HeadSink for BytesSink<'_> {
    fn lines(&mut self, _: &RawHead, raw: &[u8]) {
        self.0.extend_from_slice(raw);
    }

    fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.0.extend_from_slice(name.as_str().as_bytes());
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(value.as_bytes());
        self.0.extend_from_slice(b"\r\n");
    }
}

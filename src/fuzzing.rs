//! Entry points for the fuzz targets in `fuzz/`, compiled only with `--cfg fuzzing` (which
//! `cargo fuzz` sets). Thin wrappers that hand the private HTTP/1 parsers' results out as
//! plain values; the gateway itself never calls them.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

use crate::config::{Config, ProcessSource};
use crate::identity::InboundFilter;
use crate::proxy::h1;
use crate::server::fast;

/// What the client request loop (`server::fast::parse`) made of a buffer.
pub enum RequestHead {
    /// Taken: the head (its body is always empty) and whether the connection stays open.
    /// The head's bytes are gone from the buffer.
    Request {
        head: http::request::Parts,
        keep_alive: bool,
    },
    /// More bytes needed.
    Partial,
    /// Left in the buffer for hyper.
    Handoff,
    /// Parsed, but not a request the loop can build (it answers 400 and closes).
    BadRequest,
}

/// `server::fast::parse`, taking at most `max_headers` header lines (the loop's own limit is
/// 64, or `server.max_request_headers` when lower).
pub fn parse_request_head(buf: &mut BytesMut, max_headers: usize) -> RequestHead {
    match fast::parse(buf, max_headers) {
        fast::Parsed::Request(req, keep_alive) => RequestHead::Request {
            head: req.into_parts().0,
            keep_alive,
        },
        fast::Parsed::Partial => RequestHead::Partial,
        fast::Parsed::Handoff => RequestHead::Handoff,
        fast::Parsed::BadRequest => RequestHead::BadRequest,
    }
}

/// What the upstream response parser (`proxy::h1::parse_head`) made of a buffer.
pub enum ResponseHead {
    /// A 1xx other than 101, taken out of the buffer; the final head follows.
    Interim,
    Final(FinalHead),
    /// More bytes needed.
    Partial,
    /// The response is refused (the client gets a 502).
    Refused(String),
}

/// A final response head as the client will get it.
pub struct FinalHead {
    pub status: StatusCode,
    /// The header lines passed on, exactly as the gateway writes them to the client.
    pub lines: Vec<u8>,
    /// The same lines as hyper gets them when it serves the client (`RawHead::append_lines`).
    pub headers: HeaderMap,
    pub has_length: bool,
    pub has_date: bool,
    /// Whether the connection may go back to the pool once the body is read (and nothing
    /// follows it).
    pub reusable: bool,
    pub body: BodyDecoder,
}

/// The body decoder of one response (`proxy::h1::decode`).
#[derive(Clone)]
pub struct BodyDecoder(h1::Framing);

impl BodyDecoder {
    /// The next body bytes in `buf`, or `None` when it needs more (or the body is complete).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, &'static str> {
        h1::decode(&mut self.0, buf, true)
    }

    /// The body is complete (by its framing, not by the end of the connection).
    pub fn is_done(&self) -> bool {
        self.0 == h1::Framing::Done
    }

    /// The body ends when the upstream closes the connection.
    pub fn until_close(&self) -> bool {
        self.0 == h1::Framing::Close
    }

    /// The framing, for messages.
    pub fn describe(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// `proxy::h1::parse_head`, with the filter of a minimal config (gateway cookie `_ssogate`).
pub fn parse_response_head(buf: &mut BytesMut, head_request: bool) -> ResponseHead {
    match h1::parse_head(buf, head_request, filter()) {
        Ok(None) => ResponseHead::Partial,
        Ok(Some(h1::Parsed::Interim)) => ResponseHead::Interim,
        Ok(Some(h1::Parsed::Final(head, framing, reusable))) => {
            let lines: Vec<u8> = head.lines.runs().flatten().copied().collect();
            let mut headers = HeaderMap::new();
            for run in head.lines.runs() {
                // The runs are the head's own bytes, as `append_lines` wants them.
                head.lines.append_lines(run, &mut headers);
            }
            ResponseHead::Final(FinalHead {
                status: head.status,
                lines,
                headers,
                has_length: head.lines.has_length(),
                has_date: head.lines.has_date(),
                reusable,
                body: BodyDecoder(framing),
            })
        }
        Err(e) => ResponseHead::Refused(e.to_string()),
    }
}

/// The name of the gateway's session cookie in `parse_response_head`'s filter.
pub const COOKIE_NAME: &str = "_ssogate";

fn filter() -> &'static InboundFilter {
    static FILTER: OnceLock<InboundFilter> = OnceLock::new();
    FILTER.get_or_init(|| {
        let config = Config::from_toml_str(
            "[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n",
            &ProcessSource,
        )
        // A fixed, valid config: a failure here is a broken build of the fuzz targets.
        .expect("the fuzzing config loads");
        InboundFilter::from_config(&config)
    })
}

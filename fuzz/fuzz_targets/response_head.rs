//! The upstream response parser and body decoder (`proxy::h1::parse_head`, `decode`)
//! against hyper's HTTP/1 client on the same upstream bytes. See ../README.md.
//!
//! Input: one byte of flags (bit 0: the request was a HEAD), one byte seeding the read
//! sizes the body is fed in, then the upstream's bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use ssogate::fuzzing::{parse_response_head, BodyDecoder, ResponseHead, COOKIE_NAME};
use ssogate_fuzz::hyper_fetch;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    check(data[0] & 1 == 1, data[1], &data[2..]);
});

/// How our side ended the body once the upstream closed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyEnd {
    /// By its framing; `leftover` bytes followed it.
    Framed {
        leftover: usize,
    },
    /// By the end of the connection (no length, or a transfer coding other than chunked).
    AtClose,
    /// The connection ended in the middle of a framed body.
    Truncated,
    Invalid(&'static str),
}

fn check(head_request: bool, seed: u8, upstream: &[u8]) {
    let shown = format!("b\"{}\"", upstream.escape_ascii());
    let mut buf = BytesMut::from(upstream);
    let ours = loop {
        match parse_response_head(&mut buf, head_request) {
            ResponseHead::Interim => continue,
            other => break other,
        }
    };
    let theirs = hyper_fetch(upstream, head_request);
    let head = match ours {
        ResponseHead::Refused(why) => {
            if let Ok((status, _)) = &theirs.head {
                if !accepted_refusal(upstream, head_request) {
                    panic!(
                        "we refused ({why}) a response hyper took ({status}): {shown} \
                         (HEAD: {head_request})"
                    );
                }
            }
            return;
        }
        ResponseHead::Partial => {
            assert!(
                theirs.head.is_err(),
                "the upstream closed before we had a head, hyper took one: {shown}"
            );
            return;
        }
        ResponseHead::Interim => unreachable!("interim heads are skipped above"),
        ResponseHead::Final(head) => head,
    };
    let (status, their_headers) = match &theirs.head {
        Ok(h) => h,
        Err(e) => panic!("we took a response hyper refused ({e}): {shown} (HEAD: {head_request})"),
    };
    assert_eq!(head.status, *status, "status of {shown}");

    // The lines a client gets are well-formed header lines, and say what `headers` says.
    let mut lines = head.lines.clone();
    lines.extend_from_slice(b"\r\n");
    let mut parsed = [httparse::EMPTY_HEADER; 128];
    match httparse::parse_headers(&lines, &mut parsed) {
        Ok(httparse::Status::Complete((n, fields))) => {
            assert_eq!(n, lines.len(), "passed lines end early: {lines:?}");
            let mut again = HeaderMap::new();
            for f in fields {
                again.append(
                    HeaderName::from_bytes(f.name.as_bytes()).expect("a header name"),
                    header::HeaderValue::from_bytes(f.value).expect("a header value"),
                );
            }
            assert_eq!(again, head.headers, "passed lines vs headers for {shown}");
        }
        other => panic!("the lines passed to the client do not parse ({other:?}): {lines:?}"),
    }

    let want = end_to_end(their_headers, *status, head_request);
    assert_eq!(
        head.headers, want,
        "end-to-end headers of {shown} (HEAD: {head_request})"
    );

    // The body, from all the bytes at once and from the same bytes in random pieces.
    let rest = buf.clone();
    let (body, end) = read_body(head.body.clone(), rest.clone(), &mut |_| usize::MAX);
    let mut state = u32::from(seed) | 0x100;
    let (body2, end2) = read_body(head.body.clone(), rest, &mut |left| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        1 + (state as usize) % left.min(if state & 0x10000 == 0 { 7 } else { 300 })
    });
    assert_eq!(
        (&body, &end),
        (&body2, &end2),
        "the decoder's result depends on the read sizes (framing {}) for {shown}",
        head.body.describe()
    );

    let complete = matches!(end, BodyEnd::Framed { .. } | BodyEnd::AtClose);
    if complete && theirs.body_end.is_ok() {
        assert_eq!(
            Bytes::from(body),
            Bytes::from(theirs.body.clone()),
            "body of {shown} (HEAD: {head_request})"
        );
    }
    // hyper's limits on the trailer section (100 fields, 16 KiB): we pass no trailer on and
    // keep none, so we have none but the 4 KiB per line (README).
    let hyper_limit = theirs.body_end.as_ref().is_err_and(|e| {
        e.contains("chunk trailers count overflow") || e.contains("chunk trailers bytes over limit")
    });
    if complete != theirs.body_end.is_ok() && !accepted_body_difference(&end) && !hyper_limit {
        panic!(
            "body of {shown} (HEAD: {head_request}): ours {end:?}, hyper's {:?}",
            theirs.body_end
        );
    }
    let reused = head.reusable && end == BodyEnd::Framed { leftover: 0 };
    // Past hyper's trailer limits it fails the body and drops the connection; the trailer
    // section still ends where ours does (README, accepted differences).
    if reused && !hyper_limit {
        assert!(
            theirs.framed && theirs.reusable,
            "we would reuse the connection after {shown} (HEAD: {head_request}), \
             hyper would not (framed {}, reusable {})",
            theirs.framed,
            theirs.reusable
        );
    }
}

fn read_body(
    mut decoder: BodyDecoder,
    wire: BytesMut,
    piece: &mut dyn FnMut(usize) -> usize,
) -> (Vec<u8>, BodyEnd) {
    let mut body = Vec::new();
    let mut buf = BytesMut::new();
    let mut at = 0;
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(data)) => body.extend_from_slice(&data),
                Ok(None) => break,
                Err(e) => return (body, BodyEnd::Invalid(e)),
            }
        }
        if decoder.is_done() {
            let leftover = buf.len() + wire.len() - at;
            return (body, BodyEnd::Framed { leftover });
        }
        if at == wire.len() {
            let end = if decoder.until_close() {
                BodyEnd::AtClose
            } else {
                BodyEnd::Truncated
            };
            return (body, end);
        }
        let n = piece(wire.len() - at).min(wire.len() - at);
        buf.extend_from_slice(&wire[at..at + n]);
        at += n;
    }
}

/// hyper's headers less what the gateway leaves out: hop-by-hop fields, those `Connection`
/// names, Set-Cookie for the gateway's own cookie, and Content-Length unless the body goes
/// on with that length (then once).
fn end_to_end(theirs: &HeaderMap, status: StatusCode, head_request: bool) -> HeaderMap {
    let hop_by_hop = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let named: Vec<String> = theirs
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty() && !["keep-alive", "close", "upgrade"].contains(&t.as_str()))
        .collect();
    let no_body =
        head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    // On HEAD and 304 it says what a GET would get; a 204 has none (RFC 9110 8.6).
    let pass_length = if no_body {
        status != StatusCode::NO_CONTENT
    } else {
        !theirs.contains_key(header::TRANSFER_ENCODING)
    };
    let mut out = HeaderMap::new();
    for (name, value) in theirs {
        let n = name.as_str();
        if hop_by_hop.contains(&n) {
            continue;
        }
        if name == header::CONTENT_LENGTH {
            if pass_length && !out.contains_key(header::CONTENT_LENGTH) {
                out.append(name, value.clone());
            }
            continue;
        }
        if named.iter().any(|t| t == n) {
            continue;
        }
        if name == header::SET_COOKIE {
            // The name the browser will send it back under: a cookie without a name
            // (`=_ssogate=x`, RFC 6265bis 5.6) comes back as its value alone.
            let pair = value
                .as_bytes()
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default();
            let mut pair = pair.trim_ascii();
            while let Some(rest) = pair.strip_prefix(b"=") {
                pair = rest.trim_ascii();
            }
            let cookie = pair
                .split(|&b| b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            let ours = COOKIE_NAME.as_bytes();
            if cookie == ours
                || (cookie.len() > ours.len()
                    && cookie.starts_with(ours)
                    && cookie[ours.len()] == b'_')
            {
                continue;
            }
        }
        out.append(name, value.clone());
    }
    out
}

/// Responses we refuse and hyper takes, on purpose (README: "accepted differences"):
/// - a 101 (no upgrade was asked for; hyper hands the connection over as upgraded);
/// - a Content-Length that is not one decimal number, or several that differ, even where
///   it frames nothing (HEAD, 204, 304: hyper does not read it there). A list of equal
///   numbers (`5, 5`) included, which RFC 9110 8.6 lets a recipient refuse;
/// - a Transfer-Encoding that is not visible ASCII (hyper reads no coding in it and takes
///   the body until the close; read byte-wise it may end in `chunked`).
fn accepted_refusal(upstream: &[u8], _head_request: bool) -> bool {
    let mut buf = upstream;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(len)) = resp.parse(buf) else {
            return false;
        };
        match resp.code {
            Some(101) => return true,
            Some(100..=199) => buf = &buf[len..],
            _ => {
                let lengths: Vec<&[u8]> = resp
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| h.value.trim_ascii())
                    .collect();
                let garbled_coding = resp.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("transfer-encoding")
                        && !h
                            .value
                            .iter()
                            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
                });
                return garbled_coding
                    || lengths.iter().any(|v| {
                        v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit)
                    })
                    || lengths.windows(2).any(|w| {
                        w[0].trim_ascii_start() != w[1].trim_ascii_start()
                            && std::str::from_utf8(w[0])
                                .ok()
                                .map(|a| a.parse::<u64>().ok())
                                != std::str::from_utf8(w[1])
                                    .ok()
                                    .map(|b| b.parse::<u64>().ok())
                    });
            }
        }
    }
}

/// Bodies hyper completes and we refuse, on purpose (README: "accepted differences"): our
/// limits on a chunk size (15 hex digits, leading zeros included) and on a chunk-size or
/// trailer line (4 KiB), and a trailer line that is not a header field or has a bare CR or
/// LF (hyper ends the trailer section at CRLF CRLF too, but its field parser stops at a
/// bare-LF blank line and ignores the rest). The other way round (we complete, hyper does
/// not) is never fine.
fn accepted_body_difference(ours: &BodyEnd) -> bool {
    matches!(
        ours,
        BodyEnd::Invalid(
            "chunk size of more than 15 digits"
                | "chunk line too long"
                | "malformed trailer field"
                | "bare LF in a chunk line"
                | "bare CR in a chunk line"
        )
    )
}

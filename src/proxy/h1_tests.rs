use super::*;
use crate::proxy::framing::{parse_chunk_size, take_line};

fn filter() -> InboundFilter {
    InboundFilter::for_tests()
}

fn parse(raw: &[u8], head_request: bool) -> Result<(Head, Framing, bool, BytesMut), Failure> {
    let mut buf = BytesMut::from(raw);
    loop {
        match parse_head(&mut buf, head_request, &filter())? {
            Some(Parsed::Interim) => continue,
            Some(Parsed::Final(p, f, r)) => return Ok((p, f, r, buf)),
            None => panic!("incomplete head"),
        }
    }
}

/// The header lines a client would get, as one string.
fn passed(lines: &RawHead) -> String {
    lines
        .runs()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

fn lines_of(raw: &str, head_request: bool) -> RawHead {
    parse(raw.as_bytes(), head_request).unwrap().0.lines
}

#[test]
fn a_101_is_final_only_after_a_handshake_and_only_to_a_websocket() {
    let switch = |upgrade_lines: &str| {
        let raw = format!(
            "HTTP/1.1 101 Switching Protocols\r\n{upgrade_lines}Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: abc\r\nContent-Length: 5\r\n\r\nframe"
        );
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_response(&mut buf, false, true, &filter()).map(|p| (p, buf))
    };
    let Ok((Some(Parsed::Final(head, framing, reusable)), rest)) = switch("Upgrade: websocket\r\n")
    else {
        panic!("a 101 to the WebSocket asked for is final");
    };
    assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        framing,
        Framing::Done,
        "no body: what follows is the tunnel's"
    );
    assert!(!reusable);
    assert_eq!(&rest[..], b"frame");
    assert_eq!(passed(&head.lines), "Sec-WebSocket-Accept: abc\r\n");
    for other in [
        "Upgrade: h2c\r\n",
        "",
        "Upgrade: websocket\r\nUpgrade: websocket\r\n",
    ] {
        assert!(switch(other).is_err(), "{other:?}");
    }
    // Without a handshake sent, a 101 is refused.
    let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    assert!(parse(raw, false).is_err());
}

#[test]
fn hop_by_hop_lines_stay_behind_and_the_rest_pass_as_received() {
    let lines = lines_of(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\
         Keep-Alive: timeout=5\r\nDate: Fri, 27 Nov 2026 16:00:00 GMT\r\nX-Custom:  v  \r\n\
         Content-Length: 2\r\n\r\nok",
        false,
    );
    assert_eq!(
        passed(&lines),
        "Content-Type: text/plain\r\nDate: Fri, 27 Nov 2026 16:00:00 GMT\r\n\
         X-Custom:  v  \r\nContent-Length: 2\r\n"
    );
    assert!(lines.has_date() && lines.has_length());
    assert_eq!(
        lines.runs().count(),
        2,
        "one gap, two runs of the head's bytes"
    );
    let mut map = HeaderMap::new();
    lines.append_to(&mut map);
    assert_eq!(map["x-custom"], "v", "values trimmed for hyper");
    assert_eq!(map["content-length"], "2");
    assert_eq!(map.len(), 4);

    // Chunked: Transfer-Encoding and a Content-Length beside it never reach the client.
    let lines = lines_of(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\nA: 1\r\n\r\n",
        false,
    );
    assert_eq!(passed(&lines), "A: 1\r\n");
    assert!(!lines.has_length() && !lines.has_date());

    // HEAD keeps the upstream's Content-Length; a repeated one is passed once.
    let lines = lines_of(
        "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n",
        true,
    );
    assert_eq!(passed(&lines), "Content-Length: 7\r\n");

    // Connection names another header: it stays behind too.
    let lines = lines_of(
        "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nx-secret: s\r\nB: 2\r\n\
         Content-Length: 0\r\n\r\n",
        false,
    );
    assert_eq!(passed(&lines), "B: 2\r\nContent-Length: 0\r\n");

    // More gaps than runs, and bare LF line ends: copied, in canonical form.
    let gappy = "HTTP/1.1 200 OK\r\nA: 1\r\nTE: x\r\nB: 2\r\nTrailer: x\r\nC: 3\r\n\
                 Upgrade: x\r\nD: 4\r\nKeep-Alive: x\r\nE: 5\r\nContent-Length: 0\r\n\r\n";
    let lines = lines_of(gappy, false);
    assert_eq!(
        passed(&lines),
        "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nContent-Length: 0\r\n"
    );
    assert_eq!(lines.runs().count(), 1);
    let lines = lines_of("HTTP/1.1 200 OK\nA:1\nContent-Length: 0\n\n", false);
    assert_eq!(passed(&lines), "A: 1\r\nContent-Length: 0\r\n");
}

#[test]
fn hyper_gets_every_header_line_the_gateway_adds_and_the_upstreams() {
    // A refresh re-sets a session split over several cookies on an upstream's response:
    // served by hyper (HTTP/2, HTTP/1.0), each of them must reach the browser.
    let lines = lines_of(
        "HTTP/1.1 200 OK\r\nSet-Cookie: app=1\r\nCache-Control: public, max-age=60\r\n\
         Content-Length: 0\r\n\r\n",
        false,
    );
    let mut resp = http::Response::new(super::super::Body {
        kind: super::super::Kind::Full(http_body_util::Full::default()),
        head: Some(lines),
    });
    let ours = ["_ssogate=a", "_ssogate_1=b", "_ssogate_2=c"].map(HeaderValue::from_static);
    super::super::add_gateway_cookies(&mut resp, &ours);
    let resp = super::super::for_hyper(resp, false);
    let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
    assert_eq!(
        cookies,
        ["app=1", "_ssogate=a", "_ssogate_1=b", "_ssogate_2=c"]
    );
    assert_eq!(
        resp.headers()
            .get_all("cache-control")
            .iter()
            .collect::<Vec<_>>(),
        ["private, no-store"],
        "a response carrying the gateway's cookie is never kept by a cache"
    );
}

#[test]
fn framing_follows_rfc_9112() {
    let (p, f, reuse, rest) = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
        false,
    )
    .unwrap();
    assert_eq!(p.status, 200);
    assert_eq!(passed(&p.lines), "Content-Length: 5\r\nX-A: b\r\n");
    assert_eq!(f, Framing::Length(5));
    assert!(reuse);
    assert_eq!(&rest[..], b"hello");

    let (_, f, _, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
    assert_eq!(f, Framing::Done, "HEAD has no body");
    let (_, f, _, _) = parse(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(f, Framing::Done);
    let (_, f, reuse, _) = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(f, Framing::Chunked(Chunk::Size));
    assert!(!reuse, "TE with CL: the connection is not reused");
    let (_, f, reuse, _) = parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
    assert_eq!((f, reuse), (Framing::Close, false));
    let (_, _, reuse, _) = parse(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        false,
    )
    .unwrap();
    assert!(!reuse);
    // HTTP/1.0 is reused only with keep-alive, never once a line said close or after a HEAD.
    for (raw, head, reused) in [
        (&b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"[..], false, true),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true, false),
        (b"HTTP/1.0 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", false, false),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive, \xff\r\nContent-Length: 0\r\n\r\n", false, false),
    ] {
        assert_eq!(parse(raw, head).unwrap().2, reused, "{raw:?} (HEAD: {head})");
    }
    let (p, _, reuse, _) = parse(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!((p.status.as_u16(), reuse), (201, true), "1xx skipped");

    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTX/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gz\x9bp, chunked\r\n\r\n0\r\n\r\n",
        // Faulty framing (RFC 9112 6.1): an HTTP/1.0 reader reads it until the close.
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        assert!(
            parse_head(&mut BytesMut::from(bad), false, &filter()).is_err(),
            "{bad:?}"
        );
    }
}

/// Feeds `wire` in pieces of `step` bytes and collects the body.
fn decode_all(
    mut framing: Framing,
    wire: &[u8],
    step: usize,
) -> Result<(Vec<u8>, Framing, usize), &'static str> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in wire.chunks(step) {
        buf.extend_from_slice(piece);
        while let Some(data) = decode(&mut framing, &mut buf, true)? {
            out.extend_from_slice(&data);
        }
    }
    Ok((out, framing, buf.len()))
}

#[test]
fn chunked_bodies_decode_whatever_the_read_sizes() {
    let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
    for step in [1, 2, 3, 7, wire.len()] {
        let (body, framing, left) = decode_all(Framing::Chunked(Chunk::Size), wire, step).unwrap();
        assert_eq!(body, b"hello 0123456789", "step {step}");
        assert_eq!((framing, left), (Framing::Done, 0));
    }
    let (body, framing, left) = decode_all(Framing::Length(5), b"helloEXTRA", 3).unwrap();
    assert_eq!(
        (&body[..], framing, left),
        (&b"hello"[..], Framing::Done, 5)
    );
    assert!(decode_all(Framing::Chunked(Chunk::Size), b"5\r\nhelloXX0\r\n\r\n", 64).is_err());
    assert!(decode_all(Framing::Chunked(Chunk::Size), b"g\r\n", 64).is_err());
    for trailers in [
        &b"X: a\nY: b\r\n\r\n"[..],
        b"X: a\rb\r\n\r\n",
        b"no colon\r\n\r\n",
        b": v\r\n\r\n",
    ] {
        let mut wire = b"0\r\n".to_vec();
        wire.extend_from_slice(trailers);
        assert!(
            decode_all(Framing::Chunked(Chunk::Size), &wire, 64).is_err(),
            "{trailers:?}"
        );
    }
}

#[test]
fn chunk_sizes_and_lines() {
    assert_eq!(parse_chunk_size(b"1a"), Ok(26));
    assert_eq!(parse_chunk_size(b"1A ; name=value"), Ok(26));
    assert!(parse_chunk_size(b"").is_err());
    assert!(parse_chunk_size(b"zz").is_err());
    assert!(parse_chunk_size(b"ffffffffffffffffff").is_err());
    // Only spaces or tabs between the size and an extension; no line break in the line.
    assert_eq!(parse_chunk_size(b"5 \t;x"), Ok(5));
    for bad in [
        &b" 5"[..],
        b"5\n",
        b"\n5",
        b"5\x0c",
        b"5 x",
        b"5;a\rb",
        b"5;a\nb",
        b"0x5",
    ] {
        assert!(parse_chunk_size(bad).is_err(), "{bad:?}");
    }
    let mut b = BytesMut::from(&b"abc\r\ndef"[..]);
    assert_eq!(&take_line(&mut b).unwrap().unwrap()[..], b"abc");
    assert_eq!(take_line(&mut b).unwrap(), None);
    assert_eq!(&b[..], b"def");
    // A bare LF or CR is refused at once, not waited on for a CRLF.
    for bare in [&b"X-Trailer: v\n"[..], b"\n", b"5\r;x\r\n", b"X: a\rb\r\n"] {
        let mut b = BytesMut::from(bare);
        assert!(take_line(&mut b).is_err(), "{bare:?}");
    }
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut b = BytesMut::from(&b"1\r\nx\r\n0\r\nX-Trailer: v\n"[..]);
    assert_eq!(
        decode(&mut framing, &mut b, true).unwrap().as_deref(),
        Some(&b"x"[..])
    );
    assert!(decode(&mut framing, &mut b, true).is_err());
}

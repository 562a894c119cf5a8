//! The response writer of the worker's own HTTP/1.1 loop: the head as `client_headers`
//! decides it, framed (Content-Length or chunked, Date, `Connection: close`), and the body,
//! gathered into as few writes as it arrives in.

use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::proxy::{Body, BytesSink};

/// Response bytes gathered before they are written: at most one loopback segment per write
/// (`proxy::segment`).
const WRITE_BATCH: usize = crate::proxy::segment::MAX_WRITE;

/// Writes `resp`; returns whether the connection stays open. A body whose length is known
/// is sent with Content-Length, any other chunked.
pub(super) async fn write_response<S: AsyncWrite + Unpin>(
    io: &mut S,
    wbuf: &mut Vec<u8>,
    resp: Response<Body>,
    head_request: bool,
    mut keep_alive: bool,
) -> io::Result<bool> {
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = body.size_hint().exact();
    let chunked = !no_body && length.is_none();

    wbuf.clear();
    wbuf.extend_from_slice(b"HTTP/1.1 ");
    wbuf.extend_from_slice(status.as_str().as_bytes());
    wbuf.push(b' ');
    wbuf.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    wbuf.extend_from_slice(b"\r\n");
    // What goes in the head is decided in one place for every path; this writer frames it.
    let written = crate::proxy::client_headers(
        status,
        &parts.headers,
        &body,
        head_request,
        &mut BytesSink(wbuf),
    );
    let (has_date, has_length) = (written.date, written.content_length);
    if !no_body && !has_length {
        match length {
            Some(n) => {
                wbuf.extend_from_slice(b"content-length: ");
                wbuf.extend_from_slice(digits(n, 10, &mut [0; 20]));
                wbuf.extend_from_slice(b"\r\n");
            }
            None => wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
    }
    if !has_date {
        wbuf.extend_from_slice(b"date: ");
        wbuf.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        wbuf.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        wbuf.extend_from_slice(b"connection: close\r\n");
    }
    wbuf.extend_from_slice(b"\r\n");

    if !no_body {
        let mut body = pin!(body);
        let mut sent = 0u64;
        while !body.is_end_stream() {
            // Gathered bytes go out before waiting for the next piece.
            let next = match poll_now(&mut body) {
                Some(next) => next,
                None => {
                    write_out(io, wbuf).await?;
                    body.frame().await
                }
            };
            let data = match next {
                None => break,
                Some(Err(e)) => {
                    // What arrived goes out first (as hyper would have sent it); the client
                    // sees the body end short, as framed, and the connection close.
                    let _ = write_out(io, wbuf).await;
                    return Err(io::Error::other(e));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers are not passed on
                },
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            if chunked {
                wbuf.extend_from_slice(digits(data.len() as u64, 16, &mut [0; 20]));
                wbuf.extend_from_slice(b"\r\n");
            }
            if wbuf.len() + data.len() > WRITE_BATCH {
                write_out(io, wbuf).await?;
                for piece in data.chunks(crate::proxy::segment::share(data.len())) {
                    io.write_all(piece).await?;
                }
            } else {
                wbuf.extend_from_slice(&data);
            }
            if chunked {
                wbuf.extend_from_slice(b"\r\n");
            }
        }
        if chunked {
            wbuf.extend_from_slice(b"0\r\n\r\n");
        } else if length != Some(sent) {
            // The body broke off (or overran): the client cannot tell, so the connection ends.
            keep_alive = false;
        }
    }
    write_out(io, wbuf).await?;
    Ok(keep_alive)
}

/// The body's next frame if it is ready without waiting.
fn poll_now(
    body: &mut Pin<&mut Body>,
) -> Option<Option<Result<http_body::Frame<Bytes>, <Body as http_body::Body>::Error>>> {
    let waker = futures_util::task::noop_waker_ref();
    match body.as_mut().poll_frame(&mut Context::from_waker(waker)) {
        Poll::Ready(next) => Some(next),
        Poll::Pending => None,
    }
}

pub(super) async fn write_out<S: AsyncWrite + Unpin>(
    io: &mut S,
    wbuf: &mut Vec<u8>,
) -> io::Result<()> {
    if !wbuf.is_empty() {
        io.write_all(wbuf).await?;
        wbuf.clear();
    }
    Ok(())
}

/// `n` in base 10 or 16 (lower case), written into `out` without allocating.
fn digits(mut n: u64, base: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b"0123456789abcdef"[(n % base) as usize];
        n /= base;
        if n == 0 {
            return &out[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_in_decimal_and_hex() {
        for n in [0u64, 7, 10, 255, 1234567890, u64::MAX] {
            assert_eq!(digits(n, 10, &mut [0; 20]), n.to_string().as_bytes());
            assert_eq!(digits(n, 16, &mut [0; 20]), format!("{n:x}").as_bytes());
        }
    }
}

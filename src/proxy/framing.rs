//! How an upstream response's body is delimited (`Framing`) and taken off the connection's
//! buffer (`decode`): by length, until close, or chunked (RFC 9112 7.1), strictly, as hyper
//! reads it, so that no reader of the same bytes frames the body otherwise. Pure functions
//! over a buffer: the upstream client (`h1`) reads, this decodes (fuzzed in `fuzz/`).

use bytes::{Bytes, BytesMut};

/// A chunk-size line or trailer line longer than this is refused.
const MAX_LINE: usize = 4096;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
    /// The framing after the data already passed on is malformed: the next read fails.
    Broken(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// Decodes what is buffered: the next data (only with `take_data`), or `None` when more
/// bytes are needed or, without `take_data`, when data comes next. Framing that carries no
/// data (a chunk's CRLF, the last chunk, trailers) is consumed either way.
pub(crate) fn decode(
    framing: &mut Framing,
    buf: &mut BytesMut,
    take_data: bool,
) -> Result<Option<Bytes>, &'static str> {
    loop {
        match *framing {
            Framing::Done => return Ok(None),
            Framing::Broken(what) => return Err(what),
            Framing::Length(0) => *framing = Framing::Done,
            Framing::Length(rem) => {
                if buf.is_empty() || !take_data {
                    return Ok(None);
                }
                let take = buf.len().min(usize::try_from(rem).unwrap_or(usize::MAX));
                *framing = Framing::Length(rem - take as u64);
                return Ok(Some(buf.split_to(take).freeze()));
            }
            Framing::Close => {
                if buf.is_empty() || !take_data {
                    return Ok(None);
                }
                return Ok(Some(buf.split().freeze()));
            }
            Framing::Chunked(Chunk::Data(rem)) => {
                if buf.is_empty() || !take_data {
                    return Ok(None);
                }
                let take = buf.len().min(usize::try_from(rem).unwrap_or(usize::MAX));
                let rem = rem - take as u64;
                *framing = Framing::Chunked(if rem == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rem)
                });
                return Ok(Some(buf.split_to(take).freeze()));
            }
            Framing::Chunked(Chunk::DataEnd) => {
                if buf.len() < 2 {
                    return Ok(None);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF");
                }
                let _ = buf.split_to(2);
                *framing = Framing::Chunked(Chunk::Size);
            }
            Framing::Chunked(Chunk::Size) => {
                let Some(line) = take_line(buf)? else {
                    return Ok(None);
                };
                let size = parse_chunk_size(&line)?;
                *framing = Framing::Chunked(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                });
            }
            Framing::Chunked(Chunk::Trailers) => {
                // Trailer fields are not passed on.
                let Some(line) = take_line(buf)? else {
                    return Ok(None);
                };
                if line.is_empty() {
                    *framing = Framing::Done;
                } else if !is_field_line(&line) {
                    return Err("malformed trailer field");
                }
            }
        }
    }
}

/// Takes one CRLF-terminated line (without the CRLF) off the front of `buf`. A bare LF or
/// CR is refused at once (RFC 9112 2.2 lets a recipient refuse them): waiting for a CRLF
/// that never comes would hold the client until the response timeout, and a reader that
/// took the bare LF as a line end would frame the body differently.
pub(super) fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, &'static str> {
    match memchr::memchr(b'\n', buf) {
        Some(at) if at > MAX_LINE + 1 => Err("chunk line too long"),
        Some(at) => {
            if at == 0 || buf[at - 1] != b'\r' {
                return Err("bare LF in a chunk line");
            }
            if memchr::memchr(b'\r', &buf[..at - 1]).is_some() {
                return Err("bare CR in a chunk line");
            }
            let line = buf.split_to(at - 1);
            let _ = buf.split_to(2);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err("chunk line too long"),
        None => Ok(None),
    }
}

/// `name: value` with a token for a name and no control byte (a bare CR or LF above all) in
/// the value: a trailer line as hyper takes it, so no reader of the same bytes ends the
/// trailer section elsewhere.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    colon > 0
        && line[..colon].iter().all(tchar)
        && line[colon + 1..]
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `chunk-size [BWS] [; chunk-ext]` (RFC 9112 7.1). Strict, as hyper is: a size read
/// leniently (` 5`, `5\n`) is read otherwise by whoever frames the stream next.
pub(super) fn parse_chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(end);
    let ext = rest.trim_ascii_start();
    if digits.len() > 15 {
        // Leading zeros included: no body needs them, and the sum cannot overflow.
        return Err("chunk size of more than 15 digits");
    }
    if digits.is_empty()
        || !(ext.is_empty() || ext[0] == b';')
        || rest[..rest.len() - ext.len()]
            .iter()
            .any(|&b| b != b' ' && b != b'\t')
        || ext.iter().any(|&b| b == b'\r' || b == b'\n')
    {
        return Err("bad chunk size");
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).ok_or("bad chunk size")?;
        Ok(n * 16 + u64::from(v))
    })
}

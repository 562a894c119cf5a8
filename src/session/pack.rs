//! How the `memory` store keeps a session record: its JSON with every token (a JWT or a JWE:
//! dot-separated base64url parts) held as the bytes the base64url stands for, a quarter less
//! than the text. Exact: unpacking gives back the very JSON text that was packed. Never
//! decides anything about the tokens it holds; anything that is not canonical base64url stays
//! text.

use std::cell::RefCell;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Marks a packed token in the packed bytes. The JSON serde_json writes holds no raw control
/// characters (they are escaped inside strings); text that does is kept as it is (`AS_TEXT`).
const TOKEN: u8 = 0x01;
/// First byte of the packed form: what follows.
const AS_TEXT: u8 = 0;
const WITH_TOKENS: u8 = 1;
/// Shorter strings are kept as text: not worth the marker and lengths.
const MIN_TOKEN_LEN: usize = 64;
/// A JWE has five parts; anything with more is kept as text.
const MAX_PARTS: usize = 8;

thread_local! {
    /// Where a record is packed before it is copied out at its exact size: one allocation per
    /// record kept, and none of a size near it freed beside it (glibc then leaves holes that
    /// the next records do not fit: 3.3 KB per Cognito session instead of 2.1 KB).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `json` with each long base64url string value (tokens) replaced by its decoded bytes.
pub fn pack(json: &str) -> Arc<[u8]> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut out) => {
            out.clear();
            pack_into(json, &mut out);
            Arc::from(&out[..])
        }
        // Not reached (nothing here calls pack again), but never a panic for it.
        Err(_) => {
            let mut out = Vec::new();
            pack_into(json, &mut out);
            Arc::from(out)
        }
    })
}

fn pack_into(json: &str, out: &mut Vec<u8>) {
    let bytes = json.as_bytes();
    if bytes.contains(&TOKEN) {
        out.push(AS_TEXT);
        out.extend_from_slice(bytes);
        return;
    }
    out.push(WITH_TOKENS);
    let mut copied = 0;
    let mut i = 0;
    while let Some(open) = memchr::memchr(b'"', &bytes[i..]).map(|p| i + p) {
        let Some(close) = string_end(bytes, open + 1) else {
            break;
        };
        let text = &json[open + 1..close];
        if looks_like_token(text) {
            let before = out.len();
            out.extend_from_slice(&bytes[copied..open]);
            if push_token(text, out) {
                copied = close + 1;
            } else {
                out.truncate(before);
            }
        }
        i = close + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
}

/// The JSON text `pack` was given; `None` for bytes `pack` did not make.
pub fn unpack(packed: &[u8]) -> Option<String> {
    let (&kind, mut rest) = packed.split_first()?;
    if kind == AS_TEXT {
        return String::from_utf8(rest.to_vec()).ok();
    }
    let mut out = String::with_capacity(packed.len() * 4 / 3 + 16);
    while let Some(at) = memchr::memchr(TOKEN, rest) {
        out.push_str(std::str::from_utf8(&rest[..at]).ok()?);
        rest = &rest[at + 1..];
        let (count, r) = take_len(rest)?;
        rest = r;
        out.push('"');
        for n in 0..count {
            let (len, r) = take_len(rest)?;
            let part = r.get(..len)?;
            if n > 0 {
                out.push('.');
            }
            URL_SAFE_NO_PAD.encode_string(part, &mut out);
            rest = &r[len..];
        }
        out.push('"');
    }
    out.push_str(std::str::from_utf8(rest).ok()?);
    Some(out)
}

/// Index of the `"` that ends the JSON string whose text starts at `from`.
fn string_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', &bytes[i..])?;
        if bytes[at] == b'"' {
            return Some(at);
        }
        i = at + 2; // an escape: skip the escaped character
    }
}

/// A long string of base64url characters and dots, in at most `MAX_PARTS` parts.
fn looks_like_token(text: &str) -> bool {
    text.len() >= MIN_TOKEN_LEN
        && text.bytes().filter(|&b| b == b'.').count() < MAX_PARTS
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Appends the token's parts decoded (straight into `out`: no allocation of their own); false
/// when a part is not canonical base64url without padding, which would not come back as the
/// same text (the engine refuses padding and stray bits in the last character).
fn push_token(text: &str, out: &mut Vec<u8>) -> bool {
    out.push(TOKEN);
    push_len(out, text.split('.').count());
    for part in text.split('.') {
        let len = part.len() * 3 / 4;
        push_len(out, len);
        let at = out.len();
        if URL_SAFE_NO_PAD.decode_vec(part, out).is_err() || out.len() - at != len {
            return false;
        }
    }
    true
}

/// A length as 7-bit groups, low first (LEB128).
fn push_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut n = 0usize;
    for (i, b) in bytes.iter().enumerate().take(4) {
        n |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

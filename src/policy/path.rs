//! Path normalisation.
//!
//! Two views of one request path:
//! - the *forward* path, sent upstream: unreserved escapes decoded (`%61` -> `a`, `%2e` -> `.`),
//!   other escapes in upper case, `.`/`..` segments resolved, duplicate slashes merged;
//! - the *match* path, used to pick the route: the forward path read as pessimistically as any
//!   upstream might read it (`;params` dropped from each segment as Tomcat does, `%2F`, `%5C`
//!   and `\` taken as slashes).
//!
//! A path that hides a `.` or `..` segment from the forward view (`..;/`, `%2F..%2F`, `\..\`)
//! is refused: Tomcat would resolve it and nginx, Go or Express would not, so no one route
//! decision could hold for every upstream. So is an overlong UTF-8 escape (`%C0%AE` is a `.`
//! to old decoders), an encoded control byte (C upstreams stop at `%00`), and a segment that
//! ends in a dot or a space (`/admin./`, `/admin%20/`: IIS and Windows servers trim them, so
//! `/admin.` is `/admin` there). Otherwise the match path only splits and unwraps segments
//! the forward path keeps, and a decision made on it holds for whatever the upstream makes of
//! the forward path.
//!
//! Routes compare the match path without regard to ASCII case (`RouteTable`); the four
//! non-ASCII letters whose case mapping is ASCII (`ſ` to `S`, `K` to `k`, `ı` to `I`, `İ` to
//! `i`, as Java's `equalsIgnoreCase` and .NET's `OrdinalIgnoreCase` map them) are read as
//! those ASCII letters in the match path, raw or escaped.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path has a malformed percent-escape")]
    BadEscape,
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("the request target is not a URI")]
    BadTarget,
    #[error("the path hides a '.' or '..' segment behind ';', an encoded slash or a backslash")]
    HiddenDotSegment,
    #[error("the path has an overlong UTF-8 escape (like %C0%AE for '.')")]
    Overlong,
    #[error("the path has an encoded control byte (like %00)")]
    ControlByte,
    #[error("a path segment ends in a dot or a space, which some servers trim")]
    TrailingDotOrSpace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a> {
    pub(crate) forward: Cow<'a, str>,
    /// `None` when the match path equals the forward path.
    matching: Option<String>,
}

impl NormalizedPath<'_> {
    pub fn forward_path(&self) -> &str {
        &self.forward
    }

    /// The forward path when normalising changed it.
    pub fn into_changed(self) -> Option<String> {
        match self.forward {
            Cow::Borrowed(_) => None,
            Cow::Owned(s) => Some(s),
        }
    }

    pub fn match_path(&self) -> &str {
        self.matching.as_deref().unwrap_or(&self.forward)
    }
}

/// Normalises a request path (without the query). Clean paths, the usual case, borrow.
pub fn normalize(raw: &str) -> Result<NormalizedPath<'_>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_clean(raw) {
        return Ok(NormalizedPath {
            forward: Cow::Borrowed(raw),
            matching: None,
        });
    }
    let decoded = decode_unreserved(raw)?;
    let forward = resolve_segments(decoded.split('/'), raw_ends_with_slash(&decoded));
    let matching = match_view(&forward)?;
    Ok(NormalizedPath {
        matching: (matching != forward).then_some(matching),
        forward: Cow::Owned(forward),
    })
}

/// No escapes, no backslash, no `;`, no `//`, no `.` segment, no segment ending in a dot,
/// only ASCII.
fn is_clean(p: &str) -> bool {
    let b = p.as_bytes();
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'%' | b'\\' | b';' | 0x80.. => return false,
            b'/' if prev == b'/' => return false,
            b'.' if matches!(b.get(i + 1), None | Some(b'/')) => return false,
            b'.' if prev == b'/' && b.get(i + 1) == Some(&b'.') => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    // The bytes of the current run of `%XX` escapes, checked for overlong forms at its end.
    let mut escaped: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' && !escaped.is_empty() {
            if overlong(&escaped) {
                return Err(PathError::Overlong);
            }
            escaped.clear();
        }
        if b[i] == b'%' {
            let (h, l) = match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => (h, l),
                _ => return Err(PathError::BadEscape),
            };
            let v = h * 16 + l;
            if v < 0x20 || v == 0x7f {
                return Err(PathError::ControlByte);
            }
            escaped.push(v);
            if is_unreserved(v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(b[i + 1].to_ascii_uppercase() as char);
                out.push(b[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
        } else {
            // Multi-byte UTF-8 is copied whole: find the char at i.
            let ch = raw[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    if overlong(&escaped) {
        return Err(PathError::Overlong);
    }
    Ok(out)
}

/// An overlong UTF-8 form: no encoder makes one, and decoders that accept them read `%C0%AE`
/// as `.` and `%C0%AF` as `/`. Other bytes (Latin-1 `%E9`, say) are the upstream's business.
fn overlong(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == 0xC0 || b == 0xC1)
        || bytes
            .windows(2)
            .any(|w| matches!(w, [0xE0, 0x80..=0x9F] | [0xF0, 0x80..=0x8F]))
}

fn raw_ends_with_slash(p: &str) -> bool {
    p.ends_with('/') || p.ends_with("/.") || p.ends_with("/..")
}

/// Drops empty and `.` segments, applies `..`, joins with single slashes.
fn resolve_segments<'s>(segments: impl Iterator<Item = &'s str>, trailing_slash: bool) -> String {
    let mut stack: Vec<&str> = Vec::new();
    for seg in segments {
        match seg {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(64);
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

fn match_view(forward: &str) -> Result<String, PathError> {
    let mut slashed = forward
        .replace("%2F", "/")
        .replace("%5C", "/")
        .replace('\\', "/");
    if !slashed.is_ascii()
        || slashed.contains("%C4%B")
        || slashed.contains("%C5%BF")
        || slashed.contains("%E2%84%AA")
    {
        slashed = fold_to_ascii(&slashed);
    }
    let segments = slashed
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""));
    // The forward path has no `.` or `..` segment left: one here was hidden from it.
    if segments.clone().any(|seg| seg == "." || seg == "..") {
        return Err(PathError::HiddenDotSegment);
    }
    if segments
        .clone()
        .any(|seg| seg.ends_with('.') || seg.ends_with("%20"))
    {
        return Err(PathError::TrailingDotOrSpace);
    }
    Ok(resolve_segments(segments, slashed.ends_with('/')))
}

/// The letters whose case mapping leaves ASCII, raw or escaped, as the ASCII letter a
/// case-insensitive upstream takes them for.
fn fold_to_ascii(path: &str) -> String {
    const FOLDS: [(&str, &str); 8] = [
        ("\u{17F}", "s"),
        ("%C5%BF", "s"),
        ("\u{212A}", "k"),
        ("%E2%84%AA", "k"),
        ("\u{131}", "i"),
        ("%C4%B1", "i"),
        ("\u{130}", "i"),
        ("%C4%B0", "i"),
    ];
    let mut out = path.to_string();
    for (from, to) in FOLDS {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

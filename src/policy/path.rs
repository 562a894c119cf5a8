//! Path normalisation.
//!
//! Two views of one request path:
//! - the *forward* path, sent upstream: unreserved escapes decoded (`%61` -> `a`, `%2e` -> `.`),
//!   other escapes in upper case, `.`/`..` segments resolved, duplicate slashes merged;
//! - the *match* path, used to pick the route: the forward path read as pessimistically as any
//!   upstream might read it (`;params` dropped from each segment as Tomcat does, `%2F`, `%5C`
//!   and `\` taken as slashes), then resolved again.
//!
//! A route decision made on the match path therefore holds for whatever the upstream makes of
//! the forward path.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path has a malformed percent-escape")]
    BadEscape,
    #[error("the path does not start with '/'")]
    NotAbsolute,
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
    let matching = match_view(&forward);
    Ok(NormalizedPath {
        matching: (matching != forward).then_some(matching),
        forward: Cow::Owned(forward),
    })
}

/// No escapes, no backslash, no `;`, no `//`, no `.` segment.
fn is_clean(p: &str) -> bool {
    let b = p.as_bytes();
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'%' | b'\\' | b';' => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => {
                let next = b.get(i + 1).copied();
                if matches!(next, None | Some(b'/') | Some(b'.')) {
                    return false;
                }
            }
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
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (h, l) = match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => (h, l),
                _ => return Err(PathError::BadEscape),
            };
            let v = h * 16 + l;
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
    Ok(out)
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

fn match_view(forward: &str) -> String {
    let slashed = forward
        .replace("%2F", "/")
        .replace("%5C", "/")
        .replace('\\', "/");
    let trailing = raw_ends_with_slash(&slashed)
        || slashed.ends_with("/..;")
        || slashed.rsplit('/').next().is_some_and(|last| {
            let name = last.split(';').next().unwrap_or("");
            name == ".." || name == "."
        });
    let segments = slashed
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""));
    resolve_segments(segments, trailing)
}

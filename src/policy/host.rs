//! Which host a request is for, read as strictly as any upstream could read it.
//!
//! A host header that is not exactly one authority (RFC 9112 3.2, RFC 3986 3.2.2) is refused,
//! never routed: `app.example:80:80`, `x@app.example`, `app.example, x` or `app.example/x`
//! are each read differently by different servers (cut at the first `:`, after the `@`, at
//! the comma), so no route decision made on one reading could hold for the upstream's.
//! Allowed: a DNS name (letters, digits, `-`, `_`, dots between non-empty labels, at most one
//! trailing dot), an IPv4 address, or a bracketed IPv6 address; then an optional port of 1 to
//! 5 digits up to 65535. Nothing else: no userinfo, no percent-escapes, no sub-delims (a
//! reg-name may hold them by RFC 3986, but `,` splits lists and `;` parameters), no IPvFuture,
//! no zone ids, no empty port.

use http::header::{self, HeaderMap, HeaderName};
use http::{Uri, Version};

/// Longest host name (253 for DNS, plus a trailing dot and a port).
const MAX_AUTHORITY: usize = 262;

static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Why a request's host cannot choose a route (all 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request names its host twice, differently")]
    Two,
    #[error("the HTTP/1.1 request names no host")]
    None,
    #[error("the host {0}")]
    Invalid(&'static str),
    #[error("X-Forwarded-Host {0}")]
    InvalidForwarded(&'static str),
    #[error("X-Forwarded-Host and Host name different routes")]
    Disagree,
}

/// A validated host: the name a route is chosen by (no port, no trailing dot; compare it
/// without regard to ASCII case) and the authority exactly as the request wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host<'a> {
    /// As received (valid, so safe to pass on as it is).
    pub authority: &'a str,
    /// `authority` without its port and trailing dot.
    pub name: &'a str,
}

/// Checks one authority (`host[:port]`); see the module documentation. One pass over the
/// bytes for a name or IPv4 address (it runs on every request).
pub fn parse_authority(raw: &[u8]) -> Result<Host<'_>, &'static str> {
    if raw.is_empty() {
        return Err("is empty");
    }
    if raw.len() > MAX_AUTHORITY {
        return Err("is too long");
    }
    if raw[0] == b'[' {
        return parse_ip_literal(raw);
    }
    // `prev` starts as a dot, so a leading dot is an empty label.
    let mut prev = b'.';
    let mut end = raw.len();
    for (i, &b) in raw.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => {}
            b'.' if prev == b'.' => return Err("has an empty label ('..' or a leading dot)"),
            b'.' => {}
            b':' => {
                end = i;
                break;
            }
            _ => return Err("may hold only letters, digits, '-', '_' and '.' (no '@', ',', '/', '%', spaces or control bytes)"),
        }
        prev = b;
    }
    if end < raw.len() {
        check_port(&raw[end + 1..])?;
    }
    let host = &raw[..end];
    let name = host.strip_suffix(b".").unwrap_or(host);
    if name.is_empty() {
        return Err("has no name");
    }
    if looks_numeric(last_label(name)) && !is_dotted_ipv4(name) {
        // Browsers and Node read `2130706433`, `0x7f.1` and `1.2.3` as IPv4 addresses
        // (`010.0.0.1` as 8.0.0.1), where a name lookup reads them as names.
        return Err("is neither a name nor a dotted IPv4 address (a last label of digits or 0x is read as an address by some)");
    }
    // ASCII, checked above.
    let text = std::str::from_utf8(raw).map_err(|_| "is not ASCII")?;
    Ok(Host {
        authority: text,
        name: &text[..name.len()],
    })
}

fn last_label(name: &[u8]) -> &[u8] {
    name.rsplit(|&b| b == b'.').next().unwrap_or(name)
}

/// All digits, or `0x` and hex digits: what WHATWG URL parsers take for part of an IPv4
/// address.
fn looks_numeric(label: &[u8]) -> bool {
    let hex = label
        .strip_prefix(b"0x")
        .or_else(|| label.strip_prefix(b"0X"));
    match hex {
        Some(digits) => digits.iter().all(u8::is_ascii_hexdigit),
        None => !label.is_empty() && label.iter().all(u8::is_ascii_digit),
    }
}

/// Four decimal parts without leading zeros (`std`'s reading, the only one every reader
/// shares).
fn is_dotted_ipv4(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
}

/// `[v6]` or `[v6]:port`.
fn parse_ip_literal(raw: &[u8]) -> Result<Host<'_>, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "is not ASCII")?;
    let end = text.find(']').ok_or("has an unclosed '['")?;
    if text[1..end].parse::<std::net::Ipv6Addr>().is_err() {
        return Err("has a bracketed part that is not an IPv6 address");
    }
    match &raw[end + 1..] {
        [] => {}
        [b':', port @ ..] => check_port(port)?,
        _ => return Err("has something after its IPv6 address"),
    }
    Ok(Host {
        authority: text,
        name: &text[..=end],
    })
}

/// 1 to 5 digits, at most 65535.
fn check_port(port: &[u8]) -> Result<(), &'static str> {
    if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
        return Err("has a port that is not a number (or a second ':')");
    }
    let value = port.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if value > 65535 {
        return Err("has a port above 65535");
    }
    Ok(())
}

/// Where the host of a request comes from, and whether a proxy's word is believed.
#[derive(Debug, Clone, Copy)]
pub struct HostSource<'a> {
    pub headers: &'a HeaderMap,
    pub uri: &'a Uri,
    pub version: Version,
    /// A trusted proxy sent the request and `server.trusted_forwarded_headers` lists
    /// X-Forwarded-Host.
    pub believe_forwarded_host: bool,
}

/// The request's own host (Host, or the target's authority, HTTP/2's `:authority` included),
/// validated. Refused when the request names two (two Host headers, or a target authority
/// and a Host that differ), since which one names the site would be up to whoever reads it,
/// and when an HTTP/1.1 request names none (RFC 9112 3.2).
pub fn request_host<'a>(
    headers: &'a HeaderMap,
    uri: &'a Uri,
    version: Version,
) -> Result<Option<Host<'a>>, HostError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Two);
    }
    let target = uri.authority().map(|a| a.as_str());
    let raw = match (host, target) {
        (Some(host), Some(target)) => {
            if !host.as_bytes().eq_ignore_ascii_case(target.as_bytes()) {
                return Err(HostError::Two);
            }
            host.as_bytes()
        }
        (Some(host), None) => host.as_bytes(),
        (None, Some(target)) => target.as_bytes(),
        (None, None) if version == Version::HTTP_11 => return Err(HostError::None),
        (None, None) => return Ok(None),
    };
    parse_authority(raw).map(Some).map_err(HostError::Invalid)
}

/// A trusted proxy's X-Forwarded-Host, when it is believed and present: exactly one value
/// (a list means the proxy appended to what the client sent), validated like Host.
pub fn forwarded_host<'a>(source: &HostSource<'a>) -> Result<Option<Host<'a>>, HostError> {
    if !source.believe_forwarded_host {
        return Ok(None);
    }
    let mut values = source.headers.get_all(&X_FORWARDED_HOST).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() || value.as_bytes().contains(&b',') {
        return Err(HostError::InvalidForwarded(
            "has several values: the proxy in front must set it, not append to the client's",
        ));
    }
    parse_authority(value.as_bytes().trim_ascii())
        .map(Some)
        .map_err(HostError::InvalidForwarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_authority_passes_as_it_was_written() {
        for (raw, name) in [
            ("app.example.com", "app.example.com"),
            ("App.Example.COM:8443", "App.Example.COM"),
            ("app.example.com.", "app.example.com"),
            ("app.example.com.:443", "app.example.com"),
            ("127.0.0.1:4180", "127.0.0.1"),
            ("[::1]:4180", "[::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
            ("localhost", "localhost"),
            ("my_service.internal", "my_service.internal"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ] {
            let h = parse_authority(raw.as_bytes()).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!((h.authority, h.name), (raw, name));
        }
    }

    #[test]
    fn anything_an_upstream_could_read_two_ways_is_refused() {
        for raw in [
            "app.example:80:80",
            "x@app.example",
            "app.example, x",
            "app.example,x",
            "app.example/x",
            "app.example\\x",
            "app.example x",
            "app.example\tx",
            "app.example%2fx",
            "app.example:",
            "app.example:+80",
            "app.example:99999",
            "app.example:123456",
            "app..example",
            ".app.example",
            "app.example..",
            ".",
            "",
            "[::1",
            "[::1]x",
            "[::1]:80:80",
            "[v1.fe]",
            "[fe80::1%25eth0]",
            "app.example;x",
            "app.exämple",
            "app.example\0",
            "app.example?x",
            "app.example#x",
            "*",
            // Read as IPv4 addresses by browsers and Node, as names by a resolver.
            "2130706433",
            "0x7f.1",
            "1.2.3",
            "a.1",
            "010.0.0.1",
            "app.0x1",
        ] {
            assert!(
                parse_authority(raw.as_bytes()).is_err(),
                "{raw:?} was accepted"
            );
        }
        assert!(parse_authority(&[b'a'; 300]).is_err());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_request_names_one_valid_host_or_none_at_all() {
        let origin: Uri = "/x".parse().unwrap();
        let absolute: Uri = "http://app.example/x".parse().unwrap();
        let h = headers(&[("host", "app.example")]);
        assert_eq!(
            request_host(&h, &origin, Version::HTTP_11)
                .unwrap()
                .unwrap()
                .name,
            "app.example"
        );
        assert!(request_host(&h, &absolute, Version::HTTP_11).is_ok());
        let other = headers(&[("host", "other.example")]);
        assert_eq!(
            request_host(&other, &absolute, Version::HTTP_11),
            Err(HostError::Two)
        );
        let two = headers(&[("host", "app.example"), ("host", "app.example")]);
        assert_eq!(
            request_host(&two, &origin, Version::HTTP_11),
            Err(HostError::Two)
        );
        assert_eq!(
            request_host(&HeaderMap::new(), &origin, Version::HTTP_11),
            Err(HostError::None)
        );
        assert_eq!(
            request_host(&HeaderMap::new(), &origin, Version::HTTP_10),
            Ok(None)
        );
        let bad = headers(&[("host", "app.example:80:80")]);
        assert!(matches!(
            request_host(&bad, &origin, Version::HTTP_11),
            Err(HostError::Invalid(_))
        ));
        let empty = headers(&[("host", "")]);
        assert!(request_host(&empty, &origin, Version::HTTP_11).is_err());
    }

    #[test]
    fn a_forwarded_host_is_believed_only_when_asked_and_only_one() {
        let uri: Uri = "/".parse().unwrap();
        let h = headers(&[("host", "gw.internal"), ("x-forwarded-host", "app.example")]);
        let mut source = HostSource {
            headers: &h,
            uri: &uri,
            version: Version::HTTP_11,
            believe_forwarded_host: false,
        };
        assert_eq!(forwarded_host(&source), Ok(None));
        source.believe_forwarded_host = true;
        assert_eq!(
            forwarded_host(&source).unwrap().unwrap().name,
            "app.example"
        );
        for bad in [
            &[("x-forwarded-host", "evil.example, app.example")][..],
            &[
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-host", "app.example"),
            ],
            &[("x-forwarded-host", "app.example:80:80")],
            &[("x-forwarded-host", "x@app.example")],
        ] {
            let h = headers(bad);
            let source = HostSource {
                headers: &h,
                ..source
            };
            assert!(forwarded_host(&source).is_err(), "{bad:?}");
        }
    }
}

//! The Host / authority validator (`policy::parse_authority`) against `http::uri::Authority`
//! and the `url` crate (WHATWG): whatever it accepts is one authority that both read the
//! same way (same host, same port), with no userinfo, no second port and none of `,`, `/`,
//! space or control bytes. See ../README.md.
#![no_main]

use std::str::FromStr;

use http::uri::Authority;
use libfuzzer_sys::fuzz_target;
use ssogate::policy::parse_authority;

fuzz_target!(|data: &[u8]| {
    let Ok(host) = parse_authority(data) else {
        return;
    };
    let raw = host.authority;
    assert_eq!(
        raw.as_bytes(),
        data,
        "the authority is passed on as received"
    );
    assert!(
        !raw.bytes().any(|b| b.is_ascii_control()
            || matches!(
                b,
                b' ' | b',' | b'/' | b'\\' | b'@' | b'%' | b'?' | b'#' | b';'
            )),
        "accepted {raw:?}, which holds a delimiter or control byte"
    );

    // Where the name ends and the port starts, read the plain way.
    let (name_part, port) = match raw.rfind(':') {
        Some(i) if !raw[i..].contains(']') => (&raw[..i], Some(&raw[i + 1..])),
        _ => (raw, None),
    };
    assert!(
        !name_part.trim_start_matches('[').contains(':') || name_part.starts_with('['),
        "accepted {raw:?}, which has a second ':'"
    );
    let port: Option<u16> = port.map(|p| {
        p.parse()
            .unwrap_or_else(|_| panic!("accepted {raw:?}, whose port is not a number"))
    });
    assert_eq!(
        host.name,
        name_part.strip_suffix('.').unwrap_or(name_part),
        "the name of {raw:?}"
    );

    // http's reading: the same authority, host and port.
    let authority = Authority::from_str(raw)
        .unwrap_or_else(|e| panic!("accepted {raw:?}, http::uri::Authority refuses it: {e}"));
    assert_eq!(authority.as_str(), raw);
    assert_eq!(authority.host(), name_part, "http's host of {raw:?}");
    assert_eq!(authority.port_u16(), port, "http's port of {raw:?}");

    // A name whose last label WHATWG reads as a number (all digits, or 0x and hex) must be a
    // dotted-quad IPv4 address: the validator refuses the others (`a.1`, `0x7f.1`, ...).
    assert!(
        !ends_in_number(host.name) || host.name.parse::<std::net::Ipv4Addr>().is_ok(),
        "accepted {raw:?}, which a WHATWG parser reads as an IPv4 address of its own"
    );

    // WHATWG URL's reading (browsers, Node): the same host (lower-cased, dot kept) and port.
    let url = match url::Url::parse(&format!("http://{raw}/")) {
        Ok(url) => url,
        // Accepted difference (README): the validator does not decode IDNA, so an `xn--`
        // label that is not valid Punycode passes; WHATWG refuses it outright, which is no
        // second reading of the host, only none.
        Err(url::ParseError::IdnaError) if raw.to_ascii_lowercase().contains("xn--") => return,
        Err(e) => panic!("accepted {raw:?}, the url crate refuses it: {e}"),
    };
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "userinfo in {raw:?}"
    );
    match url.host() {
        // An IP address has many spellings (and WHATWG drops an IPv4 trailing dot):
        // compare the addresses.
        Some(url::Host::Ipv6(theirs)) => assert_eq!(
            Some(theirs),
            host.name
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok()),
            "the url crate reads the address of {raw:?} otherwise"
        ),
        Some(url::Host::Ipv4(theirs)) => assert_eq!(
            Ok(theirs),
            host.name.parse(),
            "the url crate reads the address of {raw:?} otherwise"
        ),
        _ => assert_eq!(
            url.host_str(),
            Some(name_part.to_ascii_lowercase().as_str()),
            "the url crate reads the host of {raw:?} otherwise"
        ),
    }
    assert_eq!(
        url.port_or_known_default(),
        Some(port.unwrap_or(80)),
        "the url crate reads the port of {raw:?} otherwise"
    );
});

/// WHATWG URL's "ends in a number": its last label (a trailing dot aside) is digits, or `0x`
/// and hex digits, so the host is parsed as an IPv4 address.
fn ends_in_number(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let last = name.rsplit('.').next().unwrap_or_default();
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        || last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

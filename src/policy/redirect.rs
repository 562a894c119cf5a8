//! Where the browser may be sent after sign-in and sign-out.
//!
//! Accepted: a same-origin path (`/x?y`), or an absolute `http(s)://` URL on our own origin
//! (same scheme, host and port) or on a host listed in `server.allowed_redirect_hosts`
//! (`.example.com` admits its subdomains).
//! Refused (the caller falls back to `/`): protocol-relative and backslash tricks (`//evil`,
//! `/\evil`, `\/evil`, and `/.//evil`, which a browser resolves to `//evil`), scheme tricks (`https:evil`, `javascript:`), userinfo (`@`),
//! control characters and whitespace (raw or percent-encoded), and any non-ASCII character
//! (look-alike slashes and hosts).

/// Returns the target to redirect to, or `None` when it is not safe. `own_origin` is
/// `scheme://host[:port]` as the browser sees the gateway.
pub fn safe_redirect<'a>(
    rd: &'a str,
    own_origin: &str,
    allowed_hosts: &[String],
) -> Option<&'a str> {
    if rd.is_empty() || !rd.is_ascii() {
        return None;
    }
    if rd.bytes().any(|c| c == b' ') || has_forbidden_bytes(rd.as_bytes()) {
        return None;
    }
    // Look once through percent-encoding: browsers and upstreams may decode it.
    let decoded = percent_decode(rd);
    if has_forbidden_bytes(&decoded) {
        return None;
    }
    if rd.starts_with('/') {
        return (!leaves_the_origin(rd.as_bytes()) && !leaves_the_origin(&decoded)).then_some(rd);
    }
    let lower = rd.to_ascii_lowercase();
    let (scheme, rest) = match lower.split_once("://") {
        Some((scheme @ ("https" | "http"), rest)) => (scheme, rest),
        _ => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.is_empty() || authority.contains('@') || authority.contains('%') {
        return None;
    }
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !h.starts_with('[') || h.ends_with(']') => {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            h
        }
        _ => authority,
    };
    let admitted = same_origin(scheme, authority, own_origin)
        || allowed_hosts.iter().any(|a| {
            let a = a.as_str();
            match a.strip_prefix('.') {
                Some(domain) => host == domain || host.ends_with(a),
                None => host == a,
            }
        });
    admitted.then_some(rd)
}

/// Whether the path part (up to `?` or `#`) of `target`, once a browser has resolved its
/// `.` and `..` segments (RFC 3986 5.2.4), starts with `//`: `/.//evil` and `/x/..//evil`
/// become the protocol-relative `//evil`, another site. `/docs//intro` stays on ours.
fn leaves_the_origin(target: &[u8]) -> bool {
    let end = target
        .iter()
        .position(|&c| c == b'?' || c == b'#')
        .unwrap_or(target.len());
    let mut kept: Vec<&[u8]> = Vec::new();
    for segment in target[..end].split(|&c| c == b'/').skip(1) {
        match segment {
            b"." => {}
            b".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    kept.len() > 1 && kept[0].is_empty()
}

/// Whether `scheme://authority` is `own_origin` (`scheme://host[:port]`), default ports
/// spelled or not; or its https twin on the default port (`rd=$scheme://$host...` from a TLS
/// proxy in front, which the gateway sees as plain http). Never a downgrade to http.
fn same_origin(scheme: &str, authority: &str, own_origin: &str) -> bool {
    let without_default = |scheme: &str, authority: &str| -> String {
        let default = if scheme == "https" { ":443" } else { ":80" };
        authority
            .strip_suffix(default)
            .unwrap_or(authority)
            .to_ascii_lowercase()
    };
    let Some((own_scheme, own_rest)) = own_origin.split_once("://") else {
        return false;
    };
    let own_scheme = own_scheme.to_ascii_lowercase();
    let own_authority = without_default(&own_scheme, own_rest.split('/').next().unwrap_or(""));
    let target = without_default(scheme, authority);
    if own_scheme == scheme {
        return target == own_authority;
    }
    let own_host = own_authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(own_authority.as_str(), |(host, _)| host);
    own_scheme == "http" && scheme == "https" && target == own_host
}

/// Controls (tab, newline, NUL...), DEL, backslash.
fn has_forbidden_bytes(b: &[u8]) -> bool {
    b.iter().any(|&c| c < 0x20 || c == 0x7f || c == b'\\')
}

fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

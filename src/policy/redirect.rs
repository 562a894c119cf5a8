//! Where the browser may be sent after sign-in and sign-out.
//!
//! Accepted: a same-origin path (`/x?y`), or an absolute `http(s)://` URL whose host is our own
//! or listed in `server.allowed_redirect_hosts` (`.example.com` admits its subdomains).
//! Refused (the caller falls back to `/`): protocol-relative and backslash tricks (`//evil`,
//! `/\evil`, `\/evil`), scheme tricks (`https:evil`, `javascript:`), userinfo (`@`), control
//! characters and whitespace (raw or percent-encoded), and any non-ASCII character
//! (look-alike slashes and hosts).

/// Returns the target to redirect to, or `None` when it is not safe.
pub fn safe_redirect<'a>(
    rd: &'a str,
    own_host: Option<&str>,
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
        let protocol_relative = |b: &[u8]| b.len() > 1 && (b[1] == b'/' || b[1] == b'\\');
        if protocol_relative(rd.as_bytes()) || protocol_relative(&decoded) {
            return None;
        }
        return Some(rd);
    }
    let lower = rd.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
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
    let own = own_host.map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h));
    let admitted = own.is_some_and(|o| o.eq_ignore_ascii_case(host))
        || allowed_hosts.iter().any(|a| {
            let a = a.as_str();
            match a.strip_prefix('.') {
                Some(domain) => host == domain || host.ends_with(a),
                None => host == a,
            }
        });
    admitted.then_some(rd)
}

/// Controls (tab, newline, NUL...), DEL, backslash.
fn has_forbidden_bytes(b: &[u8]) -> bool {
    b.iter().any(|&c| c < 0x20 || c == 0x7f || c == b'\\')
}

fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

//! The headers that cross the gateway on the way upstream (`outgoing_headers`, one pass for
//! the inline path and hyper's client) and back from hyper's client (`remove_hop_by_hop`,
//! `remove_gateway_set_cookies`), and what makes a request a WebSocket handshake.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::Version;

use super::{ClientInfo, X_FORWARDED_FOR, X_FORWARDED_PROTO};
use crate::identity::{CookieHeader, InboundFilter};

static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A WebSocket handshake (RFC 6455 4.1): HTTP/1.1, `Upgrade: websocket` and nothing else,
/// `Connection: upgrade`. Any other Upgrade (h2c, TLS, a custom protocol) is not tunnelled:
/// the request goes on as a plain one without it.
pub(super) fn is_upgrade(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && is_websocket(headers)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Exactly one Upgrade header, naming `websocket` alone.
pub(super) fn is_websocket(headers: &HeaderMap) -> bool {
    let mut upgrades = headers.get_all(header::UPGRADE).iter();
    matches!(
        (upgrades.next(), upgrades.next()),
        (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket")
    )
}

/// Removes the hop-by-hop headers and any header `Connection` names from a response.
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay for the tunnel.
/// An upstream's Set-Cookie for one of the gateway's own cookies is dropped (as on the inline
/// path): an app could sign users out, break their session, or plant one of its choosing.
pub(super) fn remove_gateway_set_cookies(headers: &mut HeaderMap, filter: &InboundFilter) {
    let ours = |v: &HeaderValue| filter.sets_gateway_cookie(v.as_bytes());
    if !headers.get_all(header::SET_COOKIE).iter().any(ours) {
        return;
    }
    tracing::warn!("the upstream sent a Set-Cookie for the gateway's own cookie; dropped it");
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !ours(v))
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
}

pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    for n in connection_named(headers, keep_upgrade) {
        headers.remove(n);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TE);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// What the handler decided for a request's headers on the way upstream.
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    /// Drops the client's spoofable identity headers and the gateway's cookies.
    pub filter: &'a InboundFilter,
    /// The gateway's identity headers (none on public routes).
    pub identity: &'a [(HeaderName, HeaderValue)],
}

pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Headers a `Connection` header names besides its own tokens (rare: allocates only then).
pub(super) fn connection_named(headers: &HeaderMap, keep_upgrade: bool) -> Vec<HeaderName> {
    if !headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| names_other_headers(v.as_bytes()))
    {
        return Vec::new();
    }
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        // What the route was decided on, and what frames the message, stays: without Host
        // the upstream would pick a site of its own (RFC 9110 7.6.1 lets no header that
        // matters end to end be made hop-by-hop by a client).
        .filter(|n| n != header::HOST && n != X_FORWARDED_HOST && n != header::CONTENT_LENGTH)
        .collect()
}

/// Whether a `Connection` value names headers besides its own tokens (`keep-alive`,
/// `close`, `upgrade`): those headers are hop-by-hop too. Shared by both directions and
/// both upstream paths (`h1` reads response heads as bytes).
pub(super) fn names_other_headers(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .any(|t| {
            !(t.is_empty()
                || t.eq_ignore_ascii_case(b"keep-alive")
                || t.eq_ignore_ascii_case(b"close")
                || t.eq_ignore_ascii_case(b"upgrade"))
        })
}

/// The request headers for the upstream, in one pass over the client's, handed to `emit`
/// one by one. Stay behind: hop-by-hop headers and those `Connection` names (`Upgrade`
/// stays for a tunnel, with `Connection: upgrade`), spoofable identity headers, the
/// gateway's cookies, and X-Forwarded-* unless the peer is a trusted proxy. Added: the
/// gateway's identity headers; X-Forwarded-For (appended to a trusted proxy's chain, all
/// its header lines joined), X-Forwarded-Proto, X-Forwarded-Host (a trusted proxy's is
/// kept); Host from `:authority` for HTTP/2. Several `Cookie` headers (HTTP/2 sends one per
/// cookie) become one, as HTTP/1.1 wants.
pub(super) fn outgoing_headers<'h>(
    inbound: &'h HeaderMap,
    out: Outgoing<'h>,
    client: &ClientInfo,
    authority: Option<&Authority>,
    upgrade: bool,
    mut emit: impl FnMut(&HeaderName, &HeaderValue),
) {
    let named = connection_named(inbound, upgrade);
    let mut host: Option<HeaderValue> = None;
    let mut cookies = 0usize;
    let mut forwarded_for: Vec<&HeaderValue> = Vec::new();
    let mut forwarded_host = false;
    for (name, value) in inbound {
        if is_hop_by_hop(name) {
            if upgrade && name == header::UPGRADE {
                emit(name, value);
            }
            continue;
        }
        if out.filter.is_spoofed(name) || (!named.is_empty() && named.contains(name)) {
            continue;
        }
        if name == header::COOKIE {
            cookies += 1;
            continue;
        }
        if name == X_FORWARDED_FOR {
            if client.believe.for_ {
                forwarded_for.push(value);
            }
            continue;
        }
        if name == X_FORWARDED_PROTO {
            continue;
        }
        if name == X_FORWARDED_HOST {
            // Believed, it chose the route (validated, one value): the upstream is told it.
            if client.believe.host && !forwarded_host {
                forwarded_host = true;
                emit(name, value);
            }
            continue;
        }
        if let Some(exact) = out.filter.forwarding(name) {
            if exact && client.trusted {
                emit(name, value);
            }
            continue;
        }
        if name == header::HOST && host.is_none() {
            host = Some(value.clone());
        }
        emit(name, value);
    }
    if host.is_none() {
        host = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(h) = &host {
            emit(&header::HOST, h);
        }
    }
    if cookies == 1 {
        let value = inbound.get(header::COOKIE).expect("counted above");
        match out.filter.filter_cookie_header(value.as_bytes()) {
            CookieHeader::Unchanged => emit(&header::COOKIE, value),
            CookieHeader::Remove => {}
            CookieHeader::Replace(kept) => emit_cookies(&kept, &mut emit),
        }
    } else if cookies > 1 {
        let mut kept = String::new();
        for value in inbound.get_all(header::COOKIE) {
            out.filter.keep_client_cookies(value.as_bytes(), &mut kept);
        }
        emit_cookies(&kept, &mut emit);
    }
    for (name, value) in out.identity {
        emit(name, value);
    }
    let chain = (!forwarded_for.is_empty())
        .then(|| {
            let mut chain = forwarded_for
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            chain.push_str(", ");
            chain.push_str(&client.ip.to_string());
            HeaderValue::from_str(&chain).ok()
        })
        .flatten();
    emit(
        &X_FORWARDED_FOR,
        chain.as_ref().unwrap_or(&client.ip_header),
    );
    let proto = if client.scheme(inbound) == "https" {
        HeaderValue::from_static("https")
    } else {
        HeaderValue::from_static("http")
    };
    emit(&X_FORWARDED_PROTO, &proto);
    if !forwarded_host {
        if let Some(h) = &host {
            emit(&X_FORWARDED_HOST, h);
        }
    }
    if upgrade {
        emit(&header::CONNECTION, &HeaderValue::from_static("upgrade"));
    }
}

pub(super) fn emit_cookies(kept: &str, emit: &mut impl FnMut(&HeaderName, &HeaderValue)) {
    if let Ok(v) = HeaderValue::from_str(kept) {
        if !kept.is_empty() {
            emit(&header::COOKIE, &v);
        }
    }
}

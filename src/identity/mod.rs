//! Identity towards the upstream: removing every identity header a client could spoof (all
//! spellings), removing the gateway's own cookies, and turning a verified principal into the
//! headers of the configured preset. Never does I/O.

mod email_rules;
mod headers;

pub use email_rules::{domain_problem, email_problem, parse_email_list, EmailRules};

pub use headers::{
    email_refusal, AssertionSigner, EmailRefusal, IdentityHeaders, Principal, SignerError,
    TokensForHeaders,
};

use http::header::HeaderName;

use crate::config::Config;

/// Headers any preset or claim mapping can set. Stripped from every inbound request,
/// whatever the preset, so switching presets never opens a hole.
const PRESET_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-forwarded-roles",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "x-auth-request-roles",
    "x-auth-request-provider",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-accesstoken",
    "x-amzn-oidc-data",
];

/// Headers by which a proxy in front tells an app about the client (address, scheme, host,
/// port, path prefix, original URI): apps that read them (Spring's ForwardedHeaderFilter,
/// Rails, Flask's ProxyFix, Symfony...) must only see a trusted proxy's. X-Forwarded-For,
/// -Proto and -Host, which the gateway sets itself, are handled apart (`proxy`); here they
/// only catch underscore spellings.
const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-forwarded-method",
    "x-url-scheme",
    "front-end-https",
    "x-original-uri",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Header names compared in any spelling (case, `_` for `-`). Kept by length: a header is
/// compared only with the few names as long as it, and most are ruled out by length alone.
#[derive(Debug, Clone)]
struct NameSet {
    /// Lower-case, `-`-separated names, at the index of their length.
    by_length: Vec<Vec<Vec<u8>>>,
}

impl NameSet {
    fn new(names: Vec<Vec<u8>>) -> NameSet {
        let mut by_length: Vec<Vec<Vec<u8>>> = Vec::new();
        for name in names {
            if by_length.len() <= name.len() {
                by_length.resize(name.len() + 1, Vec::new());
            }
            if !by_length[name.len()].contains(&name) {
                by_length[name.len()].push(name);
            }
        }
        NameSet { by_length }
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.by_length
            .get(name.len())
            .is_some_and(|names| names.iter().any(|s| same_name(s, name)))
    }
}

/// Cleans inbound requests: spoofable identity headers and the gateway's cookies.
#[derive(Debug, Clone)]
pub struct InboundFilter {
    /// Every header a preset or mapping can set.
    strip: NameSet,
    forwarding: NameSet,
    cookie_name: String,
}

/// What becomes of one `Cookie` header on its way upstream.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieHeader {
    /// None of the gateway's cookies: sent as it is.
    Unchanged,
    /// Only the gateway's cookies: not sent.
    Remove,
    /// The client's other cookies, joined with "; ".
    Replace(String),
}

impl InboundFilter {
    /// The filter of a minimal config (default cookie name `_ssogate`, no claim headers).
    #[cfg(test)]
    pub(crate) fn for_tests() -> InboundFilter {
        let config = Config::from_toml_str(
            "[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n",
            &crate::config::ProcessSource,
        )
        .unwrap();
        InboundFilter::from_config(&config)
    }

    pub fn from_config(config: &Config) -> InboundFilter {
        let mut strip: Vec<Vec<u8>> = PRESET_HEADERS
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        // With `pass_id_token` the gateway sets `Authorization` itself: a client's own would
        // reach the upstream beside (before) the gateway's and could be taken for it.
        if config.headers.pass_id_token {
            strip.push(b"authorization".to_vec());
        }
        for (name, _) in &config.headers.claims {
            let n = canonical(name.as_str().as_bytes());
            if !strip.contains(&n) {
                strip.push(n);
            }
        }
        InboundFilter {
            strip: NameSet::new(strip),
            forwarding: NameSet::new(
                FORWARDING_HEADERS
                    .iter()
                    .map(|h| h.as_bytes().to_vec())
                    .collect(),
            ),
            cookie_name: config.session.cookie_name.clone(),
        }
    }

    /// An identity header a client could spoof, in any spelling (hyper lower-cases names;
    /// `_` counts as `-`).
    pub fn is_spoofed(&self, name: &HeaderName) -> bool {
        self.strip.contains(name.as_str().as_bytes())
    }

    /// Whether `name` is a forwarding header (`FORWARDING_HEADERS`), in any spelling:
    /// `Some(true)` spelled as proxies send it, `Some(false)` with underscores, which no
    /// proxy sends (never passed on).
    pub fn forwarding(&self, name: &HeaderName) -> Option<bool> {
        let n = name.as_str().as_bytes();
        self.forwarding.contains(n).then(|| !n.contains(&b'_'))
    }

    /// One `Cookie` header without the gateway's cookies (`{cookie_name}`, `{cookie_name}_*`).
    pub fn filter_cookie_header(&self, value: &[u8]) -> CookieHeader {
        let (mut ours, mut others) = (false, false);
        for (name, _) in cookie_pairs_bytes(value) {
            if self.is_gateway_cookie(name) {
                ours = true;
            } else {
                others = true;
            }
        }
        match (ours, others) {
            (false, _) => CookieHeader::Unchanged,
            (true, false) => CookieHeader::Remove,
            (true, true) => {
                let mut kept = String::with_capacity(value.len());
                self.keep_client_cookies(value, &mut kept);
                CookieHeader::Replace(kept)
            }
        }
    }

    /// Appends the client's own `name=value` pairs of `value` to `kept` ("; "-separated).
    pub fn keep_client_cookies(&self, value: &[u8], kept: &mut String) {
        let Ok(value) = std::str::from_utf8(value) else {
            return;
        };
        for pair in value.split(';') {
            let pair = pair.trim();
            let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
            if pair.is_empty() || self.is_gateway_cookie(name.as_bytes()) {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(pair);
        }
    }

    /// Whether a `Set-Cookie` value (`name=value; attributes`) sets one of the gateway's
    /// cookies, as the browser will send it back. A cookie without a name (`=_ssogate=x`, or
    /// `_ssogate` without `=`: RFC 6265bis 5.6) comes back as its value alone, which reads as
    /// `_ssogate=x`.
    pub fn sets_gateway_cookie(&self, set_cookie: &[u8]) -> bool {
        let mut pair = set_cookie
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        while let Some(rest) = pair.strip_prefix(b"=") {
            pair = rest.trim_ascii();
        }
        let name = pair
            .split(|&b| b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        self.is_gateway_cookie(name)
    }

    pub fn is_gateway_cookie(&self, name: &[u8]) -> bool {
        let ours = self.cookie_name.as_bytes();
        name == ours
            || (name.len() > ours.len() && name.starts_with(ours) && name[ours.len()] == b'_')
    }
}

/// `name=value` pairs of a Cookie header as bytes, by scanning (no jar, no UTF-8 check).
/// The separators are found with `memchr`: the session cookie's value is hundreds to
/// thousands of bytes, and this runs on every signed-in request.
pub fn cookie_pairs_bytes(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = Some(header);
    std::iter::from_fn(move || loop {
        let h = rest?;
        let pair = match memchr::memchr(b';', h) {
            Some(at) => {
                rest = Some(&h[at + 1..]);
                &h[..at]
            }
            None => {
                rest = None;
                h
            }
        };
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            continue;
        }
        return Some(match memchr::memchr(b'=', pair) {
            Some(at) => (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii()),
            None => (pair, &b""[..]),
        });
    })
}

fn canonical(name: &[u8]) -> Vec<u8> {
    name.iter()
        .map(|&b| {
            if b == b'_' {
                b'-'
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect()
}

/// `canonical` compares equal to `name` read with `_` as `-`, case-insensitively.
fn same_name(canonical: &[u8], name: &[u8]) -> bool {
    canonical.len() == name.len()
        && canonical.iter().zip(name).all(|(&c, &n)| {
            let n = if n == b'_' {
                b'-'
            } else {
                n.to_ascii_lowercase()
            };
            c == n
        })
}

#[cfg(test)]
mod tests;

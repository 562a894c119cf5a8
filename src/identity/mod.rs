//! Identity towards the upstream: removing every identity header a client could spoof (all
//! spellings), removing the gateway's own cookies, and turning a verified principal into the
//! headers of the configured preset. Never does I/O.

mod headers;

pub use headers::{AssertionSigner, IdentityHeaders, Principal, SignerError, TokensForHeaders};

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};

use crate::config::Config;

/// Headers any preset or claim mapping can set. Stripped from every inbound request,
/// whatever the preset, so switching presets never opens a hole.
const PRESET_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-accesstoken",
    "x-amzn-oidc-data",
];

/// Cleans inbound requests: spoofable identity headers and the gateway's cookies.
#[derive(Debug, Clone)]
pub struct InboundFilter {
    /// Lower-case, `-`-separated names.
    strip: Vec<Vec<u8>>,
    cookie_name: String,
}

impl InboundFilter {
    pub fn from_config(config: &Config) -> InboundFilter {
        let mut strip: Vec<Vec<u8>> = PRESET_HEADERS
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        for (name, _) in &config.headers.claims {
            let n = canonical(name.as_str().as_bytes());
            if !strip.contains(&n) {
                strip.push(n);
            }
        }
        InboundFilter {
            strip,
            cookie_name: config.session.cookie_name.clone(),
        }
    }

    /// Removes identity headers in every spelling (hyper lower-cases names; `_` counts as `-`).
    pub fn strip_identity_headers(&self, headers: &mut HeaderMap) {
        let is_spoof = |name: &HeaderName| {
            let n = name.as_str().as_bytes();
            self.strip.iter().any(|s| same_name(s, n))
        };
        // Allocate only when something is there to remove.
        if !headers.keys().any(is_spoof) {
            return;
        }
        let doomed: Vec<HeaderName> = headers.keys().filter(|n| is_spoof(n)).cloned().collect();
        for name in doomed {
            headers.remove(&name);
        }
    }

    /// Removes the gateway's cookies (`{cookie_name}` and `{cookie_name}_*`) from `Cookie`.
    pub fn strip_gateway_cookies(&self, headers: &mut HeaderMap) {
        let ours = |header: &HeaderValue| {
            header
                .to_str()
                .map(|v| cookie_pairs(v).any(|(name, _)| self.is_gateway_cookie(name)))
                .unwrap_or(false)
        };
        if !headers.get_all(COOKIE).iter().any(ours) {
            return;
        }
        // Only our cookies (the usual signed-in request): drop the header, build nothing.
        let only_ours = headers.get_all(COOKIE).iter().all(|h| {
            h.to_str()
                .map(|v| cookie_pairs(v).all(|(name, _)| self.is_gateway_cookie(name)))
                .unwrap_or(false)
        });
        if only_ours {
            headers.remove(COOKIE);
            return;
        }
        let mut kept = String::new();
        for value in headers.get_all(COOKIE).iter() {
            let Ok(v) = value.to_str() else { continue };
            for pair in v.split(';') {
                let pair = pair.trim();
                let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
                if pair.is_empty() || self.is_gateway_cookie(name) {
                    continue;
                }
                if !kept.is_empty() {
                    kept.push_str("; ");
                }
                kept.push_str(pair);
            }
        }
        headers.remove(COOKIE);
        if let Ok(v) = HeaderValue::from_str(&kept) {
            if !kept.is_empty() {
                headers.insert(COOKIE, v);
            }
        }
    }

    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        name == self.cookie_name
            || (name.len() > self.cookie_name.len()
                && name.starts_with(self.cookie_name.as_str())
                && name.as_bytes()[self.cookie_name.len()] == b'_')
    }
}

/// `name=value` pairs of a Cookie header, by scanning (no jar).
pub fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|p| {
        let p = p.trim();
        if p.is_empty() {
            return None;
        }
        Some(match p.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (p, ""),
        })
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

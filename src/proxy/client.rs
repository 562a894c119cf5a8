//! `ClientInfo`: what the gateway knows about a client connection (its address, whether it
//! is a trusted proxy and which of its X-Forwarded-* are believed, TLS), and the scheme and
//! host a request was made for as those decide them.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};

use crate::config::ForwardedTrust;
use crate::policy::HostSource;

/// What the gateway knows about the client connection, for X-Forwarded-*.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: IpAddr,
    /// The client IP as a header value, made once per connection.
    pub ip_header: HeaderValue,
    /// The peer is in `server.trusted_proxies`: its forwarding headers pass upstream.
    pub trusted: bool,
    /// Which of its X-Forwarded-* the gateway believes: none unless `trusted`, then those
    /// `server.trusted_forwarded_headers` lists.
    pub believe: ForwardedTrust,
    /// `https` when the connection itself is TLS.
    pub tls: bool,
}

impl ClientInfo {
    pub fn new(ip: IpAddr, trusted: bool, tls: bool, believe: ForwardedTrust) -> ClientInfo {
        // Written on the stack: one allocation per connection (the value's), not two.
        let mut text = [0u8; 48];
        let len = {
            let mut out = &mut text[..];
            let _ = std::io::Write::write_fmt(&mut out, format_args!("{ip}"));
            48 - out.len()
        };
        let ip_header =
            HeaderValue::from_bytes(&text[..len]).unwrap_or(HeaderValue::from_static("unknown"));
        let believe = if trusted {
            believe
        } else {
            ForwardedTrust::NONE
        };
        ClientInfo {
            ip,
            ip_header,
            trusted,
            believe,
            tls,
        }
    }

    /// Where a request's host comes from, for `policy`'s route decision.
    pub fn host_source<'a>(
        &self,
        headers: &'a HeaderMap,
        uri: &'a Uri,
        version: Version,
    ) -> HostSource<'a> {
        HostSource {
            headers,
            uri,
            version,
            believe_forwarded_host: self.believe.host,
        }
    }

    /// The scheme the client used: ours, or a trusted proxy's X-Forwarded-Proto.
    pub fn scheme(&self, headers: &HeaderMap) -> &'static str {
        if self.believe.proto {
            if let Some(p) = headers
                .get(&X_FORWARDED_PROTO)
                .and_then(|v| v.to_str().ok())
            {
                match p.split(',').next().unwrap_or("").trim() {
                    "https" => return "https",
                    "http" => return "http",
                    _ => {}
                }
            }
        }
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The host (with its port) the client asked for: Host (or :authority), or a believed
    /// X-Forwarded-Host (`policy::site_host`); `None` when there is none or it is refused.
    pub fn host<'a>(&self, headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
        crate::policy::site_host(&self.host_source(headers, uri, Version::HTTP_2))
            .ok()
            .flatten()
            .map(|h| h.authority)
    }
}

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

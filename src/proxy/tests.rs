use super::*;
use http::header::{HeaderName, HeaderValue};

use crate::identity::InboundFilter;

#[test]
fn upstream_uri_is_assembled_from_parts() {
    let u = Upstream::from_url(&Url::parse("http://127.0.0.1:8080/base/").unwrap(), 0).unwrap();
    assert_eq!(
        u.uri("/x", Some("a=1"), None).unwrap().to_string(),
        "http://127.0.0.1:8080/base/x?a=1"
    );
    let u = Upstream::from_url(&Url::parse("https://app.internal").unwrap(), 0).unwrap();
    let pq: PathAndQuery = "/p?q".parse().unwrap();
    assert_eq!(
        u.uri("/p", Some("q"), Some(&pq)).unwrap().to_string(),
        "https://app.internal/p?q"
    );
}

#[test]
fn hop_by_hop_and_connection_named_headers_go() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, x-secret"),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert("x-keep", HeaderValue::from_static("1"));
    remove_hop_by_hop(&mut h, false);
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, vec!["x-keep"]);
}

/// The inbound filter of a config with no `[headers]` or `[session]` settings.
fn default_filter() -> InboundFilter {
    InboundFilter::for_tests()
}

/// The headers `outgoing_headers` sends for `h`, with the default filter.
fn outgoing(
    h: &HeaderMap,
    client: &ClientInfo,
    identity: &[(HeaderName, HeaderValue)],
) -> HeaderMap {
    let filter = default_filter();
    let out = Outgoing {
        filter: &filter,
        identity,
    };
    let mut sent = HeaderMap::new();
    outgoing_headers(h, out, client, None, false, |n, v| {
        sent.append(n.clone(), v.clone());
    });
    sent
}

#[test]
fn forwarded_headers_trust_only_trusted_peers() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("app.example.com"));
    h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    h.insert("x-forwarded-host", HeaderValue::from_static("evil.com"));
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    let untrusted = ClientInfo::new(
        "192.0.2.1".parse().unwrap(),
        false,
        false,
        crate::config::ForwardedTrust::ALL,
    );
    let sent = outgoing(&h, &untrusted, &[]);
    assert_eq!(sent["x-forwarded-for"], "192.0.2.1");
    assert_eq!(sent["x-forwarded-host"], "app.example.com");
    assert_eq!(sent["x-forwarded-proto"], "http");
    assert_eq!(sent.get_all("x-forwarded-for").iter().count(), 1);

    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("internal"));
    // A trusted proxy may send its chain on several header lines.
    h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
    h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
    h.insert(
        "x-forwarded-host",
        HeaderValue::from_static("app.example.com"),
    );
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    let trusted = ClientInfo::new(
        "10.0.0.2".parse().unwrap(),
        true,
        false,
        crate::config::ForwardedTrust::ALL,
    );
    let sent = outgoing(&h, &trusted, &[]);
    assert_eq!(
        sent["x-forwarded-for"],
        "203.0.113.9, 198.51.100.7, 10.0.0.2"
    );
    assert_eq!(sent["x-forwarded-host"], "app.example.com");
    assert_eq!(sent["x-forwarded-proto"], "https");
}

#[test]
fn spoofed_identity_and_gateway_cookies_stay_behind_and_ours_go() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("app"));
    h.insert("x_forwarded_user", HeaderValue::from_static("mallory"));
    h.insert("connection", HeaderValue::from_static("x-hidden"));
    h.insert("x-hidden", HeaderValue::from_static("1"));
    // HTTP/2 sends one Cookie header per cookie; HTTP/1.1 upstreams get one.
    h.append(header::COOKIE, HeaderValue::from_static("a=1"));
    h.append(header::COOKIE, HeaderValue::from_static("_ssogate=sealed"));
    h.append(
        header::COOKIE,
        HeaderValue::from_static("b=2; _ssogate_1=more"),
    );
    let identity = [(
        HeaderName::from_static("x-forwarded-user"),
        HeaderValue::from_static("alice"),
    )];
    let client = ClientInfo::new(
        "192.0.2.1".parse().unwrap(),
        false,
        false,
        crate::config::ForwardedTrust::ALL,
    );
    let sent = outgoing(&h, &client, &identity);
    let users: Vec<_> = sent.get_all("x-forwarded-user").iter().collect();
    assert_eq!(users, ["alice"]);
    assert!(sent.get("x_forwarded_user").is_none());
    assert!(sent.get("x-hidden").is_none() && sent.get("connection").is_none());
    let cookies: Vec<_> = sent.get_all(header::COOKIE).iter().collect();
    assert_eq!(cookies, ["a=1; b=2"]);

    h.remove(header::COOKIE);
    h.insert(header::COOKIE, HeaderValue::from_static("_ssogate=sealed"));
    assert!(outgoing(&h, &client, &identity)
        .get(header::COOKIE)
        .is_none());
}

#[test]
fn the_inline_request_head_is_one_http_1_1_message() {
    let u = Upstream::from_url(&Url::parse("http://127.0.0.1:8080/base").unwrap(), 0).unwrap();
    let req = Request::get("/x?q=1").body(()).unwrap();
    let filter = default_filter();
    let out = Outgoing {
        filter: &filter,
        identity: &[],
    };
    let client = ClientInfo::new(
        "192.0.2.1".parse().unwrap(),
        false,
        false,
        crate::config::ForwardedTrust::ALL,
    );
    let head = String::from_utf8(u.request_head(&req, None, out, &client, false)).unwrap();
    assert_eq!(
        head,
        "GET /base/x?q=1 HTTP/1.1\r\nx-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\nhost: 127.0.0.1:8080\r\n\r\n"
    );
}

//! The gateway as a reverse proxy on public routes: what reaches the upstream, what comes
//! back, and how it fails, drains and survives bad input. Real sockets throughout: the
//! `ssogate` binary between a client and upstreams living in this process.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Identity header names as the upstream saw them, read with `_` as `-` and in lower case.
fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

#[tokio::test]
async fn get_and_post_reach_the_upstream_intact_and_its_answer_comes_back() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let client = client();

    let resp = client
        .get(gw.url("/hello/world?x=1&y=a%20b&x=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "echo");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/hello/world?x=1&y=a%20b&x=2");

    let resp = client
        .post(gw.url("/forms/submit?id=7"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=alice&role=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/forms/submit?id=7");
    assert_eq!(seen["body_len"], 21);
    assert_eq!(
        seen["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );

    let resp = client.get(gw.url("/status/418")).send().await.unwrap();
    assert_eq!(resp.status(), 418, "the upstream's status comes back as is");
    assert_eq!(resp.headers()["x-upstream"], "echo");
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["path"], "/status/418");
}

#[test]
fn dot_segments_are_resolved_before_the_request_is_forwarded() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    // Sent raw: client libraries would resolve the dots themselves.
    let resp = raw_request(
        gw.port,
        "GET /a/./b/../c?q=./x/.. HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["path"], "/a/c?q=./x/..");
    assert_eq!(upstream.last_request().unwrap().path, "/a/c?q=./x/..");
}

#[test]
fn a_dot_dot_segment_leads_to_the_route_of_the_resolved_path() {
    let public_app = Upstream::echo();
    let main_app = Upstream::echo();
    let gw = Gateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"

[[routes]]
path_prefix = "/public/"
upstream = "{a}"
public = true

[[routes]]
path_prefix = "/"
upstream = "{b}"
public = true
"#,
        a = public_app.url,
        b = main_app.url
    ));

    let resp = raw_request(
        gw.port,
        "GET /public/../other HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        public_app.requests().is_empty(),
        "/public/../other must not go to the /public/ route"
    );
    assert_eq!(main_app.last_request().unwrap().path, "/other");

    let resp = raw_request(
        gw.port,
        "GET /public/page HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(public_app.last_request().unwrap().path, "/public/page");
}

#[tokio::test]
async fn a_request_no_route_matches_gets_404() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"

[[routes]]
path_prefix = "/app"
upstream = "{}"
public = true
"#,
        upstream.url
    ));
    let client = client();

    for path in ["/", "/other", "/apple"] {
        let resp = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let resp = client
        .get(gw.url("/app/x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let paths: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/app/x"],
        "only the matching request reached the app"
    );
}

#[test]
fn hop_by_hop_headers_stay_behind_and_end_to_end_headers_pass() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    let resp = raw_request(
        gw.port,
        "GET /hops HTTP/1.1\r\n\
         Host: 127.0.0.1\r\n\
         Connection: close, x-drop\r\n\
         x-drop: named-by-connection\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-End-To-End: kept\r\n\
         Accept-Language: de\r\n\
         \r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    for gone in ["x-drop", "keep-alive", "te", "proxy-connection"] {
        assert!(
            seen.header(gone).is_none(),
            "{gone} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    assert_eq!(seen.header("accept-language"), Some("de"));
}

#[test]
fn forwarded_headers_from_an_untrusted_client_are_replaced() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    let resp = raw_request(
        gw.port,
        "GET /fwd HTTP/1.1\r\n\
         Host: app.example.com\r\n\
         X-Forwarded-For: 6.6.6.6\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: evil.example\r\n\
         x_forwarded_for: 6.6.6.6\r\n\
         Forwarded: for=6.6.6.6;host=evil.example;proto=https\r\n\
         X-Real-IP: 6.6.6.6\r\n\
         X-Forwarded-Port: 443\r\n\
         X-Forwarded-Prefix: /admin\r\n\
         X_Forwarded_Ssl: on\r\n\
         X-Original-URL: /admin\r\n\
         True-Client-IP: 6.6.6.6\r\n\
         X-Forwarded-Fortune: kept\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    let names: Vec<String> = seen.headers.keys().map(|k| canonical(k.as_str())).collect();
    for gone in [
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-ssl",
        "x-original-url",
        "true-client-ip",
    ] {
        assert!(!names.iter().any(|n| n == gone), "{gone} passed: {names:?}");
    }
    assert_eq!(seen.header("x-forwarded-fortune"), Some("kept"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.example.com"));
    assert_eq!(
        seen.header("host"),
        Some("app.example.com"),
        "the original Host reaches the upstream"
    );
    assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
}

#[test]
fn a_trusted_proxy_keeps_its_forwarded_chain_and_the_peer_is_appended() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
trusted_proxies = ["127.0.0.1/32"]
trusted_forwarded_headers = ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"]

[[routes]]
path_prefix = "/"
upstream = "{}"
public = true
"#,
        upstream.url
    ));

    let resp = raw_request(
        gw.port,
        "GET /fwd HTTP/1.1\r\n\
         Host: internal:8080\r\n\
         X-Forwarded-For: 203.0.113.7\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: app.example.com\r\n\
         X-Forwarded-Port: 443\r\n\
         X-Real-IP: 203.0.113.7\r\n\
         x_forwarded_for: 6.6.6.6\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-port"), Some("443"));
    assert_eq!(seen.header("x-real-ip"), Some("203.0.113.7"));
    assert!(
        seen.headers.keys().all(|k| k.as_str() != "x_forwarded_for"),
        "no proxy sends underscores: {:?}",
        seen.headers
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.example.com"));
    assert_eq!(seen.header("host"), Some("internal:8080"));
}

#[test]
fn a_trusted_proxys_forwarded_host_is_believed_only_when_listed() {
    let upstream = Upstream::echo();
    let config = |listed: &str| {
        format!(
            r#"
[server]
listen = "127.0.0.1:{{port}}"
trusted_proxies = ["127.0.0.1/32"]
{listed}

[[routes]]
host = "app.example.com"
path_prefix = "/"
upstream = "{}"
public = true

[[routes]]
host = "docs.example.com"
path_prefix = "/"
upstream = "{}"
public = true
"#,
            upstream.url, upstream.url
        )
    };
    let ask = |port: u16, host: &str, forwarded: &str| {
        raw_request(
            port,
            &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Host: {forwarded}\r\nConnection: close\r\n\r\n"),
        )
    };

    // By default the proxy's X-Forwarded-Host is not believed: Host decides, and the
    // upstream is told that host in both headers.
    let gw = Gateway::start(&config(""));
    let resp = ask(gw.port, "app.example.com", "docs.example.com");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.header("host"), Some("app.example.com"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.example.com"));
    drop(gw);

    // Listed, it decides; a Host naming another host route is a second reading: 400.
    let gw = Gateway::start(&config(
        "trusted_forwarded_headers = [\"X-Forwarded-Proto\", \"X-Forwarded-Host\"]",
    ));
    let resp = ask(gw.port, "app.example.com", "docs.example.com");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("X-Forwarded-Host"), "{}", resp.text());
    let resp = ask(gw.port, "gateway.internal:4180", "docs.example.com");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-host"), Some("docs.example.com"));
    // Held to the same rule as Host; a list means the proxy appended to the client's.
    for bad in [
        "docs.example.com:80:80",
        "x@docs.example.com",
        "evil.example, docs.example.com",
    ] {
        let resp = ask(gw.port, "gateway.internal", bad);
        assert_eq!(resp.status, 400, "{bad}: {}", resp.text());
    }
}

#[test]
fn identity_headers_sent_by_a_client_never_reach_the_upstream_in_any_spelling() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    // Raw, so each spelling goes over the wire exactly as written.
    let resp = raw_request(
        gw.port,
        "GET /whoami HTTP/1.1\r\n\
         Host: 127.0.0.1\r\n\
         X-Forwarded-User: mallory\r\n\
         x_forwarded_email: mallory@evil.example\r\n\
         X-FORWARDED-GROUPS: admins\r\n\
         X-Forwarded_Preferred-Username: mallory\r\n\
         x-amzn-oidc-data: forged.jwt.value\r\n\
         X-Amzn-Oidc-Identity: mallory\r\n\
         X-Auth-Request-User: mallory\r\n\
         X-Forwarded-Userinfo: not-an-identity-header\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    let names: Vec<String> = seen.headers.keys().map(|k| canonical(k.as_str())).collect();
    for spoofed in [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-amzn-oidc-data",
        "x-amzn-oidc-identity",
        "x-auth-request-user",
    ] {
        assert!(
            !names.iter().any(|n| n == spoofed),
            "{spoofed} reached the upstream: {names:?}"
        );
    }
    assert_eq!(
        seen.header("x-forwarded-userinfo"),
        Some("not-an-identity-header"),
        "a header that only looks similar passes"
    );
}

#[test]
fn the_gateways_cookies_are_removed_and_other_cookies_pass() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    let resp = raw_request(
        gw.port,
        "GET /page HTTP/1.1\r\n\
         Host: 127.0.0.1\r\n\
         Cookie: theme=dark; _ssogate=c2Vzc2lvbg; _ssogate_1=Y2h1bms; lang=en; _ssogatefan=yes\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    assert_eq!(
        seen.header("cookie"),
        Some("theme=dark; lang=en; _ssogatefan=yes")
    );

    // Only the gateway's cookies: no Cookie header at all.
    let _ = raw_request(
        gw.port,
        "GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: _ssogate=x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(upstream.last_request().unwrap().header("cookie"), None);
}

#[tokio::test]
async fn bodies_larger_than_one_write_arrive_byte_for_byte_both_ways() {
    // The gateway cuts its writes to one loopback segment (60 KiB): a body of several
    // writes through hyper's client to the upstream and back through hyper's server, and
    // one out of the gateway's own loop.
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let sent = common::pattern(300_000);
    let resp = client()
        .post(gw.url("/mirror"))
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.unwrap() == sent,
        "the upload came back changed"
    );

    let resp = client().get(gw.url("/mirror/300000")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.unwrap() == sent,
        "the download arrived changed"
    );
}

/// 1 GiB each way: about 1 s per direction with the debug build on 2 cores.
const LARGE: u64 = 1024 * 1024 * 1024;
/// The gateway's peak resident memory after streaming `LARGE` bytes.
const RSS_LIMIT: u64 = 64 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_upload_streams_through_without_the_gateway_growing() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    let started = Instant::now();
    let resp = client()
        .put(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(generated_body(LARGE)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["body_len"], LARGE, "every byte arrived upstream");
    let rss = gw.peak_rss_bytes();
    eprintln!(
        "upload of {LARGE} bytes took {:?}; gateway peak RSS {} KiB",
        started.elapsed(),
        rss / 1024
    );
    assert!(
        rss < RSS_LIMIT,
        "gateway peak RSS {rss} bytes: the body was buffered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_download_streams_through_without_the_gateway_growing() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    let started = Instant::now();
    let resp = client()
        .get(gw.url(&format!("/download/{LARGE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], LARGE.to_string().as_str());
    let mut received: u64 = 0;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        received += chunk.unwrap().len() as u64;
    }
    assert_eq!(received, LARGE, "every byte arrived at the client");
    let rss = gw.peak_rss_bytes();
    eprintln!(
        "download of {LARGE} bytes took {:?}; gateway peak RSS {} KiB",
        started.elapsed(),
        rss / 1024
    );
    assert!(
        rss < RSS_LIMIT,
        "gateway peak RSS {rss} bytes: the body was buffered"
    );
}

#[tokio::test]
async fn websocket_messages_travel_both_ways_through_the_gateway() {
    let ws_app = WebSocketEcho::start();
    let gw = Gateway::start(&public_config(&ws_app.url, ""));

    let (mut ws, handshake) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/socket", gw.port))
            .await
            .unwrap_or_else(|e| panic!("websocket handshake failed: {e}; log:\n{}", gw.logs()));
    assert_eq!(handshake.status(), 101);

    ws.send(Message::Text("hello through the gateway".into()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("text echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::Text("hello through the gateway".into()));

    let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    ws.send(Message::Binary(payload.clone())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("binary echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::Binary(payload));

    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn sigterm_ends_an_open_websocket_without_waiting_out_the_drain() {
    let ws_app = WebSocketEcho::start();
    let mut gw = Gateway::start(&public_config_with(
        &ws_app.url,
        "drain_timeout = \"20s\"",
        "",
    ));
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/socket", gw.port))
            .await
            .unwrap_or_else(|e| panic!("websocket handshake failed: {e}; log:\n{}", gw.logs()));
    ws.send(Message::Text("before the stop".into()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(reply, Ok(Some(Ok(Message::Text(ref t)))) if t == "before the stop"),
        "{reply:?}"
    );

    let started = Instant::now();
    gw.sigterm();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the WebSocket is still open 5 s after SIGTERM"
    );
    gw.expect_clean_exit();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an open WebSocket does not hold the drain for its 20 s"
    );
}

#[tokio::test]
async fn http2_prior_knowledge_requests_are_served_and_the_upstream_sees_host() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);

    let authority = format!("127.0.0.1:{}", gw.port);
    let req = http::Request::get(format!("http://{authority}/h2/page?v=2"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let seen: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["path"], "/h2/page?v=2");
    assert_eq!(seen["headers"]["host"], authority.as_str());
    assert_eq!(
        upstream.last_request().unwrap().version,
        http::Version::HTTP_11,
        "HTTP/1.1 towards the upstream"
    );
}

#[tokio::test]
async fn a_refused_upstream_gives_502_json_or_html_and_is_logged() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw = Gateway::start(&public_config(&dead, ""));
    let client = client();

    let resp = client
        .get(gw.url("/api/items"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unavailable");

    let resp = client
        .get(gw.url("/page"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = resp.text().await.unwrap();
    assert!(page.contains("The application is unavailable"), "{page}");
    assert!(
        !page.contains(&dead),
        "the page does not show internal addresses"
    );

    let line = gw.wait_for_log(Duration::from_secs(5), |l| {
        l["upstream"] == dead.as_str() && l["status"] == 502
    });
    assert_eq!(line["path"], "/api/items");
}

#[tokio::test]
async fn a_slow_upstream_gives_504_after_the_response_timeout() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(
        &upstream.url,
        "[upstream]\nresponse_timeout = \"1s\"\n",
    ));

    let started = Instant::now();
    let resp = client()
        .get(gw.url("/slow/3000"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "upstream_timeout");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "answered after {waited:?}, not after the 1s timeout"
    );
}

#[tokio::test]
async fn ping_and_ready_answer_200_on_a_public_only_config() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let client = client();

    for path in ["/oauth2/ping", "/oauth2/ready"] {
        let resp = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let _: Value = resp.json().await.unwrap();
    }
    assert!(
        upstream.requests().is_empty(),
        "health checks are answered by the gateway itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_refuses_new_connections_and_exits_0() {
    let upstream = Upstream::echo();
    let mut gw = Gateway::start(&public_config(&upstream.url, ""));

    let slow_url = gw.url("/slow/1500");
    let in_flight = tokio::spawn(async move {
        let resp = client().get(slow_url).send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        upstream.requests().len(),
        1,
        "the slow request is at the upstream"
    );
    gw.sigterm();

    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", gw.port)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ if Instant::now() > deadline => {
                panic!(
                    "new connections are still accepted after SIGTERM; log:\n{}",
                    gw.logs()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(
        !in_flight.is_finished(),
        "the slow request is still in flight while the listener is closed"
    );

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "the request in flight completes: {body}");
    assert!(body.contains("/slow/1500"));

    gw.expect_clean_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_shutdown_delay_sigterm_first_says_not_ready_and_keeps_serving() {
    // Kubernetes takes a pod out of its Service only some time after SIGTERM: meanwhile
    // new connections must still be served, while /ready tells the load balancer to stop.
    let upstream = Upstream::echo();
    let mut gw = Gateway::start(&public_config_with(
        &upstream.url,
        "shutdown_delay = \"4s\"",
        "",
    ));
    assert_eq!(
        client()
            .get(gw.url("/oauth2/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let signalled = Instant::now();
    gw.sigterm();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let ready = client().get(gw.url("/oauth2/ready")).send().await.unwrap();
        if ready.status() == 503 {
            assert_eq!(
                ready.json::<serde_json::Value>().await.unwrap()["status"],
                "stopping"
            );
            break;
        }
        assert!(Instant::now() < deadline, "/ready still 200 after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A new connection (a new client each time) is still served within the delay.
    let fresh = client().get(gw.url("/still")).send().await.unwrap();
    assert_eq!(fresh.status(), 200);
    assert!(signalled.elapsed() < Duration::from_secs(4));

    gw.expect_clean_exit();
    assert!(
        signalled.elapsed() >= Duration::from_secs(4),
        "exited before the delay: {:?}",
        signalled.elapsed()
    );
}

#[test]
fn malformed_requests_get_400_and_the_gateway_keeps_serving() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    let resp = raw_request(
        gw.port,
        "GET /a%zz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 400, "{}", resp.text());

    let answer = raw_exchange(gw.port, b"THIS IS NOT HTTP AT ALL\r\n\r\n").unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "garbage gets a 400: {answer:?}"
    );

    let resp = raw_request(
        gw.port,
        "GET /oauth2/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert!(
        upstream.requests().is_empty(),
        "nothing malformed reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_response_timeout_still_succeeds() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(
        &upstream.url,
        "[upstream]\nresponse_timeout = \"1s\"\n",
    ));

    // 10 chunks, 250 ms apart: the client is still sending for 2.5 s, far past the 1 s the
    // upstream gets to answer once it has the whole request.
    let chunks = futures_util::stream::iter(0..10).then(|_| async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok::<_, std::io::Error>(Bytes::from_static(&[b'u'; 1000]))
    });
    let resp = client()
        .post(gw.url("/upload/slowly"))
        .header("accept", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["body_len"], 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_stalls_for_the_response_timeout_gives_408() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(
        &upstream.url,
        "[upstream]\nresponse_timeout = \"1s\"\n",
    ));

    // One chunk, then nothing for 5 s.
    let chunks = futures_util::stream::iter(0..2).then(|i| async move {
        if i == 1 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Ok::<_, std::io::Error>(Bytes::from_static(&[b'u'; 1000]))
    });
    let started = Instant::now();
    let resp = client()
        .post(gw.url("/upload/stalled"))
        .header("accept", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    // The client's doing, not the app's: 408, as nginx answers a client_body_timeout.
    assert_eq!(resp.status(), 408);
    assert!(
        waited < Duration::from_millis(3000),
        "answered after {waited:?}: a stalled upload must not hold the upstream until it resumes"
    );
}

#[tokio::test]
async fn metrics_count_requests_on_their_own_listener() {
    let upstream = Upstream::echo();
    let metrics_port = free_port();
    let gw = Gateway::start(&public_config(
        &upstream.url,
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    ));
    let c = client();
    for _ in 0..3 {
        assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    }
    let text = c
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The readiness probe of the harness counts too: at least our three.
    let ok: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ssogate_requests_total{class=\"2xx\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no 2xx counter in:\n{text}"));
    assert!(ok >= 3, "{text}");
    assert!(text.contains("# TYPE ssogate_upstream_errors_total counter"));
    let main_port = c.get(gw.url("/metrics")).send().await.unwrap();
    assert_ne!(
        main_port.text().await.unwrap(),
        text,
        "metrics are not on the main listener"
    );
}

#[tokio::test]
async fn a_second_gateway_on_a_busy_port_fails_instead_of_sharing_it() {
    let upstream = Upstream::echo();
    let first = Gateway::start(&public_config(&upstream.url, ""));
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(["serve", "--config"])
        .arg(&first.config_path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second gateway started on a port that was in use");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("cannot listen on") && err.contains("in use"),
        "{err}"
    );
}

#[test]
fn a_request_naming_two_hosts_or_none_is_refused() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    for request in [
        "GET /x HTTP/1.1\r\nHost: a.example\r\nHost: admin.example\r\nConnection: close\r\n\r\n",
        "GET http://a.example/x HTTP/1.1\r\nHost: admin.example\r\nConnection: close\r\n\r\n",
    ] {
        let resp = raw_request(gw.port, request);
        assert_eq!(resp.status, 400, "{request:?}: {}", resp.text());
    }
    // HTTP/1.1 must name its host at all (HTTP/1.0 need not).
    let resp = raw_request(gw.port, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("Host header"), "{}", resp.text());
    assert!(upstream.requests().is_empty(), "none reached the app");
    let resp = raw_request(gw.port, "GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200, "{}", resp.text());
    // One host, said once (or twice the same way), is fine.
    let resp = raw_request(
        gw.port,
        "GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn a_sigterm_as_soon_as_the_port_accepts_still_drains_and_exits_0() {
    // Kubernetes may stop a pod that has only just started: the signal must already be
    // the gateway's to handle, not the default action that ends the process at once.
    let upstream = Upstream::echo();
    for _ in 0..3 {
        let mut gw =
            Gateway::start_waiting(&public_config(&upstream.url, ""), &[], Wait::TcpConnect);
        gw.sigterm();
        gw.expect_clean_exit();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_trickled_below_the_minimum_rate_is_cut_with_408() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config_with(
        &upstream.url,
        "header_read_timeout = \"1s\"\nmin_body_rate = \"1KiB\"",
        "[upstream]\nresponse_timeout = \"5s\"\n",
    ));
    // 10 bytes every 200 ms: it never stalls for the response timeout, and would go on for
    // a minute.
    let trickle = futures_util::stream::iter(0..300).then(|_| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, std::io::Error>(Bytes::from_static(&[b'u'; 10]))
    });
    let started = Instant::now();
    let resp = client()
        .post(gw.url("/upload/trickled"))
        .header("accept", "application/json")
        .body(reqwest::Body::wrap_stream(trickle))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 408);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // A body at a good rate still passes (the slow-but-moving upload test above too).
    let resp = client()
        .post(gw.url("/upload/fast"))
        .body(vec![b'u'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

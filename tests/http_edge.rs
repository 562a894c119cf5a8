//! The HTTP edge as an attacker and an odd upstream meet it: the same response head on every
//! path a response can take (the gateway's own HTTP/1.1 writer, hyper for HTTP/1.0, HTTP/2
//! and TLS), hosts that are not one authority, `Connection` naming Host, upgrades other than
//! WebSocket, bare LF in chunk lines, idle pooled connections, and the limits a user sets.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Odd but valid upstream answers, by path.
fn odd_upstream() -> ScriptedUpstream {
    ScriptedUpstream::start(|line| {
        let path = line.split(' ').nth(1).unwrap_or("/");
        let head: &[u8] = match path {
            "/cookies" => {
                b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\n\
                Set-Cookie: =_ssogate=planted; Path=/\r\nSet-Cookie: _ssogate_1=x\r\n\
                X-Multi: one\r\nX-Multi: two\r\nContent-Length: 2\r\n\r\nok"
            }
            "/no-content" => b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n",
            "/chunked" => {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\
                X-B: 2\r\n\r\n3\r\nabc\r\n0\r\nX-T: t\r\n\r\n"
            }
            "/hop" => {
                b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\n\
                Keep-Alive: timeout=5\r\nX-C: 3\r\nContent-Length: 1\r\n\r\nz"
            }
            "/cached" => {
                b"HTTP/1.1 200 OK\r\nCache-Control: public, max-age=60\r\n\
                Content-Length: 1\r\n\r\nc"
            }
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        };
        Script {
            pieces: vec![head.to_vec()],
            close: false,
        }
    })
}

/// What a client saw, without the lines that only frame the message.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Seen {
        let mut headers: Vec<_> = headers
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .filter(|(n, _)| !matches!(n.as_str(), "date" | "connection" | "transfer-encoding"))
            .collect();
        // Order between different names is the writer's; between values of one name it is
        // kept (a stable sort).
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        Seen {
            status,
            headers,
            body,
        }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn from_raw(r: RawResponse) -> Seen {
    Seen::new(r.status, r.headers, r.body)
}

/// An HTTP/2 request over `io` (h2c with prior knowledge, or TLS with ALPN h2).
async fn h2_get<IO>(io: IO, authority: &str, path: &str) -> Seen
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{authority}{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.expect("h2 request");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_string()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Seen::new(status, headers, body)
}

async fn tls_stream(
    port: u16,
    ca: &std::path::Path,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = (*tls_client_config(ca)).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test]
async fn every_path_gives_the_client_the_same_head_and_body() {
    let upstream = odd_upstream();
    let plain = Gateway::start(&public_config(&upstream.url, ""));
    let certs = SelfSigned::generate();
    let tls = Gateway::start_tls(
        &public_config_with(
            &upstream.url,
            &format!(
                "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                certs.cert().display().to_string(),
                certs.key().display().to_string()
            ),
            "",
        ),
        certs.cert(),
    );
    let authority = format!("127.0.0.1:{}", plain.port);

    for path in ["/cookies", "/no-content", "/chunked", "/hop", "/cached"] {
        let request = |method: &str, version: &str| {
            format!("{method} {path} {version}\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
        };
        let mut seen = vec![
            // The gateway's own writer, inline upstream exchange.
            (
                "HTTP/1.1",
                from_raw(raw_request(plain.port, &request("GET", "HTTP/1.1"))),
            ),
            // hyper serves HTTP/1.0 (the raw upstream head goes into its HeaderMap).
            (
                "HTTP/1.0",
                from_raw(raw_request(plain.port, &request("GET", "HTTP/1.0"))),
            ),
            // hyper serves, hyper's client asks the upstream.
            (
                "HTTP/1.1 DELETE",
                from_raw(raw_request(plain.port, &request("DELETE", "HTTP/1.1"))),
            ),
        ];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", plain.port))
            .await
            .unwrap();
        seen.push(("h2c", h2_get(tcp, &authority, path).await));
        let ca = certs.cert();
        let tls_request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            tls.port
        );
        let port = tls.port;
        let config = tls_client_config(&ca);
        let over_tls = tokio::task::spawn_blocking(move || {
            try_raw_tls_request(port, config, &tls_request).expect("TLS request")
        })
        .await
        .unwrap();
        seen.push(("TLS HTTP/1.1", from_raw(over_tls)));
        let h2 = tls_stream(tls.port, &ca, b"h2").await;
        seen.push((
            "TLS h2",
            h2_get(h2, &format!("localhost:{}", tls.port), path).await,
        ));

        let (_, first) = &seen[0];
        for (how, s) in &seen {
            // Each path may frame a body its own way; an h2 client never sees a length line
            // for a body it was not sent, an HTTP/1.x client may.
            let strip = |s: &Seen| Seen {
                status: s.status,
                headers: s
                    .headers
                    .iter()
                    .filter(|(n, _)| n != "content-length" || s.status == 204)
                    .cloned()
                    .collect(),
                body: s.body.clone(),
            };
            assert_eq!(
                strip(s),
                strip(first),
                "{path} over {how} differs from HTTP/1.1"
            );
            match path {
                "/cookies" => {
                    assert_eq!(s.all("set-cookie"), ["a=1; Path=/", "b=2"], "{how}");
                    assert_eq!(s.all("x-multi"), ["one", "two"], "{how}");
                    assert_eq!(s.body, b"ok", "{how}");
                }
                "/no-content" => {
                    assert_eq!(s.status, 204, "{how}");
                    assert!(s.all("content-length").is_empty(), "{how}: {s:?}");
                    assert_eq!(s.all("x-a"), ["1"], "{how}");
                }
                "/chunked" => {
                    assert_eq!(s.body, b"abc", "{how}");
                    assert!(
                        s.all("trailer").is_empty() && s.all("x-t").is_empty(),
                        "{how}"
                    );
                }
                "/hop" => {
                    assert!(s.all("x-secret").is_empty(), "{how}: {s:?}");
                    assert!(s.all("keep-alive").is_empty(), "{how}: {s:?}");
                    assert_eq!(s.all("x-c"), ["3"], "{how}");
                }
                "/cached" => {
                    // Nothing of the gateway's was added: the upstream's word stands.
                    assert_eq!(s.all("cache-control"), ["public, max-age=60"], "{how}");
                }
                _ => unreachable!(),
            }
        }
    }
}

#[test]
fn a_host_that_is_not_one_authority_is_refused_and_never_forwarded() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    for host in [
        "app.example:80:80",
        "x@app.example",
        "app.example, x",
        "app.example/x",
        "app.example%2fx",
        "app..example",
        "app.example:99999",
        "[::1",
    ] {
        let resp = raw_request(
            gw.port,
            &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(resp.status, 400, "{host}: {}", resp.text());
        assert!(resp.text().contains("host"), "{host}: {}", resp.text());
    }
    assert!(upstream.requests().is_empty(), "none reached the app");

    // A client naming Host in Connection cannot make the gateway forward without it.
    let resp = raw_request(
        gw.port,
        "GET /x HTTP/1.1\r\nHost: app.example:8080\r\nConnection: host, close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.header("host"), Some("app.example:8080"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.example:8080"));
}

#[test]
fn only_websocket_upgrades_are_tunnelled() {
    let echo = Upstream::echo();
    let gw = Gateway::start(&public_config(&echo.url, ""));
    // Another protocol asked for: the request goes on as a plain one, without Upgrade.
    let resp = raw_request(
        gw.port,
        "GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\
         Connection: Upgrade, HTTP2-Settings, close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = echo.last_request().unwrap();
    assert_eq!(seen.header("upgrade"), None);
    assert_eq!(seen.header("http2-settings"), None);

    // An upstream that switches to something other than the WebSocket asked for: 502, no
    // tunnel.
    let switching = ScriptedUpstream::start(|_| Script {
        pieces: vec![
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
                .to_vec(),
        ],
        close: false,
    });
    let gw = Gateway::start(&public_config(&switching.url, ""));
    let resp = raw_request(
        gw.port,
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(resp.status, 502, "{}", resp.text());
}

/// A client that sent a WebSocket upgrade for `/chat` to the gateway on `port`, followed by
/// `rest` (more header lines, the blank line, and any bytes after the head), in one write;
/// reads time out after 10 s.
fn send_upgrade(port: u16, rest: &[u8]) -> StdTcpStream {
    let mut client = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head =
        b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            .to_vec();
    head.extend_from_slice(rest);
    client.write_all(&head).unwrap();
    client
}

/// An upstream's read of a request head, a byte at a time so that nothing after it is taken.
fn read_head_byte_by_byte(s: &mut StdTcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    head
}

#[test]
fn websocket_bytes_sent_with_either_handshake_reach_the_other_side_first() {
    // An upstream that answers the handshake with its first frame in the same write, then
    // echoes what it reads, and says what handshake it got.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let head = read_head_byte_by_byte(&mut s);
        seen_tx
            .send(String::from_utf8_lossy(&head).into_owned())
            .unwrap();
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nEARLY",
        )
        .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut echo = b"echo:".to_vec();
                    echo.extend_from_slice(&buf[..n]);
                    if s.write_all(&echo).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let gw = Gateway::start(&public_config(&url, ""));

    let mut client = send_upgrade(
        gw.port,
        b"X-Forwarded-User: mallory\r\nx_forwarded_email: m@evil.example\r\n\r\nFIRST",
    );
    let read_until = |client: &mut StdTcpStream, got: &mut Vec<u8>, end: &[u8]| {
        let mut buf = [0u8; 1024];
        while !got.ends_with(end) {
            let n = client.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "closed early; got {:?}",
                String::from_utf8_lossy(got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    };
    let mut got = Vec::new();
    read_until(&mut client, &mut got, b"EARLYecho:FIRST");
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 101 "), "{text}");
    assert!(text.contains("\r\nupgrade: websocket\r\n"), "{text}");
    assert!(text.contains("\r\nconnection: upgrade\r\n"), "{text}");
    assert!(
        text.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{text}"
    );
    assert!(
        !text.contains("content-length") && !text.contains("transfer-encoding"),
        "{text}"
    );

    // The tunnel goes on both ways.
    client.write_all(b"MORE").unwrap();
    let mut more = Vec::new();
    read_until(&mut client, &mut more, b"echo:MORE");

    let seen = seen_rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .to_ascii_lowercase();
    assert!(seen.starts_with("get /chat http/1.1\r\n"), "{seen}");
    assert!(seen.contains("\r\nupgrade: websocket\r\n"), "{seen}");
    assert!(seen.contains("\r\nconnection: upgrade\r\n"), "{seen}");
    assert!(
        seen.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="),
        "{seen}"
    );
    assert!(
        !seen.contains("mallory") && !seen.contains("evil.example"),
        "a client's identity header reached the app: {seen}"
    );
}

#[test]
fn a_websocket_ends_both_ways_when_the_client_ends_its_side() {
    // An upstream that answers the handshake, then holds its side open for a minute after
    // it reads the end of the client's, and says when it read that end.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (ended_tx, ended_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_head_byte_by_byte(&mut s);
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nHI",
        )
        .unwrap();
        let mut buf = [0u8; 64];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        let _ = ended_tx.send(());
        std::thread::sleep(Duration::from_secs(60));
    });
    let gw = Gateway::start(&public_config(&url, ""));

    let mut client = send_upgrade(gw.port, b"\r\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"HI") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // The client ends its side: the gateway ends the upstream's and the client's, although
    // the upstream would hold its own open.
    let started = Instant::now();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    ended_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the upstream never read the end of the WebSocket");
    let n = client
        .read(&mut buf)
        .expect("the client's side stayed open after it ended its own");
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "ended after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_chunk_line_with_a_bare_lf_ends_the_response_at_once() {
    // The upstream then says nothing more and keeps the connection open.
    let upstream = ScriptedUpstream::start(|_| Script {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: t\n"
                .to_vec(),
        ],
        close: false,
    });
    let gw = Gateway::start(&public_config(
        &upstream.url,
        "[upstream]\nresponse_timeout = \"30s\"\n",
    ));
    let started = Instant::now();
    let bytes = raw_exchange(
        gw.port,
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "held for {:?}",
        started.elapsed()
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a body the upstream framed wrongly is not presented as complete: {text}"
    );
}

#[test]
fn idle_pooled_upstream_connections_close_when_their_time_is_up() {
    let upstream = ScriptedUpstream::start(|_| Script {
        pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()],
        close: false,
    });
    let gw = Gateway::start(&public_config(
        &upstream.url,
        "[upstream]\npool_idle_timeout = \"1s\"\n",
    ));
    let resp = raw_request(
        gw.port,
        "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        (upstream.connections(), upstream.closed()),
        (1, 0),
        "pooled"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.closed() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        upstream.closed(),
        1,
        "the idle connection was closed by the gateway, not kept until the next request"
    );
}

#[test]
fn limits_on_heads_and_bodies_answer_431_and_413() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
max_request_head = "8KiB"
max_request_headers = 20

[[routes]]
path_prefix = "/"
upstream = "{url}"
public = true

[[routes]]
path_prefix = "/upload"
upstream = "{url}"
public = true
max_body = "1KiB"
"#,
        url = upstream.url
    ));
    let big = "x".repeat(10 * 1024);
    let resp = raw_request(
        gw.port,
        &format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(resp.status, 431);
    let many: String = (0..30).map(|i| format!("X-{i}: v\r\n")).collect();
    let resp = raw_request(
        gw.port,
        &format!("GET / HTTP/1.1\r\nHost: a\r\n{many}Connection: close\r\n\r\n"),
    );
    assert_eq!(resp.status, 431);
    let before = upstream.requests().len();

    let body = "y".repeat(2048);
    let resp = raw_request(
        gw.port,
        &format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\nConnection: close\r\n\r\n{body}"),
    );
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(resp.text().contains("too large"), "{}", resp.text());
    let resp = raw_request(
        gw.port,
        &format!("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{body}\r\n0\r\n\r\n"),
    );
    assert_eq!(resp.status, 413, "{}", resp.text());
    let resp = raw_request(
        gw.port,
        &format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 512\r\nConnection: close\r\n\r\n{}", &body[..512]),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["body_len"], 512);
    // Other routes have no limit.
    let resp = raw_request(
        gw.port,
        &format!("POST /other HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\nConnection: close\r\n\r\n{body}"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The refused bodies reached the upstream at most as a cut-off stream, never whole.
    let whole = upstream
        .requests()
        .iter()
        .skip(before)
        .filter(|r| r.path == "/upload")
        .count();
    assert!(whole <= 2, "{whole}");
}

#[test]
fn connections_over_the_limit_wait_until_one_closes() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config_with(
        &upstream.url,
        "workers = 1\nmax_connections = 2",
        "",
    ));
    let addr = SocketAddr::from(([127, 0, 0, 1], gw.port));
    let ask = |s: &mut StdTcpStream| {
        s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).map(|_| buf)
    };
    let mut first = StdTcpStream::connect(addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(&ask(&mut first).unwrap(), b"HTTP/1.1 200");
    let mut second = StdTcpStream::connect(addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(&ask(&mut second).unwrap(), b"HTTP/1.1 200");
    // The third is in the listen queue: connected, but not served.
    let mut third = StdTcpStream::connect(addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert!(ask(&mut third).is_err(), "served beyond max_connections");
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 12];
    third
        .read_exact(&mut buf)
        .expect("served once a place was free");
    assert_eq!(&buf, b"HTTP/1.1 200");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_a_busy_one_is_not() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config_with(
        &upstream.url,
        "idle_timeout = \"1s\"",
        "",
    ));
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .unwrap();
        hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
            TokioExecutor::new(),
            TokioIo::new(tcp),
        )
        .await
        .expect("h2 handshake")
    };
    // Busy: a request every 400 ms for 3 s keeps it open.
    let (mut send, conn) = connect().await;
    let busy = tokio::spawn(conn);
    for _ in 0..8 {
        let req = http::Request::get(format!("http://127.0.0.1:{}/x", gw.port))
            .body(Empty::new())
            .unwrap();
        let resp = send.send_request(req).await.expect("served while busy");
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(!busy.is_finished());
    // Idle: closed by the gateway within two timeouts (and some slack).
    let (_send, conn) = connect().await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(6), conn)
        .await
        .expect("the idle HTTP/2 connection was closed")
        .ok();
    assert!(started.elapsed() >= Duration::from_millis(900));
}

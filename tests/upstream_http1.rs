//! The HTTP/1.1 conversation with upstreams, byte by byte: every way a response body can be
//! delimited, keep-alive connections reused and replaced, and responses the gateway must
//! refuse. The upstream here is a raw socket that writes exactly what the script says.

mod common;

use std::time::Duration;

use common::{client, public_config, Gateway, Script, ScriptedUpstream};

fn pieces(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

fn framing_script(line: &str) -> Script {
    let path = line.split(' ').nth(1).unwrap_or("/");
    let keep = |parts: &[&str]| Script {
        pieces: pieces(parts),
        close: false,
    };
    match path {
        "/length" => {
            keep(&["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Framing: length\r\n\r\nhello"])
        }
        "/length-split" => keep(&[
            "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n",
            "\r\nhello",
            " world",
        ]),
        "/chunked" => keep(&[
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            "lo\r\n1;ext=x\r\n \r\n5\r\nworld\r",
            "\n0\r\nX-Trailer: t\r\n\r\n",
        ]),
        "/close" => Script {
            pieces: pieces(&[
                "HTTP/1.1 200 OK\r\nX-Framing: close\r\n\r\nuntil ",
                "the end",
            ]),
            close: true,
        },
        "/early-hints" => keep(&[
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ]),
        "/no-content" => keep(&["HTTP/1.1 204 No Content\r\nX-Framing: none\r\n\r\n"]),
        "/conflicting-length" => {
            keep(&["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"])
        }
        "/garbage" => keep(&["HTTP/1.1 two hundred OK\r\n\r\n"]),
        "/huge-head" => Script {
            pieces: vec![format!(
                "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
                "b".repeat(100 * 1024)
            )
            .into_bytes()],
            close: false,
        },
        "/stall" => keep(&["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nthe beginning"]),
        "/truncated" => Script {
            pieces: pieces(&["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"]),
            close: true,
        },
        _ => keep(&["HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]),
    }
}

#[tokio::test]
async fn bodies_arrive_whole_however_the_upstream_delimits_them() {
    let upstream = ScriptedUpstream::start(framing_script);
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let client = client();

    for (path, body) in [
        ("/length", "hello"),
        ("/length-split", "hello world"),
        ("/chunked", "hello world"),
        ("/close", "until the end"),
        ("/early-hints", "ok"),
        ("/no-content", ""),
        // After the close-delimited one, the next request needs a new connection.
        ("/length", "hello"),
    ] {
        let resp = client.get(gw.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        assert!(status == 200 || status == 204, "{path}: {status}");
        assert_eq!(resp.text().await.unwrap(), body, "{path}");
    }

    let resp = client.head(gw.url("/length")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        "5",
        "HEAD keeps the length"
    );
    assert_eq!(resp.headers()["x-framing"], "length");
    assert_eq!(resp.text().await.unwrap(), "");
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let upstream = ScriptedUpstream::start(framing_script);
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let client = client();
    for path in [
        "/length",
        "/chunked",
        "/length-split",
        "/length",
        "/early-hints",
    ] {
        let resp = client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.text().await.unwrap();
    }
    assert_eq!(
        upstream.connections(),
        1,
        "five requests on one client connection use one upstream connection"
    );
}

#[tokio::test]
async fn an_upstream_connection_idle_longer_than_apps_keep_it_is_not_reused() {
    // Node, uvicorn and Apache close a keep-alive connection after 5 s idle. A POST sent on
    // such a connection as the app closes it fails and cannot be resent: by default the
    // gateway lets an idle connection go after 4 s, before the app does.
    let upstream = ScriptedUpstream::start(framing_script);
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let client = client();
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let before = upstream.connections();
        let first = client
            .request(method.clone(), gw.url("/length"))
            .send()
            .await
            .unwrap();
        assert_eq!(first.text().await.unwrap(), "hello");
        let soon = client
            .request(method.clone(), gw.url("/length"))
            .send()
            .await
            .unwrap();
        assert_eq!(soon.text().await.unwrap(), "hello");
        assert_eq!(
            upstream.connections(),
            before + 1,
            "{method}: reused while fresh"
        );
        tokio::time::sleep(Duration::from_millis(4600)).await;
        let later = client
            .request(method.clone(), gw.url("/length"))
            .send()
            .await
            .unwrap();
        assert_eq!(later.text().await.unwrap(), "hello");
        assert_eq!(
            upstream.connections(),
            before + 2,
            "{method}: a new one after 4 s idle"
        );
    }
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_replaced_without_an_error() {
    // Answers, then closes without saying so: every pooled connection goes stale.
    let upstream = ScriptedUpstream::start(|_| Script {
        pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()],
        close: true,
    });
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let client = client();
    for i in 0..5 {
        // Let the close arrive, so the gateway's next try meets a dead connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let resp = client.get(gw.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert!(upstream.connections() >= 5);
}

#[tokio::test]
async fn a_malformed_or_ambiguous_response_gives_502_and_a_short_body_is_cut() {
    let upstream = ScriptedUpstream::start(framing_script);
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let client = client();
    // Alike on the inline path (GET) and hyper's (POST).
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        for path in ["/conflicting-length", "/garbage", "/huge-head"] {
            let resp = client
                .request(method.clone(), gw.url(path))
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 502, "{method} {path}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "upstream_unavailable", "{method} {path}");
        }
    }
    let line = gw.wait_for_log(Duration::from_secs(5), |l| {
        l["path"] == "/garbage" && l["status"] == 502
    });
    assert!(
        line["error"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid response"),
        "{line}"
    );

    // Content-Length 10, then 4 bytes and the end: the client must not see a whole body.
    // Whether the head went out before the cut was noticed is a race: either the request
    // fails, or the body does.
    match client.get(gw.url("/truncated")).send().await {
        Ok(resp) => {
            assert_eq!(resp.status(), 200);
            assert!(
                resp.bytes().await.is_err(),
                "a cut body is not passed off as complete"
            );
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }

    // And the gateway goes on serving.
    let resp = client.get(gw.url("/length")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn bytes_an_upstream_sends_unasked_are_never_another_requests_response() {
    // Each trick answers, then sends more a moment later: a body after a 204 or a HEAD, a
    // second response after the Content-Length. Read on a reused connection, those bytes
    // would be the next request's response, with a cookie of the upstream's choosing.
    let smuggled =
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nSet-Cookie: _ssogate=ATTACKER\r\n\r\nSMUGGLED"
            .to_vec();
    let upstream = ScriptedUpstream::start(move |line| match line {
        "GET /after-204 HTTP/1.1" => Script {
            pieces: vec![
                b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                smuggled.clone(),
            ],
            close: false,
        },
        "GET /after-length HTTP/1.1" => Script {
            pieces: vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
                smuggled.clone(),
            ],
            close: false,
        },
        "HEAD /after-head HTTP/1.1" => Script {
            pieces: vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n".to_vec(),
                b"SMUGGLED".to_vec(),
            ],
            close: false,
        },
        _ => Script {
            pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext".to_vec()],
            close: false,
        },
    });
    // One worker: one pool, so the next request would take the same connection.
    let gw = Gateway::start(&common::public_config_with(
        &upstream.url,
        "workers = 1",
        "",
    ));
    let client = client();
    for (method, path) in [
        (reqwest::Method::GET, "/after-204"),
        (reqwest::Method::GET, "/after-length"),
        (reqwest::Method::HEAD, "/after-head"),
    ] {
        let first = client.request(method, gw.url(path)).send().await.unwrap();
        assert!(first.status().is_success(), "{path}: {}", first.status());
        // The unasked bytes arrive while the connection is idle.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let next = client.get(gw.url("/next")).send().await.unwrap();
        assert_eq!(next.status(), 200, "after {path}");
        assert!(next.headers().get("set-cookie").is_none(), "after {path}");
        assert_eq!(next.text().await.unwrap(), "next", "after {path}");
    }
}

#[tokio::test]
async fn an_upstream_cannot_set_or_delete_the_gateways_cookies() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\
        Set-Cookie: _ssogate=; Max-Age=0; Path=/\r\n\
        Set-Cookie: _ssogate_1=x; Path=/\r\n\
        Set-Cookie: app=1; Path=/\r\n\
        Set-Cookie: _ssogate_state_abc=planted; Path=/\r\n\
        Set-Cookie:  _ssogate_signout=x\r\n\r\nok"
        .to_vec();
    let upstream = ScriptedUpstream::start(move |_| Script {
        pieces: vec![answer.clone()],
        close: false,
    });
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let client = client();
    // GET takes the inline path, POST hyper's client: both leave the gateway's cookies out.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let resp = client
            .request(method.clone(), gw.url("/page"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        let cookies: Vec<&str> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies, ["app=1; Path=/"], "{method}");
    }
    // Logging is asynchronous: wait for the line rather than read the log at once.
    gw.wait_for_message("Set-Cookie for the gateway's own cookie");
}

#[tokio::test]
async fn a_body_the_upstream_stops_sending_is_cut_after_the_response_timeout_and_logged() {
    let upstream = ScriptedUpstream::start(framing_script);
    let gw = Gateway::start(&public_config(
        &upstream.url,
        "[upstream]\nresponse_timeout = \"1s\"\n",
    ));
    let client = client();
    // The inline path (GET) and hyper's (POST): the head and 13 of 100 bytes, then nothing.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let started = std::time::Instant::now();
        let resp = client
            .request(method.clone(), gw.url("/stall"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = tokio::time::timeout(Duration::from_secs(10), resp.bytes()).await;
        assert!(
            matches!(body, Ok(Err(_))),
            "{method}: the cut body is an error for the client, not a hang: {body:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{method}: {:?}",
            started.elapsed()
        );
    }
    gw.wait_for_log(Duration::from_secs(5), |l| {
        l["level"] == "WARN"
            && l["message"].as_str().is_some_and(|m| {
                m.starts_with("the upstream sent nothing more of its response body")
            })
            && l["upstream"] == upstream.url.as_str()
    });
    // A body the upstream cuts is logged too (the access line went out with the head).
    if let Ok(resp) = client.get(gw.url("/truncated")).send().await {
        let _ = resp.bytes().await;
    }
    gw.wait_for_message("the upstream's response body failed midway");
}

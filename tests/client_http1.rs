//! The HTTP/1.1 conversation with clients, byte by byte: keep-alive, pipelining, a request
//! with a body after plain ones on the same connection (the gateway's own loop hands the
//! connection to hyper), HTTP/1.0, HEAD, the header-read timeout on idle and half-sent
//! heads, the drain of idle keep-alive connections, and how connections are spread over the
//! workers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, public_config, public_config_with, raw_request, Gateway, Upstream};

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One response off a keep-alive connection: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads exactly one response from `s` (using `pending` for bytes already read), framed by
/// Content-Length or chunked; `head` says the request was HEAD (no body follows).
fn read_answer(s: &mut TcpStream, pending: &mut Vec<u8>, head: bool) -> Answer {
    let fill = |s: &mut TcpStream, pending: &mut Vec<u8>| {
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).expect("read from the gateway");
        assert!(
            n > 0,
            "the gateway closed mid-response: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&chunk[..n]);
    };
    let end = loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        fill(s, pending);
    };
    let head_text = String::from_utf8(pending[..end].to_vec()).expect("UTF-8 head");
    pending.drain(..end + 4);
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap().to_string();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    if head || status == 204 || status == 304 {
        return answer;
    }
    if answer.header("transfer-encoding") == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(at) = pending.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                fill(s, pending);
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&pending[..line_end])
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .expect("chunk size");
            pending.drain(..line_end + 2);
            while pending.len() < size + 2 {
                fill(s, pending);
            }
            answer.body.extend_from_slice(&pending[..size]);
            pending.drain(..size + 2);
            if size == 0 {
                return answer;
            }
        }
    }
    let len: usize = answer
        .header("content-length")
        .expect("a keep-alive answer says its length")
        .parse()
        .unwrap();
    while pending.len() < len {
        fill(s, pending);
    }
    answer.body = pending.drain(..len).collect();
    answer
}

/// Whether the gateway closes `s` within `within` (nothing more arrives, then EOF).
fn closes_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    matches!(s.read(&mut byte), Ok(0))
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let mut s = connect(gw.port);
    s.write_all(
        b"GET /one?x=1 HTTP/1.1\r\nHost: a\r\n\r\n\
          HEAD /two HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut pending = Vec::new();
    let one = read_answer(&mut s, &mut pending, false);
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["path"], "/one?x=1");
    assert_eq!(one.header("connection"), None, "kept alive");
    assert!(one.header("date").is_some(), "every answer is dated");

    let two = read_answer(&mut s, &mut pending, true);
    assert_eq!(two.status, 200);
    assert_eq!(two.header("x-upstream"), Some("echo"));

    let three = read_answer(&mut s, &mut pending, false);
    assert_eq!(three.json()["path"], "/three");
    assert_eq!(three.header("connection"), Some("close"));
    assert!(pending.is_empty(), "nothing after the last answer");
    assert!(closes_within(&mut s, Duration::from_secs(5)));

    let methods: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(methods, ["GET /one?x=1", "HEAD /two", "GET /three"]);
}

#[test]
fn a_request_with_a_body_after_plain_ones_on_the_same_connection_is_served_whole() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let mut s = connect(gw.port);
    let mut pending = Vec::new();

    s.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let first = read_answer(&mut s, &mut pending, false);
    assert_eq!(first.json()["path"], "/first");

    // A body, and pipelined behind it a GET: hyper takes over with both.
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world\
          GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let post = read_answer(&mut s, &mut pending, false);
    assert_eq!(post.status, 200);
    assert_eq!(post.json()["method"], "POST");
    assert_eq!(post.json()["body_len"], 11);
    let after = read_answer(&mut s, &mut pending, false);
    assert_eq!(after.json()["path"], "/after");

    // Chunked upload on the same connection, still served.
    s.write_all(
        b"PUT /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    let put = read_answer(&mut s, &mut pending, false);
    assert_eq!(
        (put.json()["method"].clone(), put.json()["body_len"].clone()),
        ("PUT".into(), 5.into())
    );
}

#[test]
fn http_1_0_and_expect_continue_clients_are_answered() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));

    let resp = common::raw_request(gw.port, "GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["path"], "/old");

    let mut s = connect(gw.port);
    s.write_all(
        b"POST /ask HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut pending = Vec::new();
    let cont = read_answer(&mut s, &mut pending, true);
    assert_eq!(cont.status, 100, "the client is told to go on");
    s.write_all(b"abc").unwrap();
    let done = read_answer(&mut s, &mut pending, false);
    assert_eq!(done.json()["body_len"], 3);
}

#[test]
fn a_request_target_that_is_not_a_uri_gets_400_and_the_connection_closes() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let resp = common::raw_request(gw.port, "GET /a b{} HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(resp.status, 400, "{}", resp.text());
    // Parses as a request line, but the target is no URI.
    let resp = common::raw_request(gw.port, "GET http://[::1/x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(
        resp.text()
            .contains("The address is malformed: the request target is not a URI."),
        "the page says what is wrong: {}",
        resp.text()
    );
    assert!(upstream.requests().is_empty());
}

#[test]
fn idle_and_half_sent_heads_are_closed_after_the_header_read_timeout() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config_with(
        &upstream.url,
        "header_read_timeout = \"1s\"",
        "",
    ));

    // Idle after one answer.
    let mut idle = connect(gw.port);
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    assert_eq!(read_answer(&mut idle, &mut pending, false).status, 200);
    // A head sent a byte at a time, too slowly.
    let mut slow = connect(gw.port);
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost").unwrap();

    let started = Instant::now();
    assert!(
        closes_within(&mut idle, Duration::from_secs(5)),
        "idle keep-alive connection closed"
    );
    assert!(
        closes_within(&mut slow, Duration::from_secs(5)),
        "half-sent head closed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not closed before the timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(
        upstream.requests().len(),
        1,
        "the half-sent head never went upstream"
    );

    // A connection that keeps asking in time stays open past the timeout.
    let mut busy = connect(gw.port);
    for i in 0..4 {
        busy.write_all(format!("GET /busy/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let answer = read_answer(&mut busy, &mut pending, false);
        assert_eq!(answer.json()["path"], format!("/busy/{i}"));
        std::thread::sleep(Duration::from_millis(400));
    }
}

#[test]
fn a_connection_quiet_past_a_second_is_answered_and_its_timeout_counts_from_the_last_answer() {
    let upstream = Upstream::echo();
    let gw = Gateway::start(&public_config_with(
        &upstream.url,
        "header_read_timeout = \"3s\"",
        "",
    ));
    let mut s = connect(gw.port);
    let mut pending = Vec::new();
    s.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut s, &mut pending, false).status, 200);
    // Past the second a connection keeps its request state for: it waits as an idle one.
    std::thread::sleep(Duration::from_millis(1500));
    s.write_all(b"GET /after-a-pause HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let answer = read_answer(&mut s, &mut pending, false);
    assert_eq!(answer.json()["path"], "/after-a-pause");

    let answered = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        closes_within(&mut s, Duration::from_secs(5)),
        "closed after the header read timeout"
    );
    let quiet = answered.elapsed();
    assert!(
        quiet >= Duration::from_millis(2500) && quiet < Duration::from_millis(3900),
        "closed {quiet:?} after the last answer, not 3 s"
    );
}

/// A connection quiet for a second or more waits parked, without its task: more of them
/// than a worker keeps lingering, each served again on the same socket when its client asks
/// (a whole head, a head in two parts, a request with a body for hyper), and again after a
/// second pause.
#[test]
fn connections_idle_for_seconds_are_served_again_on_the_same_socket() {
    let upstream = Upstream::echo();
    let metrics_port = free_port();
    let gw = Gateway::start(&public_config_with(
        &upstream.url,
        "header_read_timeout = \"30s\"",
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    ));
    let mut conns: Vec<(TcpStream, Vec<u8>)> = (0..300)
        .map(|i| {
            let mut s = connect(gw.port);
            let mut pending = Vec::new();
            s.write_all(format!("GET /first/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .unwrap();
            assert_eq!(read_answer(&mut s, &mut pending, false).status, 200);
            (s, pending)
        })
        .collect();

    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(2500));
        // One that sent a body is hyper's from then on, and waits in its task.
        let want = if round == 0 { 300 } else { 200 };
        assert_eq!(parked(metrics_port), want, "round {round}");
        for (i, (s, _)) in conns.iter_mut().enumerate() {
            match i % 3 {
                0 => s.write_all(
                    format!("GET /again/{round}/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
                ),
                1 => s.write_all(format!("GET /again/{round}/{i} HTTP/1.1\r\n").as_bytes()),
                _ => s.write_all(
                    format!(
                        "POST /again/{round}/{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok"
                    )
                    .as_bytes(),
                ),
            }
            .unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        for (i, (s, pending)) in conns.iter_mut().enumerate() {
            if i % 3 == 1 {
                s.write_all(b"Host: a\r\n\r\n").unwrap();
            }
            let answer = read_answer(s, pending, false);
            assert_eq!(answer.status, 200, "connection {i}, round {round}");
            assert_eq!(answer.json()["path"], format!("/again/{round}/{i}"));
        }
    }
    // 300 first requests and two rounds of 300 more, each once.
    assert_eq!(upstream.requests().len(), 900);

    // Clients that close: their parked connections are closed too.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(parked(metrics_port), 200);
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(5);
    while parked(metrics_port) != 0 {
        assert!(
            Instant::now() < deadline,
            "{} still parked",
            parked(metrics_port)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The metrics listener's page.
fn metrics(metrics_port: u16) -> String {
    raw_request(
        metrics_port,
        "GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    )
    .text()
}

/// `ssogate_parked_connections`, from the metrics listener.
fn parked(metrics_port: u16) -> usize {
    metrics(metrics_port)
        .lines()
        .find_map(|l| l.strip_prefix("ssogate_parked_connections "))
        .expect("the gauge is there")
        .parse()
        .unwrap()
}

/// The stop closes idle connections at once: one that just had its answer (in its task,
/// lingering) and one idle for seconds (parked, without a task).
#[test]
fn sigterm_closes_idle_keep_alive_connections_at_once() {
    let upstream = Upstream::echo();
    let mut gw = Gateway::start(&public_config_with(
        &upstream.url,
        "drain_timeout = \"20s\"",
        "",
    ));
    let mut pending = Vec::new();
    let mut parked = connect(gw.port);
    parked
        .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut parked, &mut pending, false).status, 200);
    // Lingering for a second, then parked.
    std::thread::sleep(Duration::from_millis(2500));
    let mut lingering = connect(gw.port);
    lingering
        .write_all(b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut lingering, &mut pending, false).status, 200);

    let started = Instant::now();
    gw.sigterm();
    for (mut s, which) in [(lingering, "lingering"), (parked, "parked")] {
        assert!(
            closes_within(&mut s, Duration::from_secs(5)),
            "the {which} connection is closed"
        );
    }
    gw.expect_clean_exit();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an idle connection does not hold the drain for its 20 s"
    );
}

#[test]
fn the_upstreams_headers_reach_the_client_without_its_hop_by_hop_ones_whoever_serves_it() {
    let upstream = common::ScriptedUpstream::start(|_| common::Script {
        pieces: vec![b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\n\
              Keep-Alive: timeout=5\r\nX-Private: hop\r\nX-Kept: yes\r\n\
              Set-Cookie: app=1; Path=/\r\nDate: Fri, 27 Nov 2026 16:00:00 GMT\r\n\
              Content-Length: 2\r\n\r\nok"
            .to_vec()],
        close: false,
    });
    let gw = Gateway::start(&public_config(&upstream.url, ""));
    let check = |answer: &Answer, who: &str| {
        assert_eq!(answer.status, 200, "{who}");
        assert_eq!(answer.body, b"ok", "{who}");
        assert_eq!(answer.header("x-kept"), Some("yes"), "{who}");
        assert_eq!(answer.header("set-cookie"), Some("app=1; Path=/"), "{who}");
        for gone in ["keep-alive", "x-private"] {
            assert_eq!(answer.header(gone), None, "{who}: {gone} passed");
        }
        let dates = answer.headers.iter().filter(|(n, _)| n == "date").count();
        assert_eq!(dates, 1, "{who}: the upstream's Date, once");
        assert_eq!(
            answer.header("date"),
            Some("Fri, 27 Nov 2026 16:00:00 GMT"),
            "{who}"
        );
        let lengths = answer
            .headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .count();
        assert_eq!(lengths, 1, "{who}: one Content-Length");
    };

    // The gateway's own loop; then, after a request with a body, hyper on the same connection.
    let mut s = connect(gw.port);
    let mut pending = Vec::new();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let first = read_answer(&mut s, &mut pending, false);
    check(&first, "own loop");
    assert_eq!(first.header("connection"), None);
    s.write_all(
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    check(
        &read_answer(&mut s, &mut pending, false),
        "hyper, body upstream",
    );
    check(
        &read_answer(&mut s, &mut pending, false),
        "hyper, inline upstream",
    );
}

/// `ssogate_open_connections` per worker, from the metrics listener.
fn open_per_worker(metrics_port: u16) -> Vec<usize> {
    metrics(metrics_port)
        .lines()
        .filter_map(|l| l.strip_prefix("ssogate_open_connections{worker=\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// Waits until the per-worker counts are `want`; panics with the last counts after 5 s.
fn wait_for_open(metrics_port: u16, want: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = open_per_worker(metrics_port);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "open connections per worker: {now:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connections_are_spread_evenly_over_the_workers_and_all_of_them_are_served() {
    let upstream = Upstream::echo();
    let metrics_port = free_port();
    let gw = Gateway::start(&public_config_with(
        &upstream.url,
        "workers = 2",
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    ));
    // The harness's own readiness connections are gone first.
    wait_for_open(metrics_port, &[0, 0]);

    // The kernel picks a worker's socket by a hash of the addresses, so left to itself it
    // splits ten connections 5/5 only about one time in four.
    let mut conns = Vec::new();
    for i in 0..10 {
        let mut s = connect(gw.port);
        s.write_all(format!("GET /c{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let mut pending = Vec::new();
        let answer = read_answer(&mut s, &mut pending, false);
        assert_eq!(answer.status, 200, "connection {i}");
        assert_eq!(answer.json()["path"], format!("/c{i}"));
        conns.push((s, pending));
    }
    wait_for_open(metrics_port, &[5, 5]);

    // Every connection, wherever it ended up, keeps being served.
    for (i, (s, pending)) in conns.iter_mut().enumerate() {
        s.write_all(format!("GET /again{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let answer = read_answer(s, pending, false);
        assert_eq!(answer.status, 200, "connection {i}, second request");
        assert_eq!(answer.json()["path"], format!("/again{i}"));
    }

    // Closed connections leave the counts.
    drop(conns);
    wait_for_open(metrics_port, &[0, 0]);
}

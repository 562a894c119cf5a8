//! Server-side sessions: `memory` (one instance, instant revocation) and `redis` (replicas
//! share sessions through a real redis-server; sign-out on one is refused by the others;
//! Redis going away gives a clear 503 and the gateway recovers when it returns).

mod common;
#[path = "common/idp.rs"]
mod idp;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Gateway, Upstream};
use idp::{browser, follow, sign_in, Idp};
use redis_server::Redis;
use reqwest::StatusCode;

fn config(port: u16, idp: &Idp, upstream: &str, session: &str) -> String {
    idp.gateway_config(port, upstream, session, "")
}

/// Two gateways sharing a Redis store (local cache 1 s) in front of one echo upstream.
struct Replicas {
    a: Gateway,
    b: Gateway,
    idp: Idp,
    upstream: Upstream,
}

fn replicas(redis_url: &str, more_session: &str) -> Replicas {
    let upstream = Upstream::echo();
    let (pa, pb) = (free_port(), free_port());
    let idp = Idp::start(&[pa, pb]);
    let session =
        format!("store = \"redis\"\nredis_url = \"{redis_url}\"\ncache_ttl = \"1s\"{more_session}");
    let a = Gateway::start(&config(pa, &idp, &upstream.url, &session));
    let b = Gateway::start(&config(pb, &idp, &upstream.url, &session));
    a.wait_ready(Duration::from_secs(15));
    b.wait_ready(Duration::from_secs(15));
    Replicas {
        a,
        b,
        idp,
        upstream,
    }
}

/// The `[session]` lines for `redis` (local cache 1 s), and `more`.
fn redis_session(redis: &Redis, more: &str) -> String {
    format!(
        "store = \"redis\"\nredis_url = \"{}\"\ncache_ttl = \"1s\"{more}",
        redis.url()
    )
}

/// One gateway with these `[session]` lines, and alice signed in there.
struct One {
    gw: Gateway,
    idp: Idp,
    upstream: Upstream,
    /// alice's session cookie value.
    cookie: String,
}

async fn signed_in_at_one(session: &str) -> One {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(&config(port, &idp, &upstream.url, session));
    gw.wait_ready(Duration::from_secs(15));
    let cookie = signed_in_cookie(&gw, "alice").await;
    One {
        gw,
        idp,
        upstream,
        cookie,
    }
}

/// Signs in at `gw` as `user` with a fresh browser; returns the session cookie's value.
async fn signed_in_cookie(gw: &Gateway, user: &str) -> String {
    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/"), user).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{user} signs in:\n{}",
        gw.logs()
    );
    idp::session_cookie(&b).await
}

/// Signs out at `gw` with a session cookie, as a browser would.
async fn sign_out(gw: &Gateway, cookie: &str) -> StatusCode {
    common::client()
        .get(gw.url("/oauth2/sign_out"))
        .header("cookie", format!("_ssogate={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls `/oauth2/ready?store=1` until it answers `want` with a body containing `saying`; the body.
async fn ready_becomes(gw: &Gateway, want: u16, saying: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let r = common::client()
            .get(gw.url("/oauth2/ready?store=1"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        if status == want && body.contains(saying) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/oauth2/ready still {status} {body} after {within:?}:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn with_cookie(gw: &Gateway, value: &str, path: &str) -> StatusCode {
    common::client()
        .get(gw.url(path))
        .header("cookie", format!("_ssogate={value}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn memory_sessions_are_small_and_end_at_sign_out_even_for_a_copied_cookie() {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(&config(port, &idp, &upstream.url, "store = \"memory\""));
    gw.wait_ready(Duration::from_secs(15));
    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let copied = idp::session_cookie(&b).await;
    assert!(
        copied.len() < 120,
        "the cookie holds only a sealed id: {} bytes",
        copied.len()
    );
    assert_eq!(with_cookie(&gw, &copied, "/x").await, StatusCode::OK);

    let (_, _) = follow(&b, &gw.url("/oauth2/sign_out"), None).await;
    assert_eq!(
        with_cookie(&gw, &copied, "/x").await,
        StatusCode::UNAUTHORIZED,
        "revoked at once"
    );

    // Every sign-in mints a new id: no fixation.
    let (resp, _) = sign_in(&b, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_ne!(idp::session_cookie(&b).await, copied);
}

#[tokio::test]
async fn a_worker_that_just_served_a_session_sees_its_sign_out_at_once() {
    // One worker: the requests before and after the sign-out meet the same per-worker memo.
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(
        &config(port, &idp, &upstream.url, "store = \"memory\"")
            .replace("[server]\n", "[server]\nworkers = 1\n"),
    );
    gw.wait_ready(Duration::from_secs(15));
    let cookie = signed_in_cookie(&gw, "alice").await;
    for i in 0..3 {
        assert_eq!(
            with_cookie(&gw, &cookie, &format!("/before-{i}")).await,
            StatusCode::OK
        );
    }
    let served = upstream.requests().len();

    sign_out(&gw, &cookie).await;
    assert_eq!(
        with_cookie(&gw, &cookie, "/after").await,
        StatusCode::UNAUTHORIZED,
        "the session ended with the sign-out"
    );
    assert_eq!(
        upstream.requests().len(),
        served,
        "nothing reached the upstream after the sign-out"
    );
}

#[tokio::test]
async fn redis_replicas_share_sessions_and_sign_out() {
    let redis = Redis::start();
    let Replicas {
        a,
        b,
        idp: _idp,
        upstream,
    } = replicas(&redis.url(), "");

    let cookie = signed_in_cookie(&a, "bob").await;

    // Signed in on A, used on B.
    assert_eq!(
        with_cookie(&b, &cookie, "/on-b").await,
        StatusCode::OK,
        "{}",
        b.logs()
    );
    assert_eq!(
        upstream.last_request().unwrap().header("x-forwarded-user"),
        Some("bob")
    );
    assert_eq!(with_cookie(&a, &cookie, "/on-a").await, StatusCode::OK);

    // Signed out on B: A refuses it within its cache time.
    assert_eq!(sign_out(&b, &cookie).await, StatusCode::FOUND);
    assert_eq!(
        with_cookie(&b, &cookie, "/on-b").await,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        with_cookie(&a, &cookie, "/on-a").await,
        StatusCode::UNAUTHORIZED
    );
}

/// How many times Redis ran `command` (lower case), from `INFO commandstats`.
fn redis_calls(redis: &Redis, command: &str) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    let line = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |rest| {
            rest.split(',').next().unwrap().parse().expect("a count")
        })
}

#[tokio::test]
async fn the_page_after_sign_in_costs_redis_nothing_and_the_session_is_stored_once() {
    let redis = Redis::start();
    let One {
        gw,
        cookie,
        idp: _idp,
        upstream,
    } = signed_in_at_one(&redis_session(&redis, "")).await;
    // The sign-in stored the session and filed it under alice; the page it went on to was
    // answered from what the callback had just stored, without reading it back.
    assert_eq!(
        upstream.last_request().unwrap().header("x-forwarded-user"),
        Some("alice")
    );
    assert_eq!(redis_calls(&redis, "setex"), 1, "{}", gw.logs());
    assert_eq!(redis_calls(&redis, "sadd"), 1);
    assert_eq!(redis_calls(&redis, "expire"), 1);
    assert_eq!(redis_calls(&redis, "get"), 0, "{}", gw.logs());

    // Past the local cache (1 s), the session is read from Redis again, and is still good.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(with_cookie(&gw, &cookie, "/later").await, StatusCode::OK);
    assert_eq!(redis_calls(&redis, "get"), 1);
}

#[tokio::test]
async fn redis_going_away_gives_503_and_the_gateway_recovers() {
    let mut redis = Redis::start();
    let One {
        gw,
        cookie,
        idp: _idp,
        upstream: _upstream,
    } = signed_in_at_one(&redis_session(&redis, "")).await;

    redis.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await; // past the local cache
    let down = common::client()
        .get(gw.url("/x"))
        .header("cookie", format!("_ssogate={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(down
        .text()
        .await
        .unwrap()
        .contains("Sessions are temporarily unavailable"));
    // Asked with ?store=1, the replica says it cannot serve sessions; plain /ready (what
    // every replica sharing this Redis answers) stays 200, so public routes stay up.
    ready_becomes(&gw, 503, "session store", Duration::from_secs(5)).await;
    let plain = common::client()
        .get(gw.url("/oauth2/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);

    // Redis comes back (empty: it kept nothing): the gateway answers again by itself.
    redis.restart();
    ready_becomes(&gw, 200, "ready", Duration::from_secs(15)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = with_cookie(&gw, &cookie, "/x").await;
        if status == StatusCode::UNAUTHORIZED {
            break; // the store answers again; the session died with the old Redis
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after Redis came back:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh = browser();
    let (resp, _) = sign_in(&fresh, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "sign-in works again");
    assert!(!gw.logs().contains("panicked"));
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_each_request_two_seconds_and_sign_out_says_so() {
    let redis = Redis::start();
    let session = redis_session(&redis, "");
    let One {
        gw,
        idp,
        upstream,
        cookie,
    } = signed_in_at_one(&session).await;

    redis.signal("STOP");
    // A replica that starts now (a new pod, say) has no connection yet: its first connect
    // must not hold everyone else's request behind it.
    let fresh = Gateway::start(&config(free_port(), &idp, &upstream.url, &session));
    // It serves, but is not ready: its store does not answer within 2 s.
    let unready = ready_becomes(&fresh, 503, "session store", Duration::from_secs(15)).await;
    assert!(unready.contains("did not answer"), "{unready}");
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..10).map(|i| {
        let cookie = cookie.clone();
        let fresh = &fresh;
        async move { with_cookie(fresh, &cookie, &format!("/asset/{i}")).await }
    }))
    .await;
    let took = started.elapsed();
    // A sign-out that cannot end the server-side session says so (and may be tried again).
    let signing_out = sign_out(&fresh, &cookie).await;
    redis.signal("CONT");
    assert_eq!(signing_out, StatusCode::SERVICE_UNAVAILABLE);
    for status in &answers {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{answers:?}");
    }
    assert!(
        took < Duration::from_secs(8),
        "10 parallel requests took {took:?}: each waits at most Redis's 2 s timeout, not in a queue"
    );
    // Redis answers again: so does the session, on both replicas.
    let deadline = Instant::now() + Duration::from_secs(10);
    while with_cookie(&fresh, &cookie, "/again").await != StatusCode::OK
        || with_cookie(&gw, &cookie, "/again").await != StatusCode::OK
    {
        assert!(Instant::now() < deadline, "{}", fresh.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ready_becomes(&fresh, 200, "ready", Duration::from_secs(10)).await;
    // Tried again with Redis back, the sign-out bites: a copy of the cookie is refused.
    assert_eq!(sign_out(&fresh, &cookie).await, StatusCode::FOUND);
    assert_eq!(
        with_cookie(&fresh, &cookie, "/after").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn replicas_refresh_a_stale_session_once_between_them() {
    let redis = Redis::start();
    // Bind every part: a dropped part would stop its server.
    let Replicas {
        a,
        b,
        idp,
        upstream: _upstream,
    } = replicas(&redis.url(), "\nrefresh_interval = \"1s\"");
    let cookie = signed_in_cookie(&a, "alice").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let before = idp.stats().await["refresh_grants"].as_u64().unwrap();
    let statuses = common::statuses_at_once((0..40).map(|i| {
        let gw = if i % 2 == 0 { a.url("/r") } else { b.url("/r") };
        common::client()
            .get(gw)
            .header("cookie", format!("_ssogate={cookie}"))
    }))
    .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}\nA:\n{}\nB:\n{}",
        a.logs(),
        b.logs()
    );
    let after = idp.stats().await["refresh_grants"].as_u64().unwrap();
    assert_eq!(after - before, 1, "one refresh across both replicas");
}

/// Three redis-server processes in cluster mode (masters only), joined with
/// `redis-cli --cluster create`, stopped by their PIDs.
struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        // Each node's cluster bus port is its own free port too: by default it is port +
        // 10000, which another test's free port (or an ephemeral one) may already hold.
        let bus_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let children = ports
            .iter()
            .zip(&bus_ports)
            .map(|(p, bus)| {
                Command::new("redis-server")
                    .args([
                        "--port",
                        &p.to_string(),
                        "--cluster-port",
                        &bus.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                    .arg("--cluster-config-file")
                    .arg(dir.path().join(format!("nodes-{p}.conf")))
                    .current_dir(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server")
            })
            .collect();
        for p in &ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(Instant::now() < deadline, "redis-server {p} did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &ports[0].to_string(), "cluster", "info"])
                .output()
                .expect("redis-cli");
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        RedisCluster {
            ports,
            children,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn replicas_share_sessions_through_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let Replicas {
        a,
        b,
        idp: _idp,
        upstream,
    } = replicas(&cluster.url(), "");

    // Several sign-ins, so the session keys land on different cluster nodes.
    for user in ["alice", "bob", "carol"] {
        let cookie = signed_in_cookie(&a, user).await;
        assert_eq!(
            with_cookie(&b, &cookie, "/on-b").await,
            StatusCode::OK,
            "{user} on B:\n{}",
            b.logs()
        );
        assert_eq!(
            upstream.last_request().unwrap().header("x-forwarded-user"),
            Some(user)
        );
        assert_eq!(sign_out(&b, &cookie).await, StatusCode::FOUND);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            with_cookie(&a, &cookie, "/on-a").await,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// A Redis master watched by one `redis-server --sentinel`, stopped by their PIDs.
struct RedisWithSentinel {
    master: Redis,
    replica: Redis,
    sentinel_port: u16,
    sentinel: Child,
    _dir: tempfile::TempDir,
}

impl RedisWithSentinel {
    fn start() -> RedisWithSentinel {
        let master = Redis::start();
        let master_port = master.port.to_string();
        let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &master_port]);
        let dir = tempfile::tempdir().unwrap();
        let sentinel_port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor sessions 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds sessions 1000\nsentinel failover-timeout sessions 5000\n",
                dir.path().display(),
                master.port
            ),
        )
        .unwrap();
        let sentinel = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", sentinel_port)).is_err() {
            assert!(Instant::now() < deadline, "the sentinel did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        RedisWithSentinel {
            master,
            replica,
            sentinel_port,
            sentinel,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/sessions/0",
            self.sentinel_port
        )
    }

    /// Session keys the master holds.
    fn session_keys(&self) -> usize {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &self.master.port.to_string(),
                "--scan",
                "--pattern",
                "ssogate:session:*",
            ])
            .output()
            .expect("redis-cli");
        // SCAN may return a key more than once; refresh locks and the per-user index sets
        // (`user:<sub>`, for the admin page) are not sessions.
        let keys: std::collections::HashSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.contains(":lock:") && !l.contains(":user:"))
            .map(str::to_string)
            .collect();
        keys.len()
    }
}

impl Drop for RedisWithSentinel {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
    }
}

#[tokio::test]
async fn replicas_find_the_master_through_sentinel() {
    let redis = RedisWithSentinel::start();
    let Replicas {
        a,
        b,
        idp: _idp,
        upstream: _upstream,
    } = replicas(&redis.url(), "");

    let br = browser();
    let (resp, _) = sign_in(&br, &a.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", a.logs());
    assert_eq!(
        redis.session_keys(),
        1,
        "the session lives on the master Sentinel named"
    );
    let cookie = idp::session_cookie(&br).await;
    assert_eq!(
        with_cookie(&b, &cookie, "/on-b").await,
        StatusCode::OK,
        "{}",
        b.logs()
    );
    assert_eq!(sign_out(&b, &cookie).await, StatusCode::FOUND);
    assert_eq!(redis.session_keys(), 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        with_cookie(&a, &cookie, "/on-a").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sessions_survive_a_sentinel_failover() {
    let mut redis = RedisWithSentinel::start();
    let Replicas {
        a,
        b: _b,
        idp: _idp,
        upstream: _upstream,
    } = replicas(&redis.url(), "");
    let cookie = signed_in_cookie(&a, "alice").await;
    // Let the replica catch up, then the master goes away.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &redis.replica.port.to_string(),
                "--scan",
                "--pattern",
                "ssogate:session:*",
            ])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never got the session"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.master.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await; // past the local cache

    // Sentinel promotes the replica; the gateway follows it and the session is still there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = with_cookie(&a, &cookie, "/after-failover").await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "only 503 while the failover runs"
        );
        assert!(
            Instant::now() < deadline,
            "no failover within 30 s:\n{}",
            a.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_sign_out_reaches_the_other_replica_during_a_provider_outage_too() {
    let redis = Redis::start();
    let Replicas {
        a,
        b,
        idp,
        upstream: _upstream,
    } = replicas(
        &redis.url(),
        "\nrefresh_interval = \"1s\"\nrefresh_grace = \"60s\"",
    );
    let cookie = signed_in_cookie(&a, "bob").await;
    // The provider answers 503: due refreshes fail, sessions live on within the grace.
    idp.control("token-outage?status=503", None).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(with_cookie(&b, &cookie, "/on-b").await, StatusCode::OK);

    // Signed out on A: B, busy with the session all along, refuses it within its cache time.
    assert_eq!(sign_out(&a, &cookie).await, StatusCode::FOUND);
    let deadline = Instant::now() + Duration::from_secs(3);
    while with_cookie(&b, &cookie, "/on-b").await != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "B still serves a signed-out session\n{}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    idp.control("token-outage?status=0", None).await;
}

#[tokio::test]
async fn a_sign_out_during_a_refresh_stands() {
    for store in ["memory", "redis"] {
        let redis = Redis::start();
        let session = match store {
            "redis" => redis_session(&redis, "\nrefresh_interval = \"2s\""),
            _ => "store = \"memory\"\nrefresh_interval = \"2s\"".to_string(),
        };
        let One {
            gw,
            idp,
            cookie,
            upstream: _upstream,
        } = signed_in_at_one(&session).await;

        // The refresh waits at the provider while the user signs out in another tab.
        idp.control("token-delay?ms=1000", None).await;
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let refreshing = {
            let (gw, cookie) = (&gw, cookie.clone());
            async move { with_cookie(gw, &cookie, "/during").await }
        };
        let signing_out = async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            sign_out(&gw, &cookie).await
        };
        let (during, signed_out) = tokio::join!(refreshing, signing_out);
        // The request that waited for the refresh finds the user signed out.
        assert_eq!(during, StatusCode::UNAUTHORIZED, "{store}");

        assert_eq!(signed_out, StatusCode::FOUND, "{store}");
        idp.control("token-delay?ms=0", None).await;

        // The refresh came back after the sign-out: it must not bring the session back
        // (until its next refresh, two seconds on, would find the token revoked).
        assert_eq!(
            with_cookie(&gw, &cookie, "/after").await,
            StatusCode::UNAUTHORIZED,
            "{store}: a copy of the cookie still works after sign-out\n{}",
            gw.logs()
        );
    }
}

#[tokio::test]
async fn a_refresh_that_outlived_its_lock_leaves_the_next_holders_lock_alone() {
    let redis = Redis::start();
    let One {
        gw,
        idp,
        cookie,
        upstream: _upstream,
    } = signed_in_at_one(&redis_session(&redis, "\nrefresh_interval = \"2s\"")).await;

    // The refresh waits at the provider; meanwhile its lock expires and another replica
    // takes it (played here by writing the lock key with another owner).
    idp.control("token-delay?ms=1500", None).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let refreshing = with_cookie(&gw, &cookie, "/slow");
    let taking_over = async {
        let deadline = Instant::now() + Duration::from_secs(5);
        let key = loop {
            let keys = redis.cli(&["--scan", "--pattern", "*lock:*"]);
            if !keys.is_empty() {
                break keys;
            }
            assert!(Instant::now() < deadline, "no refresh lock appeared");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            redis.cli(&["SET", &key, "another-replica", "PX", "10000"]),
            "OK"
        );
        key
    };
    let (status, key) = tokio::join!(refreshing, taking_over);
    idp.control("token-delay?ms=0", None).await;
    assert_eq!(status, StatusCode::OK, "{}", gw.logs());
    // The first refresh is done; the lock it no longer held is still the other replica's,
    // so a third replica cannot start a second refresh with the same refresh token.
    assert_eq!(
        redis.cli(&["GET", &key]),
        "another-replica",
        "a replica released a refresh lock that another one held"
    );
}

#[tokio::test]
async fn redis_replicas_share_the_idle_time_of_a_session() {
    let redis = Redis::start();
    let Replicas {
        a,
        b,
        idp: _idp,
        upstream: _upstream,
    } = replicas(
        &redis.url(),
        "\nidle_timeout = \"3s\"\nrefresh_interval = \"1h\"",
    );
    let cookie = signed_in_cookie(&a, "bob").await;
    // Used at either replica, in turn, for twice the idle time: alive at both.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        for gw in [&a, &b] {
            assert_eq!(
                with_cookie(gw, &cookie, "/x").await,
                StatusCode::OK,
                "{}",
                gw.logs()
            );
        }
    }
    // Unused at both for longer than the idle time: ended at both.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        with_cookie(&b, &cookie, "/x").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_cookie(&a, &cookie, "/x").await,
        StatusCode::UNAUTHORIZED
    );
}

//! Config reload without a restart: SIGHUP and a changed file swap in new routes and
//! upstreams between requests, under load, without a failed request; an invalid config, or
//! one that changes what takes a restart (`server.listen`), is refused with the reason in the
//! log and `ssogate_config_reloads_total{result="refused"}`, and the old routes keep serving.
//! Sessions stay signed in across a reload. Real binary, real sockets, upstreams in this
//! process, the test provider for the signed-in case.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// An echo upstream that says which one it is in `x-which`.
fn named_upstream(name: &'static str) -> Upstream {
    Upstream::start(move |req| async move {
        let mut resp = echo(req).await;
        resp.headers_mut()
            .insert("x-which", http::HeaderValue::from_static(name));
        resp
    })
}

/// `(path_prefix, upstream)` pairs.
type Routes<'a> = Vec<(&'a str, &'a str)>;

/// A public config on `port`: `routes` are `(path_prefix, upstream)` pairs.
fn config(port: u16, server: &str, routes: &[(&str, &str)], extra: &str) -> String {
    let mut text = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{server}\n");
    for (prefix, upstream) in routes {
        text.push_str(&format!(
            "[[routes]]\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\npublic = true\n\n"
        ));
    }
    text.push_str(&format!(
        "[logging]\nformat = \"json\"\nlevel = \"info\"\n\n{extra}\n"
    ));
    text
}

/// Replaces the file whole, as a ConfigMap update does (a rename, never half a file).
fn rewrite(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write the new config");
    std::fs::rename(&next, path).expect("swap the config in");
}

/// Log lines whose message contains `text`.
fn count(gw: &Gateway, text: &str) -> usize {
    gw.json_logs()
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(text)))
        .count()
}

/// Waits (without blocking the runtime) until `count(text)` reaches `n`.
async fn wait_count(gw: &Gateway, text: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(gw, text) < n {
        assert!(
            Instant::now() < deadline,
            "not {n} lines with {text:?} within 10 s; log:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which upstream answered `path` (its `x-which`), after checking it answered 200.
async fn which(c: &reqwest::Client, gw: &Gateway, path: &str) -> String {
    let resp = c.get(gw.url(path)).send().await.expect("request");
    assert_eq!(resp.status(), 200, "{path}");
    let which = resp.headers()["x-which"].to_str().unwrap().to_string();
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["path"], path, "the path the upstream saw");
    which
}

/// `ssogate_config_reloads_total{result=...}` on the metrics listener.
async fn reloads(metrics_port: u16, result: &str) -> u64 {
    let text = client()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("ssogate_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in:\n{text}"))
}

/// Requests that fail or answer anything but 200, and requests answered, while it runs.
#[derive(Default)]
struct Load {
    failed: AtomicU64,
    answered: AtomicU64,
    stop: AtomicBool,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Load {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        self.first_failure.lock().unwrap().get_or_insert(what);
    }
}

/// One client (its own keep-alive connections) sending `kind` requests until stopped.
async fn load_task(load: Arc<Load>, base: String, kind: usize) {
    let c = client();
    let mut i = 0u64;
    while !load.stop.load(Ordering::SeqCst) {
        i += 1;
        let req = match kind {
            // A request in flight across the swap finishes on the routes it started with.
            0 => c.get(format!("{base}/slow/150?i={i}")),
            // A body: hyper's client path, not the inline one.
            1 => c.post(format!("{base}/new/form?i={i}")).body("a=1&b=2"),
            _ => c.get(format!("{base}/new/page?i={i}")),
        };
        match req.send().await {
            Ok(resp) if resp.status() == 200 => match resp.bytes().await {
                Ok(_) => {
                    load.answered.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => load.fail(format!("body of request {i} ({kind}): {e}")),
            },
            Ok(resp) => load.fail(format!("request {i} ({kind}): {}", resp.status())),
            Err(e) => load.fail(format!("request {i} ({kind}): {e}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_swaps_routes_and_upstreams_under_load_without_a_failed_request() {
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    // The file is not polled here: each reload is SIGHUP's.
    let poll_off = "secret_poll_interval = \"0s\"\nworkers = 2";
    let port = free_port();
    let gw = Gateway::start(&config(port, poll_off, &[("/", &a.url)], ""));
    let c = client();
    assert_eq!(which(&c, &gw, "/new/x").await, "a");

    let load = Arc::new(Load::default());
    let tasks: Vec<_> = (0..4)
        .map(|kind| tokio::spawn(load_task(load.clone(), gw.base.clone(), kind)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Each version: its routes, then where `/new/x` and `/other` must go once it is loaded.
    let versions: [(Routes, &str, &str); 4] = [
        (vec![("/", &a.url), ("/new", &b.url)], "b", "a"),
        (vec![("/", &b.url)], "b", "b"),
        (vec![("/new", &a.url), ("/", &b.url)], "a", "b"),
        (vec![("/", &a.url)], "a", "a"),
    ];
    for (n, (routes, new_goes_to, other_goes_to)) in versions.iter().enumerate() {
        rewrite(&gw.config_path, &config(port, poll_off, routes, ""));
        gw.signal("HUP");
        wait_count(&gw, "config reloaded", n + 1).await;
        // The next request sees the new routes, on connections opened before the reload too.
        for _ in 0..5 {
            assert_eq!(which(&c, &gw, "/new/x").await, *new_goes_to, "version {n}");
            assert_eq!(
                which(&c, &gw, "/other").await,
                *other_goes_to,
                "version {n}"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    load.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let answered = load.answered.load(Ordering::SeqCst);
    eprintln!("{answered} requests answered across 4 reloads");
    assert_eq!(
        load.failed.load(Ordering::SeqCst),
        0,
        "failed requests under reload (first: {:?}), {answered} answered",
        load.first_failure.lock().unwrap()
    );
    assert!(answered > 40, "only {answered} requests under load");
    assert!(
        b.requests().iter().any(|r| r.path.starts_with("/new/form")),
        "a POST went to the second upstream"
    );
}

#[tokio::test]
async fn an_invalid_config_is_refused_named_in_the_log_and_counted_and_the_old_one_serves() {
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    let metrics_port = free_port();
    let metrics = format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    let server = "secret_poll_interval = \"0s\"";
    let port = free_port();
    let gw = Gateway::start(&config(port, server, &[("/", &a.url)], &metrics));
    let c = client();
    assert_eq!(reloads(metrics_port, "refused").await, 0);

    // A misspelt key and a route to somewhere that is no URL, beside a route that would be
    // valid: nothing of it is applied.
    let bad = config(
        port,
        server,
        &[("/", &a.url), ("/new", &b.url), ("/broken", "not a url")],
        &format!("{metrics}\n[upstream]\nconect_timeout = \"5s\"\n"),
    );
    rewrite(&gw.config_path, &bad);
    gw.signal("HUP");
    wait_count(&gw, "config reload refused", 2).await;
    let refusals: Vec<String> = gw
        .json_logs()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("reload refused"))
        })
        .map(|l| {
            assert_eq!(l["level"], "WARN", "{l}");
            assert_eq!(
                l["file"].as_str(),
                Some(gw.config_path.to_str().unwrap()),
                "{l}"
            );
            l["error"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert!(
        refusals
            .iter()
            .any(|e| e.contains("upstream.conect_timeout")),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|e| e.contains("routes[2].upstream")),
        "{refusals:?}"
    );
    assert_eq!(reloads(metrics_port, "refused").await, 1);
    assert_eq!(reloads(metrics_port, "applied").await, 0);
    assert_eq!(which(&c, &gw, "/new/x").await, "a", "the old routes serve");

    // Put right, it is applied.
    let good = config(port, server, &[("/", &a.url), ("/new", &b.url)], &metrics);
    rewrite(&gw.config_path, &good);
    gw.signal("HUP");
    wait_count(&gw, "config reloaded", 1).await;
    assert_eq!(which(&c, &gw, "/new/x").await, "b");
    assert_eq!(reloads(metrics_port, "applied").await, 1);
    assert_eq!(reloads(metrics_port, "refused").await, 1);
}

#[tokio::test]
async fn a_change_that_takes_a_restart_is_refused_whole_and_says_so() {
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    let metrics_port = free_port();
    let metrics = format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    let server = "secret_poll_interval = \"0s\"";
    let port = free_port();
    let gw = Gateway::start(&config(port, server, &[("/", &a.url)], &metrics));
    let c = client();

    // A new route with a new listen address and more workers: none of it is applied.
    let moved = config(
        free_port(),
        &format!("{server}\nworkers = 3"),
        &[("/", &a.url), ("/new", &b.url)],
        &metrics,
    );
    rewrite(&gw.config_path, &moved);
    gw.signal("HUP");
    wait_count(&gw, "takes a restart", 1).await;
    let line = gw
        .json_logs()
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("takes a restart"))
        })
        .unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["keys"], "server.listen, server.workers", "{line}");
    let message = line["message"].as_str().unwrap();
    assert!(message.contains("server.listen"), "{message}");
    assert_eq!(which(&c, &gw, "/new/x").await, "a", "nothing was applied");
    assert_eq!(reloads(metrics_port, "refused").await, 1);
    assert_eq!(reloads(metrics_port, "applied").await, 0);
}

#[tokio::test]
async fn a_changed_file_is_picked_up_without_a_signal_and_unchanged_bytes_do_nothing() {
    let (a, b) = (named_upstream("a"), named_upstream("b"));
    let server = "secret_poll_interval = \"200ms\"";
    let port = free_port();
    let gw = Gateway::start(&config(port, server, &[("/", &a.url)], ""));
    let c = client();
    assert_eq!(which(&c, &gw, "/new/x").await, "a");

    let text = config(port, server, &[("/", &a.url), ("/new", &b.url)], "");
    rewrite(&gw.config_path, &text);
    wait_count(&gw, "config reloaded", 1).await;
    let line = gw.wait_for_message("config reloaded");
    assert_eq!(line["trigger"], "file changed", "{line}");
    assert_eq!(which(&c, &gw, "/new/x").await, "b");

    // The same bytes again (a new file, a new inode): nothing happens.
    rewrite(&gw.config_path, &text);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&gw, "config reloaded"), 1, "{}", gw.logs());
    assert_eq!(count(&gw, "unchanged"), 0, "{}", gw.logs());
}

#[tokio::test]
async fn a_reload_changes_who_passes_a_route_and_sessions_stay_signed_in() {
    let upstream = Upstream::echo();
    let port = free_port();
    let provider = idp::Idp::start(&[port]);
    // Sessions in the gateway's memory: a reload that rebuilt the store would lose them.
    let session = "store = \"memory\"";
    let text = |groups: &str| {
        let route = format!(
            "[[routes]]\npath_prefix = \"/admin\"\nupstream = \"{}\"\nallowed_groups = [{groups}]\n",
            upstream.url
        );
        provider
            .gateway_config(port, &upstream.url, session, &route)
            .replacen("[server]\n", "[server]\nsecret_poll_interval = \"0s\"\n", 1)
    };
    let gw = Gateway::start(&text("\"admins\""));
    gw.wait_ready(Duration::from_secs(15));
    let bob = idp::browser();
    let (resp, _) = idp::sign_in(&bob, &gw.url("/"), "bob").await;
    assert_eq!(resp.status(), 200);
    let status = |path: &'static str| {
        let bob = bob.clone();
        let url = gw.url(path);
        async move { bob.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status("/admin/users").await,
        403,
        "bob is staff, not admins"
    );

    rewrite(&gw.config_path, &text("\"staff\""));
    gw.signal("HUP");
    wait_count(&gw, "config reloaded", 1).await;
    // The same session, no new sign-in: the route's new rule lets staff in.
    let resp = bob.get(gw.url("/admin/users")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-user"], "bob", "{seen}");
    assert_eq!(status("/elsewhere").await, 200);
}

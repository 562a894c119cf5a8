//! `session.idle_timeout`: a session in use lives on past it (its last-seen stamp renewed at
//! most every tenth of it, not on every request), one left unused that long is ended, with
//! the cookie store and a server-side store. Real binary, real (npm oidc-provider) provider.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::{Duration, Instant};

use common::{free_port, Gateway, Upstream};
use idp::{browser, sign_in, Idp};
use reqwest::StatusCode;

async fn idle_sessions_end_and_used_ones_live_on(store: &str) {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let config = idp.gateway_config(
        port,
        &upstream.url,
        &format!("store = \"{store}\"\nidle_timeout = \"3s\"\nrefresh_interval = \"1h\""),
        "",
    );
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));
    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/app"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", gw.logs());

    // In use for twice the idle time: never ended.
    let start = Instant::now();
    let mut renewed = 0;
    while start.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // A burst: at most one of these writes the stamp (a cookie, for the cookie store).
        let mut cookies = 0;
        for _ in 0..5 {
            let resp = b.get(gw.url("/app")).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{store}: {}", gw.logs());
            cookies += resp.headers().get_all("set-cookie").iter().count();
        }
        assert!(cookies <= 1, "{store}: {cookies} cookies set in one burst");
        renewed += cookies;
    }
    if store == "cookie" {
        assert!(
            renewed >= 2,
            "the cookie was renewed as it was used: {renewed}"
        );
    } else {
        assert_eq!(renewed, 0, "a server-side session keeps its cookie");
    }

    // Unused for longer than the idle time: ended.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let seen = upstream.requests().len();
    let resp = b.get(gw.url("/app")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{store}");
    assert!(resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .is_some_and(|l| l.contains("/oauth2/authorize?")));
    assert_eq!(upstream.requests().len(), seen, "nothing reached the app");
    gw.wait_for_message("unused for session.idle_timeout");
}

#[tokio::test]
async fn cookie_sessions_end_when_idle_and_live_on_when_used() {
    idle_sessions_end_and_used_ones_live_on("cookie").await;
}

#[tokio::test]
async fn memory_sessions_end_when_idle_and_live_on_when_used() {
    idle_sessions_end_and_used_ones_live_on("memory").await;
}

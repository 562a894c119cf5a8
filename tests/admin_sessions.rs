//! A user disabled or deleted on the admin page loses their gateway session at once where the
//! session store is server-side (`memory`, `redis`: their very next request goes to sign-in),
//! and the page says that with the cookie store the session ends at its next refresh. Real
//! parts: moto as the Cognito admin API, the test provider signing in moto's users
//! (`--moto-pool`), a real redis-server.
#![cfg(feature = "cognito-admin")]

mod common;
#[path = "common/idp.rs"]
mod idp;
#[path = "common/moto.rs"]
mod moto;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, sign_in_with, Idp};
use moto::{aws_env, Moto};
use redis_server::Redis;
use reqwest::{Client, StatusCode};

/// The password `Moto::seed_pool` gives everyone.
const PASSWORD: &str = "Passw0rd!xy";

struct Stand {
    gw: Gateway,
    _idp: Idp,
    _moto: Moto,
    _upstream: Upstream,
}

/// moto's pool (alice in admins, dave and erin in staff), the test provider signing in its
/// users, and a gateway with these `[session]` lines whose admin page admits `admins`.
async fn stand(session: &str) -> Stand {
    let moto = Moto::start();
    let pool = moto
        .seed_pool(&[
            ("alice", "alice@example.com", &["admins"]),
            ("dave", "dave@example.com", &["staff"]),
            ("erin", "erin@example.com", &["staff"]),
        ])
        .await;
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start_with(
        &[port],
        &["--moto-endpoint", &moto.url(), "--moto-pool", &pool],
    );
    let extra = format!(
        "[admin]\nenabled = true\nallowed_groups = [\"admins\"]\nuser_pool_id = \"{pool}\"\nendpoint_url = \"{}\"\n",
        moto.url()
    );
    let gw = Gateway::start_with_env(
        &idp.gateway_config(port, &upstream.url, session, &extra),
        &aws_env(),
    );
    gw.wait_ready(Duration::from_secs(30));
    Stand {
        gw,
        _idp: idp,
        _moto: moto,
        _upstream: upstream,
    }
}

/// A browser signed in as `user`, checked to reach the app as them.
async fn signed_in(s: &Stand, user: &str) -> Client {
    let client = browser();
    let (resp, trail) = sign_in_with(&client, &s.gw.url("/"), user, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK, "{trail:#?}");
    assert_eq!(seen_as(&s.gw, &client).await.as_deref(), Some(user));
    client
}

/// Who the upstream saw on `/hello` (`X-Forwarded-User`), or `None` when the gateway did not
/// let the request through (then it must be sending the browser to sign in).
async fn seen_as(gw: &Gateway, client: &Client) -> Option<String> {
    let resp = client.get(gw.url("/hello")).send().await.unwrap();
    if resp.status() == StatusCode::OK {
        let echo: serde_json::Value = resp.json().await.unwrap();
        return echo["headers"]["x-forwarded-user"]
            .as_str()
            .map(str::to_string);
    }
    None
}

/// Where the gateway sends a request to `/hello` that it does not let through (sign-in is
/// the provider's authorize endpoint).
async fn sent_to(gw: &Gateway, client: &Client) -> (StatusCode, String) {
    let resp = client.get(gw.url("/hello")).send().await.unwrap();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (resp.status(), location)
}

/// alice's change on the admin page (`action` on `user`, confirmed); the page's message.
async fn admin_does(s: &Stand, admin: &Client, action: &str, user: &str) -> String {
    let page = admin
        .get(s.gw.url("/oauth2/admin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
    let csrf = &page[at..at + page[at..].find('"').unwrap()];
    let resp = admin
        .post(s.gw.url("/oauth2/admin"))
        .form(&[
            ("csrf", csrf),
            ("action", action),
            ("user", user),
            ("confirm", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    let at = page.find("id=\"message\">").expect("a message") + 13;
    page[at..at + page[at..].find("</p>").unwrap()].to_string()
}

/// Disables dave and deletes erin, each signed in at the gateway: both are sent to sign in
/// at their very next request; alice, who did it, is not.
async fn disabled_and_deleted_users_lose_their_sessions_at_once(s: &Stand) {
    let admin = signed_in(s, "alice").await;
    let dave = signed_in(s, "dave").await;
    let erin = signed_in(s, "erin").await;
    // A second session of dave's (another browser) ends too.
    let dave2 = signed_in(s, "dave").await;

    let said = admin_does(s, &admin, "disable", "dave").await;
    assert!(said.contains("Disabled dave"), "{said}");
    assert!(
        said.contains("gateway sessions ended at once (2)"),
        "{said}"
    );
    for browser in [&dave, &dave2] {
        let (status, location) = sent_to(&s.gw, browser).await;
        assert_eq!(status, StatusCode::FOUND, "dave still passes");
        assert!(location.contains("/oauth2/authorize?"), "{location}");
    }

    let said = admin_does(s, &admin, "delete", "erin").await;
    assert!(said.contains("Deleted erin"), "{said}");
    assert!(said.contains("ended at once (1)"), "{said}");
    assert_eq!(sent_to(&s.gw, &erin).await.0, StatusCode::FOUND);

    assert_eq!(seen_as(&s.gw, &admin).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn memory_store_ends_a_disabled_or_deleted_users_sessions_at_once() {
    let s = stand("store = \"memory\"").await;
    disabled_and_deleted_users_lose_their_sessions_at_once(&s).await;
}

#[tokio::test]
async fn redis_store_ends_a_disabled_or_deleted_users_sessions_at_once() {
    let redis = Redis::start();
    let s = stand(&format!(
        "store = \"redis\"\nredis_url = \"{}\"",
        redis.url()
    ))
    .await;
    disabled_and_deleted_users_lose_their_sessions_at_once(&s).await;
    // The index of dave's and erin's sessions went with them; alice's stays.
    let indexes = redis.cli(&["--scan", "--pattern", "*user:*"]);
    assert_eq!(indexes.lines().count(), 1, "{indexes}");
}

#[tokio::test]
async fn with_the_cookie_store_the_page_says_the_session_ends_at_the_next_refresh() {
    let s = stand("").await;
    let admin = signed_in(&s, "alice").await;
    let dave = signed_in(&s, "dave").await;
    let said = admin_does(&s, &admin, "disable", "dave").await;
    assert!(said.contains("Disabled dave"), "{said}");
    assert!(said.contains("ends at its next refresh"), "{said}");
    // Nothing to end at once: the sealed cookie still opens until its refresh is due.
    assert_eq!(seen_as(&s.gw, &dave).await.as_deref(), Some("dave"));
}

//! Sessions that last: refresh with the refresh token when due, exactly one refresh per
//! session at a time, group changes and disabled users noticed at the refresh, and a
//! provider outage survived within the grace period.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, sign_in, Idp};
use reqwest::StatusCode;

fn config(port: u16, idp: &Idp, upstream: &str, session: &str) -> String {
    idp.gateway_config(
        port,
        upstream,
        session,
        "[access]\nallowed_groups = [\"staff\"]",
    )
}

struct Stand {
    gw: Gateway,
    idp: Idp,
    _upstream: Upstream,
}

fn stand(session: &str) -> Stand {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(&config(port, &idp, &upstream.url, session));
    gw.wait_ready(Duration::from_secs(15));
    Stand {
        gw,
        idp,
        _upstream: upstream,
    }
}

async fn refresh_grants(idp: &Idp) -> u64 {
    idp.stats().await["refresh_grants"].as_u64().unwrap()
}

#[tokio::test]
async fn a_due_session_is_refreshed_transparently() {
    // 3 s, so that a slow sign-in on a busy machine is not itself past the first refresh.
    let s = stand("refresh_interval = \"3s\"");
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(refresh_grants(&s.idp).await, 0);
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let resp = b.get(s.gw.url("/later")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());
    assert_eq!(refresh_grants(&s.idp).await, 1);
    // The browser got the refreshed cookie; the next request needs no refresh.
    let set_cookie = resp.headers().get_all("set-cookie").iter().count();
    assert!(set_cookie >= 1, "the refreshed session is sent back");
    let again = b.get(s.gw.url("/again")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(refresh_grants(&s.idp).await, 1);
}

#[tokio::test]
async fn a_server_side_session_is_refreshed_again_at_its_next_due_time() {
    // The memory store keeps the cookie across refreshes: the second refresh must not be
    // answered from the first one's memo.
    let s = stand("refresh_interval = \"1s\"\nstore = \"memory\"");
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let start = refresh_grants(&s.idp).await;
    for round in 1..=2 {
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let resp = b.get(s.gw.url("/later")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            refresh_grants(&s.idp).await - start,
            round,
            "refresh number {round}"
        );
    }
}

#[tokio::test]
async fn fifty_parallel_requests_on_a_stale_session_cause_one_refresh() {
    for store in ["cookie", "memory"] {
        let s = stand(&format!("refresh_interval = \"1s\"\nstore = \"{store}\""));
        let b = browser();
        let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
        assert_eq!(resp.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = s.idp.stats().await["token_requests"].as_u64().unwrap();
        let statuses =
            common::statuses_at_once((0..50).map(|i| b.get(s.gw.url(&format!("/storm/{i}")))))
                .await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{store}: {statuses:?}"
        );
        let after = s.idp.stats().await["token_requests"].as_u64().unwrap();
        assert_eq!(
            after - before,
            1,
            "{store}: exactly one call to the token endpoint"
        );
    }
}

#[tokio::test]
async fn a_user_removed_from_the_group_gets_403_after_the_refresh() {
    let s = stand("refresh_interval = \"1s\"");
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    s.idp
        .control("users/bob/groups", Some(serde_json::json!([])))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = b.get(s.gw.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{}", s.gw.logs());
    s.idp.control("reset-users", None).await;
}

#[tokio::test]
async fn a_disabled_user_is_signed_out_at_the_refresh() {
    let s = stand("refresh_interval = \"1s\"");
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    s.idp.control("users/alice/disable", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let api = b
        .get(s.gw.url("/api"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let nav = b.get(s.gw.url("/page")).send().await.unwrap();
    assert_eq!(nav.status(), StatusCode::FOUND);
    assert!(nav.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(&format!("{}/oauth2/authorize?", s.idp.issuer)));
    s.idp.control("reset-users", None).await;
}

#[tokio::test]
async fn a_deleted_user_is_signed_out_at_the_refresh() {
    let s = stand("refresh_interval = \"1s\"\nstore = \"memory\"");
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Deleting the user makes every refresh fail with invalid_grant, as Cognito does.
    s.idp.control("users/alice/delete", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let nav = b.get(s.gw.url("/page")).send().await.unwrap();
    assert_eq!(nav.status(), StatusCode::FOUND);
    s.idp.control("reset-users", None).await;
}

#[tokio::test]
async fn an_unreachable_provider_is_survived_within_the_grace_then_fails_closed() {
    let mut s = stand("refresh_interval = \"1s\"\nrefresh_grace = \"4s\"");
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    s.idp.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = b.get(s.gw.url("/during")).send().await.unwrap();
    assert_eq!(
        during.status(),
        StatusCode::OK,
        "within the grace the session works"
    );
    // Logging is asynchronous: wait for the warning rather than read the log at once.
    s.gw.wait_for_message("the session keeps working within the grace period");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = b.get(s.gw.url("/after")).send().await.unwrap();
    assert_eq!(
        after.status(),
        StatusCode::FOUND,
        "past the grace it fails closed"
    );
}

#[tokio::test]
async fn a_provider_answering_503_429_or_invalid_client_at_refresh_does_not_sign_out() {
    let s = stand("refresh_interval = \"1s\"\nrefresh_grace = \"60s\"");
    // One signed-in browser per kind of trouble: a session whose refresh failed is asked
    // again only after a while, not on every request.
    let mut browsers = Vec::new();
    for user in ["bob", "alice", "bob"] {
        let b = browser();
        let (resp, _) = sign_in(&b, &s.gw.url("/"), user).await;
        assert_eq!(resp.status(), StatusCode::OK);
        browsers.push(b);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // 401 invalid_client: the gateway's credentials, not the user's grant (a secret being
    // rotated): no reason to sign everybody out.
    for (b, status) in browsers.iter().zip([503, 429, 401]) {
        s.idp
            .control(&format!("token-outage?status={status}"), None)
            .await;
        let asked = s.idp.stats().await["token_requests"].as_u64().unwrap();
        let during = b.get(s.gw.url("/during")).send().await.unwrap();
        assert_eq!(
            during.status(),
            StatusCode::OK,
            "a {status} from the token endpoint must not sign the user out\n{}",
            s.gw.logs()
        );
        // After the first failure the refresh is tried in the background.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.idp.stats().await["token_requests"].as_u64().unwrap() != asked + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the due refresh was tried and got {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    s.gw.wait_for_message("the session keeps working within the grace period");
    s.idp.control("token-outage?status=0", None).await;
}

#[tokio::test]
async fn a_provider_that_does_not_answer_holds_up_one_request_not_every_users() {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let session = "refresh_interval = \"1s\"\nrefresh_grace = \"60s\"";
    let gw = Gateway::start(
        &config(port, &idp, &upstream.url, session).replace("timeout = \"2s\"", "timeout = \"5s\""),
    );
    gw.wait_ready(Duration::from_secs(15));
    let mut browsers = Vec::new();
    for user in ["bob", "alice", "bob"] {
        let b = browser();
        let (resp, _) = sign_in(&b, &gw.url("/"), user).await;
        assert_eq!(resp.status(), StatusCode::OK);
        browsers.push(b);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // The token endpoint stops answering in time (a black-holed or overloaded provider).
    idp.control("token-delay?ms=8000", None).await;
    let timed = |b: &reqwest::Client, path: &str| {
        let request = b.get(gw.url(path)).send();
        async move {
            let started = std::time::Instant::now();
            let status = request.await.unwrap().status();
            (status, started.elapsed())
        }
    };
    // The first due request finds out, waiting for provider.timeout (5 s)...
    let (status, took) = timed(&browsers[0], "/first").await;
    assert_eq!(status, StatusCode::OK, "{}", gw.logs());
    assert!(took >= Duration::from_secs(4), "{took:?}");
    // ...and no one else waits for it: each other session is refreshed in the background.
    for (i, b) in browsers.iter().enumerate() {
        let (status, took) = timed(b, "/then").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            took < Duration::from_secs(2),
            "browser {i} waited {took:?} for a provider known to be failing"
        );
    }
    gw.wait_for_message("the identity provider is failing");

    // The provider answers again: the next due session's refresh (in the background) finds
    // it, and refreshes are inline again.
    idp.control("token-delay?ms=0", None).await;
    let later = browser();
    let (resp, _) = sign_in(&later, &gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = refresh_grants(&idp).await;
    assert_eq!(
        later.get(gw.url("/due")).send().await.unwrap().status(),
        StatusCode::OK
    );
    gw.wait_for_message("the identity provider answers refreshes again");
    assert!(refresh_grants(&idp).await > before);
}

#[tokio::test]
async fn refreshed_cookies_are_secure_when_a_trusted_proxy_says_https() {
    // No public_url: the origin is what the request says, through a trusted proxy.
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let with_url = config(port, &idp, &upstream.url, "refresh_interval = \"1s\"");
    let public_url = format!("public_url = \"http://127.0.0.1:{port}\"\n");
    assert!(with_url.contains(&public_url));
    let gw = Gateway::start(&with_url.replace(&public_url, "trusted_proxies = [\"127.0.0.1\"]\n"));
    gw.wait_ready(Duration::from_secs(15));
    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let r = b
        .get(gw.url("/after"))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!set.is_empty(), "the refresh re-seals the session cookie");
    for cookie in set {
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
}

#[tokio::test]
async fn forward_auth_says_when_a_refreshed_cookie_session_needs_more_than_one_cookie() {
    // A user in many groups: the cookie-store session takes several cookies, and nginx's
    // auth_request_set passes on only the first of them.
    let s = stand("refresh_interval = \"1s\"");
    let groups: Vec<String> = (0..120)
        .map(|i| format!("staff-of-the-department-number-{i:03}"))
        .chain(["staff".to_string()])
        .collect();
    s.idp
        .control("users/alice/groups", Some(serde_json::json!(groups)))
        .await;
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());
    // The sign-in's log line names the first groups and how many, not all of them.
    let line =
        s.gw.wait_for_log(Duration::from_secs(5), |l| l["message"] == "signed in");
    let logged = line["groups"].as_str().unwrap();
    assert!(
        logged.ends_with(",... (121 groups)") && logged.len() < 1000,
        "{logged}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let asked = b.get(s.gw.url("/oauth2/auth")).send().await.unwrap();
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let cookies = asked.headers().get_all("set-cookie").iter().count();
    assert!(cookies > 1, "{cookies} Set-Cookie");
    s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["message"].as_str().is_some_and(|m| {
            m.starts_with("forward-auth answered with more than one Set-Cookie")
                && m.contains("store = \"memory\" or \"redis\"")
        })
    });
    s.idp.control("reset-users", None).await;
}

#[tokio::test]
async fn a_refreshed_token_whose_key_the_jwks_does_not_show_yet_does_not_sign_out() {
    // The provider rotates its key and, for a while, its JWKS lags behind (as can happen
    // during a rotation): the refreshed ID token cannot be checked now. That is the
    // provider's trouble, survived within the grace, not a reason to end the session.
    let s = stand("refresh_interval = \"1s\"\nrefresh_grace = \"60s\"");
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    s.idp.control("rotate-keys", None).await;
    s.idp.control("hide-signing-key", None).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = refresh_grants(&s.idp).await;
    let during = b.get(s.gw.url("/during")).send().await.unwrap();
    assert_eq!(during.status(), StatusCode::OK, "{}", s.gw.logs());
    assert_eq!(
        refresh_grants(&s.idp).await,
        before + 1,
        "the refresh was made"
    );
    s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("keeps working within the grace period"))
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("no key with kid"))
    });
    s.idp.control("show-signing-key", None).await;
}

#[tokio::test]
async fn a_refresh_done_in_the_background_reaches_the_browser_later() {
    // While the provider was failing, a due cookie-store session was refreshed in the
    // background; the request that started it went on with the old cookie. The refreshed
    // cookie must reach the browser with its next request, even a minute later, rather
    // than the old refresh token being used again (with rotation on, that signs out).
    let s = stand("refresh_interval = \"1s\"\nrefresh_grace = \"300s\"");
    s.idp.control("rotate-refresh?on=1", None).await;
    let (alice, bob) = (browser(), browser());
    for (b, user) in [(&alice, "alice"), (&bob, "bob")] {
        let (resp, _) = sign_in(b, &s.gw.url("/"), user).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let old = idp::session_cookie(&bob).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The provider fails one refresh: from then on due sessions refresh in the background.
    s.idp.control("token-outage?status=503", None).await;
    assert_eq!(
        alice.get(s.gw.url("/a")).send().await.unwrap().status(),
        StatusCode::OK
    );
    s.idp.control("token-outage?status=0", None).await;
    let with_old = || {
        common::client()
            .get(s.gw.url("/b"))
            .header("cookie", format!("_ssogate={old}"))
            .send()
    };
    let first = with_old().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    s.gw.wait_for_message("the identity provider answers refreshes again");
    // Past the 30 s memo of refreshes: the old cookie's spent refresh token must not be
    // used again (a replay: the provider ends the session).
    tokio::time::sleep(Duration::from_secs(31)).await;
    let later = with_old().await.unwrap();
    assert_eq!(later.status(), StatusCode::OK, "{}", s.gw.logs());
    let set: Vec<_> = later.headers().get_all("set-cookie").iter().collect();
    assert!(
        set.iter()
            .any(|c| c.to_str().unwrap().starts_with("_ssogate=")),
        "the refreshed cookie: {set:?}"
    );
    assert!(!s.gw.logs().contains("refresh refused: session ended"));
}

#[tokio::test]
async fn a_rotated_refresh_token_is_the_one_used_next() {
    // Cognito with refresh-token rotation on (or Keycloak, Okta, Auth0): each refresh hands
    // out a new refresh token and spends the old one, whose reuse would end the session.
    for store in ["cookie", "memory"] {
        let s = stand(&format!("store = \"{store}\"\nrefresh_interval = \"1s\""));
        s.idp.control("rotate-refresh?on=1", None).await;
        let b = browser();
        let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
        assert_eq!(resp.status(), StatusCode::OK);
        // A slow sign-in (a loaded machine) may already have refreshed once on its landing.
        let before = refresh_grants(&s.idp).await;
        for i in 0..3 {
            tokio::time::sleep(Duration::from_millis(1300)).await;
            let r = b.get(s.gw.url(&format!("/r{i}"))).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{store} {i}: {}", s.gw.logs());
        }
        assert_eq!(refresh_grants(&s.idp).await - before, 3, "{store}");
        assert_eq!(s.idp.stats().await["refresh_failures"], 0, "{store}");
    }
}

//! The sign-in callback and the log against someone outside: words put on the gateway's page,
//! a state cookie used again and again, callbacks by the hundred, and requests that try to
//! make log lines as long as they like. Real binary, real (npm oidc-provider) provider.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, Idp};
use reqwest::StatusCode;

struct Stand {
    gw: Gateway,
    idp: Idp,
    _upstream: Upstream,
}

fn stand() -> Stand {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(&idp.gateway_config(port, &upstream.url, "", ""));
    gw.wait_ready(Duration::from_secs(15));
    Stand {
        gw,
        idp,
        _upstream: upstream,
    }
}

/// Starts a sign-in in `b`; returns the state the gateway put in the authorize URL.
async fn started_state(b: &reqwest::Client, gw: &Gateway) -> String {
    let start = b.get(gw.url("/oauth2/start?rd=/")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let authorize = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state in the authorize URL")
}

/// A JWT-shaped token naming key `kid`, signed by nobody.
fn made_up_token(kid: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#)),
        b64.encode(r#"{"sub":"x"}"#),
        b64.encode("sig")
    )
}

const LOCKED: &str = "Your+account+is+locked%2C+call+%2B1-555-0100+now";

#[tokio::test]
async fn provider_words_without_a_state_this_browser_started_are_not_shown() {
    let s = stand();
    let b = browser();
    for query in [
        format!("error=access_denied&error_description={LOCKED}"),
        format!("error=account_locked_call_555&error_description={LOCKED}&state=00006b025517ENhnpBCI5PZJMAPtfRsOww"),
    ] {
        let resp = b
            .get(s.gw.url(&format!("/oauth2/callback?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
        let page = resp.text().await.unwrap();
        assert!(page.contains("Sign-in failed"), "{page}");
        assert!(
            !page.contains("locked") && !page.contains("555") && !page.contains("account_"),
            "the page repeats words anybody can put in a link: {page}"
        );
    }
}

#[tokio::test]
async fn provider_words_for_this_browsers_attempt_are_quoted_escaped_and_cut() {
    let s = stand();
    let b = browser();
    let state = started_state(&b, &s.gw).await;
    let long = "x".repeat(5000);
    let resp = b
        .get(s.gw.url(&format!(
            "/oauth2/callback?error=access_denied&error_description=%3Cb%3ENo%3C%2Fb%3E+{long}&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("The sign-in provider said: “&lt;b&gt;No&lt;/b&gt; xxx"),
        "{page}"
    );
    assert!(page.contains("access_denied"), "{page}");
    assert!(!page.contains("<b>No"), "escaped: {page}");
    assert!(page.len() < 3000, "cut: a page of {} bytes", page.len());
}

#[tokio::test]
async fn a_failed_callback_uses_up_its_state() {
    let s = stand();
    let b = browser();
    let state = started_state(&b, &s.gw).await;
    let cookies = idp::cookies_sent_to(&b, "/oauth2/catch").await;
    let state_cookie = cookies
        .split("; ")
        .find(|c| c.starts_with("_ssogate_state_"))
        .expect("a state cookie")
        .to_string();
    let before = s.idp.stats().await["token_requests"].as_u64().unwrap();

    // A made-up code: the provider refuses it, and the state is gone with it.
    let first = common::client()
        .get(s.gw.url(&format!("/oauth2/callback?code=made-up-0&state={state}")))
        .header("cookie", &state_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let deleted = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("_ssogate_state_") && c.contains("Max-Age=0"));
    assert!(deleted, "the state cookie is deleted after a failure");

    // The same cookie kept and sent again with other codes: refused here, never at the provider.
    for n in 1..20 {
        let again = common::client()
            .get(s.gw.url(&format!("/oauth2/callback?code=made-up-{n}&state={state}")))
            .header("cookie", &state_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
        assert!(again.text().await.unwrap().contains("used already"));
    }
    let after = s.idp.stats().await["token_requests"].as_u64().unwrap();
    assert_eq!(after - before, 1, "one token request for one state");
}

#[tokio::test]
async fn callbacks_from_one_address_are_limited_to_30_a_minute() {
    let s = stand();
    let anon = common::client();
    let callback =
        s.gw.url("/oauth2/callback?code=x&state=00006b025517ENhnpBCI5PZJMAPtfRsOww");
    for n in 0..30 {
        let r = anon.get(&callback).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "callback {n}");
    }
    let refused = anon.get(&callback).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Too many sign-in attempts"));
    // The rest of the gateway still answers.
    let ping = anon.get(s.gw.url("/oauth2/ping")).send().await.unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
}

#[tokio::test]
async fn request_values_in_log_lines_are_cut() {
    let s = stand();
    let anon = common::client();
    let kid = "k".repeat(40_000);
    let r = anon
        .get(s.gw.url("/"))
        .bearer_auth(made_up_token(&kid))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let line = s.gw.wait_for_message("bearer token rejected");
    let text = line.to_string();
    assert!(text.len() < 1500, "a log line of {} bytes", text.len());
    assert!(text.contains("(+39744 bytes)"), "{text}");

    let error = "e".repeat(20_000);
    let _ = anon
        .get(s.gw.url(&format!("/oauth2/callback?error={error}")))
        .send()
        .await
        .unwrap();
    let line = s.gw.wait_for_message("the identity provider refused");
    assert!(line.to_string().len() < 1500, "{line}");

    let path = format!("/{}", "p".repeat(20_000));
    let _ = anon.get(s.gw.url(&path)).send().await.unwrap();
    let access = s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["path"].as_str().is_some_and(|p| p.starts_with("/ppp"))
    });
    assert!(access.to_string().len() < 1500, "{access}");
    drop(s.idp);
}

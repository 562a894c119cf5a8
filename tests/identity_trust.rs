//! What the upstream may take as the person's identity: never an email the provider does not
//! call verified, and never a session signed in for another app that shares the secret.
//! Real binary, real (npm oidc-provider) provider; carol's email is not verified.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, sign_in, Idp};
use reqwest::StatusCode;

struct Stand {
    gw: Gateway,
    idp: Idp,
    upstream: Upstream,
    port: u16,
}

/// A gateway signing in at a fresh provider; `edit` may change its config text.
fn stand(edit: impl Fn(String) -> String) -> Stand {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(&edit(idp.gateway_config(port, &upstream.url, "", "")));
    gw.wait_ready(Duration::from_secs(15));
    Stand {
        gw,
        idp,
        upstream,
        port,
    }
}

fn with_provider_line(line: &'static str) -> impl Fn(String) -> String {
    move |config| config.replacen("timeout = \"2s\"", &format!("timeout = \"2s\"\n{line}"), 1)
}

#[tokio::test]
async fn an_unverified_email_reaches_the_app_under_no_header() {
    let s = stand(|config| {
        format!("{config}\n[headers.claims]\n\"X-Forwarded-User\" = \"email\"\n\"X-Mail\" = \"email\"\n")
    });
    let b = browser();
    let (resp, trail) = sign_in(&b, &s.gw.url("/inbox"), "carol").await;
    assert_eq!(resp.status(), StatusCode::OK, "{trail:#?}\n{}", s.gw.logs());
    let seen = s.upstream.last_request().unwrap();
    assert_eq!(seen.path, "/inbox");
    for header in ["x-forwarded-email", "x-forwarded-user", "x-mail"] {
        assert_eq!(seen.header(header), None, "{header}");
    }
    assert!(
        seen.headers
            .values()
            .all(|v| !v.to_str().unwrap_or("").contains("carol@example.com")),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header("x-forwarded-preferred-username"), Some("carol"));

    let me = s.gw.userinfo(&b).await;
    assert_eq!(me["emailVerified"], false, "{me}");
    assert_eq!(me["email_verified"], false, "{me}");

    let asked = b.get(s.gw.url("/oauth2/auth")).send().await.unwrap();
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    assert!(asked.headers().get("x-auth-request-email").is_none());
    assert!(asked.headers().get("x-mail").is_none());
}

#[tokio::test]
async fn a_verified_email_still_names_the_user() {
    // bob's email_verified is the string "true", as Cognito sometimes sends it.
    let s = stand(with_provider_line("user_claim = \"email\""));
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());
    let seen = s.upstream.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-user"), Some("bob@example.com"));
    assert_eq!(seen.header("x-forwarded-email"), Some("bob@example.com"));
}

#[tokio::test]
async fn with_user_claim_email_an_unverified_email_cannot_sign_in() {
    let s = stand(with_provider_line("user_claim = \"email\""));
    let b = browser();
    let (resp, trail) = sign_in(&b, &s.gw.url("/"), "carol").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{trail:#?}");
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Your email address is not verified")
            && page.contains("knows people by their email address"),
        "{page}"
    );
    assert!(s.upstream.requests().is_empty(), "nothing reached the app");
    let again = b.get(s.gw.url("/")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::FOUND, "no session was made");

    // carol's own ID token, sent as a bearer token: 403 JSON.
    let tokens = idp::tokens_by_code_flow(
        &s.idp.issuer,
        "basic-client",
        "basic-secret",
        &format!("http://127.0.0.1:{}/oauth2/callback", s.port),
        "carol",
    )
    .await;
    let api = common::client()
        .get(s.gw.url("/api"))
        .bearer_auth(tokens["id_token"].as_str().expect("an ID token"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"], "email_not_verified", "{body}");
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test]
async fn require_verified_email_refuses_an_unverified_email_outright() {
    let s = stand(|config| format!("{config}\n[access]\nrequire_verified_email = true\n"));
    let carol = browser();
    let (resp, _) = sign_in(&carol, &s.gw.url("/"), "carol").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("admits only people whose email address is verified"),
        "{page}"
    );
    assert!(s.upstream.requests().is_empty());

    let bob = browser();
    let (resp, _) = sign_in(&bob, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());
}

#[tokio::test]
async fn a_session_for_one_client_opens_no_other_gateway_with_the_same_secret() {
    let (up_a, up_b) = (Upstream::echo(), Upstream::echo());
    let (port_a, port_b) = (free_port(), free_port());
    let idp = Idp::start(&[port_a, port_b]);
    let a = Gateway::start(&idp.gateway_config(port_a, &up_a.url, "", ""));
    // The same provider and session secret; another app (client).
    let b_config = idp
        .gateway_config(port_b, &up_b.url, "", "")
        .replace("basic-client", "post-client")
        .replace("basic-secret", "post-secret")
        .replace("client_secret_basic", "client_secret_post");
    let b = Gateway::start(&b_config);
    a.wait_ready(Duration::from_secs(15));
    b.wait_ready(Duration::from_secs(15));

    let browser = browser();
    let (resp, _) = sign_in(&browser, &a.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let session = idp::session_cookie(&browser).await;
    // Cookies are not bound to a port: the browser sends A's session to B as it is.
    let at_b = browser.get(b.url("/private")).send().await.unwrap();
    assert_eq!(at_b.status(), StatusCode::FOUND);
    let location = at_b.headers()["location"].to_str().unwrap();
    assert!(location.contains("/oauth2/authorize?"), "{location}");
    let api = common::client()
        .get(b.url("/private"))
        .header("cookie", format!("_ssogate={session}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert!(up_b.requests().is_empty(), "nothing reached B's app");

    // Nor does a sign-in attempt started at A end at B.
    let start = browser
        .get(a.url("/oauth2/start?rd=/"))
        .send()
        .await
        .unwrap();
    let authorize = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let callback = common::client()
        .get(b.url(&format!("/oauth2/callback?code=x&state={state}")))
        .header(
            "cookie",
            idp::cookies_sent_to(&browser, "/oauth2/catch").await,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), StatusCode::BAD_REQUEST);
    assert!(callback.text().await.unwrap().contains("not valid"));
}

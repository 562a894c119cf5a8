//! Signing out when another site asks for it: a link or a form elsewhere gets a page that asks
//! first; only its own button (with the gateway's token) signs out. Real binary, real (npm
//! oidc-provider) provider.

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
    _upstream: Upstream,
}

async fn signed_in_stand() -> (Stand, reqwest::Client) {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(&idp.gateway_config(port, &upstream.url, "", ""));
    gw.wait_ready(Duration::from_secs(15));
    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    (
        Stand {
            gw,
            idp,
            _upstream: upstream,
        },
        b,
    )
}

/// Whether `b` still reaches the app without signing in again.
async fn still_signed_in(b: &reqwest::Client, gw: &Gateway) -> bool {
    b.get(gw.url("/still")).send().await.unwrap().status() == StatusCode::OK
}

/// The provider's (logouts, revocations) counts.
async fn provider_sign_outs(idp: &Idp) -> (u64, u64) {
    let s = idp.stats().await;
    (
        s["logouts"].as_u64().unwrap(),
        s["revocations"].as_u64().unwrap(),
    )
}

fn hidden_csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

#[tokio::test]
async fn a_sign_out_link_on_another_site_asks_first() {
    let (s, b) = signed_in_stand().await;
    let before = provider_sign_outs(&s.idp).await;
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://evil.example"),
        ("referer", "https://evil.example/a-page"),
    ] {
        let resp = b
            .get(s.gw.url("/oauth2/sign_out?rd=/"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}: {value}");
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "{name}: {value}"
        );
        let page = resp.text().await.unwrap();
        assert!(
            page.contains("Another site asked to sign you out")
                && page.contains("<form method=\"post\" action=\"/oauth2/sign_out?rd=%2F\">")
                && page.contains(">Sign out</button>"),
            "{page}"
        );
        // Readable as it is: nothing loaded from anywhere.
        assert!(
            !page.contains("<script") && !page.contains("src=") && !page.contains("<link"),
            "{page}"
        );
        assert!(still_signed_in(&b, &s.gw).await, "{name}: {value}");
    }
    // A forged post from elsewhere, without the page's token, is asked about too.
    let forged = b
        .post(s.gw.url("/oauth2/sign_out"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", "made-up")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::OK);
    assert!(still_signed_in(&b, &s.gw).await);
    assert_eq!(
        provider_sign_outs(&s.idp).await,
        before,
        "nothing revoked or ended"
    );
}

#[tokio::test]
async fn the_confirmation_pages_button_signs_out() {
    let (s, b) = signed_in_stand().await;
    let before = provider_sign_outs(&s.idp).await;
    let page = b
        .get(s.gw.url("/oauth2/sign_out?rd=/"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&page);
    // As a browser that sends no Sec-Fetch-* and a privacy-minded `Origin: null` posts it:
    // the token alone makes it ours.
    let done = b
        .post(s.gw.url("/oauth2/sign_out?rd=%2F"))
        .header("origin", "null")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::FOUND);
    let location = done.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("/logout?client_id=basic-client"),
        "{location}"
    );
    assert!(!still_signed_in(&b, &s.gw).await, "signed out");
    let (_, revocations) = provider_sign_outs(&s.idp).await;
    assert_eq!(revocations, before.1 + 1, "the refresh token is revoked");
}

#[tokio::test]
async fn a_sign_out_from_our_own_pages_or_typed_in_signs_out_at_once() {
    for headers in [
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
        vec![],
    ] {
        let (s, b) = signed_in_stand().await;
        let mut req = b.get(s.gw.url("/oauth2/sign_out?rd=/"));
        for (name, value) in &headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{headers:?}");
        assert!(!still_signed_in(&b, &s.gw).await, "{headers:?}");
    }
}

//! `[access]` email rules as a user meets them at sign-in: `allowed_email_domains` (exact
//! domain, any case), `allowed_emails` (inline, or a file re-read while the gateway runs),
//! and `require_verified_email`, on by default once a rule is set. Real binary, real (npm
//! oidc-provider) provider: alice and bob have verified @example.com addresses, carol's is
//! not verified.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, sign_in, Idp};
use reqwest::StatusCode;

struct Stand {
    gw: Gateway,
    _idp: Idp,
    upstream: Upstream,
}

fn stand(access: &str) -> Stand {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let config = idp.gateway_config(port, &upstream.url, "", &format!("[access]\n{access}\n"));
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));
    Stand {
        gw,
        _idp: idp,
        upstream,
    }
}

async fn status_after_sign_in(s: &Stand, user: &str) -> (StatusCode, String) {
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/app"), user).await;
    (resp.status(), resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_domain_rule_admits_that_domain_and_verified_emails_only() {
    let s = stand("allowed_email_domains = [\"EXAMPLE.com\"]");
    let (status, _) = status_after_sign_in(&s, "alice").await;
    assert_eq!(status, StatusCode::OK, "{}", s.gw.logs());
    assert_eq!(
        s.upstream
            .last_request()
            .unwrap()
            .header("x-forwarded-email"),
        Some("alice@example.com")
    );
    // carol@example.com is not verified: with an email rule, that is asked by default.
    let before = s.upstream.requests().len();
    let (status, page) = status_after_sign_in(&s, "carol").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("admits only people whose email address is verified"),
        "{page}"
    );
    assert_eq!(s.upstream.requests().len(), before);
}

#[tokio::test]
async fn another_domain_is_refused_with_a_page_that_says_why() {
    let s = stand("allowed_email_domains = [\"example.org\", \"mail.example.com\"]");
    let (status, page) = status_after_sign_in(&s, "alice").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("admits only certain email addresses"),
        "{page}"
    );
    assert!(
        page.contains("sign_out"),
        "a way to use another account: {page}"
    );
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test]
async fn listed_addresses_pass_and_others_do_not() {
    let s = stand("allowed_emails = [\"ALICE@example.com\"]");
    assert_eq!(status_after_sign_in(&s, "alice").await.0, StatusCode::OK);
    assert_eq!(
        status_after_sign_in(&s, "bob").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_address_file_is_read_again_and_a_removed_address_loses_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emails.txt");
    std::fs::write(&file, "# who may sign in\nbob@example.com\n").unwrap();
    let s = stand(&format!("allowed_emails_file = \"{}\"", file.display()));
    assert_eq!(
        status_after_sign_in(&s, "alice").await.0,
        StatusCode::FORBIDDEN
    );
    let bob = browser();
    let (resp, _) = sign_in(&bob, &s.gw.url("/app"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());

    // As a mounted file changes: a new file swapped in, then SIGHUP (or the poll).
    let next = dir.path().join("emails.next");
    std::fs::write(&next, "alice@example.com\n").unwrap();
    std::fs::rename(&next, &file).unwrap();
    s.gw.signal("HUP");
    s.gw.wait_for_message("access.allowed_emails_file changed");

    assert_eq!(status_after_sign_in(&s, "alice").await.0, StatusCode::OK);
    let again = bob.get(s.gw.url("/app")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::FORBIDDEN, "bob's session ends");
}

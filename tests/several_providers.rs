//! Two sign-in providers at once (`[[providers]]`): the Cognito-shaped test provider for
//! partners and a plain OpenID Connect one for staff (both tests/support/idp.mjs, the second
//! with `--plain-oidc`), each signing in to its own routes and refused on the other's, a
//! route that takes both offering both on the sign-in page (in headless Chromium too), bearer
//! tokens checked by the provider whose issuer they name, forward-auth and /userinfo naming
//! the provider, and sign-out through the session's own provider.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{Idp, POOL, SESSION_SECRET};
use reqwest::StatusCode;

struct Setup {
    gw: Gateway,
    partners: Idp,
    staff: Idp,
    upstream: Upstream,
}

fn setup() -> Setup {
    let upstream = Upstream::echo();
    let port = free_port();
    let partners = Idp::start(&[port]);
    let staff = Idp::start_with(&[port], &["--pool", "corp", "--plain-oidc"]);
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
sign_in_title = "Example apps"

[[providers]]
name = "partners"
label = "Partners: sign in"
kind = "cognito"
user_pool_id = "{POOL}"
issuer_url = "{p_iss}"
domain = "{p_iss}"
client_id = "basic-client"
client_secret = "basic-secret"
timeout = "2s"

[[providers]]
name = "staff"
label = "Employees: sign in"
kind = "oidc"
issuer_url = "{s_iss}"
client_id = "basic-client"
client_secret = "basic-secret"
user_claim = "preferred_username"
timeout = "2s"

[session]
secret = "{SESSION_SECRET}"

[[routes]]
path_prefix = "/partners"
upstream = "{up}"
providers = ["partners"]

[[routes]]
path_prefix = "/staff"
upstream = "{up}"
providers = ["staff"]

[[routes]]
path_prefix = "/"
upstream = "{up}"

[logging]
format = "json"
"#,
        p_iss = partners.issuer,
        s_iss = staff.issuer,
        up = upstream.url,
    );
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));
    Setup {
        gw,
        partners,
        staff,
        upstream,
    }
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn each_provider_signs_in_to_its_own_routes_and_is_refused_on_the_others() {
    let s = setup();
    let gw = &s.gw;

    // A partner route goes straight to the partners' provider, and back with bob.
    let bob = idp::browser();
    let first = bob.get(gw.url("/partners/a")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    assert!(
        location(&first).starts_with(&format!("{}/oauth2/authorize?", s.partners.issuer)),
        "{}",
        location(&first)
    );
    let (landed, trail) = idp::sign_in(&bob, &gw.url("/partners/a"), "bob").await;
    assert_eq!(landed.status(), StatusCode::OK, "{trail:#?}");
    assert!(
        trail.iter().any(|u| u.starts_with(&s.partners.base())),
        "signed in at the partners' provider: {trail:#?}"
    );
    let seen = s.upstream.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("staff"));
    assert_eq!(gw.userinfo(&bob).await["provider"], "partners");

    // bob's partner session is no session on the staff route: sent to the staff provider,
    // and his cookie is left alone (it still opens the partner routes).
    let refused = bob.get(gw.url("/staff/b")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FOUND);
    assert!(
        location(&refused).starts_with(&format!("{}/oauth2/authorize?", s.staff.issuer)),
        "{}",
        location(&refused)
    );
    // The only cookie set is the new sign-in attempt's state.
    let set: Vec<&str> = refused
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        set.len() == 1 && set[0].starts_with("_ssogate_state_"),
        "the partner session cookie must not be cleared on a route that does not take it: {set:?}"
    );
    let before = s.upstream.requests().len();
    let again = bob.get(gw.url("/partners/c")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(s.upstream.requests().len(), before + 1);
    // A route that takes every provider takes his.
    assert_eq!(
        bob.get(gw.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );

    // alice signs in with the plain OIDC provider on the staff route: its claims (groups,
    // preferred_username) make her identity.
    let alice = idp::browser();
    let (landed, trail) = idp::sign_in(&alice, &gw.url("/staff/x"), "alice").await;
    assert_eq!(landed.status(), StatusCode::OK, "{trail:#?}");
    assert!(
        trail.iter().any(|u| u.starts_with(&s.staff.base())),
        "signed in at the staff provider: {trail:#?}"
    );
    let seen = s.upstream.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("admins,staff"));
    assert_eq!(gw.userinfo(&alice).await["provider"], "staff");
    let on_partners = alice.get(gw.url("/partners/a")).send().await.unwrap();
    assert_eq!(on_partners.status(), StatusCode::FOUND);
    assert!(
        location(&on_partners).starts_with(&format!("{}/oauth2/authorize?", s.partners.issuer)),
        "{}",
        location(&on_partners)
    );

    // Forward-auth names the provider; a client's own X-Auth-Request-Provider never counts.
    let auth = alice
        .get(gw.url("/oauth2/auth"))
        .header("x-auth-request-provider", "partners")
        .send()
        .await
        .unwrap();
    assert_eq!(auth.status(), StatusCode::ACCEPTED);
    assert_eq!(auth.headers()["x-auth-request-provider"], "staff");
    assert_eq!(auth.headers()["x-auth-request-user"], "alice");

    // Sign-out goes through the session's own provider.
    let out = alice.get(gw.url("/oauth2/sign_out")).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::FOUND);
    assert!(
        location(&out).starts_with(&s.staff.issuer),
        "sign-out goes to the staff provider: {}",
        location(&out)
    );
    let out = bob.get(gw.url("/oauth2/sign_out")).send().await.unwrap();
    assert!(
        location(&out).starts_with(&format!("{}/logout", s.partners.issuer)),
        "sign-out goes to the partners' Cognito /logout: {}",
        location(&out)
    );
    let logs = gw.logs();
    assert!(logs.contains("\"provider\":\"staff\""), "{logs}");
}

#[tokio::test]
async fn a_route_with_both_offers_both_and_start_names_one() {
    let s = setup();
    let gw = &s.gw;
    let browser = idp::browser();
    let first = browser.get(gw.url("/")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    assert_eq!(location(&first), "/oauth2/sign_in?rd=%2F");
    let page = browser
        .get(gw.url("/oauth2/sign_in?rd=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>Example apps</h1>"), "{html}");
    let partners = html
        .find(">Partners: sign in</a>")
        .expect("the partners' button");
    let staff = html
        .find(">Employees: sign in</a>")
        .expect("the staff button");
    assert!(partners < staff, "buttons in the config's order: {html}");
    assert!(
        html.contains("/oauth2/start?rd=%2F&amp;provider=staff"),
        "{html}"
    );

    // `/start` without a provider, with several: the page to choose on.
    let start = browser
        .get(gw.url("/oauth2/start?rd=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&start), "/oauth2/sign_in?rd=%2F");
    // A provider the config does not have: 400 with words.
    let unknown = browser
        .get(gw.url("/oauth2/start?rd=%2F&provider=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("no sign-in provider called"));
    // Naming one goes to it.
    let named = browser
        .get(gw.url("/oauth2/start?rd=%2F&provider=staff"))
        .send()
        .await
        .unwrap();
    assert!(
        location(&named).starts_with(&s.staff.issuer),
        "{}",
        location(&named)
    );
}

#[tokio::test]
async fn bearer_tokens_are_checked_by_the_provider_whose_issuer_they_name() {
    let s = setup();
    let gw = &s.gw;
    let redirect = format!("{}/oauth2/callback", gw.base);
    let staff_tokens = idp::tokens_by_code_flow(
        &s.staff.issuer,
        "basic-client",
        "basic-secret",
        &redirect,
        "alice",
    )
    .await;
    let id_token = staff_tokens["id_token"].as_str().expect("an ID token");
    let api = common::client();
    let get = |path: &str| {
        api.get(gw.url(path))
            .header("authorization", format!("Bearer {id_token}"))
            .header("accept", "application/json")
            .send()
    };
    let ok = get("/staff/api").await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        s.upstream
            .last_request()
            .unwrap()
            .header("x-forwarded-user"),
        Some("alice")
    );
    assert_eq!(get("/").await.unwrap().status(), StatusCode::OK);
    // The staff provider's token on a partners-only route: 401, never forwarded.
    let before = s.upstream.requests().len();
    assert_eq!(
        get("/partners/api").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.upstream.requests().len(), before);

    // The partners' token works there.
    let partner_tokens = idp::tokens_by_code_flow(
        &s.partners.issuer,
        "basic-client",
        "basic-secret",
        &redirect,
        "bob",
    )
    .await;
    let token = partner_tokens["id_token"].as_str().unwrap();
    let ok = api
        .get(gw.url("/partners/api"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        s.upstream
            .last_request()
            .unwrap()
            .header("x-forwarded-user"),
        Some("bob")
    );
}

#[test]
fn the_sign_in_page_with_two_buttons_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "{} is missing: run scripts/test",
        chromium.display()
    );
    let s = setup();
    let out = Command::new("node")
        .arg(root.join("tests/support/browser-choose.mjs"))
        .arg(&s.gw.base)
        .arg("Partners: sign in|Employees: sign in")
        .arg("Employees: sign in")
        .arg("alice")
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .output()
        .expect("run node tests/support/browser-choose.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser flow failed: {}\n{stdout}\n--- gateway log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.gw.logs()
    );
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(line["provider_origin"], s.staff.base());
    assert_eq!(line["headers"]["x-forwarded-user"], "alice");
    assert_eq!(line["headers"]["x-forwarded-groups"], "admins,staff");
}

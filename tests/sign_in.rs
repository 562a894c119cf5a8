//! Signing in through the Cognito-shaped provider (npm oidc-provider) with the real binary:
//! who gets in, what the upstream is told, and how every broken or hostile sign-in ends.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, follow, sign_in, sign_in_until_callback, Idp};
use reqwest::StatusCode;

const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A gateway in front of `upstream` signing in at `idp`: `/` for staff, `/admin` for admins,
/// `/public/` for everybody.
fn config(
    port: u16,
    idp: &Idp,
    client: &str,
    upstream: &str,
    server_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
{server_extra}

{provider}

[session]
secret = "{SECRET}"
{session_extra}

[access]
allowed_groups = ["staff"]

[[routes]]
path_prefix = "/"
upstream = "{upstream}"

[[routes]]
path_prefix = "/admin/"
upstream = "{upstream}"
allowed_groups = ["admins"]

[[routes]]
path_prefix = "/public/"
upstream = "{upstream}"
public = true

[logging]
format = "json"
level = "info"

{extra}
"#,
        provider = idp.provider_toml(client),
        session_extra = "",
    )
}

struct Stand {
    gw: Gateway,
    idp: Idp,
    upstream: Upstream,
}

fn stand_with(client: &str, server_extra: &str, extra: &str) -> Stand {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(&config(
        port,
        &idp,
        client,
        &upstream.url,
        server_extra,
        extra,
    ));
    gw.wait_ready(Duration::from_secs(15));
    Stand { gw, idp, upstream }
}

fn stand() -> Stand {
    stand_with("basic-client", "", "")
}

#[tokio::test]
async fn an_allowed_user_reaches_the_app_with_identity_headers_and_no_gateway_cookie() {
    let s = stand();
    let b = browser();
    let (resp, trail) = sign_in(&b, &s.gw.url("/hello?x=1"), "alice").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "trail: {trail:#?}\n{}",
        s.gw.logs()
    );
    assert_eq!(
        trail.last().unwrap(),
        &s.gw.url("/hello?x=1"),
        "back where the user started"
    );
    assert!(
        trail.iter().any(|u| u.contains("/oauth2/authorize?")),
        "went through the provider"
    );

    let seen = s.upstream.last_request().unwrap();
    assert_eq!(seen.path, "/hello?x=1");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("admins,staff"));
    assert_eq!(seen.header("x-forwarded-preferred-username"), Some("alice"));
    let cookies = seen.header("cookie").unwrap_or("");
    assert!(
        !cookies.contains("_ssogate"),
        "gateway cookies reached the upstream: {cookies}"
    );

    // A second request rides on the session: no provider round trip.
    let again = b.get(s.gw.url("/again")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);

    // Spoofed identity headers are replaced, in any spelling.
    let spoof = b
        .get(s.gw.url("/spoof"))
        .header("X-Forwarded-User", "mallory")
        .header("x_forwarded_groups", "admins")
        .send()
        .await
        .unwrap();
    assert_eq!(spoof.status(), StatusCode::OK);
    let seen = s.upstream.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("admins,staff"));
    assert!(seen
        .headers
        .keys()
        .all(|k| k.as_str() != "x_forwarded_groups"));

    let me = s.gw.userinfo(&b).await;
    assert_eq!(me["user"], "alice");
    assert_eq!(me["groups"], serde_json::json!(["admins", "staff"]));
    // Once, in the claim's own spelling (no camelCase copy).
    assert_eq!(me["preferred_username"], "alice");
    assert!(me.get("preferredUsername").is_none(), "{me}");
}

#[tokio::test]
async fn groups_decide_who_passes_where() {
    let s = stand();
    let bob = browser();
    let (resp, _) = sign_in(&bob, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let admin = bob.get(s.gw.url("/admin/users")).send().await.unwrap();
    assert_eq!(admin.status(), StatusCode::FORBIDDEN, "bob is not an admin");
    // The route is written `/admin/`: `/admin` itself is its, too (nginx redirects it there;
    // most apps serve it as the same page), whatever follows it.
    for path in ["/admin", "/admin?x=1", "/admin;x", "/admin/"] {
        let r = bob.get(s.gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // Express and ASP.NET route without regard to case: so does the gateway.
    for path in ["/ADMIN/", "/Admin/users", "/aDmIn", "/%41dmin/users"] {
        let r = bob.get(s.gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let page = admin.text().await.unwrap();
    assert!(
        page.contains("Access denied") && page.contains("bob"),
        "{page}"
    );
    let api = bob
        .get(s.gw.url("/admin/users"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap()["error"],
        "forbidden"
    );

    // carol has no groups at all: signed in, but not staff.
    let carol = browser();
    let (resp, trail) = sign_in(&carol, &s.gw.url("/"), "carol").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{trail:#?}");
    let me = s.gw.userinfo(&carol).await;
    assert_eq!(me["groups"], serde_json::json!([]));
    // No loop back to sign-in for a signed-in user without access.
    let again = carol.get(s.gw.url("/")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::FORBIDDEN);

    // Public routes need no sign-in but still lose spoofed identity headers.
    let anon = browser();
    let public = anon
        .get(s.gw.url("/public/x"))
        .header("X-Forwarded-User", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::OK);
    assert_eq!(
        s.upstream
            .last_request()
            .unwrap()
            .header("x-forwarded-user"),
        None
    );

    // A path that only some upstreams read as leaving /admin (Tomcat resolves `..;`, nginx
    // or Go do not) is refused, rather than routed public and served as /admin/...
    let reached = s.upstream.requests().len();
    for path in [
        "/admin/..;/public/x",
        "/admin%2F..%2Fpublic/x",
        "/admin\\..\\public/x",
        "/public/..;/admin/x",
        "/public/%c0%ae%c0%ae/admin/x",
        // IIS trims trailing dots and spaces, C upstreams stop at NUL: each of these is
        // /admin/ to some upstream.
        "/admin./",
        "/admin%20/users",
        "/admin%00/users",
        "/admin%2e/users",
        "/admin%2e%2e./x",
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let answer = common::raw_request(s.gw.port, &request);
        assert_eq!(answer.status, 400, "{path}");
    }
    assert_eq!(s.upstream.requests().len(), reached, "none reached the app");
}

#[tokio::test]
async fn programs_get_401_json_and_browsers_a_redirect() {
    let s = stand();
    let c = browser();
    let api = c
        .get(s.gw.url("/data"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert!(api.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap()["error"],
        "unauthorized"
    );
    let xhr = c
        .get(s.gw.url("/data"))
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(xhr.status(), StatusCode::UNAUTHORIZED);

    // A browser goes straight to the provider (one provider, no sign-in page), with state,
    // nonce and PKCE S256, and a sealed state cookie for the callback.
    let nav = c.get(s.gw.url("/data?q=1")).send().await.unwrap();
    assert_eq!(nav.status(), StatusCode::FOUND);
    let to = reqwest::Url::parse(nav.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        to.as_str()
            .starts_with(&format!("{}/oauth2/authorize?", s.idp.issuer)),
        "{to}"
    );
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256", "{to}");
    for k in ["state", "nonce", "code_challenge"] {
        assert!(q.get(k).is_some_and(|v| v.len() >= 16), "{k} in {to}");
    }
    let state_cookie = nav
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.contains(&q["state"]))
        .unwrap_or_else(|| panic!("a state cookie: {:?}", nav.headers()));
    assert!(state_cookie.contains("HttpOnly"), "{state_cookie}");
    assert!(s.upstream.requests().is_empty(), "nothing reached the app");
    // The access log says so too: the gateway answered, no upstream was asked.
    s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["path"] == "/data" && l["status"] == 302 && l["route"] == "/" && l["upstream"] == "-"
    });
}

#[tokio::test]
async fn client_secret_post_clients_sign_in_too() {
    let s = stand_with("post-client", "", "");
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());
    assert_eq!(
        s.upstream
            .last_request()
            .unwrap()
            .header("x-forwarded-user"),
        Some("bob")
    );
}

#[tokio::test]
async fn tampered_truncated_and_foreign_cookies_are_refused() {
    let s = stand();
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = idp::session_cookie(&b).await;

    let plain = common::client();
    let with = |value: String| {
        let plain = plain.clone();
        let url = s.gw.url("/secret");
        async move {
            plain
                .get(url)
                .header("cookie", format!("_ssogate={value}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        with(cookie.clone()).await,
        StatusCode::OK,
        "the real cookie works"
    );
    let mut tampered = cookie.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        with(String::from_utf8(tampered).unwrap()).await,
        StatusCode::FOUND
    );
    assert_eq!(
        with(cookie[..cookie.len() - 10].to_string()).await,
        StatusCode::FOUND
    );
    assert_eq!(with("garbage".into()).await, StatusCode::FOUND);
    assert_eq!(with(String::new()).await, StatusCode::FOUND);

    // A cookie sealed by another gateway (another secret) means nothing here.
    let other_port = free_port();
    let other_secret = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    let other_idp = Idp::start(&[other_port]);
    let other_cfg = config(
        other_port,
        &other_idp,
        "basic-client",
        &s.upstream.url,
        "",
        "",
    )
    .replace(SECRET, other_secret);
    let other = Gateway::start(&other_cfg);
    other.wait_ready(Duration::from_secs(15));
    let b2 = browser();
    let (resp, _) = sign_in(&b2, &other.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let foreign = idp::session_cookie(&b2).await;
    assert_eq!(with(foreign).await, StatusCode::FOUND);
    assert!(s.gw.logs().find("panic").is_none());
    // Cookies sealed with another secret are said in the log (once a minute at most): the
    // sign of replicas that do not share session.secret.
    s.gw.wait_for_message("a session cookie opened with neither");
    assert_eq!(
        s.gw.logs()
            .matches("a session cookie opened with neither")
            .count(),
        1
    );
}

#[tokio::test]
async fn sessions_end_at_max_lifetime() {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let cfg = config(port, &idp, "basic-client", &upstream.url, "", "").replace(
        &format!("secret = \"{SECRET}\""),
        &format!("secret = \"{SECRET}\"\nmax_lifetime = \"3s\""),
    );
    let gw = Gateway::start(&cfg);
    gw.wait_ready(Duration::from_secs(15));
    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let later = b.get(gw.url("/")).send().await.unwrap();
    assert_eq!(
        later.status(),
        StatusCode::FOUND,
        "an expired session sends the user to sign in"
    );
}

#[tokio::test]
async fn the_callback_refuses_states_it_did_not_issue_and_replays() {
    let s = stand();
    let b = browser();
    let unknown = b
        .get(s.gw.url("/oauth2/callback?code=abc&state=00006b025517ENhnpBCI5PZJMAPtfRsOww"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.text().await.unwrap().contains("not started here"));
    let no_state = b
        .get(s.gw.url("/oauth2/callback?code=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_state.status(), StatusCode::BAD_REQUEST);

    let callback =
        sign_in_until_callback(&b, &s.gw.url("/"), "alice", &s.gw.url("/oauth2/callback")).await;
    let first = b.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND, "{}", s.gw.logs());
    // The same callback again (the back button): the attempt is used up, the code is not
    // sent again, and the user, signed in, goes on to the app instead of an error page.
    let grants = s.idp.stats().await["authorization_code_grants"].clone();
    let replay = b.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::FOUND);
    assert_eq!(replay.headers()["location"], "/");
    assert_eq!(s.idp.stats().await["authorization_code_grants"], grants);

    // Another browser replaying the code with a fresh attempt of its own: the state is not its.
    let thief = browser();
    let _ = thief
        .get(s.gw.url("/oauth2/start?rd=/"))
        .send()
        .await
        .unwrap();
    let stolen = thief.get(&callback).send().await.unwrap();
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    assert!(
        s.upstream.requests().is_empty()
            || s.upstream
                .requests()
                .iter()
                .all(|r| r.header("x-forwarded-user") == Some("alice"))
    );
}

#[tokio::test]
async fn a_replayed_callback_is_refused_without_asking_the_provider() {
    let s = stand();
    let b = browser();
    let callback =
        sign_in_until_callback(&b, &s.gw.url("/"), "alice", &s.gw.url("/oauth2/callback")).await;
    // Keep the attempt's state cookie (Path=/oauth2): it opens, but its state is used up.
    let cookies = idp::cookies_sent_to(&b, "/oauth2/catch").await;
    let state_cookie = cookies
        .split("; ")
        .find(|c| c.starts_with("_ssogate_state_"))
        .expect("a state cookie")
        .to_string();
    let first = b.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    let grants = s.idp.stats().await["authorization_code_grants"].clone();
    let replay = common::client()
        .get(&callback)
        .header("cookie", state_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(replay.text().await.unwrap().contains("used already"));
    assert_eq!(s.idp.stats().await["authorization_code_grants"], grants);
}

#[tokio::test]
async fn a_token_with_another_nonce_is_refused() {
    let s = stand();
    let b = browser();
    let authorize = start_attempt(&b, &s.gw).await;
    let nonce = query_value(&authorize, "nonce");
    let forged = authorize.replace(&format!("nonce={nonce}"), "nonce=attacker-chosen");
    let (last, trail) = idp::log_in_at(&b, &forged, "alice").await;
    assert_eq!(last.status(), StatusCode::BAD_REQUEST, "{trail:#?}");
    assert!(last.text().await.unwrap().contains("nonce"));
}

#[tokio::test]
async fn keys_the_gateway_does_not_know_are_refused_and_rotation_is_followed() {
    let s = stand();
    // Rotation: the provider signs with a new key; the gateway fetches it on the unknown kid.
    s.idp.control("rotate-keys", None).await;
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "after rotation: {}",
        s.gw.logs()
    );

    // A token signed by a key that is not published: refused, as the provider's trouble
    // (its JWKS lagging behind a rotation): try again later.
    s.idp.control("rotate-keys", None).await;
    s.idp.control("hide-signing-key", None).await;
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = resp.text().await.unwrap();
    assert!(page.contains("temporarily unavailable"), "{page}");
    assert!(!page.contains("kid"), "no key ids on the page: {page}");
    s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["error"]
            .as_str()
            .is_some_and(|e| e.contains("no key with kid"))
    });
    s.idp.control("show-signing-key", None).await;
    assert!(s
        .upstream
        .requests()
        .iter()
        .all(|r| r.header("x-forwarded-user") != Some("bob")));
}

#[tokio::test]
async fn made_up_key_ids_from_clients_do_not_hold_up_sign_in_after_a_rotation() {
    let s = stand();
    // Anybody can send a bearer token naming a key id the provider never had; its failed
    // lookup holds back further lookups for client tokens for a few seconds.
    let bogus = made_up_token("made-up");
    let anon = common::client();
    let r = anon
        .get(s.gw.url("/api"))
        .bearer_auth(&bogus)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The provider rotates its key right then: the next sign-in's ID token has a kid the
    // gateway has not seen, and its fetch is not held back.
    s.idp.control("rotate-keys", None).await;
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());
}

#[tokio::test]
async fn a_provider_down_at_start_means_503_until_it_comes() {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp_port = free_port();
    // Write the config for a provider that is not there yet.
    let placeholder = Idp::start_on(idp_port, &[port]);
    let cfg = config(port, &placeholder, "basic-client", &upstream.url, "", "");
    drop(placeholder);
    let gw = Gateway::start(&cfg);
    let c = browser();
    let ready = c.get(gw.url("/oauth2/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (page, _) = follow(&c, &gw.url("/app"), None).await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers()["retry-after"], "10");
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("temporarily unavailable"));

    // A bearer token the gateway cannot check yet (no keys loaded) is not called invalid:
    // an API client would throw a good token away.
    let unchecked = made_up_token("k1");
    let api = common::client();
    let early = api
        .get(gw.url("/api"))
        .bearer_auth(&unchecked)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(early.headers()["retry-after"], "10");

    let idp = Idp::start_on(idp_port, &[port]);
    gw.wait_ready(Duration::from_secs(40));
    let (resp, _) = sign_in(&c, &gw.url("/app"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let token = idp::tokens_by_code_flow(
        &idp.issuer,
        "basic-client",
        "basic-secret",
        &gw.url("/oauth2/callback"),
        "bob",
    )
    .await["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let later = api
        .get(gw.url("/api"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(later.status(), StatusCode::OK);
    // With the keys loaded, the made-up token is what it is.
    let made_up = api
        .get(gw.url("/api"))
        .bearer_auth(&unchecked)
        .send()
        .await
        .unwrap();
    assert_eq!(made_up.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_provider_down_during_sign_in_gets_a_page_and_sessions_keep_working() {
    let mut s = stand();
    let signed_in = browser();
    let (resp, _) = sign_in(&signed_in, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);

    let b = browser();
    let callback =
        sign_in_until_callback(&b, &s.gw.url("/"), "bob", &s.gw.url("/oauth2/callback")).await;
    s.idp.stop();
    let answer = b.get(&callback).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = answer.text().await.unwrap();
    assert!(page.contains("temporarily unavailable"), "{page}");
    // A way on from the page: sign in again once the provider is back.
    assert!(
        page.contains("href=\"/oauth2/start\">Sign in again</a>"),
        "{page}"
    );

    let still = signed_in.get(s.gw.url("/still-here")).send().await.unwrap();
    assert_eq!(
        still.status(),
        StatusCode::OK,
        "an existing session needs no provider"
    );
}

#[tokio::test]
async fn sign_out_ends_the_session_at_the_gateway_and_the_provider() {
    let s = stand();
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let before = s.idp.stats().await;

    let (done, trail) = follow(&b, &s.gw.url("/oauth2/sign_out?rd=/public/bye"), None).await;
    assert!(
        trail
            .iter()
            .any(|u| u.contains("/logout?client_id=basic-client&logout_uri=")),
        "{trail:#?}"
    );
    assert!(
        trail.iter().any(|u| u.ends_with("/oauth2/signed_out")),
        "{trail:#?}"
    );
    assert_eq!(done.url().path(), "/public/bye");
    let after = s.idp.stats().await;
    assert_eq!(
        after["logouts"].as_u64().unwrap(),
        before["logouts"].as_u64().unwrap() + 1
    );
    assert_eq!(
        after["revocations"].as_u64().unwrap(),
        before["revocations"].as_u64().unwrap() + 1
    );

    let again = b.get(s.gw.url("/")).send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::FOUND,
        "signed out: sign in again"
    );
    // And the provider asks for the password again (its session ended too).
    let (login, _) = follow(&b, &s.gw.url("/"), None).await;
    assert!(login.text().await.unwrap().contains("name=\"password\""));
}

#[tokio::test]
async fn without_a_domain_sign_out_finds_cognitos_logout_and_revoke_from_discovery() {
    // A pool's discovery document from before 2024: no revocation or end-session endpoint,
    // and the config names no hosted-UI domain.
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    idp.control("legacy-discovery?on=1", None).await;
    let discovery: serde_json::Value = common::client()
        .get(format!("{}/.well-known/openid-configuration", idp.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(discovery["authorization_endpoint"].is_string());
    assert!(
        discovery.get("revocation_endpoint").is_none(),
        "{discovery}"
    );
    assert!(
        discovery.get("end_session_endpoint").is_none(),
        "{discovery}"
    );
    let with_domain = config(port, &idp, "basic-client", &upstream.url, "", "");
    let domain_line = format!("domain = \"{}\"\n", idp.issuer);
    assert!(with_domain.contains(&domain_line));
    let gw = Gateway::start(&with_domain.replace(&domain_line, ""));
    gw.wait_ready(Duration::from_secs(15));

    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let before = idp.stats().await;
    let (done, trail) = follow(&b, &gw.url("/oauth2/sign_out?rd=/public/bye"), None).await;
    let logout = format!("{}/logout?client_id=basic-client&logout_uri=", idp.issuer);
    assert!(
        trail.iter().any(|u| u.starts_with(&logout)),
        "Cognito's own /logout on the hosted UI: {trail:#?}\n{}",
        gw.logs()
    );
    assert_eq!(done.url().path(), "/public/bye");
    let after = idp.stats().await;
    assert_eq!(
        after["logouts"].as_u64().unwrap(),
        before["logouts"].as_u64().unwrap() + 1
    );
    assert_eq!(
        after["revocations"].as_u64().unwrap(),
        before["revocations"].as_u64().unwrap() + 1,
        "the refresh token was revoked at {{hosted UI}}/oauth2/revoke"
    );
}

#[tokio::test]
async fn unsafe_redirect_targets_fall_back_to_the_root() {
    let s = stand();
    for rd in [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com/",
        "https:evil.com",
        "/%2F%2Fevil.com",
        "/.//evil.com",
    ] {
        let b = browser();
        let start = format!("/oauth2/start?rd={}", url_encode(rd));
        let (resp, trail) = sign_in(&b, &s.gw.url(&start), "alice").await;
        assert_eq!(resp.status(), StatusCode::OK, "{rd}: {trail:#?}");
        assert_eq!(trail.last().unwrap(), &s.gw.url("/"), "{rd} was followed");
    }
    // The operator can see why (the host only: a refused target may carry anything).
    s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("redirect target refused"))
            && l["rd_host"] == "evil.com"
    });
}

/// Starts a sign-in at the gateway; returns the provider authorize URL it redirects to.
async fn start_attempt(b: &reqwest::Client, gw: &Gateway) -> String {
    let start = b.get(gw.url("/oauth2/start?rd=/")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    start.headers()["location"].to_str().unwrap().to_string()
}

fn query_value(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
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

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn forward_auth_answers_202_with_headers_or_401() {
    let s = stand();
    let anon = common::client();
    let denied = anon.get(s.gw.url("/oauth2/auth")).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    // Shown as it is by a proxy without an error handler, the page offers a way on.
    let page = denied.text().await.unwrap();
    assert!(
        page.contains("href=\"/oauth2/start\">Sign in</a>"),
        "{page}"
    );
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ok = b.get(s.gw.url("/oauth2/auth")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    assert_eq!(ok.headers()["x-auth-request-user"], "bob");
    assert_eq!(ok.headers()["x-auth-request-groups"], "staff");
    // An answer that carries identity is never kept by a cache between proxy and gateway.
    assert_eq!(ok.headers()["cache-control"], "private, no-store");
    let admins_only = b
        .get(s.gw.url("/oauth2/auth?allowed_groups=admins"))
        .send()
        .await
        .unwrap();
    assert_eq!(admins_only.status(), StatusCode::FORBIDDEN);

    // Without trusted_proxies a client's X-Forwarded-Uri is not believed: [access] decides.
    let named = anon
        .get(s.gw.url("/oauth2/auth"))
        .header("X-Forwarded-Uri", "/public/page")
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forward_auth_believes_no_uri_header_unless_told_which_the_proxy_sets() {
    // nginx in front on this host, set up as oauth2-proxy's docs show: its auth_request
    // passes the client's own headers to /oauth2/auth.
    let docs = "[[routes]]\nhost = \"docs.example.com\"\npath_prefix = \"/\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n";
    let s = stand_with("basic-client", "trusted_proxies = [\"127.0.0.1\"]", docs);
    // Nor is the client's X-Forwarded-Host, which would name a public host route.
    let r = common::client()
        .get(s.gw.url("/oauth2/auth/x"))
        .header("X-Forwarded-Host", "docs.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a client's X-Forwarded-Host named a public host"
    );
    let anon = common::client();
    for header in ["X-Original-URI", "X-Forwarded-Uri"] {
        let r = anon
            .get(s.gw.url("/oauth2/auth"))
            .header(header, "/public/page")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "a client's {header} named a public route"
        );
    }
    s.gw.wait_for_message("set server.forward_auth_uri_header");
}

#[tokio::test]
async fn forward_auth_decides_as_the_routes_do_for_the_request_it_asks_about() {
    let s = stand_with(
        "basic-client",
        "trusted_proxies = [\"127.0.0.1\"]\nforward_auth_uri_header = \"X-Forwarded-Uri\"",
        "",
    );
    let anon = common::client();
    let ask =
        |c: &reqwest::Client, method: reqwest::Method, path: &str, header: Option<(&str, &str)>| {
            let mut req = c.request(method, s.gw.url(path));
            if let Some((name, value)) = header {
                req = req.header(name, value);
            }
            req.send()
        };
    use reqwest::Method;
    // A public route is open to anybody, named by the configured header or Envoy's way.
    for (path, header) in [
        (
            "/oauth2/auth",
            Some(("X-Forwarded-Uri", "/public/page?x=1")),
        ),
        ("/oauth2/auth/public/page", None),
    ] {
        let r = ask(&anon, Method::GET, path, header).await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{path} {header:?}");
        assert!(r.headers().get("x-auth-request-user").is_none());
    }
    // Another URI header is not believed: a proxy that does not set it passes the client's
    // own on (nginx's auth_request does), and a client would name a public route with it.
    let r = ask(
        &anon,
        Method::GET,
        "/oauth2/auth",
        Some(("X-Original-URI", "/public/page")),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A proxy that appends its value to the client's: two that differ are refused.
    let r = anon
        .get(s.gw.url("/oauth2/auth"))
        .header("X-Forwarded-Uri", "/public/page")
        .header("X-Forwarded-Uri", "/admin/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("server.forward_auth_uri_header"));
    // The path is normalised before it is matched: no way out of /public/ by dots.
    for uri in [
        "/public/../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/..;/admin",
    ] {
        let r = ask(
            &anon,
            Method::GET,
            "/oauth2/auth",
            Some(("X-Forwarded-Uri", uri)),
        )
        .await
        .unwrap();
        assert_ne!(r.status(), StatusCode::ACCEPTED, "{uri}");
    }

    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // bob (staff) may use / but not /admin, whichever way the proxy asks.
    for (path, header) in [
        ("/oauth2/auth", Some(("X-Forwarded-Uri", "/admin/panel"))),
        ("/oauth2/auth", Some(("X-Forwarded-Uri", "/admin/"))),
        ("/oauth2/auth/admin/panel", None),
    ] {
        let r = ask(&b, Method::GET, path, header).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} {header:?}");
    }
    // The query only narrows: a client's own `?allowed_groups=staff` (Envoy and Caddy pass
    // the client's query on) does not open /admin to bob.
    for path in [
        "/oauth2/auth/admin/x?allowed_groups=staff",
        "/oauth2/auth?allowed_groups=staff",
    ] {
        let header = Some(("X-Forwarded-Uri", "/admin/x"));
        let r = ask(&b, Method::GET, path, header).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let r = ask(
        &b,
        Method::GET,
        "/oauth2/auth/orders?allowed_groups=admins",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "narrowed to admins");
    // nginx's auth_request asks with the original method: a POST is answered like a GET.
    let r = ask(
        &b,
        Method::POST,
        "/oauth2/auth",
        Some(("X-Forwarded-Uri", "/orders")),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["x-auth-request-user"], "bob");
    // The access log says whom forward-auth answered about, and by which route.
    s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["path"] == "/oauth2/auth" && l["status"] == 202 && l["user"] == "bob" && l["route"] == "/"
    });
    s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["path"] == "/oauth2/auth"
            && l["status"] == 403
            && l["user"] == "bob"
            && l["route"] == "/admin/"
    });
}

#[tokio::test]
async fn the_alb_preset_signs_an_assertion_the_app_can_verify() {
    let arn = "arn:aws:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
    let s = stand_with(
        "basic-client",
        "",
        &format!("[headers]\npreset = \"alb\"\nalb_signer = \"{arn}\"\n"),
    );
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());
    let seen = s.upstream.last_request().unwrap();
    assert_eq!(
        seen.header("x-amzn-oidc-identity"),
        Some("11111111-1111-4111-8111-111111111111")
    );
    assert!(seen.header("x-amzn-oidc-accesstoken").is_some());
    let data = seen.header("x-amzn-oidc-data").unwrap().to_string();
    let jwks: serde_json::Value = b
        .get(s.gw.url("/oauth2/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (input, sig) = data.rsplit_once('.').unwrap();
    let key = &jwks["keys"][0];
    let mut point = vec![4u8];
    point.extend(b64.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(b64.decode(key["y"].as_str().unwrap()).unwrap());
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(input.as_bytes(), &b64.decode(sig).unwrap())
        .expect("x-amzn-oidc-data verifies with /oauth2/jwks.json");

    // AWS's documented check: the header's signer is the load balancer, and the key comes
    // as PEM by kid (from the ALB's key server; here from the gateway).
    let head: serde_json::Value =
        serde_json::from_slice(&b64.decode(input.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(head["signer"], arn);
    let kid = head["kid"].as_str().unwrap();
    let pem = b
        .get(s.gw.url(&format!("/oauth2/keys/{kid}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    assert_eq!(der.len(), 91, "a P-256 SubjectPublicKeyInfo");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &der[26..])
        .verify(input.as_bytes(), &b64.decode(sig).unwrap())
        .expect("x-amzn-oidc-data verifies with the PEM key of its kid");
    let unknown = b.get(s.gw.url("/oauth2/keys/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // nginx in front of an ALB-built app gets the same headers from forward-auth.
    let asked = b.get(s.gw.url("/oauth2/auth")).send().await.unwrap();
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    assert_eq!(
        asked.headers()["x-amzn-oidc-identity"],
        "11111111-1111-4111-8111-111111111111"
    );
    assert!(asked.headers().get("x-amzn-oidc-data").is_some());
    // Not the access token: a browser may ask /auth itself (only with pass_access_token).
    assert!(asked.headers().get("x-amzn-oidc-accesstoken").is_none());
}

#[tokio::test]
async fn the_sign_in_page_offers_a_button_instead_of_redirecting() {
    let s = stand_with("basic-client", "sign_in_page = true", "");
    let b = browser();
    let first = b.get(s.gw.url("/report?id=7")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    assert_eq!(
        first.headers()["location"],
        "/oauth2/sign_in?rd=%2Freport%3Fid%3D7"
    );
    let page = b
        .get(s.gw.url("/oauth2/sign_in?rd=%2Freport%3Fid%3D7"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(">Sign in</a>"), "{html}");
    assert!(
        html.contains("/oauth2/start?rd=%2Freport%3Fid%3D7"),
        "{html}"
    );
    let (resp, trail) = sign_in(&b, &s.gw.url("/oauth2/start?rd=%2Freport%3Fid%3D7"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(trail.last().unwrap(), &s.gw.url("/report?id=7"));
}

#[tokio::test]
async fn a_provider_error_is_shown_as_a_clear_page() {
    let s = stand();
    let b = browser();
    let authorize = start_attempt(&b, &s.gw).await;
    let state = query_value(&authorize, "state");
    let denied = b
        .get(s.gw.url(&format!(
            "/oauth2/callback?error=access_denied&error_description=User+cancelled&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let page = denied.text().await.unwrap();
    assert!(
        page.contains("Sign-in was refused")
            && page.contains("access_denied")
            && page.contains("User cancelled"),
        "{page}"
    );
}

#[tokio::test]
async fn pending_sign_ins_in_many_tabs_work_and_are_capped() {
    let s = stand();
    let b = browser();
    // Seven tabs start signing in; the first one finishes last.
    let mut authorize_urls = Vec::new();
    for _ in 0..7 {
        let start = b
            .get(s.gw.url("/oauth2/start?rd=/tab"))
            .send()
            .await
            .unwrap();
        authorize_urls.push(start.headers()["location"].to_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(1100)).await; // states sort by second
    }
    let cookies = idp::cookies_sent_to(&b, "/oauth2/catch").await;
    let pending = cookies
        .split("; ")
        .filter(|c| c.starts_with("_ssogate_state_"))
        .count();
    assert_eq!(pending, 5, "at most five pending sign-ins: {cookies}");
    // The newest tab completes.
    let (last, trail) = idp::log_in_at(&b, authorize_urls.last().unwrap(), "alice").await;
    assert_eq!(last.status(), StatusCode::OK, "{trail:#?}");
    assert_eq!(trail.last().unwrap(), &s.gw.url("/tab"));
}

#[tokio::test]
async fn api_clients_with_a_bearer_id_token_pass_and_forged_ones_get_401() {
    let s = stand();
    let tokens = idp::tokens_by_code_flow(
        &s.idp.issuer,
        "basic-client",
        "basic-secret",
        &s.gw.url("/oauth2/callback"),
        "bob",
    )
    .await;
    let token = tokens["id_token"]
        .as_str()
        .expect("an ID token")
        .to_string();
    let api = common::client();
    let call = |t: String| {
        let api = api.clone();
        let url = s.gw.url("/api/items");
        async move { api.get(url).bearer_auth(t).send().await.unwrap() }
    };
    // The first call verifies the token; the next ones find it verified (on a worker's memo).
    for _ in 0..3 {
        let ok = call(token.clone()).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let seen = s.upstream.last_request().unwrap();
        assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
        assert_eq!(seen.header("x-forwarded-groups"), Some("staff"));
    }
    // A stale session cookie sent along does not hide the token.
    let ok = api
        .get(s.gw.url("/api/items"))
        .header("Cookie", "_ssogate=stale-or-foreign")
        .bearer_auth(&token)
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
    let reached = s.upstream.requests().len();

    // A token of the same length with the same signature, one letter of its payload changed:
    // it lands where the verified token is kept, and is still refused.
    let mut twin = token.clone().into_bytes();
    let at = token.find('.').unwrap() + 10;
    twin[at] = if twin[at] == b'A' { b'B' } else { b'A' };
    let twin = String::from_utf8(twin).unwrap();
    assert_eq!(twin.len(), token.len());
    let denied = call(twin).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.upstream.requests().len(),
        reached,
        "the twin never reached the upstream"
    );

    // The payload changed under the signature: refused, and never a redirect.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["cognito:groups"] = serde_json::json!(["admins", "staff"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let denied = call(forged).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    // RFC 6750: a client library tells a refused token from a missing one, and renews it.
    assert_eq!(
        denied.headers()["www-authenticate"],
        "Bearer realm=\"ssogate\", error=\"invalid_token\""
    );
    assert_eq!(
        denied.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_token"
    );
    assert_eq!(
        call("not-a-jwt".into()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(format!("{}.{}.", parts[0], parts[1])).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!s.gw.logs().contains(&token), "tokens never reach the logs");
}

/// The claims of a JWT's payload, unverified (the test only reads who it names).
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn with_pass_id_token_the_upstream_gets_only_the_gateways_authorization() {
    let s = stand_with("basic-client", "", "[headers]\npass_id_token = true\n");
    let b = browser();
    let (resp, trail) = sign_in(&b, &s.gw.url("/app"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "trail: {trail:#?}");

    // A signed-in browser that also sends an Authorization header of its own: the upstream
    // gets alice's ID token, once, never the client's.
    let r = b
        .get(s.gw.url("/app"))
        .header("Authorization", "Bearer forged-by-mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen = s.upstream.last_request().unwrap();
    let values: Vec<&str> = seen
        .headers
        .get_all("authorization")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "one Authorization upstream: {values:?}");
    let token = values[0].strip_prefix("Bearer ").expect("a bearer token");
    assert_eq!(jwt_claims(token)["cognito:username"], "alice");
    assert_eq!(jwt_claims(token)["token_use"], "id");

    // On a public route the client's Authorization is stripped too: the app cannot tell it
    // from the gateway's.
    let anon = common::client();
    let r = anon
        .get(s.gw.url("/public/page"))
        .header("Authorization", "Bearer forged-by-mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen = s.upstream.last_request().unwrap();
    assert_eq!(seen.path, "/public/page");
    assert_eq!(seen.header("authorization"), None);

    // An API client's verified bearer token is what the upstream gets, as it was sent.
    bearer_as_bob_twice(&s, |seen, bob| {
        assert_eq!(seen.headers.get_all("authorization").iter().count(), 1);
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {bob}").as_str())
        );
    })
    .await;
}

/// Sends bob's ID token as a bearer token to `/api/items` twice, first seen (verified) and
/// then from the cache of verified tokens; asserts both are answered 200 as bob and hands
/// `check` what the upstream saw, with the token.
async fn bearer_as_bob_twice(s: &Stand, check: impl Fn(&common::SeenRequest, &str)) {
    let tokens = idp::tokens_by_code_flow(
        &s.idp.issuer,
        "basic-client",
        "basic-secret",
        &s.gw.url("/oauth2/callback"),
        "bob",
    )
    .await;
    let bob = tokens["id_token"].as_str().unwrap();
    let anon = common::client();
    for _ in 0..2 {
        let r = anon
            .get(s.gw.url("/api/items"))
            .bearer_auth(bob)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = s.upstream.last_request().unwrap();
        assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
        check(&seen, bob);
    }
}

#[tokio::test]
async fn with_pass_access_token_a_bearer_token_goes_upstream_as_the_access_token_header() {
    let s = stand_with("basic-client", "", "[headers]\npass_access_token = true\n");
    bearer_as_bob_twice(&s, |seen, bob| {
        assert_eq!(seen.header("x-forwarded-access-token"), Some(bob));
    })
    .await;
}

#[tokio::test]
async fn authorize_params_are_added_to_the_authorization_request() {
    let s = stand_with(
        "basic-client",
        "",
        "[provider.authorize_params]\nlang = \"de\"\nlogin_hint = \"bob\"\n",
    );
    let b = browser();
    let url = start_attempt(&b, &s.gw).await;
    assert_eq!(query_value(&url, "lang"), "de");
    assert_eq!(query_value(&url, "login_hint"), "bob");
    assert_eq!(query_value(&url, "code_challenge_method"), "S256");
    let (resp, trail) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK, "{trail:#?}");
}

#[tokio::test]
async fn a_throttled_or_failing_code_exchange_is_unavailable_not_a_refusal() {
    let s = stand();
    for status in [429, 503] {
        let b = browser();
        let callback =
            sign_in_until_callback(&b, &s.gw.url("/"), "alice", &s.gw.url("/oauth2/callback"))
                .await;
        s.idp
            .control(&format!("token-outage?status={status}"), None)
            .await;
        let answer = b.get(&callback).send().await.unwrap();
        s.idp.control("token-outage?status=0", None).await;
        assert_eq!(
            answer.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "a {status} at the token endpoint is the provider's trouble"
        );
        assert!(answer
            .text()
            .await
            .unwrap()
            .contains("temporarily unavailable"));
    }
}

#[tokio::test]
async fn a_very_long_deep_link_still_signs_in_and_keeps_its_path() {
    let s = stand();
    // The whole target would make the sign-in attempt's cookie larger than browsers keep.
    let rd = format!("/report?q={}", "a".repeat(3000));
    let start = format!("/oauth2/start?rd={}", url_encode(&rd));
    let attempt = common::client().get(s.gw.url(&start)).send().await.unwrap();
    assert_eq!(attempt.status(), StatusCode::FOUND);
    for cookie in attempt.headers().get_all("set-cookie") {
        assert!(
            cookie.len() <= 4096,
            "browsers drop a cookie of {} bytes",
            cookie.len()
        );
    }
    let b = browser();
    let (resp, trail) = sign_in(&b, &s.gw.url(&start), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK, "{trail:#?}");
    assert_eq!(trail.last().unwrap(), &s.gw.url("/report"));
}

#[tokio::test]
async fn an_nginx_error_page_sign_in_returns_to_the_page_named_in_x_auth_request_redirect() {
    // nginx: `error_page 401 = /oauth2/start;` with
    // `proxy_set_header X-Auth-Request-Redirect $request_uri;` (oauth2-proxy's set-up).
    let s = stand();
    for (asked, lands) in [
        ("/page/one?x=1&y=2", "/page/one?x=1&y=2"),
        ("//evil.example", "/"),
    ] {
        let b = browser();
        let start = b
            .get(s.gw.url("/oauth2/start"))
            .header("X-Auth-Request-Redirect", asked)
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), StatusCode::FOUND);
        let authorize = start.headers()["location"].to_str().unwrap().to_string();
        let (resp, trail) = sign_in(&b, &authorize, "bob").await;
        assert_eq!(resp.status(), StatusCode::OK, "{trail:#?}");
        assert_eq!(trail.last().unwrap(), &s.gw.url(lands), "{asked}");
    }
    // ?rd= still comes first.
    let b = browser();
    let start = b
        .get(s.gw.url("/oauth2/start?rd=%2Ffrom-query"))
        .header("X-Auth-Request-Redirect", "/from-header")
        .send()
        .await
        .unwrap();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let (_, trail) = sign_in(&b, &authorize, "bob").await;
    assert_eq!(trail.last().unwrap(), &s.gw.url("/from-query"));
}

#[tokio::test]
async fn a_claim_mapped_to_a_preset_header_replaces_it() {
    // oauth2-proxy's `--prefer-email-to-user`, written as a mapping onto the preset's header.
    let s = stand_with(
        "basic-client",
        "",
        "[headers.claims]\n\"X-Forwarded-User\" = \"email\"\n\"X-Auth-Request-Email\" = \"sub\"\n\"X-Department\" = \"custom:department\"\n",
    );
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", s.gw.logs());
    let seen = s.upstream.last_request().unwrap();
    let users: Vec<_> = seen.headers.get_all("x-forwarded-user").iter().collect();
    assert_eq!(
        users,
        ["bob@example.com"],
        "one X-Forwarded-User, the mapped one"
    );
    // The preset's other headers stay; a claim the user lacks sends no header.
    assert_eq!(seen.header("x-forwarded-groups"), Some("staff"));
    assert_eq!(seen.header("x-department"), None);

    let asked = b.get(s.gw.url("/oauth2/auth")).send().await.unwrap();
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let emails: Vec<_> = asked
        .headers()
        .get_all("x-auth-request-email")
        .iter()
        .collect();
    assert_eq!(emails, ["22222222-2222-4222-8222-222222222222"]);
    assert_eq!(asked.headers()["x-forwarded-user"], "bob@example.com");
}

#[tokio::test]
async fn a_host_prefixed_cookie_name_gets_cookies_a_browser_keeps() {
    // `__Host-` cookies must have `Path=/` (and Secure, which https gives them): a state
    // cookie at `Path=/oauth2` is dropped by browsers, and sign-in never completes.
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let config = idp
        .gateway_config(port, &upstream.url, "cookie_name = \"__Host-sso\"", "")
        .replace(&format!("public_url = \"http://127.0.0.1:{port}\"\n"), "");
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));
    let b = browser();
    let start = b.get(gw.url("/oauth2/start?rd=/")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let state: Vec<_> = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        !state.is_empty()
            && state
                .iter()
                .all(|c| c.starts_with("__Host-sso_state_") && c.contains("; Path=/;")),
        "{state:?}"
    );
}

#[tokio::test]
async fn without_public_url_the_callback_address_comes_from_a_trusted_proxy() {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let config = idp.gateway_config(port, &upstream.url, "", "").replace(
        &format!("public_url = \"http://127.0.0.1:{port}\"\n"),
        "trusted_proxies = [\"127.0.0.1\"]\ntrusted_forwarded_headers = [\"X-Forwarded-Proto\", \"X-Forwarded-Host\"]\n",
    );
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));
    let start = |headers: &[(&str, &str)]| {
        let mut req = browser().get(gw.url("/oauth2/start?rd=/"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::FOUND);
            query_value(resp.headers()["location"].to_str().unwrap(), "redirect_uri")
        }
    };
    let proxied = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "app.example.test"),
    ];
    assert_eq!(
        start(&proxied).await,
        "https://app.example.test/oauth2/callback"
    );
    // A port comes with the host (nginx: `$http_host`); X-Forwarded-Port is not read: a
    // proxy behind a TLS load balancer sends its own listening port there.
    let port_in_host = [
        proxied[0],
        ("X-Forwarded-Host", "app.example.test:9443"),
        ("X-Forwarded-Port", "80"),
    ];
    assert_eq!(
        start(&port_in_host).await,
        "https://app.example.test:9443/oauth2/callback"
    );
}

#[tokio::test]
async fn cors_preflights_pass_only_when_skip_preflight_says_so() {
    let preflight = |c: &reqwest::Client, url: String| {
        c.request(reqwest::Method::OPTIONS, url)
            .header("Origin", "https://spa.example.com")
            .header("Access-Control-Request-Method", "POST")
            .header("Accept", "application/json")
            .send()
    };
    for skip in [false, true] {
        let upstream = Upstream::echo();
        let port = free_port();
        let idp = Idp::start(&[port]);
        let text = config(port, &idp, "basic-client", &upstream.url, "", "").replace(
            "[access]\n",
            &format!("[access]\nskip_preflight = {skip}\n"),
        );
        let gw = Gateway::start(&text);
        gw.wait_ready(Duration::from_secs(15));
        let anon = common::client();
        let r = preflight(&anon, gw.url("/api/orders")).await.unwrap();
        let auth = preflight(&anon, gw.url("/oauth2/auth")).await.unwrap();
        if skip {
            assert_eq!(r.status(), StatusCode::OK, "the app answers the preflight");
            assert_eq!(upstream.last_request().unwrap().method, "OPTIONS");
            assert_eq!(auth.status(), StatusCode::ACCEPTED);
        } else {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(auth.status(), StatusCode::UNAUTHORIZED);
        }
        // Anything else still needs a session: an OPTIONS without the preflight headers, or
        // the real call.
        let bare = anon
            .request(reqwest::Method::OPTIONS, gw.url("/api/orders"))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
        let call = anon
            .post(gw.url("/api/orders"))
            .header("Origin", "https://spa.example.com")
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(call.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_session_too_large_for_cookies_ends_at_a_page_that_says_so_not_in_a_loop() {
    let s = stand();
    // Cognito puts every group in the ID token: 99 long names are ~30 KB sealed.
    let groups: Vec<String> = (0..99)
        .map(|i| format!("{i:03}-{}", "g".repeat(296)))
        .chain(["staff".to_string()])
        .collect();
    s.idp
        .control("users/alice/groups", Some(serde_json::json!(groups)))
        .await;
    let b = browser();
    let (resp, trail) = sign_in(&b, &s.gw.url("/hello"), "alice").await;
    assert_eq!(
        resp.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "{trail:#?}"
    );
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("too large to keep in browser cookies") && page.contains("session.store"),
        "{page}"
    );
    assert_eq!(
        s.idp.stats().await["authorization_code_grants"],
        1,
        "one sign-in, not a loop of them"
    );
    s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["level"] == "ERROR"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("too large for the cookie store"))
    });
    s.idp.control("reset-users", None).await;
}

#[tokio::test]
async fn a_bearer_token_signed_with_a_withdrawn_key_is_refused_at_once() {
    let s = stand();
    let token_of = |user: &'static str| {
        let (issuer, callback) = (s.idp.issuer.clone(), s.gw.url("/oauth2/callback"));
        async move {
            let tokens =
                idp::tokens_by_code_flow(&issuer, "basic-client", "basic-secret", &callback, user)
                    .await;
            tokens["id_token"].as_str().unwrap().to_string()
        }
    };
    let api = common::client();
    let call = |t: String| {
        let api = api.clone();
        let url = s.gw.url("/api/items");
        async move { api.get(url).bearer_auth(t).send().await.unwrap().status() }
    };
    let old = token_of("bob").await;
    assert_eq!(call(old.clone()).await, StatusCode::OK);
    assert_eq!(call(old.clone()).await, StatusCode::OK, "verified before");

    // The provider withdraws the key (a leaked key, say). The next token, with the new key,
    // makes the gateway fetch the JWKS, which no longer has the old one.
    s.idp.control("rotate-keys?drop_old=1", None).await;
    let new = token_of("alice").await;
    assert_eq!(call(new).await, StatusCode::OK);
    s.gw.wait_for_message("the provider withdrew a signing key");
    // Not 5 more minutes of the cache: refused now, on every worker.
    for _ in 0..4 {
        assert_eq!(call(old.clone()).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_provider_that_does_not_answer_does_not_hold_up_sign_out() {
    let s = stand();
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The provider stops answering (provider.timeout is 10 s here).
    s.idp.signal("STOP");
    let started = std::time::Instant::now();
    let out = b.get(s.gw.url("/oauth2/sign_out")).send().await.unwrap();
    let took = started.elapsed();
    s.idp.signal("CONT");
    assert_eq!(out.status(), StatusCode::FOUND);
    assert!(took < Duration::from_secs(5), "sign-out took {took:?}");
    // The cookie is gone all the same.
    let again = b.get(s.gw.url("/")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn a_redirect_target_that_is_the_gateways_own_endpoint_goes_to_the_root() {
    // nginx sets X-Auth-Request-Redirect to $request_uri: a sign-in or sign-out link opened
    // directly names itself, and following it would go round for ever.
    let s = stand();
    for (asked, how) in [
        ("/oauth2/start", "header"),
        ("/oauth2/sign_out", "header"),
        ("/oauth2/callback?code=x", "query"),
        ("/%6Fauth2/start", "query"),
    ] {
        let b = browser();
        let req = match how {
            "header" => b
                .get(s.gw.url("/oauth2/start"))
                .header("X-Auth-Request-Redirect", asked),
            _ => b.get(s.gw.url(&format!("/oauth2/start?rd={}", url_encode(asked)))),
        };
        let start = req.send().await.unwrap();
        let authorize = start.headers()["location"].to_str().unwrap().to_string();
        let (resp, trail) = sign_in(&b, &authorize, "bob").await;
        assert_eq!(resp.status(), StatusCode::OK, "{asked}: {trail:#?}");
        assert_eq!(trail.last().unwrap(), &s.gw.url("/"), "{asked}");
    }
    assert_eq!(
        s.idp.stats().await["authorization_code_grants"],
        4,
        "one sign-in each"
    );
    // Sign-out named by itself ends at the signed-out page, not in a loop.
    let b = browser();
    let (resp, _) = sign_in(&b, &s.gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let out = b
        .get(s.gw.url("/oauth2/sign_out"))
        .header("X-Auth-Request-Redirect", "/oauth2/sign_out")
        .send()
        .await
        .unwrap();
    let (done, trail) = follow(&b, out.headers()["location"].to_str().unwrap(), None).await;
    assert!(trail.len() < 6, "{trail:#?}");
    assert_eq!(done.url().path(), "/oauth2/signed_out", "{trail:#?}");
    assert!(done
        .text()
        .await
        .unwrap()
        .contains("You have been signed out"));
}

#[tokio::test]
async fn a_page_whose_path_reads_as_another_host_is_not_where_sign_in_ends() {
    // Signed out, a browser goes from the page straight to the provider, and the page's own
    // path is kept as the way back: a path that a browser would read as another host must
    // not become a redirect there after sign-in.
    let s = stand();
    for path in [
        "//evil.example/x",
        "/%5Cevil.example/x",
        "/%2F%2Fevil.example/x",
    ] {
        let b = browser();
        let (resp, trail) = sign_in(&b, &s.gw.url(path), "bob").await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}: {trail:#?}");
        let last = resp.url().clone();
        assert_eq!(
            last.origin(),
            reqwest::Url::parse(&s.gw.url("/")).unwrap().origin(),
            "{path}: ended at {last}"
        );
    }
}

#[tokio::test]
async fn a_token_whose_key_cannot_be_fetched_now_is_not_called_invalid() {
    let mut s = stand();
    // A key id the gateway has not seen (the provider rotated, say) while its JWKS cannot be
    // fetched: the token may be good; an API client must not throw it away.
    let new_kid = made_up_token("rotated-in");
    s.idp.stop();
    let r = common::client()
        .get(s.gw.url("/api"))
        .bearer_auth(&new_kid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "10");
}

//! Secrets mounted as files change without a restart (Kubernetes swaps them by symlink):
//! the gateway re-reads them by polling, and at SIGHUP. A new session secret seals new cookies while the
//! old one still opens existing ones; a new client secret is used at the next token call.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, sign_in, Idp};
use reqwest::StatusCode;

const SECRET_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const SECRET_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

/// A signed-in route whose session secret (and, when given, client secret) come from files
/// that are read again every `poll` and at SIGHUP.
fn gateway_with_secret_files(
    poll: &str,
    cookie_file: &std::path::Path,
    client_file: Option<&std::path::Path>,
) -> (Gateway, Idp, Upstream) {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let mut provider = idp.provider_toml("basic-client");
    if let Some(file) = client_file {
        provider = provider.replace(
            "client_secret = \"basic-secret\"\n",
            &format!("client_secret_file = \"{}\"\n", file.display()),
        );
    }
    let gw = Gateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
secret_poll_interval = "{poll}"
{provider}
[session]
secret_file = "{cookie}"
[[routes]]
path_prefix = "/"
upstream = "{up}"
[logging]
format = "json"
"#,
        cookie = cookie_file.display(),
        up = upstream.url,
    ));
    gw.wait_ready(Duration::from_secs(15));
    (gw, idp, upstream)
}

/// A gateway whose session secret (SECRET_A) is in a file read only at SIGHUP, and alice
/// signed in there.
struct SignedIn {
    cookie_file: std::path::PathBuf,
    gw: Gateway,
    browser: reqwest::Client,
    _idp: Idp,
    _upstream: Upstream,
    _dir: tempfile::TempDir,
}

async fn signed_in_with_a_secret_file() -> SignedIn {
    let dir = tempfile::tempdir().unwrap();
    let cookie_file = dir.path().join("cookie-secret");
    std::fs::write(&cookie_file, SECRET_A).unwrap();
    let (gw, idp, upstream) = gateway_with_secret_files("0s", &cookie_file, None);
    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    SignedIn {
        cookie_file,
        gw,
        browser: b,
        _idp: idp,
        _upstream: upstream,
        _dir: dir,
    }
}

#[tokio::test]
async fn rotated_secret_files_take_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cookie_file = dir.path().join("cookie-secret");
    let client_file = dir.path().join("client-secret");
    std::fs::write(&cookie_file, SECRET_A).unwrap();
    std::fs::write(&client_file, "basic-secret\n").unwrap();

    let (gw, _idp, _upstream) =
        gateway_with_secret_files("200ms", &cookie_file, Some(&client_file));

    let first = browser();
    let (resp, _) = sign_in(&first, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);

    // The session secret changes: the existing session goes on, new ones work too.
    std::fs::write(&cookie_file, format!("{SECRET_B}\n")).unwrap();
    gw.wait_for_message("session secret changed");
    assert_eq!(
        first.get(gw.url("/still")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let second = browser();
    let (resp, _) = sign_in(&second, &gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);

    // A bad file is ignored with a warning; the secret in use stays.
    std::fs::write(&cookie_file, "not base64!").unwrap();
    gw.wait_for_message("cannot re-read session.secret_file");
    assert_eq!(
        second.get(gw.url("/ok")).send().await.unwrap().status(),
        StatusCode::OK
    );

    // An emptied client secret file (a failed deploy) is not taken: sign-in goes on working.
    std::fs::write(&client_file, "\n").unwrap();
    gw.wait_for_message("provider.client_secret_file is empty");
    let fourth = browser();
    let (resp, _) = sign_in(&fourth, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);

    // The client secret changes: the next code exchange uses it (and this one is wrong).
    std::fs::write(&client_file, "rotated-but-wrong").unwrap();
    gw.wait_for_message("provider client secret changed");
    let third = browser();
    let (resp, _) = sign_in(&third, &gw.url("/"), "carol").await;
    // The operator's fault, not the user's: 500, and an ERROR saying what to check.
    assert_eq!(
        resp.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "the provider refuses the wrong secret"
    );
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("invalid_client") && page.contains("misconfigured"),
        "{page}"
    );
    gw.wait_for_log(Duration::from_secs(5), |l| {
        l["level"] == "ERROR"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("check provider.client_id and client_secret"))
    });
    assert!(
        !gw.logs().contains("rotated-but-wrong"),
        "secrets never reach the logs"
    );
}

#[tokio::test]
async fn sighup_reads_the_secret_files_at_once() {
    let SignedIn {
        cookie_file,
        gw,
        browser: b,
        // Bound, so the provider, app and secret's directory live to the end.
        _idp,
        _upstream,
        _dir,
    } = signed_in_with_a_secret_file().await;

    // No polling: the new secret is read when the signal asks, not before.
    std::fs::write(&cookie_file, format!("{SECRET_B}\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!gw.logs().contains("session secret changed"));
    gw.signal("HUP");
    gw.wait_for_message("session secret changed");
    assert_eq!(
        b.get(gw.url("/still")).send().await.unwrap().status(),
        StatusCode::OK,
        "the session sealed with the old secret still opens"
    );
}

#[tokio::test]
async fn a_new_alb_signing_key_signs_new_assertions_and_the_old_one_stays_published() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let new_key = || {
        let rng = ring::rand::SystemRandom::new();
        ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap()
        .as_ref()
        .to_vec()
    };
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("assertion-key.der");
    std::fs::write(&key_file, new_key()).unwrap();
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let gw = Gateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
secret_poll_interval = "0s"
{provider}
[session]
secret = "{SECRET_A}"
[headers]
preset = "alb"
signing_key_file = "{key}"
[[routes]]
path_prefix = "/"
upstream = "{up}"
[logging]
format = "json"
"#,
        provider = idp.provider_toml("basic-client"),
        key = key_file.display(),
        up = upstream.url,
    ));
    gw.wait_ready(Duration::from_secs(15));

    // The kid of an assertion, and whether it verifies with the key of that kid in jwks.json.
    let verify = |assertion: &str, jwks: &serde_json::Value| -> String {
        let (input, sig) = assertion.rsplit_once('.').unwrap();
        let head: serde_json::Value =
            serde_json::from_slice(&b64.decode(input.split('.').next().unwrap()).unwrap()).unwrap();
        let kid = head["kid"].as_str().unwrap().to_string();
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap_or_else(|| panic!("kid {kid} is not in {jwks}"));
        let mut point = vec![4u8];
        point.extend(b64.decode(key["x"].as_str().unwrap()).unwrap());
        point.extend(b64.decode(key["y"].as_str().unwrap()).unwrap());
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(input.as_bytes(), &b64.decode(sig).unwrap())
            .expect("the assertion verifies with its key from jwks.json");
        kid
    };
    let jwks = || async {
        common::client()
            .get(gw.url("/oauth2/jwks.json"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };

    let alice = browser();
    let (resp, _) = sign_in(&alice, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", gw.logs());
    let before = upstream
        .last_request()
        .unwrap()
        .header("x-amzn-oidc-data")
        .unwrap()
        .to_string();
    let old_kid = verify(&before, &jwks().await);

    // The key file is replaced (a rotated Kubernetes secret) and the gateway told so.
    std::fs::write(&key_file, new_key()).unwrap();
    gw.signal("HUP");
    gw.wait_for_message("headers.signing_key_file changed");

    let bob = browser();
    let (resp, _) = sign_in(&bob, &gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let after = upstream
        .last_request()
        .unwrap()
        .header("x-amzn-oidc-data")
        .unwrap()
        .to_string();
    let published = jwks().await;
    let new_kid = verify(&after, &published);
    assert_ne!(new_kid, old_kid, "a new sign-in is signed with the new key");
    assert_eq!(published["keys"][0]["kid"], new_kid.as_str(), "{published}");
    // Alice's session still works, now signed with the new key too; what the app got before
    // still verifies for a while (requests on their way).
    assert_eq!(
        alice.get(gw.url("/still")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let resigned = upstream
        .last_request()
        .unwrap()
        .header("x-amzn-oidc-data")
        .unwrap()
        .to_string();
    assert_eq!(verify(&resigned, &published), new_kid);
    verify(&before, &published);

    // A file that is no key is refused with a warning; the key in use stays.
    std::fs::write(&key_file, "not a key").unwrap();
    gw.signal("HUP");
    gw.wait_for_message("cannot re-read headers.signing_key_file");
    assert_eq!(jwks().await["keys"][0]["kid"], new_kid.as_str());
}

#[tokio::test]
async fn a_cookie_sealed_two_secrets_ago_no_longer_opens() {
    const SECRET_C: &str = "Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M=";
    let SignedIn {
        cookie_file,
        gw,
        browser: b,
        // Bound, so the provider, app and secret's directory live to the end.
        _idp,
        _upstream,
        _dir,
    } = signed_in_with_a_secret_file().await;
    let rotate = |secret: &str, times: usize| {
        std::fs::write(&cookie_file, secret).unwrap();
        gw.signal("HUP");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while gw.logs().matches("session secret changed").count() < times {
            assert!(std::time::Instant::now() < deadline, "{}", gw.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // A -> B: the cookie sealed with A still opens (B's previous secret).
    rotate(SECRET_B, 1);
    let status = |b: &reqwest::Client, path: &str| {
        let req = b.get(gw.url(path)).header("accept", "application/json");
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(status(&b, "/one-back").await, StatusCode::OK);
    // B -> C: only C and B open cookies now; A's is refused at once, not after the cache.
    rotate(SECRET_C, 2);
    for _ in 0..3 {
        assert_eq!(status(&b, "/two-back").await, StatusCode::UNAUTHORIZED);
    }
}

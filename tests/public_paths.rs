//! `[[routes]] public_paths`: method + pattern pairs on the normalised path that need no
//! sign-in on a protected route (oauth2-proxy's `--skip-auth-route`), dot-segment tricks
//! that do not get past them, and patterns refused because they could reach the gateway's
//! own endpoints. Real binary, real (npm oidc-provider) provider, raw sockets.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::process::Command;
use std::time::Duration;

use common::{free_port, raw_request, Gateway, Upstream};
use idp::{browser, sign_in, Idp};

const PUBLIC: &str = "public_paths = [\"GET=^/api/health$\", \"^/static/\"]";

fn stand() -> (Gateway, Idp, Upstream) {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let config = idp.gateway_config(port, &upstream.url, "", "").replacen(
        "upstream = ",
        &format!("{PUBLIC}\nupstream = "),
        1,
    );
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));
    (gw, idp, upstream)
}

fn get(gw: &Gateway, method: &str, target: &str) -> common::RawResponse {
    raw_request(
        gw.port,
        &format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Forwarded-User: mallory\r\nX-Forwarded-Email: boss@example.com\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            gw.port
        ),
    )
}

#[tokio::test]
async fn a_public_path_reaches_the_app_without_a_session_and_without_forged_identity() {
    let (gw, _idp, upstream) = stand();
    for target in [
        "/api/health",
        "/api/health?probe=1",
        "/static/app.css",
        "/api/./health",
    ] {
        let resp = get(&gw, "GET", target);
        assert_eq!(resp.status, 200, "{target}: {}", resp.text());
        let seen = upstream.last_request().expect("reached the app");
        assert_eq!(seen.header("x-forwarded-user"), None, "{target}");
        assert_eq!(seen.header("x-forwarded-email"), None, "{target}");
    }
    assert_eq!(upstream.requests().len(), 4);
    // Any method for a pattern without one.
    assert_eq!(get(&gw, "POST", "/static/upload").status, 200);
}

#[tokio::test]
async fn other_methods_and_paths_and_dot_segment_tricks_still_need_sign_in() {
    let (gw, _idp, upstream) = stand();
    for (method, target) in [
        ("POST", "/api/health"),
        ("GET", "/api/healthz"),
        ("GET", "/api/health/../admin"),
        ("GET", "/static/../admin"),
        ("GET", "/static/%2e%2e/admin"),
        ("GET", "/admin?x=/static/"),
        ("GET", "/x/../api/health/.."),
    ] {
        let resp = get(&gw, method, target);
        assert!(
            resp.status == 302 || resp.status == 401,
            "{method} {target}: {} {}",
            resp.status,
            resp.text()
        );
    }
    // A hidden dot segment is refused outright.
    assert_eq!(get(&gw, "GET", "/static%2F..%2Fadmin").status, 400);
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());

    // Signed in, the rest of the route works as before.
    let b = browser();
    let (resp, _) = sign_in(&b, &gw.url("/admin"), "alice").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        upstream.last_request().unwrap().header("x-forwarded-user"),
        Some("alice")
    );
}

fn check_config(public_paths: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssogate.toml");
    std::fs::write(
        &path,
        format!(
            "[provider]\nuser_pool_id = \"eu-central-1_AbC123xyz\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
             [session]\nsecret = \"{}\"\n[server]\nauth_prefix = \"/sso\"\n\
             [[routes]]\nupstream = \"http://127.0.0.1:9\"\npublic_paths = {public_paths}\n",
            idp::SESSION_SECRET
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("SSOGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn check_config_refuses_patterns_that_could_match_the_gateways_endpoints() {
    for pattern in ["^/sso/", "^/s", ".*", "userinfo$", "GET=^/sso$"] {
        let (code, out) = check_config(&format!("[\"^/ok$\", \"{pattern}\"]"));
        assert_eq!(code, Some(2), "{pattern}: {out}");
        assert!(
            out.contains("routes[0].public_paths[1]")
                && out.contains("can match the gateway's own endpoints under \"/sso\""),
            "{pattern}: {out}"
        );
    }
    let (code, out) = check_config("[\"GET=^/(\"]");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("routes[0].public_paths[0]") && out.contains("not a valid pattern"),
        "{out}"
    );

    let (code, out) = check_config("[\"GET=^/api/health$\", \"^/static/\", \"^/ssox\"]");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("public_paths = [") && out.contains("\"GET=^/api/health$\","),
        "{out}"
    );
}

//! `session.cookie_domain`: one sign-in for every host below a domain. Two host routes,
//! `a.app.localhost` (the public URL, where the callback is) and `b.app.localhost`, on
//! loopback (the client resolves both names to 127.0.0.1); a sign-in started at b ends
//! back at b's page, and a then knows the user without another sign-in.
//! Real binary, real (npm oidc-provider) provider.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::net::SocketAddr;
use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{sign_in, Idp, SESSION_SECRET};
use reqwest::StatusCode;

fn browser_for(hosts: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30));
    for h in hosts {
        b = b.resolve(h, SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    b.build().unwrap()
}

#[tokio::test]
async fn one_sign_in_serves_every_host_below_the_cookie_domain() {
    let (up_a, up_b) = (Upstream::echo(), Upstream::echo());
    let port = free_port();
    let a = format!("http://a.app.localhost:{port}");
    let b = format!("http://b.app.localhost:{port}");
    let idp = Idp::start_with(
        &[],
        &[
            "--redirect-uri",
            &format!("{a}/oauth2/callback"),
            "--logout-uri",
            &format!("{a}/oauth2/signed_out"),
        ],
    );
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{a}\"\nallowed_redirect_hosts = [\".app.localhost\"]\n\n\
         {provider}timeout = \"2s\"\n\n\
         [session]\nsecret = \"{SESSION_SECRET}\"\ncookie_domain = \".app.localhost\"\n\n\
         [[routes]]\nhost = \"a.app.localhost\"\nupstream = \"{ua}\"\n\n\
         [[routes]]\nhost = \"b.app.localhost\"\nupstream = \"{ub}\"\n\n\
         [logging]\nformat = \"json\"\n",
        provider = idp.provider_toml("basic-client"),
        ua = up_a.url,
        ub = up_b.url,
    );
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));

    let browser = browser_for(&["a.app.localhost", "b.app.localhost"]);
    let (resp, trail) = sign_in(&browser, &format!("{b}/page?x=1"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK, "{trail:#?}\n{}", gw.logs());
    assert!(
        trail
            .iter()
            .any(|u| u.starts_with(&format!("{a}/oauth2/callback"))),
        "the sign-in came back at the public URL: {trail:#?}"
    );
    let seen = up_b.last_request().expect("b's app was reached");
    assert_eq!(seen.path, "/page?x=1");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));

    // a: the same session, no sign-in.
    let resp = browser.get(format!("{a}/other")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        up_a.last_request().unwrap().header("x-forwarded-user"),
        Some("alice")
    );
    // The cookie names the domain, and never reaches the apps.
    assert!(up_a.last_request().unwrap().header("cookie").is_none());

    // Signing out at b ends it at a too: the cookie is deleted for the whole domain.
    let out = browser
        .get(format!("{b}/oauth2/sign_out"))
        .send()
        .await
        .unwrap();
    assert!(out.status().is_redirection(), "{}", out.status());
    let deleted: Vec<_> = out.headers().get_all("set-cookie").iter().collect();
    assert!(
        deleted.iter().any(|c| {
            let c = c.to_str().unwrap();
            c.starts_with("_ssogate=")
                && c.contains("Domain=app.localhost")
                && c.contains("Max-Age=0")
        }),
        "{deleted:?}"
    );
    let resp = browser.get(format!("{a}/other")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
}

fn check_config(session: &str, server: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssogate.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\n{server}\n[provider]\nuser_pool_id = \"eu-central-1_AbC123xyz\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
             [session]\nsecret = \"{SESSION_SECRET}\"\n{session}\n[[routes]]\nupstream = \"http://127.0.0.1:9\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssogate"))
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
fn check_config_refuses_a_cookie_domain_that_cannot_work() {
    let public = "public_url = \"https://a.example.com\"";
    for (domain, server, says) in [
        ("com", public, "at least two labels"),
        (".localhost", public, "at least two labels"),
        (
            "other.com",
            public,
            "not a parent of server.public_url's host",
        ),
        ("evil-example.com", public, "not a parent"),
        ("example.com", "", "needs server.public_url"),
    ] {
        let (code, out) = check_config(&format!("cookie_domain = \"{domain}\""), server);
        assert_eq!(code, Some(2), "{domain}: {out}");
        assert!(
            out.contains("session.cookie_domain") && out.contains(says),
            "{domain}: {out}"
        );
    }
    let (code, out) = check_config(
        "cookie_domain = \"example.com\"\ncookie_name = \"__Host-s\"",
        public,
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("__Host-"), "{out}");
    let (code, out) = check_config("cookie_domain = \".Example.com\"", public);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("allowed_redirect_hosts"),
        "a warning says what else to set: {out}"
    );
}

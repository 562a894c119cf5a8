//! `ssogate demo` as a newcomer runs it: the real binary on free loopback ports, each demo
//! user signing in through the built-in provider's form with a cookie-keeping HTTP client
//! that follows every redirect by hand, so each hop is checked.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode, Url};

const POOL: &str = "eu-central-1_Demo1234";
const PASSWORD: &str = "Passw0rd!";

/// The `ssogate demo` process, killed by its PID when dropped.
struct Demo {
    /// `http://127.0.0.1:{port}`, the gateway.
    base: String,
    /// The built-in provider's issuer, read from what the demo printed.
    issuer: String,
    /// Everything printed on stdout before "Stop the demo".
    banner: String,
    child: Child,
    stderr_log: Arc<Mutex<String>>,
}

impl Demo {
    /// Starts `ssogate demo` with these extra flags on a free gateway port (retrying when
    /// another process takes the port first) and waits for `/oauth2/ping`.
    async fn start(flags: &[&str]) -> Demo {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(flags).await {
                Ok(demo) => return demo,
                Err(failure) if failure.contains("cannot listen") => last = failure,
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!("{last}")
    }

    async fn try_start(flags: &[&str]) -> Result<Demo, String> {
        let port = common::free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssogate"));
        cmd.args(["demo", "--listen", &format!("127.0.0.1:{port}")])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("SSOGATE_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("spawn ssogate demo");

        let stderr_log = Arc::new(Mutex::new(String::new()));
        let sink = stderr_log.clone();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // The banner arrives on stdout in one piece; read it on a thread so a silent
        // process cannot hang the test.
        let (tx, rx) = mpsc::channel();
        let mut stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            let mut banner = String::new();
            let mut reader = BufReader::new(&mut stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                banner.push_str(&line);
                let done = line.starts_with("Stop the demo");
                line.clear();
                if done {
                    break;
                }
            }
            let _ = tx.send(banner);
            // Keep draining so the demo never blocks on a full pipe.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });

        let mut demo = Demo {
            base: format!("http://127.0.0.1:{port}"),
            issuer: String::new(),
            banner: String::new(),
            child,
            stderr_log,
        };
        let banner = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) if b.contains("Stop the demo") => b,
            _ => {
                let _ = demo.child.wait_timeout(Duration::from_secs(5));
                return Err(format!(
                    "ssogate demo printed no banner; stderr:\n{}",
                    demo.logs()
                ));
            }
        };
        demo.issuer = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("Identity provider (issuer): "))
            .expect("the banner names the issuer")
            .trim()
            .to_string();
        demo.banner = banner;

        let deadline = Instant::now() + Duration::from_secs(15);
        let client = common::client();
        loop {
            let ping = client.get(demo.url("/oauth2/ping")).send().await;
            if ping.is_ok_and(|r| r.status() == StatusCode::OK) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "/oauth2/ping never answered; stderr:\n{}",
                    demo.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(demo)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn logs(&self) -> String {
        self.stderr_log.lock().unwrap().clone()
    }

    /// How often `needle` is in the log once it is there `at_least` times, or after `within`.
    /// Log lines reach the test after the answer they belong to (the gateway writes its log
    /// from another thread, and a reader thread here collects it).
    fn log_count(&self, needle: &str, at_least: usize, within: Duration) -> usize {
        let deadline = std::time::Instant::now() + within;
        loop {
            let n = self.logs().matches(needle).count();
            if n >= at_least || std::time::Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Kills this child only (by its PID); harmless when it has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait WaitTimeout {
    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One GET; the answer and, for a redirect, where it points (resolved).
async fn get(client: &Client, url: &str) -> (Response, Option<String>) {
    let resp = client
        .get(url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let next = next_hop(&resp);
    (resp, next)
}

fn next_hop(resp: &Response) -> Option<String> {
    if !resp.status().is_redirection() {
        return None;
    }
    let location = resp.headers().get("location")?.to_str().ok()?;
    Some(
        resp.url()
            .join(location)
            .expect("a valid Location")
            .to_string(),
    )
}

/// Opens `path` on the gateway signed out and signs in as `user`, asserting every hop:
/// gateway -> provider authorize -> login form -> POST -> gateway callback -> back to
/// `path`. Returns the answer at `path` after sign-in.
async fn sign_in(demo: &Demo, client: &Client, path: &str, user: &str) -> Response {
    let (first, hop) = get(client, &demo.url(path)).await;
    assert_eq!(first.status(), StatusCode::FOUND, "GET {path} signed out");
    let authorize = Url::parse(&hop.unwrap()).unwrap();
    assert!(
        authorize
            .as_str()
            .starts_with(&format!("{}/oauth2/authorize?", demo.issuer)),
        "{authorize}"
    );
    let q = |k: &str| {
        authorize
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(q("redirect_uri"), Some(demo.url("/oauth2/callback")));
    assert!(q("state").is_some() && q("nonce").is_some());

    let (page, _) = get(client, authorize.as_str()).await;
    assert_eq!(page.status(), StatusCode::OK, "the provider's login form");
    let (action, fields) = idp::login_form(page, user, PASSWORD).await;
    let posted = client
        .post(&action)
        .form(&fields)
        .send()
        .await
        .expect("POST the login form");
    assert_eq!(
        posted.status(),
        StatusCode::FOUND,
        "signed in at the provider"
    );
    let callback = next_hop(&posted).unwrap();
    assert!(
        callback.starts_with(&demo.url("/oauth2/callback?code=")),
        "{callback}"
    );

    let (back, hop) = get(client, &callback).await;
    assert_eq!(
        back.status(),
        StatusCode::FOUND,
        "the callback redirects on"
    );
    assert_eq!(
        hop.as_deref(),
        Some(demo.url(path).as_str()),
        "back where we started"
    );
    get(client, &demo.url(path)).await.0
}

/// The identity row the echo page shows for `header`.
fn identity_row(header: &str, value: &str) -> String {
    format!("<tr class=\"identity\"><td class=\"n\">{header}</td><td class=\"v\">{value}")
}

#[tokio::test]
async fn alice_reaches_the_admin_area_and_the_app_sees_her() {
    let demo = Demo::start(&[]).await;
    let browser = idp::browser();
    let admin = sign_in(&demo, &browser, "/admin/", "alice").await;
    assert_eq!(admin.status(), StatusCode::OK);
    let page = admin.text().await.unwrap();
    assert!(page.contains("Admin area (admins only)"), "{page}");
    assert!(
        page.contains(&identity_row("x-forwarded-user", "alice")),
        "{page}"
    );
    assert!(page.contains(&identity_row("x-forwarded-email", "alice@example.com")));
    assert!(page.contains(&identity_row("x-forwarded-groups", "admins,staff")));
    // The gateway's session cookie never reaches the app.
    assert!(!page.contains("_ssogate"), "{page}");
}

#[tokio::test]
async fn bob_may_use_the_app_but_not_the_admin_area() {
    let demo = Demo::start(&[]).await;
    let browser = idp::browser();
    let home = sign_in(&demo, &browser, "/", "bob").await;
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home
        .text()
        .await
        .unwrap()
        .contains(&identity_row("x-forwarded-user", "bob")));
    let (admin, _) = get(&browser, &demo.url("/admin/")).await;
    assert_eq!(admin.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn with_require_group_staff_carol_is_refused_and_bob_is_not() {
    let demo = Demo::start(&["--require-group", "staff"]).await;
    let carol = sign_in(&demo, &idp::browser(), "/", "carol").await;
    assert_eq!(carol.status(), StatusCode::FORBIDDEN);
    let bob = sign_in(&demo, &idp::browser(), "/", "bob").await;
    assert_eq!(bob.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again() {
    let demo = Demo::start(&[]).await;
    let browser = idp::browser();
    let (login, _) = idp::follow(&browser, &demo.url("/"), None).await;
    assert_eq!(login.status(), StatusCode::OK);
    let (action, fields) = idp::login_form(login, "alice", "not-the-password").await;
    let again = browser.post(&action).form(&fields).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let page = again.text().await.unwrap();
    assert!(page.contains("Incorrect username or password."));
    assert!(page.contains("name=\"password\""));
}

#[tokio::test]
async fn sign_out_ends_both_sessions_through_the_providers_logout() {
    let demo = Demo::start(&[]).await;
    let browser = idp::browser();
    assert_eq!(
        sign_in(&demo, &browser, "/", "alice").await.status(),
        StatusCode::OK
    );

    let (out, hop) = get(&browser, &demo.url("/oauth2/sign_out")).await;
    assert_eq!(out.status(), StatusCode::FOUND);
    let logout = Url::parse(&hop.unwrap()).unwrap();
    assert!(
        logout
            .as_str()
            .starts_with(&format!("{}/logout?", demo.issuer)),
        "Cognito's /logout, not {logout}"
    );
    let logout_uri = logout
        .query_pairs()
        .find(|(k, _)| k == "logout_uri")
        .map(|(_, v)| v.into_owned());
    assert_eq!(logout_uri, Some(demo.url("/oauth2/signed_out")));

    let (at_provider, hop) = get(&browser, logout.as_str()).await;
    assert_eq!(at_provider.status(), StatusCode::FOUND);
    let back = hop.unwrap();
    assert_eq!(back, demo.url("/oauth2/signed_out"));
    let (signed_out, _) = idp::follow(&browser, &back, None).await;
    assert!(signed_out.status().is_success(), "{}", signed_out.status());

    // Signed out at the gateway: "/" starts a sign-in again...
    let (home, hop) = get(&browser, &demo.url("/")).await;
    assert_eq!(home.status(), StatusCode::FOUND, "{}", demo.logs());
    let hop = hop.unwrap();
    assert!(
        hop.starts_with(&format!("{}/oauth2/authorize?", demo.issuer)),
        "{hop}"
    );
    // ...and at the provider: it asks for the password instead of answering with a code.
    let (page, trail) = idp::follow(&browser, &demo.url("/"), None).await;
    assert_eq!(page.status(), StatusCode::OK, "{trail:#?}");
    assert!(page.text().await.unwrap().contains("name=\"password\""));
    // The gateway revoked the refresh token at the provider on the way out.
    assert!(!demo.logs().contains("could not revoke"), "{}", demo.logs());
}

#[tokio::test]
async fn the_banner_shows_the_url_the_users_and_a_real_cognito_config() {
    let demo = Demo::start(&[]).await;
    let b = &demo.banner;
    assert!(
        b.contains(&format!("Open {}/ in a browser", demo.base)),
        "{b}"
    );
    assert!(b.contains(PASSWORD));
    for user in ["alice", "bob", "carol"] {
        assert!(b.contains(user), "{b}");
    }
    assert!(demo.issuer.ends_with(&format!("/{POOL}")));
    assert!(b.contains("user_pool_id = \"eu-central-1_YourPoolId\""));
    assert!(b.contains("https://<your-domain>.auth.eu-central-1.amazoncognito.com"));
    assert!(b.contains("client_secret_file"));
}

#[test]
fn a_non_loopback_listen_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(["demo", "--listen", "0.0.0.0:4180"])
        .stdin(Stdio::null())
        .output()
        .expect("run ssogate demo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing started, nothing printed");
}

#[tokio::test]
async fn sigterm_stops_the_demo() {
    let mut demo = Demo::start(&[]).await;
    let status = Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = demo.child.wait_timeout(Duration::from_secs(20));
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit {exit:?}; stderr:\n{}",
        demo.logs()
    );
}

#[tokio::test]
async fn a_real_app_behind_the_demo_with_an_overlay_keeps_its_session_across_refreshes() {
    let app = common::Upstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("overlay.toml");
    // Refresh on every request a second apart: each refresh answer carries no new refresh
    // token (Cognito without rotation), so the gateway must keep using the first one.
    std::fs::write(&overlay, "[session]\nrefresh_interval = \"1s\"\n").unwrap();
    let demo = Demo::start(&[
        "--upstream",
        &app.url,
        "--config",
        overlay.to_str().unwrap(),
    ])
    .await;
    assert!(!demo.banner.contains("Echo app"), "{}", demo.banner);
    let browser = idp::browser();
    let home = sign_in(&demo, &browser, "/", "bob").await;
    assert_eq!(home.status(), StatusCode::OK);
    let seen = app.last_request().expect("the app was asked");
    assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("staff"));

    for round in 1..=2 {
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (again, hop) = get(&browser, &demo.url("/")).await;
        assert_eq!(
            again.status(),
            StatusCode::OK,
            "round {round}: {hop:?}; log:\n{}",
            demo.logs()
        );
        assert_eq!(
            app.last_request().unwrap().header("x-forwarded-user"),
            Some("bob")
        );
    }
    let refreshed = demo.log_count("session refreshed", 2, Duration::from_secs(5));
    assert!(refreshed >= 2, "two refreshes; log:\n{}", demo.logs());
}

#[tokio::test]
async fn api_clients_pass_with_a_cognito_access_token_and_forged_ones_get_401() {
    let app = common::Upstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("overlay.toml");
    std::fs::write(
        &overlay,
        "[provider]\nclient_secret = \"known-demo-secret\"\n",
    )
    .unwrap();
    let demo = Demo::start(&[
        "--upstream",
        &app.url,
        "--config",
        overlay.to_str().unwrap(),
    ])
    .await;
    let tokens = idp::tokens_by_code_flow(
        &demo.issuer,
        "ssogate-demo",
        "known-demo-secret",
        &demo.url("/oauth2/callback"),
        "bob",
    )
    .await;
    let access = tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_string();

    // Cognito access tokens carry client_id and token_use=access, and no aud.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = access.split('.').collect();
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["token_use"], "access");
    assert!(claims.get("aud").is_none(), "{claims}");

    let api = reqwest::Client::new();
    let call = |token: String| {
        let api = api.clone();
        let url = demo.url("/api/orders");
        async move { api.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let ok = call(access.clone()).await;
    assert_eq!(ok.status(), StatusCode::OK, "{}", demo.logs());
    let seen = app.last_request().unwrap();
    assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("staff"));

    let mut forged_claims = claims.clone();
    forged_claims["cognito:groups"] = serde_json::json!(["admins"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(forged_claims.to_string()),
        parts[2]
    );
    let denied = call(forged).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        denied.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_token"
    );
    // The ID token of the same sign-in passes too.
    let id = tokens["id_token"].as_str().unwrap().to_string();
    assert_eq!(call(id).await.status(), StatusCode::OK);
}

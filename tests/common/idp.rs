//! The Cognito-shaped test identity provider (npm `oidc-provider`, tests/support/idp.mjs)
//! as a child process, and a browser-like walk through its login form with a plain HTTP
//! client. Include it with `#[path = "common/idp.rs"] mod idp;` beside `mod common;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};

pub const POOL: &str = "eu-central-1_TestPool1";
pub const PASSWORD: &str = "Passw0rd!";
/// base64 of 32 bytes: the session secret test gateways use.
pub const SESSION_SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// `node tests/support/idp.mjs`, stopped by its PID when dropped.
pub struct Idp {
    pub port: u16,
    pub issuer: String,
    child: Child,
}

impl Idp {
    /// Starts the provider on a free port (or `port`), registering the gateways' callback and
    /// signed-out addresses (`http://127.0.0.1:{gw}/oauth2/callback`, `.../signed_out`).
    pub fn start(gateway_ports: &[u16]) -> Idp {
        Self::start_on(0, gateway_ports)
    }

    pub fn start_on(port: u16, gateway_ports: &[u16]) -> Idp {
        Self::start_full(port, gateway_ports, &[])
    }

    /// `start` with more command-line options for idp.mjs (`--advertise-algs ...`).
    pub fn start_with(gateway_ports: &[u16], args: &[&str]) -> Idp {
        Self::start_full(0, gateway_ports, args)
    }

    fn start_full(port: u16, gateway_ports: &[u16], args: &[&str]) -> Idp {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut cmd = Command::new("node");
        cmd.arg(format!("{root}/tests/support/idp.mjs"))
            .args(["--port", &port.to_string(), "--pool", POOL])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for gw in gateway_ports {
            cmd.args([
                "--redirect-uri",
                &format!("http://127.0.0.1:{gw}/oauth2/callback"),
            ]);
            cmd.args([
                "--logout-uri",
                &format!("http://127.0.0.1:{gw}/oauth2/signed_out"),
            ]);
        }
        let mut child = cmd
            .spawn()
            .expect("start node tests/support/idp.mjs (run `npm ci --prefix tests/support` first)");
        let stdout = child.stdout.take().expect("idp stdout");
        // Read the first line on a thread so a provider that never gets ready fails the test
        // instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the test provider did not print its port within 20 s");
            }
        };
        let info: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("the idp printed {line:?} instead of its port: {e}"));
        Idp {
            port: info["port"].as_u64().expect("port") as u16,
            issuer: info["issuer"].as_str().expect("issuer").to_string(),
            child,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `[provider]` section for a gateway signing in here.
    pub fn provider_toml(&self, client: &str) -> String {
        let secret = match client {
            "post-client" => "post-secret",
            _ => "basic-secret",
        };
        let auth = match client {
            "post-client" => "client_secret_post",
            _ => "client_secret_basic",
        };
        format!(
            "[provider]\nkind = \"cognito\"\nuser_pool_id = \"{POOL}\"\nissuer_url = \"{iss}\"\ndomain = \"{iss}\"\n\
             client_id = \"{client}\"\nclient_secret = \"{secret}\"\nclient_auth = \"{auth}\"\n",
            iss = self.issuer
        )
    }

    /// A gateway config: listening on `port` (also its public URL), signing in here as
    /// `basic-client`, one protected route `/` to `upstream`. `session` adds lines to
    /// `[session]`; `extra` appends whole sections (`[access]`, more routes...).
    pub fn gateway_config(&self, port: u16, upstream: &str, session: &str, extra: &str) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n{provider}timeout = \"2s\"\n\n\
             [session]\nsecret = \"{SESSION_SECRET}\"\n{session}\n\n\
             [[routes]]\npath_prefix = \"/\"\nupstream = \"{upstream}\"\n\n\
             [logging]\nformat = \"json\"\nlevel = \"info\"\n\n{extra}\n",
            provider = self.provider_toml("basic-client"),
        )
    }

    /// POST to the control API (`/__test/...`).
    pub async fn control(&self, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let c = Client::new();
        let mut req = c.post(format!("{}/__test/{path}", self.base()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("idp control call");
        assert!(
            resp.status().is_success(),
            "idp control {path}: {}",
            resp.status()
        );
        resp.json().await.unwrap_or(serde_json::Value::Null)
    }

    pub async fn stats(&self) -> serde_json::Value {
        Client::new()
            .get(format!("{}/__test/stats", self.base()))
            .send()
            .await
            .expect("idp stats")
            .json()
            .await
            .expect("stats json")
    }

    /// Stops (`STOP`) or resumes (`CONT`) the process: stopped, it accepts connections (the
    /// kernel does) and answers nothing, like a provider behind a network fault.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A browser stand-in: a cookie jar, redirects followed by hand so each hop can be checked.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn resolve(base: &reqwest::Url, location: &str) -> String {
    base.join(location).expect("a valid Location").to_string()
}

/// GETs `url` and follows redirects until an answer that is not a redirect, or until the
/// next hop would go to a URL starting with `stop_at`. Returns the last response and the
/// URLs visited.
pub async fn follow(client: &Client, url: &str, stop_at: Option<&str>) -> (Response, Vec<String>) {
    let mut url = url.to_string();
    let mut trail = vec![url.clone()];
    for _ in 0..20 {
        let resp = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        if !resp.status().is_redirection() {
            return (resp, trail);
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_else(|| panic!("redirect without Location from {url}"));
        let next = resolve(resp.url(), location);
        if stop_at.is_some_and(|s| next.starts_with(s)) {
            trail.push(next);
            return (resp, trail);
        }
        url = next;
        trail.push(url.clone());
    }
    panic!("too many redirects: {trail:#?}");
}

/// The login form on `page`: where it posts and every field it carries, as a browser would
/// send it (hidden fields included), with the user name and password filled in.
pub async fn login_form(
    page: Response,
    user: &str,
    password: &str,
) -> (String, Vec<(String, String)>) {
    let page_url = page.url().clone();
    let html = page.text().await.expect("the login page");
    let form = html
        .split("<form")
        .nth(1)
        .and_then(|f| f.split("</form>").next())
        .unwrap_or_else(|| panic!("no login form on {page_url}:\n{html}"));
    let action = attr(form, "action").expect("the form's action");
    let mut fields: Vec<(String, String)> = form
        .split("<input")
        .skip(1)
        .filter(|input| attr(input, "type").as_deref() == Some("hidden"))
        .map(|input| {
            (
                attr(input, "name").expect("an input name"),
                attr(input, "value").unwrap_or_default(),
            )
        })
        .collect();
    fields.push(("username".into(), user.into()));
    fields.push(("password".into(), password.into()));
    (resolve(&page_url, &action), fields)
}

/// The value of `name="..."` in a tag's text, HTML-unescaped.
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// Fills the provider's login form on `page` (a 200 login page) and submits it; returns the
/// provider's answer (usually a redirect toward the gateway's callback).
pub async fn submit_login(client: &Client, page: Response, user: &str, password: &str) -> Response {
    let (action, fields) = login_form(page, user, password).await;
    client
        .post(action)
        .form(&fields)
        .send()
        .await
        .expect("submit the login form")
}

/// The token set for `user`, got as an API client's own login would: a code flow straight
/// against the provider at `issuer` with a PKCE verifier of our own, redeemed with
/// `client_id`/`client_secret` (client_secret_basic). `redirect_uri` must be registered.
pub async fn tokens_by_code_flow(
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
    user: &str,
) -> serde_json::Value {
    use base64::Engine;
    let verifier = "api-client-verifier-0123456789-abcdefghijklmnopq";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let mut authorize =
        reqwest::Url::parse(&format!("{issuer}/oauth2/authorize")).expect("issuer URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid email profile")
        .append_pair("state", "api-client-state")
        .append_pair("nonce", "api-client-nonce")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let b = browser();
    let (login, _) = follow(&b, authorize.as_str(), None).await;
    let answer = submit_login(&b, login, user, PASSWORD).await;
    let next = resolve(
        answer.url(),
        answer.headers()["location"].to_str().expect("location"),
    );
    let (_, trail) = follow(&b, &next, Some(redirect_uri)).await;
    let callback = reqwest::Url::parse(trail.last().expect("a callback")).expect("callback URL");
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    Client::new()
        .post(format!("{issuer}/oauth2/token"))
        .basic_auth(client_id, Some(client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("the token endpoint")
        .json()
        .await
        .expect("a token response")
}

/// Opens `start_url` at the gateway, signs in at the provider as `user`, and follows the
/// redirects back through the callback. Returns the final answer (from the upstream, or a
/// gateway page) and every URL on the way.
pub async fn sign_in(client: &Client, start_url: &str, user: &str) -> (Response, Vec<String>) {
    sign_in_with(client, start_url, user, PASSWORD).await
}

/// `sign_in` with `password` (a user of a moto pool, `--moto-pool`).
pub async fn sign_in_with(
    client: &Client,
    start_url: &str,
    user: &str,
    password: &str,
) -> (Response, Vec<String>) {
    let (login, mut trail) = follow(client, start_url, None).await;
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "expected the login page, trail: {trail:#?}"
    );
    let answer = submit_login(client, login, user, password).await;
    assert!(
        answer.status().is_redirection(),
        "login failed: {}",
        answer.status()
    );
    let next = resolve(
        answer.url(),
        answer.headers()["location"].to_str().expect("location"),
    );
    let (last, rest) = follow(client, &next, None).await;
    trail.extend(rest);
    (last, trail)
}

/// Like `sign_in`, but stops at the gateway's callback and returns its URL unvisited.
pub async fn sign_in_until_callback(
    client: &Client,
    start_url: &str,
    user: &str,
    callback_prefix: &str,
) -> String {
    let (login, trail) = follow(client, start_url, None).await;
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "expected the login page, trail: {trail:#?}"
    );
    let answer = submit_login(client, login, user, PASSWORD).await;
    let next = resolve(
        answer.url(),
        answer.headers()["location"].to_str().expect("location"),
    );
    let (_, trail) = follow(client, &next, Some(callback_prefix)).await;
    trail.last().cloned().expect("callback URL")
}

/// The `Cookie` header a browser sends for `path` on 127.0.0.1. Cookies are not bound to a
/// port, so an echo server on another port catches exactly what the gateway would get.
pub async fn cookies_sent_to(client: &Client, path: &str) -> String {
    let catcher = super::common::Upstream::echo();
    let _ = client
        .get(format!("{}{path}", catcher.url))
        .send()
        .await
        .expect("catcher");
    catcher
        .last_request()
        .and_then(|r| r.header("cookie").map(str::to_string))
        .unwrap_or_default()
}

/// The value of the browser's `_ssogate` session cookie.
pub async fn session_cookie(client: &Client) -> String {
    let cookies = cookies_sent_to(client, "/").await;
    cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("_ssogate="))
        .unwrap_or_else(|| panic!("no _ssogate cookie in {cookies:?}"))
        .to_string()
}

/// Follows a provider authorize URL to its login form, signs in as `user`, and follows the
/// redirects that come back. Returns the last answer and the URLs visited.
pub async fn log_in_at(
    client: &Client,
    authorize_url: &str,
    user: &str,
) -> (Response, Vec<String>) {
    let (login, _) = follow(client, authorize_url, None).await;
    let answer = submit_login(client, login, user, PASSWORD).await;
    let next = resolve(
        answer.url(),
        answer.headers()["location"].to_str().expect("location"),
    );
    follow(client, &next, None).await
}

//! The demo's identity provider: a small stand-in for an Amazon Cognito user pool and its
//! hosted UI, with Cognito's paths, parameters, claims and quirks (no `groups` scope,
//! `cognito:groups` absent for a user without groups, no refresh-token rotation, its own
//! `/logout`). Three fixed users, one published password, state in memory. Never used by
//! the gateway's production paths: the gateway talks to it over HTTP like to any provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, PRAGMA,
    SET_COOKIE, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::keys::RsaSigner;
use super::{escape, random_bytes, random_token, unix_now};

/// A person who can sign in to the demo.
#[derive(Debug)]
pub struct DemoUser {
    pub username: &'static str,
    /// Cognito's `sub`: a UUID that never changes.
    pub sub: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

/// Everybody's password. It is printed at start and shown on the sign-in page.
pub const DEMO_PASSWORD: &str = "Passw0rd!";

pub const DEMO_USERS: [DemoUser; 3] = [
    DemoUser {
        username: "alice",
        sub: "3f6b8a52-7c1e-4d0a-9b2f-5e8c1d7a4b60",
        email: "alice@example.com",
        groups: &["admins", "staff"],
    },
    DemoUser {
        username: "bob",
        sub: "8d2e4f71-1a3b-4c5d-8e6f-7a9b0c1d2e3f",
        email: "bob@example.com",
        groups: &["staff"],
    },
    DemoUser {
        username: "carol",
        sub: "c5a7e9b1-2d4f-4a6c-8e0a-1b3d5f7a9c2e",
        email: "carol@example.com",
        groups: &[],
    },
];

/// Cognito's defaults: codes live 5 minutes, tokens 1 hour, the hosted-UI session 1 hour.
const CODE_TTL: Duration = Duration::from_secs(300);
const TOKEN_TTL_SECS: u64 = 3600;
const HOSTED_SESSION_TTL: Duration = Duration::from_secs(3600);
/// The hosted UI's session cookie (scoped to the pool's path, so the gateway on the same
/// host never sees it).
const SESSION_COOKIE: &str = "cognito";
/// Scopes a Cognito app client can be allowed; anything else is `invalid_scope`.
const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "email",
    "phone",
    "profile",
    "aws.cognito.signin.user.admin",
];
const MAX_FORM: usize = 64 * 1024;

/// The one app client registered with the pool: the gateway.
#[derive(Debug, Clone)]
pub struct AppClient {
    pub client_id: String,
    pub client_secret: String,
    /// The only accepted `redirect_uri` (Cognito's "Allowed callback URL").
    pub redirect_uri: String,
    /// `logout_uri` must start with this (Cognito's "Allowed sign-out URLs"); ends in `/`.
    pub sign_out_prefix: String,
}

/// The provider, cheap to clone; every clone shares the same state.
#[derive(Clone)]
pub struct DemoProvider {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    /// The issuer's path (`/eu-central-1_Demo1234`): every endpoint lives below it.
    base_path: String,
    client: AppClient,
    signer: RsaSigner,
    grants: Mutex<Grants>,
}

/// What the provider remembers. Never locked across an `.await`.
#[derive(Default)]
struct Grants {
    codes: HashMap<String, AuthCode>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    /// Issued access tokens (the whole JWT) -> who and from which refresh token.
    access_tokens: HashMap<String, AccessGrant>,
    /// Hosted-UI sessions by cookie value.
    sessions: HashMap<String, HostedSession>,
}

struct AuthCode {
    username: &'static str,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    scope: String,
    auth_time: u64,
    expires: Instant,
}

struct RefreshGrant {
    username: &'static str,
    scope: String,
    auth_time: u64,
    origin_jti: String,
    revoked: bool,
}

struct AccessGrant {
    username: &'static str,
    exp: u64,
    refresh_token: String,
}

struct HostedSession {
    username: &'static str,
    auth_time: u64,
    expires: Instant,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
struct AuthorizeRequest {
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    /// Every parameter as received, to carry through the sign-in form.
    params: Vec<(String, String)>,
}

/// Why an authorization request is refused.
enum AuthorizeRefusal {
    /// The client or redirect URI cannot be trusted: an error page, never a redirect.
    Page(String),
    /// Back to the (verified) redirect URI with `error`, as Cognito does.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// An OAuth error answer from the token, userinfo or revocation endpoint.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
    fn bad(error: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }
    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }
    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::bad("invalid_grant", description)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = json_response(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        match self.status {
            StatusCode::UNAUTHORIZED if self.error == "invalid_token" => {
                resp.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            // RFC 6749 5.2: a 401 invalid_client names the scheme the client should use.
            StatusCode::UNAUTHORIZED => {
                resp.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"ssogate demo provider\""),
                );
            }
            _ => {}
        }
        resp
    }
}

impl DemoProvider {
    /// A provider whose issuer is `issuer` (`http://127.0.0.1:<port>/<region>_<pool>`).
    pub fn new(issuer: &str, client: AppClient, signer: RsaSigner) -> Result<Self, String> {
        let url = url::Url::parse(issuer).map_err(|e| format!("issuer {issuer:?}: {e}"))?;
        let base_path = url.path().trim_end_matches('/').to_string();
        Ok(DemoProvider {
            inner: Arc::new(Inner {
                issuer: issuer.trim_end_matches('/').to_string(),
                base_path,
                client,
                signer,
                grants: Mutex::new(Grants::default()),
            }),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Answers one request. Bodies are read up to 64 KiB.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(endpoint) = req
            .uri()
            .path()
            .strip_prefix(self.inner.base_path.as_str())
            .map(str::to_string)
        else {
            return not_found();
        };
        let method = req.method().clone();
        let allow = |allowed: &'static str| method_not_allowed(allowed);
        match endpoint.as_str() {
            "/.well-known/openid-configuration" => match method {
                Method::GET | Method::HEAD => json_response(StatusCode::OK, &self.discovery()),
                _ => allow("GET, HEAD"),
            },
            "/.well-known/jwks.json" => match method {
                Method::GET | Method::HEAD => {
                    let mut resp =
                        Response::new(Full::new(Bytes::from(self.inner.signer.jwks_json())));
                    resp.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    resp
                }
                _ => allow("GET, HEAD"),
            },
            "/oauth2/authorize" => match method {
                Method::GET => {
                    let params = parse_params(req.uri().query().unwrap_or(""));
                    self.authorize(&params, req.headers())
                }
                _ => allow("GET"),
            },
            "/login" => match method {
                Method::POST => match read_form(req).await {
                    Ok(form) => self.login(&form),
                    Err(e) => error_page(StatusCode::BAD_REQUEST, &e),
                },
                _ => allow("POST"),
            },
            "/oauth2/token" => match method {
                Method::POST => {
                    let headers = req.headers().clone();
                    let answer = match read_form(req).await {
                        Ok(form) => self.token(&headers, &form),
                        Err(e) => Err(OAuthError::bad("invalid_request", e)),
                    };
                    answer.unwrap_or_else(OAuthError::into_response)
                }
                _ => allow("POST"),
            },
            "/oauth2/userInfo" => match method {
                Method::GET | Method::POST => self
                    .userinfo(req.headers())
                    .unwrap_or_else(OAuthError::into_response),
                _ => allow("GET, POST"),
            },
            "/oauth2/revoke" => match method {
                Method::POST => {
                    let headers = req.headers().clone();
                    let answer = match read_form(req).await {
                        Ok(form) => self.revoke(&headers, &form),
                        Err(e) => Err(OAuthError::bad("invalid_request", e)),
                    };
                    answer.unwrap_or_else(OAuthError::into_response)
                }
                _ => allow("POST"),
            },
            "/logout" => match method {
                Method::GET => {
                    let params = parse_params(req.uri().query().unwrap_or(""));
                    self.logout(&params, req.headers())
                }
                _ => allow("GET"),
            },
            _ => not_found(),
        }
    }

    fn grants(&self) -> MutexGuard<'_, Grants> {
        // A panic while holding the lock leaves plain maps behind: still usable.
        self.inner
            .grants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cognito's discovery document. Like documents fetched before 2024, it has no
    /// `end_session_endpoint`: sign-out goes through the hosted UI's `/logout`.
    fn discovery(&self) -> Value {
        let iss = &self.inner.issuer;
        json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oauth2/authorize"),
            "token_endpoint": format!("{iss}/oauth2/token"),
            "userinfo_endpoint": format!("{iss}/oauth2/userInfo"),
            "revocation_endpoint": format!("{iss}/oauth2/revoke"),
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "scopes_supported": KNOWN_SCOPES,
            "subject_types_supported": ["public"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }

    // ---- authorize and the hosted sign-in page ----------------------------------------

    fn check_authorize(&self, p: &Params) -> Result<AuthorizeRequest, AuthorizeRefusal> {
        let client = &self.inner.client;
        if let Some(name) = &p.duplicate {
            return Err(AuthorizeRefusal::Page(format!(
                "The parameter {name} appears more than once."
            )));
        }
        match p.get("client_id") {
            Some(id) if id == client.client_id => {}
            Some(_) => return Err(AuthorizeRefusal::Page("Unknown client_id.".into())),
            None => return Err(AuthorizeRefusal::Page("client_id is missing.".into())),
        }
        let redirect_uri = match p.get("redirect_uri") {
            Some(uri) if uri == client.redirect_uri => uri.to_string(),
            // Cognito shows "redirect_mismatch" and never redirects to an unregistered URL.
            Some(uri) => {
                return Err(AuthorizeRefusal::Page(format!(
                    "redirect_mismatch: {uri} is not an allowed callback URL of this app client (allowed: {}).",
                    client.redirect_uri
                )))
            }
            None => return Err(AuthorizeRefusal::Page("redirect_uri is missing.".into())),
        };
        let state = p.get("state").map(str::to_string);
        let refuse = |error: &'static str, description: String| AuthorizeRefusal::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error,
            description,
        };
        if p.get("response_type") != Some("code") {
            return Err(refuse(
                "unsupported_response_type",
                "response_type must be code".into(),
            ));
        }
        let scope = p.get("scope").unwrap_or("");
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(s)) {
            // This is where `scope=groups` fails against a real pool.
            return Err(refuse(
                "invalid_scope",
                format!("{bad} is not a scope of this app client"),
            ));
        }
        if !scopes.contains(&"openid") {
            return Err(refuse(
                "invalid_scope",
                "the scope must include openid".into(),
            ));
        }
        if p.get("code_challenge_method") != Some("S256") {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256".into(),
            ));
        }
        let code_challenge = match p.get("code_challenge") {
            Some(c) if (43..=128).contains(&c.len()) => c.to_string(),
            _ => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge is missing or malformed".into(),
                ))
            }
        };
        Ok(AuthorizeRequest {
            redirect_uri,
            scope: scopes.join(" "),
            state,
            nonce: p.get("nonce").map(str::to_string),
            code_challenge,
            params: p.pairs.clone(),
        })
    }

    fn authorize(&self, params: &Params, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let request = match self.check_authorize(params) {
            Ok(r) => r,
            Err(refusal) => return refusal_response(refusal),
        };
        // Signed in to the hosted UI already: straight back with a code, no form.
        if let Some(session) = self.hosted_session(headers) {
            return self.code_redirect(&request, session.0, session.1, None);
        }
        self.login_page(&request, StatusCode::OK, None, "")
    }

    fn login(&self, form: &Params) -> Response<Full<Bytes>> {
        let request = match self.check_authorize(&form.without(&["username", "password"])) {
            Ok(r) => r,
            Err(refusal) => return refusal_response(refusal),
        };
        let typed = form.get("username").unwrap_or("").trim();
        let password = form.get("password").unwrap_or("");
        let user = find_user(typed);
        let password_ok = constant_time_eq(password.as_bytes(), DEMO_PASSWORD.as_bytes());
        let Some(user) = user.filter(|_| password_ok) else {
            return self.login_page(
                &request,
                StatusCode::OK,
                Some("Incorrect username or password."),
                typed,
            );
        };
        let auth_time = unix_now();
        let cookie = random_token(32);
        self.grants().sessions.insert(
            cookie.clone(),
            HostedSession {
                username: user.username,
                auth_time,
                expires: Instant::now() + HOSTED_SESSION_TTL,
            },
        );
        let set_cookie = format!(
            "{SESSION_COOKIE}={cookie}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax",
            self.cookie_path(),
            HOSTED_SESSION_TTL.as_secs()
        );
        self.code_redirect(&request, user.username, auth_time, Some(set_cookie))
    }

    fn cookie_path(&self) -> &str {
        if self.inner.base_path.is_empty() {
            "/"
        } else {
            &self.inner.base_path
        }
    }

    /// The signed-in user and sign-in time of the hosted-UI session cookie, if still valid.
    fn hosted_session(&self, headers: &HeaderMap) -> Option<(&'static str, u64)> {
        let value = cookie_value(headers, SESSION_COOKIE)?;
        let mut grants = self.grants();
        let now = Instant::now();
        grants.sessions.retain(|_, s| s.expires > now);
        grants
            .sessions
            .get(value)
            .map(|s| (s.username, s.auth_time))
    }

    fn code_redirect(
        &self,
        request: &AuthorizeRequest,
        username: &'static str,
        auth_time: u64,
        set_cookie: Option<String>,
    ) -> Response<Full<Bytes>> {
        let code = random_token(24);
        {
            let mut grants = self.grants();
            let now = Instant::now();
            grants.codes.retain(|_, c| c.expires > now);
            grants.codes.insert(
                code.clone(),
                AuthCode {
                    username,
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    nonce: request.nonce.clone(),
                    scope: request.scope.clone(),
                    auth_time,
                    expires: now + CODE_TTL,
                },
            );
        }
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        let mut resp = redirect(&with_query(&request.redirect_uri, &pairs));
        if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().append(SET_COOKIE, c);
        }
        resp
    }

    fn login_page(
        &self,
        request: &AuthorizeRequest,
        status: StatusCode,
        error: Option<&str>,
        typed_username: &str,
    ) -> Response<Full<Bytes>> {
        let hidden: String = request
            .params
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                    escape(k),
                    escape(v)
                )
            })
            .collect();
        let users: String = DEMO_USERS
            .iter()
            .map(|u| {
                let groups = if u.groups.is_empty() {
                    "<em>no group</em>".to_string()
                } else {
                    escape(&u.groups.join(", "))
                };
                format!(
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
                    escape(u.username),
                    escape(u.email),
                    groups
                )
            })
            .collect();
        let error = error
            .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
            .unwrap_or_default();
        let body = format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in: ssogate demo provider</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 30rem; margin: 3rem auto; padding: 0 1rem; color: #1d2330; }}
.box {{ border: 1px solid #ccd; border-radius: 8px; padding: 1.5rem; }}
label {{ display: block; margin-top: .8rem; }}
input[type=text], input[type=password] {{ width: 100%; padding: .45rem; box-sizing: border-box; }}
button {{ margin-top: 1.2rem; width: 100%; padding: .6rem; background: #0972d3; color: #fff; border: 0; border-radius: 4px; font-size: 1rem; }}
.error {{ color: #b3261e; background: #fdecea; padding: .5rem; border-radius: 4px; }}
table {{ border-collapse: collapse; width: 100%; margin-top: .5rem; }}
td, th {{ text-align: left; padding: .25rem .4rem; border-bottom: 1px solid #eee; }}
.note {{ color: #555; font-size: .9rem; }}
</style></head>
<body>
<div class="box">
<h1>Sign in</h1>
<p class="note">ssogate demo provider, shaped like an Amazon Cognito user pool's hosted UI.</p>
{error}<form method="post" action="{action}">
{hidden}<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autofocus value="{typed}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit">Sign in</button>
</form>
</div>
<h2>Demo users</h2>
<p>Every user's password is <code>{password}</code>.</p>
<table><tr><th>username</th><th>email</th><th>groups</th></tr>
{users}</table>
</body></html>
"#,
            action = escape(&format!("{}/login", self.inner.base_path)),
            typed = escape(typed_username),
            password = escape(DEMO_PASSWORD),
        );
        let mut resp = html_response(status, body);
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }

    /// Cognito's `/logout`: `client_id` + an allowed `logout_uri`; ends the hosted-UI session.
    fn logout(&self, params: &Params, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let client = &self.inner.client;
        if params.get("client_id") != Some(client.client_id.as_str()) {
            return error_page(StatusCode::BAD_REQUEST, "client_id is missing or unknown.");
        }
        let logout_uri = match params.get("logout_uri") {
            Some(uri) if uri.starts_with(&client.sign_out_prefix) => uri.to_string(),
            Some(uri) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    &format!(
                    "{uri} is not an allowed sign-out URL of this app client (they start with {}).",
                    client.sign_out_prefix
                ),
                )
            }
            None => return error_page(StatusCode::BAD_REQUEST, "logout_uri is missing."),
        };
        if let Some(value) = cookie_value(headers, SESSION_COOKIE) {
            self.grants().sessions.remove(value);
        }
        let mut resp = redirect(&logout_uri);
        let expired = format!(
            "{SESSION_COOKIE}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax",
            self.cookie_path()
        );
        if let Ok(v) = HeaderValue::from_str(&expired) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
        resp
    }
}

/// A user by username or email, case-insensitive (Cognito's default for usernames).
pub fn find_user(name: &str) -> Option<&'static DemoUser> {
    DEMO_USERS
        .iter()
        .find(|u| u.username.eq_ignore_ascii_case(name) || u.email.eq_ignore_ascii_case(name))
}

// ---- small HTTP helpers -----------------------------------------------------------------

/// Query or form parameters, with the first repeated name remembered (OAuth forbids
/// repeating a parameter).
#[derive(Debug, Default, Clone)]
struct Params {
    pairs: Vec<(String, String)>,
    duplicate: Option<String>,
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn without(&self, names: &[&str]) -> Params {
        Params {
            pairs: self
                .pairs
                .iter()
                .filter(|(k, _)| !names.contains(&k.as_str()))
                .cloned()
                .collect(),
            duplicate: self.duplicate.clone(),
        }
    }
}

fn parse_params(text: &str) -> Params {
    let mut params = Params::default();
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        if params.duplicate.is_none() && params.get(&k).is_some() {
            params.duplicate = Some(k.to_string());
        }
        params.pairs.push((k.into_owned(), v.into_owned()));
    }
    params
}

async fn read_form<B>(req: Request<B>) -> Result<Params, String>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err("send the parameters as application/x-www-form-urlencoded".into());
    }
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(req.into_body(), MAX_FORM)
        .collect()
        .await
        .map_err(|e| format!("cannot read the request body: {e}"))?
        .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|_| "the form is not UTF-8".to_string())?;
    Ok(parse_params(text))
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 2.3.1).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let text = value.to_str().ok()?;
    let (scheme, creds) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(creds.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn pkce_s256(verifier: &str) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// OIDC's `at_hash`: the left half of the access token's SHA-256, base64url.
fn at_hash(access_token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    B64.encode(&digest.as_ref()[..16])
}

/// A random UUID-shaped id (`jti`), as Cognito's.
fn uuid_like() -> String {
    let hex: String = random_bytes(16)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = base.to_string();
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.extend_pairs(pairs);
    url.push(if base.contains('?') { '&' } else { '?' });
    url.push_str(&ser.finish());
    url
}

fn refusal_response(refusal: AuthorizeRefusal) -> Response<Full<Bytes>> {
    match refusal {
        AuthorizeRefusal::Page(message) => error_page(StatusCode::BAD_REQUEST, &message),
        AuthorizeRefusal::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => {
            let mut pairs = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = &state {
                pairs.push(("state", s));
            }
            redirect(&with_query(&redirect_uri, &pairs))
        }
    }
}

fn redirect(location: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(LOCATION, v);
        }
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "The redirect URL is not valid."),
    }
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn html_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

fn error_page(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    html_response(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error: ssogate demo provider</title></head>\
             <body style=\"font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto\">\
             <h1>An error was encountered with the requested page.</h1><p>{}</p></body></html>\n",
            escape(message)
        ),
    )
}

fn not_found() -> Response<Full<Bytes>> {
    error_page(StatusCode::NOT_FOUND, "Not found.")
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = error_page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

#[path = "provider_tokens.rs"]
mod tokens;

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;

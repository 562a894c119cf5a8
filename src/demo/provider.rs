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

    // ---- token endpoint -----------------------------------------------------------------

    fn token(
        &self,
        headers: &HeaderMap,
        form: &Params,
    ) -> Result<Response<Full<Bytes>>, OAuthError> {
        if let Some(name) = &form.duplicate {
            return Err(OAuthError::bad(
                "invalid_request",
                format!("{name} appears more than once"),
            ));
        }
        self.authenticate_client(headers, form)?;
        match form.get("grant_type") {
            Some("authorization_code") => self.code_grant(form),
            Some("refresh_token") => self.refresh_grant(form),
            Some(other) => Err(OAuthError::bad(
                "unsupported_grant_type",
                format!("{other} is not supported"),
            )),
            None => Err(OAuthError::bad("invalid_request", "grant_type is missing")),
        }
    }

    /// `client_secret_basic` or `client_secret_post` (exactly one of them).
    fn authenticate_client(&self, headers: &HeaderMap, form: &Params) -> Result<(), OAuthError> {
        let client = &self.inner.client;
        let basic = match headers.get(AUTHORIZATION) {
            Some(value) => Some(parse_basic(value).ok_or_else(|| {
                OAuthError::invalid_client(
                    "the Authorization header is not valid Basic credentials",
                )
            })?),
            None => None,
        };
        let (id, secret) = match (basic, form.get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::bad(
                    "invalid_request",
                    "use one client authentication method, not Basic and client_secret together",
                ))
            }
            (Some((id, secret)), None) => {
                if form.get("client_id").is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_client(
                        "client_id in the form differs from the Basic credentials",
                    ));
                }
                (id, secret)
            }
            (None, Some(secret)) => (
                form.get("client_id").unwrap_or("").to_string(),
                secret.to_string(),
            ),
            (None, None) => {
                return Err(OAuthError::invalid_client(
                    "this app client has a secret: authenticate with client_secret_basic or client_secret_post",
                ))
            }
        };
        if id != client.client_id {
            return Err(OAuthError::invalid_client("unknown client"));
        }
        if !constant_time_eq(secret.as_bytes(), client.client_secret.as_bytes()) {
            return Err(OAuthError::invalid_client("wrong client secret"));
        }
        Ok(())
    }

    fn code_grant(&self, form: &Params) -> Result<Response<Full<Bytes>>, OAuthError> {
        let code = form
            .get("code")
            .ok_or_else(|| OAuthError::bad("invalid_request", "code is missing"))?;
        // Removed on first use, whatever happens next: a code never works twice.
        let grant = self
            .grants()
            .codes
            .remove(code)
            .ok_or_else(|| OAuthError::invalid_grant("the code is unknown or already used"))?;
        if grant.expires <= Instant::now() {
            return Err(OAuthError::invalid_grant("the code has expired"));
        }
        if form.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        let verifier = form.get("code_verifier").unwrap_or("");
        if !constant_time_eq(
            pkce_s256(verifier).as_bytes(),
            grant.code_challenge.as_bytes(),
        ) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let user = find_user(grant.username)
            .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
        let refresh_token = random_token(48);
        let origin_jti = uuid_like();
        let tokens = self.issue(
            user,
            &grant.scope,
            grant.auth_time,
            grant.nonce.as_deref(),
            &origin_jti,
        )?;
        {
            let mut grants = self.grants();
            grants.refresh_tokens.insert(
                refresh_token.clone(),
                RefreshGrant {
                    username: user.username,
                    scope: grant.scope.clone(),
                    auth_time: grant.auth_time,
                    origin_jti,
                    revoked: false,
                },
            );
            remember_access(&mut grants, &tokens, user.username, &refresh_token);
        }
        Ok(token_response(&tokens, Some(&refresh_token)))
    }

    /// New ID and access tokens, groups re-read; the same refresh token stays valid and
    /// none is returned (Cognito without refresh-token rotation).
    fn refresh_grant(&self, form: &Params) -> Result<Response<Full<Bytes>>, OAuthError> {
        let token = form
            .get("refresh_token")
            .ok_or_else(|| OAuthError::bad("invalid_request", "refresh_token is missing"))?;
        let (username, scope, auth_time, origin_jti) = {
            let grants = self.grants();
            match grants.refresh_tokens.get(token) {
                Some(g) if !g.revoked => (
                    g.username,
                    g.scope.clone(),
                    g.auth_time,
                    g.origin_jti.clone(),
                ),
                _ => return Err(OAuthError::invalid_grant("Invalid Refresh Token")),
            }
        };
        let user =
            find_user(username).ok_or_else(|| OAuthError::invalid_grant("User does not exist."))?;
        let tokens = self.issue(user, &scope, auth_time, None, &origin_jti)?;
        remember_access(&mut self.grants(), &tokens, user.username, token);
        Ok(token_response(&tokens, None))
    }

    /// Signs an ID token and an access token with Cognito's claims.
    fn issue(
        &self,
        user: &DemoUser,
        scope: &str,
        auth_time: u64,
        nonce: Option<&str>,
        origin_jti: &str,
    ) -> Result<IssuedTokens, OAuthError> {
        let iat = unix_now();
        let exp = iat + TOKEN_TTL_SECS;
        let iss = &self.inner.issuer;
        let client_id = &self.inner.client.client_id;
        let sign = |claims: &Value| {
            self.inner
                .signer
                .sign(claims)
                .map_err(|e| OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e))
        };

        let mut access = json!({
            "sub": user.sub,
            "iss": iss,
            "version": 2,
            "client_id": client_id,
            "origin_jti": origin_jti,
            "token_use": "access",
            "scope": scope,
            "auth_time": auth_time,
            "exp": exp,
            "iat": iat,
            "jti": uuid_like(),
            "username": user.username,
        });
        if !user.groups.is_empty() {
            access["cognito:groups"] = json!(user.groups);
        }
        let access_token = sign(&access)?;

        let mut id = json!({
            "sub": user.sub,
            "aud": client_id,
            "iss": iss,
            "token_use": "id",
            "auth_time": auth_time,
            "iat": iat,
            "exp": exp,
            "jti": uuid_like(),
            "origin_jti": origin_jti,
            "at_hash": at_hash(&access_token),
            "cognito:username": user.username,
            "email": user.email,
            "email_verified": true,
        });
        // Cognito leaves the claim out (not `[]`) for a user in no group.
        if !user.groups.is_empty() {
            id["cognito:groups"] = json!(user.groups);
        }
        if let Some(nonce) = nonce {
            id["nonce"] = json!(nonce);
        }
        let id_token = sign(&id)?;
        Ok(IssuedTokens {
            id_token,
            access_token,
            exp,
        })
    }

    // ---- userInfo, revoke, logout -------------------------------------------------------

    fn userinfo(&self, headers: &HeaderMap) -> Result<Response<Full<Bytes>>, OAuthError> {
        let invalid = |d: &str| OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", d);
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| invalid("send the access token as Authorization: Bearer"))?;
        let username = {
            let grants = self.grants();
            let grant = grants
                .access_tokens
                .get(token)
                .ok_or_else(|| invalid("Invalid access token"))?;
            let revoked = grants
                .refresh_tokens
                .get(&grant.refresh_token)
                .is_none_or(|r| r.revoked);
            if grant.exp <= unix_now() || revoked {
                return Err(invalid("Access token has expired or was revoked"));
            }
            grant.username
        };
        let user = find_user(username).ok_or_else(|| invalid("User does not exist."))?;
        // Cognito's userInfo sends email_verified as a string.
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "sub": user.sub,
                "email_verified": "true",
                "email": user.email,
                "username": user.username,
            }),
        ))
    }

    /// Revokes a refresh token and every access token issued from it.
    fn revoke(
        &self,
        headers: &HeaderMap,
        form: &Params,
    ) -> Result<Response<Full<Bytes>>, OAuthError> {
        self.authenticate_client(headers, form)?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::bad("invalid_request", "token is missing"))?;
        let mut grants = self.grants();
        if grants.access_tokens.contains_key(token) {
            // Cognito revokes refresh tokens only.
            return Err(OAuthError::bad(
                "unsupported_token_type",
                "only refresh tokens can be revoked",
            ));
        }
        if let Some(grant) = grants.refresh_tokens.get_mut(token) {
            grant.revoked = true;
            grants.access_tokens.retain(|_, a| a.refresh_token != token);
        }
        // RFC 7009: an unknown token is not an error.
        let mut resp = Response::new(Full::new(Bytes::new()));
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(resp)
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

struct IssuedTokens {
    id_token: String,
    access_token: String,
    exp: u64,
}

fn remember_access(
    grants: &mut Grants,
    tokens: &IssuedTokens,
    username: &'static str,
    refresh: &str,
) {
    let now = unix_now();
    grants.access_tokens.retain(|_, a| a.exp > now);
    grants.access_tokens.insert(
        tokens.access_token.clone(),
        AccessGrant {
            username,
            exp: tokens.exp,
            refresh_token: refresh.to_string(),
        },
    );
}

fn token_response(tokens: &IssuedTokens, refresh_token: Option<&str>) -> Response<Full<Bytes>> {
    let mut body = json!({
        "id_token": tokens.id_token,
        "access_token": tokens.access_token,
        "expires_in": TOKEN_TTL_SECS,
        "token_type": "Bearer",
    });
    if let Some(r) = refresh_token {
        body["refresh_token"] = json!(r);
    }
    let mut resp = json_response(StatusCode::OK, &body);
    resp.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
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

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;

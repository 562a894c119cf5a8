//! The one place where an error becomes an HTTP response, and the gateway's small pages.
//! Browsers get a short HTML page, API clients JSON.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::proxy::{full, Body, ProxyError};

/// Everything a request can fail with, before or while forwarding.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the request path is malformed: {0}")]
    BadPath(crate::policy::PathError),
    #[error("the request names its host twice, differently")]
    AmbiguousHost,
    #[error("the HTTP/1.1 request names no host")]
    MissingHost,
    #[error("{0}")]
    BadHost(crate::policy::HostError),
    #[error("the forward-auth request names two different original URIs")]
    AmbiguousUri,
    #[error("no route for this host and path")]
    NoRoute,
    #[error(transparent)]
    Upstream(#[from] ProxyError),
    #[error("sign-in required")]
    SignInRequired,
    /// A cookie-store session too large for the cookies a browser keeps.
    #[error("the session ({bytes} bytes) is too large for the cookie store")]
    SessionTooLarge { bytes: usize },
    /// A bearer token was sent and refused (RFC 6750's `invalid_token`).
    #[error("the bearer token was refused")]
    InvalidToken,
    /// Signed in at the provider, refused for the email (`identity::email_refusal`).
    #[error("refused for the email: {0:?}")]
    EmailNotVerified(crate::identity::EmailRefusal),
    #[error("{user} is not in a group this route admits")]
    Forbidden { user: String },
    #[error("sign-in is temporarily unavailable: {reason}")]
    SignInUnavailable { reason: String },
    #[error("sessions are temporarily unavailable: {reason}")]
    SessionsUnavailable { reason: String },
    #[error("sign-in failed: {reason}")]
    SignInFailed { reason: String },
    /// The provider refused the gateway's own credentials: the operator's to mend.
    #[error("the identity provider refused this gateway's client credentials: {reason}")]
    ClientRefused { reason: String },
    #[error("the identity provider refused the sign-in: {error}")]
    ProviderRefused {
        error: String,
        description: Option<String>,
    },
    /// Too many sign-in callbacks from one address (`callback_limit`).
    #[error("too many sign-in callbacks from this address")]
    TooManyCallbacks { retry_after_secs: u64 },
    /// `/start?provider=` names no provider of this config.
    #[error("no sign-in provider is called {name:?}")]
    UnknownProvider { name: String },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl From<crate::policy::HostError> for GatewayError {
    fn from(problem: crate::policy::HostError) -> GatewayError {
        use crate::policy::HostError;
        match problem {
            HostError::Two => GatewayError::AmbiguousHost,
            HostError::None => GatewayError::MissingHost,
            other => GatewayError::BadHost(other),
        }
    }
}

impl From<crate::policy::Refusal> for GatewayError {
    fn from(refusal: crate::policy::Refusal) -> GatewayError {
        use crate::policy::Refusal;
        match refusal {
            Refusal::Path(why) => GatewayError::BadPath(why),
            Refusal::Host(why) => why.into(),
            Refusal::NoRoute => GatewayError::NoRoute,
        }
    }
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadPath(_)
            | GatewayError::AmbiguousHost
            | GatewayError::MissingHost
            | GatewayError::BadHost(_)
            | GatewayError::AmbiguousUri
            | GatewayError::UnknownProvider { .. }
            | GatewayError::SignInFailed { .. } => StatusCode::BAD_REQUEST,
            GatewayError::NoRoute | GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::Upstream(ProxyError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Upstream(ProxyError::BodyTooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Upstream(ProxyError::ClientTooSlow) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::Upstream(_) => StatusCode::BAD_GATEWAY,
            GatewayError::SignInRequired | GatewayError::InvalidToken => StatusCode::UNAUTHORIZED,
            GatewayError::SessionTooLarge { .. } | GatewayError::ClientRefused { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            GatewayError::Forbidden { .. }
            | GatewayError::ProviderRefused { .. }
            | GatewayError::EmailNotVerified(_) => StatusCode::FORBIDDEN,
            GatewayError::SignInUnavailable { .. } | GatewayError::SessionsUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::TooManyCallbacks { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// (machine code, title, what the person can do) for pages and JSON.
    fn words(&self) -> (&'static str, &'static str, String) {
        match self {
            GatewayError::BadPath(why) => ("bad_request", "Bad request", format!("The address is malformed: {why}.")),
            GatewayError::AmbiguousHost => ("bad_request", "Bad request", "The request names more than one host (two Host headers, or a Host that differs from the request target). If a proxy in front sends it, check how it sets Host.".into()),
            GatewayError::MissingHost => ("bad_request", "Bad request", "An HTTP/1.1 request must name its host in a Host header.".into()),
            GatewayError::BadHost(why) => ("bad_request", "Bad request", format!("The request's host is not one valid host name: {why}. If a proxy in front sends it, check how it sets Host and X-Forwarded-Host.")),
            GatewayError::AmbiguousUri => ("bad_request", "Bad request", "The header that names the request asked about (server.forward_auth_uri_header) came more than once, with different values: the proxy in front should overwrite what the client sent, not add to it.".into()),
            GatewayError::NoRoute => ("not_found", "Not found", "Nothing is served at this address.".into()),
            GatewayError::NotFound => ("not_found", "Not found", "Nothing is served at this address.".into()),
            GatewayError::UnknownProvider { name } => ("unknown_provider", "Unknown sign-in provider", format!("This gateway has no sign-in provider called \"{}\". Go back and choose one of the buttons on the sign-in page.", crate::telemetry::Clip(name))),
            GatewayError::Upstream(ProxyError::ClientTooSlow) => (
                "request_timeout",
                "The request took too long to arrive",
                "What you sent stopped, or came too slowly. Try again on a better connection.".into(),
            ),
            GatewayError::Upstream(ProxyError::BodyTooLarge(_)) => (
                "body_too_large",
                "The request is too large",
                "What you sent is larger than this application accepts here (its route's max_body).".into(),
            ),
            GatewayError::Upstream(ProxyError::Timeout { .. }) => (
                "upstream_timeout",
                "The application did not answer in time",
                "Try again in a moment.".into(),
            ),
            GatewayError::Upstream(_) => (
                "upstream_unavailable",
                "The application is unavailable",
                "The gateway could not reach the application. Try again in a moment.".into(),
            ),
            GatewayError::SignInRequired => (
                "unauthorized",
                "Sign-in required",
                "Send a valid session cookie or bearer token.".into(),
            ),
            GatewayError::SessionTooLarge { .. } => (
                "session_too_large",
                "Your sign-in cannot be kept",
                "Your session is too large to keep in browser cookies (for example, because your account is in many groups). Ask the administrator to keep sessions on the server (session.store = \"memory\" or \"redis\").".into(),
            ),
            GatewayError::InvalidToken => (
                "invalid_token",
                "Token refused",
                "The bearer token is invalid, expired, or not for this application: get a new one.".into(),
            ),
            GatewayError::Forbidden { .. } => (
                "forbidden",
                "Access denied",
                "You are signed in, but your account is not in a group allowed here. Ask an administrator for access.".into(),
            ),
            GatewayError::EmailNotVerified(refusal) => {
                use crate::identity::EmailRefusal;
                let detail = match refusal {
                    EmailRefusal::UnverifiedEmailAsUser => "This application knows people by their email address, and the sign-in provider says yours is not verified yet. Verify it with the sign-in provider (follow the link in the message it sent you), then sign in again.",
                    EmailRefusal::Unverified => "This application admits only people whose email address is verified, and the sign-in provider says yours is not verified yet. Verify it with the sign-in provider (follow the link in the message it sent you), then sign in again.",
                    EmailRefusal::NoEmail => "This application admits only people with a verified email address, and the sign-in gave none (programs: send an ID token, as access tokens carry no email). Ask an administrator to add and verify an email address for your account.",
                    EmailRefusal::NotAllowed => {
                        return (
                            "email_not_allowed",
                            "Access denied",
                            "You are signed in, but this application admits only certain email addresses, and yours is not one of them. Sign out to use another account, or ask an administrator for access.".into(),
                        )
                    }
                };
                ("email_not_verified", "Your email address is not verified", detail.into())
            }
            GatewayError::SignInUnavailable { .. } => (
                "sign_in_unavailable",
                "Sign-in is temporarily unavailable",
                "The identity provider cannot be reached right now. Try again in a few seconds.".into(),
            ),
            GatewayError::SessionsUnavailable { .. } => (
                "sessions_unavailable",
                "Sessions are temporarily unavailable",
                "The session store cannot be reached right now. Try again in a few seconds.".into(),
            ),
            GatewayError::ClientRefused { reason } => (
                "sign_in_misconfigured",
                "Sign-in is misconfigured",
                format!("The identity provider refused this application's own credentials ({reason}). The administrator must check the client id and secret."),
            ),
            GatewayError::SignInFailed { reason } => (
                "sign_in_failed",
                "Sign-in failed",
                format!("{reason}. Start again from the application's address."),
            ),
            // Shown only for a sign-in this browser started here (the callback checks the
            // state first): quoted as the provider's words, never as the gateway's own.
            GatewayError::ProviderRefused { error, description } => (
                "provider_refused",
                "Sign-in was refused",
                match description {
                    Some(d) => format!(
                        "The sign-in provider said: “{}” (error code: {}).",
                        quotable(d),
                        quotable(error)
                    ),
                    None => format!("The sign-in provider said: “{}”.", quotable(error)),
                },
            ),
            GatewayError::TooManyCallbacks { .. } => (
                "too_many_requests",
                "Too many sign-in attempts",
                "Too many sign-in attempts came from your network address in the last minute. Wait a minute, then sign in again.".into(),
            ),
            GatewayError::MethodNotAllowed => ("method_not_allowed", "Method not allowed", String::new()),
        }
    }

    /// The page (or JSON) for this error. `auth_prefix` gives the pages their way on: sign out
    /// (to use another account) or sign in again.
    pub fn into_response(self, json: bool, auth_prefix: Option<&str>) -> Response<Body> {
        let status = self.status();
        let (code, title, detail) = self.words();
        let mut resp = if json {
            let body = serde_json::json!({ "error": code, "message": title, "detail": detail });
            json_response(status, &body)
        } else {
            let extra = match (&self, auth_prefix) {
                (GatewayError::Forbidden { user }, Some(prefix)) => format!(
                    "<p>Signed in as <b>{}</b>. <a href=\"{}/sign_out\">Sign out</a> to use another account.</p>",
                    escape(user),
                    escape(prefix)
                ),
                // Signed in at the provider: a way to sign in with another account.
                (GatewayError::EmailNotVerified(_), Some(prefix)) => format!(
                    "<p><a href=\"{}/sign_out\">Sign out</a> to use another account.</p>",
                    escape(prefix)
                ),
                (
                    GatewayError::SignInUnavailable { .. }
                    | GatewayError::SignInFailed { .. }
                    | GatewayError::ProviderRefused { .. },
                    Some(prefix),
                ) => format!(
                    "<p><a class=\"button\" href=\"{}/start\">Sign in again</a></p>",
                    escape(prefix)
                ),
                // A forward-auth 401 a proxy shows as it is (Traefik, Caddy without an
                // error handler): a way to sign in from it.
                (GatewayError::SignInRequired, Some(prefix)) => format!(
                    "<p><a class=\"button\" href=\"{}/start\">Sign in</a></p>",
                    escape(prefix)
                ),
                _ => String::new(),
            };
            html_response(status, title, &format!("<p>{}</p>{extra}", escape(&detail)))
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        }
        if let GatewayError::TooManyCallbacks { retry_after_secs } = &self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(match self {
                    GatewayError::InvalidToken => {
                        "Bearer realm=\"ssogate\", error=\"invalid_token\""
                    }
                    _ => "Bearer realm=\"ssogate\"",
                }),
            );
        }
        resp
    }
}

/// The most of a provider's words a page quotes, in characters.
const QUOTED_MAX_CHARS: usize = 200;

/// Words from outside (a provider's `error_description`) as a page may quote them: control
/// characters dropped, at most `QUOTED_MAX_CHARS`, then "…". Escaped later, with the page.
fn quotable(words: &str) -> String {
    let mut out: String = words
        .chars()
        .filter(|c| !c.is_control())
        .take(QUOTED_MAX_CHARS)
        .collect();
    if words
        .chars()
        .filter(|c| !c.is_control())
        .nth(QUOTED_MAX_CHARS)
        .is_some()
    {
        out.push('…');
    }
    out
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(resp.headers_mut());
    resp
}

/// A small self-contained page; `body_html` must already be escaped.
pub fn html_response(status: StatusCode, title: &str, body_html: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.4rem}}.button{{display:inline-block;background:#2563eb;color:#fff;padding:.6rem 1.2rem;border-radius:.4rem;text-decoration:none;border:0;font-size:1rem;cursor:pointer}}</style></head>\
         <body><h1>{t}</h1>{body_html}</body></html>",
        t = escape(title)
    );
    let mut resp = Response::new(full(page));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    no_store(h);
    resp
}

pub fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether the client is a program rather than a person navigating: it then gets JSON and
/// 401, never a page or a redirect to sign-in.
pub fn is_api_client(headers: &HeaderMap) -> bool {
    // One pass over the headers, comparing names: cheaper than four hashed lookups, and this
    // runs on every request. The first value of each name decides, as `get` would.
    static X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");
    static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
    let (mut authorization, mut mode, mut accept) = (None, None, None);
    for (name, value) in headers {
        if *name == header::AUTHORIZATION {
            authorization.get_or_insert(value);
        } else if *name == header::ACCEPT {
            accept.get_or_insert(value);
        } else if *name == SEC_FETCH_MODE {
            mode.get_or_insert(value);
        } else if *name == X_REQUESTED_WITH {
            return true;
        }
    }
    fn text(v: Option<&HeaderValue>) -> Option<&str> {
        v.and_then(|v| v.to_str().ok())
    }
    text(authorization).is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
        || text(mode).is_some_and(|v| v != "navigate")
        || text(accept).is_some_and(|v| v.contains("application/json") && !v.contains("text/html"))
}

/// A 302 with no caching.
pub fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    no_store(resp.headers_mut());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(headers: &[(&'static str, &'static str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        is_api_client(&map)
    }

    #[test]
    fn programs_are_told_from_people_navigating() {
        assert!(!api(&[]), "no hints: a browser navigation");
        assert!(!api(&[
            ("accept", "text/html,application/json"),
            ("sec-fetch-mode", "navigate")
        ]));
        assert!(api(&[("authorization", "Bearer abc")]));
        assert!(api(&[("Authorization", "bEaReR abc")]));
        assert!(!api(&[("authorization", "Basic abc")]));
        assert!(api(&[("x-requested-with", "XMLHttpRequest")]));
        assert!(api(&[("sec-fetch-mode", "cors")]));
        assert!(api(&[("accept", "application/json")]));
        // The first value of a header decides, as with `HeaderMap::get`.
        assert!(!api(&[
            ("accept", "text/html"),
            ("accept", "application/json")
        ]));
        assert!(api(&[
            ("accept", "application/json"),
            ("accept", "text/html")
        ]));
    }
}

//! Sign-out: the session ends here (store and caches), its refresh token is revoked (waited
//! for briefly), the provider's session is ended through its logout URL, and `/signed_out`
//! sends the browser where it asked to go. A sign-out asked for from another site must not
//! happen behind the user's back: such a request gets a page with a button that posts the
//! sign-out back with a token only the gateway can make. Requests from our own pages, and
//! those that name no origin at all (a typed address, curl), sign out at once. Never signs
//! anyone in, never refreshes.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::{Auth, STATE_TTL_SECS};
use crate::oidc;
use crate::policy::safe_redirect;
use crate::proxy::{Body, ClientInfo, RequestBody};
use crate::server::pages::{escape, html_response, redirect, GatewayError};
use crate::session::codec;
use crate::session::StoreError;
use crate::telemetry::Clip;

/// How long a sign-out waits for the refresh token's revocation before it answers.
const REVOKE_WAIT: Duration = Duration::from_secs(2);
/// The sign-out form is a few hundred bytes; anything longer is not ours.
const MAX_FORM: usize = 4096;
/// How long a client may take to send that form.
const FORM_WAIT: Duration = Duration::from_secs(5);

impl Auth {
    pub(super) async fn sign_out(
        &self,
        req: &mut Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let origin = self.origin(req.headers(), req.uri(), client);
        let attrs = self.cookie_attrs(&origin);
        let rd = self.redirect_target(req, client);
        if from_elsewhere(req.headers(), &origin) {
            if let Some(page) = self.unconfirmed_sign_out(req, &origin, &rd).await {
                return Ok(page);
            }
        }
        let req = &*req;
        let now = oidc::unix_now();
        let mut id_token = None;
        // The provider whose sign-out the browser goes through: the session's; without a
        // session, the only provider (several: none, the gateway's own page).
        let mut signed_in_with = (self.providers.len() == 1).then_some(0);
        if let Some(value) = codec::read_cookie(req.headers(), &self.sessions.cookie_name) {
            self.forget(value.as_ref());
            // With the store unreachable the server-side session would outlive a sign-out
            // that looked done: say so instead, and keep the cookie for another try.
            let unfinished = |e: StoreError| {
                tracing::warn!(error = %e, "sign-out could not end the server-side session");
                GatewayError::SessionsUnavailable {
                    reason: format!("sign-out could not be completed: {e}"),
                }
            };
            if let Some(session) = self.sessions.load(&value, now).await.map_err(unfinished)? {
                self.sessions.delete(&session).await.map_err(unfinished)?;
                if let Some(rt) = session.refresh_token.clone() {
                    // Waited for briefly, then left to finish on its own: a provider that
                    // does not answer must not hold the sign-out for `provider.timeout`.
                    let provider = self.provider(session.provider).clone();
                    let revoking = tokio::spawn(async move {
                        match provider.revoke(&rt).await {
                            Ok(true) => tracing::debug!("refresh token revoked"),
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "could not revoke the refresh token")
                            }
                        }
                    });
                    let _ = tokio::time::timeout(REVOKE_WAIT, revoking).await;
                }
                tracing::info!(user = %Clip(&session.principal.user), "signed out");
                id_token = session.id_token;
                signed_in_with = Some(session.provider);
            }
        }
        let signed_out = format!("{origin}{}/signed_out", self.config.server.auth_prefix);
        let target = signed_in_with
            .map(|p| self.provider(p))
            .and_then(|provider| {
                let return_to = provider
                    .config()
                    .sign_out_redirect_url
                    .as_ref()
                    .map_or_else(|| signed_out.clone(), |u| u.to_string());
                provider.logout_url(&return_to, id_token.as_deref())
            })
            .map_or(signed_out, |u| u.to_string());
        let mut resp = redirect(&target);
        let h = resp.headers_mut();
        for c in self.clear_session_cookies(req.headers(), &attrs) {
            h.append(header::SET_COOKIE, c);
        }
        let rd_cookie = format!("{}_signout", self.sessions.cookie_name);
        let sealed = self.sessions.codec().seal(&rd_cookie, &rd);
        h.append(
            header::SET_COOKIE,
            codec::set_cookie(&rd_cookie, &sealed, &attrs, Some(STATE_TTL_SECS)),
        );
        Ok(resp)
    }

    /// A sign-out asked for from another site: the confirmation page, unless it is that page's
    /// own form coming back with its token.
    async fn unconfirmed_sign_out(
        &self,
        req: &mut Request<RequestBody>,
        origin: &str,
        rd: &str,
    ) -> Option<Response<Body>> {
        let session_cookie = codec::read_cookie(req.headers(), &self.sessions.cookie_name)
            .map(|c| c.into_owned())
            .unwrap_or_default();
        let secret = self.sessions.codec().current_secret().to_vec();
        if req.method() == Method::POST {
            if let Some(token) = posted_token(req).await {
                if token_ok(&secret, &session_cookie, &token) {
                    return None;
                }
            }
        }
        tracing::info!("a sign-out asked for from another site: the user is asked to confirm");
        let action = format!(
            "{}/sign_out?rd={}",
            self.config.server.auth_prefix,
            url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        );
        // Where the sign-out will send the browser after the post: the provider's logout,
        // and `rd` when it is on another (allowed) host.
        let elsewhere: Vec<String> = self
            .providers
            .iter()
            .filter_map(|p| p.logout_url(&format!("{origin}/"), None))
            .chain(url::Url::parse(rd).ok())
            .map(|u| u.origin().ascii_serialization())
            .collect();
        Some(confirmation_page(
            &action,
            &token(&secret, &session_cookie),
            &elsewhere,
        ))
    }

    pub(super) fn signed_out(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Response<Body> {
        let origin = self.origin(req.headers(), req.uri(), client);
        let attrs = self.cookie_attrs(&origin);
        let rd_cookie = format!("{}_signout", self.sessions.cookie_name);
        let rd = codec::cookie_names_with_prefix(req.headers(), &rd_cookie)
            .find(|(n, _)| *n == rd_cookie)
            .and_then(|(_, v)| self.sessions.codec().open(&rd_cookie, v))
            .filter(|rd| {
                safe_redirect(rd, &origin, &self.config.server.allowed_redirect_hosts).is_some()
            });
        let mut resp = match rd {
            Some(rd) if rd != "/" => redirect(&rd),
            _ => html_response(
                StatusCode::OK,
                "You are signed out",
                &format!(
                    "<p>You have been signed out.</p><p><a class=\"button\" href=\"{}\">Sign in again</a></p>",
                    escape(&format!("{}/start?rd=%2F", self.config.server.auth_prefix))
                ),
            ),
        };
        resp.headers_mut().append(
            header::SET_COOKIE,
            codec::set_cookie(&rd_cookie, "", &attrs, Some(0)),
        );
        resp
    }
}

/// Whether the request comes from a page on another origin. `Sec-Fetch-Site` decides when
/// the browser sends it: only `same-origin` and `none` (typed, bookmarked) are ours, not
/// `same-site` (a sibling subdomain may be anyone's app). Without it, a foreign `Origin`,
/// or else a foreign `Referer`; with none of them (curl, scripts) the request is ours.
fn from_elsewhere(headers: &HeaderMap, our_origin: &str) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site.trim(), "same-origin" | "none");
    }
    let ours = url::Url::parse(our_origin).map(|u| u.origin());
    let same = |other: &str| match (url::Url::parse(other).map(|u| u.origin()), &ours) {
        (Ok(theirs), Ok(ours)) => theirs.is_tuple() && &theirs == ours,
        _ => false,
    };
    // `Origin: null` (a sandboxed frame, a redirect from elsewhere) is nobody's: foreign.
    if let Some(origin) = text("origin") {
        return !same(origin);
    }
    if let Some(referer) = text("referer") {
        return !same(referer);
    }
    false
}

/// The token the confirmation page posts back: an HMAC of the session cookie under the
/// session secret, so another site can neither read it from the page nor make it.
fn token(secret: &[u8], session_cookie: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    B64.encode(ring::hmac::sign(&key, &message(session_cookie)).as_ref())
}

fn token_ok(secret: &[u8], session_cookie: &str, token: &str) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let Ok(tag) = B64.decode(token) else {
        return false;
    };
    ring::hmac::verify(&key, &message(session_cookie), &tag).is_ok()
}

fn message(session_cookie: &str) -> Vec<u8> {
    [b"ssogate sign-out\0".as_slice(), session_cookie.as_bytes()].concat()
}

/// The `csrf` field of a posted sign-out form; `None` when there is none, or the body is
/// too long or too slow to be the gateway's form.
async fn posted_token(req: &mut Request<RequestBody>) -> Option<String> {
    let body = std::mem::replace(req.body_mut(), RequestBody::Empty);
    let bytes = tokio::time::timeout(FORM_WAIT, Limited::new(body, MAX_FORM).collect())
        .await
        .ok()?
        .ok()?
        .to_bytes();
    url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
}

/// The page a sign-out from elsewhere gets: what happened, and a button to sign out for real.
/// `action` is where the form posts (the sign-out address with its `rd`); `redirects_to` are
/// the origins the sign-out then sends the browser to (the provider's logout, `rd`), which
/// the page's `form-action` must allow, as browsers apply it to redirects after the post.
fn confirmation_page(action: &str, token: &str, redirects_to: &[String]) -> Response<Body> {
    let body = format!(
        "<p>Another site asked to sign you out of this application. You are still signed in.</p>\
         <p>To sign out, press the button. If you did not mean to sign out, close this page or \
         <a href=\"/\">go back to the application</a>.</p>\
         <form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button class=\"button\" type=\"submit\">Sign out</button></form>",
        escape(action),
        escape(token)
    );
    let mut resp = html_response(StatusCode::OK, "Sign out?", &body);
    let mut form_action = String::from("'self'");
    // Serialised origins (`https://host:port`); `null` ones (opaque) are left out.
    for origin in redirects_to.iter().filter(|o| o.contains("://")) {
        if !origin.contains(['\'', ';', ' ', '"', ',']) {
            form_action.push(' ');
            form_action.push_str(origin);
        }
    }
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'"
    )) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elsewhere(headers: &[(&'static str, &'static str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        from_elsewhere(&map, "https://app.example.com")
    }

    #[test]
    fn only_our_own_origin_and_origin_less_requests_are_ours() {
        assert!(!elsewhere(&[]), "curl");
        assert!(!elsewhere(&[("sec-fetch-site", "same-origin")]));
        assert!(!elsewhere(&[("sec-fetch-site", "none")]));
        assert!(elsewhere(&[("sec-fetch-site", "same-site")]));
        assert!(elsewhere(&[("sec-fetch-site", "cross-site")]));
        // Sec-Fetch-Site decides over the others when present.
        assert!(elsewhere(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example.com")
        ]));
        assert!(!elsewhere(&[("origin", "https://app.example.com")]));
        assert!(!elsewhere(&[("origin", "https://app.example.com:443")]));
        assert!(elsewhere(&[("origin", "https://evil.example")]));
        assert!(elsewhere(&[("origin", "null")]));
        assert!(elsewhere(&[("origin", "http://app.example.com")]), "scheme");
        assert!(!elsewhere(&[("referer", "https://app.example.com/page?x")]));
        assert!(elsewhere(&[(
            "referer",
            "https://app.example.com.evil.example/"
        )]));
        assert!(elsewhere(&[("referer", "not a url")]));
    }

    #[test]
    fn the_token_is_bound_to_the_session_and_the_secret() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let t = token(secret, "cookie-a");
        assert!(token_ok(secret, "cookie-a", &t));
        assert!(!token_ok(secret, "cookie-b", &t));
        assert!(!token_ok(
            b"another secret, 32 bytes long...",
            "cookie-a",
            &t
        ));
        assert!(!token_ok(secret, "cookie-a", "made-up"));
    }
}

//! Sign-out asked for from another site. A sign-out ends the session here, revokes the refresh
//! token and ends the provider's session, so a link or form on any page must not do it behind
//! the user's back: such a request gets a page with a button that posts the sign-out back with
//! a token only the gateway can make. Requests from our own pages, and those that name no
//! origin at all (a typed address, curl), sign out at once. Never ends a session itself.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::pages::{escape, html_response};
use crate::proxy::{Body, RequestBody};

/// The sign-out form is a few hundred bytes; anything longer is not ours.
const MAX_FORM: usize = 4096;
/// How long a client may take to send that form.
const FORM_WAIT: Duration = Duration::from_secs(5);

/// Whether the request comes from a page on another origin. `Sec-Fetch-Site` decides when
/// the browser sends it: only `same-origin` and `none` (typed, bookmarked) are ours, not
/// `same-site` (a sibling subdomain may be anyone's app). Without it, a foreign `Origin`,
/// or else a foreign `Referer`; with none of them (curl, scripts) the request is ours.
pub fn from_elsewhere(headers: &HeaderMap, our_origin: &str) -> bool {
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
pub fn token(secret: &[u8], session_cookie: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    B64.encode(ring::hmac::sign(&key, &message(session_cookie)).as_ref())
}

pub fn token_ok(secret: &[u8], session_cookie: &str, token: &str) -> bool {
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
pub async fn posted_token(req: &mut Request<RequestBody>) -> Option<String> {
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
pub fn confirmation_page(action: &str, token: &str, redirects_to: &[String]) -> Response<Body> {
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

//! The demo's upstream app: a page that shows what the app behind the gateway received,
//! identity headers first. Everything it prints came from the client or the gateway, so
//! everything is HTML-escaped.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;

use super::escape;

/// Headers the gateway sets from the signed-in person (every preset), shown highlighted.
const IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "authorization",
];

fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS.contains(&name) || name.starts_with("x-amzn-")
}

/// The echo app.
#[derive(Debug, Clone)]
pub struct EchoApp {
    /// The gateway's `auth_prefix`, for the sign-out link.
    auth_prefix: String,
}

impl EchoApp {
    pub fn new(auth_prefix: &str) -> EchoApp {
        EchoApp {
            auth_prefix: auth_prefix.to_string(),
        }
    }

    /// Any path gets the page; `/admin/...` gets it under the admin title.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.uri().path() == "/favicon.ico" {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            return resp;
        }
        let mut resp = Response::new(Full::new(Bytes::from(self.page(req))));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }

    fn page<B>(&self, req: &Request<B>) -> String {
        let path = req.uri().path();
        let title = if path.starts_with("/admin/") || path == "/admin" {
            "Admin area (admins only)"
        } else {
            "Echo app: what the app behind ssogate received"
        };
        let (identity, others) = split_headers(req.headers());
        let identity_rows = if identity.is_empty() {
            "<tr><td colspan=\"2\"><em>none: this request carried no identity headers \
             (a public route, or it did not come through the gateway)</em></td></tr>\n"
                .to_string()
        } else {
            identity
                .iter()
                .map(|(name, value)| header_row(name, value, true))
                .collect()
        };
        let other_rows: String = others
            .iter()
            .map(|(name, value)| header_row(name, value, false))
            .collect();
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let prefix = escape(&self.auth_prefix);
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1d2330; }}
nav a {{ margin-right: 1rem; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }}
th, td {{ text-align: left; vertical-align: top; padding: .3rem .5rem; border-bottom: 1px solid #e3e3e8; }}
td.v {{ font-family: ui-monospace, monospace; word-break: break-all; }}
tr.identity td {{ background: #fff7d6; }}
tr.identity td.n {{ font-weight: 600; }}
pre {{ margin: .3rem 0 0; white-space: pre-wrap; font-size: .85rem; color: #444; }}
</style></head>
<body>
<h1>{title}</h1>
<nav><a href="/">Home</a><a href="/admin/">Admin area</a><a href="{prefix}/userinfo">{prefix}/userinfo</a><a href="{prefix}/sign_out">Sign out</a></nav>
<p>Request: <code>{method} {target}</code></p>
<h2>Identity headers (set by the gateway)</h2>
<p>The app trusts these because only the gateway can reach it; the gateway removes any a client sends.</p>
<table>
<tr><th>header</th><th>value</th></tr>
{identity_rows}</table>
<h2>All other headers</h2>
<table>
<tr><th>header</th><th>value</th></tr>
{other_rows}</table>
</body></html>
"#,
            method = escape(req.method().as_str()),
            target = escape(target),
        )
    }
}

/// A header's name and value (non-UTF-8 bytes shown lossily).
type HeaderLine = (String, String);

/// Identity headers and the rest, each sorted by name.
fn split_headers(headers: &HeaderMap) -> (Vec<HeaderLine>, Vec<HeaderLine>) {
    let mut identity = Vec::new();
    let mut others = Vec::new();
    for (name, value) in headers {
        let entry = (
            name.as_str().to_string(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        );
        if is_identity_header(name.as_str()) {
            identity.push(entry);
        } else {
            others.push(entry);
        }
    }
    identity.sort();
    others.sort();
    (identity, others)
}

fn header_row(name: &str, value: &str, identity: bool) -> String {
    let claims = if identity {
        jwt_claims(value)
            .map(|c| format!("<pre>claims: {}</pre>", escape(&c)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    format!(
        "<tr{}><td class=\"n\">{}</td><td class=\"v\">{}{}</td></tr>\n",
        if identity { " class=\"identity\"" } else { "" },
        escape(name),
        escape(value),
        claims
    )
}

/// The payload of a JWT-shaped value (`x-amzn-oidc-data`, a bearer token), pretty-printed.
/// Not verified: this is for reading only.
fn jwt_claims(value: &str) -> Option<String> {
    let token = value.strip_prefix("Bearer ").unwrap_or(value);
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = B64.decode(payload.trim_end_matches('=')).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    serde_json::to_string_pretty(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_for(path: &str, headers: &[(&str, &str)]) -> String {
        let mut req = Request::builder().uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = EchoApp::new("/oauth2").handle(&req.body(()).unwrap());
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body();
        let bytes = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(body))
            .unwrap()
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn identity_headers_come_first_and_everything_is_escaped() {
        let page = page_for(
            "/x?q=%3C",
            &[
                ("x-forwarded-user", "alice"),
                ("x-evil", "<script>alert(1)</script>"),
            ],
        );
        let identity_at = page.find("<td class=\"n\">x-forwarded-user</td>").unwrap();
        let other_at = page.find("x-evil").unwrap();
        assert!(identity_at < other_at, "identity table first");
        assert!(page.contains("<tr class=\"identity\"><td class=\"n\">x-forwarded-user"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("/oauth2/sign_out"));
    }

    #[test]
    fn admin_path_gets_the_admin_title() {
        let page = page_for("/admin/", &[]);
        assert!(page.contains("<h1>Admin area (admins only)</h1>"));
        assert!(page.contains("carried no identity headers"));
    }
}

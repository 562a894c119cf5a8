//! The admin page's way in (`{auth_prefix}/admin`, feature `cognito-admin`): the visitor's
//! session (sign-in first, as for any protected page), the form body (16 KiB at most), the
//! page's answer as an HTML response, and ending a person's sessions when the page asks
//! (after a disable or delete). What the page shows and allows is `admin::page`'s.

use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::auth::Auth;
use super::pages::{html_response, GatewayError};
use crate::admin::page::{AdminPage, PageRequest, Visitor};
use crate::config::Config;
use crate::proxy::{Body, ClientInfo, ProxyError, RequestBody};

/// Largest form the page reads.
const MAX_FORM: usize = 16 * 1024;

/// The page, when `[admin] enabled = true` and sessions have a secret.
pub(super) fn page(config: &Config) -> Option<AdminPage> {
    let admin = config.admin.as_ref().filter(|a| a.enabled)?;
    let secret = config.session.secret.as_ref()?;
    Some(AdminPage::new(
        admin.clone(),
        config.roles.clone(),
        &secret.0,
        &config.server.auth_prefix,
    ))
}

/// The part of `endpoint` below `/admin` ("" or "/delete"), when it is the admin page's.
pub(super) fn below(endpoint: &str) -> Option<&str> {
    endpoint
        .strip_prefix("/admin")
        .filter(|r| r.is_empty() || r.starts_with('/'))
}

pub(super) async fn handle(
    auth: &Auth,
    page: &AdminPage,
    req: &mut Request<RequestBody>,
    client: &ClientInfo,
    below: &str,
) -> Result<Response<Body>, GatewayError> {
    let post = match *req.method() {
        Method::GET | Method::HEAD => false,
        Method::POST => true,
        _ => return Err(GatewayError::MethodNotAllowed),
    };
    let live = match auth
        .authenticate(req, client, crate::policy::ProviderSet::ALL)
        .await
    {
        Ok(live) => live,
        Err(answer) => return answer.into_response(auth, req, client),
    };
    let form = if post {
        read_form(req).await?
    } else {
        Vec::new()
    };
    let principal = &live.session.principal;
    let session = format!("{}\n{}", principal.sub, live.session.created);
    let end_sessions = |sub: String| -> BoxFuture<'_, Result<Option<usize>, String>> {
        Box::pin(async move { auth.end_sessions_of(&sub).await.map_err(|e| e.to_string()) })
    };
    let answer = page
        .answer(
            &Visitor {
                user: &principal.user,
                groups: &principal.groups,
                session: &session,
            },
            &PageRequest {
                post,
                below,
                query: req.uri().query(),
                form: &form,
                end_sessions: &end_sessions,
            },
        )
        .await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut resp = html_response(status, &answer.title, &answer.body);
    for c in live.set_cookies.iter().flatten() {
        resp.headers_mut()
            .append(http::header::SET_COOKIE, c.clone());
    }
    Ok(resp)
}

async fn read_form(req: &mut Request<RequestBody>) -> Result<Vec<u8>, GatewayError> {
    let body = std::mem::replace(req.body_mut(), RequestBody::Empty);
    let limited = http_body_util::Limited::new(body, MAX_FORM);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(_) => Err(GatewayError::Upstream(ProxyError::BodyTooLarge(
            crate::proxy::BodyTooLarge,
        ))),
    }
}

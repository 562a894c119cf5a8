//! What the gateway tells other programs about a signed-in user: forward-auth for a proxy in
//! front (nginx `auth_request`, Traefik `forwardAuth`), `/userinfo` for the app's own pages,
//! and the keys that verify the `alb` preset's assertions (`/jwks.json`, `/keys/<kid>`).
//! Never signs anyone in or out; a request without a session gets 401, never a redirect.

use std::sync::atomic::{AtomicBool, Ordering};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use super::{append_cookies, query_param, Auth, AuthAnswer};
use crate::identity::IdentityHeaders;
use crate::policy::{ProviderSet, RouteRule};
use crate::proxy::{full, Body, ClientInfo, RequestBody};
use crate::server::pages::{json_response, GatewayError};

impl Auth {
    pub(super) async fn userinfo(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let live = match self.authenticate(req, client, ProviderSet::ALL).await {
            Ok(l) => l,
            Err(AuthAnswer::SignIn { .. }) => return Err(GatewayError::SignInRequired),
            Err(AuthAnswer::Error(e)) => return Err(e),
        };
        let provider = &self.provider(live.session.provider).config().name;
        let p = &live.session.principal;
        let preferred = p.preferred_username.as_deref().unwrap_or(&p.user);
        let verified = p.verified_email().is_some();
        let mut resp = json_response(
            StatusCode::OK,
            &serde_json::json!({
                "user": p.user, "sub": p.sub, "email": p.email,
                // Not verified (or not said to be): the email names nobody; apps must not
                // take it as the person's.
                "email_verified": verified, "emailVerified": verified,
                "preferred_username": preferred,
                "groups": p.groups,
                "provider": provider,
            }),
        );
        append_cookies(&mut resp, &live);
        Ok(resp)
    }

    /// Forward-auth for nginx `auth_request`, Traefik `forwardAuth` and friends:
    /// 202 + `X-Auth-Request-*`, 401, or 403. The rule is that of `route` (the route of the
    /// request asked about: a public one answers 202 to anybody), else `[access]`.
    /// `?allowed_groups=a,b` only narrows it, never widens it: Envoy and Caddy pass the
    /// client's own query along, so the client may write it.
    pub async fn forward_auth(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
        route: Option<(&RouteRule, ProviderSet)>,
    ) -> Result<Response<Body>, GatewayError> {
        let asked = query_param(req.uri(), "allowed_groups").map(|list| {
            RouteRule::AnyOf(
                list.split(',')
                    .map(|g| g.trim().to_string())
                    .filter(|g| !g.is_empty())
                    .collect(),
            )
        });
        let (rule, accepted) = route.unwrap_or((&self.access_rule, ProviderSet::ALL));
        let preflight = self.config.access.skip_preflight && crate::policy::is_cors_preflight(req);
        if (!rule.needs_sign_in() && asked.is_none()) || preflight {
            let mut resp = Response::new(full(""));
            *resp.status_mut() = StatusCode::ACCEPTED;
            return Ok(resp);
        }
        let live = match self.authenticate(req, client, accepted).await {
            Ok(l) => l,
            Err(AuthAnswer::SignIn { .. }) => return Err(GatewayError::SignInRequired),
            Err(AuthAnswer::Error(e)) => return Err(e),
        };
        let groups = &live.session.principal.groups;
        if !rule.admits(groups) || asked.is_some_and(|narrower| !narrower.admits(groups)) {
            return Err(GatewayError::Forbidden {
                user: live.session.principal.user.clone(),
            });
        }
        let mut resp = Response::new(full(""));
        *resp.status_mut() = StatusCode::ACCEPTED;
        IdentityHeaders::apply(&live.headers.auth_request, resp.headers_mut());
        // Which population the user came from, for a proxy that routes or logs by it.
        if let Ok(name) = HeaderValue::from_str(&self.provider(live.session.provider).config().name)
        {
            resp.headers_mut().insert(PROVIDER_HEADER, name);
        }
        append_cookies(&mut resp, &live);
        if live.set_cookies.as_ref().is_some_and(|c| c.len() > 1)
            && !SEVERAL_COOKIES_TOLD.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("forward-auth answered with more than one Set-Cookie (a cookie-store session split into parts): nginx's auth_request_set passes on only the first, and the user will have to sign in again; use session.store = \"memory\" or \"redis\" with forward-auth");
        }
        Ok(resp)
    }

    /// One published assertion key as PEM, by `kid`: the shape of an ALB's key server.
    pub(super) fn assertion_key_pem(&self, kid: &str) -> Result<Response<Body>, GatewayError> {
        let pem = self
            .signer
            .as_ref()
            .and_then(|s| s.load().public_pem(kid))
            .ok_or(GatewayError::NotFound)?;
        let mut resp = Response::new(full(pem));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        );
        Ok(resp)
    }

    pub(super) fn assertion_jwks(&self) -> Response<Body> {
        let body = self
            .signer
            .as_ref()
            .map(|s| s.load().jwks_json())
            .unwrap_or_else(|| "{\"keys\":[]}".into());
        let mut resp = Response::new(full(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// Forward-auth's answer names the provider the user signed in with.
const PROVIDER_HEADER: header::HeaderName =
    header::HeaderName::from_static("x-auth-request-provider");

/// Whether the operator has been told, once, that `/auth` set several cookies.
static SEVERAL_COOKIES_TOLD: AtomicBool = AtomicBool::new(false);

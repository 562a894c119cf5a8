//! The gateway's own endpoints under `auth_prefix`: health, readiness, and the sign-in
//! endpoints, which `auth` answers.

use http::{Method, Request, Response, StatusCode};

use super::pages::{json_response, GatewayError};
use super::Gateway;
use crate::policy::{normalize, Route, RouteTable};
use crate::proxy::{Body, ClientInfo, RequestBody};

/// Where forward-auth proxies name the request they ask about: Traefik and Caddy send
/// `X-Forwarded-Uri`; nginx set-ups pass `$request_uri` as `X-Original-URI`. Believed only
/// when `server.forward_auth_uri_header` names one (and only that one).
const ORIGINAL_URI: [&str; 2] = ["x-forwarded-uri", "x-original-uri"];

/// Whether the operator has been told, once, that a URI header was not believed.
static URI_HEADER_IGNORED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Which of the gateway's own endpoints `path` is (`/ping`, `/callback`, `/auth/x`...), or
/// `None` for a path that goes to a route. Synchronous, so the common case (not ours) costs
/// two string comparisons and no future.
pub fn endpoint_of(server: &crate::config::ServerConfig, path: &str) -> Option<String> {
    if path == server.callback_path {
        return Some("/callback".to_string());
    }
    match path.strip_prefix(server.auth_prefix.as_str()) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Some(rest.to_string()),
        _ => None,
    }
}

/// Answers a request for one of the gateway's own endpoints (`endpoint_of`).
pub async fn handle<'g>(
    gw: &'g Gateway,
    routes: &'g RouteTable,
    client: &ClientInfo,
    req: &mut Request<RequestBody>,
    endpoint: &str,
    // Forward-auth's: the route of the request it was asked about, for the access log.
    asked_route: &mut Option<&'g Route>,
) -> Result<Response<Body>, GatewayError> {
    // Forward-auth takes any method (nginx's auth_request asks with the original request's)
    // and any path below it (Envoy's ext_authz appends the original path).
    if let Some(below) = endpoint
        .strip_prefix("/auth")
        .filter(|r| r.is_empty() || r.starts_with('/'))
    {
        return match &gw.auth {
            Some(auth) => match asked_about(gw, routes, client, req, below) {
                Ok(route) => {
                    *asked_route = route;
                    Box::pin(auth.forward_auth(req, client, route.map(|r| (&r.rule, r.providers))))
                        .await
                }
                Err(e) => Err(e),
            },
            None => Err(GatewayError::NotFound),
        };
    }
    #[cfg(feature = "cognito-admin")]
    if let (Some(page), Some(auth)) = (&gw.admin, &gw.auth) {
        if let Some(below) = super::admin::below(endpoint) {
            return Box::pin(super::admin::handle(auth, page, req, client, below)).await;
        }
    }
    match endpoint {
        "/ping" => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        "/ready" => {
            if gw.is_stopping() {
                return Ok(json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "stopping"}),
                ));
            }
            if !gw.is_ready() {
                return Ok(json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "starting", "detail": gw.auth.as_ref().map(|a| a.not_ready_reason(None))}),
                ));
            }
            // With `?store=1` (as oauth2-proxy's /ready), a session store that does not
            // answer makes the replica unready. Not by default: replicas share their Redis,
            // so all of them would go out at once, public routes and cached sessions with
            // them, where each would otherwise answer what it can.
            let with_store = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "store=1"));
            let store_problem = match &gw.auth {
                Some(auth) if with_store => Box::pin(auth.store_problem()).await,
                _ => None,
            };
            Ok(match store_problem {
                Some(detail) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "unavailable", "detail": detail}),
                ),
                None => json_response(StatusCode::OK, &serde_json::json!({"status": "ready"})),
            })
        }
        _ if req.method() != Method::GET
            && req.method() != Method::HEAD
            && endpoint != "/sign_out" =>
        {
            Err(GatewayError::MethodNotAllowed)
        }
        _ => match &gw.auth {
            // Boxed: inline, the sign-in flow's state would make every request's future
            // (moved several times per request) KBs larger.
            Some(auth) => Box::pin(auth.endpoint(endpoint, req, client)).await,
            None => Err(GatewayError::NotFound),
        },
    }
}

/// The route of the request a forward-auth call asks about, so it gets the decision the
/// gateway would make itself: the path after `/auth` (Envoy), or the one a trusted proxy
/// names in `X-Forwarded-Uri` / `X-Original-URI`, on the host it names. None when the call
/// names no request (then `[access]` decides) or no route matches it.
fn asked_about<'g>(
    gw: &Gateway,
    routes: &'g RouteTable,
    client: &ClientInfo,
    req: &Request<RequestBody>,
    below: &str,
) -> Result<Option<&'g Route>, GatewayError> {
    let named = if below.is_empty() {
        if !client.trusted {
            return Ok(None);
        }
        // nginx's auth_request hands the subrequest every header the client sent: only the
        // one header the operator says the proxy sets itself (and so overwrites) is believed.
        // Trusting any would let a client name a public route for a protected request.
        let Some(header) = &gw.config.server.forward_auth_uri_header else {
            if ORIGINAL_URI.iter().any(|h| req.headers().contains_key(*h))
                && !URI_HEADER_IGNORED.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!("forward-auth was asked with X-Original-URI or X-Forwarded-Uri, which are not believed: it answers by [access] alone. To decide by the routes, set server.forward_auth_uri_header to the header your proxy sets itself (overwriting the client's)");
            }
            return Ok(None);
        };
        // Two values that differ mean the proxy appended to what the client sent.
        let mut named = None;
        for value in req.headers().get_all(header.as_str()) {
            let value = value.to_str().map_err(|_| GatewayError::AmbiguousUri)?;
            match named {
                Some(earlier) if earlier != value => return Err(GatewayError::AmbiguousUri),
                _ => named = Some(value),
            }
        }
        match named {
            Some(uri) => uri,
            None => return Ok(None),
        }
    } else {
        below
    };
    // The query and fragment never decide a route.
    let path = named.split(['?', '#']).next().unwrap_or("");
    let path = normalize(path).map_err(GatewayError::BadPath)?;
    let host =
        crate::policy::site_host(&client.host_source(req.headers(), req.uri(), req.version()))?;
    Ok(routes.lookup(host.map(|h| h.name), path.match_path()))
}

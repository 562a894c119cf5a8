//! The gateway's own endpoints under `auth_prefix`: health, readiness, and the sign-in
//! endpoints, which `auth` answers.

use http::{Method, Request, Response, StatusCode};

use super::pages::{json_response, GatewayError};
use super::Gateway;
use crate::proxy::{Body, ClientInfo, RequestBody};

/// `Some` when the path is one of ours.
pub async fn handle(
    gw: &Gateway,
    client: &ClientInfo,
    req: &mut Request<RequestBody>,
) -> Option<Result<Response<Body>, GatewayError>> {
    let server = &gw.config.server;
    let path = req.uri().path();
    let is_callback = path == server.callback_path;
    let rest = match path.strip_prefix(server.auth_prefix.as_str()) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ if is_callback => "/callback",
        _ => return None,
    };
    let endpoint = if is_callback {
        "/callback".to_string()
    } else {
        rest.to_string()
    };
    let endpoint = endpoint.as_str();
    Some(match endpoint {
        "/ping" => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        "/ready" => Ok(if gw.is_ready() {
            json_response(StatusCode::OK, &serde_json::json!({"status": "ready"}))
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "starting", "detail": gw.auth.as_ref().map(|a| a.not_ready_reason())}),
            )
        }),
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
    })
}

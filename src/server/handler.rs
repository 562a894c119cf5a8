//! One request through the stages, in order: classify, authenticate (+ refresh), authorise,
//! identify, forward (which leaves the client's identity headers and our cookies behind), log. A stage that answers returns early.

use std::time::Instant;

use http::{Request, Response};

use super::pages::{is_api_client, GatewayError};
use super::snapshot::Snapshot;
use super::Gateway;
use crate::policy::{normalize, Route};
use crate::proxy::{Body, ClientInfo, Outgoing, Proxy, RequestBody};

/// What the access log line says about a request, filled in as it travels.
#[derive(Default)]
struct Outcome<'g> {
    /// Whether the access line will be written (so its fields are worth collecting).
    log: bool,
    route: Option<&'g Route>,
    /// Whether the request went to the route's upstream (not answered by the gateway).
    forwarded: bool,
    user: Option<String>,
    upstream_error: Option<String>,
}

pub async fn handle(
    gw: &Gateway,
    proxy: &Proxy,
    client: &ClientInfo,
    req: Request<RequestBody>,
) -> Response<Body> {
    // The routes and upstreams this request uses to its end, whatever a reload does meanwhile.
    let view = gw.live.view(proxy);
    let (snap, proxy) = (&*view.snap, &view.proxy);
    let log = snap.access_log && tracing::enabled!(tracing::Level::INFO);
    // Only the log needs these copies (and the clock).
    let logged = log.then(|| {
        (
            req.method().clone(),
            req.uri().path().to_string(),
            Instant::now(),
        )
    });
    let json = is_api_client(req.headers());
    let mut outcome = Outcome {
        log,
        ..Outcome::default()
    };

    let mut resp = match stages(gw, snap, proxy, client, req, &mut outcome).await {
        Ok(resp) => resp,
        Err(e) => {
            match &e {
                GatewayError::Upstream(crate::proxy::ProxyError::BodyTooLarge(_)) => {
                    gw.metrics.bodies_too_large.add(1)
                }
                GatewayError::Upstream(err) => {
                    gw.metrics.upstream_errors.add(1);
                    outcome.upstream_error = Some(err.to_string());
                }
                GatewayError::Forbidden { user } if log => outcome.user = Some(user.clone()),
                _ => {}
            }
            e.into_response(json, Some(&gw.config.server.auth_prefix))
        }
    };
    // What the gateway answers itself (sign-in redirects with their state cookie, a
    // callback's session cookie, forward-auth's identity, /userinfo, pages) no cache keeps;
    // an upstream's response to which it added a cookie was made private in `stages`.
    if !outcome.forwarded && !resp.headers().contains_key(http::header::CACHE_CONTROL) {
        crate::proxy::make_private(&mut resp);
    }
    let status = resp.status().as_u16();
    gw.metrics.count_status(status);
    if let Some((method, raw_path, start)) = logged {
        let path = normalize(&raw_path)
            .map(|p| p.forward_path().to_string())
            .unwrap_or(raw_path);
        let path = crate::telemetry::Clip(&path);
        let route = outcome.route.map(|r| r.name.as_str()).unwrap_or("-");
        let upstream = outcome
            .route
            .filter(|_| outcome.forwarded)
            .map(|r| &*snap.upstreams[r.id].name)
            .unwrap_or("-");
        // Microsecond precision: 0.41 ms, not 0.41042900000000004.
        let ms = (start.elapsed().as_micros() as f64).round() / 1000.0;
        match &outcome.upstream_error {
            Some(error) => tracing::warn!(
                target: "access", %method, %path, route, status, upstream, duration_ms = ms,
                client = %client.ip, user = outcome.user.as_deref().unwrap_or("-"), error = error.as_str(),
                "upstream failed"
            ),
            None => tracing::info!(
                target: "access", %method, %path, route, status, upstream, duration_ms = ms,
                client = %client.ip, user = outcome.user.as_deref().unwrap_or("-"),
                "request"
            ),
        }
    }
    resp
}

async fn stages<'g>(
    gw: &'g Gateway,
    snap: &'g Snapshot,
    proxy: &Proxy,
    client: &ClientInfo,
    mut req: Request<RequestBody>,
    outcome: &mut Outcome<'g>,
) -> Result<Response<Body>, GatewayError> {
    // classify: the gateway's own endpoints first.
    if let Some(endpoint) = super::endpoints::endpoint_of(&gw.config.server, req.uri().path()) {
        crate::policy::site_host(&client.host_source(req.headers(), req.uri(), req.version()))?;
        let answer = super::endpoints::handle(
            gw,
            &snap.routes,
            client,
            &mut req,
            &endpoint,
            &mut outcome.route,
        )
        .await;
        if outcome.log {
            // Forward-auth's answer names whom it admitted (403s name the user below).
            outcome.user = answer.as_ref().ok().and_then(|r| {
                r.headers()
                    .get("x-auth-request-user")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            });
        }
        return answer;
    }
    // The one route decision: validated host, normalised path, route.
    let (route, new_path, needs_sign_in) = {
        let source = client.host_source(req.headers(), req.uri(), req.version());
        let decision = snap
            .routes
            .decide(req.method(), &source, req.uri().path())?;
        let needs_sign_in = decision.needs_sign_in();
        (decision.route, decision.forward_path, needs_sign_in)
    };
    outcome.route = Some(route);
    if let Some(max) = snap.config.routes[route.id].max_body {
        req = limit_body(req, max)?;
    }

    // Spoofable identity headers and the gateway's cookies never pass, on any route: the
    // proxy leaves them behind as it writes the request (`Outgoing`).
    let mut out = Outgoing {
        filter: &snap.filter,
        identity: &[],
    };

    // authenticate, refresh, authorise, identify.
    let mut signed_in = None;
    if needs_sign_in && !(gw.config.access.skip_preflight && crate::policy::is_cors_preflight(&req))
    {
        let auth = gw
            .auth
            .as_ref()
            .ok_or_else(|| GatewayError::SignInUnavailable {
                reason: "no provider configured".into(),
            })?;
        let live = match auth.authenticate(&req, client, route.providers).await {
            Ok(s) => s,
            Err(answer) => return answer.into_response(auth, &req, client),
        };
        let principal = &live.session.principal;
        if outcome.log {
            outcome.user = Some(principal.user.clone());
        }
        if !route.rule.admits(&principal.groups) {
            return Err(GatewayError::Forbidden {
                user: principal.user.clone(),
            });
        }
        out.identity = &signed_in.insert(live).headers.upstream;
    }
    outcome.forwarded = true;
    // One call site: each `.await` of `forward` would be a state of its own in this future.
    let mut resp = forward(snap, proxy, route, req, new_path.as_deref(), client, out).await?;
    if let Some(cookies) = signed_in
        .as_ref()
        .and_then(|live| live.set_cookies.as_ref())
    {
        crate::proxy::add_gateway_cookies(&mut resp, cookies);
    }
    Ok(resp)
}

async fn forward(
    snap: &Snapshot,
    proxy: &Proxy,
    route: &Route,
    req: Request<RequestBody>,
    new_path: Option<&str>,
    client: &ClientInfo,
    out: Outgoing<'_>,
) -> Result<Response<Body>, GatewayError> {
    Ok(proxy
        .forward(&snap.upstreams[route.id], req, new_path, client, out)
        .await?)
}

/// A request whose body may not pass `max` bytes: refused at once when its Content-Length
/// says more (a client sending `Expect: 100-continue` then sends nothing), else cut off on
/// the way (`RequestBody::limited`).
fn limit_body(req: Request<RequestBody>, max: u64) -> Result<Request<RequestBody>, GatewayError> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(crate::proxy::ProxyError::from(crate::proxy::BodyTooLarge).into());
    }
    Ok(req.map(|b| b.limited(max)))
}

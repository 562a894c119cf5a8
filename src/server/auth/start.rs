//! Where a sign-in starts: the answer a request without a session gets (a redirect to
//! sign-in, or 401 for a program), the sign-in page, the redirect target kept for after
//! sign-in (and sign-out), and `/start`, which seals the attempt's state cookie and sends the
//! browser to the provider. Never reads a callback, never makes a session.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::{query_param, Auth, PendingSignIn, STATE_TTL_SECS};
use crate::oidc::{self, Provider};
use crate::policy::{safe_redirect, ProviderSet};
use crate::proxy::{Body, ClientInfo, RequestBody};
use crate::server::pages::{escape, html_response, is_api_client, redirect, GatewayError};
use crate::session::codec::{self, CookieAttrs};
use crate::telemetry::Clip;

/// Pending sign-ins (state cookies) one browser may have at once.
const MAX_PENDING_SIGN_INS: usize = 5;
/// The longest `rd` kept: sealed (base64, plus the nonce and PKCE verifier) it still fits a
/// cookie under browsers' 4 KB.
const MAX_RD: usize = 2048;

impl Auth {
    /// What a request without a usable session gets: a redirect to sign-in for a person
    /// navigating, 401 JSON for a program.
    pub fn sign_in_answer(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
        clear: Vec<HeaderValue>,
        accepted: ProviderSet,
    ) -> Result<Response<Body>, GatewayError> {
        let mut resp = if is_api_client(req.headers()) {
            GatewayError::SignInRequired.into_response(true, None)
        } else {
            let rd = req
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            let rd = if req.method() == Method::GET || req.method() == Method::HEAD {
                rd
            } else {
                "/"
            };
            // With `cookie_domain` the sign-in may end at another host (`public_url`'s):
            // the way back names this one.
            let absolute = self.absolute_on_this_host(req, rd);
            let rd = absolute.as_deref().unwrap_or(rd);
            let choices: Vec<usize> = accepted.places(self.providers.len()).collect();
            // One provider for this route and no page to choose on: straight to it, as
            // `/start` would send the browser (one hop less per sign-in).
            match choices[..] {
                [p] if !self.config.server.sign_in_page => {
                    self.begin_sign_in(p, rd, req, client)?
                }
                _ => self.to_sign_in_page(rd, &choices),
            }
        };
        for c in clear {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        Ok(resp)
    }

    /// A redirect to the sign-in page, with the way back `rd` and, when several providers
    /// are configured, the ones this route takes (`choices`; all: no list).
    fn to_sign_in_page(&self, rd: &str, choices: &[usize]) -> Response<Body> {
        let mut to = format!(
            "{}/sign_in?rd={}",
            self.config.server.auth_prefix,
            url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        );
        if self.providers.len() > 1 && choices.len() < self.providers.len() {
            let names: Vec<&str> = choices
                .iter()
                .map(|&p| self.provider(p).config().name.as_str())
                .collect();
            let key = if choices.len() == 1 {
                "provider"
            } else {
                "providers"
            };
            to.push_str(&format!("&{key}={}", names.join(",")));
        }
        redirect(&to)
    }

    /// `path` as an absolute URL on the request's host, when `session.cookie_domain` shares
    /// sessions between hosts and this is not `public_url`'s (where the sign-in returns).
    /// The scheme is `public_url`'s; the host was validated by the route decision, and the
    /// result is still held to `allowed_redirect_hosts` at `/start`.
    fn absolute_on_this_host(&self, req: &Request<RequestBody>, path: &str) -> Option<String> {
        self.config.session.cookie_domain.as_ref()?;
        let public = self.config.server.public_url.as_ref()?;
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
        let public_host = match public.port() {
            Some(port) => format!("{}:{port}", public.host_str()?),
            None => public.host_str()?.to_string(),
        };
        (!host.eq_ignore_ascii_case(&public_host))
            .then(|| format!("{}://{host}{path}", public.scheme()))
    }

    /// A safe `rd` from the query, or `/`. It travels sealed in a cookie (the sign-in
    /// attempt's, or sign-out's), which browsers drop above 4 KB: a longer one keeps only
    /// its path, and failing that is `/`.
    pub(super) fn redirect_target(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> String {
        self.safe_target(&asked_redirect(req).unwrap_or_default(), req, client)
    }

    /// `asked` if it is a safe place to send the browser after sign-in or sign-out (this
    /// origin, or a host in `server.allowed_redirect_hosts`; never the gateway's own
    /// endpoints), else `/`.
    fn safe_target(&self, asked: &str, req: &Request<RequestBody>, client: &ClientInfo) -> String {
        let origin = self.origin(req.headers(), req.uri(), client);
        let rd = safe_redirect(asked, &origin, &self.config.server.allowed_redirect_hosts)
            .unwrap_or_else(|| {
                if !asked.is_empty() {
                    // The host only: a refused target's path or query may carry anything.
                    // `//evil`, `/\evil` and `https:evil` read as a browser would.
                    let spelled = asked.trim_start_matches(['/', '\\']);
                    let host = url::Url::parse(asked)
                        .ok()
                        .or_else(|| url::Url::parse(&format!("https://{spelled}")).ok());
                    let host = host.as_ref().and_then(|u| u.host_str()).unwrap_or("-");
                    tracing::info!(rd_host = %Clip(host), "redirect target refused (not this origin, nor a host in server.allowed_redirect_hosts): going to / instead");
                }
                "/"
            });
        // Never back to the gateway's own endpoints: `rd=/oauth2/start` after a sign-in, or
        // `/oauth2/sign_out` after a sign-out, would go round for ever (nginx's
        // `X-Auth-Request-Redirect $request_uri` names them when they are opened directly).
        let rd = if self.is_own_endpoint(rd, &origin) {
            "/"
        } else {
            rd
        };
        let path = rd.split(['?', '#']).next().unwrap_or("/");
        let kept = [rd, path]
            .into_iter()
            .find(|candidate| candidate.len() <= MAX_RD)
            .unwrap_or("/");
        kept.to_string()
    }

    /// Whether `target` (a path, or an absolute URL) is one of the gateway's own endpoints
    /// on this origin.
    fn is_own_endpoint(&self, target: &str, origin: &str) -> bool {
        let Some(url) = url::Url::parse(origin).ok().and_then(|o| {
            let url = o.join(target).ok()?;
            (url.origin() == o.origin()).then_some(url)
        }) else {
            return false;
        };
        // As the gateway will read it when the browser comes back (`%6Fauth2`, `..`).
        let Ok(path) = crate::policy::normalize(url.path()) else {
            return false;
        };
        let path = path.match_path();
        let server = &self.config.server;
        path == server.callback_path
            || path
                .strip_prefix(server.auth_prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The provider `/start` is asked for: `?provider=`, or the only one; `None` when
    /// there are several and none was named (the browser then chooses on the sign-in page).
    fn provider_asked(&self, req: &Request<RequestBody>) -> Result<Option<usize>, GatewayError> {
        match query_param(req.uri(), "provider") {
            Some(name) => self
                .providers
                .iter()
                .position(|p| p.config().name == name)
                .map(Some)
                .ok_or(GatewayError::UnknownProvider { name }),
            None if self.providers.len() == 1 => Ok(Some(0)),
            None => Ok(None),
        }
    }

    pub(super) fn start(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let Some(p) = self.provider_asked(req)? else {
            let rd = asked_redirect(req).unwrap_or_else(|| "/".into());
            return Ok(redirect(&format!(
                "{}/sign_in?rd={}",
                self.config.server.auth_prefix,
                url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
            )));
        };
        self.begin_sign_in(p, &asked_redirect(req).unwrap_or_default(), req, client)
    }

    /// A sign-in with provider `p`: seals the attempt (state, nonce, PKCE verifier and where
    /// to go after, `asked` if it is safe) in a cookie and sends the browser to the
    /// provider's authorization endpoint.
    fn begin_sign_in(
        &self,
        p: usize,
        asked: &str,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let provider = self.provider(p);
        if !provider.is_ready() {
            return Err(GatewayError::SignInUnavailable {
                reason: self.not_ready_reason(Some(p)),
            });
        }
        let now = oidc::unix_now();
        let origin = self.origin(req.headers(), req.uri(), client);
        let attrs = CookieAttrs {
            path: self.state_path.clone(),
            ..self.cookie_attrs(&origin)
        };
        // The state begins with the time so the oldest pending attempts sort first.
        let state = format!("{:012x}{}", now, oidc::random_token(16));
        let pending = PendingSignIn {
            nonce: oidc::random_token(16),
            verifier: oidc::random_token(32),
            rd: self.safe_target(asked, req, client),
            exp: now + STATE_TTL_SECS,
        };
        let redirect_uri = format!("{origin}{}", self.config.server.callback_path);
        let url = provider
            .authorize_url(&redirect_uri, &state, &pending.nonce, &pending.verifier)
            .map_err(|e| GatewayError::SignInUnavailable {
                reason: e.to_string(),
            })?;
        let cookie_name = format!("{}{state}", self.state_prefix);
        // Sealed for the provider: the callback learns from it which provider to ask.
        let sealed = self.sessions.codec().seal_for(
            p,
            &cookie_name,
            &serde_json::to_string(&pending).unwrap_or_default(),
        );
        let mut resp = redirect(url.as_str());
        let h = resp.headers_mut();
        // Cap the attempts one browser keeps: drop the oldest beyond the limit.
        let mut existing: Vec<&str> =
            codec::cookie_names_with_prefix(req.headers(), &self.state_prefix)
                .map(|(n, _)| n)
                .collect();
        existing.sort_unstable();
        let excess = (existing.len() + 1).saturating_sub(MAX_PENDING_SIGN_INS);
        for old in existing.iter().take(excess) {
            h.append(
                header::SET_COOKIE,
                codec::set_cookie(old, "", &attrs, Some(0)),
            );
        }
        h.append(
            header::SET_COOKIE,
            codec::set_cookie(&cookie_name, &sealed, &attrs, Some(STATE_TTL_SECS)),
        );
        Ok(resp)
    }

    /// The sign-in page: a button per provider offered (`?providers=a,b`, default all),
    /// under `server.sign_in_title` and `sign_in_logo_url`.
    pub(super) fn sign_in_page(&self, req: &Request<RequestBody>) -> Response<Body> {
        let rd = asked_redirect(req).unwrap_or_else(|| "/".into());
        let rd = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>();
        let wanted =
            query_param(req.uri(), "providers").or_else(|| query_param(req.uri(), "provider"));
        let wanted: Vec<&str> = wanted
            .as_deref()
            .map_or(Vec::new(), |w| w.split(',').collect());
        let mut offered: Vec<&Provider> = self
            .providers
            .iter()
            .map(|p| &**p)
            .filter(|p| wanted.contains(&p.config().name.as_str()))
            .collect();
        if offered.is_empty() {
            offered = self.providers.iter().map(|p| &**p).collect();
        }
        let server = &self.config.server;
        let buttons: String = offered
            .iter()
            .map(|p| {
                let mut href = format!("{}/start?rd={rd}", server.auth_prefix);
                if self.providers.len() > 1 {
                    href.push_str(&format!("&provider={}", p.config().name));
                }
                format!(
                    "<p><a class=\"button\" href=\"{}\">{}</a></p>",
                    escape(&href),
                    escape(&p.config().label)
                )
            })
            .collect();
        let logo = server.sign_in_logo_url.as_ref().map_or(String::new(), |u| {
            format!(
                "<p><img src=\"{}\" alt=\"\" style=\"max-height:4rem\"></p>",
                escape(u.as_str())
            )
        });
        let title = server.sign_in_title.as_deref().unwrap_or("Sign in");
        let mut resp = html_response(
            StatusCode::OK,
            title,
            &format!("{logo}<p>This application needs you to sign in.</p>{buttons}"),
        );
        if let Some(logo) = &server.sign_in_logo_url {
            // The page's policy allows nothing from outside; the logo's origin is let in.
            let policy = format!(
                "default-src 'none'; img-src {}; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
                logo.origin().ascii_serialization()
            );
            if let Ok(v) = HeaderValue::from_str(&policy) {
                resp.headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, v);
            }
        }
        resp
    }
}

/// Where the user asked to go after sign-in or sign-out: `?rd=`, or else the
/// `X-Auth-Request-Redirect` header, which an nginx in front sets to `$request_uri` when its
/// `error_page 401` sends the browser here (oauth2-proxy reads it the same way). Either is
/// checked by `safe_redirect` before it is followed.
fn asked_redirect(req: &Request<RequestBody>) -> Option<String> {
    query_param(req.uri(), "rd").or_else(|| {
        req.headers()
            .get("x-auth-request-redirect")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    })
}

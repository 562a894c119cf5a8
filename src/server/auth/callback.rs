//! Where a sign-in ends: the provider's callback, rate limited per client address
//! (`callback_limit`), the attempt's state checked and used once, the code exchanged, the ID
//! token verified and the session saved; a callback that comes again while signed in goes
//! on to the app. Never starts a sign-in, never refreshes.

use std::sync::Arc;

use http::header;
use http::{Request, Response};

use super::{append_cookies, query_param, Auth, GroupsForLog, PendingSignIn, STATE_TTL_SECS};
use crate::oidc;
use crate::proxy::{Body, ClientInfo, RequestBody};
use crate::server::pages::{is_api_client, redirect, GatewayError};
use crate::session::codec::{self, CookieAttrs};
use crate::session::Session;
use crate::telemetry::Clip;

impl Auth {
    /// The provider sends the browser back here. Rate limited per client address; the
    /// attempt's state cookie is deleted whatever comes of it.
    pub(super) async fn callback(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let address = super::callback_limit::client_address(
            client,
            req.headers(),
            &self.config.server.trusted_proxies,
        );
        if let Err(wait) = self.callback_limit.admit(address) {
            self.metrics.sign_in_failures.add(1);
            tracing::debug!(client = %address, "too many sign-in callbacks from one address: 429");
            return Err(GatewayError::TooManyCallbacks {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        let origin = self.origin(req.headers(), req.uri(), client);
        let state = query_param(req.uri(), "state").unwrap_or_default();
        let state_ok = (20..=80).contains(&state.len())
            && state
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let cookie_name = format!("{}{state}", self.state_prefix);
        let answer = self
            .end_sign_in_attempt(req, client, &origin, &state, state_ok, &cookie_name)
            .await;
        let mut resp = match answer {
            Ok(resp) => resp,
            Err(e) => e.into_response(
                is_api_client(req.headers()),
                Some(&self.config.server.auth_prefix),
            ),
        };
        let sent_cookie = state_ok
            && codec::cookie_names_with_prefix(req.headers(), &cookie_name)
                .any(|(n, _)| n == cookie_name);
        if sent_cookie {
            let state_attrs = CookieAttrs {
                path: self.state_path.clone(),
                ..self.cookie_attrs(&origin)
            };
            resp.headers_mut().append(
                header::SET_COOKIE,
                codec::set_cookie(&cookie_name, "", &state_attrs, Some(0)),
            );
        }
        Ok(resp)
    }

    /// Marks a sign-in attempt's state used: true the first time, false ever after (in this
    /// process, and with Redis at every replica). The state travels sealed in a cookie the
    /// browser keeps, so remembering it is the only way to void it; only states whose cookie
    /// opened get here, so nobody can fill the memory with made-up ones.
    async fn use_state(&self, state: &str) -> Result<bool, GatewayError> {
        if !self
            .used_states
            .entry(state.to_string())
            .or_insert(())
            .is_fresh()
        {
            return Ok(false);
        }
        self.sessions
            .try_lock(
                &format!("used-state:{state}"),
                "used",
                STATE_TTL_SECS * 1000,
            )
            .await
            .map_err(|e| GatewayError::SessionsUnavailable {
                reason: e.to_string(),
            })
    }

    /// The sign-in attempt a callback ends: checked, used up before the provider is asked (a
    /// failed code exchange must not leave it open for another try), its code exchanged.
    async fn end_sign_in_attempt(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
        origin: &str,
        state: &str,
        state_ok: bool,
        cookie_name: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let fail = |reason: &str| {
            self.metrics.sign_in_failures.add(1);
            tracing::warn!(reason, "sign-in callback rejected");
            GatewayError::SignInFailed {
                reason: reason.to_string(),
            }
        };
        let uri = req.uri();
        let now = oidc::unix_now();
        let sealed = codec::cookie_names_with_prefix(req.headers(), cookie_name)
            .find(|(n, _)| state_ok && *n == cookie_name)
            .map(|(_, v)| v);
        // Sealed for the provider the attempt went to: opening it says which one.
        let opened = sealed.and_then(|v| self.sessions.codec().open_any(cookie_name, v));
        let (p, pending) = match opened {
            Some((p, plain)) => (p, serde_json::from_str::<PendingSignIn>(&plain).ok()),
            None => (0, None),
        };
        let provider = self.provider(p).clone();

        if let Some(error) = query_param(uri, "error") {
            self.metrics.sign_in_failures.add(1);
            // The value is the client's: cut, and it must not start a log line of its own.
            tracing::info!(error = ?Clip(&error), "the identity provider refused the sign-in");
            // Anyone can send a browser here with words of their choosing ("your account is
            // locked, call ..."): the provider's words are shown, as the provider's, only for
            // an attempt this browser started here, still open and not used before.
            let ours = match &pending {
                Some(p) if p.exp > now => self.use_state(state).await.unwrap_or(false),
                _ => false,
            };
            if !ours {
                return Err(GatewayError::SignInFailed {
                    reason: "the sign-in was not completed".into(),
                });
            }
            return Err(GatewayError::ProviderRefused {
                error,
                description: query_param(uri, "error_description"),
            });
        }
        if !state_ok {
            return Err(fail("the sign-in response carries no valid state"));
        }
        if sealed.is_none() {
            // The back button to a callback already used, or a second tab's: a user who is
            // signed in goes on to the app rather than to an error page.
            if let Some(resp) = self.already_signed_in(req, client).await {
                return Ok(resp);
            }
            return Err(fail(
                "this sign-in attempt was not started here or has expired",
            ));
        }
        let pending = pending.ok_or_else(|| fail("this sign-in attempt's record is not valid"))?;
        if pending.exp <= now {
            return Err(fail("this sign-in attempt has expired"));
        }
        if !self.use_state(state).await? {
            if let Some(resp) = self.already_signed_in(req, client).await {
                return Ok(resp);
            }
            return Err(fail("this sign-in attempt has been used already"));
        }
        // RFC 9207: a provider that names itself in the response must be the one this
        // attempt went to (a mix-up between providers is refused before any code is sent).
        if let Some(iss) = query_param(uri, "iss") {
            if iss != provider.config().issuer {
                return Err(fail(&format!(
                    "the sign-in response comes from issuer {:?}, not the provider this sign-in went to",
                    Clip(&iss)
                )));
            }
        }
        let code =
            query_param(uri, "code").ok_or_else(|| fail("the sign-in response carries no code"))?;
        let redirect_uri = format!("{origin}{}", self.config.server.callback_path);
        let tokens = match provider
            .exchange_code(&code, &pending.verifier, &redirect_uri)
            .await
        {
            Ok(t) => t,
            Err(e) if e.oauth_error() == Some("invalid_client") => {
                self.metrics.sign_in_failures.add(1);
                tracing::error!(error = %e, "the identity provider refused this gateway's client credentials at sign-in: check provider.client_id and client_secret (or client_secret_file, client_auth)");
                return Err(GatewayError::ClientRefused {
                    reason: "invalid_client".into(),
                });
            }
            Err(e) if e.is_refusal() => {
                tracing::warn!(error = %e, "code exchange refused");
                return Err(fail(&format!(
                    "the identity provider did not accept the sign-in code ({})",
                    Clip(e.oauth_error().unwrap_or("refused"))
                )));
            }
            Err(e) => {
                tracing::warn!(error = %e, "code exchange failed");
                return Err(GatewayError::SignInUnavailable {
                    reason: e.to_string(),
                });
            }
        };
        let id_token = tokens.id_token.as_deref().ok_or_else(|| {
            fail("the identity provider sent no ID token (is the openid scope allowed?)")
        })?;
        let verified = match provider
            .verify_id_token(
                id_token,
                tokens.unreadable.as_deref(),
                oidc::IdTokenCheck::SignIn {
                    nonce: &pending.nonce,
                },
                &self.config.headers,
            )
            .await
        {
            Ok(v) => v,
            Err(e) if e.is_key_unavailable() => {
                // Refused, but as the provider's trouble (its JWKS does not show the key yet,
                // or cannot be fetched): the user may try again.
                tracing::warn!(error = %e, "sign-in callback: the ID token's key cannot be had now");
                return Err(GatewayError::SignInUnavailable {
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(fail(&format!("the ID token was not accepted: {e}"))),
        };
        if let Some(refusal) = self.email_refusal(&verified.principal, p) {
            self.metrics.sign_in_failures.add(1);
            tracing::info!(user = %Clip(&verified.principal.user), reason = ?refusal, "sign-in refused for the email");
            return Err(GatewayError::EmailNotVerified(refusal));
        }
        let max_lifetime = self.config.session.max_lifetime.as_secs();
        let mut session = Session {
            id: None,
            provider: p,
            principal: verified.principal,
            created: now,
            expires: now + max_lifetime,
            last_seen: 0,
            refresh_due: 0,
            tokens_expire: verified.exp,
            refresh_token: tokens.refresh_token,
            access_token: if self.keep_access_token {
                tokens.access_token
            } else {
                None
            },
            id_token: if self.keep_id_token(p) {
                Some(id_token.to_string())
            } else {
                None
            },
            nonce: verified.nonce,
        };
        session.refresh_due = self.refresh_due(now, session.tokens_expire, session.expires);
        let value = self.sessions.save(&mut session).await.map_err(|e| {
            GatewayError::SessionsUnavailable {
                reason: e.to_string(),
            }
        })?;
        self.cookie_store_fits(&value, &session.principal.user)?;
        self.metrics.sign_ins.add(1);
        tracing::info!(user = %Clip(&session.principal.user), groups = %GroupsForLog(&session.principal.groups), provider = %provider.config().name, "signed in");
        let mut resp = redirect(&pending.rd);
        let h = resp.headers_mut();
        let attrs = self.cookie_attrs(origin);
        for c in codec::set_chunked(
            req.headers(),
            &self.sessions.cookie_name,
            &value,
            &attrs,
            max_lifetime,
        ) {
            h.append(header::SET_COOKIE, c);
        }
        // The browser's next request brings this cookie: it is answered from the cache, as the
        // ones after it, instead of opening the cookie (and asking the store) once more.
        self.remember(value, Arc::new(self.live(session, None)));
        Ok(resp)
    }

    /// For a callback that comes again (the back button, a second tab) while the user is
    /// signed in: on to the app.
    async fn already_signed_in(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Option<Response<Body>> {
        let live = self
            .authenticate(req, client, crate::policy::ProviderSet::ALL)
            .await
            .ok()?;
        tracing::info!("a finished sign-in's callback again, while signed in: going to /");
        let mut resp = redirect("/");
        // A refresh on the way has a cookie to set.
        append_cookies(&mut resp, &live);
        Some(resp)
    }
}

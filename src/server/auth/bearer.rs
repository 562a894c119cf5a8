//! Bearer tokens (`Authorization: Bearer`): a token verified before is answered from the
//! caches without crypto (and checked again after a key is withdrawn); a new one is verified
//! against the provider's keys and Cognito's claim rules. Never touches cookies, never
//! refreshes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderMap};

use super::{Auth, AuthAnswer};
use crate::oidc::VerifyError;
use crate::server::live::LiveSession;
use crate::server::pages::GatewayError;
use crate::session::Session;

impl Auth {
    /// The principal behind a bearer token: verified before (no crypto), or verified now.
    pub(super) async fn bearer(
        &self,
        token: &str,
        now: u64,
    ) -> Result<Arc<LiveSession>, AuthAnswer> {
        match self.known_bearer(token, now) {
            Some(answer) => answer,
            // Boxed, as the other slow paths: inline, its state would make every request's
            // future (moved several times per request) tens of KB larger.
            None => Box::pin(self.verify_bearer(token, now)).await,
        }
    }

    /// A bearer token verified before (no allocation, no lock on a worker's memo hit).
    fn known_bearer(&self, token: &str, now: u64) -> Option<Result<Arc<LiveSession>, AuthAnswer>> {
        // A key withdrawn since: every token verified before is verified again (and one
        // signed with that key refused), not served from the cache for 5 more minutes.
        let generation = self.keys_generation();
        if generation != self.bearers_generation.load(Ordering::Acquire) {
            self.bearers.invalidate_all();
            self.bearer_front.changed();
            self.bearers_generation.store(generation, Ordering::Release);
            return None;
        }
        let live = self
            .bearer_front
            .get_or_else(now, token, || self.bearers.get(token))?;
        Some(if live.session.expires > now {
            Ok(live)
        } else {
            Err(AuthAnswer::Error(GatewayError::InvalidToken))
        })
    }

    /// The providers that may have issued `token`: the only one, or those whose issuer it
    /// names (its claim is checked again, with the signature, by the one that verifies it).
    fn bearer_candidates(&self, token: &str) -> Vec<usize> {
        if self.providers.len() == 1 {
            return vec![0];
        }
        let Some(iss) = crate::oidc::jwt::parse(token)
            .ok()
            .and_then(|t| t.claimed_issuer())
        else {
            return Vec::new();
        };
        (0..self.providers.len())
            .filter(|&p| self.providers[p].config().issuer == iss)
            .collect()
    }

    async fn verify_bearer(&self, token: &str, now: u64) -> Result<Arc<LiveSession>, AuthAnswer> {
        let candidates = self.bearer_candidates(token);
        if candidates.is_empty() {
            tracing::info!("bearer token rejected: it names the issuer of none of the providers (or no issuer)");
            return Err(AuthAnswer::Error(GatewayError::InvalidToken));
        }
        let mut refused = None;
        for p in candidates {
            match self.verify_bearer_with(p, token, now).await {
                Ok(live) => return Ok(live),
                Err(answer) => refused = Some(answer),
            }
        }
        Err(refused.unwrap_or(AuthAnswer::Error(GatewayError::InvalidToken)))
    }

    /// `token` verified by provider `p`'s keys and rules.
    async fn verify_bearer_with(
        &self,
        p: usize,
        token: &str,
        now: u64,
    ) -> Result<Arc<LiveSession>, AuthAnswer> {
        let unauthorized = || AuthAnswer::Error(GatewayError::InvalidToken);
        let provider = self.provider(p);
        let generation = self.keys_generation();
        let claims = match provider.verify_bearer(token, now).await {
            Ok(c) => c,
            // The keys are not loaded yet (the provider was down at start), or cannot be
            // fetched: the token may well be good, so a client must not throw it away.
            Err(VerifyError::Provider(e)) => {
                tracing::warn!(error = %e, "a bearer token cannot be checked now: the provider's keys cannot be had");
                return Err(AuthAnswer::Error(GatewayError::SignInUnavailable {
                    reason: e.to_string(),
                }));
            }
            Err(e) => {
                tracing::info!(error = %e, "bearer token rejected");
                return Err(unauthorized());
            }
        };
        let mut principal = provider.principal(&claims, &self.config.headers);
        if let Some(refusal) = self.email_refusal(&principal, p) {
            tracing::info!(reason = ?refusal, "bearer token refused for its email");
            return Err(AuthAnswer::Error(GatewayError::EmailNotVerified(refusal)));
        }
        if principal.user == principal.sub {
            // Cognito access tokens name the user in `username`.
            if let Some(u) = claims.get("username").and_then(|v| v.as_str()) {
                principal.user = u.to_string();
            }
        }
        let exp = claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(now);
        let session = Session {
            id: None,
            provider: p,
            principal,
            created: now,
            expires: exp,
            last_seen: 0,
            refresh_due: u64::MAX,
            tokens_expire: exp,
            // The token goes into the headers only: a copy here would double what each cached
            // token holds (the cache's key is the token), and a bearer session is never
            // stored, refreshed or signed out, so nothing would read it.
            refresh_token: None,
            access_token: None,
            id_token: None,
            nonce: None,
        };
        // With `pass_id_token` the client's `Authorization` is stripped; the upstream gets the
        // token the gateway verified in its place, whichever kind it is (as oauth2-proxy does).
        let id_token = self.config.headers.pass_id_token.then_some(token);
        let headers = self.identity_headers(&session, Some(token), id_token);
        let live = Arc::new(LiveSession {
            session,
            headers,
            set_cookies: None,
            renewing: Default::default(),
        });
        // Not kept when a key was withdrawn while it was checked (with the keys before).
        if self.keys_generation() == generation {
            self.bearers.insert(token.to_string(), live.clone());
        }
        Ok(live)
    }
}

pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
        Some(v[7..].trim())
    } else {
        None
    }
}

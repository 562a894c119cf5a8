//! Refreshing a session that is due: one refresh per session at a time (moka
//! `try_get_with`), a Redis lock across replicas (and waiting for another replica's result),
//! in the background while the provider is failing and the session within its grace, and
//! the refreshed session saved and remembered. Never signs anyone in, never reads a bearer
//! token.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::Request;

use super::{Auth, AuthAnswer, GroupsForLog};
use crate::oidc::{self, VerifyError};
use crate::policy::ProviderSet;
use crate::proxy::{ClientInfo, RequestBody};
use crate::server::live::LiveSession;
use crate::server::pages::GatewayError;
use crate::session::codec::{self, CookieAttrs};
use crate::session::{Session, StoreError};
use crate::telemetry::Clip;

/// How long a replica waits for another one's refresh of the same session (Redis).
/// The shortest a refresh lock is held for; longer when the provider's calls may take longer
/// (a refresh, then a JWKS fetch for its ID token: two calls of `provider.timeout`).
const REFRESH_LOCK_MS: u64 = 10_000;

impl Auth {
    /// One refresh per session at a time; everyone asking meanwhile gets its result.
    pub(super) async fn refresh(
        &self,
        cookie_value: &str,
        live: Arc<LiveSession>,
        req: &Request<RequestBody>,
        client: &ClientInfo,
        now: u64,
    ) -> Result<Arc<LiveSession>, AuthAnswer> {
        let headers = req.headers();
        let attrs = self.request_cookie_attrs(req, client);
        let grace = self.config.session.refresh_grace.as_secs();
        // One refresh per session and due time: a server-side session keeps its cookie across
        // refreshes, and its next refresh must not be answered by this one's memo.
        let key = format!("{}/{cookie_value}", live.session.refresh_due);
        for _ in 0..2 {
            let result = if self.provider_failing[live.session.provider].load(Ordering::Relaxed)
                && now < live.session.refresh_due + grace
            {
                // The provider is failing: a request does not wait for it (up to
                // `provider.timeout` each) while the session is within its grace. One
                // attempt per session runs in the background; a later request finds its result.
                match self.refreshed.get(&key).await {
                    Some(done) => Ok(done),
                    None => match self.background.get(&key) {
                        Some(Background::SignedOut) => Err(Arc::new(RefreshFailure::SignedOut)),
                        Some(Background::Running) => return Ok(live),
                        None => {
                            self.refresh_in_background(
                                key,
                                cookie_value,
                                live.clone(),
                                headers,
                                &attrs,
                                now,
                            );
                            return Ok(live);
                        }
                    },
                }
            } else {
                self.refreshed
                    .try_get_with(
                        key.clone(),
                        self.refresh_once(live.clone(), headers, attrs.clone(), now),
                    )
                    .await
            };
            match result {
                // A session kept alive through a provider outage is only good until its grace ends;
                // then ask the provider again (it may be back) before giving up.
                Ok(kept)
                    if kept.session.refresh_due <= now
                        && now >= kept.session.refresh_due + grace =>
                {
                    self.refreshed.invalidate(&key).await;
                    continue;
                }
                Ok(live) => {
                    // A server-side session keeps its cookie: later requests with it must
                    // find the refreshed session, not the one that was due. One kept through
                    // an outage is not remembered again: the entry from the store runs out
                    // after `cache_ttl`, and a sign-out at another replica then bites here.
                    if !self.sessions.is_stateless() && live.session.refresh_due > now {
                        self.remember(cookie_value.to_string(), live.for_later());
                    }
                    return Ok(live);
                }
                Err(answer) => {
                    return match &*answer {
                        RefreshFailure::SignedOut | RefreshFailure::KeyUnavailable(_) => {
                            self.forget(cookie_value);
                            Err(AuthAnswer::SignIn {
                                clear: self.clear_session_cookies(headers, &attrs),
                                accepted: ProviderSet::ALL,
                            })
                        }
                        RefreshFailure::Store(e) => Err(GatewayError::SessionsUnavailable {
                            reason: e.to_string(),
                        }
                        .into()),
                    }
                }
            }
        }
        self.forget(cookie_value);
        Err(AuthAnswer::SignIn {
            clear: self.clear_session_cookies(headers, &attrs),
            accepted: ProviderSet::ALL,
        })
    }

    /// `refresh_once` in a task of its own, its result memoised in `refreshed` as a request's
    /// would be (and joined with one already in flight for the same key). The request that
    /// started it has gone on with the session as it was, so the result is left where the
    /// next request with the same cookie finds it: a refreshed session in `decoded` (for the
    /// cookie store, with the cookie to set), an ended one in `background`.
    fn refresh_in_background(
        &self,
        key: String,
        cookie_value: &str,
        live: Arc<LiveSession>,
        headers: &HeaderMap,
        attrs: &CookieAttrs,
        now: u64,
    ) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        self.background.insert(key.clone(), Background::Running);
        let (headers, attrs) = (headers.clone(), attrs.clone());
        let cookie_value = cookie_value.to_string();
        tokio::spawn(async move {
            let attempt = me.refresh_once(live, &headers, attrs, now);
            match me.refreshed.try_get_with(key.clone(), attempt).await {
                Ok(live) => {
                    me.background.invalidate(&key);
                    // Refreshed, not merely kept through the outage.
                    if live.session.refresh_due > now {
                        let later = if me.sessions.is_stateless() {
                            live
                        } else {
                            live.for_later()
                        };
                        me.remember(cookie_value, later);
                    }
                }
                Err(failure) => match *failure {
                    RefreshFailure::SignedOut => {
                        me.forget(&cookie_value);
                        me.background.insert(key, Background::SignedOut);
                    }
                    _ => me.background.invalidate(&key),
                },
            }
        });
    }

    async fn refresh_once(
        &self,
        live: Arc<LiveSession>,
        headers: &HeaderMap,
        attrs: CookieAttrs,
        now: u64,
    ) -> Result<Arc<LiveSession>, RefreshFailure> {
        let old = &live.session;
        let Some(refresh_token) = old.refresh_token.clone() else {
            // Nothing to refresh with: the session lives to its max lifetime.
            let mut s = old.clone();
            s.refresh_due = s.expires;
            return Ok(Arc::new(self.live(s, None)));
        };
        let lock_key = old.id.clone();
        let lock_owner = oidc::random_token(12);
        if let Some(id) = &lock_key {
            match self
                .sessions
                .try_lock(id, &lock_owner, self.refresh_lock_ms())
                .await
            {
                Ok(true) => {}
                Ok(false) => return self.await_other_replica(old, now).await,
                Err(e) => return Err(RefreshFailure::Store(e)),
            }
        }
        let outcome = self.provider(old.provider).refresh(&refresh_token).await;
        let failing = &self.provider_failing[old.provider];
        if outcome.as_ref().is_err_and(|e| !e.refuses_grant()) {
            if !failing.swap(true, Ordering::Relaxed) {
                tracing::warn!("the identity provider is failing: due refreshes are tried in the background while sessions are within session.refresh_grace");
            }
        } else if failing.swap(false, Ordering::Relaxed) {
            tracing::info!("the identity provider answers refreshes again");
        }
        // The provider's trouble (unreachable, 5xx, 429, its keys not to be had): the session
        // keeps working within its grace.
        let survive = |error: &dyn std::fmt::Display| {
            self.metrics.refresh_failures.add(1);
            let grace_ends = old.refresh_due + self.config.session.refresh_grace.as_secs();
            if now < grace_ends {
                tracing::warn!(user = %Clip(&old.principal.user), error = %error, grace_left_s = grace_ends - now,
                    "cannot refresh now; the session keeps working within the grace period");
                Ok(live.clone())
            } else {
                tracing::warn!(user = %Clip(&old.principal.user), error = %error, "cannot refresh and the grace period is over: signing out");
                Err(RefreshFailure::SignedOut)
            }
        };
        let result = match outcome {
            Ok(tokens) => match self
                .refreshed_session(old, tokens, headers, &attrs, now)
                .await
            {
                Err(RefreshFailure::KeyUnavailable(e)) => survive(&e),
                other => other,
            },
            Err(e) if e.refuses_grant() => {
                // invalid_grant: the user was disabled or deleted, or the token revoked.
                self.metrics.refresh_failures.add(1);
                tracing::info!(user = %Clip(&old.principal.user), error = %e, "refresh refused: session ended");
                let _ = self.sessions.delete(old).await;
                Err(RefreshFailure::SignedOut)
            }
            Err(e) => survive(&e),
        };
        if let Some(id) = &lock_key {
            self.sessions.unlock(id, &lock_owner).await;
        }
        result
    }

    /// Another replica holds the refresh lock: wait for its result in the store.
    async fn await_other_replica(
        &self,
        old: &Session,
        now: u64,
    ) -> Result<Arc<LiveSession>, RefreshFailure> {
        let Some(id) = &old.id else {
            return Err(RefreshFailure::SignedOut);
        };
        let sealed = self.sessions.codec().seal(&self.sessions.cookie_name, id);
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match self.sessions.load(&sealed, now).await {
                Ok(Some(s)) if s.refresh_due > now => return Ok(Arc::new(self.live(s, None))),
                Ok(Some(_)) => continue,
                Ok(None) => return Err(RefreshFailure::SignedOut),
                Err(e) => return Err(RefreshFailure::Store(e)),
            }
        }
        // The other replica is slow: carry on with what we have for now.
        Ok(Arc::new(self.live(old.clone(), None)))
    }

    async fn refreshed_session(
        &self,
        old: &Session,
        tokens: oidc::TokenResponse,
        headers: &HeaderMap,
        attrs: &CookieAttrs,
        now: u64,
    ) -> Result<Arc<LiveSession>, RefreshFailure> {
        self.metrics.refreshes.add(1);
        let mut s = old.clone();
        match tokens.id_token.as_deref() {
            Some(id_token) => match self
                .provider(old.provider)
                .verify_id_token(
                    id_token,
                    tokens.unreadable.as_deref(),
                    oidc::IdTokenCheck::Refresh {
                        sub: &old.principal.sub,
                        nonce: old.nonce.as_deref(),
                    },
                    &self.config.headers,
                )
                .await
            {
                Ok(v) if self.email_refusal(&v.principal, old.provider).is_some() => {
                    tracing::info!(user = %Clip(&old.principal.user), "the refreshed ID token's email is not one this gateway accepts: session ended");
                    let _ = self.sessions.delete(old).await;
                    return Err(RefreshFailure::SignedOut);
                }
                Ok(v) => {
                    s.principal = v.principal;
                    s.tokens_expire = v.exp;
                }
                // Signed with a key the provider's JWKS does not show (yet), or the JWKS
                // unreachable: not the session's fault.
                Err(e) if e.is_key_unavailable() => return Err(RefreshFailure::KeyUnavailable(e)),
                Err(e) => {
                    tracing::warn!(user = %Clip(&old.principal.user), error = %e, "refreshed ID token rejected: session ended");
                    let _ = self.sessions.delete(old).await;
                    return Err(RefreshFailure::SignedOut);
                }
            },
            None => s.tokens_expire = now + tokens.expires_in.unwrap_or(3600),
        }
        if let Some(rt) = tokens.refresh_token {
            s.refresh_token = Some(rt);
        }
        if self.keep_access_token {
            s.access_token = tokens.access_token.or(s.access_token);
        }
        if self.keep_id_token(old.provider) {
            s.id_token = tokens.id_token.or(s.id_token);
        }
        s.refresh_due = self.refresh_due(now, s.tokens_expire, s.expires);
        let Some(value) = self
            .sessions
            .save_refreshed(&s)
            .await
            .map_err(RefreshFailure::Store)?
        else {
            tracing::info!(user = %Clip(&s.principal.user), "signed out while the refresh was under way: the sign-out stands");
            return Err(RefreshFailure::SignedOut);
        };
        if self.cookie_store_fits(&value, &s.principal.user).is_err() {
            // Signed out: the next sign-in ends at the page that says why, not in a loop.
            return Err(RefreshFailure::SignedOut);
        }
        tracing::info!(user = %Clip(&s.principal.user), groups = %GroupsForLog(&s.principal.groups), "session refreshed");
        let set = self.sessions.is_stateless().then(|| {
            codec::set_chunked(
                headers,
                &self.sessions.cookie_name,
                &value,
                attrs,
                s.expires.saturating_sub(now),
            )
        });
        let live = Arc::new(self.live(s, set));
        self.remember(value, live.for_later());
        Ok(live)
    }

    fn refresh_lock_ms(&self) -> u64 {
        let timeout = self.providers.iter().map(|p| p.config().timeout).max();
        let calls = 2 * timeout.unwrap_or_default() + Duration::from_secs(2);
        (calls.as_millis() as u64).max(REFRESH_LOCK_MS)
    }

    pub(super) fn refresh_due(&self, now: u64, tokens_expire: u64, expires: u64) -> u64 {
        let by_interval = now + self.config.session.refresh_interval.as_secs();
        // Refresh a little before the tokens lapse, never more often than every 10 s.
        let by_tokens = tokens_expire.saturating_sub(30).max(now + 10);
        by_interval.min(by_tokens).min(expires)
    }
}

#[derive(Clone, Copy)]
pub(super) enum Background {
    Running,
    SignedOut,
}

enum RefreshFailure {
    SignedOut,
    Store(StoreError),
    /// The refreshed ID token's key cannot be had now; `refresh_once` treats it as an outage.
    KeyUnavailable(VerifyError),
}

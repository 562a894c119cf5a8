//! `session.idle_timeout`: a session without a request for that long is ended; a session in
//! use has its last-seen stamp renewed, written at most every tenth of the timeout (one
//! store write, or for the cookie store one re-sealed cookie), never on every request.
//! Never refreshes tokens, never decides who may pass.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::Request;

use super::{Auth, AuthAnswer};
use crate::policy::ProviderSet;
use crate::proxy::{ClientInfo, RequestBody};
use crate::server::live::LiveSession;
use crate::session::codec;
use crate::session::Idle;
use crate::telemetry::Clip;

impl Auth {
    /// Where the session stands against `session.idle_timeout`; `Fresh` (the hot path: one
    /// comparison) without one. Only one request gets `RenewDue` for a session: the
    /// others meanwhile go on with it as it is.
    pub(super) fn idle_state(&self, live: &LiveSession, now: u64) -> Idle {
        let Some(idle) = self.config.session.idle_timeout else {
            return Idle::Fresh;
        };
        let idle = idle.as_secs();
        match live.session.idle(now, idle, renew_every(idle)) {
            Idle::RenewDue if live.renewing.swap(true, Ordering::Relaxed) => Idle::Fresh,
            state => state,
        }
    }

    /// Ends an idle session (`Idle::Ended`) or renews its stamp (`Idle::RenewDue`).
    pub(super) async fn mind_idle(
        &self,
        state: Idle,
        cookie_value: &str,
        live: Arc<LiveSession>,
        req: &Request<RequestBody>,
        client: &ClientInfo,
        now: u64,
    ) -> Result<Arc<LiveSession>, AuthAnswer> {
        match state {
            Idle::Fresh => Ok(live),
            Idle::Ended => {
                if let Some(fresher) = self.renewed_elsewhere(cookie_value, &live, now).await {
                    return Ok(fresher);
                }
                Err(self.end_idle(cookie_value, &live, req, client).await)
            }
            Idle::RenewDue => self.renew(cookie_value, live, req, client, now).await,
        }
    }

    /// A server-side session this replica holds a copy of (up to `cache_ttl` old) may have
    /// been renewed at another replica: the store has the last word before it is ended.
    async fn renewed_elsewhere(
        &self,
        cookie_value: &str,
        live: &LiveSession,
        now: u64,
    ) -> Option<Arc<LiveSession>> {
        if self.sessions.is_stateless() {
            return None;
        }
        let stored = self.sessions.load(cookie_value, now).await.ok()??;
        let idle = self.config.session.idle_timeout?.as_secs();
        if stored.last_seen <= live.session.last_seen
            || stored.idle(now, idle, renew_every(idle)) == Idle::Ended
        {
            return None;
        }
        let fresher = Arc::new(self.live(stored, None));
        self.remember(cookie_value.to_string(), fresher.clone());
        Some(fresher)
    }

    async fn end_idle(
        &self,
        cookie_value: &str,
        live: &LiveSession,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> AuthAnswer {
        tracing::info!(user = %Clip(&live.session.principal.user), "session ended: unused for session.idle_timeout");
        if let Err(e) = self.sessions.delete(&live.session).await {
            tracing::warn!(error = %e, "could not delete an idle session from the store; it expires there by itself");
        }
        self.forget(cookie_value);
        AuthAnswer::SignIn {
            clear: self
                .clear_session_cookies(req.headers(), &self.request_cookie_attrs(req, client)),
            accepted: ProviderSet::ALL,
        }
    }

    async fn renew(
        &self,
        cookie_value: &str,
        live: Arc<LiveSession>,
        req: &Request<RequestBody>,
        client: &ClientInfo,
        now: u64,
    ) -> Result<Arc<LiveSession>, AuthAnswer> {
        let mut session = live.session.clone();
        session.last_seen = now;
        let value = match self.sessions.save_refreshed(&session).await {
            Ok(Some(value)) => value,
            // Signed out meanwhile (at another replica): the sign-out stands.
            Ok(None) => {
                self.forget(cookie_value);
                return Err(AuthAnswer::SignIn {
                    clear: self.clear_session_cookies(
                        req.headers(),
                        &self.request_cookie_attrs(req, client),
                    ),
                    accepted: ProviderSet::ALL,
                });
            }
            // The session is still within its idle time: a later request tries again.
            Err(e) => {
                tracing::warn!(error = %e, "could not renew a session's last-seen stamp; trying again at a later request");
                live.renewing.store(false, Ordering::Relaxed);
                return Ok(live);
            }
        };
        let stateless = self.sessions.is_stateless();
        let set_cookies = stateless.then(|| {
            codec::set_chunked(
                req.headers(),
                &self.sessions.cookie_name,
                &value,
                &self.request_cookie_attrs(req, client),
                session.expires.saturating_sub(now),
            )
        });
        let renewed = Arc::new(LiveSession {
            session,
            headers: live.headers.clone(),
            set_cookies,
            renewing: Default::default(),
        });
        // The cookie store's renewed session has a cookie of its own; a server-side one
        // keeps its cookie, whose later requests must find the new stamp.
        let key = if stateless {
            value
        } else {
            cookie_value.to_string()
        };
        self.remember(key, renewed.for_later());
        Ok(renewed)
    }
}

/// How often a session in use gets its stamp written: a tenth of the timeout (so it ends
/// after between nine and ten tenths of it unused), at least every second.
fn renew_every(idle: u64) -> u64 {
    (idle / 10).max(1)
}

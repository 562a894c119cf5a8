//! `LiveSession`: a session as the request path uses it, decoded, with its upstream headers
//! built. Never loads, refreshes or checks a session itself.
//!
//! It lives apart from `auth` so that dependencies point one way: `auth` keeps its caches
//! behind `front`'s per-thread memo, and both hold `LiveSession`s. Declared in `auth`, it made
//! `front` import `auth` while `auth` imported `front`, a circle; now `auth` uses `front` and
//! `live`, `front` uses `live`, and `live` uses neither.

use std::sync::Arc;

use http::header::HeaderValue;

use crate::identity::IdentityHeaders;
use crate::session::Session;

/// A session ready for the request path: decoded, with its upstream headers built.
pub struct LiveSession {
    pub session: Session,
    pub headers: IdentityHeaders,
    /// Cookies to send back when this request changed the session (a refresh).
    pub set_cookies: Option<Vec<HeaderValue>>,
    /// A request has taken on renewing this session's last-seen stamp
    /// (`session.idle_timeout`): the others go on without writing it again.
    pub renewing: std::sync::atomic::AtomicBool,
}

impl LiveSession {
    #[cfg(test)]
    pub(super) fn for_test(user: &str) -> LiveSession {
        LiveSession {
            session: Session {
                id: None,
                provider: 0,
                principal: crate::identity::Principal {
                    sub: user.into(),
                    user: user.into(),
                    email: None,
                    email_verified: None,
                    preferred_username: None,
                    groups: Vec::new(),
                    mapped: Default::default(),
                },
                created: 0,
                expires: u64::MAX,
                last_seen: 0,
                refresh_due: u64::MAX,
                tokens_expire: u64::MAX,
                refresh_token: None,
                access_token: None,
                id_token: None,
                nonce: None,
            },
            headers: IdentityHeaders::default(),
            set_cookies: None,
            renewing: Default::default(),
        }
    }

    /// The same session for later requests, which have nothing to set.
    pub(super) fn for_later(&self) -> Arc<LiveSession> {
        Arc::new(LiveSession {
            session: self.session.clone(),
            headers: self.headers.clone(),
            set_cookies: None,
            renewing: Default::default(),
        })
    }
}

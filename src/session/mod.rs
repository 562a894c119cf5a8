//! Sessions: the record, its cookie codec (AES-256-GCM, chunked above ~3.8 KB) and the
//! stores: `cookie` (the sealed record is the cookie), `memory` (records packed: tokens as
//! bytes) and `redis` (the cookie is a sealed random id). Never decides who may pass.

pub mod codec;
mod pack;
mod store;

use serde::{Deserialize, Serialize};

use crate::config::{SessionConfig, StoreKind};
use crate::identity::Principal;
pub use codec::{Codec, CookieAttrs};
use store::Store;
pub use store::StoreError;

/// One signed-in person's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Server-side stores: the random id the cookie carries. Not part of the record.
    #[serde(skip)]
    pub id: Option<String>,
    /// The provider it was signed in with: its place in `Config::providers`. Not part of the
    /// record: what the record is bound to (`binding`) says it.
    #[serde(skip)]
    pub provider: usize,
    pub principal: Principal,
    /// Unix seconds of sign-in (`auth_time` when the provider gives it).
    pub created: u64,
    /// Sign in again after this (created + max_lifetime).
    pub expires: u64,
    /// Unix seconds of the last request that renewed the session's idle time
    /// (`session.idle_timeout`); written at most every tenth of it. 0: `created`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_seen: u64,
    /// Re-check with the provider (refresh grant) at or after this.
    pub refresh_due: u64,
    /// When the ID/access tokens expire.
    pub tokens_expire: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Kept only when a header needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The sign-in's ID-token nonce: a refreshed ID token that carries a nonce must carry this
    /// one (OIDC Core 12.2). Absent in sessions from before it was kept (then not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a session stands against `session.idle_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Used recently enough; nothing to write.
    Fresh,
    /// Still alive, and its last-seen stamp is old enough to be renewed.
    RenewDue,
    /// Unused for `idle_timeout`: ended.
    Ended,
}

impl Session {
    /// Against `idle` seconds without a request, the stamp renewed every `renew_every`.
    pub fn idle(&self, now: u64, idle: u64, renew_every: u64) -> Idle {
        let seen = self.last_seen.max(self.created);
        if now >= seen.saturating_add(idle) {
            Idle::Ended
        } else if now >= seen.saturating_add(renew_every) {
            Idle::RenewDue
        } else {
            Idle::Fresh
        }
    }
}

/// A session as sealed in a cookie or kept in a store: with what it is bound to.
#[derive(Serialize)]
struct RecordOut<'a> {
    #[serde(flatten)]
    session: &'a Session,
    bound_to: &'a str,
}

#[derive(Deserialize)]
struct RecordIn {
    #[serde(flatten)]
    session: Session,
    /// Absent in records written before sessions were bound: those need a new sign-in.
    #[serde(default)]
    bound_to: String,
}

/// Sessions in and out of cookies and stores.
pub struct Sessions {
    /// Swapped whole when the secret file changes.
    codec: arc_swap::ArcSwap<Codec>,
    store: Store,
    pub cookie_name: String,
    /// Seconds a session cookie lives in the browser (max_lifetime).
    pub max_age: u64,
    /// Each provider's issuer and client id (`binding`), in `Config::providers`' order: a
    /// session is for one of them.
    bound_to: Vec<String>,
}

/// What sessions, state and sign-out cookies are bound to: a provider's issuer and this
/// gateway's client id there. Gateways in front of different apps may share a session secret (one
/// secret in a cluster, copied configs); a session signed in for one app must not open
/// another.
pub fn binding(issuer: &str, client_id: &str) -> String {
    format!("{issuer} {client_id}")
}

impl Sessions {
    /// Sessions for `bound_to` (`binding` of each provider): sealed for one, and kept with
    /// it in a store.
    pub fn new(config: &SessionConfig, bound_to: &[String]) -> Result<Sessions, StoreError> {
        let secret = config.secret.as_ref().ok_or(StoreError::NoSecret)?;
        let codec = Codec::new(
            &secret.0,
            config.previous_secret.as_ref().map(|s| s.0.as_slice()),
        )
        .bound_to(bound_to);
        let store = match config.store {
            StoreKind::Cookie => Store::Cookie,
            StoreKind::Memory => Store::memory(config),
            StoreKind::Redis => Store::redis(config)?,
        };
        Ok(Sessions {
            codec: arc_swap::ArcSwap::from_pointee(codec),
            store,
            cookie_name: config.cookie_name.clone(),
            max_age: config.max_lifetime.as_secs(),
            bound_to: bound_to.to_vec(),
        })
    }

    pub fn codec(&self) -> arc_swap::Guard<std::sync::Arc<Codec>> {
        self.codec.load()
    }

    /// Seals with `secret` from now on; cookies sealed with the secret it replaces still open.
    /// Returns false when the secret did not change.
    pub fn rotate_secret(&self, secret: &[u8]) -> bool {
        let current = self.codec.load();
        if current.current_secret() == secret {
            return false;
        }
        self.codec
            .store(std::sync::Arc::new(current.rotated_to(secret)));
        true
    }

    /// Whether the cookie carries the whole session (no server-side state).
    pub fn is_stateless(&self) -> bool {
        matches!(self.store, Store::Cookie)
    }

    /// Whether a session cookie opens with the secret or the previous one (it may still name
    /// a session that has ended).
    pub fn opens(&self, cookie_value: &str) -> bool {
        self.codec
            .load()
            .open(&self.cookie_name, cookie_value)
            .is_some()
    }

    /// The session a cookie value stands for; `None` when it is not ours, is gone, or has expired.
    pub async fn load(&self, cookie_value: &str, now: u64) -> Result<Option<Session>, StoreError> {
        let Some((at, plain)) = self.codec.load().open_any(&self.cookie_name, cookie_value) else {
            return Ok(None);
        };
        let session = match &self.store {
            Store::Cookie => self.session_in(&plain, at),
            server_side => match server_side.get(&plain).await? {
                Some(json) => self.session_in(&json, at).map(|mut s| {
                    s.id = Some(plain);
                    s
                }),
                None => None,
            },
        };
        Ok(session.filter(|s| s.expires > now))
    }

    fn record(&self, session: &Session) -> Result<String, StoreError> {
        let bound_to = self
            .bound_to
            .get(session.provider)
            .ok_or_else(|| StoreError::Encode("a session of no configured provider".into()))?;
        serde_json::to_string(&RecordOut { session, bound_to })
            .map_err(|e| StoreError::Encode(e.to_string()))
    }

    /// The session in a record whose cookie opened in context `at` (provider `at`), if the
    /// record is bound to that provider too.
    fn session_in(&self, json: &str, at: usize) -> Option<Session> {
        let bound_to = self.bound_to.get(at)?;
        serde_json::from_str::<RecordIn>(json)
            .ok()
            .filter(|r| r.bound_to == *bound_to)
            .map(|r| Session {
                provider: at,
                ..r.session
            })
    }

    /// Stores the session; returns the cookie value to set. A session without an id gets a
    /// fresh random one (a new id at every sign-in: no fixation).
    pub async fn save(&self, session: &mut Session) -> Result<String, StoreError> {
        let json = self.record(session)?;
        match &self.store {
            Store::Cookie => {
                Ok(self
                    .codec
                    .load()
                    .seal_for(session.provider, &self.cookie_name, &json))
            }
            server_side => {
                let id = session
                    .id
                    .get_or_insert_with(|| crate::oidc::random_token(32))
                    .clone();
                let ttl = session
                    .expires
                    .saturating_sub(crate::oidc::unix_now())
                    .max(1);
                server_side.put(&id, &json, ttl).await?;
                Ok(self
                    .codec
                    .load()
                    .seal_for(session.provider, &self.cookie_name, &id))
            }
        }
    }

    /// Stores a refreshed `session` over its earlier record: the cookie value to send (as
    /// `save`), or `None` when the record is gone meanwhile (signed out while the refresh was
    /// with the provider), and then nothing is stored: the sign-out stands.
    pub async fn save_refreshed(&self, session: &Session) -> Result<Option<String>, StoreError> {
        let json = self.record(session)?;
        match (&self.store, &session.id) {
            (Store::Cookie, _) | (_, None) => Ok(Some(self.codec.load().seal_for(
                session.provider,
                &self.cookie_name,
                &json,
            ))),
            (server_side, Some(id)) => {
                let ttl = session
                    .expires
                    .saturating_sub(crate::oidc::unix_now())
                    .max(1);
                Ok(server_side.replace(id, &json, ttl).await?.then(|| {
                    self.codec
                        .load()
                        .seal_for(session.provider, &self.cookie_name, id)
                }))
            }
        }
    }

    /// Ends a session everywhere it is stored.
    pub async fn delete(&self, session: &Session) -> Result<(), StoreError> {
        match (&self.store, &session.id) {
            (Store::Cookie, _) | (_, None) => Ok(()),
            (server_side, Some(id)) => server_side.delete(id).await,
        }
    }

    /// A short-lived lock on a session id across replicas (Redis); always granted elsewhere.
    /// `owner` is a token unique to this attempt: `unlock` releases only a lock it still holds.
    pub async fn try_lock(&self, key: &str, owner: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        self.store.try_lock(key, owner, ttl_ms).await
    }

    pub async fn unlock(&self, key: &str, owner: &str) {
        self.store.unlock(key, owner).await
    }

    /// Ends every stored session of the person with subject `sub` (an admin disabled or
    /// deleted them): how many. The cookie store keeps none: 0, the sessions end at their next
    /// refresh instead.
    pub async fn end_sessions_of(&self, sub: &str) -> Result<usize, StoreError> {
        self.store.end_sessions_of(sub).await
    }

    /// Whether the store answers (for `/ready`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

#[cfg(test)]
mod tests;

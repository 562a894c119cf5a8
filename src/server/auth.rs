//! Sign-in on the request path: the session behind a cookie (decoded-session cache first,
//! so a signed-in request does no crypto and no provider call), bearer tokens, refresh when
//! due (single-flight), and the sign-in endpoints: start, callback, sign-in page, sign-out,
//! userinfo, forward-auth and the assertion JWKS.

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::callback_limit::CallbackLimit;
use super::pages::{escape, html_response, is_api_client, json_response, redirect, GatewayError};
use crate::config::{Config, HeaderPreset, ProviderKind, StoreKind};
use crate::identity::{
    AssertionSigner, EmailRefusal, IdentityHeaders, Principal, TokensForHeaders,
};
use crate::oidc::{self, jwt, Provider, VerifyError};
use crate::policy::{safe_redirect, RouteRule};
use crate::proxy::{full, Body, ClientInfo, RequestBody};
use crate::session::codec::{self, CookieAttrs};
use crate::session::{Session, Sessions, StoreError};
use crate::telemetry::{Clip, Metrics};

/// Pending sign-ins (state cookies) one browser may have at once.
const MAX_PENDING_SIGN_INS: usize = 5;
/// How long a sign-in attempt may take at the provider.
const STATE_TTL_SECS: u64 = 600;
/// The longest `rd` kept: sealed (base64, plus the nonce and PKCE verifier) it still fits a
/// cookie under browsers' 4 KB.
const MAX_RD: usize = 2048;
/// How long a refreshed session answers for its old cookie, and how often a provider that
/// is down is asked again for one session.
const REFRESH_MEMO: Duration = Duration::from_secs(30);
/// How long a replica waits for another one's refresh of the same session (Redis).
/// The shortest a refresh lock is held for; longer when the provider's calls may take longer
/// (a refresh, then a JWKS fetch for its ID token: two calls of `provider.timeout`).
const REFRESH_LOCK_MS: u64 = 10_000;
/// How long a sign-out waits for the refresh token's revocation before it answers.
const REVOKE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signer(#[from] crate::identity::SignerError),
    #[error("headers.signing_key_file: cannot read {path}: {reason}")]
    SigningKey { path: String, reason: String },
}

/// Hashes a session cookie by its length and its last `TAIL` bytes, so a lookup does not
/// hash KBs: a sealed value ends in its AES-GCM tag (random per value), and equality still
/// compares the whole value. Used with `String` keys looked up by `&str`, which both hash
/// as one `write` of the bytes and a `write_u8`.
#[derive(Clone, Default)]
struct TailHash(foldhash::fast::RandomState);

const TAIL: usize = 32;

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(foldhash::fast::FoldHasher<'static>);

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write_usize(bytes.len());
        self.0.write(&bytes[bytes.len().saturating_sub(TAIL)..]);
    }

    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// A session ready for the request path: decoded, with its upstream headers built.
pub struct LiveSession {
    pub session: Session,
    pub headers: IdentityHeaders,
    /// Cookies to send back when this request changed the session (a refresh).
    pub set_cookies: Option<Vec<HeaderValue>>,
}

impl LiveSession {
    #[cfg(test)]
    pub(super) fn for_test(user: &str) -> LiveSession {
        LiveSession {
            session: Session {
                id: None,
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
                refresh_due: u64::MAX,
                tokens_expire: u64::MAX,
                refresh_token: None,
                access_token: None,
                id_token: None,
            },
            headers: IdentityHeaders::default(),
            set_cookies: None,
        }
    }

    /// The same session for later requests, which have nothing to set.
    fn for_later(&self) -> Arc<LiveSession> {
        Arc::new(LiveSession {
            session: self.session.clone(),
            headers: self.headers.clone(),
            set_cookies: None,
        })
    }
}

/// Why a request could not be authenticated.
pub enum AuthAnswer {
    /// No usable session: browsers go to sign-in, programs get 401. Cookies to delete ride along.
    SignIn {
        clear: Vec<HeaderValue>,
    },
    Error(GatewayError),
}

impl From<GatewayError> for AuthAnswer {
    fn from(e: GatewayError) -> Self {
        AuthAnswer::Error(e)
    }
}

#[derive(Serialize, Deserialize)]
struct PendingSignIn {
    nonce: String,
    verifier: String,
    rd: String,
    exp: u64,
}

pub struct Auth {
    config: Arc<Config>,
    provider: Arc<Provider>,
    sessions: Sessions,
    /// The `alb` preset's assertion signer; replaced when `headers.signing_key_file` changes.
    signer: Option<ArcSwap<AssertionSigner>>,
    metrics: Arc<Metrics>,
    /// Decoded sessions by cookie value. Change it only through `remember` and `forget`,
    /// which tell `front`.
    decoded: moka::sync::Cache<String, Arc<LiveSession>, TailHash>,
    /// Each thread's memo of the last sessions it took from `decoded`.
    front: super::front::Front,
    /// Refreshes in flight or just done, by the cookie value that asked: one refresh per
    /// session at a time, and the refreshed session for requests still sending the old cookie.
    refreshed: moka::future::Cache<String, Arc<LiveSession>>,
    /// Verified bearer tokens, by the whole token (hashed by its tail, as `decoded`).
    bearers: moka::sync::Cache<String, Arc<LiveSession>, TailHash>,
    /// Each thread's memo of the last tokens it took from `bearers`. Every hit checks the
    /// token's `exp`; a withdrawn key empties both (`bearers_generation`).
    bearer_front: super::front::Front,
    state_prefix: String,
    state_path: String,
    keep_access_token: bool,
    keep_id_token: bool,
    /// `[access]`: what forward-auth asks of a request it knows no route for.
    access_rule: RouteRule,
    ready: AtomicBool,
    /// The last refresh failed for want of the provider (unreachable, timed out, 5xx, 429):
    /// while it is set, a due session within its grace does not wait for the provider; its
    /// refresh is tried in the background. The next refresh that succeeds clears it.
    provider_failing: AtomicBool,
    /// `provider.keys_generation()` when `bearers` was last emptied for it.
    bearers_generation: std::sync::atomic::AtomicU64,
    /// Background refreshes by `refreshed`'s key: in flight (no second one is started), or
    /// ended in a sign-out (the next request with the cookie signs in again).
    background: moka::sync::Cache<String, Background>,
    /// This `Auth`, for the background refreshes (set by `Auth::shared`).
    me: std::sync::Weak<Auth>,
    /// States of sign-in attempts that have reached the callback, for as long as an attempt
    /// lives: each is used once, whatever came of it.
    used_states: moka::sync::Cache<String, ()>,
    /// Callbacks per client address.
    callback_limit: CallbackLimit,
}

impl Auth {
    fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Auth, AuthSetupError> {
        // Validation guarantees a provider when Auth is built.
        let provider_config = config
            .provider
            .clone()
            .ok_or_else(|| StoreError::Config("no provider".into()))?;
        let provider = Arc::new(Provider::new(provider_config.clone())?);
        let sessions = Sessions::new(
            &config.session,
            &crate::session::binding(&provider_config.issuer, &provider_config.client_id),
        )?;
        let signer = if config.headers.preset == HeaderPreset::Alb {
            let key = match &config.headers.signing_key_file {
                Some(path) => {
                    Some(std::fs::read(path).map_err(|e| AuthSetupError::SigningKey {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?)
                }
                None => None,
            };
            Some(ArcSwap::from_pointee(AssertionSigner::new(
                key.as_deref(),
                &provider_config.issuer,
                &provider_config.client_id,
                &config.headers.alb_signer,
            )?))
        } else {
            None
        };
        let decoded_ttl = match config.session.store {
            // A sealed cookie never changes meaning; only time ends it (checked on every hit).
            StoreKind::Cookie => Duration::from_secs(600),
            _ => config.session.cache_ttl,
        };
        let server = &config.server;
        // A `__Host-` cookie must have `Path=/`, or browsers drop it.
        let host_prefixed = config
            .session
            .cookie_name
            .to_ascii_lowercase()
            .starts_with("__host-");
        let state_path = if !host_prefixed
            && server
                .callback_path
                .starts_with(&format!("{}/", server.auth_prefix))
        {
            server.auth_prefix.clone()
        } else {
            "/".to_string()
        };
        Ok(Auth {
            access_rule: RouteRule::from_groups(&config.access.allowed_groups),
            keep_access_token: config.headers.pass_access_token
                || config.headers.preset == HeaderPreset::Alb,
            keep_id_token: config.headers.pass_id_token
                || provider_config.kind == ProviderKind::Oidc,
            state_prefix: format!("{}_state_", config.session.cookie_name),
            state_path,
            // Keyed by the whole cookie (3-5 KB with Cognito's tokens), looked up on every
            // request: hashed by its tail only (`TailHash`). Only sessions that decrypted are
            // inserted, so a client cannot fill the table with chosen colliding keys.
            decoded: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(decoded_ttl)
                .build_with_hasher(TailHash::default()),
            front: super::front::Front::new(),
            refreshed: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REFRESH_MEMO)
                .build(),
            // Only verified tokens are inserted, so, as for `decoded`, a client cannot fill the
            // table with chosen colliding keys.
            bearers: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build_with_hasher(TailHash::default()),
            bearer_front: super::front::Front::new(),
            config,
            provider,
            sessions,
            signer,
            metrics,
            ready: AtomicBool::new(false),
            provider_failing: AtomicBool::new(false),
            bearers_generation: std::sync::atomic::AtomicU64::new(0),
            background: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REFRESH_MEMO)
                .build(),
            me: std::sync::Weak::new(),
            used_states: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(STATE_TTL_SECS))
                .build(),
            callback_limit: CallbackLimit::new(),
        })
    }

    /// `Auth::new`, shared: it hands its background refreshes a handle to itself.
    pub fn shared(config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Arc<Auth>, AuthSetupError> {
        let mut auth = Auth::new(config, metrics)?;
        Ok(Arc::new_cyclic(|me| {
            auth.me = me.clone();
            auth
        }))
    }

    /// Loads the provider (retrying with backoff while it is down) and keeps its keys fresh.
    pub fn start_background(
        self: Arc<Self>,
        ready: Arc<AtomicBool>,
        reread: Arc<tokio::sync::Notify>,
    ) {
        self.clone().start_secret_polling(reread);

        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                match self.provider.load().await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "identity provider not loaded yet; sign-in answers 503 until it is");
                        tokio::time::sleep(backoff).await;
                        // At most 5 s: users wait on this (sign-in answers 503 until then).
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            tracing::info!(issuer = %self.provider.config().issuer, "identity provider loaded; ready");
            self.ready.store(true, Ordering::Relaxed);
            ready.store(true, Ordering::Relaxed);
            loop {
                tokio::time::sleep(oidc::JWKS_REFRESH).await;
                if let Err(e) = self.provider.refresh_keys(None).await {
                    tracing::warn!(error = %e, "periodic JWKS refresh failed; keeping the keys we have");
                }
            }
        });
    }

    /// Re-reads `*_file` secrets every `server.secret_poll_interval` (Kubernetes swaps
    /// mounted secrets by symlink, which file events miss), and at SIGHUP (`reread`).
    fn start_secret_polling(self: Arc<Self>, reread: Arc<tokio::sync::Notify>) {
        let interval = self.config.server.secret_poll_interval;
        let any_file = self.config.session.secret_file.is_some()
            || self.provider.config().client_secret_file.is_some()
            || (self.signer.is_some() && self.config.headers.signing_key_file.is_some());
        if !any_file {
            return;
        }
        tokio::spawn(async move {
            loop {
                super::until_reread(interval, &reread).await;
                self.reread_secrets().await;
            }
        });
    }

    async fn reread_secrets(&self) {
        if let Some(path) = &self.config.session.secret_file {
            match tokio::fs::read(path)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| crate::config::parse_cookie_secret(&b))
            {
                Ok(secret) => {
                    if self.sessions.rotate_secret(&secret) {
                        // Only the new secret and the one before it open cookies now: a
                        // session decoded with an older one must not live on in the caches.
                        self.decoded.invalidate_all();
                        self.front.changed();
                        tracing::info!(file = %path.display(),
                            "session secret changed: new cookies are sealed with it; cookies sealed with the one before still open");
                    }
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot re-read session.secret_file; keeping the current secret")
                }
            }
        }
        if let Some(path) = &self.provider.config().client_secret_file {
            match tokio::fs::read(path).await {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes).trim().to_string();
                    if text.is_empty() {
                        // Half-written, or truncated by a failed deploy.
                        tracing::warn!(file = %path.display(), "provider.client_secret_file is empty; keeping the current secret");
                    } else if self
                        .provider
                        .set_client_secret(crate::config::Secret(text.into_bytes()))
                    {
                        tracing::info!(file = %path.display(), "provider client secret changed; using the new one");
                    }
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot re-read provider.client_secret_file; keeping the current secret")
                }
            }
        }
        if let (Some(signer), Some(path)) = (&self.signer, &self.config.headers.signing_key_file) {
            let provider = self.provider.config();
            let read = tokio::fs::read(path).await.map_err(|e| e.to_string());
            match read.and_then(|key| {
                let alb_signer = &self.config.headers.alb_signer;
                AssertionSigner::new(
                    Some(&key),
                    &provider.issuer,
                    &provider.client_id,
                    alb_signer,
                )
                .map_err(|e| e.to_string())
            }) {
                Ok(new) if new.kid() != signer.load().kid() => {
                    let new = new.succeeding(&signer.load());
                    tracing::info!(file = %path.display(), kid = new.kid(),
                        "headers.signing_key_file changed: new assertions are signed with it; the key before stays in jwks.json");
                    signer.store(Arc::new(new));
                    // Sessions in the caches carry assertions signed with the old key: made
                    // again, with the new one (a key replaced because it leaked must go).
                    self.decoded.invalidate_all();
                    self.front.changed();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot re-read headers.signing_key_file; keeping the current key")
                }
            }
        }
    }

    /// Why the session store cannot be used now (Redis not answering within its timeout),
    /// for `/ready`; `None` when it answers or lives in this process.
    pub async fn store_problem(&self) -> Option<String> {
        let e = self.sessions.ping().await.err()?;
        Some(format!("session store: {e}"))
    }

    pub fn not_ready_reason(&self) -> String {
        self.provider
            .last_error()
            .unwrap_or_else(|| "loading the identity provider's metadata and keys".into())
    }

    // ---- the request path ----

    /// The session (or bearer token) behind a request, refreshed when due.
    pub async fn authenticate(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Arc<LiveSession>, AuthAnswer> {
        let headers = req.headers();
        let now = oidc::unix_now();
        let name = &self.sessions.cookie_name;
        let Some(value) = codec::read_cookie(headers, name) else {
            return match bearer_token(headers) {
                Some(token) => self.bearer(token, now).await,
                None => Err(AuthAnswer::SignIn { clear: Vec::new() }),
            };
        };
        let known = self
            .front
            .get_or_else(now, &value, || self.decoded.get(value.as_ref()));
        let live = match known {
            Some(live) if live.session.expires > now => {
                self.metrics.session_cache_hits.add(1);
                live
            }
            _ => {
                self.metrics.session_cache_misses.add(1);
                match Box::pin(self.sessions.load(&value, now)).await {
                    Ok(Some(session)) => {
                        // Signed in before `user_claim` or `require_verified_email` said otherwise.
                        if let Some(refusal) = self.email_refusal(&session.principal) {
                            return Err(GatewayError::EmailNotVerified(refusal).into());
                        }
                        let live = Arc::new(self.live(session, None));
                        self.remember(value.to_string(), live.clone());
                        live
                    }
                    Ok(None) => {
                        if !self.sessions.opens(&value) {
                            self.cookie_did_not_open(now);
                        }
                        // A stale or foreign session cookie does not hide a bearer token
                        // sent with it (an API client that also keeps cookies).
                        if let Some(token) = bearer_token(headers) {
                            return self.bearer(token, now).await;
                        }
                        return Err(AuthAnswer::SignIn {
                            clear: self.clear_session_cookies(
                                headers,
                                &self.request_cookie_attrs(req, client),
                            ),
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "session store unavailable");
                        return Err(GatewayError::SessionsUnavailable {
                            reason: e.to_string(),
                        }
                        .into());
                    }
                }
            }
        };
        if live.session.refresh_due > now {
            return Ok(live);
        }
        Box::pin(self.refresh(&value, live, req, client, now)).await
    }

    /// The principal behind a bearer token: verified before (no crypto), or verified now.
    async fn bearer(&self, token: &str, now: u64) -> Result<Arc<LiveSession>, AuthAnswer> {
        match self.known_bearer(token, now) {
            Some(answer) => answer,
            // Boxed, as the other slow paths: inline, its state would make every request's
            // future (moved several times per request) tens of KB larger.
            None => Box::pin(self.verify_bearer(token, now)).await,
        }
    }

    fn remember(&self, cookie_value: String, live: Arc<LiveSession>) {
        self.decoded.insert(cookie_value, live);
        self.front.changed();
    }

    fn forget(&self, cookie_value: &str) {
        self.decoded.invalidate(cookie_value);
        self.front.changed();
    }

    fn live(&self, session: Session, set_cookies: Option<Vec<HeaderValue>>) -> LiveSession {
        let signer = self.signer.as_ref().map(|s| s.load_full());
        let headers = IdentityHeaders::build(
            &session.principal,
            TokensForHeaders {
                access_token: session.access_token.as_deref(),
                id_token: session.id_token.as_deref(),
                expires_at: session.tokens_expire.max(oidc::unix_now() + 60),
            },
            &self.config.headers,
            signer.as_deref(),
        );
        LiveSession {
            session,
            headers,
            set_cookies,
        }
    }

    /// One refresh per session at a time; everyone asking meanwhile gets its result.
    async fn refresh(
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
            let result = if self.provider_failing.load(Ordering::Relaxed)
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
        let outcome = self.provider.refresh(&refresh_token).await;
        if outcome.as_ref().is_err_and(|e| !e.refuses_grant()) {
            if !self.provider_failing.swap(true, Ordering::Relaxed) {
                tracing::warn!("the identity provider is failing: due refreshes are tried in the background while sessions are within session.refresh_grace");
            }
        } else if self.provider_failing.swap(false, Ordering::Relaxed) {
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
                .provider
                .verify_id_token(id_token, None, &self.config.headers)
                .await
            {
                Ok(v) if self.email_refusal(&v.principal).is_some() => {
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
        if self.keep_id_token {
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

    /// Whether this person must be refused for their email (`identity::email_refusal`).
    fn email_refusal(&self, principal: &Principal) -> Option<EmailRefusal> {
        crate::identity::email_refusal(
            principal,
            &self.provider.config().user_claim,
            self.config.access.require_verified_email,
        )
    }

    fn refresh_lock_ms(&self) -> u64 {
        let calls = 2 * self.provider.config().timeout + Duration::from_secs(2);
        (calls.as_millis() as u64).max(REFRESH_LOCK_MS)
    }

    /// A session cookie sealed with neither secret: counted, and said at most once a minute.
    /// A few follow every secret rotation; many mean replicas that do not share the secret,
    /// which sends users round the sign-in from one replica to the next.
    fn cookie_did_not_open(&self, now: u64) {
        static LAST_TOLD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        self.metrics.unreadable_cookies.add(1);
        let last = LAST_TOLD.load(Ordering::Relaxed);
        if now >= last + 60
            && LAST_TOLD
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("a session cookie opened with neither session.secret nor previous_secret: after a secret change this is expected for a while; if it goes on, replicas do not share session.secret (see ssogate_session_cookies_unreadable_total)");
        }
    }

    /// A sealed session as the cookie store writes it: refused when no browser could keep
    /// it (it would be cut, fail to open, and send the user round the sign-in for ever), and
    /// said once when it takes so many cookies that proxies in front may refuse the header.
    fn cookie_store_fits(&self, value: &str, user: &str) -> Result<(), GatewayError> {
        if !self.sessions.is_stateless() {
            return Ok(());
        }
        if !codec::fits(value) {
            tracing::error!(user = %Clip(user), bytes = value.len(),
                "this user's session is too large for the cookie store (many groups?): sign-in refused; set session.store = \"memory\" or \"redis\"");
            return Err(GatewayError::SessionTooLarge { bytes: value.len() });
        }
        let cookies = codec::chunks_for(value);
        if cookies > 2 && !MANY_COOKIES_TOLD.swap(true, Ordering::Relaxed) {
            tracing::warn!(user = %Clip(user), bytes = value.len(), cookies,
                "a session takes several cookies: a Cookie header this large may be refused by a proxy in front (nginx allows 8 KB per header line) and reaches every request; session.store = \"memory\" or \"redis\" keeps only an id in the cookie");
        }
        Ok(())
    }

    fn refresh_due(&self, now: u64, tokens_expire: u64, expires: u64) -> u64 {
        let by_interval = now + self.config.session.refresh_interval.as_secs();
        // Refresh a little before the tokens lapse, never more often than every 10 s.
        let by_tokens = tokens_expire.saturating_sub(30).max(now + 10);
        by_interval.min(by_tokens).min(expires)
    }

    /// A bearer token verified before (no allocation, no lock on a worker's memo hit).
    fn known_bearer(&self, token: &str, now: u64) -> Option<Result<Arc<LiveSession>, AuthAnswer>> {
        // A key withdrawn since: every token verified before is verified again (and one
        // signed with that key refused), not served from the cache for 5 more minutes.
        let generation = self.provider.keys_generation();
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

    async fn verify_bearer(&self, token: &str, now: u64) -> Result<Arc<LiveSession>, AuthAnswer> {
        let unauthorized = || AuthAnswer::Error(GatewayError::InvalidToken);
        let generation = self.provider.keys_generation();
        let claims = match self
            .provider
            .verify_signature(token, oidc::Source::Client)
            .await
        {
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
        let p = self.provider.config();
        let cognito = p.kind == ProviderKind::Cognito;
        let token_use = claims.get("token_use").and_then(|v| v.as_str());
        let (audience, want_use) = match (cognito, token_use) {
            (true, Some("access")) => (jwt::Audience::ClientIdClaim, Some("access")),
            (true, _) => (jwt::Audience::Aud, Some("id")),
            (false, _) => (jwt::Audience::Aud, None),
        };
        let want = jwt::Expectations {
            issuer: &p.issuer,
            client_id: &p.client_id,
            token_use: want_use,
            audience,
            nonce: None,
            now,
        };
        if let Err(e) = jwt::check_claims(&claims, &want) {
            tracing::info!(error = %e, "bearer token rejected");
            return Err(unauthorized());
        }
        let mut principal = self.provider.principal(&claims, &self.config.headers);
        if let Some(refusal) = self.email_refusal(&principal) {
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
            principal,
            created: now,
            expires: exp,
            refresh_due: u64::MAX,
            tokens_expire: exp,
            refresh_token: None,
            access_token: Some(token.to_string()),
            // With `pass_id_token` the client's `Authorization` is stripped; the upstream gets
            // the token it verified in its place, whichever kind it is (as oauth2-proxy does).
            id_token: self.config.headers.pass_id_token.then(|| token.to_string()),
        };
        let live = Arc::new(self.live(session, None));
        // Not kept when a key was withdrawn while it was checked (with the keys before).
        if self.provider.keys_generation() == generation {
            self.bearers.insert(token.to_string(), live.clone());
        }
        Ok(live)
    }

    // ---- cookies and addresses ----

    /// `https://host` as the browser sees us: `public_url`, or Host (+ trusted X-Forwarded-*).
    fn origin(&self, headers: &HeaderMap, uri: &http::Uri, client: &ClientInfo) -> String {
        if let Some(u) = &self.config.server.public_url {
            return u.as_str().trim_end_matches('/').to_string();
        }
        let host = client.host(headers, uri).unwrap_or("localhost");
        format!("{}://{}", client.scheme(headers), host)
    }

    fn cookie_attrs(&self, origin: &str) -> CookieAttrs {
        CookieAttrs {
            secure: !crate::config::is_plain_http_loopback(origin),
            path: "/".into(),
        }
    }

    /// Cookie attributes for an answer to `req`: by the origin the browser used, as at
    /// sign-in (TLS, or a trusted proxy's X-Forwarded-Proto, means `Secure`).
    fn request_cookie_attrs(&self, req: &Request<RequestBody>, client: &ClientInfo) -> CookieAttrs {
        self.cookie_attrs(&self.origin(req.headers(), req.uri(), client))
    }

    fn clear_session_cookies(&self, headers: &HeaderMap, attrs: &CookieAttrs) -> Vec<HeaderValue> {
        codec::delete_chunks_from(headers, &self.sessions.cookie_name, 0, attrs)
    }

    // ---- endpoints ----

    pub async fn endpoint(
        &self,
        endpoint: &str,
        req: &mut Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        match endpoint {
            "/start" => self.start(req, client),
            "/callback" => self.callback(req, client).await,
            "/sign_in" => Ok(self.sign_in_page(req)),
            "/sign_out" => self.sign_out(req, client).await,
            "/signed_out" => Ok(self.signed_out(req, client)),
            "/userinfo" => self.userinfo(req, client).await,
            "/jwks.json" => Ok(self.assertion_jwks()),
            e if e.starts_with("/keys/") => self.assertion_key_pem(&e["/keys/".len()..]),
            _ => Err(GatewayError::NotFound),
        }
    }

    /// What a request without a usable session gets: a redirect to sign-in for a person
    /// navigating, 401 JSON for a program.
    pub fn sign_in_answer(
        &self,
        req: &Request<RequestBody>,
        clear: Vec<HeaderValue>,
    ) -> Response<Body> {
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
            let page = if self.config.server.sign_in_page {
                "sign_in"
            } else {
                "start"
            };
            redirect(&format!(
                "{}/{page}?rd={}",
                self.config.server.auth_prefix,
                url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
            ))
        };
        for c in clear {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    }

    /// A safe `rd` from the query, or `/`. It travels sealed in a cookie (the sign-in
    /// attempt's, or sign-out's), which browsers drop above 4 KB: a longer one keeps only
    /// its path, and failing that is `/`.
    fn redirect_target(&self, req: &Request<RequestBody>, client: &ClientInfo) -> String {
        let asked = asked_redirect(req).unwrap_or_default();
        let origin = self.origin(req.headers(), req.uri(), client);
        let rd = safe_redirect(&asked, &origin, &self.config.server.allowed_redirect_hosts)
            .unwrap_or_else(|| {
                if !asked.is_empty() {
                    // The host only: a refused target's path or query may carry anything.
                    // `//evil`, `/\evil` and `https:evil` read as a browser would.
                    let spelled = asked.trim_start_matches(['/', '\\']);
                    let host = url::Url::parse(&asked)
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

    fn start(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        if !self.provider.is_ready() {
            return Err(GatewayError::SignInUnavailable {
                reason: self.not_ready_reason(),
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
            rd: self.redirect_target(req, client),
            exp: now + STATE_TTL_SECS,
        };
        let redirect_uri = format!("{origin}{}", self.config.server.callback_path);
        let url = self
            .provider
            .authorize_url(&redirect_uri, &state, &pending.nonce, &pending.verifier)
            .map_err(|e| GatewayError::SignInUnavailable {
                reason: e.to_string(),
            })?;
        let cookie_name = format!("{}{state}", self.state_prefix);
        let sealed = self.sessions.codec().seal(
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

    /// The provider sends the browser back here. Rate limited per client address; the
    /// attempt's state cookie is deleted whatever comes of it.
    async fn callback(
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
        let pending: Option<PendingSignIn> = sealed
            .and_then(|v| self.sessions.codec().open(cookie_name, v))
            .and_then(|plain| serde_json::from_str(&plain).ok());

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
        let code =
            query_param(uri, "code").ok_or_else(|| fail("the sign-in response carries no code"))?;
        let redirect_uri = format!("{origin}{}", self.config.server.callback_path);
        let tokens = match self
            .provider
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
        let verified = match self
            .provider
            .verify_id_token(id_token, Some(&pending.nonce), &self.config.headers)
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
        if let Some(refusal) = self.email_refusal(&verified.principal) {
            self.metrics.sign_in_failures.add(1);
            tracing::info!(user = %Clip(&verified.principal.user), reason = ?refusal, "sign-in refused for the email");
            return Err(GatewayError::EmailNotVerified(refusal));
        }
        let max_lifetime = self.config.session.max_lifetime.as_secs();
        let mut session = Session {
            id: None,
            principal: verified.principal,
            created: now,
            expires: now + max_lifetime,
            refresh_due: 0,
            tokens_expire: verified.exp,
            refresh_token: tokens.refresh_token,
            access_token: if self.keep_access_token {
                tokens.access_token
            } else {
                None
            },
            id_token: if self.keep_id_token {
                Some(id_token.to_string())
            } else {
                None
            },
        };
        session.refresh_due = self.refresh_due(now, session.tokens_expire, session.expires);
        let value = self.sessions.save(&mut session).await.map_err(|e| {
            GatewayError::SessionsUnavailable {
                reason: e.to_string(),
            }
        })?;
        self.cookie_store_fits(&value, &session.principal.user)?;
        self.metrics.sign_ins.add(1);
        tracing::info!(user = %Clip(&session.principal.user), groups = %GroupsForLog(&session.principal.groups), "signed in");
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
        Ok(resp)
    }

    /// For a callback that comes again (the back button, a second tab) while the user is
    /// signed in: on to the app.
    async fn already_signed_in(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Option<Response<Body>> {
        let live = self.authenticate(req, client).await.ok()?;
        tracing::info!("a finished sign-in's callback again, while signed in: going to /");
        let mut resp = redirect("/");
        // A refresh on the way has a cookie to set.
        append_cookies(&mut resp, &live);
        Some(resp)
    }

    fn sign_in_page(&self, req: &Request<RequestBody>) -> Response<Body> {
        let rd = asked_redirect(req).unwrap_or_else(|| "/".into());
        let href = format!(
            "{}/start?rd={}",
            self.config.server.auth_prefix,
            url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        );
        html_response(
            StatusCode::OK,
            "Sign in",
            &format!(
                "<p>This application needs you to sign in.</p><p><a class=\"button\" href=\"{}\">Sign in</a></p>",
                escape(&href)
            ),
        )
    }

    async fn sign_out(
        &self,
        req: &mut Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let origin = self.origin(req.headers(), req.uri(), client);
        let attrs = self.cookie_attrs(&origin);
        let rd = self.redirect_target(req, client);
        if super::sign_out::from_elsewhere(req.headers(), &origin) {
            if let Some(page) = self.unconfirmed_sign_out(req, &origin, &rd).await {
                return Ok(page);
            }
        }
        let req = &*req;
        let now = oidc::unix_now();
        let mut id_token = None;
        if let Some(value) = codec::read_cookie(req.headers(), &self.sessions.cookie_name) {
            self.forget(value.as_ref());
            // With the store unreachable the server-side session would outlive a sign-out
            // that looked done: say so instead, and keep the cookie for another try.
            let unfinished = |e: StoreError| {
                tracing::warn!(error = %e, "sign-out could not end the server-side session");
                GatewayError::SessionsUnavailable {
                    reason: format!("sign-out could not be completed: {e}"),
                }
            };
            if let Some(session) = self.sessions.load(&value, now).await.map_err(unfinished)? {
                self.sessions.delete(&session).await.map_err(unfinished)?;
                if let Some(rt) = session.refresh_token.clone() {
                    // Waited for briefly, then left to finish on its own: a provider that
                    // does not answer must not hold the sign-out for `provider.timeout`.
                    let provider = self.provider.clone();
                    let revoking = tokio::spawn(async move {
                        match provider.revoke(&rt).await {
                            Ok(true) => tracing::debug!("refresh token revoked"),
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "could not revoke the refresh token")
                            }
                        }
                    });
                    let _ = tokio::time::timeout(REVOKE_WAIT, revoking).await;
                }
                tracing::info!(user = %Clip(&session.principal.user), "signed out");
                id_token = session.id_token;
            }
        }
        let signed_out = format!("{origin}{}/signed_out", self.config.server.auth_prefix);
        let return_to = self
            .provider
            .config()
            .sign_out_redirect_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or(signed_out.clone());
        let target = self
            .provider
            .logout_url(&return_to, id_token.as_deref())
            .map(|u| u.to_string())
            .unwrap_or(signed_out);
        let mut resp = redirect(&target);
        let h = resp.headers_mut();
        for c in self.clear_session_cookies(req.headers(), &attrs) {
            h.append(header::SET_COOKIE, c);
        }
        let rd_cookie = format!("{}_signout", self.sessions.cookie_name);
        let sealed = self.sessions.codec().seal(&rd_cookie, &rd);
        h.append(
            header::SET_COOKIE,
            codec::set_cookie(&rd_cookie, &sealed, &attrs, Some(STATE_TTL_SECS)),
        );
        Ok(resp)
    }

    /// A sign-out asked for from another site: the confirmation page, unless it is that page's
    /// own form coming back with its token.
    async fn unconfirmed_sign_out(
        &self,
        req: &mut Request<RequestBody>,
        origin: &str,
        rd: &str,
    ) -> Option<Response<Body>> {
        let session_cookie = codec::read_cookie(req.headers(), &self.sessions.cookie_name)
            .map(|c| c.into_owned())
            .unwrap_or_default();
        let secret = self.sessions.codec().current_secret().to_vec();
        if req.method() == Method::POST {
            if let Some(token) = super::sign_out::posted_token(req).await {
                if super::sign_out::token_ok(&secret, &session_cookie, &token) {
                    return None;
                }
            }
        }
        tracing::info!("a sign-out asked for from another site: the user is asked to confirm");
        let action = format!(
            "{}/sign_out?rd={}",
            self.config.server.auth_prefix,
            url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        );
        // Where the sign-out will send the browser after the post: the provider's logout,
        // and `rd` when it is on another (allowed) host.
        let elsewhere: Vec<String> = self
            .provider
            .logout_url(&format!("{origin}/"), None)
            .into_iter()
            .chain(url::Url::parse(rd).ok())
            .map(|u| u.origin().ascii_serialization())
            .collect();
        Some(super::sign_out::confirmation_page(
            &action,
            &super::sign_out::token(&secret, &session_cookie),
            &elsewhere,
        ))
    }

    fn signed_out(&self, req: &Request<RequestBody>, client: &ClientInfo) -> Response<Body> {
        let origin = self.origin(req.headers(), req.uri(), client);
        let attrs = self.cookie_attrs(&origin);
        let rd_cookie = format!("{}_signout", self.sessions.cookie_name);
        let rd = codec::cookie_names_with_prefix(req.headers(), &rd_cookie)
            .find(|(n, _)| *n == rd_cookie)
            .and_then(|(_, v)| self.sessions.codec().open(&rd_cookie, v))
            .filter(|rd| {
                safe_redirect(rd, &origin, &self.config.server.allowed_redirect_hosts).is_some()
            });
        let mut resp = match rd {
            Some(rd) if rd != "/" => redirect(&rd),
            _ => html_response(
                StatusCode::OK,
                "You are signed out",
                &format!(
                    "<p>You have been signed out.</p><p><a class=\"button\" href=\"{}\">Sign in again</a></p>",
                    escape(&format!("{}/start?rd=%2F", self.config.server.auth_prefix))
                ),
            ),
        };
        resp.headers_mut().append(
            header::SET_COOKIE,
            codec::set_cookie(&rd_cookie, "", &attrs, Some(0)),
        );
        resp
    }

    async fn userinfo(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let live = match self.authenticate(req, client).await {
            Ok(l) => l,
            Err(AuthAnswer::SignIn { .. }) => return Err(GatewayError::SignInRequired),
            Err(AuthAnswer::Error(e)) => return Err(e),
        };
        let p = &live.session.principal;
        let preferred = p.preferred_username.as_deref().unwrap_or(&p.user);
        let verified = p.verified_email().is_some();
        let mut resp = json_response(
            StatusCode::OK,
            &serde_json::json!({
                "user": p.user, "sub": p.sub, "email": p.email,
                // Not verified (or not said to be): the email names nobody; apps must not
                // take it as the person's.
                "email_verified": verified, "emailVerified": verified,
                "preferred_username": preferred,
                // oauth2-proxy's spelling, for front ends written against its /oauth2/userinfo.
                "preferredUsername": preferred,
                "groups": p.groups,
            }),
        );
        append_cookies(&mut resp, &live);
        Ok(resp)
    }

    /// Forward-auth for nginx `auth_request`, Traefik `forwardAuth` and friends:
    /// 202 + `X-Auth-Request-*`, 401, or 403. The rule is that of `route` (the route of the
    /// request asked about: a public one answers 202 to anybody), else `[access]`.
    /// `?allowed_groups=a,b` only narrows it, never widens it: Envoy and Caddy pass the
    /// client's own query along, so the client may write it.
    pub async fn forward_auth(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
        route: Option<&RouteRule>,
    ) -> Result<Response<Body>, GatewayError> {
        let asked = query_param(req.uri(), "allowed_groups").map(|list| {
            RouteRule::AnyOf(
                list.split(',')
                    .map(|g| g.trim().to_string())
                    .filter(|g| !g.is_empty())
                    .collect(),
            )
        });
        let rule = route.unwrap_or(&self.access_rule);
        let preflight = self.config.access.skip_preflight && super::handler::is_cors_preflight(req);
        if (!rule.needs_sign_in() && asked.is_none()) || preflight {
            let mut resp = Response::new(full(""));
            *resp.status_mut() = StatusCode::ACCEPTED;
            return Ok(resp);
        }
        let live = match self.authenticate(req, client).await {
            Ok(l) => l,
            Err(AuthAnswer::SignIn { .. }) => return Err(GatewayError::SignInRequired),
            Err(AuthAnswer::Error(e)) => return Err(e),
        };
        let groups = &live.session.principal.groups;
        if !rule.admits(groups) || asked.is_some_and(|narrower| !narrower.admits(groups)) {
            return Err(GatewayError::Forbidden {
                user: live.session.principal.user.clone(),
            });
        }
        let mut resp = Response::new(full(""));
        *resp.status_mut() = StatusCode::ACCEPTED;
        IdentityHeaders::apply(&live.headers.auth_request, resp.headers_mut());
        append_cookies(&mut resp, &live);
        if live.set_cookies.as_ref().is_some_and(|c| c.len() > 1)
            && !SEVERAL_COOKIES_TOLD.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("forward-auth answered with more than one Set-Cookie (a cookie-store session split into parts): nginx's auth_request_set passes on only the first, and the user will have to sign in again; use session.store = \"memory\" or \"redis\" with forward-auth");
        }
        Ok(resp)
    }

    /// One published assertion key as PEM, by `kid`: the shape of an ALB's key server.
    fn assertion_key_pem(&self, kid: &str) -> Result<Response<Body>, GatewayError> {
        let pem = self
            .signer
            .as_ref()
            .and_then(|s| s.load().public_pem(kid))
            .ok_or(GatewayError::NotFound)?;
        let mut resp = Response::new(full(pem));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        );
        Ok(resp)
    }

    fn assertion_jwks(&self) -> Response<Body> {
        let body = self
            .signer
            .as_ref()
            .map(|s| s.load().jwks_json())
            .unwrap_or_else(|| "{\"keys\":[]}".into());
        let mut resp = Response::new(full(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
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

#[derive(Clone, Copy)]
enum Background {
    Running,
    SignedOut,
}

enum RefreshFailure {
    SignedOut,
    Store(StoreError),
    /// The refreshed ID token's key cannot be had now; `refresh_once` treats it as an outage.
    KeyUnavailable(VerifyError),
}

/// A user's groups in a log line: the first few and how many in all, not every one of a
/// user in hundreds (a 6 KB line per sign-in).
struct GroupsForLog<'a>(&'a [String]);

impl std::fmt::Display for GroupsForLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 20;
        f.write_str(&self.0[..self.0.len().min(SHOWN)].join(","))?;
        if self.0.len() > SHOWN {
            write!(f, ",... ({} groups)", self.0.len())?;
        }
        Ok(())
    }
}

/// Whether the operator has been told, once, that a session takes many cookies.
static MANY_COOKIES_TOLD: AtomicBool = AtomicBool::new(false);

/// Whether the operator has been told, once, that `/auth` set several cookies.
static SEVERAL_COOKIES_TOLD: AtomicBool = AtomicBool::new(false);

fn append_cookies(resp: &mut Response<Body>, live: &LiveSession) {
    if let Some(cookies) = &live.set_cookies {
        for c in cookies {
            resp.headers_mut().append(header::SET_COOKIE, c.clone());
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
        Some(v[7..].trim())
    } else {
        None
    }
}

fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl AuthAnswer {
    pub fn into_response(
        self,
        auth: &Auth,
        req: &Request<RequestBody>,
    ) -> Result<Response<Body>, GatewayError> {
        match self {
            AuthAnswer::SignIn { clear } => Ok(auth.sign_in_answer(req, clear)),
            AuthAnswer::Error(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn the_session_cache_finds_keys_by_str_and_tells_same_tailed_values_apart() {
        let hasher = TailHash::default();
        let key = format!("{}{}", "a".repeat(2000), "TAG-0123456789abcdef0123456789ab");
        assert_eq!(
            hasher.hash_one(key.as_str()),
            hasher.hash_one(&key),
            "a &str lookup hashes as the String key"
        );
        let twin = format!("{}{}", "b".repeat(2000), "TAG-0123456789abcdef0123456789ab");
        assert_eq!(
            hasher.hash_one(&key),
            hasher.hash_one(&twin),
            "only the tail is hashed"
        );

        let cache: moka::sync::Cache<String, u32, TailHash> =
            moka::sync::Cache::builder().build_with_hasher(TailHash::default());
        cache.insert(key.clone(), 1);
        cache.insert(twin.clone(), 2);
        assert_eq!(cache.get(key.as_str()), Some(1));
        assert_eq!(
            cache.get(twin.as_str()),
            Some(2),
            "equality compares the whole value"
        );
        assert_eq!(cache.get(&key[1..]), None);
    }
}

//! Sign-in on the request path, around one `Auth` that holds what every flow shares: the
//! provider, the session store, the decoded-session and bearer caches, the assertion signer.
//! This file owns `Auth` itself (built once, its background tasks and secret re-reads),
//! `authenticate` (cookie, then session, then a refresh when due, else a bearer token), the
//! session cache's hasher and the cookie and origin helpers every flow uses. Each flow has a
//! file of its own, an `impl Auth` block each: `start`, `callback`, `refresh`, `sign_out`,
//! `bearer`, `forward_auth` (with userinfo and the assertion keys). Never answers an
//! endpoint itself beyond handing it to its flow. The sessions it hands out, `LiveSession`,
//! are declared in `server/live.rs`, so that `front` need not import `auth` (see there).

mod bearer;
mod callback;
mod callback_limit;
mod forward_auth;
mod idle;
mod refresh;
mod sign_out;
mod start;

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response};
use serde::{Deserialize, Serialize};

use self::bearer::bearer_token;
use self::callback_limit::CallbackLimit;
use self::refresh::Background;
use super::live::LiveSession;
use super::pages::GatewayError;
use crate::config::{Config, HeaderPreset, ProviderKind, StoreKind};
use crate::identity::{
    AssertionSigner, EmailRefusal, IdentityHeaders, Principal, TokensForHeaders,
};
use crate::oidc::{self, Provider};
use crate::policy::{ProviderSet, RouteRule};
use crate::proxy::{Body, ClientInfo, RequestBody};
use crate::session::codec::{self, CookieAttrs};
use crate::session::{Session, Sessions, StoreError};
use crate::telemetry::{Clip, Metrics};

/// How long a sign-in attempt may take at the provider.
const STATE_TTL_SECS: u64 = 600;
/// How long a refreshed session answers for its old cookie, and how often a provider that
/// is down is asked again for one session.
const REFRESH_MEMO: Duration = Duration::from_secs(30);

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

/// Why a request could not be authenticated.
pub enum AuthAnswer {
    /// No usable session: browsers go to sign-in (with one of `accepted`), programs get
    /// 401. Cookies to delete ride along.
    SignIn {
        clear: Vec<HeaderValue>,
        accepted: ProviderSet,
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
    /// `Config::providers`, in order: a session's `provider` is its place here.
    providers: Vec<Arc<Provider>>,
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
    /// `[access]`: what forward-auth asks of a request it knows no route for.
    access_rule: RouteRule,
    /// `[access]` email rules, replaced when `allowed_emails_file` changes.
    email_rules: ArcSwap<crate::identity::EmailRules>,
    ready: AtomicBool,
    /// By provider: the last refresh failed for want of it (unreachable, timed out, 5xx,
    /// 429): while it is set, a due session within its grace does not wait for the provider;
    /// its refresh is tried in the background. The next refresh that succeeds clears it.
    provider_failing: Box<[AtomicBool]>,
    /// `keys_generation()` when `bearers` was last emptied for it.
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
        if config.providers.is_empty() {
            return Err(StoreError::Config("no provider".into()).into());
        }
        let providers = config
            .providers
            .iter()
            .map(|p| Provider::new(p.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let bindings: Vec<String> = config
            .providers
            .iter()
            .map(|p| crate::session::binding(&p.issuer, &p.client_id))
            .collect();
        let sessions = Sessions::new(&config.session, &bindings)?;
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
            email_rules: ArcSwap::from_pointee(config.access.email_rules()),
            keep_access_token: config.headers.pass_access_token
                || config.headers.preset == HeaderPreset::Alb,
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
            provider_failing: providers.iter().map(|_| AtomicBool::new(false)).collect(),
            config,
            providers,
            sessions,
            signer,
            metrics,
            ready: AtomicBool::new(false),
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

    /// Loads each provider (retrying with backoff while it is down) and keeps its keys
    /// fresh. Ready once every provider has loaded.
    pub fn start_background(
        self: Arc<Self>,
        ready: Arc<AtomicBool>,
        reread: Arc<tokio::sync::Notify>,
    ) {
        self.clone().start_secret_polling(reread);
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(self.providers.len()));
        for provider in self.providers.clone() {
            let (auth, ready, waiting) = (self.clone(), ready.clone(), waiting.clone());
            tokio::spawn(async move {
                load_and_keep_fresh(provider, || {
                    if waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
                        auth.ready.store(true, Ordering::Relaxed);
                        ready.store(true, Ordering::Relaxed);
                    }
                })
                .await
            });
        }
    }

    /// Re-reads `*_file` secrets every `server.secret_poll_interval` (Kubernetes swaps
    /// mounted secrets by symlink, which file events miss), and at SIGHUP (`reread`).
    fn start_secret_polling(self: Arc<Self>, reread: Arc<tokio::sync::Notify>) {
        let interval = self.config.server.secret_poll_interval;
        let any_file = self.config.session.secret_file.is_some()
            || self
                .providers
                .iter()
                .any(|p| p.config().client_secret_file.is_some())
            || (self.signer.is_some() && self.config.headers.signing_key_file.is_some())
            || self.config.access.allowed_emails_file.is_some();
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
        self.reread_allowed_emails().await;
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
        for provider in &self.providers {
            reread_client_secret(provider).await;
        }
        if let (Some(signer), Some(path)) = (&self.signer, &self.config.headers.signing_key_file) {
            let read = tokio::fs::read(path).await.map_err(|e| e.to_string());
            match read.and_then(|key| {
                AssertionSigner::new(Some(&key), &self.config.headers.alb_signer)
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

    /// Why provider `p` (or, with `None`, the first that is not ready) cannot sign in yet.
    pub fn not_ready_reason(&self, p: Option<usize>) -> String {
        let provider = match p {
            Some(p) => self.providers.get(p),
            None => self.providers.iter().find(|p| !p.is_ready()),
        };
        let named = |p: &Provider| match self.providers.len() {
            1 => String::new(),
            _ => format!("provider {:?}: ", p.config().name),
        };
        match provider {
            Some(p) => format!(
                "{}{}",
                named(p),
                p.last_error().unwrap_or_else(|| {
                    "loading the identity provider's metadata and keys".into()
                })
            ),
            None => "loading the identity provider's metadata and keys".into(),
        }
    }

    /// Provider `p` of the config (a session's `provider`).
    fn provider(&self, p: usize) -> &Arc<Provider> {
        // Sessions only name providers of this config (`Sessions` opens no other).
        &self.providers[p.min(self.providers.len() - 1)]
    }

    /// Whether sessions of provider `p` keep the ID token: for a header, or for the
    /// `id_token_hint` a generic provider's sign-out wants.
    fn keep_id_token(&self, p: usize) -> bool {
        self.config.headers.pass_id_token || self.provider(p).config().kind == ProviderKind::Oidc
    }

    /// The providers' key generations together: changes when any provider's keys change.
    fn keys_generation(&self) -> u64 {
        self.providers.iter().map(|p| p.keys_generation()).sum()
    }

    // ---- the request path ----

    /// The session (or bearer token) behind a request, refreshed when due, if it comes from
    /// one of the `accepted` providers: a session of another is no session here (its cookie
    /// stays, for the routes that accept it).
    pub async fn authenticate(
        &self,
        req: &Request<RequestBody>,
        client: &ClientInfo,
        accepted: ProviderSet,
    ) -> Result<Arc<LiveSession>, AuthAnswer> {
        let live = self
            .authenticate_any(req, client)
            .await
            .map_err(|answer| match answer {
                AuthAnswer::SignIn { clear, .. } => AuthAnswer::SignIn { clear, accepted },
                error => error,
            })?;
        if accepted.has(live.session.provider) {
            Ok(live)
        } else {
            Err(AuthAnswer::SignIn {
                clear: Vec::new(),
                accepted,
            })
        }
    }

    /// The session (or bearer token) behind a request, of any provider. Its `SignIn`
    /// answers accept every provider: `authenticate` narrows them.
    async fn authenticate_any(
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
                None => Err(AuthAnswer::SignIn {
                    clear: Vec::new(),
                    accepted: ProviderSet::ALL,
                }),
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
                        if let Some(refusal) =
                            self.email_refusal(&session.principal, session.provider)
                        {
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
                            accepted: ProviderSet::ALL,
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
        let live = match self.idle_state(&live, now) {
            crate::session::Idle::Fresh => live,
            state => Box::pin(self.mind_idle(state, &value, live, req, client, now)).await?,
        };
        if live.session.refresh_due > now {
            return Ok(live);
        }
        Box::pin(self.refresh(&value, live, req, client, now)).await
    }

    fn remember(&self, cookie_value: String, live: Arc<LiveSession>) {
        self.decoded.insert(cookie_value, live);
        self.front.changed();
    }

    fn forget(&self, cookie_value: &str) {
        self.decoded.invalidate(cookie_value);
        self.front.changed();
    }

    /// Ends the sessions of the person with subject `sub` at once (an admin disabled or
    /// deleted them): their stored records and this gateway's decoded copies; other replicas
    /// drop theirs within `session.cache_ttl`. `None` with the cookie store, which keeps
    /// nothing to end: those sessions end at their next refresh.
    #[cfg(feature = "cognito-admin")]
    pub async fn end_sessions_of(&self, sub: &str) -> Result<Option<usize>, StoreError> {
        if self.sessions.is_stateless() {
            return Ok(None);
        }
        let ended = self.sessions.end_sessions_of(sub).await?;
        let theirs = |live: &LiveSession| live.session.principal.sub == sub;
        for (cookie, _) in self.decoded.iter().filter(|(_, l)| theirs(l)) {
            self.decoded.invalidate(cookie.as_str());
        }
        for (cookie, _) in self.refreshed.iter().filter(|(_, l)| theirs(l)) {
            self.refreshed.invalidate(cookie.as_str()).await;
        }
        self.front.changed();
        Ok(Some(ended))
    }

    fn live(&self, session: Session, set_cookies: Option<Vec<HeaderValue>>) -> LiveSession {
        let headers = self.identity_headers(
            &session,
            session.access_token.as_deref(),
            session.id_token.as_deref(),
        );
        LiveSession {
            session,
            headers,
            set_cookies,
            renewing: Default::default(),
        }
    }

    /// The upstream and forward-auth headers for `session`'s person, with the tokens they
    /// may carry (the session's own, or a bearer token that the session does not keep).
    fn identity_headers(
        &self,
        session: &Session,
        access_token: Option<&str>,
        id_token: Option<&str>,
    ) -> IdentityHeaders {
        let signer = self.signer.as_ref().map(|s| s.load_full());
        let provider = self.provider(session.provider).config();
        IdentityHeaders::build(
            &session.principal,
            TokensForHeaders {
                access_token,
                id_token,
                expires_at: session.tokens_expire.max(oidc::unix_now() + 60),
                issuer: &provider.issuer,
                client_id: &provider.client_id,
            },
            &self.config.headers,
            signer.as_deref(),
        )
    }

    /// Whether this person, signed in with provider `p`, must be refused for their email
    /// (`identity::email_refusal`).
    fn email_refusal(&self, principal: &Principal, p: usize) -> Option<EmailRefusal> {
        crate::identity::email_refusal(
            principal,
            &self.provider(p).config().user_claim,
            self.config.access.require_verified_email,
            &self.email_rules.load(),
        )
    }

    /// `access.allowed_emails_file` read again: when the list changed, sessions and tokens
    /// in the caches are checked against it again at their next request.
    async fn reread_allowed_emails(&self) {
        let access = &self.config.access;
        let Some(path) = &access.allowed_emails_file else {
            return;
        };
        let text = match tokio::fs::read(path).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot re-read access.allowed_emails_file; keeping the current list");
                return;
            }
        };
        let listed = crate::identity::parse_email_list(&text);
        if let Some(bad) = listed
            .iter()
            .find(|m| crate::identity::email_problem(m).is_some())
        {
            tracing::warn!(file = %path.display(), entry = %Clip(bad), "access.allowed_emails_file has an entry that is not an email address; keeping the current list");
            return;
        }
        let rules = crate::identity::EmailRules::new(
            &access.allowed_email_domains,
            access.allowed_emails_inline.iter().chain(&listed),
        );
        if **self.email_rules.load() != rules {
            self.email_rules.store(Arc::new(rules));
            self.decoded.invalidate_all();
            self.bearers.invalidate_all();
            self.front.changed();
            self.bearer_front.changed();
            tracing::info!(file = %path.display(), addresses = listed.len(), "access.allowed_emails_file changed: sessions are checked against the new list at their next request");
        }
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
            domain: self.config.session.cookie_domain.clone(),
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

    /// The gateway's endpoints under `auth_prefix`, each handed to its flow's file.
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
}

/// Loads `provider` (retrying with backoff while it is down), says so with `loaded`, then
/// keeps its keys fresh.
async fn load_and_keep_fresh(provider: Arc<Provider>, loaded: impl FnOnce()) {
    let issuer = provider.config().issuer.clone();
    let mut backoff = Duration::from_millis(500);
    loop {
        match provider.load().await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, issuer = %issuer, retry_in = ?backoff, "identity provider not loaded yet; sign-in answers 503 until it is");
                tokio::time::sleep(backoff).await;
                // At most 5 s: users wait on this (sign-in answers 503 until then).
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::info!(issuer = %issuer, provider = %provider.config().name, "identity provider loaded");
    loaded();
    loop {
        tokio::time::sleep(oidc::JWKS_REFRESH).await;
        if let Err(e) = provider.refresh_keys(None).await {
            tracing::warn!(error = %e, issuer = %issuer, "periodic JWKS refresh failed; keeping the keys we have");
        }
    }
}

/// `client_secret_file` of `provider` read again; a changed secret is used from now on.
async fn reread_client_secret(provider: &Provider) {
    let Some(path) = &provider.config().client_secret_file else {
        return;
    };
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            if text.is_empty() {
                // Half-written, or truncated by a failed deploy.
                tracing::warn!(file = %path.display(), "provider.client_secret_file is empty; keeping the current secret");
            } else if provider.set_client_secret(crate::config::Secret(text.into_bytes())) {
                tracing::info!(file = %path.display(), "provider client secret changed; using the new one");
            }
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot re-read provider.client_secret_file; keeping the current secret")
        }
    }
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

fn append_cookies(resp: &mut Response<Body>, live: &LiveSession) {
    if let Some(cookies) = &live.set_cookies {
        for c in cookies {
            resp.headers_mut().append(header::SET_COOKIE, c.clone());
        }
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
        client: &ClientInfo,
    ) -> Result<Response<Body>, GatewayError> {
        match self {
            AuthAnswer::SignIn { clear, accepted } => {
                auth.sign_in_answer(req, client, clear, accepted)
            }
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

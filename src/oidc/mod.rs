//! The identity provider: discovery, our own JWKS cache (refetch on an unknown kid, rate
//! limited, single-flight, old keys kept until a new set is in), token verification with
//! Cognito's rules, the authorize URL, code exchange, refresh, revocation and the sign-out URL.
//! The protocol itself is the `openidconnect` crate's (`protocol`); this module holds what it
//! keeps between calls. Never serves HTTP and never touches cookies.

mod client;
pub mod jwt;
mod library_key;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::{HeadersConfig, ProviderConfig, ProviderKind};
use crate::identity::Principal;
use crate::telemetry::Clip;
use client::HttpClient;
pub use client::ProviderError;
use jwt::{AlgSet, Expectations, KeySet, Nonce, TokenError, TokenKind};

/// An unknown kid triggers at most one JWKS fetch this often.
const MIN_REFETCH: Duration = Duration::from_secs(5);
/// Keys are re-read this often even when nothing asks.
pub const JWKS_REFRESH: Duration = Duration::from_secs(3600);

/// Endpoints, from discovery and/or the config.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub userinfo_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
    pub jwks_uri: Url,
    /// What this provider's tokens may be signed with: RS256 for Cognito; for `kind = "oidc"`
    /// the safe algorithms among those discovery advertises (all safe ones when it says none).
    pub signing_algs: AlgSet,
}

/// The token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    /// Why the `openidconnect` crate could not read this answer: its ID token is refused
    /// (after our own rules say what is wrong with it, if they can).
    #[serde(skip)]
    pub unreadable: Option<String>,
}

/// A verified ID token turned into a person.
#[derive(Debug, Clone)]
pub struct VerifiedIdToken {
    pub principal: Principal,
    pub exp: u64,
    pub auth_time: Option<u64>,
    /// The token's nonce: kept with the session, a refreshed ID token's must be the same.
    pub nonce: Option<String>,
}

/// Where an ID token from the token endpoint comes: what its nonce and sub must be.
#[derive(Debug, Clone, Copy)]
pub enum IdTokenCheck<'a> {
    /// At sign-in: the nonce sent with the authorization request, required and exact.
    SignIn { nonce: &'a str },
    /// At a refresh (OIDC Core 12.2): the session's sub, and its sign-in's nonce when the
    /// session kept it (one present in the token must be that one).
    Refresh {
        sub: &'a str,
        nonce: Option<&'a str>,
    },
}

/// A JWT whose header, key and signature our rules accepted (`Provider::verified`): its
/// claims, and the keys and algorithms that accepted it.
struct Accepted<'t> {
    token: jwt::Unverified<'t>,
    claims: Map<String, Value>,
    keys: Arc<KeySet>,
    algs: AlgSet,
}

pub struct Provider {
    config: ProviderConfig,
    http: HttpClient,
    metadata: ArcSwapOption<Metadata>,
    keys: ArcSwapOption<KeySet>,
    /// Serialises JWKS fetches; holds when a fetch last failed to find a wanted kid.
    fetch_lock: Mutex<Fetches>,
    /// Why the provider is not ready yet, for `/ready` and error logs.
    last_error: ArcSwapOption<String>,
    /// The client secret; swapped when its file changes.
    client_secret: ArcSwapOption<crate::config::Secret>,
    /// Counts JWKS fetches that found a key withdrawn: tokens verified before must go.
    keys_withdrawn: std::sync::atomic::AtomicU64,
}

/// When JWKS fetches last finished, and last came back without the kid they were for.
#[derive(Default)]
struct Fetches {
    last_done: Option<Instant>,
    last_miss: Option<Instant>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Result<Provider, crate::tls::TlsError> {
        let http = HttpClient::new(config.timeout, config.ca_file.as_deref())?;
        Ok(Provider {
            client_secret: ArcSwapOption::new(config.client_secret.clone().map(Arc::new)),
            config,
            http,
            metadata: ArcSwapOption::empty(),
            keys: ArcSwapOption::empty(),
            fetch_lock: Mutex::new(Fetches::default()),
            last_error: ArcSwapOption::empty(),
            keys_withdrawn: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    pub fn metadata(&self) -> Option<Arc<Metadata>> {
        self.metadata.load_full()
    }

    pub fn is_ready(&self) -> bool {
        self.metadata.load().is_some() && self.keys.load().is_some()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.load_full().map(|e| (*e).clone())
    }

    fn note_error(&self, e: &ProviderError) {
        self.last_error.store(Some(Arc::new(e.to_string())));
    }

    /// Discovery (unless every endpoint is configured) and the first JWKS fetch.
    pub async fn load(&self) -> Result<(), ProviderError> {
        let result = self.load_inner().await;
        match &result {
            Ok(()) => self.last_error.store(None),
            Err(e) => self.note_error(e),
        }
        result
    }

    async fn load_inner(&self) -> Result<(), ProviderError> {
        if self.metadata.load().is_none() {
            let c = &self.config;
            let meta = if c.needs_discovery() {
                let body = self.http.get(&c.discovery_url).await?;
                let d = protocol::discovery(&body)?;
                let issuer = d.issuer().as_str();
                if issuer.trim_end_matches('/') != c.issuer {
                    return Err(ProviderError::Invalid {
                        what: "discovery document",
                        reason: format!(
                            "its issuer {:?} is not the configured issuer {:?}; set provider.issuer_url to the provider's exact issuer",
                            Clip(issuer), c.issuer
                        ),
                    });
                }
                let more = d.additional_metadata();
                let token_endpoint = c
                    .token_endpoint
                    .clone()
                    .or_else(|| d.token_endpoint().map(|u| u.url().clone()))
                    .ok_or(ProviderError::Invalid {
                        what: "discovery document",
                        reason: "it has no token_endpoint; set provider.token_endpoint".into(),
                    })?;
                Metadata {
                    authorization_endpoint: c
                        .authorization_endpoint
                        .clone()
                        .unwrap_or_else(|| d.authorization_endpoint().url().clone()),
                    token_endpoint,
                    jwks_uri: c
                        .jwks_url
                        .clone()
                        .unwrap_or_else(|| d.jwks_uri().url().clone()),
                    userinfo_endpoint: c
                        .userinfo_endpoint
                        .clone()
                        .or_else(|| d.userinfo_endpoint().map(|u| u.url().clone())),
                    revocation_endpoint: c
                        .revocation_endpoint
                        .clone()
                        .or_else(|| more.revocation_endpoint.clone()),
                    end_session_endpoint: c
                        .end_session_endpoint
                        .clone()
                        .or_else(|| more.end_session_endpoint.clone()),
                    signing_algs: self.signing_algs(Some(protocol::advertised_algs(&d)))?,
                }
            } else {
                // Validation guarantees these three when discovery is skipped.
                Metadata {
                    authorization_endpoint: c
                        .authorization_endpoint
                        .clone()
                        .ok_or(ProviderError::NotReady)?,
                    token_endpoint: c.token_endpoint.clone().ok_or(ProviderError::NotReady)?,
                    jwks_uri: c.jwks_url.clone().ok_or(ProviderError::NotReady)?,
                    userinfo_endpoint: c.userinfo_endpoint.clone(),
                    revocation_endpoint: c.revocation_endpoint.clone(),
                    end_session_endpoint: c.end_session_endpoint.clone(),
                    signing_algs: self.signing_algs(None)?,
                }
            };
            self.metadata.store(Some(Arc::new(meta)));
        }
        if self.keys.load().is_none() {
            self.refresh_keys(None).await?;
        }
        Ok(())
    }

    /// The algorithms this provider's tokens may use: Cognito signs with RS256 only; another
    /// provider with the safe ones (`AlgSet::SAFE`) among those it advertises, all safe ones
    /// when it advertises none (the key's own type and `alg` still have to fit).
    fn signing_algs(&self, advertised: Option<Vec<String>>) -> Result<AlgSet, ProviderError> {
        if self.config.kind == ProviderKind::Cognito {
            return Ok(AlgSet::COGNITO);
        }
        let Some(names) = advertised else {
            return Ok(AlgSet::SAFE);
        };
        let algs = AlgSet::advertised(names.iter().map(String::as_str));
        if algs.is_empty() {
            return Err(ProviderError::Invalid {
                what: "discovery document",
                reason: format!(
                    "its id_token_signing_alg_values_supported {:?} names no algorithm this gateway verifies ({})",
                    names.iter().map(|n| Clip(n).to_string()).collect::<Vec<_>>(),
                    AlgSet::SAFE
                ),
            });
        }
        Ok(algs)
    }

    /// Fetches the JWKS. With `for_kid`, only when that kid is still unknown and no fetch
    /// for an unknown kid came back empty-handed within `MIN_REFETCH` (as aws-jwt-verify
    /// does); concurrent callers wait for one fetch and then find the key. That limit is for
    /// tokens anybody can send (bearer tokens): one the provider's token endpoint just gave us
    /// (`Source::TokenEndpoint`) always gets its fetch, so a client sending made-up key ids
    /// cannot make sign-ins and refreshes fail.
    pub async fn refresh_keys(&self, for_kid: Option<(&str, Source)>) -> Result<(), ProviderError> {
        let asked = Instant::now();
        let mut fetches = self.fetch_lock.lock().await;
        if let Some((kid, source)) = for_kid {
            if self.keys.load().as_ref().is_some_and(|k| k.has(kid)) {
                return Ok(());
            }
            // A fetch finished while this one waited: its answer stands (the kid was not in
            // it), rather than one fetch after another, each up to `provider.timeout`.
            if fetches.last_done.is_some_and(|t| t > asked) {
                return Err(ProviderError::RateLimited);
            }
            if source == Source::Client
                && fetches.last_miss.is_some_and(|t| t.elapsed() < MIN_REFETCH)
            {
                return Err(ProviderError::RateLimited);
            }
        }
        let result = self
            .fetch_keys(for_kid.map(|(kid, _)| kid), &mut fetches)
            .await;
        fetches.last_done = Some(Instant::now());
        result
    }

    async fn fetch_keys(
        &self,
        for_kid: Option<&str>,
        fetches: &mut Fetches,
    ) -> Result<(), ProviderError> {
        let last_miss = &mut fetches.last_miss;
        let meta = self.metadata().ok_or(ProviderError::NotReady)?;
        let fetched = async {
            let body = self.http.get(&meta.jwks_uri).await?;
            KeySet::from_json(&body).map_err(|reason| ProviderError::Invalid {
                what: "JWKS",
                reason,
            })
        }
        .await;
        let mut set = match fetched {
            Ok(set) => set,
            Err(e) => {
                *last_miss = Some(Instant::now());
                return Err(e);
            }
        };
        if for_kid.is_some_and(|kid| !set.has(kid)) {
            *last_miss = Some(Instant::now());
        }
        tracing::info!(keys = set.len(), jwks = %meta.jwks_uri, "loaded the provider's signing keys");
        let withdrawn = match self.keys.load().as_ref() {
            Some(old) => {
                set.remember_withdrawn_since(old);
                old.drops_any_in(&set)
            }
            None => false,
        };
        self.keys.store(Some(Arc::new(set)));
        if withdrawn {
            tracing::info!("the provider withdrew a signing key: bearer tokens verified with it are checked again");
            self.keys_withdrawn
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }

    /// How many times a key has been withdrawn: a token verified when this said less may have
    /// been verified with a key that is gone.
    pub fn keys_generation(&self) -> u64 {
        self.keys_withdrawn
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn keys_and_algs(&self) -> Result<(Arc<KeySet>, AlgSet), VerifyError> {
        let algs = self
            .metadata()
            .ok_or(VerifyError::Provider(ProviderError::NotReady))?
            .signing_algs;
        let keys = self
            .keys
            .load_full()
            .ok_or(VerifyError::Provider(ProviderError::NotReady))?;
        Ok((keys, algs))
    }

    /// Checks a JWT's header, algorithm, key and signature (fetching the keys once on a kid
    /// the set does not have) and returns its claims, with the parsed token for `check_typ`
    /// and the keys and algorithms that accepted it.
    async fn verified<'t>(
        &self,
        token: &'t str,
        source: Source,
    ) -> Result<Accepted<'t>, VerifyError> {
        let unverified = jwt::parse(token)?;
        let (keys, algs) = self.keys_and_algs()?;
        let (claims, keys) = match unverified.verify(&keys, algs) {
            // Withdrawn, or not there yet: one look at the provider's current set decides
            // (a key published again is good again).
            Err(TokenError::UnknownKey(kid) | TokenError::KeyWithdrawn(kid)) => {
                match self.refresh_keys(Some((&kid, source))).await {
                    Ok(()) | Err(ProviderError::RateLimited) => {}
                    // The JWKS could not be had: whether the key exists is unknown, so the
                    // token is not called bad (a 503, not a 401; a refresh survives it).
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot refetch the JWKS for an unknown kid");
                        return Err(VerifyError::Provider(e));
                    }
                }
                let (keys, _) = self.keys_and_algs()?;
                (unverified.verify(&keys, algs)?, keys)
            }
            other => (other?, keys),
        };
        Ok(Accepted {
            token: unverified,
            claims,
            keys,
            algs,
        })
    }

    /// Verifies an ID token from the token endpoint (at sign-in or refresh).
    /// `unreadable` says why the `openidconnect` crate could not read the token endpoint's
    /// answer (`TokenResponse::unreadable`): the token is refused, after our rules had their say.
    pub async fn verify_id_token(
        &self,
        token: &str,
        unreadable: Option<&str>,
        check: IdTokenCheck<'_>,
        headers: &HeadersConfig,
    ) -> Result<VerifiedIdToken, VerifyError> {
        let Accepted {
            token: unverified,
            claims,
            keys,
            algs,
        } = self.verified(token, Source::TokenEndpoint).await?;
        unverified.check_typ(TokenKind::Id)?;
        let (nonce, sub, sign_in_nonce) = match check {
            IdTokenCheck::SignIn { nonce } => (Nonce::Required(nonce), None, Some(nonce)),
            IdTokenCheck::Refresh { sub, nonce } => (
                nonce.map_or(Nonce::Ignored, Nonce::IfPresent),
                Some(sub),
                None,
            ),
        };
        let now = unix_now();
        let want = Expectations {
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
            token_use: (self.config.kind == ProviderKind::Cognito).then_some("id"),
            kind: TokenKind::Id,
            nonce,
            sub,
            now,
        };
        jwt::check_claims(&claims, &want)?;
        if let Some(why) = unreadable {
            return Err(TokenError::Library(why.to_string()).into());
        }
        // The same token through the library's 3.1.3.7, with the keys ours used (the one
        // that checked the signature marked with it: no second RSA check).
        protocol::verify_id_token(
            token,
            &protocol::IdTokenRules {
                issuer: &self.config.issuer,
                client_id: &self.config.client_id,
                keys: &keys.library_for_verified(&unverified),
                algs,
                nonce: sign_in_nonce,
                now,
            },
        )?;
        Ok(VerifiedIdToken {
            principal: self.principal(&claims, headers),
            exp: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
            auth_time: claims.get("auth_time").and_then(Value::as_u64),
            nonce: claims
                .get("nonce")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// Verifies a bearer token a client sent: for Cognito an access token (`token_use`
    /// `access`) or an ID token, for another provider an ID token; the same rules as at
    /// sign-in, but no nonce. Returns its claims.
    pub async fn verify_bearer(
        &self,
        token: &str,
        now: u64,
    ) -> Result<Map<String, Value>, VerifyError> {
        let Accepted {
            token: unverified,
            claims,
            ..
        } = self.verified(token, Source::Client).await?;
        let cognito = self.config.kind == ProviderKind::Cognito;
        let access = cognito && claims.get("token_use").and_then(Value::as_str) == Some("access");
        let (kind, token_use) = match (cognito, access) {
            (true, true) => (TokenKind::Access, Some("access")),
            (true, false) => (TokenKind::Id, Some("id")),
            (false, _) => (TokenKind::Id, None),
        };
        unverified.check_typ(kind)?;
        let want = Expectations {
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
            token_use,
            kind,
            nonce: Nonce::Ignored,
            sub: None,
            now,
        };
        jwt::check_claims(&claims, &want)?;
        Ok(claims)
    }

    /// The person described by verified claims.
    pub fn principal(&self, claims: &Map<String, Value>, headers: &HeadersConfig) -> Principal {
        let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        let sub = s("sub").unwrap_or_default();
        let groups = match claims.get(&self.config.groups_claim) {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(one)) if !one.is_empty() => vec![one.clone()],
            _ => Vec::new(),
        };
        let email_verified = match claims.get("email_verified") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(v)) => Some(v.eq_ignore_ascii_case("true")),
            _ => None,
        };
        let mapped = headers
            .claims
            .iter()
            .filter_map(|(_, claim)| claim_string(claims.get(claim)?).map(|v| (claim.clone(), v)))
            .collect();
        Principal {
            user: s(&self.config.user_claim).unwrap_or_else(|| sub.clone()),
            sub,
            email: s("email"),
            email_verified,
            preferred_username: s("preferred_username"),
            groups,
            mapped,
        }
    }

    /// The provider as the `openidconnect` crate sees it for one call.
    fn call<'a>(
        &'a self,
        meta: &'a Metadata,
        secret: Option<&'a crate::config::Secret>,
    ) -> protocol::Call<'a> {
        protocol::Call {
            config: &self.config,
            http: &self.http,
            authorization_endpoint: &meta.authorization_endpoint,
            token_endpoint: &meta.token_endpoint,
            secret: secret.map(|s| s.as_str()),
        }
    }

    /// The authorization request URL: code flow, state, nonce and PKCE S256.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_verifier: &str,
    ) -> Result<Url, ProviderError> {
        let meta = self.metadata().ok_or(ProviderError::NotReady)?;
        self.call(&meta, None)
            .authorize_url(redirect_uri, state, nonce, code_verifier)
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ProviderError> {
        let meta = self.metadata().ok_or(ProviderError::NotReady)?;
        let secret = self.client_secret.load_full();
        self.call(&meta, secret.as_deref())
            .exchange_code(code, code_verifier, redirect_uri)
            .await
    }

    /// A refresh grant. Cognito answers without a new refresh token unless rotation is on.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, ProviderError> {
        let meta = self.metadata().ok_or(ProviderError::NotReady)?;
        let secret = self.client_secret.load_full();
        self.call(&meta, secret.as_deref())
            .refresh(refresh_token)
            .await
    }

    /// Revokes a refresh token (and what was issued from it) when the provider can.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool, ProviderError> {
        let meta = self.metadata().ok_or(ProviderError::NotReady)?;
        // Cognito documents fetched before 2024 name no revocation endpoint; it is on the
        // hosted UI's domain all the same.
        let Some(endpoint) = meta
            .revocation_endpoint
            .clone()
            .or_else(|| self.hosted_ui("oauth2/revoke"))
        else {
            return Ok(false);
        };
        let secret = self.client_secret.load_full();
        self.call(&meta, secret.as_deref())
            .revoke(&endpoint, refresh_token)
            .await?;
        Ok(true)
    }

    /// Uses `secret` for client authentication from now on (a re-read secret file).
    /// Returns false when it did not change.
    pub fn set_client_secret(&self, secret: crate::config::Secret) -> bool {
        if self.client_secret.load().as_deref() == Some(&secret) {
            return false;
        }
        self.client_secret.store(Some(Arc::new(secret)));
        true
    }

    /// Where to send the browser to end the provider's session, coming back to `return_to`.
    /// Cognito: `{domain}/logout?client_id&logout_uri` (its own, not OIDC's); OIDC:
    /// `end_session_endpoint` with `id_token_hint` and `post_logout_redirect_uri`.
    pub fn logout_url(&self, return_to: &str, id_token: Option<&str>) -> Option<Url> {
        if let Some(mut url) = self.hosted_ui("logout") {
            url.query_pairs_mut()
                .append_pair("client_id", &self.config.client_id)
                .append_pair("logout_uri", return_to);
            return Some(url);
        }
        let meta = self.metadata()?;
        let endpoint = meta.end_session_endpoint.as_ref()?;
        protocol::end_session_url(endpoint, &self.config.client_id, return_to, id_token)
    }

    /// `path` on a Cognito pool's hosted UI (managed login): `provider.domain`, or else where
    /// discovery puts the authorization endpoint (`{domain}/oauth2/authorize`). None for
    /// `kind = "oidc"`, or before the metadata is in when no domain is configured.
    fn hosted_ui(&self, path: &str) -> Option<Url> {
        if self.config.kind != ProviderKind::Cognito {
            return None;
        }
        let base = match &self.config.domain {
            Some(domain) => domain.as_str().trim_end_matches('/').to_string(),
            None => self
                .metadata()?
                .authorization_endpoint
                .as_str()
                .strip_suffix("/oauth2/authorize")?
                .to_string(),
        };
        Url::parse(&format!("{base}/{path}")).ok()
    }
}

fn claim_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => Some(
            list.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Where a token to verify came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The provider's token endpoint, over our own connection (sign-in, refresh).
    TokenEndpoint,
    /// A client (a bearer token): anything at all.
    Client,
}

impl VerifyError {
    /// The token may be fine, but its key cannot be had now (unknown kid after a refetch,
    /// or the JWKS unreachable): the provider's trouble, not the token's.
    pub fn is_key_unavailable(&self) -> bool {
        matches!(
            self,
            VerifyError::Provider(_) | VerifyError::Token(TokenError::UnknownKey(_))
        )
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `n` random bytes, base64url.
pub fn random_token(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    // The system RNG failing is not recoverable and does not happen on Linux.
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random number generator failed");
    B64.encode(buf)
}

#[cfg(test)]
mod tests;

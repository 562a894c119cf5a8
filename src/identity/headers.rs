//! The signed-in person, and the headers that carry them upstream.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};

use super::EmailRules;
use crate::config::{HeaderPreset, HeadersConfig};

/// A verified person, as the provider described them at sign-in or last refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub sub: String,
    /// The `user_claim` (Cognito: `cognito:username`), `sub` when absent.
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// From `groups_claim`; an absent claim means no groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Claims named in `[headers.claims]`, as strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mapped: BTreeMap<String, String>,
}

impl Principal {
    /// The email, when the provider says it is verified: the only email sent as identity.
    /// `email_verified` false, or absent, means not verified: Cognito's ID tokens always carry
    /// it with an email, and a provider that leaves it out vouches for nothing (Entra ID's
    /// `email` is whatever the user typed).
    pub fn verified_email(&self) -> Option<&str> {
        match self.email_verified {
            Some(true) => self.email.as_deref(),
            _ => None,
        }
    }
}

/// Why a person may not sign in although the provider signed them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailRefusal {
    /// `user_claim = "email"`, and the email is not verified: it cannot name the user.
    UnverifiedEmailAsUser,
    /// `access.require_verified_email`, and the email is not verified.
    Unverified,
    /// `access.require_verified_email`, and there is no email at all (also: a Cognito access
    /// token, which carries none).
    NoEmail,
    /// `access.allowed_email_domains` / `allowed_emails`, and the email is not among them.
    NotAllowed,
}

/// Whether `principal` must be refused for its email: named by an email that is not verified
/// (`user_claim`), without a verified one where `require_verified` asks for it, or with one
/// the `rules` do not admit (the verified email, or with `require_verified` off the email
/// as given).
pub fn email_refusal(
    principal: &Principal,
    user_claim: &str,
    require_verified: bool,
    rules: &EmailRules,
) -> Option<EmailRefusal> {
    let verified = principal.verified_email().is_some();
    if user_claim == "email" && principal.email.is_some() && !verified {
        return Some(EmailRefusal::UnverifiedEmailAsUser);
    }
    let refusal = match (require_verified, verified, &principal.email) {
        (false, _, _) | (true, true, _) => None,
        (true, false, Some(_)) => Some(EmailRefusal::Unverified),
        (true, false, None) => Some(EmailRefusal::NoEmail),
    };
    if refusal.is_some() || rules.is_empty() {
        return refusal;
    }
    match principal.email.as_deref() {
        Some(email) if rules.admits(email) => None,
        _ => Some(EmailRefusal::NotAllowed),
    }
}

/// Signs the `alb` preset's `x-amzn-oidc-data` assertion (ES256) and publishes its key.
pub struct AssertionSigner {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
    /// The header's `signer` (an ALB puts its ARN there, and AWS's sample code checks it).
    signer: String,
    /// The keys this one replaced (newest first) and when, still published for `RETIRED_FOR`.
    retired: Vec<(PublicKey, std::time::Instant)>,
}

/// A P-256 public key and its `kid`.
#[derive(Clone)]
struct PublicKey {
    kid: String,
    /// `0x04 || x || y`.
    point: Vec<u8>,
}

impl PublicKey {
    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": B64.encode(&self.point[1..33]), "y": B64.encode(&self.point[33..65]),
        })
    }

    /// SubjectPublicKeyInfo PEM, as an ALB's key server answers for a `kid`.
    fn pem(&self) -> String {
        // DER of SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (point) }.
        const SPKI_P256_PREFIX: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        let der: Vec<u8> = SPKI_P256_PREFIX
            .iter()
            .chain(&self.point)
            .copied()
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

/// How many replaced keys `/jwks.json` keeps publishing, and for how long: the gateway signs
/// with the new key at once (it drops the assertions it had made), so an old key is wanted only
/// for requests on their way; a key replaced because it leaked should soon stop verifying.
const RETIRED_KEYS: usize = 2;
const RETIRED_FOR: std::time::Duration = std::time::Duration::from_secs(600);

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("kid", &self.kid)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("headers.signing_key_file: {0}: use a PKCS#8 P-256 key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)")]
    BadKey(String),
}

impl AssertionSigner {
    /// From a PKCS#8 PEM or DER P-256 key, or a fresh key when `pkcs8` is `None`.
    pub fn new(pkcs8: Option<&[u8]>, signer: &str) -> Result<Self, SignerError> {
        let rng = SystemRandom::new();
        let der = match pkcs8 {
            Some(bytes) => pem_to_der(bytes).map_err(SignerError::BadKey)?,
            None => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| SignerError::BadKey("cannot generate a key".into()))?
                .as_ref()
                .to_vec(),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| SignerError::BadKey(e.to_string()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = B64.encode(&digest.as_ref()[..12]);
        Ok(AssertionSigner {
            key,
            kid,
            rng,
            signer: signer.to_string(),
            retired: Vec::new(),
        })
    }

    /// The key's id (`kid` in the assertion's header and in the JWKS).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// This signer, taking over from `old`: `old`'s public key (and the ones it kept) stay
    /// in the JWKS, so an app that verifies an assertion signed before the change finds it.
    pub fn succeeding(mut self, old: &AssertionSigner) -> AssertionSigner {
        let now = std::time::Instant::now();
        self.retired = std::iter::once((old.public_key(), now))
            .chain(old.retired.iter().cloned())
            .filter(|(k, _)| k.kid != self.kid)
            .take(RETIRED_KEYS)
            .collect();
        self
    }

    fn public_key(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            point: self.key.public_key().as_ref().to_vec(),
        }
    }

    /// The keys published: the signing key first, then those it replaced.
    fn published(&self) -> impl Iterator<Item = PublicKey> + '_ {
        let recent = self
            .retired
            .iter()
            .filter(|(_, at)| at.elapsed() < RETIRED_FOR)
            .map(|(k, _)| k.clone());
        std::iter::once(self.public_key()).chain(recent)
    }

    /// The JWKS document served at `{auth_prefix}/jwks.json`.
    pub fn jwks_json(&self) -> String {
        let keys: Vec<serde_json::Value> = self.published().map(|k| k.jwk()).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// The PEM of the published key `kid` (`{auth_prefix}/keys/{kid}`): where an ALB's apps
    /// fetch `https://public-keys.auth.elb.{region}.amazonaws.com/{kid}`.
    pub fn public_pem(&self, kid: &str) -> Option<String> {
        self.published().find(|k| k.kid == kid).map(|k| k.pem())
    }

    /// The assertion for `principal`, signed in with the provider `tokens` names.
    fn sign(
        &self,
        principal: &Principal,
        roles: &[String],
        tokens: &TokensForHeaders<'_>,
    ) -> Option<String> {
        let (exp, issuer) = (tokens.expires_at, tokens.issuer);
        let header = serde_json::json!({
            "typ": "JWT", "alg": "ES256", "kid": self.kid, "signer": self.signer,
            "iss": issuer, "client": tokens.client_id, "exp": exp,
        });
        let mut claims = serde_json::json!({
            "sub": principal.sub, "username": principal.user, "exp": exp, "iss": issuer,
        });
        if let Some(email) = principal.verified_email() {
            claims["email"] = email.into();
            claims["email_verified"] = true.into();
        }
        if !principal.groups.is_empty() {
            claims["cognito:groups"] = principal.groups.clone().into();
        }
        if !roles.is_empty() {
            claims["roles"] = roles.to_vec().into();
        }
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self.key.sign(&self.rng, signing_input.as_bytes()).ok()?;
        Some(format!("{signing_input}.{}", B64.encode(sig.as_ref())))
    }
}

fn pem_to_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    if text.contains("EC PRIVATE KEY") {
        return Err("this is a SEC1 key; convert it with `openssl pkcs8 -topk8 -nocrypt`".into());
    }
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| format!("the PEM is not base64 ({e})"))
}

/// What the upstream is told about the person, built once per session.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders {
    /// Headers for proxied requests.
    pub upstream: Vec<(HeaderName, HeaderValue)>,
    /// Headers for forward-auth answers (`X-Auth-Request-*`).
    pub auth_request: Vec<(HeaderName, HeaderValue)>,
}

/// Tokens a header may carry.
pub struct TokensForHeaders<'a> {
    pub access_token: Option<&'a str>,
    pub id_token: Option<&'a str>,
    /// Unix seconds at which the assertion expires.
    pub expires_at: u64,
    /// The provider's issuer and the gateway's client id there (the assertion's `iss` and
    /// `client`).
    pub issuer: &'a str,
    pub client_id: &'a str,
}

impl IdentityHeaders {
    pub fn build(
        principal: &Principal,
        tokens: TokensForHeaders<'_>,
        config: &HeadersConfig,
        signer: Option<&AssertionSigner>,
    ) -> IdentityHeaders {
        let mut out = IdentityHeaders::default();
        let groups = principal.groups.join(",");
        // `[roles]` written: every preset but `none` says the roles, even none at all.
        let roles = config.roles.roles_of(&principal.groups);
        let send_roles = !config.roles.is_empty() && config.preset != HeaderPreset::None;
        let preferred = principal
            .preferred_username
            .as_deref()
            .unwrap_or(&principal.user);
        let push = |list: &mut Vec<(HeaderName, HeaderValue)>, name: &'static str, value: &str| {
            // A claim with control characters is left out rather than forwarded broken.
            if let Ok(v) = HeaderValue::from_str(value) {
                list.push((HeaderName::from_static(name), v));
            }
        };
        match config.preset {
            HeaderPreset::OAuth2Proxy => {
                push(&mut out.upstream, "x-forwarded-user", &principal.user);
                if let Some(email) = principal.verified_email() {
                    push(&mut out.upstream, "x-forwarded-email", email);
                }
                push(&mut out.upstream, "x-forwarded-groups", &groups);
                push(
                    &mut out.upstream,
                    "x-forwarded-preferred-username",
                    preferred,
                );
                if config.pass_access_token {
                    if let Some(t) = tokens.access_token {
                        push(&mut out.upstream, "x-forwarded-access-token", t);
                    }
                }
            }
            HeaderPreset::Alb => {
                // Also in forward-auth answers, for an nginx in front of an ALB-built app; the
                // access token there only with `pass_access_token` (a browser can ask /auth
                // itself and read the answer's headers, as with oauth2-proxy's).
                push(&mut out.upstream, "x-amzn-oidc-identity", &principal.sub);
                push(
                    &mut out.auth_request,
                    "x-amzn-oidc-identity",
                    &principal.sub,
                );
                if let Some(t) = tokens.access_token {
                    push(&mut out.upstream, "x-amzn-oidc-accesstoken", t);
                    if config.pass_access_token {
                        push(&mut out.auth_request, "x-amzn-oidc-accesstoken", t);
                    }
                }
                if let Some(jwt) = signer.and_then(|s| s.sign(principal, &roles, &tokens)) {
                    push(&mut out.upstream, "x-amzn-oidc-data", &jwt);
                    push(&mut out.auth_request, "x-amzn-oidc-data", &jwt);
                }
            }
            HeaderPreset::None => {}
        }
        if send_roles {
            let joined = roles.join(",");
            push(&mut out.upstream, "x-forwarded-roles", &joined);
            push(&mut out.auth_request, "x-auth-request-roles", &joined);
        }
        if config.pass_id_token {
            if let Some(t) = tokens.id_token {
                if let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) {
                    out.upstream.push((AUTHORIZATION, v));
                }
            }
        }
        push(
            &mut out.auth_request,
            "x-auth-request-user",
            &principal.user,
        );
        if let Some(email) = principal.verified_email() {
            push(&mut out.auth_request, "x-auth-request-email", email);
        }
        push(&mut out.auth_request, "x-auth-request-groups", &groups);
        push(
            &mut out.auth_request,
            "x-auth-request-preferred-username",
            preferred,
        );
        if config.pass_access_token {
            if let Some(t) = tokens.access_token {
                push(&mut out.auth_request, "x-auth-request-access-token", t);
            }
        }
        for (header, claim) in &config.claims {
            // A mapping owns its header: it replaces a preset's header of that name (say,
            // `X-Forwarded-User` from `email`), and one claim missing leaves none.
            out.upstream.retain(|(name, _)| name != header);
            out.auth_request.retain(|(name, _)| name != header);
            // An email that is not verified is never sent as identity, under any name.
            if claim == "email" && principal.verified_email().is_none() {
                continue;
            }
            if let Some(v) = principal
                .mapped
                .get(claim)
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                out.upstream.push((header.clone(), v.clone()));
                out.auth_request.push((header.clone(), v));
            }
        }
        out
    }

    pub fn apply(list: &[(HeaderName, HeaderValue)], headers: &mut HeaderMap) {
        for (name, value) in list {
            headers.insert(name.clone(), value.clone());
        }
    }
}

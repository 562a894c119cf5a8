//! JWT verification with ring against a JWKS we own, with Cognito's rules
//! (aws-jwt-verify's): signature by the header's kid with the key's algorithm, `iss` exact,
//! `exp`/`nbf`/`iat` with a small leeway, `token_use`, and the client id in `aud` (ID tokens)
//! or `client_id` (Cognito access tokens).

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::telemetry::Clip;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    // A client's token may say anything, at any length: log lines show it cut (`Clip`).
    #[error("the token's algorithm {:?} is not accepted", Clip(.0))]
    Algorithm(String),
    #[error("no key with kid {:?} in the provider's JWKS", Clip(.0))]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's issuer {:?} is not {expected:?}", Clip(found))]
    Issuer { expected: String, found: String },
    #[error("the token is not meant for this client")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's token_use is {:?}, expected {expected:?}", Clip(found))]
    TokenUse {
        expected: &'static str,
        found: String,
    },
    #[error("the token's nonce does not match the sign-in attempt")]
    Nonce,
    #[error("the token has no sub")]
    NoSubject,
}

/// One verification key.
#[derive(Clone)]
enum VerifyKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        alg: Option<String>,
    },
    Ec256 {
        point: Vec<u8>,
    },
}

/// Keys by kid. Swapped whole when a new set arrives.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyKey>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document; keys that are not for signatures or not understood are skipped.
    pub fn from_json(body: &[u8]) -> Result<KeySet, String> {
        let jwks: Jwks =
            serde_json::from_slice(body).map_err(|e| format!("the JWKS is not valid JSON: {e}"))?;
        let mut keys = HashMap::new();
        for k in jwks.keys {
            if k.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let kid = k.kid.clone().unwrap_or_default();
            let key = match (k.kty.as_str(), k.crv.as_deref()) {
                ("RSA", _) => match (
                    k.n.as_deref().map(|n| B64.decode(n)),
                    k.e.as_deref().map(|e| B64.decode(e)),
                ) {
                    (Some(Ok(n)), Some(Ok(e))) => VerifyKey::Rsa {
                        n,
                        e,
                        alg: k.alg.clone(),
                    },
                    _ => continue,
                },
                ("EC", Some("P-256")) => match (
                    k.x.as_deref().map(|x| B64.decode(x)),
                    k.y.as_deref().map(|y| B64.decode(y)),
                ) {
                    (Some(Ok(x)), Some(Ok(y))) if x.len() == 32 && y.len() == 32 => {
                        let mut point = Vec::with_capacity(65);
                        point.push(4);
                        point.extend_from_slice(&x);
                        point.extend_from_slice(&y);
                        VerifyKey::Ec256 { point }
                    }
                    _ => continue,
                },
                _ => continue,
            };
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            return Err("the JWKS holds no usable signing key".into());
        }
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Whether `newer` leaves out a key this set has (a key the provider withdrew).
    pub fn drops_any_in(&self, newer: &KeySet) -> bool {
        self.keys.keys().any(|kid| !newer.has(kid))
    }
}

/// The parts of a JWT before its signature is checked.
pub struct Unverified<'t> {
    pub kid: String,
    alg: String,
    signing_input: &'t str,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

pub fn parse(token: &str) -> Result<Unverified<'_>, TokenError> {
    let mut parts = token.split('.');
    let (h, p, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        _ => return Err(TokenError::Malformed),
    };
    let header: Header = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    Ok(Unverified {
        kid: header.kid.unwrap_or_default(),
        alg: header.alg,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: B64.decode(s).map_err(|_| TokenError::Malformed)?,
        payload: B64.decode(p).map_err(|_| TokenError::Malformed)?,
    })
}

impl Unverified<'_> {
    /// Checks the signature with the key named by kid; returns the claims.
    pub fn verify(&self, keys: &KeySet) -> Result<Map<String, Value>, TokenError> {
        let key = keys
            .keys
            .get(&self.kid)
            .ok_or_else(|| TokenError::UnknownKey(self.kid.clone()))?;
        let ok = match key {
            VerifyKey::Rsa { n, e, alg } => {
                if alg.as_deref().is_some_and(|a| a != self.alg) {
                    return Err(TokenError::Algorithm(self.alg.clone()));
                }
                let params = match self.alg.as_str() {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    other => return Err(TokenError::Algorithm(other.to_string())),
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, self.signing_input.as_bytes(), &self.signature)
                    .is_ok()
            }
            VerifyKey::Ec256 { point } => {
                if self.alg != "ES256" {
                    return Err(TokenError::Algorithm(self.alg.clone()));
                }
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(self.signing_input.as_bytes(), &self.signature)
                    .is_ok()
            }
        };
        if !ok {
            return Err(TokenError::BadSignature);
        }
        serde_json::from_slice(&self.payload).map_err(|_| TokenError::Malformed)
    }
}

/// What a token must say to be accepted.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// `Some("id")` / `Some("access")` for Cognito; `None` for generic OIDC ID tokens.
    pub token_use: Option<&'static str>,
    /// Where the client id must appear.
    pub audience: Audience,
    pub nonce: Option<&'a str>,
    pub now: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// `aud` (string or array, with `azp` when several).
    Aud,
    /// Cognito access tokens: `client_id`.
    ClientIdClaim,
}

/// Checks the registered claims; the signature must already be verified.
pub fn check_claims(
    claims: &Map<String, Value>,
    want: &Expectations<'_>,
) -> Result<(), TokenError> {
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != want.issuer {
        return Err(TokenError::Issuer {
            expected: want.issuer.to_string(),
            found: iss.to_string(),
        });
    }
    let num = |k: &str| claims.get(k).and_then(Value::as_u64);
    match num("exp") {
        Some(exp) if exp.saturating_add(LEEWAY_SECS) > want.now => {}
        _ => return Err(TokenError::Expired),
    }
    if num("nbf").is_some_and(|nbf| nbf > want.now.saturating_add(LEEWAY_SECS))
        || num("iat").is_some_and(|iat| iat > want.now.saturating_add(LEEWAY_SECS))
    {
        return Err(TokenError::NotYetValid);
    }
    if let Some(expected) = want.token_use {
        let found = claims
            .get("token_use")
            .and_then(Value::as_str)
            .unwrap_or("");
        if found != expected {
            return Err(TokenError::TokenUse {
                expected,
                found: found.to_string(),
            });
        }
    }
    let audience_ok = match want.audience {
        Audience::Aud => match claims.get("aud") {
            Some(Value::String(a)) => a == want.client_id,
            Some(Value::Array(list)) => {
                list.iter().any(|a| a.as_str() == Some(want.client_id))
                    && (list.len() == 1
                        || claims.get("azp").and_then(Value::as_str) == Some(want.client_id))
            }
            _ => false,
        },
        Audience::ClientIdClaim => {
            claims.get("client_id").and_then(Value::as_str) == Some(want.client_id)
        }
    };
    if !audience_ok {
        return Err(TokenError::Audience);
    }
    if let Some(nonce) = want.nonce {
        let found = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if found != nonce {
            return Err(TokenError::Nonce);
        }
    }
    if claims
        .get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(TokenError::NoSubject);
    }
    Ok(())
}

/// The claims, shared.
pub type Claims = Arc<Map<String, Value>>;

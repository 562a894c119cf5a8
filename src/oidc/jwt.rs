//! JWT verification with ring against a JWKS we own: ONE rule set for every token the gateway
//! accepts (an ID token at sign-in or refresh, a bearer ID token, a bearer Cognito access
//! token). The rules are OIDC Core 1.0 3.1.3.7 and 12.2, RFC 7515 / 7519 / 8725 and Cognito's
//! (aws-jwt-verify's); `docs/token-rules.md` lists them with what a user gets when one fails.
//!
//! - the header: compact form with exactly three canonical base64url parts (no JWE, no
//!   padding); no member twice; `alg` in the provider's allow-list (never `none`, never HMAC);
//!   no `crit` (we understand no extension), no `cty` (no nested JWTs); `typ` absent or `JWT`
//!   (access tokens also `at+jwt`);
//! - the key: the JWKS key named by `kid`, for signatures (`use`, `key_ops`), of the type and
//!   `alg` the token's algorithm needs; a key the provider withdrew from its JWKS is refused;
//! - the claims: no member twice; `iss` exact; `exp` required, `nbf` honoured, `iat` required
//!   in ID tokens, all with `LEEWAY_SECS`; `token_use`; the client id in `aud` (with `azp` as
//!   3.1.3.7 says) for ID tokens, in `client_id` for Cognito access tokens; `nonce` and `sub`
//!   as the caller asks (`Nonce`, `Expectations::sub`).
//!
//! Never fetches keys (the provider does) and never logs: errors name the rule, with outside
//! values cut short (`Clip`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::telemetry::Clip;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 60;

/// How many withdrawn key ids are remembered (a provider rotating for years must not grow
/// this without end; a key withdrawn that long ago is an unknown key, refused as well).
const WITHDRAWN_KEPT: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    // A client's token may say anything, at any length: log lines show it cut (`Clip`).
    #[error(
        "the token's algorithm {:?} is not accepted (this provider's: {accepted})",
        Clip(found)
    )]
    Algorithm { found: String, accepted: AlgSet },
    #[error(
        "the token's algorithm {alg} does not fit its key {:?} ({key})",
        Clip(kid)
    )]
    KeyMismatch {
        alg: &'static str,
        kid: String,
        key: String,
    },
    #[error(
        "the key {:?} in the provider's JWKS is not for signatures ({why})",
        Clip(kid)
    )]
    KeyNotForSigning { kid: String, why: String },
    #[error("no key with kid {:?} in the provider's JWKS", Clip(.0))]
    UnknownKey(String),
    #[error("the token is signed with the key {:?}, which the provider has withdrawn from its JWKS", Clip(.0))]
    KeyWithdrawn(String),
    #[error("the token's header {0}")]
    Header(String),
    #[error(
        "the token's typ {:?} is not accepted for {kind} (RFC 8725 3.11)",
        Clip(found)
    )]
    Type { found: String, kind: &'static str },
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's issuer {:?} is not {expected:?}", Clip(found))]
    Issuer { expected: String, found: String },
    #[error("the token is not meant for this client: {0}")]
    Audience(&'static str),
    #[error("the token has no exp (expiry)")]
    NoExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet ({0} is in the future)")]
    NotYetValid(&'static str),
    #[error("the ID token has no iat (issue time)")]
    NoIssuedAt,
    #[error("the token's token_use is {:?}, expected {expected:?}", Clip(found))]
    TokenUse {
        expected: &'static str,
        found: String,
    },
    #[error("the token's nonce {0}")]
    Nonce(&'static str),
    #[error("the token has no sub")]
    NoSubject,
    #[error("the refreshed ID token's sub is not the session's (OIDC Core 12.2)")]
    OtherSubject,
    /// The `openidconnect` crate's verification (OIDC Core 3.1.3.7) refused what ours passed.
    #[error("the ID token fails OpenID Connect's checks: {0}")]
    Library(String),
}

/// The signature algorithms verified here (those ring has). `none` and the HMAC family are
/// not among them: an HMAC "signature" keyed with a public key proves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

const ALGS: [Alg; 8] = [
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
    Alg::ES256,
    Alg::ES384,
];

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
        }
    }

    /// Exact, case-sensitive (RFC 7515 4.1.1).
    pub fn from_name(name: &str) -> Option<Alg> {
        ALGS.into_iter().find(|a| a.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of algorithms: what a provider's tokens may be signed with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AlgSet(u16);

impl AlgSet {
    /// Cognito signs with RS256 only.
    pub const COGNITO: AlgSet = AlgSet(1 << (Alg::RS256 as u16));
    /// Every algorithm verified here.
    pub const SAFE: AlgSet = AlgSet((1 << ALGS.len()) - 1);

    /// The safe algorithms among those a provider advertises (discovery's
    /// `id_token_signing_alg_values_supported`); `none` and `HS*` fall away.
    pub fn advertised<'a>(names: impl IntoIterator<Item = &'a str>) -> AlgSet {
        AlgSet(
            names
                .into_iter()
                .filter_map(Alg::from_name)
                .fold(0, |bits, a| bits | a.bit()),
        )
    }

    pub fn contains(self, alg: Alg) -> bool {
        self.0 & alg.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Alg> {
        ALGS.into_iter().filter(move |a| self.contains(*a))
    }
}

impl fmt::Display for AlgSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = ALGS
            .into_iter()
            .filter(|a| self.contains(*a))
            .map(Alg::name)
            .collect();
        f.write_str(&names.join(", "))
    }
}

impl fmt::Debug for AlgSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlgSet({self})")
    }
}

/// Which kind of token is checked: the rules differ in `typ`, `iat` and where the client id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An OpenID Connect ID token: the client id in `aud`.
    Id,
    /// A Cognito access token: the client id in `client_id`, no `aud`.
    Access,
}

impl TokenKind {
    fn name(self) -> &'static str {
        match self {
            TokenKind::Id => "an ID token",
            TokenKind::Access => "an access token",
        }
    }
}

/// A key's material.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    EcP256 { point: Vec<u8> },
    EcP384 { point: Vec<u8> },
}

/// One verification key, with what its JWK says it may be used for.
#[derive(Clone)]
struct VerifyKey {
    material: Material,
    /// The JWK's `alg`, when it names one: the only algorithm the key verifies.
    alg: Option<String>,
    /// Why the JWK is not for signatures (`use` other than `sig`, `key_ops` without
    /// `verify`); kept so such a token is refused as such, not as an unknown key.
    not_for_signing: Option<String>,
}

/// Keys by kid, and the kids the provider has withdrawn. Swapped whole when a new set arrives.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyKey>,
    /// The same document as the `openidconnect` crate reads it, for its ID-token checks.
    library: super::library_key::LibraryKeySet,
    /// Kids of keys earlier sets had and later ones left out, newest first.
    withdrawn: VecDeque<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
pub(super) struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// An EC public key as ring takes it: 0x04, x, y.
fn ec_point(x: Option<&str>, y: Option<&str>, len: usize) -> Option<Vec<u8>> {
    let (x, y) = (B64.decode(x?).ok()?, B64.decode(y?).ok()?);
    if x.len() != len || y.len() != len {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

impl Material {
    /// The key in a JWK, when it is one ring verifies with (RSA, EC P-256 or P-384).
    pub(super) fn of(k: &Jwk) -> Option<Material> {
        Some(match (k.kty.as_str(), k.crv.as_deref()) {
            ("RSA", _) => Material::Rsa {
                n: B64.decode(k.n.as_deref()?).ok()?,
                e: B64.decode(k.e.as_deref()?).ok()?,
            },
            ("EC", Some("P-256")) => Material::EcP256 {
                point: ec_point(k.x.as_deref(), k.y.as_deref(), 32)?,
            },
            ("EC", Some("P-384")) => Material::EcP384 {
                point: ec_point(k.x.as_deref(), k.y.as_deref(), 48)?,
            },
            _ => return None,
        })
    }

    /// Checks `signature` over `input` with ring. `Err` names the key when it is not of the
    /// type `alg` needs.
    pub(super) fn verify(
        &self,
        alg: Alg,
        input: &[u8],
        signature: &[u8],
    ) -> Result<bool, &'static str> {
        Ok(match (self, alg) {
            (
                Material::Rsa { n, e },
                Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512,
            ) => {
                let params = match alg {
                    Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, input, signature)
                    .is_ok()
            }
            (Material::EcP256 { point }, Alg::ES256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input, signature)
                    .is_ok()
            }
            (Material::EcP384 { point }, Alg::ES384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(input, signature)
                    .is_ok()
            }
            (Material::Rsa { .. }, _) => return Err("an RSA key"),
            (Material::EcP256 { .. }, _) => return Err("an EC P-256 key"),
            (Material::EcP384 { .. }, _) => return Err("an EC P-384 key"),
        })
    }
}

impl KeySet {
    /// Parses a JWKS document; keys of a type not understood are skipped.
    pub fn from_json(body: &[u8]) -> Result<KeySet, String> {
        let jwks: Jwks =
            serde_json::from_slice(body).map_err(|e| format!("the JWKS is not valid JSON: {e}"))?;
        let mut keys = HashMap::new();
        for k in jwks.keys {
            let Some(material) = Material::of(&k) else {
                continue;
            };
            let not_for_signing = match (&k.use_, &k.key_ops) {
                (Some(u), _) if u != "sig" => Some(format!("use {:?}", Clip(u))),
                (_, Some(ops)) if !ops.iter().any(|o| o == "verify") => {
                    Some("key_ops without \"verify\"".to_string())
                }
                _ => None,
            };
            keys.insert(
                k.kid.unwrap_or_default(),
                VerifyKey {
                    material,
                    alg: k.alg,
                    not_for_signing,
                },
            );
        }
        if !keys.values().any(|k| k.not_for_signing.is_none()) {
            return Err("the JWKS holds no usable signing key".into());
        }
        let library = serde_json::from_slice(body)
            .map_err(|e| format!("the JWKS is not one the OpenID Connect library reads: {e}"))?;
        Ok(KeySet {
            keys,
            library,
            withdrawn: VecDeque::new(),
        })
    }

    /// The set as the `openidconnect` crate takes it.
    pub fn library(&self) -> &super::library_key::LibraryKeySet {
        &self.library
    }

    /// The set as the library takes it, for a token `Unverified::verify` accepted with this
    /// very set: the key that checked its signature is marked with it
    /// (`library_key::with_verified`), so the library's check of the same token does not
    /// repeat ring's arithmetic.
    pub fn library_for_verified(
        &self,
        token: &Unverified<'_>,
    ) -> super::library_key::LibraryKeySet {
        match (self.keys.get(&token.kid), Alg::from_name(&token.alg)) {
            (Some(key), Some(alg)) => super::library_key::with_verified(
                &self.library,
                &key.material,
                alg,
                token.signing_input.as_bytes(),
                &token.signature,
            ),
            _ => self.library.clone(),
        }
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

    /// Carries over what `older` knew was withdrawn, and adds the keys `older` had and this
    /// set leaves out. A kid published again is no longer withdrawn.
    pub fn remember_withdrawn_since(&mut self, older: &KeySet) {
        let dropped = older.keys.keys().filter(|kid| !self.has(kid)).cloned();
        let before = older.withdrawn.iter().filter(|kid| !self.has(kid)).cloned();
        let mut withdrawn: VecDeque<String> = VecDeque::new();
        for kid in dropped.chain(before) {
            if withdrawn.len() < WITHDRAWN_KEPT && !withdrawn.contains(&kid) {
                withdrawn.push_back(kid);
            }
        }
        self.withdrawn = withdrawn;
    }
}

/// The parts of a JWT before its signature is checked.
pub struct Unverified<'t> {
    pub kid: String,
    alg: String,
    typ: Option<String>,
    signing_input: &'t str,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

/// Splits a compact JWS and checks its header (RFC 7515, RFC 8725): three canonical base64url
/// parts, a JSON object without duplicate members, `alg` a string, no `crit`, no `cty`.
pub fn parse(token: &str) -> Result<Unverified<'_>, TokenError> {
    let parts: Vec<&str> = token.splitn(6, '.').collect();
    let (h, p, s) = match parts.as_slice() {
        [h, p, s] => (*h, *p, *s),
        [_, _, _, _, _] => {
            return Err(TokenError::Malformed(
                "it has five parts: an encrypted JWE, not a signed JWT".into(),
            ))
        }
        _ => return Err(TokenError::Malformed("it does not have three parts".into())),
    };
    // URL_SAFE_NO_PAD refuses padding, '+' and '/', and stray bits in the last character:
    // one token has one spelling (a second one would get past a cache keyed by the text).
    let decode = |part: &str, what: &str| {
        B64.decode(part)
            .map_err(|_| TokenError::Malformed(format!("its {what} is not canonical base64url")))
    };
    let header = strict_object(&decode(h, "header")?, "header")?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(TokenError::Header("has no alg".into())),
    };
    let kid = match header.get("kid") {
        None => String::new(),
        Some(Value::String(k)) => k.clone(),
        Some(_) => return Err(TokenError::Header("has a kid that is not a string".into())),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(TokenError::Header("has a typ that is not a string".into())),
    };
    // RFC 7515 4.1.11: extensions listed in crit must be understood; we understand none.
    if let Some(crit) = header.get("crit") {
        return Err(TokenError::Header(format!(
            "has crit {}, naming extensions this gateway does not understand (RFC 7515 4.1.11)",
            Clip(&crit.to_string())
        )));
    }
    // RFC 8725 2.8: a nested JWT is a second token to verify; no provider sends one here.
    if header.contains_key("cty") {
        return Err(TokenError::Header(
            "has cty: a nested JWT, not accepted (RFC 8725 2.8)".into(),
        ));
    }
    Ok(Unverified {
        kid,
        alg,
        typ,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: decode(s, "signature")?,
        payload: decode(p, "payload")?,
    })
}

impl Unverified<'_> {
    /// The `iss` the payload claims, before anything is verified: only to choose which
    /// provider's keys and rules verify the token.
    pub fn claimed_issuer(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: String,
        }
        serde_json::from_slice::<Iss>(&self.payload)
            .ok()
            .map(|i| i.iss)
    }

    /// Checks the algorithm against `algs`, the key named by kid against the algorithm, and
    /// the signature; returns the claims.
    pub fn verify(&self, keys: &KeySet, algs: AlgSet) -> Result<Map<String, Value>, TokenError> {
        // Before any key is looked up: `none`, `HS256` and the like never reach a key (nor
        // make the provider fetch its JWKS again).
        let alg = Alg::from_name(&self.alg)
            .filter(|a| algs.contains(*a))
            .ok_or_else(|| TokenError::Algorithm {
                found: self.alg.clone(),
                accepted: algs,
            })?;
        let Some(key) = keys.keys.get(&self.kid) else {
            return Err(if keys.withdrawn.contains(&self.kid) {
                TokenError::KeyWithdrawn(self.kid.clone())
            } else {
                TokenError::UnknownKey(self.kid.clone())
            });
        };
        if let Some(why) = &key.not_for_signing {
            return Err(TokenError::KeyNotForSigning {
                kid: self.kid.clone(),
                why: why.clone(),
            });
        }
        let mismatch = |key: &str| TokenError::KeyMismatch {
            alg: alg.name(),
            kid: self.kid.clone(),
            key: key.to_string(),
        };
        if let Some(key_alg) = key.alg.as_deref().filter(|a| *a != alg.name()) {
            return Err(mismatch(&format!("its JWK says alg {:?}", Clip(key_alg))));
        }
        let ok = key
            .material
            .verify(alg, self.signing_input.as_bytes(), &self.signature)
            .map_err(mismatch)?;
        if !ok {
            return Err(TokenError::BadSignature);
        }
        strict_object(&self.payload, "payload")
    }

    /// `typ` absent, or the one `kind` may carry (RFC 8725 3.11: a token of one kind must
    /// not pass as another). Media types compare case-insensitively (RFC 7515 4.1.9).
    pub fn check_typ(&self, kind: TokenKind) -> Result<(), TokenError> {
        let Some(typ) = &self.typ else {
            return Ok(());
        };
        let t = typ.to_ascii_lowercase();
        let t = t.strip_prefix("application/").unwrap_or(&t);
        let fits = match kind {
            TokenKind::Id => t == "jwt",
            TokenKind::Access => t == "jwt" || t == "at+jwt",
        };
        if fits {
            Ok(())
        } else {
            Err(TokenError::Type {
                found: typ.clone(),
                kind: kind.name(),
            })
        }
    }
}

/// A JSON object whose members (at every depth) each come once: a token read one way here and
/// another way by the app behind (first vs last duplicate) is refused instead (RFC 7519 4,
/// RFC 8725 3.1 on parser differentials).
fn strict_object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, TokenError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| TokenError::Malformed(format!("its {what}: {e}")))?;
    match parsed.0 {
        Value::Object(map) => Ok(map),
        _ => Err(TokenError::Malformed(format!(
            "its {what} is not a JSON object"
        ))),
    }
}

/// A JSON value read with duplicate object members refused.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            list.push(v);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "a duplicate member {:?}",
                    Clip(&key)
                )));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// What a token's `nonce` must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonce<'a> {
    /// Bearer tokens, and refreshes of sessions that did not keep their sign-in's nonce.
    Ignored,
    /// At sign-in: present and exactly the one sent (OIDC Core 3.1.3.7 step 11).
    Required(&'a str),
    /// At a refresh: if present, the sign-in's (OIDC Core 12.2).
    IfPresent(&'a str),
}

/// What a token must say to be accepted.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// `Some("id")` / `Some("access")` for Cognito; `None` for generic OIDC ID tokens.
    pub token_use: Option<&'static str>,
    pub kind: TokenKind,
    pub nonce: Nonce<'a>,
    /// At a refresh, the session's `sub`: the refreshed ID token must name the same person.
    pub sub: Option<&'a str>,
    pub now: u64,
}

/// A NumericDate (RFC 7519 2): seconds, possibly with a fraction; None when absent or not one.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Option<u64> {
    let v = claims.get(name)?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
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
    let late = want.now.saturating_add(LEEWAY_SECS);
    match numeric_date(claims, "exp") {
        None => return Err(TokenError::NoExpiry),
        Some(exp) if exp.saturating_add(LEEWAY_SECS) <= want.now => {
            return Err(TokenError::Expired)
        }
        Some(_) => {}
    }
    if claims.contains_key("nbf") && numeric_date(claims, "nbf").is_none_or(|nbf| nbf > late) {
        return Err(TokenError::NotYetValid("nbf"));
    }
    match numeric_date(claims, "iat") {
        Some(iat) if iat > late => return Err(TokenError::NotYetValid("iat")),
        // OIDC Core 2: iat is REQUIRED in ID tokens.
        None if want.kind == TokenKind::Id => return Err(TokenError::NoIssuedAt),
        _ => {}
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
    check_audience(claims, want)?;
    let nonce = claims.get("nonce");
    match want.nonce {
        Nonce::Ignored => {}
        Nonce::Required(sent) => match nonce {
            None => return Err(TokenError::Nonce("is missing")),
            Some(n) if n.as_str() != Some(sent) => {
                return Err(TokenError::Nonce("does not match the sign-in attempt"))
            }
            Some(_) => {}
        },
        Nonce::IfPresent(original) => {
            if nonce.is_some_and(|n| n.as_str() != Some(original)) {
                return Err(TokenError::Nonce("is not the sign-in's (OIDC Core 12.2)"));
            }
        }
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if sub.is_empty() {
        return Err(TokenError::NoSubject);
    }
    if want.sub.is_some_and(|s| s != sub) {
        return Err(TokenError::OtherSubject);
    }
    Ok(())
}

/// OIDC Core 3.1.3.7 steps 3-5 for ID tokens (`aud` names us; with several audiences `azp`
/// must be there; an `azp` must be us), `client_id` for Cognito access tokens.
fn check_audience(claims: &Map<String, Value>, want: &Expectations<'_>) -> Result<(), TokenError> {
    if want.kind == TokenKind::Access {
        return match claims.get("client_id").and_then(Value::as_str) {
            Some(id) if id == want.client_id => Ok(()),
            Some(_) => Err(TokenError::Audience("its client_id is another client's")),
            None => Err(TokenError::Audience("it has no client_id")),
        };
    }
    let several = match claims.get("aud") {
        Some(Value::String(a)) if a == want.client_id => false,
        Some(Value::Array(list)) if list.iter().any(|a| a.as_str() == Some(want.client_id)) => {
            list.len() > 1
        }
        Some(_) => return Err(TokenError::Audience("its aud does not name this client")),
        None => return Err(TokenError::Audience("it has no aud")),
    };
    match claims.get("azp") {
        Some(azp) if azp.as_str() != Some(want.client_id) => Err(TokenError::Audience(
            "its azp (authorized party) is another client",
        )),
        None if several => Err(TokenError::Audience("it has several audiences and no azp")),
        _ => Ok(()),
    }
}

/// The claims, shared.
pub type Claims = Arc<Map<String, Value>>;

//! The provider's keys as the `openidconnect` crate takes them for its ID-token checks (OIDC
//! Core 3.1.3.7), with each signature checked by ring, as our own rules check it (`jwt`).
//!
//! The library's own key type verifies RSA with the `rsa` crate (num-bigint-dig): at a
//! session refresh that was a third of the gateway's CPU, its one RSA-2048 check costing
//! several times ring's. Everything else the library does with a key (which keys fit a
//! token's `kid` and `alg`, `use`, the key type, `at_hash`) is its own code, on the key it
//! parsed itself; only the arithmetic moves to ring. A key ring does not take (an HMAC
//! secret, an Ed25519 key) goes to the library's code as before; an RSA modulus under 2048
//! bits fails here, as our own rules have already failed it.
//!
//! Our rules check a token's signature first. The key that did it is handed to the library
//! marked with what it checked (`with_verified`): asked for the same signature over the same
//! message with the same algorithm, that key answers from the mark instead of doing ring's
//! arithmetic a second time (an RSA-2048 check is about a tenth of a sign-in's CPU). The
//! library's own steps all still run; any other signature, message, algorithm or key is
//! checked as ever.

use std::sync::Arc;

use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm};
use openidconnect::{
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, JsonWebKeyUse, JwsSigningAlgorithm,
    SignatureVerificationError,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::jwt::{Alg, Jwk, Material};

/// One JWK: the library's reading of it, and the key material ring verifies with.
#[derive(Clone)]
pub struct LibraryKey {
    core: CoreJsonWebKey,
    ring: Option<Material>,
    /// A signature ring has verified with this key's material (`with_verified`).
    verified: Option<Arc<Verified>>,
}

/// What ring verified: `signature` over `message`, with `alg`.
struct Verified {
    alg: Alg,
    message: Box<[u8]>,
    signature: Box<[u8]>,
}

/// `set`, its keys with `material` marked as having verified `signature` over `message` with
/// `alg` (by our own rules, `jwt`), for the library's check of the same token.
pub fn with_verified(
    set: &LibraryKeySet,
    material: &Material,
    alg: Alg,
    message: &[u8],
    signature: &[u8],
) -> LibraryKeySet {
    let verified = Arc::new(Verified {
        alg,
        message: message.into(),
        signature: signature.into(),
    });
    let keys = set
        .keys()
        .iter()
        .map(|k| {
            let mut k = k.clone();
            if k.ring.as_ref() == Some(material) {
                k.verified = Some(verified.clone());
            }
            k
        })
        .collect();
    LibraryKeySet::new(keys)
}

/// The key set handed to the library's `IdTokenVerifier`.
pub type LibraryKeySet = openidconnect::JsonWebKeySet<LibraryKey>;

impl std::fmt::Debug for LibraryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl<'de> Deserialize<'de> for LibraryKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        let ring = Jwk::deserialize(&json)
            .ok()
            .and_then(|jwk| Material::of(&jwk));
        let core = CoreJsonWebKey::deserialize(json).map_err(serde::de::Error::custom)?;
        Ok(LibraryKey {
            core,
            ring,
            verified: None,
        })
    }
}

impl Serialize for LibraryKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.core.serialize(s)
    }
}

/// The algorithms ring verifies, in the library's terms.
fn ring_alg(alg: &CoreJwsSigningAlgorithm) -> Option<Alg> {
    use CoreJwsSigningAlgorithm as A;
    Some(match alg {
        A::RsaSsaPkcs1V15Sha256 => Alg::RS256,
        A::RsaSsaPkcs1V15Sha384 => Alg::RS384,
        A::RsaSsaPkcs1V15Sha512 => Alg::RS512,
        A::RsaSsaPssSha256 => Alg::PS256,
        A::RsaSsaPssSha384 => Alg::PS384,
        A::RsaSsaPssSha512 => Alg::PS512,
        A::EcdsaP256Sha256 => Alg::ES256,
        A::EcdsaP384Sha384 => Alg::ES384,
        _ => return None,
    })
}

impl JsonWebKey for LibraryKey {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.core.key_id()
    }

    fn key_type(&self) -> &<CoreJwsSigningAlgorithm as JwsSigningAlgorithm>::KeyType {
        self.core.key_type()
    }

    fn key_use(&self) -> Option<&CoreJsonWebKeyUse> {
        self.core.key_use()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&CoreJwsSigningAlgorithm> {
        self.core.signing_alg()
    }

    fn new_symmetric(key: Vec<u8>) -> Self {
        LibraryKey {
            core: CoreJsonWebKey::new_symmetric(key),
            ring: None,
            verified: None,
        }
    }

    fn verify_signature(
        &self,
        alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        let (Some(material), Some(ours)) = (&self.ring, ring_alg(alg)) else {
            return self.core.verify_signature(alg, message, signature);
        };
        // The library's own key checks, as its key type makes them before any arithmetic.
        if self.key_use().is_some_and(|u| !u.allows_signature()) {
            return Err(SignatureVerificationError::InvalidKey(
                "key usage not permitted for digital signatures".into(),
            ));
        }
        if alg.key_type().as_ref() != Some(self.key_type()) {
            return Err(SignatureVerificationError::InvalidKey(
                "key type does not match signature algorithm".into(),
            ));
        }
        match self.signing_alg() {
            JsonWebKeyAlgorithm::Unspecified => {}
            JsonWebKeyAlgorithm::Algorithm(a) if a == alg => {}
            _ => {
                return Err(SignatureVerificationError::InvalidKey(
                    "incompatible key algorithm".into(),
                ))
            }
        }
        if let Some(v) = &self.verified {
            if v.alg == ours && *v.message == *message && *v.signature == *signature {
                return Ok(());
            }
        }
        match material.verify(ours, message, signature) {
            Ok(true) => Ok(()),
            Ok(false) => Err(SignatureVerificationError::CryptoError(
                "bad signature".into(),
            )),
            // The key type fits but not the curve (a P-256 key for ES384): the library's
            // own code decides, and refuses.
            Err(_) => self.core.verify_signature(alg, message, signature),
        }
    }

    fn hash_bytes(&self, bytes: &[u8], alg: &CoreJwsSigningAlgorithm) -> Result<Vec<u8>, String> {
        self.core.hash_bytes(bytes, alg)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    use super::*;
    use crate::demo::RsaSigner;
    use CoreJwsSigningAlgorithm as A;

    fn keys(jwk: serde_json::Value) -> (LibraryKey, CoreJsonWebKey) {
        let ours: LibraryKey = serde_json::from_value(jwk.clone()).unwrap();
        let theirs: CoreJsonWebKey = serde_json::from_value(jwk).unwrap();
        (ours, theirs)
    }

    /// What a token's signature covers, and the signature.
    fn split(token: &str) -> (&[u8], Vec<u8>) {
        let (input, sig) = token.rsplit_once('.').unwrap();
        (input.as_bytes(), B64.decode(sig).unwrap())
    }

    /// The ring-backed key and the library's own key say the same of every case.
    fn same_answers(
        jwk: serde_json::Value,
        alg: &CoreJwsSigningAlgorithm,
        input: &[u8],
        sig: &[u8],
    ) -> bool {
        let (ours, theirs) = keys(jwk);
        assert!(ours.ring.is_some(), "ring takes this key");
        let mut bad = sig.to_vec();
        bad[7] ^= 1;
        let answer = |k: &dyn Fn(&[u8]) -> bool| (k(sig), k(&bad));
        let a = answer(&|s| ours.verify_signature(alg, input, s).is_ok());
        let b = answer(&|s| theirs.verify_signature(alg, input, s).is_ok());
        assert_eq!(a, b);
        a == (true, false)
    }

    #[test]
    fn rsa_signatures_pass_and_fail_as_with_the_librarys_own_key() {
        let signer = RsaSigner::generate().unwrap();
        let token = signer.sign(&json!({"sub": "alice"})).unwrap();
        let (input, sig) = split(&token);
        assert!(same_answers(
            signer.jwk(),
            &A::RsaSsaPkcs1V15Sha256,
            input,
            &sig
        ));
        assert!(!same_answers(
            signer.jwk(),
            &A::RsaSsaPkcs1V15Sha256,
            b"other",
            &sig
        ));
    }

    #[test]
    fn ec_signatures_pass_and_fail_as_with_the_librarys_own_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": "ec",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]),
        });
        let sig = pair.sign(&rng, b"header.payload").unwrap();
        assert!(same_answers(
            jwk.clone(),
            &A::EcdsaP256Sha256,
            b"header.payload",
            sig.as_ref()
        ));
        // A P-256 key asked for an ES384 signature: refused, as by the library's own key.
        let (ours, theirs) = keys(jwk);
        let input = b"header.payload";
        assert!(ours
            .verify_signature(&A::EcdsaP384Sha384, input, sig.as_ref())
            .is_err());
        assert!(theirs
            .verify_signature(&A::EcdsaP384Sha384, input, sig.as_ref())
            .is_err());
    }

    #[test]
    fn a_key_marked_with_a_verified_signature_takes_that_one_and_checks_any_other() {
        let signer = RsaSigner::generate().unwrap();
        let token = signer.sign(&json!({"sub": "alice"})).unwrap();
        let (input, sig) = split(&token);
        let mut bad = sig.clone();
        bad[7] ^= 1;
        let set: LibraryKeySet = serde_json::from_value(json!({"keys": [signer.jwk()]})).unwrap();
        let material = set.keys()[0].ring.clone().unwrap();
        let rs256 = A::RsaSsaPkcs1V15Sha256;

        let marked = with_verified(&set, &material, Alg::RS256, input, &sig);
        let key = &marked.keys()[0];
        assert!(key.verify_signature(&rs256, input, &sig).is_ok());
        // Another signature, message or algorithm goes to ring, which refuses it.
        assert!(key.verify_signature(&rs256, input, &bad).is_err());
        assert!(key.verify_signature(&rs256, b"other", &sig).is_err());
        assert!(key
            .verify_signature(&A::RsaSsaPkcs1V15Sha384, input, &sig)
            .is_err());

        // The mark is what answers: one made for a signature ring refuses (only our own
        // accepted verification makes marks) is taken, without the arithmetic.
        let taken = with_verified(&set, &material, Alg::RS256, input, &bad);
        assert!(taken.keys()[0]
            .verify_signature(&rs256, input, &bad)
            .is_ok());

        // The library's key checks still come first: a marked key not for signatures refuses.
        let mut enc = signer.jwk();
        enc["use"] = json!("enc");
        let enc_set: LibraryKeySet = serde_json::from_value(json!({"keys": [enc]})).unwrap();
        let enc_marked = with_verified(&enc_set, &material, Alg::RS256, input, &sig);
        assert!(matches!(
            enc_marked.keys()[0].verify_signature(&rs256, input, &sig),
            Err(SignatureVerificationError::InvalidKey(_))
        ));

        // Only the key whose material verified is marked.
        let other = RsaSigner::generate().unwrap();
        let other_set: LibraryKeySet =
            serde_json::from_value(json!({"keys": [other.jwk()]})).unwrap();
        let not_marked = with_verified(&other_set, &material, Alg::RS256, input, &sig);
        assert!(not_marked.keys()[0].verified.is_none());
        assert!(not_marked.keys()[0]
            .verify_signature(&rs256, input, &sig)
            .is_err());
    }

    #[test]
    fn keys_not_for_this_signature_are_refused_before_any_arithmetic() {
        let signer = RsaSigner::generate().unwrap();
        let token = signer.sign(&json!({"sub": "alice"})).unwrap();
        let (input, sig) = split(&token);
        let with = |k: &str, v: serde_json::Value| {
            let mut jwk = signer.jwk();
            jwk[k] = v;
            keys(jwk).0
        };
        let refused = |key: LibraryKey, alg: &CoreJwsSigningAlgorithm| {
            matches!(
                key.verify_signature(alg, input, &sig),
                Err(SignatureVerificationError::InvalidKey(_))
            )
        };
        assert!(refused(with("use", json!("enc")), &A::RsaSsaPkcs1V15Sha256));
        assert!(refused(
            with("alg", json!("RS384")),
            &A::RsaSsaPkcs1V15Sha256
        ));
        assert!(refused(with("alg", json!("RS256")), &A::EcdsaP256Sha256));
        assert!(!refused(
            with("alg", json!("RS256")),
            &A::RsaSsaPkcs1V15Sha256
        ));
    }

    #[test]
    fn a_key_ring_does_not_take_stays_the_librarys() {
        let (ours, _) = keys(json!({"kty": "oct", "k": B64.encode(b"secret"), "kid": "h"}));
        assert!(ours.ring.is_none());
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret"),
            b"input",
        );
        assert!(ours
            .verify_signature(&A::HmacSha256, b"input", tag.as_ref())
            .is_ok());
    }
}

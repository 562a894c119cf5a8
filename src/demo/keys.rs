//! An RS256 signing key made at start, as a Cognito user pool has (the demo provider's and
//! the tests' token signer).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;

pub struct RsaSigner {
    pair: RsaKeyPair,
    kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
    rng: SystemRandom,
}

impl RsaSigner {
    /// A fresh 2048-bit key (generation takes a moment).
    pub fn generate() -> Result<RsaSigner, String> {
        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
        let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
        let pair = RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(|e| e.to_string())?;
        let n = key.n().to_bytes_be();
        let e = key.e().to_bytes_be();
        let digest = ring::digest::digest(&ring::digest::SHA256, &n);
        // Cognito's kids are base64 of a digest; any stable string will do.
        let kid = base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..15]);
        Ok(RsaSigner {
            pair,
            kid,
            n,
            e,
            rng: SystemRandom::new(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A compact RS256 JWT of these claims.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        let header = serde_json::json!({"kid": self.kid, "alg": "RS256"});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|e| e.to_string())?;
        Ok(format!("{input}.{}", B64.encode(sig)))
    }

    /// This key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": B64.encode(&self.n), "e": B64.encode(&self.e),
        })
    }

    pub fn jwks_json(&self) -> String {
        serde_json::json!({ "keys": [self.jwk()] }).to_string()
    }
}

//! The JWT entry points (`oidc::jwt`): `parse`, `verify`, `KeySet::from_json` and
//! `check_claims` never panic on arbitrary input; nothing verifies against the provider's
//! keys unless the provider signed it: not garbage, not an unsigned (`alg: none`) or
//! otherwise re-labelled token, not a signed token with one character changed. A signed
//! token gives claims only when its payload is a JSON object.
//!
//! Input: one byte choosing which character to change, then the payload / garbage.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use ssogate::oidc::jwt::{self, AlgSet, Expectations, KeySet, Nonce, TokenKind};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

struct Provider {
    key: EcdsaKeyPair,
    keys: KeySet,
    rng: SystemRandom,
}

fn provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("a P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("the key just made");
        let point = key.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }]});
        let keys = KeySet::from_json(jwks.to_string().as_bytes()).expect("our JWKS");
        Provider { key, keys, rng }
    })
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

fuzz_target!(|data: &[u8]| {
    let Some((&at, payload)) = data.split_first() else {
        return;
    };
    let p = provider();
    let text = String::from_utf8_lossy(payload);

    // Garbage.
    if let Ok(token) = jwt::parse(&text) {
        assert!(
            token.verify(&p.keys, AlgSet::SAFE).is_err(),
            "garbage verified: {text:?}"
        );
    }
    if let Ok(keys) = KeySet::from_json(payload) {
        if let Ok(token) = jwt::parse(&text) {
            let _ = token.verify(&keys, AlgSet::SAFE);
            let _ = token.check_typ(TokenKind::Id);
            let _ = token.check_typ(TokenKind::Access);
        }
    }
    if let Ok(claims) =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(payload)
    {
        for kind in [TokenKind::Id, TokenKind::Access] {
            for nonce in [Nonce::Ignored, Nonce::Required("n"), Nonce::IfPresent("n")] {
                let _ = jwt::check_claims(
                    &claims,
                    &Expectations {
                        issuer: "https://issuer",
                        client_id: "client",
                        token_use: Some("id"),
                        kind,
                        nonce,
                        sub: Some("s"),
                        now: 1_700_000_000,
                    },
                );
            }
        }
    }

    // Unsigned or re-labelled tokens over the payload.
    let body = b64(payload);
    for (header, signature) in [
        (r#"{"alg":"none","kid":"k1"}"#, String::new()),
        (r#"{"alg":"none"}"#, String::new()),
        (r#"{"alg":"ES256","kid":"k1"}"#, String::new()),
        (r#"{"alg":"HS256","kid":"k1"}"#, b64(&[0u8; 32])),
        (r#"{"alg":"RS256","kid":"k1"}"#, b64(payload)),
        (r#"{"alg":"ES256","kid":"k1"}"#, b64(&[0u8; 64])),
    ] {
        let token = format!("{}.{body}.{signature}", b64(header.as_bytes()));
        if let Ok(t) = jwt::parse(&token) {
            assert!(
                t.verify(&p.keys, AlgSet::SAFE).is_err(),
                "an unsigned token verified: {token}"
            );
        }
    }

    // Signed by the provider: verifies; one character changed: never does.
    let input = format!(
        "{}.{body}",
        b64(br#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#)
    );
    let sig = p.key.sign(&p.rng, input.as_bytes()).expect("signing");
    let token = format!("{input}.{}", b64(sig.as_ref()));
    let parsed = jwt::parse(&token).expect("a token we built parses");
    let claims = parsed.verify(&p.keys, AlgSet::SAFE);
    let is_object =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(payload).is_ok();
    // Claims only from a JSON object (one without duplicate members: those are refused).
    assert!(
        is_object || claims.is_err(),
        "a signed token over {payload:?} gave claims: {claims:?}"
    );
    if payload == b"{}" {
        assert!(claims.is_ok(), "a signed empty claim set: {claims:?}");
    }
    let mut bytes = token.into_bytes();
    let i = usize::from(at) * bytes.len() / 256;
    let pos = ALPHABET.iter().position(|&c| c == bytes[i]).unwrap_or(0);
    bytes[i] = ALPHABET[(pos + 1 + usize::from(at) % (ALPHABET.len() - 1)) % ALPHABET.len()];
    let tampered = String::from_utf8(bytes).expect("ASCII");
    if let Ok(t) = jwt::parse(&tampered) {
        assert!(
            t.verify(&p.keys, AlgSet::SAFE).is_err(),
            "a signed token with character {i} changed verified: {tampered}"
        );
    }
});

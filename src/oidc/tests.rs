use serde_json::json;

use super::jwt::*;
use super::*;
use crate::demo::RsaSigner;

const ISS: &str = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_AbC123xyz";

fn id_claims(now: u64) -> serde_json::Value {
    json!({
        "iss": ISS, "sub": "u-1", "aud": "client", "token_use": "id", "exp": now + 3600,
        "iat": now, "nonce": "n-1", "cognito:username": "alice", "cognito:groups": ["staff"],
        "email": "a@example.com", "email_verified": "true",
    })
}

fn expect(now: u64) -> Expectations<'static> {
    Expectations {
        issuer: ISS,
        client_id: "client",
        token_use: Some("id"),
        audience: Audience::Aud,
        nonce: Some("n-1"),
        now,
    }
}

fn check(claims: serde_json::Value, want: &Expectations<'_>) -> Result<(), TokenError> {
    check_claims(claims.as_object().unwrap(), want)
}

#[test]
fn a_good_id_token_passes_and_each_rule_bites() {
    let now = 1_800_000_000;
    assert_eq!(check(id_claims(now), &expect(now)), Ok(()));
    let with = |k: &str, v: serde_json::Value| {
        let mut c = id_claims(now);
        c[k] = v;
        check(c, &expect(now))
    };
    assert!(matches!(
        with("iss", json!("https://evil")),
        Err(TokenError::Issuer { .. })
    ));
    assert_eq!(with("aud", json!("other")), Err(TokenError::Audience));
    assert_eq!(
        with("aud", json!(["client", "other"])),
        Err(TokenError::Audience)
    );
    assert_eq!(with("exp", json!(now - 61)), Err(TokenError::Expired));
    assert_eq!(
        with("exp", json!(now - 30)),
        Ok(()),
        "small clock skew is tolerated"
    );
    assert_eq!(with("iat", json!(now + 600)), Err(TokenError::NotYetValid));
    assert_eq!(with("nonce", json!("n-2")), Err(TokenError::Nonce));
    assert!(matches!(
        with("token_use", json!("access")),
        Err(TokenError::TokenUse { .. })
    ));
    assert_eq!(with("sub", json!("")), Err(TokenError::NoSubject));
}

#[test]
fn cognito_access_tokens_carry_client_id_not_aud() {
    let now = 1_800_000_000;
    let claims = json!({"iss": ISS, "sub": "u", "client_id": "client", "token_use": "access", "exp": now + 60});
    let want = Expectations {
        token_use: Some("access"),
        audience: Audience::ClientIdClaim,
        nonce: None,
        ..expect(now)
    };
    assert_eq!(check(claims, &want), Ok(()));
}

#[test]
fn signatures_verify_only_with_the_right_key_and_algorithm() {
    let signer = RsaSigner::generate().unwrap();
    let other = RsaSigner::generate().unwrap();
    let keys = KeySet::from_json(signer.jwks_json().as_bytes()).unwrap();
    let token = signer.sign(&id_claims(1)).unwrap();
    let claims = parse(&token).unwrap().verify(&keys).unwrap();
    assert_eq!(claims["sub"], "u-1");

    let forged = other.sign(&id_claims(1)).unwrap();
    // Same kid lookup fails: other key has another kid.
    assert!(matches!(
        parse(&forged).unwrap().verify(&keys),
        Err(TokenError::UnknownKey(_))
    ));

    // A payload swapped under a valid signature.
    let (h, rest) = token.split_once('.').unwrap();
    let (_, s) = rest.split_once('.').unwrap();
    let evil_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"sub": "admin"})).unwrap());
    let tampered = format!("{h}.{evil_payload}.{s}");
    assert_eq!(
        parse(&tampered).unwrap().verify(&keys).err(),
        Some(TokenError::BadSignature)
    );

    // alg=none and HS256 are refused whatever the key.
    let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{{\"alg\":\"none\",\"kid\":\"{}\"}}", signer.kid()));
    let none = format!("{none_header}.{evil_payload}.");
    assert!(matches!(
        parse(&none).unwrap().verify(&keys),
        Err(TokenError::Algorithm(_))
    ));
    assert_eq!(parse("a.b").err(), Some(TokenError::Malformed));
}

#[test]
fn principal_reads_cognito_claims() {
    let config = crate::config::Config::from_toml_str(
        "[provider]\nuser_pool_id = \"eu-central-1_AbC123xyz\"\nclient_id = \"client\"\n[session]\nsecret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n[[routes]]\nupstream = \"http://127.0.0.1:1\"\n[headers.claims]\n\"X-Dept\" = \"custom:dept\"\n",
        &crate::config::ProcessSource,
    )
    .unwrap();
    let p = Provider::new(config.provider.clone().unwrap()).unwrap();
    let mut c = id_claims(0);
    c["custom:dept"] = json!("R&D");
    let principal = p.principal(c.as_object().unwrap(), &config.headers);
    assert_eq!(principal.user, "alice");
    assert_eq!(principal.groups, vec!["staff"]);
    assert_eq!(principal.email_verified, Some(true));
    assert_eq!(principal.mapped["custom:dept"], "R&D");
    let mut none = id_claims(0);
    none.as_object_mut().unwrap().remove("cognito:groups");
    assert!(p
        .principal(none.as_object().unwrap(), &config.headers)
        .groups
        .is_empty());
    // Cognito sends email_verified as a boolean or as a string; absent means not verified.
    for (claim, verified) in [
        (json!(true), true),
        (json!("true"), true),
        (json!("TRUE"), true),
        (json!(false), false),
        (json!("false"), false),
        (json!("yes"), false),
        (serde_json::Value::Null, false),
    ] {
        let mut c = id_claims(0);
        c["email"] = json!("alice@example.com");
        c["email_verified"] = claim.clone();
        let principal = p.principal(c.as_object().unwrap(), &config.headers);
        assert_eq!(principal.verified_email().is_some(), verified, "{claim}");
    }
    let mut absent = id_claims(0);
    absent["email"] = json!("alice@example.com");
    absent.as_object_mut().unwrap().remove("email_verified");
    let principal = p.principal(absent.as_object().unwrap(), &config.headers);
    assert_eq!(principal.verified_email(), None);
}

#[test]
fn pkce_matches_rfc7636_example() {
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

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
        kind: TokenKind::Id,
        nonce: Nonce::Required("n-1"),
        sub: None,
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
    assert!(matches!(
        with("aud", json!("other")),
        Err(TokenError::Audience(_))
    ));
    assert!(matches!(
        with("aud", json!(["client", "other"])),
        Err(TokenError::Audience(_))
    ));
    assert!(
        matches!(with("azp", json!("other")), Err(TokenError::Audience(_))),
        "an azp must be this client even with one audience"
    );
    let mut several = id_claims(now);
    several["aud"] = json!(["client", "other"]);
    several["azp"] = json!("client");
    assert_eq!(check(several, &expect(now)), Ok(()));
    assert_eq!(with("exp", json!(now - 61)), Err(TokenError::Expired));
    assert_eq!(
        with("exp", json!(now - 30)),
        Ok(()),
        "small clock skew is tolerated"
    );
    assert_eq!(
        with("iat", json!(now + 600)),
        Err(TokenError::NotYetValid("iat"))
    );
    assert!(matches!(
        with("nonce", json!("n-2")),
        Err(TokenError::Nonce(_))
    ));
    let without = |k: &str, want: &Expectations<'_>| {
        let mut c = id_claims(now);
        c.as_object_mut().unwrap().remove(k);
        check(c, want)
    };
    assert_eq!(without("exp", &expect(now)), Err(TokenError::NoExpiry));
    assert_eq!(without("iat", &expect(now)), Err(TokenError::NoIssuedAt));
    assert!(matches!(
        without("nonce", &expect(now)),
        Err(TokenError::Nonce(_))
    ));
    // At a refresh: the nonce may be absent, but one present is the sign-in's; same sub.
    let refresh = Expectations {
        nonce: Nonce::IfPresent("n-1"),
        sub: Some("u-1"),
        ..expect(now)
    };
    assert_eq!(without("nonce", &refresh), Ok(()));
    assert!(matches!(
        check(
            {
                let mut c = id_claims(now);
                c["nonce"] = json!("n-2");
                c
            },
            &refresh
        ),
        Err(TokenError::Nonce(_))
    ));
    assert_eq!(
        check(
            {
                let mut c = id_claims(now);
                c["sub"] = json!("u-2");
                c
            },
            &refresh
        ),
        Err(TokenError::OtherSubject)
    );
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
        kind: TokenKind::Access,
        nonce: Nonce::Ignored,
        ..expect(now)
    };
    assert_eq!(
        check(claims.clone(), &want),
        Ok(()),
        "iat is not required here"
    );
    let mut other = claims;
    other["client_id"] = json!("other");
    assert!(matches!(check(other, &want), Err(TokenError::Audience(_))));
}

#[test]
fn signatures_verify_only_with_the_right_key_and_algorithm() {
    let signer = RsaSigner::generate().unwrap();
    let other = RsaSigner::generate().unwrap();
    let keys = KeySet::from_json(signer.jwks_json().as_bytes()).unwrap();
    let token = signer.sign(&id_claims(1)).unwrap();
    let claims = parse(&token)
        .unwrap()
        .verify(&keys, AlgSet::COGNITO)
        .unwrap();
    assert_eq!(claims["sub"], "u-1");

    let forged = other.sign(&id_claims(1)).unwrap();
    // Same kid lookup fails: other key has another kid.
    assert!(matches!(
        parse(&forged).unwrap().verify(&keys, AlgSet::SAFE),
        Err(TokenError::UnknownKey(_))
    ));

    // A payload swapped under a valid signature.
    let (h, rest) = token.split_once('.').unwrap();
    let (_, s) = rest.split_once('.').unwrap();
    let evil_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"sub": "admin"})).unwrap());
    let tampered = format!("{h}.{evil_payload}.{s}");
    assert_eq!(
        parse(&tampered).unwrap().verify(&keys, AlgSet::SAFE).err(),
        Some(TokenError::BadSignature)
    );

    // alg=none and HS256 are refused whatever the key.
    let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{{\"alg\":\"none\",\"kid\":\"{}\"}}", signer.kid()));
    let none = format!("{none_header}.{evil_payload}.");
    assert!(matches!(
        parse(&none).unwrap().verify(&keys, AlgSet::SAFE),
        Err(TokenError::Algorithm { .. })
    ));
    assert!(matches!(parse("a.b"), Err(TokenError::Malformed(_))));
    assert!(matches!(parse("a.b.c.d.e"), Err(TokenError::Malformed(_))));
}

#[test]
fn principal_reads_cognito_claims() {
    let config = crate::config::Config::from_toml_str(
        "[provider]\nuser_pool_id = \"eu-central-1_AbC123xyz\"\nclient_id = \"client\"\n[session]\nsecret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n[[routes]]\nupstream = \"http://127.0.0.1:1\"\n[headers.claims]\n\"X-Dept\" = \"custom:dept\"\n",
        &crate::config::ProcessSource,
    )
    .unwrap();
    let p = Provider::new(config.provider().cloned().unwrap()).unwrap();
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

fn cognito_provider(extra: &str) -> Provider {
    let config = crate::config::Config::from_toml_str(
        &format!("[provider]\nuser_pool_id = \"eu-central-1_AbC123xyz\"\nclient_id = \"client\"\n{extra}\n[session]\nsecret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n[[routes]]\nupstream = \"http://127.0.0.1:1\"\n"),
        &crate::config::ProcessSource,
    )
    .unwrap();
    let p = Provider::new(config.provider().cloned().unwrap()).unwrap();
    let url = |s: &str| Url::parse(s).unwrap();
    p.metadata.store(Some(Arc::new(Metadata {
        authorization_endpoint: url("https://auth.example.com/oauth2/authorize?lang=de"),
        token_endpoint: url("https://auth.example.com/oauth2/token"),
        userinfo_endpoint: None,
        revocation_endpoint: None,
        end_session_endpoint: Some(url("https://auth.example.com/end")),
        jwks_uri: url("https://auth.example.com/jwks"),
        signing_algs: AlgSet::COGNITO,
    })));
    p
}

#[test]
fn the_authorization_request_carries_state_nonce_pkce_s256_and_the_extras() {
    let p = cognito_provider(
        "scopes = [\"email\", \"openid\", \"profile\"]\nidentity_provider = \"Corp\"\nauthorize_params = { prompt = \"login\" }",
    );
    // The verifier of RFC 7636's appendix B, and its challenge.
    let url = p
        .authorize_url(
            "https://app.example.com/oauth2/callback",
            "st-1",
            "n-1",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        )
        .unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q["code_challenge"],
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "client");
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["nonce"], "n-1");
    assert_eq!(q["redirect_uri"], "https://app.example.com/oauth2/callback");
    assert_eq!(q["scope"], "openid email profile", "openid once, first");
    assert_eq!(q["identity_provider"], "Corp");
    assert_eq!(q["prompt"], "login");
    assert_eq!(q["lang"], "de", "the endpoint's own query is kept");
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        q["code_challenge"]
    );
}

#[test]
fn the_end_session_url_is_rp_initiated_logout() {
    let p = cognito_provider("kind = \"oidc\"\nissuer_url = \"https://auth.example.com\"");
    let url = p
        .logout_url("https://app.example.com/oauth2/signed_out", None)
        .unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(url.as_str().starts_with("https://auth.example.com/end?"));
    assert_eq!(q["client_id"], "client");
    assert_eq!(
        q["post_logout_redirect_uri"],
        "https://app.example.com/oauth2/signed_out"
    );
}

/// The library's 3.1.3.7 is a gate of its own: each of these is refused by it alone.
#[test]
fn the_openidconnect_check_refuses_on_its_own() {
    let signer = RsaSigner::generate().unwrap();
    let other = RsaSigner::generate().unwrap();
    let keys = KeySet::from_json(signer.jwks_json().as_bytes()).unwrap();
    let now = 1_800_000_000;
    let rules = |nonce| protocol::IdTokenRules {
        issuer: ISS,
        client_id: "client",
        keys: keys.library(),
        algs: AlgSet::COGNITO,
        nonce,
        now,
    };
    let good = signer.sign(&id_claims(now)).unwrap();
    assert_eq!(
        protocol::verify_id_token(&good, &rules(Some("n-1"))),
        Ok(())
    );
    assert_eq!(
        protocol::verify_id_token(&good, &rules(None)),
        Ok(()),
        "a refresh"
    );
    let refused = |token: &str, nonce| {
        matches!(
            protocol::verify_id_token(token, &rules(nonce)),
            Err(TokenError::Library(_))
        )
    };
    assert!(refused(&good, Some("n-2")), "another nonce");
    assert!(
        refused(&other.sign(&id_claims(now)).unwrap(), None),
        "another key"
    );
    let with = |k: &str, v: serde_json::Value| {
        let mut c = id_claims(now);
        c[k] = v;
        signer.sign(&c).unwrap()
    };
    assert!(refused(&with("aud", json!("other")), None));
    assert!(refused(
        &with("iss", json!("https://evil.example.com")),
        None
    ));
    assert!(refused(&with("exp", json!(now - 61)), None));
    assert!(
        !refused(&with("exp", json!(now - 30)), None),
        "the same leeway as ours"
    );
    let mut no_iat = id_claims(now);
    no_iat.as_object_mut().unwrap().remove("iat");
    assert!(refused(&signer.sign(&no_iat).unwrap(), None));
    let only_es256 = protocol::IdTokenRules {
        algs: AlgSet::advertised(["ES256"]),
        ..rules(None)
    };
    assert!(protocol::verify_id_token(&good, &only_es256).is_err());
}

/// A token with `header` (raw JSON text) and the claims `payload` (raw JSON text).
fn raw(header: &str, payload: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.c2ln", b64.encode(header), b64.encode(payload))
}

#[test]
fn headers_with_crit_cty_duplicates_or_another_typ_are_refused() {
    let ok = raw(r#"{"alg":"RS256","kid":"k","typ":"JWT"}"#, "{}");
    let t = parse(&ok).unwrap();
    assert_eq!(t.check_typ(TokenKind::Id), Ok(()));
    for (header, why) in [
        (r#"{"alg":"RS256","crit":["b64"],"b64":false}"#, "crit"),
        (r#"{"alg":"RS256","cty":"JWT"}"#, "cty"),
        (r#"{"alg":"RS256","typ":"JWT","typ":"JWE"}"#, "duplicate"),
        (r#"{"kid":"k"}"#, "no alg"),
    ] {
        let e = parse(&raw(header, "{}")).err().expect(header).to_string();
        assert!(e.contains(why), "{header}: {e}");
    }
    let at = raw(r#"{"alg":"RS256","typ":"at+jwt"}"#, "{}");
    let at = parse(&at).unwrap();
    assert!(matches!(
        at.check_typ(TokenKind::Id),
        Err(TokenError::Type { .. })
    ));
    assert_eq!(at.check_typ(TokenKind::Access), Ok(()));
    let jwe = raw(r#"{"alg":"RS256","typ":"JWE"}"#, "{}");
    let jwe = parse(&jwe).unwrap();
    assert!(jwe.check_typ(TokenKind::Access).is_err());
}

#[test]
fn algorithm_sets_keep_only_safe_algorithms() {
    let advertised = AlgSet::advertised(["RS256", "HS256", "none", "ES256", "PS512"]);
    assert_eq!(advertised.to_string(), "RS256, PS512, ES256");
    assert!(AlgSet::advertised(["HS256", "none"]).is_empty());
    assert_eq!(AlgSet::COGNITO.to_string(), "RS256");
}

#[test]
fn a_withdrawn_key_is_named_as_such_until_it_is_published_again() {
    let a = RsaSigner::generate().unwrap();
    let b = RsaSigner::generate().unwrap();
    let first = KeySet::from_json(a.jwks_json().as_bytes()).unwrap();
    let mut second = KeySet::from_json(b.jwks_json().as_bytes()).unwrap();
    second.remember_withdrawn_since(&first);
    let token = a.sign(&id_claims(1)).unwrap();
    assert!(matches!(
        parse(&token).unwrap().verify(&second, AlgSet::COGNITO),
        Err(TokenError::KeyWithdrawn(_))
    ));
    let mut third = KeySet::from_json(a.jwks_json().as_bytes()).unwrap();
    third.remember_withdrawn_since(&second);
    assert!(parse(&token)
        .unwrap()
        .verify(&third, AlgSet::COGNITO)
        .is_ok());
}

use http::header::{HeaderMap, HeaderValue};

use super::*;
use crate::config::{Config, ProcessSource};

fn filter() -> InboundFilter {
    let config = Config::from_toml_str(
        "[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n[headers.claims]\n\"X-Department\" = \"custom:department\"\n",
        &ProcessSource,
    )
    .unwrap();
    InboundFilter::from_config(&config)
}

#[test]
fn spoofed_identity_headers_go_in_every_spelling() {
    let mut h = HeaderMap::new();
    for name in [
        "x-forwarded-user",
        "X-FORWARDED-EMAIL",
        "x_forwarded_groups",
        "X_Forwarded-Preferred_Username",
        "x-amzn-oidc-data",
        "x_amzn_oidc_identity",
        "x-auth-request-user",
        "x-department",
        "X_DEPARTMENT",
    ] {
        h.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("mallory"),
        );
    }
    h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
    h.insert("accept", HeaderValue::from_static("*/*"));
    h.insert("x-forwarded-userx", HeaderValue::from_static("*/*"));
    let filter = filter();
    let mut left: Vec<&str> = h
        .keys()
        .filter(|n| !filter.is_spoofed(n))
        .map(|k| k.as_str())
        .collect();
    left.sort();
    assert_eq!(left, vec!["accept", "x-forwarded-for", "x-forwarded-userx"]);
}

#[test]
fn gateway_cookies_never_reach_the_upstream() {
    let f = filter();
    assert_eq!(
        f.filter_cookie_header(b"a=1; _ssogate=xyz; _ssogate_1=more;b=2 ; _ssogatex=keep"),
        CookieHeader::Replace("a=1; b=2; _ssogatex=keep".into())
    );
    assert_eq!(
        f.filter_cookie_header(b"_ssogate=xyz; _ssogate_state_abc=s"),
        CookieHeader::Remove
    );
    assert_eq!(
        f.filter_cookie_header(b"a=1; ssogate=2; _ssogatex=3"),
        CookieHeader::Unchanged
    );
    let mut kept = String::from("a=1");
    f.keep_client_cookies(b"_ssogate_state_abc=s; b=2", &mut kept);
    assert_eq!(kept, "a=1; b=2");
}

fn alice() -> Principal {
    Principal {
        sub: "11111111-1111-4111-8111-111111111111".into(),
        user: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: Some(true),
        preferred_username: None,
        groups: vec!["admins".into(), "staff".into()],
        mapped: [("custom:department".to_string(), "R&D".to_string())].into(),
    }
}

fn headers_config(toml: &str) -> crate::config::HeadersConfig {
    Config::from_toml_str(
        &format!("[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n{toml}"),
        &ProcessSource,
    )
    .unwrap()
    .headers
}

#[test]
fn oauth2_proxy_preset_names_the_person() {
    let config = headers_config("[headers]\npass_id_token = true\n[headers.claims]\n\"X-Department\" = \"custom:department\"\n");
    let tokens = TokensForHeaders {
        access_token: Some("at"),
        id_token: Some("idt"),
        expires_at: 0,
        issuer: "https://issuer",
        client_id: "client",
    };
    let h = IdentityHeaders::build(&alice(), tokens, &config, None);
    let mut map = HeaderMap::new();
    IdentityHeaders::apply(&h.upstream, &mut map);
    assert_eq!(map["x-forwarded-user"], "alice");
    assert_eq!(map["x-forwarded-email"], "alice@example.com");
    assert_eq!(map["x-forwarded-groups"], "admins,staff");
    assert_eq!(map["x-forwarded-preferred-username"], "alice");
    assert_eq!(map["authorization"], "Bearer idt");
    assert_eq!(map["x-department"], "R&D");
    assert!(map.get("x-forwarded-access-token").is_none());
    let mut fa = HeaderMap::new();
    IdentityHeaders::apply(&h.auth_request, &mut fa);
    assert_eq!(fa["x-auth-request-groups"], "admins,staff");
}

#[test]
fn alb_preset_signs_a_verifiable_assertion() {
    let config = headers_config("[headers]\npreset = \"alb\"\n");
    let signer = AssertionSigner::new(None, "ssogate").unwrap();
    let tokens = TokensForHeaders {
        access_token: Some("at"),
        id_token: None,
        expires_at: 4_000_000_000,
        issuer: "https://issuer",
        client_id: "client",
    };
    let h = IdentityHeaders::build(&alice(), tokens, &config, Some(&signer));
    let mut map = HeaderMap::new();
    IdentityHeaders::apply(&h.upstream, &mut map);
    assert_eq!(map["x-amzn-oidc-identity"], alice().sub.as_str());
    assert_eq!(map["x-amzn-oidc-accesstoken"], "at");
    let jwt = map["x-amzn-oidc-data"].to_str().unwrap();
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&signer.jwks_json()).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let k = &jwks["keys"][0];
    let mut point = vec![4u8];
    point.extend(b64.decode(k["x"].as_str().unwrap()).unwrap());
    point.extend(b64.decode(k["y"].as_str().unwrap()).unwrap());
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(input.as_bytes(), &b64.decode(sig).unwrap())
        .expect("assertion verifies with the published key");
    let payload: serde_json::Value =
        serde_json::from_slice(&b64.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(payload["email"], "alice@example.com");
}

#[test]
fn authorization_is_stripped_only_when_the_gateway_sets_it() {
    let name = http::header::AUTHORIZATION;
    assert!(!filter().is_spoofed(&name), "left to the app by default");
    let config = Config::from_toml_str(
        "[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n[headers]\npass_id_token = true\n",
        &ProcessSource,
    )
    .unwrap();
    assert!(InboundFilter::from_config(&config).is_spoofed(&name));
}

#[test]
fn set_cookies_for_the_gateways_cookies_are_found_as_the_browser_sends_them_back() {
    let f = InboundFilter::for_tests();
    for ours in [
        &b"_ssogate=x; Path=/"[..],
        b"_ssogate_1=x",
        b" _ssogate = x",
        b"=_ssogate=x; Path=/",
        b"= =_ssogate=x",
        b"_ssogate",
        b"_ssogate; Max-Age=0",
        b"=_ssogate_state=x",
    ] {
        assert!(
            f.sets_gateway_cookie(ours),
            "{}",
            String::from_utf8_lossy(ours)
        );
    }
    for theirs in [
        &b"app=1; Path=/"[..],
        b"=x",
        b"app=_ssogate",
        b"ssogate=1",
        b"__ssogate=1",
    ] {
        assert!(
            !f.sets_gateway_cookie(theirs),
            "{}",
            String::from_utf8_lossy(theirs)
        );
    }
}

#[test]
fn an_email_that_is_not_verified_is_sent_under_no_name() {
    let config = headers_config(
        "[headers.claims]\n\"X-Forwarded-User\" = \"email\"\n\"X-Mail\" = \"email\"\n",
    );
    for verified in [Some(false), None] {
        let carol = Principal {
            email_verified: verified,
            mapped: [("email".to_string(), "carol@example.com".to_string())].into(),
            ..alice()
        };
        let h = IdentityHeaders::build(
            &carol,
            TokensForHeaders {
                access_token: None,
                id_token: None,
                expires_at: 0,
                issuer: "https://issuer",
                client_id: "client",
            },
            &config,
            None,
        );
        let all: Vec<_> = h.upstream.iter().chain(&h.auth_request).collect();
        assert!(
            all.iter()
                .all(|(_, v)| !v.to_str().unwrap().contains("carol@example.com")),
            "email_verified {verified:?}: {all:?}"
        );
        assert!(all.iter().all(|(n, _)| n != "x-forwarded-user"));
        assert!(
            all.iter().any(|(n, _)| n == "x-forwarded-groups"),
            "the rest stays"
        );
    }
}

#[test]
fn who_is_refused_for_their_email() {
    let unverified = Principal {
        email_verified: Some(false),
        ..alice()
    };
    let none = Principal {
        email: None,
        email_verified: None,
        ..alice()
    };
    assert_eq!(
        email_refusal(&alice(), "email", true, &EmailRules::default()),
        None
    );
    assert_eq!(
        email_refusal(
            &unverified,
            "cognito:username",
            false,
            &EmailRules::default()
        ),
        None
    );
    assert_eq!(
        email_refusal(&unverified, "email", false, &EmailRules::default()),
        Some(EmailRefusal::UnverifiedEmailAsUser)
    );
    assert_eq!(
        email_refusal(&unverified, "sub", true, &EmailRules::default()),
        Some(EmailRefusal::Unverified)
    );
    assert_eq!(
        email_refusal(&none, "sub", false, &EmailRules::default()),
        None
    );
    assert_eq!(
        email_refusal(&none, "sub", true, &EmailRules::default()),
        Some(EmailRefusal::NoEmail)
    );
}

#[test]
fn email_rules_admit_by_the_verified_email_unless_told_otherwise() {
    let ours = EmailRules::new(["example.com"], [] as [&str; 0]);
    let theirs = EmailRules::new(["other.org"], ["someone@example.com"]);
    let unverified = Principal {
        email_verified: Some(false),
        ..alice()
    };
    let none = Principal {
        email: None,
        email_verified: None,
        ..alice()
    };
    assert_eq!(email_refusal(&alice(), "sub", true, &ours), None);
    assert_eq!(
        email_refusal(&alice(), "sub", true, &theirs),
        Some(EmailRefusal::NotAllowed)
    );
    // Verification is asked first: its page says what to do.
    assert_eq!(
        email_refusal(&unverified, "sub", true, &ours),
        Some(EmailRefusal::Unverified)
    );
    // Turned off on purpose: the email as given is held to the rules.
    assert_eq!(email_refusal(&unverified, "sub", false, &ours), None);
    assert_eq!(
        email_refusal(&none, "sub", false, &ours),
        Some(EmailRefusal::NotAllowed)
    );
}

#[test]
fn roles_from_groups_go_upstream_and_in_the_alb_assertion() {
    let roles = "[roles]\nadmins = [\"admin\", \"editor\"]\nstaff = [\"viewer\", \"editor\"]\n";
    let tokens = || TokensForHeaders {
        access_token: None,
        id_token: None,
        expires_at: 4_000_000_000,
        issuer: "https://issuer",
        client_id: "client",
    };
    let config = headers_config(roles);
    let h = IdentityHeaders::build(&alice(), tokens(), &config, None);
    let mut map = HeaderMap::new();
    IdentityHeaders::apply(&h.upstream, &mut map);
    assert_eq!(map["x-forwarded-roles"], "admin,editor,viewer");
    let mut fa = HeaderMap::new();
    IdentityHeaders::apply(&h.auth_request, &mut fa);
    assert_eq!(fa["x-auth-request-roles"], "admin,editor,viewer");

    let config = headers_config(&format!("[headers]\npreset = \"alb\"\n{roles}"));
    let signer = AssertionSigner::new(None, "ssogate").unwrap();
    let h = IdentityHeaders::build(&alice(), tokens(), &config, Some(&signer));
    let mut map = HeaderMap::new();
    IdentityHeaders::apply(&h.upstream, &mut map);
    let jwt = map["x-amzn-oidc-data"].to_str().unwrap();
    use base64::Engine;
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        payload["roles"],
        serde_json::json!(["admin", "editor", "viewer"])
    );

    // Without [roles], no roles header at all.
    let h = IdentityHeaders::build(&alice(), tokens(), &headers_config(""), None);
    assert!(h.upstream.iter().all(|(n, _)| n != "x-forwarded-roles"));
}

#[test]
fn a_spoofed_roles_header_goes_in_every_spelling() {
    let filter = filter();
    for name in [
        "x-forwarded-roles",
        "X-Forwarded-Roles",
        "x_forwarded_roles",
        "X_FORWARDED-ROLES",
        "x-auth-request-roles",
    ] {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        assert!(filter.is_spoofed(&name), "{name} is not stripped");
    }
}

use http::header::{HeaderMap, HeaderValue, COOKIE};

use super::codec::*;
use super::*;
use crate::config::{Config, ProcessSource};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";
const APP_A: &str = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_A app-a";
const APP_B: &str = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_A app-b";

fn session(expires: u64) -> Session {
    Session {
        id: None,
        provider: 0,
        principal: Principal {
            sub: "u-1".into(),
            user: "alice".into(),
            email: Some("alice@example.com".into()),
            email_verified: Some(true),
            preferred_username: None,
            groups: vec!["staff".into()],
            mapped: Default::default(),
        },
        created: 1,
        expires,
        last_seen: 0,
        refresh_due: 2,
        tokens_expire: 3,
        refresh_token: Some("r".repeat(1800)),
        access_token: None,
        id_token: None,
        nonce: None,
    }
}

#[test]
fn sealed_values_open_only_with_our_keys_and_name() {
    let codec = Codec::new(SECRET, None);
    let sealed = codec.seal("_ssogate", "hello");
    assert_eq!(codec.open("_ssogate", &sealed).as_deref(), Some("hello"));
    assert_eq!(codec.open("_other", &sealed), None, "the name is bound");
    assert_eq!(Codec::new(OTHER, None).open("_ssogate", &sealed), None);
    // Rotation: the new key first, the old one still opens.
    let rotated = Codec::new(OTHER, Some(SECRET));
    assert_eq!(rotated.open("_ssogate", &sealed).as_deref(), Some("hello"));
    // Tampering anywhere fails.
    let mut bytes = sealed.clone().into_bytes();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        codec.open("_ssogate", std::str::from_utf8(&bytes).unwrap()),
        None
    );
    assert_eq!(codec.open("_ssogate", &sealed[..sealed.len() - 4]), None);
}

fn request_with(set: &[HeaderValue]) -> HeaderMap {
    let pairs: Vec<String> = set
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let mut h = HeaderMap::new();
    h.insert(COOKIE, HeaderValue::from_str(&pairs.join("; ")).unwrap());
    h
}

#[test]
fn large_values_are_chunked_and_stale_chunks_deleted() {
    let attrs = CookieAttrs {
        secure: true,
        path: "/".into(),
        domain: None,
    };
    let big = "A".repeat(CHUNK_SIZE * 2 + 10);
    let set = set_chunked(&HeaderMap::new(), "_s", &big, &attrs, 60);
    assert_eq!(set.len(), 3);
    assert!(set.iter().all(|c| {
        let c = c.to_str().unwrap();
        c.contains("HttpOnly")
            && c.contains("SameSite=Lax")
            && c.contains("Secure")
            && c.len() < 4000
    }));
    let req = request_with(&set);
    assert_eq!(read_cookie(&req, "_s").unwrap(), big);

    // A smaller value later deletes _s_1 and _s_2.
    let again = set_chunked(&req, "_s", "small", &attrs, 60);
    let text: Vec<&str> = again.iter().map(|v| v.to_str().unwrap()).collect();
    assert!(text[0].starts_with("_s=small;"));
    assert!(text
        .iter()
        .any(|c| c.starts_with("_s_1=;") && c.contains("Max-Age=0")));
    assert!(text
        .iter()
        .any(|c| c.starts_with("_s_2=;") && c.contains("Max-Age=0")));

    // A missing chunk means no session rather than a wrong one.
    let mut partial = HeaderMap::new();
    partial.insert(COOKIE, HeaderValue::from_static("_s=3:abc; _s_1=def"));
    assert!(read_cookie(&partial, "_s").is_none());
}

fn sessions_config(store: &str) -> crate::config::SessionConfig {
    Config::from_toml_str(
        &format!(
            "[session]\nstore = \"{store}\"\nsecret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n"
        ),
        &ProcessSource,
    )
    .unwrap()
    .session
}

#[tokio::test]
async fn cookie_store_round_trips_and_expires() {
    let sessions = Sessions::new(&sessions_config("cookie"), &[APP_A.to_string()]).unwrap();
    let mut s = session(100);
    let value = sessions.save(&mut s).await.unwrap();
    assert_eq!(sessions.load(&value, 50).await.unwrap(), Some(s.clone()));
    assert_eq!(sessions.load(&value, 100).await.unwrap(), None, "expired");
    assert_eq!(sessions.load("garbage", 50).await.unwrap(), None);
}

#[tokio::test]
async fn memory_store_keeps_only_an_id_in_the_cookie_and_revokes() {
    let sessions = Sessions::new(&sessions_config("memory"), &[APP_A.to_string()]).unwrap();
    let mut s = session(u64::MAX / 2);
    let value = sessions.save(&mut s).await.unwrap();
    assert!(value.len() < 120, "cookie is small: {}", value.len());
    let loaded = sessions.load(&value, 1).await.unwrap().unwrap();
    assert_eq!(loaded.principal, s.principal);
    // A new sign-in mints a new id.
    let mut again = session(u64::MAX / 2);
    assert_ne!(sessions.save(&mut again).await.unwrap(), value);
    sessions.delete(&loaded).await.unwrap();
    assert_eq!(sessions.load(&value, 1).await.unwrap(), None);
}

#[tokio::test]
async fn a_session_for_one_client_does_not_open_at_a_gateway_for_another_with_the_same_secret() {
    for store in ["cookie", "memory"] {
        let a = Sessions::new(&sessions_config(store), &[APP_A.to_string()]).unwrap();
        let b = Sessions::new(&sessions_config(store), &[APP_B.to_string()]).unwrap();
        let value = a.save(&mut session(u64::MAX / 2)).await.unwrap();
        assert!(a.load(&value, 1).await.unwrap().is_some(), "{store}");
        assert_eq!(b.load(&value, 1).await.unwrap(), None, "{store}");
        assert!(!b.opens(&value), "{store}");
    }
    // A server-side record written for another binding (a shared Redis) is not taken either,
    // even with a cookie that opens.
    let a = Sessions::new(&sessions_config("cookie"), &[APP_A.to_string()]).unwrap();
    let b = Sessions::new(&sessions_config("cookie"), &[APP_B.to_string()]).unwrap();
    let json = a.record(&session(u64::MAX / 2)).unwrap();
    assert!(a.session_in(&json, 0).is_some());
    assert!(b.session_in(&json, 0).is_none());
    // Records from before sessions were bound need a new sign-in.
    let unbound = serde_json::to_string(&session(u64::MAX / 2)).unwrap();
    assert!(a.session_in(&unbound, 0).is_none());
}

#[tokio::test]
async fn with_two_providers_a_session_comes_back_with_its_own_and_only_there() {
    let both = [APP_A.to_string(), APP_B.to_string()];
    for store in ["cookie", "memory"] {
        let sessions = Sessions::new(&sessions_config(store), &both).unwrap();
        let mut s = session(u64::MAX / 2);
        s.provider = 1;
        let value = sessions.save(&mut s).await.unwrap();
        let loaded = sessions.load(&value, 1).await.unwrap().unwrap();
        assert_eq!(loaded.provider, 1, "{store}");
        assert_eq!(loaded.principal, s.principal, "{store}");
        // A gateway with only the first provider does not open the second's sessions; one
        // with only the second does, as its provider 0.
        let only_a = Sessions::new(&sessions_config(store), &both[..1]).unwrap();
        if store == "cookie" {
            assert_eq!(only_a.load(&value, 1).await.unwrap(), None, "{store}");
            let only_b = Sessions::new(&sessions_config(store), &both[1..]).unwrap();
            assert_eq!(only_b.load(&value, 1).await.unwrap().unwrap().provider, 0);
        }
    }
    // A record bound to one provider is not taken for a cookie sealed for the other.
    let sessions = Sessions::new(&sessions_config("cookie"), &both).unwrap();
    let json = sessions.record(&session(u64::MAX / 2)).unwrap();
    assert_eq!(sessions.session_in(&json, 0).unwrap().provider, 0);
    assert!(sessions.session_in(&json, 1).is_none());
}

/// Base64url text of `n` pseudo-random bytes (a token part).
fn b64_part(n: usize, seed: u8) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Cognito-sized tokens: a JWE refresh token (~1.8 KB of text), and RS256 JWTs for the ID
/// and access tokens (~1.1 KB each).
fn cognito_session() -> Session {
    let jwe = [
        b64_part(68, 1),
        b64_part(256, 2),
        b64_part(12, 3),
        b64_part(1000, 4),
        b64_part(16, 5),
    ]
    .join(".");
    let jwt = |seed| {
        [
            b64_part(60, seed),
            b64_part(560, seed + 1),
            b64_part(256, seed + 2),
        ]
        .join(".")
    };
    Session {
        refresh_token: Some(jwe),
        id_token: Some(jwt(10)),
        access_token: Some(jwt(20)),
        ..session(u64::MAX / 2)
    }
}

#[tokio::test]
async fn the_memory_store_keeps_tokens_as_bytes_not_as_base64_text() {
    let sessions = Sessions::new(&sessions_config("memory"), &[APP_A.to_string()]).unwrap();
    for s in [cognito_session(), session(u64::MAX / 2)] {
        let mut s = s;
        let value = sessions.save(&mut s).await.unwrap();
        let raw: usize = [&s.refresh_token, &s.id_token, &s.access_token]
            .iter()
            .filter_map(|t| t.as_ref().map(|t| t.len()))
            .sum();
        let kept = sessions
            .store
            .kept_bytes(s.id.as_deref().unwrap())
            .await
            .unwrap();
        // The record as JSON text is the tokens plus ~400 bytes; packed, the tokens take 3/4.
        assert!(
            kept <= raw,
            "{kept} bytes kept for {raw} bytes of tokens (as text: {})",
            sessions.record(&s).unwrap().len()
        );
        assert_eq!(
            sessions.load(&value, 1).await.unwrap(),
            Some(s),
            "back exactly"
        );
    }
}

#[test]
fn packed_records_come_back_exactly() {
    let token = cognito_session().refresh_token.unwrap();
    let cases = [
        String::new(),
        "{}".to_string(),
        format!(r#"{{"a":"{token}","b":"x\"y\\","c":"{token}"}}"#),
        // Not canonical base64url (stray bits at the end), padding, standard base64, too short,
        // too many parts, a raw marker byte: all kept as text.
        format!(r#"{{"t":"{}B"}}"#, b64_part(100, 7)),
        format!(r#"{{"t":"{}=="}}"#, b64_part(100, 7)),
        format!(r#"{{"t":"{}+/{}"}}"#, b64_part(60, 1), b64_part(60, 2)),
        r#"{"t":"abc.def"}"#.to_string(),
        format!(r#"{{"t":"{}"}}"#, vec![b64_part(30, 1); 10].join(".")),
        format!("{{\"t\":\"\u{1}{token}\"}}"),
        format!(r#"{{"t":"{token}.","u":".{token}"}}"#),
    ];
    for json in cases {
        assert_eq!(
            pack::unpack(&pack::pack(&json)).as_deref(),
            Some(json.as_str())
        );
    }
    assert!(pack::pack(&format!(r#"{{"r":"{token}"}}"#)).len() < token.len() * 4 / 5);
    assert_eq!(pack::unpack(&[1, 1, 5]), None, "cut short");
}

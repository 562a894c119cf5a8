//! The demo provider's endpoints, called as the gateway and a browser would call them.

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use super::*;

const ISSUER: &str = "http://127.0.0.1:9/eu-central-1_Demo1234";
const CLIENT_ID: &str = "ssogate-demo";
const SECRET: &str = "s3cret+/=";
const REDIRECT: &str = "http://127.0.0.1:4180/oauth2/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// One provider (and one RSA key) for all tests: codes and tokens are random, so tests
/// running at the same time do not meet.
fn provider() -> &'static DemoProvider {
    static PROVIDER: OnceLock<DemoProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let client = AppClient {
            client_id: CLIENT_ID.into(),
            client_secret: SECRET.into(),
            redirect_uri: REDIRECT.into(),
            sign_out_prefix: "http://127.0.0.1:4180/".into(),
        };
        DemoProvider::new(ISSUER, client, RsaSigner::generate().unwrap()).unwrap()
    })
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn location(&self) -> url::Url {
        let loc = self.headers.get(LOCATION).expect("a Location header");
        url::Url::parse(loc.to_str().unwrap()).unwrap()
    }
    fn query(&self, name: &str) -> Option<String> {
        self.location()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
    /// `name=value` of the first Set-Cookie.
    fn cookie(&self) -> String {
        let c = self.headers.get(SET_COOKIE).expect("a Set-Cookie header");
        c.to_str().unwrap().split(';').next().unwrap().to_string()
    }
}

async fn send(req: Request<Full<Bytes>>) -> Answer {
    let resp: Response<Full<Bytes>> = provider().handle(req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn get(path_and_query: &str, cookie: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(format!("/eu-central-1_Demo1234{path_and_query}"));
    if let Some(c) = cookie {
        b = b.header(COOKIE, c);
    }
    b.body(Full::default()).unwrap()
}

fn post(path: &str, basic: Option<(&str, &str)>, pairs: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::post(format!("/eu-central-1_Demo1234{path}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let creds = STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
        b = b.header(AUTHORIZATION, format!("Basic {creds}"));
    }
    b.body(Full::new(Bytes::from(form(pairs)))).unwrap()
}

fn authorize_params(scope: &str, verifier: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", CLIENT_ID.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", scope.into()),
        ("state", "st<ate>".into()),
        ("nonce", "n-0S6_WzA2Mj".into()),
        ("code_challenge", pkce_s256(verifier)),
        ("code_challenge_method", "S256".into()),
    ]
}

fn query(params: &[(&'static str, String)]) -> String {
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    format!("?{}", form(&pairs))
}

/// Signs in through the form; returns the code and the hosted-UI cookie.
async fn sign_in(user: &str) -> (String, String) {
    let params = authorize_params("openid email profile", VERIFIER);
    let page = send(get(&format!("/oauth2/authorize{}", query(&params)), None)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"username\""));
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("username", user));
    pairs.push(("password", DEMO_PASSWORD));
    let resp = send(post("/login", None, &pairs)).await;
    assert_eq!(resp.status, StatusCode::FOUND, "{}", resp.body);
    assert!(resp.location().as_str().starts_with(REDIRECT));
    assert_eq!(resp.query("state").as_deref(), Some("st<ate>"));
    (resp.query("code").expect("a code"), resp.cookie())
}

async fn exchange(code: &str, verifier: &str) -> Answer {
    send(post(
        "/oauth2/token",
        Some((CLIENT_ID, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    ))
    .await
}

/// The claims of a JWT whose signature verifies with the provider's published JWKS.
fn verified_claims(token: &str) -> Value {
    let jwks: Value = serde_json::from_str(&provider().inner.signer.jwks_json()).unwrap();
    let key = &jwks["keys"][0];
    let (input, sig) = token.rsplit_once('.').unwrap();
    let header: Value =
        serde_json::from_slice(&B64.decode(input.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], key["kid"]);
    let n = B64.decode(key["n"].as_str().unwrap()).unwrap();
    let e = B64.decode(key["e"].as_str().unwrap()).unwrap();
    ring::signature::RsaPublicKeyComponents { n, e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &B64.decode(sig).unwrap(),
        )
        .expect("the signature verifies with the JWKS key");
    serde_json::from_slice(&B64.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_is_shaped_like_cognitos() {
    let d = send(get("/.well-known/openid-configuration", None))
        .await
        .json();
    assert_eq!(d["issuer"], ISSUER);
    assert_eq!(
        d["authorization_endpoint"],
        format!("{ISSUER}/oauth2/authorize")
    );
    assert_eq!(d["token_endpoint"], format!("{ISSUER}/oauth2/token"));
    assert_eq!(d["userinfo_endpoint"], format!("{ISSUER}/oauth2/userInfo"));
    assert_eq!(d["revocation_endpoint"], format!("{ISSUER}/oauth2/revoke"));
    assert_eq!(d["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert!(d.get("end_session_endpoint").is_none());
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let jwks = send(get("/.well-known/jwks.json", None)).await.json();
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
}

#[tokio::test]
async fn alice_gets_cognito_shaped_tokens() {
    let (code, _) = sign_in("alice").await;
    let resp = exchange(&code, VERIFIER).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let t = resp.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert!(t["refresh_token"].as_str().is_some_and(|r| r.len() > 40));

    let id = verified_claims(t["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], ISSUER);
    assert_eq!(id["aud"], CLIENT_ID);
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["sub"], DEMO_USERS[0].sub);
    assert_eq!(id["cognito:username"], "alice");
    assert_eq!(id["cognito:groups"], serde_json::json!(["admins", "staff"]));
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    let (iat, exp) = (id["iat"].as_u64().unwrap(), id["exp"].as_u64().unwrap());
    assert_eq!(exp - iat, 3600);
    assert!(id["auth_time"].as_u64().unwrap() <= iat);

    let access = verified_claims(t["access_token"].as_str().unwrap());
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["client_id"], CLIENT_ID);
    assert!(
        access.get("aud").is_none(),
        "Cognito access tokens have no aud"
    );
    assert_eq!(access["scope"], "openid email profile");
    assert_eq!(access["username"], "alice");
    assert_eq!(
        access["cognito:groups"],
        serde_json::json!(["admins", "staff"])
    );
    assert!(access["jti"].as_str().is_some_and(|j| j.len() == 36));
}

#[tokio::test]
async fn carol_without_groups_has_no_groups_claim_at_all() {
    let (code, _) = sign_in("carol").await;
    let t = exchange(&code, VERIFIER).await.json();
    let id = verified_claims(t["id_token"].as_str().unwrap());
    assert_eq!(id["cognito:username"], "carol");
    assert!(id.get("cognito:groups").is_none(), "absent, not []: {id}");
    let access = verified_claims(t["access_token"].as_str().unwrap());
    assert!(access.get("cognito:groups").is_none());
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_invalid_grant() {
    let (code, _) = sign_in("bob").await;
    let resp = exchange(&code, "another-verifier-another-verifier-another-verifier").await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.json()["error"], "invalid_grant");
    // The code was spent by the failed attempt.
    assert_eq!(
        exchange(&code, VERIFIER).await.json()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_code_works_once() {
    let (code, _) = sign_in("bob").await;
    assert_eq!(exchange(&code, VERIFIER).await.status, StatusCode::OK);
    let again = exchange(&code, VERIFIER).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_different_redirect_uri_at_the_token_endpoint_is_invalid_grant() {
    let (code, _) = sign_in("bob").await;
    let resp = send(post(
        "/oauth2/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:4180/elsewhere"),
            ("code_verifier", VERIFIER),
        ],
    ))
    .await;
    assert_eq!(resp.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_wrong_client_secret_is_401_invalid_client() {
    let (code, _) = sign_in("bob").await;
    let basic = send(post(
        "/oauth2/token",
        Some((CLIENT_ID, "wrong")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    ))
    .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(basic.json()["error"], "invalid_client");
    assert!(basic.headers.contains_key(http::header::WWW_AUTHENTICATE));

    let post_auth = send(post(
        "/oauth2/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
            ("code", &code),
        ],
    ))
    .await;
    assert_eq!(post_auth.status, StatusCode::UNAUTHORIZED);
    assert_eq!(post_auth.json()["error"], "invalid_client");

    // A failed client authentication does not spend the code.
    assert_eq!(exchange(&code, VERIFIER).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_gives_new_tokens_but_no_new_refresh_token() {
    let (code, _) = sign_in("alice").await;
    let first = exchange(&code, VERIFIER).await.json();
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let first_id = verified_claims(first["id_token"].as_str().unwrap());
    for _ in 0..2 {
        let resp = send(post(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("refresh_token", refresh_token),
            ],
        ))
        .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        let t = resp.json();
        assert!(t.get("refresh_token").is_none(), "no rotation: {t}");
        let id = verified_claims(t["id_token"].as_str().unwrap());
        assert_eq!(id["cognito:groups"], serde_json::json!(["admins", "staff"]));
        assert_eq!(id["auth_time"], first_id["auth_time"], "auth_time stays");
        assert!(id.get("nonce").is_none());
        assert_eq!(
            verified_claims(t["access_token"].as_str().unwrap())["token_use"],
            "access"
        );
    }
}

#[tokio::test]
async fn revoking_the_refresh_token_ends_refresh_and_userinfo() {
    let (code, _) = sign_in("bob").await;
    let t = exchange(&code, VERIFIER).await.json();
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();

    let userinfo = |token: String| {
        Request::get("/eu-central-1_Demo1234/oauth2/userInfo")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap()
    };
    let info = send(userinfo(access.to_string())).await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.json()["username"], "bob");
    assert_eq!(info.json()["email_verified"], "true");

    let revoked = send(post(
        "/oauth2/revoke",
        Some((CLIENT_ID, SECRET)),
        &[("token", refresh)],
    ))
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);

    let again = send(post(
        "/oauth2/token",
        Some((CLIENT_ID, SECRET)),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    ))
    .await;
    assert_eq!(again.json()["error"], "invalid_grant");
    assert_eq!(
        send(userinfo(access.to_string())).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again() {
    let params = authorize_params("openid", VERIFIER);
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.push(("username", "alice"));
    pairs.push(("password", "guess"));
    let resp = send(post("/login", None, &pairs)).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.body.contains("Incorrect username or password."));
    assert!(resp.body.contains("name=\"password\""));
    assert!(resp.headers.get(SET_COOKIE).is_none());
    // The request's parameters are carried again, escaped.
    assert!(resp.body.contains("value=\"st&lt;ate&gt;\""));
    assert!(!resp.body.contains("st<ate>"));
}

#[tokio::test]
async fn the_groups_scope_is_refused_like_cognito() {
    let params = authorize_params("openid groups", VERIFIER);
    let resp = send(get(&format!("/oauth2/authorize{}", query(&params)), None)).await;
    assert_eq!(resp.status, StatusCode::FOUND);
    assert!(resp.location().as_str().starts_with(REDIRECT));
    assert_eq!(resp.query("error").as_deref(), Some("invalid_scope"));
    assert_eq!(resp.query("state").as_deref(), Some("st<ate>"));
    assert!(resp.query("code").is_none());
}

#[tokio::test]
async fn an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect() {
    let mut params = authorize_params("openid", VERIFIER);
    params[2].1 = "https://evil.example/cb".into();
    let resp = send(get(&format!("/oauth2/authorize{}", query(&params)), None)).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert!(resp.headers.get(LOCATION).is_none());
}

#[tokio::test]
async fn pkce_is_required() {
    let mut params = authorize_params("openid", VERIFIER);
    params.retain(|(k, _)| !k.starts_with("code_challenge"));
    let resp = send(get(&format!("/oauth2/authorize{}", query(&params)), None)).await;
    assert_eq!(resp.query("error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn the_hosted_session_skips_the_form_until_logout() {
    let (_, cookie) = sign_in("alice").await;
    let params = authorize_params("openid", VERIFIER);
    let authorize = format!("/oauth2/authorize{}", query(&params));
    let again = send(get(&authorize, Some(&cookie))).await;
    assert_eq!(again.status, StatusCode::FOUND, "no form the second time");
    assert!(again.query("code").is_some());

    let foreign = send(get(
        &format!("/logout?client_id={CLIENT_ID}&logout_uri=https%3A%2F%2Fevil.example%2F"),
        Some(&cookie),
    ))
    .await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    // Same host and port prefix, but not below the gateway's origin.
    let lookalike = send(get(
        &format!("/logout?client_id={CLIENT_ID}&logout_uri=http%3A%2F%2F127.0.0.1%3A41801%2F"),
        Some(&cookie),
    ))
    .await;
    assert_eq!(lookalike.status, StatusCode::BAD_REQUEST);

    let out = send(get(
        &format!(
            "/logout?client_id={CLIENT_ID}&logout_uri=http%3A%2F%2F127.0.0.1%3A4180%2Foauth2%2Fsigned_out"
        ),
        Some(&cookie),
    ))
    .await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert_eq!(
        out.location().as_str(),
        "http://127.0.0.1:4180/oauth2/signed_out"
    );
    assert!(out.cookie().starts_with("cognito="));
    assert!(out.headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    let after = send(get(&authorize, Some(&cookie))).await;
    assert_eq!(after.status, StatusCode::OK, "the form again after /logout");
}

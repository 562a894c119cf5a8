//! The token rules (`docs/token-rules.md`), tried the way the OpenID Foundation's relying-party
//! conformance tests try them: the test provider (npm `oidc-provider`) sends ONE defect at a
//! time, in a token signed with its own keys (`POST /__test/defect`), and the real gateway
//! must refuse it the way a user notices (sign-in: the error page; refresh: the session
//! ended; bearer: 401 `invalid_token`), with a log line naming the rule, and never let the
//! request reach the app. The same valid tokens still pass.
//!
//! One table, four token kinds: an ID token at sign-in, an ID token at refresh, an ID token
//! as a bearer token, a Cognito access token as a bearer token. Each kind's test runs every
//! row and reports every row that went wrong at once.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{sign_in, Idp};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    SignIn,
    Refresh,
    BearerId,
    BearerAccess,
}

/// What a row expects of one token kind.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Accept,
    /// Refused, with a log line containing these words.
    Refuse(&'static str),
    /// The rule does not concern this kind of token.
    Skip,
}
use Expect::{Accept, Refuse, Skip};

/// One rule, one defect, and what each kind of token must get.
struct Row {
    rule: &'static str,
    /// The `/__test/defect` spec (without `grant` and `target`).
    defect: Value,
    /// Sign-in, refresh, bearer ID token, bearer access token.
    expect: [Expect; 4],
    /// Done first (a key withdrawn, say), followed by a valid token of the same kind so the
    /// gateway sees the provider's new key set.
    setup: Option<&'static str>,
}

const BOB: &str = "22222222-2222-4222-8222-222222222222";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn row(rule: &'static str, defect: Value, expect: [Expect; 4]) -> Row {
    Row {
        rule,
        defect,
        expect,
        setup: None,
    }
}

/// The table, for a Cognito provider (RS256 only).
fn cognito_rows() -> Vec<Row> {
    let all = |why| [Refuse(why); 4];
    let id_only = |why| [Refuse(why), Refuse(why), Refuse(why), Accept];
    vec![
        row("a valid token", json!({}), [Accept; 4]),
        row("typ JWT", json!({"header": {"typ": "JWT"}}), [Accept; 4]),
        row(
            "a token response without token_type (RFC 6749 5.1; the OIDC library's read)",
            json!({"response": {"token_type": null}}),
            [Refuse("token_type"), Refuse("token_type"), Skip, Skip],
        ),
        row(
            "typ at+jwt (RFC 9068: access tokens only)",
            json!({"header": {"typ": "at+jwt"}}),
            [Refuse("typ"), Refuse("typ"), Refuse("typ"), Accept],
        ),
        row("typ JWE", json!({"header": {"typ": "JWE"}}), all("typ")),
        row(
            "cty present (a nested JWT, RFC 8725 2.8)",
            json!({"header": {"cty": "JWT"}}),
            all("cty"),
        ),
        row(
            "crit names an extension we do not understand (RFC 7515 4.1.11)",
            json!({"header": {"crit": ["urn:example:ext"], "urn:example:ext": true}}),
            all("crit"),
        ),
        row("alg none", json!({"alg": "none"}), all("algorithm")),
        row(
            "HS256 keyed with the provider's public key",
            json!({"alg": "HS256"}),
            all("algorithm"),
        ),
        row(
            "RS384 (Cognito signs RS256 only), key without alg",
            json!({"alg": "RS384", "key": "extra-rsa", "jwk": {"alg": null}}),
            all("algorithm"),
        ),
        row(
            "ES256 (Cognito signs RS256 only)",
            json!({"alg": "ES256", "key": "ec256"}),
            all("algorithm"),
        ),
        row(
            "the JWK's alg is another (RS512) than the token's (RS256)",
            json!({"alg": "RS256", "key": "extra-rsa", "jwk": {"alg": "RS512"}}),
            all("algorithm"),
        ),
        row(
            "the JWK's kty does not fit the alg (RS256 by an EC key)",
            json!({"alg": "RS256", "key": "ec256", "jwk": {"alg": null}}),
            all("algorithm"),
        ),
        row(
            "the JWK is for encryption (use enc)",
            json!({"alg": "RS256", "key": "extra-rsa", "jwk": {"use": "enc"}}),
            all("not for signatures"),
        ),
        row(
            "signed by a key not in the JWKS, under the provider's kid",
            json!({"key": "foreign"}),
            all("signature"),
        ),
        row("a JWE (5 parts)", json!({"jwe": true}), all("well-formed")),
        row(
            "base64 with padding",
            json!({"encoding": "padded"}),
            all("well-formed"),
        ),
        row(
            "standard base64 (+ and /)",
            json!({"encoding": "standard"}),
            all("well-formed"),
        ),
        row(
            "a duplicate claim in the payload",
            json!({"append_payload": format!(",\"sub\":\"{BOB}\"")}),
            all("duplicate"),
        ),
        row(
            "a duplicate member in the header",
            json!({"header": {"typ": "JWT"}, "append_header": ",\"typ\":\"JWT\""}),
            all("duplicate"),
        ),
        row(
            "iss of another issuer",
            json!({"claims": {"iss": "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Other"}}),
            all("issuer"),
        ),
        row(
            "aud of another client",
            json!({"claims": {"aud": "other-client"}}),
            id_only("not meant for this client"),
        ),
        row(
            "aud with another client too, and no azp",
            json!({"claims": {"aud": ["basic-client", "other-client"]}}),
            id_only("not meant for this client"),
        ),
        row(
            "aud with another client too, azp this client",
            json!({"claims": {"aud": ["basic-client", "other-client"], "azp": "basic-client"}}),
            [Accept; 4],
        ),
        row(
            "azp names another client",
            json!({"claims": {"azp": "other-client"}}),
            id_only("not meant for this client"),
        ),
        row(
            "access token: client_id of another client",
            json!({"claims": {"client_id": "other-client"}}),
            [Skip, Skip, Skip, Refuse("not meant for this client")],
        ),
        row(
            "access token: aud instead of client_id",
            json!({"claims": {"client_id": null, "aud": "basic-client"}}),
            [Skip, Skip, Skip, Refuse("not meant for this client")],
        ),
        row("exp missing", json!({"claims": {"exp": null}}), all("exp")),
        row(
            "exp an hour ago",
            json!({"claims": {"exp": "now-3600", "iat": "now-7200"}}),
            all("expired"),
        ),
        row(
            "exp 30 s ago (within the 60 s leeway)",
            json!({"claims": {"exp": "now-30", "iat": "now-3600"}}),
            [Accept; 4],
        ),
        row(
            "nbf in 10 minutes",
            json!({"claims": {"nbf": "now+600"}}),
            all("not valid yet"),
        ),
        row(
            "iat missing",
            json!({"claims": {"iat": null}}),
            id_only("iat"),
        ),
        row(
            "iat in 10 minutes",
            json!({"claims": {"iat": "now+600"}}),
            all("not valid yet"),
        ),
        row(
            "nonce missing",
            json!({"claims": {"nonce": null}}),
            [Refuse("nonce"), Accept, Accept, Skip],
        ),
        row(
            "nonce of another sign-in",
            json!({"claims": {"nonce": "attacker-chosen"}}),
            [Refuse("nonce"), Refuse("nonce"), Accept, Skip],
        ),
        row("sub missing", json!({"claims": {"sub": null}}), all("sub")),
        row(
            "sub of another person",
            json!({"claims": {"sub": BOB}}),
            [Skip, Refuse("sub"), Skip, Skip],
        ),
        row(
            "token_use missing",
            json!({"claims": {"token_use": null}}),
            all("token_use"),
        ),
        row(
            "token_use access in an ID token",
            json!({"claims": {"token_use": "access"}}),
            [Refuse("token_use"), Refuse("token_use"), Skip, Skip],
        ),
        Row {
            rule: "signed by a key withdrawn from the JWKS",
            defect: json!({"key": "withdrawn"}),
            expect: all("withdrawn"),
            setup: Some("rotate-keys?drop_old=1"),
        },
    ]
}

/// A provider, a gateway in front of an echo app, and what the rows need.
struct Stand {
    gw: Gateway,
    idp: Idp,
    upstream: Upstream,
}

fn stand(kind: &str, idp_args: &[&str]) -> Stand {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start_with(&[port], idp_args);
    let provider = match kind {
        "oidc" => format!(
            "[provider]\nkind = \"oidc\"\nissuer_url = \"{iss}\"\nclient_id = \"basic-client\"\nclient_secret = \"basic-secret\"\n\
             groups_claim = \"cognito:groups\"\nuser_claim = \"cognito:username\"\n",
            iss = idp.issuer
        ),
        _ => idp.provider_toml("basic-client"),
    };
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         trusted_proxies = [\"127.0.0.1\"]\ntrusted_forwarded_headers = [\"X-Forwarded-For\"]\n\n{provider}timeout = \"2s\"\n\n\
         [session]\nsecret = \"{secret}\"\nrefresh_interval = \"1s\"\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"{up}\"\n\n\
         [logging]\nformat = \"json\"\nlevel = \"info\"\n",
        secret = idp::SESSION_SECRET,
        up = upstream.url,
    );
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));
    Stand { gw, idp, upstream }
}

/// What happened to one token.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The app was reached.
    Accepted,
    /// Refused the right way for its kind; the log line, if one named the rule.
    Refused { logged: bool },
    /// Anything else: what the user got.
    Other(String),
}

impl Stand {
    fn reached(&self, path: &str) -> bool {
        self.upstream.requests().iter().any(|r| r.path == path)
    }

    async fn queue(&self, grant: &str, kind: Kind, defect: &Value) {
        let mut spec = defect.clone();
        // Times are written "now-30" in the table and made numbers when the token is sent.
        if let Some(claims) = spec.get_mut("claims").and_then(Value::as_object_mut) {
            for v in claims.values_mut() {
                if let Some(offset) = v.as_str().and_then(|t| t.strip_prefix("now")) {
                    let offset: i64 = offset.parse().expect("now+N or now-N");
                    *v = json!(now() as i64 + offset);
                }
            }
        }
        spec["grant"] = json!(grant);
        spec["target"] = json!(if kind == Kind::BearerAccess {
            "access_token"
        } else {
            "id_token"
        });
        self.idp.control("defect", Some(spec)).await;
    }

    /// Sends one token of `kind` with `defect` through the gateway; `path` is this try's own.
    async fn attempt(&self, kind: Kind, defect: &Value, path: &str, needle: &str) -> Outcome {
        let log_from = self.gw.logs().len();
        let outcome = match kind {
            Kind::SignIn => {
                self.queue("authorization_code", kind, defect).await;
                let b = person();
                let (resp, _) = sign_in(&b, &self.gw.url(path), "alice").await;
                let status = resp.status();
                let page = resp.text().await.unwrap_or_default();
                if self.reached(path) {
                    Outcome::Accepted
                } else if status == StatusCode::BAD_REQUEST && page.contains("Sign-in failed") {
                    Outcome::Refused { logged: false }
                } else {
                    Outcome::Other(format!("{status}: {}", first_words(&page)))
                }
            }
            Kind::Refresh => {
                let b = person();
                let (resp, _) = sign_in(&b, &self.gw.url("/signed-in"), "alice").await;
                assert_eq!(resp.status(), StatusCode::OK, "{}", self.gw.logs());
                self.queue("refresh_token", kind, defect).await;
                tokio::time::sleep(Duration::from_millis(1300)).await;
                let nav = b.get(self.gw.url(path)).send().await.unwrap();
                let status = nav.status();
                let location = nav
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                // Ended, not survived: the next call (no refresh due any more) is not let in.
                let again = b
                    .get(self.gw.url(&format!("{path}/again")))
                    .header("accept", "application/json")
                    .send()
                    .await
                    .unwrap()
                    .status();
                if self.reached(path) {
                    Outcome::Accepted
                } else if status == StatusCode::FOUND
                    && location.contains("/oauth2/authorize?")
                    && again == StatusCode::UNAUTHORIZED
                {
                    Outcome::Refused { logged: false }
                } else {
                    Outcome::Other(format!("{status} to {location:?}, then {again}"))
                }
            }
            Kind::BearerId | Kind::BearerAccess => {
                self.queue("authorization_code", kind, defect).await;
                let tokens = idp::tokens_by_code_flow(
                    &self.idp.issuer,
                    "basic-client",
                    "basic-secret",
                    &self.gw.url("/oauth2/callback"),
                    "alice",
                )
                .await;
                let field = if kind == Kind::BearerAccess {
                    "access_token"
                } else {
                    "id_token"
                };
                let token = tokens[field].as_str().expect("a token").to_string();
                let resp = common::client()
                    .get(self.gw.url(path))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                assert!(!self.gw.logs().contains(&token), "a token reached the log");
                if self.reached(path) {
                    Outcome::Accepted
                } else if status == StatusCode::UNAUTHORIZED
                    && challenge.contains("error=\"invalid_token\"")
                {
                    Outcome::Refused { logged: false }
                } else {
                    Outcome::Other(format!("{status} {challenge}"))
                }
            }
        };
        match outcome {
            Outcome::Refused { .. } => Outcome::Refused {
                logged: self.logged_since(log_from, needle),
            },
            other => other,
        }
    }

    /// Whether a log line written since `from` names the rule (logging is asynchronous).
    fn logged_since(&self, from: usize, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let logs = self.gw.logs();
            if logs[from.min(logs.len())..]
                .to_lowercase()
                .contains(&needle.to_lowercase())
            {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A browser of its own, from an address of its own: the many sign-ins of one table stay
/// under the gateway's per-address callback limit (the gateway believes X-Forwarded-For
/// from 127.0.0.1 here).
fn person() -> reqwest::Client {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        format!("10.17.{}.{}", n / 250, n % 250 + 1)
            .parse()
            .unwrap(),
    );
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn first_words(page: &str) -> String {
    page.chars().take(160).collect()
}

/// Runs every row for `kind`; panics with the list of rows that went wrong.
async fn run_table(s: &Stand, kind: Kind, rows: &[Row], column: usize) {
    let mut wrong = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let expect = r.expect[column];
        if matches!(expect, Skip) {
            continue;
        }
        if let Some(setup) = r.setup {
            s.idp.control(setup, None).await;
            // A valid token with the new key: the gateway fetches the new key set.
            let path = format!("/rule/{i}/setup");
            let got = s.attempt(kind, &json!({}), &path, "").await;
            if got != Outcome::Accepted {
                wrong.push(format!(
                    "  {kind:?} / {}: a valid token after {setup} was refused: {got:?}",
                    r.rule
                ));
                continue;
            }
        }
        let path = format!("/rule/{i}");
        let needle = match expect {
            Refuse(why) => why,
            _ => "",
        };
        let got = s.attempt(kind, &r.defect, &path, needle).await;
        let verdict = match (expect, &got) {
            (Accept, Outcome::Accepted) | (Refuse(_), Outcome::Refused { logged: true }) => None,
            (Accept, other) => Some(format!("refused, should pass: {other:?}")),
            (Refuse(_), Outcome::Accepted) => Some("ACCEPTED, should be refused".to_string()),
            (Refuse(why), Outcome::Refused { logged: false }) => {
                Some(format!("refused, but no log line says {why:?}"))
            }
            (Refuse(_), other) => Some(format!("not refused the right way: {other:?}")),
            (Skip, _) => None,
        };
        if let Some(v) = verdict {
            wrong.push(format!("  {:?} / {}: {v}", kind, r.rule));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} row(s) wrong:\n{}\n--- gateway log (tail) ---\n{}",
        wrong.len(),
        wrong.join("\n"),
        tail(&s.gw.logs(), 40)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test]
async fn sign_in_id_tokens_follow_the_rules() {
    let s = stand("cognito", &[]);
    run_table(&s, Kind::SignIn, &cognito_rows(), 0).await;
}

#[tokio::test]
async fn refreshed_id_tokens_follow_the_rules() {
    let s = stand("cognito", &[]);
    run_table(&s, Kind::Refresh, &cognito_rows(), 1).await;
}

#[tokio::test]
async fn bearer_id_tokens_follow_the_rules() {
    let s = stand("cognito", &[]);
    run_table(&s, Kind::BearerId, &cognito_rows(), 2).await;
}

#[tokio::test]
async fn bearer_access_tokens_follow_the_rules() {
    let s = stand("cognito", &[]);
    run_table(&s, Kind::BearerAccess, &cognito_rows(), 3).await;
}

/// `kind = "oidc"`: the algorithms the provider advertises (here RS256, PS256, ES256 and
/// HS256), less those never safe here (HS256), are the ones accepted.
#[tokio::test]
async fn oidc_providers_get_the_algorithms_they_advertise_and_no_others() {
    let s = stand("oidc", &["--advertise-algs", "RS256,PS256,ES256,HS256"]);
    let rows = vec![
        row("RS256", json!({}), [Accept, Accept, Accept, Skip]),
        row(
            "PS256 (advertised) by a key for PS256",
            json!({"alg": "PS256", "key": "extra-rsa", "jwk": {"alg": "PS256"}}),
            [Accept, Accept, Accept, Skip],
        ),
        row(
            "ES256 (advertised)",
            json!({"alg": "ES256", "key": "ec256"}),
            [Accept, Accept, Accept, Skip],
        ),
        row(
            "RS512 (not advertised), key without alg",
            json!({"alg": "RS512", "key": "extra-rsa", "jwk": {"alg": null}}),
            [Refuse("algorithm"); 4],
        ),
        row(
            "ES384 (not advertised)",
            json!({"alg": "ES384", "key": "ec384"}),
            [Refuse("algorithm"); 4],
        ),
        row(
            "HS256 (advertised, never safe with a public key)",
            json!({"alg": "HS256"}),
            [Refuse("algorithm"); 4],
        ),
        row(
            "PS256 by the provider's RS256 key",
            json!({"alg": "PS256"}),
            [Refuse("algorithm"); 4],
        ),
    ];
    run_table(&s, Kind::SignIn, &rows, 0).await;
    run_table(&s, Kind::BearerId, &rows, 2).await;
    run_table(&s, Kind::Refresh, &rows, 1).await;
}

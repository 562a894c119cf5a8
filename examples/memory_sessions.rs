//! Memory used by the `memory` session store holding N sessions (default 100 000), each with
//! a Cognito-sized refresh token (~1.8 KB, Cognito's are encrypted JWEs of that size).
//!
//!     cargo run --release --example memory_sessions -- 100000 [REFRESH_TOKEN_BYTES]
//!     cargo run --release --example memory_sessions -- 100000 --cognito [--all-tokens] [--json]
//!
//! Prints the process RSS before and after, and the bytes per session. It measures the
//! store alone, as the gateway holds it; the decoded-session cache adds an entry per session
//! active in the last few minutes on top. With `--cognito` the tokens are shaped like
//! Cognito's (base64url parts: a 5-part JWE refresh token of ~1.8 KB; with `--all-tokens` also
//! RS256 ID and access tokens of ~1.1 KB each, kept when a header needs them), each session's
//! different; `--json` prints one line for bench/measure.py, with the bytes per session over
//! the raw bytes of the tokens kept as "value".

use ssogate::config::{Config, ProcessSource};
use ssogate::identity::Principal;
use ssogate::session::{Session, Sessions};

/// Base64url text of `n` bytes that differ from session to session (a token part).
fn b64_part(n: usize, seed: u64) -> String {
    use base64::Engine;
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let bytes: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let config = Config::from_toml_str(
        "[session]\nstore = \"memory\"\nsecret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\nmemory_max_sessions = 1000000\n\
         [[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n",
        &ProcessSource,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bound_to = ssogate::session::binding("https://issuer.example", "client");
    let sessions = Sessions::new(&config.session, std::slice::from_ref(&bound_to))
        .unwrap_or_else(|e| panic!("{e}"));
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let (cognito, all_tokens, json) = (flag("--cognito"), flag("--all-tokens"), flag("--json"));
    let token_bytes: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1800);
    let plain_refresh_token = "r".repeat(token_bytes);
    let mut raw_token_bytes = 0usize;
    let before = rss_kib();
    for i in 0..n {
        let (refresh_token, id_token, access_token) = if cognito {
            let jwe = [
                b64_part(68, i),
                b64_part(256, i + 1),
                b64_part(12, i + 2),
                b64_part(1000, i + 3),
                b64_part(16, i + 4),
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
            let (id, access) = if all_tokens {
                (Some(jwt(i + 5)), Some(jwt(i + 8)))
            } else {
                (None, None)
            };
            (jwe, id, access)
        } else {
            (plain_refresh_token.clone(), None, None)
        };
        raw_token_bytes = refresh_token.len()
            + id_token.as_ref().map_or(0, String::len)
            + access_token.as_ref().map_or(0, String::len);
        let mut s = Session {
            provider: 0,
            id: None,
            principal: Principal {
                sub: format!("{i:08}-1111-4111-8111-111111111111"),
                user: format!("user{i}"),
                email: Some(format!("user{i}@example.com")),
                email_verified: Some(true),
                preferred_username: None,
                groups: vec!["staff".into()],
                mapped: Default::default(),
            },
            created: 1,
            expires: u64::MAX / 2,
            last_seen: 0,
            refresh_due: 2,
            tokens_expire: 3,
            refresh_token: Some(refresh_token),
            access_token,
            id_token,
            nonce: None,
        };
        sessions
            .save(&mut s)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let after = rss_kib();
    let per_session = (after.saturating_sub(before) * 1024) as f64 / n.max(1) as f64;
    if json {
        println!(
            "{{\"ops\": {n}, \"seconds\": 1, \"value\": {:.3}, \"unit\": \"x raw token bytes\", \"bytes_per_session\": {per_session:.0}, \"raw_token_bytes\": {raw_token_bytes}, \"sessions\": {n}}}",
            per_session / raw_token_bytes.max(1) as f64
        );
        return;
    }
    println!(
        "sessions: {n} with {token_bytes}-byte refresh tokens; RSS before {:.1} MiB, after {:.1} MiB; {:.0} bytes per session",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) as f64 / n.max(1) as f64
    );
}

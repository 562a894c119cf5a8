//! Memory used by the `memory` session store holding N sessions (default 100 000), each with
//! a Cognito-sized refresh token (~1.8 KB, Cognito's are encrypted JWEs of that size).
//!
//!     cargo run --release --example memory_sessions -- 100000 [REFRESH_TOKEN_BYTES]
//!
//! Prints the process RSS before and after, and the bytes per session. It measures the
//! store alone, as the gateway holds it; the decoded-session cache adds an entry per session
//! active in the last few minutes on top.

use ssogate::config::{Config, ProcessSource};
use ssogate::identity::Principal;
use ssogate::session::{Session, Sessions};

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
    let sessions = Sessions::new(&config.session, &bound_to).unwrap_or_else(|e| panic!("{e}"));
    let token_bytes: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1800);
    let refresh_token = "r".repeat(token_bytes);
    let before = rss_kib();
    for i in 0..n {
        let mut s = Session {
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
            refresh_token: Some(refresh_token.clone()),
            access_token: None,
            id_token: None,
            nonce: None,
        };
        sessions
            .save(&mut s)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let after = rss_kib();
    println!(
        "sessions: {n} with {token_bytes}-byte refresh tokens; RSS before {:.1} MiB, after {:.1} MiB; {:.0} bytes per session",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) as f64 / n.max(1) as f64
    );
}

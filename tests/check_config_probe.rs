//! `ssogate check-config --probe`: the live checks against a real (npm oidc-provider)
//! provider, a real redis-server and a real upstream, set up right and set up wrong: one
//! line per check with what to do, exit 0 when all pass and 1 when one fails.

mod common;
#[path = "common/idp.rs"]
mod idp;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::process::Command;

use common::{free_port, Upstream};
use idp::Idp;
use redis_server::Redis;

fn probe(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssogate.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(["check-config", "--probe", "--config"])
        .arg(&path)
        .env_remove("SSOGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn config(idp: &Idp, secret: &str, redis_port: u16, upstream: &str) -> String {
    let port = free_port();
    idp.gateway_config(
        port,
        upstream,
        &format!("store = \"redis\"\nredis_url = \"redis://127.0.0.1:{redis_port}/0\""),
        "",
    )
    .replace(
        "client_secret = \"basic-secret\"",
        &format!("client_secret = \"{secret}\""),
    )
}

fn line<'a>(out: &'a str, starts: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no line starting {starts:?} in:\n{out}"))
}

#[test]
fn everything_set_up_right_passes() {
    let idp = Idp::start(&[]);
    let redis = Redis::start();
    let upstream = Upstream::echo();
    let (code, out) = probe(&config(&idp, "basic-secret", redis.port, &upstream.url));
    assert_eq!(code, Some(0), "{out}");
    line(&out, "ok    provider metadata and keys: discovery from");
    assert!(
        line(&out, "ok    client id and secret").contains("accepted client \"basic-client\""),
        "{out}"
    );
    line(&out, "ok    session store (Redis): answers PING");
    line(&out, &format!("ok    upstream 127.0.0.1:{}", upstream.port));
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn a_wrong_secret_is_told_apart_and_the_secret_never_printed() {
    let idp = Idp::start(&[]);
    let redis = Redis::start();
    let upstream = Upstream::echo();
    let (code, out) = probe(&config(&idp, "not-the-secret", redis.port, &upstream.url));
    assert_eq!(code, Some(1), "{out}");
    line(&out, "ok    provider metadata and keys");
    let failed = line(&out, "FAIL  client id and secret");
    assert!(
        failed.contains("invalid_client") && failed.contains("client secret is wrong"),
        "{failed}"
    );
    assert!(
        !out.contains("not-the-secret"),
        "the secret is masked: {out}"
    );
    line(&out, "ok    upstream");
}

#[test]
fn an_unreachable_provider_redis_and_upstream_each_fail_with_what_to_do() {
    let idp = Idp::start(&[]);
    let issuer = idp.issuer.clone();
    let gone = free_port();
    let text = config(
        &idp,
        "basic-secret",
        free_port(),
        &format!("http://127.0.0.1:{gone}"),
    )
    .replace(
        &issuer,
        &format!("http://127.0.0.1:{}/nothing-here", free_port()),
    );
    drop(idp);
    let (code, out) = probe(&text);
    assert_eq!(code, Some(1), "{out}");
    let provider = line(&out, "FAIL  provider metadata and keys");
    assert!(
        provider.contains("the discovery document failed")
            && provider.contains("check the address"),
        "{provider}"
    );
    assert!(
        line(&out, "FAIL  session store (Redis)").contains("check session.redis_url"),
        "{out}"
    );
    assert!(
        line(&out, &format!("FAIL  upstream 127.0.0.1:{gone}")).contains("routes[0].upstream"),
        "{out}"
    );
}

//! Issue 20's whole admin story in a real browser (Debian's headless Chromium driven by
//! playwright-core, tests/support/admin-story.mjs), against the real `ssogate` binary, moto as
//! the Cognito admin API and the test provider signing in moto's users (`--moto-pool`, the
//! hosted UI's stand-in): an admin creates carol in `staff` on the admin page, carol signs in
//! and reaches the app as herself, the admin disables her, and she is refused: at once with
//! a server-side session store, at her session's next refresh with the cookie store.
//!
//! Needs /usr/bin/chromium (or `CHROMIUM`), `npm ci --prefix tests/support` and moto;
//! `scripts/test` installs them. Without them the test fails, it never skips.
//! `BROWSER_SCREENSHOTS=<dir>` keeps a screenshot of every step in `<dir>/<store>`.
#![cfg(feature = "cognito-admin")]

mod common;
#[path = "common/idp.rs"]
mod idp;
#[path = "common/moto.rs"]
mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Gateway, Upstream};
use idp::Idp;
use moto::{aws_env, Moto};

/// The story ends by itself within 100 s; this only guards against a wedged node.
const STORY_TIMEOUT: Duration = Duration::from_secs(120);
/// The password `Moto::seed_pool` gives alice.
const ADMIN_PASSWORD: &str = "Passw0rd!xy";

/// Runs the story with these `[session]` lines and test-provider token lifetime; returns the
/// gateway, for its log.
async fn story(session: &str, id_token_ttl: u64) -> Gateway {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "{} is missing: run scripts/test, which installs Debian's chromium",
        chromium.display()
    );

    let moto = Moto::start();
    let pool = moto
        .seed_pool(&[("alice", "alice@example.com", &["admins"])])
        .await;
    let upstream = Upstream::echo();
    let port = free_port();
    let ttl = id_token_ttl.to_string();
    let idp = Idp::start_with(
        &[port],
        &[
            "--moto-endpoint",
            &moto.url(),
            "--moto-pool",
            &pool,
            "--id-token-ttl",
            &ttl,
            "--access-token-ttl",
            &ttl,
        ],
    );
    let extra = format!(
        "[admin]\nenabled = true\nallowed_groups = [\"admins\"]\nuser_pool_id = \"{pool}\"\nendpoint_url = \"{}\"\n",
        moto.url()
    );
    let gw = Gateway::start_with_env(
        &idp.gateway_config(port, &upstream.url, session, &extra),
        &aws_env(),
    );
    gw.wait_ready(Duration::from_secs(30));

    // The gateway refreshes 30 s before the tokens lapse, and never sooner than 10 s after.
    let refresh_due_ms = id_token_ttl.saturating_sub(30).max(10) * 1000;
    let store = if session.contains("memory") {
        "memory"
    } else {
        "cookie"
    };
    let out = tempfile::tempdir().expect("temp dir");
    // One directory per story: the two tests run at once.
    let shots = std::env::var_os("BROWSER_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| out.path().join("screenshots"))
        .join(store);
    let stdout_path = out.path().join("story.stdout");
    let stderr_path = out.path().join("story.stderr");
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(root.join("tests/support/admin-story.mjs"))
        .arg(&gw.base)
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .env("STORY_STORE", store)
        .env("STORY_REFRESH_DUE_MS", refresh_due_ms.to_string())
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("story stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("story stderr file"))
        .spawn()
        .expect("run node tests/support/admin-story.mjs");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > STORY_TIMEOUT {
            // This child only, by its PID.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    println!("admin story ({:.1?}):\n{stdout}", started.elapsed());
    if status.is_none_or(|s| !s.success()) {
        let kept = out.keep();
        panic!(
            "the admin story {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n\
             --- gateway log ---\n{}\nscreenshots kept in {}",
            match status {
                Some(s) => format!("failed ({s})"),
                None => format!("did not end within {STORY_TIMEOUT:?} and was killed"),
            },
            gw.logs(),
            kept.display(),
        );
    }
    // carol is in the pool as the story left her: disabled, in staff, her own password set.
    let carol = moto.user(&pool, "carol").await.expect("carol in the pool");
    assert_eq!(carol["Enabled"], false);
    assert_eq!(carol["UserStatus"], "CONFIRMED");
    assert_eq!(moto.groups_of(&pool, "carol").await, ["staff"]);
    drop(idp);
    gw
}

/// The audit lines of the story: alice created carol, then disabled her.
fn audited(gw: &Gateway) -> Vec<(String, String, String)> {
    gw.json_logs()
        .iter()
        .filter(|l| l["message"] == "admin change")
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (s("admin"), s("action"), s("user"))
        })
        .collect()
}

#[tokio::test]
async fn an_admin_creates_and_disables_a_user_who_is_refused_at_once_memory_store() {
    let gw = story("store = \"memory\"", 3600).await;
    let pair = |a: &str| ("alice".to_string(), a.to_string(), "carol".to_string());
    assert_eq!(audited(&gw), [pair("create"), pair("disable")]);
}

#[tokio::test]
async fn an_admin_creates_and_disables_a_user_who_is_refused_at_the_refresh_cookie_store() {
    // Tokens for 40 s: the gateway's refresh is due 10 s after carol signs in.
    let gw = story("", 40).await;
    let refused = gw
        .json_logs()
        .iter()
        .any(|l| l.to_string().contains("invalid_grant"));
    assert!(
        refused,
        "the refresh was not refused by the provider:\n{}",
        gw.logs()
    );
}

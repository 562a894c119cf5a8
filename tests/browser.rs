//! The whole sign-in and sign-out in a real browser: Debian's headless Chromium, driven by
//! playwright-core (tests/support/browser-flow.mjs), against the real `ssogate` binary, the
//! Cognito-shaped test identity provider and the echo upstream, all on loopback.
//!
//! Needs /usr/bin/chromium (or `CHROMIUM`) and `npm ci --prefix tests/support`; `scripts/test`
//! installs both. Without them the test fails, it never skips. `BROWSER_SCREENSHOTS=<dir>`
//! keeps a screenshot of every step in that directory.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Gateway, Upstream};
use idp::Idp;

/// The flow exits by itself within 60 s; this only guards against a wedged node.
const FLOW_TIMEOUT: Duration = Duration::from_secs(90);

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

#[test]
fn a_person_signs_in_and_out_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = chromium_path();
    assert!(
        chromium.exists(),
        "{} is missing: run scripts/test, which installs Debian's chromium (never a downloaded browser)",
        chromium.display()
    );
    assert!(
        root.join("tests/support/node_modules/playwright-core").exists(),
        "tests/support/node_modules is missing: run scripts/test (or `npm ci --prefix tests/support`)"
    );

    let upstream = Upstream::echo();
    let gw_port = free_port();
    let idp = Idp::start(&[gw_port]);
    let config = idp.gateway_config(
        gw_port,
        &upstream.url,
        "",
        "[access]\nallowed_groups = [\"staff\"]",
    );
    let gw = Gateway::start(&config);
    gw.wait_ready(Duration::from_secs(15));

    let out = tempfile::tempdir().expect("temp dir");
    // BROWSER_SCREENSHOTS=<dir> keeps every step's screenshot there, to look at.
    let shots = std::env::var_os("BROWSER_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| out.path().join("screenshots"));
    let stdout_path = out.path().join("flow.stdout");
    let stderr_path = out.path().join("flow.stderr");
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(root.join("tests/support/browser-flow.mjs"))
        .arg(&gw.base)
        .arg(&shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("flow stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("flow stderr file"))
        .spawn()
        .expect("run node tests/support/browser-flow.mjs");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > FLOW_TIMEOUT {
            // This child only, by its PID.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    println!("browser flow ({elapsed:.1?}):\n{stdout}");

    if status.is_none_or(|s| !s.success()) {
        // Keep the screenshots for a look.
        let kept = out.keep();
        panic!(
            "the browser flow {} after {elapsed:.1?}\n\
             --- flow stdout ---\n{stdout}\n--- flow stderr ---\n{stderr}\n\
             --- gateway log ---\n{}\n\
             screenshots and output kept in {}",
            match status {
                Some(s) => format!("failed ({s})"),
                None => format!("did not end within {FLOW_TIMEOUT:?} and was killed"),
            },
            gw.logs(),
            kept.display(),
        );
    }

    // The gateway saw the same story: one sign-in and one sign-out of alice.
    let logs = gw.json_logs();
    let said = |msg: &str| {
        logs.iter()
            .filter(|l| {
                l.pointer("/fields/message").and_then(|m| m.as_str()) == Some(msg)
                    || l.get("message").and_then(|m| m.as_str()) == Some(msg)
            })
            .count()
    };
    assert_eq!(said("signed in"), 1, "gateway log:\n{}", gw.logs());
    assert_eq!(said("signed out"), 1, "gateway log:\n{}", gw.logs());
    drop(idp);
}

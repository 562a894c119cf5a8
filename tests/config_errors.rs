//! `ssogate check-config` as an operator meets it: every problem named by its key with what
//! to do, exit code 2 when the config cannot run, environment overrides visible in the
//! effective config, and secrets never printed.

mod common;

use std::process::{Command, Output};

use common::free_port;

/// Base64 of 32 bytes: a valid session secret.
const SESSION_SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct CheckConfig {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `ssogate check-config` on `toml` with only these `SSOGATE_*` variables set.
fn check_config(toml: &str, env: &[(&str, &str)]) -> CheckConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssogate.toml");
    std::fs::write(&path, toml).unwrap();
    run_check_config(path.to_str().unwrap(), env)
}

fn run_check_config(path: &str, env: &[(&str, &str)]) -> CheckConfig {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssogate"));
    cmd.arg("check-config").arg("--config").arg(path);
    for (k, _) in std::env::vars() {
        if k.starts_with("SSOGATE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run ssogate check-config");
    CheckConfig {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A config that needs sign-in, complete and valid.
fn protected_config(listen: &str) -> String {
    format!(
        r#"
[server]
listen = "{listen}"

[provider]
user_pool_id = "eu-central-1_AbC123xyz"
client_id = "c"
client_secret = "TOPSECRET"

[session]
secret = "{SESSION_SECRET}"

[[routes]]
path_prefix = "/"
upstream = "http://127.0.0.1:{upstream}"
"#,
        upstream = free_port()
    )
}

#[test]
fn every_problem_is_named_by_its_key_with_a_remedy_and_the_exit_code_is_2() {
    let out = check_config(
        r#"
[server]
listen = "not-an-address"

[provider]
user_pool_id = "eu-central-1_AbC123xyz"
client_id = "c"

[[routes]]
path_prefix = "/"
"#,
        &[],
    );
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("3 problems"),
        "all problems at once:\n{}",
        out.stderr
    );
    // Each problem names its key, what to do, and where in the file: the key's line, or
    // for a missing key its table's (none when the table is missing too).
    for (key, remedy, at) in [
        ("server.listen", "write IP:PORT", Some("line 3: ")),
        ("routes[0].upstream", "set the app's URL", Some("line 9: ")),
        ("session.secret", "openssl rand -base64 32", None),
    ] {
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("{key} is not named:\n{}", out.stderr));
        assert!(line.contains(remedy), "{key} without its remedy: {line}");
        match at {
            Some(at) => assert!(line.contains(&format!("{at}{key}")), "{line}"),
            None => assert!(!line.contains("line "), "{line}"),
        }
    }
    assert!(out.stdout.is_empty(), "nothing printed as effective config");
}

#[test]
fn an_unknown_key_is_named() {
    let out = check_config(
        &format!(
            r#"
[server]
listen = "127.0.0.1:{}"
listn = "127.0.0.1:1"

[[routes]]
path_prefix = "/"
upstream = "http://127.0.0.1:8080"
public = true
"#,
            free_port()
        ),
        &[],
    );
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("line 4: server.listn"),
        "the key is named, with its line:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("unknown field"), "{}", out.stderr);
}

#[test]
fn a_missing_config_file_is_reported_clearly_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    let out = run_check_config(missing.to_str().unwrap(), &[]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains(missing.to_str().unwrap()) && out.stderr.contains("does not exist"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--config"),
        "says what to do: {}",
        out.stderr
    );
}

#[test]
fn an_environment_override_shows_in_the_effective_config() {
    let from_file = format!("127.0.0.1:{}", free_port());
    let from_env = format!("127.0.0.1:{}", free_port());
    let out = check_config(
        &protected_config(&from_file),
        &[("SSOGATE_SERVER__LISTEN", &from_env)],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("listen = \"{from_env}\"")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&from_file), "{}", out.stdout);

    // A bad value from the environment is named by its key, with no line of the file.
    let out = check_config(
        &protected_config(&from_file),
        &[("SSOGATE_SERVER__LISTEN", "not-an-address")],
    );
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("server.listen"))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(!line.contains("line "), "{line}");
    // ... and by the variable that set it.
    assert!(
        line.contains("server.listen (from SSOGATE_SERVER__LISTEN)"),
        "{line}"
    );
}

#[test]
fn check_config_masks_secrets_and_never_prints_them() {
    let out = check_config(
        &protected_config(&format!("127.0.0.1:{}", free_port())),
        &[],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.contains("client_secret = \"***\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().any(|l| l == "secret = \"***\""),
        "the session secret is masked: {}",
        out.stdout
    );
    assert!(out.stdout.contains("client_id = \"c\""), "{}", out.stdout);
    for secret in ["TOPSECRET", SESSION_SECRET] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} was printed:\n{}{}",
            out.stdout,
            out.stderr
        );
    }

    // Nor when the config is rejected.
    let broken = protected_config("nonsense").replace(SESSION_SECRET, "TOPSECRETtooShort");
    let out = check_config(&broken, &[]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("session.secret"), "{}", out.stderr);
    assert!(!out.stderr.contains("TOPSECRET"), "{}", out.stderr);
}

#[test]
fn numeric_values_from_the_environment_are_taken_as_text_where_text_is_expected() {
    // A numeric client id (Discord's are) or an all-digit secret set through the environment.
    let out = check_config(
        &protected_config(&format!("127.0.0.1:{}", free_port())),
        &[
            ("SSOGATE_PROVIDER__CLIENT_ID", "987654321012345678"),
            ("SSOGATE_PROVIDER__CLIENT_SECRET", "31415926535"),
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.contains("client_id = \"987654321012345678\""),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("31415926535") && !out.stderr.contains("31415926535"),
        "the secret was printed:\n{}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn booleans_numbers_and_lists_can_still_be_set_from_the_environment() {
    let out = check_config(
        &protected_config(&format!("127.0.0.1:{}", free_port())),
        &[
            ("SSOGATE_SERVER__SIGN_IN_PAGE", "true"),
            ("SSOGATE_SESSION__MEMORY_MAX_SESSIONS", "5000"),
            ("SSOGATE_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(out.stdout.contains("sign_in_page = true"), "{}", out.stdout);
    assert!(
        out.stdout.contains("memory_max_sessions = 5000"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\"10.0.0.0/8\""), "{}", out.stdout);
}

#[test]
fn plain_http_public_url_off_loopback_is_valid_but_warned_about() {
    let config = protected_config(&format!("127.0.0.1:{}", free_port()));
    let with_url = |url: &str| {
        config.replacen(
            "[server]\n",
            &format!("[server]\npublic_url = \"{url}\"\n"),
            1,
        )
    };
    let out = check_config(&with_url("http://app.example.com"), &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("warning") && l.contains("server.public_url"))
        .unwrap_or_else(|| panic!("no warning:\n{}", out.stderr));
    assert!(line.contains("https://"), "{line}");
    assert!(
        line.contains("Cognito accepts http:// callback URLs only for localhost"),
        "{line}"
    );

    for fine in [
        "https://app.example.com",
        "http://127.0.0.1:4180",
        "http://localhost:4180",
    ] {
        let out = check_config(&with_url(fine), &[]);
        assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
        assert!(!out.stderr.contains("warning"), "{fine}: {}", out.stderr);
    }
}

#[test]
fn authorize_params_cannot_replace_what_the_gateway_sets() {
    let config = format!(
        "{}\n[provider.authorize_params]\nlang = \"de\"\nstate = \"fixed\"\nscope = \"openid groups\"\nrequest_uri = \"urn:x\"\n",
        protected_config(&format!("127.0.0.1:{}", free_port()))
    );
    let out = check_config(&config, &[]);
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    for (key, remedy) in [
        ("provider.authorize_params.state", "the gateway sets it"),
        ("provider.authorize_params.scope", "provider.scopes"),
        ("provider.authorize_params.request_uri", "would override"),
    ] {
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("{key} is not named:\n{}", out.stderr));
        assert!(line.contains(remedy), "{line}");
    }
    assert!(!out.stderr.contains(".lang"), "{}", out.stderr);
}

//! The demo's config: generation, overlay, flags, and what it prints.

use std::io::Write;

use clap::Parser;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    demo: DemoArgs,
}

fn args(flags: &[&str]) -> DemoArgs {
    let mut argv = vec!["demo"];
    argv.extend_from_slice(flags);
    Cli::try_parse_from(argv).unwrap().demo
}

fn setup(upstream: &str) -> DemoSetup {
    DemoSetup {
        public_url: "http://127.0.0.1:4180".into(),
        issuer: format!("http://127.0.0.1:9000/{DEMO_POOL_ID}"),
        upstream: upstream.into(),
        client_secret: "DEMO-CLIENT-SECRET".into(),
        session_secret: base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    }
}

fn config(setup: &DemoSetup, args: &DemoArgs) -> Config {
    let text = merged_toml(setup, args).unwrap();
    // Parsed without the process environment, so SSOGATE_* variables cannot interfere.
    Config::from_toml_str(&text, &NoEnv).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

struct NoEnv;
impl crate::config::ConfigSource for NoEnv {
    fn env_vars(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn read_file(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

#[test]
fn the_generated_config_points_a_cognito_provider_at_the_demo_provider() {
    let c = config(&setup("http://127.0.0.1:9001"), &args(&[]));
    let p = c.provider().unwrap();
    assert_eq!(p.kind, crate::config::ProviderKind::Cognito);
    assert_eq!(p.issuer, format!("http://127.0.0.1:9000/{DEMO_POOL_ID}"));
    assert_eq!(p.client_id, DEMO_CLIENT_ID);
    assert_eq!(p.client_auth, crate::config::ClientAuth::Basic);
    assert!(c.access.allowed_groups.is_empty());
    assert_eq!(c.routes.len(), 2);
    let admin = c
        .routes
        .iter()
        .find(|r| r.path_prefix == "/admin/")
        .unwrap();
    assert_eq!(
        admin.allowed_groups.as_deref(),
        Some(&["admins".to_string()][..])
    );
    assert_eq!(admin.upstream.as_str(), "http://127.0.0.1:9001/");

    let client = app_client(&c, &setup("x")).unwrap();
    assert_eq!(client.redirect_uri, "http://127.0.0.1:4180/oauth2/callback");
    assert_eq!(client.sign_out_prefix, "http://127.0.0.1:4180/");
    assert_eq!(client.client_secret, "DEMO-CLIENT-SECRET");
}

#[test]
fn require_group_sets_the_default_rule() {
    let c = config(
        &setup("http://127.0.0.1:9001"),
        &args(&["--require-group", "staff"]),
    );
    assert_eq!(c.access.allowed_groups, vec!["staff".to_string()]);
}

#[test]
fn the_overlay_merges_tables_and_replaces_arrays() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        r#"
[server]
callback_path = "/oauth/v2/callback"
[headers]
preset = "alb"
[[routes]]
path_prefix = "/"
upstream = "http://127.0.0.1:7777"
"#
    )
    .unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let c = config(&setup("http://127.0.0.1:9001"), &args(&["--config", &path]));
    assert_eq!(c.server.callback_path, "/oauth/v2/callback");
    assert_eq!(c.headers.preset, crate::config::HeaderPreset::Alb);
    assert_eq!(c.routes.len(), 1, "[[routes]] replaced, not appended");
    assert_eq!(c.routes[0].upstream.as_str(), "http://127.0.0.1:7777/");
    // Kept from the generated config.
    assert_eq!(c.provider().unwrap().client_id, DEMO_CLIENT_ID);
    // The provider registers what the gateway will send.
    let client = app_client(&c, &setup("x")).unwrap();
    assert_eq!(
        client.redirect_uri,
        "http://127.0.0.1:4180/oauth/v2/callback"
    );
}

#[test]
fn the_overlay_may_not_move_the_listener() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[server]\nlisten = \"0.0.0.0:80\"").unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let err = merged_toml(&setup("http://127.0.0.1:9001"), &args(&["--config", &path]));
    assert!(matches!(err, Err(DemoError::ListenInOverlay(_))));
}

#[test]
fn a_broken_overlay_names_the_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[server\n").unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let err =
        merged_toml(&setup("http://127.0.0.1:9001"), &args(&["--config", &path])).unwrap_err();
    assert!(err.to_string().contains(&path), "{err}");
}

#[tokio::test]
async fn a_non_loopback_listen_is_refused() {
    let err = run(args(&["--listen", "0.0.0.0:4180"])).await.unwrap_err();
    assert!(matches!(err, DemoError::NotLoopback(_)));
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[test]
fn the_banner_says_where_to_go_who_to_be_and_how_to_go_to_production() {
    let s = setup("http://127.0.0.1:9001");
    let a = args(&[]);
    let text = banner(&config(&s, &a), &s, &a);
    assert!(
        text.contains("Open http://127.0.0.1:4180/ in a browser"),
        "{text}"
    );
    assert!(text.contains(DEMO_PASSWORD));
    for u in &DEMO_USERS {
        assert!(text.contains(u.username));
    }
    assert!(text.contains("eu-central-1_YourPoolId"));
    assert!(text.contains("https://<your-domain>.auth.eu-central-1.amazoncognito.com"));
    assert!(text.contains("client_secret_file"));
    assert!(text.contains("secret_file = "));
    assert!(
        !text.contains("DEMO-CLIENT-SECRET"),
        "the demo's secrets are not printed"
    );

    // The production part is a config the gateway accepts once placeholders are filled.
    let start = text.find("[server]").unwrap();
    let end = text.find("\nStop the demo").unwrap();
    let prod: toml::Table = text[start..end].parse().expect("valid TOML");
    assert_eq!(prod["provider"]["kind"].as_str(), Some("cognito"));
    assert_eq!(prod["routes"].as_array().unwrap().len(), 2);
}

#[test]
fn escape_covers_html_and_attributes() {
    assert_eq!(
        escape("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

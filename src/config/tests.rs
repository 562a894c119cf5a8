use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;

/// Environment and files held in memory.
#[derive(Default)]
struct FakeSource {
    env: Vec<(String, String)>,
    files: HashMap<PathBuf, Vec<u8>>,
}

impl ConfigSource for FakeSource {
    fn env_vars(&self) -> Vec<(String, String)> {
        self.env.clone()
    }
    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }
}

const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn protected(extra: &str) -> String {
    format!(
        r#"
[provider]
user_pool_id = "eu-central-1_AbC123xyz"
client_id = "abc"
client_secret = "s3cret"
[session]
secret = "{SECRET}"
[[routes]]
upstream = "http://127.0.0.1:8080"
{extra}
"#
    )
}

fn errors_of(toml: &str, source: &FakeSource) -> Vec<String> {
    match Config::from_toml_str(toml, source) {
        Ok(_) => panic!("config was accepted"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn public_only_config_needs_no_provider() {
    let c = Config::from_toml_str(
        "[[routes]]\nupstream = \"http://127.0.0.1:8080\"\npublic = true\n",
        &FakeSource::default(),
    )
    .unwrap();
    assert!(c.provider().is_none());
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:4180");
    assert_eq!(c.server.auth_prefix, "/oauth2");
    assert_eq!(c.server.callback_path, "/oauth2/callback");
    assert_eq!(c.routes[0].path_prefix, "/");
}

#[test]
fn cognito_issuer_is_derived_from_the_pool_id() {
    let c = Config::from_toml_str(&protected(""), &FakeSource::default()).unwrap();
    let p = c.provider().unwrap();
    assert_eq!(
        p.issuer,
        "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_AbC123xyz"
    );
    assert_eq!(
        p.discovery_url.as_str(),
        "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_AbC123xyz/.well-known/openid-configuration"
    );
    assert_eq!(p.groups_claim, "cognito:groups");
    assert_eq!(p.user_claim, "cognito:username");
    assert_eq!(p.client_auth, ClientAuth::Basic);
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let toml = r#"
[server]
listen = "nowhere"
header_read_timeout = "soon"
[provider]
user_pool_id = "not-a-pool"
scopes = ["openid", "groups"]
[session]
secret = "c2hvcnQ="
store = "disk"
[[routes]]
path_prefix = "app"
"#;
    let errs = errors_of(toml, &FakeSource::default()).join("\n");
    for key in [
        "server.listen",
        "server.header_read_timeout",
        "provider.user_pool_id",
        "provider.scopes",
        "provider.client_id",
        "session.secret",
        "session.store",
        "routes[0].path_prefix",
        "routes[0].upstream",
    ] {
        assert!(errs.contains(key), "missing {key} in:\n{errs}");
    }
    assert!(errs.contains("openssl rand -base64 32"), "{errs}");
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let errs = errors_of(
        "[server]\nlisten_addr = \"x\"\n[[routes]]\nupstream = \"http://a\"\npublic = true\n",
        &FakeSource::default(),
    )
    .join("\n");
    assert!(errs.contains("listen_addr"), "{errs}");
}

#[test]
fn environment_overrides_the_file() {
    let source = FakeSource {
        env: vec![
            ("SSOGATE_SERVER__LISTEN".into(), "127.0.0.1:9999".into()),
            ("SSOGATE_PROVIDER__CLIENT_ID".into(), "from-env".into()),
            ("SSOGATE_CONFIG".into(), "/etc/ssogate.toml".into()),
        ],
        ..Default::default()
    };
    let c = Config::from_toml_str(&protected(""), &source).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(c.provider().unwrap().client_id, "from-env");
}

#[test]
fn secrets_come_from_files_and_never_print() {
    let mut source = FakeSource::default();
    source.files.insert(
        "/run/secrets/cookie".into(),
        format!("{SECRET}\n").into_bytes(),
    );
    let toml = protected("").replace(
        &format!("secret = \"{SECRET}\""),
        "secret_file = \"/run/secrets/cookie\"",
    );
    let c = Config::from_toml_str(&toml, &source).unwrap();
    assert_eq!(c.session.secret.as_ref().unwrap().0.len(), 32);
    let printed = c.effective_toml();
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(printed.contains("client_secret = \"***\""), "{printed}");
    assert!(format!("{:?}", c.session.secret).contains("***"));
}

#[test]
fn a_missing_secret_file_names_the_key() {
    let toml = protected("").replace(&format!("secret = \"{SECRET}\""), "secret_file = \"/nope\"");
    let errs = errors_of(&toml, &FakeSource::default()).join("\n");
    assert!(
        errs.contains("session.secret_file: cannot read /nope"),
        "{errs}"
    );
}

#[test]
fn a_public_route_with_groups_is_refused() {
    let errs = errors_of(
        &protected("public = true\nallowed_groups = [\"a\"]"),
        &FakeSource::default(),
    );
    assert!(
        errs.iter().any(|e| e.contains("routes[0].allowed_groups")),
        "{errs:?}"
    );
}

#[test]
fn region_must_match_the_pool() {
    let toml = protected("").replace("[provider]", "[provider]\nregion = \"us-east-1\"");
    let errs = errors_of(&toml, &FakeSource::default());
    assert!(
        errs.iter().any(|e| e.contains("provider.region")),
        "{errs:?}"
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let mut source = FakeSource::default();
    source
        .files
        .insert("/run/secrets/client-secret".into(), b"s3cret".to_vec());
    source.files.insert(
        "/run/secrets/cookie-secret".into(),
        SECRET.as_bytes().to_vec(),
    );
    let text = include_str!("../../config/ssogate.example.toml");
    let c = Config::from_toml_str(text, &source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.provider().unwrap().client_id, "your-app-client-id");
}

#[test]
fn unknown_keys_do_not_hide_the_other_problems() {
    let toml = "[server]\nlisten_addr = \"x\"\nlisten = \"nowhere\"\n[[routes]]\nupstream = \"http://a\"\npublic = true\nprefix = \"/x\"\n[bogus]\na = 1\n";
    let errs = errors_of(toml, &FakeSource::default()).join("\n");
    for key in [
        "server.listen_addr",
        "routes[0].prefix",
        "bogus",
        "server.listen:",
    ] {
        assert!(errs.contains(key), "missing {key} in:\n{errs}");
    }
}

#[test]
fn workers_default_to_the_cpu_count_and_zero_is_refused() {
    let routes = "[[routes]]\nupstream = \"http://127.0.0.1:8080\"\npublic = true\n";
    let c = Config::from_toml_str(routes, &FakeSource::default()).unwrap();
    assert_eq!(c.server.workers, None);
    let c = Config::from_toml_str(
        &format!("[server]\nworkers = 3\n{routes}"),
        &FakeSource::default(),
    )
    .unwrap();
    assert_eq!(c.server.workers, Some(3));
    let errs = errors_of(
        &format!("[server]\nworkers = 0\n{routes}"),
        &FakeSource::default(),
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("server.workers") && e.contains("one worker per CPU core")),
        "{errs:?}"
    );
}

#[test]
fn a_prefix_with_and_without_its_trailing_slash_is_one_route() {
    let toml = "[[routes]]\npath_prefix = \"/app\"\nupstream = \"http://a\"\npublic = true\n\
                [[routes]]\npath_prefix = \"/app/\"\nupstream = \"http://b\"\npublic = true\n";
    let errs = errors_of(toml, &FakeSource::default()).join("\n");
    assert!(
        errs.contains("routes[1].path_prefix")
            && errs.contains("another route already has path_prefix \"/app\" (and no host)"),
        "{errs}"
    );
}

#[test]
fn host_and_secure_prefixed_cookie_names_need_https() {
    for name in ["__Host-sso", "__Secure-sso"] {
        let toml = format!(
            "[server]\npublic_url = \"http://app.example.com\"\n[session]\ncookie_name = \"{name}\"\n[[routes]]\nupstream = \"http://a\"\npublic = true\n"
        );
        let errs = errors_of(&toml, &FakeSource::default()).join("\n");
        assert!(
            errs.contains("session.cookie_name") && errs.contains("only over https"),
            "{errs}"
        );
        let https = toml.replace("http://app", "https://app");
        assert!(Config::from_toml_str(&https, &FakeSource::default()).is_ok());
    }
}

#[test]
fn lists_in_the_environment_may_be_written_as_oauth2_proxy_takes_them() {
    let source = FakeSource {
        env: vec![
            (
                "SSOGATE_ACCESS__ALLOWED_GROUPS".into(),
                "admins, staff".into(),
            ),
            (
                "SSOGATE_SERVER__TRUSTED_PROXIES".into(),
                "10.0.0.0/8,127.0.0.1".into(),
            ),
            (
                "SSOGATE_PROVIDER__SCOPES".into(),
                "openid email profile".into(),
            ),
            (
                "SSOGATE_SERVER__ALLOWED_REDIRECT_HOSTS".into(),
                r#"["a.example.com"]"#.into(),
            ),
        ],
        ..Default::default()
    };
    let c = Config::from_toml_str(&protected(""), &source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.access.allowed_groups, ["admins", "staff"]);
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert_eq!(c.provider().unwrap().scopes, ["openid", "email", "profile"]);
    assert_eq!(c.server.allowed_redirect_hosts, ["a.example.com"]);
}

#[test]
fn a_value_of_the_wrong_type_names_its_key_and_how_to_write_it() {
    let toml = "[access]\nallowed_groups = \"admins\"\n[[routes]]\nupstream = \"http://a\"\npublic = true\n";
    let errs = errors_of(toml, &FakeSource::default()).join("\n");
    assert!(
        errs.contains("access.allowed_groups: invalid type")
            && errs.contains("write a list, like [\"a\", \"b\"]"),
        "{errs}"
    );
}

#[test]
fn redirect_hosts_written_as_other_proxies_take_them_are_refused_with_the_fix() {
    let toml = "[server]\nallowed_redirect_hosts = [\"https://a.example.com\", \"*.example.com\", \"localhost:3000\", \"b.example.com\", \".example.org\"]\n[[routes]]\nupstream = \"http://a\"\npublic = true\n";
    let errs = errors_of(toml, &FakeSource::default()).join("\n");
    for (i, fix) in [
        (0, "without scheme or path"),
        (1, "(leading dot)"),
        (2, "without a port"),
    ] {
        assert!(
            errs.contains(&format!("server.allowed_redirect_hosts[{i}]")) && errs.contains(fix),
            "{i}: {errs}"
        );
    }
    assert!(
        !errs.contains("allowed_redirect_hosts[3]") && !errs.contains("[4]"),
        "{errs}"
    );
}

#[test]
fn a_url_without_its_scheme_is_shown_with_one() {
    let toml = "[[routes]]\nupstream = \"127.0.0.1:8080\"\npublic = true\n[[routes]]\npath_prefix = \"/b\"\nupstream = \"localhost:8080\"\npublic = true\n";
    let errs = errors_of(toml, &FakeSource::default()).join("\n");
    assert!(errs.contains("like \"https://127.0.0.1:8080\""), "{errs}");
    assert!(errs.contains("\"http://localhost:8080\""), "{errs}");
}

#[test]
fn settings_that_are_valid_but_cannot_work_as_meant_are_warned_about() {
    let toml = protected(
        "host = \"admin.example.com\"\n[server]\npublic_url = \"https://app.example.com\"\ntrusted_proxies = [\"0.0.0.0/0\"]\n",
    )
    .replace(
        "[session]\n",
        "[session]\nredis_url = \"redis://127.0.0.1:6379\"\n",
    );
    let c = Config::from_toml_str(&toml, &FakeSource::default()).unwrap_or_else(|e| panic!("{e}"));
    let warnings = c.warnings().join("\n");
    for expected in [
        "server.trusted_proxies: 0.0.0.0/0 is every address",
        "routes[0].host: admin.example.com is not server.public_url's host (app.example.com)",
        "session.redis_url is set but session.store is not \"redis\"",
    ] {
        assert!(warnings.contains(expected), "{expected}\n{warnings}");
    }
    // The same gateway, set up as meant, is warned about nothing.
    let fine = protected(
        "[server]\npublic_url = \"https://app.example.com\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    let c = Config::from_toml_str(&fine, &FakeSource::default()).unwrap();
    assert_eq!(c.warnings(), Vec::<String>::new());
}

#[test]
fn an_oauth2_proxy_style_cookie_secret_is_refused_saying_why() {
    let errs = errors_of(
        &protected("").replace(SECRET, "0123456789abcdef0123456789abcdef"),
        &FakeSource::default(),
    )
    .join("\n");
    assert!(
        errs.contains("session.secret: decodes to 24 bytes")
            && errs.contains("openssl rand -base64 32")
            && errs.contains("as oauth2-proxy takes it"),
        "{errs}"
    );
}

#[test]
fn an_empty_list_variable_is_refused_not_taken_for_no_groups() {
    for empty in ["", " ", ","] {
        let source = FakeSource {
            env: vec![("SSOGATE_ACCESS__ALLOWED_GROUPS".into(), empty.into())],
            ..Default::default()
        };
        let errs = errors_of(
            &protected("[access]\nallowed_groups = [\"admins\"]\n"),
            &source,
        )
        .join("\n");
        assert!(errs.contains("access.allowed_groups"), "{empty:?}: {errs}");
    }
    // Written as TOML, an empty list is what it says.
    let source = FakeSource {
        env: vec![("SSOGATE_ACCESS__ALLOWED_GROUPS".into(), "[]".into())],
        ..Default::default()
    };
    let c = Config::from_toml_str(&protected(""), &source).unwrap();
    assert!(c.access.allowed_groups.is_empty());
}

#[test]
fn email_rules_are_checked_read_and_ask_for_verified_emails() {
    let mut files = FakeSource::default();
    files.files.insert(
        PathBuf::from("/run/emails"),
        b"# staff\nAlice@Example.com\n".to_vec(),
    );
    let c = Config::from_toml_str(
        &protected("[access]\nallowed_email_domains = [\"Example.org\"]\nallowed_emails_file = \"/run/emails\"\n"),
        &files,
    )
    .unwrap();
    assert!(c.access.require_verified_email, "on by default with a rule");
    assert_eq!(c.access.allowed_email_domains, ["example.org"]);
    assert_eq!(c.access.allowed_emails, ["alice@example.com"]);
    let plain = Config::from_toml_str(&protected(""), &files).unwrap();
    assert!(!plain.access.require_verified_email);
    assert!(plain.warnings().is_empty());
    let off = Config::from_toml_str(
        &protected(
            "[access]\nallowed_emails = [\"a@example.com\"]\nrequire_verified_email = false\n",
        ),
        &files,
    )
    .unwrap();
    assert!(off
        .warnings()
        .iter()
        .any(|w| w.contains("require_verified_email = false")));

    let errors = errors_of(
        &protected("[access]\nallowed_email_domains = [\".example.com\"]\nallowed_emails = [\"example.com\"]\nallowed_emails_file = \"/nowhere\"\n"),
        &files,
    )
    .join("\n");
    for key in [
        "access.allowed_email_domains[0]: \".example.com\" never matches",
        "access.allowed_emails[0]",
        "access.allowed_emails_file: cannot read /nowhere",
    ] {
        assert!(errors.contains(key), "{key}: {errors}");
    }
}

#[test]
fn public_paths_are_parsed_and_kept_off_the_gateways_endpoints() {
    let c = Config::from_toml_str(
        &protected("public_paths = [\"GET=^/health$\"]"),
        &FakeSource::default(),
    )
    .unwrap();
    assert_eq!(c.routes[0].public_paths[0].text, "GET=^/health$");
    let errors = errors_of(
        &protected("public_paths = [\"^/oauth2/ping$\", \"^/ok$\", \"(\"]"),
        &FakeSource::default(),
    )
    .join("\n");
    assert!(errors.contains("routes[0].public_paths[0]"), "{errors}");
    assert!(!errors.contains("routes[0].public_paths[1]"), "{errors}");
    assert!(errors.contains("routes[0].public_paths[2]"), "{errors}");
    let errors = errors_of(
        &protected("public = true\npublic_paths = [\"^/x\"]"),
        &FakeSource::default(),
    )
    .join("\n");
    assert!(
        errors.contains("routes[0].public_paths: the whole route is public"),
        "{errors}"
    );
}

#[test]
fn idle_timeout_is_off_by_default_and_must_be_below_max_lifetime() {
    let c = Config::from_toml_str(&protected(""), &FakeSource::default()).unwrap();
    assert_eq!(c.session.idle_timeout, None);
    let with = protected("").replace("[session]\n", "[session]\nidle_timeout = \"30m\"\n");
    let c = Config::from_toml_str(&with, &FakeSource::default()).unwrap();
    assert_eq!(c.session.idle_timeout, Some(Duration::from_secs(1800)));
    for (value, says) in [
        ("12h", "not shorter than session.max_lifetime"),
        ("1s", "at least"),
        ("soon", "session.idle_timeout"),
    ] {
        let bad = protected("").replace(
            "[session]\n",
            &format!("[session]\nidle_timeout = \"{value}\"\n"),
        );
        let errors = errors_of(&bad, &FakeSource::default());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains(says), "{errors:?}");
    }
}

#[test]
fn allowed_roles_must_be_roles_of_some_group() {
    let errors = errors_of(
        &protected("allowed_roles = [\"editor\", \"ghost\"]\n[roles]\nadmins = [\"editor\"]\n"),
        &FakeSource::default(),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("routes[0].allowed_roles[1]"),
        "{errors:?}"
    );
    assert!(errors[0].contains("\"ghost\""), "{errors:?}");
}

#[test]
fn admin_defaults_to_the_provider_pool_and_names_bad_keys() {
    let c = Config::from_toml_str(&protected(""), &FakeSource::default()).unwrap();
    let admin = c.admin.expect("the provider's pool");
    assert_eq!(admin.user_pool_id, "eu-central-1_AbC123xyz");
    assert_eq!(admin.region, "eu-central-1");
    assert!(!admin.enabled);

    let errors = errors_of(
        &protected("[admin]\nenabled = true\nendpoint_url = \"not a url\"\n"),
        &FakeSource::default(),
    );
    assert!(
        errors.iter().any(|e| e.contains("admin.allowed_groups")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("admin.endpoint_url")),
        "{errors:?}"
    );
    let errors = errors_of(
        "[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n[admin]\nregion = \"moon\"\n",
        &FakeSource::default(),
    );
    assert!(
        errors.iter().any(|e| e.contains("admin.user_pool_id")),
        "{errors:?}"
    );
}

fn two_providers(extra: &str) -> String {
    format!(
        r#"
[[providers]]
name = "partners"
user_pool_id = "eu-central-1_AbC123xyz"
client_id = "abc"
client_secret = "s3cret"
[[providers]]
name = "staff"
kind = "oidc"
issuer_url = "https://login.example.com"
client_id = "def"
client_secret = "s3cret"
[session]
secret = "{SECRET}"
{extra}
"#
    )
}

#[test]
fn several_providers_are_named_and_routes_name_theirs() {
    let c = Config::from_toml_str(
        &two_providers(
            "[[routes]]\npath_prefix = \"/a\"\nupstream = \"http://127.0.0.1:8080\"\nproviders = [\"staff\"]\n\
             [[routes]]\nupstream = \"http://127.0.0.1:8080\"\n",
        ),
        &FakeSource::default(),
    )
    .unwrap();
    let names: Vec<&str> = c.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["partners", "staff"]);
    assert_eq!(c.providers[0].label, "Sign in with partners");
    assert_eq!(c.provider_named("staff").unwrap().groups_claim, "groups");
    assert_eq!(
        c.routes[0].providers.as_deref(),
        Some(&["staff".to_string()][..])
    );
    assert_eq!(c.routes[1].providers, None);
    // The one [provider] is named "default", with a plain "Sign in" button.
    let one = Config::from_toml_str(&protected(""), &FakeSource::default()).unwrap();
    assert_eq!(one.provider().unwrap().name, "default");
    assert_eq!(one.provider().unwrap().label, "Sign in");
    // The effective config prints them back as [[providers]], secrets masked.
    let printed = c.effective_toml();
    assert!(
        printed.contains("[[providers]]") && printed.contains("name = \"staff\""),
        "{printed}"
    );
    assert!(!printed.contains("s3cret"), "{printed}");
}

#[test]
fn provider_mistakes_name_the_key() {
    let route = "[[routes]]\nupstream = \"http://127.0.0.1:8080\"\n";
    let errors = errors_of(
        &format!("{}{route}providers = [\"nobody\"]\n", two_providers("")),
        &FakeSource::default(),
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("routes[0].providers[0]")
                && e.contains("no provider named \"nobody\"")),
        "{errors:?}"
    );
    // Both forms at once, a name twice, a bad name, a missing name, errors under [[providers]].
    let errors = errors_of(
        &format!(
            "{}{route}",
            protected("").replace(
                "[session]",
                &format!(
                    "{}\n[session]",
                    two_providers("").split("[session]").next().unwrap()
                )
            )
        ),
        &FakeSource::default(),
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("providers") && e.contains("both [provider] and [[providers]]")),
        "{errors:?}"
    );
    let twice = two_providers(route).replace("name = \"staff\"", "name = \"partners\"");
    let errors = errors_of(&twice, &FakeSource::default());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("providers[1].name") && e.contains("earlier provider")),
        "{errors:?}"
    );
    let bad = two_providers(route).replace("name = \"staff\"", "name = \"Staff Team\"");
    let errors = errors_of(&bad, &FakeSource::default());
    assert!(
        errors.iter().any(|e| e.contains("providers[1].name")),
        "{errors:?}"
    );
    let nameless = two_providers(route).replace("name = \"staff\"\n", "");
    let errors = errors_of(&nameless, &FakeSource::default());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("providers[1].name") && e.contains("is missing")),
        "{errors:?}"
    );
    let no_issuer =
        two_providers(route).replace("issuer_url = \"https://login.example.com\"\n", "");
    let errors = errors_of(&no_issuer, &FakeSource::default());
    assert!(
        errors.iter().any(|e| e.contains("providers[1].issuer_url")),
        "{errors:?}"
    );
    // A public route with providers reads as protection that is not there.
    let errors = errors_of(
        &format!(
            "{}{route}public = true\nproviders = [\"staff\"]\n",
            two_providers("")
        ),
        &FakeSource::default(),
    );
    assert!(
        errors.iter().any(|e| e.contains("routes[0].providers")),
        "{errors:?}"
    );
}

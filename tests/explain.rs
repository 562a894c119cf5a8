//! `ssogate explain`: the route, rule, decision and the headers the app would receive for one
//! request from one person, as an operator reads them; exit 0 forwarded, 1 not, 2 wrong
//! question or config.

use std::process::Command;

const SESSION_SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn config() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            r#"
[provider]
user_pool_id = "eu-central-1_AbC123xyz"
client_id = "c"
client_secret = "s"

[session]
secret = "{SESSION_SECRET}"

[access]
allowed_groups = ["staff"]
allowed_email_domains = ["example.com"]

[[routes]]
path_prefix = "/"
upstream = "http://127.0.0.1:8080"
public_paths = ["GET=^/health$"]

[[routes]]
host = "admin.example.com"
upstream = "http://127.0.0.1:8081/base"
allowed_groups = ["admins"]

[[routes]]
path_prefix = "/docs"
upstream = "http://127.0.0.1:8082"
public = true
"#
        ),
    )
    .unwrap();
    file
}

fn explain(args: &[&str]) -> (Option<i32>, String) {
    let file = config();
    let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .arg("explain")
        .arg("--config")
        .arg(file.path())
        .args(args)
        .env_remove("SSOGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn assert_says(out: &str, lines: &[&str]) {
    for line in lines {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn a_member_of_the_group_is_forwarded_with_these_headers() {
    let (code, out) = explain(&[
        "--user",
        "alice",
        "--groups",
        "staff,admins",
        "--email",
        "alice@example.com",
        "GET",
        "https://app.example.com/x/./y",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_says(
        &out,
        &[
            "route:    routes[0] / -> http://127.0.0.1:8080/x/y",
            "rule:     signed-in users in one of [staff] ([access] allowed_groups); no sign-in for public_paths [\"GET=^/health$\"]",
            "decision: forwarded: alice is in staff",
            "  x-forwarded-user: alice\n",
            "  x-forwarded-email: alice@example.com\n",
            "  x-forwarded-groups: staff,admins\n",
        ],
    );
}

#[test]
fn refusals_say_why() {
    let (code, out) = explain(&[
        "--user",
        "bob",
        "--groups",
        "staff",
        "--email",
        "bob@example.com",
        "get",
        "https://admin.example.com/users",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert_says(
        &out,
        &[
            "routes[1] admin.example.com/ -> http://127.0.0.1:8081/base/users",
            "signed-in users in one of [admins] (the route's allowed_groups)",
            "decision: 403: bob is in none of the groups",
        ],
    );
    assert!(!out.contains("x-forwarded-user"), "{out}");

    let (code, out) = explain(&[
        "--user",
        "eve",
        "--groups",
        "staff",
        "--email",
        "eve@evil-example.com",
        "GET",
        "https://app.example.com/",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert_says(&out, &["decision: 403: refused for the email (NotAllowed"]);

    let (code, out) = explain(&[
        "--user",
        "carol",
        "--groups",
        "staff",
        "GET",
        "https://app.example.com/",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert_says(&out, &["refused for the email (NoEmail"]);
}

#[test]
fn public_routes_paths_and_the_gateways_own_endpoints() {
    let (code, out) = explain(&["GET", "https://app.example.com/health?x=1"]);
    assert_eq!(code, Some(0), "{out}");
    assert_says(
        &out,
        &[
            "decision: forwarded without sign-in: public path \"GET=^/health$\" of this route matches",
            "(no identity headers)",
        ],
    );
    for (method, url) in [
        ("POST", "https://app.example.com/health"),
        ("GET", "https://app.example.com/health/../admin"),
    ] {
        let (code, out) = explain(&[method, url]);
        assert_eq!(code, Some(1), "{out}");
        assert_says(
            &out,
            &["decision: no session: a browser is sent to sign in at the provider's authorization endpoint"],
        );
    }
    let (code, out) = explain(&["GET", "https://app.example.com/docs/intro"]);
    assert_eq!(code, Some(0), "{out}");
    assert_says(
        &out,
        &[
            "routes[2] /docs",
            "forwarded without sign-in: the route is public",
        ],
    );
    let (code, out) = explain(&["GET", "https://app.example.com/oauth2/userinfo"]);
    assert_eq!(code, Some(1), "{out}");
    assert_says(&out, &["the gateway's own endpoint"]);
    let (code, out) = explain(&["GET", "https://app.example.com/a%2F..%2Fb"]);
    assert_eq!(code, Some(1), "{out}");
    assert_says(&out, &["decision: 400: the path hides"]);
}

#[test]
fn a_wrong_question_is_exit_2() {
    let (code, out) = explain(&["--provider", "partners", "GET", "https://app.example.com/"]);
    assert_eq!(code, Some(2), "{out}");
    assert_says(&out, &["no provider called that; it has [\"default\"]"]);
    let (code, out) = explain(&["GET", "/relative"]);
    assert_eq!(code, Some(2), "{out}");
    assert_says(&out, &["must be absolute"]);
}

#[test]
fn a_session_of_a_provider_the_route_does_not_take_is_no_session_there() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            r#"
[[providers]]
name = "partners"
user_pool_id = "eu-central-1_AbC123xyz"
client_id = "c"
client_secret = "s"

[[providers]]
name = "staff"
kind = "oidc"
issuer_url = "https://login.example.com"
client_id = "d"
client_secret = "s"

[session]
secret = "{SESSION_SECRET}"

[[routes]]
path_prefix = "/admin"
upstream = "http://127.0.0.1:8081"
providers = ["staff"]
"#
        ),
    )
    .unwrap();
    let run = |provider: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
            .args(["explain", "--config"])
            .arg(file.path())
            .args(["--user", "bob", "--provider", provider])
            .args(["GET", "https://app.example.com/admin/x"])
            .env_remove("SSOGATE_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run("partners");
    assert_eq!(code, Some(1), "{out}");
    assert_says(
        &out,
        &["no session here: bob signed in with provider \"partners\", and this route takes only [\"staff\"]"],
    );
    let (code, out) = run("staff");
    assert_eq!(code, Some(0), "{out}");
    assert_says(&out, &["decision: forwarded"]);
}

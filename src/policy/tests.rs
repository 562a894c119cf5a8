use super::*;
use crate::config::{Config, ProcessSource};

fn table(toml: &str) -> RouteTable {
    RouteTable::from_config(&Config::from_toml_str(toml, &ProcessSource).unwrap())
}

const ROUTES: &str = r#"
[provider]
user_pool_id = "eu-central-1_AbC123xyz"
client_id = "c"
[session]
secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
[access]
allowed_groups = ["staff"]
[[routes]]
path_prefix = "/"
upstream = "http://127.0.0.1:1"
[[routes]]
path_prefix = "/admin"
upstream = "http://127.0.0.1:2"
allowed_groups = ["admins"]
[[routes]]
path_prefix = "/public/"
upstream = "http://127.0.0.1:3"
public = true
[[routes]]
host = "other.example.com"
path_prefix = "/"
upstream = "http://127.0.0.1:4"
"#;

fn route_for(t: &RouteTable, host: Option<&str>, raw: &str) -> usize {
    let p = normalize(raw).unwrap();
    t.lookup(host, p.match_path()).unwrap().id
}

#[test]
fn longest_prefix_wins_and_is_segment_aware() {
    let t = table(ROUTES);
    assert_eq!(route_for(&t, None, "/admin"), 1);
    assert_eq!(route_for(&t, None, "/admin/users"), 1);
    assert_eq!(route_for(&t, None, "/adminx"), 0);
    assert_eq!(route_for(&t, None, "/public/a.css"), 2);
    // `/public/` is the prefix `/public`: the bare path is its too, not the catch-all's.
    assert_eq!(route_for(&t, None, "/public"), 2);
    assert_eq!(route_for(&t, None, "/public;jsessionid=1"), 2);
    assert_eq!(route_for(&t, None, "/publicity"), 0);
}

#[test]
fn host_routes_come_first_and_ignore_port_and_case() {
    let t = table(ROUTES);
    assert_eq!(route_for(&t, Some("Other.Example.com:8443"), "/admin"), 3);
    assert_eq!(route_for(&t, Some("app.example.com"), "/admin"), 1);
    // The fully qualified spelling is the same host.
    assert_eq!(route_for(&t, Some("other.example.com."), "/admin"), 3);
    assert_eq!(route_for(&t, Some("OTHER.example.com.:443"), "/"), 3);
}

#[test]
fn path_tricks_cannot_escape_a_protected_route() {
    let t = table(ROUTES);
    for trick in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin/",
        "//admin",
        "/./admin",
        "/public/./../admin",
        "/%61dmin",
        "/admin;jsessionid=1",
        "/admin%2Fusers",
        "/public/x/../../admin/y",
    ] {
        assert_eq!(
            route_for(&t, None, trick),
            1,
            "{trick} escaped the admin route"
        );
    }
}

#[test]
fn dot_segments_hidden_from_some_upstreams_are_refused_both_ways() {
    // Tomcat resolves `..;`, Werkzeug decodes `%2F`, IIS takes `\`; nginx, Go and Express
    // do none of it: whichever route the gateway picked, some upstream would serve another.
    for trick in [
        "/public/..;/admin",
        "/public/..%2fadmin",
        "/public/..%5Cadmin",
        "/public/..\\admin",
        "/admin/..;/public/x",
        "/admin%2F..%2Fpublic/x",
        "/admin%5C..%5Cpublic/x",
        "/admin\\..\\public/x",
        "/admin/.%2e;x/public/x",
        "/admin/.;/x",
        "/admin/x/..;",
    ] {
        assert_eq!(
            normalize(trick),
            Err(PathError::HiddenDotSegment),
            "{trick}"
        );
    }
}

#[test]
fn overlong_utf8_escapes_are_refused() {
    // `%C0%AE` is an overlong '.', which old decoders turn into a dot segment.
    for trick in [
        "/public/%c0%ae%c0%ae/admin/x",
        "/a%C0%AF",
        "/a%E0%80%AE",
        "/a%F0%80%80%AE",
    ] {
        assert_eq!(normalize(trick), Err(PathError::Overlong), "{trick}");
    }
    // UTF-8 and legacy Latin-1 paths pass as they are.
    for fine in ["/caf%C3%A9/%E2%82%AC", "/caf%E9"] {
        assert_eq!(normalize(fine).unwrap().forward_path(), fine);
    }
}

#[test]
fn forward_path_is_normalised_but_keeps_meaning() {
    let p = normalize("/a/./b/../c//d%7e%2f?").unwrap();
    assert_eq!(p.forward_path(), "/a/c/d~%2F?");
    let p = normalize("/x;v=1/y%2Fz").unwrap();
    assert_eq!(p.forward_path(), "/x;v=1/y%2Fz");
    assert_eq!(p.match_path(), "/x/y/z");
    assert!(matches!(normalize("/a%zz"), Err(PathError::BadEscape)));
    assert!(matches!(normalize("a"), Err(PathError::NotAbsolute)));
    let clean = normalize("/app/page.html").unwrap();
    assert!(matches!(clean.forward, std::borrow::Cow::Borrowed(_)));
    assert_eq!(normalize("/..").unwrap().forward_path(), "/");
    assert_eq!(normalize("/a/.").unwrap().forward_path(), "/a/");
}

#[test]
fn rules_admit_by_any_group() {
    let t = table(ROUTES);
    let r = &t.routes()[1];
    assert!(r.rule.admits(&["admins"]));
    assert!(!r.rule.admits(&["staff"]));
    assert!(!r.rule.admits::<&str>(&[]));
    assert_eq!(t.routes()[0].rule, RouteRule::AnyOf(vec!["staff".into()]));
    assert_eq!(t.routes()[2].rule, RouteRule::Public);
}

#[test]
fn redirects_accept_same_origin_paths_and_listed_hosts() {
    let allowed = vec![
        "partner.example.org".to_string(),
        ".example.net".to_string(),
    ];
    let ok = |rd: &str| safe_redirect(rd, "https://app.example.com", &allowed).is_some();
    assert!(ok("/"));
    assert!(ok("/dashboard?tab=1#x"));
    assert!(ok("/search?q=a%20b"));
    assert!(ok("/search?next=//x/../y"), "the query is not the path");
    assert!(
        ok("/docs//intro"),
        "a double slash inside the path stays on our site"
    );
    assert!(ok("/a/../b"));
    assert!(ok("https://app.example.com/x"));
    assert!(ok("HTTPS://app.example.com/x"));
    assert!(ok("https://app.example.com:443/x"));
    let on_port = |rd: &str| safe_redirect(rd, "http://127.0.0.1:4180", &allowed).is_some();
    assert!(on_port("http://127.0.0.1:4180/x"));
    assert!(
        !on_port("http://127.0.0.1:9999/x"),
        "another port is another origin"
    );
    assert!(!on_port("https://127.0.0.1:4180/x"), "another port");
    assert!(
        on_port("https://127.0.0.1/x"),
        "our host over TLS, from a TLS proxy in front"
    );
    let tls = |rd: &str| safe_redirect(rd, "https://app.example.com", &allowed).is_some();
    assert!(!tls("http://app.example.com/x"), "never a downgrade");
    assert!(ok("https://partner.example.org/"));
    assert!(ok("https://a.example.net/"));
    assert!(ok("https://example.net"));
}

#[test]
fn redirect_tricks_are_refused() {
    let allowed = vec!["partner.example.org".to_string()];
    for trick in [
        "//evil.com",
        "/.//evil.com",
        "/./%2Fevil.com",
        "/x/..//evil.com",
        "/x/%2E%2E//evil.com",
        "http://app.example.com.evil.com/",
        "https://app.example.com:8443/",
        "/\\evil.com",
        "\\/evil.com",
        "https:evil.com",
        "https:/evil.com",
        "/%2F%2Fevil.com",
        "/%2f/evil.com",
        "/%5Cevil.com",
        "/\tevil",
        "/\t/evil.com",
        "/\n/evil.com",
        "/%09/evil.com",
        "/%0d%0a/evil.com",
        "/%00",
        "https://evil.com",
        "https://app.example.com@evil.com/",
        "https://user:pw@app.example.com/",
        "https://evil.com#@app.example.com",
        "https://app.example.com.evil.com/",
        "https://evilpartner.example.org/",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,x",
        "ftp://app.example.com/",
        "https://аpp.example.com/",
        "/\u{ff0f}evil.com",
        "evil.com",
        "",
        "https://app.example.com:evil/",
    ] {
        assert!(
            safe_redirect(trick, "https://app.example.com", &allowed).is_none(),
            "{trick:?} was accepted"
        );
    }
}

#[test]
fn routes_match_without_regard_to_case_unless_told() {
    let t = table(ROUTES);
    // Express, ASP.NET and IIS serve `/ADMIN/` as `/admin/`.
    for spelling in [
        "/ADMIN/",
        "/Admin/x",
        "/aDmIn",
        "/%41dmin/x",
        "/PUBLIC/../ADMIN",
    ] {
        assert_eq!(route_for(&t, None, spelling), 1, "{spelling}");
    }
    // The four letters whose case mapping is ASCII, raw or escaped, as Java and .NET fold
    // them: `ſ` is `S`, `K` (Kelvin) is `k`, `ı` and `İ` are `I`/`i`.
    let sensitive = table(&format!(
        "{ROUTES}\n[[routes]]\npath_prefix = \"/secret\"\nupstream = \"http://127.0.0.1:5\"\nallowed_groups = [\"admins\"]\n[[routes]]\npath_prefix = \"/kiosk\"\nupstream = \"http://127.0.0.1:6\"\nallowed_groups = [\"admins\"]\n"
    ));
    for spelling in [
        "/%C5%BFecret",
        "/\u{17F}ecret/x",
        "/\u{212A}iosk",
        "/%E2%84%AAiosk",
        "/k%C4%B1osk",
        "/K\u{130}OSK",
    ] {
        let p = normalize(spelling).unwrap();
        let id = sensitive.lookup(None, p.match_path()).unwrap().id;
        assert!(
            id == 4 || id == 5,
            "{spelling} escaped its route (got {id})"
        );
    }
    // A route that asks for case: `/ADMIN` is then another path.
    let t = table(&ROUTES.replace(
        "allowed_groups = [\"admins\"]",
        "allowed_groups = [\"admins\"]\ncase_sensitive = true",
    ));
    assert_eq!(route_for(&t, None, "/ADMIN/"), 0);
    assert_eq!(route_for(&t, None, "/admin/"), 1);
}

#[test]
fn encoded_control_bytes_and_segments_ending_in_dots_or_spaces_are_refused() {
    // C upstreams stop at NUL; IIS and Windows trim trailing dots and spaces.
    for trick in [
        "/admin%00/",
        "/admin%00",
        "/a%0d%0aSet-Cookie:x",
        "/admin%09/",
        "/x%7F",
    ] {
        assert_eq!(normalize(trick), Err(PathError::ControlByte), "{trick}");
    }
    for trick in [
        "/admin./",
        "/admin.",
        "/admin../x",
        "/admin%20/",
        "/admin%20",
        "/admin%2e/x",
        "/admin.;x/",
        "/admin%20;x",
        "/a/.../b",
    ] {
        assert_eq!(
            normalize(trick),
            Err(PathError::TrailingDotOrSpace),
            "{trick}"
        );
    }
    // Dots inside a segment, and a space inside one, stay.
    for fine in [
        "/a.b/c.d",
        "/.well-known/x",
        "/a%20b/",
        "/v1.2/x",
        "/.hidden",
    ] {
        assert!(normalize(fine).is_ok(), "{fine}");
    }
}

fn source<'a>(headers: &'a http::HeaderMap, uri: &'a http::Uri, believe: bool) -> HostSource<'a> {
    HostSource {
        headers,
        uri,
        version: http::Version::HTTP_11,
        believe_forwarded_host: believe,
    }
}

#[test]
fn the_decision_uses_one_valid_host_and_refuses_two_that_disagree() {
    let t = table(&format!(
        "{ROUTES}\n[[routes]]\nhost = \"docs.example.com\"\npath_prefix = \"/\"\nupstream = \"http://127.0.0.1:7\"\npublic = true\n"
    ));
    let uri: http::Uri = "/x".parse().unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("host", "other.example.com".parse().unwrap());
    h.insert("x-forwarded-host", "docs.example.com".parse().unwrap());
    // Not believed: Host decides, and the upstream is told that host.
    let d = t
        .decide(&http::Method::GET, &source(&h, &uri, false), "/x")
        .unwrap();
    assert_eq!((d.route.id, d.host.unwrap().name), (3, "other.example.com"));
    // Believed, but Host names another host route: two readings, refused.
    assert_eq!(
        t.decide(&http::Method::GET, &source(&h, &uri, true), "/x")
            .unwrap_err(),
        Refusal::Host(HostError::Disagree)
    );
    // Believed, with Host the gateway's own address (no host route): the proxy's word.
    h.insert("host", "gateway.internal:4180".parse().unwrap());
    let d = t
        .decide(&http::Method::GET, &source(&h, &uri, true), "/x")
        .unwrap();
    assert_eq!((d.route.id, d.host.unwrap().name), (4, "docs.example.com"));
    // A host no upstream could read one way is never routed.
    h.insert("host", "other.example.com:80:80".parse().unwrap());
    assert!(matches!(
        t.decide(&http::Method::GET, &source(&h, &uri, false), "/x"),
        Err(Refusal::Host(HostError::Invalid(_)))
    ));
}

#[test]
fn allowed_roles_admit_the_groups_that_carry_them() {
    let t = table(
        r#"
[provider]
user_pool_id = "eu-central-1_AbC123xyz"
client_id = "c"
[session]
secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
[roles]
admins = ["admin", "editor"]
writers = ["editor"]
staff = ["viewer"]
[[routes]]
path_prefix = "/edit"
upstream = "http://127.0.0.1:1"
allowed_roles = ["editor"]
[[routes]]
path_prefix = "/ops"
upstream = "http://127.0.0.1:2"
allowed_groups = ["ops"]
allowed_roles = ["admin"]
"#,
    );
    let edit = &t.routes()[0].rule;
    assert!(edit.admits(&["writers"]));
    assert!(edit.admits(&["admins"]));
    assert!(!edit.admits(&["staff"]));
    assert!(!edit.admits::<&str>(&[]));
    let ops = &t.routes()[1].rule;
    assert!(ops.admits(&["ops"]) && ops.admits(&["admins"]));
    assert!(!ops.admits(&["writers"]));
}

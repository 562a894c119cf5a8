//! `policy::normalize` and `RouteTable::lookup`: no panic, normalising is stable, the match
//! path is free of everything it exists to remove, the route is the longest whole-segment
//! prefix, and a route decided on the match path is the one an upstream that decodes every
//! escape (nginx) would be judged by. See ../README.md.
//!
//! Input: `path` or, with a first byte 0x01, `prefix\nprefix\n...\npath` (extra routes).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ssogate::config::{Config, ProcessSource};
use ssogate::policy::{normalize, HostSource, Refusal, RouteTable};

/// Routes every input is looked up in (prefixes of unreserved characters only).
const FIXED: &[&str] = &[
    "/",
    "/admin",
    "/admin/users",
    "/public/",
    "/api/v1",
    "/a-b_c.d~e",
];
const HOSTS: &[Option<&str>] = &[None, Some("app.example.com"), Some("App.Example.com.:8443")];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(spec) = text.strip_prefix('\u{1}') {
        let mut parts: Vec<&str> = spec.split('\n').collect();
        let path = parts.pop().unwrap_or_default();
        parts.truncate(6);
        if let Some(table) = table_with(&parts) {
            check(&table, path, false);
        }
        return;
    }
    check(fixed(), text, true);
});

fn toml_for(prefixes: &[&str]) -> String {
    let mut toml = String::from(
        "[provider]\nuser_pool_id = \"eu-central-1_AbC123xyz\"\nclient_id = \"c\"\n\
         [session]\nsecret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n",
    );
    for (i, p) in prefixes.iter().enumerate() {
        // A JSON string is a valid TOML basic string.
        let p = serde_json::to_string(p).expect("a string serialises");
        toml.push_str(&format!(
            "[[routes]]\npath_prefix = {p}\nupstream = \"http://127.0.0.1:{}\"\n",
            i + 1
        ));
        if i % 2 == 1 {
            toml.push_str("host = \"app.example.com\"\n");
        }
        // Case-sensitive routes only among the extra ones: the fixed ones are all not.
        if i >= FIXED.len() && i % 3 == 2 {
            toml.push_str("case_sensitive = true\n");
        }
    }
    toml
}

fn fixed() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let config = Config::from_toml_str(&toml_for(FIXED), &ProcessSource)
            .unwrap_or_else(|e| panic!("the fixed routes load: {e}"));
        RouteTable::from_config(&config)
    })
}

fn table_with(extra: &[&str]) -> Option<RouteTable> {
    let mut prefixes = FIXED.to_vec();
    prefixes.extend_from_slice(extra);
    let config = Config::from_toml_str(&toml_for(&prefixes), &ProcessSource).ok()?;
    Some(RouteTable::from_config(&config))
}

fn check(table: &RouteTable, raw: &str, fixed_table: bool) {
    let Ok(p) = normalize(raw) else {
        return;
    };
    let forward = p.forward_path();
    let matching = p.match_path();
    assert!(
        forward.starts_with('/'),
        "forward path of {raw:?}: {forward:?}"
    );
    assert!(
        matching.starts_with('/'),
        "match path of {raw:?}: {matching:?}"
    );

    // Stable: the upstream normalising the forward path again gets the same two views.
    let again = normalize(forward).unwrap_or_else(|e| {
        panic!("the forward path {forward:?} of {raw:?} does not normalise: {e}")
    });
    assert_eq!(
        again.forward_path(),
        forward,
        "forward path of {raw:?} not stable"
    );
    assert_eq!(
        again.match_path(),
        matching,
        "match path of {raw:?} not stable"
    );
    let twice = normalize(matching).unwrap_or_else(|e| {
        panic!("the match path {matching:?} of {raw:?} does not normalise: {e}")
    });
    assert_eq!(
        twice.match_path(),
        matching,
        "match path of {raw:?} is not a fixed point"
    );

    // What the match path exists to remove.
    for seg in matching.split('/').skip(1) {
        assert!(
            seg != "." && seg != "..",
            "dot segment left in the match path {matching:?} of {raw:?}"
        );
    }
    assert!(
        !matching.contains("//"),
        "empty segment in {matching:?} of {raw:?}"
    );
    let upper = matching.to_ascii_uppercase();
    assert!(
        !matching.contains(';')
            && !matching.contains('\\')
            && !upper.contains("%2F")
            && !upper.contains("%5C"),
        "a separator some upstream reads is left in the match path {matching:?} of {raw:?}"
    );

    // The one decision (`decide`) is normalize + lookup on a validated host.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("App.Example.com:8443"),
    );
    let uri = http::Uri::from_static("/");
    let source = HostSource {
        headers: &headers,
        uri: &uri,
        version: http::Version::HTTP_11,
        believe_forwarded_host: false,
    };
    let by_lookup = table
        .lookup(Some("app.example.com"), matching)
        .map(|r| r.id);
    match table.decide(&http::Method::GET, &source, raw) {
        Ok(d) => assert_eq!(
            Some(d.route.id),
            by_lookup,
            "decide and lookup differ for {raw:?}"
        ),
        Err(Refusal::NoRoute) => assert_eq!(by_lookup, None, "decide found no route for {raw:?}"),
        Err(e) => panic!("decide refused {raw:?}, which normalises: {e}"),
    }

    for host in HOSTS {
        let route = table.lookup(*host, matching).map(|r| r.id);
        assert_eq!(
            route,
            model_lookup(table, *host, matching),
            "route for {matching:?} (from {raw:?}, host {host:?})"
        );
        // Routes are not case-sensitive (the fixed ones): nor is the decision, however the
        // request spells the path (Express, ASP.NET and IIS route without regard to case).
        if fixed_table {
            for spelled in [raw.to_ascii_lowercase(), raw.to_ascii_uppercase()] {
                if let Ok(n) = normalize(&spelled) {
                    assert_eq!(
                        table.lookup(*host, n.match_path()).map(|r| r.id),
                        route,
                        "{raw:?} and {spelled:?} go different routes (host {host:?})"
                    );
                }
            }
        }
        // nginx (and most servers) percent-decode the whole path once, then resolve it. When
        // that reading has no escape, `;` or `\` left to read otherwise, its route (on the
        // unreserved-only prefixes of the fixed table) must be the one the gateway decided.
        if fixed_table {
            if let Some(decoded) = decode_all(forward) {
                if !decoded.contains(['%', ';', '\\']) {
                    if let Ok(n) = normalize(&decoded) {
                        assert_eq!(
                            table.lookup(*host, n.match_path()).map(|r| r.id),
                            route,
                            "{raw:?}: the gateway routes {matching:?}, a decoding upstream \
                             reads {decoded:?} (host {host:?})"
                        );
                    }
                }
            }
        }
    }
}

/// Longest whole-segment prefix among routes for this host, else among routes for any host.
fn model_lookup(table: &RouteTable, host: Option<&str>, path: &str) -> Option<usize> {
    let host = host.map(|h| {
        let h = match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        };
        h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
    });
    let matches = |prefix: &str, case_sensitive: bool| {
        let start = path.get(..prefix.len());
        let same = if case_sensitive {
            start == Some(prefix)
        } else {
            start.is_some_and(|s| s.eq_ignore_ascii_case(prefix))
        };
        prefix == "/"
            || (same && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'))
    };
    let best = |want_host: bool| {
        table
            .routes()
            .iter()
            .filter(|r| match (&r.host, &host) {
                (Some(rh), Some(h)) => want_host && rh == h,
                (Some(_), None) => false,
                (None, _) => !want_host,
            })
            .filter(|r| matches(&r.path_prefix, r.case_sensitive))
            // The last of equally long prefixes, as `max_by_key` picks.
            .fold(None::<&ssogate::policy::Route>, |best, r| match best {
                Some(b) if b.path_prefix.len() > r.path_prefix.len() => Some(b),
                _ => Some(r),
            })
            .map(|r| r.id)
    };
    best(true).or_else(|| best(false))
}

/// Every `%XX` decoded, when the result is UTF-8.
fn decode_all(p: &str) -> Option<String> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let v = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

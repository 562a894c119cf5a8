//! A route's `public_paths` (oauth2-proxy's `--skip-auth-route`): `METHOD=regex` or `regex`,
//! searched (not anchored unless the pattern says `^`/`$`) in the normalised path, never the
//! raw one and never the query. A path is public only when the pattern matches it as every
//! upstream might read it: the forward path and the pessimistic match path both.
//! Also owns the start-up check that no pattern can match the gateway's own endpoints.
//! Pure; no I/O.

use regex::Regex;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::Anchored;

use super::NormalizedPath;

/// One `public_paths` entry.
#[derive(Debug, Clone)]
pub struct PublicPath {
    /// `None`: any method.
    pub method: Option<http::Method>,
    pub pattern: Regex,
    /// As written, for `explain` and logs.
    pub text: String,
}

impl PublicPath {
    /// `GET=^/health$` or `^/static/`. Only a method name (ASCII letters) before the first
    /// `=` is a method, so a pattern may hold `=` (`^/a=b`).
    pub fn parse(text: &str) -> Result<PublicPath, String> {
        let (method, pattern) = match text.split_once('=') {
            Some((m, p)) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) => {
                (Some(m.to_ascii_uppercase()), p)
            }
            _ => (None, text),
        };
        if pattern.is_empty() {
            return Err("has no pattern: write a regular expression like \"^/health$\"".into());
        }
        let method = match method {
            Some(m) => Some(
                http::Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("{m:?} is not an HTTP method"))?,
            ),
            None => None,
        };
        let pattern = Regex::new(pattern).map_err(|e| format!("is not a valid pattern: {e}"))?;
        Ok(PublicPath {
            method,
            pattern,
            text: text.to_string(),
        })
    }

    /// Whether a request with this method and (normalised) path is public by this entry.
    pub fn admits(&self, method: &http::Method, path: &NormalizedPath<'_>) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self.pattern.is_match(path.forward_path())
            && self.pattern.is_match(path.match_path())
    }

    /// Whether the pattern matches some path that is `prefix` itself or lies under it
    /// (`prefix/...`). Decided on the pattern's DFA, not on samples: `^/oauth2/z` counts.
    /// A pattern too large to decide counts as matching.
    pub fn may_match_under(&self, prefix: &str) -> bool {
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Unanchored)
                    .dfa_size_limit(Some(4 << 20))
                    .determinize_size_limit(Some(4 << 20)),
            )
            .build(self.pattern.as_str());
        let Ok(dfa) = dfa else {
            return true;
        };
        let Ok(mut at) = dfa.start_state(&start::Config::new().anchored(Anchored::No)) else {
            return true;
        };
        for &b in prefix.as_bytes() {
            at = dfa.next_state(at, b);
            if found(&dfa, at) {
                return true;
            }
        }
        if found(&dfa, dfa.next_eoi_state(at)) {
            return true;
        }
        // Below the prefix: `/`, then anything.
        let below = dfa.next_state(at, b'/');
        let mut seen = std::collections::HashSet::from([below]);
        let mut todo = vec![below];
        while let Some(s) = todo.pop() {
            if found(&dfa, s) || found(&dfa, dfa.next_eoi_state(s)) {
                return true;
            }
            if dfa.is_dead_state(s) {
                continue;
            }
            for b in 0..=255u8 {
                let next = dfa.next_state(s, b);
                if seen.insert(next) {
                    todo.push(next);
                }
            }
        }
        false
    }
}

/// A match, or a state the DFA gave up in (it cannot tell, so it may).
fn found(dfa: &dense::DFA<Vec<u32>>, s: StateID) -> bool {
    dfa.is_match_state(s) || dfa.is_quit_state(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::normalize;

    #[test]
    fn methods_and_patterns_parse_as_oauth2_proxy_writes_them() {
        let p = PublicPath::parse("GET=^/api/health$").unwrap();
        assert_eq!(p.method, Some(http::Method::GET));
        assert_eq!(p.pattern.as_str(), "^/api/health$");
        let p = PublicPath::parse("^/static/").unwrap();
        assert_eq!(p.method, None);
        let p = PublicPath::parse("^/a=b").unwrap();
        assert_eq!((p.method, p.pattern.as_str()), (None, "^/a=b"));
        assert!(PublicPath::parse("GET=").is_err());
        assert!(PublicPath::parse("^/(").is_err());
    }

    #[test]
    fn a_public_path_needs_the_method_and_both_readings_of_the_path() {
        let health = PublicPath::parse("GET=^/api/health$").unwrap();
        let get = http::Method::GET;
        assert!(health.admits(&get, &normalize("/api/health").unwrap()));
        assert!(!health.admits(&http::Method::POST, &normalize("/api/health").unwrap()));
        assert!(!health.admits(&get, &normalize("/api/health/x").unwrap()));
        // Normalised first: the dots are resolved, so this is /admin.
        assert!(!health.admits(&get, &normalize("/api/health/../admin").unwrap()));
        assert!(health.admits(&get, &normalize("/api/./health").unwrap()));
        // Tomcat drops `;x`, others do not: public only if both readings are.
        let css = PublicPath::parse(r"^/static/.*\.css$").unwrap();
        assert!(css.admits(&get, &normalize("/static/a.css").unwrap()));
        assert!(!css.admits(&get, &normalize("/static/a.css;.jsp").unwrap()));
        // Not anchored unless written so, as oauth2-proxy.
        let loose = PublicPath::parse("/static/").unwrap();
        assert!(loose.admits(&get, &normalize("/x/static/y").unwrap()));
    }

    #[test]
    fn patterns_that_could_reach_the_gateways_endpoints_are_found() {
        for (pattern, under) in [
            ("^/oauth2", true),
            ("^/oauth2/zzz", true),
            ("/sign_in", true),
            (".*", true),
            ("^/o", true),
            ("x$", true),
            ("^/oauth2$", true),
            ("^/api/health$", false),
            ("^/static/", false),
            ("^/oauth2x", false),
            ("^/oauth", true),
        ] {
            let p = PublicPath::parse(pattern).unwrap();
            assert_eq!(p.may_match_under("/oauth2"), under, "{pattern}");
        }
    }
}

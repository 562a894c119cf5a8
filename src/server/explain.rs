//! `ssogate explain`: what the gateway would do with one request from one person, in words:
//! the route, its rule, the decision and why, and the identity headers the upstream would
//! receive. Asks the same code the request path asks (`RouteTable::decide`, the endpoint
//! classifier, `identity::email_refusal`, `RouteRule::admits`, `IdentityHeaders::build`), so
//! it cannot drift from it. Never does I/O; the caller prints.

use std::fmt::Write;

use http::{HeaderMap, HeaderValue, Method, Uri, Version};

use crate::config::{Config, HeaderPreset};
use crate::identity::{email_refusal, IdentityHeaders, Principal, TokensForHeaders};
use crate::policy::{HostSource, RouteRule, RouteTable};

/// The person to explain a request for; `None` user: a request without a session.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub user: Option<String>,
    pub groups: Vec<String>,
    /// Taken as verified by the provider.
    pub email: Option<String>,
    pub provider: Option<String>,
}

/// What the gateway would do, in words, and whether the request would reach the upstream.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub text: String,
    pub forwarded: bool,
}

/// Explains `method url` for `who` under `config`. Err: the question itself is wrong (a URL
/// that is not absolute, a provider there is none of).
pub fn explain(config: &Config, who: &Who, method: &str, url: &str) -> Result<Explanation, String> {
    // The provider the user signed in with: `--provider`, or the first.
    let provider = match who.provider.as_deref() {
        Some(name) => Some(config.provider_named(name).ok_or_else(|| {
            let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
            format!(
                "--provider {name:?}: this config has no provider called that; it has {names:?}"
            )
        })?),
        None => config.provider(),
    };
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} must be absolute, like \"https://app.example.com/path\""))?
        .clone();
    let mut headers = HeaderMap::new();
    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
    headers.insert(http::header::HOST, host);
    let mut out = String::new();
    let _ = writeln!(out, "request:  {method} {url}");

    let path = uri.path();
    if super::endpoints::endpoint_of(&config.server, path).is_some() {
        let _ = writeln!(
            out,
            "route:    none: {path} is the gateway's own endpoint (under server.auth_prefix {:?}, or server.callback_path)",
            config.server.auth_prefix
        );
        let _ = writeln!(
            out,
            "decision: answered by the gateway itself, never forwarded"
        );
        return Ok(Explanation {
            text: out,
            forwarded: false,
        });
    }
    let routes = RouteTable::from_config(config);
    let source = HostSource {
        headers: &headers,
        uri: &uri,
        version: Version::HTTP_11,
        believe_forwarded_host: false,
    };
    let decision = match routes.decide(&method, &source, path) {
        Ok(d) => d,
        Err(refusal) => {
            let status = match refusal {
                crate::policy::Refusal::NoRoute => 404,
                _ => 400,
            };
            let _ = writeln!(out, "route:    none");
            let _ = writeln!(out, "decision: {status}: {refusal}");
            return Ok(Explanation {
                text: out,
                forwarded: false,
            });
        }
    };
    let route = decision.route;
    let upstream = &config.routes[route.id].upstream;
    let forward_path = decision.forward_path.as_deref().unwrap_or(path);
    let _ = writeln!(
        out,
        "route:    routes[{}] {} -> {}{}",
        route.id,
        route.name,
        upstream.as_str().trim_end_matches('/'),
        forward_path
    );
    let _ = writeln!(
        out,
        "rule:     {}",
        describe_rule(config, route.id, &route.rule)
    );

    if !decision.needs_sign_in() {
        let why = match decision.public_path {
            Some(p) => format!("public path {:?} of this route matches", p.text),
            None => "the route is public".to_string(),
        };
        let _ = writeln!(out, "decision: forwarded without sign-in: {why}");
        write_headers(&mut out, &[]);
        return Ok(Explanation {
            text: out,
            forwarded: true,
        });
    }
    let Some(user) = &who.user else {
        let taken = route.providers.places(config.providers.len()).count();
        let to = if taken == 1 && !config.server.sign_in_page {
            "the provider's authorization endpoint".to_string()
        } else {
            format!("the sign-in page, {}/sign_in", config.server.auth_prefix)
        };
        let _ = writeln!(
            out,
            "decision: no session: a browser is sent to sign in at {to}, a program gets 401"
        );
        return Ok(Explanation {
            text: out,
            forwarded: false,
        });
    };
    // A session of a provider the route does not take is no session there.
    let place = provider.and_then(|p| config.providers.iter().position(|q| q.name == p.name));
    if let Some(p) = provider.filter(|_| !place.is_some_and(|i| route.providers.has(i))) {
        let taken = config.routes[route.id]
            .providers
            .clone()
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "decision: no session here: {user} signed in with provider {:?}, and this route takes only {taken:?} (routes[{}].providers); a browser is sent to sign in with one of those",
            p.name, route.id
        );
        return Ok(Explanation {
            text: out,
            forwarded: false,
        });
    }
    let principal = Principal {
        sub: user.clone(),
        user: user.clone(),
        email: who.email.clone(),
        email_verified: who.email.as_ref().map(|_| true),
        preferred_username: None,
        groups: who.groups.clone(),
        mapped: Default::default(),
    };
    let _ = writeln!(
        out,
        "user:     {user}, groups [{}], email {}",
        who.groups.join(", "),
        who.email
            .as_deref()
            .map_or("none".to_string(), |e| format!("{e} (taken as verified)"))
    );
    let user_claim = provider.map_or("sub", |p| p.user_claim.as_str());
    let access = &config.access;
    if let Some(refusal) = email_refusal(
        &principal,
        user_claim,
        access.require_verified_email,
        &access.email_rules(),
    ) {
        let _ = writeln!(
            out,
            "decision: 403: refused for the email ({refusal:?}; [access] require_verified_email = {}, allowed_email_domains {:?}, allowed_emails: {} listed)",
            access.require_verified_email,
            access.allowed_email_domains,
            access.allowed_emails.len()
        );
        return Ok(Explanation {
            text: out,
            forwarded: false,
        });
    }
    if !route.rule.admits(&principal.groups) {
        let _ = writeln!(
            out,
            "decision: 403: {user} is in none of the groups this route admits"
        );
        return Ok(Explanation {
            text: out,
            forwarded: false,
        });
    }
    let why = match &route.rule {
        RouteRule::AnyOf(groups) => {
            let mine: Vec<&str> = groups
                .iter()
                .filter(|g| principal.groups.contains(g))
                .map(String::as_str)
                .collect();
            format!("{user} is in {}", mine.join(", "))
        }
        _ => format!("{user} is signed in"),
    };
    let _ = writeln!(out, "decision: forwarded: {why}");
    let built = IdentityHeaders::build(
        &principal,
        TokensForHeaders {
            access_token: Some("<access token>"),
            id_token: Some("<id token>"),
            expires_at: 0,
            issuer: provider.map_or("", |p| p.issuer.as_str()),
            client_id: provider.map_or("", |p| p.client_id.as_str()),
        },
        &config.headers,
        None,
    );
    write_headers(&mut out, &built.upstream);
    if config.headers.preset == HeaderPreset::Alb {
        let _ = writeln!(
            out,
            "  x-amzn-oidc-data: <ES256 assertion signed by the gateway>"
        );
    }
    Ok(Explanation {
        text: out,
        forwarded: true,
    })
}

fn describe_rule(config: &Config, id: usize, rule: &RouteRule) -> String {
    let inherited = config.routes[id].allowed_groups.is_none();
    let from = if inherited {
        " ([access] allowed_groups)"
    } else {
        " (the route's allowed_groups)"
    };
    let mut text = match rule {
        RouteRule::Public => "public: no sign-in".to_string(),
        RouteRule::SignedIn => format!("any signed-in user{from}"),
        RouteRule::AnyOf(groups) => {
            format!("signed-in users in one of [{}]{from}", groups.join(", "))
        }
    };
    let public = &config.routes[id].public_paths;
    if !public.is_empty() {
        let list: Vec<&str> = public.iter().map(|p| p.text.as_str()).collect();
        let _ = write!(text, "; no sign-in for public_paths {list:?}");
    }
    text
}

fn write_headers(out: &mut String, identity: &[(http::HeaderName, HeaderValue)]) {
    let _ = writeln!(
        out,
        "upstream headers (besides the client's own, with every identity header it sent and the gateway's cookies removed, and X-Forwarded-For/-Proto/-Host):"
    );
    if identity.is_empty() {
        let _ = writeln!(out, "  (no identity headers)");
    }
    for (name, value) in identity {
        let _ = writeln!(out, "  {name}: {}", value.to_str().unwrap_or("<binary>"));
    }
}

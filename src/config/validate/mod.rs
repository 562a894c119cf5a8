//! Raw config -> validated config, collecting every error. The provider tables are in
//! `providers.rs`, some sections in `sections.rs`; the way back, the effective config with
//! secrets masked, in `effective.rs`.

mod effective;
mod providers;
mod sections;

pub(super) use effective::effective;
use providers::{providers, route_providers};
use sections::{
    access, admin, cookie_domain, is_reserved_header, public_paths, session_idle_timeout,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::HeaderName;
use ipnet::IpNet;
use url::Url;

use super::raw::*;
use super::*;

struct Errors(Vec<ConfigError>);

impl Errors {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.to_string(),
            message: message.into(),
            line: None,
        });
    }

    fn duration(&mut self, key: &str, value: &Option<String>, default: &str) -> Duration {
        let text = value.as_deref().unwrap_or(default);
        match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                self.add(
                    key,
                    format!("{text:?} is not a duration ({e}): write it like \"30s\", \"5m\" or \"12h\""),
                );
                humantime::parse_duration(default).unwrap_or_default()
            }
        }
    }

    /// A size like "64KiB", "10MiB", "1GB" or a number of bytes.
    fn size(&mut self, key: &str, value: &str) -> Option<u64> {
        let text = value.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let unit = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => Some(1u64),
            "k" | "kb" => Some(1000),
            "kib" => Some(1 << 10),
            "m" | "mb" => Some(1000 * 1000),
            "mib" => Some(1 << 20),
            "g" | "gb" => Some(1000 * 1000 * 1000),
            "gib" => Some(1 << 30),
            _ => None,
        };
        match (digits.parse::<u64>().ok(), unit) {
            (Some(n), Some(unit)) if n > 0 => n.checked_mul(unit).or_else(|| {
                self.add(key, format!("{text:?} is too large"));
                None
            }),
            _ => {
                self.add(
                    key,
                    format!(
                        "{text:?} is not a size: write it like \"64KiB\", \"10MiB\" or \"1GB\""
                    ),
                );
                None
            }
        }
    }

    fn url(&mut self, key: &str, value: &Option<String>) -> Option<Url> {
        let text = value.as_deref()?;
        match Url::parse(text) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                Some(u)
            }
            Ok(_) | Err(url::ParseError::RelativeUrlWithoutBase) if !text.contains("://") => {
                self.add(
                    key,
                    format!("{text:?} is not a URL: write it with its scheme, like \"https://{text}\" (or \"http://{text}\" for a plain-HTTP app)"),
                );
                None
            }
            Ok(_) => {
                self.add(
                    key,
                    format!("{text:?} must be an http:// or https:// URL with a host"),
                );
                None
            }
            Err(e) => {
                self.add(key, format!("{text:?} is not a URL ({e})"));
                None
            }
        }
    }

    fn socket_addr(&mut self, key: &str, value: &str) -> Option<SocketAddr> {
        match value.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.add(
                    key,
                    format!("{value:?} is not an address: write IP:PORT, like \"0.0.0.0:4180\" or \"[::1]:4180\""),
                );
                None
            }
        }
    }

    /// A secret given inline (`key`) or in a file (`key_file`); at most one of them.
    fn secret(
        &mut self,
        source: &dyn ConfigSource,
        key: &str,
        inline: &Option<String>,
        file: &Option<String>,
    ) -> Option<Secret> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.add(key, format!("set either {key} or {key}_file, not both"));
                None
            }
            (Some(v), None) => Some(Secret(v.trim().as_bytes().to_vec())),
            (None, Some(path)) => {
                match source.read_file(Path::new(path)) {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        Some(Secret(text.trim().as_bytes().to_vec()))
                    }
                    Err(e) => {
                        self.add(
                        &format!("{key}_file"),
                        format!("cannot read {path}: {e}; mount the secret there or set {key} instead"),
                    );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

/// A session key: base64 of at least 32 random bytes.
fn cookie_key(errors: &mut Errors, key: &str, secret: Secret) -> Option<Secret> {
    match parse_cookie_secret(secret.0.as_slice()) {
        Ok(bytes) => Some(Secret(bytes)),
        Err(message) => {
            errors.add(key, message);
            None
        }
    }
}

/// Decodes a session secret as written in the config or its file (base64, >= 32 bytes).
pub fn parse_cookie_secret(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(text);
    let text = text.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text));
    match decoded {
        Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
        Ok(bytes) => Err(format!(
            "decodes to {} bytes; it needs at least 32 random bytes, base64: generate one with `openssl rand -base64 32`{}",
            bytes.len(),
            if text.len() == 32 {
                " (a 32-character secret as oauth2-proxy takes it is read as base64 here, not as the key itself)"
            } else {
                ""
            }
        )),
        Err(_) => Err("is not base64: generate one with `openssl rand -base64 32`".into()),
    }
}

fn is_cognito_pool_id(id: &str) -> bool {
    // ^[a-z]{2}-(gov-)?[a-z]+-\d_[a-zA-Z0-9]+$ without a regex engine.
    let Some((region, rest)) = id.split_once('_') else {
        return false;
    };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()) && is_aws_region(region)
}

fn is_aws_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let (cc, middle, digit) = match parts.as_slice() {
        [cc, name, d] => (cc, vec![*name], d),
        [cc, gov, name, d] if *gov == "gov" => (cc, vec![*name], d),
        _ => return false,
    };
    cc.len() == 2
        && cc.bytes().all(|b| b.is_ascii_lowercase())
        && middle
            .iter()
            .all(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_lowercase()))
        && digit.len() == 1
        && digit.bytes().all(|b| b.is_ascii_digit())
}

/// `server.trusted_forwarded_headers`: names from X-Forwarded-For, -Proto and -Host.
fn forwarded_trust(errors: &mut Errors, value: &Option<Vec<String>>) -> ForwardedTrust {
    let Some(names) = value else {
        return ForwardedTrust::DEFAULT;
    };
    let mut trust = ForwardedTrust::NONE;
    for (i, name) in names.iter().enumerate() {
        match name.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => trust.for_ = true,
            "x-forwarded-proto" => trust.proto = true,
            "x-forwarded-host" => trust.host = true,
            _ => errors.add(
                &format!("server.trusted_forwarded_headers[{i}]"),
                format!("{name:?} is not one the gateway reads: list any of \"X-Forwarded-For\", \"X-Forwarded-Proto\", \"X-Forwarded-Host\""),
            ),
        }
    }
    trust
}

fn path_key(errors: &mut Errors, key: &str, value: &str) -> String {
    if !value.starts_with('/') || value.contains(['?', '#', ' ']) {
        errors.add(
            key,
            format!("{value:?} must be a path starting with '/' (no query, no spaces)"),
        );
    }
    value.to_string()
}

pub(super) fn validate(raw: RawConfig, source: &dyn ConfigSource) -> Result<Config, ConfigErrors> {
    let mut e = Errors(Vec::new());

    // [server]
    let s = &raw.server;
    let listen = e
        .socket_addr(
            "server.listen",
            s.listen.as_deref().unwrap_or("0.0.0.0:4180"),
        )
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 4180)));
    let public_url = e.url("server.public_url", &s.public_url);
    if let Some(u) = &public_url {
        if u.path() != "/" || u.query().is_some() {
            e.add(
                "server.public_url",
                "must be an origin only (like \"https://app.example.com\"), without a path or query",
            );
        }
    }
    let mut auth_prefix = s.auth_prefix.clone().unwrap_or_else(|| "/oauth2".into());
    while auth_prefix.len() > 1 && auth_prefix.ends_with('/') {
        auth_prefix.pop();
    }
    let auth_prefix = path_key(&mut e, "server.auth_prefix", &auth_prefix);
    if auth_prefix == "/" {
        e.add(
            "server.auth_prefix",
            "cannot be \"/\": the gateway's endpoints would hide every route; use e.g. \"/oauth2\"",
        );
    }
    let callback_path = match &s.callback_path {
        Some(p) => path_key(&mut e, "server.callback_path", p),
        None => format!("{auth_prefix}/callback"),
    };
    let forward_auth_uri_header = s.forward_auth_uri_header.as_ref().and_then(|h| {
        match http::HeaderName::from_bytes(h.trim().as_bytes()) {
            Ok(name) => Some(name.as_str().to_string()),
            Err(_) => {
                e.add(
                    "server.forward_auth_uri_header",
                    format!("{h:?} is not a header name; use the one your proxy sets itself: \"X-Original-URI\" (nginx) or \"X-Forwarded-Uri\" (Traefik, Caddy)"),
                );
                None
            }
        }
    });
    let mut trusted_proxies = Vec::new();
    for (i, p) in s.trusted_proxies.iter().flatten().enumerate() {
        let parsed = p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => e.add(
                &format!("server.trusted_proxies[{i}]"),
                format!("{p:?} is not an IP address or CIDR range like \"10.0.0.0/8\""),
            ),
        }
    }
    let mut allowed_redirect_hosts = Vec::new();
    for (i, h) in s.allowed_redirect_hosts.iter().flatten().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        let problem = if h.contains("://") || h.contains('/') {
            Some("write the host alone, without scheme or path")
        } else if h.contains('*') {
            Some("write \".example.com\" (leading dot) to admit every subdomain; '*' is not a pattern here")
        } else if h.contains(':') && !h.starts_with('[') {
            Some("write the host without a port: any port of a listed host is admitted")
        } else if h.is_empty() || h == "." {
            Some("is empty")
        } else {
            None
        };
        match problem {
            Some(what) => e.add(
                &format!("server.allowed_redirect_hosts[{i}]"),
                format!("{h:?} never matches: {what}, like \"other.example.com\""),
            ),
            None => allowed_redirect_hosts.push(h),
        }
    }
    let header_read_timeout =
        e.duration("server.header_read_timeout", &s.header_read_timeout, "10s");
    let drain_timeout = e.duration("server.drain_timeout", &s.drain_timeout, "30s");
    let shutdown_delay = e.duration("server.shutdown_delay", &s.shutdown_delay, "0s");
    let secret_poll_interval = e.duration(
        "server.secret_poll_interval",
        &s.secret_poll_interval,
        "10s",
    );
    let workers = match s.workers {
        None => None,
        Some(n @ 1..=1024) => Some(n as usize),
        Some(n) => {
            e.add(
                "server.workers",
                format!("{n} is not between 1 and 1024; leave it out for one worker per CPU core"),
            );
            None
        }
    };
    let trusted_forwarded_headers = forwarded_trust(&mut e, &s.trusted_forwarded_headers);
    let max_request_head = e
        .size(
            "server.max_request_head",
            s.max_request_head.as_deref().unwrap_or("64KiB"),
        )
        .unwrap_or(64 << 10);
    // Below hyper's smallest buffer, or above what a header count may need.
    let max_request_head = if (8192..=16 << 20).contains(&max_request_head) {
        max_request_head as usize
    } else {
        e.add(
            "server.max_request_head",
            "must be between 8KiB and 16MiB (a request line and its headers)",
        );
        64 << 10
    };
    let max_request_headers = match s.max_request_headers {
        None => 100,
        Some(n @ 8..=1000) => n as usize,
        Some(n) => {
            e.add(
                "server.max_request_headers",
                format!("{n} is not between 8 and 1000; leave it out for 100"),
            );
            100
        }
    };
    let max_connections = match s.max_connections {
        None => 10_000,
        Some(n @ 1..=1_000_000) => n as usize,
        Some(n) => {
            e.add(
                "server.max_connections",
                format!("{n} is not between 1 and 1000000; leave it out for 10000"),
            );
            10_000
        }
    };
    let idle_timeout = e.duration("server.idle_timeout", &s.idle_timeout, "3m");
    let min_body_rate = match s.min_body_rate.as_deref().map(str::trim) {
        None => 500,
        Some("0") => 0,
        Some(rate) => e.size("server.min_body_rate", rate).unwrap_or(500),
    };
    if idle_timeout < Duration::from_secs(1) {
        e.add(
            "server.idle_timeout",
            "must be at least \"1s\" (connections would close between requests)",
        );
    }
    let tls = s
        .tls
        .as_ref()
        .and_then(|t| match (&t.cert_file, &t.key_file) {
            (Some(c), Some(k)) => Some(TlsConfig {
                cert_file: PathBuf::from(c),
                key_file: PathBuf::from(k),
            }),
            _ => {
                e.add(
                    "server.tls",
                    "needs both cert_file and key_file (PEM files)",
                );
                None
            }
        });
    let server = ServerConfig {
        listen,
        public_url,
        auth_prefix,
        trusted_proxies,
        allowed_redirect_hosts,
        sign_in_page: s.sign_in_page.unwrap_or(false),
        sign_in_title: s.sign_in_title.clone(),
        sign_in_logo_url: e.url("server.sign_in_logo_url", &s.sign_in_logo_url),
        callback_path,
        forward_auth_uri_header,
        header_read_timeout,
        drain_timeout,
        shutdown_delay,
        secret_poll_interval,
        workers,
        trusted_forwarded_headers,
        max_request_head,
        max_request_headers,
        max_connections,
        idle_timeout,
        min_body_rate,
        tls,
    };

    // [[routes]]
    if raw.routes.is_empty() {
        e.add(
            "routes",
            "no [[routes]]: add at least one, e.g. [[routes]] path_prefix = \"/\" upstream = \"http://127.0.0.1:8080\"",
        );
    }
    let mut routes: Vec<RouteConfig> = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
        let path_prefix = path_key(
            &mut e,
            &key("path_prefix"),
            r.path_prefix.as_deref().unwrap_or("/"),
        );
        let upstream = match &r.upstream {
            None => {
                e.add(
                    &key("upstream"),
                    "is missing: set the app's URL, like \"http://127.0.0.1:8080\"",
                );
                None
            }
            Some(_) => e.url(&key("upstream"), &r.upstream),
        };
        if let Some(u) = &upstream {
            if u.query().is_some() || u.fragment().is_some() {
                e.add(&key("upstream"), "must not have a query or fragment");
            }
        }
        let host = r.host.as_ref().map(|h| h.trim().to_ascii_lowercase());
        if let Some(h) = &host {
            if let Err(why) = crate::policy::parse_authority(h.as_bytes()) {
                e.add(
                    &key("host"),
                    format!("{h:?} {why}: write a host name like \"app.example.com\""),
                );
            }
        }
        let case_sensitive = r.case_sensitive.unwrap_or(false);
        // `/app/` and `/app` are one prefix: prefixes match whole segments. Without regard
        // to case, `/App` and `/app` are one too.
        let same_prefix = |a: &str, b: &str| {
            let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
            a == b || (!case_sensitive && a.eq_ignore_ascii_case(b))
        };
        if let Some(other) = routes
            .iter()
            .find(|o| o.host == host && same_prefix(&o.path_prefix, &path_prefix))
        {
            let which = match &host {
                Some(h) => format!("host \"{h}\" and path_prefix \"{}\"", other.path_prefix),
                None => format!("path_prefix \"{}\" (and no host)", other.path_prefix),
            };
            e.add(
                &key("path_prefix"),
                format!("another route already has {which}; merge them"),
            );
        }
        let public = r.public.unwrap_or(false);
        if public && r.allowed_roles.is_some() {
            e.add(
                &key("allowed_roles"),
                "a public route admits everybody; remove allowed_roles or public",
            );
        }
        for (j, role) in r.allowed_roles.iter().flatten().enumerate() {
            if !raw
                .roles
                .iter()
                .flatten()
                .any(|(_, roles)| roles.contains(role))
            {
                e.add(
                    &format!("{}[{j}]", key("allowed_roles")),
                    format!("no group in [roles] has the role {role:?}: add it there (like `admins = [{role:?}]`) or fix the name"),
                );
            }
        }
        if public && r.allowed_groups.is_some() {
            // Rejected because it reads as protection that is not there.
            e.add(
                &key("allowed_groups"),
                "a public route admits everybody; remove allowed_groups or public",
            );
        }
        let max_body = r
            .max_body
            .as_deref()
            .and_then(|b| e.size(&key("max_body"), b));
        let public_paths = public_paths(&mut e, i, r, public, &server);
        let route_providers = route_providers(&mut e, &key("providers"), r, public, &raw);
        if let Some(u) = upstream {
            routes.push(RouteConfig {
                host,
                path_prefix,
                upstream: u,
                public,
                allowed_groups: r.allowed_groups.clone(),
                allowed_roles: r.allowed_roles.clone(),
                case_sensitive,
                max_body,
                public_paths,
                providers: route_providers,
            });
        }
    }
    let needs_sign_in = raw.routes.iter().any(|r| !r.public.unwrap_or(false));

    // [provider] or [[providers]]
    let providers = providers(&mut e, source, &raw, needs_sign_in);

    // [session]
    let ss = &raw.session;
    let cookie_name = ss.cookie_name.clone().unwrap_or_else(|| "_ssogate".into());
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        e.add(
            "session.cookie_name",
            format!("{cookie_name:?} may hold only letters, digits, '_', '-' and '.'"),
        );
    }
    let lower = cookie_name.to_ascii_lowercase();
    if (lower.starts_with("__host-") || lower.starts_with("__secure-"))
        && server
            .public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "http")
    {
        e.add(
            "session.cookie_name",
            format!("{cookie_name:?}: browsers accept __Host- and __Secure- cookies only over https, and server.public_url is http; drop the prefix or serve https"),
        );
    }
    let secret = e
        .secret(source, "session.secret", &ss.secret, &ss.secret_file)
        .and_then(|s| cookie_key(&mut e, "session.secret", s));
    if secret.is_none() && needs_sign_in && ss.secret.is_none() && ss.secret_file.is_none() {
        e.add(
            "session.secret",
            "is missing: set session.secret_file (or secret, or SSOGATE_SESSION__SECRET) to base64 of 32 random bytes, e.g. `openssl rand -base64 32`",
        );
    }
    let previous_secret = ss.previous_secret.as_ref().and_then(|p| {
        cookie_key(
            &mut e,
            "session.previous_secret",
            Secret(p.as_bytes().to_vec()),
        )
    });
    let store = match ss.store.as_deref().unwrap_or("cookie") {
        "cookie" => StoreKind::Cookie,
        "memory" => StoreKind::Memory,
        "redis" => StoreKind::Redis,
        other => {
            e.add(
                "session.store",
                format!("{other:?} is not a store: use \"cookie\", \"memory\" or \"redis\""),
            );
            StoreKind::Cookie
        }
    };
    if store == StoreKind::Redis {
        match &ss.redis_url {
            None => e.add("session.redis_url", "is required with store = \"redis\", like \"redis://127.0.0.1:6379/0\""),
            Some(u) if !(u.starts_with("redis://")
                || u.starts_with("rediss://")
                || u.starts_with("redis+cluster://")
                || u.starts_with("rediss+cluster://")
                || u.starts_with("redis+sentinel://")
                || u.starts_with("redis+unix://")
                || u.starts_with("unix://")) =>
            {
                e.add(
                    "session.redis_url",
                    format!("{u:?} must be redis://host:port/db, rediss://... (TLS) redis+cluster://host:port,host:port or redis+sentinel://host:port,host:port/service/db"),
                )
            }
            _ => {}
        }
        if !cfg!(feature = "redis-store") {
            e.add(
                "session.store",
                "this build has no Redis support: build with --features redis-store",
            );
        }
    }
    let session = SessionConfig {
        cookie_name,
        secret,
        secret_file: ss.secret_file.as_ref().map(PathBuf::from),
        previous_secret,
        store,
        redis_url: ss.redis_url.clone(),
        redis_key_prefix: ss
            .redis_key_prefix
            .clone()
            .unwrap_or_else(|| "ssogate:session:".into()),
        cache_ttl: e.duration("session.cache_ttl", &ss.cache_ttl, "5s"),
        memory_max_sessions: ss.memory_max_sessions.unwrap_or(100_000),
        max_lifetime: e.duration("session.max_lifetime", &ss.max_lifetime, "12h"),
        refresh_interval: e.duration("session.refresh_interval", &ss.refresh_interval, "5m"),
        refresh_grace: e.duration("session.refresh_grace", &ss.refresh_grace, "5m"),
        idle_timeout: None,
        cookie_domain: None,
    };
    let session = SessionConfig {
        idle_timeout: session_idle_timeout(&mut e, ss, session.max_lifetime),
        cookie_domain: cookie_domain(&mut e, ss, &server),
        ..session
    };

    // [upstream]
    let us = &raw.upstream;
    let upstream = UpstreamConfig {
        connect_timeout: e.duration("upstream.connect_timeout", &us.connect_timeout, "5s"),
        response_timeout: e.duration("upstream.response_timeout", &us.response_timeout, "60s"),
        pool_idle_timeout: e.duration("upstream.pool_idle_timeout", &us.pool_idle_timeout, "4s"),
        ca_file: us.ca_file.as_ref().map(PathBuf::from),
    };

    // [headers]
    let roles = crate::admin::roles::RoleMap::new(raw.roles.clone().unwrap_or_default());
    let h = &raw.headers;
    let preset = match h.preset.as_deref().unwrap_or("oauth2-proxy") {
        "oauth2-proxy" => HeaderPreset::OAuth2Proxy,
        "alb" => HeaderPreset::Alb,
        "none" => HeaderPreset::None,
        other => {
            e.add(
                "headers.preset",
                format!("{other:?} is not a preset: use \"oauth2-proxy\", \"alb\" or \"none\""),
            );
            HeaderPreset::OAuth2Proxy
        }
    };
    let mut claims = Vec::new();
    for (name, claim) in h.claims.iter().flatten() {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(hn) if !is_reserved_header(&hn) => claims.push((hn, claim.clone())),
            Ok(_) => e.add(
                &format!("headers.claims.{name}"),
                "is a header the gateway manages itself; pick another name",
            ),
            Err(_) => e.add(
                &format!("headers.claims.{name}"),
                "is not a valid header name",
            ),
        }
    }
    let headers = HeadersConfig {
        preset,
        pass_access_token: h.pass_access_token.unwrap_or(false),
        pass_id_token: h.pass_id_token.unwrap_or(false),
        signing_key_file: h.signing_key_file.as_ref().map(PathBuf::from),
        alb_signer: h.alb_signer.clone().unwrap_or_else(|| "ssogate".into()),
        claims,
        roles: roles.clone(),
    };

    // [logging]
    let l = &raw.logging;
    let format = match l.format.as_deref().unwrap_or("json") {
        "json" => LogFormat::Json,
        "pretty" | "text" => LogFormat::Pretty,
        other => {
            e.add(
                "logging.format",
                format!("{other:?} is not a format: use \"json\" or \"pretty\""),
            );
            LogFormat::Json
        }
    };
    let level = l.level.clone().unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        e.add(
            "logging.level",
            format!("{level:?} is not a level: use error, warn, info, debug or trace"),
        );
    }
    let logging = LoggingConfig {
        format,
        level,
        access_log: l.access_log.unwrap_or(true),
    };

    let metrics = raw.metrics.as_ref().and_then(|m| match &m.listen {
        Some(a) => e
            .socket_addr("metrics.listen", a)
            .map(|listen| MetricsConfig { listen }),
        None => {
            e.add(
                "metrics.listen",
                "is missing: set it (like \"127.0.0.1:9180\") or remove [metrics]",
            );
            None
        }
    });

    let access = access(&mut e, source, &raw.access);
    // The pool `[admin]` manages by default: `[provider]`'s, or the first Cognito pool in
    // `[[providers]]`.
    let pool_provider = raw.provider.as_ref().or_else(|| {
        raw.providers
            .iter()
            .flatten()
            .find(|p| p.user_pool_id.is_some())
    });
    let admin = match &raw.admin {
        Some(a) => admin(&mut e, a, pool_provider),
        // Without [admin], `ssogate users` still knows [provider]'s pool, quietly.
        None => {
            let mut quiet = Errors(Vec::new());
            admin(&mut quiet, &RawAdmin::default(), pool_provider).filter(|_| quiet.0.is_empty())
        }
    };

    if !e.0.is_empty() {
        return Err(ConfigErrors(e.0));
    }
    Ok(Config {
        roles,
        admin,
        server,
        providers,
        session,
        access,
        routes,
        upstream,
        headers,
        logging,
        metrics,
        raw: Arc::new(raw),
    })
}

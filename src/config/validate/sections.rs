//! The sections of the config validated apart from the main pass (`validate`): the session
//! cookie's idle timeout and domain, `[access]`, a route's public paths, `[admin]`, and the
//! header names the gateway keeps for itself.

use super::*;

/// `session.idle_timeout`: at least 2s (the last-seen stamp has whole seconds) and below
/// `max_lifetime` (else it never ends a session: rejected because it reads as a limit).
pub(super) fn session_idle_timeout(
    e: &mut Errors,
    ss: &RawSession,
    max_lifetime: Duration,
) -> Option<Duration> {
    let raw = ss.idle_timeout.as_ref()?;
    let errors = e.0.len();
    let idle = e.duration("session.idle_timeout", &Some(raw.clone()), "0s");
    if e.0.len() > errors {
        None
    } else if idle < Duration::from_secs(2) {
        e.add(
            "session.idle_timeout",
            "must be at least \"2s\", like \"30m\"; leave it out for no idle limit",
        );
        None
    } else if idle >= max_lifetime {
        e.add("session.idle_timeout", format!("{raw:?} is not shorter than session.max_lifetime, so it would never end a session; make it shorter or leave it out"));
        None
    } else {
        Some(idle)
    }
}

/// `session.cookie_domain`: a parent of `server.public_url`'s host (where the callback is,
/// so the sign-in's cookies must reach it), of at least two labels (a browser refuses
/// `Domain=com`, and one it took would go to every site under it), never an IP address.
pub(super) fn cookie_domain(
    e: &mut Errors,
    ss: &RawSession,
    server: &ServerConfig,
) -> Option<String> {
    let raw = ss.cookie_domain.as_ref()?;
    let domain = raw.trim().trim_start_matches('.').to_ascii_lowercase();
    let key = "session.cookie_domain";
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        e.add(key, format!("{raw:?} must be a domain of at least two labels, like \"example.com\" (browsers refuse a cookie for a whole top-level domain)"));
        return None;
    }
    if domain.parse::<std::net::IpAddr>().is_ok()
        || !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        e.add(
            key,
            format!("{raw:?} must be a domain name like \"example.com\""),
        );
        return None;
    }
    let lower = ss.cookie_name.as_deref().unwrap_or("").to_ascii_lowercase();
    if lower.starts_with("__host-") {
        // Browsers drop a __Host- cookie that names a Domain.
        e.add(
            key,
            "cannot be used with a __Host- session.cookie_name: use a __Secure- or plain name",
        );
        return None;
    }
    let host = server
        .public_url
        .as_ref()
        .and_then(|u| u.host_str())
        .map(|h| h.to_ascii_lowercase());
    match host {
        None => {
            e.add(key, "needs server.public_url (the one address the provider sends sign-ins back to), on a host below it");
            None
        }
        Some(h) if h == domain || h.ends_with(&format!(".{domain}")) => Some(domain),
        Some(h) => {
            e.add(key, format!("{raw:?} is not a parent of server.public_url's host {h:?}: the sign-in's cookies would not reach its callback"));
            None
        }
    }
}

/// `[access]`: groups, preflights, and the email rules (each entry checked, the file read).
pub(super) fn access(e: &mut Errors, source: &dyn ConfigSource, a: &RawAccess) -> AccessConfig {
    let mut allowed_email_domains = Vec::new();
    for (i, d) in a.allowed_email_domains.iter().flatten().enumerate() {
        match crate::identity::domain_problem(d) {
            Some(why) => e.add(
                &format!("access.allowed_email_domains[{i}]"),
                format!("{d:?} never matches: {why}"),
            ),
            None => allowed_email_domains.push(d.trim().to_ascii_lowercase()),
        }
    }
    let mut inline = Vec::new();
    for (i, m) in a.allowed_emails.iter().flatten().enumerate() {
        match crate::identity::email_problem(m) {
            Some(why) => e.add(
                &format!("access.allowed_emails[{i}]"),
                format!("{m:?} {why}"),
            ),
            None => inline.push(m.trim().to_ascii_lowercase()),
        }
    }
    let mut allowed_emails = inline.clone();
    let allowed_emails_file = a.allowed_emails_file.as_ref().map(PathBuf::from);
    if let Some(path) = &allowed_emails_file {
        match source.read_file(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                for (n, m) in crate::identity::parse_email_list(&text).iter().enumerate() {
                    match crate::identity::email_problem(m) {
                        Some(why) => e.add(
                            "access.allowed_emails_file",
                            format!("{}: entry {} {m:?} {why}", path.display(), n + 1),
                        ),
                        None => allowed_emails.push(m.to_ascii_lowercase()),
                    }
                }
            }
            Err(err) => e.add(
                "access.allowed_emails_file",
                format!("cannot read {}: {err}; put one address a line there, or list them in access.allowed_emails", path.display()),
            ),
        }
    }
    let has_rules = !allowed_email_domains.is_empty()
        || !allowed_emails.is_empty()
        || allowed_emails_file.is_some();
    AccessConfig {
        allowed_groups: a.allowed_groups.clone().unwrap_or_default(),
        skip_preflight: a.skip_preflight.unwrap_or(false),
        require_verified_email: a.require_verified_email.unwrap_or(has_rules),
        allowed_email_domains,
        allowed_emails,
        allowed_emails_inline: inline,
        allowed_emails_file,
    }
}

/// `routes[i].public_paths`, each parsed, and refused when it could match the gateway's own
/// endpoints: those are answered before any route, so such a pattern reads as making
/// sign-in or `/userinfo` public (or, later, would, if the order ever changed).
pub(super) fn public_paths(
    e: &mut Errors,
    i: usize,
    r: &RawRoute,
    public: bool,
    server: &ServerConfig,
) -> Vec<crate::policy::PublicPath> {
    let Some(list) = &r.public_paths else {
        return Vec::new();
    };
    if public {
        // Rejected because it reads as if the rest of the route were protected.
        e.add(
            &format!("routes[{i}].public_paths"),
            "the whole route is public (public = true); remove public_paths or public",
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (j, text) in list.iter().enumerate() {
        let key = format!("routes[{i}].public_paths[{j}]");
        match crate::policy::PublicPath::parse(text) {
            Err(why) => e.add(&key, format!("{text:?} {why}")),
            Ok(p) => {
                let ours = [server.auth_prefix.as_str(), server.callback_path.as_str()]
                    .into_iter()
                    .find(|prefix| p.may_match_under(prefix));
                match ours {
                    Some(prefix) => e.add(
                        &key,
                        format!("{text:?} can match the gateway's own endpoints under {prefix:?}; anchor it to the app's paths, like \"^/api/health$\" or \"^/static/\""),
                    ),
                    None => out.push(p),
                }
            }
        }
    }
    out
}

/// `[admin]`: region and pool default to `[provider]`'s; only an enabled section is kept.
pub(super) fn admin(e: &mut Errors, a: &RawAdmin, p: Option<&RawProvider>) -> Option<AdminConfig> {
    let pool = a
        .user_pool_id
        .clone()
        .or_else(|| p.and_then(|p| p.user_pool_id.clone()));
    let user_pool_id = match pool {
        Some(id) if is_cognito_pool_id(&id) => id,
        Some(id) => {
            e.add(
                "admin.user_pool_id",
                format!("{id:?} is not a Cognito user pool id: it looks like \"eu-central-1_AbC123xyz\""),
            );
            return None;
        }
        None => {
            e.add(
                "admin.user_pool_id",
                "is missing: set it, or provider.user_pool_id (the pool whose users are managed)",
            );
            return None;
        }
    };
    let region = a
        .region
        .clone()
        .or_else(|| p.and_then(|p| p.region.clone()))
        .unwrap_or_else(|| {
            user_pool_id
                .split('_')
                .next()
                .unwrap_or_default()
                .to_string()
        });
    if !is_aws_region(&region) {
        e.add(
            "admin.region",
            format!("{region:?} is not an AWS region like \"eu-central-1\""),
        );
    }
    let endpoint_url = e.url("admin.endpoint_url", &a.endpoint_url);
    let enabled = a.enabled.unwrap_or(false);
    if enabled && !cfg!(feature = "cognito-admin") {
        e.add(
            "admin.enabled",
            "this build has no Cognito user administration: build with --features cognito-admin, or set enabled = false",
        );
    }
    let allowed_groups = a.allowed_groups.clone().unwrap_or_default();
    if enabled && allowed_groups.is_empty() {
        // Refused because an empty list would let every signed-in person manage the pool.
        e.add(
            "admin.allowed_groups",
            "is required with enabled = true: name the groups whose members may manage users, like [\"admins\"]",
        );
    }
    Some(AdminConfig {
        enabled,
        allowed_groups,
        region,
        user_pool_id,
        endpoint_url,
    })
}

pub(super) fn is_reserved_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "cookie"
            | "set-cookie"
            | "connection"
            | "upgrade"
            | "transfer-encoding"
            | "content-length"
            | "te"
            | "trailer"
            | "keep-alive"
            | "proxy-connection"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
    )
}

//! The validated config turned back into the file's shape (`check-config --print`), with
//! defaults filled in and every secret masked.

use super::*;

const MASK: &str = "***";

fn dur(d: Duration) -> Option<String> {
    Some(humantime::format_duration(d).to_string())
}

/// The validated config turned back into the file's shape, with defaults and masked secrets.
pub(in crate::config) fn effective(c: &Config, raw: &RawConfig) -> RawConfig {
    let s = &c.server;
    let server = RawServer {
        listen: Some(s.listen.to_string()),
        public_url: s
            .public_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_string()),
        auth_prefix: Some(s.auth_prefix.clone()),
        trusted_proxies: Some(s.trusted_proxies.iter().map(|n| n.to_string()).collect()),
        allowed_redirect_hosts: Some(s.allowed_redirect_hosts.clone()),
        sign_in_page: Some(s.sign_in_page),
        sign_in_title: s.sign_in_title.clone(),
        sign_in_logo_url: s.sign_in_logo_url.as_ref().map(|u| u.to_string()),
        callback_path: Some(s.callback_path.clone()),
        forward_auth_uri_header: s.forward_auth_uri_header.clone(),
        header_read_timeout: dur(s.header_read_timeout),
        drain_timeout: dur(s.drain_timeout),
        shutdown_delay: dur(s.shutdown_delay),
        secret_poll_interval: dur(s.secret_poll_interval),
        workers: s.workers.map(|n| n as i64),
        trusted_forwarded_headers: Some(
            [
                (s.trusted_forwarded_headers.for_, "X-Forwarded-For"),
                (s.trusted_forwarded_headers.proto, "X-Forwarded-Proto"),
                (s.trusted_forwarded_headers.host, "X-Forwarded-Host"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| name.to_string())
            .collect(),
        ),
        max_request_head: Some(format!("{}B", s.max_request_head)),
        max_request_headers: Some(s.max_request_headers as i64),
        max_connections: Some(s.max_connections as i64),
        idle_timeout: dur(s.idle_timeout),
        min_body_rate: Some(format!("{}B", s.min_body_rate)),
        tls: s.tls.as_ref().map(|t| RawTls {
            cert_file: Some(t.cert_file.display().to_string()),
            key_file: Some(t.key_file.display().to_string()),
        }),
    };
    let written: Vec<&RawProvider> = raw
        .provider
        .iter()
        .chain(raw.providers.iter().flatten())
        .collect();
    let effective_provider = |p: &ProviderConfig| {
        let rp = written
            .iter()
            .copied()
            .find(|r| r.name.as_deref().unwrap_or("default") == p.name);
        let u = |x: &Option<Url>| x.as_ref().map(|u| u.to_string());
        RawProvider {
            name: raw.providers.is_some().then(|| p.name.clone()),
            label: Some(p.label.clone()),
            kind: Some(match p.kind {
                ProviderKind::Cognito => "cognito".into(),
                ProviderKind::Oidc => "oidc".into(),
            }),
            region: rp.and_then(|r| r.region.clone()),
            user_pool_id: rp.and_then(|r| r.user_pool_id.clone()),
            domain: u(&p.domain),
            issuer_url: Some(p.issuer.clone()),
            discovery_url: Some(p.discovery_url.to_string()),
            jwks_url: u(&p.jwks_url),
            authorization_endpoint: u(&p.authorization_endpoint),
            token_endpoint: u(&p.token_endpoint),
            userinfo_endpoint: u(&p.userinfo_endpoint),
            revocation_endpoint: u(&p.revocation_endpoint),
            end_session_endpoint: u(&p.end_session_endpoint),
            sign_out_redirect_url: u(&p.sign_out_redirect_url),
            client_id: Some(p.client_id.clone()),
            client_secret: rp
                .and_then(|r| r.client_secret.as_ref())
                .map(|_| MASK.into()),
            client_secret_file: rp.and_then(|r| r.client_secret_file.clone()),
            client_auth: Some(
                match p.client_auth {
                    ClientAuth::Basic => "client_secret_basic",
                    ClientAuth::Post => "client_secret_post",
                    ClientAuth::None => "none",
                }
                .into(),
            ),
            scopes: Some(p.scopes.clone()),
            groups_claim: Some(p.groups_claim.clone()),
            user_claim: Some(p.user_claim.clone()),
            identity_provider: p.identity_provider.clone(),
            authorize_params: (!p.authorize_params.is_empty())
                .then(|| p.authorize_params.iter().cloned().collect()),
            ca_file: p.ca_file.as_ref().map(|f| f.display().to_string()),
            timeout: dur(p.timeout),
        }
    };
    let (provider, providers) = if raw.providers.is_some() {
        (
            None,
            Some(c.providers.iter().map(effective_provider).collect()),
        )
    } else {
        (c.providers.first().map(effective_provider), None)
    };
    let ss = &c.session;
    let session = RawSession {
        cookie_name: Some(ss.cookie_name.clone()),
        secret: raw.session.secret.as_ref().map(|_| MASK.into()),
        secret_file: raw.session.secret_file.clone(),
        previous_secret: raw.session.previous_secret.as_ref().map(|_| MASK.into()),
        store: Some(
            match ss.store {
                StoreKind::Cookie => "cookie",
                StoreKind::Memory => "memory",
                StoreKind::Redis => "redis",
            }
            .into(),
        ),
        redis_url: ss.redis_url.as_ref().map(|u| mask_url_password(u)),
        redis_key_prefix: Some(ss.redis_key_prefix.clone()),
        cache_ttl: dur(ss.cache_ttl),
        memory_max_sessions: Some(ss.memory_max_sessions),
        max_lifetime: dur(ss.max_lifetime),
        refresh_interval: dur(ss.refresh_interval),
        refresh_grace: dur(ss.refresh_grace),
        idle_timeout: ss.idle_timeout.and_then(dur),
        cookie_domain: ss.cookie_domain.clone(),
    };
    RawConfig {
        server,
        provider,
        providers,
        session,
        access: RawAccess {
            allowed_groups: Some(c.access.allowed_groups.clone()),
            skip_preflight: Some(c.access.skip_preflight),
            require_verified_email: Some(c.access.require_verified_email),
            allowed_email_domains: (!c.access.allowed_email_domains.is_empty())
                .then(|| c.access.allowed_email_domains.clone()),
            allowed_emails: (!c.access.allowed_emails_inline.is_empty())
                .then(|| c.access.allowed_emails_inline.clone()),
            allowed_emails_file: raw.access.allowed_emails_file.clone(),
        },
        roles: raw.roles.clone(),
        admin: raw.admin.clone(),
        routes: c
            .routes
            .iter()
            .map(|r| RawRoute {
                path_prefix: Some(r.path_prefix.clone()),
                host: r.host.clone(),
                upstream: Some(r.upstream.to_string()),
                allowed_groups: r.allowed_groups.clone(),
                allowed_roles: r.allowed_roles.clone(),
                public: Some(r.public),
                case_sensitive: Some(r.case_sensitive),
                max_body: r.max_body.map(|b| format!("{b}B")),
                public_paths: (!r.public_paths.is_empty())
                    .then(|| r.public_paths.iter().map(|p| p.text.clone()).collect()),
                providers: r.providers.clone(),
            })
            .collect(),
        upstream: RawUpstream {
            connect_timeout: dur(c.upstream.connect_timeout),
            response_timeout: dur(c.upstream.response_timeout),
            pool_idle_timeout: dur(c.upstream.pool_idle_timeout),
            ca_file: c.upstream.ca_file.as_ref().map(|f| f.display().to_string()),
        },
        headers: RawHeaders {
            preset: Some(
                match c.headers.preset {
                    HeaderPreset::OAuth2Proxy => "oauth2-proxy",
                    HeaderPreset::Alb => "alb",
                    HeaderPreset::None => "none",
                }
                .into(),
            ),
            pass_access_token: Some(c.headers.pass_access_token),
            pass_id_token: Some(c.headers.pass_id_token),
            signing_key_file: c
                .headers
                .signing_key_file
                .as_ref()
                .map(|f| f.display().to_string()),
            alb_signer: Some(c.headers.alb_signer.clone()),
            claims: Some(
                c.headers
                    .claims
                    .iter()
                    .map(|(h, cl)| (h.to_string(), cl.clone()))
                    .collect(),
            ),
        },
        logging: RawLogging {
            format: Some(
                match c.logging.format {
                    LogFormat::Json => "json",
                    LogFormat::Pretty => "pretty",
                }
                .into(),
            ),
            level: Some(c.logging.level.clone()),
            access_log: Some(c.logging.access_log),
        },
        metrics: c.metrics.as_ref().map(|m| RawMetrics {
            listen: Some(m.listen.to_string()),
        }),
    }
}

fn mask_url_password(u: &str) -> String {
    match Url::parse(u) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some(MASK));
            url.to_string()
        }
        _ => u.to_string(),
    }
}

//! The config file as written: every field optional, unknown keys rejected.
//! Validation into typed values happens in `super::validate`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub provider: Option<RawProvider>,
    /// Several providers, each with a `name` (instead of `[provider]`).
    pub providers: Option<Vec<RawProvider>>,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub access: RawAccess,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub headers: RawHeaders,
    #[serde(default)]
    pub logging: RawLogging,
    pub metrics: Option<RawMetrics>,
    /// Group -> role names (`admins = ["admin", "editor"]`).
    pub roles: Option<BTreeMap<String, Vec<String>>>,
    pub admin: Option<RawAdmin>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub enabled: Option<bool>,
    pub allowed_groups: Option<Vec<String>>,
    pub region: Option<String>,
    pub user_pool_id: Option<String>,
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub auth_prefix: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub allowed_redirect_hosts: Option<Vec<String>>,
    pub sign_in_page: Option<bool>,
    pub sign_in_title: Option<String>,
    pub sign_in_logo_url: Option<String>,
    pub callback_path: Option<String>,
    pub forward_auth_uri_header: Option<String>,
    pub header_read_timeout: Option<String>,
    pub drain_timeout: Option<String>,
    pub shutdown_delay: Option<String>,
    pub secret_poll_interval: Option<String>,
    pub workers: Option<i64>,
    pub trusted_forwarded_headers: Option<Vec<String>>,
    pub max_request_head: Option<String>,
    pub max_request_headers: Option<i64>,
    pub max_connections: Option<i64>,
    pub idle_timeout: Option<String>,
    pub min_body_rate: Option<String>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// `[[providers]]` only: what routes and `?provider=` call it.
    pub name: Option<String>,
    /// The sign-in page's button for it.
    pub label: Option<String>,
    pub kind: Option<String>,
    pub region: Option<String>,
    pub user_pool_id: Option<String>,
    pub domain: Option<String>,
    pub issuer_url: Option<String>,
    pub discovery_url: Option<String>,
    pub jwks_url: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub sign_out_redirect_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub groups_claim: Option<String>,
    pub user_claim: Option<String>,
    pub identity_provider: Option<String>,
    pub authorize_params: Option<BTreeMap<String, String>>,
    pub ca_file: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub cookie_name: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    pub previous_secret: Option<String>,
    pub store: Option<String>,
    pub redis_url: Option<String>,
    pub redis_key_prefix: Option<String>,
    pub cache_ttl: Option<String>,
    pub memory_max_sessions: Option<u64>,
    pub max_lifetime: Option<String>,
    pub refresh_interval: Option<String>,
    pub refresh_grace: Option<String>,
    pub idle_timeout: Option<String>,
    pub cookie_domain: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub allowed_groups: Option<Vec<String>>,
    pub skip_preflight: Option<bool>,
    pub require_verified_email: Option<bool>,
    pub allowed_email_domains: Option<Vec<String>>,
    pub allowed_emails: Option<Vec<String>>,
    pub allowed_emails_file: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path_prefix: Option<String>,
    pub host: Option<String>,
    pub upstream: Option<String>,
    pub allowed_groups: Option<Vec<String>>,
    pub allowed_roles: Option<Vec<String>>,
    pub public: Option<bool>,
    pub case_sensitive: Option<bool>,
    pub max_body: Option<String>,
    pub public_paths: Option<Vec<String>>,
    pub providers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    pub preset: Option<String>,
    pub pass_access_token: Option<bool>,
    pub pass_id_token: Option<bool>,
    pub signing_key_file: Option<String>,
    pub alb_signer: Option<String>,
    pub claims: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub format: Option<String>,
    pub level: Option<String>,
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
}

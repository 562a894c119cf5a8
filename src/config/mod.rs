//! Configuration: the TOML file, `SSOGATE_SECTION__KEY` environment overrides and `*_file`
//! secrets, validated into typed structs. Every problem is collected and reported at once,
//! each naming its key and what to do. Never does network I/O.

mod lines;
mod raw;
mod restart;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use http::HeaderName;
use ipnet::IpNet;
use url::Url;

pub use raw::RawConfig;
pub use validate::parse_cookie_secret;

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// `[provider]` (one, named `default`) or `[[providers]]`, in the order written. Not
    /// empty when any route needs sign-in.
    pub providers: Vec<ProviderConfig>,
    pub session: SessionConfig,
    pub access: AccessConfig,
    pub routes: Vec<RouteConfig>,
    pub upstream: UpstreamConfig,
    pub headers: HeadersConfig,
    pub logging: LoggingConfig,
    pub metrics: Option<MetricsConfig>,
    /// `[roles]`: the role names each group carries (`X-Forwarded-Roles`, `allowed_roles`).
    pub roles: crate::admin::roles::RoleMap,
    /// `[admin]`, when written: Cognito user administration (CLI; the page when `enabled`).
    pub admin: Option<AdminConfig>,
    /// The merged file + environment, kept to print the effective config.
    raw: std::sync::Arc<RawConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Default `0.0.0.0:4180`.
    pub listen: SocketAddr,
    /// Base of the redirect URI; when absent it comes from Host (+ trusted X-Forwarded-*).
    pub public_url: Option<Url>,
    /// Default `/oauth2`: where the gateway's own endpoints live.
    pub auth_prefix: String,
    /// Peers whose X-Forwarded-* headers are believed. Default: none.
    pub trusted_proxies: Vec<IpNet>,
    /// Hosts a post-sign-in/out redirect may name besides our own (`.example.com` = subdomains).
    pub allowed_redirect_hosts: Vec<String>,
    /// Show a page with a "Sign in" button instead of redirecting straight away.
    pub sign_in_page: bool,
    /// The sign-in page's heading. Default "Sign in".
    pub sign_in_title: Option<String>,
    /// An image shown above the sign-in page's buttons.
    pub sign_in_logo_url: Option<Url>,
    /// Default `{auth_prefix}/callback`.
    pub callback_path: String,
    /// The header (lower case) in which a trusted proxy names the request it asks
    /// `/auth` about (`x-original-uri` for nginx, `x-forwarded-uri` for Traefik and Caddy).
    /// `None`: no header is believed, and `[access]` decides.
    pub forward_auth_uri_header: Option<String>,
    /// Time a client has to send request headers, also the idle keep-alive limit. Default 10s.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish after SIGTERM. Default 30s.
    pub drain_timeout: Duration,
    /// After SIGTERM, how long to go on serving (new connections too) while `/ready` says
    /// 503, before the drain: a load balancer or Kubernetes stops sending first. Default 0s.
    pub shutdown_delay: Duration,
    /// How often `*_file` secrets are re-read (Kubernetes swaps mounted secrets by symlink;
    /// file events miss that). Default 10s; "0s" turns it off.
    pub secret_poll_interval: Duration,
    /// Worker threads of `ssogate serve`, each with its own listener and upstream pool.
    /// `None`: one per CPU core the process may use.
    pub workers: Option<usize>,
    /// Which X-Forwarded-* headers of a trusted proxy are believed (mod_auth_openidc's
    /// `OIDCXForwardedHeaders`). Default For and Proto: Host only when listed, since it
    /// chooses routes and the proxy in front must overwrite the client's.
    pub trusted_forwarded_headers: ForwardedTrust,
    /// Largest request head (request line and headers) a client may send: 431 above.
    /// Default 64 KiB, enough for a session split over several cookies.
    pub max_request_head: usize,
    /// Most header lines in a request: 431 above. Default 100.
    pub max_request_headers: usize,
    /// Client connections open at once; further ones wait to be accepted (and are counted
    /// in `ssogate_connections_waited_total`). Default 10000.
    pub max_connections: usize,
    /// An HTTP/2 connection (or one hyper took over) on which nothing moved this long is
    /// closed; HTTP/1.1 keep-alive ones close after `header_read_timeout`. Default 3m.
    pub idle_timeout: Duration,
    /// Bytes a second a request body must average after its first `header_read_timeout`, or it is cut off
    /// with 408 (Apache's mod_reqtimeout `MinRate`): a body trickled a byte at a time would
    /// otherwise hold a connection to the app for ever. Default 500; 0: no minimum.
    pub min_body_rate: u64,
    pub tls: Option<TlsConfig>,
}

/// The X-Forwarded-* headers a trusted proxy's word is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedTrust {
    /// The client's address chain (X-Forwarded-For).
    pub for_: bool,
    /// The scheme the client used (X-Forwarded-Proto).
    pub proto: bool,
    /// The host the client asked for (X-Forwarded-Host): it then chooses the route.
    pub host: bool,
}

impl ForwardedTrust {
    pub const NONE: ForwardedTrust = ForwardedTrust {
        for_: false,
        proto: false,
        host: false,
    };
    /// Without `server.trusted_forwarded_headers`: For and Proto.
    pub const DEFAULT: ForwardedTrust = ForwardedTrust {
        for_: true,
        proto: true,
        host: false,
    };
    pub const ALL: ForwardedTrust = ForwardedTrust {
        for_: true,
        proto: true,
        host: true,
    };
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Cognito,
    Oidc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
    /// A public client (no secret): PKCE alone.
    None,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// `default` for `[provider]`; `[[providers]]`'s `name`.
    pub name: String,
    /// The sign-in page's button.
    pub label: String,
    pub kind: ProviderKind,
    /// The `iss` every token must carry, exactly.
    pub issuer: String,
    pub discovery_url: Url,
    pub jwks_url: Option<Url>,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Option<Url>,
    pub userinfo_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
    /// Cognito hosted-UI domain, for `/logout`.
    pub domain: Option<Url>,
    /// Where the provider sends the browser after sign-out; default `{public_url}{auth_prefix}/signed_out`.
    pub sign_out_redirect_url: Option<Url>,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Where the client secret was read from, to re-read it.
    pub client_secret_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub user_claim: String,
    pub identity_provider: Option<String>,
    /// More parameters for the authorization request (`lang`, `prompt`, `login_hint`...).
    pub authorize_params: Vec<(String, String)>,
    pub ca_file: Option<PathBuf>,
    /// Limit for each call to the provider. Default 10s.
    pub timeout: Duration,
}

impl ProviderConfig {
    /// Discovery is skipped when both endpoints the sign-in needs are given.
    pub fn needs_discovery(&self) -> bool {
        self.authorization_endpoint.is_none() || self.token_endpoint.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Cookie,
    Memory,
    Redis,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    /// AES-256-GCM key material (>= 32 bytes). Absent only when no route needs sign-in.
    pub secret: Option<Secret>,
    /// Where the secret was read from, to re-read it.
    pub secret_file: Option<PathBuf>,
    pub previous_secret: Option<Secret>,
    pub store: StoreKind,
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    /// How long a replica trusts its local copy of a server-side session. Default 5s.
    pub cache_ttl: Duration,
    pub memory_max_sessions: u64,
    /// Sign-in again after this, whatever the tokens say. Default 12h.
    pub max_lifetime: Duration,
    /// Re-check with the provider (refresh grant) this often. Default 5m.
    pub refresh_interval: Duration,
    /// How long a session keeps working past a due refresh while the provider is unreachable.
    pub refresh_grace: Duration,
    /// A session without a request for this long is ended (`max_lifetime` still holds).
    /// Default none: only `max_lifetime` ends sessions.
    pub idle_timeout: Option<Duration>,
    /// `Domain=` of the session and sign-in cookies (lower case, no leading dot): one sign-in
    /// for every host below it. Default none: cookies for the one host that set them.
    pub cookie_domain: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    pub allowed_groups: Vec<String>,
    /// CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, which
    /// browsers send without cookies) pass protected routes unauthenticated. Default false.
    pub skip_preflight: bool,
    /// Only people whose email the provider says is verified get in; others get a page that
    /// says why. Default false: an unverified email is then merely never sent as identity.
    /// For pools where an unverified address must not even reach an app's own sign-up.
    /// Default true when an email rule below is set: a rule on an address nobody verified
    /// admits whoever typed it.
    pub require_verified_email: bool,
    /// Emails whose domain (after the last `@`, exact, any case) is one of these may sign in.
    /// Default none (no domain rule).
    pub allowed_email_domains: Vec<String>,
    /// These addresses may sign in (any case): the inline list and the lines of
    /// `allowed_emails_file`, as read at start. Default none.
    pub allowed_emails: Vec<String>,
    /// The inline addresses alone, to rebuild the list when the file changes.
    pub allowed_emails_inline: Vec<String>,
    /// One address a line, re-read like the `*_file` secrets (`server.secret_poll_interval`).
    pub allowed_emails_file: Option<PathBuf>,
}

impl AccessConfig {
    /// Whether an email rule (domains, addresses or a file) is set.
    pub fn has_email_rules(&self) -> bool {
        !self.allowed_email_domains.is_empty()
            || !self.allowed_emails.is_empty()
            || self.allowed_emails_file.is_some()
    }

    /// The email rules as configured (the file as read at start).
    pub fn email_rules(&self) -> crate::identity::EmailRules {
        crate::identity::EmailRules::new(&self.allowed_email_domains, &self.allowed_emails)
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub host: Option<String>,
    pub path_prefix: String,
    pub upstream: Url,
    pub public: bool,
    /// `None`: inherit `[access] allowed_groups`.
    pub allowed_groups: Option<Vec<String>>,
    /// Roles from `[roles]`, any of which admits (with `allowed_groups`: either admits).
    pub allowed_roles: Option<Vec<String>>,
    /// Match `path_prefix` with regard to ASCII case. Default false: many apps route
    /// without regard to case, so `/ADMIN` must meet `/admin`'s rule.
    pub case_sensitive: bool,
    /// Largest request body in bytes: 413 above. `None` (the default): no limit.
    pub max_body: Option<u64>,
    /// `METHOD=regex` or `regex` on the normalised path: no sign-in for these (oauth2-proxy's
    /// `--skip-auth-route`). Default none. Identity headers are still stripped.
    pub public_paths: Vec<crate::policy::PublicPath>,
    /// Names of the providers whose sessions this route accepts; `None`: all of them.
    pub providers: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderPreset {
    OAuth2Proxy,
    Alb,
    None,
}

#[derive(Debug, Clone)]
pub struct HeadersConfig {
    pub preset: HeaderPreset,
    pub pass_access_token: bool,
    pub pass_id_token: bool,
    pub signing_key_file: Option<PathBuf>,
    /// The `signer` in the `alb` assertion's header (an ALB writes its ARN). Default `ssogate`.
    pub alb_signer: String,
    /// Extra headers from claims: header -> claim name.
    pub claims: Vec<(HeaderName, String)>,
    /// `[roles]`, for `X-Forwarded-Roles` and the `alb` assertion's `roles` claim.
    pub roles: crate::admin::roles::RoleMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
}

/// `[admin]`: the Cognito pool `ssogate users` and the admin page manage.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Serve the admin page at `{auth_prefix}/admin`. Default false.
    pub enabled: bool,
    /// Who may use the page (any-of); required when `enabled`.
    pub allowed_groups: Vec<String>,
    /// Default `provider.region`, else the pool id's prefix.
    pub region: String,
    /// Default `provider.user_pool_id`.
    pub user_pool_id: String,
    /// The Cognito API's address, for emulators (moto); default AWS's.
    pub endpoint_url: Option<Url>,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

/// Secret bytes that never print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl Secret {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One problem with the configuration: the key it concerns and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
    /// The line of the config file the key is on (or, when it is missing, its table's).
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found, reported together.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "the configuration has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    fn one(key: &str, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            key: key.to_string(),
            message: message.into(),
            line: None,
        }])
    }
}

/// Where configuration comes from besides the file: environment variables and files named
/// by `*_file` keys. Passed in so tests never touch the process environment.
pub trait ConfigSource {
    /// `(name, value)` of every environment variable that may override a key.
    fn env_vars(&self) -> Vec<(String, String)>;
    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>>;
}

/// The real process environment and file system.
pub struct ProcessSource;

impl ConfigSource for ProcessSource {
    fn env_vars(&self) -> Vec<(String, String)> {
        std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect()
    }
    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Cookies may go without `Secure` only to plain http on loopback (local development).
pub fn is_plain_http_loopback(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| &h[1..]).unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

const ENV_PREFIX: &str = "SSOGATE_";

/// The variable that sets `key` (`section.key`, indexes ignored): `SSOGATE_SECTION__KEY`.
fn env_name(key: &str) -> String {
    let name = key
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join("__");
    format!("{ENV_PREFIX}{name}")
}

/// Whether `SSOGATE_SECTION__KEY` is set for `key`.
fn set_by_env(env: &[(String, String)], key: &str) -> bool {
    let name = env_name(key);
    env.iter().any(|(k, _)| *k == name)
}

/// Environment overrides: `SSOGATE_SERVER__LISTEN=...` sets `server.listen`.
struct EnvOverrides(Vec<(String, String)>);

/// The list settings, and what separates items when an environment variable writes one
/// without brackets (`SSOGATE_ACCESS__ALLOWED_GROUPS=admins,staff`,
/// `SSOGATE_PROVIDER__SCOPES="openid email"`).
const LIST_KEYS: [([&str; 2], &[char]); 4] = [
    (["access", "allowed_groups"], &[',']),
    (["server", "trusted_proxies"], &[',', ' ']),
    (["server", "allowed_redirect_hosts"], &[',', ' ']),
    (["provider", "scopes"], &[',', ' ']),
];

impl Provider for EnvOverrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable(s)").interpolater(|_: &Profile, k: &[&str]| {
            let keys: Vec<String> = k.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("{ENV_PREFIX}{}", keys.join("__"))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (name, value) in &self.0 {
            // Only SECTION__KEY names are settings; SSOGATE_CONFIG (the --config flag) is not.
            let Some(rest) = name.strip_prefix(ENV_PREFIX).filter(|r| r.contains("__")) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if path.iter().any(|p| p.is_empty()) {
                continue;
            }
            // Only lists, tables and quoted text are parsed. Other scalars stay text, and
            // `extract_lossy` turns them into booleans or numbers where the schema wants
            // those: parsed eagerly, an all-digit client id or secret became a number, was
            // rejected, and the error message printed it.
            let looks_structured = value.trim_start().starts_with(['[', '{', '"']);
            let list_key = LIST_KEYS.iter().find(|(k, _)| path == *k);
            let value: Value = if let (false, Some((_, separators))) = (looks_structured, list_key)
            {
                // A list written as oauth2-proxy's variables take it: `admins,staff`. One
                // with no items stays text and is refused: an empty variable (a Helm value
                // that rendered empty) must not turn `allowed_groups` into "anybody".
                let items: Vec<Value> = value
                    .split(*separators)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(Value::from)
                    .collect();
                if items.is_empty() {
                    Value::from(value.clone())
                } else {
                    Value::from(items)
                }
            } else if looks_structured {
                // `parse` is infallible for figment's Value: anything not TOML-like stays a string.
                value.parse().unwrap_or_else(|_| Value::from(value.clone()))
            } else {
                Value::from(value.clone())
            };
            insert_path(&mut dict, &path, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn insert_path(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

impl Config {
    /// Loads the file (which must exist), applies environment overrides, reads secret files
    /// and validates everything.
    pub fn load(path: &Path, source: &dyn ConfigSource) -> Result<Config, ConfigErrors> {
        if !path.is_file() {
            return Err(ConfigErrors::one(
                "",
                format!(
                    "config file {} does not exist or is not a file: pass the path of an existing \
                     TOML file with --config (see config/ssogate.example.toml)",
                    path.display()
                ),
            ));
        }
        let env = source.env_vars();
        let figment = Figment::from(Toml::file_exact(path)).merge(EnvOverrides(env.clone()));
        Self::from_figment(figment, source).map_err(|mut errors| {
            if let Ok(text) = std::fs::read_to_string(path) {
                let lines = lines::Lines::parse(&text);
                for e in &mut errors.0 {
                    // A key the environment sets is not the file's to answer for.
                    if !e.key.is_empty() && !set_by_env(&env, &e.key) {
                        e.line = lines.line_of(&e.key);
                    }
                }
            }
            // Where the value came from: the operator looks for the variable, not the key.
            for e in &mut errors.0 {
                if !e.key.is_empty() && set_by_env(&env, &e.key) {
                    e.key = format!("{} (from {})", e.key, env_name(&e.key));
                }
            }
            errors
        })
    }

    /// Validates a TOML document given as text (tests, `demo`).
    pub fn from_toml_str(toml: &str, source: &dyn ConfigSource) -> Result<Config, ConfigErrors> {
        let figment = Figment::from(Toml::string(toml)).merge(EnvOverrides(source.env_vars()));
        Self::from_figment(figment, source)
    }

    fn from_figment(figment: Figment, source: &dyn ConfigSource) -> Result<Config, ConfigErrors> {
        let to_errors = |e: figment::Error| e.into_iter().map(figment_error).collect::<Vec<_>>();
        match figment.extract_lossy::<RawConfig>() {
            Ok(raw) => validate::validate(raw, source),
            // Unknown keys stop serde at the first one: name them all, drop them, and validate
            // the rest too, so one run reports every problem.
            Err(e)
                if e.clone()
                    .into_iter()
                    .any(|e| matches!(e.kind, figment::error::Kind::UnknownField(..))) =>
            {
                let value: Value = figment
                    .extract_lossy()
                    .map_err(|e| ConfigErrors(to_errors(e)))?;
                let mut unknown = Vec::new();
                let cleaned = unknown_keys::strip(value, &mut unknown);
                let mut errors: Vec<ConfigError> = unknown
                    .into_iter()
                    .map(|(key, near)| ConfigError {
                        message: match near {
                            Some(near) => format!("unknown field: did you mean `{near}`? (see config/ssogate.example.toml)"),
                            None => "unknown field: remove it or check its spelling against config/ssogate.example.toml".into(),
                        },
                        key,
                        line: None,
                    })
                    .collect();
                let rest = Figment::from(figment::providers::Serialized::defaults(cleaned))
                    .extract_lossy::<RawConfig>();
                match rest {
                    Ok(raw) => {
                        if let Err(more) = validate::validate(raw, source) {
                            errors.extend(more.0);
                        }
                    }
                    Err(e) => errors.extend(to_errors(e)),
                }
                Err(ConfigErrors(errors))
            }
            Err(e) => Err(ConfigErrors(to_errors(e))),
        }
    }

    /// The effective configuration (defaults filled in, secrets masked) as TOML.
    pub fn effective_toml(&self) -> String {
        let raw = validate::effective(self, &self.raw);
        toml::to_string_pretty(&raw).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    /// What is valid but will not work as the operator expects: printed by `check-config`,
    /// logged by `serve` at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(url) = &self.server.public_url {
            if url.scheme() == "http"
                && !is_plain_http_loopback(url.as_str())
                && self.needs_sign_in()
            {
                let cognito = self
                    .providers
                    .iter()
                    .any(|p| p.kind == ProviderKind::Cognito);
                warnings.push(format!(
                    "server.public_url: {url} is plain http on a host that is not loopback: the \
                     gateway's cookies are Secure there, so browsers will not send them back over \
                     http and sign-in cannot complete{}; write the https:// address browsers use \
                     (TLS here with [server.tls], or at a load balancer in front)",
                    if cognito {
                        " (and Cognito accepts http:// callback URLs only for localhost)"
                    } else {
                        ""
                    }
                ));
            }
        }
        if let Some(domain) = &self.session.cookie_domain {
            let dotted = format!(".{domain}");
            if !self.server.allowed_redirect_hosts.contains(&dotted) {
                warnings.push(format!(
                    "session.cookie_domain = {domain:?}: a sign-in started at another host below \
                     it comes back there only if server.allowed_redirect_hosts lists \
                     \"{dotted}\"; without it, users land on server.public_url's front page"
                ));
            }
        }
        if self.access.has_email_rules() && !self.access.require_verified_email {
            warnings.push(
                "access.require_verified_email = false with email rules: an address the provider \
                 has not verified is held to allowed_email_domains / allowed_emails as given, so \
                 whoever types a listed address (where the provider lets users set it) gets in; \
                 leave require_verified_email out (it is on with email rules)"
                    .to_string(),
            );
        }
        for net in &self.server.trusted_proxies {
            if net.prefix_len() == 0 {
                warnings.push(format!(
                    "server.trusted_proxies: {net} is every address: any client's X-Forwarded-* \
                     (its address, scheme, host) is believed; list the proxies in front instead"
                ));
            }
        }
        if let Some(public) = self.server.public_url.as_ref().and_then(|u| u.host_str()) {
            for (i, r) in self.routes.iter().enumerate() {
                let host = r.host.as_deref().map(|h| h.trim_end_matches('.'));
                if let Some(host) = host.filter(|h| !r.public && !h.eq_ignore_ascii_case(public)) {
                    warnings.push(format!(
                        "routes[{i}].host: {host} is not server.public_url's host ({public}): \
                         sign-in there cannot complete, since the callback goes to {public} and \
                         cookies belong to one host; leave public_url unset (each host's callback \
                         URL registered at the provider) or serve this route on {public}"
                    ));
                }
            }
        }
        if self.session.redis_url.is_some() && self.session.store != StoreKind::Redis {
            warnings.push(
                "session.redis_url is set but session.store is not \"redis\": it is not used"
                    .into(),
            );
        }
        if self.server.forward_auth_uri_header.is_some() && self.server.trusted_proxies.is_empty() {
            warnings.push(
                "server.forward_auth_uri_header: believed only from server.trusted_proxies, and \
                 there are none: /auth answers by [access] alone; list the proxy that asks"
                    .into(),
            );
        }
        warnings
    }

    /// The first provider: `[provider]`, or the first of `[[providers]]`.
    pub fn provider(&self) -> Option<&ProviderConfig> {
        self.providers.first()
    }

    /// The provider called `name`.
    pub fn provider_named(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Whether any route needs a signed-in user.
    pub fn needs_sign_in(&self) -> bool {
        self.routes.iter().any(|r| !r.public)
    }
}

/// A figment (deserialisation) error as a `ConfigError`: the key as the file spells it
/// (`routes[0].upstream`, so it gets its line), and what to write instead.
fn figment_error(e: figment::Error) -> ConfigError {
    // Figment names keys with its profile ("default.server.listn"); users never see profiles.
    let mut key = String::new();
    for part in e.path.iter().skip_while(|p| *p == "default") {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    let mut message = match &e.kind {
        figment::error::Kind::Message(m) => m.replace("\"default.", "\""),
        kind => kind.to_string(),
    };
    match &e.kind {
        figment::error::Kind::UnknownField(_, _) => message
            .push_str(" (remove it or check its spelling against config/ssogate.example.toml)"),
        figment::error::Kind::InvalidType(_, expected) if expected.contains("sequence") => message
            .push_str(": write a list, like [\"a\", \"b\"] (also in an environment variable)"),
        figment::error::Kind::InvalidType(_, expected) if expected.contains("string") => {
            message.push_str(": write it in double quotes")
        }
        _ => {}
    }
    if key.is_empty() {
        message = e.to_string().replace("\"default.", "\"");
    }
    ConfigError {
        key,
        message,
        line: None,
    }
}

/// Finding every unknown key, using the raw structs' own field names as the schema.
mod unknown_keys;

#[cfg(test)]
mod tests;

/// Files from disk and no environment overrides, whatever the test process has: for unit
/// tests that load a config.
#[cfg(test)]
pub(crate) struct NoEnv;

#[cfg(test)]
impl ConfigSource for NoEnv {
    fn env_vars(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

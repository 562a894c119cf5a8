//! `ssogate check-config --probe`: live checks of what a valid config points at, each one
//! line with what to do when it fails. The provider's metadata and keys (through the same
//! loader `serve` uses), the client's id and secret (a code exchange with a made-up code:
//! `invalid_grant` means the provider took the client and refused only the code,
//! `invalid_client` that it did not take the client), the Redis store, each upstream's
//! address. Never prints a secret or a token.

use std::time::Duration;

use crate::config::{ClientAuth, Config, StoreKind};
use crate::oidc::{Provider, ProviderError};

/// One check and how it went.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    /// `Ok(detail)` or `Err(what went wrong and what to do)`.
    pub result: Result<String, String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(detail) => write!(f, "ok    {}: {detail}", self.what),
            Err(problem) => write!(f, "FAIL  {}: {problem}", self.what),
        }
    }
}

/// Runs every check that applies to `config`, in order.
pub async fn probe(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    for p in &config.providers {
        checks.extend(provider(config, p).await);
    }
    if config.session.store == StoreKind::Redis {
        checks.push(redis(config).await);
    }
    checks.extend(upstreams(config).await);
    checks
}

async fn provider(config: &Config, p: &crate::config::ProviderConfig) -> Vec<Check> {
    let provider = match Provider::new(p.clone()) {
        Ok(provider) => provider,
        Err(e) => {
            return vec![Check {
                what: "provider".into(),
                result: Err(format!("{e}: check provider.ca_file")),
            }]
        }
    };
    let what = "provider metadata and keys";
    let loaded = match provider.load().await {
        Ok(()) => {
            let from = if p.needs_discovery() {
                p.discovery_url.to_string()
            } else {
                "the configured endpoints".into()
            };
            Check {
                what: what.into(),
                result: Ok(format!("discovery from {from}, keys fetched")),
            }
        }
        Err(e) => {
            let step = if provider.metadata().is_some() {
                "the JWKS (signing keys)"
            } else if p.needs_discovery() {
                "the discovery document"
            } else {
                "the configured endpoints"
            };
            let fix = match &e {
                ProviderError::Unreachable { .. } | ProviderError::Timeout { .. } => {
                    "check the address (provider.issuer_url, user_pool_id and region, discovery_url, jwks_url), DNS, and the way out (firewall, proxy)"
                }
                _ => "check provider.issuer_url (it must be the provider's exact issuer) or set discovery_url / jwks_url",
            };
            return vec![Check {
                what: what.into(),
                result: Err(format!("{step} failed: {e}; {fix}")),
            }];
        }
    };
    vec![loaded, client(config, p, &provider).await]
}

/// A code exchange with a code nobody issued: the provider authenticates the client
/// before it looks at the code.
async fn client(config: &Config, p: &crate::config::ProviderConfig, provider: &Provider) -> Check {
    let what = "client id and secret".to_string();
    if p.client_auth == ClientAuth::None {
        return Check {
            what,
            result: Ok("a public client (no secret): nothing to check".into()),
        };
    }
    let redirect_uri = format!(
        "{}{}",
        config
            .server
            .public_url
            .as_ref()
            .map_or("http://localhost".to_string(), |u| u
                .as_str()
                .trim_end_matches('/')
                .to_string()),
        config.server.callback_path
    );
    let answer = provider
        .exchange_code(
            "ssogate-probe-not-a-code",
            "ssogate-probe-verifier-0123456789-0123456789-0123456789",
            &redirect_uri,
        )
        .await;
    let result = match answer {
        Err(e) if e.oauth_error() == Some("invalid_grant") => Ok(format!(
            "the token endpoint accepted client {:?} (and refused only the made-up code)",
            p.client_id
        )),
        Err(e) if e.oauth_error() == Some("invalid_client") => Err(format!(
            "the token endpoint refused client {:?} (invalid_client): provider.client_id or the client secret is wrong, or provider.client_auth is not what the client is registered with ({})",
            p.client_id,
            match p.client_auth {
                ClientAuth::Post => "client_secret_post now",
                _ => "client_secret_basic now",
            }
        )),
        Err(e) if e.oauth_error() == Some("unauthorized_client") => Err(format!(
            "{e}: allow the authorization code grant for this client at the provider"
        )),
        Err(e) => Err(format!(
            "{e}: the answer does not tell whether the client was accepted; check provider.token_endpoint and the provider's logs"
        )),
        Ok(_) => Err("the token endpoint answered a made-up code with tokens: this is not a provider to trust".into()),
    };
    Check { what, result }
}

async fn redis(config: &Config) -> Check {
    let what = "session store (Redis)".to_string();
    let result = match crate::session::Sessions::new(&config.session, &["probe".to_string()]) {
        Err(e) => Err(format!("{e}")),
        Ok(sessions) => match sessions.ping().await {
            Ok(()) => Ok("answers PING".into()),
            Err(e) => Err(format!(
                "{e}: check session.redis_url (host, port, password, rediss:// for TLS) and that Redis is running"
            )),
        },
    };
    Check { what, result }
}

async fn upstreams(config: &Config) -> Vec<Check> {
    let mut seen = Vec::new();
    let mut checks = Vec::new();
    for (i, route) in config.routes.iter().enumerate() {
        let u = &route.upstream;
        let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default()) else {
            continue;
        };
        let addr = format!("{host}:{port}");
        if seen.contains(&addr) {
            continue;
        }
        seen.push(addr.clone());
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let after = config.upstream.connect_timeout;
        let connect = tokio::time::timeout(after, tokio::net::TcpStream::connect((host, port)));
        let result = match connect.await {
            Ok(Ok(_)) => Ok("accepts connections".into()),
            Ok(Err(e)) => Err(format!(
                "{e}: is the app running and listening there? (routes[{i}].upstream)"
            )),
            Err(_) => Err(format!(
                "no connection within {} (upstream.connect_timeout): a firewall, or the wrong address in routes[{i}].upstream",
                humantime::format_duration(after)
            )),
        };
        checks.push(Check {
            what: format!("upstream {addr}"),
            result,
        });
    }
    checks
}

/// How long all checks together may take before the command gives up.
pub const PROBE_LIMIT: Duration = Duration::from_secs(60);

//! `[provider]` and `[[providers]]`: each provider's table validated (its keys named
//! `provider.x` or `providers[i].x`), the names routes give them, and the authorization
//! request's extra parameters.

use super::*;

/// `[provider]` (one provider named `default`) or `[[providers]]` (each with a `name`), in
/// the order written: the first is the one used where only one can be (the admin pool's
/// default, sign-out without a session).
pub(super) fn providers(
    e: &mut Errors,
    source: &dyn ConfigSource,
    raw: &RawConfig,
    needs_sign_in: bool,
) -> Vec<ProviderConfig> {
    match (&raw.provider, &raw.providers) {
        (Some(_), Some(_)) => {
            e.add(
                "providers",
                "both [provider] and [[providers]] are set: keep one (a single [provider] is one provider named \"default\"; move it into [[providers]] with a name)",
            );
            Vec::new()
        }
        (Some(p), None) => {
            if let Some(name) = &p.name {
                e.add(
                    "provider.name",
                    format!("[provider] is the one provider, named \"default\"; remove name = {name:?}, or use [[providers]] to name several"),
                );
            }
            let label = p.label.clone().unwrap_or_else(|| "Sign in".into());
            provider(e, source, p, "provider", "default".into(), label)
                .into_iter()
                .collect()
        }
        (None, Some(list)) if list.is_empty() && needs_sign_in => {
            e.add(
                "providers",
                "is empty but a route needs sign-in: add a [[providers]] table with a name",
            );
            Vec::new()
        }
        (None, Some(list)) if list.len() > 64 => {
            e.add(
                "providers",
                format!("{} providers: at most 64 can be configured", list.len()),
            );
            Vec::new()
        }
        (None, Some(list)) => {
            let mut seen: Vec<&str> = Vec::new();
            let mut out = Vec::new();
            for (i, p) in list.iter().enumerate() {
                let at = format!("providers[{i}]");
                let name = match p.name.as_deref() {
                    Some(n) if is_provider_name(n) => n,
                    Some(n) => {
                        e.add(
                            &format!("{at}.name"),
                            format!("{n:?}: a name holds 1-32 of a-z, 0-9, '-' and '_' (it appears in URLs, logs and route rules)"),
                        );
                        continue;
                    }
                    None => {
                        e.add(
                            &format!("{at}.name"),
                            "is missing: each [[providers]] table needs a name, like \"staff\" or \"partners\"",
                        );
                        continue;
                    }
                };
                if seen.contains(&name) {
                    e.add(
                        &format!("{at}.name"),
                        format!("{name:?} is the name of an earlier provider: names must differ"),
                    );
                    continue;
                }
                seen.push(name);
                let label = p
                    .label
                    .clone()
                    .unwrap_or_else(|| format!("Sign in with {name}"));
                if let Some(c) = provider(e, source, p, &at, name.to_string(), label) {
                    if let Some(twin) = out.iter().find(|o: &&ProviderConfig| {
                        o.issuer == c.issuer && o.client_id == c.client_id
                    }) {
                        e.add(
                            &format!("{at}.client_id"),
                            format!("provider {:?} has the same issuer and client_id: one app client is one provider; remove one", twin.name),
                        );
                    }
                    out.push(c);
                }
            }
            out
        }
        (None, None) => {
            if needs_sign_in {
                e.add(
                    "provider",
                    "a route needs sign-in (it is not `public = true`) but there is no [provider] section: add one (see config/ssogate.example.toml)",
                );
            }
            Vec::new()
        }
    }
}

fn is_provider_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `routes[i].providers`: names of `[[providers]]` tables; `None` accepts them all.
pub(super) fn route_providers(
    e: &mut Errors,
    key: &str,
    r: &RawRoute,
    public: bool,
    raw: &RawConfig,
) -> Option<Vec<String>> {
    let names = r.providers.as_ref()?;
    if public {
        e.add(
            key,
            "a public route admits everybody; remove providers or public",
        );
        return None;
    }
    if names.is_empty() {
        e.add(
            key,
            "is empty: nobody could sign in here; list provider names, or remove the key to accept them all",
        );
        return None;
    }
    let known: Vec<&str> = match (&raw.provider, &raw.providers) {
        (Some(_), _) => vec!["default"],
        (None, Some(list)) => list.iter().filter_map(|p| p.name.as_deref()).collect(),
        (None, None) => Vec::new(),
    };
    for (j, name) in names.iter().enumerate() {
        if !known.contains(&name.as_str()) {
            e.add(
                &format!("{key}[{j}]"),
                format!("there is no provider named {name:?}: the providers are {known:?}"),
            );
        }
    }
    Some(names.clone())
}

/// One provider's table: `[provider]` (`at` = "provider") or `[[providers]]`'s `at` =
/// "providers[i]", with the name and label decided by `providers`.
fn provider(
    e: &mut Errors,
    source: &dyn ConfigSource,
    p: &RawProvider,
    at: &str,
    name: String,
    label: String,
) -> Option<ProviderConfig> {
    let k = |key: &str| format!("{at}.{key}");
    let kind = match p.kind.as_deref().unwrap_or("cognito") {
        "cognito" => ProviderKind::Cognito,
        "oidc" => ProviderKind::Oidc,
        other => {
            e.add(
                &k("kind"),
                format!("{other:?} is not a provider kind: use \"cognito\" or \"oidc\""),
            );
            return None;
        }
    };
    let issuer_override = e.url(&k("issuer_url"), &p.issuer_url);
    let issuer = match kind {
        ProviderKind::Cognito => {
            let pool = match &p.user_pool_id {
                Some(id) if is_cognito_pool_id(id) => Some(id.clone()),
                Some(id) => {
                    e.add(
                        &k("user_pool_id"),
                        format!("{id:?} is not a Cognito user pool id: it looks like \"eu-central-1_AbC123xyz\" (Cognito console, User pool overview)"),
                    );
                    None
                }
                None => {
                    if issuer_override.is_none() {
                        e.add(
                            &k("user_pool_id"),
                            "is missing: set it (like \"eu-central-1_AbC123xyz\") or set provider.issuer_url",
                        );
                    }
                    None
                }
            };
            let pool_region = pool
                .as_ref()
                .and_then(|id| id.split_once('_'))
                .map(|(r, _)| r.to_string());
            let region = match (&p.region, &pool_region) {
                (Some(r), Some(pr)) if r != pr => {
                    e.add(
                        &k("region"),
                        format!("{r:?} does not match the user pool id's region {pr:?}; remove provider.region (the pool id says it)"),
                    );
                    None
                }
                (Some(r), _) if !is_aws_region(r) => {
                    e.add(
                        &k("region"),
                        format!("{r:?} is not an AWS region like \"eu-central-1\""),
                    );
                    None
                }
                (Some(r), _) => Some(r.clone()),
                (None, pr) => pr.clone(),
            };
            match (&issuer_override, region, pool) {
                (Some(u), _, _) => Some(u.as_str().trim_end_matches('/').to_string()),
                (None, Some(region), Some(pool)) => {
                    Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
                }
                _ => None,
            }
        }
        ProviderKind::Oidc => match &issuer_override {
            Some(u) => Some(u.as_str().trim_end_matches('/').to_string()),
            None => {
                if p.issuer_url.is_none() {
                    e.add(&k("issuer_url"), "is required with kind = \"oidc\": set the provider's issuer, like \"https://accounts.example.com\"");
                }
                None
            }
        },
    };
    let discovery_url = match (&p.discovery_url, &issuer) {
        (Some(_), _) => e.url(&k("discovery_url"), &p.discovery_url),
        (None, Some(iss)) => Url::parse(&format!("{iss}/.well-known/openid-configuration")).ok(),
        (None, None) => None,
    };
    let client_id = match &p.client_id {
        Some(c) if !c.is_empty() => Some(c.clone()),
        _ => {
            e.add(
                &k("client_id"),
                if at == "provider" {
                    "is missing: set it in [provider] or as SSOGATE_PROVIDER__CLIENT_ID (Cognito console, App clients)"
                } else {
                    "is missing: set it (Cognito console, App clients; the provider's client registration)"
                },
            );
            None
        }
    };
    let client_secret = e.secret(
        source,
        &k("client_secret"),
        &p.client_secret,
        &p.client_secret_file,
    );
    let client_auth = match (p.client_auth.as_deref(), &client_secret) {
        (Some("client_secret_basic"), Some(_)) | (None, Some(_)) => ClientAuth::Basic,
        (Some("client_secret_post"), Some(_)) => ClientAuth::Post,
        (Some("none"), _) | (None, None) => ClientAuth::None,
        (Some("client_secret_basic" | "client_secret_post"), None)
            if p.client_secret_file.is_none() =>
        {
            e.add(
                &k("client_secret"),
                "is missing for the chosen client_auth: set client_secret_file or client_secret",
            );
            ClientAuth::None
        }
        (Some("client_secret_basic" | "client_secret_post"), None) => ClientAuth::None,
        (Some(other), _) => {
            e.add(
                &k("client_auth"),
                format!("{other:?} is not supported: use \"client_secret_basic\", \"client_secret_post\" or \"none\""),
            );
            ClientAuth::None
        }
    };
    let scopes = p
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        e.add(&k("scopes"), "must include \"openid\"");
    }
    if kind == ProviderKind::Cognito && scopes.iter().any(|s| s == "groups") {
        // Cognito answers invalid_scope; groups arrive in cognito:groups anyway.
        e.add(
            &k("scopes"),
            "Cognito has no \"groups\" scope (sign-in would fail with invalid_scope); remove it: groups arrive in cognito:groups",
        );
    }
    let (groups_default, user_default) = match kind {
        ProviderKind::Cognito => ("cognito:groups", "cognito:username"),
        ProviderKind::Oidc => ("groups", "sub"),
    };
    let domain = e.url(&k("domain"), &p.domain);
    let sign_out_redirect_url = e.url(&k("sign_out_redirect_url"), &p.sign_out_redirect_url);
    let jwks_url = e.url(&k("jwks_url"), &p.jwks_url);
    if p.authorization_endpoint.is_some() && p.token_endpoint.is_some() && jwks_url.is_none() {
        // Without discovery nothing else says where the signing keys are.
        e.add(
            &k("jwks_url"),
            "is required when authorization_endpoint and token_endpoint are both set (no discovery is done then)",
        );
    }
    Some(ProviderConfig {
        name,
        label,
        kind,
        issuer: issuer?,
        discovery_url: discovery_url?,
        jwks_url,
        authorization_endpoint: e.url(&k("authorization_endpoint"), &p.authorization_endpoint),
        token_endpoint: e.url(&k("token_endpoint"), &p.token_endpoint),
        userinfo_endpoint: e.url(&k("userinfo_endpoint"), &p.userinfo_endpoint),
        revocation_endpoint: e.url(&k("revocation_endpoint"), &p.revocation_endpoint),
        end_session_endpoint: e.url(&k("end_session_endpoint"), &p.end_session_endpoint),
        domain,
        sign_out_redirect_url,
        client_id: client_id?,
        client_secret,
        client_secret_file: p.client_secret_file.as_ref().map(PathBuf::from),
        client_auth,
        scopes,
        groups_claim: p
            .groups_claim
            .clone()
            .unwrap_or_else(|| groups_default.into()),
        user_claim: p.user_claim.clone().unwrap_or_else(|| user_default.into()),
        identity_provider: p.identity_provider.clone(),
        authorize_params: authorize_params(e, p.authorize_params.as_ref()),
        ca_file: p.ca_file.as_ref().map(PathBuf::from),
        timeout: e.duration(&k("timeout"), &p.timeout, "10s"),
    })
}

/// `provider.authorize_params`: added to every authorization request, except the parameters
/// the gateway sets itself for the flow's safety.
fn authorize_params(
    e: &mut Errors,
    params: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    // `response_mode` would move the answer off the callback's GET; a request object
    // (`request`, `request_uri`) overrides state, nonce and redirect_uri where supported.
    const OURS: [&str; 12] = [
        "response_type",
        "response_mode",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "request",
        "request_uri",
        "identity_provider",
    ];
    let mut kept = Vec::new();
    for (name, value) in params.into_iter().flatten() {
        if OURS.contains(&name.as_str()) {
            e.add(
                &format!("provider.authorize_params.{name}"),
                if name == "identity_provider" {
                    "set provider.identity_provider instead".to_string()
                } else if name == "scope" {
                    "set provider.scopes instead".to_string()
                } else if matches!(name.as_str(), "response_mode" | "request" | "request_uri") {
                    "would override what the gateway sets for the flow's safety (state, nonce, \
                     redirect_uri, an answer by GET to the callback); remove it"
                        .to_string()
                } else {
                    "the gateway sets it on every sign-in (for the flow's safety); remove it"
                        .to_string()
                },
            );
        } else {
            kept.push((name.clone(), value.clone()));
        }
    }
    kept
}

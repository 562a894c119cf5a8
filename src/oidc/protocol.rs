//! The OpenID Connect protocol, on the `openidconnect` crate: the discovery document's
//! types, the authorization request, the code exchange, refresh, revocation, the end-session
//! URL, and the library's ID-token verification (OIDC Core 3.1.3.7) as a second gate after
//! our own JOSE rules (`jwt`). The library's requests go out on the gateway's own hyper client
//! (`client::HttpClient`). What the library does not do stays in `Provider`: fetching and
//! caching the JWKS, whose current set is handed to the library for each verification.
//!
//! Never holds state: a client is put together per call from the provider's metadata (calls
//! here are sign-ins, refreshes and sign-outs, never the signed-in hot path).

use std::borrow::Cow;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGrantType, CoreIdToken, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType,
    CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EndSessionUrl, EndpointNotSet, EndpointSet, IdTokenVerifier, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl, RefreshToken, RequestTokenError,
    RevocationUrl, Scope, TokenResponse as _, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{Auth, HttpClient};
use super::jwt::{AlgSet, TokenError, LEEWAY_SECS};
use super::library_key::{LibraryKey, LibraryKeySet};
use super::{ProviderError, TokenResponse};
use crate::config::{ClientAuth, ProviderConfig};
use crate::telemetry::Clip;

/// The two endpoints Cognito and most providers publish beyond OIDC Discovery 1.0's list.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct MoreMetadata {
    pub revocation_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
}

impl AdditionalProviderMetadata for MoreMetadata {}

/// A discovery document as the library reads it.
pub type Discovery = ProviderMetadata<
    MoreMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Reads a discovery document; what is missing or malformed is named by its JSON path.
pub fn discovery(body: &[u8]) -> Result<Discovery, ProviderError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| ProviderError::Invalid {
        what: "discovery document",
        reason: format!("at {}: {}", e.path(), Clip(&e.inner().to_string())),
    })
}

/// The signing algorithms a discovery document advertises, by name.
pub fn advertised_algs(d: &Discovery) -> Vec<String> {
    d.id_token_signing_alg_values_supported()
        .iter()
        .filter_map(|a| serde_json::to_value(a).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// A client for the token endpoint (and the authorization endpoint).
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
>;

/// The provider as the library sees it for one call.
pub struct Call<'a> {
    pub config: &'a ProviderConfig,
    pub http: &'a HttpClient,
    pub authorization_endpoint: &'a Url,
    pub token_endpoint: &'a Url,
    pub secret: Option<&'a str>,
}

impl Call<'_> {
    fn client(&self) -> Result<Client, ProviderError> {
        let issuer =
            IssuerUrl::new(self.config.issuer.clone()).map_err(|e| invalid_url("issuer", e))?;
        let mut client = CoreClient::new(
            ClientId::new(self.config.client_id.clone()),
            issuer,
            CoreJsonWebKeySet::new(Vec::new()),
        )
        .set_auth_uri(AuthUrl::from_url(self.authorization_endpoint.clone()))
        .set_token_uri(TokenUrl::from_url(self.token_endpoint.clone()));
        // `none` (a public client) sends its id in the body and no secret.
        match (self.config.client_auth, self.secret) {
            (ClientAuth::Basic, Some(secret)) => {
                client = client
                    .set_client_secret(ClientSecret::new(secret.to_string()))
                    .set_auth_type(AuthType::BasicAuth);
            }
            (ClientAuth::Post, Some(secret)) => {
                client = client
                    .set_client_secret(ClientSecret::new(secret.to_string()))
                    .set_auth_type(AuthType::RequestBody);
            }
            _ => client = client.set_auth_type(AuthType::RequestBody),
        }
        Ok(client)
    }

    /// The authorization request: code flow, state, nonce, PKCE S256, the configured scopes
    /// (`openid` first, once), `identity_provider` and `authorize_params`.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_verifier: &str,
    ) -> Result<Url, ProviderError> {
        let client = self.client()?.set_redirect_uri(redirect_url(redirect_uri)?);
        let (state, nonce) = (state.to_string(), nonce.to_string());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            code_verifier.to_string(),
        ));
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scopes(
                self.config
                    .scopes
                    .iter()
                    .filter(|s| s.as_str() != "openid")
                    .map(|s| Scope::new(s.clone())),
            )
            .set_pkce_challenge(challenge);
        if let Some(idp) = &self.config.identity_provider {
            request = request.add_extra_param("identity_provider", idp);
        }
        for (name, value) in &self.config.authorize_params {
            request = request.add_extra_param(name, value);
        }
        Ok(request.url().0)
    }

    /// Exchanges an authorization code, with its PKCE verifier, for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ProviderError> {
        let client = self.client()?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(code_verifier.to_string()))
            .set_redirect_uri(Cow::Owned(redirect_url(redirect_uri)?))
            .request_async(self.http)
            .await;
        tokens(answer)
    }

    /// A refresh grant. Cognito answers without a new refresh token unless rotation is on.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, ProviderError> {
        let client = self.client()?;
        let token = RefreshToken::new(refresh_token.to_string());
        let answer = client
            .exchange_refresh_token(&token)
            .request_async(self.http)
            .await;
        tokens(answer)
    }

    /// Revokes a refresh token (RFC 7009) at `endpoint`.
    pub async fn revoke(&self, endpoint: &Url, refresh_token: &str) -> Result<(), ProviderError> {
        if endpoint.scheme() == "http" && is_loopback(endpoint) {
            return self.revoke_on_loopback(endpoint, refresh_token).await;
        }
        let client = self
            .client()?
            .set_revocation_url(RevocationUrl::from_url(endpoint.clone()));
        let token = CoreRevocableToken::from(RefreshToken::new(refresh_token.to_string()));
        let request = client
            .revoke_token(token)
            .map_err(|e| ProviderError::Invalid {
                what: "revocation endpoint",
                reason: e.to_string(),
            })?;
        request
            .request_async(self.http)
            .await
            .map_err(|e| request_error(e, "revocation answer"))
    }
}

impl Call<'_> {
    /// The library sends revocation over TLS only; a provider on this host's loopback (the
    /// demo's, the tests') gets the same request from our client.
    async fn revoke_on_loopback(&self, endpoint: &Url, token: &str) -> Result<(), ProviderError> {
        let id = self.config.client_id.as_str();
        let auth = match (self.config.client_auth, self.secret) {
            (ClientAuth::Basic, Some(secret)) => Auth::Basic(id, secret),
            (ClientAuth::Post, Some(secret)) => Auth::Post(id, secret),
            _ => Auth::Public(id),
        };
        let params = [("token", token), ("token_type_hint", "refresh_token")];
        self.http.post_form(endpoint, &params, auth).await?;
        Ok(())
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the end-session endpoint with
/// `client_id`, `post_logout_redirect_uri` and, when the session kept one the library can
/// read, `id_token_hint`.
pub fn end_session_url(
    endpoint: &Url,
    client_id: &str,
    return_to: &str,
    id_token: Option<&str>,
) -> Option<Url> {
    let mut request = LogoutRequest::from(EndSessionUrl::from_url(endpoint.clone()))
        .set_client_id(ClientId::new(client_id.to_string()))
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(return_to.to_string()).ok()?);
    if let Some(token) = id_token.and_then(|t| t.parse::<CoreIdToken>().ok()) {
        request = request.set_id_token_hint(&token);
    }
    Some(request.http_get_url())
}

/// What the library's ID-token verification is given besides the token.
pub struct IdTokenRules<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub keys: &'a LibraryKeySet,
    pub algs: AlgSet,
    /// The nonce sent with the authorization request (at sign-in); None at a refresh, where
    /// our own rules compare it with the session's.
    pub nonce: Option<&'a str>,
    pub now: u64,
}

/// The library's ID-token verification (3.1.3.7: signature with a key of the provider's
/// JWKS and an allowed algorithm, `iss`, `aud`, `exp`, `iat` present, the nonce), run after our
/// own rules have passed: a token either set of rules refuses is refused. Our rules decide
/// `azp` (steps 4-5) and clock skew, so other audiences are left to them and the library's
/// clock is set back by the same leeway.
pub fn verify_id_token(token: &str, rules: &IdTokenRules<'_>) -> Result<(), TokenError> {
    let refused = |why: String| TokenError::Library(Clip(&why).to_string());
    let parsed: CoreIdToken = token
        .parse()
        .map_err(|e: serde_json::Error| refused(e.to_string()))?;
    let issuer = IssuerUrl::new(rules.issuer.to_string()).map_err(|e| refused(e.to_string()))?;
    let algs = library_algs(rules.algs);
    let clock = chrono::DateTime::from_timestamp(rules.now.saturating_sub(LEEWAY_SECS) as i64, 0)
        .unwrap_or_default();
    let verifier = IdTokenVerifier::<LibraryKey>::new_public_client(
        ClientId::new(rules.client_id.to_string()),
        issuer,
        rules.keys.clone(),
    )
    .set_allowed_algs(algs)
    .set_other_audience_verifier_fn(|_| true)
    .set_time_fn(move || clock);
    let checked = match rules.nonce {
        Some(nonce) => parsed.claims(&verifier, &Nonce::new(nonce.to_string())),
        None => parsed.claims(&verifier, |_: Option<&Nonce>| Ok(())),
    };
    checked.map(|_| ()).map_err(|e| refused(e.to_string()))
}

/// Our allow-list in the library's terms.
fn library_algs(algs: AlgSet) -> Vec<CoreJwsSigningAlgorithm> {
    algs.iter()
        .filter_map(|a| serde_json::from_value(serde_json::Value::from(a.name())).ok())
        .collect()
}

/// The token endpoint's answer in our terms. One the library cannot read (an ID token that is
/// not a JWT it understands, a missing `token_type`) is read as plain JSON so our rules can
/// say what is wrong with its ID token; it is refused all the same (`unreadable`).
fn tokens<RE>(
    answer: Result<CoreTokenResponse, RequestTokenError<ProviderError, RE>>,
) -> Result<TokenResponse, ProviderError>
where
    RE: openidconnect::ErrorResponse + 'static,
{
    match answer {
        Ok(t) => Ok(TokenResponse {
            access_token: Some(t.access_token().secret().clone()),
            id_token: t.id_token().map(|t| t.to_string()),
            refresh_token: t.refresh_token().map(|r| r.secret().clone()),
            expires_in: t.expires_in().map(|d| d.as_secs()),
            unreadable: None,
        }),
        Err(RequestTokenError::Parse(e, body)) => {
            let why = format!("at {}: {}", e.path(), Clip(&e.inner().to_string()));
            let mut raw: TokenResponse =
                serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid {
                    what: "token response",
                    reason: e.to_string(),
                })?;
            if raw.id_token.is_none() {
                return Err(ProviderError::Invalid {
                    what: "token response",
                    reason: why,
                });
            }
            raw.unreadable = Some(why);
            Ok(raw)
        }
        Err(e) => Err(request_error(e, "token response")),
    }
}

fn request_error<RE>(e: RequestTokenError<ProviderError, RE>, what: &'static str) -> ProviderError
where
    RE: openidconnect::ErrorResponse + 'static,
{
    match e {
        RequestTokenError::Request(e) => e,
        RequestTokenError::Parse(e, _) => ProviderError::Invalid {
            what,
            reason: format!("at {}: {}", e.path(), Clip(&e.inner().to_string())),
        },
        // Only a 2xx reaches the library (`client::HttpClient`), so an error answer is odd.
        RequestTokenError::ServerResponse(r) => ProviderError::Invalid {
            what,
            reason: Clip(&r.to_string()).to_string(),
        },
        RequestTokenError::Other(why) => ProviderError::Invalid {
            what,
            reason: Clip(&why).to_string(),
        },
    }
}

fn redirect_url(uri: &str) -> Result<RedirectUrl, ProviderError> {
    RedirectUrl::new(uri.to_string()).map_err(|e| invalid_url("redirect URI", e))
}

fn invalid_url(what: &'static str, e: url::ParseError) -> ProviderError {
    ProviderError::Invalid {
        what,
        reason: e.to_string(),
    }
}

//! The demo provider's token endpoint (`/oauth2/token`: the code and refresh grants, with
//! client authentication), `/oauth2/userInfo` and `/oauth2/revoke`, as Cognito answers them.
//! A part of `provider` in a file of its own; it uses the parent's private state.

use super::*;

impl DemoProvider {
    pub(super) fn token(
        &self,
        headers: &HeaderMap,
        form: &Params,
    ) -> Result<Response<Full<Bytes>>, OAuthError> {
        if let Some(name) = &form.duplicate {
            return Err(OAuthError::bad(
                "invalid_request",
                format!("{name} appears more than once"),
            ));
        }
        self.authenticate_client(headers, form)?;
        match form.get("grant_type") {
            Some("authorization_code") => self.code_grant(form),
            Some("refresh_token") => self.refresh_grant(form),
            Some(other) => Err(OAuthError::bad(
                "unsupported_grant_type",
                format!("{other} is not supported"),
            )),
            None => Err(OAuthError::bad("invalid_request", "grant_type is missing")),
        }
    }

    /// `client_secret_basic` or `client_secret_post` (exactly one of them).
    fn authenticate_client(&self, headers: &HeaderMap, form: &Params) -> Result<(), OAuthError> {
        let client = &self.inner.client;
        let basic = match headers.get(AUTHORIZATION) {
            Some(value) => Some(parse_basic(value).ok_or_else(|| {
                OAuthError::invalid_client(
                    "the Authorization header is not valid Basic credentials",
                )
            })?),
            None => None,
        };
        let (id, secret) = match (basic, form.get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::bad(
                    "invalid_request",
                    "use one client authentication method, not Basic and client_secret together",
                ))
            }
            (Some((id, secret)), None) => {
                if form.get("client_id").is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_client(
                        "client_id in the form differs from the Basic credentials",
                    ));
                }
                (id, secret)
            }
            (None, Some(secret)) => (
                form.get("client_id").unwrap_or("").to_string(),
                secret.to_string(),
            ),
            (None, None) => {
                return Err(OAuthError::invalid_client(
                    "this app client has a secret: authenticate with client_secret_basic or client_secret_post",
                ))
            }
        };
        if id != client.client_id {
            return Err(OAuthError::invalid_client("unknown client"));
        }
        if !constant_time_eq(secret.as_bytes(), client.client_secret.as_bytes()) {
            return Err(OAuthError::invalid_client("wrong client secret"));
        }
        Ok(())
    }

    fn code_grant(&self, form: &Params) -> Result<Response<Full<Bytes>>, OAuthError> {
        let code = form
            .get("code")
            .ok_or_else(|| OAuthError::bad("invalid_request", "code is missing"))?;
        // Removed on first use, whatever happens next: a code never works twice.
        let grant = self
            .grants()
            .codes
            .remove(code)
            .ok_or_else(|| OAuthError::invalid_grant("the code is unknown or already used"))?;
        if grant.expires <= Instant::now() {
            return Err(OAuthError::invalid_grant("the code has expired"));
        }
        if form.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        let verifier = form.get("code_verifier").unwrap_or("");
        if !constant_time_eq(
            pkce_s256(verifier).as_bytes(),
            grant.code_challenge.as_bytes(),
        ) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let user = find_user(grant.username)
            .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
        let refresh_token = random_token(48);
        let origin_jti = uuid_like();
        let tokens = self.issue(
            user,
            &grant.scope,
            grant.auth_time,
            grant.nonce.as_deref(),
            &origin_jti,
        )?;
        {
            let mut grants = self.grants();
            grants.refresh_tokens.insert(
                refresh_token.clone(),
                RefreshGrant {
                    username: user.username,
                    scope: grant.scope.clone(),
                    auth_time: grant.auth_time,
                    origin_jti,
                    revoked: false,
                },
            );
            remember_access(&mut grants, &tokens, user.username, &refresh_token);
        }
        Ok(token_response(&tokens, Some(&refresh_token)))
    }

    /// New ID and access tokens, groups re-read; the same refresh token stays valid and
    /// none is returned (Cognito without refresh-token rotation).
    fn refresh_grant(&self, form: &Params) -> Result<Response<Full<Bytes>>, OAuthError> {
        let token = form
            .get("refresh_token")
            .ok_or_else(|| OAuthError::bad("invalid_request", "refresh_token is missing"))?;
        let (username, scope, auth_time, origin_jti) = {
            let grants = self.grants();
            match grants.refresh_tokens.get(token) {
                Some(g) if !g.revoked => (
                    g.username,
                    g.scope.clone(),
                    g.auth_time,
                    g.origin_jti.clone(),
                ),
                _ => return Err(OAuthError::invalid_grant("Invalid Refresh Token")),
            }
        };
        let user =
            find_user(username).ok_or_else(|| OAuthError::invalid_grant("User does not exist."))?;
        let tokens = self.issue(user, &scope, auth_time, None, &origin_jti)?;
        remember_access(&mut self.grants(), &tokens, user.username, token);
        Ok(token_response(&tokens, None))
    }

    /// Signs an ID token and an access token with Cognito's claims.
    fn issue(
        &self,
        user: &DemoUser,
        scope: &str,
        auth_time: u64,
        nonce: Option<&str>,
        origin_jti: &str,
    ) -> Result<IssuedTokens, OAuthError> {
        let iat = unix_now();
        let exp = iat + TOKEN_TTL_SECS;
        let iss = &self.inner.issuer;
        let client_id = &self.inner.client.client_id;
        let sign = |claims: &Value| {
            self.inner
                .signer
                .sign(claims)
                .map_err(|e| OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e))
        };

        let mut access = json!({
            "sub": user.sub,
            "iss": iss,
            "version": 2,
            "client_id": client_id,
            "origin_jti": origin_jti,
            "token_use": "access",
            "scope": scope,
            "auth_time": auth_time,
            "exp": exp,
            "iat": iat,
            "jti": uuid_like(),
            "username": user.username,
        });
        if !user.groups.is_empty() {
            access["cognito:groups"] = json!(user.groups);
        }
        let access_token = sign(&access)?;

        let mut id = json!({
            "sub": user.sub,
            "aud": client_id,
            "iss": iss,
            "token_use": "id",
            "auth_time": auth_time,
            "iat": iat,
            "exp": exp,
            "jti": uuid_like(),
            "origin_jti": origin_jti,
            "at_hash": at_hash(&access_token),
            "cognito:username": user.username,
            "email": user.email,
            "email_verified": true,
        });
        // Cognito leaves the claim out (not `[]`) for a user in no group.
        if !user.groups.is_empty() {
            id["cognito:groups"] = json!(user.groups);
        }
        if let Some(nonce) = nonce {
            id["nonce"] = json!(nonce);
        }
        let id_token = sign(&id)?;
        Ok(IssuedTokens {
            id_token,
            access_token,
            exp,
        })
    }

    // ---- userInfo, revoke, logout -------------------------------------------------------

    pub(super) fn userinfo(
        &self,
        headers: &HeaderMap,
    ) -> Result<Response<Full<Bytes>>, OAuthError> {
        let invalid = |d: &str| OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", d);
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| invalid("send the access token as Authorization: Bearer"))?;
        let username = {
            let grants = self.grants();
            let grant = grants
                .access_tokens
                .get(token)
                .ok_or_else(|| invalid("Invalid access token"))?;
            let revoked = grants
                .refresh_tokens
                .get(&grant.refresh_token)
                .is_none_or(|r| r.revoked);
            if grant.exp <= unix_now() || revoked {
                return Err(invalid("Access token has expired or was revoked"));
            }
            grant.username
        };
        let user = find_user(username).ok_or_else(|| invalid("User does not exist."))?;
        // Cognito's userInfo sends email_verified as a string.
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "sub": user.sub,
                "email_verified": "true",
                "email": user.email,
                "username": user.username,
            }),
        ))
    }

    /// Revokes a refresh token and every access token issued from it.
    pub(super) fn revoke(
        &self,
        headers: &HeaderMap,
        form: &Params,
    ) -> Result<Response<Full<Bytes>>, OAuthError> {
        self.authenticate_client(headers, form)?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::bad("invalid_request", "token is missing"))?;
        let mut grants = self.grants();
        if grants.access_tokens.contains_key(token) {
            // Cognito revokes refresh tokens only.
            return Err(OAuthError::bad(
                "unsupported_token_type",
                "only refresh tokens can be revoked",
            ));
        }
        if let Some(grant) = grants.refresh_tokens.get_mut(token) {
            grant.revoked = true;
            grants.access_tokens.retain(|_, a| a.refresh_token != token);
        }
        // RFC 7009: an unknown token is not an error.
        let mut resp = Response::new(Full::new(Bytes::new()));
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(resp)
    }
}

struct IssuedTokens {
    id_token: String,
    access_token: String,
    exp: u64,
}

fn remember_access(
    grants: &mut Grants,
    tokens: &IssuedTokens,
    username: &'static str,
    refresh: &str,
) {
    let now = unix_now();
    grants.access_tokens.retain(|_, a| a.exp > now);
    grants.access_tokens.insert(
        tokens.access_token.clone(),
        AccessGrant {
            username,
            exp: tokens.exp,
            refresh_token: refresh.to_string(),
        },
    );
}

fn token_response(tokens: &IssuedTokens, refresh_token: Option<&str>) -> Response<Full<Bytes>> {
    let mut body = json!({
        "id_token": tokens.id_token,
        "access_token": tokens.access_token,
        "expires_in": TOKEN_TTL_SECS,
        "token_type": "Bearer",
    });
    if let Some(r) = refresh_token {
        body["refresh_token"] = json!(r);
    }
    let mut resp = json_response(StatusCode::OK, &body);
    resp.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

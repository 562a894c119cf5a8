//! The Cognito user pool as the admin CLI and page see it: the one place that talks to the
//! AWS SDK (`aws-sdk-cognitoidentityprovider`), with credentials from the SDK's default chain
//! (environment, profile, web identity, EKS Pod Identity, instance metadata) and a rustls/ring
//! HTTP client. Owns turning the SDK's errors into `AdminError`s in words, each naming the IAM
//! action a missing permission concerns. Never prints or decides who may administer.

use aws_sdk_cognitoidentityprovider as cognito;
use cognito::config::http::HttpResponse;
use cognito::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use cognito::types::{AttributeType, DeliveryMediumType, MessageActionType, UserType};
use serde::Serialize;

use super::password::PasswordPolicy;
use crate::config::AdminConfig;

/// A person in the pool.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PoolUser {
    pub username: String,
    pub email: Option<String>,
    /// Cognito's status: `CONFIRMED`, `FORCE_CHANGE_PASSWORD`, `UNCONFIRMED`...
    pub status: String,
    pub enabled: bool,
    /// RFC 3339.
    pub created: Option<String>,
    /// The `sub` attribute: what the gateway's sessions name the person by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

/// A group of the pool.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PoolGroup {
    pub name: String,
    pub description: Option<String>,
    pub precedence: Option<i32>,
}

/// What a failed call means, in the words an operator needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("user {0:?} not found in the pool")]
    UserNotFound(String),
    #[error("group {0:?} not found in the pool: `ssogate groups list` shows the groups")]
    GroupNotFound(String),
    #[error("user pool not found: {0}: check admin.user_pool_id / provider.user_pool_id and admin.region")]
    PoolNotFound(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("password policy not met: {0}")]
    PasswordPolicy(String),
    #[error("permission denied: the AWS identity in use may not call {action}; allow it in its IAM policy (docs/cognito-admin.md lists the actions): {message}")]
    Denied {
        action: &'static str,
        message: String,
    },
    #[error("Cognito refused the request ({action}): {message}")]
    Invalid {
        action: &'static str,
        message: String,
    },
    #[error("cannot reach the Cognito API ({action}): {message}")]
    Unreachable {
        action: &'static str,
        message: String,
    },
    #[error("{action} failed: {message}")]
    Other {
        action: &'static str,
        message: String,
    },
}

impl AdminError {
    /// A short stable name for scripts (`--json`) and the exit code.
    pub fn kind(&self) -> &'static str {
        match self {
            AdminError::UserNotFound(_) => "user_not_found",
            AdminError::GroupNotFound(_) => "group_not_found",
            AdminError::PoolNotFound(_) => "pool_not_found",
            AdminError::UserExists(_) => "user_exists",
            AdminError::PasswordPolicy(_) => "password_policy",
            AdminError::Denied { .. } => "permission_denied",
            AdminError::Invalid { .. } => "invalid_request",
            AdminError::Unreachable { .. } => "unreachable",
            AdminError::Other { .. } => "failed",
        }
    }
}

/// Who or what a call was about, for the error's words.
#[derive(Clone, Copy, Default)]
struct About<'a> {
    user: Option<&'a str>,
    group: Option<&'a str>,
}

/// An error Cognito answered (its code and message) as an `AdminError`.
fn from_cognito(
    action: &'static str,
    about: About<'_>,
    code: Option<&str>,
    message: Option<&str>,
) -> AdminError {
    let message = message.unwrap_or("").to_string();
    let user = || about.user.unwrap_or("").to_string();
    match code.unwrap_or("") {
        "UserNotFoundException" => AdminError::UserNotFound(user()),
        "UsernameExistsException" => AdminError::UserExists(user()),
        "InvalidPasswordException" => AdminError::PasswordPolicy(message),
        "ResourceNotFoundException" => match about.group {
            Some(group) if !message.to_ascii_lowercase().contains("pool") => {
                AdminError::GroupNotFound(group.to_string())
            }
            _ => AdminError::PoolNotFound(message),
        },
        "AccessDeniedException" | "UnauthorizedOperation" | "NotAuthorizedException" => {
            AdminError::Denied { action, message }
        }
        "InvalidParameterException" | "ValidationException" => {
            AdminError::Invalid { action, message }
        }
        "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException" => {
            AdminError::Denied {
                action,
                message: format!("the AWS credentials were refused ({message})"),
            }
        }
        code => AdminError::Other {
            action,
            message: if code.is_empty() {
                message
            } else {
                format!("{code}: {message}")
            },
        },
    }
}

fn failed<E>(action: &'static str, about: About<'_>, err: SdkError<E, HttpResponse>) -> AdminError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(_) => from_cognito(action, about, err.code(), err.message()),
        // An answer the SDK could not read: a 403 is still a refusal (moto, and proxies in
        // front of the API, answer denials as XML or HTML).
        SdkError::ResponseError(ctx) if ctx.raw().status().as_u16() == 403 => {
            let body = ctx.raw().body().bytes().unwrap_or_default();
            AdminError::Denied {
                action,
                message: xml_message(body).unwrap_or_else(|| "HTTP 403".into()),
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => AdminError::Unreachable {
            action,
            message: DisplayErrorContext(&err).to_string(),
        },
        _ => AdminError::Other {
            action,
            message: DisplayErrorContext(&err).to_string(),
        },
    }
}

/// The `<Message>` of an XML error body.
fn xml_message(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Message>")? + "<Message>".len();
    let len = text[start..].find("</Message>")?;
    Some(text[start..start + len].to_string())
}

/// The pool named by `[admin]` (or `[provider]`), and a client for it.
pub struct Pool {
    client: cognito::Client,
    pool_id: String,
}

impl Pool {
    /// A client for `settings`' pool; credentials are resolved at the first call.
    pub async fn connect(settings: &AdminConfig) -> Pool {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .http_client(http)
            .load()
            .await;
        let mut conf = cognito::config::Builder::from(&shared);
        if let Some(url) = &settings.endpoint_url {
            conf = conf.endpoint_url(url.as_str().trim_end_matches('/'));
        }
        Pool {
            client: cognito::Client::from_conf(conf.build()),
            pool_id: settings.user_pool_id.clone(),
        }
    }

    pub fn id(&self) -> &str {
        &self.pool_id
    }

    /// Every user (`ListUsers`, all pages), or those matching a Cognito filter
    /// (`email ^= "ann"`).
    pub async fn list_users(&self, filter: Option<&str>) -> Result<Vec<PoolUser>, AdminError> {
        let mut users = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_users()
                .user_pool_id(&self.pool_id)
                .set_filter(filter.map(str::to_string))
                .set_pagination_token(token.take())
                .send()
                .await
                .map_err(|e| failed("cognito-idp:ListUsers", About::default(), e))?;
            users.extend(page.users().iter().map(user_of));
            match page.pagination_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(users),
            }
        }
    }

    /// The members of `group` (`ListUsersInGroup`, all pages).
    pub async fn group_members(&self, group: &str) -> Result<Vec<PoolUser>, AdminError> {
        let about = About {
            group: Some(group),
            ..About::default()
        };
        let mut users = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_users_in_group()
                .user_pool_id(&self.pool_id)
                .group_name(group)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| failed("cognito-idp:ListUsersInGroup", about, e))?;
            users.extend(page.users().iter().map(user_of));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(users),
            }
        }
    }

    /// The pool's groups (`ListGroups`, all pages).
    pub async fn groups(&self) -> Result<Vec<PoolGroup>, AdminError> {
        let mut groups = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_groups()
                .user_pool_id(&self.pool_id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| failed("cognito-idp:ListGroups", About::default(), e))?;
            groups.extend(page.groups().iter().map(|g| PoolGroup {
                name: g.group_name().unwrap_or_default().to_string(),
                description: g.description().map(str::to_string),
                precedence: g.precedence(),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(groups),
            }
        }
    }

    /// One user (`AdminGetUser`).
    pub async fn user(&self, username: &str) -> Result<PoolUser, AdminError> {
        let out = self
            .client
            .admin_get_user()
            .user_pool_id(&self.pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| failed("cognito-idp:AdminGetUser", user_about(username), e))?;
        Ok(PoolUser {
            username: out.username().to_string(),
            email: attribute(out.user_attributes(), "email"),
            status: out
                .user_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            enabled: out.enabled(),
            created: out.user_create_date().map(|d| d.to_string()),
            sub: attribute(out.user_attributes(), "sub"),
        })
    }

    /// The groups of one user (`AdminListGroupsForUser`, all pages).
    pub async fn groups_of(&self, username: &str) -> Result<Vec<String>, AdminError> {
        let mut groups = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .admin_list_groups_for_user()
                .user_pool_id(&self.pool_id)
                .username(username)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    failed(
                        "cognito-idp:AdminListGroupsForUser",
                        user_about(username),
                        e,
                    )
                })?;
            groups.extend(
                page.groups()
                    .iter()
                    .filter_map(|g| g.group_name().map(str::to_string)),
            );
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(groups),
            }
        }
    }

    /// Creates a user with a verified email and a temporary password (`AdminCreateUser`);
    /// Cognito's invitation is suppressed unless `send_invite`.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        temporary_password: &str,
        send_invite: bool,
    ) -> Result<(), AdminError> {
        let attr = |name: &str, value: &str| {
            AttributeType::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| AdminError::Other {
                    action: "cognito-idp:AdminCreateUser",
                    message: e.to_string(),
                })
        };
        let mut call = self
            .client
            .admin_create_user()
            .user_pool_id(&self.pool_id)
            .username(username)
            .user_attributes(attr("email", email)?)
            .user_attributes(attr("email_verified", "true")?)
            .temporary_password(temporary_password);
        call = if send_invite {
            call.desired_delivery_mediums(DeliveryMediumType::Email)
        } else {
            call.message_action(MessageActionType::Suppress)
        };
        call.send()
            .await
            .map_err(|e| failed("cognito-idp:AdminCreateUser", user_about(username), e))?;
        Ok(())
    }

    pub async fn delete_user(&self, username: &str) -> Result<(), AdminError> {
        self.client
            .admin_delete_user()
            .user_pool_id(&self.pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| failed("cognito-idp:AdminDeleteUser", user_about(username), e))?;
        Ok(())
    }

    /// Disables the user (`AdminDisableUser`) and ends their refresh tokens everywhere
    /// (`AdminUserGlobalSignOut`): their gateway sessions end at the next refresh.
    pub async fn disable_user(&self, username: &str) -> Result<(), AdminError> {
        self.client
            .admin_disable_user()
            .user_pool_id(&self.pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| failed("cognito-idp:AdminDisableUser", user_about(username), e))?;
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&self.pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| {
                failed(
                    "cognito-idp:AdminUserGlobalSignOut",
                    user_about(username),
                    e,
                )
            })?;
        Ok(())
    }

    pub async fn enable_user(&self, username: &str) -> Result<(), AdminError> {
        self.client
            .admin_enable_user()
            .user_pool_id(&self.pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| failed("cognito-idp:AdminEnableUser", user_about(username), e))?;
        Ok(())
    }

    pub async fn add_to_group(&self, username: &str, group: &str) -> Result<(), AdminError> {
        let about = About {
            user: Some(username),
            group: Some(group),
        };
        self.client
            .admin_add_user_to_group()
            .user_pool_id(&self.pool_id)
            .username(username)
            .group_name(group)
            .send()
            .await
            .map_err(|e| failed("cognito-idp:AdminAddUserToGroup", about, e))?;
        Ok(())
    }

    pub async fn remove_from_group(&self, username: &str, group: &str) -> Result<(), AdminError> {
        let about = About {
            user: Some(username),
            group: Some(group),
        };
        self.client
            .admin_remove_user_from_group()
            .user_pool_id(&self.pool_id)
            .username(username)
            .group_name(group)
            .send()
            .await
            .map_err(|e| failed("cognito-idp:AdminRemoveUserFromGroup", about, e))?;
        Ok(())
    }

    /// The pool's password policy (`DescribeUserPool`).
    pub async fn password_policy(&self) -> Result<PasswordPolicy, AdminError> {
        let out = self
            .client
            .describe_user_pool()
            .user_pool_id(&self.pool_id)
            .send()
            .await
            .map_err(|e| failed("cognito-idp:DescribeUserPool", About::default(), e))?;
        let Some(p) = out
            .user_pool()
            .and_then(|u| u.policies())
            .and_then(|p| p.password_policy())
        else {
            return Ok(PasswordPolicy::default());
        };
        Ok(PasswordPolicy {
            min_length: p
                .minimum_length()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(8),
            upper: p.require_uppercase(),
            lower: p.require_lowercase(),
            digit: p.require_numbers(),
            symbol: p.require_symbols(),
        })
    }

    /// The temporary password to give: `chosen` when it meets the pool's policy (refused in
    /// words otherwise), else a generated one that meets it. Without the policy (no
    /// `DescribeUserPool` permission) a chosen password goes to Cognito unchecked, which
    /// checks it itself, and the generated one meets Cognito's default policy at 16
    /// characters.
    pub async fn temporary_password(&self, chosen: Option<String>) -> Result<String, AdminError> {
        let policy = self.password_policy().await.ok();
        match chosen {
            Some(p) => {
                if let Some(policy) = policy {
                    policy.check(&p)?;
                }
                Ok(p)
            }
            None => Ok(policy.unwrap_or_default().generate()),
        }
    }

    /// Gives the user a new temporary password (`AdminSetUserPassword`, not permanent): they
    /// must choose their own at the next sign-in.
    pub async fn set_temporary_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), AdminError> {
        self.client
            .admin_set_user_password()
            .user_pool_id(&self.pool_id)
            .username(username)
            .password(password)
            .permanent(false)
            .send()
            .await
            .map_err(|e| failed("cognito-idp:AdminSetUserPassword", user_about(username), e))?;
        Ok(())
    }
}

fn user_about(username: &str) -> About<'_> {
    About {
        user: Some(username),
        group: None,
    }
}

fn attribute(attrs: &[AttributeType], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value().map(str::to_string))
}

fn user_of(u: &UserType) -> PoolUser {
    PoolUser {
        username: u.username().unwrap_or_default().to_string(),
        email: attribute(u.attributes(), "email"),
        status: u
            .user_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        enabled: u.enabled(),
        created: u.user_create_date().map(|d| d.to_string()),
        sub: attribute(u.attributes(), "sub"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> About<'_> {
        user_about(name)
    }

    #[test]
    fn denied_names_the_iam_action() {
        let e = from_cognito(
            "cognito-idp:AdminDisableUser",
            user("ann"),
            Some("AccessDeniedException"),
            Some("User: arn:aws:iam::1:user/x is not authorized to perform: cognito-idp:AdminDisableUser"),
        );
        assert_eq!(e.kind(), "permission_denied");
        assert!(
            e.to_string()
                .contains("may not call cognito-idp:AdminDisableUser"),
            "{e}"
        );
    }

    #[test]
    fn not_found_says_which() {
        let both = About {
            user: Some("ann"),
            group: Some("staff"),
        };
        let e = from_cognito(
            "cognito-idp:AdminAddUserToGroup",
            both,
            Some("ResourceNotFoundException"),
            Some("Group not found."),
        );
        assert_eq!(e, AdminError::GroupNotFound("staff".into()));
        let e = from_cognito(
            "cognito-idp:AdminGetUser",
            user("ann"),
            Some("UserNotFoundException"),
            Some("User does not exist."),
        );
        assert_eq!(e.to_string(), "user \"ann\" not found in the pool");
        let e = from_cognito(
            "cognito-idp:ListGroups",
            About::default(),
            Some("ResourceNotFoundException"),
            Some("User pool eu-west-1_x does not exist."),
        );
        assert_eq!(e.kind(), "pool_not_found");
    }

    #[test]
    fn an_xml_denial_keeps_its_message() {
        let body = b"<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>not authorized to perform: cognito-idp:AdminDisableUser</Message></Error></Errors></ErrorResponse>";
        assert_eq!(
            xml_message(body).as_deref(),
            Some("not authorized to perform: cognito-idp:AdminDisableUser")
        );
        assert_eq!(xml_message(b"{}"), None);
    }

    #[test]
    fn a_refused_password_says_the_policy_is_not_met_in_cognitos_words() {
        let e = from_cognito(
            "cognito-idp:AdminCreateUser",
            user("ann"),
            Some("InvalidPasswordException"),
            Some("Password did not conform with policy: Password not long enough"),
        );
        assert_eq!(
            e.to_string(),
            "password policy not met: Password did not conform with policy: Password not long enough"
        );
    }

    #[test]
    fn refused_credentials_are_a_permission_problem() {
        let e = from_cognito(
            "cognito-idp:ListUsers",
            About::default(),
            Some("UnrecognizedClientException"),
            Some("The security token included in the request is invalid."),
        );
        assert_eq!(e.kind(), "permission_denied");
    }
}

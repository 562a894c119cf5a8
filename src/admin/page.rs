//! The admin page at `{auth_prefix}/admin` (only with `[admin] enabled = true`): the pool's
//! users with status, enabled flag, groups and roles; create, disable/enable, group changes,
//! reset password, and delete after a confirmation page. Owns who may use it
//! (`admin.allowed_groups`, others 403), the CSRF token every change carries (an HMAC of the
//! visitor's session, keyed from the session secret so replicas agree), the audit line per
//! change, and the HTML, server-rendered with no outside assets. The server hands it the
//! signed-in visitor and the request's method, path, query and form, and a way to end a
//! person's gateway sessions (used after a disable or delete); it never reads cookies or
//! sessions itself.

use futures_util::future::BoxFuture;
use ring::hmac;
use tokio::sync::OnceCell;

use super::pool::{AdminError, Pool, PoolUser};
use super::roles::RoleMap;
use crate::config::AdminConfig;

/// Who is asking, as their session says.
pub struct Visitor<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    /// Something that names this session and no other (subject and sign-in time): the CSRF
    /// token is bound to it.
    pub session: &'a str,
}

/// Ends the gateway sessions of the person with this subject: `Ok(Some(n))` ended at once,
/// `Ok(None)` when the session store is the cookie (they end at their next refresh), `Err`
/// in words.
pub type EndSessions<'a> =
    &'a (dyn Fn(String) -> BoxFuture<'a, Result<Option<usize>, String>> + Send + Sync);

/// The parts of the request the page reads.
pub struct PageRequest<'a> {
    pub post: bool,
    /// Below `/admin`: "" or "/delete".
    pub below: &'a str,
    pub query: Option<&'a str>,
    /// The `application/x-www-form-urlencoded` body of a POST.
    pub form: &'a [u8],
    pub end_sessions: EndSessions<'a>,
}

/// What to answer: a status and a page (title, escaped body).
#[derive(Debug)]
pub struct PageAnswer {
    pub status: u16,
    pub title: String,
    pub body: String,
}

pub struct AdminPage {
    settings: AdminConfig,
    pool: OnceCell<Pool>,
    roles: RoleMap,
    csrf_key: hmac::Key,
    /// `{auth_prefix}/admin`, where the forms post.
    path: String,
}

impl AdminPage {
    /// `session_secret` keys the CSRF tokens (through an HMAC, never used as it is).
    pub fn new(
        settings: AdminConfig,
        roles: RoleMap,
        session_secret: &[u8],
        auth_prefix: &str,
    ) -> AdminPage {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, session_secret);
        let key = hmac::sign(&derive, b"ssogate admin page csrf v1");
        AdminPage {
            settings,
            pool: OnceCell::new(),
            roles,
            csrf_key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            path: format!("{auth_prefix}/admin"),
        }
    }

    async fn pool(&self) -> &Pool {
        self.pool
            .get_or_init(|| Pool::connect(&self.settings))
            .await
    }

    fn csrf_token(&self, v: &Visitor<'_>) -> String {
        use base64::Engine;
        let tag = hmac::sign(&self.csrf_key, v.session.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Compared in constant time (`hmac::verify`).
    fn csrf_ok(&self, v: &Visitor<'_>, sent: Option<&str>) -> bool {
        use base64::Engine;
        let Some(tag) = sent.and_then(|s| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        }) else {
            return false;
        };
        hmac::verify(&self.csrf_key, v.session.as_bytes(), &tag).is_ok()
    }

    fn may_administer(&self, v: &Visitor<'_>) -> bool {
        v.groups
            .iter()
            .any(|g| self.settings.allowed_groups.contains(g))
    }

    pub async fn answer(&self, v: &Visitor<'_>, r: &PageRequest<'_>) -> PageAnswer {
        if !self.may_administer(v) {
            return PageAnswer {
                status: 403,
                title: "Not allowed".into(),
                body: format!(
                    "<p>You are signed in as <b>{}</b>, who is not in a group that may manage users (<code>admin.allowed_groups</code>).</p>",
                    esc(v.user)
                ),
            };
        }
        match (r.post, r.below) {
            (false, "") => self.listing(v, 200, None).await,
            (false, "/delete") => self.confirm_delete(v, r.query),
            (true, "") => self.change(v, r.form, r.end_sessions).await,
            _ => PageAnswer {
                status: 404,
                title: "Not found".into(),
                body: format!(
                    "<p><a href=\"{}\">Back to the users</a></p>",
                    esc(&self.path)
                ),
            },
        }
    }

    fn confirm_delete(&self, v: &Visitor<'_>, query: Option<&str>) -> PageAnswer {
        let user = field(query.unwrap_or("").as_bytes(), "user").unwrap_or_default();
        PageAnswer {
            status: 200,
            title: "Delete a user".into(),
            body: format!(
                "<p>Delete <b>{u}</b> from the pool? This cannot be undone.</p>\
                 <form method=\"post\" action=\"{p}\">{csrf}<input type=\"hidden\" name=\"action\" value=\"delete\">\
                 <input type=\"hidden\" name=\"user\" value=\"{u}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
                 <button type=\"submit\" id=\"confirm-delete\">Delete {u}</button></form>\
                 <p><a href=\"{p}\">Cancel</a></p>",
                u = esc(&user),
                p = esc(&self.path),
                csrf = self.csrf_input(v),
            ),
        }
    }

    fn csrf_input(&self, v: &Visitor<'_>) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            self.csrf_token(v)
        )
    }

    /// A POST: one change, checked, done, logged; then the list with what happened.
    async fn change(&self, v: &Visitor<'_>, form: &[u8], end: EndSessions<'_>) -> PageAnswer {
        if !self.csrf_ok(v, field(form, "csrf").as_deref()) {
            return PageAnswer {
                status: 403,
                title: "Change refused".into(),
                body: format!(
                    "<p>The form's security token is missing or belongs to another session (CSRF protection): nothing was changed. <a href=\"{}\">Reload the admin page</a> and try again.</p>",
                    esc(&self.path)
                ),
            };
        }
        let action = field(form, "action").unwrap_or_default();
        let user = field(form, "user").unwrap_or_default();
        let group = field(form, "group").filter(|g| !g.is_empty());
        let pool = self.pool().await;
        let result: Result<String, AdminError> = match action.as_str() {
            "create" => {
                let email = field(form, "email").unwrap_or_default();
                let groups: Vec<String> = fields(form, "groups");
                let created = match pool.temporary_password(None).await {
                    Ok(password) => pool
                        .create_user(&user, &email, &password, false)
                        .await
                        .map(|()| password),
                    Err(e) => Err(e),
                };
                match created {
                    Ok(password) => {
                        let mut joined = Ok(());
                        for g in &groups {
                            joined = pool.add_to_group(&user, g).await;
                            if joined.is_err() {
                                break;
                            }
                        }
                        joined.map(|()| {
                            format!(
                                "Created {} with the temporary password <code id=\"temporary-password\">{}</code> (shown once; pass it on: they choose their own at first sign-in).",
                                esc(&user),
                                esc(&password)
                            )
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            "disable" => {
                let sub = sub_of(pool, &user).await;
                match pool.disable_user(&user).await {
                    Ok(()) => Ok(format!(
                        "Disabled {} and signed them out everywhere in Cognito. {}",
                        esc(&user),
                        end_gateway_sessions(end, sub).await
                    )),
                    Err(e) => Err(e),
                }
            }
            "enable" => pool
                .enable_user(&user)
                .await
                .map(|()| format!("Enabled {}.", esc(&user))),
            "add-group" | "remove-group" => match &group {
                None => Err(AdminError::Invalid {
                    action: "choose a group",
                    message: "no group was chosen".into(),
                }),
                Some(g) if action == "add-group" => pool
                    .add_to_group(&user, g)
                    .await
                    .map(|()| format!("Added {} to {}.", esc(&user), esc(g))),
                Some(g) => pool
                    .remove_from_group(&user, g)
                    .await
                    .map(|()| format!("Removed {} from {}.", esc(&user), esc(g))),
            },
            "reset-password" => {
                let password = pool.temporary_password(None).await;
                let set = match password {
                    Ok(p) => pool.set_temporary_password(&user, &p).await.map(|()| p),
                    Err(e) => Err(e),
                };
                set.map(|password| {
                    format!(
                        "New temporary password for {}: <code id=\"temporary-password\">{}</code> (shown once).",
                        esc(&user),
                        esc(&password)
                    )
                })
            }
            "delete" if field(form, "confirm").as_deref() == Some("yes") => {
                let sub = sub_of(pool, &user).await;
                match pool.delete_user(&user).await {
                    Ok(()) => Ok(format!(
                        "Deleted {}. {}",
                        esc(&user),
                        end_gateway_sessions(end, sub).await
                    )),
                    Err(e) => Err(e),
                }
            }
            "delete" => {
                return self.confirm_delete(v, Some(&format!("user={}", form_escape(&user))));
            }
            other => Err(AdminError::Invalid {
                action: "admin page",
                message: format!("unknown action {other:?}"),
            }),
        };
        let outcome = match &result {
            Ok(_) => "done".to_string(),
            Err(e) => e.kind().to_string(),
        };
        tracing::info!(
            target: "ssogate::admin::audit",
            admin = %v.user,
            action = %action,
            user = %user,
            group = group.as_deref().unwrap_or(""),
            outcome = %outcome,
            "admin change"
        );
        match result {
            Ok(message) => self.listing(v, 200, Some(Ok(message))).await,
            Err(e) => {
                let status = status_of(&e);
                self.listing(v, status, Some(Err(esc(&e.to_string()))))
                    .await
            }
        }
    }

    /// The users table, with a message about the last change above it.
    async fn listing(
        &self,
        v: &Visitor<'_>,
        status: u16,
        message: Option<Result<String, String>>,
    ) -> PageAnswer {
        let pool = self.pool().await;
        let loaded = async {
            let users = pool.list_users(None).await?;
            let groups = pool.groups().await?;
            let mut members: Vec<(String, Vec<String>)> = Vec::new();
            for g in &groups {
                let names = pool.group_members(&g.name).await?;
                members.push((
                    g.name.clone(),
                    names.into_iter().map(|u| u.username).collect(),
                ));
            }
            Ok::<_, AdminError>((users, members))
        }
        .await;
        let mut body = String::from(STYLE);
        match message {
            Some(Ok(m)) => body.push_str(&format!("<p class=\"ok\" id=\"message\">{m}</p>")),
            Some(Err(m)) => body.push_str(&format!("<p class=\"error\" id=\"message\">{m}</p>")),
            None => {}
        }
        let (users, members) = match loaded {
            Ok(l) => l,
            Err(e) => {
                body.push_str(&format!("<p class=\"error\">{}</p>", esc(&e.to_string())));
                return PageAnswer {
                    status: status_of(&e),
                    title: "Users".into(),
                    body,
                };
            }
        };
        let group_names: Vec<&str> = members.iter().map(|(g, _)| g.as_str()).collect();
        body.push_str(&format!(
            "<p>Signed in as <b>{}</b>. Pool <code>{}</code>.</p>",
            esc(v.user),
            esc(pool.id())
        ));
        body.push_str(&self.create_form(v, &group_names));
        body.push_str("<table><thead><tr><th>User</th><th>Email</th><th>Status</th><th>Enabled</th><th>Groups</th><th>Roles</th><th>Change</th></tr></thead><tbody>");
        for u in &users {
            let groups: Vec<String> = members
                .iter()
                .filter(|(_, names)| names.contains(&u.username))
                .map(|(g, _)| g.clone())
                .collect();
            body.push_str(&self.user_row(v, u, &groups, &group_names));
        }
        body.push_str("</tbody></table>");
        PageAnswer {
            status,
            title: "Users".into(),
            body,
        }
    }

    fn create_form(&self, v: &Visitor<'_>, groups: &[&str]) -> String {
        let boxes: String = groups
            .iter()
            .map(|g| {
                format!(
                    "<label><input type=\"checkbox\" name=\"groups\" value=\"{g}\"> {g}</label> ",
                    g = esc(g)
                )
            })
            .collect();
        format!(
            "<form method=\"post\" action=\"{p}\" id=\"create\">{csrf}<input type=\"hidden\" name=\"action\" value=\"create\">\
             <input name=\"user\" placeholder=\"username\" required> <input name=\"email\" type=\"email\" placeholder=\"email\" required> \
             {boxes}<button type=\"submit\">Create user</button></form>",
            p = esc(&self.path),
            csrf = self.csrf_input(v),
        )
    }

    fn user_row(&self, v: &Visitor<'_>, u: &PoolUser, groups: &[String], all: &[&str]) -> String {
        let name = esc(&u.username);
        let button = |action: &str, label: &str, extra: &str| {
            format!(
                "<form method=\"post\" action=\"{p}\">{csrf}<input type=\"hidden\" name=\"action\" value=\"{action}\">\
                 <input type=\"hidden\" name=\"user\" value=\"{name}\">{extra}<button type=\"submit\">{label}</button></form>",
                p = esc(&self.path),
                csrf = self.csrf_input(v),
            )
        };
        let mut changes = String::new();
        changes.push_str(&if u.enabled {
            button("disable", "Disable", "")
        } else {
            button("enable", "Enable", "")
        });
        changes.push_str(&button("reset-password", "Reset password", ""));
        let options: String = all
            .iter()
            .filter(|g| !groups.iter().any(|h| h == *g))
            .map(|g| format!("<option>{}</option>", esc(g)))
            .collect();
        if !options.is_empty() {
            changes.push_str(&button(
                "add-group",
                "Add to group",
                &format!("<select name=\"group\">{options}</select>"),
            ));
        }
        for g in groups {
            changes.push_str(&button(
                "remove-group",
                &format!("Remove from {}", esc(g)),
                &format!(
                    "<input type=\"hidden\" name=\"group\" value=\"{}\">",
                    esc(g)
                ),
            ));
        }
        changes.push_str(&format!(
            "<a href=\"{}/delete?user={}\">Delete…</a>",
            esc(&self.path),
            esc(&form_escape(&u.username))
        ));
        format!(
            "<tr id=\"user-{name}\"><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{changes}</td></tr>",
            esc(u.email.as_deref().unwrap_or("")),
            esc(&u.status),
            if u.enabled { "yes" } else { "no" },
            esc(&groups.join(", ")),
            esc(&self.roles.roles_of(groups).join(", ")),
        )
    }
}

/// The `sub` of `user`, which names them in the gateway's sessions; read before a disable or
/// delete (after a delete there is no one to ask).
async fn sub_of(pool: &Pool, user: &str) -> Option<String> {
    pool.user(user).await.ok().and_then(|u| u.sub)
}

/// Ends the person's gateway sessions; what happened, in a sentence for the page.
async fn end_gateway_sessions(end: EndSessions<'_>, sub: Option<String>) -> String {
    let Some(sub) = sub else {
        return "Cognito gave no <code>sub</code> for them: their gateway sessions end at their next refresh.".into();
    };
    match end(sub).await {
        Ok(Some(n)) => format!("Their gateway sessions ended at once ({n})."),
        Ok(None) => "Their gateway session ends at its next refresh with Cognito (the session store is the cookie, which keeps no sessions to end at once).".into(),
        Err(e) => format!(
            "Their gateway sessions could not be ended at once ({}): they end at their next refresh.",
            esc(&e)
        ),
    }
}

const STYLE: &str = "<style>body{max-width:72rem!important}table{border-collapse:collapse;margin-top:1rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}form{display:inline-block;margin:0 .2rem .2rem 0}.ok{color:#065f46}.error{color:#b91c1c}</style>";

fn status_of(e: &AdminError) -> u16 {
    match e {
        AdminError::UserNotFound(_) | AdminError::GroupNotFound(_) => 404,
        AdminError::UserExists(_) => 409,
        AdminError::PasswordPolicy(_) | AdminError::Invalid { .. } => 400,
        AdminError::Denied { .. } => 502,
        AdminError::PoolNotFound(_) | AdminError::Unreachable { .. } | AdminError::Other { .. } => {
            502
        }
    }
}

fn field(form: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(form)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn fields(form: &[u8], name: &str) -> Vec<String> {
    url::form_urlencoded::parse(form)
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn form_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// HTML text and attribute values: the gateway's own pages' escaping.
use crate::server::pages::escape as esc;

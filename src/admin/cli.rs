//! The `ssogate users` and `ssogate groups` commands: arguments, which pool they act on
//! (`--config`'s `[admin]`/`[provider]`, or flags), output as a table for people or `--json`
//! for scripts, and exit codes a script can rely on (`docs/cognito-admin.md`).
//! Talks to Cognito only through `pool`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::pool::{AdminError, Pool, PoolUser};
use crate::config::{AdminConfig, Config, ProcessSource};

/// Exit codes: 0 done; 1 any other failure; 2 usage or configuration; 3 user, group or pool
/// not found; 4 user exists; 5 refused as invalid (password policy included); 6 permission
/// denied; 7 Cognito unreachable; 8 not confirmed (delete without `--yes`).
fn exit_code(e: &AdminError) -> u8 {
    match e {
        AdminError::UserNotFound(_)
        | AdminError::GroupNotFound(_)
        | AdminError::PoolNotFound(_) => 3,
        AdminError::UserExists(_) => 4,
        AdminError::PasswordPolicy(_) | AdminError::Invalid { .. } => 5,
        AdminError::Denied { .. } => 6,
        AdminError::Unreachable { .. } => 7,
        AdminError::Other { .. } => 1,
    }
}

/// Which pool, and how to print. Every option may also follow the subcommand.
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// The gateway's config: the pool of `[admin]`, else of `[provider]`.
    #[arg(long, short, env = "SSOGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The user pool id (overrides the config).
    #[arg(long, global = true)]
    pub user_pool_id: Option<String>,
    /// The pool's region (default: the config's, else the pool id's prefix).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// The Cognito API's address, for emulators (overrides `admin.endpoint_url`).
    #[arg(long, global = true)]
    pub endpoint_url: Option<url::Url>,
    /// Print JSON for scripts instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UsersArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// The pool's users (or a group's), with status and enabled flag.
    List {
        /// Only the members of this group.
        #[arg(long)]
        group: Option<String>,
        /// A Cognito ListUsers filter, like 'email ^= "ann"'.
        #[arg(long)]
        filter: Option<String>,
    },
    /// One user, with their groups.
    Show {
        username: String,
    },
    /// Create a user with a temporary password (printed once).
    Create {
        username: String,
        #[arg(long)]
        email: String,
        /// Add to this group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The temporary password; default: a generated one.
        #[arg(long)]
        temporary_password: Option<String>,
        /// Let Cognito email the invitation (default: suppressed; pass the password on yourself).
        #[arg(long)]
        send_invite: bool,
    },
    /// Delete a user (asks first unless --yes).
    Delete {
        username: String,
        #[arg(long, short)]
        yes: bool,
    },
    /// Disable a user and sign them out everywhere.
    Disable {
        username: String,
    },
    Enable {
        username: String,
    },
    AddGroup {
        username: String,
        group: String,
    },
    RemoveGroup {
        username: String,
        group: String,
    },
    /// Set a new temporary password (printed once); the user chooses their own at sign-in.
    ResetPassword {
        username: String,
        #[arg(long)]
        temporary_password: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// The pool's groups.
    List,
    /// The members of a group.
    Members { group: String },
}

/// `ssogate users ...`.
pub fn users(args: UsersArgs) -> ExitCode {
    let json = args.pool.json;
    with_pool(&args.pool, |pool| async move {
        run_users(&pool, args.command, json).await
    })
}

/// `ssogate groups ...`.
pub fn groups(args: GroupsArgs) -> ExitCode {
    let json = args.pool.json;
    with_pool(&args.pool, |pool| async move {
        run_groups(&pool, args.command, json).await
    })
}

/// What a command ended with, besides success.
enum Failure {
    Admin(AdminError),
    /// Usage (exit 2) or not confirmed (exit 8), in words.
    Refused(u8, String),
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Self {
        Failure::Admin(e)
    }
}

fn with_pool<F, Fut>(args: &PoolArgs, command: F) -> ExitCode
where
    F: FnOnce(Pool) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let settings = match settings(args) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("ssogate: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ssogate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let pool = Pool::connect(&settings).await;
        command(pool).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Admin(e)) => {
            eprintln!("ssogate: {e}");
            if args.json {
                println!("{}", json!({ "error": e.kind(), "message": e.to_string() }));
            }
            ExitCode::from(exit_code(&e))
        }
        Err(Failure::Refused(code, message)) => {
            eprintln!("ssogate: {message}");
            ExitCode::from(code)
        }
    }
}

/// The pool to act on: flags over the config's `[admin]` (which defaults from `[provider]`).
fn settings(args: &PoolArgs) -> Result<AdminConfig, String> {
    let from_config = match &args.config {
        Some(path) => match Config::load(path, &ProcessSource) {
            Ok(c) => c.admin,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        },
        None => None,
    };
    let user_pool_id = args
        .user_pool_id
        .clone()
        .or_else(|| from_config.as_ref().map(|a| a.user_pool_id.clone()))
        .ok_or(
            "no user pool: pass --config (with [admin] or [provider] user_pool_id) or --user-pool-id",
        )?;
    let region = args
        .region
        .clone()
        .or_else(|| {
            from_config
                .as_ref()
                .filter(|a| a.user_pool_id == user_pool_id)
                .map(|a| a.region.clone())
        })
        .or_else(|| user_pool_id.split_once('_').map(|(r, _)| r.to_string()))
        .ok_or_else(|| {
            format!("--user-pool-id {user_pool_id:?} has no region prefix: pass --region")
        })?;
    Ok(AdminConfig {
        enabled: false,
        allowed_groups: Vec::new(),
        region,
        user_pool_id,
        endpoint_url: args
            .endpoint_url
            .clone()
            .or_else(|| from_config.and_then(|a| a.endpoint_url)),
    })
}

async fn run_users(pool: &Pool, command: UsersCommand, json: bool) -> Result<(), Failure> {
    match command {
        UsersCommand::List { group, filter } => {
            let users = match &group {
                Some(g) => pool.group_members(g).await?,
                None => pool.list_users(filter.as_deref()).await?,
            };
            print_users(&users, json);
        }
        UsersCommand::Show { username } => {
            let user = pool.user(&username).await?;
            let groups = pool.groups_of(&username).await?;
            if json {
                let mut v = serde_json::to_value(&user).unwrap_or_default();
                v["groups"] = json!(groups);
                println!("{v}");
            } else {
                print_rows(
                    &["FIELD", "VALUE"],
                    &[
                        vec!["username".into(), user.username.clone()],
                        vec!["email".into(), user.email.clone().unwrap_or_default()],
                        vec!["status".into(), user.status.clone()],
                        vec!["enabled".into(), user.enabled.to_string()],
                        vec!["created".into(), user.created.clone().unwrap_or_default()],
                        vec!["groups".into(), groups.join(",")],
                    ],
                );
            }
        }
        UsersCommand::Create {
            username,
            email,
            groups,
            temporary_password,
            send_invite,
        } => {
            // Groups first, so a misspelt one leaves no half-made user behind.
            let known = pool.groups().await?;
            if let Some(missing) = groups.iter().find(|g| !known.iter().any(|k| &k.name == *g)) {
                return Err(AdminError::GroupNotFound(missing.clone()).into());
            }
            let password = pool.temporary_password(temporary_password).await?;
            pool.create_user(&username, &email, &password, send_invite)
                .await?;
            for g in &groups {
                pool.add_to_group(&username, g).await?;
            }
            if json {
                println!(
                    "{}",
                    json!({ "username": username, "email": email, "groups": groups,
                            "temporary_password": password, "invite_sent": send_invite })
                );
            } else {
                println!("created {username} ({email}){}", in_groups(&groups));
                println!("temporary password (shown once; they choose their own at first sign-in): {password}");
            }
        }
        UsersCommand::Delete { username, yes } => {
            if !yes && !confirm(&format!("delete user {username:?} from {}?", pool.id())) {
                return Err(Failure::Refused(
                    8,
                    format!("not deleted: answer \"yes\" to the question, or pass --yes (user {username:?})"),
                ));
            }
            pool.delete_user(&username).await?;
            done(json, "delete", &username, None);
        }
        UsersCommand::Disable { username } => {
            pool.disable_user(&username).await?;
            done(json, "disable", &username, None);
        }
        UsersCommand::Enable { username } => {
            pool.enable_user(&username).await?;
            done(json, "enable", &username, None);
        }
        UsersCommand::AddGroup { username, group } => {
            pool.add_to_group(&username, &group).await?;
            done(json, "add-group", &username, Some(&group));
        }
        UsersCommand::RemoveGroup { username, group } => {
            pool.remove_from_group(&username, &group).await?;
            done(json, "remove-group", &username, Some(&group));
        }
        UsersCommand::ResetPassword {
            username,
            temporary_password,
        } => {
            let password = pool.temporary_password(temporary_password).await?;
            pool.set_temporary_password(&username, &password).await?;
            if json {
                println!(
                    "{}",
                    json!({ "username": username, "temporary_password": password })
                );
            } else {
                println!("new temporary password for {username} (shown once): {password}");
            }
        }
    }
    Ok(())
}

async fn run_groups(pool: &Pool, command: GroupsCommand, json: bool) -> Result<(), Failure> {
    match command {
        GroupsCommand::List => {
            let groups = pool.groups().await?;
            if json {
                println!("{}", json!(groups));
            } else {
                let rows: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| {
                        vec![
                            g.name.clone(),
                            g.precedence.map(|p| p.to_string()).unwrap_or_default(),
                            g.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_rows(&["GROUP", "PRECEDENCE", "DESCRIPTION"], &rows);
            }
        }
        GroupsCommand::Members { group } => {
            let users = pool.group_members(&group).await?;
            print_users(&users, json);
        }
    }
    Ok(())
}

fn in_groups(groups: &[String]) -> String {
    if groups.is_empty() {
        String::new()
    } else {
        format!(" in {}", groups.join(", "))
    }
}

fn done(json: bool, action: &str, username: &str, group: Option<&str>) {
    if json {
        println!(
            "{}",
            json!({ "ok": true, "action": action, "username": username, "group": group })
        );
    } else {
        match group {
            Some(g) => println!("{action}: {username} {g}: done"),
            None => println!("{action}: {username}: done"),
        }
    }
}

/// Asks on stderr, reads one line from stdin: "y" or "yes" goes on; anything else (end of
/// input included) does not.
fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    match std::io::stdin().lock().read_line(&mut answer) {
        Ok(_) => matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
        Err(_) => false,
    }
}

fn print_users(users: &[PoolUser], json: bool) {
    if json {
        println!("{}", json!(users));
        return;
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.username.clone(),
                u.email.clone().unwrap_or_default(),
                u.status.clone(),
                if u.enabled { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    print_rows(&["USERNAME", "EMAIL", "STATUS", "ENABLED"], &rows);
}

/// Columns padded to their widest cell.
fn print_rows(head: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(head.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

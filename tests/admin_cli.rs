//! `ssogate users` and `ssogate groups` against a real Cognito API emulator (moto server):
//! every command as a table and as JSON, what the pool looks like afterwards, and the errors
//! a script sees (words on stderr, exit codes).
#![cfg(feature = "cognito-admin")]

mod common;
#[path = "common/moto.rs"]
mod moto;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use moto::{aws_env, Moto};
use serde_json::Value;

/// `ssogate <args> --user-pool-id <pool> --endpoint-url <moto>`, with `stdin` as input.
fn ssogate_in(moto: &Moto, pool: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(args)
        .args(["--user-pool-id", pool, "--endpoint-url", &moto.url()])
        .envs(aws_env())
        .env_remove("SSOGATE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssogate runs");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("ssogate ends")
}

fn ssogate(moto: &Moto, pool: &str, args: &[&str]) -> Output {
    ssogate_in(moto, pool, args, "")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

fn usernames(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| u["username"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

async fn pool_of_two(moto: &Moto) -> String {
    moto.seed_pool(&[
        ("ann", "ann@example.com", &["staff"]),
        ("bob", "bob@example.com", &["admins"]),
    ])
    .await
}

#[tokio::test]
async fn users_list_as_table_json_by_group_and_filter() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    let table = ssogate(&moto, &pool, &["users", "list"]);
    ok(&table);
    let text = stdout(&table);
    assert!(text.starts_with("USERNAME"), "{text}");
    assert!(
        text.contains("ann") && text.contains("bob@example.com"),
        "{text}"
    );
    assert!(text.contains("CONFIRMED"), "{text}");

    let all = json(&ssogate(&moto, &pool, &["users", "list", "--json"]));
    assert_eq!(usernames(&all), ["ann", "bob"]);
    assert_eq!(all[0]["enabled"], true);

    let staff = json(&ssogate(
        &moto,
        &pool,
        &["users", "list", "--group", "staff", "--json"],
    ));
    assert_eq!(usernames(&staff), ["ann"]);

    let filtered = json(&ssogate(
        &moto,
        &pool,
        &["users", "list", "--filter", "email ^= \"bob\"", "--json"],
    ));
    assert_eq!(usernames(&filtered), ["bob"]);
}

#[tokio::test]
async fn users_show_with_groups_and_a_missing_user() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    let shown = json(&ssogate(&moto, &pool, &["users", "show", "ann", "--json"]));
    assert_eq!(shown["email"], "ann@example.com");
    assert_eq!(shown["groups"], serde_json::json!(["staff"]));
    let table = ssogate(&moto, &pool, &["users", "show", "bob"]);
    ok(&table);
    assert!(
        stdout(&table)
            .lines()
            .any(|l| l.starts_with("groups ") && l.ends_with(" admins")),
        "{}",
        stdout(&table)
    );

    let missing = ssogate(&moto, &pool, &["users", "show", "ghost"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(
        stderr(&missing).contains("user \"ghost\" not found"),
        "{}",
        stderr(&missing)
    );
    let missing = ssogate(&moto, &pool, &["users", "show", "ghost", "--json"]);
    assert_eq!(json(&missing)["error"], "user_not_found");
}

#[tokio::test]
async fn users_create_prints_the_password_once_and_joins_groups() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    let made = ssogate(
        &moto,
        &pool,
        &[
            "users",
            "create",
            "carl",
            "--email",
            "carl@example.com",
            "--group",
            "staff",
        ],
    );
    ok(&made);
    let text = stdout(&made);
    assert!(
        text.contains("created carl (carl@example.com) in staff"),
        "{text}"
    );
    let password = text
        .rsplit(": ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert_eq!(password.len(), 16, "{text}");
    let user = moto.user(&pool, "carl").await.expect("carl exists");
    assert_eq!(user["UserStatus"], "FORCE_CHANGE_PASSWORD");
    assert_eq!(moto.groups_of(&pool, "carl").await, ["staff"]);

    let made = json(&ssogate(
        &moto,
        &pool,
        &[
            "users",
            "create",
            "dora",
            "--email",
            "dora@example.com",
            "--temporary-password",
            "Temporary1x",
            "--json",
        ],
    ));
    assert_eq!(made["temporary_password"], "Temporary1x");
    assert_eq!(made["invite_sent"], false);
    assert!(moto.user(&pool, "dora").await.is_some());
}

#[tokio::test]
async fn users_create_errors_in_words() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    let again = ssogate(
        &moto,
        &pool,
        &["users", "create", "ann", "--email", "a@example.com"],
    );
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("user \"ann\" already exists"),
        "{}",
        stderr(&again)
    );

    // A temporary password the pool's policy refuses:
    // `temporary_passwords_meet_the_pools_policy_or_are_refused_in_words`.

    let no_group = ssogate(
        &moto,
        &pool,
        &[
            "users",
            "create",
            "fay",
            "--email",
            "f@example.com",
            "--group",
            "ghosts",
        ],
    );
    assert_eq!(no_group.status.code(), Some(3));
    assert!(
        stderr(&no_group).contains("group \"ghosts\" not found"),
        "{}",
        stderr(&no_group)
    );
    assert!(moto.user(&pool, "fay").await.is_none(), "no half-made user");
}

#[tokio::test]
async fn users_delete_asks_first() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    let declined = ssogate_in(&moto, &pool, &["users", "delete", "ann"], "n\n");
    assert_eq!(declined.status.code(), Some(8));
    assert!(
        stderr(&declined).contains("not deleted"),
        "{}",
        stderr(&declined)
    );
    assert!(moto.user(&pool, "ann").await.is_some());

    ok(&ssogate_in(
        &moto,
        &pool,
        &["users", "delete", "ann"],
        "yes\n",
    ));
    assert!(moto.user(&pool, "ann").await.is_none());

    let done = json(&ssogate(
        &moto,
        &pool,
        &["users", "delete", "bob", "--yes", "--json"],
    ));
    assert_eq!(done["ok"], true);
    assert!(moto.user(&pool, "bob").await.is_none());

    let missing = ssogate(&moto, &pool, &["users", "delete", "ghost", "--yes"]);
    assert_eq!(missing.status.code(), Some(3));
}

#[tokio::test]
async fn users_disable_and_enable() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    let off = ssogate(&moto, &pool, &["users", "disable", "ann"]);
    ok(&off);
    assert_eq!(stdout(&off).trim(), "disable: ann: done");
    assert_eq!(
        moto.user(&pool, "ann").await.expect("ann")["Enabled"],
        false
    );
    let listed = json(&ssogate(&moto, &pool, &["users", "list", "--json"]));
    let ann = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "ann")
        .cloned();
    assert_eq!(ann.expect("ann listed")["enabled"], false);

    ok(&ssogate(
        &moto,
        &pool,
        &["users", "enable", "ann", "--json"],
    ));
    assert_eq!(moto.user(&pool, "ann").await.expect("ann")["Enabled"], true);

    let missing = ssogate(&moto, &pool, &["users", "disable", "ghost"]);
    assert_eq!(missing.status.code(), Some(3));
}

#[tokio::test]
async fn users_add_and_remove_groups() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    ok(&ssogate(
        &moto,
        &pool,
        &["users", "add-group", "ann", "admins"],
    ));
    let mut groups = moto.groups_of(&pool, "ann").await;
    groups.sort();
    assert_eq!(groups, ["admins", "staff"]);

    let done = json(&ssogate(
        &moto,
        &pool,
        &["users", "remove-group", "ann", "staff", "--json"],
    ));
    assert_eq!(done["group"], "staff");
    assert_eq!(moto.groups_of(&pool, "ann").await, ["admins"]);

    let no_group = ssogate(&moto, &pool, &["users", "add-group", "ann", "ghosts"]);
    assert_eq!(no_group.status.code(), Some(3));
    assert!(
        stderr(&no_group).contains("group \"ghosts\" not found"),
        "{}",
        stderr(&no_group)
    );
    let no_user = ssogate(&moto, &pool, &["users", "add-group", "ghost", "staff"]);
    assert_eq!(no_user.status.code(), Some(3));
    assert!(
        stderr(&no_user).contains("user \"ghost\" not found"),
        "{}",
        stderr(&no_user)
    );
}

#[tokio::test]
async fn users_reset_password_forces_a_new_one() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    let reset = json(&ssogate(
        &moto,
        &pool,
        &["users", "reset-password", "ann", "--json"],
    ));
    assert_eq!(reset["temporary_password"].as_str().map(str::len), Some(16));
    assert_eq!(
        moto.user(&pool, "ann").await.expect("ann")["UserStatus"],
        "FORCE_CHANGE_PASSWORD"
    );
    let table = ssogate(&moto, &pool, &["users", "reset-password", "bob"]);
    ok(&table);
    assert!(
        stdout(&table).contains("new temporary password for bob"),
        "{}",
        stdout(&table)
    );

    let weak = ssogate(
        &moto,
        &pool,
        &[
            "users",
            "reset-password",
            "bob",
            "--temporary-password",
            "weak",
        ],
    );
    assert_eq!(weak.status.code(), Some(5), "{}", stderr(&weak));
    assert!(
        stderr(&weak).contains("password policy"),
        "{}",
        stderr(&weak)
    );
}

#[tokio::test]
async fn groups_list_and_members() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;

    let table = ssogate(&moto, &pool, &["groups", "list"]);
    ok(&table);
    assert!(stdout(&table).starts_with("GROUP"), "{}", stdout(&table));
    assert!(stdout(&table).contains("staff"), "{}", stdout(&table));
    let groups = json(&ssogate(&moto, &pool, &["groups", "list", "--json"]));
    let mut names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["admins", "staff"]);

    let members = json(&ssogate(
        &moto,
        &pool,
        &["groups", "members", "admins", "--json"],
    ));
    assert_eq!(usernames(&members), ["bob"]);
    let table = ssogate(&moto, &pool, &["groups", "members", "staff"]);
    assert!(
        stdout(&table).contains("ann@example.com"),
        "{}",
        stdout(&table)
    );

    let missing = ssogate(&moto, &pool, &["groups", "members", "ghosts"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(
        stderr(&missing).contains("group \"ghosts\" not found"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test]
async fn the_pool_comes_from_the_config_and_problems_are_named() {
    let moto = Moto::start();
    let pool = pool_of_two(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ssogate.toml");
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n\n[admin]\nuser_pool_id = \"{pool}\"\nendpoint_url = \"{}\"\n",
            moto.url()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ssogate"))
            .args(args)
            .envs(aws_env())
            .env_remove("SSOGATE_CONFIG")
            .output()
            .expect("ssogate runs")
    };
    let listed = run(&[
        "users",
        "list",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]);
    ok(&listed);
    assert_eq!(usernames(&json(&listed)), ["ann", "bob"]);

    let no_pool = run(&["users", "list"]);
    assert_eq!(no_pool.status.code(), Some(2));
    assert!(
        stderr(&no_pool).contains("no user pool"),
        "{}",
        stderr(&no_pool)
    );

    std::fs::write(&config, "[[routes]]\nupstream = \"http://127.0.0.1:1\"\npublic = true\n\n[admin]\nuser_pool_id = \"nonsense\"\n").unwrap();
    let bad = run(&["groups", "list", "--config", config.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("admin.user_pool_id"),
        "{}",
        stderr(&bad)
    );

    // Nothing listens on a port moto just gave back.
    let closed = common::free_port();
    let unreachable = run(&[
        "users",
        "list",
        "--user-pool-id",
        &pool,
        "--endpoint-url",
        &format!("http://127.0.0.1:{closed}"),
    ]);
    assert_eq!(
        unreachable.status.code(),
        Some(7),
        "{}",
        stderr(&unreachable)
    );
    assert!(
        stderr(&unreachable).contains("cannot reach the Cognito API"),
        "{}",
        stderr(&unreachable)
    );
}

/// moto enforces IAM policies once `INITIAL_NO_AUTH_ACTION_COUNT` requests have passed: the
/// first five (the IAM user, its policy and key, the pool, one user) set the scene, then an
/// identity allowed only `cognito-idp:ListUsers` tries to disable someone.
#[tokio::test]
async fn a_missing_permission_names_the_iam_action() {
    let moto = Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "5")]);
    moto.iam(&[("Action", "CreateUser"), ("UserName", "ops")])
        .await;
    moto.iam(&[
        ("Action", "PutUserPolicy"),
        ("UserName", "ops"),
        ("PolicyName", "list-only"),
        (
            "PolicyDocument",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["cognito-idp:ListUsers"],"Resource":"*"}]}"#,
        ),
    ])
    .await;
    let key = moto
        .iam(&[("Action", "CreateAccessKey"), ("UserName", "ops")])
        .await;
    let between = |a: &str, b: &str| {
        let start = key.find(a).expect(a) + a.len();
        key[start..start + key[start..].find(b).expect(b)].to_string()
    };
    let (key_id, secret) = (
        between("<AccessKeyId>", "</AccessKeyId>"),
        between("<SecretAccessKey>", "</SecretAccessKey>"),
    );
    let pool = moto
        .call("CreateUserPool", serde_json::json!({ "PoolName": "iam" }))
        .await["UserPool"]["Id"]
        .as_str()
        .expect("pool id")
        .to_string();
    moto.call(
        "AdminCreateUser",
        serde_json::json!({ "UserPoolId": pool, "Username": "ann", "MessageAction": "SUPPRESS" }),
    )
    .await;

    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ssogate"))
            .args(args)
            .args(["--user-pool-id", &pool, "--endpoint-url", &moto.url()])
            .envs(aws_env())
            .env("AWS_ACCESS_KEY_ID", &key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env_remove("SSOGATE_CONFIG")
            .output()
            .expect("ssogate runs")
    };
    let listed = run(&["users", "list", "--json"]);
    ok(&listed);
    assert_eq!(usernames(&json(&listed)), ["ann"]);

    let denied = run(&["users", "disable", "ann"]);
    assert_eq!(denied.status.code(), Some(6), "{}", stderr(&denied));
    assert!(
        stderr(&denied).contains("may not call cognito-idp:AdminDisableUser"),
        "{}",
        stderr(&denied)
    );
    let denied = run(&["groups", "list", "--json"]);
    assert_eq!(denied.status.code(), Some(6));
    assert_eq!(json(&denied)["error"], "permission_denied");
}

/// A pool whose policy asks for 20 characters of every class.
async fn strict_pool(moto: &Moto) -> String {
    let pool = moto
        .call(
            "CreateUserPool",
            serde_json::json!({ "PoolName": "strict", "Policies": { "PasswordPolicy": {
                "MinimumLength": 20, "RequireUppercase": true, "RequireLowercase": true,
                "RequireNumbers": true, "RequireSymbols": true } } }),
        )
        .await;
    pool["UserPool"]["Id"]
        .as_str()
        .expect("pool id")
        .to_string()
}

#[tokio::test]
async fn temporary_passwords_meet_the_pools_policy_or_are_refused_in_words() {
    let moto = Moto::start();
    let pool = strict_pool(&moto).await;

    // Chosen and too weak: refused before Cognito is asked, naming what is missing.
    let weak = ssogate(
        &moto,
        &pool,
        &[
            "users",
            "create",
            "ann",
            "--email",
            "ann@example.com",
            "--temporary-password",
            "Short1x",
        ],
    );
    assert_eq!(weak.status.code(), Some(5), "{}", stderr(&weak));
    assert!(
        stderr(&weak).contains(
            "password policy not met: the pool's policy asks for at least 20 characters, a symbol"
        ),
        "{}",
        stderr(&weak)
    );
    assert!(moto.user(&pool, "ann").await.is_none(), "no user was made");

    // Generated: as long as the policy asks, and Cognito's (moto's) own check accepts it.
    let made = ssogate(
        &moto,
        &pool,
        &[
            "users",
            "create",
            "ann",
            "--email",
            "ann@example.com",
            "--json",
        ],
    );
    ok(&made);
    let password = json(&made)["temporary_password"]
        .as_str()
        .expect("a password")
        .to_string();
    assert_eq!(password.len(), 20, "{password}");
    moto.call(
        "AdminSetUserPassword",
        serde_json::json!({ "UserPoolId": pool, "Username": "ann", "Password": password,
                            "Permanent": false }),
    )
    .await;
    let reset = ssogate(&moto, &pool, &["users", "reset-password", "ann", "--json"]);
    ok(&reset);
    assert_eq!(
        json(&reset)["temporary_password"].as_str().map(str::len),
        Some(20)
    );

    // Refused by Cognito itself (moto allows at most 98 characters): its message, in words.
    let long = format!("Aa1!{}", "x".repeat(100));
    let refused = ssogate(
        &moto,
        &pool,
        &[
            "users",
            "reset-password",
            "ann",
            "--temporary-password",
            &long,
        ],
    );
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    assert!(
        stderr(&refused)
            .contains("password policy not met: The provided password does not confirm"),
        "{}",
        stderr(&refused)
    );
}

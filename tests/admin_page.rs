//! The admin page at `/oauth2/admin` against a real Cognito API emulator (moto server) and
//! the test identity provider: who may open it, every change it offers (and what the pool
//! looks like afterwards), the CSRF refusal, the delete confirmation, errors in words, the
//! audit line per change, and roles shown beside groups.
#![cfg(feature = "cognito-admin")]

mod common;
#[path = "common/idp.rs"]
mod idp;
#[path = "common/moto.rs"]
mod moto;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, sign_in, Idp};
use moto::{aws_env, Moto};
use reqwest::{Client, StatusCode};

struct Stand {
    moto: Moto,
    pool: String,
    gw: Gateway,
    _idp: Idp,
    _upstream: Upstream,
}

/// moto's pool (ann in staff, bob in admins), the test provider (alice in admins and staff,
/// bob in staff), and a gateway whose admin page admits `admins`.
async fn stand(admin_enabled: bool) -> Stand {
    let moto = Moto::start();
    let pool = moto
        .seed_pool(&[
            ("ann", "ann@example.com", &["staff"]),
            ("bob", "bob@example.com", &["admins"]),
        ])
        .await;
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let extra = format!(
        "[admin]\nenabled = {admin_enabled}\nallowed_groups = [\"admins\"]\nuser_pool_id = \"{pool}\"\nendpoint_url = \"{}\"\n\n\
         [roles]\nadmins = [\"admin\", \"editor\"]\nstaff = [\"viewer\"]\n",
        moto.url()
    );
    let gw = Gateway::start_with_env(
        &idp.gateway_config(port, &upstream.url, "", &extra),
        &aws_env(),
    );
    gw.wait_ready(Duration::from_secs(30));
    Stand {
        moto,
        pool,
        gw,
        _idp: idp,
        _upstream: upstream,
    }
}

/// A browser signed in as `user`, and the admin page as it then sees it.
async fn admin_page_as(s: &Stand, user: &str) -> (Client, StatusCode, String) {
    let client = browser();
    // Sign-in never sends the browser back into the gateway's own paths: the app, then the page.
    let (resp, _) = sign_in(&client, &s.gw.url("/"), user).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client.get(s.gw.url("/oauth2/admin")).send().await.unwrap();
    let status = resp.status();
    (client, status, resp.text().await.unwrap())
}

fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token in {page}"))
        + "name=\"csrf\" value=\"".len();
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

async fn post(s: &Stand, client: &Client, form: &[(&str, &str)]) -> (StatusCode, String) {
    let resp = client
        .post(s.gw.url("/oauth2/admin"))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn admins_see_users_with_groups_and_roles_others_get_403() {
    let s = stand(true).await;
    let (_, status, page) = admin_page_as(&s, "alice").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<td>ann@example.com</td>"), "{page}");
    assert!(page.contains("<td>staff</td><td>viewer</td>"), "{page}");
    assert!(
        page.contains("<td>admins</td><td>admin, editor</td>"),
        "{page}"
    );
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no outside assets"
    );

    let (_, status, page) = admin_page_as(&s, "bob").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("not in a group that may manage users"),
        "{page}"
    );
}

#[tokio::test]
async fn without_enabled_there_is_no_admin_page() {
    let s = stand(false).await;
    let client = browser();
    let (resp, _) = sign_in(&client, &s.gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client.get(s.gw.url("/oauth2/admin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_change_works_and_is_audited() {
    let s = stand(true).await;
    let (client, _, page) = admin_page_as(&s, "alice").await;
    let csrf = csrf_of(&page);

    let (status, page) = post(
        &s,
        &client,
        &[
            ("csrf", &csrf),
            ("action", "create"),
            ("user", "carl"),
            ("email", "carl@example.com"),
            ("groups", "staff"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"temporary-password\""), "{page}");
    assert_eq!(
        s.moto.user(&s.pool, "carl").await.expect("carl")["UserStatus"],
        "FORCE_CHANGE_PASSWORD"
    );
    assert_eq!(s.moto.groups_of(&s.pool, "carl").await, ["staff"]);
    let audit = s.gw.wait_for_log(Duration::from_secs(5), |l| {
        l["message"] == "admin change" && l["action"] == "create"
    });
    assert_eq!(audit["admin"], "alice");
    assert_eq!(audit["user"], "carl");
    assert_eq!(audit["outcome"], "done");

    let (status, page) = post(
        &s,
        &client,
        &[("csrf", &csrf), ("action", "disable"), ("user", "ann")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(s.moto.user(&s.pool, "ann").await.unwrap()["Enabled"], false);
    assert!(page.contains("Disabled ann"), "{page}");
    post(
        &s,
        &client,
        &[("csrf", &csrf), ("action", "enable"), ("user", "ann")],
    )
    .await;
    assert_eq!(s.moto.user(&s.pool, "ann").await.unwrap()["Enabled"], true);

    post(
        &s,
        &client,
        &[
            ("csrf", &csrf),
            ("action", "add-group"),
            ("user", "ann"),
            ("group", "admins"),
        ],
    )
    .await;
    let mut groups = s.moto.groups_of(&s.pool, "ann").await;
    groups.sort();
    assert_eq!(groups, ["admins", "staff"]);
    post(
        &s,
        &client,
        &[
            ("csrf", &csrf),
            ("action", "remove-group"),
            ("user", "ann"),
            ("group", "staff"),
        ],
    )
    .await;
    assert_eq!(s.moto.groups_of(&s.pool, "ann").await, ["admins"]);
    let audit =
        s.gw.wait_for_log(Duration::from_secs(5), |l| l["action"] == "remove-group");
    assert_eq!(audit["group"], "staff");

    let (_, page) = post(
        &s,
        &client,
        &[
            ("csrf", &csrf),
            ("action", "reset-password"),
            ("user", "bob"),
        ],
    )
    .await;
    assert!(page.contains("New temporary password for bob"), "{page}");
    assert_eq!(
        s.moto.user(&s.pool, "bob").await.unwrap()["UserStatus"],
        "FORCE_CHANGE_PASSWORD"
    );

    let (status, page) = post(
        &s,
        &client,
        &[("csrf", &csrf), ("action", "disable"), ("user", "ghost")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("user &quot;ghost&quot; not found"), "{page}");
    let audit =
        s.gw.wait_for_log(Duration::from_secs(5), |l| l["user"] == "ghost");
    assert_eq!(audit["outcome"], "user_not_found");
}

#[tokio::test]
async fn delete_asks_for_confirmation_first() {
    let s = stand(true).await;
    let (client, _, page) = admin_page_as(&s, "alice").await;
    let csrf = csrf_of(&page);

    let confirm = client
        .get(s.gw.url("/oauth2/admin/delete?user=ann"))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);
    let confirm = confirm.text().await.unwrap();
    assert!(
        confirm.contains("Delete <b>ann</b> from the pool?"),
        "{confirm}"
    );
    assert!(
        confirm.contains("name=\"confirm\" value=\"yes\""),
        "{confirm}"
    );

    // A delete without the confirmation only asks.
    let (status, page) = post(
        &s,
        &client,
        &[("csrf", &csrf), ("action", "delete"), ("user", "ann")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Delete <b>ann</b> from the pool?"), "{page}");
    assert!(s.moto.user(&s.pool, "ann").await.is_some());

    let (status, page) = post(
        &s,
        &client,
        &[
            ("csrf", &csrf),
            ("action", "delete"),
            ("user", "ann"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Deleted ann"), "{page}");
    assert!(s.moto.user(&s.pool, "ann").await.is_none());
}

#[tokio::test]
async fn a_change_without_the_sessions_csrf_token_is_refused() {
    let s = stand(true).await;
    let (client, _, page) = admin_page_as(&s, "alice").await;
    let csrf = csrf_of(&page);

    let (status, page) = post(&s, &client, &[("action", "disable"), ("user", "ann")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("nothing was changed"), "{page}");
    let forged = format!("{}A", &csrf[..csrf.len() - 1]);
    let forged = if forged == csrf {
        format!("{}B", &csrf[..csrf.len() - 1])
    } else {
        forged
    };
    let (status, _) = post(
        &s,
        &client,
        &[("csrf", &forged), ("action", "disable"), ("user", "ann")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(s.moto.user(&s.pool, "ann").await.unwrap()["Enabled"], true);

    // Without the session, a token taken from a page changes nothing.
    let s2 = admin_page_as(&s, "alice").await;
    let other = csrf_of(&s2.2);
    let anonymous = browser();
    let resp = anonymous
        .post(s.gw.url("/oauth2/admin"))
        .form(&[
            ("csrf", other.as_str()),
            ("action", "disable"),
            ("user", "ann"),
        ])
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::OK, "no session, no change");
    assert_eq!(s.moto.user(&s.pool, "ann").await.unwrap()["Enabled"], true);
}

//! `[roles]`: the app gets the person's roles in `X-Forwarded-Roles` (never a client's own, in
//! any spelling, on any route), and `allowed_roles` admits by them.

mod common;
#[path = "common/idp.rs"]
mod idp;

use std::time::Duration;

use common::{free_port, Gateway, Upstream};
use idp::{browser, sign_in, Idp};
use reqwest::StatusCode;

const ROLES: &str = "[roles]\nadmins = [\"admin\", \"editor\"]\nstaff = [\"viewer\"]\n\n\
    [[routes]]\npath_prefix = \"/edit\"\nupstream = \"{up}\"\nallowed_roles = [\"editor\"]\n\n\
    [[routes]]\npath_prefix = \"/public\"\nupstream = \"{up}\"\npublic = true\n";

#[tokio::test]
async fn the_app_sees_the_roles_of_the_groups_and_never_a_clients_own() {
    let upstream = Upstream::echo();
    let port = free_port();
    let idp = Idp::start(&[port]);
    let extra = ROLES.replace("{up}", &upstream.url);
    let gw = Gateway::start(&idp.gateway_config(port, &upstream.url, "", &extra));
    gw.wait_ready(Duration::from_secs(15));

    let alice = browser();
    let (resp, _) = sign_in(&alice, &gw.url("/"), "alice").await;
    assert_eq!(resp.status(), StatusCode::OK);
    for spoof in [
        "X-Forwarded-Roles",
        "x_forwarded_roles",
        "X_FORWARDED-ROLES",
    ] {
        let resp = alice
            .get(gw.url("/edit/page"))
            .header(spoof, "superuser")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "alice (admins) has editor");
        let seen = upstream.last_request().unwrap();
        let roles: Vec<_> = seen.headers.get_all("x-forwarded-roles").iter().collect();
        assert_eq!(roles, ["admin,editor,viewer"], "{spoof}");
        assert!(!seen.headers.contains_key("x_forwarded_roles"), "{spoof}");
        assert!(!seen.headers.contains_key("x_forwarded-roles"), "{spoof}");
    }

    let anonymous = browser();
    for spoof in ["X-Forwarded-Roles", "x_forwarded_roles"] {
        let resp = anonymous
            .get(gw.url("/public/x"))
            .header(spoof, "admin")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let seen = upstream.last_request().unwrap();
        assert!(
            seen.headers.keys().all(|k| !k
                .as_str()
                .replace('_', "-")
                .eq_ignore_ascii_case("x-forwarded-roles")),
            "{spoof} reached the app on a public route: {:?}",
            seen.headers
        );
    }

    let bob = browser();
    let (resp, _) = sign_in(&bob, &gw.url("/"), "bob").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        upstream.last_request().unwrap().header("x-forwarded-roles"),
        Some("viewer")
    );
    let resp = bob.get(gw.url("/edit/page")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "bob (staff) has no editor role"
    );
}

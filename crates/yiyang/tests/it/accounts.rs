//! Accounts after they are created: disable and enable, unlock, reset (changed at the next login),
//! change of roles and scope with the separation rules, one's own password change, and TOTP codes
//! taken once.

use crate::support::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

const COUNTY: &str = "320682000000";

async fn login_as(t: &TestApp, user: &str, pw: &str) -> (StatusCode, Value, String) {
    let (s, v, h) = t
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": user, "password": pw})),
        )
        .await;
    let c = if s == StatusCode::OK {
        cookie_of(&h)
    } else {
        String::new()
    };
    (s, v, c)
}

async fn id_of(t: &TestApp, c: &str, user: &str) -> String {
    let (_, v, _) = t.call("GET", "/api/v1/users", Some(c), None).await;
    v.as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == user)
        .unwrap_or_else(|| panic!("{user} in {v}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn db_account_lifecycle() {
    let t = TestApp::new("demo", 10).await;
    for (u, role) in [
        ("sec", "security_admin"),
        ("sec2", "security_admin"),
        ("of1", "officer"),
        ("of2", "officer"),
    ] {
        t.add_user(u, &[role], COUNTY, all_scopes()).await;
    }
    let sec = t.login("sec").await;
    let of1 = t.login("of1").await;
    let of1_id = id_of(&t, &sec, "of1").await;
    let user = |id: &str, what: &str| format!("/api/v1/users/{id}/{what}");

    // Disable: a reason is required; the account's session ends at once and it cannot log in.
    let (s, _, _) = t
        .call(
            "POST",
            &user(&of1_id, "disable"),
            Some(&sec),
            Some(json!({"reason": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v, _) = t
        .call(
            "POST",
            &user(&of1_id, "disable"),
            Some(&sec),
            Some(json!({"reason": "调离岗位"})),
        )
        .await;
    assert_eq!((s, &v["disabled"]), (StatusCode::OK, &json!(true)), "{v}");
    assert_eq!(
        t.call("GET", "/api/v1/me", Some(&of1), None).await.0,
        StatusCode::UNAUTHORIZED,
        "a disabled account's session ends at once"
    );
    assert_eq!(
        login_as(&t, "of1", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _, _) = t
        .call(
            "POST",
            &user(&of1_id, "enable"),
            Some(&sec),
            Some(json!({"reason": "返岗"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        login_as(&t, "OF1", PASSWORD).await.0,
        StatusCode::OK,
        "usernames ignore case"
    );
    // Nobody disables themselves.
    let sec_id = id_of(&t, &sec, "sec").await;
    let (s, _, _) = t
        .call(
            "POST",
            &user(&sec_id, "disable"),
            Some(&sec),
            Some(json!({"reason": "试试"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Locked after failed logins, unlocked by the security admin.
    for _ in 0..5 {
        login_as(&t, "of2", "Wrong-password-99").await;
    }
    assert_eq!(
        login_as(&t, "of2", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    let of2_id = id_of(&t, &sec, "of2").await;
    let (_, v, _) = t.call("GET", "/api/v1/users", Some(&sec), None).await;
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "of2" && u["locked_until"].is_i64())
    );
    let (s, _, _) = t
        .call(
            "POST",
            &user(&of2_id, "unlock"),
            Some(&sec),
            Some(json!({"reason": "本人来电核实"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(login_as(&t, "of2", PASSWORD).await.0, StatusCode::OK);

    // Reset: a temporary password shown once; the old one and the sessions stop working; the
    // account must change it before doing anything else.
    let of1 = login_as(&t, "of1", PASSWORD).await.2;
    let (s, v, _) = t
        .call(
            "POST",
            &user(&of1_id, "reset-password"),
            Some(&sec),
            Some(json!({"reason": "忘记密码"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let temp = v["temporary_password"].as_str().unwrap().to_string();
    assert!(temp.chars().count() >= 12);
    assert_eq!(
        t.call("GET", "/api/v1/me", Some(&of1), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_as(&t, "of1", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v, of1) = login_as(&t, "of1", &temp).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["me"]["must_change_password"], true, "{v}");
    let (s, v, _) = t
        .call("POST", "/api/v1/elders/search", Some(&of1), Some(json!({})))
        .await;
    assert_eq!(
        (s, &v["code"]),
        (StatusCode::FORBIDDEN, &json!("password_change_required"))
    );
    for (current, new, field) in [
        (
            "Not-the-password-1",
            "Brand-new-pass-2026",
            "current_password",
        ),
        (temp.as_str(), "short1A", "new_password"),
        (temp.as_str(), "of1-Password-2026", "new_password"),
    ] {
        let (s, v, _) = t
            .call(
                "POST",
                "/api/v1/me/password",
                Some(&of1),
                Some(json!({"current_password": current, "new_password": new})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{new}: {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains(if field == "current_password" {
                    "当前密码"
                } else {
                    "密码"
                }),
            "{v}"
        );
    }
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/me/password",
            Some(&of1),
            Some(json!({"current_password": temp, "new_password": "县民政局老龄科2026年度"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = t
        .call("POST", "/api/v1/elders/search", Some(&of1), Some(json!({})))
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the same session goes on once the password is changed"
    );
    assert_eq!(
        login_as(&t, "of1", "县民政局老龄科2026年度").await.0,
        StatusCode::OK
    );

    // Roles and scope: with a reason; never one's own, another security admin's, or to security admin.
    let change = |roles: Value, reason: &str| json!({"roles": roles, "region_code": "320682001000", "scopes": {"edit": false, "aggregates": true, "individuals": true}, "reason": reason});
    let (s, v, _) = t
        .call(
            "PUT",
            &user(&of2_id, "access"),
            Some(&sec),
            Some(change(json!(["worker"]), "转岗为网格员")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["roles"].clone(), v["region_code"].clone()),
        (json!(["worker"]), json!("320682001000"))
    );
    let sec2_id = id_of(&t, &sec, "sec2").await;
    for (id, roles) in [
        (&sec_id, json!(["officer"])),
        (&sec2_id, json!(["officer"])),
        (&of2_id, json!(["security_admin"])),
    ] {
        let (s, v, _) = t
            .call(
                "PUT",
                &user(id, "access"),
                Some(&sec),
                Some(change(roles, "调整")),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    }
    // Only the security admin manages accounts.
    let (s, _, _) = t
        .call(
            "POST",
            &user(&of2_id, "disable"),
            Some(&of1),
            Some(json!({"reason": "越权"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A new account made in the console changes its password at the first login; names are one
    // name whatever their case.
    let new = |name: &str| json!({"username": name, "display_name": "新用户", "password": "Chushi-Mima-2026", "roles": ["worker"], "region_code": "320682001000", "scopes": {"edit": true, "aggregates": false, "individuals": true}});
    let (s, _, _) = t
        .call("POST", "/api/v1/users", Some(&sec), Some(new("newbie")))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = t
        .call("POST", "/api/v1/users", Some(&sec), Some(new("NewBie")))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, v, _) = login_as(&t, "newbie", "Chushi-Mima-2026").await;
    assert_eq!(v["me"]["must_change_password"], true);

    // Every change is in the audit log with its reason.
    for (action, reason) in [
        ("user.disable", "调离岗位"),
        ("user.enable", "返岗"),
        ("user.unlock", "本人来电核实"),
        ("user.reset_password", "忘记密码"),
        ("user.access", "转岗为网格员"),
    ] {
        let sql = format!("SELECT detail FROM audit_log WHERE action = '{action}'");
        let d: String = sqlx::Row::get(
            &sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_one(&t.state.db.pool)
                .await
                .unwrap(),
            0,
        );
        assert!(d.contains(reason), "{action}: {d}");
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'user.change_password'")
            .await,
        1
    );
}

#[tokio::test]
async fn db_totp_codes_are_taken_once_and_re_enrolment_needs_both_factors() {
    use yiyang::identity::totp;
    // Keep the whole test inside one 30 s step and the two next to it.
    let now = yiyang::platform::now_secs();
    if now % 30 > 20 {
        tokio::time::sleep(std::time::Duration::from_secs((31 - now % 30) as u64)).await;
    }
    let t0 = yiyang::platform::now_secs();
    let t = TestApp::new("production", 0).await;
    t.add_user("carol", &["officer"], COUNTY, all_scopes())
        .await;
    let (_, v, pending) = login_as(&t, "carol", PASSWORD).await;
    let key = totp::base32_decode(v["secret"].as_str().unwrap()).unwrap();
    let code = |dt: i64| totp::code_at(&key, t0 + dt);
    // Enrol with the previous step's code (phones drift).
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/auth/totp",
            Some(&pending),
            Some(json!({"code": code(-30)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The next login with this step's code works; the same code again does not.
    let (_, _, pending) = login_as(&t, "carol", PASSWORD).await;
    let (s, _, h) = t
        .call(
            "POST",
            "/api/v1/auth/totp",
            Some(&pending),
            Some(json!({"code": code(0)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let c = cookie_of(&h);
    let (_, _, pending) = login_as(&t, "carol", PASSWORD).await;
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/auth/totp",
            Some(&pending),
            Some(json!({"code": code(0)})),
        )
        .await;
    assert_eq!(
        (s, &v["code"]),
        (StatusCode::UNAUTHORIZED, &json!("totp_used")),
        "{v}"
    );
    // Replacing the authenticator takes the password and a current code.
    for body in [
        json!({}),
        json!({"password": "Wrong-password-2026", "code": code(30)}),
        json!({"password": PASSWORD, "code": code(0)}),
    ] {
        let (s, v, _) = t
            .call(
                "POST",
                "/api/v1/me/totp/setup",
                Some(&c),
                Some(body.clone()),
            )
            .await;
        assert!(s.is_client_error(), "{body}: {s} {v}");
    }
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/me/totp/setup",
            Some(&c),
            Some(json!({"password": PASSWORD, "code": code(30)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["secret"].is_string());
}

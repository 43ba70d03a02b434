use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn db_lockout_identical_answers_and_logout() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("alice", &["officer"], "320682000000", all_scopes())
        .await;
    let bad = |u: &str| json!({"username": u, "password": "wrong-password"});
    let (s1, unknown, _) = t
        .call("POST", "/api/v1/auth/login", None, Some(bad("nobody")))
        .await;
    let (s2, wrong, _) = t
        .call("POST", "/api/v1/auth/login", None, Some(bad("alice")))
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        unknown["detail"], wrong["detail"],
        "unknown user and wrong password answer alike"
    );
    for _ in 0..4 {
        t.call("POST", "/api/v1/auth/login", None, Some(bad("alice")))
            .await;
    }
    // Five failures: locked, even with the right password, with the very same answer.
    let (s, locked, _) = t
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(locked["detail"], unknown["detail"]);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'auth.locked'")
            .await,
        1
    );
    // Unlock by time passing (simulated), then log in and out; the cookie is dead afterwards.
    sqlx::query("UPDATE app_user SET locked_until = 1 WHERE username = 'alice'")
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    let c = t.login("alice").await;
    let (s, _, _) = t.call("GET", "/api/v1/me", Some(&c), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = t.call("POST", "/api/v1/auth/logout", Some(&c), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v, _) = t.call("GET", "/api/v1/me", Some(&c), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["request_id"].is_string() && v["detail"].as_str().unwrap().contains("登录"));
}

#[tokio::test]
async fn db_idle_and_absolute_timeouts() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("bob", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("bob").await;
    let now = yiyang::platform::now_secs();
    sqlx::query("UPDATE user_session SET last_seen = $1")
        .bind(now - 31 * 60)
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        t.call("GET", "/api/v1/me", Some(&c), None).await.0,
        StatusCode::UNAUTHORIZED,
        "idle 31 min"
    );
    let c = t.login("bob").await;
    sqlx::query("UPDATE user_session SET created_at = $1")
        .bind(now - 12 * 3600 - 1)
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        t.call("GET", "/api/v1/me", Some(&c), None).await.0,
        StatusCode::UNAUTHORIZED,
        "absolute 12 h"
    );
}

#[tokio::test]
async fn db_totp_required_in_production() {
    let t = TestApp::new("production", 0).await;
    t.add_user("carol", &["officer"], "320682000000", all_scopes())
        .await;
    let (s, v, h) = t
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "carol", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["next"], "totp_enrol");
    let pending = cookie_of(&h);
    // The pending session is not a login.
    assert_eq!(
        t.call("GET", "/api/v1/me", Some(&pending), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let secret = v["secret"].as_str().unwrap();
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/auth/totp",
            Some(&pending),
            Some(json!({"code": "000000"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let key = yiyang::identity::totp::base32_decode(secret).unwrap();
    let code = yiyang::identity::totp::code_at(&key, yiyang::platform::now_secs());
    let (s, v, h) = t
        .call(
            "POST",
            "/api/v1/auth/totp",
            Some(&pending),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = cookie_of(&h);
    assert_ne!(c, pending, "a fresh token after the second factor");
    let (s, me, _) = t.call("GET", "/api/v1/me", Some(&c), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["totp_enabled"], true);
    // Next login asks for a code, not enrolment.
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "carol", "password": PASSWORD})),
        )
        .await;
    assert_eq!(v["next"], "totp");
}

#[tokio::test]
async fn db_passwords_and_bad_input() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("sec", &["security_admin"], "320682000000", all_scopes())
        .await;
    let c = t.login("sec").await;
    let base = json!({"username": "dave", "display_name": "戴", "roles": ["officer"], "region_code": "320682001000", "scopes": {"edit": true, "aggregates": true, "individuals": true}});
    for pw in ["short", "password1", "12345678"] {
        let mut b = base.clone();
        b["password"] = json!(pw);
        let (s, v, _) = t.call("POST", "/api/v1/users", Some(&c), Some(b)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{pw}: {v}");
        assert_eq!(v["errors"][0]["field"], "password");
    }
    let mut b = base.clone();
    b["password"] = json!("Good-enough-9");
    assert_eq!(
        t.call("POST", "/api/v1/users", Some(&c), Some(b.clone()))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        t.call("POST", "/api/v1/users", Some(&c), Some(b)).await.0,
        StatusCode::CONFLICT
    );
    let hash: String = sqlx::Row::get(
        &sqlx::query("SELECT password_hash FROM app_user WHERE username = 'dave'")
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap(),
        0,
    );
    assert!(hash.starts_with("$argon2id$"));
    // Malformed JSON is a 4xx with a problem document, never a 500.
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/elders/search")
        .header("cookie", &c)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    let (s, body, h) = t.raw(req).await;
    assert!(s.is_client_error());
    assert_eq!(h["content-type"], "application/problem+json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["detail"].as_str().unwrap().contains("请求内容格式不正确"),
        "{v}"
    );
    // A wrong type for a field, too.
    let (s, v, h) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"page_size": "二十"})),
        )
        .await;
    assert!(
        s.is_client_error() && h["content-type"] == "application/problem+json",
        "{v}"
    );
    // Said in Chinese, naming the field, without the JSON library's English.
    let d = v["detail"].as_str().unwrap();
    assert!(d.contains("page_size") && d.contains("类型"), "{d}");
    for english in ["Failed", "deserialize", "expected", "invalid type"] {
        assert!(!d.contains(english), "{d}");
    }
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"sort": 5, "status": "x"})),
        )
        .await;
    assert!(!v["detail"].as_str().unwrap().contains("invalid"), "{v}");
    let (s, v, _) = t.call("GET", "/api/v1/nothing-here", Some(&c), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["detail"].is_string());
}

/// A session ended by another process (its row deleted) stops working within the session cache's
/// bound; one ended here (logout) at once.
#[tokio::test]
async fn db_session_end_elsewhere_seen_within_cache_bound() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("dan", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("dan").await;
    assert_eq!(
        t.call("GET", "/api/v1/me", Some(&c), None).await.0,
        StatusCode::OK
    );
    sqlx::query("DELETE FROM user_session")
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(
        yiyang::identity::session::CACHE_SECS * 1000 + 100,
    ))
    .await;
    assert_eq!(
        t.call("GET", "/api/v1/me", Some(&c), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// The SQLite file is its owner's only, like the key file; pages forbid framing and foreign
/// scripts; behind a trusted proxy the login throttle counts the real client.
#[tokio::test]
async fn db_file_mode_headers_and_proxy() {
    let t = TestApp::new("demo", 0).await;
    #[cfg(unix)]
    if let Some(p) = &t.sqlite_path {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{p:?}");
    }
    let (_, _, h) = t.call("GET", "/login", None, None).await;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS over plain HTTP (demo)"
    );
    use axum::http::HeaderMap;
    use yiyang::identity::http::client_ip;
    let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
    let client: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let mut hm = HeaderMap::new();
    hm.insert(
        "x-forwarded-for",
        "198.51.100.1, 203.0.113.7".parse().unwrap(),
    );
    assert_eq!(
        client_ip(Some(proxy), &hm, &[proxy]),
        Some(client),
        "the hop the proxy saw"
    );
    assert_eq!(
        client_ip(Some(proxy), &hm, &[]),
        Some(proxy),
        "an untrusted peer's header is ignored"
    );
    assert_eq!(client_ip(Some(client), &hm, &[proxy]), Some(client));
}

use crate::support::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// A home visit from order to confirmation: placed with a provider for an elder, dispatched to a
/// caregiver (bathing only to a qualified one), accepted, checked in and out with the phone's
/// place, confirmed; a step sent twice (a phone that lost its connection) is done once; wrong
/// steps refused in Chinese; two dispatches of overlapping visits to one caregiver at the same
/// moment: exactly one wins, on both engines; another town sees nothing. Audited.
#[tokio::test]
async fn db_a_home_visit_goes_from_order_to_confirmation_and_a_caregiver_holds_one_visit_at_a_time()
{
    let t = TestApp::new("demo", 30).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("other", &["officer"], "320681000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let (s, p, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "provider", "name": "如皋市安心居家养老服务有限公司", "ownership": "private",
            "region_code": "320682103000"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let provider = p["id"].as_str().unwrap().to_string();
    let mut staff = vec![];
    for body in [
        json!({"name": "王秀兰", "role": "caregiver", "skill_level": 4}),
        json!({"name": "李春华", "role": "caregiver"}),
        json!({"name": "周建国", "role": "social_worker"}),
    ] {
        let (s, v, _) = call("POST", format!("/api/v1/orgs/{provider}/staff"), Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        staff.push(v["id"].as_str().unwrap().to_string());
    }
    let (qualified, plain, social) = (&staff[0], &staff[1], &staff[2]);
    let elders: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 3",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    let order = |elder: &str, service: &str, at: &str, minutes: i64| {
        let body = json!({"provider_id": provider, "elder_id": elder, "service": service,
            "planned_start": at, "planned_minutes": minutes});
        call("POST", "/api/v1/service-orders".into(), Some(body))
    };
    // Wrong input, refused saying what to fix.
    for (service, at, minutes, field) in [
        ("理发", "2026-12-08 09:00", 60, "service"),
        ("助洁", "明天上午", 60, "planned_start"),
        ("助洁", "2026-12-08 09:00", 5, "planned_minutes"),
    ] {
        let (s, v, _) = order(&elders[0], service, at, minutes).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    let (s, a, _) = order(&elders[0], "助浴", "2026-12-08 09:00", 60).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(
        (a["state_zh"].as_str(), a["service_zh"].as_str()),
        (Some("待派单"), Some("助浴"))
    );
    let a = a["id"].as_str().unwrap().to_string();
    let dispatch = |id: String, caregiver: String| {
        call(
            "POST",
            format!("/api/v1/service-orders/{id}/dispatch"),
            Some(json!({"caregiver_id": caregiver})),
        )
    };
    let (s, v, _) = dispatch(a.clone(), plain.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("持证"), "{v}");
    let (s, v, _) = dispatch(a.clone(), social.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = dispatch(a.clone(), qualified.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["caregiver_name"], "王秀兰");

    // Overlapping visits to one caregiver: refused, naming the other visit; touching ends are fine.
    let (_, b, _) = order(&elders[1], "助洁", "2026-12-08 09:30", 60).await;
    let b = b["id"].as_str().unwrap().to_string();
    let (s, v, _) = dispatch(b.clone(), qualified.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("2026-12-08 09:00"),
        "{v}"
    );
    let (_, d, _) = order(&elders[1], "助洁", "2026-12-08 10:00", 30).await;
    let (s, v, _) = dispatch(d["id"].as_str().unwrap().to_string(), qualified.clone()).await;
    assert_eq!(s, StatusCode::OK, "10:00 after 9:00–10:00: {v}");

    // Two overlapping visits dispatched to one free caregiver at the same moment: one wins.
    let (_, x, _) = order(&elders[2], "助洁", "2026-12-09 14:00", 60).await;
    let (_, y, _) = order(&elders[1], "助行", "2026-12-09 14:30", 60).await;
    let (x, y) = (
        x["id"].as_str().unwrap().to_string(),
        y["id"].as_str().unwrap().to_string(),
    );
    let (r1, r2) = tokio::join!(dispatch(x, plain.clone()), dispatch(y, plain.clone()));
    let mut codes = [r1.0, r2.0];
    codes.sort();
    assert_eq!(
        codes,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} / {}",
        r1.1,
        r2.1
    );

    // The visit's steps; one sent twice is done once.
    let step = |action: &str, step_id: String, extra: Value| {
        let mut body = json!({"step_id": step_id, "action": action});
        if let (Some(o), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        call(
            "POST",
            format!("/api/v1/service-orders/{a}/steps"),
            Some(body),
        )
    };
    let id = || uuid::Uuid::now_v7().to_string();
    let (s, v, _) = step("check_out", id(), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("不能签退"), "{v}");
    let (s, v, _) = step("accept", id(), json!({})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{v}"
    );
    let again = id();
    let (s, v, _) = step(
        "check_in",
        again.clone(),
        json!({"lon": 120.57, "lat": 32.39}),
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("checked_in")),
        "{v}"
    );
    let (s, v, _) = step(
        "check_in",
        again.clone(),
        json!({"lon": 120.57, "lat": 32.39}),
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("checked_in")),
        "retry: {v}"
    );
    let (s, v, _) = step("check_in", id(), json!({"lon": 200.0, "lat": 32.0})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = step("check_out", id(), json!({"lon": 120.57, "lat": 32.39})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("checked_out")),
        "{v}"
    );
    let (s, v, _) = step("confirm", id(), json!({})).await;
    assert_eq!(
        (s, v["state_zh"].as_str()),
        (StatusCode::OK, Some("已完成")),
        "{v}"
    );
    assert!(
        v["check_in_at"].is_string() && v["confirmed_at"].is_string(),
        "{v}"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM service_order_step").await,
        4,
        "accept, check in (once), check out, confirm"
    );
    let (lon, lat): (f64, f64) =
        sqlx::query_as("SELECT check_in_lon, check_in_lat FROM service_order WHERE id = $1")
            .bind(&a)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    assert_eq!((lon, lat), (120.57, 32.39));
    // Cancelling needs a reason; a finished visit cannot be cancelled.
    let (s, v, _) = step("cancel", id(), json!({"note": "家属取消"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/service-orders/{b}/steps"),
        Some(json!({"step_id": id(), "action": "cancel"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // The day's list, and nothing for another county.
    let (s, v, _) = call("GET", "/api/v1/service-orders?date=2026-12-08".into(), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
    let o = t.login("other").await;
    let (s, v, _) = t
        .call(
            "GET",
            "/api/v1/service-orders?date=2026-12-08",
            Some(&o),
            None,
        )
        .await;
    assert_eq!(
        (s, v.as_array().map(|a| a.len())),
        (StatusCode::OK, Some(0)),
        "{v}"
    );
    let (s, v, _) = t
        .call(
            "GET",
            &format!("/api/v1/service-orders/{a}"),
            Some(&o),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'service_order.%'")
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    assert_eq!(n, 5 + 3 + 4, "5 orders, 3 dispatches, 4 steps");
}

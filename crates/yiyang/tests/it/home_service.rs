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
    // The suggestion: the free one first and recommended; the busy one says with what.
    let (s, v, _) = call(
        "GET",
        format!("/api/v1/service-orders/{b}/candidates"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 2, "caregivers only: {v}");
    assert_eq!(
        (v[0]["name"].as_str(), v[0]["recommended"].as_bool()),
        (Some("李春华"), Some(true)),
        "{v}"
    );
    assert_eq!(v[1]["free"], false, "{v}");
    assert!(v[1]["reason"].as_str().unwrap().contains("09:00"), "{v}");
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
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a code is asked for: {v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("确认码"), "{v}");
    let (s, v, _) = step("confirm", id(), json!({"note": "已电话回访家属，确认上门"})).await;
    assert_eq!(
        (s, v["state_zh"].as_str()),
        (StatusCode::OK, Some("已完成")),
        "{v}"
    );
    assert!(
        v["check_in_at"].is_string() && v["confirmed_at"].is_string(),
        "{v}"
    );
    // A step answers the order as it leaves it, made without reading it again: the same as a read.
    let (s, read, _) = call("GET", format!("/api/v1/service-orders/{a}"), None).await;
    assert_eq!((s, &read), (StatusCode::OK, &v));
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

/// A month settles: visits confirmed with the family's code take the elder's quota (beyond it,
/// self-paid), are paid at the provider's contract prices, and each of the seven anomalies holds a
/// visit back with its reason unless an officer lets it through; the sums equal the lines and the
/// levels add up to what is payable; an officer other than the maker approves, and the approved
/// settlement goes into the payment batch. A confirmation sent twice takes one visit; a wrong
/// code counts a try. On both engines.
#[tokio::test]
async fn db_a_month_of_visits_settles_to_its_lines_and_holds_back_every_anomaly() {
    const COUNTY: &str = "320682000000";
    let t = TestApp::new("demo", 40).await;
    t.add_user("officer", &["officer"], COUNTY, all_scopes())
        .await;
    t.add_user("checker", &["officer"], COUNTY, all_scopes())
        .await;
    let c = t.login("officer").await;
    let k = t.login("checker").await;
    let pool = &t.state.db.pool;
    let call = |who: &str, m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, who.to_string());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let who = yiyang::audit::Who {
        actor_id: None,
        actor_name: "test".into(),
    };
    yiyang::catalog::store::seed_demo(&t.state.db, COUNTY, &who)
        .await
        .unwrap();
    let version: String = sqlx::query_scalar(
        "SELECT id FROM catalog_version WHERE region_code = '320682000000' AND state = 'published'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    // Six elders at home with a phone; five hold the purchased home service (four visits a
    // month, the last only one), the sixth nothing.
    let elders: Vec<(String, f64, f64)> = sqlx::query(
        "SELECT id, COALESCE(lon, 120.57), COALESCE(lat, 32.39) FROM elder WHERE status = 'active' \
         AND death_date IS NULL AND phone_bidx IS NOT NULL ORDER BY id LIMIT 6",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        use sqlx::Row;
        (r.get(0), r.get(1), r.get(2))
    })
    .collect();
    assert_eq!(elders.len(), 6);
    sqlx::query(
        "INSERT INTO catalog_run (id, region_code, version_id, on_date, started_at, finished_at, by_name, summary) \
         VALUES ('test-run', '320682000000', $1, '2026-01-01', '2026-01-01', '2026-01-01', 'test', '{}')",
    )
    .bind(&version)
    .execute(pool)
    .await
    .unwrap();
    for (i, (e, lon, lat)) in elders.iter().enumerate() {
        sqlx::query("UPDATE elder SET lon = $2, lat = $3 WHERE id = $1")
            .bind(e)
            .bind(lon)
            .bind(lat)
            .execute(pool)
            .await
            .unwrap();
        if i == 5 {
            continue;
        }
        // Odd ones as a catalogue run writes them: version and time left to the run's row.
        sqlx::query(
            "INSERT INTO entitlement (id, elder_id, catalog_region, item_code, state, tier, amount_fen, quota, \
             residence_region, since, version_id, run_id, reasons, updated_at) \
             SELECT $1, id, '320682000000', 'purchased_home_service', 'granted', '一般', 5000, $2, residence_region, \
             $5, $3, 'test-run', '', '2026-01-01' FROM elder WHERE id = $4",
        )
        .bind(format!("ent-{i}"))
        .bind(if i == 4 { 1_i64 } else { 4 })
        .bind((i % 2 == 0).then_some(&version))
        .bind(e)
        // The first held it in October too, unused: its four visits carry into November (the
        // item allows it); the others' grants begin with the month.
        .bind(if i == 0 { "2026-01-01" } else { "2026-11-01" })
        .execute(pool)
        .await
        .unwrap();
    }
    let (s, p, _) = call(
        &c,
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "provider", "name": "如皋市安心居家养老服务有限公司", "ownership": "private",
            "region_code": "320682103000", "bank_name": "如皋农商银行", "bank_account_name": "如皋市安心居家养老服务有限公司",
            "bank_account": "3206820001234567"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let provider = p["id"].as_str().unwrap().to_string();
    // The contract's prices: wrong ones refused.
    for (body, field) in [
        (
            json!({"starts_on": "2026-01-01", "ends_on": "2026-12-31", "prices": [{"service": "理发", "price": 30}]}),
            "prices[0]",
        ),
        (
            json!({"starts_on": "2026-01-01", "ends_on": "2026-12-31", "prices": [{"service": "助洁", "price": 30.001}]}),
            "prices[0]",
        ),
        (
            json!({"starts_on": "2026-12-31", "ends_on": "2026-01-01", "prices": []}),
            "ends_on",
        ),
    ] {
        let (s, v, _) = call(
            &c,
            "PUT",
            format!("/api/v1/providers/{provider}/contract"),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    let (s, v, _) = call(
        &c,
        "PUT",
        format!("/api/v1/providers/{provider}/contract"),
        Some(json!({"starts_on": "2026-01-01", "ends_on": "2026-12-31",
            "prices": [{"service": "助洁", "price": 30}, {"service": "助浴", "price": 60.5}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["prices"][0]["service_zh"], "助浴", "{v}");
    // A home is not a provider: it has no contract to read (and one is refused, above).
    let (s, home, _) = call(
        &c,
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "township_home", "name": "丁堰镇敬老院", "ownership": "public", "region_code": "320682104000"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{home}");
    let (s, v, _) = call(
        &c,
        "GET",
        format!(
            "/api/v1/providers/{}/contract",
            home["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let mut staff = vec![];
    for body in [
        json!({"name": "王秀兰", "role": "caregiver", "skill_level": 4}),
        json!({"name": "李春华", "role": "caregiver"}),
    ] {
        let (s, v, _) = call(
            &c,
            "POST",
            format!("/api/v1/orgs/{provider}/staff"),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        staff.push(v["id"].as_str().unwrap().to_string());
    }
    let month = "2026-11";
    // One visit from order to the family's code; then the times it really took (minutes after
    // the planned start, and how long), as the phone would have sent them on that day.
    let visit = |elder: usize,
                 cg: usize,
                 service: &'static str,
                 at: String,
                 off: (i64, i64),
                 far: bool| {
        let (t, c, provider, staff, elders) = (
            &t,
            c.clone(),
            provider.clone(),
            staff.clone(),
            elders.clone(),
        );
        async move {
            let (s, o, _) = t
                .call("POST", "/api/v1/service-orders", Some(&c), Some(json!({"provider_id": provider,
                    "elder_id": elders[elder].0, "service": service, "planned_start": at, "planned_minutes": 60})))
                .await;
            assert_eq!(s, StatusCode::CREATED, "{o}");
            let id = o["id"].as_str().unwrap().to_string();
            let (s, v, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/service-orders/{id}/dispatch"),
                    Some(&c),
                    Some(json!({"caregiver_id": staff[cg]})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let (lon, lat) = if far {
                (elders[elder].1 + 0.02, elders[elder].2)
            } else {
                (elders[elder].1 + 0.0005, elders[elder].2)
            };
            for a in ["accept", "check_in", "check_out"] {
                let (s, v, _) = t
                    .call("POST", &format!("/api/v1/service-orders/{id}/steps"), Some(&c),
                        Some(json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": a, "lon": lon, "lat": lat})))
                    .await;
                assert_eq!(s, StatusCode::OK, "{a}: {v}");
            }
            let (s, v, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/service-orders/{id}/code"),
                    Some(&c),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert!(v["sent_to"].as_str().unwrap().contains("****"), "{v}");
            let enc: Vec<u8> =
                sqlx::query_scalar("SELECT code_enc FROM service_order WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&t.state.db.pool)
                    .await
                    .unwrap();
            let code = t.state.keys.decrypt(&enc).unwrap();
            let (s, v, _) = t
                .call("POST", &format!("/api/v1/service-orders/{id}/steps"), Some(&c),
                    Some(json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": "confirm", "code": code})))
                .await;
            assert_eq!(
                (s, v["state"].as_str()),
                (StatusCode::OK, Some("confirmed")),
                "{v}"
            );
            let start: i64 =
                sqlx::query_scalar("SELECT start_min FROM service_order WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&t.state.db.pool)
                    .await
                    .unwrap();
            sqlx::query(
                "UPDATE service_order SET check_in_min = $2, check_out_min = $3 WHERE id = $1",
            )
            .bind(&id)
            .bind(start + off.0)
            .bind(start + off.0 + off.1)
            .execute(&t.state.db.pool)
            .await
            .unwrap();
            id
        }
    };
    let d = |day: u32, hm: &str| format!("{month}-{day:02} {hm}");
    // A code: a wrong one counts a try and says how many are left; a confirmation retried with the
    // same step id takes one visit from the quota, not two.
    let (s, o, _) = call(&c, "POST", "/api/v1/service-orders".into(), Some(json!({"provider_id": provider,
        "elder_id": elders[0].0, "service": "助洁", "planned_start": d(2, "08:00"), "planned_minutes": 60}))).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let first = o["id"].as_str().unwrap().to_string();
    call(
        &c,
        "POST",
        format!("/api/v1/service-orders/{first}/dispatch"),
        Some(json!({"caregiver_id": staff[0]})),
    )
    .await;
    for a in ["accept", "check_in", "check_out"] {
        let (s, v, _) = call(&c, "POST", format!("/api/v1/service-orders/{first}/steps"),
            Some(json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": a, "lon": elders[0].1, "lat": elders[0].2}))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v, _) = call(&c, "POST", format!("/api/v1/service-orders/{first}/steps"),
        Some(json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": "confirm", "code": "123456"}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "no code sent yet: {v}");
    let (s, _, _) = call(
        &c,
        "POST",
        format!("/api/v1/service-orders/{first}/code"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v, _) = call(
        &c,
        "POST",
        format!("/api/v1/service-orders/{first}/code"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "a minute between codes: {v}");
    let enc: Vec<u8> = sqlx::query_scalar("SELECT code_enc FROM service_order WHERE id = $1")
        .bind(&first)
        .fetch_one(pool)
        .await
        .unwrap();
    let code = t.state.keys.decrypt(&enc).unwrap();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (s, v, _) = call(&c, "POST", format!("/api/v1/service-orders/{first}/steps"),
        Some(json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": "confirm", "code": wrong}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("还可以再试 4 次"),
        "{v}"
    );
    let step_id = uuid::Uuid::new_v4().to_string();
    for _ in 0..2 {
        let (s, v, _) = call(
            &c,
            "POST",
            format!("/api/v1/service-orders/{first}/steps"),
            Some(json!({"step_id": step_id, "action": "confirm", "code": code})),
        )
        .await;
        assert_eq!(
            (s, v["state"].as_str()),
            (StatusCode::OK, Some("confirmed")),
            "{v}"
        );
    }
    let (s, q, _) = call(
        &c,
        "GET",
        format!("/api/v1/elders/{}/service-quota?month={month}", elders[0].0),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(
        (
            q["lines"][0]["granted"].as_i64(),
            q["lines"][0]["carried"].as_i64(),
            q["lines"][0]["used"].as_i64(),
            q["lines"][0]["carries_on"].as_i64(),
            q["lines"][0]["expired"].as_i64(),
        ),
        (Some(8), Some(4), Some(1), Some(4), Some(3)),
        "four carried in from October, one of them used; November's own four go on to December, \
         the three carried ones left lapse: {q}"
    );
    // October, with no visit: its four went on to November.
    let (_, q, _) = call(
        &c,
        "GET",
        format!("/api/v1/elders/{}/service-quota?month=2026-10", elders[0].0),
        None,
    )
    .await;
    assert_eq!(
        (
            q["lines"][0]["granted"].as_i64(),
            q["lines"][0]["carries_on"].as_i64(),
            q["lines"][0]["expired"].as_i64()
        ),
        (Some(8), Some(4), Some(4)),
        "{q}"
    );
    // A visit of October confirmed late, after November opened: November carries one less.
    // (September's four were all used, so October carried none in to use first.)
    sqlx::query(
        "INSERT INTO service_quota (elder_id, item_code, month, granted, used, entitlement_id, carried) \
         VALUES ($1, 'purchased_home_service', '2026-09', 4, 4, 'ent-0', 0)",
    )
    .bind(&elders[0].0)
    .execute(pool)
    .await
    .unwrap();
    let (s, o, _) = call(&c, "POST", "/api/v1/service-orders".into(), Some(json!({"provider_id": provider,
        "elder_id": elders[0].0, "service": "助洁", "planned_start": "2026-10-20 08:00", "planned_minutes": 60}))).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let late = o["id"].as_str().unwrap().to_string();
    call(
        &c,
        "POST",
        format!("/api/v1/service-orders/{late}/dispatch"),
        Some(json!({"caregiver_id": staff[0]})),
    )
    .await;
    for (a, extra) in [
        ("accept", json!({})),
        ("check_in", json!({})),
        ("check_out", json!({})),
        ("confirm", json!({"note": "已电话回访家属，确认上门"})),
    ] {
        let mut b = json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": a,
            "lon": elders[0].1, "lat": elders[0].2});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, v, _) = call(
            &c,
            "POST",
            format!("/api/v1/service-orders/{late}/steps"),
            Some(b),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{a}: {v}");
    }
    let (_, q, _) = call(
        &c,
        "GET",
        format!("/api/v1/elders/{}/service-quota?month={month}", elders[0].0),
        None,
    )
    .await;
    assert_eq!(
        (
            q["lines"][0]["granted"].as_i64(),
            q["lines"][0]["carried"].as_i64(),
            q["lines"][0]["used"].as_i64()
        ),
        (Some(7), Some(3), Some(1)),
        "{q}"
    );
    // A grant that began with November carries nothing in.
    let (_, q, _) = call(
        &c,
        "GET",
        format!("/api/v1/elders/{}/service-quota?month={month}", elders[2].0),
        None,
    )
    .await;
    assert_eq!(
        (
            q["lines"][0]["granted"].as_i64(),
            q["lines"][0]["carried"].as_i64()
        ),
        (Some(4), Some(0)),
        "{q}"
    );
    assert_eq!(q["lines"][0]["item_name"], "政府购买居家养老服务", "{q}");
    // A grant written by a catalogue run (its version on the run) reads the same way.
    let (s, q, _) = call(
        &c,
        "GET",
        format!("/api/v1/elders/{}/service-quota?month={month}", elders[1].0),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(q["lines"][0]["item_name"], "政府购买居家养老服务", "{q}");
    // The family's text went to the outbox, naming the order.
    assert_eq!(
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM notification_outbox WHERE order_id = $1 AND event = 'visit_code'"
        )
        .bind(&first)
        .fetch_one(pool)
        .await
        .unwrap(),
        1
    );
    let start: i64 = sqlx::query_scalar("SELECT start_min FROM service_order WHERE id = $1")
        .bind(&first)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE service_order SET check_in_min = $2, check_out_min = $3 WHERE id = $1")
        .bind(&first)
        .bind(start)
        .bind(start + 60)
        .execute(pool)
        .await
        .unwrap();

    // The month: clean visits, then one of each anomaly.
    let clean1 = visit(0, 0, "助洁", d(3, "08:00"), (0, 60), false).await;
    let _bath = visit(1, 0, "助浴", d(3, "10:00"), (0, 50), false).await;
    let far = visit(1, 1, "助洁", d(4, "08:00"), (0, 60), true).await;
    let short = visit(2, 1, "助洁", d(5, "08:00"), (0, 12), false).await;
    // Planned apart, done on top of each other.
    let ov_a = visit(2, 1, "助洁", d(6, "08:00"), (0, 60), false).await;
    let ov_b = visit(3, 1, "助洁", d(6, "10:00"), (-90, 60), false).await;
    let dup_1 = visit(3, 0, "助洁", d(7, "08:00"), (0, 60), false).await;
    let dup_2 = visit(3, 0, "助洁", d(7, "14:00"), (0, 60), false).await;
    let hosp = visit(0, 0, "助洁", d(9, "08:00"), (0, 60), false).await;
    let dead = visit(4, 1, "助洁", d(10, "08:00"), (0, 60), false).await;
    // The fifth elder's one visit is used: a second is self-paid.
    let own = visit(4, 1, "助洁", d(10, "10:00"), (0, 60), false).await;
    // The sixth holds no grant: self-paid too.
    let _none = visit(5, 1, "助洁", d(11, "08:00"), (0, 60), false).await;
    // A code sent to the caregiver's own number: her phone is the elder's on record.
    let selfc = visit(2, 0, "助洁", d(12, "08:00"), (0, 60), false).await;
    sqlx::query(
        "UPDATE staff SET phone_bidx = (SELECT phone_bidx FROM elder WHERE id = $2) WHERE id = $1",
    )
    .bind(&staff[0])
    .bind(&elders[2].0)
    .execute(pool)
    .await
    .unwrap();
    let (s, v, _) = call(&c, "POST", format!("/api/v1/elders/{}/hospital-stays", elders[0].0),
        Some(json!({"from_on": format!("{month}-08"), "to_on": format!("{month}-09"), "note": "如皋市人民医院"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    sqlx::query("UPDATE elder SET death_date = $2 WHERE id = $1")
        .bind(&elders[4].0)
        .bind(format!("{month}-09"))
        .execute(pool)
        .await
        .unwrap();
    let funded: Vec<(String, Option<String>)> =
        sqlx::query("SELECT id, funded FROM service_order ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                use sqlx::Row;
                (r.get(0), r.get(1))
            })
            .collect();
    let funded_of = |id: &str| funded.iter().find(|f| f.0 == id).unwrap().1.clone();
    assert_eq!(funded_of(&own).as_deref(), Some("self_paid"));
    assert_eq!(funded_of(&dead).as_deref(), Some("quota"));
    assert_eq!(funded_of(&clean1).as_deref(), Some("quota"));

    let (s, pv, _) = call(
        &c,
        "GET",
        format!("/api/v1/home-settlements/preview?month={month}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{pv}");
    let p0 = &pv["providers"][0];
    let kinds_of = |id: &str| -> Vec<String> {
        let mut k: Vec<String> = pv["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["ref"] == id)
            .map(|x| x["kind"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds_of(&far), ["far_check_in"], "{pv}");
    assert_eq!(kinds_of(&short), ["too_short"]);
    assert_eq!(kinds_of(&ov_a), ["overlap"]);
    assert_eq!(kinds_of(&ov_b), ["overlap"]);
    assert_eq!(kinds_of(&dup_1), Vec::<String>::new());
    assert_eq!(kinds_of(&dup_2), ["duplicate"]);
    assert_eq!(kinds_of(&hosp), ["in_hospital"]);
    assert_eq!(kinds_of(&dead), ["after_death"]);
    assert_eq!(kinds_of(&selfc), ["self_confirmed"]);
    assert!(kinds_of(&clean1).is_empty() && kinds_of(&first).is_empty());
    // 14 visits: 2 self-paid; 12 from quotas, one a bath at 60.50, the rest cleaning at 30;
    // 8 held back (all cleaning).
    assert_eq!(
        (p0["orders"].as_i64(), p0["self_paid"].as_i64()),
        (Some(12), Some(2)),
        "{pv}"
    );
    assert_eq!(p0["gross_fen"], 11 * 3000 + 6050);
    assert_eq!(p0["excluded_fen"], 8 * 3000);
    assert_eq!(p0["payable_fen"], 3 * 3000 + 6050);
    let lv = &p0["by_level"];
    let sum = ["province", "city", "county", "town"]
        .iter()
        .map(|k| lv[k].as_i64().unwrap())
        .sum::<i64>();
    assert_eq!(sum, p0["payable_fen"].as_i64().unwrap(), "{pv}");
    assert_eq!(lv["city"], (3 * 3000 + 6050) / 5, "20 % city: {pv}");
    assert_eq!(pv["total_payable_fen"], p0["payable_fen"]);
    // The sums are the lines: gross over the month's confirmed quota visits at their prices.
    let lines: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(p.price_fen), 0) AS BIGINT) FROM service_order o JOIN provider_price p \
         ON p.org_id = o.provider_id AND p.service = o.service WHERE o.state = 'confirmed' AND o.funded = 'quota' \
         AND o.planned_start >= '2026-11-01' AND o.planned_start < '2026-12-01'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(p0["gross_fen"].as_i64(), Some(lines));

    // An officer lets the far check-in through (the elder was at her daughter's): paid.
    let (s, v, _) = call(
        &c,
        "POST",
        format!("/api/v1/service-orders/{far}/overrides"),
        Some(json!({"kind": "far_check_in", "reason": "老人当天在女儿家"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v, _) = call(
        &c,
        "POST",
        format!("/api/v1/service-orders/{far}/overrides"),
        Some(json!({"kind": "fast", "reason": "老人当天在女儿家"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Recorded, approved by the other officer (not the maker), then into the batch.
    let (s, r, _) = call(
        &c,
        "POST",
        "/api/v1/home-settlements".into(),
        Some(json!({"month": month})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["settlement"]["total_payable_fen"], 4 * 3000 + 6050, "{r}");
    let (s, list, _) = call(
        &c,
        "GET",
        format!("/api/v1/home-settlements?month={month}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list[0]["excluded_count"], 7, "{list}");
    let sid = list[0]["id"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        &c,
        "POST",
        format!("/api/v1/home-settlements/{sid}/approve"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "the maker: {v}");
    let (s, v, _) = call(
        &k,
        "POST",
        format!("/api/v1/home-settlements/{sid}/approve"),
        None,
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{v}"
    );
    // The provider's statement: the paid lines add up to what is paid; the held ones say why.
    let (s, body, h) = t
        .raw(
            axum::http::Request::builder()
                .uri(format!("/api/v1/home-settlements/{sid}/statement"))
                .header(axum::http::header::COOKIE, &c)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[axum::http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("spreadsheetml"),
        "{h:?}"
    );
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(body)).unwrap();
    use calamine::Reader;
    let sheet = book.worksheet_range("服务明细").unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .skip(1)
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let paid: f64 = rows
        .iter()
        .filter(|r| r[6] == "支付")
        .map(|r| r[5].parse::<f64>().unwrap())
        .sum();
    assert_eq!((paid * 100.0).round() as i64, 4 * 3000 + 6050, "{rows:?}");
    assert!(
        rows.iter()
            .filter(|r| r[6].starts_with("核减"))
            .all(|r| !r[7].is_empty()),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r[6].starts_with("核减")), "{rows:?}");
    assert!(
        rows.iter().all(|r| r[3].contains('*')),
        "names masked: {rows:?}"
    );
    let (s, v, _) = call(
        &c,
        "POST",
        format!("/api/v1/service-orders/{short}/overrides"),
        Some(json!({"kind": "too_short", "reason": "家属说服务了一小时"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "approved: {v}");
    let (s, b, _) = call(
        &c,
        "POST",
        "/api/v1/payment-batches".into(),
        Some(json!({"region_code": COUNTY, "month": month})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let batch = b["id"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        &c,
        "POST",
        "/api/v1/home-settlements/to-batch".into(),
        Some(json!({"batch_id": batch, "month": month})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["added"].as_i64(), v["total"].as_f64()),
        (Some(1), Some(180.5)),
        "{v}"
    );
    let (_, v, _) = call(&c, "GET", format!("/api/v1/home-settlements/{sid}"), None).await;
    assert_eq!(v["batch_id"].as_str(), Some(batch.as_str()), "{v}");
    // Every step and the settlement audited.
    for action in [
        "service_order.code",
        "service_order.override",
        "home_settlement.record",
        "home_settlement.approve",
        "home_settlement.batch",
    ] {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(n >= 1, "{action}");
    }
}

/// The provider's own people: a dispatcher's account sees and dispatches only her provider's
/// orders (names and addresses shown: her caregivers go to the homes); a caregiver's account,
/// bound to her staff record, sees only the visits given to her, moves them from accepted to
/// confirmed with the family's code, and cannot dispatch, cancel or confirm without a code.
/// Accounts are refused for a staff member of another organisation, without one, or twice.
#[tokio::test]
async fn db_a_caregiver_moves_only_her_visits_and_a_dispatcher_only_her_providers() {
    let t = TestApp::new("demo", 30).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let as_ = |who: String, m: &'static str, uri: String, body: Option<Value>| {
        let t = &t;
        async move { t.call(m, &uri, Some(&who), body).await }
    };
    let mut providers = vec![];
    for name in [
        "如皋市安心居家养老服务有限公司",
        "如皋市康乐居家养老服务有限公司",
    ] {
        let (s, p, _) = as_(
            c.clone(),
            "POST",
            "/api/v1/orgs".into(),
            Some(json!({"kind": "provider", "name": name, "ownership": "private", "region_code": "320682103000"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        providers.push(p["id"].as_str().unwrap().to_string());
    }
    let mut staff = vec![];
    for (p, body) in [
        (
            0,
            json!({"name": "王秀兰", "role": "caregiver", "skill_level": 4}),
        ),
        (0, json!({"name": "李春华", "role": "caregiver"})),
        (1, json!({"name": "张桂英", "role": "caregiver"})),
    ] {
        let (s, v, _) = as_(
            c.clone(),
            "POST",
            format!("/api/v1/orgs/{}/staff", providers[p]),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        staff.push(v["id"].as_str().unwrap().to_string());
    }
    // Accounts: the caregiver's staff record must be hers, given, and not have an account yet.
    let user = |username: &str, role: &str, staff_id: Option<&str>| {
        json!({"username": username, "display_name": username, "password": "Yiyang-Test-2026!x",
            "roles": [role], "region_code": "320682000000",
            "scopes": {"edit": true, "aggregates": false, "individuals": true},
            "org_id": providers[0], "staff_id": staff_id})
    };
    t.add_user("sec", &["security_admin"], "320682000000", all_scopes())
        .await;
    let sa = t.login("sec").await;
    let bound = |u: &'static str, role: &'static str, sid: Option<String>| {
        let (t, p) = (&t, providers[0].clone());
        async move {
            t.add_user_staff(
                u,
                &[role],
                "320682000000",
                all_scopes(),
                Some(&p),
                sid.as_deref(),
            )
            .await
        }
    };
    bound("cg", "caregiver", Some(staff[0].clone())).await;
    bound("disp", "dispatcher", None).await;
    for (body, want) in [
        (
            user("cg_x", "caregiver", Some(&staff[2])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            user("cg_y", "caregiver", None),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            user("disp_x", "dispatcher", Some(&staff[0])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            user("cg_again", "caregiver", Some(&staff[0])),
            StatusCode::CONFLICT,
        ),
        (
            user("cg_li", "caregiver", Some(&staff[1])),
            StatusCode::CREATED,
        ),
    ] {
        let (s, v, _) = as_(sa.clone(), "POST", "/api/v1/users".into(), Some(body)).await;
        assert_eq!(s, want, "{v}");
    }
    let elders: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL AND phone_bidx IS NOT NULL \
         AND residence_region LIKE '320682%' ORDER BY id LIMIT 3",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(elders.len(), 3);
    let mut orders = vec![];
    for (p, e, at) in [
        (0, 0, "2026-12-08 09:00"),
        (0, 1, "2026-12-08 11:00"),
        (1, 2, "2026-12-08 09:00"),
    ] {
        let (s, v, _) = as_(
            c.clone(),
            "POST",
            "/api/v1/service-orders".into(),
            Some(
                json!({"provider_id": providers[p], "elder_id": elders[e], "service": "助洁",
                "planned_start": at, "planned_minutes": 60}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        orders.push(v["id"].as_str().unwrap().to_string());
    }
    // The dispatcher: her provider's two orders, names in full; the other provider's is not there.
    let d = t.login("disp").await;
    let (s, v, _) = as_(
        d.clone(),
        "GET",
        "/api/v1/service-orders?date=2026-12-08".into(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    assert!(
        !list[0]["elder_name"].as_str().unwrap().contains('*'),
        "{v}"
    );
    for (o, cg, want) in [
        (0, 0, StatusCode::OK),
        (1, 1, StatusCode::OK),
        (2, 2, StatusCode::NOT_FOUND),
    ] {
        let (s, v, _) = as_(
            d.clone(),
            "POST",
            format!("/api/v1/service-orders/{}/dispatch", orders[o]),
            Some(json!({"caregiver_id": staff[cg]})),
        )
        .await;
        assert_eq!(s, want, "{v}");
    }
    let (s, v, _) = as_(
        d.clone(),
        "GET",
        "/api/v1/home-settlements/preview?month=2026-12".into(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "her own provider's month: {v}");
    // The caregiver: her one visit, with the address to go to.
    let g = t.login("cg").await;
    let (s, v, _) = as_(
        g.clone(),
        "GET",
        "/api/v1/service-orders?date=2026-12-08".into(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["id"], orders[0].as_str());
    assert!(v[0].get("address").is_some(), "{v}");
    for (m, uri, body, want) in [
        (
            "GET",
            format!("/api/v1/service-orders/{}", orders[1]),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/service-orders/{}/dispatch", orders[0]),
            Some(json!({"caregiver_id": staff[1]})),
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            format!("/api/v1/service-orders/{}/steps", orders[1]),
            Some(json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": "accept"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/service-orders/{}/steps", orders[0]),
            Some(
                json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": "cancel", "note": "不想去"}),
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/api/v1/service-orders".into(),
            Some(
                json!({"provider_id": providers[0], "elder_id": elders[0], "service": "助洁",
                "planned_start": "2026-12-09 09:00", "planned_minutes": 60}),
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "GET",
            "/api/v1/home-settlements/preview?month=2026-12".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (s, v, _) = as_(g.clone(), m, uri.clone(), body).await;
        assert_eq!(s, want, "{m} {uri}: {v}");
    }
    let step = |action: &'static str, extra: Value| {
        let mut body = json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": action});
        if let (Some(o), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        as_(
            g.clone(),
            "POST",
            format!("/api/v1/service-orders/{}/steps", orders[0]),
            Some(body),
        )
    };
    // Sent late after a lost connection: the phone's times are kept, up to a day back.
    let ago = |m: i64| (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339();
    let (s, v, _) = step("check_in", json!({"at": ago(3 * 24 * 60)})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    for (action, at, want) in [
        ("accept", ago(100), "accepted"),
        ("check_in", ago(90), "checked_in"),
        ("check_out", ago(30), "checked_out"),
    ] {
        let (s, v, _) = step(action, json!({"lon": 120.57, "lat": 32.39, "at": at})).await;
        assert_eq!(
            (s, v["state"].as_str()),
            (StatusCode::OK, Some(want)),
            "{v}"
        );
    }
    let (i, o): (i64, i64) =
        sqlx::query_as("SELECT check_in_min, check_out_min FROM service_order WHERE id = $1")
            .bind(&orders[0])
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    assert_eq!(o - i, 60, "the visit lasted as the phone saw it");
    let (s, v, _) = step("confirm", json!({"note": "家属说已经来过了"})).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no call-back for a caregiver: {v}"
    );
    let (s, v, _) = as_(
        g.clone(),
        "POST",
        format!("/api/v1/service-orders/{}/code", orders[0]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let enc: Vec<u8> = sqlx::query_scalar("SELECT code_enc FROM service_order WHERE id = $1")
        .bind(&orders[0])
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap();
    let code = t.state.keys.decrypt(&enc).unwrap();
    let (s, v, _) = step("confirm", json!({"code": code})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("confirmed")),
        "{v}"
    );
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM service_order_step WHERE order_id = $1 AND action = 'confirm'",
    )
    .bind(&orders[0])
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(actor, "cg", "the step is hers");
    // A visit's next step writes without reading first (the step before left the answer): an
    // order changed in between (cancelled by the dispatcher) is not moved on by it.
    let (s, v, _) = as_(
        c.clone(),
        "POST",
        "/api/v1/service-orders".into(),
        Some(
            json!({"provider_id": providers[0], "elder_id": elders[2], "service": "助洁",
            "planned_start": "2026-12-09 09:00", "planned_minutes": 60}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let later = v["id"].as_str().unwrap().to_string();
    let (s, v, _) = as_(
        d.clone(),
        "POST",
        format!("/api/v1/service-orders/{later}/dispatch"),
        Some(json!({"caregiver_id": staff[0]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let on_later = |who: String, action: &'static str, note: Option<&str>| {
        let uri = format!("/api/v1/service-orders/{later}/steps");
        let body = json!({"step_id": uuid::Uuid::new_v4().to_string(), "action": action,
            "lon": 120.57, "lat": 32.39, "note": note});
        as_(who, "POST", uri, Some(body))
    };
    let (s, v, _) = on_later(g.clone(), "accept", None).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{v}"
    );
    let (s, v, _) = on_later(d.clone(), "cancel", Some("老人住院，本次取消")).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{v}"
    );
    let (s, v, _) = on_later(g.clone(), "check_in", None).await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a cancelled visit is not checked in: {v}"
    );
    let state: String = sqlx::query_scalar("SELECT state FROM service_order WHERE id = $1")
        .bind(&later)
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap();
    assert_eq!(state, "cancelled");
}

/// A family on the public page: a code to the phone in the elder's record (the same answer for
/// an unknown person, no second code within a minute), the month's quota and visits with who
/// came, a rating once per confirmed visit; wrong codes, lapsed tokens and other elders' visits
/// refused in Chinese; every request audited.
#[tokio::test]
async fn db_a_family_sees_the_month_after_a_phone_code_and_rates_a_visit() {
    let t = TestApp::new("demo", 5).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let public = |uri: &'static str, body: Value| {
        let t = &t;
        async move { t.call("POST", uri, None, Some(body)).await }
    };
    let birth = chrono::NaiveDate::from_ymd_opt(1940, 3, 2).unwrap();
    let known = yiyang_kernel::citizen_id::compose("320682", birth, 61);
    let unknown = yiyang_kernel::citizen_id::compose("320682", birth, 62);
    let (s, v, _) = call(
        "POST",
        "/api/v1/elders".into(),
        Some(
            json!({"citizen_id": known, "name": "周凤英", "residence_region": "320682104205",
            "phone": "13912345678"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let elder = v["id"].as_str().unwrap().to_string();
    let (s, p, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "provider", "name": "如皋市安心居家养老服务有限公司", "ownership": "private",
            "region_code": "320682104000"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let provider = p["id"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{provider}/staff"),
        Some(json!({"name": "王秀兰", "role": "caregiver"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let caregiver = v["id"].as_str().unwrap().to_string();
    let today = yiyang::platform::today();
    let mut orders = vec![];
    for at in ["08:00", "15:00"] {
        let (s, v, _) = call(
            "POST",
            "/api/v1/service-orders".into(),
            Some(
                json!({"provider_id": provider, "elder_id": elder, "service": "助洁",
                "planned_start": format!("{today} {at}"), "planned_minutes": 60}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        orders.push(v["id"].as_str().unwrap().to_string());
    }
    let (done, open) = (&orders[0], &orders[1]);
    for o in &orders {
        let (s, v, _) = call(
            "POST",
            format!("/api/v1/service-orders/{o}/dispatch"),
            Some(json!({"caregiver_id": caregiver})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    for (action, body) in [
        ("accept", json!({})),
        ("check_in", json!({"lon": 120.57, "lat": 32.39})),
        ("check_out", json!({"lon": 120.57, "lat": 32.39})),
        ("confirm", json!({"note": "已电话回访家属，确认上门"})),
    ] {
        let mut b = body;
        b["step_id"] = json!(uuid::Uuid::new_v4().to_string());
        b["action"] = json!(action);
        let (s, v, _) = call(
            "POST",
            format!("/api/v1/service-orders/{done}/steps"),
            Some(b),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{action}: {v}");
    }

    // The confirmation marked her village to be recounted; counted in the share of elders
    // served at home, this month and this year, where she lives (the second visit, not
    // confirmed, is not).
    assert_eq!(
        t.count("SELECT COUNT(*) FROM indicator_dirty WHERE region_code = '320682104205'")
            .await,
        1
    );
    yiyang::indicator::rollup::refresh(&t.state.db, today, true)
        .await
        .unwrap();
    for period in [
        today.format("%Y-%m").to_string(),
        today.format("%Y").to_string(),
    ] {
        let (s, v, _) = call(
            "GET",
            format!("/api/v1/indicators/value?id=home_service_share&region_code=320682104205&period={period}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["numerator"].as_f64(), Some(1.0), "{period}: {v}");
    }

    // A code: the same answer for a stranger's ID; one message, and none again within a minute.
    let (s, a, _) = public(
        "/api/v1/public/home-care/code",
        json!({"citizen_id": unknown, "name": "周凤英"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, b, _) = public(
        "/api/v1/public/home-care/code",
        json!({"citizen_id": known, "name": "周凤英"}),
    )
    .await;
    assert_eq!((s, &a), (StatusCode::OK, &b));
    let (s, _, _) = public(
        "/api/v1/public/home-care/code",
        json!({"citizen_id": known, "name": "周凤英"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM notification_outbox WHERE event = 'family_code'")
            .await,
        1
    );
    let (s, v, _) = public(
        "/api/v1/public/home-care/code",
        json!({"citizen_id": "12345", "name": "周凤英"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("身份证号"), "{v}");

    // Wrong code and a stranger: one answer; then the right code.
    let enc: Vec<u8> = sqlx::query_scalar("SELECT code_enc FROM family_access")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap();
    let code = t.state.keys.decrypt(&enc).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, w1, _) = public(
        "/api/v1/public/home-care/visits",
        json!({"citizen_id": known, "name": "周凤英", "code": wrong}),
    )
    .await;
    let (s2, w2, _) = public(
        "/api/v1/public/home-care/visits",
        json!({"citizen_id": unknown, "name": "周凤英", "code": code}),
    )
    .await;
    assert_eq!(
        (s, s2),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNPROCESSABLE_ENTITY
        )
    );
    assert_eq!(w1["detail"], w2["detail"], "no oracle");
    let (s, v, _) = public(
        "/api/v1/public/home-care/visits",
        json!({"citizen_id": known, "name": "周凤英", "code": code}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["elder"], "周**");
    let visits = v["visits"].as_array().unwrap();
    assert_eq!(visits.len(), 2, "{v}");
    assert_eq!(
        (
            &visits[0]["caregiver"],
            &visits[0]["state"],
            &visits[0]["can_rate"]
        ),
        (&json!("王秀兰"), &json!("已完成"), &json!(true)),
        "{v}"
    );
    assert_eq!(visits[1]["can_rate"], json!(false), "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    // A code is good once.
    let (s, _, _) = public(
        "/api/v1/public/home-care/visits",
        json!({"citizen_id": known, "name": "周凤英", "code": code}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Rating: 1–5, once, only a confirmed visit of this elder.
    let rate = |order: &String, body: Value| {
        let mut b = body;
        b["token"] = json!(token);
        b["order_id"] = json!(order);
        public("/api/v1/public/home-care/feedback", b)
    };
    let (s, v, _) = rate(done, json!({"rating": 6})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = rate(open, json!({"rating": 5})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v, _) = rate(done, json!({"rating": 5, "comment": "打扫得很干净"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = rate(done, json!({"complaint": "护理员迟到了半小时"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // The officer sees it on the order.
    let (s, v, _) = call("GET", format!("/api/v1/service-orders/{done}"), None).await;
    assert_eq!(
        (s, &v["rating"], &v["rating_comment"]),
        (StatusCode::OK, &json!(5), &json!("打扫得很干净")),
        "{v}"
    );
    let other: String =
        sqlx::query_scalar("SELECT id FROM service_order WHERE elder_id <> $1 LIMIT 1")
            .bind(&elder)
            .fetch_optional(&t.state.db.pool)
            .await
            .unwrap()
            .unwrap_or_else(|| "no-such-order".into());
    let (s, v, _) = rate(&other, json!({"rating": 1})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = public(
        "/api/v1/public/home-care/visits",
        json!({"token": token, "month": today.format("%Y-%m").to_string()}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["visits"][0]["rating"], &v["visits"][0]["can_rate"]),
        (&json!(5), &json!(false)),
        "{v}"
    );
    let (s, v, _) = public(
        "/api/v1/public/home-care/visits",
        json!({"token": "not-a-token"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("确认码"), "{v}");
    // The 助餐码 for the meal counter: 8 digits for 30 days (today and 29 more), only with a token.
    let (s, v, _) = public(
        "/api/v1/public/home-care/meal-code",
        json!({"token": token}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let code = v["code"].as_str().unwrap();
    assert!(
        code.len() == 9 && code.replace(' ', "").bytes().all(|b| b.is_ascii_digit()),
        "{v}"
    );
    assert_eq!(
        v["valid_until"],
        (today + chrono::Days::new(29)).to_string(),
        "{v}"
    );
    let (s, _, _) = public(
        "/api/v1/public/home-care/meal-code",
        json!({"token": "not-a-token"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Booking a visit: only with a provider under contract (none yet: none offered), the one that
    // came last first; at a time two hours to 30 days ahead; three waiting at most.
    let (_, v, _) = public("/api/v1/public/home-care/visits", json!({"token": token})).await;
    assert_eq!(v["providers"], json!([]), "{v}");
    let (s, v, _) = call(
        "PUT",
        format!("/api/v1/providers/{provider}/contract"),
        Some(json!({"starts_on": "2026-01-01", "ends_on": "2030-12-31", "prices": [{"service": "助洁", "price": 30}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v, _) = public("/api/v1/public/home-care/visits", json!({"token": token})).await;
    assert_eq!(
        (&v["providers"][0]["id"], &v["providers"][0]["last"]),
        (&json!(provider), &json!(true)),
        "{v}"
    );
    let tomorrow = today + chrono::Days::new(1);
    let book = |start: String, provider: &str| {
        public(
            "/api/v1/public/home-care/orders",
            json!({"token": token, "provider_id": provider, "service": "助浴",
                "planned_start": start, "planned_minutes": 60, "note": "从后门进"}),
        )
    };
    for (start, p, field) in [
        (format!("{today} 00:00"), provider.as_str(), "planned_start"),
        (
            format!("{} 09:00", today + chrono::Days::new(40)),
            provider.as_str(),
            "planned_start",
        ),
        (format!("{tomorrow} 09:00"), "elsewhere", "provider_id"),
    ] {
        let (s, v, _) = book(start, p).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    // 助浴 has no price in the contract: the provider does not do it.
    let (s, v, _) = book(format!("{tomorrow} 09:00"), &provider).await;
    assert_eq!(
        (s, &v["errors"][0]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("service")),
        "{v}"
    );
    let (s, v, _) = call(
        "PUT",
        format!("/api/v1/providers/{provider}/contract"),
        Some(json!({"starts_on": "2026-01-01", "ends_on": "2030-12-31",
            "prices": [{"service": "助洁", "price": 30}, {"service": "助浴", "price": 60}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for day in 1..=3 {
        let (s, v, _) = book(
            format!("{} 09:00", today + chrono::Days::new(day)),
            &provider,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert!(v["message"].as_str().unwrap().contains("预约已提交"), "{v}");
    }
    let (s, v, _) = book(format!("{tomorrow} 15:00"), &provider).await;
    assert_eq!(s, StatusCode::CONFLICT, "a fourth waiting: {v}");
    let (state, note): (String, String) = sqlx::query_as(
        "SELECT state, note FROM service_order WHERE created_by LIKE '家属预约%' ORDER BY start_min LIMIT 1",
    )
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), note.as_str()),
        ("created", "家属预约：从后门进")
    );
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'service_order.create' AND actor_name LIKE '家属预约%'"
        )
        .await,
        3
    );
    for (action, n) in [
        ("home_care.meal_code", 1),
        ("home_care.family_code", 3),
        // A wrong code, a stranger, a code used twice: each recorded.
        ("home_care.family_code_wrong", 3),
        ("home_care.family_view", 4),
        ("home_care.feedback", 1),
    ] {
        let got: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
        assert_eq!(got, n, "{action}");
    }
}

/// 老年助餐 at the counter: the elder by ID card, the meal point's contract price less the
/// catalogue's meal subsidy (特困 free, 80+ three yuan off, others full price), one subsidised
/// lunch and supper a day, a meal sent twice recorded once, the dead and unknown refused in
/// Chinese, the counter's account bound to its meal point; the day's sums. Audited.
#[tokio::test]
async fn db_meals_are_served_at_the_counter_with_the_subsidy_once_a_meal_a_day() {
    const COUNTY: &str = "320682000000";
    let t = TestApp::new("demo", 0).await;
    t.add_user("officer", &["officer"], COUNTY, all_scopes())
        .await;
    let c = t.login("officer").await;
    let pool = &t.state.db.pool;
    let call = |who: &str, m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, who.to_string());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let who = yiyang::audit::Who {
        actor_id: None,
        actor_name: "test".into(),
    };
    yiyang::catalog::store::seed_demo(&t.state.db, COUNTY, &who)
        .await
        .unwrap();
    let version: String = sqlx::query_scalar(
        "SELECT id FROM catalog_version WHERE region_code = '320682000000' AND state = 'published'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO catalog_run (id, region_code, version_id, on_date, started_at, finished_at, by_name, summary) \
         VALUES ('meal-run', '320682000000', $1, '2026-01-01', '2026-01-01', '2026-01-01', 'test', '{}')",
    )
    .bind(&version)
    .execute(pool)
    .await
    .unwrap();
    // Five elders: 特困 (free), 80+ (3 元 off), 80+ granted packed by a run (as a run grants what
    // needs no application), one who has died, one with nothing.
    let mut people = vec![];
    for (i, (name, year)) in [
        ("孙桂兰", 1950),
        ("钱有福", 1940),
        ("李小红", 1941),
        ("赵德明", 1938),
        ("周小梅", 1962),
    ]
    .iter()
    .enumerate()
    {
        let cid = yiyang_kernel::citizen_id::compose(
            "320682",
            chrono::NaiveDate::from_ymd_opt(*year, 5, 1).unwrap(),
            70 + i as u32,
        );
        let (s, v, _) = call(
            &c,
            "POST",
            "/api/v1/elders".into(),
            Some(json!({"citizen_id": cid, "name": name, "residence_region": "320682104205"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        people.push((v["id"].as_str().unwrap().to_string(), cid));
    }
    for (i, (tier, fen)) in [("特困（免费）", 1500), ("每餐减免3元", 300)]
        .iter()
        .enumerate()
    {
        sqlx::query(
            "INSERT INTO entitlement (id, elder_id, catalog_region, item_code, state, tier, amount_fen, quota, \
             residence_region, since, version_id, run_id, reasons, updated_at) \
             SELECT $1, id, '320682000000', 'meal_subsidy', 'granted', $2, $3, 0, residence_region, \
             '2026-01-01', $4, 'meal-run', '', '2026-01-01' FROM elder WHERE id = $5",
        )
        .bind(format!("meal-{i}"))
        .bind(tier)
        .bind(*fen as i64)
        .bind(&version)
        .bind(&people[i].0)
        .execute(pool)
        .await
        .unwrap();
    }
    let pack = yiyang::catalog::pack::encode(&[yiyang::catalog::pack::Entry {
        elder_id: people[2].0.clone(),
        item_code: "meal_subsidy".into(),
        tier: "每餐减免3元".into(),
        amount_fen: 300,
        quota: 0,
        residence: "320682104205".into(),
    }]);
    sqlx::query(
        "INSERT INTO entitlement_pack (run_id, bucket, catalog_region, since, entries, data) \
         VALUES ('meal-run', $1, '320682000000', '2026-01-01', 1, $2)",
    )
    .bind(yiyang::catalog::pack::bucket(&people[2].0))
    .bind(pack)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE elder SET status = 'deceased', death_date = '2026-01-02' WHERE id = $1")
        .bind(&people[3].0)
        .execute(pool)
        .await
        .unwrap();
    let (s, p, _) = call(
        &c,
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "meal_point", "name": "如城街道幸福食堂", "ownership": "public",
            "region_code": "320682104000"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let point = p["id"].as_str().unwrap().to_string();
    let serve = |who: &str, cid: &str, meal: &str, id: Option<String>| {
        let body = json!({"meal_id": id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            "meal_point_id": point, "citizen_id": cid, "meal": meal});
        call(who, "POST", "/api/v1/meals".into(), Some(body))
    };
    sqlx::query("DELETE FROM indicator_dirty")
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    // No price yet: refused saying what to do.
    let (s, v, _) = serve(&c, &people[1].1, "lunch", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("餐价"), "{v}");
    let (s, v, _) = call(
        &c,
        "PUT",
        format!("/api/v1/providers/{point}/contract"),
        Some(json!({"starts_on": "2026-01-01", "ends_on": "2030-12-31", "prices": [{"service": "助餐", "price": 12}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pay = |v: &Value| {
        (
            v["price_fen"].as_i64(),
            v["subsidy_fen"].as_i64(),
            v["pay_fen"].as_i64(),
        )
    };
    let (s, v, _) = serve(&c, &people[0].1, "lunch", None).await;
    assert_eq!(
        (s, pay(&v)),
        (StatusCode::OK, (Some(1200), Some(1200), Some(0))),
        "特困 free: {v}"
    );
    let again = uuid::Uuid::new_v4().to_string();
    let (s, v, _) = serve(&c, &people[1].1, "午餐", Some(again.clone())).await;
    assert_eq!(
        (s, pay(&v)),
        (StatusCode::OK, (Some(1200), Some(300), Some(900))),
        "{v}"
    );
    assert_eq!(v["elder"], "钱**");
    let (s, v, _) = serve(&c, &people[1].1, "lunch", Some(again.clone())).await;
    assert_eq!(
        (s, pay(&v)),
        (StatusCode::OK, (Some(1200), Some(300), Some(900))),
        "sent twice: {v}"
    );
    // The same id for another person: refused, not answered with the first meal.
    let (s, v, _) = serve(&c, &people[0].1, "lunch", Some(again.clone())).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v, _) = serve(&c, &people[1].1, "lunch", None).await;
    assert_eq!(
        (s, pay(&v)),
        (StatusCode::OK, (Some(1200), Some(0), Some(1200))),
        "a second lunch: {v}"
    );
    assert!(v["note"].as_str().unwrap().contains("补贴已用过"), "{v}");
    let (s, v, _) = serve(&c, &people[1].1, "supper", None).await;
    assert_eq!(
        (s, pay(&v)),
        (StatusCode::OK, (Some(1200), Some(300), Some(900))),
        "{v}"
    );
    let (s, v, _) = serve(&c, &people[2].1, "lunch", None).await;
    assert_eq!(
        (s, pay(&v)),
        (StatusCode::OK, (Some(1200), Some(300), Some(900))),
        "packed: {v}"
    );
    let (s, v, _) = serve(&c, &people[4].1, "lunch", None).await;
    assert_eq!(
        (s, pay(&v)),
        (StatusCode::OK, (Some(1200), Some(0), Some(1200))),
        "no subsidy: {v}"
    );
    let (s, v, _) = serve(&c, &people[3].1, "lunch", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "the dead: {v}");
    let unknown = yiyang_kernel::citizen_id::compose(
        "320682",
        chrono::NaiveDate::from_ymd_opt(1944, 1, 1).unwrap(),
        99,
    );
    let (s, v, _) = serve(&c, &unknown, "lunch", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    for (cid, meal, field) in [
        ("3206821", "lunch", "citizen_id"),
        (people[0].1.as_str(), "早餐", "meal"),
    ] {
        let (s, v, _) = serve(&c, cid, meal, None).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM meal_record").await,
        6,
        "the retry recorded once, the refused not at all"
    );
    // The counter's own account: its meal point only, and no other organisation's.
    t.add_user_in(
        "counter",
        &["meal_counter"],
        COUNTY,
        all_scopes(),
        Some(&point),
    )
    .await;
    let k = t.login("counter").await;
    let body = json!({"meal_id": uuid::Uuid::new_v4().to_string(), "citizen_id": people[0].1, "meal": "supper"});
    let (s, v, _) = call(&k, "POST", "/api/v1/meals".into(), Some(body)).await;
    assert_eq!(
        (s, pay(&v)),
        (StatusCode::OK, (Some(1200), Some(1200), Some(0))),
        "{v}"
    );
    let (s, other, _) = call(
        &c,
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "meal_point", "name": "白蒲镇颐养食堂", "ownership": "public",
            "region_code": "320682104000"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{other}");
    let body = json!({"meal_id": uuid::Uuid::new_v4().to_string(), "meal_point_id": other["id"],
        "citizen_id": people[4].1, "meal": "supper"});
    let (s, v, _) = call(&k, "POST", "/api/v1/meals".into(), Some(body)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let today = yiyang::platform::today();
    let (s, v, _) = call(
        &k,
        "GET",
        format!("/api/v1/meal-points/{point}/day?date={today}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Lunches: free, 3 off, full (the second), 3 off (packed), full; suppers: 3 off, free.
    assert_eq!(
        (
            &v["lunches"],
            &v["suppers"],
            &v["subsidy_fen"],
            &v["paid_fen"]
        ),
        (
            &json!(5),
            &json!(2),
            &json!(1200 + 300 + 300 + 300 + 1200),
            &json!(900 + 1200 + 900 + 1200 + 900)
        ),
        "{v}"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'meal.serve'")
            .await,
        7
    );
    // Each meal marks where the elder lives for the indicators' recount (meals served); the
    // second meal point, where it is.
    assert_eq!(t.count("SELECT COUNT(*) FROM indicator_dirty").await, 7 + 1);
    // The month settles: the meal point is paid the subsidies, a meal recorded after the elder's
    // death is held back, and the levels add up to what is paid.
    sqlx::query(
        "INSERT INTO meal_record (id, meal_point_id, elder_id, day, meal, price_fen, subsidy_fen, served_at, served_by, \
         version_id, item_code) VALUES ($1, $2, $3, $4, 'lunch', 1200, 300, $5, 'test', $6, 'meal_subsidy')",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&point)
    .bind(&people[3].0)
    .bind(today.to_string())
    .bind(yiyang::platform::now_rfc3339())
    .bind(&version)
    .execute(pool)
    .await
    .unwrap();
    let month = today.format("%Y-%m").to_string();
    let (s, v, _) = call(
        &c,
        "GET",
        format!("/api/v1/home-settlements/preview?month={month}&provider_id={point}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let p = &v["providers"][0];
    assert_eq!(
        (
            &p["meals"],
            &p["orders"],
            &p["gross_fen"],
            &p["excluded_fen"],
            &p["payable_fen"]
        ),
        (
            &json!(6),
            &json!(0),
            &json!(3600),
            &json!(300),
            &json!(3300)
        ),
        "{v}"
    );
    let l = &p["by_level"];
    assert_eq!(
        (&l["province"], &l["city"], &l["county"], &l["town"]),
        (&json!(0), &json!(0), &json!(1980), &json!(1320)),
        "the item's 60/40: {v}"
    );
    assert_eq!(v["excluded"][0]["kind"], "after_death", "{v}");
    assert_eq!(v["excluded"][0]["meal"], true, "{v}");
    // An officer lets the meal through with a reason (a short one refused; the counter cannot);
    // the month then pays it.
    let held = v["excluded"][0]["ref"].as_str().unwrap().to_string();
    let (s, e, _) = call(
        &c,
        "POST",
        format!("/api/v1/meals/{held}/overrides"),
        Some(json!({"kind": "after_death", "reason": "错"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, _, _) = call(
        &k,
        "POST",
        format!("/api/v1/meals/{held}/overrides"),
        Some(json!({"kind": "after_death", "reason": "死亡日期登记有误，已核实"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e, _) = call(
        &c,
        "POST",
        format!("/api/v1/meals/{}/overrides", uuid::Uuid::new_v4()),
        Some(json!({"kind": "after_death", "reason": "死亡日期登记有误，已核实"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e, _) = call(
        &c,
        "POST",
        format!("/api/v1/meals/{held}/overrides"),
        Some(json!({"kind": "after_death", "reason": "死亡日期登记有误，已核实"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{e}");
    let (_, v, _) = call(
        &c,
        "GET",
        format!("/api/v1/home-settlements/preview?month={month}&provider_id={point}"),
        None,
    )
    .await;
    assert_eq!(
        (
            &v["providers"][0]["payable_fen"],
            &v["excluded"].as_array().map(Vec::len)
        ),
        (&json!(3600), &Some(0)),
        "{v}"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'meal.override'")
            .await,
        1
    );
    // The family's 助餐码 instead of the ID card: the elder it was made for, the one before it
    // no longer works, a wrong code counted against the counter's day, and an ID with a code
    // refused. (The family's page makes codes through `/public/home-care/meal-code`.)
    let issue = |elder: String| {
        let t = &t;
        async move {
            let mut tx = t.state.db.begin().await.unwrap();
            let c = yiyang::home_service::meal_code::issue(&mut tx, &t.state.keys, &elder)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            c.code
        }
    };
    let mut tx = t.state.db.begin().await.unwrap();
    let refused =
        yiyang::home_service::meal_code::issue(&mut tx, &t.state.keys, &people[3].0).await;
    assert!(refused.is_err(), "no code for the dead");
    drop(tx);
    let old = issue(people[0].0.clone()).await;
    let code = issue(people[0].0.clone()).await;
    assert_eq!(code.len(), 9, "shown as 1234 5678: {code}");
    let by_code = |code: &str, id: Option<String>| {
        let body = json!({"meal_id": id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            "family_code": code, "meal": "supper"});
        call(&k, "POST", "/api/v1/meals".into(), Some(body))
    };
    if old != code {
        let (s, v, _) = by_code(&old, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "the code before: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("还可以再输错 19 次"),
            "{v}"
        );
    }
    let id = uuid::Uuid::new_v4().to_string();
    for _ in 0..2 {
        let (s, v, _) = by_code(&code.replace(' ', "-"), Some(id.clone())).await;
        assert_eq!(
            (s, v["elder"].as_str(), pay(&v)),
            (
                StatusCode::OK,
                Some("孙**"),
                (Some(1200), Some(0), Some(1200))
            ),
            "a second supper that day, sent twice: {v}"
        );
    }
    let body = json!({"meal_id": uuid::Uuid::new_v4().to_string(), "family_code": code,
        "citizen_id": people[0].1});
    let (s, v, _) = call(&k, "POST", "/api/v1/meals".into(), Some(body)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = by_code("1234", None).await;
    assert_eq!(
        (s, &v["errors"][0]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("family_code")),
        "{v}"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM meal_record WHERE served_by <> 'test'")
            .await,
        8,
        "the meal by code once"
    );
    // Codes tried one after another: after 20 wrong ones in a day the counter account is told
    // to use the ID card, whatever it types (counted in the database).
    let mut refused_at = None;
    for i in 0..25 {
        let (s, _, _) = by_code(&format!("{:08}", 10_000_000 + i), None).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            refused_at = Some(i);
            break;
        }
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let wrong_before = if old != code { 1 } else { 0 };
    assert_eq!(refused_at, Some(20 - wrong_before));
    let (s, _, _) = by_code(&code, None).await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "a good code too, for today"
    );
    assert_eq!(t.count("SELECT MAX(n) FROM meal_code_try").await, 20);
    let stored: String = sqlx::query_scalar("SELECT code_bidx FROM meal_code")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(
        !stored.contains(&code.replace(' ', "")),
        "only a keyed hash is kept"
    );
}

/// A care plan: every Tuesday and Friday 助洁 at 09:00 makes its coming week's orders once (made
/// again, nothing twice), refuses what is wrong in Chinese, is seen on the elder's plans, and
/// once ended cancels its orders not yet dispatched. Audited.
#[tokio::test]
async fn db_a_care_plan_places_its_weeks_visits_once_and_ending_it_cancels_the_rest() {
    let t = TestApp::new("demo", 5).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
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
            "region_code": "320682104000"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let provider = p["id"].as_str().unwrap().to_string();
    let elder: String = sqlx::query_scalar(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 1",
    )
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap();
    let plan = |body: Value| call("POST", "/api/v1/care-plans".into(), Some(body));
    for (body, field) in [
        (json!({"weekdays": [], "start_time": "09:00"}), "weekdays"),
        (json!({"weekdays": [8], "start_time": "09:00"}), "weekdays"),
        (json!({"weekdays": [2], "start_time": "上午"}), "start_time"),
        (
            json!({"weekdays": [2], "start_time": "09:00", "ends_on": "2020-01-01"}),
            "ends_on",
        ),
    ] {
        let mut b = json!({"elder_id": elder, "provider_id": provider, "service": "助洁",
            "planned_minutes": 60});
        for (k, v) in body.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (s, v, _) = plan(b).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    let (s, v, _) = plan(
        json!({"elder_id": elder, "provider_id": provider, "service": "助洁",
        "weekdays": [5, 2, 2], "start_time": "9:00", "planned_minutes": 60}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["summary"], "每周二、周五 09:00 助洁 60 分钟", "{v}");
    // A week holds exactly two of its days.
    assert_eq!(v["orders"], 2, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let made =
        yiyang::home_service::plan::make_orders(&t.state.db, yiyang::platform::today(), None)
            .await
            .unwrap();
    assert_eq!(made, 0, "made again: nothing twice");
    // A week later, the next two (the first week's stay).
    let made = yiyang::home_service::plan::make_orders(
        &t.state.db,
        yiyang::platform::today() + chrono::Days::new(7),
        None,
    )
    .await
    .unwrap();
    assert_eq!(made, 2);
    let starts: Vec<String> = sqlx::query_scalar(
        "SELECT planned_start FROM service_order WHERE plan_id = $1 ORDER BY planned_start",
    )
    .bind(&id)
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(starts.len(), 4);
    for s in &starts {
        let d = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        use chrono::Datelike;
        assert!(
            matches!(d.weekday(), chrono::Weekday::Tue | chrono::Weekday::Fri)
                && s.ends_with("09:00"),
            "{s}"
        );
    }
    let (s, v, _) = call("GET", format!("/api/v1/elders/{elder}/care-plans"), None).await;
    assert_eq!(
        (s, v.as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    // Ending it: a reason, then the orders not dispatched are cancelled; no more are made.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/care-plans/{id}/end"),
        Some(json!({"reason": ""})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/care-plans/{id}/end"),
        Some(json!({"reason": "老人入住养老院"})),
    )
    .await;
    assert_eq!((s, &v["state"]), (StatusCode::OK, &json!("ended")), "{v}");
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM service_order WHERE plan_id IS NOT NULL AND state = 'cancelled'"
        )
        .await,
        4
    );
    let made = yiyang::home_service::plan::make_orders(
        &t.state.db,
        yiyang::platform::today() + chrono::Days::new(14),
        None,
    )
    .await
    .unwrap();
    assert_eq!(made, 0);
    for (action, n) in [
        ("care_plan.create", 1),
        ("care_plan.orders", 2),
        ("care_plan.end", 1),
    ] {
        let got: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
        assert_eq!(got, n, "{action}");
    }
    // The elder dies: a second plan ends with the death, its visits from that day are cancelled
    // (each a step of its visit), no more are made.
    let (s, v, _) = plan(
        json!({"elder_id": elder, "provider_id": provider, "service": "助浴",
        "weekdays": [1, 2, 3, 4, 5, 6, 7], "start_time": "15:00", "planned_minutes": 60}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let second = v["id"].as_str().unwrap().to_string();
    let n = |sql: &'static str| {
        let (t, id) = (&t, second.clone());
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(id)
                .fetch_one(&t.state.db.pool)
                .await
                .unwrap()
        }
    };
    let open = "SELECT COUNT(*) FROM service_order WHERE plan_id = $1 AND state = 'created'";
    assert!(n(open).await >= 6);
    let today = yiyang::platform::today();
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/elders/{elder}/death"),
        Some(json!({"death_date": today.to_string()})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(n(open).await, 0);
    let (state, ends): (String, String) =
        sqlx::query_as("SELECT state, ends_on FROM care_plan WHERE id = $1")
            .bind(&second)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), ends), ("ended", today.to_string()));
    assert!(
        n(
            "SELECT COUNT(*) FROM service_order o JOIN service_order_step s ON s.order_id = o.id \
           WHERE o.plan_id = $1 AND o.reason = '老人已去世，上门服务取消' AND s.action = 'cancel'"
        )
        .await
            >= 6
    );
    let made =
        yiyang::home_service::plan::make_orders(&t.state.db, today + chrono::Days::new(14), None)
            .await
            .unwrap();
    assert_eq!(made, 0, "nothing made for the dead");
}

/// A JPEG as a phone makes it: the camera's place and time in its EXIF.
fn phone_jpeg(lat: [u32; 3], lon: [u32; 3], salt: u8) -> Vec<u8> {
    use exif::{Field, In, Rational, Tag, Value};
    let dms =
        |v: [u32; 3]| Value::Rational(v.iter().map(|&n| Rational { num: n, denom: 1 }).collect());
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let fields = [
        (Tag::GPSLatitudeRef, ascii("N")),
        (Tag::GPSLatitude, dms(lat)),
        (Tag::GPSLongitudeRef, ascii("E")),
        (Tag::GPSLongitude, dms(lon)),
        (Tag::DateTimeOriginal, ascii("2026:12:06 09:31:05")),
    ]
    .map(|(tag, value)| Field {
        tag,
        ifd_num: In::PRIMARY,
        value,
    });
    let mut w = exif::experimental::Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    w.write(&mut tiff, false).unwrap();
    let tiff = tiff.into_inner();
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1];
    j.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    j.extend_from_slice(b"Exif\0\0");
    j.extend_from_slice(&tiff);
    // Something of a picture, different per photo.
    j.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x03, salt, 0xFF, 0xD9]);
    j
}

/// Photos of a visit: kept between check-in and confirmation, under the phone's id (sent twice,
/// kept once), with the camera's place and time; by their bytes only JPEG or PNG, at most 8 MB
/// and nine a visit; listed and served only to the order's readers in scope, each look audited;
/// the file kept once under its SHA-256.
#[tokio::test]
async fn db_a_visit_keeps_its_photos_once_with_their_place_and_only_for_its_readers() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let t = TestApp::new("demo", 10).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("other", &["officer"], "320681000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let (_, p, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "provider", "name": "如皋市安心居家养老服务有限公司", "ownership": "private",
            "region_code": "320682103000"})),
    )
    .await;
    let provider = p["id"].as_str().unwrap().to_string();
    let (_, cg, _) = call(
        "POST",
        format!("/api/v1/orgs/{provider}/staff"),
        Some(json!({"name": "李春华", "role": "caregiver"})),
    )
    .await;
    let elder: String =
        sqlx::query_scalar("SELECT id FROM elder WHERE status = 'active' ORDER BY id LIMIT 1")
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    let (s, o, _) = call(
        "POST",
        "/api/v1/service-orders".into(),
        Some(
            json!({"provider_id": provider, "elder_id": elder, "service": "助洁",
            "planned_start": "2026-12-08 09:00", "planned_minutes": 60}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let id = o["id"].as_str().unwrap().to_string();
    call(
        "POST",
        format!("/api/v1/service-orders/{id}/dispatch"),
        Some(json!({"caregiver_id": cg["id"]})),
    )
    .await;
    let upload = |cookie: String, photo_id: String, bytes: Vec<u8>| {
        let t = &t;
        let uri = format!("/api/v1/service-orders/{id}/photos?photo_id={photo_id}");
        async move {
            let req = Request::builder()
                .method("POST")
                .uri(uri)
                .header(header::COOKIE, cookie)
                .header(header::CONTENT_TYPE, "image/jpeg")
                .body(Body::from(bytes))
                .unwrap();
            let (s, b, _) = t.raw(req).await;
            (
                s,
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
            )
        }
    };
    let pid = || uuid::Uuid::new_v4().to_string();
    let photo = phone_jpeg([32, 23, 24], [120, 34, 12], 1);
    // Before check-in: not yet.
    let (s, v) = upload(c.clone(), pid(), photo.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("签到后"), "{v}");
    for action in ["accept", "check_in"] {
        let (s, v, _) = call(
            "POST",
            format!("/api/v1/service-orders/{id}/steps"),
            Some(json!({"step_id": pid(), "action": action})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Not a photo, too large: refused, saying what is wrong.
    let (s, v) = upload(c.clone(), pid(), b"GIF89a....".to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("JPEG"), "{v}");
    let mut big = vec![0xFF, 0xD8, 0xFF];
    big.resize(9 * 1024 * 1024, 0);
    let (s, _) = upload(c.clone(), pid(), big).await;
    assert!(
        s == StatusCode::PAYLOAD_TOO_LARGE || s == StatusCode::UNPROCESSABLE_ENTITY,
        "{s}"
    );
    let (s, v) = upload(c.clone(), "x".into(), photo.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Kept with the camera's place and time; sent again under the same id, kept once.
    let first = pid();
    let (s, v) = upload(c.clone(), first.clone(), photo.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (lat, lon) = (v["lat"].as_f64().unwrap(), v["lon"].as_f64().unwrap());
    assert!(
        (lat - (32.0 + 23.0 / 60.0 + 24.0 / 3600.0)).abs() < 1e-6,
        "{v}"
    );
    assert!(
        (lon - (120.0 + 34.0 / 60.0 + 12.0 / 3600.0)).abs() < 1e-6,
        "{v}"
    );
    assert_eq!(v["taken_at"], "2026-12-06 09:31:05");
    let (s, again) = upload(c.clone(), first.clone(), photo.clone()).await;
    assert_eq!((s, &again["id"]), (StatusCode::CREATED, &v["id"]));
    // The same picture under another id: a second row, one file.
    let (s, _) = upload(c.clone(), pid(), photo.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    for k in 0..7 {
        let (s, v) = upload(
            c.clone(),
            pid(),
            phone_jpeg([32, 23, 24], [120, 34, 12], 10 + k),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = upload(
        c.clone(),
        pid(),
        phone_jpeg([32, 23, 24], [120, 34, 12], 99),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "a tenth: {v}");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM visit_photo").await,
        9,
        "nine kept"
    );
    assert_eq!(
        t.count("SELECT COUNT(DISTINCT sha256) FROM visit_photo")
            .await,
        8
    );
    // Listed and served to the order's reader; the look audited; another town sees nothing.
    let (s, list, _) = call("GET", format!("/api/v1/service-orders/{id}/photos"), None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (StatusCode::OK, 9));
    let get = |cookie: String, photo_id: String| {
        let t = &t;
        let uri = format!("/api/v1/service-orders/{id}/photos/{photo_id}");
        async move {
            let req = Request::builder()
                .uri(uri)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap();
            t.raw(req).await
        }
    };
    let (s, bytes, h) = get(c.clone(), first.clone()).await;
    assert_eq!((s, bytes.as_slice()), (StatusCode::OK, photo.as_slice()));
    assert_eq!(h[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'service_order.photo_view'")
            .await,
        1
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'service_order.photo'")
            .await,
        9
    );
    let other = t.login("other").await;
    let (s, _, _) = get(other.clone(), first.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = t
        .call(
            "GET",
            &format!("/api/v1/service-orders/{id}/photos"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = upload(other, pid(), phone_jpeg([31, 0, 0], [121, 0, 0], 77)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // On disk: the eight pictures kept, nothing of the refused ones.
    fn files(p: &std::path::Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { files(&p) } else { 1 })
                .sum()
        })
    }
    assert_eq!(files(&t.state.config.files_dir), 8);
}

/// A crowd of caregivers stepping at once (written together, one statement for a group on
/// PostgreSQL): every step is written once with its own columns, a step sent twice at the same
/// moment is done once, a check-in without a place leaves the place empty, and each step has its
/// one audit entry under the request that made it.
#[tokio::test]
async fn db_a_crowd_of_steps_at_once_writes_each_once() {
    const N: usize = 24;
    let t = TestApp::new("demo", 30).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let (s, p, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "provider", "name": "如皋市同心居家养老服务中心", "ownership": "private",
            "region_code": "320682103000"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let provider = p["id"].as_str().unwrap().to_string();
    let elders: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 24",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(elders.len(), N);
    let mut orders = vec![];
    let names = "秀兰春华建国桂英玉梅淑珍凤英海燕丽华红梅志强国强建华德明";
    for (i, elder) in elders.iter().enumerate() {
        let given: String = names.chars().skip(i % 16 * 2).take(2).collect();
        let family = ["王", "李"][i / 16];
        let (s, v, _) = call(
            "POST",
            format!("/api/v1/orgs/{provider}/staff"),
            Some(json!({"name": format!("{family}{given}"), "role": "caregiver"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let caregiver = v["id"].as_str().unwrap().to_string();
        let (s, o, _) = call(
            "POST",
            "/api/v1/service-orders".into(),
            Some(
                json!({"provider_id": provider, "elder_id": elder, "service": "助洁",
                "planned_start": "2026-12-08 09:00", "planned_minutes": 60}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let id = o["id"].as_str().unwrap().to_string();
        let (s, v, _) = call(
            "POST",
            format!("/api/v1/service-orders/{id}/dispatch"),
            Some(json!({"caregiver_id": caregiver})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        orders.push(id);
    }
    let audits = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'service_order.step'",
        )
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
    };
    let before = audits().await;
    let dispatched: i64 =
        sqlx::query_scalar("SELECT MAX(version) FROM service_order WHERE provider_id = $1")
            .bind(&provider)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    for (action, to) in [
        ("accept", "accepted"),
        ("check_in", "checked_in"),
        ("check_out", "checked_out"),
    ] {
        // Every order's step, sent twice at once under one id for every third order.
        let mut sends = vec![];
        for (i, id) in orders.iter().enumerate() {
            let step_id = uuid::Uuid::now_v7().to_string();
            let mut body = json!({"step_id": step_id, "action": action});
            // Every other caregiver's phone has no place to give.
            if i % 2 == 0 && action != "accept" {
                body["lon"] = json!(120.57 + i as f64 / 1000.0);
                body["lat"] = json!(32.39);
            }
            let times = if i % 3 == 0 { 2 } else { 1 };
            for _ in 0..times {
                sends.push(call(
                    "POST",
                    format!("/api/v1/service-orders/{id}/steps"),
                    Some(body.clone()),
                ));
            }
        }
        for (s, v, _) in futures_util::future::join_all(sends).await {
            assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some(to)), "{v}");
        }
    }
    let rows = sqlx::query(
        "SELECT o.id, o.state, o.version, o.check_in_lon, o.check_out_lon, o.check_in_min, o.check_out_min, \
         (SELECT COUNT(*) FROM service_order_step t WHERE t.order_id = o.id) \
         FROM service_order o WHERE o.provider_id = $1",
    )
    .bind(&provider)
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), N);
    use sqlx::Row;
    for r in &rows {
        let id: String = r.get(0);
        let i = orders.iter().position(|o| *o == id).unwrap();
        assert_eq!(r.get::<String, _>(1), "checked_out", "{id}");
        // Each of the three steps moved the version once.
        assert_eq!(r.get::<i64, _>(2), dispatched + 3, "version of order {i}");
        assert_eq!(r.get::<i64, _>(7), 3, "steps of order {i}");
        let (lon_in, lon_out): (Option<f64>, Option<f64>) = (r.get(3), r.get(4));
        if i % 2 == 0 {
            let lon = 120.57 + i as f64 / 1000.0;
            assert!(
                lon_in.is_some_and(|x| (x - lon).abs() < 1e-9),
                "{i}: {lon_in:?}"
            );
            assert!(
                lon_out.is_some_and(|x| (x - lon).abs() < 1e-9),
                "{i}: {lon_out:?}"
            );
        } else {
            assert_eq!((lon_in, lon_out), (None, None), "{i}");
        }
        let (m_in, m_out): (Option<i64>, Option<i64>) = (r.get(5), r.get(6));
        assert!(m_in.is_some() && m_out >= m_in, "{i}: {m_in:?} {m_out:?}");
    }
    assert_eq!(
        audits().await - before,
        3 * N as i64,
        "one audit entry a step"
    );
    let requests: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT request_id) FROM audit_log WHERE action = 'service_order.step' AND request_id <> ''",
    )
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(requests, 3 * N as i64, "each entry names its own request");
    let chain = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert!(
        chain.ok,
        "the chain holds after the crowd's grouped appends"
    );
}

/// A visit's tasks are ticked at check-out from its service's list (another service's task is
/// refused, naming the right ones), and the elder may confirm by signing on the phone instead of
/// the family's code: the signature is kept, shown to the visit's readers with each look
/// audited, and a bad one is refused. On both engines.
#[tokio::test]
async fn db_a_visit_ticks_its_tasks_and_the_elder_may_sign_to_confirm() {
    use base64::Engine;
    let t = TestApp::new("demo", 30).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let (_, p, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "provider", "name": "如皋市安康居家养老服务中心", "ownership": "private",
            "region_code": "320682103000"}),
        ),
    )
    .await;
    let provider = p["id"].as_str().unwrap().to_string();
    let (_, cg, _) = call(
        "POST",
        format!("/api/v1/orgs/{provider}/staff"),
        Some(json!({"name": "王秀兰", "role": "caregiver"})),
    )
    .await;
    let elders: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 2",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    // The first elder has no phone on file (the family's code cannot reach anyone); the second has.
    sqlx::query("UPDATE elder SET phone_bidx = NULL WHERE id = $1")
        .bind(&elders[0])
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE elder SET phone_bidx = 'test-phone' WHERE id = $1")
        .bind(&elders[1])
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    let cg_id = cg["id"].as_str().unwrap().to_string();
    t.add_user_staff(
        "cg",
        &["caregiver"],
        "320682000000",
        all_scopes(),
        Some(&provider),
        Some(&cg_id),
    )
    .await;
    let cgc = t.login("cg").await;
    let mut orders = vec![];
    for (elder, at) in elders.iter().zip(["2026-12-08 09:00", "2026-12-08 14:00"]) {
        let (s, o, _) = call(
            "POST",
            "/api/v1/service-orders".into(),
            Some(
                json!({"provider_id": provider, "elder_id": elder, "service": "助洁",
                "planned_start": at, "planned_minutes": 60}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let id = o["id"].as_str().unwrap().to_string();
        assert_eq!(o["tasks"].as_array().unwrap().len(), 6, "{o}");
        assert_eq!(
            o["tasks"][0],
            json!({"code": "sweep", "name": "清扫拖地", "done": false})
        );
        let (s, v, _) = call(
            "POST",
            format!("/api/v1/service-orders/{id}/dispatch"),
            Some(json!({"caregiver_id": cg["id"]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        orders.push(id);
    }
    let step = |order: &str, body: Value| {
        let mut body = body;
        body["step_id"] = json!(uuid::Uuid::now_v7().to_string());
        call(
            "POST",
            format!("/api/v1/service-orders/{order}/steps"),
            Some(body),
        )
    };
    let a = &orders[0];
    let (s, v, _) = step(a, json!({"action": "accept", "tasks": ["sweep"]})).await;
    assert_eq!(
        (s, &v["errors"][0]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("tasks")),
        "{v}"
    );
    for action in ["accept", "check_in"] {
        let (s, v, _) = step(a, json!({"action": action})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v, _) = step(a, json!({"action": "check_out", "tasks": ["协助洗浴"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let msg = v["detail"].as_str().unwrap();
    assert!(
        msg.contains("不是助洁的服务项目") && msg.contains("清洗餐具"),
        "{v}"
    );
    let (s, v, _) = step(
        a,
        json!({"action": "check_out", "tasks": ["dishes", "清扫拖地", "dishes"]}),
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("checked_out")),
        "{v}"
    );
    let done: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["done"] == true)
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(done, ["清扫拖地", "清洗餐具"], "{v}");
    let (_, read, _) = call("GET", format!("/api/v1/service-orders/{a}"), None).await;
    assert_eq!(read["tasks"], v["tasks"], "the answer is what was kept");

    // The elder signs: a PNG, not with a code too, not too large.
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[7u8; 120]].concat();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for (bad, why) in [
        (
            json!({"action": "confirm", "signature": "不是图片"}),
            "base64",
        ),
        (
            json!({"action": "confirm", "signature": b64(b"GIF89a0000000000000000000000000000000000000000000000000000000000000000")}),
            "PNG",
        ),
        (
            json!({"action": "confirm", "signature": b64(&[png.clone(), vec![0u8; 210 * 1024]].concat())}),
            "签名图片",
        ),
        (
            json!({"action": "confirm", "code": "123456", "signature": b64(&png)}),
            "只需其一",
        ),
        (
            json!({"action": "check_in", "signature": b64(&png)}),
            "确认完成时",
        ),
    ] {
        let (s, v, _) = step(a, bad).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    let (s, v, _) = call("GET", format!("/api/v1/service-orders/{a}/signature"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not signed yet: {v}");
    fn files(p: &std::path::Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { files(&p) } else { 1 })
                .sum()
        })
    }
    // Signed for an order not waiting for it, or outside the caller's area: refused, nothing kept.
    let (s, v, _) = step(
        &orders[1],
        json!({"action": "confirm", "signature": b64(&png)}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    t.add_user("other", &["officer"], "320681000000", all_scopes())
        .await;
    let o = t.login("other").await;
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/service-orders/{a}/steps"),
            Some(&o),
            Some(json!({"step_id": uuid::Uuid::now_v7().to_string(), "action": "confirm", "signature": b64(&png)})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        files(&t.state.config.files_dir),
        0,
        "no file for a refused signature"
    );
    let sign = json!({"action": "confirm", "step_id": uuid::Uuid::now_v7().to_string(),
        "signature": format!("data:image/png;base64,{}", b64(&png))});
    // Only the caregiver in the home asks the elder to sign; an officer calls the family back.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/service-orders/{a}/steps"),
        Some(sign.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let send = || {
        let (t, c, sign) = (&t, cgc.clone(), sign.clone());
        let uri = format!("/api/v1/service-orders/{a}/steps");
        async move { t.call("POST", &uri, Some(&c), Some(sign)).await }
    };
    let (s, v, _) = send().await;
    assert_eq!(
        (
            s,
            v["state"].as_str(),
            v["confirmed_by"].as_str(),
            v["confirmed_by_zh"].as_str()
        ),
        (
            StatusCode::OK,
            Some("confirmed"),
            Some("signature"),
            Some("老人签名")
        ),
        "{v}"
    );
    let (s, again, _) = send().await;
    assert_eq!(
        (s, again["state"].as_str()),
        (StatusCode::OK, Some("confirmed")),
        "sent twice, done once: {again}"
    );
    let (s, bytes, h) = t
        .raw(
            axum::http::Request::get(format!("/api/v1/service-orders/{a}/signature"))
                .header(axum::http::header::COOKIE, c.as_str())
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (s, bytes, h["content-type"].to_str().unwrap()),
        (StatusCode::OK, png.clone(), "image/png")
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'service_order.signature_view'")
            .await,
        1
    );
    assert_eq!(files(&t.state.config.files_dir), 1, "the signature, once");
    assert_eq!(v["phone_on_file"], false, "{v}");
    // Another county's officer cannot read it.
    let (s, _, _) = t
        .call(
            "GET",
            &format!("/api/v1/service-orders/{a}/signature"),
            Some(&o),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Confirmed by the officer's call to the family: no signature.
    let b = &orders[1];
    for body in [
        json!({"action": "check_in"}),
        json!({"action": "check_out"}),
    ] {
        let (s, v, _) = step(b, body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Her family has a phone on file: the code, not a signature.
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/service-orders/{b}/steps"),
            Some(&cgc),
            Some(json!({"step_id": uuid::Uuid::now_v7().to_string(), "action": "confirm", "signature": b64(&png)})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("发送确认码"), "{v}");
    assert_eq!(files(&t.state.config.files_dir), 1, "nothing kept for it");
    let (s, v, _) = step(
        b,
        json!({"action": "confirm", "note": "已电话回访家属，确认上门"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = call("GET", format!("/api/v1/service-orders/{b}"), None).await;
    assert_eq!(
        (s, v["confirmed_by_zh"].as_str()),
        (StatusCode::OK, Some("电话回访")),
        "{v}"
    );
    assert!(
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["done"] == false),
        "{v}"
    );
    let (s, _, _) = call("GET", format!("/api/v1/service-orders/{b}/signature"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The 12349 operator takes an elder's call and places a visit; dispatching, steps and the
    // settlement stay with the provider and the officer.
    t.add_user("op", &["operator"], "320682000000", all_scopes())
        .await;
    let op = t.login("op").await;
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/service-orders",
            Some(&op),
            Some(json!({"provider_id": provider, "elder_id": elders[1], "service": "助医",
                "planned_start": "2026-12-09 08:30", "planned_minutes": 120, "note": "12349 来电：陪同复诊"})),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::CREATED, Some("created")),
        "{v}"
    );
    let placed = v["id"].as_str().unwrap().to_string();
    for (m, uri, body) in [
        (
            "POST",
            format!("/api/v1/service-orders/{placed}/dispatch"),
            Some(json!({"caregiver_id": cg["id"]})),
        ),
        (
            "POST",
            format!("/api/v1/service-orders/{placed}/steps"),
            Some(
                json!({"step_id": uuid::Uuid::now_v7().to_string(), "action": "cancel", "note": "来电取消"}),
            ),
        ),
        (
            "GET",
            "/api/v1/home-settlements/preview?month=2026-12".to_string(),
            None,
        ),
        (
            "POST",
            "/api/v1/care-plans".to_string(),
            Some(
                json!({"elder_id": elders[1], "provider_id": provider, "service": "助洁", "weekdays": [2], "start_time": "09:00", "planned_minutes": 60}),
            ),
        ),
    ] {
        let (s, v, _) = t.call(m, &uri, Some(&op), body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {uri}: {v}");
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'service_order.create' AND actor_name = 'op'")
            .await,
        1
    );
}

use crate::support::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

pub(crate) fn all_max() -> serde_json::Map<String, Value> {
    yiyang_kernel::assessment::ITEMS
        .iter()
        .map(|i| (i.code.to_string(), json!(i.max())))
        .collect()
}

/// Lower items from the end of the form until the total is `t`.
pub(crate) fn with_total(t: u8) -> serde_json::Map<String, Value> {
    let mut m = all_max();
    let mut excess = 90 - t;
    for def in yiyang_kernel::assessment::ITEMS.iter().rev() {
        let cut = excess.min(def.max());
        m.insert(def.code.into(), json!(def.max() - cut));
        excess -= cut;
    }
    m
}

/// The public calculator answers the test vectors of domain/assessment.md §1.9 over HTTP, without
/// a login; bad input gets 422 naming the item.
#[tokio::test]
async fn public_calculator_answers_the_vectors() {
    let t = TestApp::new("demo", 0).await;
    let call = |body: Value| {
        let t = &t;
        async move {
            t.call("POST", "/api/v1/public/assessment/score", None, Some(body))
                .await
        }
    };
    let std = "GB/T 42195-2022";
    let (s, v, _) = call(json!({"standard": std, "items": all_max()})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["domain_scores"], json!([32, 15, 28, 15]));
    assert_eq!(
        (
            v["total"].clone(),
            v["initial_level"].clone(),
            v["final_level"].clone()
        ),
        (json!(90), json!(0), json!(0))
    );
    assert_eq!(v["final_level_name"], "能力完好");
    let mut m = all_max();
    m.insert("B2.4".into(), json!(2));
    let (_, v, _) = call(json!({"standard": std, "items": m})).await;
    assert_eq!(
        (v["total"].clone(), v["final_level"].clone()),
        (json!(89), json!(1))
    );
    for (total, level) in [(66, 1), (65, 2), (46, 2), (45, 3), (30, 3), (29, 4), (0, 4)] {
        let (_, v, _) = call(json!({"standard": std, "items": with_total(total)})).await;
        assert_eq!(
            (v["total"].clone(), v["final_level"].clone()),
            (json!(total), json!(level))
        );
    }
    let (_, v, _) =
        call(json!({"standard": std, "items": with_total(70), "dementia_confirmed": true})).await;
    assert_eq!(
        (v["initial_level"].clone(), v["final_level"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(v["reasons"][0]["rule"], "mental_disorder");
    let (_, v, _) = call(json!({"standard": std, "items": with_total(70), "risk_events_30d": {"fall": 1, "choking": 1}})).await;
    assert_eq!(v["final_level"], 2);
    let (_, v, _) = call(json!({"standard": std, "items": with_total(70), "dementia_confirmed": true, "risk_events_30d": {"fall": 2}})).await;
    assert_eq!(v["final_level"], 2, "no stacking by default");
    let (_, v, _) =
        call(json!({"standard": std, "items": with_total(50), "risk_events_30d": {"fall": 3}}))
            .await;
    assert_eq!(v["final_level"], 3);
    let (_, v, _) =
        call(json!({"standard": std, "items": with_total(20), "dementia_confirmed": true})).await;
    assert_eq!(v["final_level"], 4);
    let (_, v, _) = call(json!({"standard": std, "items": with_total(88), "coma": true})).await;
    assert_eq!(
        (v["initial_level"].clone(), v["final_level"].clone()),
        (json!(1), json!(4))
    );
    assert_eq!(v["final_level_name"], "完全失能");
    // Bad input: which item, in Chinese.
    let mut m = all_max();
    m.insert("B2.4".into(), json!(4));
    let (s, v, _) = call(json!({"standard": std, "items": m})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "items.B2.4", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("上下楼梯"));
    let mut m = all_max();
    m.remove("B1.3");
    let (s, v, _) = call(json!({"standard": std, "items": m})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["detail"].as_str().unwrap().contains("B1.3"), "{v}");
    let (s, _, _) = call(json!({"standard": "MZ/T 039-2013", "items": all_max()})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v, _) =
        call(json!({"standard": std, "items": all_max(), "risk_events_30d": {"fall": 9}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = call(json!({"standard": std, "items": {"B1.1": "很好"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

/// No login, but limited per address: the 61st request in a minute is refused.
#[tokio::test]
async fn public_calculator_is_rate_limited() {
    let t = TestApp::new("demo", 0).await;
    let body = json!({"standard": "GB/T 42195-2022", "items": all_max()});
    let mut last = StatusCode::OK;
    for _ in 0..61 {
        last = t
            .call(
                "POST",
                "/api/v1/public/assessment/score",
                None,
                Some(body.clone()),
            )
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

/// An assessor records an assessment of an elder in scope: the engine's levels are stored with the
/// input, a correction is a new version and the old one stays, people outside the scope look absent,
/// and every record is audited.
#[tokio::test]
async fn db_assessment_record_correct_and_scope() {
    let t = TestApp::new("demo", 300).await;
    t.add_user("pg", &["assessor"], "320682000000", all_scopes())
        .await;
    t.add_user("town2", &["assessor"], "320682103000", all_scopes())
        .await;
    t.add_user("wk", &["worker"], "320682000000", all_scopes())
        .await;
    let c = t.login("pg").await;
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"region_code": "320682104000", "page_size": 1})),
        )
        .await;
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/elders/{id}/assessments");
    let body = |items: serde_json::Map<String, Value>, extra: Value| {
        let mut input = json!({"items": items});
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        json!({"reason": "first", "assessed_on": "2025-03-01", "assessors": ["张评估", "李评估"],
               "informant": "女儿", "input": input})
    };
    let (s, v, _) = t
        .call(
            "POST",
            &path,
            Some(&c),
            Some(body(with_total(70), json!({"dementia_confirmed": true}))),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["final_level"], 2);
    assert_eq!(v["final_level_name"], "中度失能");
    assert_eq!(v["result"]["initial_level"], 1);
    assert_eq!(v["valid_until"], "2026-03-01");
    assert_eq!(v["reason_label"], "首次评估");
    let first = v["id"].as_str().unwrap().to_string();
    // A correction: the diagnosis was not confirmed after all.
    let mut fix = body(with_total(70), json!({}));
    fix["corrects"] = json!(first);
    fix["reason"] = json!("disputed");
    let (s, v, _) = t.call("POST", &path, Some(&c), Some(fix)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["final_level"], 1);
    let (_, v, _) = t.call("GET", &path, Some(&c), None).await;
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let old = list.iter().find(|r| r["id"] == first.as_str()).unwrap();
    assert_eq!(old["superseded"], true);
    assert_eq!(
        old["final_level"], 2,
        "the corrected record is kept as it was"
    );
    // A routine reassessment today is the current one; the 2025 records have expired.
    let mut now = body(with_total(90), json!({}));
    now["reason"] = json!("routine");
    now["assessed_on"] = json!(yiyang::platform::today().to_string());
    let (s, v, _) = t.call("POST", &path, Some(&c), Some(now)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v, _) = t.call("GET", &path, Some(&c), None).await;
    let cur: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["current"] == true)
        .collect();
    assert_eq!(cur.len(), 1);
    assert_eq!(cur[0]["final_level_name"], "能力完好");
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["current"] == false)
            .all(|r| r["expired"] == true)
    );
    // Invalid input names the item; bad assessors and future dates are refused; nothing stored.
    let mut bad = with_total(70);
    bad.insert("B3.7".into(), json!(3));
    let (s, v, _) = t
        .call("POST", &path, Some(&c), Some(body(bad, json!({}))))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "input.items.B3.7");
    let mut one = body(with_total(70), json!({}));
    one["assessors"] = json!(["张评估"]);
    assert_eq!(
        t.call("POST", &path, Some(&c), Some(one)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mut future = body(with_total(70), json!({}));
    future["assessed_on"] = json!("2999-01-01");
    assert_eq!(
        t.call("POST", &path, Some(&c), Some(future)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM assessment").await, 3);
    // Outside the assessor's town: absent. A worker may read but not record.
    let c2 = t.login("town2").await;
    assert_eq!(
        t.call("GET", &path, Some(&c2), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.call(
            "POST",
            &path,
            Some(&c2),
            Some(body(with_total(70), json!({})))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let w = t.login("wk").await;
    assert_eq!(t.call("GET", &path, Some(&w), None).await.0, StatusCode::OK);
    // The assessors' live score: for those who may record, stores nothing.
    let live =
        json!({"standard": "GB/T 42195-2022", "items": with_total(88), "dementia_confirmed": true});
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/assessments/score",
            Some(&c),
            Some(live.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["total"].as_u64(), v["final_level"].as_u64()),
        (Some(88), Some(2))
    );
    assert_eq!(
        t.call("POST", "/api/v1/assessments/score", Some(&w), Some(live))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.call(
            "POST",
            &path,
            Some(&w),
            Some(body(with_total(70), json!({})))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action IN ('assessment.create', 'assessment.correct')").await,
        3
    );
    // Health data: every read of the history is audited (two by pg, one by wk; not the refused one
    // outside the scope).
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'assessment.view'")
            .await,
        3
    );
    // The level that counts is on the elder's search row, and the registry search filters by it.
    let find = |q: Value| {
        let t = &t;
        let c = c.clone();
        async move {
            let (s, v, _) = t
                .call("POST", "/api/v1/elders/search", Some(&c), Some(q))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let v = find(json!({"region_code": "320682104000", "ability_level": "0"})).await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["id"], id.as_str());
    assert_eq!(v["items"][0]["ability_level_name"], "能力完好");
    let v = find(json!({"region_code": "320682104000", "ability_level": "none"})).await;
    let all = find(json!({"region_code": "320682104000"})).await;
    assert_eq!(
        v["total"].as_i64().unwrap(),
        all["total"].as_i64().unwrap() - 1
    );
    let v = find(json!({"ability_level": "1"})).await;
    assert_eq!(
        v["total"], 0,
        "the corrected and expired records do not count"
    );
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"ability_level": "9"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "ability_level");
    assert!(yiyang::audit::verify(&t.state.db, &[]).await.unwrap().ok);
}

/// The due list: 80+ without a valid assessment (never assessed, or expired) first, then those whose
/// assessment runs out within 60 days; the valid ones are not on it; the scope applies.
#[tokio::test]
async fn db_assessment_due_list() {
    let t = TestApp::new("demo", 300).await;
    t.add_user("as", &["assessor"], "320682000000", all_scopes())
        .await;
    t.add_user("town", &["assessor"], "320682104000", all_scopes())
        .await;
    let c = t.login("as").await;
    let today = yiyang::platform::today();
    let ago = |months: u32| {
        today
            .checked_sub_months(chrono::Months::new(months))
            .unwrap()
            .to_string()
    };
    let find = |q: Value| {
        let t = &t;
        let c = c.clone();
        async move {
            let (s, v, _) = t
                .call("POST", "/api/v1/elders/search", Some(&c), Some(q))
                .await;
            assert_eq!(s, StatusCode::OK);
            v["items"].as_array().unwrap().clone()
        }
    };
    let old = find(json!({"age_min": 80, "page_size": 200})).await;
    let young = find(json!({"age_max": 79, "page_size": 1})).await;
    let n80 = old.len() as i64;
    assert!(n80 > 10);
    let record = |id: String, on: String| {
        let t = &t;
        let c = c.clone();
        async move {
            let (s, v, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/elders/{id}/assessments"),
                    Some(&c),
                    Some(json!({"reason": "first", "assessed_on": on, "assessors": ["甲", "乙"], "input": {"items": all_max()}})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
    };
    let id = |r: &Value| r["id"].as_str().unwrap().to_string();
    let (valid, expired, expiring) = (id(&old[0]), id(&old[1]), id(&young[0]));
    record(valid.clone(), ago(1)).await;
    record(expired.clone(), ago(13)).await;
    record(expiring.clone(), ago(11)).await;
    let due = |q: &str| {
        let t = &t;
        let c = c.clone();
        let path = format!("/api/v1/assessments/due?page_size=200{q}");
        async move {
            let (s, v, _) = t.call("GET", &path, Some(&c), None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let v = due("&status=missing").await;
    assert_eq!(
        v["total"],
        n80 - 1,
        "every 80+ but the validly assessed one"
    );
    let items = v["items"].as_array().unwrap();
    assert!(items.iter().all(|r| r["elder_id"] != valid.as_str()));
    let e = items
        .iter()
        .find(|r| r["elder_id"] == expired.as_str())
        .unwrap();
    assert_eq!(e["due"], "expired");
    assert_eq!(e["last_level_name"], "能力完好");
    assert!(
        items
            .iter()
            .filter(|r| r["elder_id"] != expired.as_str())
            .all(|r| r["due"] == "never")
    );
    let v = due("&status=expiring").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["elder_id"], expiring.as_str());
    // Everything, missing first: the expiring one comes last.
    let v = due("").await;
    assert_eq!(v["total"], n80);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.last().unwrap()["elder_id"], expiring.as_str());
    // A town's assessor sees only the town; another town is refused.
    let tc = t.login("town").await;
    let (_, v, _) = t
        .call(
            "GET",
            "/api/v1/assessments/due?page_size=200",
            Some(&tc),
            None,
        )
        .await;
    assert!(v["items"].as_array().unwrap().iter().all(|r| {
        r["residence_region"]
            .as_str()
            .unwrap()
            .starts_with("320682104")
    }));
    let (s, _, _) = t
        .call(
            "GET",
            "/api/v1/assessments/due?region_code=320682103000",
            Some(&tc),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = t
        .call("GET", "/api/v1/assessments/due?status=soon", Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A trigger (a fall noted after the assessment) puts the validly assessed person back on the
    // list, between the missing and the expiring; a new assessment closes it.
    let tpath = format!("/api/v1/elders/{valid}/assessment-triggers");
    let (s, v, _) = t
        .call(
            "POST",
            &tpath,
            Some(&c),
            Some(json!({"kind": "risk_event", "noted_on": today.to_string(), "note": "近30天跌倒2次"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let v = due("&status=triggered").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["elder_id"], valid.as_str());
    assert_eq!(v["items"][0]["due"], "triggered");
    assert!(
        v["items"][0]["due_label"]
            .as_str()
            .unwrap()
            .contains("风险事件")
    );
    let v = due("").await;
    assert_eq!(v["total"], n80 + 1);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[items.len() - 2]["elder_id"], valid.as_str());
    assert_eq!(items.last().unwrap()["elder_id"], expiring.as_str());
    for (body, status) in [
        (
            json!({"kind": "gossip", "noted_on": today.to_string()}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "diagnosis", "noted_on": "2999-01-01"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        assert_eq!(t.call("POST", &tpath, Some(&c), Some(body)).await.0, status);
    }
    let (s, _, _) = t
        .call(
            "POST",
            &format!(
                "/api/v1/elders/{}/assessment-triggers",
                old[2]["id"].as_str().unwrap()
            ),
            Some(&tc),
            Some(json!({"kind": "diagnosis", "noted_on": today.to_string()})),
        )
        .await;
    assert!(
        s == StatusCode::NOT_FOUND || s == StatusCode::CREATED,
        "outside the town: absent; inside: noted ({s})"
    );
    record(valid.clone(), today.to_string()).await;
    assert_eq!(due("&status=triggered").await["total"], 0);
    // A fall later on the day of that assessment opens it again.
    let (s2, _, _) = t
        .call(
            "POST",
            &tpath,
            Some(&c),
            Some(json!({"kind": "risk_event", "noted_on": today.to_string()})),
        )
        .await;
    assert_eq!(s2, StatusCode::CREATED);
    assert_eq!(due("&status=triggered").await["total"], 1);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'assessment.trigger'")
            .await,
        2 + (s == StatusCode::CREATED) as i64
    );
    // The index-backed list equals the same list in SQL, for every group, page and scope; with
    // someone whose validity ends exactly today (still valid) on the boundary.
    let boundary = find(json!({"age_max": 79, "page_size": 2})).await;
    record(id(&boundary[1]), ago(12)).await;
    {
        use yiyang::assessment::store::{DueReq, due, due_sql};
        use yiyang::identity::Scope;
        use yiyang_kernel::RegionCode;
        let regions = t.state.regions.read().await;
        for root in ["320682000000", "320682104000", "320682103003"] {
            let scope = Scope::of(&RegionCode::parse(root).unwrap());
            for status in ["all", "missing", "triggered", "expiring"] {
                for (page, size, age) in [(1, 200, 80), (2, 7, 80), (1, 50, 60)] {
                    let q: DueReq = serde_json::from_value(json!({"status": status, "page": page,
                        "page_size": size, "age_min": age}))
                    .unwrap();
                    let got = due(
                        &t.state.db,
                        &t.state.search_index,
                        &scope,
                        &regions,
                        &q,
                        None,
                        "",
                        today,
                    )
                    .await
                    .unwrap();
                    let (ids, total) = due_sql(&t.state.db, &scope, &q, today).await.unwrap();
                    let got_ids: Vec<String> =
                        got.items.iter().map(|r| r.elder_id.clone()).collect();
                    assert_eq!(got_ids, ids, "{root} {status} page {page}/{size} age {age}");
                    assert_eq!(
                        got.total, total,
                        "{root} {status} page {page}/{size} age {age}"
                    );
                }
            }
        }
    }
    // The list as Excel: the same people, masked IDs, audited as an export; only for accounts
    // that may export.
    let (s, _, _) = t
        .call(
            "GET",
            "/api/v1/assessments/due/export?status=missing",
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an assessor may not export");
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    let officer = t.login("of").await;
    let (s, body, _) = t
        .raw(
            axum::http::Request::builder()
                .uri("/api/v1/assessments/due/export?status=missing")
                .header(axum::http::header::COOKIE, &officer)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(body)).unwrap();
    use calamine::Reader;
    let sheet = book.worksheet_range("待评估名单").unwrap();
    assert_eq!(sheet.height() as i64 - 1, n80 - 1);
    let ids: Vec<String> = sheet.rows().skip(1).map(|r| r[4].to_string()).collect();
    assert!(ids.iter().all(|i| i.contains("********")), "IDs are masked");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'assessment.due_export'")
            .await,
        1
    );
}

/// An officer adopts a long-term-care-insurance rating: it is stored with its source, counts as the
/// current valid assessment and takes the elder off the due list; bad input is refused; audited.
#[tokio::test]
async fn db_ltc_rating_adopted() {
    let t = TestApp::new("demo", 200).await;
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("of").await;
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"age_min": 80, "page_size": 1})),
        )
        .await;
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let due_ids = || {
        let t = &t;
        let c = c.clone();
        async move {
            let (_, v, _) = t
                .call(
                    "GET",
                    "/api/v1/assessments/due?status=missing&page_size=200",
                    Some(&c),
                    None,
                )
                .await;
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["elder_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(due_ids().await.contains(&id));
    let rated_on = yiyang::platform::today()
        .checked_sub_months(chrono::Months::new(2))
        .unwrap()
        .to_string();
    let path = format!("/api/v1/elders/{id}/assessments/adopt");
    let ok = json!({"source": "如皋市医疗保障局", "rated_on": rated_on, "source_level": "重度失能二级", "level": 3});
    for (field, bad) in [
        ("level", json!(5)),
        ("source", json!(" ")),
        ("rated_on", json!("2999-01-01")),
    ] {
        let mut b = ok.clone();
        b[field] = bad;
        let (s, v, _) = t.call("POST", &path, Some(&c), Some(b)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {v}");
        assert_eq!(v["errors"][0]["field"], field);
    }
    let (s, v, _) = t.call("POST", &path, Some(&c), Some(ok)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind"], "ltc_adoption");
    assert_eq!(v["source"], "如皋市医疗保障局");
    assert_eq!(v["final_level_name"], "重度失能");
    assert_eq!(v["reason_label"], "直接采信长护险评定");
    assert_eq!(v["current"], true);
    assert_eq!(v["assessors"], json!([]));
    assert!(
        !due_ids().await.contains(&id),
        "an adopted rating counts as a valid assessment"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'assessment.adopt_ltc'")
            .await,
        1
    );
    // A worker cannot adopt.
    t.add_user("wk", &["worker"], "320682000000", all_scopes())
        .await;
    let w = t.login("wk").await;
    let (s, _, _) = t
        .call("POST", &path, Some(&w), Some(json!({"source": "医保局", "rated_on": "2026-01-01", "source_level": "一级", "level": 1})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Importing assessments: dry run with per-row errors, a real run that scores GB/T rows with the
/// engine and makes the newest non-legacy record the current level, a re-import that changes
/// nothing, a corrected row that becomes a new version, an XLSX error report; scope and audit.
#[tokio::test]
async fn db_assessment_import() {
    let t = TestApp::new("demo", 1500).await;
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("town", &["assessor"], "320682104000", all_scopes())
        .await;
    t.add_user("wk", &["worker"], "320682000000", all_scopes())
        .await;
    let c = t.login("of").await;
    let today = yiyang::platform::today();
    let villages = yiyang::demo::ensure_regions(&t.state.db).await.unwrap();
    let elders = yiyang::demo::generate(1500, &villages, 42, today);
    let (headers, rows) = yiyang::demo::assessment_rows(&elders, 0.6, 4, 5, today);
    let csv_of = |rows: &[Vec<String>]| {
        let mut w = csv::Writer::from_writer(vec![]);
        w.write_record(&headers).unwrap();
        for r in rows {
            w.write_record(r).unwrap();
        }
        w.into_inner().unwrap()
    };
    let file = csv_of(&rows);
    let n = rows.len() as i64;
    assert!(n > 100, "{n} rows");
    let import = |data: Vec<u8>, name: &'static str, dry: bool, cookie: String| {
        let t = &t;
        async move {
            let (s, job) = t
                .multipart("/api/v1/imports/assessments", &cookie, name, &data, dry)
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{job}");
            t.wait_job(job["id"].as_str().unwrap(), &cookie).await
        }
    };
    // Dry run: four bad rows named, nothing written.
    let st = import(file.clone(), "a.csv", true, c.clone()).await;
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(
        (st["total"].as_i64(), st["rejected"].as_i64()),
        (Some(n), Some(4))
    );
    let reasons: Vec<&str> = st["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("校验位")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("B1.3")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("两名不同的评估员")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("未在您管辖范围内的老年人档案中登记")),
        "{reasons:?}"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM assessment").await, 0);
    // The real run; its error report is an XLSX with the rows as uploaded.
    let st = import(file.clone(), "a.csv", false, c.clone()).await;
    assert_eq!(st["inserted"].as_i64(), Some(n - 4), "{st}");
    assert_eq!(t.count("SELECT COUNT(*) FROM assessment").await, n - 4);
    let (s, body, _) = t
        .raw(
            axum::http::Request::builder()
                .uri(format!(
                    "/api/v1/imports/{}/errors.xlsx",
                    st["id"].as_str().unwrap()
                ))
                .header(axum::http::header::COOKIE, &c)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.starts_with(b"PK"));
    // GB/T rows were scored: the stored level is the engine's, from the stored items.
    use sqlx::Row;
    let stored = sqlx::query(
        "SELECT input, final_level FROM assessment WHERE standard = 'GB/T 42195-2022' ORDER BY id",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    assert!(!stored.is_empty());
    for r in &stored {
        let input: yiyang_kernel::assessment::Input =
            serde_json::from_str(&r.get::<String, _>(0)).unwrap();
        let o = yiyang_kernel::assessment::assess(&input, &Default::default()).unwrap();
        assert_eq!(o.final_level as i64, r.get::<i64, _>(1));
    }
    // The current level on the elder row is the newest non-legacy record, exactly as the history
    // computes it (checked for every person against the list endpoint's `current`).
    let people = sqlx::query(
        "SELECT e.id, ea.assessment_id, ea.level, ea.valid_until FROM elder e LEFT JOIN elder_ability ea ON ea.elder_id = e.id \
         WHERE e.id IN (SELECT elder_id FROM assessment)",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    let mut legacy_only = 0;
    for p in &people {
        let id: String = p.get(0);
        let (_, v, _) = t
            .call(
                "GET",
                &format!("/api/v1/elders/{id}/assessments"),
                Some(&c),
                None,
            )
            .await;
        let list = v.as_array().unwrap();
        let newest = list.iter().find(|r| r["legacy"] == false);
        match newest {
            None => {
                legacy_only += 1;
                assert_eq!(p.get::<Option<String>, _>(1), None);
            }
            Some(r) => {
                assert_eq!(p.get::<Option<String>, _>(1).as_deref(), r["id"].as_str());
                assert_eq!(p.get::<Option<i64>, _>(2), r["final_level"].as_i64());
            }
        }
        assert!(
            list.iter()
                .filter(|r| r["current"] == true)
                .all(|r| r["legacy"] == false)
        );
    }
    assert!(legacy_only < people.len());
    // Records stored before inputs left out their defaults spelt every field out; a file that
    // repeats them is still unchanged.
    let spelt = sqlx::query(
        "UPDATE assessment SET input = substr(input, 1, length(input) - 1) || \
         ',\"options\":{},\"coma\":false,\"dementia_confirmed\":false,\"psychiatric_dx_by_specialist\":false,\
         \"risk_events_30d\":{\"fall\":0,\"wandering\":0,\"choking\":0,\"suicide_self_harm\":0,\"other\":0}}' \
         WHERE standard = 'GB/T 42195-2022' AND input NOT LIKE '%\"options\"%' AND input NOT LIKE '%\"coma\"%' \
         AND input NOT LIKE '%\"dementia_confirmed\"%' AND input NOT LIKE '%\"psychiatric_dx_by_specialist\"%' \
         AND input NOT LIKE '%\"risk_events_30d\"%'",
    )
    .execute(&t.state.db.pool)
    .await
    .unwrap()
    .rows_affected();
    assert!(spelt > 10, "{spelt} inputs spelt out");
    // Re-import: nothing changes.
    let st = import(file.clone(), "a.csv", false, c.clone()).await;
    assert_eq!(
        (
            st["inserted"].as_i64(),
            st["updated"].as_i64(),
            st["unchanged"].as_i64()
        ),
        (Some(0), Some(0), Some(n - 4))
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM assessment").await, n - 4);
    // A corrected GB/T row (one item lowered) is a new version correcting the stored one.
    let col = |k: &str| {
        yiyang::assessment::import::COLUMNS
            .iter()
            .position(|c| c.0 == k)
            .unwrap()
    };
    let gbt = rows
        .iter()
        .enumerate()
        .find(|(i, r)| {
            *i > 10
                && r[col("standard")] == "GB/T 42195-2022"
                && !r[col("assessor2")].is_empty()
                && r[yiyang::assessment::import::COLUMNS.len()] == "4"
        })
        .unwrap()
        .1
        .clone();
    let mut fixed = gbt.clone();
    fixed[yiyang::assessment::import::COLUMNS.len()] = "2".into();
    let st = import(csv_of(&[fixed]), "fix.csv", false, c.clone()).await;
    assert_eq!(
        (st["updated"].as_i64(), st["inserted"].as_i64()),
        (Some(1), Some(0)),
        "{st}"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM assessment").await, n - 3);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM assessment WHERE corrects IS NOT NULL")
            .await,
        1
    );
    // A town's assessor: rows of people elsewhere are refused, the town's are imported.
    let tc = t.login("town").await;
    let st = import(file.clone(), "a.csv", true, tc).await;
    let outside = st["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"].as_str().unwrap().contains("未在您管辖范围内"))
        .count();
    assert!(outside > 0, "{st}");
    // Someone who may not record assessments cannot import them.
    let w = t.login("wk").await;
    let (s, _) = t
        .multipart("/api/v1/imports/assessments", &w, "a.csv", &file, true)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The template downloads; one audit row per real import; the chain holds.
    let (s, body, _) = t
        .raw(
            axum::http::Request::builder()
                .uri("/api/v1/assessments/template.xlsx")
                .header(axum::http::header::COOKIE, &c)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.starts_with(b"PK"));
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'assessment.import'")
            .await,
        3
    );
    assert!(yiyang::audit::verify(&t.state.db, &[]).await.unwrap().ok);
}

/// Validity per region: a town's setting applies to its people (records and imports), others keep
/// the default 12 months; only within the officer's scope; bad values refused; audited.
#[tokio::test]
async fn db_assessment_validity_per_region() {
    let t = TestApp::new("demo", 400).await;
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("town", &["officer"], "320682104000", all_scopes())
        .await;
    let c = t.login("of").await;
    let tc = t.login("town").await;
    let put = |cookie: String, body: Value| {
        let t = &t;
        async move {
            t.call(
                "PUT",
                "/api/v1/assessments/validity",
                Some(&cookie),
                Some(body),
            )
            .await
        }
    };
    let (s, v, _) = put(
        tc.clone(),
        json!({"region_code": "320682104000", "months": 6}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, _) = put(
        tc.clone(),
        json!({"region_code": "320682000000", "months": 24}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "above the town");
    let (s, v, _) = put(
        c.clone(),
        json!({"region_code": "320682000000", "months": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "months");
    let (_, v, _) = t
        .call("GET", "/api/v1/assessments/validity", Some(&tc), None)
        .await;
    assert_eq!(v, json!([{"region_code": "320682104000", "months": 6}]));
    // One person in the town, one elsewhere.
    let find = |region: &'static str| {
        let t = &t;
        let c = c.clone();
        async move {
            let (_, v, _) = t
                .call(
                    "POST",
                    "/api/v1/elders/search",
                    Some(&c),
                    Some(json!({"region_code": region, "page_size": 1})),
                )
                .await;
            v["items"][0]["id"].as_str().unwrap().to_string()
        }
    };
    let inside = find("320682104000").await;
    let outside = find("320682103000").await;
    for (id, until) in [(&inside, "2025-09-01"), (&outside, "2026-03-01")] {
        let (s, v, _) = t
            .call(
                "POST",
                &format!("/api/v1/elders/{id}/assessments"),
                Some(&c),
                Some(json!({"reason": "first", "assessed_on": "2025-03-01", "assessors": ["甲", "乙"], "input": {"items": all_max()}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["valid_until"], until);
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'assessment.validity_set'")
            .await,
        1
    );
}

/// PostgreSQL writes the current levels of people who had none by COPY straight into
/// `elder_ability`. Should one of them get a current row between the lookup and that COPY (another
/// writer), the COPY is undone to its savepoint and everyone goes the upsert way: the import
/// still succeeds and every current level is the imported one. The other writer is played by a
/// trigger that gives one imported person a bogus current row just before the COPY.
#[tokio::test]
async fn db_assessment_import_current_level_meanwhile() {
    let t = TestApp::new("demo", 300).await;
    if t.pg_url.is_none() {
        return; // SQLite holds the write lock from the lookup on: nobody can come in between.
    }
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("of").await;
    let pool = &t.state.db.pool;
    for ddl in [
        // The other writer's person must get a current level from the file: not a legacy record.
        "CREATE TABLE meanwhile_fired (elder_id TEXT NOT NULL)",
        "CREATE FUNCTION meanwhile() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         INSERT INTO elder_ability (elder_id, assessment_id, level, assessed_on, valid_until, change_seq) \
         SELECT elder_id, id, 0, '1900-01-01', '1900-01-01', 0 FROM assessment \
         WHERE standard <> 'MZ/T 039-2013' ORDER BY elder_id LIMIT 1 \
         ON CONFLICT (elder_id) DO NOTHING; \
         INSERT INTO meanwhile_fired SELECT elder_id FROM elder_ability WHERE valid_until = '1900-01-01'; \
         RETURN NULL; END $$",
        "CREATE TRIGGER meanwhile AFTER INSERT ON assessment FOR EACH STATEMENT EXECUTE FUNCTION meanwhile()",
    ] {
        sqlx::query(ddl).execute(pool).await.unwrap();
    }
    let today = yiyang::platform::today();
    let villages = yiyang::demo::ensure_regions(&t.state.db).await.unwrap();
    let elders = yiyang::demo::generate(300, &villages, 42, today);
    let (headers, rows) = yiyang::demo::assessment_rows(&elders, 0.6, 0, 5, today);
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(&headers).unwrap();
    for r in &rows {
        w.write_record(r).unwrap();
    }
    let st = t
        .import_file(
            "/api/v1/imports/assessments",
            &c,
            "a.csv",
            &w.into_inner().unwrap(),
            false,
        )
        .await;
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(st["inserted"].as_i64(), Some(rows.len() as i64), "{st}");
    // The bogus row was there (the trigger ran) and was overwritten by the imported level.
    assert_eq!(t.count("SELECT COUNT(*) FROM meanwhile_fired").await, 1);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder_ability WHERE valid_until = '1900-01-01'")
            .await,
        0
    );
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM elder_ability ea JOIN assessment a ON a.id = ea.assessment_id \
             WHERE a.elder_id = ea.elder_id AND a.final_level = ea.level"
        )
        .await,
        t.count(
            "SELECT COUNT(DISTINCT elder_id) FROM assessment WHERE standard <> 'MZ/T 039-2013'"
        )
        .await
    );
}

/// The import writes each batch's current levels with its records (`batch_rows` a batch). A person
/// whose records come in two batches ends with the newest as current, whichever batch holds it:
/// a newer record in the later batch replaces the earlier one's level, an older one does not, and
/// on the same day the later record wins, as in the history (`store::CURRENT_SQL`).
#[tokio::test]
async fn db_assessment_import_person_in_two_batches() {
    use yiyang::assessment::import::COLUMNS;
    let t = TestApp::new("demo", 300).await;
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("of").await;
    let today = yiyang::platform::today();
    let villages = yiyang::demo::ensure_regions(&t.state.db).await.unwrap();
    let elders = yiyang::demo::generate(300, &villages, 42, today);
    let (headers, _) = yiyang::demo::assessment_rows(&elders, 0.0, 0, 5, today);
    let col = |k: &str| COLUMNS.iter().position(|c| c.0 == k).unwrap();
    let first_item = COLUMNS.len();
    let day = |d: i64| (today - chrono::Duration::days(d)).to_string();
    // A GB/T row with every item at `score_of(item)`.
    let gbt = |cid: &str, on: String, low: bool| {
        let mut r = vec![String::new(); headers.len()];
        r[col("citizen_id")] = cid.to_string();
        r[col("assessed_on")] = on;
        r[col("standard")] = "GB/T 42195-2022".into();
        r[col("assessor1")] = "张评估".into();
        r[col("assessor2")] = "李评估".into();
        for (i, it) in yiyang_kernel::assessment::ITEMS.iter().enumerate() {
            let scores = it.options.iter().map(|o| o.score);
            r[first_item + i] = if low { scores.min() } else { scores.max() }
                .unwrap()
                .to_string();
        }
        r
    };
    let cid = |i: usize| elders[i].citizen_id.as_str().to_string();
    let mut rows = vec![
        gbt(&cid(0), day(200), false),
        gbt(&cid(1), day(200), false),
        gbt(&cid(2), day(200), false),
    ];
    // Legacy results of other people fill the rest of the first batch and more.
    let batch = yiyang::assessment::import::batch_rows(t.state.db.backend);
    let fillers = (batch + 10).div_ceil(83);
    assert!(3 + fillers < elders.len());
    for i in 3..3 + fillers {
        for k in 0..83 {
            let mut r = vec![String::new(); headers.len()];
            r[col("citizen_id")] = cid(i);
            r[col("assessed_on")] = day(1000 + k);
            r[col("standard")] = "MZ/T 039-2013".into();
            r[col("level")] = "轻度失能".into();
            rows.push(r);
        }
    }
    assert!(rows.len() > batch + 3);
    // In the second batch: person 0 newer (replaces), person 1 older (does not), person 2 an
    // adopted rating on the same day (the later record wins).
    rows.push(gbt(&cid(0), day(100), true));
    rows.push(gbt(&cid(1), day(300), true));
    let mut ltc = vec![String::new(); headers.len()];
    ltc[col("citizen_id")] = cid(2);
    ltc[col("assessed_on")] = day(200);
    ltc[col("standard")] = "长护险".into();
    ltc[col("level")] = "重度失能".into();
    ltc[col("source")] = "如皋市医疗保障局".into();
    rows.push(ltc);
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(&headers).unwrap();
    for r in &rows {
        w.write_record(r).unwrap();
    }
    let file = w.into_inner().unwrap();
    for (round, expect) in [("inserted", rows.len()), ("unchanged", rows.len())] {
        let st = t
            .import_file("/api/v1/imports/assessments", &c, "a.csv", &file, false)
            .await;
        assert_eq!(st["state"], "done", "{st}");
        assert_eq!(st[round].as_i64(), Some(expect as i64), "{round}: {st}");
        // Each person's current row is the record the history names current.
        assert_eq!(
            t.count(
                "SELECT COUNT(*) FROM elder e WHERE COALESCE((SELECT assessment_id FROM elder_ability WHERE elder_id = e.id), '') \
                 <> COALESCE((SELECT a.id FROM assessment a WHERE a.elder_id = e.id AND a.standard <> 'MZ/T 039-2013' \
                 AND NOT EXISTS (SELECT 1 FROM assessment x WHERE x.corrects = a.id) \
                 ORDER BY a.assessed_on DESC, a.recorded_at DESC, a.id DESC LIMIT 1), '')"
            )
            .await,
            0,
            "{round}"
        );
    }
    use sqlx::Row;
    let current = |i: usize| {
        let cid = cid(i);
        let t = &t;
        async move {
            let bidx = t
                .state
                .keys
                .blind_index(yiyang::registry::store::CID_DOMAIN, &cid);
            let r = sqlx::query(
                "SELECT ea.assessed_on, ea.level, a.standard FROM elder_ability ea JOIN elder e ON e.id = ea.elder_id \
                 JOIN assessment a ON a.id = ea.assessment_id WHERE e.citizen_id_bidx = $1",
            )
            .bind(bidx)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
            (
                r.get::<String, _>(0),
                r.get::<i64, _>(1),
                r.get::<String, _>(2),
            )
        }
    };
    assert_eq!(current(0).await, (day(100), 4, "GB/T 42195-2022".into()));
    assert_eq!(current(1).await, (day(200), 0, "GB/T 42195-2022".into()));
    assert_eq!(
        current(2).await,
        (day(200), 3, yiyang::assessment::store::LTC_STANDARD.into())
    );
    // Legacy results never become current.
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder_ability").await,
        3,
        "only the three people with non-legacy records"
    );
    // A later file, against the stored current records (found from the records themselves): an
    // older record for person 0 leaves theirs, a newer one for person 1 replaces it.
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(&headers).unwrap();
    w.write_record(gbt(&cid(0), day(150), false)).unwrap();
    w.write_record(gbt(&cid(1), day(50), true)).unwrap();
    let st = t
        .import_file(
            "/api/v1/imports/assessments",
            &c,
            "b.csv",
            &w.into_inner().unwrap(),
            false,
        )
        .await;
    assert_eq!(st["inserted"].as_i64(), Some(2), "{st}");
    assert_eq!(current(0).await, (day(100), 4, "GB/T 42195-2022".into()));
    assert_eq!(current(1).await, (day(50), 4, "GB/T 42195-2022".into()));
}

/// An officer filters the due list by town and name, assigns people to an assessor whose region
/// covers them (one outside it is refused, nothing written), the assessor sees them under
/// "派给我的" and on the workbench; recording the assessment ends the assignment, and the report
/// names the assessment organisation.
#[tokio::test]
async fn db_due_list_by_name_and_assigned_to_an_assessor() {
    let t = TestApp::new("demo", 400).await;
    t.add_user("o", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("as", &["assessor"], "320682000000", all_scopes())
        .await;
    t.add_user("far", &["assessor"], "320682104000", all_scopes())
        .await;
    let o = t.login("o").await;
    let a = t.login("as").await;
    let due = |who: String, body: Value| {
        let t = &t;
        async move {
            let (s, v, _) = t
                .call("POST", "/api/v1/assessments/due", Some(&who), Some(body))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let all = due(o.clone(), json!({"status": "missing", "page_size": 200})).await;
    let items = all["items"].as_array().unwrap().clone();
    assert!(items.len() > 10);
    // By name: a surname fragment finds exactly the listed people holding it.
    let first: String = items[0]["name"].as_str().unwrap().chars().take(1).collect();
    let named = due(
        o.clone(),
        json!({"status": "missing", "name": first, "page_size": 200}),
    )
    .await;
    let want = items
        .iter()
        .filter(|r| r["name"].as_str().unwrap().contains(&first))
        .count() as i64;
    assert_eq!(named["total"].as_i64().unwrap(), want);
    assert!(
        named["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"].as_str().unwrap().contains(&first))
    );
    // By town: only that town's people.
    let town = &items[0]["residence_region"].as_str().unwrap()[..9];
    let v = due(
        o.clone(),
        json!({"status": "missing", "region_code": format!("{town}000"), "page_size": 200}),
    )
    .await;
    assert!(v["total"].as_i64().unwrap() >= 1);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["residence_region"].as_str().unwrap().starts_with(town))
    );
    // The assessors the officer may pick.
    let (s, list, _) = t
        .call("GET", "/api/v1/assessments/assessors", Some(&o), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let pick = |u: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x["display_name"].as_str().unwrap().contains(u))
            .map(|x| x["id"].as_str().unwrap().to_string())
    };
    let as_id = pick("as").expect("the county assessor is listed");
    let far_id = pick("far").expect("a town assessor is listed");
    // Three people, none of them in 320682104: the town assessor is refused, nothing written.
    let three: Vec<String> = items
        .iter()
        .filter(|r| {
            !r["residence_region"]
                .as_str()
                .unwrap()
                .starts_with("320682104")
        })
        .take(3)
        .map(|r| r["elder_id"].as_str().unwrap().to_string())
        .collect();
    let assign = |body: Value| {
        let t = &t;
        let o = o.clone();
        async move {
            t.call(
                "POST",
                "/api/v1/assessments/assignments",
                Some(&o),
                Some(body),
            )
            .await
        }
    };
    let (s, v, _) = assign(json!({"elder_ids": three, "assessor_id": far_id})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap_or_default().contains("辖区"),
        "{v}"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM assessment_assignment").await,
        0
    );
    // An assessor cannot assign.
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/assessments/assignments",
            Some(&a),
            Some(json!({"elder_ids": three, "assessor_id": as_id})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v, _) = assign(json!({"elder_ids": three, "assessor_id": as_id})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["changed"], 3);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'assessment.assign'")
            .await,
        3
    );
    // The assessor's own list, the office's "not yet assigned", and the name on each row.
    let mine = due(a.clone(), json!({"assigned": "mine", "page_size": 200})).await;
    let mut got: Vec<String> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["elder_id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut three_sorted = three.clone();
    three_sorted.sort();
    assert_eq!(got, three_sorted);
    assert!(mine["items"][0]["assessor_name"].as_str().is_some());
    let none = due(
        o.clone(),
        json!({"status": "missing", "assigned": "none", "page_size": 200}),
    )
    .await;
    assert_eq!(
        none["total"].as_i64().unwrap(),
        all["total"].as_i64().unwrap() - 3
    );
    let (s, wb, _) = t.call("GET", "/api/v1/workbench", Some(&a), None).await;
    assert_eq!(s, StatusCode::OK, "{wb}");
    let card = wb["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["title"] == "派给我的待评估")
        .cloned()
        .unwrap_or_else(|| panic!("{wb}"));
    assert_eq!(card["count"], 3);
    // Recording the assessment (with its organisation) ends the assignment.
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{}/assessments", three[0]),
            Some(&a),
            Some(json!({"reason": "first", "assessed_on": yiyang::platform::today().to_string(),
                "assessors": ["甲", "乙"], "organisation": "如皋市颐康评估中心", "input": {"items": all_max()}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["organisation"], "如皋市颐康评估中心");
    let mine = due(a.clone(), json!({"assigned": "mine"})).await;
    assert_eq!(mine["total"], 2);
    let (s, v, _) = t
        .call(
            "GET",
            &format!("/api/v1/elders/{}/assessments", three[0]),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["organisation"], "如皋市颐康评估中心");
    // Who entered it, by name (not the login).
    assert_eq!(v[0]["recorded_by"], "测试as");
    // Withdrawn: off the assessor's list.
    let (s, v, _) = assign(json!({"elder_ids": [three[1].clone()], "assessor_id": null})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        due(a.clone(), json!({"assigned": "mine"})).await["total"],
        1
    );
    // Bad filters are refused in Chinese.
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/assessments/due",
            Some(&o),
            Some(json!({"assigned": "everyone"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

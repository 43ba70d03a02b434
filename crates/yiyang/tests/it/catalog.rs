use crate::support::*;
use axum::http::StatusCode;
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashMap;

const COUNTY: &str = "320682000000";

fn longevity() -> Value {
    json!({
        "code": "longevity_allowance", "name": "高龄津贴", "category": "津贴补贴", "benefit_kind": "cash_monthly",
        "provision": "按月发放", "standard": "80–89周岁50元，90–99周岁100元，100周岁及以上300元",
        "department": "县民政局", "funding": {"county": 100}, "no_application": true,
        "rule": "状态 = 在册 且 年龄 >= 80",
        "tiers": [
            {"label": "80–89周岁", "rule": "年龄 < 90", "amount": 50},
            {"label": "90–99周岁", "rule": "年龄 < 100", "amount": 100},
            {"label": "100周岁及以上", "amount": 300}
        ]
    })
}

fn adaptation() -> Value {
    json!({
        "code": "home_adaptation", "name": "适老化改造补贴", "category": "适老化改造", "benefit_kind": "one_off",
        "provision": "改造", "standard": "1000元", "department": "县民政局",
        "funding": {"city": 50, "county": 50}, "no_application": false,
        "rule": "状态 = 在册 且 年龄 >= 85 且 居住状况 = 独居",
        "tiers": [{"label": "每户", "amount": 1000}]
    })
}

/// Whole years from `b` to `on`, written independently of the kernel.
fn years(b: NaiveDate, on: NaiveDate) -> i32 {
    let mut y = on.year() - b.year();
    if on.ordinal0()
        < b.with_year(on.year())
            .map_or(on.ordinal0() + 1, |d| d.ordinal0())
    {
        y -= 1;
    }
    y
}

/// Run the county's published catalogue as an officer.
async fn evaluate(t: &TestApp, cookie: &str) -> (StatusCode, Value, axum::http::HeaderMap) {
    t.call(
        "POST",
        "/api/v1/catalog/evaluate",
        Some(cookie),
        Some(json!({"region_code": COUNTY})),
    )
    .await
}

async fn held(t: &TestApp, item: &str) -> HashMap<String, (String, String, i64)> {
    t.unpack().await;
    sqlx::query("SELECT elder_id, state, tier, amount_fen FROM entitlement_all WHERE item_code = $1 AND state <> 'ended'")
        .bind(item)
        .fetch_all(&t.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect()
}

/// Every granted entitlement of an item through the list API, page by page (7 a page, so that
/// pages mix rows and packed grants): pages in order (residence, since, id), no one twice, and
/// the same total on every page.
async fn granted_list(t: &TestApp, cookie: &str, item: &str) -> Vec<Value> {
    let mut all: Vec<Value> = vec![];
    let mut total = None;
    for page in 1.. {
        let (s, v, _) = t
            .call(
                "GET",
                &format!(
                    "/api/v1/entitlements?state=granted&item_code={item}&page={page}&page_size=7"
                ),
                Some(cookie),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(*total.get_or_insert(v["total"].clone()), v["total"]);
        let rows = v["items"].as_array().unwrap();
        if rows.is_empty() {
            break;
        }
        all.extend(rows.iter().cloned());
    }
    assert_eq!(json!(all.len()), total.unwrap());
    let ids: std::collections::HashSet<&str> =
        all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "someone listed twice");
    let key = |r: &Value| {
        (
            r["residence_region"].as_str().unwrap().to_string(),
            r["since"].as_str().unwrap().to_string(),
            r["id"].as_str().unwrap().to_string(),
        )
    };
    assert!(
        all.windows(2).all(|w| key(&w[0]) <= key(&w[1])),
        "out of order"
    );
    for r in &all {
        assert_eq!(r["state"], "granted");
        assert!(!r["name"].as_str().unwrap().is_empty(), "{r}");
        assert!(r["citizen_id_masked"].as_str().unwrap().contains('*'));
        assert!(!r["reasons"].as_array().unwrap().is_empty(), "{r}");
    }
    all
}

/// An officer defines items (bad rules refused with the field and column), publishes, evaluates:
/// the grants equal a direct count over the registry with the right bands; a second run changes
/// nothing; a death ends the allowance from the date of death; a move-out suspends; every
/// elder's page says why; scope and permissions hold; publishing, runs and explanations are audited.
#[tokio::test]
async fn db_catalog_publish_evaluate_explain() {
    let t = TestApp::new("demo", 400).await;
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    t.add_user("wk", &["worker"], "320682001000", all_scopes())
        .await;
    let c = t.login("of").await;
    let w = t.login("wk").await;

    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/catalog/drafts",
            Some(&w),
            Some(json!({"region_code": COUNTY})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, draft, _) = t
        .call(
            "POST",
            "/api/v1/catalog/drafts",
            Some(&c),
            Some(json!({"region_code": COUNTY})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{draft}");
    let vid = draft["id"].as_str().unwrap().to_string();
    let item_path = |code: &str| format!("/api/v1/catalog/versions/{vid}/items/{code}");

    // Refused items: the field is named, a rule error carries its column.
    for (field, bad, msg) in [
        ("rule", json!("年龄 >= 八十"), "第 7 个字符处"),
        ("rule", json!("经济状况 = 富裕"), "没有取值“富裕”"),
        ("funding", json!({"county": 90}), "之和应为 100%"),
        ("tiers", json!([]), "至少要有一个档次"),
        ("benefit_kind", json!("cash"), "待遇类型"),
    ] {
        let mut b = longevity();
        b[field] = bad;
        let (s, v, _) = t
            .call("PUT", &item_path("longevity_allowance"), Some(&c), Some(b))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
        assert!(v["detail"].as_str().unwrap().contains(msg), "{v}");
    }
    let mut b = longevity();
    b["tiers"][1]["rule"] = json!("年龄 <");
    let (s, v, _) = t
        .call("PUT", &item_path("longevity_allowance"), Some(&c), Some(b))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "tiers[1].rule");
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/catalog/check-rule",
            Some(&c),
            Some(json!({"rule": "年龄 > = 3"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["column"], 6);

    for item in [longevity(), adaptation()] {
        let code = item["code"].as_str().unwrap().to_string();
        let (s, v, _) = t.call("PUT", &item_path(&code), Some(&c), Some(item)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/catalog/versions/{vid}/publish"),
            Some(&c),
            Some(json!({"effective_from": "2025-01-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "published");
    // A published version is closed for edits.
    let (s, _, _) = t
        .call(
            "PUT",
            &item_path("longevity_allowance"),
            Some(&c),
            Some(longevity()),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/catalog/evaluate",
            Some(&w),
            Some(json!({"region_code": COUNTY})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, run, _) = evaluate(&t, &c).await;
    assert_eq!(s, StatusCode::OK, "{run}");

    // The direct count: every active resident, age and band computed here.
    let today = yiyang::platform::today();
    let people: Vec<(String, NaiveDate, String, Option<String>, String)> =
        sqlx::query("SELECT id, birth_date, status, living_status, residence_region FROM elder")
            .fetch_all(&t.state.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    NaiveDate::parse_from_str(&r.get::<String, _>(1), "%Y-%m-%d").unwrap(),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                )
            })
            .collect();
    let want: HashMap<String, i64> = people
        .iter()
        .filter(|p| p.2 == "active")
        .filter_map(|p| {
            let a = years(p.1, today);
            let fen = match a {
                ..80 => return None,
                80..90 => 5000,
                90..100 => 10000,
                _ => 30000,
            };
            Some((p.0.clone(), fen))
        })
        .collect();
    assert!(
        want.len() > 20,
        "the test county needs 80+ people: {}",
        want.len()
    );
    // The run's grants are packed (`catalog::pack`), not rows; what needs approval is a row.
    assert!(t.count("SELECT COUNT(*) FROM entitlement_pack").await > 0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM entitlement WHERE state = 'granted'")
            .await,
        0
    );
    let got = held(&t, "longevity_allowance").await;
    assert_eq!(got.len(), want.len());
    // Paging stops at 50,000 (page × size): deeper is for the export.
    let (s, v, _) = t
        .call(
            "GET",
            "/api/v1/entitlements?state=granted&page=251&page_size=200",
            Some(&c),
            None,
        )
        .await;
    assert_eq!(
        (s, v["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("page")),
        "{v}"
    );
    // The list of what is granted reads the packs: everyone, with their amounts.
    let listed = granted_list(&t, &c, "longevity_allowance").await;
    assert_eq!(listed.len(), want.len());
    for r in &listed {
        let fen = (r["amount"].as_f64().unwrap() * 100.0).round() as i64;
        assert_eq!(Some(&fen), want.get(r["elder_id"].as_str().unwrap()), "{r}");
    }
    for (id, fen) in &want {
        assert_eq!(got[id].0, "granted", "免申即享 grants at once");
        assert_eq!(got[id].2, *fen, "band of {id}");
    }
    let want_adapt = people
        .iter()
        .filter(|p| {
            p.2 == "active" && years(p.1, today) >= 85 && p.3.as_deref() == Some("living_alone")
        })
        .count();
    let adapt = held(&t, "home_adaptation").await;
    assert_eq!(adapt.len(), want_adapt);
    assert!(
        adapt.values().all(|h| h.0 == "proposed"),
        "needs approval: proposed"
    );
    let items = run["items"].as_array().unwrap();
    assert_eq!(items[0]["eligible"], json!(want.len()));
    assert_eq!(items[0]["granted"], json!(want.len()));
    assert_eq!(items[1]["proposed"], json!(want_adapt));
    let monthly: i64 = want.values().sum();
    assert_eq!(
        items[0]["monthly_amount"].as_f64().unwrap(),
        monthly as f64 / 100.0
    );

    // Nothing changed: nothing written.
    let changes_before = t.count("SELECT COUNT(*) FROM entitlement_change").await;
    let (_, again, _) = evaluate(&t, &c).await;
    assert_eq!(again["changes"], 0, "{again}");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM entitlement_change").await,
        changes_before
    );

    // The approval queue: proposed adaptations, approved or refused (with a reason) by the officer.
    let (s, q, _) = t
        .call(
            "GET",
            "/api/v1/entitlements?item_code=home_adaptation",
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(q["total"], json!(want_adapt));
    // A list of named people: on record, one row a request.
    let listed = t
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'entitlement.list'")
        .await;
    assert!(listed >= 1);
    let queue: Vec<String> = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        q["items"][0]["citizen_id_masked"]
            .as_str()
            .unwrap()
            .contains('*')
    );
    // A run's decisions store no reasons: they are worked out again from its snapshot.
    let reasons = q["items"][0]["reasons"].as_array().unwrap();
    assert!(
        reasons.len() >= 2 && reasons.iter().all(|r| r["ok"] == true),
        "{reasons:?}"
    );
    assert!(
        queue.len() >= 2,
        "the test county needs two proposals: {}",
        queue.len()
    );
    {
        let path = |id: &str| format!("/api/v1/entitlements/{id}/decision");
        let (s, _, _) = t
            .call(
                "POST",
                &path(&queue[0]),
                Some(&w),
                Some(json!({"approve": true})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v, _) = t
            .call(
                "POST",
                &path(&queue[0]),
                Some(&c),
                Some(json!({"approve": true})),
            )
            .await;
        assert_eq!(
            (s, v["state"].clone()),
            (StatusCode::OK, json!("granted")),
            "{v}"
        );
        let (s, _, _) = t
            .call(
                "POST",
                &path(&queue[0]),
                Some(&c),
                Some(json!({"approve": true})),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "decided once");
        let (s, v, _) = t
            .call(
                "POST",
                &path(&queue[1]),
                Some(&c),
                Some(json!({"approve": false})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["errors"][0]["field"], "note");
        let (s, v, _) = t
            .call(
                "POST",
                &path(&queue[1]),
                Some(&c),
                Some(json!({"approve": false, "note": "已享受同类改造"})),
            )
            .await;
        assert_eq!(
            (s, v["state"].clone()),
            (StatusCode::OK, json!("ended")),
            "{v}"
        );
        assert_eq!(t.count("SELECT COUNT(*) FROM audit_log WHERE action IN ('entitlement.approve', 'entitlement.refuse')").await, 2);
        // The next run leaves the officer's decisions alone: the refusal stands under this
        // catalogue version (not proposed again), the approval stays granted.
        let (_, again, _) = evaluate(&t, &c).await;
        assert_eq!(
            held(&t, "home_adaptation").await.len(),
            want_adapt - 1 + again["items"][1]["new"].as_u64().unwrap() as usize
        );
        assert_eq!(
            again["items"][1]["new"], 0,
            "a refusal is not proposed again: {again}"
        );
    }

    // A simulation of a draft that raises the 80–89 band to 60 元 changes nothing and says what it
    // would cost, per item and per town.
    let (_, d2, _) = t
        .call(
            "POST",
            "/api/v1/catalog/drafts",
            Some(&c),
            Some(json!({"region_code": COUNTY})),
        )
        .await;
    assert_eq!(d2["number"], 2);
    assert_eq!(
        d2["items"].as_array().unwrap().len(),
        2,
        "the draft copies the published items"
    );
    let vid2 = d2["id"].as_str().unwrap().to_string();
    let mut raised = longevity();
    raised["tiers"][0]["amount"] = json!(60);
    let (s, v, _) = t
        .call(
            "PUT",
            &format!("/api/v1/catalog/versions/{vid2}/items/longevity_allowance"),
            Some(&c),
            Some(raised),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    t.unpack().await;
    let ents = t.count("SELECT COUNT(*) FROM entitlement_all").await;
    let (s, sim, _) = t
        .call(
            "POST",
            &format!("/api/v1/catalog/versions/{vid2}/simulate"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sim}");
    t.unpack().await;
    assert_eq!(t.count("SELECT COUNT(*) FROM entitlement_all").await, ents);
    let band80 = want.values().filter(|f| **f == 5000).count() as f64;
    let lg = &sim["items"][0];
    assert_eq!(lg["before_people"], json!(want.len()));
    assert_eq!(lg["after_people"], json!(want.len()));
    assert_eq!(
        lg["before_monthly"].as_f64().unwrap(),
        monthly as f64 / 100.0
    );
    assert_eq!(
        lg["after_monthly"].as_f64().unwrap(),
        monthly as f64 / 100.0 + 10.0 * band80
    );
    let towns = sim["towns"].as_array().unwrap();
    let town_after: f64 = towns
        .iter()
        .map(|t| t["after_monthly"].as_f64().unwrap())
        .sum();
    assert!(
        (town_after - lg["after_monthly"].as_f64().unwrap()).abs() < 1e-6,
        "towns add up to the item (the other item is one-off)"
    );
    assert!(
        towns.iter().all(|t| t["name"]
            .as_str()
            .unwrap()
            .starts_with(|c: char| !c.is_ascii_digit())),
        "{towns:?}"
    );

    // A death ends the allowance from the date of death; a move-out suspends it.
    let mut granted: Vec<&String> = want.keys().collect();
    granted.sort();
    let (dead, moved) = (granted[0].clone(), granted[1].clone());
    let death_date = (today - chrono::Days::new(10)).to_string();
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{dead}/death"),
            Some(&c),
            Some(json!({"death_date": death_date})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{moved}/move-out"),
            Some(&c),
            Some(json!({"date": today.to_string()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let row = sqlx::query("SELECT state, ended_on FROM entitlement WHERE elder_id = $1 AND item_code = 'longevity_allowance'")
        .bind(&dead)
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        (row.get::<String, _>(0), row.get::<Option<String>, _>(1)),
        ("ended".into(), Some(death_date.clone()))
    );
    assert_eq!(held(&t, "longevity_allowance").await[&moved].0, "suspended");
    let note: String = sqlx::query(
        "SELECT c.note FROM entitlement_change c JOIN entitlement e ON e.id = c.entitlement_id \
         WHERE e.elder_id = $1 AND c.to_state = 'ended'",
    )
    .bind(&dead)
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap()
    .get(0);
    assert!(note.contains("死亡"), "{note}");
    // The registry events already did it (same transaction as the death): the run finds nothing.
    let (_, r3, _) = evaluate(&t, &c).await;
    assert_eq!(r3["items"][0]["ended"], 0, "{r3}");
    assert_eq!(r3["items"][0]["suspended"], 1, "{r3}");
    assert_eq!(r3["changes"], 0, "{r3}");

    // Explanations: a person under 80 reads why not; the dead person reads why not either.
    let young = people
        .iter()
        .find(|p| p.2 == "active" && years(p.1, today) == 78)
        .or_else(|| {
            people
                .iter()
                .find(|p| p.2 == "active" && years(p.1, today) < 80)
        })
        .unwrap();
    let (s, ex, _) = t
        .call(
            "GET",
            &format!("/api/v1/elders/{}/eligibility", young.0),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ex}");
    let lg = &ex.as_array().unwrap()[0];
    assert_eq!(lg["code"], "longevity_allowance");
    assert_eq!(lg["applies"], false);
    let a = years(young.1, today);
    assert_eq!(lg["reasons"][0]["text"], format!("年龄 {a} 岁，未满 80 岁"));
    let (_, ex, _) = t
        .call(
            "GET",
            &format!("/api/v1/elders/{dead}/eligibility"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(ex[0]["applies"], false);
    assert_eq!(ex[0]["reasons"][0]["text"], "已故，不再享受待遇");
    let old = granted[2];
    let (_, ex, _) = t
        .call(
            "GET",
            &format!("/api/v1/elders/{old}/eligibility"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(ex[0]["applies"], true);
    assert_eq!(ex[0]["entitlement_state"], "granted");
    assert!(
        ex[0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true)
    );

    // A town worker sees only their town's people.
    let other_town = people
        .iter()
        .find(|p| !p.4.starts_with("320682001"))
        .unwrap();
    let (s, _, _) = t
        .call(
            "GET",
            &format!("/api/v1/elders/{}/eligibility", other_town.0),
            Some(&w),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The public page lists the published items without a login.
    let (s, v, _) = t.call("GET", "/api/v1/public/catalog", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["items"][0]["name"], "高龄津贴");
    assert_eq!(v[0]["items"][0]["tiers"][2]["amount"], 300.0);
    // Who may have it, in plain words (not the rule language); the hotline to call.
    assert_eq!(
        v[0]["items"][0]["eligibility_zh"],
        "80 周岁及以上的在册老年人"
    );
    assert_eq!(v[0]["hotline"], "12349");

    // Publishing the draft (80–89 band raised, the adaptation item dropped): the band's amounts
    // follow, the dropped item ends for everyone who held it.
    let (s, _, _) = t
        .call(
            "DELETE",
            &format!("/api/v1/catalog/versions/{vid2}/items/home_adaptation"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/catalog/versions/{vid2}/publish"),
            Some(&c),
            Some(json!({"effective_from": "2026-01-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The first run's grants leave their catalogue version and time written to the run: they are
    // read as the run's (version 1) until a change writes the row's own (version 2 below).
    t.unpack().await;
    let left_to_run = t
        .count(
            "SELECT COUNT(*) FROM entitlement_all WHERE version_id IS NULL AND updated_at IS NULL",
        )
        .await;
    assert!(left_to_run as usize >= want.len() - 2, "{left_to_run}");
    let (_, r4, _) = evaluate(&t, &c).await;
    t.unpack().await;
    let versions: Vec<(String, Option<String>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT n.tier, n.version_id, {} FROM entitlement_all n WHERE n.item_code = 'longevity_allowance' AND n.state = 'granted'",
        yiyang::catalog::version_of("n")
    )))
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    assert!(versions.iter().any(|v| v.0 != "80–89周岁"), "{versions:?}");
    for (tier, own, version) in &versions {
        if tier == "80–89周岁" {
            assert_eq!(own.as_deref(), Some(vid2.as_str()), "written by the change");
        } else {
            assert_eq!(own, &None, "a {tier} grant is as its run made it");
            assert_eq!(version, &vid, "read as its run's version");
        }
    }
    let band80_active = want
        .iter()
        .filter(|(id, f)| **f == 5000 && **id != dead && **id != moved)
        .count();
    assert_eq!(r4["items"][0]["changed"], json!(band80_active), "{r4}");
    let now_held = held(&t, "longevity_allowance").await;
    // Now rows (the changed band) and packs (the others) together.
    let listed = granted_list(&t, &c, "longevity_allowance").await;
    assert_eq!(
        listed.len(),
        now_held.values().filter(|h| h.0 == "granted").count()
    );
    assert!(
        t.count("SELECT COUNT(*) FROM entitlement WHERE state = 'granted' AND item_code = 'longevity_allowance'")
            .await
            > 0
    );
    assert!(
        now_held
            .values()
            .filter(|h| h.1 == "80–89周岁" && h.0 == "granted")
            .all(|h| h.2 == 6000)
    );
    assert!(
        held(&t, "home_adaptation").await.is_empty(),
        "a dropped item ends"
    );
    let dropped = t
        .count("SELECT COUNT(*) FROM entitlement_change WHERE note LIKE '%项目已取消%'")
        .await;
    assert!(dropped >= 1 && dropped as usize <= want_adapt, "{dropped}");

    // The runs' audit rows (written by the bulk writers) keep the chain intact.
    let report = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert!(report.ok, "audit chain broken");

    // Every decision names the run whose snapshot holds the facts it was made on.
    t.unpack().await;
    let decisions: Vec<(String, String)> =
        sqlx::query_as("SELECT run_id, elder_id FROM entitlement_all ORDER BY run_id, elder_id")
            .fetch_all(&t.state.db.pool)
            .await
            .unwrap();
    assert!(!decisions.is_empty());
    let mut snapshots = yiyang::catalog::snapshot::Reader::default();
    for (run, elder) in &decisions {
        let facts = snapshots.facts(&t.state.db, run, elder).await.unwrap();
        let facts = facts.unwrap_or_else(|| panic!("no snapshot of {elder} in run {run}"));
        assert!(
            yiyang::catalog::evaluate::ElderFacts::from_snapshot(elder, &facts).is_some(),
            "{facts}"
        );
    }

    for action in [
        "catalog.publish",
        "catalog.evaluate",
        "catalog.explain",
        "catalog.item_put",
    ] {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap()
            .get(0);
        assert!(n >= 1, "{action} audited");
    }
}

async fn bank_file(
    t: &TestApp,
    cookie: &str,
    id: &str,
    reason: Option<&str>,
) -> (StatusCode, Vec<Vec<String>>) {
    let body = json!({ "reveal_reason": reason }).to_string();
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/v1/payment-batches/{id}/bank-file"))
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let (s, bytes, _) = t.raw(req).await;
    if s != StatusCode::OK {
        return (s, vec![]);
    }
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    (
        s,
        range
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect(),
    )
}

/// Monthly cash batches: the lines are the granted cash entitlements of living residents, the
/// totals add up per town and funding level; a death ends the allowance and removes the person
/// from the next batch, and a payment for a month that began after the death is flagged; the bank
/// file masks IDs unless revealed with a reason; all of it audited.
#[tokio::test]
async fn db_payment_batch_and_death_check() {
    let t = TestApp::new("demo", 300).await;
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    t.add_user("wk", &["worker"], COUNTY, all_scopes()).await;
    let c = t.login("of").await;
    let w = t.login("wk").await;
    let who = yiyang::audit::Who {
        actor_id: None,
        actor_name: "test".into(),
    };
    yiyang::catalog::store::seed_demo(&t.state.db, COUNTY, &who)
        .await
        .unwrap();
    // Three people in hardship with a severe assessed disability: eligible for 护理补贴.
    let pool = &t.state.db.pool;
    let three: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM elder WHERE status = 'active' AND id NOT IN (SELECT elder_id FROM elder_ability) ORDER BY id LIMIT 3",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for id in &three {
        sqlx::query("UPDATE elder SET economic_status = 'extreme_poverty' WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO elder_ability (elder_id, assessment_id, level, assessed_on, valid_until, change_seq) \
             VALUES ($1, 'test', 3, '2026-01-01', '2099-12-31', 0)",
        )
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    }
    let (s, run, _) = evaluate(&t, &c).await;
    assert_eq!(s, StatusCode::OK, "{run}");

    // 护理补贴 needs approval: approve what the run proposed, so the batch pays two cash items
    // with different splits (高龄津贴 county 100%; 护理补贴 city 30, county 50, town 20).
    let proposed: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM entitlement WHERE item_code = 'care_subsidy' AND state = 'proposed'",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    assert!(
        !proposed.is_empty(),
        "the demo has people proposed for 护理补贴"
    );
    for id in &proposed {
        let (s, v, _) = t
            .call(
                "POST",
                &format!("/api/v1/entitlements/{id}/decision"),
                Some(&c),
                Some(json!({"approve": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    let today = yiyang::platform::today();
    let month = today.format("%Y-%m").to_string();
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/payment-batches",
            Some(&c),
            Some(json!({"region_code": COUNTY, "month": "2026-13"})),
        )
        .await;
    assert_eq!(
        (s, v["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("month"))
    );
    let (s, b, _) = t
        .call(
            "POST",
            "/api/v1/payment-batches",
            Some(&c),
            Some(json!({"region_code": COUNTY, "month": month})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/payment-batches",
            Some(&c),
            Some(json!({"region_code": COUNTY, "month": month})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "one batch per month");

    // Direct count: granted entitlements of the cash items (高龄津贴, 护理补贴) of living people.
    t.unpack().await;
    let want: Vec<(String, i64)> = sqlx::query(
        "SELECT n.elder_id, n.amount_fen FROM entitlement_all n JOIN elder e ON e.id = n.elder_id \
         WHERE n.state = 'granted' AND e.status = 'active' AND n.item_code IN ('longevity_allowance', 'care_subsidy')",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert!(want.len() > 10);
    let total: i64 = want.iter().map(|w| w.1).sum();
    assert_eq!(b["lines"], json!(want.len()));
    assert_eq!(b["total"].as_f64().unwrap(), total as f64 / 100.0);
    let lv = &b["by_level"];
    let levels = ["province", "city", "county", "town"]
        .iter()
        .map(|k| lv[k].as_f64().unwrap())
        .sum::<f64>();
    assert!(
        (levels - total as f64 / 100.0).abs() < 1e-6,
        "levels add up: {lv}"
    );
    // Every line split by its own item's shares (floors; the town takes the remainder).
    let lines: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT item_code, amount_fen, province_fen, city_fen, county_fen, town_fen FROM payment_line",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    let mut items = std::collections::BTreeSet::new();
    for (item, amount, p, c, k, town) in &lines {
        let (wp, wc, wk) = match item.as_str() {
            "longevity_allowance" => (0, 0, 100),
            "care_subsidy" => (0, 30, 50),
            other => panic!("{other} is not a cash item"),
        };
        let want = (amount * wp / 100, amount * wc / 100, amount * wk / 100);
        assert_eq!((*p, *c, *k), want, "{item} {amount}");
        assert_eq!(*town, amount - want.0 - want.1 - want.2);
        items.insert(item.clone());
    }
    assert_eq!(items.len(), 2, "both cash items paid: {items:?}");
    let towns: f64 = b["by_town"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_f64().unwrap())
        .sum();
    assert!((towns - total as f64 / 100.0).abs() < 1e-6);
    assert_eq!(b["paid_after_death"], 0);

    // The bank file: workers may not; masked by default; full IDs with a reason.
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(bank_file(&t, &w, &id, None).await.0, StatusCode::FORBIDDEN);
    let (s, rows) = bank_file(&t, &c, &id, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rows.len(), want.len() + 1);
    assert!(rows[1][1].contains('*'), "masked by default");
    // A draft: no full IDs until a second person has reviewed it; its maker may not.
    assert_eq!(
        (&b["state"], &b["state_zh"]),
        (&json!("draft"), &json!("草稿"))
    );
    assert_eq!(
        bank_file(&t, &c, &id, Some("银行代发高龄津贴")).await.0,
        StatusCode::CONFLICT
    );
    let step = |who: String, action: &'static str| {
        let (t, id) = (&t, id.clone());
        async move {
            t.call(
                "POST",
                &format!("/api/v1/payment-batches/{id}/steps"),
                Some(&who),
                Some(json!({"action": action, "note": "工行代发回单 0012"})),
            )
            .await
        }
    };
    let (s, v, _) = step(c.clone(), "review").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("另一位"), "{v}");
    let (s, v, _) = step(c.clone(), "paid").await;
    assert_eq!(s, StatusCode::CONFLICT, "not before review: {v}");
    t.add_user("rv", &["officer"], COUNTY, all_scopes()).await;
    let r = t.login("rv").await;
    let (s, v, _) = step(r.clone(), "review").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state_zh"], "已复核");
    assert_eq!(v["created_by"], "测试of", "the maker by name: {v}");
    assert_eq!(v["reviewed_by"], "测试rv");
    // The people it pays, a page at a time: masked IDs with ages, never birth dates.
    let (s, page, _) = t
        .call(
            "GET",
            &format!("/api/v1/payment-batches/{id}/lines?page_size=5"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["total"], json!(want.len()));
    let first = &page["items"][0];
    assert!(first["citizen_id_masked"].as_str().unwrap().contains('*'));
    assert!(
        first["age"].as_i64().unwrap() >= 60 && first.get("birth_date").is_none(),
        "{first}"
    );
    assert!(
        first["item"].as_str().unwrap().contains("津贴")
            || first["item"].as_str().unwrap().contains("补贴")
    );
    let (s, _, _) = step(c.clone(), "discard").await;
    assert_eq!(s, StatusCode::CONFLICT, "only a draft is discarded");
    let (_, rows) = bank_file(&t, &c, &id, Some("银行代发高龄津贴")).await;
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[1].len() == 18 && !r[1].contains('*'))
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.export'")
            .await,
        2
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.batch'")
            .await,
        1
    );
    let (s, v, _) = step(c.clone(), "paid").await;
    assert_eq!(
        (s, &v["state_zh"]),
        (StatusCode::OK, &json!("已发放")),
        "{v}"
    );
    assert_eq!(v["paid_note"], "工行代发回单 0012");
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('payment.review', 'payment.paid')"
        )
        .await,
        2
    );

    // A death recorded now, dated before this month began: the allowance ends, this month's
    // payment is flagged, and next month's batch leaves the person out.
    let dead = want[0].0.clone();
    let death = (today - chrono::Days::new(40)).to_string();
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{dead}/death"),
            Some(&c),
            Some(json!({"death_date": death})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    t.unpack().await;
    assert_eq!(
        t.count("SELECT COUNT(*) FROM entitlement_all WHERE state <> 'ended' AND elder_id IN (SELECT id FROM elder WHERE status = 'deceased')").await,
        0
    );
    let (_, chk, _) = t
        .call(
            "GET",
            &format!("/api/v1/payment-check?region_code={COUNTY}"),
            Some(&c),
            None,
        )
        .await;
    let flagged: Vec<&Value> = chk.as_array().unwrap().iter().collect();
    assert!(
        !flagged.is_empty()
            && flagged
                .iter()
                .all(|f| f["elder_id"] == dead.as_str() && f["month"] == month.as_str()),
        "{chk}"
    );
    assert_eq!(flagged[0]["death_date"], death.as_str());
    let (_, b1, _) = t
        .call(
            "GET",
            &format!("/api/v1/payment-batches/{id}"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(b1["paid_after_death"], json!(flagged.len()));
    let next = (today.with_day(1).unwrap() + chrono::Months::new(1))
        .format("%Y-%m")
        .to_string();
    let (s, b2, _) = t
        .call(
            "POST",
            "/api/v1/payment-batches",
            Some(&c),
            Some(json!({"region_code": COUNTY, "month": next})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b2}");
    let in_next: i64 =
        sqlx::query("SELECT COUNT(*) FROM payment_line WHERE batch_id = $1 AND elder_id = $2")
            .bind(b2["id"].as_str().unwrap())
            .bind(&dead)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap()
            .get(0);
    assert_eq!(in_next, 0, "the dead are not in the next batch");
    assert_eq!(
        b2["lines"].as_i64().unwrap(),
        b["lines"].as_i64().unwrap() - flagged.len() as i64
    );
    let (_, list, _) = t
        .call("GET", "/api/v1/payment-batches", Some(&c), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    // A draft is discarded (its lines with it) and the month can be made again.
    let (s, v, _) = t
        .call(
            "POST",
            &format!(
                "/api/v1/payment-batches/{}/steps",
                b2["id"].as_str().unwrap()
            ),
            Some(&c),
            Some(json!({"action": "discard"})),
        )
        .await;
    assert_eq!((s, &v), (StatusCode::OK, &Value::Null));
    assert_eq!(t.count("SELECT COUNT(*) FROM payment_batch").await, 1);
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/payment-batches",
            Some(&c),
            Some(json!({"region_code": COUNTY, "month": next})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // A death arriving in a registry file ends the entitlements at once, like a recorded one.
    let other = want
        .iter()
        .map(|w| w.0.clone())
        .find(|id| *id != dead)
        .unwrap();
    let r = sqlx::query("SELECT citizen_id_enc, name, residence_region FROM elder WHERE id = $1")
        .bind(&other)
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap();
    let cid = t.state.keys.decrypt(&r.get::<Vec<u8>, _>(0)).unwrap();
    let csv = format!(
        "身份证号,姓名,居住地区划代码,死亡日期\n{cid},{},{},{}\n",
        r.get::<String, _>(1),
        r.get::<String, _>(2),
        (today - chrono::Days::new(3))
    );
    let (s, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "deaths.csv",
            csv.as_bytes(),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(st["updated"], 1, "{st}");
    t.unpack().await;
    let open: i64 = sqlx::query(
        "SELECT COUNT(*) FROM entitlement_all WHERE elder_id = $1 AND state <> 'ended'",
    )
    .bind(&other)
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap()
    .get(0);
    assert_eq!(
        open, 0,
        "a death by file ends the entitlements in the import's transaction"
    );
}

#[derive(Clone, Default)]
struct FakeGateway {
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
}

/// A message gateway on a local port: answers 503 while `down`, else records and answers 200.
async fn fake_gateway() -> (String, FakeGateway) {
    use axum::routing::post;
    let g = FakeGateway::default();
    let state = g.clone();
    let app = axum::Router::new().route(
        "/sms",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let g = state.clone();
            async move {
                if g.down.load(std::sync::atomic::Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                g.got
                    .lock()
                    .unwrap()
                    .push((key, serde_json::from_str(&body).unwrap()));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/sms"), g)
}

/// Grants queue a message in the same transaction; the real HTTP sender delivers them to a local
/// gateway. While the gateway is down (or unreachable) nothing is lost: the rows wait and are
/// delivered once it answers, each exactly once, with the phone read from the registry.
#[tokio::test]
async fn db_notifications_survive_a_down_gateway() {
    use yiyang::platform::outbox::{Gateway, deliver_due};
    // Enough people for the run's snapshot to span several chunks (512 people each), which the
    // expansion walks in person order.
    let t = TestApp::new("demo", 1500).await;
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    let c = t.login("of").await;
    let who = yiyang::audit::Who {
        actor_id: None,
        actor_name: "test".into(),
    };
    yiyang::catalog::store::seed_demo(&t.state.db, COUNTY, &who)
        .await
        .unwrap();
    let (s, _, _) = evaluate(&t, &c).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        t.count("SELECT COUNT(*) FROM eligibility_snapshot_chunk")
            .await
            >= 2
    );
    // The run queues one row; the sender expands it into one message per person granted,
    // listing every item the run granted.
    t.unpack().await;
    let granted = t
        .count("SELECT COUNT(DISTINCT elder_id) FROM entitlement_all WHERE state = 'granted'")
        .await;
    assert!(granted > 20);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM notification_outbox WHERE state = 'pending'")
            .await,
        1,
        "one row queued with the run"
    );
    let (db, keys) = (&t.state.db, &t.state.keys);
    // Expanded a slice at a time; a repeat after the end queues nothing more.
    let mut queued = 0;
    loop {
        let n = yiyang::platform::outbox::expand_runs(db, 7).await.unwrap();
        queued += n;
        if n < 7 {
            break;
        }
    }
    assert_eq!(queued, granted as u64);
    assert_eq!(
        yiyang::platform::outbox::expand_runs(db, 7).await.unwrap(),
        0
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM notification_outbox WHERE state = 'pending'")
            .await,
        granted,
        "one message per person granted"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM notification_outbox WHERE event = 'run_granted' AND state = 'sent'")
            .await,
        1,
        "the run's row is done once everyone is queued"
    );
    let with_phone = t
        .count("SELECT COUNT(*) FROM notification_outbox o JOIN elder e ON e.id = o.elder_id WHERE e.phone_enc IS NOT NULL")
        .await as u64;

    // Unreachable, then down: every attempt fails, nothing is lost.
    let nowhere = Gateway {
        url: "http://127.0.0.1:9/sms".into(),
        token: None,
    };
    let (sent, failed, skipped) = deliver_due(db, keys, &nowhere, 10_000).await.unwrap();
    assert_eq!(
        (sent, failed, skipped),
        (0, with_phone, granted as u64 - with_phone)
    );
    let (url, gw) = fake_gateway().await;
    gw.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let gateway = Gateway {
        url,
        token: Some("t0ken".into()),
    };
    assert_eq!(
        deliver_due(db, keys, &gateway, 10_000).await.unwrap(),
        (0, 0, 0),
        "backing off: nothing due yet"
    );
    sqlx::query("UPDATE notification_outbox SET next_attempt_at = 0 WHERE state = 'pending'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        deliver_due(db, keys, &gateway, 10_000).await.unwrap(),
        (0, with_phone, 0)
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM notification_outbox WHERE state = 'pending' AND attempts = 2")
            .await as u64,
        with_phone
    );

    // Up again: everything is delivered once.
    gw.down.store(false, std::sync::atomic::Ordering::SeqCst);
    sqlx::query("UPDATE notification_outbox SET next_attempt_at = 0 WHERE state = 'pending'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        deliver_due(db, keys, &gateway, 10_000).await.unwrap(),
        (with_phone, 0, 0)
    );
    assert_eq!(
        deliver_due(db, keys, &gateway, 10_000).await.unwrap(),
        (0, 0, 0)
    );
    let got = gw.got.lock().unwrap().clone();
    assert_eq!(got.len() as u64, with_phone);
    let keys_seen: std::collections::HashSet<&String> = got.iter().map(|g| &g.0).collect();
    assert_eq!(keys_seen.len(), got.len(), "one request per message");
    for (key, body) in &got {
        assert_eq!(body["id"].as_str().unwrap(), key);
        let to = body["to"].as_str().unwrap();
        assert!(
            to.len() >= 7 && to.bytes().all(|b| b.is_ascii_digit()),
            "{to}"
        );
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("【颐养】")
                && text.contains("您已享受以下基本养老服务")
                && (text.contains("高龄津贴") || text.contains("探访关爱")),
            "{text}"
        );
        assert!(!text.contains(to));
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM notification_outbox WHERE state = 'pending'")
            .await,
        0
    );

    // A later run: one person turns 85 (a new grant: told), one granted 80–89 turns 95 (a band
    // change of something already held: not told of a grant).
    let today = yiyang::platform::today();
    let born = |age: i32| {
        today
            .with_year(today.year() - age)
            .unwrap_or(today)
            .to_string()
    };
    t.unpack().await;
    let banded: String = sqlx::query(
        "SELECT elder_id FROM entitlement_all WHERE item_code = 'longevity_allowance' AND state = 'granted' AND amount_fen = 5000 ORDER BY elder_id LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
    .get(0);
    let newly: String = sqlx::query(
        "SELECT id FROM elder e WHERE status = 'active' AND NOT EXISTS (SELECT 1 FROM entitlement_all n WHERE n.elder_id = e.id) ORDER BY id LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
    .get(0);
    for (id, age) in [(&banded, 95), (&newly, 85)] {
        sqlx::query("UPDATE elder SET birth_date = $1 WHERE id = $2")
            .bind(born(age))
            .bind(id)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let (s, run2, _) = evaluate(&t, &c).await;
    assert_eq!(s, StatusCode::OK, "{run2}");
    assert_eq!(held(&t, "longevity_allowance").await[&banded].2, 10000);
    assert_eq!(
        yiyang::platform::outbox::expand_runs(db, 100)
            .await
            .unwrap(),
        1
    );
    let told: Vec<String> = sqlx::query(
        "SELECT elder_id FROM notification_outbox WHERE state = 'pending' AND event = 'granted'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert_eq!(told, vec![newly], "only the new grant is told");
}

/// Named lists: a rule may test membership (名单 包含 …) only of a list that exists; the run grants
/// exactly the people on it, and the explanation says so; membership changes are audited.
#[tokio::test]
async fn db_list_membership_in_rules() {
    let t = TestApp::new("demo", 120).await;
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    let c = t.login("of").await;
    let ids: Vec<String> =
        sqlx::query("SELECT id FROM elder WHERE status = 'active' ORDER BY id LIMIT 4")
            .fetch_all(&t.state.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let (_, d, _) = t
        .call(
            "POST",
            "/api/v1/catalog/drafts",
            Some(&c),
            Some(json!({"region_code": COUNTY})),
        )
        .await;
    let vid = d["id"].as_str().unwrap().to_string();
    let item = json!({
        "code": "key_support", "name": "重点帮扶慰问", "category": "关爱服务", "benefit_kind": "one_off",
        "provision": "慰问金", "standard": "", "department": "县民政局", "funding": {"county": 100},
        "no_application": true, "rule": "状态 = 在册 且 名单 包含 重点帮扶对象", "tiers": [{"label": "每人", "amount": 500}]
    });
    let path = format!("/api/v1/catalog/versions/{vid}/items/key_support");
    let (s, v, _) = t.call("PUT", &path, Some(&c), Some(item.clone())).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("名单“重点帮扶对象”不存在"),
        "{v}"
    );
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elder-lists",
            Some(&c),
            Some(json!({"name": "重点帮扶对象", "region_code": COUNTY})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/elder-lists",
            Some(&c),
            Some(json!({"name": "重点帮扶对象", "region_code": COUNTY})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let members =
        "/api/v1/elder-lists/%E9%87%8D%E7%82%B9%E5%B8%AE%E6%89%B6%E5%AF%B9%E8%B1%A1/members";
    let (s, v, _) = t
        .call(
            "POST",
            members,
            Some(&c),
            Some(json!({"elder_ids": ids[..3]})),
        )
        .await;
    assert_eq!((s, v["changed"].clone()), (StatusCode::OK, json!(3)), "{v}");
    let (s, v, _) = t
        .call(
            "POST",
            members,
            Some(&c),
            Some(json!({"elder_ids": ["nobody"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // A town officer may not change who is on the county's list.
    t.add_user("town", &["officer"], "320682001000", all_scopes())
        .await;
    let town = t.login("town").await;
    let (s, _, _) = t
        .call(
            "POST",
            members,
            Some(&town),
            Some(json!({"elder_ids": [ids[3]]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v, _) = t.call("PUT", &path, Some(&c), Some(item)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, _) = t
        .call(
            "POST",
            &format!("/api/v1/catalog/versions/{vid}/publish"),
            Some(&c),
            Some(json!({"effective_from": "2025-01-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, run, _) = evaluate(&t, &c).await;
    assert_eq!(run["items"][0]["granted"], 3, "{run}");
    let got = held(&t, "key_support").await;
    assert!(ids[..3].iter().all(|i| got.contains_key(i)) && !got.contains_key(&ids[3]));
    let (_, ex, _) = t
        .call(
            "GET",
            &format!("/api/v1/elders/{}/eligibility", ids[0]),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(ex[0]["reasons"][1]["text"], "在名单“重点帮扶对象”中");
    let (_, ex, _) = t
        .call(
            "GET",
            &format!("/api/v1/elders/{}/eligibility", ids[3]),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(ex[0]["reasons"][0]["text"], "不在名单“重点帮扶对象”中");
    // Off the list: the next run ends it.
    let (_, v, _) = t
        .call(
            "POST",
            members,
            Some(&c),
            Some(json!({"elder_ids": [ids[0]], "remove": true})),
        )
        .await;
    assert_eq!(v["changed"], 1);
    // This time as the console runs it: a job, followed until done.
    let (s, job, _) = t
        .call(
            "POST",
            "/api/v1/catalog/evaluations",
            Some(&c),
            Some(json!({"region_code": COUNTY})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let path = format!(
        "/api/v1/catalog/evaluations/{}",
        job["id"].as_str().unwrap()
    );
    let mut st = json!(null);
    for _ in 0..200 {
        (_, st, _) = t.call("GET", &path, Some(&c), None).await;
        if st["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        (
            st["state"].clone(),
            st["phase"].clone(),
            st["phase_label"].clone()
        ),
        (json!("done"), json!(4), json!("完成")),
        "{st}"
    );
    assert_eq!(st["summary"]["items"][0]["ended"], 1, "{st}");
    assert_eq!(st["elders"], 120);
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/catalog/evaluations",
            Some(&c),
            Some(json!({"region_code": "320682001000"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "no catalogue published for that town"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM audit_log WHERE action IN ('list.create', 'list.add', 'list.remove')").await, 3);
    let (_, l, _) = t.call("GET", "/api/v1/elder-lists", Some(&c), None).await;
    assert_eq!(l[0]["members"], 2);

    // A member file (the officer's Excel habit): refused rows with their row number and reason;
    // a dry run adds nothing; the real upload adds the good rows.
    let villages = yiyang::demo::village_codes();
    let people = yiyang::demo::generate(120, &villages, 42, yiyang::platform::today());
    let unknown = yiyang_kernel::citizen_id::compose(
        "320682",
        chrono::NaiveDate::from_ymd_opt(1941, 2, 3).unwrap(),
        999,
    );
    let csv = format!(
        "身份证号,姓名\n{},甲\n12345,乙\n{unknown},丙\n{},丁\n",
        people[0].citizen_id.as_str(),
        people[1].citizen_id.as_str()
    );
    let import =
        "/api/v1/elder-lists/%E9%87%8D%E7%82%B9%E5%B8%AE%E6%89%B6%E5%AF%B9%E8%B1%A1/members/import";
    let (s, v) = t
        .multipart(import, &c, "名单.csv", csv.as_bytes(), true)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["total"].clone(),
            v["accepted"].clone(),
            v["added"].clone()
        ),
        (json!(4), json!(2), json!(0)),
        "{v}"
    );
    assert_eq!(v["rejected"][0]["row"], 3);
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("身份证号无效")
    );
    assert_eq!(v["rejected"][1]["row"], 4);
    let (_, l, _) = t.call("GET", "/api/v1/elder-lists", Some(&c), None).await;
    assert_eq!(l[0]["members"], 2, "a dry run adds nothing");
    let (s, v) = t
        .multipart(import, &c, "名单.csv", csv.as_bytes(), false)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, l, _) = t.call("GET", "/api/v1/elder-lists", Some(&c), None).await;
    assert_eq!(
        l[0]["members"].as_i64().unwrap(),
        2 + v["added"].as_i64().unwrap()
    );
    assert!(v["added"].as_i64().unwrap() >= 1);
}

/// Snapshot chunks are found by a seek on their key, also when a run's people sit one to a chunk
/// (runs from before migration 18): every person once, in order, and one person's facts.
#[tokio::test]
async fn db_snapshot_chunks_found_by_seek() {
    use yiyang::catalog::snapshot::{Reader, pack, people_after};
    let t = TestApp::new("demo", 0).await;
    let db = &t.state.db;
    let facts = |p: &str| format!("{{\"birth_date\":\"1940-01-01\",\"hukou_region\":\"{p}\"}}");
    // p01…p05 one to a chunk, as migrated; p10…p29 packed (one chunk).
    for i in 1..=5 {
        let p = format!("p{i:02}");
        sqlx::query(
            "INSERT INTO eligibility_snapshot_chunk (run_id, first_elder, last_elder, people, encoding, data) \
             VALUES ('r1', $1, $1, 1, 'plain', $2)",
        )
        .bind(&p)
        .bind(format!("{p}\t{}\n", facts(&p)).into_bytes())
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let packed = pack(
        (10..30)
            .map(|i| format!("p{i:02}"))
            .map(|p| (p.clone(), facts(&p)))
            .collect(),
    );
    assert_eq!(packed.len(), 1);
    for c in &packed {
        sqlx::query(
            "INSERT INTO eligibility_snapshot_chunk (run_id, first_elder, last_elder, people, encoding, data) \
             VALUES ('r1', $1, $2, $3, 'deflate', $4)",
        )
        .bind(&c.first)
        .bind(&c.last)
        .bind(c.people)
        .bind(&c.data)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let mut seen = vec![];
    let mut cursor = String::new();
    loop {
        let next = people_after(db, "r1", &cursor).await.unwrap();
        let Some(last) = next.last() else { break };
        cursor = last.clone();
        seen.extend(next);
    }
    let want: Vec<String> = (1..=5).chain(10..30).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, want);
    // From the middle of the packed chunk.
    assert_eq!(people_after(db, "r1", "p27").await.unwrap(), ["p28", "p29"]);
    let mut r = Reader::default();
    assert_eq!(r.facts(db, "r1", "p03").await.unwrap(), Some(facts("p03")));
    assert_eq!(r.facts(db, "r1", "p07").await.unwrap(), None);
    assert_eq!(r.facts(db, "r1", "p15").await.unwrap(), Some(facts("p15")));
    assert_eq!(r.facts(db, "r1", "p16").await.unwrap(), Some(facts("p16")));
    assert_eq!(r.facts(db, "r2", "p16").await.unwrap(), None);
}

/// Two runs of one catalogue at the same time: grants are packed, where no unique index would
/// refuse a second copy, so a run that read before another was written is refused (409, "run it
/// again"). The test holds the write back (SQLite's write lock; PostgreSQL's `pack::PG_LOCK`)
/// until both runs have read, so the second to write always read too early.
/// Every item of the catalogue is granted without application, so no proposal's unique index
/// catches the second copy instead.
#[tokio::test]
async fn db_concurrent_runs_never_grant_twice() {
    use std::sync::atomic::Ordering;
    use yiyang::catalog::evaluate::{Progress, run_with};
    let t = TestApp::new("demo", 400).await;
    let who = yiyang::audit::Who {
        actor_id: None,
        actor_name: "test".into(),
    };
    let db = &t.state.db;
    yiyang::catalog::store::seed_demo(db, COUNTY, &who)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE catalog_item SET definition = REPLACE(definition, '\"no_application\":false', '\"no_application\":true')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let scope = yiyang::identity::Scope::all();
    let today = yiyang::platform::today();
    let names = |c: &str| c.to_string();
    let (pa, pb) = (Progress::default(), Progress::default());
    // Hold the write back.
    let hold = match db.backend {
        yiyang::platform::db::Backend::Sqlite => (Some(db.begin().await.unwrap()), None),
        yiyang::platform::db::Backend::Postgres => {
            let mut c = db.pool.acquire().await.unwrap();
            sqlx::query("SELECT pg_advisory_lock(hashtext('entitlement_pack'))")
                .execute(&mut *c)
                .await
                .unwrap();
            (None, Some(c))
        }
    };
    let release = async {
        // Phase 3: read and decided, writing (held back).
        while pa.phase.load(Ordering::Relaxed) < 3 || pb.phase.load(Ordering::Relaxed) < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (tx, conn) = hold;
        drop(tx);
        if let Some(mut c) = conn {
            sqlx::query("SELECT pg_advisory_unlock(hashtext('entitlement_pack'))")
                .execute(&mut *c)
                .await
                .unwrap();
        }
    };
    let (a, b, ()) = tokio::join!(
        run_with(db, &scope, &who, COUNTY, today, &names, &pa),
        run_with(db, &scope, &who, COUNTY, today, &names, &pb),
        release
    );
    let mut statuses: Vec<StatusCode> = [&a, &b]
        .iter()
        .map(|r| match r {
            Ok(_) => StatusCode::OK,
            Err(e) => e.status,
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    t.unpack().await;
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM (SELECT elder_id, catalog_region, item_code FROM entitlement_all \
             WHERE state <> 'ended' GROUP BY elder_id, catalog_region, item_code HAVING COUNT(*) > 1) d"
        )
        .await,
        0,
        "an item held twice"
    );
    assert!(t.count("SELECT COUNT(*) FROM entitlement_pack").await > 0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM entitlement").await,
        0,
        "everything granted, packed"
    );
    // Run again after the refusal: nothing left to change.
    let again = run_with(
        db,
        &scope,
        &who,
        COUNTY,
        today,
        &names,
        &Progress::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.changes, 0);
}

/// The approval queue decided in bulk: a town's proposals all at once (in batches that continue
/// after the last id), each audited as one person's; a refusal needs a reason and its notice
/// carries it; a worker cannot; named ids decide only those.
#[tokio::test]
async fn db_bulk_decisions_on_a_filtered_queue() {
    let t = TestApp::new("demo", 1500).await;
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    t.add_user("wk", &["worker"], "320682001000", all_scopes())
        .await;
    let c = t.login("of").await;
    let w = t.login("wk").await;
    let (_, draft, _) = t
        .call(
            "POST",
            "/api/v1/catalog/drafts",
            Some(&c),
            Some(json!({"region_code": COUNTY})),
        )
        .await;
    let vid = draft["id"].as_str().unwrap().to_string();
    let mut item = adaptation();
    // Everyone 60+ and active: a long queue.
    item["rule"] = json!("状态 = 在册 且 年龄 >= 60");
    let (s, v, _) = t
        .call(
            "PUT",
            &format!("/api/v1/catalog/versions/{vid}/items/home_adaptation"),
            Some(&c),
            Some(item),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/catalog/versions/{vid}/publish"),
            Some(&c),
            Some(json!({"effective_from": "2025-01-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    evaluate(&t, &c).await;
    let proposed = |town: &'static str| {
        let db = t.state.db.clone();
        async move {
            sqlx::query(
                "SELECT COUNT(*) FROM entitlement WHERE state = 'proposed' AND residence_region LIKE $1",
            )
            .bind(format!("{}%", &town[..9]))
            .fetch_one(&db.pool)
            .await
            .map(|r| sqlx::Row::get::<i64, _>(&r, 0))
            .unwrap()
        }
    };
    let town = "320682001000";
    let in_town = proposed(town).await;
    let all_before = t
        .count("SELECT COUNT(*) FROM entitlement WHERE state = 'proposed'")
        .await;
    assert!(
        in_town > 0 && all_before > in_town,
        "{in_town} of {all_before}"
    );
    // The queue filters by town, item and tier.
    let (_, q, _) = t
        .call(
            "GET",
            &format!("/api/v1/entitlements?state=proposed&region_code={town}&item_code=home_adaptation&tier=每户&page_size=5"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(q["total"].as_i64().unwrap(), in_town, "{q}");
    // A worker may not; a refusal without a reason is refused.
    let body = |extra: Value| {
        let mut b =
            json!({"all_matching": true, "region_code": town, "item_code": "home_adaptation"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/entitlements/decisions",
            Some(&w),
            Some(body(json!({"approve": true}))),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/entitlements/decisions",
            Some(&c),
            Some(body(json!({"approve": false}))),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Refuse the whole town with one reason, batch after batch.
    let (mut decided, mut after, mut rounds) = (0, None::<String>, 0);
    loop {
        let mut b = body(json!({"approve": false, "note": "本年度改造名额已满"}));
        if let Some(a) = &after {
            b["after"] = json!(a);
        }
        let (s, v, _) = t
            .call("POST", "/api/v1/entitlements/decisions", Some(&c), Some(b))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        decided += v["decided"].as_i64().unwrap();
        rounds += 1;
        if v["remaining"] == 0 {
            break;
        }
        after = v["next_after"].as_str().map(str::to_string);
        assert!(rounds < 100);
    }
    assert_eq!(decided, in_town);
    assert_eq!(proposed(town).await, 0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM entitlement WHERE state = 'proposed'")
            .await,
        all_before - in_town,
        "only the town's"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'entitlement.refuse'")
            .await,
        in_town,
        "one audit row a person"
    );
    // The refusal notice carries the reason.
    let ent: String = sqlx::query(
        "SELECT o.entitlement_id FROM notification_outbox o JOIN elder e ON e.id = o.elder_id \
         WHERE o.event = 'refused' AND e.phone_enc IS NOT NULL LIMIT 1",
    )
    .fetch_one(&t.state.db.pool)
    .await
    .map(|r| sqlx::Row::get(&r, 0))
    .unwrap();
    let text = yiyang::platform::outbox::render_text(&t.state.db, &ent, "refused")
        .await
        .unwrap()
        .unwrap();
    assert!(text.contains("原因：本年度改造名额已满"), "{text}");
    // Named ids: just those two.
    let (_, q, _) = t
        .call(
            "GET",
            "/api/v1/entitlements?state=proposed&page_size=2",
            Some(&c),
            None,
        )
        .await;
    let ids: Vec<Value> = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    let before = t
        .count("SELECT COUNT(*) FROM entitlement WHERE state = 'granted'")
        .await;
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/entitlements/decisions",
            Some(&c),
            Some(json!({"ids": ids, "approve": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["decided"], 2);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM entitlement WHERE state = 'granted'")
            .await,
        before + 2
    );
}

/// A run is written in parts under a claim: the packs of a run being written are read by no one,
/// a second run meanwhile is refused, and a claim left by a run that died is cleared (its hidden
/// packs deleted, the clearing audited) by the next run, which then finds nothing to change.
#[tokio::test]
async fn db_run_claim_hides_its_packs_and_a_dead_run_is_cleared() {
    use yiyang::catalog::evaluate::run;
    let t = TestApp::new("demo", 300).await;
    let who = yiyang::audit::Who {
        actor_id: None,
        actor_name: "test".into(),
    };
    let db = &t.state.db;
    yiyang::catalog::store::seed_demo(db, COUNTY, &who)
        .await
        .unwrap();
    let scope = yiyang::identity::Scope::all();
    let today = yiyang::platform::today();
    let names = |c: &str| c.to_string();
    let first = run(db, &scope, &who, COUNTY, today, &names).await.unwrap();
    assert!(first.changes > 0);
    assert_eq!(t.count("SELECT COUNT(*) FROM catalog_run_writing").await, 0);
    let packed = || async {
        let mut c = db.pool.acquire().await.unwrap();
        yiyang::catalog::pack::scan(&mut c, Some(COUNTY), 0u64, |n, _, _| *n += 1)
            .await
            .unwrap()
    };
    let before = packed().await;
    assert!(before > 0);
    // A run dies half-way: its claim and a pack of its grants are written, its record is not.
    sqlx::query(
        "INSERT INTO catalog_run_writing (region_code, run_id, started_at, by_name) VALUES ($1, 'dead-run', $2, 'test')",
    )
    .bind(COUNTY)
    .bind(yiyang::platform::now_rfc3339())
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO entitlement_pack (run_id, bucket, catalog_region, since, entries, data) \
         SELECT 'dead-run', bucket, catalog_region, since, entries, data FROM entitlement_pack \
         WHERE bucket = (SELECT MIN(bucket) FROM entitlement_pack)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(packed().await, before, "a claimed run's packs are hidden");
    // While the claim is fresh, another run is refused with a sentence.
    let e = run(db, &scope, &who, COUNTY, today, &names)
        .await
        .unwrap_err();
    assert_eq!(e.status, StatusCode::CONFLICT, "{e:?}");
    assert_eq!(t.count("SELECT COUNT(*) FROM catalog_run").await, 1);
    // An hour later the claim is stale: the next run clears it and has nothing to change.
    sqlx::query("UPDATE catalog_run_writing SET started_at = '2020-01-01T00:00:00.000Z'")
        .execute(&db.pool)
        .await
        .unwrap();
    let again = run(db, &scope, &who, COUNTY, today, &names).await.unwrap();
    assert_eq!(again.changes, 0);
    assert_eq!(t.count("SELECT COUNT(*) FROM catalog_run_writing").await, 0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM entitlement_pack WHERE run_id = 'dead-run'")
            .await,
        0
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'catalog.evaluate_interrupted' AND entity_id = 'dead-run'")
            .await,
        1
    );
    assert_eq!(packed().await, before);
    assert!(yiyang::audit::verify(db, &[]).await.unwrap().ok);
}

use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;

/// Name-fragment search goes through the gram index; its answers must equal a plain LIKE over the
/// table, also after a rename and a move, and inside a town's scope.
#[tokio::test]
async fn db_name_search_matches_like() {
    let t = TestApp::new("demo", 3000).await;
    t.add_user("o", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("town", &["officer"], "320682103000", all_scopes())
        .await;
    let c = t.login("o").await;
    let like = |frag: &str, town: Option<&str>| {
        let pat = format!("%{frag}%");
        let range = town
            .map(|p| (format!("{p:0<12}"), format!("{p:9<12}")))
            .unwrap_or(("000000000000".into(), "999999999999".into()));
        let db = t.state.db.clone();
        async move {
            use sqlx::Row;
            sqlx::query("SELECT COUNT(*) FROM elder WHERE name LIKE $1 AND residence_region BETWEEN $2 AND $3")
                .bind(pat)
                .bind(range.0)
                .bind(range.1)
                .fetch_one(&db.pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    };
    for frag in ["秀英", "王秀英", "英", "建国", "德才秀", "王"] {
        let (_, v, _) = t
            .call(
                "POST",
                "/api/v1/elders/search",
                Some(&c),
                Some(json!({"name": frag, "page_size": 200})),
            )
            .await;
        assert_eq!(
            v["total"].as_i64().unwrap(),
            like(frag, None).await,
            "{frag}"
        );
        for r in v["items"].as_array().unwrap() {
            assert!(r["name"].as_str().unwrap().contains(frag));
        }
    }
    let tw = t.login("town").await;
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&tw),
            Some(json!({"name": "秀英"})),
        )
        .await;
    assert_eq!(
        v["total"].as_i64().unwrap(),
        like("秀英", Some("320682103")).await
    );
    // Rename and move one person: the index follows.
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"name": "秀英", "page_size": 1})),
        )
        .await;
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let (s, _, _) = t
        .call(
            "PATCH",
            &format!("/api/v1/elders/{id}"),
            Some(&c),
            Some(json!({"name": "缪翠萍", "residence_region": "320682103005"})),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::OK);
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&tw),
            Some(json!({"name": "翠萍"})),
        )
        .await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "{v}"
    );
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"name": "秀英"})),
        )
        .await;
    assert_eq!(v["total"].as_i64().unwrap(), like("秀英", None).await);
}

/// The in-memory search index answers every query exactly as the same search in SQL: the same ids
/// in the same order and the same count, across filters, sorts, pages and scopes; also after edits
/// (kept in the overlay) and after an import (base rebuilt).
#[tokio::test]
async fn db_search_index_equals_sql() {
    use yiyang::identity::Scope;
    use yiyang::registry::store::{self, SearchReq};
    use yiyang_kernel::RegionCode;
    let t = TestApp::new("demo", 4000).await;
    t.add_user("o", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("o").await;
    let today = yiyang::platform::today();
    let scopes = [
        Scope::of(&RegionCode::parse("320682000000").unwrap()),
        Scope::of(&RegionCode::parse("320682104000").unwrap()),
        Scope::of(&RegionCode::parse("320682103003").unwrap()),
    ];
    let req = |v: serde_json::Value| -> SearchReq { serde_json::from_value(v).unwrap() };
    let queries = [
        json!({}),
        json!({"sort": "name", "page": 2, "page_size": 50}),
        json!({"name": "秀", "sort": "birth_date"}),
        json!({"name": "王", "sort": "-birth_date", "page": 3}),
        json!({"name": "建国", "age_min": 80}),
        json!({"age_min": 70, "age_max": 79, "sort": "name", "page_size": 200}),
        json!({"living_status": "living_alone", "economic_status": "minimum_living"}),
        json!({"status": "active", "region_code": "320682104000", "sort": "birth_date"}),
        json!({"region_code": "320682001005", "page": 2, "page_size": 5}),
        json!({"name": "不存在的名字"}),
        // Large sets in name and birth order: walked through the sorted permutations.
        json!({"sort": "-birth_date", "page": 4, "page_size": 100}),
        json!({"sort": "birth_date", "status": "active", "page": 2}),
        json!({"sort": "name", "age_min": 60, "page": 7}),
        // The current assessment's level, valid today; none = no valid assessment.
        json!({"ability_level": "2"}),
        json!({"ability_level": "4", "sort": "name"}),
        json!({"ability_level": "none", "age_min": 80, "sort": "-birth_date", "page": 2}),
    ];
    let check = |round: &'static str| {
        let t = &t;
        let scopes = &scopes;
        let queries = &queries;
        async move {
            for s in scopes {
                for q in queries {
                    let r = req(q.clone());
                    if r.region_code
                        .as_deref()
                        .is_some_and(|rc| !s.covers(&RegionCode::parse(rc).unwrap()))
                    {
                        continue;
                    }
                    let regions = t.state.regions.read().await;
                    let page = store::search(
                        &t.state.db,
                        &t.state.search_index,
                        &t.state.keys,
                        s,
                        &regions,
                        &r,
                        today,
                    )
                    .await
                    .unwrap();
                    let (ids, total) = store::search_sql(&t.state.db, s, &r, today).await.unwrap();
                    let got: Vec<String> = page.items.iter().map(|e| e.id.clone()).collect();
                    assert_eq!(got, ids, "{round} {q} in {}", s.lo);
                    assert_eq!(page.total, total, "{round} {q} in {}", s.lo);
                }
            }
        }
    };
    check("initial").await;
    // Edits: a rename, a move, a death.
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"name": "秀", "page_size": 3})),
        )
        .await;
    let ids: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for (id, body) in ids.iter().zip([
        json!({"name": "王建国"}),
        json!({"residence_region": "320682104205"}),
        json!({"death_date": "2025-01-02"}),
    ]) {
        let (s, v, _) = t
            .call(
                "PATCH",
                &format!("/api/v1/elders/{id}"),
                Some(&c),
                Some(body),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    }
    check("after edits").await;
    // Assessments: levels 0–4 spread over people, some recorded too long ago to be valid; a
    // correction replaces an earlier record's level.
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"page_size": 200, "sort": "name"})),
        )
        .await;
    let who = yiyang::audit::Who {
        actor_id: None,
        actor_name: "测试".into(),
    };
    let record = |elder: String, total: u8, on: String, corrects: Option<String>| {
        let t = &t;
        let (who, scope) = (who.clone(), scopes[0].clone());
        async move {
            let mut items = std::collections::BTreeMap::new();
            let mut excess = 90 - total;
            for def in yiyang_kernel::assessment::ITEMS.iter().rev() {
                let cut = excess.min(def.max());
                items.insert(def.code.to_string(), def.max() - cut);
                excess -= cut;
            }
            let a: yiyang::assessment::store::NewAssessment = serde_json::from_value(json!({
                "reason": "first", "assessed_on": on, "assessors": ["甲", "乙"],
                "corrects": corrects, "input": {"items": items}}))
            .unwrap();
            yiyang::assessment::store::record(&t.state.db, &scope, &who, &elder, a, today)
                .await
                .unwrap()
                .id
        }
    };
    let people = v["items"].as_array().unwrap();
    let mut first = String::new();
    for (n, e) in people.iter().enumerate() {
        let on = if n % 7 == 0 {
            "2023-05-01".to_string()
        } else {
            today.to_string()
        };
        let id = record(
            e["id"].as_str().unwrap().into(),
            [90u8, 75, 55, 30, 5][n % 5],
            on,
            None,
        )
        .await;
        if n == 1 {
            first = id;
        }
    }
    record(
        people[1]["id"].as_str().unwrap().into(),
        30,
        today.to_string(),
        Some(first),
    )
    .await;
    check("after assessments").await;
    // A bulk write of new people, more than the overlay holds, so the base is rebuilt.
    let villages = yiyang::demo::ensure_regions(&t.state.db).await.unwrap();
    let first: std::collections::HashSet<String> =
        yiyang::demo::generate(4000, &villages, 42, today)
            .iter()
            .map(|e| e.citizen_id.as_str().to_string())
            .collect();
    let more: Vec<_> = yiyang::demo::generate(7000, &villages, 4242, today)
        .into_iter()
        .filter(|e| !first.contains(e.citizen_id.as_str()))
        .collect();
    assert!(more.len() > 6000);
    yiyang::demo::insert_elders(&t.state.db, &t.state.keys, &more, "测试")
        .await
        .unwrap();
    check("after bulk write").await;
}

/// The search box takes a citizen ID (looked up through its blind index) or its last 4–6
/// characters, within the caller's scope, and the audit row keeps the ID masked.
#[tokio::test]
async fn db_search_by_citizen_id_and_its_last_digits() {
    use sqlx::Row;
    let t = TestApp::new("demo", 3000).await;
    t.add_user("o", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("other", &["officer"], "320682104000", all_scopes())
        .await;
    let c = t.login("o").await;
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"region_code": "320682103000", "page_size": 1})),
        )
        .await;
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let (s, r, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{id}/reveal"),
            Some(&c),
            Some(json!({"field": "citizen_id", "reason": "核对身份信息"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let cid = r["value"].as_str().unwrap().to_string();
    let find = |who: String, text: String| {
        let t = &t;
        async move {
            let (s, v, _) = t
                .call(
                    "POST",
                    "/api/v1/elders/search",
                    Some(&who),
                    Some(json!({"name": text, "page_size": 200})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    // The whole ID: exactly that person.
    let v = find(c.clone(), cid.clone()).await;
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["id"], id.as_str());
    // The last 4: everyone whose masked ID ends so; the last 6 narrow it by the day of birth.
    let tail4 = &cid[14..];
    let expect4: i64 = sqlx::query("SELECT COUNT(*) FROM elder WHERE citizen_id_masked LIKE $1")
        .bind(format!("%{tail4}"))
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    let v4 = find(c.clone(), tail4.to_string()).await;
    assert_eq!(v4["total"].as_i64().unwrap(), expect4);
    let v6 = find(c.clone(), cid[12..].to_string()).await;
    let ids6: Vec<&str> = v6["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids6.contains(&id.as_str()), "{v6}");
    assert!(v6["total"].as_i64().unwrap() <= expect4);
    for r in v6["items"].as_array().unwrap() {
        assert!(r["citizen_id_masked"].as_str().unwrap().ends_with(tail4));
    }
    // Another town's officer does not find the person, by the ID or its tail.
    let o2 = t.login("other").await;
    assert_eq!(find(o2.clone(), cid.clone()).await["total"], 0);
    let v = find(o2, cid[12..].to_string()).await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != id.as_str())
    );
    // Totals are exact, not capped.
    let all: i64 = sqlx::query("SELECT COUNT(*) FROM elder")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    let (_, v, _) = t
        .call("POST", "/api/v1/elders/search", Some(&c), Some(json!({})))
        .await;
    assert_eq!(v["total"].as_i64().unwrap(), all);
    assert_eq!(v["total_capped"], false);
    // The audit trail holds the searched ID masked, never in clear.
    let details: Vec<String> =
        sqlx::query("SELECT detail FROM audit_log WHERE action = 'elder.search'")
            .fetch_all(&t.state.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert!(!details.is_empty());
    assert!(
        details
            .iter()
            .all(|d| !d.contains(&cid) && !d.contains(&cid[8..])),
        "{details:?}"
    );
    assert!(details.iter().any(|d| d.contains("身份证号后6位")));
}

/// A whole phone number (typed with dashes or spaces) finds the people who gave it, through its
/// blind index, within the caller's scope; rows written before the index are filled at start.
#[tokio::test]
async fn db_search_by_phone() {
    use sqlx::Row;
    let t = TestApp::new("demo", 3000).await;
    t.add_user("o", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("other", &["officer"], "320682104000", all_scopes())
        .await;
    let c = t.login("o").await;
    let id: String = sqlx::query(
        "SELECT id FROM elder WHERE phone_enc IS NOT NULL \
         AND residence_region BETWEEN '320682103000' AND '320682103999' ORDER BY id LIMIT 1",
    )
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap()
    .get(0);
    let (s, r, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{id}/reveal"),
            Some(&c),
            Some(json!({"field": "phone", "reason": "联系家属"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let phone = r["value"].as_str().unwrap().to_string();
    let typed = if phone.len() == 11 {
        format!("{}-{} {}", &phone[..3], &phone[3..7], &phone[7..])
    } else {
        phone.clone()
    };
    let find = |who: String, text: String| {
        let t = &t;
        async move {
            let (s, v, _) = t
                .call(
                    "POST",
                    "/api/v1/elders/search",
                    Some(&who),
                    Some(json!({"name": text, "page_size": 200})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let masked = yiyang_kernel::mask::phone(&phone);
    // Everyone in the officer's scope who gave this number, by decrypting every phone.
    let mut sharing: Vec<String> = vec![];
    for r in sqlx::query(
        "SELECT id, phone_enc FROM elder WHERE phone_enc IS NOT NULL \
         AND residence_region BETWEEN '320682000000' AND '320682999999'",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap()
    {
        if t.state.keys.decrypt(&r.get::<Vec<u8>, _>(1)).unwrap() == phone {
            sharing.push(r.get(0));
        }
    }
    sharing.sort();
    let check = |v: &serde_json::Value| {
        let mut ids: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, sharing, "{v}");
        assert_eq!(v["total"].as_i64().unwrap(), sharing.len() as i64);
    };
    check(&find(c.clone(), typed.clone()).await);
    // Another town's officer finds nobody of this town by it.
    let o2 = t.login("other").await;
    let v = find(o2, typed.clone()).await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != id.as_str())
    );
    // Rows from before the index: not found until the fill, found after it.
    sqlx::query("UPDATE elder SET phone_bidx = NULL")
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    assert_eq!(find(c.clone(), typed.clone()).await["total"], 0);
    let filled = yiyang::registry::backfill_phone_index(&t.state.db, &t.state.keys)
        .await
        .unwrap();
    let with_phone: i64 = sqlx::query("SELECT COUNT(*) FROM elder WHERE phone_enc IS NOT NULL")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(filled as i64, with_phone);
    assert_eq!(
        yiyang::registry::backfill_phone_index(&t.state.db, &t.state.keys)
            .await
            .unwrap(),
        0
    );
    check(&find(c.clone(), phone.clone()).await);
    // The audit keeps the number masked.
    let details: Vec<String> =
        sqlx::query("SELECT detail FROM audit_log WHERE action = 'elder.search'")
            .fetch_all(&t.state.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert!(details.iter().all(|d| !d.contains(&phone)), "{details:?}");
    assert!(
        details
            .iter()
            .any(|d| d.contains(&format!("联系电话 {masked}")))
    );
}

#[test]
fn the_search_box_tells_an_id_from_a_name() {
    use yiyang::registry::store::IdQuery;
    assert_eq!(IdQuery::of("王秀英"), None);
    assert_eq!(IdQuery::of("秀英12"), None);
    assert_eq!(IdQuery::of("英1234"), None);
    assert_eq!(IdQuery::of("123"), None);
    assert_eq!(IdQuery::of("1234567"), None);
    assert_eq!(IdQuery::of("12X4"), None);
    assert_eq!(IdQuery::of(" 1234 "), Some(IdQuery::Tail("1234".into())));
    assert_eq!(IdQuery::of("12345x"), Some(IdQuery::Tail("12345X".into())));
    assert_eq!(
        IdQuery::of("32068219410506007x"),
        Some(IdQuery::Whole("32068219410506007X".into()))
    );
    assert_eq!(
        IdQuery::of("138-1234 5678"),
        Some(IdQuery::Phone("13812345678".into()))
    );
    assert_eq!(
        IdQuery::of("+86 13812345678"),
        Some(IdQuery::Phone("13812345678".into()))
    );
    assert_eq!(
        IdQuery::of("0513-87654321"),
        Some(IdQuery::Phone("051387654321".into()))
    );
    assert_eq!(IdQuery::of("1381234567"), None);
}

//! Users at county, town and village level in two sibling subtrees × every endpoint that touches
//! people × records inside and outside their subtree → allowed exactly when inside.

use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;
use yiyang_kernel::citizen_id::compose;

const COUNTY: &str = "320682000000";
const TOWN_A: &str = "320682001000";
const TOWN_B: &str = "320682103000";
const VILL_A1: &str = "320682001001";
const VILL_A2: &str = "320682001002";
const VILL_B1: &str = "320682103001";

fn within(scope: &str, code: &str) -> bool {
    let p = yiyang_kernel::RegionCode::parse(scope).unwrap();
    p.contains(&yiyang_kernel::RegionCode::parse(code).unwrap())
}

#[tokio::test]
async fn db_scope_matrix() {
    let t = TestApp::new("demo", 0).await;
    let users = [
        ("u_county", COUNTY),
        ("u_town_a", TOWN_A),
        ("u_town_b", TOWN_B),
        ("u_vill_a1", VILL_A1),
        ("u_vill_b1", VILL_B1),
    ];
    for (u, r) in users {
        t.add_user(u, &["officer"], r, all_scopes()).await;
    }
    let county = t.login("u_county").await;
    // One record in each of three villages, created by the county officer.
    let mut records = vec![];
    for (i, village) in [VILL_A1, VILL_A2, VILL_B1].iter().enumerate() {
        let cid = compose(
            "320682",
            chrono::NaiveDate::from_ymd_opt(1940, 1, 10 + i as u32).unwrap(),
            11 + 2 * i as u32,
        );
        let (s, v, _) = t.call("POST", "/api/v1/elders", Some(&county), Some(json!({"citizen_id": cid, "name": format!("测试老人{}", ["甲","乙","丙"][i]), "residence_region": village}))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        records.push((v["id"].as_str().unwrap().to_string(), village.to_string()));
    }
    // Each user's own list (a list belongs to a region; only those over it change it).
    for (u, r) in users {
        let (s, v, _) = t
            .call(
                "POST",
                "/api/v1/elder-lists",
                Some(&county),
                Some(json!({"name": format!("scope_{u}"), "region_code": r})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let mut checked = 0;
    for (u, ur) in users {
        let c = t.login(u).await;
        for (id, region) in &records {
            let inside = within(ur, region);
            let expect = |ok: StatusCode, denied: &[StatusCode], got: StatusCode, what: &str| {
                if inside {
                    assert_eq!(got, ok, "{u} {what} {region}: expected allowed");
                } else {
                    assert!(
                        denied.contains(&got),
                        "{u} {what} {region}: expected denied, got {got}"
                    );
                }
            };
            let (s, _, _) = t
                .call("GET", &format!("/api/v1/elders/{id}"), Some(&c), None)
                .await;
            expect(StatusCode::OK, &[StatusCode::NOT_FOUND], s, "detail");
            let (s, _, _) = t
                .call(
                    "PATCH",
                    &format!("/api/v1/elders/{id}"),
                    Some(&c),
                    Some(json!({"address": "3组12号"})),
                )
                .await;
            expect(StatusCode::OK, &[StatusCode::NOT_FOUND], s, "edit");
            let (s, v, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/elders/{id}/reveal"),
                    Some(&c),
                    Some(json!({"field": "citizen_id", "reason": "范围测试核实"})),
                )
                .await;
            expect(StatusCode::OK, &[StatusCode::NOT_FOUND], s, "reveal");
            if inside {
                assert_eq!(v["value"].as_str().unwrap().len(), 18);
            }
            let (s, _, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/elders/{id}/assessments"),
                    Some(&c),
                    None,
                )
                .await;
            expect(StatusCode::OK, &[StatusCode::NOT_FOUND], s, "assessments");
            let items: serde_json::Map<String, serde_json::Value> =
                yiyang_kernel::assessment::ITEMS
                    .iter()
                    .map(|i| (i.code.to_string(), json!(i.max())))
                    .collect();
            let (s, v, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/elders/{id}/assessments"),
                    Some(&c),
                    Some(json!({"reason": "routine", "assessed_on": "2025-06-01", "assessors": ["甲评估", "乙评估"], "input": {"items": items}})),
                )
                .await;
            expect(
                StatusCode::CREATED,
                &[StatusCode::NOT_FOUND],
                s,
                "record assessment",
            );
            if inside {
                assert_eq!(v["final_level"], 0);
            }
            let (s, _, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/elders/{id}/assessment-triggers"),
                    Some(&c),
                    Some(json!({"kind": "risk_event", "noted_on": "2025-06-02"})),
                )
                .await;
            expect(
                StatusCode::CREATED,
                &[StatusCode::NOT_FOUND],
                s,
                "note a reassessment trigger",
            );
            let (s, v, _) = t
                .call(
                    "POST",
                    "/api/v1/elders/search",
                    Some(&c),
                    Some(json!({"region_code": region})),
                )
                .await;
            expect(
                StatusCode::OK,
                &[StatusCode::FORBIDDEN],
                s,
                "search by region",
            );
            if inside {
                assert!(
                    v["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r["id"] == id.as_str())
                );
            }
            let (s, _, _) = t
                .call(
                    "POST",
                    "/api/v1/elders/export",
                    Some(&c),
                    Some(json!({"filter": {"region_code": region}})),
                )
                .await;
            expect(StatusCode::OK, &[StatusCode::FORBIDDEN], s, "export");
            let (s, _, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/regions/{region}/children"),
                    Some(&c),
                    None,
                )
                .await;
            expect(
                StatusCode::OK,
                &[StatusCode::FORBIDDEN],
                s,
                "region children",
            );
            // Care visits: recording one, an elder's visits, the due list and rate of the region.
            let (s, _, _) = t
                .call(
                    "POST",
                    "/api/v1/care-visits",
                    Some(&c),
                    Some(json!({"id": uuid::Uuid::new_v4().to_string(), "elder_id": id, "mode": "door"})),
                )
                .await;
            expect(
                StatusCode::CREATED,
                &[StatusCode::NOT_FOUND],
                s,
                "record a care visit",
            );
            let (s, v, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/care-visits?elder_id={id}"),
                    Some(&c),
                    None,
                )
                .await;
            // Outside: an empty list (the elder's visits are not in the caller's area).
            assert_eq!(s, StatusCode::OK, "{u} care visits of {region}");
            assert_eq!(
                v.as_array().unwrap().is_empty(),
                !inside,
                "{u} care visits of {region}: {v}"
            );
            for uri in [
                format!("/api/v1/care-visits/due?region_code={region}"),
                format!("/api/v1/care-visits/rate?region_code={region}"),
            ] {
                let (s, _, _) = t.call("GET", &uri, Some(&c), None).await;
                expect(StatusCode::OK, &[StatusCode::FORBIDDEN], s, &uri);
            }
            // The catalogue: an elder's eligibility, lists, the approval queue, the payment check,
            // the catalogue itself and its evaluation.
            let (s, _, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/elders/{id}/eligibility"),
                    Some(&c),
                    None,
                )
                .await;
            expect(StatusCode::OK, &[StatusCode::NOT_FOUND], s, "eligibility");
            let (s, _, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/elder-lists/scope_{u}/members"),
                    Some(&c),
                    Some(json!({"elder_ids": [id]})),
                )
                .await;
            expect(
                StatusCode::OK,
                &[StatusCode::UNPROCESSABLE_ENTITY],
                s,
                "list member",
            );
            let (s, _, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/entitlements?region_code={region}"),
                    Some(&c),
                    None,
                )
                .await;
            expect(StatusCode::OK, &[StatusCode::FORBIDDEN], s, "entitlements");
            let (s, _, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/payment-check?region_code={region}"),
                    Some(&c),
                    None,
                )
                .await;
            expect(StatusCode::OK, &[StatusCode::FORBIDDEN], s, "payment check");
            let (s, _, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/catalog?region_code={region}"),
                    Some(&c),
                    None,
                )
                .await;
            expect(StatusCode::OK, &[StatusCode::FORBIDDEN], s, "catalogue");
            let (s, _, _) = t
                .call(
                    "POST",
                    "/api/v1/catalog/evaluate",
                    Some(&c),
                    Some(json!({"region_code": region})),
                )
                .await;
            // Allowed, but nothing is published for a village: 409.
            expect(
                StatusCode::CONFLICT,
                &[StatusCode::FORBIDDEN],
                s,
                "evaluate",
            );
            let cid = compose(
                "320682",
                chrono::NaiveDate::from_ymd_opt(1950, 3, 1).unwrap(),
                (checked % 400) as u32 * 2 + 101,
            );
            let (s, _, _) = t
                .call(
                    "POST",
                    "/api/v1/elders",
                    Some(&c),
                    Some(
                        json!({"citizen_id": cid, "name": "新建老人", "residence_region": region}),
                    ),
                )
                .await;
            expect(
                StatusCode::CREATED,
                &[StatusCode::UNPROCESSABLE_ENTITY],
                s,
                "create",
            );
            checked += 1;
        }
        // Unfiltered search returns only in-scope rows, and the count agrees.
        let (s, v, _) = t
            .call(
                "POST",
                "/api/v1/elders/search",
                Some(&c),
                Some(json!({"page_size": 200})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        for r in v["items"].as_array().unwrap() {
            assert!(
                within(ur, r["residence_region"].as_str().unwrap()),
                "{u} saw {r}"
            );
        }
        // Import: one row per village; only the in-scope ones are accepted.
        let mut csv = String::from("身份证号,姓名,居住地区划代码\n");
        for (i, v) in [VILL_A1, VILL_B1].iter().enumerate() {
            let cid = compose(
                "320682",
                chrono::NaiveDate::from_ymd_opt(1945, 6, 1 + i as u32).unwrap(),
                300 + checked as u32 * 2,
            );
            csv.push_str(&format!("{cid},导入老人,{v}\n"));
        }
        let (s, job) = t
            .multipart(
                "/api/v1/imports/registry",
                &c,
                "scope.csv",
                csv.as_bytes(),
                true,
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{job}");
        let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
        let expect_ok = [VILL_A1, VILL_B1].iter().filter(|v| within(ur, v)).count() as i64;
        assert_eq!(st["accepted"], expect_ok, "{u}: {st}");
        // Nobody but the audit administrator reads the audit trail.
        let (s, _, _) = t.call("GET", "/api/v1/audit", Some(&c), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    assert!(checked >= 15);
    // Death and move-out follow the same rule (a town-B officer cannot touch town A).
    let b = t.login("u_town_b").await;
    let (s, _, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{}/death", records[0].0),
            Some(&b),
            Some(json!({"death_date": "2026-01-02"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{}/move-out", records[0].0),
            Some(&b),
            Some(json!({"date": "2026-01-02"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let a = t.login("u_town_a").await;
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{}/death", records[0].0),
            Some(&a),
            Some(json!({"death_date": "2026-01-02"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "deceased");
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{}/move-out", records[1].0),
            Some(&a),
            Some(json!({"date": "2026-01-02"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "moved_out");
}

#[tokio::test]
async fn db_separated_duties_and_scopes() {
    let t = TestApp::new("demo", 50).await;
    t.add_user(
        "auditor",
        &["audit_admin"],
        COUNTY,
        yiyang::identity::Scopes::default(),
    )
    .await;
    t.add_user(
        "secadm",
        &["security_admin"],
        COUNTY,
        yiyang::identity::Scopes::default(),
    )
    .await;
    t.add_user(
        "sysadm",
        &["system_admin"],
        COUNTY,
        yiyang::identity::Scopes::default(),
    )
    .await;
    t.add_user("worker", &["worker"], TOWN_A, all_scopes())
        .await;
    t.add_user(
        "agg_only",
        &["officer"],
        COUNTY,
        yiyang::identity::Scopes {
            edit: false,
            aggregates: true,
            individuals: false,
        },
    )
    .await;
    t.add_user(
        "readonly",
        &["officer"],
        COUNTY,
        yiyang::identity::Scopes {
            edit: false,
            aggregates: true,
            individuals: true,
        },
    )
    .await;
    let search = json!({"page_size": 1});
    for u in ["auditor", "secadm", "sysadm", "agg_only"] {
        let c = t.login(u).await;
        let (s, _, _) = t
            .call(
                "POST",
                "/api/v1/elders/search",
                Some(&c),
                Some(search.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{u} must not search individuals");
    }
    let c = t.login("auditor").await;
    let (s, v, _) = t.call("GET", "/api/v1/audit", Some(&c), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["total"].as_i64().unwrap() > 0);
    // Reading the audit trail is audited too.
    let (_, v, _) = t
        .call("GET", "/api/v1/audit?action=audit.view", Some(&c), None)
        .await;
    assert_eq!(v["items"][0]["actor_login"], "auditor", "{v}");
    assert_eq!(
        v["items"][0]["actor"], "测试auditor",
        "the account's name: {v}"
    );
    let (s, _, _) = t.call("GET", "/api/v1/users", Some(&c), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "audit admin cannot manage users");
    let c = t.login("sysadm").await;
    let (s, _, _) = t.call("GET", "/api/v1/audit", Some(&c), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "system admin cannot read audit");
    let c = t.login("secadm").await;
    let (s, _, _) = t.call("GET", "/api/v1/users", Some(&c), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v, _) = t.call("POST", "/api/v1/users", Some(&c), Some(json!({"username": "x", "display_name": "x", "password": "Strong-pass-1", "roles": ["audit_admin", "officer"], "region_code": COUNTY, "scopes": {"edit": true, "aggregates": true, "individuals": true}}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // A worker may read and edit but not reveal or export.
    let c = t.login("worker").await;
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"page_size": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    if let Some(first) = v["items"].as_array().unwrap().first() {
        let id = first["id"].as_str().unwrap();
        let (s, _, _) = t
            .call(
                "POST",
                &format!("/api/v1/elders/{id}/reveal"),
                Some(&c),
                Some(json!({"field": "citizen_id", "reason": "想看一下号码"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, _, _) = t
        .call("POST", "/api/v1/elders/export", Some(&c), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Read-only scope: search yes, edit no.
    let c = t.login("readonly").await;
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"page_size": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let id = v["items"][0]["id"].as_str().unwrap();
    let (s, _, _) = t
        .call(
            "PATCH",
            &format!("/api/v1/elders/{id}"),
            Some(&c),
            Some(json!({"address": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

use crate::support::*;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

/// `yiyang admission rank` with applicants on standard input: `(exit code, stdout, stderr)`.
fn rank(db_url: &str, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_yiyang"))
        .args(["admission", "rank"])
        .args(args)
        .env("YIYANG_DATABASE_URL", db_url)
        .env_remove("YIYANG_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Hand-made cases at the tier boundaries of the default policy, in Chinese labels and codes;
/// then the county publishes its own order and the command follows it for a town in the county.
#[tokio::test]
async fn db_admission_rank_orders_applicants_by_the_published_policy_or_the_default() {
    let t = TestApp::new("demo", 0).await;
    let url = match (&t.sqlite_path, &t.pg_url) {
        (Some(p), _) => p.to_str().unwrap().to_string(),
        (_, Some(u)) => u.clone(),
        _ => unreachable!(),
    };
    let applicants = json!([
        {"ref": "ordinary-80", "birth_date": "1946-11-30", "economic_status": "一般", "ability_level": null,
         "applied_at": "2026-01-05"},
        {"ref": "dibao-79", "birth_date": "1946-12-02", "economic_status": "低保", "ability_level": 1,
         "applied_at": "2026-01-01"},
        {"ref": "dibao-80", "birth_date": "1946-12-01", "economic_status": "minimum_living", "ability_level": "轻度失能",
         "applied_at": "2026-02-01"},
        {"ref": "edge-moderate", "birth_date": "1960-01-01", "economic_status": "低保边缘", "ability_level": 2,
         "applied_at": "2026-03-01"},
        {"ref": "tekun", "birth_date": "1962-01-01", "economic_status": "特困", "applied_at": "2026-06-01"},
        {"ref": "shidu", "birth_date": "1955-01-01", "family_planning_special": "失独", "applied_at": "2026-05-01"},
        {"ref": "severe-vet", "birth_date": "1958-01-01", "ability_level": 3, "entitled_veteran_family": true,
         "applied_at": "2026-05-20"},
        {"ref": "no-assessment", "birth_date": "1950-01-01", "economic_status": "低保", "applied_at": "2025-12-01"}
    ])
    .to_string();
    let (code, out, err) = rank(
        &url,
        &["--on", "2026-12-01", "--format", "json"],
        &applicants,
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let order: Vec<(&str, i64)> = v["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["ref"].as_str().unwrap(), p["tier"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        order,
        [
            ("tekun", 1),
            ("dibao-80", 2),
            ("edge-moderate", 2),
            ("severe-vet", 3),
            ("shidu", 3),
            ("no-assessment", 4),
            ("dibao-79", 4),
            ("ordinary-80", 4),
        ]
    );
    assert_eq!(v["order"][0]["position"], 1);
    assert_eq!(v["policy"], "默认轮候规则");
    let reasons = v["order"][3]["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("优抚对象")),
        "{reasons:?}"
    );

    // Wrong input: named, exit 2, nothing printed on stdout.
    let (code, out, err) = rank(
        &url,
        &[],
        r#"[{"ref": "x", "birth_date": "1946-13-01", "applied_at": "2026-01-01"}]"#,
    );
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("出生日期"), "{err}");
    let (code, _, err) = rank(&url, &[], "not json");
    assert_eq!(code, 2);
    assert!(err.contains("JSON"), "{err}");

    // The county publishes "90 and over first"; a town of the county follows it.
    yiyang::institution::queue::publish(
        &t.state.db,
        &yiyang::audit::Who {
            actor_id: None,
            actor_name: "测试".into(),
        },
        &yiyang_kernel::RegionCode::parse("320682000000").unwrap(),
        vec![yiyang::institution::queue::TierView {
            label: "九十岁以上".into(),
            rule: "年龄 >= 90".into(),
        }],
        None,
        None,
    )
    .await
    .unwrap();
    let two = json!([
        {"ref": "tekun", "birth_date": "1962-01-01", "economic_status": "特困", "applied_at": "2026-06-01"},
        {"ref": "ninety", "birth_date": "1930-01-01", "applied_at": "2026-07-01"}
    ])
    .to_string();
    let (code, out, err) = rank(
        &url,
        &[
            "--region",
            "320682103000",
            "--on",
            "2026-12-01",
            "--format",
            "json",
        ],
        &two,
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["order"][0]["ref"], "ninety");
    assert_eq!(v["order"][1]["tier"], 2);
    assert_eq!(v["policy"], "如皋市发布的轮候规则");
    // The text form, for a person at a terminal.
    let (code, out, _) = rank(&url, &["--on", "2026-12-01"], &two);
    assert_eq!(code, 0);
    assert!(out.starts_with("默认轮候规则"), "{out}");
    assert!(out.contains("第1档  tekun"), "{out}");
}

/// Applications wait in the order of the default policy, with masked names and reasons; a second
/// application of the same person is refused; an admission closes the person's application; a
/// withdrawal takes one out; every step audited.
#[tokio::test]
async fn db_applications_wait_in_policy_order_and_an_admission_closes_one() {
    use axum::http::StatusCode;
    let t = TestApp::new("demo", 0).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let person = |year: i32, seq: u32, name: &'static str, extra: Value| {
        let call = &call;
        async move {
            let cid = yiyang_kernel::citizen_id::compose(
                "320682",
                chrono::NaiveDate::from_ymd_opt(year, 6, 1).unwrap(),
                seq,
            );
            let mut body =
                json!({"citizen_id": cid, "name": name, "residence_region": "320682104205"});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (s, v, _) = call("POST", "/api/v1/elders".into(), Some(body)).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_string()
        }
    };
    let a = person(
        1950,
        11,
        "特困甲",
        json!({"economic_status": "extreme_poverty"}),
    )
    .await;
    let b = person(
        1940,
        13,
        "低保乙",
        json!({"economic_status": "minimum_living"}),
    )
    .await;
    let cc = person(1952, 15, "优抚丙", json!({"entitled_veteran_family": true})).await;
    let d = person(
        1955,
        17,
        "失独丁",
        json!({"family_planning_special": "lost_only_child"}),
    )
    .await;
    let apply = |id: &str, day: &str| {
        call(
            "POST",
            "/api/v1/admission-applications".into(),
            Some(json!({"elder_id": id, "applied_on": day})),
        )
    };
    for (id, day) in [
        (&a, "2026-03-10"),
        (&b, "2026-03-01"),
        (&cc, "2026-03-02"),
        (&d, "2026-03-03"),
    ] {
        let (s, v, _) = apply(id, day).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v, _) = apply(&a, "2026-03-11").await;
    assert_eq!(s, StatusCode::CONFLICT, "a second waiting application: {v}");

    let order = |q: &Value| -> Vec<(String, i64)> {
        q["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["elder_id"].as_str().unwrap().to_string(),
                    r["tier"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let (s, q, _) = call("GET", "/api/v1/admission-queue".into(), None).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(
        order(&q),
        [
            (a.clone(), 1),
            (b.clone(), 2),
            (d.clone(), 3),
            (cc.clone(), 4)
        ]
    );
    assert_eq!(q["policy"]["source"], "默认轮候规则");
    let first = &q["items"][0];
    assert_eq!(first["position"], 1);
    assert_ne!(
        first["name_masked"], "特困甲",
        "names are masked in the queue"
    );
    assert!(
        first["reasons"][0].as_str().unwrap().starts_with("第一档"),
        "{first}"
    );

    // B is admitted to a home: out of the queue.
    let (_, home, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "township_home", "name": "丁堰镇中心敬老院", "ownership": "public",
            "region_code": "320682104000"}),
        ),
    )
    .await;
    let org = home["id"].as_str().unwrap().to_string();
    let (_, beds, _) = call(
        "POST",
        format!("/api/v1/orgs/{org}/beds"),
        Some(json!({"room": "101", "labels": ["1"], "nursing": true})),
    )
    .await;
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{org}/admissions"),
        Some(json!({"elder_id": b, "bed_id": beds["ids"][0]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, q, _) = call("GET", "/api/v1/admission-queue".into(), None).await;
    assert_eq!(order(&q), [(a.clone(), 1), (d.clone(), 3), (cc.clone(), 4)]);
    let (s, v, _) = apply(&b, "2026-04-01").await;
    assert_eq!(s, StatusCode::CONFLICT, "already resident: {v}");

    // C withdraws.
    let app_c = q["items"][2]["application_id"]
        .as_str()
        .unwrap()
        .to_string();
    let withdraw = |reason: &'static str| {
        call(
            "POST",
            format!("/api/v1/admission-applications/{app_c}/withdraw"),
            Some(json!({"reason": reason})),
        )
    };
    let (s, v, _) = withdraw("").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = withdraw("家属决定居家照护").await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _, _) = withdraw("再次撤回").await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, q, _) = call("GET", "/api/v1/admission-queue".into(), None).await;
    assert_eq!(order(&q), [(a.clone(), 1), (d.clone(), 3)]);

    let n = |action: &'static str| {
        let t = &t;
        async move {
            use sqlx::Row;
            sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = $1")
                .bind(action)
                .fetch_one(&t.state.db.pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    };
    assert_eq!(n("admission.apply").await, 4);
    assert_eq!(n("admission.withdraw").await, 1);
    assert_eq!(n("admission.queue.view").await, 3);
}

/// Offers of public beds follow the queue: a plain bed goes past someone who cannot look after
/// themselves to the next in line, a nursing bed to the first; an offered bed is held (neither
/// a second offer nor another admission takes it); the family sees the place and the offer on
/// the public lookup with ID and name (one answer for anything else); a refusal keeps the place
/// by default; acceptance admits onto the bed; under a policy that does not keep places, an offer
/// left unanswered past its days ends the application. Every step audited.
#[tokio::test]
async fn db_offers_follow_the_queue_hold_the_bed_and_the_policy_decides_a_refusal() {
    use axum::http::StatusCode;
    let t = TestApp::new("demo", 0).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("assessor", &["assessor"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let today = yiyang::platform::today();
    let person = |year: i32, seq: u32, name: &'static str, extra: Value| {
        let call = &call;
        async move {
            let cid = yiyang_kernel::citizen_id::compose(
                "320682",
                chrono::NaiveDate::from_ymd_opt(year, 6, 1).unwrap(),
                seq,
            );
            let mut body =
                json!({"citizen_id": cid, "name": name, "residence_region": "320682104205"});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (s, v, _) = call("POST", "/api/v1/elders".into(), Some(body)).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            (v["id"].as_str().unwrap().to_string(), cid)
        }
    };
    let (a, _) = person(
        1950,
        11,
        "特困甲",
        json!({"economic_status": "extreme_poverty"}),
    )
    .await;
    let (b, b_cid) = person(
        1940,
        13,
        "低保乙",
        json!({"economic_status": "minimum_living"}),
    )
    .await;
    let (cc, _) = person(1952, 15, "普通丙", json!({})).await;
    // 特困甲 cannot look after themselves (中度失能): only a nursing bed will do.
    let asr = t.login("assessor").await;
    let mut input = json!({"items": crate::assessment::with_total(70)});
    input["dementia_confirmed"] = json!(true);
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{a}/assessments"),
            Some(&asr),
            Some(json!({"reason": "first", "assessed_on": today.to_string(), "assessors": ["张评估", "李评估"],
                "informant": "本人", "input": input})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for (id, day) in [(&a, "2026-03-10"), (&b, "2026-03-01"), (&cc, "2026-03-02")] {
        let (s, v, _) = call(
            "POST",
            "/api/v1/admission-applications".into(),
            Some(json!({"elder_id": id, "applied_on": day})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let home = |kind: &'static str, own: &'static str, name: &'static str| {
        let call = &call;
        async move {
            let (s, v, _) = call(
                "POST",
                "/api/v1/orgs".into(),
                Some(json!({"kind": kind, "name": name, "ownership": own, "region_code": "320682104000"})),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_string()
        }
    };
    let org = home("township_home", "public", "丁堰镇敬老院").await;
    let private = home("institution", "private", "康乐护理院").await;
    let bed = |org: String, room: &'static str, nursing: bool| {
        let call = &call;
        async move {
            let (s, v, _) = call(
                "POST",
                format!("/api/v1/orgs/{org}/beds"),
                Some(json!({"room": room, "labels": ["1"], "nursing": nursing, "opened_on": "2025-01-01"})),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["ids"][0].as_str().unwrap().to_string()
        }
    };
    let plain = bed(org.clone(), "101", false).await;
    let nursing = bed(org.clone(), "201", true).await;
    let elsewhere = bed(private.clone(), "301", true).await;

    // The plain bed: 特困甲 (first) needs nursing care, so 低保乙 (second) is offered it.
    let (s, o1, _) = call("POST", format!("/api/v1/beds/{plain}/offer"), None).await;
    assert_eq!(s, StatusCode::CREATED, "{o1}");
    assert_eq!(o1["position"], 2, "{o1}");
    assert_eq!(o1["name_masked"], yiyang_kernel::mask::name("低保乙"));
    let reasons = o1["reasons"].to_string();
    assert!(reasons.contains("排在前面的 1 人"), "{o1}");
    assert_eq!(
        o1["expires_on"],
        (today + chrono::Duration::days(4)).to_string(),
        "five days to answer by default, today included"
    );
    // Held: no second offer, no other admission onto it.
    let (s, v, _) = call("POST", format!("/api/v1/beds/{plain}/offer"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{org}/admissions"),
        Some(json!({"elder_id": cc, "bed_id": plain})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("入住邀请"), "{v}");
    // The nursing bed goes to the first in line; a private home's bed is not offered.
    let (s, o2, _) = call("POST", format!("/api/v1/beds/{nursing}/offer"), None).await;
    assert_eq!(s, StatusCode::CREATED, "{o2}");
    assert_eq!(o2["position"], 1, "{o2}");
    let (s, v, _) = call("POST", format!("/api/v1/beds/{elsewhere}/offer"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (_, q, _) = call("GET", "/api/v1/admission-queue".into(), None).await;
    let offered: Vec<bool> = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| !r["offer"].is_null())
        .collect();
    assert_eq!(offered, [true, true, false], "{q}");

    // The family's lookup: ID and name together; anything else gets one answer.
    let lookup = |cid: String, name: &'static str| {
        let t = &t;
        async move {
            t.call(
                "POST",
                "/api/v1/public/queue-place",
                None,
                Some(json!({"citizen_id": cid, "name": name})),
            )
            .await
        }
    };
    let (s, v, _) = lookup(b_cid.clone(), "低保乙").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["position"].as_u64(), v["waiting"].as_u64()),
        (Some(2), Some(3)),
        "{v}"
    );
    assert_eq!(v["offer"]["org_name"], "丁堰镇敬老院", "{v}");
    assert!(!v.to_string().contains("特困甲"), "no one else in it: {v}");
    let (s1, v1, _) = lookup(b_cid.clone(), "低保丙").await;
    let unknown = yiyang_kernel::citizen_id::compose(
        "320682",
        chrono::NaiveDate::from_ymd_opt(1944, 2, 2).unwrap(),
        99,
    );
    let (s2, v2, _) = lookup(unknown, "张三").await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(v1["detail"], v2["detail"]);

    // 低保乙 declines: the place is kept (default), the bed is free to offer again.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/offers/{}/answer", o1["id"].as_str().unwrap()),
        Some(json!({"action": "refuse", "note": "家属想再等等城区的床位"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    // 特困甲 accepts: admitted onto the nursing bed, out of the queue.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/offers/{}/answer", o2["id"].as_str().unwrap()),
        Some(json!({"action": "accept"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["elder_id"], a.as_str());
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/offers/{}/answer", o2["id"].as_str().unwrap()),
        Some(json!({"action": "refuse"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "an answered offer: {v}");
    let (_, q, _) = call("GET", "/api/v1/admission-queue".into(), None).await;
    let ids: Vec<&str> = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["elder_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.as_str(), cc.as_str()], "{q}");
    let (_, list, _) = call("GET", format!("/api/v1/orgs/{org}/offers"), None).await;
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2, "{list}");
    assert!(
        states.contains(&"accepted") && states.contains(&"refused"),
        "{list}"
    );

    // A county that does not keep places: an offer left unanswered past its days ends the
    // application.
    let (_, p, _) = call("GET", "/api/v1/admission-policy".into(), None).await;
    let (s, v, _) = call(
        "PUT",
        "/api/v1/admission-policy".into(),
        Some(json!({"region_code": "320682000000", "tiers": p["tiers"], "offer_days": 2, "refusal_keeps_place": false})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, o3, _) = call("POST", format!("/api/v1/beds/{plain}/offer"), None).await;
    assert_eq!(s, StatusCode::CREATED, "{o3}");
    assert_eq!(
        o3["application_id"], o1["application_id"],
        "低保乙 again, first now"
    );
    assert_eq!(
        o3["expires_on"],
        (today + chrono::Duration::days(1)).to_string()
    );
    // Two days on (the offer's last day moved back rather than the clock forward).
    sqlx::query("UPDATE admission_offer SET expires_on = $1 WHERE id = $2")
        .bind((today - chrono::Duration::days(1)).to_string())
        .bind(o3["id"].as_str().unwrap())
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    let (_, q, _) = call("GET", "/api/v1/admission-queue".into(), None).await;
    let ids: Vec<&str> = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["elder_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [cc.as_str()], "{q}");
    // 普通丙 is offered the bed, then withdraws: the offer goes with the application and the
    // bed is free again (nobody left to offer it to).
    let (s, o4, _) = call("POST", format!("/api/v1/beds/{plain}/offer"), None).await;
    assert_eq!(s, StatusCode::CREATED, "{o4}");
    let (s, v, _) = call(
        "POST",
        format!(
            "/api/v1/admission-applications/{}/withdraw",
            o4["application_id"].as_str().unwrap()
        ),
        Some(json!({"reason": "家属接回家照顾"})),
    )
    .await;
    assert!(s.is_success(), "{v}");
    let (_, list, _) = call("GET", format!("/api/v1/orgs/{org}/offers"), None).await;
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["state"] == "open"),
        "{list}"
    );
    let (s, v, _) = call("POST", format!("/api/v1/beds/{plain}/offer"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("没有"), "{v}");
    for action in [
        "admission.offer",
        "admission.offer.refuse",
        "admission.offer.expire",
        "admission.queue.public_lookup",
    ] {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&t.state.db.pool)
            .await
            .map(|r| sqlx::Row::get(&r, 0))
            .unwrap();
        assert!(n >= 1, "no audit row for {action}");
    }
}

/// A family applies on the public page: the answer is the same whoever they name (no registry
/// oracle) and a repeat is not stored twice; the officer of the person's area sees it (masked),
/// a county office also sees those the registry does not know, another town sees neither; taken,
/// it is an application dated the day they asked and the family sees the place; refused, the
/// family reads the reason. A home's manager cannot take them. Audited.
#[tokio::test]
async fn db_families_apply_on_the_public_page_and_an_officer_takes_it_into_the_queue() {
    let t = TestApp::new("demo", 30).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("dingyan", &["officer"], "320682104000", all_scopes())
        .await;
    t.add_user("dongchen", &["officer"], "320682103000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let birth = chrono::NaiveDate::from_ymd_opt(1938, 5, 6).unwrap();
    let known = yiyang_kernel::citizen_id::compose("320682", birth, 57);
    let unknown = yiyang_kernel::citizen_id::compose("320682", birth, 58);
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elders",
            Some(&c),
            Some(
                json!({"citizen_id": known, "name": "陈桂英", "residence_region": "320682104205"}),
            ),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::CREATED, "{v}");
    let submit = |cid: &str, name: &str, phone: &str| {
        let t = &t;
        let body =
            json!({"citizen_id": cid, "name": name, "phone": phone, "note": "老伴去世，独居"});
        async move {
            t.call(
                "POST",
                "/api/v1/public/admission-requests",
                None,
                Some(body),
            )
            .await
        }
    };
    let (s, a, _) = submit(&known, "陈桂英", "13912345678").await;
    assert_eq!(s, axum::http::StatusCode::OK, "{a}");
    let (s, again, _) = submit(&known, "陈桂英", "13912345678").await;
    assert_eq!(s, axum::http::StatusCode::OK);
    let (s, b, _) = submit(&unknown, "陈桂兰", "0513-87001234").await;
    assert_eq!(s, axum::http::StatusCode::OK);
    assert_eq!(a, again);
    assert_eq!(a, b, "one answer, registered or not");
    assert_eq!(t.count("SELECT COUNT(*) FROM admission_request").await, 2);
    let bad = format!(
        "{}{}",
        &known[..17],
        if known.ends_with('0') { '1' } else { '0' }
    );
    let (s, v, _) = submit(&bad, "陈桂英", "13912345678").await;
    assert_eq!(s, axum::http::StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = submit(&known, "陈桂英", "123").await;
    assert_eq!(s, axum::http::StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Nothing in clear at rest.
    let at_rest: Vec<String> =
        sqlx::query_scalar("SELECT citizen_id_masked || phone_masked FROM admission_request")
            .fetch_all(&t.state.db.pool)
            .await
            .unwrap();
    assert!(
        at_rest
            .iter()
            .all(|r| !r.contains(&known) && !r.contains("13912345678")),
        "{at_rest:?}"
    );

    let lookup = |cid: &str, name: &str| {
        let t = &t;
        let body = json!({"citizen_id": cid, "name": name});
        async move {
            t.call("POST", "/api/v1/public/queue-place", None, Some(body))
                .await
        }
    };
    let (s, v, _) = lookup(&known, "陈桂英").await;
    assert_eq!(s, axum::http::StatusCode::NOT_FOUND, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("正在受理"), "{v}");

    let list = |who: &'static str| {
        let t = &t;
        async move {
            let c = t.login(who).await;
            let (s, v, _) = t
                .call("GET", "/api/v1/admission-requests", Some(&c), None)
                .await;
            assert_eq!(s, axum::http::StatusCode::OK, "{v}");
            v.as_array().unwrap().clone()
        }
    };
    let county = list("officer").await;
    assert_eq!(county.len(), 2, "{county:?}");
    let mine = county.iter().find(|r| r["name"] == "陈桂英").unwrap();
    assert!(
        mine["elder_id"].is_string() && mine["problem"].is_null(),
        "{mine}"
    );
    assert_eq!(mine["phone_masked"], "139****5678");
    assert!(!mine.to_string().contains(&known));
    let stranger = county.iter().find(|r| r["name"] == "陈桂兰").unwrap();
    assert!(
        stranger["problem"]
            .as_str()
            .unwrap()
            .contains("档案中没有此人"),
        "{stranger}"
    );
    let town = list("dingyan").await;
    assert_eq!(town.len(), 1, "the town sees its resident only: {town:?}");
    assert!(
        list("dongchen").await.is_empty(),
        "another town sees nothing"
    );

    let decide = |id: &str, body: Value| {
        let (t, c, id) = (&t, c.clone(), id.to_string());
        async move {
            t.call(
                "POST",
                &format!("/api/v1/admission-requests/{id}/decision"),
                Some(&c),
                Some(body),
            )
            .await
        }
    };
    let (s, v, _) = decide(
        stranger["id"].as_str().unwrap(),
        json!({"action": "accept"}),
    )
    .await;
    assert_eq!(s, axum::http::StatusCode::CONFLICT, "{v}");
    let (s, v, _) = decide(mine["id"].as_str().unwrap(), json!({"action": "accept"})).await;
    assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    let app_id = v["application_id"].as_str().unwrap().to_string();
    let (applied_at, region): (String, String) =
        sqlx::query_as("SELECT applied_at, region_code FROM admission_application WHERE id = $1")
            .bind(&app_id)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    assert_eq!(&applied_at[..10], yiyang::platform::today().to_string());
    assert_eq!(region, "320682000000", "the person's county by default");
    let (s, v, _) = lookup(&known, "陈桂英").await;
    assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    assert!(v["position"].as_u64().unwrap() >= 1, "{v}");
    let (s, v, _) = decide(
        mine["id"].as_str().unwrap(),
        json!({"action": "refuse", "reason": "重复"}),
    )
    .await;
    assert_eq!(s, axum::http::StatusCode::CONFLICT, "{v}");

    let (s, v, _) = decide(
        stranger["id"].as_str().unwrap(),
        json!({"action": "refuse"}),
    )
    .await;
    assert_eq!(s, axum::http::StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = decide(
        stranger["id"].as_str().unwrap(),
        json!({"action": "refuse", "reason": "经电话核实，老人已由子女接到外地照顾"}),
    )
    .await;
    assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    let (s, v, _) = lookup(&unknown, "陈桂兰").await;
    assert_eq!(s, axum::http::StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("子女接到外地照顾"),
        "{v}"
    );
    assert!(list("officer").await.is_empty());

    // Someone else naming the same ID keeps a request of their own: no takeover, no probe.
    let (s, _, _) = submit(&known, "陈某", "13800001111").await;
    assert_eq!(s, axum::http::StatusCode::OK);
    let (s, v, _) = lookup(&known, "陈某").await;
    assert_eq!(s, axum::http::StatusCode::NOT_FOUND, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("正在受理"), "{v}");
    let open = list("officer").await;
    assert_eq!(open.len(), 1, "{open:?}");
    // To call back: the phone, revealed with a reason, audited; not for a town beyond the ID.
    let id = open[0]["id"].as_str().unwrap().to_string();
    let reveal = |who: String| {
        let (t, id) = (&t, id.clone());
        async move {
            t.call(
                "POST",
                &format!("/api/v1/admission-requests/{id}/reveal"),
                Some(&who),
                Some(json!({"reason": "回电核实"})),
            )
            .await
        }
    };
    let (s, v, _) = reveal(c.clone()).await;
    assert_eq!(s, axum::http::StatusCode::OK, "{v}");
    assert_eq!(v["phone"], "13800001111");
    let (s, v, _) = reveal(t.login("dingyan").await).await;
    assert_eq!(s, axum::http::StatusCode::NOT_FOUND, "{v}");
    // A home's manager does not take applications.
    let (s, home, _) = t
        .call(
            "POST",
            "/api/v1/orgs",
            Some(&c),
            Some(json!({"kind": "township_home", "name": "丁堰镇敬老院", "ownership": "public", "region_code": "320682104000"})),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::CREATED, "{home}");
    t.add_user_in(
        "mgr",
        &["institution_manager"],
        "320682000000",
        all_scopes(),
        home["id"].as_str(),
    )
    .await;
    let m = t.login("mgr").await;
    let (s, v, _) = t
        .call("GET", "/api/v1/admission-requests", Some(&m), None)
        .await;
    assert_eq!(s, axum::http::StatusCode::FORBIDDEN, "{v}");
    for (action, n) in [
        ("admission.request.submit", 4),
        ("admission.request.reveal", 1),
        ("admission.request.accept", 1),
        ("admission.request.refuse", 1),
    ] {
        let got: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
        assert_eq!(got, n, "{action}");
    }
}

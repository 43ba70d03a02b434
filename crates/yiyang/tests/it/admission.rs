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

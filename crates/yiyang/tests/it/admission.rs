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

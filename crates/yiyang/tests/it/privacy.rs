//! Masked citizen IDs stay masked: nothing an account without the reveal permission can read
//! unaudited lets it rebuild an ID, and an import dry run does not tell who is registered outside
//! the importer's scope.

use crate::support::*;
use axum::http::StatusCode;
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

const COUNTY: &str = "320682000000";
const TOWN_A: &str = "320682001000";

/// What an account learnt about one person across every response it read.
#[derive(Default, Debug)]
struct Seen {
    masked: Option<String>,
    ages: HashSet<i64>,
    dates: HashSet<String>,
}

/// Collects, per elder id, the masked ID, ages and every date-looking value of the objects that
/// carry an elder id.
fn collect(v: &Value, out: &mut HashMap<String, Seen>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        Value::Object(o) => {
            let id = o
                .get("elder_id")
                .or_else(|| o.contains_key("citizen_id_masked").then(|| &o["id"]))
                .and_then(Value::as_str);
            if let Some(id) = id {
                let s = out.entry(id.to_string()).or_default();
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("citizen_id_masked", Value::String(m)) => s.masked = Some(m.clone()),
                        ("age", Value::Number(n)) => {
                            s.ages.insert(n.as_i64().unwrap_or(-1));
                        }
                        (_, Value::String(t)) => {
                            let digits: String = t.chars().filter(char::is_ascii_digit).collect();
                            if digits.len() == 8 && t.len() <= 10 {
                                s.dates.insert(digits);
                            }
                        }
                        _ => {}
                    }
                }
            }
            o.values().for_each(|x| collect(x, out));
        }
        _ => {}
    }
}

/// The valid citizen IDs that fit what was seen, or the one rebuilt if a seen date completes it.
fn fitting(s: &Seen, today: NaiveDate) -> (usize, Option<String>) {
    let m = s.masked.as_deref().expect("a masked id");
    let (head, tail) = (&m[..6], &m[m.len() - 4..]);
    let seq: u32 = tail[..3].parse().unwrap();
    let mut n = 0;
    let mut d = NaiveDate::from_ymd_opt(today.year() - 125, 1, 1).unwrap();
    while d <= today {
        let age = yiyang_kernel::citizen_id::age_on(d, today) as i64;
        if s.ages.is_empty() || s.ages.contains(&age) {
            let id = yiyang_kernel::citizen_id::compose(head, d, seq);
            if id.ends_with(tail) {
                n += 1;
                if s.dates.contains(&d.format("%Y%m%d").to_string()) {
                    return (1, Some(id));
                }
            }
        }
        d = d.succ_opt().unwrap();
    }
    (n, None)
}

#[test]
fn the_rebuild_check_finds_a_birth_date_beside_a_masked_id() {
    // The check itself must be able to fail: a row as search results used to carry.
    let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    let born = NaiveDate::from_ymd_opt(1941, 2, 3).unwrap();
    let id = yiyang_kernel::citizen_id::compose("320682", born, 123);
    let row = json!({"id": "e1", "age": 85, "birth_date": "1941-02-03",
        "citizen_id_masked": yiyang_kernel::mask::citizen_id(&id)});
    let mut seen = HashMap::new();
    collect(&json!({"items": [row]}), &mut seen);
    assert_eq!(fitting(&seen["e1"], today), (1, Some(id.clone())));
    // Without it, the age leaves a year of birth dates, of which about one in eleven fits.
    let row =
        json!({"id": "e1", "age": 85, "citizen_id_masked": yiyang_kernel::mask::citizen_id(&id)});
    let mut seen = HashMap::new();
    collect(&row, &mut seen);
    let (n, rebuilt) = fitting(&seen["e1"], today);
    assert!(rebuilt.is_none() && n >= 10, "{n}");
}

#[tokio::test]
async fn db_no_unaudited_response_rebuilds_a_masked_id() {
    let t = TestApp::new("demo", 300).await;
    t.add_user("worker", &["worker"], COUNTY, all_scopes())
        .await;
    t.add_user("assessor", &["assessor"], COUNTY, all_scopes())
        .await;
    let today = yiyang::platform::today();
    for user in ["worker", "assessor"] {
        let c = t.login(user).await;
        let audit_before = t.count("SELECT COUNT(*) FROM audit_log").await;
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let mut read = |v: &Value| collect(v, &mut seen);
        // Every list such an account can page through without an audited read of one person.
        for page in 1..=4 {
            for sort in ["region", "birth_date", "-birth_date", "name"] {
                let (s, v, _) = t
                    .call(
                        "POST",
                        "/api/v1/elders/search",
                        Some(&c),
                        Some(json!({"page": page, "page_size": 100, "sort": sort})),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{v}");
                read(&v);
            }
        }
        for q in ["", "&status=missing", "&age_min=60"] {
            let (s, v, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/assessments/due?page_size=200{q}"),
                    Some(&c),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            read(&v);
        }
        // Exports and reveals are not theirs.
        for (m, uri, body) in [
            ("GET", "/api/v1/assessments/due/export", None),
            ("POST", "/api/v1/elders/export", Some(json!({"filter": {}}))),
        ] {
            let (s, _, _) = t.call(m, uri, Some(&c), body).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{user} {uri}");
        }
        let (mut worst, mut checked) = (usize::MAX, 0);
        for (id, s) in &seen {
            if s.masked.is_none() {
                continue;
            }
            let (n, rebuilt) = fitting(s, today);
            assert!(rebuilt.is_none(), "{user} rebuilt {id}'s ID from {s:?}");
            worst = worst.min(n);
            checked += 1;
        }
        assert!(checked >= 250, "{user} saw {checked} people");
        assert!(worst >= 10, "{user}: only {worst} IDs fit one person");
        eprintln!("{user}: {checked} people seen, at least {worst} valid IDs fit each");
        // The lists read were on record (the due list, one row a request).
        assert!(t.count("SELECT COUNT(*) FROM audit_log").await >= audit_before + 3);
    }
}

#[tokio::test]
async fn db_import_dry_run_does_not_tell_who_is_registered_elsewhere() {
    let t = TestApp::new("demo", 200).await;
    t.add_user("town", &["officer"], TOWN_A, all_scopes()).await;
    let c = t.login("town").await;
    let villages = yiyang::demo::village_codes();
    let people = yiyang::demo::generate(200, &villages, 42, yiyang::platform::today());
    let elsewhere = people
        .iter()
        .find(|p| !p.residence_region.starts_with(&TOWN_A[..9]))
        .expect("someone outside town A");
    let unknown = yiyang_kernel::citizen_id::compose(
        "320682",
        NaiveDate::from_ymd_opt(1941, 2, 3).unwrap(),
        998,
    );
    let file = |cid: &str| {
        format!("身份证号,姓名,性别,居住地区划代码\n{cid},王秀英,,320682001001\n").into_bytes()
    };
    let dry_known = t
        .import_file(
            "/api/v1/imports/registry",
            &c,
            "a.csv",
            &file(elsewhere.citizen_id.as_str()),
            true,
        )
        .await;
    let dry_unknown = t
        .import_file(
            "/api/v1/imports/registry",
            &c,
            "a.csv",
            &file(&unknown),
            true,
        )
        .await;
    for k in [
        "state",
        "total",
        "accepted",
        "rejected",
        "inserted",
        "updated",
        "unchanged",
    ] {
        assert_eq!(
            dry_known[k], dry_unknown[k],
            "{k}: {dry_known} vs {dry_unknown}"
        );
    }
    assert_eq!(dry_known["inserted"], 1, "{dry_known}");
    // The probe is on record, without the ID.
    let probes = t
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'import.outside_scope'")
        .await;
    assert_eq!(probes, 1);
    // A real run cannot register the person twice; it refuses the row and says so in the audit.
    let real = t
        .import_file(
            "/api/v1/imports/registry",
            &c,
            "a.csv",
            &file(elsewhere.citizen_id.as_str()),
            false,
        )
        .await;
    assert_eq!(
        (real["accepted"].as_i64(), real["rejected"].as_i64()),
        (Some(0), Some(1)),
        "{real}"
    );
    let reason = real["errors"][0]["reason"].as_str().unwrap();
    assert!(!reason.contains("范围以外"), "{reason}");
}

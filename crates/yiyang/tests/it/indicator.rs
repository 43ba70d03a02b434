use crate::support::*;
use axum::http::StatusCode;
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::BTreeMap;
use yiyang::audit::Who;
use yiyang::identity::Scopes;
use yiyang::indicator::{query, rollup};
use yiyang::platform::crypto::KeyRing;
use yiyang::platform::db::Db;

const COUNTY: &str = "320682000000";
const TOWN: &str = "320682001000";
const OTHER_TOWN: &str = "320682103000";

fn who() -> Who {
    Who {
        actor_id: None,
        actor_name: "test".into(),
    }
}

/// The scripted county used by every test here: generated elders, a share of the 80+ assessed
/// (some expired, some adopted LTC ratings, some legacy), the demo catalogue run once (so the
/// longevity allowance is held), and some deaths and move-outs on fixed dates.
async fn script(db: &Db, keys: &KeyRing, n: usize) {
    db.use_keys(keys);
    let today = yiyang::platform::today();
    let villages = yiyang::demo::ensure_regions(db).await.unwrap();
    let elders = yiyang::demo::generate(n, &villages, 777, today);
    yiyang::demo::insert_elders(db, keys, &elders, "测试")
        .await
        .unwrap();
    let (headers, rows) = yiyang::demo::assessment_rows(&elders, 0.5, 0, 4242, today);
    let regions = yiyang::region::RegionIndex::load(db).await.unwrap();
    let scope = yiyang::identity::Scope::all();
    let w = who();
    let ctx = yiyang::registry::import::Ctx {
        db,
        keys,
        regions: &regions,
        scope: &scope,
        who: &w,
        progress: Default::default(),
    };
    let approx_rows = rows.len();
    let table = yiyang::registry::import::Table {
        headers,
        rows: Box::new(rows.into_iter().map(csv::StringRecord::from)),
        approx_rows,
        again: None,
        layout: Default::default(),
    };
    yiyang::assessment::import::run(&ctx, table, false, "test", "-")
        .await
        .unwrap();
    yiyang::catalog::store::seed_demo(db, COUNTY, &w)
        .await
        .unwrap();
    let names = |c: &str| c.to_string();
    yiyang::catalog::evaluate::run(db, &scope, &w, COUNTY, today, &names)
        .await
        .unwrap();
    // Deaths and move-outs on fixed dates, in a stable order (by birth date, then id is random:
    // pick by citizen-ID blind index, which is the same for the same keys).
    let ids: Vec<String> = sqlx::query("SELECT id FROM elder ORDER BY citizen_id_bidx")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    for (i, id) in ids.iter().enumerate().take(n / 10) {
        let (status, col, date) = match i % 3 {
            0 => ("deceased", "death_date", "2025-06-30"),
            1 => ("deceased", "death_date", "2026-02-01"),
            _ => ("moved_out", "moved_out_date", "2025-12-31"),
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE elder SET status = $1, {col} = $2 WHERE id = $3"
        )))
        .bind(status)
        .bind(date)
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    }
}

/// Whole years from `b` to `on`, written independently of the kernel.
fn years(b: NaiveDate, on: NaiveDate) -> i32 {
    let mut y = on.year() - b.year();
    if (on.month(), on.day()) < (b.month(), b.day()) {
        y -= 1;
    }
    y
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").unwrap()
}

/// (80+ alive and resident, of them with a valid assessment, of them holding 高龄津贴) on `day`
/// under `prefix`, counted straight from the raw rows without the rollup code.
async fn direct(db: &Db, prefix: &str, day: NaiveDate) -> (f64, f64, f64) {
    let rows = sqlx::query(
        "SELECT e.id, e.birth_date, e.death_date, e.moved_out_date, e.status FROM elder e WHERE e.residence_region LIKE $1",
    )
    .bind(format!("{prefix}%"))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let assessed: Vec<(String, String, String)> = sqlx::query(
        "SELECT elder_id, assessed_on, valid_until FROM assessment a WHERE standard <> 'MZ/T 039-2013' \
         AND id NOT IN (SELECT corrects FROM assessment WHERE corrects IS NOT NULL)",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    unpack(db).await;
    let held: Vec<(String, String, Option<String>)> = sqlx::query(
        "SELECT elder_id, since, ended_on FROM entitlement_all WHERE item_code = 'longevity_allowance' AND state = 'granted'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    let (mut den, mut num, mut lon) = (0.0, 0.0, 0.0);
    for r in rows {
        let id: String = r.get(0);
        let birth = d(&r.get::<String, _>(1));
        let dead = r
            .get::<Option<String>, _>(2)
            .map(|s| d(&s) <= day)
            .unwrap_or(false);
        let gone = r
            .get::<Option<String>, _>(3)
            .map(|s| d(&s) <= day)
            .unwrap_or(false);
        if dead || gone || years(birth, day) < 80 {
            continue;
        }
        den += 1.0;
        if assessed
            .iter()
            .any(|(e, a, u)| *e == id && d(a) <= day && day <= d(u))
        {
            num += 1.0;
        }
        if held
            .iter()
            .any(|(e, s, x)| *e == id && d(s) <= day && x.as_ref().is_none_or(|x| d(x) > day))
        {
            lon += 1.0;
        }
    }
    (den, num, lon)
}

#[tokio::test]
async fn db_indicator_values_match_direct_counts() {
    let t = TestApp::new("demo", 0).await;
    let db = &t.state.db;
    script(db, &t.state.keys, 2500).await;
    let today = yiyang::platform::today();
    let r = rollup::refresh(db, today, true).await.unwrap();
    assert_eq!(r.mode, "full");
    assert_eq!(r.elders, 2500);
    let last_year = today.year() - 1;
    let periods = [
        format!("{last_year}"),
        format!("{last_year}-06"),
        format!("{}", today.year()),
        format!("{}-01", today.year()),
    ];
    for region in [COUNTY, TOWN, "320682001001"] {
        let prefix = region.trim_end_matches('0');
        for p in &periods {
            let period = yiyang_kernel::indicator::Period::parse(p).unwrap();
            let day = period.snapshot_day(today).unwrap();
            let (den, num, lon) = direct(db, prefix, day).await;
            let v = query::value(db, "assessment_coverage_80", region, p, today)
                .await
                .unwrap();
            assert_eq!(v.denominator, Some(den), "{region} {p}");
            assert_eq!(v.numerator, Some(num), "{region} {p}");
            if den > 0.0 {
                let want = (num * 100.0 / den * 10000.0).round() / 10000.0;
                assert_eq!(v.value, Some(want), "{region} {p}");
            }
            let v = query::value(db, "longevity_allowance_coverage", region, p, today)
                .await
                .unwrap();
            assert_eq!(v.numerator, Some(lon), "{region} {p}");
        }
    }
    // The scripted data is not trivial: people died, moved, were assessed and granted.
    let (den, num, lon) = direct(db, "320682", today).await;
    assert!(
        den > 100.0 && num > 10.0 && num < den && lon > 10.0,
        "{den} {num} {lon}"
    );
}

async fn pick(db: &Db, town: &str, k: usize) -> String {
    sqlx::query("SELECT id FROM elder WHERE residence_region BETWEEN $1 AND $2 AND status = 'active' ORDER BY id")
        .bind(town)
        .bind(format!("{}999", &town[..9]))
        .fetch_all(&db.pool)
        .await
        .unwrap()[k]
        .get::<String, _>(0)
}

async fn rollup_rows(db: &Db) -> BTreeMap<(String, String), BTreeMap<String, i64>> {
    sqlx::query("SELECT region_code, period, measures FROM indicator_rollup")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let m: BTreeMap<String, i64> = serde_json::from_str(&r.get::<String, _>(2)).unwrap();
            // Zero rows and missing rows mean the same.
            let m = m.into_iter().filter(|(_, v)| *v != 0).collect();
            ((r.get(0), r.get(1)), m)
        })
        .filter(|(_, m): &(_, BTreeMap<String, i64>)| !m.is_empty())
        .collect()
}

/// Changes through the API (a death, a move to another town, a move-out, an adopted rating, an
/// approval) are picked up by the incremental refresh, and the result equals a full rebuild.
#[tokio::test]
async fn db_incremental_refresh_equals_full_rebuild() {
    let t = TestApp::new("demo", 0).await;
    let db = &t.state.db;
    script(db, &t.state.keys, 1500).await;
    let today = yiyang::platform::today();
    rollup::refresh(db, today, true).await.unwrap();
    let none = rollup::refresh(db, today, false).await.unwrap();
    assert_eq!(none.mode, "none", "{none:?}");
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    let c = t.login("of").await;
    let a = pick(db, TOWN, 0).await;
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{a}/death"),
            Some(&c),
            Some(json!({"death_date": today.to_string()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Moves from town 1 to town 2: town 1 only notices by its row count.
    let b = pick(db, TOWN, 1).await;
    let (s, v, _) = t
        .call(
            "PATCH",
            &format!("/api/v1/elders/{b}"),
            Some(&c),
            Some(json!({"residence_region": "320682103001"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let m = pick(db, "320682104000", 0).await;
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{m}/move-out"),
            Some(&c),
            Some(json!({"date": today.to_string()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let old: String = sqlx::query("SELECT e.id FROM elder e WHERE e.status = 'active' AND e.birth_date < '1946-01-01' \
         AND e.residence_region LIKE '320682105%' AND NOT EXISTS (SELECT 1 FROM elder_ability a WHERE a.elder_id = e.id) ORDER BY e.id")
        .fetch_all(&db.pool)
        .await
        .unwrap()[0]
        .get(0);
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{old}/assessments/adopt"),
            Some(&c),
            Some(json!({"source": "如皋市医疗保障局", "rated_on": today.to_string(), "source_level": "重度失能二级", "level": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // An approval: held from today (no registry change: marked dirty by the catalogue).
    let (s, list, _) = t
        .call(
            "GET",
            &format!("/api/v1/entitlements?region_code={COUNTY}&state=proposed"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    if let Some(e) = list["items"].as_array().and_then(|a| a.first()) {
        let (s, v, _) = t
            .call(
                "POST",
                &format!(
                    "/api/v1/entitlements/{}/decision",
                    e["id"].as_str().unwrap()
                ),
                Some(&c),
                Some(json!({"approve": true, "note": "同意"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let inc = rollup::refresh(db, today, false).await.unwrap();
    assert_eq!(inc.mode, "incremental", "{inc:?}");
    assert!(inc.towns >= 4 && inc.towns < 21, "{inc:?}");
    let after_inc = rollup_rows(db).await;
    rollup::refresh(db, today, true).await.unwrap();
    let after_full = rollup_rows(db).await;
    assert_eq!(after_inc.len(), after_full.len());
    for (k, v) in &after_full {
        assert_eq!(after_inc.get(k), Some(v), "{k:?}");
    }
    // The death shows on the dashboard of the county (incremental lag: one refresh).
    let (s, dash, _) = t
        .call(
            "GET",
            &format!(
                "/api/v1/indicators/dashboard?region_code={COUNTY}&year={}",
                today.year()
            ),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{dash}");
    let e60 = dash["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "elders_60")
        .unwrap();
    let alive = sqlx::query("SELECT birth_date FROM elder WHERE status = 'active'")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .filter(|r| years(d(&r.get::<String, _>(0)), today) >= 60)
        .count() as i64;
    assert_eq!(e60["value"].as_f64().unwrap() as i64, alive);
}

/// The same scripted data on SQLite and on PostgreSQL gives identical rollups and dashboards.
/// Runs when TEST_DATABASE_URL is set (CI's PostgreSQL pass); on a SQLite-only run it says so.
#[tokio::test]
async fn db_indicator_differential_sqlite_postgres() {
    let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!(
            "differential test needs TEST_DATABASE_URL (PostgreSQL); runs in CI's PostgreSQL pass"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = Db::connect(dir.path().join("d.db").to_str().unwrap(), 4)
        .await
        .unwrap();
    let admin = Db::connect(&base, 1).await.unwrap();
    let name = format!("yiyang_t_{}", uuid::Uuid::now_v7().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin.pool)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let pg = Db::connect(&format!("{prefix}/{name}"), 4).await.unwrap();
    let today = yiyang::platform::today();
    let keys = KeyRing::from_bytes([7; 32], [9; 32]);
    let mut dashboards = vec![];
    let mut tables = vec![];
    for db in [&lite, &pg] {
        yiyang::platform::migrations::migrate(db).await.unwrap();
        script(db, &keys, 1200).await;
        yiyang::indicator::targets::seed_demo(db, COUNTY, "320600000000")
            .await
            .unwrap();
        rollup::refresh(db, today, true).await.unwrap();
        tables.push(rollup_rows(db).await);
        let regions = yiyang::region::RegionIndex::load(db).await.unwrap();
        let mut all = vec![];
        for (code, year) in [
            (COUNTY, 2025),
            (COUNTY, today.year()),
            ("320600000000", 2021),
            (TOWN, 2025),
        ] {
            let mut v = serde_json::to_value(
                query::dashboard(db, &regions, code, year, today, true)
                    .await
                    .unwrap(),
            )
            .unwrap();
            v["as_of"] = Value::Null;
            // Local indicator ids are minted per database; compare by name.
            for i in v["indicators"].as_array_mut().unwrap() {
                if i["builtin"] == false {
                    i["id"] = Value::Null;
                }
            }
            all.push(v);
        }
        dashboards.push(all);
    }
    assert!(tables[0].len() > 100);
    assert_eq!(tables[0], tables[1]);
    for (a, b) in dashboards[0].iter().zip(&dashboards[1]) {
        let (ia, ib) = (
            a["indicators"].as_array().unwrap(),
            b["indicators"].as_array().unwrap(),
        );
        assert_eq!(ia.len(), ib.len());
        for (x, y) in ia.iter().zip(ib) {
            assert_eq!(x, y, "{} {}", a["region_code"], x["name"]);
        }
        assert_eq!(a, b);
    }
}

async fn set_up_api() -> (TestApp, String) {
    let t = TestApp::new("demo", 0).await;
    script(&t.state.db, &t.state.keys, 1200).await;
    yiyang::indicator::targets::seed_demo(&t.state.db, COUNTY, "320600000000")
        .await
        .unwrap();
    rollup::refresh(&t.state.db, yiyang::platform::today(), true)
        .await
        .unwrap();
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    let c = t.login("of").await;
    (t, c)
}

#[tokio::test]
async fn db_dashboard_targets_entries_and_gap() {
    let (t, c) = set_up_api().await;
    let today = yiyang::platform::today();
    let (s, dash, _) = t
        .call(
            "GET",
            &format!("/api/v1/indicators/dashboard?region_code={COUNTY}&year=2025"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{dash}");
    let inds = dash["indicators"].as_array().unwrap();
    let cov = inds
        .iter()
        .find(|i| i["id"] == "assessment_coverage_80")
        .unwrap();
    assert_eq!(cov["target"], 100.0);
    assert_eq!(cov["class"], "binding");
    assert_eq!(cov["status"], "missed", "{cov}");
    assert_eq!(cov["children"].as_array().unwrap().len(), 21);
    assert_eq!(cov["trend"].as_array().unwrap().len(), 12);
    assert!(cov["target_from"].is_null(), "the county's own target");
    // A town with no target of its own is held to the county's, and says so; the same target
    // the county's view measures it against.
    let town_in_county = cov["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == TOWN)
        .unwrap()
        .clone();
    let (s, town_dash, _) = t
        .call(
            "GET",
            &format!("/api/v1/indicators/dashboard?region_code={TOWN}&year=2025"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{town_dash}");
    let town_cov = town_dash["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "assessment_coverage_80")
        .unwrap();
    assert_eq!(town_cov["target"], 100.0);
    assert_eq!(town_cov["target"], town_in_county["target"]);
    assert_eq!(town_cov["status"], town_in_county["status"]);
    assert!(
        town_cov["target_from"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{town_cov}"
    );
    // A year with no targets yet keeps the latest earlier year's, and says which.
    let (s, next, _) = t
        .call(
            "GET",
            &format!("/api/v1/indicators/dashboard?region_code={COUNTY}&year=2026"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{next}");
    let next_cov = next["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "assessment_coverage_80")
        .unwrap();
    assert_eq!(next_cov["target"], 100.0);
    assert_eq!(next_cov["target_from"], "2025年");
    // Every 如皋 2025 row is on the dashboard, binding ones first.
    assert!(inds.iter().filter(|i| i["target"].is_number()).count() >= 19);
    assert_eq!(inds[0]["class"], "binding");
    // Counted from the care visits now; in a county with no visit duties, nothing to show.
    let visits = inds
        .iter()
        .find(|i| i["id"] == "monthly_visit_rate")
        .unwrap();
    assert_eq!(visits["source"], "records");
    assert_eq!(visits["status"], "no_data", "{visits}");
    // Counted from the home-care records now.
    let served = inds
        .iter()
        .find(|i| i["id"] == "home_service_share")
        .unwrap();
    assert_eq!(served["source"], "records");

    // The gap list has exactly denominator − numerator people, by town, all in the gap.
    let gap_n = cov["denominator"].as_f64().unwrap() - cov["numerator"].as_f64().unwrap();
    let (s, g, _) = t
        .call("GET", &format!("/api/v1/indicators/assessment_coverage_80/people?region_code={COUNTY}&period=2025&page_size=10"), Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["total"].as_f64().unwrap(), gap_n);
    let by_town: u64 = g["by_town"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["count"].as_u64().unwrap())
        .sum();
    assert_eq!(by_town as f64, gap_n);
    assert_eq!(g["people"].as_array().unwrap().len(), 10);
    for p in g["people"].as_array().unwrap() {
        assert!(p["age"].as_i64().unwrap() >= 80, "{p}");
        assert!(
            p["citizen_id_masked"].as_str().unwrap().contains("****"),
            "{p}"
        );
    }
    let (s, bytes, h) = t
        .raw(
            axum::http::Request::get(format!("/api/v1/indicators/assessment_coverage_80/people.xlsx?region_code={COUNTY}&period=2025"))
                .header("cookie", &c)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .contains("spreadsheetml")
    );
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    use calamine::Reader;
    let sheet = wb.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(sheet.height() as f64, gap_n + 2.0);
    // A count's list holds exactly the people it counts.
    let e60 = inds.iter().find(|i| i["id"] == "elders_60").unwrap();
    let (s, g, _) = t
        .call(
            "GET",
            &format!(
                "/api/v1/indicators/elders_60/people?region_code={TOWN}&period=2025&page_size=5"
            ),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["part"], "counted");
    let town_60 = e60["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["code"] == TOWN)
        .unwrap();
    assert_eq!(g["total"].as_f64(), town_60["value"].as_f64());
    // The dashboard's table as XLSX: one row per indicator, and the towns of each computed one.
    let (s, bytes, _) = t
        .raw(
            axum::http::Request::get(format!(
                "/api/v1/indicators/dashboard.xlsx?region_code={COUNTY}&year=2025"
            ))
            .header("cookie", &c)
            .body(axum::body::Body::empty())
            .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let main = wb.worksheet_range("指标").unwrap();
    assert_eq!(main.height(), inds.len() + 2);
    assert!(
        main.rows()
            .any(|r| r[0] == "80周岁以上老年人能力综合评估覆盖率" && r[8] == "未达标")
    );
    let kids = wb.worksheet_range("下级").unwrap();
    assert!(kids.height() > 14);
    let audits: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action IN ('indicator.people.view', 'indicator.people.export')")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    // Two views (the gap, the count's list) and one export, each audited.
    assert_eq!(audits, 3);

    // A town worker sees only their town: another town's list is refused, their own is allowed.
    t.add_user("wk", &["worker"], TOWN, all_scopes()).await;
    let w = t.login("wk").await;
    let (s, _, _) = t
        .call(
            "GET",
            &format!("/api/v1/indicators/dashboard?region_code={OTHER_TOWN}&year=2025"),
            Some(&w),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = t
        .call(
            "GET",
            &format!(
                "/api/v1/indicators/assessment_coverage_80/people?region_code={COUNTY}&period=2025"
            ),
            Some(&w),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, g2, _) = t
        .call(
            "GET",
            &format!(
                "/api/v1/indicators/assessment_coverage_80/people?region_code={TOWN}&period=2025"
            ),
            Some(&w),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g2}");
    // Someone with aggregates only sees numbers, never the list.
    t.add_user(
        "agg",
        &["officer"],
        COUNTY,
        Scopes {
            edit: false,
            aggregates: true,
            individuals: false,
        },
    )
    .await;
    let a = t.login("agg").await;
    let (s, _, _) = t
        .call(
            "GET",
            &format!("/api/v1/indicators/dashboard?region_code={COUNTY}&year=2025"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = t
        .call(
            "GET",
            &format!(
                "/api/v1/indicators/assessment_coverage_80/people?region_code={COUNTY}&period=2025"
            ),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Bad input: clear 4xx with a Chinese message.
    for (uri, msg) in [
        (
            format!(
                "/api/v1/indicators/value?id=assessment_coverage_80&region_code={COUNTY}&period=2025-13"
            ),
            "格式不正确",
        ),
        (
            format!("/api/v1/indicators/value?id=nope&region_code={COUNTY}&period=2025"),
            "不存在",
        ),
        (
            format!(
                "/api/v1/indicators/value?id=assessment_coverage_80&region_code={COUNTY}&period={}",
                today.year() + 1
            ),
            "尚未开始",
        ),
        (
            format!(
                "/api/v1/indicators/home_service_share/people?region_code={COUNTY}&period=2025"
            ),
            "没有可下钻",
        ),
    ] {
        let (s, v, _) = t.call("GET", &uri, Some(&c), None).await;
        assert!(s.is_client_error(), "{uri}: {s} {v}");
        assert!(v["detail"].as_str().unwrap().contains(msg), "{uri}: {v}");
    }

    // A milestone entered by hand: evidence required, audited, shown with its evidence.
    let city_target = "facility_plan_compiled";
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/indicators/{city_target}/entries"),
            Some(&c),
            Some(json!({"region_code": COUNTY, "period": "2025", "value": 1, "evidence": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = t
        .call("POST", &format!("/api/v1/indicators/{city_target}/entries"), Some(&c), Some(json!({"region_code": COUNTY, "period": "2025", "value": 2, "evidence": "如民发〔2025〕12号"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/indicators/assessment_coverage_80/entries",
            Some(&c),
            Some(json!({"region_code": COUNTY, "period": "2025", "value": 99, "evidence": "手填"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "computed indicators are not entered by hand: {v}"
    );
    let (s, v, _) = t
        .call("POST", &format!("/api/v1/indicators/{city_target}/entries"), Some(&c), Some(json!({"region_code": COUNTY, "period": "2025", "value": 1, "evidence": "如民发〔2025〕12号"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = t
        .call("PUT", "/api/v1/indicators/targets", Some(&c), Some(json!({"region_code": COUNTY, "year": 2025, "indicator_id": city_target, "class": "binding", "direction": "ge", "value": 1})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, dash, _) = t
        .call(
            "GET",
            &format!("/api/v1/indicators/dashboard?region_code={COUNTY}&year=2025"),
            Some(&c),
            None,
        )
        .await;
    let m = dash["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == city_target)
        .unwrap();
    assert_eq!(m["value"], 1.0);
    assert_eq!(m["status"], "met");
    assert_eq!(m["entry"]["evidence"], "如民发〔2025〕12号");
    let audits: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action IN ('indicator.entry', 'indicator.target.set')")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(audits, 2);
}

#[tokio::test]
async fn db_target_sheet_import() {
    let (t, c) = set_up_api().await;
    let before: i64 = t.count("SELECT COUNT(*) FROM indicator_target").await;
    let sheet = "序号,指标,2026,2027,属性\n1,80周岁及以上老年人能力评估覆盖率,90%,100%,约束性\n2,每千名老年人拥有养老床位,≥40,≥42,预期性\n3,不存在的指标,1,2,预期性\n4,等级养老机构占比,120%,80%,预期性\n5,居家适老化改造户数,很多,1000,\n";
    let up = |dry: bool, create: bool| {
        vec![
            ("file", Some("targets.csv"), sheet.as_bytes().to_vec()),
            ("region_code", None, COUNTY.as_bytes().to_vec()),
            ("dry_run", None, dry.to_string().into_bytes()),
            ("create_missing", None, create.to_string().into_bytes()),
        ]
    };
    let (s, r) = t
        .multipart_fields("/api/v1/indicators/targets/import", &c, up(false, false))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Any refused row: nothing written, every row listed with its reasons.
    assert_eq!(r["written"], 0);
    assert_eq!(r["rejected"], 3, "{r}");
    let rows = r["rows"].as_array().unwrap();
    assert!(
        rows[2]["errors"][0]
            .as_str()
            .unwrap()
            .contains("系统中没有指标"),
        "{r}"
    );
    assert!(
        rows[3]["errors"][0]
            .as_str()
            .unwrap()
            .contains("不能超过 100%"),
        "{r}"
    );
    assert!(
        rows[4]["errors"][0].as_str().unwrap().contains("不是数字"),
        "{r}"
    );
    assert_eq!(rows[1]["targets"][0]["value"], 40.0);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM indicator_target").await,
        before
    );
    let good = "序号,指标,2026,2027,属性\n1,80周岁及以上老年人能力评估覆盖率,90%,100%,约束性\n2,本县自定指标,5,6,预期性\n";
    let up2 = |dry: bool| {
        vec![
            ("file", Some("targets.csv"), good.as_bytes().to_vec()),
            ("region_code", None, COUNTY.as_bytes().to_vec()),
            ("dry_run", None, dry.to_string().into_bytes()),
            ("create_missing", None, b"true".to_vec()),
        ]
    };
    let (s, r) = t
        .multipart_fields("/api/v1/indicators/targets/import", &c, up2(true))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (r["accepted"].as_u64(), r["written"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(r["rows"][1]["new_indicator"], true);
    let (s, r) = t
        .multipart_fields("/api/v1/indicators/targets/import", &c, up2(false))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (r["written"].as_u64(), r["created_indicators"].as_u64()),
        (Some(4), Some(1))
    );
    // Importing again replaces, never duplicates.
    let (_, r) = t
        .multipart_fields("/api/v1/indicators/targets/import", &c, up2(false))
        .await;
    assert_eq!(r["written"], 4);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM indicator_target").await,
        before + 4
    );
    let v = query::value(
        &t.state.db,
        "assessment_coverage_80",
        COUNTY,
        "2027",
        yiyang::platform::today(),
    )
    .await;
    assert!(v.is_err() || v.unwrap().target == Some(100.0));
    // The same as an Excel sheet (the plans' tables usually come as .xlsx), 2028 this time.
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (r, row) in [
        ["序号", "指标", "2028年", "属性"],
        ["1", "80周岁以上老年人能力综合评估覆盖率", "100%", "约束性"],
    ]
    .iter()
    .enumerate()
    {
        for (c, v) in row.iter().enumerate() {
            ws.write(r as u32, c as u16, *v).unwrap();
        }
    }
    let xlsx = wb.save_to_buffer().unwrap();
    let (s, r) = t
        .multipart_fields(
            "/api/v1/indicators/targets/import",
            &c,
            vec![
                ("file", Some("plan.xlsx"), xlsx),
                ("region_code", None, COUNTY.as_bytes().to_vec()),
                ("dry_run", None, b"false".to_vec()),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["written"], 1, "{r}");
    assert_eq!(r["rows"][0]["targets"][0]["year"], 2028);
    assert_eq!(r["rows"][0]["targets"][0]["class"], "binding");
    // Outside the caller's scope: refused.
    t.add_user("wk", &["officer"], TOWN, all_scopes()).await;
    let w = t.login("wk").await;
    let (s, r) = t
        .multipart_fields("/api/v1/indicators/targets/import", &w, up2(true))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{r}");
}

/// The home-care indicators counted from the records: visits per elder served, meals served,
/// the satisfaction of rated visits and caregivers per 100 elders served, for a village, its
/// town and the county, a month and the year; and the elders behind visits and meals.
#[tokio::test]
async fn db_home_care_indicators_from_visits_ratings_and_meals() {
    let t = TestApp::new("demo", 60).await;
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    let c = t.login("of").await;
    let db = &t.state.db;
    let today = yiyang::platform::today();
    let ly = today.year() - 1;
    let (village, town, elsewhere) = ("320682104205", "320682104000", "320682103001");
    let org = |kind: &'static str, region: &'static str| {
        let (t, c) = (&t, c.clone());
        async move {
            let (s, v, _) = t
                .call(
                    "POST",
                    "/api/v1/orgs",
                    Some(&c),
                    Some(json!({"kind": kind, "name": format!("测试{kind}{region}"), "ownership": "private",
                        "region_code": region})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_string()
        }
    };
    let staff = |org: String, role: &'static str, hired: String| {
        let (t, c) = (&t, c.clone());
        async move {
            let (s, v, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/orgs/{org}/staff"),
                    Some(&c),
                    Some(json!({"name": "李护理", "role": role, "hired_on": hired})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_string()
        }
    };
    // Caregivers in post at the end of March: one of the town's provider (another left mid-March,
    // a nurse is no caregiver), one of the village's station (hired in March). A closed
    // provider's and a care home's caregivers do not count.
    let provider = org("provider", town).await;
    let station = org("station", village).await;
    let closed = org("provider", town).await;
    let home = org("institution", town).await;
    let point = org("meal_point", village).await;
    staff(provider.clone(), "caregiver", "2015-01-01".into()).await;
    let left = staff(provider.clone(), "caregiver", "2015-01-01".into()).await;
    staff(provider.clone(), "nurse", "2015-01-01".into()).await;
    staff(station.clone(), "caregiver", format!("{ly}-03-10")).await;
    staff(closed.clone(), "caregiver", "2015-01-01".into()).await;
    staff(home.clone(), "caregiver", "2015-01-01".into()).await;
    sqlx::query("UPDATE staff SET left_on = $1 WHERE id = $2")
        .bind(format!("{ly}-03-15"))
        .bind(&left)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE organisation SET status = 'closed' WHERE id = $1")
        .bind(&closed)
        .execute(&db.pool)
        .await
        .unwrap();

    // Five registered elders of 60+: A, B, C and E live in the village, D in another town; E
    // dies later in the year (no longer registered: her visit is not counted, her meal is).
    let born = format!("{}-01-01", today.year() - 62);
    let ids: Vec<String> = sqlx::query(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL AND birth_date <= $1 ORDER BY id LIMIT 5",
    )
    .bind(&born)
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.get(0))
    .collect();
    assert_eq!(ids.len(), 5);
    let (a, b, cc, dd, e) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    for (id, region) in [
        (a, village),
        (b, village),
        (cc, village),
        (e, village),
        (dd, elsewhere),
    ] {
        sqlx::query("UPDATE elder SET residence_region = $1 WHERE id = $2")
            .bind(region)
            .bind(id)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE elder SET status = 'deceased', death_date = $1 WHERE id = $2")
        .bind(format!("{ly}-06-30"))
        .bind(e)
        .execute(&db.pool)
        .await
        .unwrap();

    // Visits: (elder, planned start, state, rating).
    let visits: Vec<(&String, String, &str, Option<i64>)> = vec![
        (a, format!("{ly}-03-03 09:00"), "confirmed", Some(5)),
        (a, format!("{ly}-03-10 09:00"), "confirmed", Some(4)),
        (a, format!("{ly}-03-17 09:00"), "confirmed", None),
        (a, format!("{ly}-03-24 09:00"), "cancelled", None),
        (a, format!("{ly}-04-07 09:00"), "confirmed", Some(2)),
        (b, format!("{ly}-03-12 15:00"), "confirmed", Some(3)),
        (e, format!("{ly}-03-12 10:00"), "confirmed", Some(1)),
        (dd, format!("{ly}-03-05 09:00"), "confirmed", Some(5)),
        (dd, format!("{ly}-03-19 09:00"), "confirmed", None),
    ];
    for (elder, at, state, rating) in visits {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO service_order (id, provider_id, elder_id, service, planned_start, start_min, planned_minutes, \
             state, created_by, created_at, version) VALUES ($1, $2, $3, '助洁', $4, 0, 60, $5, 'test', $4, 1)",
        )
        .bind(&id)
        .bind(&provider)
        .bind(elder)
        .bind(&at)
        .bind(state)
        .execute(&db.pool)
        .await
        .unwrap();
        if let Some(r) = rating {
            sqlx::query(
                "INSERT INTO service_feedback (order_id, elder_id, rating, at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(elder)
            .bind(r)
            .bind(&at)
            .execute(&db.pool)
            .await
            .unwrap();
        }
    }
    // Meals: (elder, day).
    let meals: Vec<(&String, String)> = vec![
        (cc, format!("{ly}-03-02")),
        (cc, format!("{ly}-03-09")),
        (cc, format!("{ly}-04-01")),
        (a, format!("{ly}-03-02")),
        (e, format!("{ly}-03-02")),
        (dd, format!("{ly}-03-04")),
        (dd, format!("{ly}-03-05")),
    ];
    for (elder, day) in meals {
        sqlx::query(
            "INSERT INTO meal_record (id, meal_point_id, elder_id, day, meal, price_fen, subsidy_fen, served_at, served_by) \
             VALUES ($1, $2, $3, $4, 'lunch', 1200, 300, $4, 'test')",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&point)
        .bind(elder)
        .bind(&day)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    rollup::refresh(db, today, true).await.unwrap();
    let march = format!("{ly}-03");
    let april = format!("{ly}-04");
    let year = ly.to_string();
    let feb = format!("{ly}-02");
    // (indicator, region, period) → (numerator, denominator, value).
    let checks = [
        // A 3 visits, B 1 (E's is not counted, nor the cancelled one): 4 visits, 2 elders.
        (
            "home_visits_per_served",
            village,
            &march,
            4.0,
            Some(2.0),
            2.0,
        ),
        ("home_visits_per_served", town, &march, 4.0, Some(2.0), 2.0),
        (
            "home_visits_per_served",
            COUNTY,
            &march,
            6.0,
            Some(3.0),
            2.0,
        ),
        (
            "home_visits_per_served",
            village,
            &april,
            1.0,
            Some(1.0),
            1.0,
        ),
        (
            "home_visits_per_served",
            village,
            &year,
            5.0,
            Some(2.0),
            2.5,
        ),
        // C 2, A 1, E 1 in the village; D 2 elsewhere.
        ("meals_served", village, &march, 4.0, None, 4.0),
        ("meals_served", COUNTY, &march, 6.0, None, 6.0),
        ("meals_served", village, &april, 1.0, None, 1.0),
        ("meals_served", village, &year, 5.0, None, 5.0),
        // Rated 5, 4, 3 in the village (4 and 5 satisfied); D's 5 in the county.
        (
            "home_service_satisfaction",
            village,
            &march,
            2.0,
            Some(3.0),
            200.0 / 3.0,
        ),
        (
            "home_service_satisfaction",
            COUNTY,
            &march,
            3.0,
            Some(4.0),
            75.0,
        ),
        (
            "home_service_satisfaction",
            village,
            &april,
            0.0,
            Some(1.0),
            0.0,
        ),
        (
            "home_service_satisfaction",
            village,
            &year,
            2.0,
            Some(4.0),
            50.0,
        ),
        // The station's caregiver in the village, and the provider's in the town.
        (
            "caregivers_per_100_served",
            village,
            &march,
            1.0,
            Some(2.0),
            50.0,
        ),
        (
            "caregivers_per_100_served",
            town,
            &march,
            2.0,
            Some(2.0),
            100.0,
        ),
        (
            "caregivers_per_100_served",
            COUNTY,
            &march,
            2.0,
            Some(3.0),
            200.0 / 3.0,
        ),
        // Before the station hired hers, and before the other left the provider.
        ("caregivers_per_100_served", town, &feb, 2.0, None, 0.0),
    ];
    for (id, region, period, num, den, want) in checks {
        let v = query::value(db, id, region, period, today).await.unwrap();
        assert_eq!(v.numerator.unwrap_or(0.0), num, "{id} {region} {period}");
        if let Some(den) = den {
            assert_eq!(v.denominator, Some(den), "{id} {region} {period}");
            let got = v.value.unwrap();
            assert!((got - want).abs() < 0.001, "{id} {region} {period}: {got}");
        }
    }
    // No elder served in February: no visits per elder, no caregivers per 100 of them.
    let v = query::value(db, "caregivers_per_100_served", town, &feb, today)
        .await
        .unwrap();
    assert_eq!(v.value, None);

    // The elders behind the figures: the two served in March, with their visits; the three who
    // ate in March (E among them), their meals adding up to the count.
    let regions = yiyang::region::RegionIndex::load(db).await.unwrap();
    let served = yiyang::indicator::drill::list(
        db,
        &regions,
        "home_visits_per_served",
        town,
        &march,
        today,
        1,
        50,
    )
    .await
    .unwrap();
    assert_eq!(served.part, "counted");
    assert_eq!(served.total, 2);
    let mut got: Vec<(String, String)> = served
        .people
        .iter()
        .map(|p| (p.elder_id.clone(), p.note.clone()))
        .collect();
    got.sort();
    let mut want = vec![
        (a.clone(), "期内上门服务 3 次".to_string()),
        (b.clone(), "期内上门服务 1 次".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(served.by_town.len(), 1);
    assert_eq!(served.by_town[0].code, town);
    let ate =
        yiyang::indicator::drill::list(db, &regions, "meals_served", COUNTY, &march, today, 1, 50)
            .await
            .unwrap();
    assert_eq!(ate.total, 4);
    let meals: i64 = ate
        .people
        .iter()
        .map(|p| {
            p.note
                .trim_start_matches("期内就餐 ")
                .trim_end_matches(" 次")
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    assert_eq!(meals, 6);
    assert!(ate.people.iter().any(|p| &p.elder_id == e));
    // Satisfaction and caregivers are about visits and staff: no list of elders.
    let (s, v, _) = t
        .call(
            "GET",
            &format!(
                "/api/v1/indicators/home_service_satisfaction/people?region_code={COUNTY}&period={march}"
            ),
            Some(&c),
            None,
        )
        .await;
    assert!(s.is_client_error(), "{s} {v}");
    let (s, v, _) = t
        .call(
            "GET",
            &format!("/api/v1/indicators/meals_served/people?region_code={village}&period={march}"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 3, "{v}");
}

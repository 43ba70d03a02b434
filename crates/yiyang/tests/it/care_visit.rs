use crate::support::*;
use axum::http::StatusCode;
use chrono::{Datelike, Days, NaiveDate};
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashMap;

/// (elder id, residence) of the first `n` elders, all set to 70, ordinary, with their children:
/// no duty under the default rules.
async fn plain_elders(t: &TestApp, n: usize) -> Vec<(String, String)> {
    sqlx::query(
        "UPDATE elder SET birth_date = '1956-06-01', living_status = 'with_children', economic_status = 'ordinary', \
         family_planning_special = NULL, status = 'active', death_date = NULL",
    )
    .execute(&t.state.db.pool)
    .await
    .unwrap();
    sqlx::query("SELECT id, residence_region FROM elder ORDER BY id")
        .fetch_all(&t.state.db.pool)
        .await
        .unwrap()
        .iter()
        .take(n)
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn set(t: &TestApp, id: &str, assignments: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE elder SET {assignments} WHERE id = $1"
    )))
    .bind(id)
    .execute(&t.state.db.pool)
    .await
    .unwrap();
}

/// Open duties: elder → frequency.
async fn duties(t: &TestApp) -> HashMap<String, String> {
    sqlx::query("SELECT elder_id, frequency FROM visit_duty WHERE ended_on IS NULL")
        .fetch_all(&t.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn years_before(d: NaiveDate, y: i32) -> NaiveDate {
    d.with_year(d.year() - y).unwrap()
}

/// The default rules at their edges: 80 today and living alone is weekly, 80 tomorrow is not; 特困
/// is monthly, 特困 and alone weekly (the most frequent rule wins); 低保 empty-nest weekly, 低保 with
/// children nothing; 失独 monthly; the dead nothing. A change of facts ends, opens or changes a
/// duty on the day of the refresh, and a refresh with nothing changed changes nothing.
#[tokio::test]
async fn db_visit_duties_follow_the_rules_at_their_boundaries() {
    let t = TestApp::new("demo", 30).await;
    let today = yiyang::platform::today();
    let e = plain_elders(&t, 8).await;
    let eighty = years_before(today, 80);
    set(
        &t,
        &e[0].0,
        &format!("birth_date = '{eighty}', living_status = 'living_alone'"),
    )
    .await;
    set(
        &t,
        &e[1].0,
        &format!(
            "birth_date = '{}', living_status = 'living_alone'",
            eighty + Days::new(1)
        ),
    )
    .await;
    set(&t, &e[2].0, "economic_status = 'extreme_poverty'").await;
    set(
        &t,
        &e[3].0,
        "economic_status = 'minimum_living', living_status = 'empty_nest'",
    )
    .await;
    set(&t, &e[4].0, "economic_status = 'minimum_living'").await;
    set(&t, &e[5].0, "family_planning_special = 'lost_only_child'").await;
    set(
        &t,
        &e[6].0,
        "economic_status = 'extreme_poverty', living_status = 'living_alone', status = 'deceased', death_date = '2026-01-02'",
    )
    .await;
    set(
        &t,
        &e[7].0,
        "economic_status = 'extreme_poverty', living_status = 'living_alone'",
    )
    .await;
    let db = &t.state.db;
    let r = yiyang::care_visit::duty::refresh(db, today).await.unwrap();
    assert_eq!((r.opened, r.changed, r.ended, r.held), (5, 0, 0, 5));
    let d = duties(&t).await;
    let f = |i: usize| d.get(&e[i].0).map(String::as_str);
    assert_eq!(f(0), Some("weekly"), "80 today, living alone");
    assert_eq!(f(1), None, "80 tomorrow");
    assert_eq!(f(2), Some("monthly"), "特困");
    assert_eq!(f(3), Some("weekly"), "低保, empty nest");
    assert_eq!(f(4), None, "低保 with children");
    assert_eq!(f(5), Some("monthly"), "失独");
    assert_eq!(f(6), None, "deceased");
    assert_eq!(f(7), Some("weekly"), "特困 and alone: the weekly rule wins");

    // Nothing changed: nothing to do.
    let r = yiyang::care_visit::duty::refresh(db, today).await.unwrap();
    assert_eq!((r.opened, r.changed, r.ended), (0, 0, 0));

    // The next day: e1 turned 80, e2 is no longer 特困, e5 now 低保 living alone (monthly → weekly).
    let tomorrow = today + Days::new(1);
    set(&t, &e[2].0, "economic_status = 'ordinary'").await;
    set(
        &t,
        &e[5].0,
        "economic_status = 'minimum_living', living_status = 'living_alone'",
    )
    .await;
    let r = yiyang::care_visit::duty::refresh(db, tomorrow)
        .await
        .unwrap();
    assert_eq!((r.opened, r.changed, r.ended, r.held), (1, 1, 1, 5));
    let d = duties(&t).await;
    assert_eq!(d.get(&e[1].0).map(String::as_str), Some("weekly"));
    assert_eq!(d.get(&e[2].0), None);
    assert_eq!(d.get(&e[5].0).map(String::as_str), Some("weekly"));
    // The ended duties are kept, ended on the refresh's day (a past month still counts them).
    let ended: Vec<(String, String)> = sqlx::query(
        "SELECT elder_id, ended_on FROM visit_duty WHERE ended_on IS NOT NULL ORDER BY elder_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(ended.len(), 2);
    assert!(ended.iter().all(|(_, on)| *on == tomorrow.to_string()));
    // Today's month counts e2 still (the duty held today), tomorrow's day does not.
    let (lo, hi) = ("000000000000", "999999999999");
    let start = today.with_day(1).unwrap();
    let on_today = yiyang::care_visit::month_people(db, lo, hi, start, today)
        .await
        .unwrap();
    assert!(on_today.iter().any(|p| p.elder_id == e[2].0));
    let on_tomorrow = yiyang::care_visit::month_people(db, lo, hi, start, tomorrow)
        .await
        .unwrap();
    assert!(!on_tomorrow.iter().any(|p| p.elder_id == e[2].0));
    assert_eq!(on_tomorrow.len(), 5);

    // A rule that does not parse is refused with where it went wrong, and nothing changes.
    t.add_user("cv_officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("cv_officer").await;
    let (s, v, _) = t
        .call(
            "PUT",
            "/api/v1/visit-duty-rules",
            Some(&c),
            Some(json!({"rules": [{"name": "高龄", "frequency": "weekly", "rule": "年龄 >= "}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("第 1 条规则"), "{v}");
    let (s, v, _) = t
        .call("GET", "/api/v1/visit-duty-rules", Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rules"].as_array().unwrap().len(), 2, "{v}");
    // Renamed and reordered, same frequencies: the duties go on from the day they began.
    let since_before: Vec<(String, String)> = sqlx::query(
        "SELECT elder_id, since FROM visit_duty WHERE ended_on IS NULL ORDER BY elder_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let renamed: Vec<Value> = yiyang_kernel::care_visit::DEFAULT_RULES
        .iter()
        .rev()
        .enumerate()
        .map(|(i, (_, f, rule))| json!({"name": format!("规则{i}"), "frequency": f.as_str(), "rule": rule}))
        .collect();
    let (s, v, _) = t
        .call(
            "PUT",
            "/api/v1/visit-duty-rules",
            Some(&c),
            Some(json!({"rules": renamed})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = yiyang::care_visit::duty::refresh(db, tomorrow + Days::new(1))
        .await
        .unwrap();
    assert_eq!((r.opened, r.changed, r.ended), (0, 0, 0), "{r:?}");
    let since_after: Vec<(String, String)> = sqlx::query(
        "SELECT elder_id, since FROM visit_duty WHERE ended_on IS NULL ORDER BY elder_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(since_before, since_after);
    // A town's officer cannot set the rules every elder of the database is held to.
    t.add_user(
        "cv_town_officer",
        &["officer"],
        "320682103000",
        all_scopes(),
    )
    .await;
    let town = t.login("cv_town_officer").await;
    let (s, v, _) = t
        .call(
            "PUT",
            "/api/v1/visit-duty-rules",
            Some(&town),
            Some(json!({"rules": renamed})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // A new rule set: 90+ monthly only. Everyone else's duty ends.
    let (s, v, _) = t
        .call(
            "PUT",
            "/api/v1/visit-duty-rules",
            Some(&c),
            Some(json!({"rules": [{"name": "九十岁以上每月探访", "frequency": "monthly", "rule": "状态 = 在册 且 年龄 >= 90"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    set(
        &t,
        &e[4].0,
        &format!("birth_date = '{}'", years_before(today, 91)),
    )
    .await;
    let r = yiyang::care_visit::duty::refresh(db, tomorrow)
        .await
        .unwrap();
    assert_eq!((r.opened, r.ended, r.held), (1, 5, 1), "{r:?}");
}

/// A visit is recorded once however often the phone sends it (five at once included); its flags
/// note a reassessment trigger, put an event on the board and open a referral, in one go; bad
/// input is refused in Chinese and records nothing; the due list, the month's rate and the
/// indicator's rollup move.
#[tokio::test]
async fn db_a_visit_is_recorded_once_and_moves_the_due_list_and_the_rate() {
    let t = TestApp::new("demo", 30).await;
    let today = yiyang::platform::today();
    let e = plain_elders(&t, 30).await;
    let (elder, village) = e[0].clone();
    set(
        &t,
        &elder,
        "economic_status = 'extreme_poverty', living_status = 'living_alone'",
    )
    .await;
    // Someone in another town, out of the worker's scope.
    let other = e
        .iter()
        .find(|x| x.1[..9] != village[..9])
        .expect("an elder of another town")
        .0
        .clone();
    set(&t, &other, "economic_status = 'extreme_poverty'").await;
    let db = &t.state.db;
    yiyang::care_visit::duty::refresh(db, today).await.unwrap();
    // Held since two weeks back with no visit: overdue.
    sqlx::query("UPDATE visit_duty SET since = $1")
        .bind((today - Days::new(21)).to_string())
        .execute(&db.pool)
        .await
        .unwrap();
    t.add_user("cv_worker", &["worker"], &village, all_scopes())
        .await;
    let c = t.login("cv_worker").await;
    let (s, v, _) = t
        .call("GET", "/api/v1/care-visits/due", Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["elder_id"], elder.as_str());
    assert_eq!(v["items"][0]["standing"], "overdue", "{v}");
    let town = format!("{}000", &village[..9]);
    let rate = |v: &Value| {
        (
            v["total"]["with_duty"].as_i64().unwrap(),
            v["total"]["visited"].as_i64().unwrap(),
        )
    };
    for bad in ["%2B262143-12", "2026-13", "26-12", "2026-1"] {
        let (s, v, _) = t
            .call(
                "GET",
                &format!("/api/v1/care-visits/rate?region_code={village}&month={bad}"),
                Some(&c),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (s, v, _) = t
        .call(
            "GET",
            "/api/v1/care-visits/due?page=18446744073709551615",
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = t
        .call("GET", "/api/v1/care-visits/due?page_size=0", Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, before, _) = t
        .call(
            "GET",
            &format!("/api/v1/care-visits/rate?region_code={village}"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{before}");
    assert_eq!(rate(&before), (1, 0));

    // The indicator's list behind the month's figure: the elder not yet visited.
    t.add_user("cv_officer", &["officer"], "320682000000", all_scopes())
        .await;
    let o = t.login("cv_officer").await;
    let month = today.format("%Y-%m").to_string();
    let gap =
        format!("/api/v1/indicators/monthly_visit_rate/people?region_code={town}&period={month}");
    let (s, v, _) = t.call("GET", &gap, Some(&o), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["people"][0]["elder_id"], elder.as_str(), "{v}");
    assert!(
        v["people"][0]["note"].as_str().unwrap().contains("未探访"),
        "{v}"
    );

    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({"id": id, "elder_id": elder, "mode": "door", "findings": ["meals_ok", "meds_ok"],
        "flags": ["condition_change", "danger", "needs_care"], "note": "老人说头晕，走路不稳"});
    let sends = (0..5).map(|_| t.call("POST", "/api/v1/care-visits", Some(&c), Some(body.clone())));
    for (s, v, _) in futures_util::future::join_all(sends).await {
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["id"], id.as_str());
    }
    let (s, v, _) = t
        .call("POST", "/api/v1/care-visits", Some(&c), Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["follow_ups"].as_array().unwrap().len(), 3, "{v}");
    let n = |sql: &'static str| t.count(sql);
    assert_eq!(n("SELECT COUNT(*) FROM care_visit").await, 1);
    assert_eq!(n("SELECT COUNT(*) FROM assessment_trigger").await, 1);
    assert_eq!(
        n("SELECT COUNT(*) FROM emergency_event WHERE source = 'visit' AND state = 'received' AND priority = 1").await,
        1
    );
    assert_eq!(
        n("SELECT COUNT(*) FROM care_visit WHERE referral = 'open'").await,
        1
    );
    assert_eq!(
        n("SELECT COUNT(*) FROM audit_log WHERE action = 'care_visit.record'").await,
        1
    );

    // Bad input: refused in Chinese, nothing recorded.
    let bad = |patch: Value| {
        let mut b =
            json!({"id": uuid::Uuid::new_v4().to_string(), "elder_id": elder, "mode": "phone"});
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let future = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    for (patch, want) in [
        (json!({"mode": "fax"}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"flags": ["bored"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"findings": ["x"]}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"visited_at": future}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"visited_at": "2020-01-01T08:00:00+08:00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"visited_at": "昨天"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"id": "abc"}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"note": "长".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"elder_id": other}), StatusCode::NOT_FOUND),
        // The id of the visit above, for another elder.
        (json!({"id": id, "elder_id": e[1].0}), StatusCode::CONFLICT),
    ] {
        let (s, v, _) = t
            .call(
                "POST",
                "/api/v1/care-visits",
                Some(&c),
                Some(bad(patch.clone())),
            )
            .await;
        assert_eq!(s, want, "{patch} → {v}");
        let d = v["detail"].as_str().unwrap_or_default();
        assert!(
            d.chars().any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)),
            "{v}"
        );
    }
    assert_eq!(n("SELECT COUNT(*) FROM care_visit").await, 1);

    // Due list and rate moved.
    let (_, v, _) = t
        .call("GET", "/api/v1/care-visits/due", Some(&c), None)
        .await;
    assert_eq!(v["items"][0]["standing"], "done", "{v}");
    assert_eq!(
        (v["done"].as_i64(), v["overdue"].as_i64()),
        (Some(1), Some(0))
    );
    let (_, after, _) = t
        .call(
            "GET",
            &format!("/api/v1/care-visits/rate?region_code={village}"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(rate(&after), (1, 1));
    // And the indicator's rollup of the month.
    yiyang::indicator::rollup::refresh(db, today, true)
        .await
        .unwrap();
    let m: String = sqlx::query_scalar(
        "SELECT measures FROM indicator_rollup WHERE region_code = $1 AND period = $2",
    )
    .bind(&town)
    .bind(today.format("%Y-%m").to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let m: Value = serde_json::from_str(&m).unwrap();
    assert_eq!(
        (
            m["special_difficulty"].as_i64(),
            m["special_difficulty_visited"].as_i64()
        ),
        (Some(1), Some(1)),
        "{m}"
    );

    // A worker without the editing scope cannot record; one of another role cannot read.
    t.add_user(
        "cv_reader",
        &["worker"],
        &village,
        yiyang::identity::Scopes {
            edit: false,
            aggregates: true,
            individuals: true,
        },
    )
    .await;
    let r = t.login("cv_reader").await;
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/care-visits",
            Some(&r),
            Some(bad(json!({}))),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    t.add_user("cv_assessor", &["assessor"], &village, all_scopes())
        .await;
    let a = t.login("cv_assessor").await;
    let (s, _, _) = t
        .call("GET", "/api/v1/care-visits/due", Some(&a), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (_, v, _) = t.call("GET", &gap, Some(&o), None).await;
    assert_eq!(v["total"], 0, "{v}");
    // The officer closes the referral once.
    let (s, v, _) = t
        .call(
            "GET",
            "/api/v1/care-visits?open_referrals=true",
            Some(&o),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    let close = json!({"note": "已为老人下单助洁服务"});
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/care-visits/{id}/referral"),
            Some(&o),
            Some(close.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["referral"], "closed");
    let (s, _, _) = t
        .call(
            "POST",
            &format!("/api/v1/care-visits/{id}/referral"),
            Some(&o),
            Some(close),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // The village is given to the worker; a worker of another town cannot be given it.
    let (s, v, _) = t
        .call(
            "GET",
            &format!("/api/v1/visit-areas?region_code={town}"),
            Some(&o),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let uid = v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["display_name"] == "测试cv_worker")
        .unwrap()["user_id"]
        .clone();
    let (s, v, _) = t
        .call(
            "PUT",
            &format!("/api/v1/visit-areas/{village}"),
            Some(&o),
            Some(json!({"user_id": uid})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, v, _) = t
        .call("GET", "/api/v1/care-visits/due?mine=true", Some(&c), None)
        .await;
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["worker_name"], "测试cv_worker");
    let far_town = format!(
        "{}000",
        &e.iter().find(|x| x.1[..9] != village[..9]).unwrap().1[..9]
    );
    t.add_user("cv_far", &["worker"], &far_town, all_scopes())
        .await;
    let (_, v, _) = t
        .call(
            "GET",
            "/api/v1/visit-areas?region_code=320682000000",
            Some(&o),
            None,
        )
        .await;
    let far = v["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["display_name"] == "测试cv_far")
        .unwrap()["user_id"]
        .clone();
    let (s, v, _) = t
        .call(
            "PUT",
            &format!("/api/v1/visit-areas/{village}"),
            Some(&o),
            Some(json!({"user_id": far})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

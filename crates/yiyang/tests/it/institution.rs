use crate::support::*;
use axum::http::StatusCode;
use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{Value, json};
use sqlx::Row;

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A home's beds and residents through a month: admissions, a transfer, a leave, a death recorded
/// in the registry, an admission by citizen ID and name; the month's bed-days equal the days
/// counted by hand; two admissions racing for one bed: exactly one wins; wrong input, other
/// towns and other roles are refused in Chinese; every step audited.
#[tokio::test]
async fn db_beds_and_admissions_keep_their_history_and_one_bed_holds_one_resident() {
    let t = TestApp::new("demo", 60).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("other_town", &["officer"], "320682104000", all_scopes())
        .await;
    t.add_user("worker", &["worker"], "320682103000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let (s, home, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "township_home", "name": "东陈镇敬老院", "ownership": "public",
            "region_code": "320682103000"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{home}");
    let org = home["id"].as_str().unwrap().to_string();

    // The previous month, counted whole.
    let today = yiyang::platform::today();
    let first = (today.with_day(1).unwrap() - Duration::days(1))
        .with_day(1)
        .unwrap();
    let n = (today.with_day(1).unwrap() - first).num_days();
    let day = |k: i64| ymd(first + Duration::days(k));

    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{org}/beds"),
        Some(
            json!({"building": "1", "floor": "1", "room": "101", "labels": ["1", "2", "3"],
            "nursing": true, "opened_on": day(-10)}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{org}/beds"),
        Some(json!({"building": "1", "floor": "1", "room": "102", "labels": ["1", "2"], "opened_on": day(-10)})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The same place twice is refused, naming it.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{org}/beds"),
        Some(json!({"building": "1", "floor": "1", "room": "101", "labels": ["3"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("1号楼 1层 101室 3床"),
        "{v}"
    );

    let board = |who: String| {
        let (t, org) = (&t, org.clone());
        async move {
            let (s, v, _) = t
                .call("GET", &format!("/api/v1/orgs/{org}/beds"), Some(&who), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let b = board(c.clone()).await;
    assert_eq!(b["summary"]["beds"], 5);
    assert_eq!(b["summary"]["nursing"], 3);
    assert_eq!(b["summary"]["vacant"], 5);
    let bed = |place: &str, b: &Value| -> String {
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["place"] == place)
            .unwrap_or_else(|| panic!("no bed {place}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let bed1 = bed("1号楼 1层 101室 1床", &b);
    let bed2 = bed("1号楼 1层 101室 2床", &b);
    let bed3 = bed("1号楼 1层 101室 3床", &b);
    let bed4 = bed("1号楼 1层 102室 1床", &b);
    let bed5 = bed("1号楼 1层 102室 2床", &b);

    let people: Vec<(String, String)> = sqlx::query(
        "SELECT id, name FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 4",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let (a, b_, d, e) = (&people[0].0, &people[1].0, &people[2].0, &people[3].0);
    let admit = |body: Value| call("POST", format!("/api/v1/orgs/{org}/admissions"), Some(body));

    // A on bed 1 before the month; B on bed 2 on its 4th day.
    let (s, v, _) = admit(json!({"elder_id": a, "bed_id": bed1, "admitted_on": day(-5)})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["bed_place"], "1号楼 1层 101室 1床");
    let adm_a = v["admission_id"].as_str().unwrap().to_string();
    let (s, v, _) = admit(json!({"elder_id": b_, "bed_id": bed2, "admitted_on": day(3)})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Refusals: the same person again, an occupied bed, a date to come, a bed before its last stay.
    let (s, v, _) = admit(json!({"elder_id": a, "bed_id": bed4})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("已在一家机构入住"),
        "{v}"
    );
    let (s, v, _) = admit(json!({"elder_id": d, "bed_id": bed2})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("101室 2床 已有人入住"),
        "{v}"
    );
    let (s, v, _) = admit(json!({"elder_id": d, "bed_id": bed4,
        "admitted_on": ymd(today + Duration::days(1))}))
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("不能晚于今天"),
        "{v}"
    );

    // A moves to bed 3 on the 11th, is in hospital from the 13th to the 16th.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{adm_a}/transfer"),
        Some(json!({"bed_id": bed3, "on": day(10)})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{adm_a}/leave"),
        Some(json!({"kind": "住院", "from_on": day(12), "note": "肺炎"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{adm_a}/leave"),
        Some(json!({"kind": "home"})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a second leave while on leave: {v}"
    );
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{adm_a}/return"),
        Some(json!({"on": day(11)})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "back before leaving: {v}"
    );
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{adm_a}/return"),
        Some(json!({"on": day(15)})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // C comes from elsewhere: found by citizen ID and name together, onto bed 1 freed on the 11th.
    let cid = yiyang_kernel::citizen_id::compose(
        "320682",
        NaiveDate::from_ymd_opt(1939, 4, 2).unwrap(),
        31,
    );
    let (s, v, _) = call(
        "POST",
        "/api/v1/elders".into(),
        Some(json!({"citizen_id": cid, "name": "陈桂英", "residence_region": "320682104205"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, wrong, _) =
        admit(json!({"citizen_id": cid, "name": "陈桂兰", "bed_id": bed1, "admitted_on": day(10)}))
            .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{wrong}");
    let unknown = yiyang_kernel::citizen_id::compose(
        "320682",
        NaiveDate::from_ymd_opt(1939, 4, 2).unwrap(),
        77,
    );
    let (s, v, _) = admit(json!({"citizen_id": unknown, "name": "陈桂英", "bed_id": bed1})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        v["detail"], wrong["detail"],
        "one answer for a wrong name and an unknown ID"
    );
    let (s, v, _) =
        admit(json!({"citizen_id": cid, "name": "陈桂英", "bed_id": bed1, "admitted_on": day(9)}))
            .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bed 1 was A's until the 11th: {v}"
    );
    let (s, v, _) =
        admit(json!({"citizen_id": cid, "name": "陈桂英", "bed_id": bed1, "admitted_on": day(10)}))
            .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // B dies on the 21st, recorded in the registry: discharged that day.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/elders/{b_}/death"),
        Some(json!({"death_date": day(20)})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = admit(json!({"elder_id": d, "bed_id": bed2, "admitted_on": day(15)})).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bed 2 was B's until the 21st: {v}"
    );

    // The month from the records: 5 beds all month; A all month (3 days on leave), B 17 days,
    // C from the 11th.
    let (s, m, _) = call(
        "GET",
        format!(
            "/api/v1/orgs/{org}/occupancy?month={}",
            first.format("%Y-%m")
        ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["days"], n);
    assert_eq!(m["bed_days"], 5 * n);
    assert_eq!(m["occupied_days"], n + 17 + (n - 10));
    assert_eq!(m["leave_days"], 3);
    assert_eq!(m["admissions"], 2);
    assert_eq!(m["discharges"], 1);

    // Two admissions to bed 4 at the same moment: exactly one wins.
    let (r1, r2) = tokio::join!(
        admit(json!({"elder_id": d, "bed_id": bed4})),
        admit(json!({"elder_id": e, "bed_id": bed4})),
    );
    let mut codes = [r1.0, r2.0];
    codes.sort();
    assert_eq!(
        codes,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{} / {}",
        r1.1,
        r2.1
    );
    let open: i64 =
        sqlx::query("SELECT COUNT(*) FROM bed_stay WHERE bed_id = $1 AND until_on IS NULL")
            .bind(&bed4)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap()
            .get(0);
    assert_eq!(open, 1);

    // Today's board: A on 3, C on 1, the winner on 4; bed 2 and 5 free.
    let b = board(c.clone()).await;
    assert_eq!(b["summary"]["occupied"], 3, "{}", b["summary"]);
    assert_eq!(b["summary"]["vacant"], 2);
    assert_eq!(b["summary"]["vacant_nursing"], 1);
    // A bed with someone in it cannot be retired; an empty one can.
    let (s, v, _) = call(
        "PATCH",
        format!("/api/v1/beds/{bed3}"),
        Some(json!({"status": "retired"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v, _) = call(
        "PATCH",
        format!("/api/v1/beds/{bed5}"),
        Some(json!({"status": "retired"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(board(c.clone()).await["summary"]["beds"], 4);
    // A body that is not a JSON object is refused before any handler reads it (serde would take
    // an empty array as a struct of optional fields).
    for body in [json!([]), json!([{"status": "retired"}]), json!("retired")] {
        let (s, v, _) = call("PATCH", format!("/api/v1/beds/{bed4}"), Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    // A bad date is refused even when nothing else changes.
    let (s, v, _) = call(
        "PATCH",
        format!("/api/v1/beds/{bed4}"),
        Some(json!({"retired_on": "F"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Residents, with their history; the dead one among the past, discharged for death.
    let (s, r, _) = call("GET", format!("/api/v1/orgs/{org}/residents"), None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["total"], 3);
    let ra = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["admission_id"] == adm_a.as_str())
        .unwrap();
    assert_eq!(ra["bed_place"], "1号楼 1层 101室 3床");
    let hist = ra["history"].as_array().unwrap();
    assert_eq!(hist.len(), 3, "{hist:?}");
    assert!(
        hist[1]
            .as_str()
            .unwrap()
            .contains("调至 1号楼 1层 101室 3床"),
        "{hist:?}"
    );
    assert!(
        hist[2].as_str().unwrap().contains("请假（住院）"),
        "{hist:?}"
    );
    assert!(ra["citizen_id_masked"].as_str().unwrap().contains('*'));
    let (s, p, _) = call(
        "GET",
        format!("/api/v1/orgs/{org}/residents?state=past"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["total"], 1);
    assert_eq!(p["items"][0]["discharged_on"], day(20));
    assert_eq!(p["items"][0]["discharge_reason"], "死亡");

    // A goes home: discharged, the bed free again.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{adm_a}/discharge"),
        Some(json!({"reason": "回家居住"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{adm_a}/discharge"),
        Some(json!({"reason": "home"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(board(c.clone()).await["summary"]["occupied"], 2);

    // Other people: the village worker reads the board with names but keeps no beds; another
    // town's officer does not find the home; a day centre keeps no beds.
    let w = t.login("worker").await;
    let wb = board(w.clone()).await;
    assert!(
        wb["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["occupant"]["name"] == "陈桂英")
    );
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/beds"),
            Some(&w),
            Some(json!({"room": "201", "labels": ["1"]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let o = t.login("other_town").await;
    let (s, _, _) = t
        .call("GET", &format!("/api/v1/orgs/{org}/beds"), Some(&o), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = t
        .call(
            "POST",
            &format!("/api/v1/admissions/{adm_a}/leave"),
            Some(&o),
            Some(json!({"kind": "home"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, dc, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "day_care", "name": "东陈日间照料中心", "ownership": "public",
            "region_code": "320682103000"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{}/beds", dc["id"].as_str().unwrap()),
        Some(json!({"room": "1", "labels": ["1"]})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Every step is in the audit trail.
    let n_audit = |action: &'static str| {
        let t = &t;
        async move {
            sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = $1")
                .bind(action)
                .fetch_one(&t.state.db.pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    };
    assert_eq!(n_audit("admission.create").await, 4);
    assert_eq!(n_audit("admission.transfer").await, 1);
    assert_eq!(n_audit("admission.leave").await, 1);
    assert_eq!(n_audit("admission.return").await, 1);
    assert_eq!(n_audit("admission.discharge").await, 1);
    assert_eq!(n_audit("bed.create").await, 2);
    assert_eq!(n_audit("bed.update").await, 1);
    assert!(n_audit("admission.list").await >= 2);
}

/// Staff of a home (role, skill level, certificate, hire and leave dates) and its staffing checked
/// against residents by ability level and against beds; certificates running out are named.
#[tokio::test]
async fn db_staff_and_staffing_checks_follow_the_records() {
    let t = TestApp::new("demo", 40).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let (_, home, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "institution", "name": "如皋市福寿园养老院", "ownership": "private",
            "region_code": "320682103000"}),
        ),
    )
    .await;
    let org = home["id"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{org}/beds"),
        Some(json!({"room": "101", "labels": ["1", "2", "3", "4", "5", "6"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let beds: Vec<String> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let people: Vec<String> = sqlx::query(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 6",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    // Levels: 3, 2, 2 (cannot look after themselves), 1, none, and 4 whose assessment ran out.
    let today = yiyang::platform::today();
    sqlx::query("DELETE FROM elder_ability")
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    for (i, level) in [Some(3), Some(2), Some(2), Some(1), None, Some(4)]
        .iter()
        .enumerate()
    {
        if let Some(l) = level {
            let valid = if i == 5 {
                today - Duration::days(1)
            } else {
                today + Duration::days(300)
            };
            sqlx::query(
                "INSERT INTO elder_ability (elder_id, assessment_id, level, assessed_on, valid_until, change_seq) \
                 VALUES ($1, $2, $3, $4, $5, 0)",
            )
            .bind(&people[i])
            .bind(format!("a{i}"))
            .bind(*l)
            .bind(ymd(today - Duration::days(400)))
            .bind(ymd(valid))
            .execute(&t.state.db.pool)
            .await
            .unwrap();
        }
        let (s, v, _) = call(
            "POST",
            format!("/api/v1/orgs/{org}/admissions"),
            Some(json!({"elder_id": people[i], "bed_id": beds[i]})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let add = |body: Value| call("POST", format!("/api/v1/orgs/{org}/staff"), Some(body));
    let (s, a, _) = add(
        json!({"name": "张秀兰", "role": "养老护理员", "skill_level": "初级",
        "certificate_no": "3206820012345", "certificate_on": "2022-01-10",
        "certificate_expires_on": ymd(today + Duration::days(30)), "hired_on": "2022-02-01"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(a["role_name"], "养老护理员");
    assert_eq!(a["skill_name"], "初级");
    let (s, v, _) =
        add(json!({"name": "李梅", "role": "caregiver", "hired_on": "2023-05-01"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, _) = add(json!({"name": "王芳", "role": "社会工作者"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, left, _) =
        add(json!({"name": "赵强", "role": "caregiver", "hired_on": "2020-01-01"})).await;
    assert_eq!(s, StatusCode::CREATED, "{left}");
    // Wrong input, named.
    let (s, v, _) = add(json!({"name": "周护", "role": "护士", "skill_level": 3})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("只适用于养老护理员"),
        "{v}"
    );
    let (s, v, _) = add(json!({"name": "周护", "role": "厨师"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = add(json!({"name": "周护", "role": "caregiver", "skill_level": 9})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // 赵强 left yesterday: no longer counted, still listed among all.
    let (s, v, _) = call(
        "PATCH",
        format!("/api/v1/staff/{}", left["id"].as_str().unwrap()),
        Some(json!({"left_on": ymd(today - Duration::days(1))})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = call(
        "PATCH",
        format!("/api/v1/staff/{}", left["id"].as_str().unwrap()),
        Some(json!({"left_on": "2019-01-01"})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "left before hired: {v}"
    );
    let (_, cur, _) = call("GET", format!("/api/v1/orgs/{org}/staff"), None).await;
    assert_eq!(cur["total"], 3, "{cur}");
    let (_, all, _) = call("GET", format!("/api/v1/orgs/{org}/staff?state=all"), None).await;
    assert_eq!(all["total"], 4);

    // 3 who cannot look after themselves (1:4 → 1) and 3 others (1:10 → 1): 2 caregivers needed;
    // 6 beds: 1 social worker.
    let (s, st, _) = call("GET", format!("/api/v1/orgs/{org}/staffing"), None).await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["dependent_residents"], 3, "{st}");
    assert_eq!(st["other_residents"], 3);
    assert_eq!(st["caregivers"], 2);
    assert_eq!(st["certified_caregivers"], 1);
    assert_eq!(st["caregivers_needed"], 2);
    assert_eq!(st["social_workers_needed"], 1);
    let checks = st["checks"].as_array().unwrap();
    assert!(
        checks[0]["ok"].as_bool().unwrap() && checks[1]["ok"].as_bool().unwrap(),
        "{checks:?}"
    );
    assert_eq!(checks.len(), 3, "the certificate running out: {checks:?}");
    assert_eq!(st["expiring"][0]["name"], "张秀兰");
    // One caregiver fewer: short by one.
    call(
        "PATCH",
        format!("/api/v1/staff/{}", a["id"].as_str().unwrap()),
        Some(json!({"left_on": ymd(today)})),
    )
    .await;
    let (_, st, _) = call("GET", format!("/api/v1/orgs/{org}/staffing"), None).await;
    assert_eq!(st["caregivers"], 1);
    assert!(!st["checks"][0]["ok"].as_bool().unwrap());
    assert!(
        st["checks"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("缺 1 人"),
        "{st}"
    );
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = 'staff.update'")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

/// The demo county's homes on the public vacancy board: no login, counts equal to the records,
/// a town's filter, no names anywhere in the answer.
#[tokio::test]
async fn db_vacancy_board_shows_the_records_counts_to_the_public() {
    let t = TestApp::new("demo", 3000).await;
    let today = yiyang::platform::today();
    let (orgs, beds, residents) = yiyang::institution::demo::seed(&t.state.db, 0.05, today)
        .await
        .unwrap();
    assert!(orgs >= 55, "{orgs} organisations");
    assert!(beds > 500, "{beds} beds");
    assert!(
        residents as f64 > beds as f64 * 0.6,
        "{residents} of {beds}"
    );
    let (s, v, _) = t.call("GET", "/api/v1/public/vacancies", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let open_stays: i64 = sqlx::query("SELECT COUNT(*) FROM bed_stay WHERE until_on IS NULL")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(v["beds"], beds);
    assert_eq!(v["vacant"], beds - open_stays);
    let homes = v["homes"].as_array().unwrap();
    assert!(homes.iter().all(|h| h["beds"].as_i64().unwrap() > 0));
    let nursing: i64 = homes
        .iter()
        .map(|h| h["nursing_beds"].as_i64().unwrap())
        .sum();
    let direct: i64 = sqlx::query("SELECT COUNT(*) FROM bed WHERE nursing = 1")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(nursing, direct);
    // One town.
    let (_, town, _) = t
        .call(
            "GET",
            "/api/v1/public/vacancies?region_code=320682103000",
            None,
            None,
        )
        .await;
    assert!(!town["homes"].as_array().unwrap().is_empty());
    assert!(
        town["homes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["place"] == "如皋市 / 东陈镇"),
        "{town}"
    );
    // Counts only: no resident's name is in the answer.
    let names: Vec<String> =
        sqlx::query("SELECT e.name FROM admission a JOIN elder e ON e.id = a.elder_id LIMIT 50")
            .fetch_all(&t.state.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let body = v.to_string();
    assert!(names.iter().all(|n| !body.contains(n.as_str())));
    let (s, _, _) = t
        .call(
            "GET",
            "/api/v1/public/vacancies?region_code=abc",
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A private home's claim for last month, from its records: a whole month, an admission on the
/// 10th, a death recorded in the registry (discharged), a death the home never recorded (still
/// "resident"), a leave past the 30 days, a resident priced by a valid assessment (中度失能), and a
/// new bed accepted in the month. Every amount equals the one worked out by hand; nothing is paid
/// after a death or past the leave limit, each exclusion says why; a second look by another
/// officer; made again, a reviewed claim is kept; a bed's construction subsidy is paid once.
#[tokio::test]
async fn db_bed_claims_pay_occupied_days_and_never_after_death_or_past_the_leave_limit() {
    let t = TestApp::new("demo", 80).await;
    for (u, region) in [("officer", "320682000000"), ("officer2", "320682000000")] {
        t.add_user(u, &["officer"], region, all_scopes()).await;
    }
    t.add_user("worker", &["worker"], "320682103000", all_scopes())
        .await;
    t.add_user("assessor", &["assessor"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let c2 = t.login("officer2").await;
    let w = t.login("worker").await;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let (s, home, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "institution", "name": "康乐护理院", "ownership": "private", "region_code": "320682103000"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{home}");
    let org = home["id"].as_str().unwrap().to_string();
    let today = yiyang::platform::today();
    let first = (today.with_day(1).unwrap() - Duration::days(1))
        .with_day(1)
        .unwrap();
    let n = (today.with_day(1).unwrap() - first).num_days();
    let month = first.format("%Y-%m").to_string();
    let day = |k: i64| ymd(first + Duration::days(k));
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{org}/beds"),
        Some(json!({"building": "1", "floor": "2", "room": "201", "labels": ["1", "2", "3", "4", "5", "6", "7"],
            "nursing": true, "opened_on": day(-90)})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let beds: Vec<String> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let people: Vec<String> = sqlx::query(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 6",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    // The sixth person is assessed 中度失能 (valid two years) before the month.
    let a = t.login("assessor").await;
    let mut input = json!({"items": crate::assessment::with_total(70)});
    input["dementia_confirmed"] = json!(true);
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{}/assessments", people[5]),
            Some(&a),
            Some(json!({"reason": "first", "assessed_on": day(-20), "assessors": ["张评估", "李评估"],
                "informant": "女儿", "input": input})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["final_level"], 2);
    let mut adm = vec![];
    for (i, on) in [-60, 9, -60, -60, -60, -60].iter().enumerate() {
        let (s, v, _) = call(
            "POST",
            format!("/api/v1/orgs/{org}/admissions"),
            Some(json!({"elder_id": people[i], "bed_id": beds[i], "admitted_on": day(*on)})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        adm.push(v["admission_id"].as_str().unwrap().to_string());
    }
    // Person 2 dies on the 16th, recorded in the registry (the home discharges them that day).
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/elders/{}/death", people[2]),
        Some(json!({"death_date": day(15)})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Person 3 died before the month, but the record reached nobody's workflow: the home still
    // lists them (written straight into the row, as a late correction from elsewhere would be).
    sqlx::query("UPDATE elder SET death_date = $1 WHERE id = $2")
        .bind(day(-3))
        .bind(&people[3])
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    // Person 4 has been in hospital since 20 days before the month and is still away: the 30
    // days run out on the 10th, so 10 days count.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{}/leave", adm[4]),
        Some(json!({"kind": "hospital", "from_on": day(-20)})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    // A new bed accepted on the 5th: 10,000 元 once.
    let (s, v, _) = call(
        "PATCH",
        format!("/api/v1/beds/{}", beds[6]),
        Some(json!({"accepted_on": day(4)})),
    )
    .await;
    assert!(s.is_success(), "{v}");

    // Refusals first: a bad month, a worker, a month to come.
    let (s, v, _) = call(
        "POST",
        "/api/v1/bed-claims".into(),
        Some(json!({"region_code": "320682103000", "month": "2026-13"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("YYYY-MM"), "{v}");
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/bed-claims",
            Some(&w),
            Some(json!({"region_code": "320682103000", "month": month})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v, _) = call(
        "PUT",
        "/api/v1/bed-subsidy-policy".into(),
        Some(json!({"region_code": "320682000000", "amounts": {
            "operating_public": [0, 0, 0, 0, 0], "operating_public_private": [50, 80, 150, 200, 250],
            "operating_private": [-1, 120, 200, 260, 300], "construction_public": 0,
            "construction_public_private": 0, "construction_private": 10000, "family_bed_monthly": 150,
            "max_leave_days": 30}})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("0 到 100000 元"),
        "{v}"
    );
    let (s, v, _) = call(
        "PUT",
        "/api/v1/bed-subsidy-policy".into(),
        Some(json!({"region_code": "320682000000", "amounts": {
            "operating_public": [0, 0, 0, 0, 0], "operating_public_private": [50, 80, 150, 200, 250],
            "operating_private": [80, 120, 200], "construction_public": 0,
            "construction_public_private": 0, "construction_private": 10000, "family_bed_monthly": 150,
            "max_leave_days": 30}})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("5 个金额"), "{v}");

    let compute = || {
        call(
            "POST",
            "/api/v1/bed-claims".into(),
            Some(json!({"region_code": "320682103000", "month": month})),
        )
    };
    let (s, v, _) = compute().await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["claims"].as_i64().unwrap() >= 1, "{v}");
    let (s, list, _) = call(
        "GET",
        format!("/api/v1/bed-claims?region_code=320682103000&month={month}&org_id={org}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let claim = list["items"][0]["id"].as_str().unwrap().to_string();
    let (s, d, _) = call("GET", format!("/api/v1/bed-claims/{claim}"), None).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let lines = d["lines"].as_array().unwrap();
    let line = |i: usize| {
        lines
            .iter()
            .find(|l| l["elder_id"] == people[i].as_str())
            .unwrap_or_else(|| panic!("no line for person {i}: {d}"))
    };
    // By hand, 民办 at the default amounts (元/月): level 0 80, 中度失能 200.
    let pro = |monthly: f64, days: i64| (monthly * days as f64 / n as f64 * 100.0).round() / 100.0;
    let l = line(0);
    assert_eq!(
        (l["paid_days"].as_i64(), l["amount"].as_f64()),
        (Some(n), Some(80.0)),
        "{l}"
    );
    assert!(
        l["reasons"].as_str().unwrap().contains("无有效能力评估"),
        "{l}"
    );
    let l = line(1);
    assert_eq!(l["paid_days"].as_i64(), Some(n - 9), "{l}");
    assert_eq!(l["amount"].as_f64(), Some(pro(80.0, n - 9)), "{l}");
    let l = line(2);
    assert_eq!(l["days"].as_i64(), Some(15), "{l}");
    assert_eq!(l["amount"].as_f64(), Some(pro(80.0, 15)), "{l}");
    let l = line(3);
    assert_eq!(
        (l["paid_days"].as_i64(), l["amount"].as_f64()),
        (Some(0), Some(0.0)),
        "{l}"
    );
    assert!(
        l["reasons"].as_str().unwrap().contains("去世，此后不计"),
        "{l}"
    );
    let l = line(4);
    assert_eq!(l["paid_days"].as_i64(), Some(10), "{l}");
    assert!(
        l["reasons"].as_str().unwrap().contains("请假超过 30 天"),
        "{l}"
    );
    let l = line(5);
    assert_eq!(l["ability_level"], "中度失能", "{l}");
    assert_eq!(l["amount"].as_f64(), Some(200.0), "{l}");
    let built: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "construction")
        .collect();
    assert_eq!(built.len(), 1, "{d}");
    assert_eq!(built[0]["amount"].as_f64(), Some(10000.0));
    let sum: f64 = lines.iter().map(|l| l["amount"].as_f64().unwrap()).sum();
    assert!(
        (sum - d["claim"]["total"].as_f64().unwrap()).abs() < 0.005,
        "{d}"
    );
    // Excluded: the death nobody recorded and the long leave (no assessment is only a note).
    assert_eq!(d["claim"]["excluded"], 2, "{d}");
    // The stored lines equal the records counted straight in SQL: no line for anyone who was
    // not resident in the month, one for everyone who was.
    let resident: i64 = sqlx::query(
        "SELECT COUNT(*) FROM admission WHERE org_id = $1 AND admitted_on < $2 AND (discharged_on IS NULL OR discharged_on > $3)",
    )
    .bind(&org)
    .bind(ymd(first + Duration::days(n)))
    .bind(ymd(first))
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap()
    .get(0);
    assert_eq!(resident, 6);
    assert_eq!(lines.iter().filter(|l| l["kind"] == "operating").count(), 6);

    // The second look: not by its maker; then paid; made again, it is kept as it was.
    let step = |who: String, action: &'static str| {
        let (t, claim) = (&t, claim.clone());
        async move {
            t.call(
                "POST",
                &format!("/api/v1/bed-claims/{claim}/steps"),
                Some(&who),
                Some(json!({"action": action, "note": "银行流水 20261201"})),
            )
            .await
        }
    };
    let (s, v, _) = step(c.clone(), "review").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("另一位工作人员"),
        "{v}"
    );
    let (s, v, _) = step(c.clone(), "paid").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v, _) = step(c2.clone(), "review").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state_zh"], "已复核");
    let (s, v, _) = compute().await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["kept"].as_i64().unwrap() >= 1, "{v}");
    let (s, v, _) = step(c.clone(), "paid").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "paid");
    assert_eq!(v["paid_note"], "银行流水 20261201");
    let (_, d2, _) = call("GET", format!("/api/v1/bed-claims/{claim}"), None).await;
    assert_eq!(d2["claim"]["total"], d["claim"]["total"]);

    // The bed's acceptance moved into this month: its construction subsidy is not paid again.
    let (s, v, _) = call(
        "PATCH",
        format!("/api/v1/beds/{}", beds[6]),
        Some(json!({"accepted_on": ymd(today)})),
    )
    .await;
    assert!(s.is_success(), "{v}");
    let this = today.format("%Y-%m").to_string();
    let (s, v, _) = call(
        "POST",
        "/api/v1/bed-claims".into(),
        Some(json!({"region_code": "320682103000", "month": this})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list, _) = call(
        "GET",
        format!("/api/v1/bed-claims?region_code=320682103000&month={this}&org_id={org}"),
        None,
    )
    .await;
    let now_claim = list["items"][0]["id"].as_str().unwrap().to_string();
    let (_, d, _) = call("GET", format!("/api/v1/bed-claims/{now_claim}"), None).await;
    assert!(
        !d["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["kind"] == "construction"),
        "{d}"
    );
    // Nobody who died before this month is in it.
    assert!(
        !d["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["elder_id"] == people[3].as_str() && l["amount"].as_f64() != Some(0.0)),
        "{d}"
    );

    // The spreadsheet opens with both sheets; every step left its audit row.
    let (s, bytes, _) = t
        .raw(
            axum::http::Request::builder()
                .uri(format!(
                    "/api/v1/bed-claims/export?region_code=320682103000&month={month}"
                ))
                .header(axum::http::header::COOKIE, &c)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    use calamine::Reader;
    assert_eq!(book.sheet_names(), vec!["申领汇总", "核对明细"]);
    let sheet = book.worksheet_range("申领汇总").unwrap();
    assert!(sheet.rows().any(|r| r.iter().any(|c| *c == "康乐护理院")));
    for action in [
        "bed_claim.compute",
        "bed_claim.view",
        "bed_claim.review",
        "bed_claim.paid",
        "bed_claim.export",
    ] {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap()
            .get(0);
        assert!(n >= 1, "no audit row for {action}");
    }
}

/// The institution indicators are computed from the records: homes in two towns with beds of
/// each kind (one retired), staff with and without certificates, the extremely poor assessed,
/// housed and applying. Each value at the county equals the same figure counted straight over
/// the tables; a later admission reaches the county by the incremental refresh, which then
/// equals a full rebuild.
#[tokio::test]
async fn db_institution_indicators_equal_direct_counts_over_the_records() {
    use yiyang::indicator::rollup;
    let t = TestApp::new("demo", 120).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("assessor", &["assessor"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let a = t.login("assessor").await;
    let db = &t.state.db;
    let today = yiyang::platform::today();
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move {
            let (s, v, _) = t.call(m, &uri, Some(&c), body).await;
            assert!(s.is_success(), "{m} {uri}: {s} {v}");
            v
        }
    };
    let long_ago = ymd(today - Duration::days(400));
    let mut homes = vec![];
    for (kind, name, own, region, grade, expires) in [
        (
            "township_home",
            "东陈镇敬老院",
            "public",
            "320682103000",
            Some(2),
            Some(ymd(today + Duration::days(300))),
        ),
        (
            "institution",
            "康宁护理院",
            "private",
            "320682103000",
            None,
            None,
        ),
        (
            "institution",
            "长青养老院",
            "public_private",
            "320682104000",
            Some(3),
            Some(ymd(today - Duration::days(5))),
        ),
    ] {
        let v = call(
            "POST",
            "/api/v1/orgs".into(),
            Some(
                json!({"kind": kind, "name": name, "ownership": own, "region_code": region,
                "grade": grade, "grade_expires_on": expires}),
            ),
        )
        .await;
        homes.push(v["id"].as_str().unwrap().to_string());
    }
    // A day centre's beds are not counted.
    call(
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "day_care", "name": "东陈日间照料中心", "ownership": "public", "region_code": "320682103000"})),
    )
    .await;
    let mut beds = vec![];
    for (home, room, labels, nursing) in [
        (0, "101", vec!["1", "2", "3", "4"], true),
        (0, "102", vec!["1", "2"], false),
        (1, "201", vec!["1", "2", "3"], true),
        (2, "301", vec!["1", "2", "3", "4", "5"], false),
    ] {
        let v = call(
            "POST",
            format!("/api/v1/orgs/{}/beds", homes[home]),
            Some(
                json!({"room": room, "labels": labels, "nursing": nursing, "opened_on": long_ago}),
            ),
        )
        .await;
        beds.extend(
            v["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string()),
        );
    }
    call(
        "PATCH",
        format!("/api/v1/beds/{}", beds[13]),
        Some(json!({"status": "retired"})),
    )
    .await;
    for (home, role, cert) in [
        (0, "caregiver", Some("护理员证-001")),
        (0, "caregiver", None),
        (0, "social_worker", None),
        (1, "caregiver", Some("护理员证-002")),
        (2, "caregiver", Some("护理员证-003")),
    ] {
        call(
            "POST",
            format!("/api/v1/orgs/{}/staff", homes[home]),
            Some(json!({"name": "王护理", "role": role, "skill_level": cert.map(|_| 5), "certificate_no": cert,
                "hired_on": long_ago})),
        )
        .await;
    }
    // Four of the county's elders become 特困 (by the registry's own edit); three are assessed
    // 中度失能; one lives in the 敬老院, one applies for a place.
    let poor: Vec<String> = sqlx::query(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL AND birth_date < '1960-01-01' \
         AND economic_status <> 'extreme_poverty' ORDER BY id LIMIT 4",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    for id in &poor {
        call(
            "PATCH",
            format!("/api/v1/elders/{id}"),
            Some(json!({"economic_status": "特困"})),
        )
        .await;
    }
    for id in &poor[..3] {
        let mut input = json!({"items": crate::assessment::with_total(70)});
        input["dementia_confirmed"] = json!(true);
        let (s, v, _) = t
            .call(
                "POST",
                &format!("/api/v1/elders/{id}/assessments"),
                Some(&a),
                Some(
                    json!({"reason": "first", "assessed_on": ymd(today - Duration::days(30)),
                    "assessors": ["张评估", "李评估"], "informant": "本人", "input": input}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    call(
        "POST",
        format!("/api/v1/orgs/{}/admissions", homes[0]),
        Some(json!({"elder_id": poor[0], "bed_id": beds[0], "admitted_on": ymd(today - Duration::days(10))})),
    )
    .await;
    call(
        "POST",
        "/api/v1/admission-applications".into(),
        Some(json!({"elder_id": poor[3], "region_code": "320682000000"})),
    )
    .await;
    // An ordinary resident in the private home.
    let other: String = sqlx::query(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL AND economic_status <> 'extreme_poverty' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
    .get(0);
    call(
        "POST",
        format!("/api/v1/orgs/{}/admissions", homes[1]),
        Some(json!({"elder_id": other, "bed_id": beds[6], "admitted_on": ymd(today - Duration::days(3))})),
    )
    .await;

    rollup::refresh(db, today, true).await.unwrap();
    let year = today.year().to_string();
    let value = |id: &'static str| {
        let (t, c, year) = (&t, c.clone(), year.clone());
        async move {
            let (s, v, _) = t
                .call(
                    "GET",
                    &format!(
                        "/api/v1/indicators/value?id={id}&region_code=320682000000&period={year}"
                    ),
                    Some(&c),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            (v["numerator"].as_f64(), v["denominator"].as_f64())
        }
    };
    // Counted straight over the tables, today.
    let d = ymd(today);
    let homes_sql = "o.status = 'open' AND o.kind IN ('institution', 'township_home', 'regional_center', 'comprehensive_center')";
    let n = |sql: String| {
        let (db, d) = (db, d.clone());
        async move {
            let has_day = sql.contains("$1");
            let q = sqlx::query(sqlx::AssertSqlSafe(sql));
            let q = if has_day { q.bind(d) } else { q };
            q.fetch_one(&db.pool).await.unwrap().get::<i64, _>(0) as f64
        }
    };
    let beds_where = format!(
        "FROM bed b JOIN organisation o ON o.id = b.org_id WHERE {homes_sql} AND b.opened_on <= $1 AND (b.retired_on IS NULL OR b.retired_on > $1)"
    );
    let all = n(format!("SELECT COUNT(*) {beds_where}")).await;
    let nursing = n(format!("SELECT COUNT(*) {beds_where} AND b.nursing = 1")).await;
    assert_eq!(
        (all, nursing),
        (13.0, 7.0),
        "the retired bed and the day centre are left out"
    );
    assert_eq!(value("nursing_bed_share").await, (Some(nursing), Some(all)));
    let social = n(format!(
        "SELECT COUNT(*) {beds_where} AND o.ownership <> 'public'"
    ))
    .await;
    assert_eq!(value("social_beds_share").await, (Some(social), Some(all)));
    let pov = n(format!(
        "SELECT COUNT(*) {beds_where} AND o.kind = 'township_home'"
    ))
    .await;
    let pov_n = n(format!(
        "SELECT COUNT(*) {beds_where} AND o.kind = 'township_home' AND b.nursing = 1"
    ))
    .await;
    assert_eq!(
        value("nursing_bed_share_poverty").await,
        (Some(pov_n), Some(pov))
    );
    let occupied = n(format!(
        "SELECT COUNT(*) FROM bed_stay s JOIN bed b ON b.id = s.bed_id JOIN organisation o ON o.id = b.org_id \
         WHERE {homes_sql} AND s.from_on <= $1 AND (s.until_on IS NULL OR s.until_on > $1)"
    ))
    .await;
    assert_eq!(occupied, 2.0);
    assert_eq!(
        value("bed_occupancy_rate").await,
        (Some(occupied), Some(all))
    );
    let institutions = n(format!(
        "SELECT COUNT(*) FROM organisation o WHERE {homes_sql}"
    ))
    .await;
    let graded = n(format!(
        "SELECT COUNT(*) FROM organisation o WHERE {homes_sql} AND o.grade >= 2 AND (o.grade_expires_on IS NULL OR o.grade_expires_on >= $1)"
    ))
    .await;
    assert_eq!(
        (institutions, graded),
        (3.0, 1.0),
        "the expired grade does not count"
    );
    assert_eq!(
        value("graded_institution_share").await,
        (Some(graded), Some(institutions))
    );
    let staff = |role: &str, cert: bool| {
        format!(
            "SELECT COUNT(*) FROM staff s JOIN organisation o ON o.id = s.org_id WHERE {homes_sql} AND s.role = '{role}' \
             AND s.hired_on <= $1 AND (s.left_on IS NULL OR s.left_on > $1){}",
            if cert {
                " AND s.certificate_no IS NOT NULL AND s.certificate_no <> ''"
            } else {
                ""
            }
        )
    };
    let sw = n(staff("social_worker", false)).await;
    assert_eq!(
        value("social_workers_per_100_beds").await,
        (Some(sw), Some(all))
    );
    let cg = n(staff("caregiver", false)).await;
    let cg_cert = n(staff("caregiver", true)).await;
    assert_eq!((cg, cg_cert), (4.0, 3.0));
    assert_eq!(
        value("certified_caregiver_share").await,
        (Some(cg_cert), Some(cg))
    );
    let sixty = ymd(today - chrono::Months::new(720));
    let elders = n(format!(
        "SELECT COUNT(*) FROM elder WHERE status = 'active' AND (death_date IS NULL OR death_date > $1) AND birth_date <= '{sixty}'"
    ))
    .await;
    assert_eq!(value("beds_per_1000").await, (Some(all), Some(elders)));
    // The extremely poor: three cannot look after themselves, one of them housed; two asked
    // (the one housed and the applicant), one of them housed.
    assert_eq!(
        value("concentrated_support_disabled").await,
        (Some(1.0), Some(3.0))
    );
    assert_eq!(
        value("concentrated_support_willing").await,
        (Some(1.0), Some(2.0))
    );
    // The homes behind each figure add up to it, home by home.
    for id in [
        "nursing_bed_share",
        "nursing_bed_share_poverty",
        "social_beds_share",
        "graded_institution_share",
        "social_workers_per_100_beds",
        "bed_occupancy_rate",
        "certified_caregiver_share",
    ] {
        let (s, h, _) = t
            .call(
                "GET",
                &format!("/api/v1/indicators/{id}/homes?region_code=320682000000&period={year}"),
                Some(&c),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{h}");
        let sum = |k: &str| -> f64 {
            h["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x[k].as_f64().unwrap())
                .sum()
        };
        assert_eq!(
            (Some(sum("numerator")), Some(sum("denominator"))),
            value(id).await,
            "{id}: {h}"
        );
    }
    let (s, h, _) = t
        .call(
            "GET",
            &format!(
                "/api/v1/indicators/nursing_bed_share/homes?region_code=320682000000&period={year}"
            ),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h["items"][0]["name"], "长青养老院",
        "no nursing beds: furthest first: {h}"
    );
    let (s, _, _) = t
        .call(
            "GET",
            &format!("/api/v1/indicators/elders_60/homes?region_code=320682000000&period={year}"),
            Some(&c),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // A second 特困 person is admitted: the incremental refresh carries it to the county and
    // agrees with a full rebuild.
    call(
        "POST",
        format!("/api/v1/orgs/{}/admissions", homes[0]),
        Some(json!({"elder_id": poor[1], "bed_id": beds[1]})),
    )
    .await;
    let inc = rollup::refresh(db, today, false).await.unwrap();
    assert_eq!(inc.mode, "incremental", "{inc:?}");
    assert_eq!(
        value("concentrated_support_disabled").await,
        (Some(2.0), Some(3.0))
    );
    assert_eq!(value("bed_occupancy_rate").await.0, Some(3.0));
    let before: Vec<(String, String, String)> = sqlx::query(
        "SELECT region_code, period, measures FROM indicator_rollup ORDER BY region_code, period",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    rollup::refresh(db, today, true).await.unwrap();
    let after: Vec<(String, String, String)> = sqlx::query(
        "SELECT region_code, period, measures FROM indicator_rollup ORDER BY region_code, period",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert_eq!(
        before, after,
        "the incremental refresh equals a full rebuild"
    );
}

/// Family care beds: set up only for an assessed elder at home with an emergency call, one at a
/// time; counted apart from the homes' beds and in beds per 1,000 elders; the provider's month's
/// claim pays the bed for its days; the registry's death ends it that day.
#[tokio::test]
async fn db_family_care_beds_need_an_assessment_count_apart_and_are_claimed_by_their_days() {
    use yiyang::indicator::rollup;
    let t = TestApp::new("demo", 60).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("assessor", &["assessor"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let a = t.login("assessor").await;
    let db = &t.state.db;
    let call = |m: &'static str, uri: String, body: Option<Value>| {
        let (t, c) = (&t, c.clone());
        async move { t.call(m, &uri, Some(&c), body).await }
    };
    let today = yiyang::platform::today();
    let first = (today.with_day(1).unwrap() - Duration::days(1))
        .with_day(1)
        .unwrap();
    let n = (today.with_day(1).unwrap() - first).num_days();
    let day = |k: i64| ymd(first + Duration::days(k));
    let (s, org, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "provider", "name": "安康居家养老服务中心", "ownership": "private", "region_code": "320682103000"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{org}");
    let org = org["id"].as_str().unwrap().to_string();
    let people: Vec<String> = sqlx::query(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 3",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    let bed = |who: &str, adaptation: Value, start: String| {
        json!({"elder_id": who, "contract_no": format!("JTCW-{}", &who[who.len() - 6..]), "signed_on": start,
            "start_on": start, "adaptation": adaptation, "visits_per_month": 4})
    };
    let path = format!("/api/v1/orgs/{org}/family-beds");
    // Not assessed yet: refused.
    let (s, v, _) = call(
        "POST",
        path.clone(),
        Some(bed(&people[0], json!(["紧急呼叫设备", "安全扶手"]), day(9))),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("有效的能力评估"),
        "{v}"
    );
    for id in &people[..2] {
        let (s, v, _) = t
            .call(
                "POST",
                &format!("/api/v1/elders/{id}/assessments"),
                Some(&a),
                Some(json!({"reason": "first", "assessed_on": day(-20), "assessors": ["张评估", "李评估"],
                    "informant": "女儿", "input": {"items": crate::assessment::with_total(70)}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // No emergency call, or an item not on the list: refused, saying what is missing.
    let (s, v, _) = call(
        "POST",
        path.clone(),
        Some(bed(&people[0], json!(["安全扶手"]), day(9))),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("紧急呼叫"), "{v}");
    let (s, v, _) = call(
        "POST",
        path.clone(),
        Some(bed(&people[0], json!(["紧急呼叫设备", "游泳池"]), day(9))),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = call(
        "POST",
        path.clone(),
        Some(bed(
            &people[0],
            json!(["emergency_call", "地面防滑"]),
            day(9),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["adaptation"], json!(["紧急呼叫设备", "地面防滑"]));
    let fb = v["id"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        "POST",
        path.clone(),
        Some(bed(&people[0], json!(["紧急呼叫设备"]), day(12))),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "one at a time: {v}");
    // Someone living in a home cannot have one.
    let (s, home, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(json!({"kind": "institution", "name": "康乐护理院", "ownership": "private", "region_code": "320682103000"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{home}");
    let home = home["id"].as_str().unwrap().to_string();
    let (_, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{home}/beds"),
        Some(json!({"room": "101", "labels": ["1"], "opened_on": day(-60)})),
    )
    .await;
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{home}/admissions"),
        Some(json!({"elder_id": people[1], "bed_id": v["ids"][0], "admitted_on": day(-10)})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, _) = call(
        "POST",
        path.clone(),
        Some(bed(&people[1], json!(["紧急呼叫设备"]), day(9))),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Last month's claim pays the bed from the 10th, at the default 150 元 a month.
    let month = first.format("%Y-%m").to_string();
    let (s, v, _) = call(
        "POST",
        "/api/v1/bed-claims".into(),
        Some(json!({"region_code": "320682103000", "month": month})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list, _) = call(
        "GET",
        format!("/api/v1/bed-claims?region_code=320682103000&month={month}&org_id={org}"),
        None,
    )
    .await;
    let claim = list["items"][0]["id"]
        .as_str()
        .expect("the provider's claim")
        .to_string();
    let (_, d, _) = call("GET", format!("/api/v1/bed-claims/{claim}"), None).await;
    let lines = d["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{d}");
    assert_eq!(lines[0]["kind_zh"], "家庭养老床位");
    assert_eq!(lines[0]["paid_days"].as_i64(), Some(n - 9));
    let want = (150.0 * (n - 9) as f64 / n as f64 * 100.0).round() / 100.0;
    assert_eq!(lines[0]["amount"].as_f64(), Some(want), "{d}");

    // Counted apart: a family bed, not a home's bed; in beds per 1,000 elders.
    rollup::refresh(db, today, true).await.unwrap();
    let year = today.year();
    let value = |id: &'static str| {
        let (t, c) = (&t, c.clone());
        async move {
            let (s, v, _) = t
                .call(
                    "GET",
                    &format!(
                        "/api/v1/indicators/value?id={id}&region_code=320682000000&period={year}"
                    ),
                    Some(&c),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            (v["numerator"].as_f64(), v["value"].as_f64())
        }
    };
    assert_eq!(value("family_care_beds_new").await.1, Some(1.0));
    assert_eq!(
        value("beds_per_1000").await.0,
        Some(2.0),
        "one home bed and one family bed"
    );
    assert_eq!(
        value("bed_occupancy_rate").await.0,
        Some(1.0),
        "the family bed is not a home's"
    );

    // The registry records the death: the bed ends that day.
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/elders/{}/death", people[0]),
        Some(json!({"death_date": ymd(today)})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list, _) = call("GET", path.clone(), None).await;
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == fb.as_str())
        .unwrap();
    assert_eq!(mine["end_on"], ymd(today), "{list}");
    assert_eq!(mine["end_reason"], "死亡");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/family-beds/{fb}/end"),
        Some(json!({"reason": "解除协议"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "already ended: {v}");
}

/// A home's manager has an account bound to her home: she keeps its beds, residents and staff and
/// sees its claims, and nothing of another home answers her — not even that it exists. The
/// security administrator cannot bind an account wrongly (no home, another role beside, a home
/// outside the account's region).
#[tokio::test]
async fn db_a_home_managers_account_reaches_only_its_own_home() {
    let t = TestApp::new("demo", 40).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user(
        "secadmin",
        &["security_admin"],
        "320682000000",
        all_scopes(),
    )
    .await;
    let c = t.login("officer").await;
    let home = |name: &'static str, town: &'static str| {
        let (t, c) = (&t, c.clone());
        async move {
            let (s, v, _) = t
                .call(
                    "POST",
                    "/api/v1/orgs",
                    Some(&c),
                    Some(
                        json!({"kind": "township_home", "name": name, "ownership": "public_private",
                        "region_code": town}),
                    ),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_string()
        }
    };
    let a = home("东陈镇敬老院", "320682103000").await;
    let b = home("丁堰镇敬老院", "320682104000").await;
    let first_bed = |org: String, who: String| {
        let t = &t;
        async move {
            let (s, v, _) = t
                .call(
                    "POST",
                    &format!("/api/v1/orgs/{org}/beds"),
                    Some(&who),
                    Some(
                        json!({"building": "1", "floor": "1", "room": "101", "labels": ["1", "2"]}),
                    ),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            let (_, v, _) = t
                .call("GET", &format!("/api/v1/orgs/{org}/beds"), Some(&who), None)
                .await;
            v["items"][0]["id"].as_str().unwrap().to_string()
        }
    };
    let bed_b = first_bed(b.clone(), c.clone()).await;

    // Binding rules, through the console's account API.
    let sa = t.login("secadmin").await;
    let new_user = |body: Value| {
        let (t, sa) = (&t, sa.clone());
        async move { t.call("POST", "/api/v1/users", Some(&sa), Some(body)).await }
    };
    let base = |roles: Value, org: Value, region: &str| {
        json!({"username": "mgr_try", "display_name": "试", "password": "Yiyang-test-2026!",
            "roles": roles, "region_code": region,
            "scopes": {"edit": true, "aggregates": false, "individuals": true}, "org_id": org})
    };
    for (body, field, words) in [
        (
            base(json!(["institution_manager"]), Value::Null, "320682000000"),
            "org_id",
            "请选择该账号所属的机构",
        ),
        (
            base(json!(["officer"]), json!(a), "320682000000"),
            "org_id",
            "账号需要所属机构，其他角色请不要填写",
        ),
        (
            base(
                json!(["institution_manager", "worker"]),
                json!(a),
                "320682000000",
            ),
            "roles",
            "只能有这一个角色",
        ),
        (
            base(json!(["institution_manager"]), json!(a), "320682104000"),
            "org_id",
            "不在该账号的区划内",
        ),
        (
            base(
                json!(["institution_manager"]),
                json!("no-such-home"),
                "320682000000",
            ),
            "org_id",
            "找不到所选机构",
        ),
    ] {
        let (s, v, _) = new_user(body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["detail"].as_str().unwrap().contains(words), "{v}");
        assert!(v.to_string().contains(field), "{v}");
    }
    let (s, v, _) = new_user(base(
        json!(["institution_manager"]),
        json!(a),
        "320682000000",
    ))
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, users, _) = t.call("GET", "/api/v1/users", Some(&sa), None).await;
    let row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "mgr_try")
        .unwrap();
    assert_eq!(row["org_id"], a.as_str());
    assert_eq!(row["org_name"], "东陈镇敬老院");
    // The security administrator finds homes by name to bind accounts, and sees nothing more.
    let (s, v, _) = t
        .call("GET", "/api/v1/orgs?q=敬老院", Some(&sa), None)
        .await;
    assert_eq!((s, v["total"].as_i64()), (StatusCode::OK, Some(2)), "{v}");
    for uri in [
        format!("/api/v1/orgs/{a}/staff"),
        format!("/api/v1/orgs/{a}/beds"),
        "/api/v1/bed-summary".into(),
    ] {
        let (s, v, _) = t.call("GET", &uri, Some(&sa), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{uri}: {v}");
    }

    // The manager at work.
    t.add_user_in(
        "mgr",
        &["institution_manager"],
        "320682000000",
        all_scopes(),
        Some(&a),
    )
    .await;
    let m = t.login("mgr").await;
    let call = |meth: &'static str, uri: String, body: Option<Value>| {
        let (t, m) = (&t, m.clone());
        async move { t.call(meth, &uri, Some(&m), body).await }
    };
    let (_, me, _) = call("GET", "/api/v1/me".into(), None).await;
    assert_eq!(me["org_id"], a.as_str());
    assert_eq!(me["org_name"], "东陈镇敬老院");
    assert_eq!(me["roles"][0], "institution_manager");

    let (s, v, _) = call("GET", "/api/v1/orgs".into(), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["id"], a.as_str());
    let bed_a = first_bed(a.clone(), m.clone()).await;
    for uri in [
        format!("/api/v1/orgs/{b}"),
        format!("/api/v1/orgs/{b}/beds"),
        format!("/api/v1/orgs/{b}/residents"),
        format!("/api/v1/orgs/{b}/staff"),
        format!("/api/v1/orgs/{b}/staffing"),
        format!("/api/v1/orgs/{b}/offers"),
        format!("/api/v1/orgs/{b}/family-beds"),
    ] {
        let (s, v, _) = call("GET", uri.clone(), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}: {v}");
    }
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{b}/beds"),
        Some(json!({"building": "2", "floor": "1", "room": "1", "labels": ["1"]})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{b}/staff"),
        Some(json!({"name": "王芳", "role": "caregiver"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{a}/staff"),
        Some(json!({"name": "王芳", "role": "caregiver"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Registering homes, publishing a region's rules, the registry: not hers.
    let (s, v, _) = call(
        "POST",
        "/api/v1/orgs".into(),
        Some(
            json!({"kind": "township_home", "name": "新院", "ownership": "public",
            "region_code": "320682103000"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v, _) = call(
        "PUT",
        "/api/v1/admission-policy".into(),
        Some(json!({"region_code": "320682000000", "tiers": []})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v, _) = call(
        "POST",
        "/api/v1/elders/search".into(),
        Some(json!({"q": "王"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // The region's whole queue is the bureau's: she offers her beds to it instead.
    let (s, v, _) = call("GET", "/api/v1/admission-queue".into(), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v, _) = call("GET", format!("/api/v1/elders/{}", "x"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // She admits by citizen ID and name (she cannot browse the registry), onto her own bed only.
    let cid = yiyang_kernel::citizen_id::compose(
        "320682",
        NaiveDate::from_ymd_opt(1940, 3, 8).unwrap(),
        41,
    );
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elders",
            Some(&c),
            Some(json!({"citizen_id": cid, "name": "周桂珍", "residence_region": "320682104205"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{a}/admissions"),
        Some(json!({"citizen_id": cid, "name": "周桂珍", "bed_id": bed_b})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another home's bed: {v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{b}/admissions"),
        Some(json!({"citizen_id": cid, "name": "周桂珍", "bed_id": bed_b})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/orgs/{a}/admissions"),
        Some(json!({"citizen_id": cid, "name": "周桂珍", "bed_id": bed_a})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, _) = call("GET", format!("/api/v1/orgs/{a}/residents"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["name"], "周桂珍", "{v}");

    // The officer's resident in the other home: the manager cannot discharge or move them.
    let other: String =
        sqlx::query_scalar("SELECT id FROM elder WHERE status = 'active' ORDER BY id LIMIT 1")
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/orgs/{b}/admissions"),
            Some(&c),
            Some(json!({"elder_id": other, "bed_id": bed_b})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let adm_b = v["admission_id"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        "POST",
        format!("/api/v1/admissions/{adm_b}/discharge"),
        Some(json!({"reason": "home"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // Counts and claims: her home only.
    let (s, v, _) = call("GET", "/api/v1/bed-summary".into(), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["org_id"], a.as_str());
    assert_eq!(rows[0]["occupied"], 1);
    let month = yiyang::platform::today().format("%Y-%m").to_string();
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/bed-claims",
            Some(&c),
            Some(json!({"region_code": "320682000000", "month": month})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, all, _) = t
        .call(
            "GET",
            &format!("/api/v1/bed-claims?month={month}"),
            Some(&c),
            None,
        )
        .await;
    let claim_of = |org: &str| {
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["org_id"] == org)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (s, v, _) = call("GET", format!("/api/v1/bed-claims?month={month}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mine: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["org_id"].as_str().unwrap())
        .collect();
    assert_eq!(mine, vec![a.as_str()], "{v}");
    let (s, v, _) = call("GET", format!("/api/v1/bed-claims/{}", claim_of(&b)), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v, _) = call("GET", format!("/api/v1/bed-claims/{}", claim_of(&a)), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Computing or approving claims is the bureau's.
    let (s, v, _) = call(
        "POST",
        "/api/v1/bed-claims".into(),
        Some(json!({"region_code": "320682000000", "month": month})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

/// Reviewed bed-subsidy claims go out through the catalogue's payment batch: each home with an
/// account becomes a line of the batch's bank file (a sheet of its own), a home without one is
/// left out with the reason, a claim goes into one batch only, it cannot be marked paid apart
/// from its batch, it is paid when the batch is, and a discarded draft lets go of it.
#[tokio::test]
async fn db_reviewed_claims_are_paid_to_the_homes_accounts_through_a_payment_batch() {
    const COUNTY: &str = "320682000000";
    let t = TestApp::new("demo", 40).await;
    t.add_user("officer", &["officer"], COUNTY, all_scopes())
        .await;
    t.add_user("reviewer", &["officer"], COUNTY, all_scopes())
        .await;
    t.add_user("third", &["officer"], COUNTY, all_scopes())
        .await;
    let c = t.login("officer").await;
    let r = t.login("reviewer").await;
    let third = t.login("third").await;
    yiyang::catalog::store::seed_demo(
        &t.state.db,
        COUNTY,
        &yiyang::audit::Who {
            actor_id: None,
            actor_name: "test".into(),
        },
    )
    .await
    .unwrap();
    let call = |who: &str, m: &'static str, uri: String, body: Option<Value>| {
        let (t, who) = (&t, who.to_string());
        async move { t.call(m, &uri, Some(&who), body).await }
    };
    let today = yiyang::platform::today();
    let month = today.format("%Y-%m").to_string();
    let first = ymd(today.with_day(1).unwrap());
    let people: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM elder WHERE status = 'active' AND death_date IS NULL ORDER BY id LIMIT 2",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    let mut homes = vec![];
    for (name, town, bank) in [
        ("东陈镇康乐园", "320682103000", true),
        ("丁堰镇颐和园", "320682104000", false),
    ] {
        let mut body = json!({"kind": "institution", "name": name, "ownership": "public_private",
            "region_code": town});
        if bank {
            body["bank_name"] = json!("如皋农村商业银行东陈支行");
            body["bank_account_name"] = json!("如皋市东陈镇康乐园");
            body["bank_account"] = json!("3206 8201 0001 2345 678");
        }
        let (s, v, _) = call(&c, "POST", "/api/v1/orgs".into(), Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        if bank {
            assert_eq!(v["bank_account"], "3206820100012345678", "spaces dropped");
        }
        homes.push(v["id"].as_str().unwrap().to_string());
    }
    // An account number that is not one, and one without its bank: refused, saying what to fix.
    let (s, v, _) = call(
        &c,
        "PATCH",
        format!("/api/v1/orgs/{}", homes[1]),
        Some(json!({"bank_account": "62-1234"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("8 到 32 位数字"),
        "{v}"
    );
    let (s, v, _) = call(
        &c,
        "PATCH",
        format!("/api/v1/orgs/{}", homes[1]),
        Some(json!({"bank_account": "62284801234567890"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("开户银行和户名"),
        "{v}"
    );

    for (home, elder) in homes.iter().zip(&people) {
        let (s, v, _) = call(
            &c,
            "POST",
            format!("/api/v1/orgs/{home}/beds"),
            Some(json!({"building": "1", "floor": "1", "room": "1", "labels": ["1"], "opened_on": first})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let bed = v["ids"][0].as_str().unwrap().to_string();
        let (s, v, _) = call(
            &c,
            "POST",
            format!("/api/v1/orgs/{home}/admissions"),
            Some(json!({"elder_id": elder, "bed_id": bed, "admitted_on": first})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v, _) = call(
        &c,
        "POST",
        "/api/v1/bed-claims".into(),
        Some(json!({"region_code": COUNTY, "month": month})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let claims = |who: String| {
        let (t, month) = (&t, month.clone());
        async move {
            let (s, v, _) = t
                .call(
                    "GET",
                    &format!("/api/v1/bed-claims?month={month}"),
                    Some(&who),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["items"].as_array().unwrap().clone()
        }
    };
    let list = claims(c.clone()).await;
    let claim_of = |list: &[Value], home: &str| -> Value {
        list.iter().find(|x| x["org_id"] == home).unwrap().clone()
    };
    let with_bank = claim_of(&list, &homes[0]);
    let amount = with_bank["total"].as_f64().unwrap();
    assert!(amount > 0.0, "{with_bank}");
    for x in &list {
        let (s, v, _) = call(
            &r,
            "POST",
            format!("/api/v1/bed-claims/{}/steps", x["id"].as_str().unwrap()),
            Some(json!({"action": "review"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    let batch = |who: String| {
        let (t, month) = (&t, month.clone());
        async move {
            let (s, v, _) = t
                .call(
                    "POST",
                    "/api/v1/payment-batches",
                    Some(&who),
                    Some(json!({"region_code": COUNTY, "month": month})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["id"].as_str().unwrap().to_string()
        }
    };
    let b1 = batch(c.clone()).await;
    let to_batch = |b: String| {
        call(
            &c,
            "POST",
            "/api/v1/bed-claims/to-batch".into(),
            Some(json!({"batch_id": b, "month": month})),
        )
    };
    let (s, v, _) = to_batch(b1.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["added"], 1, "{v}");
    assert_eq!(v["total"].as_f64().unwrap(), amount);
    assert_eq!(v["skipped"][0]["org_name"], "丁堰镇颐和园", "{v}");
    assert!(
        v["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("未登记收款账户"),
        "{v}"
    );
    // Again: nothing more to add (one batch per claim).
    let (s, v, _) = to_batch(b1.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["added"], 0, "{v}");
    let claimed = claim_of(&claims(c.clone()).await, &homes[0]);
    assert_eq!(claimed["batch_id"], b1.as_str());
    assert!(
        claimed["state_zh"].as_str().unwrap().contains("发放批次"),
        "{claimed}"
    );
    let (s, v, _) = call(
        &c,
        "POST",
        format!(
            "/api/v1/bed-claims/{}/steps",
            claimed["id"].as_str().unwrap()
        ),
        Some(json!({"action": "paid"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("随批次发放"), "{v}");

    // The batch shows the home, and its bank file pays the home's account on a sheet of its own.
    let (s, v, _) = call(&c, "GET", format!("/api/v1/payment-batches/{b1}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["org_payments"][0]["payee"], "东陈镇康乐园", "{v}");
    assert_eq!(v["org_total"].as_f64().unwrap(), amount);
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/v1/payment-batches/{b1}/bank-file"))
        .header("cookie", &c)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let (s, bytes, _) = t.raw(req).await;
    assert_eq!(s, StatusCode::OK);
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range("机构代发").unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][1], "东陈镇康乐园");
    assert_eq!(rows[1][4], "3206820100012345678");
    assert_eq!(rows[1][5].parse::<f64>().unwrap(), amount);

    // Discarding the draft lets go of the claim; a second batch takes it, and paying the batch
    // pays the claim.
    let (s, v, _) = call(
        &c,
        "POST",
        format!("/api/v1/payment-batches/{b1}/steps"),
        Some(json!({"action": "discard"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(claim_of(&claims(c.clone()).await, &homes[0])["batch_id"].is_null());
    let b2 = batch(c.clone()).await;
    let (_, seen, _) = call(&r, "GET", format!("/api/v1/payment-batches/{b2}"), None).await;
    // The reviewer puts the claim in this time: then the batch is not hers to review.
    let (s, v, _) = call(
        &r,
        "POST",
        "/api/v1/bed-claims/to-batch".into(),
        Some(json!({"batch_id": b2, "month": month})),
    )
    .await;
    assert_eq!((s, v["added"].clone()), (StatusCode::OK, json!(1)), "{v}");
    let (s, v, _) = call(
        &r,
        "POST",
        format!("/api/v1/payment-batches/{b2}/steps"),
        Some(json!({"action": "review"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("列入本批次的人"),
        "{v}"
    );
    // A review approves what its reviewer saw: the total from before the claim came is stale.
    let stale = seen["total"].as_f64().unwrap() + seen["org_total"].as_f64().unwrap();
    let (s, v, _) = call(
        &third,
        "POST",
        format!("/api/v1/payment-batches/{b2}/steps"),
        Some(json!({"action": "review", "seen_total": stale})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("已经变化"), "{v}");
    let (_, now, _) = call(&third, "GET", format!("/api/v1/payment-batches/{b2}"), None).await;
    let fresh = now["total"].as_f64().unwrap() + now["org_total"].as_f64().unwrap();
    assert!(
        (fresh - stale - amount).abs() < 0.005,
        "{fresh} {stale} {amount}"
    );
    for (who, action, extra) in [(&third, "review", json!(fresh)), (&c, "paid", Value::Null)] {
        let (s, v, _) = call(
            who,
            "POST",
            format!("/api/v1/payment-batches/{b2}/steps"),
            Some(json!({"action": action, "seen_total": extra})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let paid = claim_of(&claims(c.clone()).await, &homes[0]);
    assert_eq!(paid["state"], "paid", "{paid}");
    assert!(paid["paid_at"].is_string(), "{paid}");
    // A reviewed batch takes nothing more.
    let (s, v, _) = to_batch(b2.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'bed_claim.batch'")
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    assert_eq!(n, 3);
}

/// The county supplies its map (GeoJSON of its towns): checked and kept, drawn for the public
/// with the homes' coordinates; a town's board falls back to its county's map; projected
/// coordinates and other bad files are refused saying what to fix; a home's manager cannot
/// change it; removed, the board is a list again (404). Every change audited.
#[tokio::test]
async fn db_a_county_map_is_kept_and_served_to_the_public_board() {
    let t = TestApp::new("demo", 20).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("town", &["officer"], "320682103000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let (s, v, _) = t.call("GET", "/api/v1/public/map", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no map yet: {v}");
    let put = |who: String, code: &'static str, body: String| {
        let t = &t;
        async move {
            let req = axum::http::Request::builder()
                .method("PUT")
                .uri(format!("/api/v1/regions/{code}/map"))
                .header("cookie", who)
                .header("content-type", "application/geo+json")
                .body(axum::body::Body::from(body))
                .unwrap();
            let (s, b, _) = t.raw(req).await;
            (
                s,
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
            )
        }
    };
    let square = |x: f64, y: f64| {
        json!([[
            [x, y],
            [x + 0.1, y],
            [x + 0.1, y - 0.08],
            [x, y - 0.08],
            [x, y]
        ]])
    };
    let doc = json!({"type": "FeatureCollection", "name": "如皋市乡镇界", "features": [
        {"type": "Feature", "properties": {"NAME": "东陈镇"}, "geometry": {"type": "Polygon", "coordinates": square(120.5, 32.5)}},
        {"type": "Feature", "properties": {"NAME": "丁堰镇"}, "geometry": {"type": "Polygon", "coordinates": square(120.6, 32.5)}}
    ]});
    let projected = json!({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[40512345.0, 3581234.0], [40512400.0, 3581234.0], [40512400.0, 3581300.0], [40512345.0, 3581234.0]]]}}]});
    let (s, v) = put(c.clone(), "320682000000", projected.to_string()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("投影坐标"), "{v}");
    let (s, v) = put(c.clone(), "320682000000", "{\"type\": ".into()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Another county, or a town officer for the county: not theirs.
    let (s, v) = put(c.clone(), "320681000000", doc.to_string()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let town = t.login("town").await;
    let (s, v) = put(town, "320682000000", doc.to_string()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = put(c.clone(), "320682000000", doc.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["features"].as_i64(), v["points"].as_i64()),
        (Some(2), Some(10))
    );

    // A home with coordinates shows on the board with them.
    let (s, home, _) = t
        .call(
            "POST",
            "/api/v1/orgs",
            Some(&c),
            Some(
                json!({"kind": "township_home", "name": "东陈镇敬老院", "ownership": "public",
                "region_code": "320682103000", "lon": 120.55, "lat": 32.46}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{home}");
    let org = home["id"].as_str().unwrap();
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/beds"),
            Some(&c),
            Some(json!({"building": "1", "floor": "1", "room": "1", "labels": ["1", "2"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, _) = t.call("GET", "/api/v1/public/vacancies", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let h = &v["homes"][0];
    assert_eq!(
        (h["lon"].as_f64(), h["lat"].as_f64()),
        (Some(120.55), Some(32.46)),
        "{v}"
    );

    for q in ["", "?region_code=320682103000"] {
        let (s, v, h) = t
            .call("GET", &format!("/api/v1/public/map{q}"), None, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["region_code"], "320682000000");
        assert_eq!(v["caption"], "如皋市乡镇界");
        assert_eq!(v["map"]["features"][1]["properties"]["name"], "丁堰镇");
        assert!(h.get("cache-control").is_some());
    }
    let (s, v, _) = t
        .call("GET", "/api/v1/public/map?region_code=abc", None, None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    let (s, v, _) = t
        .call("DELETE", "/api/v1/regions/320682000000/map", Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _, _) = t.call("GET", "/api/v1/public/map", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'region.map' OR action = 'region.map_remove'",
    )
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(n, 2);
}

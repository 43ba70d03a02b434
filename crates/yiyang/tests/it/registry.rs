use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;

/// Editing an elder: an absent field is kept, a value sets it, `null` or an empty string clears
/// it (coordinates, disability grade and the like included); every change is audited.
#[tokio::test]
async fn db_elder_edit_sets_keeps_and_clears() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("of").await;
    let cid = yiyang_kernel::citizen_id::compose(
        "320682",
        chrono::NaiveDate::from_ymd_opt(1941, 5, 6).unwrap(),
        21,
    );
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elders",
            Some(&c),
            Some(
                json!({"citizen_id": cid, "name": "测试老人", "residence_region": "320682104205",
                "address": "3组12号", "lon": 120.57, "lat": 32.39, "disability_grade": 2,
                "entitled_veteran_family": true, "living_status": "独居"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/elders/{id}");
    let patch = |body: serde_json::Value| {
        let (t, c, path) = (&t, c.clone(), path.clone());
        async move {
            let (s, v, _) = t.call("PATCH", &path, Some(&c), Some(body)).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    // Absent fields are kept.
    let v = patch(json!({"name": "测试老人甲"})).await;
    assert_eq!(v["lon"], 120.57);
    assert_eq!(v["disability_grade"], 2);
    assert_eq!(v["address"], "3组12号");
    // null and "" clear.
    let v = patch(
        json!({"lon": null, "lat": null, "disability_grade": null, "address": "",
        "entitled_veteran_family": null, "living_status": null}),
    )
    .await;
    for k in [
        "lon",
        "lat",
        "disability_grade",
        "address",
        "entitled_veteran_family",
        "living_status",
    ] {
        assert!(v[k].is_null(), "{k} not cleared: {v}");
    }
    assert_eq!(v["name"], "测试老人甲");
    // The status list shows the latest change of each kind, in the edit's answer as in the
    // detail view (the person's row joined to every change).
    let living = |v: &serde_json::Value| {
        v["statuses"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["kind"] == "living_status"))
            .map(|s| s["value"].clone())
    };
    assert_eq!(living(&v), Some(serde_json::Value::Null), "{v}");
    let v = patch(json!({"living_status": "独居"})).await;
    assert_eq!(living(&v), Some(json!("独居")), "{v}");
    let (_, d, _) = t.call("GET", &path, Some(&c), None).await;
    assert_eq!(d["statuses"], v["statuses"]);
    assert_eq!(d["name"], "测试老人甲");
    // A value sets again; a bad one is refused and changes nothing.
    let v = patch(json!({"lon": 120.6, "lat": 32.4})).await;
    assert_eq!(v["lon"], 120.6);
    let (s, _, _) = t
        .call(
            "PATCH",
            &path,
            Some(&c),
            Some(json!({"lon": 200.0, "address": "新地址"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, v, _) = t.call("GET", &path, Some(&c), None).await;
    assert_eq!(
        (v["lon"].as_f64(), v["address"].is_null()),
        (Some(120.6), true)
    );
    assert!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'elder.update'")
            .await
            >= 3
    );
}

/// A new SQLite file is made with 8 KB pages (`Db::connect`): a first load of 1M people writes
/// and folds back fewer, fuller pages. (PostgreSQL's pages are its own.)
#[tokio::test]
async fn db_new_sqlite_file_has_8k_pages() {
    let t = TestApp::new("demo", 3).await;
    if t.pg_url.is_none() {
        assert_eq!(t.count("PRAGMA page_size").await, 8192);
    }
}

/// SQLite: commits leave the WAL to the database's own checkpointer (`platform::db`), and it
/// keeps up: rounds of writes with pauses between them reuse the WAL from its start instead of
/// growing it by every round's pages.
#[tokio::test]
async fn db_sqlite_wal_is_folded_in_by_its_own_thread() {
    let t = TestApp::new("demo", 0).await;
    let Some(path) = &t.sqlite_path else { return };
    assert_eq!(t.count("PRAGMA wal_autocheckpoint").await, 0);
    let db = &t.state.db;
    sqlx::query("CREATE TABLE wal_probe (k INTEGER PRIMARY KEY, v TEXT)")
        .execute(&db.pool)
        .await
        .unwrap();
    let wal = || std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
    let pad = "x".repeat(4000);
    for round in 0..20 {
        let mut tx = db.begin().await.unwrap();
        for k in 0..250 {
            sqlx::query("INSERT INTO wal_probe (k, v) VALUES ($1, $2)")
                .bind((round * 250 + k) as i64)
                .bind(&pad)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // 20 rounds of about 1 MB each: never folded in, the WAL would hold all 20 MB.
    assert!(wal() < 6 << 20, "WAL grew to {} bytes", wal());
}

/// The state checks refuse unknown values on both engines; on SQLite they are worded so that a row
/// written builds no temporary table (migration 19, `sqlite_checks_without_in`).
#[tokio::test]
async fn db_state_checks_refuse_unknown_values_cheaply() {
    let t = TestApp::new("demo", 3).await;
    let pool = &t.state.db.pool;
    let id = first_elder(pool).await;
    let bad = sqlx::query("UPDATE elder SET status = 'missing' WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await;
    assert!(bad.is_err(), "an unknown elder status was stored");
    for ok in ["moved_out", "deceased", "active"] {
        sqlx::query("UPDATE elder SET status = $1 WHERE id = $2")
            .bind(ok)
            .bind(&id)
            .execute(pool)
            .await
            .unwrap();
    }
    let version = |state: &'static str| {
        sqlx::query(
            "INSERT INTO catalog_version (id, region_code, number, state, created_by, created_at) \
             VALUES ($1, '320682000000', 99, $1, 't', 't')",
        )
        .bind(state)
        .execute(pool)
    };
    assert!(
        version("archived").await.is_err(),
        "an unknown catalogue state was stored"
    );
    version("superseded").await.unwrap();
    if t.state.db.backend == yiyang::platform::db::Backend::Sqlite {
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql LIKE '%CHECK%'",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(tables.len() >= 7, "{tables:?}");
        for (name, sql) in &tables {
            assert!(!sql.contains(" IN ("), "{name} still checks with IN: {sql}");
        }
        for stmt in [
            "EXPLAIN UPDATE elder SET status = 'active' WHERE id = 'x'",
            "EXPLAIN INSERT INTO entitlement (id, elder_id, catalog_region, item_code, state, tier, amount_fen, quota, \
             residence_region, since, version_id, run_id, reasons, updated_at) \
             VALUES ('i', 'e', 'r', 'c', 'granted', 't', 0, 0, 'r', 's', 'v', 'u', '', 'n')",
        ] {
            let plan = sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
                .fetch_all(pool)
                .await
                .unwrap();
            let opcodes: Vec<String> = plan
                .iter()
                .map(|r| sqlx::Row::get::<String, _>(r, 1))
                .collect();
            assert!(
                !opcodes.iter().any(|o| o == "OpenEphemeral"),
                "a temporary table per row: {stmt}"
            );
        }
    }
}

/// The id of the first elder of a test database.
async fn first_elder(pool: &sqlx::AnyPool) -> String {
    sqlx::query_scalar("SELECT id FROM elder ORDER BY id LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// An elder row is permanent: deleting it or changing its id is refused by the database itself
/// (PostgreSQL's bulk tables rely on that instead of foreign keys), other edits pass.
#[tokio::test]
async fn db_elder_rows_are_never_deleted_nor_rekeyed() {
    let t = TestApp::new("demo", 3).await;
    let pool = &t.state.db.pool;
    let id = first_elder(pool).await;
    let del = sqlx::query("DELETE FROM elder WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await;
    assert!(del.is_err(), "an elder row was deleted");
    let rekey = sqlx::query("UPDATE elder SET id = 'someone-else' WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await;
    assert!(rekey.is_err(), "an elder's id was changed");
    let null = sqlx::query("UPDATE elder SET id = NULL WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await;
    assert!(null.is_err(), "an elder's id was cleared");
    let edit = sqlx::query("UPDATE elder SET address = '新地址' WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(edit.rows_affected(), 1);
    // Setting the id to itself is no change and passes.
    sqlx::query("UPDATE elder SET id = id WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(t.count("SELECT COUNT(*) FROM elder").await, 3);
}

/// A residence is a village or community: a county or town code is refused with a sentence saying
/// so, and an edit's audit row names every field it changed.
#[tokio::test]
async fn db_residence_is_a_village_and_edits_name_their_fields() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("of").await;
    let cid = |seq| {
        yiyang_kernel::citizen_id::compose(
            "320682",
            chrono::NaiveDate::from_ymd_opt(1941, 5, 6).unwrap(),
            seq,
        )
    };
    for code in ["320682000000", "320682104000"] {
        let (s, v, _) = t
            .call(
                "POST",
                "/api/v1/elders",
                Some(&c),
                Some(json!({"citizen_id": cid(31), "name": "测试老人", "residence_region": code})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{code}: {v}");
        assert!(v.to_string().contains("村（社区）"), "{v}");
    }
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elders",
            Some(&c),
            Some(json!({"citizen_id": cid(32), "name": "测试老人", "residence_region": "320682104205"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap();
    let (s, v, _) = t
        .call(
            "PATCH",
            &format!("/api/v1/elders/{id}"),
            Some(&c),
            Some(json!({"address": "5组3号", "phone": "13812345678", "hukou_region": "320682104000"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let d: String = sqlx::Row::get(
        &sqlx::query(
            "SELECT detail FROM audit_log WHERE action = 'elder.update' ORDER BY seq DESC",
        )
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap(),
        0,
    );
    for f in ["address", "phone", "hukou_region"] {
        assert!(d.contains(f), "{f} not named in {d}");
    }
    assert!(
        !d.contains("13812345678") && !d.contains("5组3号"),
        "values stay out: {d}"
    );
    // Free text is bounded and shown as stored: markup, reordering controls and very long text
    // are refused with a sentence that says what to fix.
    let long = "长".repeat(300_000);
    for (body, says) in [
        (json!({"name": "<script>alert(1)</script>"}), "符号“<”"),
        (json!({"name": "王\u{202E}英秀"}), "控制字符"),
        (json!({"address": long}), "居住地址最多 200 个字"),
        (json!({"address": "幸福路\u{202E}5号"}), "控制字符"),
    ] {
        let (s, v, _) = t
            .call(
                "PATCH",
                &format!("/api/v1/elders/{id}"),
                Some(&c),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v.to_string().contains(says), "{says}: {v}");
    }
}

/// A missing number and then a real one through one prepared statement on one connection: sqlx's
/// Any driver sends a NULL f64 to PostgreSQL as a float4, and the statement it prepared then
/// refused the next coordinate (a 500 on editing an elder, now and then). `opt_f64` binds both.
#[tokio::test]
async fn db_a_missing_number_then_a_real_one_share_a_prepared_statement() {
    let (_db, path, url, _dir) = fresh_db().await;
    let target = url.unwrap_or_else(|| path.unwrap().to_str().unwrap().to_string());
    let one = yiyang::platform::db::Db::connect(&target, 1).await.unwrap();
    sqlx::query("CREATE TABLE coord (x DOUBLE PRECISION)")
        .execute(&one.pool)
        .await
        .unwrap();
    for v in [None, Some(1.5), None, Some(2.25)] {
        yiyang::platform::db::opt_f64(sqlx::query("INSERT INTO coord (x) VALUES ($1)"), v)
            .execute(&one.pool)
            .await
            .unwrap();
    }
    let r = sqlx::query("SELECT COUNT(x), SUM(x) FROM coord")
        .fetch_one(&one.pool)
        .await
        .unwrap();
    use sqlx::Row;
    assert_eq!(r.get::<i64, _>(0), 2);
    assert_eq!(r.get::<f64, _>(1), 3.75);
}

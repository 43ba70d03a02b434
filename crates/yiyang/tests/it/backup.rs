use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// Backed up while people are being registered: the copy has every registration acknowledged
/// before the backup began, a whole audit chain, and the writers were not held up; restored into
/// a fresh folder it checks clean, and an edited audit row in it is caught. On PostgreSQL (backed
/// up with pg_dump) `check` is the same and `backup` says to use pg_dump.
#[tokio::test]
async fn db_backup_during_writes_restores_every_acknowledged_write() {
    let t = Arc::new(TestApp::new("demo", 200).await);
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let acked: Arc<Mutex<Vec<(String, std::time::Instant, u128)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (t, c, acked, stop) = (t.clone(), c.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut k = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                k += 1;
                let cid = yiyang_kernel::citizen_id::compose(
                    "320682",
                    chrono::NaiveDate::from_ymd_opt(1940, 1, 1).unwrap()
                        + chrono::Duration::days(k as i64),
                    k % 999,
                );
                let t0 = std::time::Instant::now();
                let (s, v, _) = t
                    .call(
                        "POST",
                        "/api/v1/elders",
                        Some(&c),
                        Some(json!({"citizen_id": cid, "name": "备份测", "residence_region": "320682001001"})),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{v}");
                acked.lock().unwrap().push((
                    cid,
                    std::time::Instant::now(),
                    t0.elapsed().as_millis(),
                ));
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b").join("copy.db");
    let began = std::time::Instant::now();
    let copied = yiyang::backup::backup(&t.state.db, &out).await;
    let ended = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let before: Vec<&String> = acked
        .iter()
        .filter(|(_, at, _)| *at < began)
        .map(|a| &a.0)
        .collect();
    assert!(
        before.len() >= 5,
        "the writer wrote {} before",
        before.len()
    );

    let Some(_) = &t.sqlite_path else {
        // PostgreSQL: pg_dump is the backup; check reads the live database the same way.
        let e = copied.unwrap_err().to_string();
        assert!(e.contains("pg_dump"), "{e}");
        let r = yiyang::backup::check(&t.state.db, &[]).await.unwrap();
        assert!(r.ok(), "{r:?}");
        let elders = r.tables.iter().find(|(n, _)| n == "elder").unwrap().1;
        assert_eq!(elders, 200 + acked.len() as i64);
        return;
    };
    let copied = copied.unwrap();
    // Writers went on while the copy was made.
    let during: Vec<u128> = acked
        .iter()
        .filter(|(_, at, _)| *at >= began && *at <= ended)
        .map(|a| a.2)
        .collect();
    println!(
        "backup of {} bytes in {} ms; {} registrations meanwhile, slowest {} ms",
        copied.bytes,
        copied.millis,
        during.len(),
        during.iter().max().unwrap_or(&0)
    );
    assert!(during.iter().all(|ms| *ms < 1000), "{during:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(
        !yiyang::backup::backup(&t.state.db, &out)
            .await
            .unwrap_err()
            .to_string()
            .is_empty()
    );

    // Restore into a fresh folder, then check it as `yiyang check` does.
    let fresh = tempfile::tempdir().unwrap();
    let target = fresh.path().join("data").join("yiyang.db");
    yiyang::backup::restore(&out, &target).unwrap();
    let e = yiyang::backup::restore(&out, &target)
        .unwrap_err()
        .to_string();
    assert!(e.contains("已存在"), "{e}");
    let db = yiyang::platform::db::Db::connect(target.to_str().unwrap(), 2)
        .await
        .unwrap();
    db.use_keys(&test_keys());
    let r = yiyang::backup::check(&db, &[]).await.unwrap();
    assert!(r.ok(), "{r:?}");
    assert!(r.audit.rows > 0);
    let keys = test_keys();
    for cid in &before {
        let bidx = keys.blind_index(yiyang::registry::store::CID_DOMAIN, cid);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM elder WHERE citizen_id_bidx = $1")
            .bind(bidx)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(
            n, 1,
            "an acknowledged registration is missing from the backup"
        );
    }
    let elders = r.tables.iter().find(|(n, _)| n == "elder").unwrap().1;
    assert!(elders >= 200 + before.len() as i64);

    // An audit row edited in the copy is caught.
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for tr in triggers {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER \"{tr}\"")))
            .execute(&db.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE audit_log SET actor_name = '别人' WHERE seq = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    let r = yiyang::backup::check(&db, &[]).await.unwrap();
    assert!(!r.ok() && !r.audit.ok, "{r:?}");
}

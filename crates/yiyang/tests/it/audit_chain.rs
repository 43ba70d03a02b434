use crate::support::*;
use sqlx::Row;
use yiyang::platform::db::Backend;

async fn tamper(t: &TestApp, sql: &str) {
    let db = &t.state.db;
    // Done "by hand", as an attacker with database access would: switch the guard off first.
    match db.backend {
        Backend::Sqlite => {
            sqlx::raw_sql("DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;")
                .execute(&db.pool)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            sqlx::raw_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
                .execute(&db.pool)
                .await
                .unwrap();
        }
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn db_audit_is_append_only() {
    let t = TestApp::new("demo", 10).await;
    let r = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert!(r.ok && r.rows >= 1, "{r:?}");
    assert!(
        sqlx::query("UPDATE audit_log SET actor_name = 'x'")
            .execute(&t.state.db.pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(&t.state.db.pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("UPDATE audit_head SET seq = 0")
            .execute(&t.state.db.pool)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn db_altered_row_is_named() {
    let t = TestApp::new("demo", 10).await;
    for u in ["a1", "a2", "a3"] {
        t.add_user(u, &["officer"], "320682000000", all_scopes())
            .await;
    }
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    assert!(n >= 4);
    tamper(
        &t,
        "UPDATE audit_log SET detail = '{\"rows\": 1}' WHERE seq = 2",
    )
    .await;
    let r = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.first_broken_seq, Some(2), "{r:?}");
}

#[tokio::test]
async fn db_removed_tail_is_named() {
    let t = TestApp::new("demo", 10).await;
    for u in ["b1", "b2"] {
        t.add_user(u, &["officer"], "320682000000", all_scopes())
            .await;
    }
    let last: i64 = sqlx::query("SELECT MAX(seq) FROM audit_log")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    tamper(&t, &format!("DELETE FROM audit_log WHERE seq = {last}")).await;
    let r = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.first_broken_seq, Some(last), "{r:?}");
    // A row removed from the middle is named too.
    let t = TestApp::new("demo", 10).await;
    for u in ["c1", "c2"] {
        t.add_user(u, &["officer"], "320682000000", all_scopes())
            .await;
    }
    tamper(&t, "DELETE FROM audit_log WHERE seq = 2").await;
    let r = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert_eq!(r.first_broken_seq, Some(2), "{r:?}");
}

/// The plain SHA-256 of a row as the chain had it before it was keyed (length-prefixed fields).
fn sha_row(prev: &str, r: &sqlx::any::AnyRow) -> String {
    use sha2::{Digest, Sha256};
    let s = |i: usize| r.get::<Option<String>, _>(i).unwrap_or_default();
    let seq: i64 = r.get(0);
    let mut h = Sha256::new();
    for part in [
        prev.to_string(),
        seq.to_string(),
        s(1),
        s(2),
        s(3),
        s(4),
        s(5),
        s(6),
        s(7),
        s(8),
        s(9),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Recompute every row's hash with plain SHA-256 and set the head to match, as someone who can
/// write the database but has no key file would.
async fn rechain_with_sha(t: &TestApp) {
    let rows = sqlx::query(
        "SELECT seq, at, actor_id, actor_name, action, entity, entity_id, region_code, detail, request_id \
         FROM audit_log ORDER BY seq",
    )
    .fetch_all(&t.state.db.pool)
    .await
    .unwrap();
    let mut prev = "genesis".to_string();
    let mut sql = String::new();
    for r in &rows {
        let h = sha_row(&prev, r);
        let seq: i64 = r.get(0);
        sql.push_str(&format!(
            "UPDATE audit_log SET prev_hash = '{prev}', hash = '{h}' WHERE seq = {seq};"
        ));
        prev = h;
    }
    sql.push_str(&format!(
        "UPDATE audit_head SET hash = '{prev}' WHERE id = 1;"
    ));
    tamper(t, &sql).await;
}

async fn three_users(t: &TestApp) {
    for u in ["d1", "d2", "d3"] {
        t.add_user(u, &["officer"], "320682000000", all_scopes())
            .await;
    }
}

#[tokio::test]
async fn db_row_rewritten_with_a_recomputed_plain_chain_is_named() {
    let t = TestApp::new("demo", 10).await;
    three_users(&t).await;
    assert!(yiyang::audit::verify(&t.state.db, &[]).await.unwrap().ok);
    // An elder.reveal made into an elder.view, the chain recomputed with SHA-256.
    tamper(
        &t,
        "UPDATE audit_log SET action = 'elder.view' WHERE seq = 2",
    )
    .await;
    rechain_with_sha(&t).await;
    let r = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert!(!r.ok, "{r:?}");
    assert_eq!(
        r.first_broken_seq,
        Some(1),
        "the very first row no longer has the keyed MAC: {r:?}"
    );
    // The key is what makes it: the same check without the key's MAC (plain SHA-256) would pass.
    let key = yiyang::platform::crypto::KeyRing::from_bytes([1; 32], [2; 32]);
    let other = yiyang::platform::db::Db::connect(
        t.pg_url
            .clone()
            .unwrap_or_else(|| t.sqlite_path.clone().unwrap().display().to_string())
            .as_str(),
        1,
    )
    .await
    .unwrap();
    other.use_keys(&key);
    assert!(!yiyang::audit::verify(&other, &[]).await.unwrap().ok);
}

#[tokio::test]
async fn db_tail_cut_back_after_a_checkpoint_is_named() {
    use yiyang::audit::checkpoint;
    let t = TestApp::new("demo", 10).await;
    three_users(&t).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = checkpoint::Sink {
        file: Some(dir.path().join("checkpoints.log")),
        gateway: None,
    };
    let c = checkpoint::take(&t.state.db, &sink).await.unwrap();
    let key = t.state.db.chain_key().unwrap();
    let read = || checkpoint::read(sink.file.as_ref().unwrap(), &key).unwrap();
    assert_eq!(read(), vec![c.clone()]);
    assert!(
        yiyang::audit::verify(&t.state.db, &read())
            .await
            .unwrap()
            .ok
    );
    // More rows after the checkpoint are fine.
    t.add_user("d4", &["worker"], "320682000000", all_scopes())
        .await;
    let r = yiyang::audit::verify(&t.state.db, &read()).await.unwrap();
    assert!(r.ok && r.checkpoints == 1, "{r:?}");
    // The last rows deleted and the head set back to a row before the checkpoint: the chain on its
    // own still adds up, the checkpoint does not.
    let back = c.seq - 2;
    let hash: String = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(back)
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
        .get(0);
    let drop_head_guard = match t.state.db.backend {
        Backend::Sqlite => "DROP TRIGGER IF EXISTS audit_head_forward;",
        Backend::Postgres => "ALTER TABLE audit_head DISABLE TRIGGER USER;",
    };
    tamper(
        &t,
        &format!(
            "{drop_head_guard} DELETE FROM audit_log WHERE seq > {back}; UPDATE audit_head SET seq = {back}, hash = '{hash}' WHERE id = 1;"
        ),
    )
    .await;
    assert!(
        yiyang::audit::verify(&t.state.db, &[]).await.unwrap().ok,
        "without checkpoints it passes"
    );
    let r = yiyang::audit::verify(&t.state.db, &read()).await.unwrap();
    assert!(!r.ok, "{r:?}");
    let p = r.problem.unwrap();
    assert!(
        p.contains(&format!("审计链在检查点 seq {} 之后被截断", c.seq)),
        "{p}"
    );
    // A checkpoint line cannot be made up without the key.
    let f = sink.file.as_ref().unwrap();
    let text = std::fs::read_to_string(f).unwrap();
    std::fs::write(
        f,
        text.replace(&format!("seq={}", c.seq), &format!("seq={back}")),
    )
    .unwrap();
    let e = checkpoint::read(f, &key).unwrap_err().to_string();
    assert!(e.contains("第 1 行"), "{e}");
}

#[tokio::test]
async fn db_a_chain_from_before_the_key_is_checked_and_keyed_once() {
    let t = TestApp::new("demo", 10).await;
    three_users(&t).await;
    // A database as it was before the chain was keyed.
    rechain_with_sha(&t).await;
    sqlx::query("UPDATE audit_head SET keyed = 0 WHERE id = 1")
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    let r = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert!(!r.ok, "an unkeyed chain is not taken as verified: {r:?}");
    let n = yiyang::audit::key_legacy_chain(&t.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 4);
    assert!(yiyang::audit::verify(&t.state.db, &[]).await.unwrap().ok);
    assert_eq!(
        yiyang::audit::key_legacy_chain(&t.state.db).await.unwrap(),
        None
    );
    // The guard is back: rows cannot be changed.
    assert!(
        sqlx::query("UPDATE audit_log SET actor_name = 'x'")
            .execute(&t.state.db.pool)
            .await
            .is_err()
    );
    // New rows chain on under the key.
    t.add_user("d9", &["worker"], "320682000000", all_scopes())
        .await;
    assert!(yiyang::audit::verify(&t.state.db, &[]).await.unwrap().ok);
}

/// The audit viewer in words: filtered by day, operator and action, each row a sentence with the
/// person masked; the filtered trail exported to Excel, and the export itself audited.
#[tokio::test]
async fn db_audit_viewer_filters_speaks_and_exports() {
    use axum::http::StatusCode;
    use serde_json::json;
    let t = TestApp::new("demo", 200).await;
    t.add_user("of", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("au", &["audit_admin"], "320682000000", all_scopes())
        .await;
    let c = t.login("of").await;
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"page_size": 1})),
        )
        .await;
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let name = v["items"][0]["name"].as_str().unwrap().to_string();
    let (s, _, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{id}/reveal"),
            Some(&c),
            Some(json!({"field": "citizen_id", "reason": "核对补贴发放"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let a = t.login("au").await;
    let today = yiyang::platform::today().to_string();
    let reveals = t
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'elder.reveal'")
        .await;
    assert_eq!(reveals, 1);
    let q = format!(
        "/api/v1/audit?from={today}&to={today}&actor=%E6%B5%8B%E8%AF%95of&action=elder.reveal"
    );
    let (s, page, _) = t.call("GET", &q, Some(&a), None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1, "{page}");
    let row = &page["items"][0];
    assert_eq!(row["action_zh"], "查看完整信息");
    let sentence = row["sentence"].as_str().unwrap();
    assert!(sentence.starts_with("测试of 查看了 "), "{sentence}");
    assert!(sentence.contains("核对补贴发放"), "{sentence}");
    assert!(
        !sentence.contains(&name[3..]) || name.chars().count() < 2,
        "name masked: {sentence}"
    );
    // Yesterday holds nothing of it; a malformed day is refused in words.
    let (_, none, _) = t
        .call("GET", "/api/v1/audit?to=2000-01-01", Some(&a), None)
        .await;
    assert_eq!(none["total"], 0);
    let (s, bad, _) = t
        .call("GET", "/api/v1/audit?from=2026-13-01", Some(&a), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    // The officer may not read it, let alone export it.
    let (s, _, _) = t
        .call("GET", "/api/v1/audit/export.xlsx", Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let req = axum::http::Request::builder()
        .uri(format!("/api/v1/audit/export.xlsx?from={today}"))
        .header(axum::http::header::COOKIE, &a)
        .body(axum::body::Body::empty())
        .unwrap();
    let (s, bytes, _) = t.raw(req).await;
    assert_eq!(s, StatusCode::OK);
    assert!(bytes.starts_with(b"PK"), "an xlsx");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'audit.export'")
            .await,
        1
    );
}

/// Group commit: concurrent writes share transactions, each keeps or loses only its own work
/// (rows and audit entries), a database error in one leaves the others, and the chain holds.
#[tokio::test]
async fn db_grouped_writes_keep_or_lose_only_their_own_work() {
    use yiyang::audit::{self, Entry, Who};
    use yiyang::platform::error::ApiError;
    let t = TestApp::new("demo", 0).await;
    let db = t.state.db.clone();
    sqlx::query("CREATE TABLE grouped_t (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&db.pool)
        .await
        .unwrap();
    let audits_before: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0);
    // 0..200, and 7 once more (its second insert fails on the key, whichever runs second).
    let ids: Vec<i64> = (0..200).chain([7]).collect();
    let tasks = ids.into_iter().map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            db.grouped(move |tx| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO grouped_t (id, v) VALUES ($1, 'x')")
                        .bind(i)
                        .execute(&mut **tx)
                        .await?;
                    let who = Who {
                        actor_id: None,
                        actor_name: "test".into(),
                    };
                    let id = i.to_string();
                    let e = Entry {
                        action: "test.grouped",
                        entity: "grouped_t",
                        entity_id: Some(&id),
                        region_code: None,
                        detail: "{}".into(),
                    };
                    audit::append(tx, &who, e).await?;
                    Ok(match i % 5 {
                        0 => return Err(ApiError::conflict("rolled back")),
                        1 => Err(ApiError::invalid("x", "kept, answered as an error")),
                        _ => Ok(i),
                    })
                })
            })
            .await
        })
    });
    let answers: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ok = answers.iter().filter(|a| a.is_ok()).count();
    let conflicts = answers
        .iter()
        .filter(|a| a.as_ref().is_err_and(|e| e.status == 409))
        .count();
    let invalid = answers
        .iter()
        .filter(|a| a.as_ref().is_err_and(|e| e.status == 422))
        .count();
    let failed = answers
        .iter()
        .filter(|a| a.as_ref().is_err_and(|e| e.status.is_server_error()))
        .count();
    assert_eq!(
        (ok, conflicts, invalid, failed),
        (120, 40, 40, 1),
        "{answers:?}"
    );
    let rows: Vec<i64> = sqlx::query("SELECT id FROM grouped_t ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let kept: Vec<i64> = (0..200).filter(|i| i % 5 != 0).collect();
    assert_eq!(rows, kept);
    let audits: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = 'test.grouped'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(audits, 160);
    let all: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(all, audits_before + 160);
    let r = audit::verify(&db, &[]).await.unwrap();
    assert!(r.ok, "{r:?}");
}

/// Grouped writes of one statement may go without a savepoint: mixed with the others, each keeps
/// its row and its audit entry, one that refuses before writing keeps nothing, and the chain holds.
#[tokio::test]
async fn db_grouped_writes_without_a_savepoint_mix_with_the_others() {
    use yiyang::audit::{self, Entry, Who};
    use yiyang::platform::error::ApiError;
    let t = TestApp::new("demo", 0).await;
    let db = t.state.db.clone();
    sqlx::query("CREATE TABLE grouped_q (id BIGINT PRIMARY KEY)")
        .execute(&db.pool)
        .await
        .unwrap();
    let tasks = (0..150i64).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            // Every third with a savepoint; every seventh refuses before it writes.
            db.grouped_with(i % 3 == 0, move |tx| {
                Box::pin(async move {
                    if i % 7 == 0 {
                        return Err(ApiError::conflict("refused"));
                    }
                    sqlx::query("INSERT INTO grouped_q (id) VALUES ($1)")
                        .bind(i)
                        .execute(&mut **tx)
                        .await?;
                    let id = i.to_string();
                    let who = Who {
                        actor_id: None,
                        actor_name: "test".into(),
                    };
                    let e = Entry {
                        action: "test.grouped_q",
                        entity: "grouped_q",
                        entity_id: Some(&id),
                        region_code: None,
                        detail: "{}".into(),
                    };
                    audit::append(tx, &who, e).await?;
                    Ok(Ok(i))
                })
            })
            .await
        })
    });
    let answers: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let kept: Vec<i64> = (0..150).filter(|i| i % 7 != 0).collect();
    let ok: Vec<i64> = answers
        .iter()
        .filter_map(|a| a.as_ref().ok().copied())
        .collect();
    assert_eq!(ok, kept);
    let rows: Vec<i64> = sqlx::query("SELECT id FROM grouped_q ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, kept);
    let audits: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = 'test.grouped_q'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(audits, kept.len() as i64);
    let r = audit::verify(&db, &[]).await.unwrap();
    assert!(r.ok, "{r:?}");
}

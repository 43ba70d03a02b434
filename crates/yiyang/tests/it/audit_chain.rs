use crate::support::*;
use sqlx::Row;
use yiyang::platform::db::Backend;

async fn tamper(t: &TestApp, sql: &str) {
    let db = &t.state.db;
    // Done "by hand", as an attacker with database access would: switch the guard off first.
    match db.backend {
        Backend::Sqlite => {
            sqlx::raw_sql("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
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
    let r = yiyang::audit::verify(&t.state.db).await.unwrap();
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
    let r = yiyang::audit::verify(&t.state.db).await.unwrap();
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
    let r = yiyang::audit::verify(&t.state.db).await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.first_broken_seq, Some(last), "{r:?}");
    // A row removed from the middle is named too.
    let t = TestApp::new("demo", 10).await;
    for u in ["c1", "c2"] {
        t.add_user(u, &["officer"], "320682000000", all_scopes())
            .await;
    }
    tamper(&t, "DELETE FROM audit_log WHERE seq = 2").await;
    let r = yiyang::audit::verify(&t.state.db).await.unwrap();
    assert_eq!(r.first_broken_seq, Some(2), "{r:?}");
}

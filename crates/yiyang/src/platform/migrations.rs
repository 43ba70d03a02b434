//! One ordered migration history for both backends. Each step is portable SQL, with a few
//! statements gated to one backend (triggers differ in syntax). Additive only.

use super::db::{Backend, Db};
use sqlx::{AssertSqlSafe, Row};

pub enum Stmt {
    Both(&'static str),
    Sqlite(&'static str),
    Postgres(&'static str),
}
use Stmt::*;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub stmts: &'static [Stmt],
}

/// Column type names are written as SQLite accepts them; `BLOB`/`DOUBLE` are rewritten for PostgreSQL.
fn render(sql: &str, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => sql.to_string(),
        Backend::Postgres => sql
            .replace(" BLOB", " BYTEA")
            .replace(" DOUBLE", " DOUBLE PRECISION"),
    }
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "platform_meta",
        stmts: &[Both(
            "CREATE TABLE app_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )],
    },
    Migration {
        version: 2,
        name: "region",
        stmts: crate::region::MIGRATION,
    },
    Migration {
        version: 3,
        name: "audit",
        stmts: crate::audit::MIGRATION,
    },
    Migration {
        version: 4,
        name: "identity",
        stmts: crate::identity::MIGRATION,
    },
    Migration {
        version: 5,
        name: "registry",
        stmts: crate::registry::MIGRATION,
    },
    Migration {
        version: 6,
        name: "registry_change_seq",
        stmts: crate::registry::MIGRATION_CHANGE_SEQ,
    },
    Migration {
        version: 7,
        name: "assessment",
        stmts: crate::assessment::MIGRATION,
    },
    Migration {
        version: 8,
        name: "assessment_kind",
        stmts: crate::assessment::MIGRATION_KIND,
    },
    Migration {
        version: 9,
        name: "assessment_current",
        stmts: crate::assessment::MIGRATION_CURRENT,
    },
    Migration {
        version: 10,
        name: "assessment_trigger",
        stmts: crate::assessment::MIGRATION_TRIGGER,
    },
    Migration {
        version: 11,
        name: "catalog",
        stmts: crate::catalog::MIGRATION,
    },
    Migration {
        version: 12,
        name: "notification_outbox",
        stmts: crate::platform::outbox::MIGRATION,
    },
    Migration {
        version: 13,
        name: "indicator",
        stmts: crate::indicator::MIGRATION,
    },
    Migration {
        version: 14,
        name: "catalog_lean_run",
        stmts: crate::catalog::MIGRATION_LEAN_RUN,
    },
    Migration {
        version: 15,
        name: "notification_run_rows",
        stmts: crate::platform::outbox::MIGRATION_RUN_ROWS,
    },
    Migration {
        version: 16,
        name: "notification_run_index",
        stmts: crate::platform::outbox::MIGRATION_RUN_INDEX,
    },
    Migration {
        version: 17,
        name: "elder_permanent",
        stmts: crate::registry::MIGRATION_ELDER_PERMANENT,
    },
    Migration {
        version: 18,
        name: "catalog_snapshot_chunks",
        stmts: crate::catalog::snapshot::MIGRATION,
    },
];

pub async fn migrate(db: &Db) -> anyhow::Result<Vec<String>> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(&db.pool)
    .await?;
    let done: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| r.get::<i64, _>(0))
        .collect();
    let mut applied = vec![];
    for m in MIGRATIONS {
        if done.contains(&m.version) {
            continue;
        }
        let mut tx = db.begin().await?;
        // The version row goes first: a second migrator racing us fails on the primary key and rolls back.
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(super::now_rfc3339())
        .execute(&mut *tx)
        .await?;
        for s in m.stmts {
            let sql = match (s, db.backend) {
                (Both(q), b) => render(q, b),
                (Sqlite(q), Backend::Sqlite) => q.to_string(),
                (Postgres(q), Backend::Postgres) => q.to_string(),
                _ => continue,
            };
            sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut *tx)
                .await
                .map_err(|e| anyhow::anyhow!("迁移 {} 失败: {e}\n{sql}", m.name))?;
        }
        tx.commit().await?;
        applied.push(format!("{:04}_{}", m.version, m.name));
    }
    Ok(applied)
}

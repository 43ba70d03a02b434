//! One ordered migration history for both backends. Each step is portable SQL, with a few
//! statements gated to one backend (triggers differ in syntax). A released migration is never
//! edited: a later one changes what it made (e.g. migration 21 drops an index migration 5 created).

use super::db::{Backend, Db};
use sqlx::{AssertSqlSafe, Row};

pub enum Stmt {
    Both(&'static str),
    Sqlite(&'static str),
    Postgres(&'static str),
    /// An edit of SQLite's stored schema text (`sqlite_schema`) that leaves the file's format
    /// alone, such as restating a CHECK constraint in equivalent words. Run with
    /// `writable_schema` on, then the schema version is raised so every connection reloads it
    /// (SQLite's documented procedure for changes ALTER TABLE cannot make).
    SqliteSchemaEdit(&'static str),
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
    Migration {
        version: 19,
        name: "sqlite_checks_without_in",
        stmts: SQLITE_CHECKS_WITHOUT_IN,
    },
    Migration {
        version: 20,
        name: "entitlement_run_defaults",
        stmts: crate::catalog::MIGRATION_RUN_DEFAULTS,
    },
    Migration {
        version: 21,
        name: "elder_name_index_dropped",
        stmts: crate::registry::MIGRATION_DROP_NAME_INDEX,
    },
    Migration {
        version: 22,
        name: "entitlement_packs",
        stmts: crate::catalog::pack::MIGRATION,
    },
    Migration {
        version: 23,
        name: "elder_citizen_id_index",
        stmts: crate::registry::MIGRATION_CID_INDEX,
    },
    Migration {
        version: 24,
        name: "audit_keyed_chain",
        stmts: crate::audit::MIGRATION_KEYED,
    },
    Migration {
        version: 25,
        name: "import_job_progress",
        stmts: crate::registry::MIGRATION_JOB_PROGRESS,
    },
    Migration {
        version: 26,
        name: "account_lifecycle",
        stmts: crate::identity::lifecycle::MIGRATION,
    },
    Migration {
        version: 27,
        name: "catalog_run_claim",
        stmts: crate::catalog::evaluate::MIGRATION_RUN_CLAIM,
    },
    Migration {
        version: 28,
        name: "import_job_layout",
        stmts: crate::registry::MIGRATION_JOB_LAYOUT,
    },
    Migration {
        version: 29,
        name: "payment_batch_states",
        stmts: crate::catalog::payment::MIGRATION_STATES,
    },
    Migration {
        version: 30,
        name: "elder_phone_index",
        stmts: crate::registry::MIGRATION_PHONE_INDEX,
    },
    Migration {
        version: 31,
        name: "assessment_assignment",
        stmts: crate::assessment::assign::MIGRATION,
    },
    Migration {
        version: 32,
        name: "organisation",
        stmts: crate::org::MIGRATION,
    },
    Migration {
        version: 33,
        name: "beds_and_admissions",
        stmts: crate::institution::MIGRATION,
    },
    Migration {
        version: 34,
        name: "admission_policy",
        stmts: crate::institution::queue::MIGRATION,
    },
    Migration {
        version: 35,
        name: "staff",
        stmts: crate::org::staff::MIGRATION,
    },
    Migration {
        version: 36,
        name: "organisation_prices",
        stmts: crate::org::MIGRATION_PRICES,
    },
    Migration {
        version: 37,
        name: "admission_applications",
        stmts: crate::institution::queue::MIGRATION_APPLICATIONS,
    },
    Migration {
        version: 38,
        name: "bed_subsidy_claims",
        stmts: crate::institution::claim::MIGRATION,
    },
    Migration {
        version: 39,
        name: "admission_offers",
        stmts: crate::institution::offer::MIGRATION,
    },
    Migration {
        version: 40,
        name: "family_care_beds",
        stmts: crate::institution::family::MIGRATION,
    },
    Migration {
        version: 41,
        name: "accounts_bound_to_an_organisation",
        stmts: crate::identity::MIGRATION_ORG,
    },
    Migration {
        version: 42,
        name: "organisation_bank_accounts",
        stmts: crate::org::MIGRATION_BANK,
    },
    Migration {
        version: 43,
        name: "payment_batch_organisation_lines",
        stmts: crate::catalog::payment::MIGRATION_ORG_LINES,
    },
    Migration {
        version: 44,
        name: "region_maps",
        stmts: crate::region::map::MIGRATION,
    },
    Migration {
        version: 45,
        name: "admission_requests_from_the_public",
        stmts: crate::institution::request::MIGRATION,
    },
    Migration {
        version: 46,
        name: "admission_requests_by_phone",
        stmts: crate::institution::request::MIGRATION_PHONE,
    },
    Migration {
        version: 47,
        name: "payment_batch_organisation_line_makers",
        stmts: crate::catalog::payment::MIGRATION_ORG_LINE_MAKER,
    },
    Migration {
        version: 48,
        name: "home_service_orders",
        stmts: crate::home_service::MIGRATION,
    },
    Migration {
        version: 49,
        name: "home_service_quota_and_settlement",
        stmts: crate::home_service::MIGRATION_SETTLE,
    },
    Migration {
        version: 50,
        name: "staff_phones",
        stmts: crate::org::staff::MIGRATION_PHONE,
    },
    Migration {
        version: 51,
        name: "outbox_visit_codes",
        stmts: crate::platform::outbox::MIGRATION_ORDER,
    },
    Migration {
        version: 52,
        name: "caregiver_accounts",
        stmts: crate::identity::MIGRATION_STAFF,
    },
    Migration {
        version: 53,
        name: "home_care_family",
        stmts: crate::home_service::family::MIGRATION,
    },
    Migration {
        version: 54,
        name: "meals",
        stmts: crate::home_service::meal::MIGRATION,
    },
    Migration {
        version: 55,
        name: "meal_paying_item",
        stmts: crate::home_service::meal::MIGRATION_ITEM,
    },
    Migration {
        version: 56,
        name: "care_plans",
        stmts: crate::home_service::plan::MIGRATION,
    },
    Migration {
        version: 57,
        name: "visit_photos",
        stmts: crate::home_service::photo::MIGRATION,
    },
    Migration {
        version: 58,
        name: "service_quota_carried",
        stmts: crate::home_service::quota::MIGRATION,
    },
    Migration {
        version: 59,
        name: "meal_codes",
        stmts: crate::home_service::meal_code::MIGRATION,
    },
    Migration {
        version: 60,
        name: "meal_overrides",
        stmts: crate::home_service::meal::MIGRATION_OVERRIDE,
    },
    Migration {
        version: 61,
        name: "meal_code_tries",
        stmts: crate::home_service::meal_code::MIGRATION_TRIES,
    },
    Migration {
        version: 62,
        name: "emergency",
        stmts: crate::emergency::MIGRATION,
    },
    Migration {
        version: 63,
        name: "care_visit",
        stmts: crate::care_visit::MIGRATION,
    },
    Migration {
        version: 64,
        name: "visit_tasks_and_signature",
        stmts: crate::home_service::MIGRATION_TASKS,
    },
];

/// SQLite evaluates `CHECK (x IN ('a', 'b', …))` by building a temporary b-tree of the list on
/// every row written (OpenEphemeral): 3.3 µs per row, measured on 1M inserts (1.8 s without the
/// check, 5.1 s with it, 1.6 s with the same check written with OR). A first catalogue run writes
/// 2.24M entitlements: its write went from 28–34 s to 18–22 s, run back to back on one machine.
/// The same conditions written with `=` and `OR` cost nothing. PostgreSQL keeps the IN form (it
/// has no such cost). Every CHECK of the schema is here; the test
/// `registry::db_state_checks_refuse_unknown_values_cheaply` fails on any CHECK still using IN.
const SQLITE_CHECKS_WITHOUT_IN: &[Stmt] = &[
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET sql = replace(sql, \
         'CHECK (status IN (''active'', ''deceased'', ''moved_out''))', \
         'CHECK (status = ''active'' OR status = ''deceased'' OR status = ''moved_out'')') \
         WHERE type = 'table' AND name = 'elder'",
    ),
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET sql = replace(sql, \
         'CHECK (state IN (''draft'', ''published'', ''superseded''))', \
         'CHECK (state = ''draft'' OR state = ''published'' OR state = ''superseded'')') \
         WHERE type = 'table' AND name = 'catalog_version'",
    ),
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET sql = replace(sql, \
         'CHECK (state IN (''proposed'', ''granted'', ''suspended'', ''ended''))', \
         'CHECK (state = ''proposed'' OR state = ''granted'' OR state = ''suspended'' OR state = ''ended'')') \
         WHERE type = 'table' AND name = 'entitlement'",
    ),
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET sql = replace(sql, \
         'CHECK (state IN (''pending'', ''sent'', ''failed'', ''skipped''))', \
         'CHECK (state = ''pending'' OR state = ''sent'' OR state = ''failed'' OR state = ''skipped'')') \
         WHERE type = 'table' AND name = 'notification_outbox'",
    ),
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET sql = replace(sql, \
         'CHECK (kind IN (''count'', ''ratio'', ''milestone'', ''manual''))', \
         'CHECK (kind = ''count'' OR kind = ''ratio'' OR kind = ''milestone'' OR kind = ''manual'')') \
         WHERE type = 'table' AND name = 'indicator_custom'",
    ),
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET sql = replace(replace(sql, \
         'CHECK (class IN (''binding'', ''expected''))', \
         'CHECK (class = ''binding'' OR class = ''expected'')'), \
         'CHECK (direction IN (''ge'', ''le''))', \
         'CHECK (direction = ''ge'' OR direction = ''le'')') \
         WHERE type = 'table' AND name = 'indicator_target'",
    ),
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET sql = replace(sql, \
         'CHECK (encoding IN (''plain'', ''deflate''))', \
         'CHECK (encoding = ''plain'' OR encoding = ''deflate'')') \
         WHERE type = 'table' AND name = 'eligibility_snapshot_chunk'",
    ),
];

/// See [`Stmt::SqliteSchemaEdit`]. The edit must leave every stored row valid under the new text.
async fn edit_sqlite_schema(tx: &mut super::db::Tx<'static>, sql: &str) -> Result<(), sqlx::Error> {
    let version: i64 = sqlx::query("PRAGMA schema_version")
        .fetch_one(&mut **tx)
        .await?
        .get(0);
    sqlx::raw_sql("PRAGMA writable_schema = ON")
        .execute(&mut **tx)
        .await?;
    let edited = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut **tx)
        .await;
    // Off again whatever happened; RESET also reloads this connection's copy of the schema.
    sqlx::raw_sql("PRAGMA writable_schema = RESET")
        .execute(&mut **tx)
        .await?;
    edited?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "PRAGMA schema_version = {}",
        version + 1
    )))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

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
                (SqliteSchemaEdit(q), Backend::Sqlite) => {
                    edit_sqlite_schema(&mut tx, q)
                        .await
                        .map_err(|e| anyhow::anyhow!("迁移 {} 失败: {e}\n{q}", m.name))?;
                    continue;
                }
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

//! catalog — the basic-service catalogue (基本养老服务目录清单) of a region as data: items with who
//! is eligible (a rule in the kernel's rule language, `yiyang_kernel::eligibility`), what is
//! provided and to what standard, the benefit (cash per month, service quota per month, or once)
//! in tiers, the paying department and the split of funding across levels. A region edits a draft
//! version and publishes it; `evaluate.rs` then runs every published item over the whole registry
//! (服务找人) and keeps entitlements: granted at once where the item needs no application
//! (免申即享), proposed for approval where it does, ended on death, suspended on move-out — each
//! transition kept with the rule version, the reasons and the facts it was decided on. A run's
//! grants are packed (`pack.rs`) until something changes them.

pub mod entitlement;
pub mod evaluate;
pub mod http;
pub mod lists;
pub mod pack;
pub mod payment;
pub mod snapshot;
pub mod store;

use crate::platform::migrations::Stmt::{self, *};

pub const MIGRATION: &[Stmt] = &[
    // One catalogue per region; versions numbered per region; at most one draft and one published.
    Both(
        "CREATE TABLE catalog_version (id TEXT PRIMARY KEY, region_code TEXT NOT NULL, number BIGINT NOT NULL, \
         state TEXT NOT NULL, effective_from TEXT, created_by TEXT NOT NULL, created_at TEXT NOT NULL, \
         published_by TEXT, published_at TEXT, \
         CONSTRAINT catalog_version_number_key UNIQUE (region_code, number), \
         CONSTRAINT catalog_version_state_check CHECK (state IN ('draft', 'published', 'superseded')))",
    ),
    Both(
        "CREATE UNIQUE INDEX catalog_version_one_open ON catalog_version (region_code, state) \
         WHERE state IN ('draft', 'published')",
    ),
    // The item's whole definition is one JSON document (`store::ItemDef`), checked when saved.
    Both(
        "CREATE TABLE catalog_item (version_id TEXT NOT NULL REFERENCES catalog_version (id), code TEXT NOT NULL, \
         position BIGINT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL, PRIMARY KEY (version_id, code))",
    ),
    Both(
        "CREATE TABLE entitlement (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), \
         catalog_region TEXT NOT NULL, item_code TEXT NOT NULL, state TEXT NOT NULL, tier TEXT NOT NULL, \
         amount_fen BIGINT NOT NULL, quota BIGINT NOT NULL, residence_region TEXT NOT NULL, since TEXT NOT NULL, \
         ended_on TEXT, end_kind TEXT, version_id TEXT NOT NULL, run_id TEXT NOT NULL, reasons TEXT NOT NULL, updated_at TEXT NOT NULL, \
         CONSTRAINT entitlement_state_check CHECK (state IN ('proposed', 'granted', 'suspended', 'ended')))",
    ),
    // One open entitlement per person and item: the evaluation and approvals rely on it.
    Both(
        "CREATE UNIQUE INDEX entitlement_open ON entitlement (elder_id, catalog_region, item_code) WHERE state <> 'ended'",
    ),
    // Covered the evaluation's read of everything open in a catalogue; dropped again by
    // `MIGRATION_LEAN_RUN` (rows without reasons are narrow enough to read directly).
    Both(
        "CREATE INDEX entitlement_scan ON entitlement (catalog_region, elder_id, item_code, state, tier, amount_fen, quota)",
    ),
    // Refusals stand for the catalogue version they were made under (few rows).
    Both(
        "CREATE INDEX entitlement_refused ON entitlement (catalog_region, version_id) WHERE end_kind = 'refused'",
    ),
    // The facts a run decided on, once per person and run (an entitlement names its run).
    Both(
        "CREATE TABLE eligibility_snapshot (run_id TEXT NOT NULL, elder_id TEXT NOT NULL, facts TEXT NOT NULL, \
         PRIMARY KEY (run_id, elder_id))",
    ),
    // Every later transition, with the run (or approval) that made it and why; the first (to
    // granted or proposed) is the entitlement row itself, with its run.
    Both(
        "CREATE TABLE entitlement_change (id TEXT PRIMARY KEY, entitlement_id TEXT NOT NULL REFERENCES entitlement (id), \
         run_id TEXT, from_state TEXT, to_state TEXT NOT NULL, tier TEXT NOT NULL, amount_fen BIGINT NOT NULL, \
         on_date TEXT NOT NULL, note TEXT NOT NULL, by_name TEXT NOT NULL, at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX entitlement_change_entitlement ON entitlement_change (entitlement_id)"),
    // Named lists of people (名单), e.g. 重点帮扶对象, that rules can test (名单 包含 …).
    Both(
        "CREATE TABLE elder_list (name TEXT PRIMARY KEY, region_code TEXT NOT NULL, description TEXT, \
         created_by TEXT NOT NULL, created_at TEXT NOT NULL)",
    ),
    Both(
        "CREATE TABLE elder_list_member (list_name TEXT NOT NULL REFERENCES elder_list (name), \
         elder_id TEXT NOT NULL REFERENCES elder (id), added_by TEXT NOT NULL, added_at TEXT NOT NULL, \
         PRIMARY KEY (list_name, elder_id))",
    ),
    Both("CREATE INDEX elder_list_member_elder ON elder_list_member (elder_id)"),
    // Monthly cash batches: one per catalogue and month, one line per payment, split by level.
    Both(
        "CREATE TABLE payment_batch (id TEXT PRIMARY KEY, catalog_region TEXT NOT NULL, month TEXT NOT NULL, \
         created_by TEXT NOT NULL, created_at TEXT NOT NULL, lines BIGINT NOT NULL, total_fen BIGINT NOT NULL, \
         CONSTRAINT payment_batch_month_key UNIQUE (catalog_region, month))",
    ),
    Both(
        "CREATE TABLE payment_line (batch_id TEXT NOT NULL REFERENCES payment_batch (id), entitlement_id TEXT NOT NULL, \
         elder_id TEXT NOT NULL, item_code TEXT NOT NULL, amount_fen BIGINT NOT NULL, town_code TEXT NOT NULL, \
         province_fen BIGINT NOT NULL, city_fen BIGINT NOT NULL, county_fen BIGINT NOT NULL, town_fen BIGINT NOT NULL, \
         PRIMARY KEY (batch_id, entitlement_id))",
    ),
    Both("CREATE INDEX payment_line_elder ON payment_line (elder_id)"),
    Both(
        "CREATE TABLE catalog_run (id TEXT PRIMARY KEY, region_code TEXT NOT NULL, version_id TEXT NOT NULL, \
         on_date TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, by_name TEXT NOT NULL, summary TEXT NOT NULL)",
    ),
];

/// The entitlements a run creates leave out two columns that are the same for every one of them:
/// the catalogue version and the time written are the run's (`catalog_run`), read through
/// [`version_of`] until a later change writes the row's own. A first run over a county writes
/// 2.24M rows; the two were 63 of each row's ~280 bytes. (The start date stays in the row: the
/// rollups, the lists and the payment batch read it for every row, and a lookup of the run per
/// row cost them 1–2 µs a row.) SQLite's NOT NULL goes by the schema edit its documentation allows
/// for removing a constraint.
pub const MIGRATION_RUN_DEFAULTS: &[Stmt] = &[
    Postgres("ALTER TABLE entitlement ALTER COLUMN version_id DROP NOT NULL"),
    Postgres("ALTER TABLE entitlement ALTER COLUMN updated_at DROP NOT NULL"),
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET sql = replace(replace(sql, \
         ' version_id TEXT NOT NULL,', ' version_id TEXT,'), \
         ' updated_at TEXT NOT NULL,', ' updated_at TEXT,') \
         WHERE type = 'table' AND name = 'entitlement'",
    ),
];

/// SQL for the catalogue version entitlement `n` was decided under: its own, else its run's.
pub fn version_of(n: &str) -> String {
    format!(
        "COALESCE({n}.version_id, (SELECT r.version_id FROM catalog_run r WHERE r.id = {n}.run_id))"
    )
}

/// A run's writes made lean (a first run over a county grants millions):
/// - the entitlements a run creates carry no reasons (`reasons = ''`): they are worked out again
///   when shown, from the run's version and date and the person's snapshot
///   (`evaluate::reasons_of_runs`);
/// - the covering index `entitlement_scan` goes: it was a second copy of every entitlement
///   (243 MB of a 2.2M-entitlement first run) to save 0.3 s of the run's read;
/// - snapshots leave out empty facts, and on SQLite are kept in their key's order without a
///   second copy of the key (WITHOUT ROWID): written in person order, they only append.
pub const MIGRATION_LEAN_RUN: &[Stmt] = &[
    Both("DROP INDEX entitlement_scan"),
    Sqlite(
        "CREATE TABLE eligibility_snapshot_lean (run_id TEXT NOT NULL, elder_id TEXT NOT NULL, facts TEXT NOT NULL, \
         PRIMARY KEY (run_id, elder_id)) WITHOUT ROWID",
    ),
    Sqlite(
        "INSERT INTO eligibility_snapshot_lean SELECT run_id, elder_id, facts FROM eligibility_snapshot",
    ),
    Sqlite("DROP TABLE eligibility_snapshot"),
    Sqlite("ALTER TABLE eligibility_snapshot_lean RENAME TO eligibility_snapshot"),
];

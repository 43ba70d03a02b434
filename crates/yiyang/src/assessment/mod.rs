//! assessment — ability assessment to GB/T 42195-2022. The scoring rules are pure and live in the
//! kernel (`yiyang_kernel::assessment`); this module owns the records and the API around them: the
//! public self-check calculator (no login, stores nothing) and assessment records per elder
//! (`store.rs`), LTC adoptions, the due list and imports (`import.rs`).
//!
//! The level that counts for an elder is kept in `elder_ability` (migration 9) so that the
//! registry's search, the due list and later capabilities read it without walking the history.

pub mod assign;
pub mod http;
pub mod import;
pub mod store;

use crate::platform::migrations::Stmt::{self, *};

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE assessment (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), \
         standard TEXT NOT NULL, reason TEXT NOT NULL, assessed_on TEXT NOT NULL, valid_until TEXT NOT NULL, \
         assessor1 TEXT NOT NULL, assessor2 TEXT NOT NULL, informant TEXT, corrects TEXT REFERENCES assessment (id), \
         input TEXT NOT NULL, result TEXT NOT NULL, final_level BIGINT NOT NULL, recorded_by TEXT NOT NULL, \
         recorded_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX assessment_elder ON assessment (elder_id, assessed_on)"),
    Both("CREATE INDEX assessment_corrects ON assessment (corrects)"),
];

/// An adopted long-term-care-insurance rating (直接采信) is a record of kind `ltc_adoption` with its
/// source; it counts as a valid assessment like any other.
pub const MIGRATION_KIND: &[Stmt] = &[
    Both("ALTER TABLE assessment ADD COLUMN kind TEXT NOT NULL DEFAULT 'assessment'"),
    Both("ALTER TABLE assessment ADD COLUMN source TEXT"),
];

/// The elder's current assessment, one narrow row per assessed person: the newest record not
/// corrected by a later one and not legacy (whether still valid is decided against today's date
/// when read). Kept by `store::set_current` and the import, stamped with the registry's change
/// number so the search index follows it. A table of its own rather than columns on `elder`:
/// importing 100k assessments then writes 100k small rows instead of rewriting 100k random pages
/// of the large elder table (measured 4 s for 80k people on SQLite, with raw SQL as well).
pub const MIGRATION_CURRENT: &[Stmt] = &[
    Sqlite(
        "CREATE TABLE elder_ability (elder_id TEXT PRIMARY KEY REFERENCES elder (id), assessment_id TEXT NOT NULL, \
         level BIGINT NOT NULL, assessed_on TEXT NOT NULL, valid_until TEXT NOT NULL, change_seq BIGINT NOT NULL) WITHOUT ROWID",
    ),
    Postgres(
        "CREATE TABLE elder_ability (elder_id TEXT PRIMARY KEY REFERENCES elder (id), assessment_id TEXT NOT NULL, \
         level BIGINT NOT NULL, assessed_on TEXT NOT NULL, valid_until TEXT NOT NULL, change_seq BIGINT NOT NULL)",
    ),
    Both("CREATE INDEX elder_ability_change_seq ON elder_ability (change_seq)"),
    Both(
        "INSERT INTO elder_ability (elder_id, assessment_id, level, assessed_on, valid_until, change_seq) \
         SELECT a.elder_id, a.id, a.final_level, a.assessed_on, a.valid_until, 0 FROM assessment a \
         WHERE a.standard <> 'MZ/T 039-2013' AND NOT EXISTS (SELECT 1 FROM assessment c WHERE c.corrects = a.id) \
         AND NOT EXISTS (SELECT 1 FROM assessment b WHERE b.elder_id = a.elder_id AND b.standard <> 'MZ/T 039-2013' \
           AND NOT EXISTS (SELECT 1 FROM assessment c2 WHERE c2.corrects = b.id) \
           AND (b.assessed_on > a.assessed_on OR (b.assessed_on = a.assessed_on AND (b.recorded_at > a.recorded_at \
             OR (b.recorded_at = a.recorded_at AND b.id > a.id)))))",
    ),
];

/// Reassessment triggers (复评触发): events after which the current assessment no longer tells the
/// truth — care-risk events, a new diagnosis, a disputed result, a marked change of condition. A
/// trigger noted after a person's current assessment puts them on the due list until the next one.
pub const MIGRATION_TRIGGER: &[Stmt] = &[
    Both(
        "CREATE TABLE assessment_trigger (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), \
         kind TEXT NOT NULL, noted_on TEXT NOT NULL, note TEXT, recorded_by TEXT NOT NULL, recorded_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX assessment_trigger_elder ON assessment_trigger (elder_id, noted_on)"),
    // Validity per region (default 12 months): the most specific region of the person's residence
    // that has a setting wins.
    Both(
        "CREATE TABLE assessment_validity (region_code TEXT PRIMARY KEY, months BIGINT NOT NULL, \
         set_by TEXT NOT NULL, set_at TEXT NOT NULL)",
    ),
];

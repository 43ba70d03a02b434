//! assessment — ability assessment to GB/T 42195-2022. The scoring rules are pure and live in the
//! kernel (`yiyang_kernel::assessment`); this module owns the records and the API around them: the
//! public self-check calculator (no login, stores nothing) and assessment records per elder
//! (`store.rs`), LTC adoptions, the due list and imports (`import.rs`).
//!
//! The level that counts for an elder is kept on the elder row (`ability_*`, migration 9) so that the
//! registry's search, the due list and later capabilities read it without joining the history.

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

/// The elder's current assessment, denormalised: the newest record not corrected by a later one
/// (whether still valid is decided against today's date when read). Kept by `store::set_current`.
pub const MIGRATION_CURRENT: &[Stmt] = &[
    Both("ALTER TABLE elder ADD COLUMN ability_assessment_id TEXT"),
    Both("ALTER TABLE elder ADD COLUMN ability_level BIGINT"),
    Both("ALTER TABLE elder ADD COLUMN ability_assessed_on TEXT"),
    Both("ALTER TABLE elder ADD COLUMN ability_valid_until TEXT"),
    Both(
        "UPDATE elder SET ability_assessment_id = (SELECT a.id FROM assessment a WHERE a.elder_id = elder.id \
         AND NOT EXISTS (SELECT 1 FROM assessment c WHERE c.corrects = a.id) \
         ORDER BY a.assessed_on DESC, a.recorded_at DESC, a.id DESC LIMIT 1) \
         WHERE EXISTS (SELECT 1 FROM assessment a WHERE a.elder_id = elder.id)",
    ),
    Both(
        "UPDATE elder SET ability_level = (SELECT final_level FROM assessment a WHERE a.id = elder.ability_assessment_id), \
         ability_assessed_on = (SELECT assessed_on FROM assessment a WHERE a.id = elder.ability_assessment_id), \
         ability_valid_until = (SELECT valid_until FROM assessment a WHERE a.id = elder.ability_assessment_id) \
         WHERE ability_assessment_id IS NOT NULL",
    ),
];

//! assessment — ability assessment to GB/T 42195-2022. The scoring rules are pure and live in the
//! kernel (`yiyang_kernel::assessment`); this module owns the records and the API around them: the
//! public self-check calculator (no login, stores nothing) and assessment records per elder
//! (`store.rs`). Validity lists, LTC adoption, imports and the assessors' form come next (issue 3).

pub mod http;
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

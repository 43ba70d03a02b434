//! indicator — the yearly indicators (重点指标) a county or city is judged by: definitions (the
//! kernel's `yiyang_kernel::indicator::DEFS`, plus indicators a region adds for its own plan),
//! targets per region, year, class and direction, values computed from per-village rollups
//! (`rollup.rs`, the only thing the dashboards read), values entered by hand with evidence for
//! milestones and figures the records cannot give, and the lists behind a number (`drill.rs`).

pub mod drill;
pub mod facilities;
pub mod http;
pub mod query;
pub mod rollup;
pub mod targets;
pub mod visits;

use crate::platform::migrations::Stmt::{self, *};

pub const MIGRATION: &[Stmt] = &[
    // One row per node of the region tree and period ("2025" or "2025-03"); `measures` is a small
    // JSON object of counts, so later capabilities add measures without a migration.
    Both(
        "CREATE TABLE indicator_rollup (region_code TEXT NOT NULL, period TEXT NOT NULL, parent_code TEXT, \
         level BIGINT NOT NULL, measures TEXT NOT NULL, PRIMARY KEY (region_code, period))",
    ),
    // A dashboard reads a node and its children.
    Both("CREATE INDEX indicator_rollup_parent ON indicator_rollup (parent_code, period)"),
    Both("CREATE INDEX indicator_rollup_level ON indicator_rollup (level, period)"),
    // What the rollups reflect: the registry's change number, the day and the years counted.
    Both(
        "CREATE TABLE indicator_rollup_state (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, built_on TEXT NOT NULL, \
         built_at TEXT NOT NULL, first_year BIGINT NOT NULL, last_year BIGINT NOT NULL)",
    ),
    // Subtrees a module changed outside the registry (a catalogue run, an approval): recounted at
    // the next refresh.
    Both("CREATE TABLE indicator_dirty (region_code TEXT NOT NULL, marked_at TEXT NOT NULL)"),
    // Indicators of a region's own plan that the built-in list does not have (entered by hand).
    Both(
        "CREATE TABLE indicator_custom (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, unit TEXT NOT NULL, \
         region_code TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL, \
         CONSTRAINT indicator_custom_name_key UNIQUE (name), \
         CONSTRAINT indicator_custom_kind_check CHECK (kind IN ('count', 'ratio', 'milestone', 'manual')))",
    ),
    Both(
        "CREATE TABLE indicator_target (region_code TEXT NOT NULL, year BIGINT NOT NULL, indicator_id TEXT NOT NULL, \
         class TEXT NOT NULL, direction TEXT NOT NULL, value DOUBLE NOT NULL, source TEXT, set_by TEXT NOT NULL, set_at TEXT NOT NULL, \
         PRIMARY KEY (region_code, year, indicator_id), \
         CONSTRAINT indicator_target_class_check CHECK (class IN ('binding', 'expected')), \
         CONSTRAINT indicator_target_direction_check CHECK (direction IN ('ge', 'le')))",
    ),
    Both("CREATE INDEX indicator_target_year ON indicator_target (year, region_code)"),
    // Values entered by hand (milestones, manual figures), every one kept: the latest counts.
    Both(
        "CREATE TABLE indicator_entry (id TEXT PRIMARY KEY, indicator_id TEXT NOT NULL, region_code TEXT NOT NULL, \
         period TEXT NOT NULL, value DOUBLE NOT NULL, evidence TEXT NOT NULL, entered_by TEXT NOT NULL, entered_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX indicator_entry_key ON indicator_entry (period, region_code, indicator_id)"),
];

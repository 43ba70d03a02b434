//! registry — the elder registry: records with encrypted citizen ID and phone (blind-indexed),
//! statuses with source and date, search within the caller's region scope, audited detail views
//! and reveals, death and move-out, bulk import and export.

pub mod bulk;
pub mod http;
pub mod import;
pub mod model;
pub mod search_index;
pub mod store;

use crate::platform::migrations::Stmt::{self, *};

/// The elder table's non-unique indexes (name, DDL). A large import drops them inside its
/// transaction and builds them again at the end: sorting once is much cheaper than a million
/// scattered index insertions.
pub const SECONDARY_INDEXES: &[(&str, &str)] = &[
    (
        "elder_region_birth",
        "CREATE INDEX elder_region_birth ON elder (residence_region, birth_date)",
    ),
    (
        "elder_change_seq",
        "CREATE INDEX elder_change_seq ON elder (change_seq)",
    ),
    (
        "elder_phone_bidx",
        "CREATE INDEX elder_phone_bidx ON elder (phone_bidx)",
    ),
];

/// The secondary indexes a first load drops and builds again at the end. All of them: even the
/// change number's, where every row of a load appends the same key, cost ~3 s per million rows
/// kept during a load against ~0.4 s built after it (measured on SQLite).
pub fn rebuilt_after_load() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    SECONDARY_INDEXES.iter()
}

/// The name index goes: searches by name run on the in-memory search index (`search_index`),
/// which holds every name. Nothing else orders elders by name in SQL, and the export's name filter
/// is a `LIKE '%…%'`, which no b-tree index serves. It cost every insert and rename a b-tree step,
/// and a first load of 1M people 1.0–1.7 s (SQLite) and 0.8–0.9 s (PostgreSQL) to rebuild.
pub const MIGRATION_DROP_NAME_INDEX: &[Stmt] = &[Both("DROP INDEX elder_name")];

/// SQLite: the citizen-ID key becomes an index of its own name, so that a first load into an empty
/// registry can drop it and build it once at the end, as on PostgreSQL (a unique key kept up through
/// a million inserts in random order cost 2.4 s of SQLite's 3.7 s to insert them, measured with
/// `INSERT … SELECT`). A table's UNIQUE constraint is kept in an automatic index that cannot be
/// dropped; that index holds exactly what `CREATE UNIQUE INDEX … (citizen_id_bidx)` would (the key,
/// then the rowid), so the schema text is restated and the index renamed, both rows in one
/// statement, without touching a page. The second statement fails ("no such index") if the edit
/// did not take. PostgreSQL keeps its constraint (`bulk.rs` drops and adds it there); its column
/// gets byte order.
pub const MIGRATION_CID_INDEX: &[Stmt] = &[
    SqliteSchemaEdit(
        "UPDATE sqlite_schema SET \
         name = CASE type WHEN 'index' THEN 'elder_citizen_id_key' ELSE name END, \
         sql = CASE type WHEN 'index' THEN 'CREATE UNIQUE INDEX elder_citizen_id_key ON elder (citizen_id_bidx)' \
         ELSE replace(sql, 'CONSTRAINT elder_citizen_id_key UNIQUE (citizen_id_bidx), ', '') END \
         WHERE (SELECT group_concat(name) FROM pragma_index_info('sqlite_autoindex_elder_2')) = 'citizen_id_bidx' \
         AND instr((SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'elder'), \
         'CONSTRAINT elder_citizen_id_key UNIQUE (citizen_id_bidx), ') > 0 \
         AND ((type = 'table' AND name = 'elder') OR (type = 'index' AND name = 'sqlite_autoindex_elder_2'))",
    ),
    Sqlite("SELECT id FROM elder INDEXED BY elder_citizen_id_key WHERE citizen_id_bidx = ''"),
    // PostgreSQL compares text under the database's collation; under a libc one such as C.UTF-8,
    // every comparison is a strcoll() call and sorts get no abbreviated keys. A blind index is
    // base64, only ever compared for equality with a parameter: byte order serves it. Building
    // the key over 1M people took 1.12 s, and 0.54 s with "C" (measured). The table is not
    // rewritten; the key is built again.
    Postgres("ALTER TABLE elder ALTER COLUMN citizen_id_bidx TYPE TEXT COLLATE \"C\""),
];

/// SQLite's citizen-ID key as [`MIGRATION_CID_INDEX`] left it: what a first load into an empty
/// registry builds again.
pub const SQLITE_CID_INDEX: (&str, &str) = (
    "elder_citizen_id_key",
    "CREATE UNIQUE INDEX elder_citizen_id_key ON elder (citizen_id_bidx)",
);

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE elder (id TEXT PRIMARY KEY, citizen_id_bidx TEXT NOT NULL, citizen_id_enc BLOB NOT NULL, \
         citizen_id_masked TEXT NOT NULL, name TEXT NOT NULL, sex TEXT NOT NULL, birth_date TEXT NOT NULL, \
         hukou_region TEXT, residence_region TEXT NOT NULL, address TEXT, phone_enc BLOB, phone_masked TEXT, \
         lon DOUBLE, lat DOUBLE, living_status TEXT, economic_status TEXT, family_planning_special TEXT, \
         disability_grade BIGINT, entitled_veteran_family BIGINT, death_date TEXT, moved_out_date TEXT, \
         status TEXT NOT NULL, status_source TEXT NOT NULL, status_since TEXT NOT NULL, row_digest TEXT NOT NULL, \
         created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version BIGINT NOT NULL, \
         CONSTRAINT elder_citizen_id_key UNIQUE (citizen_id_bidx), \
         CONSTRAINT elder_status_check CHECK (status IN ('active', 'deceased', 'moved_out')))",
    ),
    // Scope is a range on residence_region; birth_date second serves age bands inside a subtree.
    // (Migrations state their DDL literally: `SECONDARY_INDEXES` may change, history may not.)
    Both("CREATE INDEX elder_region_birth ON elder (residence_region, birth_date)"),
    // Dropped again by migration 21 (`MIGRATION_DROP_NAME_INDEX`).
    Both("CREATE INDEX elder_name ON elder (name)"),
    Both(
        "CREATE TABLE elder_status_change (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), \
         kind TEXT NOT NULL, old_value TEXT, new_value TEXT, source TEXT NOT NULL, since TEXT NOT NULL, recorded_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX elder_status_change_elder ON elder_status_change (elder_id)"),
    Both(
        "CREATE TABLE import_job (id TEXT PRIMARY KEY, kind TEXT NOT NULL, user_id TEXT, file_name TEXT NOT NULL, \
         file_sha256 TEXT NOT NULL, dry_run BIGINT NOT NULL, state TEXT NOT NULL, total BIGINT NOT NULL DEFAULT 0, \
         accepted BIGINT NOT NULL DEFAULT 0, rejected BIGINT NOT NULL DEFAULT 0, inserted BIGINT NOT NULL DEFAULT 0, \
         updated BIGINT NOT NULL DEFAULT 0, unchanged BIGINT NOT NULL DEFAULT 0, message TEXT, headers TEXT, \
         created_at TEXT NOT NULL, finished_at TEXT)",
    ),
    Both(
        "CREATE TABLE import_job_error (job_id TEXT NOT NULL REFERENCES import_job (id), row_no BIGINT NOT NULL, \
         reason TEXT NOT NULL, cells_enc BLOB NOT NULL, PRIMARY KEY (job_id, row_no))",
    ),
];

/// A phone's blind index, so an officer can find a person by the number a family gave. Not unique:
/// one household's elders often share a number. Rows written before it are filled by
/// [`backfill_phone_index`].
pub const MIGRATION_PHONE_INDEX: &[Stmt] = &[
    Both("ALTER TABLE elder ADD COLUMN phone_bidx TEXT"),
    Both("CREATE INDEX elder_phone_bidx ON elder (phone_bidx)"),
];

/// Fill the phone blind index of rows written before it existed (decrypting each phone), in short
/// transactions of 1,000 rows walked by id, so a large registry stays writable meanwhile. Returns
/// the rows filled. A row whose phone does not decrypt (wrong key) is left as it is.
pub async fn backfill_phone_index(
    db: &crate::platform::db::Db,
    keys: &crate::platform::crypto::KeyRing,
) -> anyhow::Result<u64> {
    use sqlx::Row;
    let mut after = String::new();
    let mut filled = 0u64;
    loop {
        let rows = sqlx::query(
            "SELECT id, phone_enc FROM elder WHERE id > $1 AND phone_enc IS NOT NULL \
             AND phone_bidx IS NULL ORDER BY id LIMIT 1000",
        )
        .bind(&after)
        .fetch_all(&db.pool)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(filled);
        };
        after = last.get(0);
        let todo: Vec<(String, String)> = rows
            .iter()
            .filter_map(|r| {
                let phone = keys.decrypt(&r.get::<Vec<u8>, _>(1)).ok()?;
                Some((r.get(0), keys.blind_index(store::PHONE_DOMAIN, &phone)))
            })
            .collect();
        if todo.is_empty() {
            continue;
        }
        let mut tx = db.begin().await?;
        for (id, bidx) in &todo {
            // Only a row still unfilled: a write meanwhile has set its own.
            sqlx::query("UPDATE elder SET phone_bidx = $1 WHERE id = $2 AND phone_bidx IS NULL")
                .bind(bidx)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        filled += todo.len() as u64;
    }
}

/// An import into a registry in use commits in chunks; the job row says how far it got.
pub const MIGRATION_JOB_PROGRESS: &[Stmt] = &[Both(
    "ALTER TABLE import_job ADD COLUMN committed_rows BIGINT NOT NULL DEFAULT 0",
)];

/// The sheets an import read and the rows it passed over (`platform::sheet::Layout`, as JSON).
/// An error's row as Excel shows it on its sheet (`row_no` stays the record's place in the file:
/// unique, and in file order across sheets).
pub const MIGRATION_JOB_LAYOUT: &[Stmt] = &[
    Both("ALTER TABLE import_job ADD COLUMN layout TEXT"),
    Both("ALTER TABLE import_job_error ADD COLUMN sheet_row BIGINT"),
    // A dry run's first people the file would change, field by field (`import::PersonChange`,
    // as JSON; the phone masked).
    Both("ALTER TABLE import_job ADD COLUMN changes TEXT"),
];

/// Every transaction that writes elders takes the next number from `registry_head` and stamps it on
/// the rows it writes. The head row is locked until commit, so numbers become visible in commit
/// order on both engines: a reader that saw head N can fetch everything newer than N later. The
/// search index follows the registry this way, also when another process (the CLI) wrote.
pub const MIGRATION_CHANGE_SEQ: &[Stmt] = &[
    Both("ALTER TABLE elder ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0"),
    Both("CREATE INDEX elder_change_seq ON elder (change_seq)"),
    Both("CREATE TABLE registry_head (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL)"),
    Both("INSERT INTO registry_head (id, seq) VALUES (1, 0)"),
];

/// An elder row is never deleted and never changes its id (death and move-out are statuses), so a
/// person's id, once read, stays valid for every table that names it. The triggers make that a
/// rule of the database, on both engines.
///
/// On PostgreSQL that rule then stands in for the foreign keys of the three tables written in
/// bulk (assessment, elder_ability, entitlement), as far as a key guards against an id that stops
/// existing; their writers take every elder id from the elder table (a lookup or the run's own
/// read), which is what a key would check on insert. There, each foreign-key check locks the elder's
/// row (`FOR KEY SHARE`), which rewrites the elder's page and logs it — measured on 104k
/// assessment rows, the check took 2.4 s of a 3.3 s COPY and doubled the WAL. A check that
/// guards against a deletion the triggers already refuse is not worth that. SQLite's checks take
/// no locks and stay.
pub const MIGRATION_ELDER_PERMANENT: &[Stmt] = &[
    Sqlite(
        "CREATE TRIGGER elder_no_delete BEFORE DELETE ON elder BEGIN SELECT RAISE(ABORT, 'elder rows are never deleted'); END",
    ),
    Sqlite(
        "CREATE TRIGGER elder_id_fixed BEFORE UPDATE OF id ON elder WHEN NEW.id IS NOT OLD.id \
         BEGIN SELECT RAISE(ABORT, 'an elder keeps its id'); END",
    ),
    Postgres(
        "CREATE FUNCTION elder_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN RETURN NEW; END IF; \
         RAISE EXCEPTION 'elder rows are never deleted nor given another id'; END $$",
    ),
    // `UPDATE OF id` fires only for statements that set the id: other updates pay nothing.
    Postgres(
        "CREATE TRIGGER elder_permanent BEFORE UPDATE OF id OR DELETE ON elder FOR EACH ROW EXECUTE FUNCTION elder_refuse()",
    ),
    Postgres(
        "CREATE TRIGGER elder_no_truncate BEFORE TRUNCATE ON elder FOR EACH STATEMENT EXECUTE FUNCTION elder_refuse()",
    ),
    Postgres("ALTER TABLE assessment DROP CONSTRAINT assessment_elder_id_fkey"),
    Postgres("ALTER TABLE elder_ability DROP CONSTRAINT elder_ability_elder_id_fkey"),
    Postgres("ALTER TABLE entitlement DROP CONSTRAINT entitlement_elder_id_fkey"),
];

use crate::app::AppState;
use crate::identity::Scope;
use crate::region::RegionIndex;
use sqlx::Row;

/// Stream a search result into an XLSX (all pages). Returns the bytes and the row count.
pub async fn export_xlsx(
    app: &AppState,
    scope: &Scope,
    regions: &RegionIndex,
    filter: &store::SearchReq,
    reveal: bool,
) -> crate::platform::error::ApiResult<(Vec<u8>, usize)> {
    let today = crate::platform::today();
    let f = store::with_blind_index(store::filter_of(scope, filter, today)?, &app.keys);
    let (w, binds) = store::where_clause(&app.db, &f);
    let sql = format!(
        "SELECT id, name, sex, birth_date, citizen_id_masked, residence_region, living_status, economic_status, status, citizen_id_enc, address, phone_masked \
         FROM elder WHERE {w} ORDER BY residence_region, birth_date, id LIMIT 1048575"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        q = q.bind(b.clone());
    }
    let rows = q.fetch_all(&app.db.pool).await?;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("老年人档案").map_err(anyhow::Error::from)?;
    let head = rust_xlsxwriter::Format::new().set_bold();
    let cols = [
        "身份证号",
        "姓名",
        "性别",
        "出生日期",
        "年龄",
        "居住地区划代码",
        "居住地",
        "居住地址",
        "联系电话",
        "居住状况",
        "经济状况",
        "状态",
    ];
    for (i, c) in cols.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, *c, &head)
            .map_err(anyhow::Error::from)?;
    }
    for (n, r) in rows.iter().enumerate() {
        let row = (n + 1) as u32;
        let cid = if reveal {
            app.keys.decrypt(&r.get::<Vec<u8>, _>(9))?
        } else {
            r.get::<String, _>(4)
        };
        let birth: String = r.get(3);
        let age = chrono::NaiveDate::parse_from_str(&birth, "%Y-%m-%d")
            .map(|b| yiyang_kernel::citizen_id::age_on(b, today))
            .unwrap_or(0);
        let region: String = r.get(5);
        let vals: [String; 12] = [
            cid,
            r.get(1),
            r.get(2),
            birth,
            age.to_string(),
            region.clone(),
            regions.path_name(&region),
            r.get::<Option<String>, _>(10).unwrap_or_default(),
            r.get::<Option<String>, _>(11).unwrap_or_default(),
            r.get::<Option<String>, _>(6)
                .map(|c| model::label_of(model::LIVING_STATUS, &c))
                .unwrap_or_default(),
            r.get::<Option<String>, _>(7)
                .map(|c| model::label_of(model::ECONOMIC_STATUS, &c))
                .unwrap_or_default(),
            model::label_of(model::ELDER_STATUS, &r.get::<String, _>(8)),
        ];
        for (i, v) in vals.iter().enumerate() {
            // Cells are written as text, never formulas; a leading = + - @ is neutralised for CSV re-saves.
            let v = if v.starts_with(['=', '+', '-', '@']) {
                format!("'{v}")
            } else {
                v.clone()
            };
            ws.write_string(row, i as u16, v)
                .map_err(anyhow::Error::from)?;
        }
    }
    let n = rows.len();
    Ok((wb.save_to_buffer().map_err(anyhow::Error::from)?, n))
}

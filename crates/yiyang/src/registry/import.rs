//! Bulk import of the registry from CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX with Chinese or
//! English headers. Dry run validates only. A real run is one transaction: the whole file or nothing.
//! Re-importing the same file changes nothing; a corrected file updates by citizen ID.

use super::model;
use super::store;
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::crypto::{KeyRing, sha256_hex};
use crate::platform::db::Db;
use crate::region::RegionIndex;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub use crate::platform::sheet::{HeaderKey, MAX_FILE_BYTES, MAX_ROWS, RowIter, Table};
/// Rows per multi-row INSERT. Measured on SQLite: 100 was faster than 20, 250 or 1,000.
const CHUNK: usize = 100;
/// Rejected rows kept for the downloadable report (the summary still counts all of them).
const MAX_STORED_ERRORS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicI64,
    pub processed: AtomicI64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowError {
    pub row: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
pub struct Summary {
    pub total: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub dry_run: bool,
    pub errors: Vec<RowError>,
    /// Rows of people registered outside the importer's scope. A dry run counts them as new, as it
    /// would an unknown ID (no probing who is registered elsewhere), and the attempt is audited.
    #[serde(skip)]
    pub outside: i64,
    /// The sheets read and the rows passed over (totals, signatures, notes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<crate::platform::sheet::LayoutView>,
    /// A dry run's first people the file would change, field by field (old → new; the phone
    /// masked).
    #[serde(default)]
    pub changes: Vec<PersonChange>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PersonChange {
    pub row: i64,
    pub name: String,
    pub citizen_id_masked: String,
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    /// The column as the template names it.
    pub field: String,
    pub old: String,
    pub new: String,
}

/// The changes a file makes to registered people, read against what is registered now.
pub(super) async fn spell_changes(
    ctx: &Ctx<'_>,
    changed: &[(i64, String, model::ElderInput)],
) -> Result<Vec<PersonChange>, ImportError> {
    let mut tx = ctx.db.begin().await?;
    let mut out = vec![];
    for (row, id, new) in changed {
        let old = store::load_input(&mut tx, ctx.keys, ctx.scope, id)
            .await
            .map_err(|e| ImportError::Other(anyhow::anyhow!(e.detail)))?;
        out.push(PersonChange {
            row: *row,
            name: new.name.clone(),
            citizen_id_masked: new.citizen_id.masked(),
            fields: model::field_changes(&old, new, &|c| {
                ctx.regions.name(c).unwrap_or(c).to_string()
            }),
        });
    }
    drop(tx); // read only: nothing to commit
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    File(String),
    #[error("数据库错误: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

/// A row's cells as owned strings, for the error report of a refused row.
pub fn owned_cells(cells: &csv::StringRecord) -> Vec<String> {
    cells.iter().map(str::to_string).collect()
}

/// Opens an uploaded file (`platform::sheet`), its error as a file error.
pub fn open_table(bytes: Vec<u8>, file_name: &str, key: HeaderKey) -> Result<Table, ImportError> {
    crate::platform::sheet::open_table(bytes, file_name, key).map_err(ImportError::File)
}

/// The registry's column key of a header cell.
pub fn header_key(h: &str) -> Option<String> {
    model::header_key(h).map(str::to_string)
}

pub struct Ctx<'a> {
    pub db: &'a Db,
    pub keys: &'a KeyRing,
    pub regions: &'a RegionIndex,
    pub scope: &'a Scope,
    pub who: &'a Who,
    pub progress: Arc<Progress>,
}

/// Map header cells to column keys; every required column must be present.
pub fn map_headers(headers: &[String]) -> Result<Vec<Option<&'static str>>, ImportError> {
    let keys: Vec<Option<&'static str>> = headers.iter().map(|h| model::header_key(h)).collect();
    let missing: Vec<&str> = model::COLUMNS
        .iter()
        .filter(|c| c.required && !keys.contains(&Some(c.key)))
        .map(|c| c.zh)
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::File(format!(
            "表头缺少必填列：{}（请使用下载的模板）",
            missing.join("、")
        )));
    }
    Ok(keys)
}

/// What the validating thread hands to the writer: a chunk of valid rows, already encrypted and
/// digested, and how many file rows it covered.
pub(super) struct Batch {
    pub rows: Vec<(i64, store::Prepared)>,
    pub n_read: i64,
}

/// Rejected rows: file row number, reason, the row's cells as uploaded.
pub type Rejected = Vec<(i64, String, Vec<String>)>;

/// What checking and preparing a row needs, owned by the validating thread.
pub(super) struct Checks {
    keys: KeyRing,
    regions: RegionIndex,
    scope: Scope,
}

impl Ctx<'_> {
    pub(super) fn checks(&self) -> Checks {
        Checks {
            keys: self.keys.clone(),
            regions: self.regions.clone(),
            scope: self.scope.clone(),
        }
    }
}

/// Parse, validate, dedupe within the file and prepare rows on a blocking thread, so that this CPU
/// work overlaps with the database writing the previous chunk.
pub(super) fn validate_rows(
    mut rows: RowIter,
    expect_rows: usize,
    chunk: usize,
    keys_of: Vec<Option<&'static str>>,
    Checks {
        keys,
        regions,
        scope,
    }: Checks,
    out: tokio::sync::mpsc::Sender<Batch>,
) -> Result<(Rejected, i64, i64), ImportError> {
    let today = crate::platform::today();
    let mut rejected: Rejected = vec![];
    // foldhash, not SipHash: keys are column names and keyed digests, nothing an attacker chooses
    // to collide (SipHash was 6% of the validator's time).
    // Sized for the file up front: growing it to a million entries rehashed it 20 times (3% of the
    // validator).
    let mut seen: FastMap<String, i64> =
        FastMap::with_capacity_and_hasher(expect_rows.min(MAX_ROWS), Default::default());
    let mut total = 0i64;
    let mut row_no: i64 = 1; // the header is row 1, as Excel counts
    let col_of: FastMap<&str, usize> = keys_of
        .iter()
        .enumerate()
        .filter_map(|(i, k)| k.map(|k| (k, i)))
        .collect();
    let region_ok = |r: &str| regions.check_scoped_code(r, &scope);
    loop {
        let mut batch = Batch {
            rows: Vec::with_capacity(chunk),
            n_read: 0,
        };
        for cells in rows.by_ref() {
            row_no += 1;
            batch.n_read += 1;
            if cells.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            total += 1;
            if total as usize > MAX_ROWS {
                return Err(ImportError::File(format!(
                    "单个文件最多 {MAX_ROWS} 行，请拆分后导入"
                )));
            }
            if cells.len() == 1 && &cells[0] == crate::platform::sheet::MALFORMED {
                rejected.push((
                    row_no,
                    "该行格式错误（引号不匹配或含非法字符）".into(),
                    vec![],
                ));
                continue;
            }
            let get = |k: &str| col_of.get(k).and_then(|i| cells.get(*i)).unwrap_or("");
            match model::validate_row(&get, today, &region_ok) {
                Err(reason) => rejected.push((row_no, reason, owned_cells(&cells))),
                Ok(input) => {
                    let p = store::Prepared::new(input, &keys);
                    if let Some(first) = seen.get(&p.bidx) {
                        rejected.push((
                            row_no,
                            format!("身份证号与第 {first} 行重复"),
                            owned_cells(&cells),
                        ));
                    } else {
                        seen.insert(p.bidx.clone(), row_no);
                        batch.rows.push((row_no, p));
                    }
                }
            }
            if batch.rows.len() >= chunk || batch.n_read as usize >= chunk * 4 {
                break;
            }
        }
        if batch.n_read == 0 {
            break;
        }
        if out.blocking_send(batch).is_err() {
            break; // the writer stopped (database error); it reports why
        }
    }
    Ok((rejected, total, row_no - 1))
}

/// Run an import (dry or real) of an already opened table. Returns the summary and the rejected rows
/// (row number, reason, original cells) for the error report.
///
/// Two paths, one outcome: the bulk path ([`super::bulk`]) writes new people straight through the
/// engine's own bulk interface and serves every dry run, first load and unchanged re-import. A real
/// run that meets someone whose registered data the file changes rolls that back and goes the
/// general path below, which records each change with its status history (a corrected file).
pub async fn run(
    ctx: &Ctx<'_>,
    table: Table,
    dry_run: bool,
    job_id: &str,
    file_sha: &str,
    file_name: &str,
) -> Result<(Summary, Rejected), ImportError> {
    let Table {
        headers,
        rows,
        approx_rows,
        again,
        layout,
    } = table;
    let Some(again) = again else {
        let table = Table {
            headers,
            rows,
            approx_rows,
            again: None,
            layout,
        };
        return run_general(ctx, table, dry_run, job_id, file_sha, file_name, 0).await;
    };
    let keys_of = map_headers(&headers)?;
    let job = super::bulk::JobInfo {
        id: job_id,
        file_sha,
        file_name,
    };
    match super::bulk::run(ctx, rows, approx_rows, keys_of, dry_run, &job).await? {
        super::bulk::Outcome::Done(summary, rejected) => Ok((summary, rejected)),
        super::bulk::Outcome::HasUpdates { inserted } => {
            tracing::info!(
                job_id,
                inserted,
                "import changes registered people: general path"
            );
            ctx.progress.processed.store(0, Ordering::Relaxed);
            let table = Table {
                headers,
                rows: again(),
                approx_rows,
                again: None,
                layout,
            };
            run_general(ctx, table, dry_run, job_id, file_sha, file_name, inserted).await
        }
    }
}

/// The general path: a transaction per chunk of at most [`chunk_hold`] (one for a first load into
/// an empty registry), each with the job's progress and an audit row. `carried`: people a bulk
/// pass inserted before it met a change; this pass finds them unchanged and counts them as new.
async fn run_general(
    ctx: &Ctx<'_>,
    table: Table,
    dry_run: bool,
    job_id: &str,
    file_sha: &str,
    file_name: &str,
    carried: i64,
) -> Result<(Summary, Rejected), ImportError> {
    let keys_of = map_headers(&table.headers)?;
    let today_s = crate::platform::today().to_string();
    ctx.progress
        .total
        .store(table.approx_rows as i64, Ordering::Relaxed);
    let mut summary = Summary {
        dry_run,
        ..Default::default()
    };
    let source = format!("批量导入 {file_name}");
    let now = crate::platform::now_rfc3339();
    let (send, mut recv) = tokio::sync::mpsc::channel::<Batch>(2);
    let checks = ctx.checks();
    let validator = tokio::task::spawn_blocking(move || {
        validate_rows(table.rows, table.approx_rows, CHUNK, keys_of, checks, send)
    });
    let mut tx = if dry_run {
        None
    } else {
        Some(ctx.db.begin().await?)
    };
    let mut change_seq = match tx.as_mut() {
        Some(t) => store::next_change_seq(t).await?,
        None => 0,
    };
    let bulk = match tx.as_mut() {
        Some(t) => begin_bulk(t, table.approx_rows).await?,
        None => Bulk::default(),
    };
    let mut since = std::time::Instant::now();
    // A chunk after the first takes its change number when it first writes.
    let mut seq_due = false;
    let mut rows_done = 0i64;
    let mut chunk_from = 0i64;
    let mut written_before = (0i64, 0i64);
    let mut stamp = store::Stamp {
        source: &source,
        now: &now,
        today: &today_s,
        change_seq,
    };
    let mut outside: Rejected = vec![];
    // Where the time goes (logged at the end): waiting for the validator, looking people up,
    // writing, the change number (other writers hold it), committing.
    let mut t_wait = std::time::Duration::ZERO;
    let (mut t_lookup, mut t_write, mut t_seq, mut t_commit) = (t_wait, t_wait, t_wait, t_wait);
    let mut chunks = 0u64;
    let t_all = std::time::Instant::now();
    // The loading itself; on an error the connection goes back to the pool, so its page cache is
    // first put back to normal (a rollback does not undo a PRAGMA).
    let loaded: Result<(), ImportError> = async {
        loop {
            let t0 = std::time::Instant::now();
            let Some(batch) = recv.recv().await else { break };
            t_wait += t0.elapsed();
            let t0 = std::time::Instant::now();
            // Which of these people are already registered?
            let mut existing: HashMap<String, (String, String, String)> = HashMap::new();
            if !batch.rows.is_empty() {
                let sql = format!(
                    "SELECT citizen_id_bidx, id, row_digest, residence_region FROM elder WHERE citizen_id_bidx IN {}",
                    store::placeholders(ctx.db.backend, 1, batch.rows.len())
                );
                // Not a cached prepared statement: PostgreSQL would keep the generic plan it made while the
                // table was empty (a sequential scan) and every lookup would scan the growing batch.
                let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
                for (_, p) in &batch.rows {
                    q = q.bind(p.bidx.clone());
                }
                let found = match tx.as_mut() {
                    Some(t) => q.fetch_all(&mut **t).await?,
                    None => q.fetch_all(&ctx.db.pool).await?,
                };
                for r in found {
                    existing.insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
                }
            }
            let mut inserts: Vec<store::Prepared> = vec![];
            let mut updates: Vec<(store::Prepared, String)> = vec![];
            let mut unchanged_here = 0i64;
            for (row_no, p) in batch.rows {
                let found = existing.get(&p.bidx);
                match classify(found.map(|(i, d, r)| (i.as_str(), d.as_str(), r.as_str())), &p, ctx.scope) {
                    Class::Insert => inserts.push(p),
                    Class::Outside => outside.push((row_no, OUTSIDE.into(), vec![])),
                    Class::Unchanged => unchanged_here += 1,
                    Class::Update => {
                        let id = found.map(|f| f.0.clone()).unwrap_or_default();
                        updates.push((p, id));
                    }
                }
            }
            t_lookup += t0.elapsed();
            // On PostgreSQL a chunk holding the change number must not wait for a person's row an
            // editor holds: the editor waits for the change number, and the database breaks such
            // a deadlock after a second by failing the edit. The rows it will change are locked
            // only where free; if one is not, the chunk ends before this batch, and the next
            // waits for those rows before it takes the number.
            let pg = ctx.db.backend == crate::platform::db::Backend::Postgres;
            let mut row_held = false;
            if let Some(t) = tx.as_mut()
                && pg
                && !seq_due
                && !updates.is_empty()
            {
                row_held = !lock_rows(t, &updates, true).await?;
            }
            // Into a registry in use: commit the chunk so far and let others write before this
            // batch is written.
            if !bulk.dropped_indexes
                && (row_held
                    || (since.elapsed() >= chunk_hold()
                        && rows_done - chunk_from >= chunk_floor(ctx.db.backend)))
                && let Some(mut t) = tx.take()
            {
                let (ins, upd) = (summary.inserted + carried.min(summary.unchanged), summary.updated);
                // A chunk that wrote nothing (all unchanged) leaves no progress or audit row.
                if (summary.inserted, summary.updated) != written_before {
                    written_before = (summary.inserted, summary.updated);
                    sqlx::query(JOB_PROGRESS)
                        .bind(rows_done)
                        .bind(ins)
                        .bind(upd)
                        .bind(job_id)
                        .execute(&mut *t)
                        .await?;
                    audit::append(
                        &mut t,
                        ctx.who,
                        part_entry(ctx.scope, "registry.import.part", job_id, rows_done, ins, upd),
                    )
                    .await?;
                }
                if bulk.big_cache {
                    // The connection goes back to the pool between chunks.
                    sqlx::query("PRAGMA cache_size = -8192").execute(&mut *t).await?;
                }
                let t0 = std::time::Instant::now();
                t.commit().await?;
                t_commit += t0.elapsed();
                chunks += 1;
                let mut t = ctx.db.begin().await?;
                if bulk.big_cache {
                    sqlx::query(AssertSqlSafe(format!("PRAGMA cache_size = -{BULK_CACHE_KIB}")))
                        .execute(&mut *t)
                        .await?;
                }
                seq_due = true;
                chunk_from = rows_done;
                tx = Some(t);
                since = std::time::Instant::now();
            }
            summary.inserted += inserts.len() as i64;
            summary.updated += updates.len() as i64;
            summary.unchanged += unchanged_here;
            let mut t0 = std::time::Instant::now();
            if let Some(t) = tx.as_mut() {
                // The chunk's change number, taken at its first write: its lookups went first,
                // while an editor who had the head row finished with it.
                if seq_due && !(inserts.is_empty() && updates.is_empty()) {
                    if pg && !updates.is_empty() {
                        lock_rows(t, &updates, false).await?;
                    }
                    let t1 = std::time::Instant::now();
                    change_seq = store::next_change_seq(t).await?;
                    t_seq += t1.elapsed();
                    stamp.change_seq = change_seq;
                    seq_due = false;
                    t0 = std::time::Instant::now();
                }
                let n = inserts.len();
                if n > 0 {
                    let sql = format!(
                        "INSERT INTO elder ({}) VALUES {}",
                        store::INSERT_COLS,
                        store::placeholders(ctx.db.backend, n, store::INSERT_NCOLS)
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for p in &inserts {
                        q = store::bind_prepared(q, p, &stamp);
                    }
                    q.execute(&mut **t).await?;
                }
                for (p, id) in &updates {
                    store::update_content(t, ctx.keys, id, &p.input, &source, &now, change_seq).await?;
                    // A death arriving by file ends the entitlements at once, as a recorded one does.
                    if p.input.death_date.is_some() {
                        crate::catalog::entitlement::follow_registry(t, id, ctx.who).await?;
                        crate::institution::follow_registry(t, id, ctx.who).await?;
                        crate::home_service::follow_registry(t, id, ctx.who).await?;
                    }
                }
            }
            t_write += t0.elapsed();
            ctx.progress
                .processed
                .fetch_add(batch.n_read, Ordering::Relaxed);
            rows_done += batch.n_read;
        }
        Ok(())
    }
    .await;
    // The validator stops sending once nobody receives (it would wait forever after an error).
    drop(recv);
    let validated = validator
        .await
        .map_err(|e| ImportError::Other(anyhow::anyhow!("validator: {e}")))
        .and_then(|r| r);
    let (mut rejected, total, rows_read) = match (loaded, validated) {
        (Ok(()), Ok(v)) => v,
        (Err(e), _) | (Ok(()), Err(e)) => {
            if bulk.big_cache
                && let Some(t) = tx.as_mut()
            {
                let _ = sqlx::query("PRAGMA cache_size = -8192")
                    .execute(&mut **t)
                    .await;
            }
            return Err(e);
        }
    };
    tracing::info!(
        rows = rows_done,
        chunks,
        all_ms = t_all.elapsed().as_millis() as u64,
        waiting_for_rows_ms = t_wait.as_millis() as u64,
        lookups_ms = t_lookup.as_millis() as u64,
        writes_ms = t_write.as_millis() as u64,
        change_number_ms = t_seq.as_millis() as u64,
        commits_ms = t_commit.as_millis() as u64,
        "registry import, general path"
    );
    // Those a bulk pass inserted in its committed chunks, this pass found unchanged.
    let carried = carried.min(summary.unchanged);
    summary.inserted += carried;
    summary.unchanged -= carried;
    summary.outside = outside.len() as i64;
    if tx.is_some() {
        rejected.extend(outside);
    } else {
        summary.inserted += summary.outside;
    }
    finish_summary(&mut summary, &mut rejected, total, rows_read, &ctx.progress);
    if let Some(mut t) = tx {
        end_bulk(&mut t, &bulk).await?;
        sqlx::query(JOB_PROGRESS)
            .bind(rows_read)
            .bind(summary.inserted)
            .bind(summary.updated)
            .bind(job_id)
            .execute(&mut *t)
            .await?;
        audit_import(&mut t, ctx, "registry.import", job_id, file_sha, &summary).await?;
        t.commit().await?;
        ctx.db
            .analyze_after_bulk(&["elder"], (summary.inserted + summary.updated) as usize)
            .await?;
    }
    Ok((summary, rejected))
}

/// The rejected rows in file order, the counts that follow from them, and the progress at 100%.
pub(super) fn finish_summary(
    summary: &mut Summary,
    rejected: &mut Rejected,
    total: i64,
    rows_read: i64,
    progress: &Progress,
) {
    rejected.sort_by_key(|r| r.0);
    summary.total = total;
    summary.rejected = rejected.len() as i64;
    summary.accepted = summary.total - summary.rejected;
    progress.total.store(rows_read, Ordering::Relaxed);
    progress.processed.store(rows_read, Ordering::Relaxed);
    summary.errors = rejected
        .iter()
        .take(200)
        .map(|(r, reason, _)| RowError {
            row: *r,
            reason: reason.clone(),
        })
        .collect();
}

/// Why a real import refuses a row of someone registered outside the importer's scope (a dry run
/// does not tell: it answers as for an unknown ID).
pub(super) const OUTSIDE: &str = "该身份证号不能由您登记，请联系上级民政部门核实";

/// What an import does with one valid row, given the registered person with the same citizen ID
/// (id, row digest, residence region) if there is one.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Class {
    Insert,
    Unchanged,
    Update,
    Outside,
}

pub(super) fn classify(
    found: Option<(&str, &str, &str)>,
    p: &store::Prepared,
    scope: &Scope,
) -> Class {
    match found {
        None => Class::Insert,
        Some((_, digest, region)) => {
            let rc = yiyang_kernel::RegionCode::parse(region).ok();
            if rc.as_ref().is_none_or(|rc| !scope.covers(rc)) {
                Class::Outside
            } else if digest == p.digest {
                Class::Unchanged
            } else {
                Class::Update
            }
        }
    }
}

/// The one audit row of a real import, in its transaction: the file's digest and the counts.
pub async fn audit_import(
    tx: &mut crate::platform::db::Tx<'_>,
    ctx: &Ctx<'_>,
    action: &str,
    job_id: &str,
    file_sha: &str,
    summary: &Summary,
) -> Result<i64, sqlx::Error> {
    audit::append(
        tx,
        ctx.who,
        import_entry(ctx.scope, action, job_id, file_sha, summary),
    )
    .await
}

/// The audit entry of a real import (see [`audit_import`]).
pub fn import_entry<'a>(
    scope: &'a Scope,
    action: &'a str,
    job_id: &'a str,
    file_sha: &str,
    summary: &Summary,
) -> Entry<'a> {
    Entry {
        action,
        entity: "import_job",
        entity_id: Some(job_id),
        region_code: scope.root.as_ref().map(|r| r.as_str()),
        detail: serde_json::json!({
            "file_sha256": file_sha, "total": summary.total, "inserted": summary.inserted,
            "updated": summary.updated, "unchanged": summary.unchanged, "rejected": summary.rejected,
            "outside_scope": summary.outside
        })
        .to_string(),
    }
}

/// Files at least this large load with a large page cache; when the registry holds fewer than half
/// as many people as the file, also without the secondary indexes until the end (a first load).
const BULK_MIN_ROWS: usize = 50_000;
/// SQLite page cache for a bulk load (KiB): the unique indexes' pages stay in memory instead of
/// being spilled to the WAL and read back. Back to the normal 8 MB afterwards.
const BULK_CACHE_KIB: i64 = 262_144;

/// A large load into an empty registry builds the secondary indexes once at the end, in one
/// transaction (nobody's records to read yet). Into a registry in use, a load goes in chunks with
/// the indexes kept, so that other users' reads and writes go on between the chunks.
pub(super) fn first_load(existing: i64, rows: usize) -> bool {
    rows >= BULK_MIN_ROWS && existing == 0
}

/// How long one chunk of an import into a registry in use may hold the write lock (SQLite) or the
/// registry's change-number and audit heads (both engines) before it commits and lets others go:
/// 20 ms, or `YIYANG_IMPORT_CHUNK_MS`. Shorter chunks answer others sooner and cost the import a
/// commit each.
pub fn chunk_hold() -> std::time::Duration {
    static MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    std::time::Duration::from_millis(*MS.get_or_init(|| {
        std::env::var("YIYANG_IMPORT_CHUNK_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|ms| (5..=10_000).contains(ms))
            .unwrap_or(20)
    }))
}

/// Locks the rows of the people `updates` will change (PostgreSQL); with `free_only`, only those
/// nobody else holds. Whether all of them are locked.
async fn lock_rows(
    t: &mut crate::platform::db::Tx<'_>,
    updates: &[(store::Prepared, String)],
    free_only: bool,
) -> Result<bool, sqlx::Error> {
    let ids: std::collections::BTreeSet<&str> = updates.iter().map(|(_, id)| id.as_str()).collect();
    let sql = format!(
        "SELECT id FROM elder WHERE id IN {} FOR UPDATE{}",
        store::placeholders(crate::platform::db::Backend::Postgres, 1, ids.len()),
        if free_only { " SKIP LOCKED" } else { "" }
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
    for id in &ids {
        q = q.bind(id.to_string());
    }
    Ok(q.fetch_all(&mut **t).await?.len() == ids.len())
}

/// The fewest file rows a chunk goes through before it commits, by engine. On PostgreSQL each
/// chunk's end waits for the registry's change number and audit heads behind other users' edits
/// (5 ms a chunk while 64 connections read and 4 edit): timed chunks alone carry about 380 rows
/// each, under that load 250 and half again as many ends. SQLite's chunk holds the one write lock
/// and stays timed only.
fn chunk_floor(backend: crate::platform::db::Backend) -> i64 {
    match backend {
        crate::platform::db::Backend::Sqlite => 0,
        crate::platform::db::Backend::Postgres => 400,
    }
}

/// The job row's account of what is committed, updated in each chunk's transaction, so it tells
/// the truth after a crash: file rows whose outcome is committed, people inserted and updated.
pub const JOB_PROGRESS: &str =
    "UPDATE import_job SET committed_rows = $1, inserted = $2, updated = $3 WHERE id = $4";

/// The audit entry of one committed chunk of a real import (the closing entry sums them up).
pub fn part_entry<'a>(
    scope: &'a Scope,
    action: &'a str,
    job_id: &'a str,
    rows_done: i64,
    inserted: i64,
    updated: i64,
) -> Entry<'a> {
    Entry {
        action,
        entity: "import_job",
        entity_id: Some(job_id),
        region_code: scope.root.as_ref().map(|r| r.as_str()),
        detail: serde_json::json!({
            "committed_rows": rows_done, "inserted": inserted, "updated": updated
        })
        .to_string(),
    }
}

/// What [`begin_bulk`] changed, for [`end_bulk`] to put back.
#[derive(Default)]
struct Bulk {
    big_cache: bool,
    dropped_indexes: bool,
}

/// Bulk mode for a large load: on SQLite a larger page cache for this connection; for a first load
/// also the secondary indexes dropped inside the transaction (rebuilt by [`end_bulk`] before
/// commit, so a crash or error leaves them as they were). On PostgreSQL the dropped indexes lock the
/// table against readers until commit, which is acceptable for a first load only.
async fn begin_bulk(
    tx: &mut crate::platform::db::Tx<'_>,
    rows: usize,
) -> Result<Bulk, sqlx::Error> {
    let mut bulk = Bulk::default();
    if rows < BULK_MIN_ROWS {
        return Ok(bulk);
    }
    if tx.backend() == crate::platform::db::Backend::Sqlite {
        sqlx::query(AssertSqlSafe(format!(
            "PRAGMA cache_size = -{BULK_CACHE_KIB}"
        )))
        .execute(&mut **tx)
        .await?;
        bulk.big_cache = true;
    }
    let existing: i64 = sqlx::query("SELECT COUNT(*) FROM elder")
        .fetch_one(&mut **tx)
        .await?
        .get(0);
    if first_load(existing, rows) {
        for (name, _) in super::rebuilt_after_load() {
            sqlx::query(AssertSqlSafe(format!("DROP INDEX {name}")))
                .execute(&mut **tx)
                .await?;
        }
        bulk.dropped_indexes = true;
    }
    Ok(bulk)
}

async fn end_bulk(tx: &mut crate::platform::db::Tx<'_>, bulk: &Bulk) -> Result<(), sqlx::Error> {
    if bulk.dropped_indexes {
        for (_, ddl) in super::rebuilt_after_load() {
            sqlx::query(AssertSqlSafe(*ddl)).execute(&mut **tx).await?;
        }
    }
    if bulk.big_cache {
        sqlx::query("PRAGMA cache_size = -8192")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Record a job row, run the registry import, store its outcome and the rejected rows.
pub async fn run_job(
    ctx: &Ctx<'_>,
    job_id: &str,
    user_id: Option<&str>,
    bytes: Vec<u8>,
    file_name: &str,
    dry_run: bool,
) -> Result<Summary, ImportError> {
    let job = Job {
        kind: "registry",
        header_key,
        id: job_id,
        user_id,
        file_name,
        dry_run,
    };
    run_job_with(ctx, job, bytes, |table, sha| async move {
        run(ctx, table, dry_run, job_id, &sha, file_name).await
    })
    .await
}

/// An import job as the `import_job` table records it.
pub struct Job<'a> {
    /// registry / assessment
    pub kind: &'a str,
    /// How the import names its columns (its header row is found by them).
    pub header_key: HeaderKey,
    pub id: &'a str,
    pub user_id: Option<&'a str>,
    pub file_name: &'a str,
    pub dry_run: bool,
}

/// The job around any import: record the job row, open the file, let `runner` import the table
/// (given the file's SHA-256), then store the outcome and the rejected rows (encrypted: they may
/// hold citizen IDs in clear) or the failure. Status, progress and the error report are then
/// the same for every kind of import.
pub async fn run_job_with<F, Fut>(
    ctx: &Ctx<'_>,
    job: Job<'_>,
    bytes: Vec<u8>,
    runner: F,
) -> Result<Summary, ImportError>
where
    F: FnOnce(Table, String) -> Fut,
    Fut: std::future::Future<Output = Result<(Summary, Rejected), ImportError>>,
{
    let (job_id, file_name) = (job.id, job.file_name);
    // A real run writes in bulk: requests are paced meanwhile (`platform::pace`).
    let _bulk = (!job.dry_run).then(crate::platform::BulkJob::start);
    let sha = sha256_hex(&bytes);
    sqlx::query("INSERT INTO import_job (id, kind, user_id, file_name, file_sha256, dry_run, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'running', $7)")
        .bind(job_id)
        .bind(job.kind)
        .bind(job.user_id)
        .bind(file_name)
        .bind(&sha)
        .bind(job.dry_run as i64)
        .bind(crate::platform::now_rfc3339())
        .execute(&mut *ctx.db.writer().await?)
        .await?;
    let outcome = match open_table(bytes, file_name, job.header_key) {
        Ok(table) => {
            let headers = table.headers.clone();
            let layout = table.layout.clone();
            runner(table, sha.clone())
                .await
                .map(|r| (r, headers, layout))
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(((mut summary, rejected), headers, layout)) => {
            // Row numbers as Excel shows them on their sheet, beside the record's place in the file.
            let rejected: Vec<(i64, i64, String, Vec<String>)> = rejected
                .into_iter()
                .map(|(row, reason, cells)| {
                    let (shown, reason) = layout.locate(row, reason);
                    (row, shown, reason, cells)
                })
                .collect();
            for e in &mut summary.errors {
                (e.row, e.reason) = layout.locate(e.row, std::mem::take(&mut e.reason));
            }
            for c in &mut summary.changes {
                let (sheet, row) = layout.place(c.row);
                c.row = row;
                if layout.sheets.len() > 1 {
                    c.name = format!("{}（工作表“{sheet}”）", c.name);
                }
            }
            let layout = layout.view();
            summary.layout = Some(layout.clone());
            let mut tx = ctx.db.begin().await?;
            for part in rejected
                .iter()
                .take(MAX_STORED_ERRORS)
                .collect::<Vec<_>>()
                .chunks(300)
            {
                let sql = format!(
                    "INSERT INTO import_job_error (job_id, row_no, sheet_row, reason, cells_enc) VALUES {}",
                    store::placeholders(ctx.db.backend, part.len(), 5)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (row, shown, reason, cells) in part {
                    q = q
                        .bind(job_id)
                        .bind(*row)
                        .bind(*shown)
                        .bind(reason.clone())
                        .bind(
                            ctx.keys
                                .encrypt(&serde_json::to_string(cells).unwrap_or_default()),
                        );
                }
                q.execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE import_job SET state = 'done', total = $1, accepted = $2, rejected = $3, inserted = $4, updated = $5, unchanged = $6, headers = $7, finished_at = $8, layout = $10, changes = $11 WHERE id = $9")
                .bind(summary.total)
                .bind(summary.accepted)
                .bind(summary.rejected)
                .bind(summary.inserted)
                .bind(summary.updated)
                .bind(summary.unchanged)
                .bind(serde_json::to_string(&headers).unwrap_or_default())
                .bind(crate::platform::now_rfc3339())
                .bind(job_id)
                .bind(serde_json::to_string(&layout).unwrap_or_default())
                .bind(
                    (!summary.changes.is_empty())
                        .then(|| serde_json::to_string(&summary.changes).unwrap_or_default()),
                )
                .execute(&mut *tx)
                .await?;
            // A dry run that met people registered outside the caller's scope told them nothing,
            // but the attempt is on record.
            if job.dry_run && summary.outside > 0 {
                audit::append(
                    &mut tx,
                    ctx.who,
                    Entry {
                        action: "import.outside_scope",
                        entity: "import_job",
                        entity_id: Some(job_id),
                        region_code: ctx.scope.root.as_ref().map(|r| r.as_str()),
                        detail: serde_json::json!({
                            "kind": job.kind, "dry_run": true, "file_sha256": sha,
                            "rows": summary.outside
                        })
                        .to_string(),
                    },
                )
                .await?;
            }
            tx.commit().await?;
            Ok(summary)
        }
        Err(e) => {
            // Chunks committed before the failure stay: say so.
            let p = sqlx::query(
                "SELECT committed_rows, inserted, updated FROM import_job WHERE id = $1",
            )
            .bind(job_id)
            .fetch_one(&ctx.db.pool)
            .await?;
            let (rows, ins, upd): (i64, i64, i64) = (p.get(0), p.get(1), p.get(2));
            let msg = match &e {
                ImportError::Db(_) | ImportError::Other(_) => {
                    tracing::error!(error = %e, job_id, "import failed");
                    stopped_message("导入失败（数据库错误，请联系管理员）", rows, ins, upd)
                }
                other if rows > 0 => stopped_message(&other.to_string(), rows, ins, upd),
                other => other.to_string(),
            };
            sqlx::query("UPDATE import_job SET state = 'failed', message = $1, finished_at = $2 WHERE id = $3")
                .bind(&msg)
                .bind(crate::platform::now_rfc3339())
                .bind(job_id)
                .execute(&mut *ctx.db.writer().await?)
                .await?;
            Err(e)
        }
    }
}

/// Jobs left `running` by a killed process: their transaction never committed, so nothing of them is in.
pub async fn mark_interrupted(db: &Db) -> anyhow::Result<u64> {
    let jobs = sqlx::query(
        "SELECT id, committed_rows, inserted, updated FROM import_job WHERE state = 'running'",
    )
    .fetch_all(&db.pool)
    .await?;
    for j in &jobs {
        let msg = stopped_message("导入进程中断", j.get(1), j.get(2), j.get(3));
        sqlx::query("UPDATE import_job SET state = 'failed', message = $1 WHERE id = $2")
            .bind(msg)
            .bind(j.get::<String, _>(0))
            .execute(&mut *db.writer().await?)
            .await?;
    }
    Ok(jobs.len() as u64)
}

/// What a job that stopped part-way left, from its row's committed progress: an import into a
/// registry in use commits in chunks, and re-importing the same file completes it without
/// repeating anyone (people are matched by citizen ID).
fn stopped_message(what: &str, rows: i64, inserted: i64, updated: i64) -> String {
    if inserted + updated == 0 && rows == 0 {
        format!("{what}，本批次未写入任何数据，请重新导入")
    } else {
        format!(
            "{what}：文件前 {rows} 行已处理并保存（新增 {inserted} 人，更新 {updated} 人），其余未写入；请重新导入同一文件完成其余部分，已保存的不会重复"
        )
    }
}

/// The error report: original cells plus row number and reason, as XLSX.
pub async fn error_report(
    db: &Db,
    keys: &KeyRing,
    job_id: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(job) = sqlx::query("SELECT headers FROM import_job WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&db.pool)
        .await?
    else {
        return Ok(None);
    };
    let headers: Vec<String> = job
        .get::<Option<String>, _>(0)
        .and_then(|h| serde_json::from_str(&h).ok())
        .unwrap_or_default();
    let rows = sqlx::query(
        "SELECT COALESCE(sheet_row, row_no), reason, cells_enc FROM import_job_error WHERE job_id = $1 ORDER BY row_no",
    )
    .bind(job_id)
    .fetch_all(&db.pool)
    .await?;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("错误明细")?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    ws.write_string_with_format(0, 0, "行号", &bold)?;
    ws.write_string_with_format(0, 1, "错误原因", &bold)?;
    for (i, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, (i + 2) as u16, h, &bold)?;
    }
    ws.set_column_width(1, 50)?;
    for (n, r) in rows.iter().enumerate() {
        let row = (n + 1) as u32;
        ws.write_number(row, 0, r.get::<i64, _>(0) as f64)?;
        ws.write_string(row, 1, r.get::<String, _>(1))?;
        let cells: Vec<String> =
            serde_json::from_str(&keys.decrypt(&r.get::<Vec<u8>, _>(2))?).unwrap_or_default();
        for (i, c) in cells.iter().enumerate() {
            ws.write_string(row, (i + 2) as u16, c)?;
        }
    }
    Ok(Some(wb.save_to_buffer()?))
}

/// The import template: headers, one example row, and a sheet explaining each column.
pub fn template_xlsx() -> anyhow::Result<Vec<u8>> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let text = rust_xlsxwriter::Format::new().set_num_format("@");
    let head = rust_xlsxwriter::Format::new()
        .set_bold()
        .set_background_color(rust_xlsxwriter::Color::RGB(0xDDEBF7));
    let ws = wb.add_worksheet();
    ws.set_name("老年人信息")?;
    for (i, c) in model::COLUMNS.iter().enumerate() {
        let title = if c.required {
            format!("*{}", c.zh)
        } else {
            c.zh.to_string()
        };
        ws.write_string_with_format(0, i as u16, &title, &head)?;
        // Text format keeps 18-digit IDs and leading zeros intact when people type into the sheet.
        ws.set_column_format(i as u16, &text)?;
        ws.set_column_width(i as u16, 16)?;
    }
    let lists: [(&str, &[(&str, &str)]); 3] = [
        ("living_status", model::LIVING_STATUS),
        ("economic_status", model::ECONOMIC_STATUS),
        ("family_planning_special", model::FAMILY_PLANNING),
    ];
    for (key, list) in lists {
        let col = model::COLUMNS
            .iter()
            .position(|c| c.key == key)
            .expect("column") as u16;
        let v = rust_xlsxwriter::DataValidation::new()
            .allow_list_strings(&list.iter().map(|(_, z)| *z).collect::<Vec<_>>())?;
        ws.add_data_validation(1, col, 1_048_575, col, &v)?;
    }
    let help = wb.add_worksheet();
    help.set_name("填写说明")?;
    help.write_string_with_format(0, 0, "列名", &head)?;
    help.write_string_with_format(0, 1, "英文列名", &head)?;
    help.write_string_with_format(0, 2, "必填", &head)?;
    help.write_string_with_format(0, 3, "说明", &head)?;
    for (i, c) in model::COLUMNS.iter().enumerate() {
        let r = (i + 1) as u32;
        help.write_string(r, 0, c.zh)?;
        help.write_string(r, 1, c.key)?;
        help.write_string(r, 2, if c.required { "是" } else { "否" })?;
        help.write_string(r, 3, c.hint)?;
    }
    help.set_column_width(3, 50)?;
    Ok(wb.save_to_buffer()?)
}

/// All stored rejected rows of a job (row number and reason), for the command line's JSON summary.
pub async fn error_list(db: &Db, job_id: &str) -> anyhow::Result<Vec<RowError>> {
    Ok(
        sqlx::query(
            "SELECT COALESCE(sheet_row, row_no), reason FROM import_job_error WHERE job_id = $1 ORDER BY row_no",
        )
        .bind(job_id)
        .fetch_all(&db.pool)
        .await?
        .into_iter()
        .map(|r| RowError {
            row: r.get(0),
            reason: r.get(1),
        })
        .collect(),
    )
}

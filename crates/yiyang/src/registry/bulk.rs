//! The bulk path of a registry import (see `import::run`). New people are written through each
//! engine's own bulk interface — prepared statements stepping on a rusqlite connection for SQLite,
//! `COPY … FROM STDIN` on a native connection for PostgreSQL — instead of binding 28 values a row
//! through sqlx Any, which cost most of an import's time. The same validation, classification,
//! summary and audit row as the general path; one transaction, all or nothing.
//!
//! It serves every dry run, every first load and every unchanged re-import. A real run that meets a
//! registered person whose data the file changes rolls back at once and the general path takes the
//! file, recording each change with its status history.

use super::import::{self, Batch, Class, Ctx, ImportError, Rejected, RowIter, Summary};
use super::store::{self, NEXT_CHANGE_SEQ, Prepared, Stamp};
use crate::audit;
use crate::platform::db::{Backend, Chunks, CopyBinary};
use std::sync::atomic::Ordering;

/// The job the rows belong to, for the audit row.
pub struct JobInfo<'a> {
    pub id: &'a str,
    pub file_sha: &'a str,
    pub file_name: &'a str,
}

pub enum Outcome {
    Done(Summary, Rejected),
    /// A real run found people whose registered data the file changes. What it inserted before,
    /// in chunks already committed, stays (the general path then finds those people unchanged):
    /// how many.
    HasUpdates {
        inserted: i64,
    },
}

/// Valid rows per batch handed from the validating thread to the writer.
const CHUNK: usize = 500;
/// PostgreSQL: rows per lookup query and per COPY.
const PG_GROUP: usize = 10_000;

/// The unique key on the citizen-ID blind index (as the registry's migration names it).
const CID_KEY: &str = "elder_citizen_id_key";

const LOOKUP_ONE: &str =
    "SELECT id, row_digest, residence_region FROM elder WHERE citizen_id_bidx = $1";
const LOOKUP_ANY: &str = "SELECT citizen_id_bidx, id, row_digest, residence_region FROM elder \
     WHERE citizen_id_bidx = ANY($1)";

/// What the writer did with the valid rows.
#[derive(Default)]
struct Loaded {
    inserted: i64,
    unchanged: i64,
    updated: i64,
    outside: Rejected,
    /// A real run met a change (or the validator failed): what it wrote since its last commit is
    /// rolled back.
    stopped: bool,
    /// Inserted in chunks already committed.
    committed_inserted: i64,
    /// A dry run's first people the file would change: (row, registered id, the row's content),
    /// to show which fields change.
    changed: Vec<(i64, String, crate::registry::model::ElderInput)>,
}

/// People whose changes a dry run spells out field by field (the counts cover everyone).
pub const CHANGES_SHOWN: usize = 100;

impl Loaded {
    /// A dry run keeps the first people it would change, to show what changes.
    fn note_change(
        &mut self,
        row_no: i64,
        class: &Class,
        id: Option<&String>,
        p: &Prepared,
        dry: bool,
    ) {
        if dry
            && *class == Class::Update
            && self.changed.len() < CHANGES_SHOWN
            && let Some(id) = id
        {
            self.changed.push((row_no, id.clone(), p.input.clone()));
        }
    }

    fn take(&mut self, row_no: i64, class: Class) {
        match class {
            Class::Insert => self.inserted += 1,
            Class::Unchanged => self.unchanged += 1,
            Class::Update => self.updated += 1,
            Class::Outside => self.outside.push((row_no, import::OUTSIDE.into(), vec![])),
        }
    }

    /// The summary as the audit row records it, given the validator's total and rejected count.
    fn summary(&self, dry_run: bool, total: i64, rejected: i64) -> Summary {
        let outside = self.outside.len() as i64;
        // A dry run answers for people registered elsewhere as for unknown IDs.
        let (rejected, seen_new) = if dry_run {
            (rejected, outside)
        } else {
            (rejected + outside, 0)
        };
        Summary {
            outside,
            total,
            accepted: total - rejected,
            rejected,
            inserted: self.inserted + seen_new,
            updated: self.updated,
            unchanged: self.unchanged,
            dry_run,
            errors: vec![],
            layout: None,
            changes: vec![],
        }
    }
}

/// Everything the writer needs, owned (it runs on a thread of its own).
struct Work {
    recv: tokio::sync::mpsc::Receiver<Batch>,
    /// The validator's (total, rejected) once it has read the whole file; dropped unsent if it failed.
    done: tokio::sync::oneshot::Receiver<(i64, i64)>,
    scope: crate::identity::Scope,
    who: audit::Who,
    chain: crate::platform::crypto::ChainKey,
    progress: std::sync::Arc<import::Progress>,
    dry_run: bool,
    approx_rows: usize,
    source: String,
    now: String,
    today: String,
    job_id: String,
    file_sha: String,
}

pub async fn run(
    ctx: &Ctx<'_>,
    rows: RowIter,
    approx_rows: usize,
    keys_of: Vec<Option<&'static str>>,
    dry_run: bool,
    job: &JobInfo<'_>,
) -> Result<Outcome, ImportError> {
    ctx.progress
        .total
        .store(approx_rows as i64, Ordering::Relaxed);
    // Room for two PostgreSQL groups: the validator keeps working while a lookup or COPY runs.
    let (send, recv) = tokio::sync::mpsc::channel::<Batch>(2 * PG_GROUP / CHUNK);
    let (done_tx, done) = tokio::sync::oneshot::channel::<(i64, i64)>();
    let checks = ctx.checks();
    let validator = tokio::task::spawn_blocking(move || {
        let r = import::validate_rows(rows, approx_rows, CHUNK, keys_of, checks, send);
        if let Ok((rejected, total, _)) = &r {
            let _ = done_tx.send((*total, rejected.len() as i64));
        }
        r
    });
    let work = Work {
        recv,
        done,
        scope: ctx.scope.clone(),
        who: ctx.who.clone(),
        chain: ctx.db.chain_key()?,
        progress: ctx.progress.clone(),
        dry_run,
        approx_rows,
        source: format!("批量导入 {}", job.file_name),
        now: crate::platform::now_rfc3339(),
        today: crate::platform::today().to_string(),
        job_id: job.id.to_string(),
        file_sha: job.file_sha.to_string(),
    };
    let loaded = match ctx.db.backend {
        Backend::Sqlite if dry_run => ctx
            .db
            .sqlite_readonly(move |c| {
                let mut w = work;
                load_sqlite(c, None, &mut w, None)
            })
            .await
            .map_err(ImportError::from),
        Backend::Sqlite => ctx
            .db
            .sqlite_chunked(move |ch| write_sqlite(ch, work))
            .await
            .map_err(ImportError::from),
        Backend::Postgres => load_pg(ctx.db, work).await,
    };
    let validated = validator
        .await
        .map_err(|e| ImportError::Other(anyhow::anyhow!("validator: {e}")))
        .and_then(|r| r);
    // A validator error comes first: the writer only saw its rows stop and rolled back.
    let (mut rejected, total, rows_read) = validated?;
    let loaded = loaded?;
    if loaded.stopped {
        return Ok(Outcome::HasUpdates {
            inserted: loaded.committed_inserted,
        });
    }
    let mut summary = loaded.summary(dry_run, total, rejected.len() as i64);
    if !loaded.changed.is_empty() {
        summary.changes = import::spell_changes(ctx, &loaded.changed).await?;
    }
    if !dry_run {
        rejected.extend(loaded.outside);
    }
    import::finish_summary(&mut summary, &mut rejected, total, rows_read, &ctx.progress);
    if !dry_run {
        ctx.db
            .analyze_after_bulk(&["elder"], summary.inserted as usize)
            .await?;
    }
    Ok(Outcome::Done(summary, rejected))
}

/// SQLite, real run. Into an empty registry: one transaction, the secondary indexes and the
/// citizen-ID key built once after the rows. Into a registry in use: chunks of at most
/// [`import::chunk_hold`] each, committed with the job's progress and an audit row of their own,
/// so that other users' writes (an audited read among them) go on in between. Stops at the first
/// person the file changes (the general path takes over).
fn write_sqlite(ch: &Chunks, mut w: Work) -> rusqlite::Result<(Loaded, bool)> {
    let tx = ch.conn();
    let t0 = std::time::Instant::now();
    let change_seq: i64 = tx.query_row(NEXT_CHANGE_SEQ, [], |r| r.get(0))?;
    let existing: i64 = tx.query_row("SELECT COUNT(*) FROM elder", [], |r| r.get(0))?;
    let rebuild = import::first_load(existing, w.approx_rows);
    // Into an empty registry everyone is new (the validator took out repeats within the file, and
    // this transaction holds the write lock): the citizen-ID key is built once at the end too.
    let empty = rebuild;
    // The key first: a repeated citizen ID fails before the other builds are done.
    let rebuilt = || {
        empty
            .then_some(super::SQLITE_CID_INDEX)
            .into_iter()
            .chain(super::rebuilt_after_load().copied())
    };
    if rebuild {
        for (name, _) in rebuilt() {
            tx.execute(&format!("DROP INDEX {name}"), [])?;
        }
    }
    let (source, now, today) = (w.source.clone(), w.now.clone(), w.today.clone());
    let stamp = Stamp {
        source: &source,
        now: &now,
        today: &today,
        change_seq,
    };
    // Insert first when most of the file is new; look up first when most of it is likely there.
    let order = if empty {
        Order::InsertOnly
    } else if existing as usize * 2 <= w.approx_rows {
        Order::InsertFirst
    } else {
        Order::LookUpFirst
    };
    let (chain, who, scope, job_id) = (
        w.chain.clone(),
        w.who.clone(),
        w.scope.clone(),
        w.job_id.clone(),
    );
    let mut since = std::time::Instant::now();
    let mut chunk = |loaded: &mut Loaded, rows_done: i64| -> rusqlite::Result<Option<i64>> {
        if empty || since.elapsed() < import::chunk_hold() {
            return Ok(None);
        }
        // A chunk that only looked people up (an unchanged re-import) lets go of the lock too,
        // but leaves no progress or audit row.
        if loaded.inserted > loaded.committed_inserted {
            tx.execute(
                import::JOB_PROGRESS,
                rusqlite::params![rows_done, loaded.inserted, 0, job_id],
            )?;
            audit::append_sqlite(
                tx,
                &chain,
                &who,
                import::part_entry(
                    &scope,
                    "registry.import.part",
                    &job_id,
                    rows_done,
                    loaded.inserted,
                    0,
                ),
            )?;
        }
        ch.commit()?;
        loaded.committed_inserted = loaded.inserted;
        since = std::time::Instant::now();
        Ok(Some(tx.query_row(NEXT_CHANGE_SEQ, [], |r| r.get(0))?))
    };
    let mut loaded = load_sqlite(tx, Some((stamp, order)), &mut w, Some(&mut chunk))?;
    if loaded.stopped {
        return Ok((loaded, false));
    }
    let Ok((total, rejected)) = w.done.blocking_recv() else {
        loaded.stopped = true;
        return Ok((loaded, false));
    };
    let loaded_at = t0.elapsed();
    if rebuild {
        // The validator is done by now: the sorter may use the other core.
        tx.execute_batch("PRAGMA threads = 2")?;
        for (_, ddl) in rebuilt() {
            tx.execute(ddl, [])?;
        }
        tx.execute_batch("PRAGMA threads = 0")?;
    }
    let summary = loaded.summary(false, total, rejected);
    tx.execute(
        import::JOB_PROGRESS,
        rusqlite::params![total, summary.inserted, 0, w.job_id],
    )?;
    audit::append_sqlite(
        tx,
        &w.chain,
        &w.who,
        import::import_entry(
            &w.scope,
            "registry.import",
            &w.job_id,
            &w.file_sha,
            &summary,
        ),
    )?;
    tracing::info!(
        rows_ms = loaded_at.as_millis() as u64,
        indexes_ms = (t0.elapsed() - loaded_at).as_millis() as u64,
        rebuild,
        chunks = ch.commits() + 1,
        "registry bulk load written, committing"
    );
    Ok((loaded, true))
}

/// How a real SQLite run meets each row.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// An empty registry without its citizen-ID key: everyone is new, nothing to look up.
    InsertOnly,
    /// Mostly new people: insert, and look up only the rows that were already there (one probe of
    /// the unique index per new person instead of two).
    InsertFirst,
    /// Mostly people already there: look up first.
    LookUpFirst,
}

/// SQLite: look every valid row up by its blind index and insert the new ones (when `write` is
/// given: a real run, and in which order). A real run stops at the first change.
/// `chunk` is asked after each batch (with the file rows read so far) whether to commit; it
/// answers the next chunk's change number when it did.
type ChunkHook<'a> = &'a mut dyn FnMut(&mut Loaded, i64) -> rusqlite::Result<Option<i64>>;

fn load_sqlite(
    c: &rusqlite::Connection,
    write: Option<(Stamp, Order)>,
    w: &mut Work,
    mut chunk: Option<ChunkHook>,
) -> rusqlite::Result<Loaded> {
    let mut stamp_now = write.map(|(s, _)| s);
    let order = write.map(|(_, o)| o);
    let insert_first = matches!(order, Some(Order::InsertFirst | Order::InsertOnly));
    use rusqlite::OptionalExtension;
    let mut look = c.prepare(LOOKUP_ONE)?;
    let mut insert = match stamp_now {
        Some(_) => Some(c.prepare(&format!(
            "INSERT INTO elder ({}) VALUES ({}){}",
            store::INSERT_COLS,
            vec!["?"; store::INSERT_NCOLS].join(","),
            // Without the key (dropped for this load) there is no conflict to name.
            if order == Some(Order::InsertOnly) {
                ""
            } else {
                " ON CONFLICT (citizen_id_bidx) DO NOTHING"
            }
        ))?),
        None => None,
    };
    let mut loaded = Loaded::default();
    let mut waited = std::time::Duration::ZERO;
    let mut rows_read = 0i64;
    loop {
        let t = std::time::Instant::now();
        let Some(batch) = w.recv.blocking_recv() else {
            break;
        };
        waited += t.elapsed();
        let stamp = stamp_now.as_ref();
        for (row_no, p) in &batch.rows {
            if insert_first
                && let (Some(ins), Some(st)) = (insert.as_mut(), stamp)
                && ins.execute(rusqlite::params_from_iter(p.cells(st)))? == 1
            {
                loaded.take(*row_no, Class::Insert);
                continue;
            }
            let found: Option<(String, String, String)> = look
                .query_row([&p.bidx], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let class = import::classify(
                found
                    .as_ref()
                    .map(|(i, d, r)| (i.as_str(), d.as_str(), r.as_str())),
                p,
                &w.scope,
            );
            if class == Class::Update && stamp.is_some() {
                loaded.stopped = true;
                return Ok(loaded);
            }
            loaded.note_change(*row_no, &class, found.as_ref().map(|f| &f.0), p, w.dry_run);
            if class == Class::Insert
                && let (Some(ins), Some(st)) = (insert.as_mut(), stamp)
            {
                // Looked up first and absent: new.
                ins.execute(rusqlite::params_from_iter(p.cells(st)))?;
            }
            loaded.take(*row_no, class);
        }
        w.progress
            .processed
            .fetch_add(batch.n_read, Ordering::Relaxed);
        rows_read += batch.n_read;
        if let Some(hook) = chunk.as_mut()
            && let Some(seq) = hook(&mut loaded, rows_read)?
            && let Some(st) = stamp_now.as_mut()
        {
            st.change_seq = seq;
        }
    }
    tracing::debug!(
        waited_ms = waited.as_millis() as u64,
        "sqlite writer waited for rows"
    );
    Ok(loaded)
}

/// PostgreSQL: the same on a native connection's transaction, a lookup and a COPY per group of
/// rows. A dry run reads in a transaction it rolls back.
async fn load_pg(db: &crate::platform::db::Db, mut w: Work) -> Result<Loaded, ImportError> {
    use sqlx::{Connection, Row};
    let t0 = std::time::Instant::now();
    let mut conn = db.pg_native().await?;
    let mut tx = conn.begin().await?;
    let (mut change_seq, mut rebuild, mut empty) = (0, false, false);
    if !w.dry_run {
        change_seq = sqlx::query(NEXT_CHANGE_SEQ)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let existing: i64 = sqlx::query("SELECT COUNT(*) FROM elder")
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        rebuild = import::first_load(existing, w.approx_rows);
        empty = existing == 0;
        if rebuild {
            for (name, _) in super::rebuilt_after_load() {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if rebuild && empty {
            // An empty registry takes no lookups: its citizen-ID key is built once after the COPY
            // too (1M keys in random order cost 2.9 s kept up row by row, 1.25 s built after). A
            // repeat would fail that build, and with it this transaction.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE elder DROP CONSTRAINT {CID_KEY}"
            )))
            .execute(&mut *tx)
            .await?;
        }
    }
    let mut stamp = Stamp {
        source: &w.source,
        now: &w.now,
        today: &w.today,
        change_seq,
    };
    let mut since = std::time::Instant::now();
    let mut rows_done = 0i64;
    let copy_sql = format!(
        "COPY elder ({}) FROM STDIN WITH (FORMAT binary)",
        store::INSERT_COLS
    );
    let mut loaded = Loaded::default();
    let mut group: Vec<(i64, Prepared)> = Vec::with_capacity(PG_GROUP);
    let mut group_read = 0i64;
    let mut waited = std::time::Duration::ZERO;
    let (mut looked, mut copied) = (waited, waited);
    if empty {
        // Into an empty registry everyone is new (the validator took out repeats within the file;
        // someone inserted meanwhile by another import fails the unique index, and with it this
        // transaction): one COPY streams the rows while PostgreSQL writes the earlier ones.
        let mut copy = tx.copy_in_raw(&copy_sql).await?;
        let mut out = CopyBinary::default();
        loop {
            let t = std::time::Instant::now();
            let Some(batch) = w.recv.recv().await else {
                break;
            };
            waited += t.elapsed();
            for (row_no, p) in &batch.rows {
                out.row(&p.cells(&stamp));
                loaded.take(*row_no, Class::Insert);
            }
            let t = std::time::Instant::now();
            out.send(&mut copy).await?;
            copied += t.elapsed();
            w.progress
                .processed
                .fetch_add(batch.n_read, Ordering::Relaxed);
        }
        let t = std::time::Instant::now();
        out.finish(copy).await?;
        copied += t.elapsed();
    } else {
        loop {
            let t = std::time::Instant::now();
            let batch = w.recv.recv().await;
            waited += t.elapsed();
            let end = batch.is_none();
            if let Some(b) = batch {
                group_read += b.n_read;
                group.extend(b.rows);
            }
            if group.len() >= PG_GROUP || (end && !group.is_empty()) {
                let t = std::time::Instant::now();
                // This group's new people, one COPY of their own.
                let mut out = CopyBinary::default();
                let bidx: Vec<&str> = group.iter().map(|(_, p)| p.bidx.as_str()).collect();
                // Planned with the values each time: a plan kept from an empty table would scan it.
                let found = sqlx::query(LOOKUP_ANY)
                    .bind(bidx)
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?;
                let found: std::collections::HashMap<String, (String, String, String)> = found
                    .into_iter()
                    .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
                    .collect();
                for (row_no, p) in &group {
                    let f = found.get(&p.bidx);
                    let class = import::classify(
                        f.map(|(i, d, r)| (i.as_str(), d.as_str(), r.as_str())),
                        p,
                        &w.scope,
                    );
                    if class == Class::Update && !w.dry_run {
                        loaded.stopped = true;
                        break;
                    }
                    if class == Class::Insert && !w.dry_run {
                        out.row(&p.cells(&stamp));
                    }
                    loaded.note_change(*row_no, &class, f.map(|f| &f.0), p, w.dry_run);
                    loaded.take(*row_no, class);
                }
                if loaded.stopped {
                    break;
                }
                looked += t.elapsed();
                let t = std::time::Instant::now();
                if out.rows() > 0 {
                    let copy = tx.copy_in_raw(&copy_sql).await?;
                    std::mem::take(&mut out).finish(copy).await?;
                }
                copied += t.elapsed();
                group.clear();
                w.progress
                    .processed
                    .fetch_add(group_read, Ordering::Relaxed);
                rows_done += group_read;
                group_read = 0;
                // A registry in use: commit this chunk (it holds the change-number lock) and
                // let others write before the next. One that wrote nothing (an unchanged
                // re-import's) leaves no progress or audit row.
                if !w.dry_run && !end && since.elapsed() >= import::chunk_hold() {
                    if loaded.inserted > loaded.committed_inserted {
                        progress_pg(&mut tx, rows_done, loaded.inserted, &w.job_id).await?;
                        audit::append_pg(
                            &mut tx,
                            &w.chain,
                            &w.who,
                            import::part_entry(
                                &w.scope,
                                "registry.import.part",
                                &w.job_id,
                                rows_done,
                                loaded.inserted,
                                0,
                            ),
                        )
                        .await?;
                    }
                    tx.commit().await?;
                    loaded.committed_inserted = loaded.inserted;
                    tx = conn.begin().await?;
                    stamp.change_seq = sqlx::query(NEXT_CHANGE_SEQ)
                        .fetch_one(&mut *tx)
                        .await?
                        .get(0);
                    since = std::time::Instant::now();
                }
            }
            if end {
                break;
            }
        }
    }
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    tracing::debug!(
        waited_ms = ms(waited),
        looked_up_ms = ms(looked),
        copied_ms = ms(copied),
        "postgres writer rows"
    );
    if loaded.stopped || w.dry_run {
        tx.rollback().await?;
        return Ok(loaded);
    }
    let Ok((total, rejected)) = (&mut w.done).await else {
        tx.rollback().await?;
        loaded.stopped = true;
        return Ok(loaded);
    };
    let loaded_at = t0.elapsed();
    if rebuild {
        // The default 64 MB sorts a million keys on disk in several passes.
        sqlx::query("SET LOCAL maintenance_work_mem = '512MB'")
            .execute(&mut *tx)
            .await?;
        if empty {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE elder ADD CONSTRAINT {CID_KEY} UNIQUE (citizen_id_bidx)"
            )))
            .execute(&mut *tx)
            .await?;
        }
        for (_, ddl) in super::rebuilt_after_load() {
            sqlx::query(sqlx::AssertSqlSafe(*ddl))
                .execute(&mut *tx)
                .await?;
        }
    }
    let summary = loaded.summary(false, total, rejected);
    progress_pg(&mut tx, total, summary.inserted, &w.job_id).await?;
    audit::append_pg(
        &mut tx,
        &w.chain,
        &w.who,
        import::import_entry(
            &w.scope,
            "registry.import",
            &w.job_id,
            &w.file_sha,
            &summary,
        ),
    )
    .await?;
    let indexed_at = t0.elapsed();
    tx.commit().await?;
    tracing::info!(
        rows_ms = loaded_at.as_millis() as u64,
        indexes_ms = (indexed_at - loaded_at).as_millis() as u64,
        commit_ms = (t0.elapsed() - indexed_at).as_millis() as u64,
        rebuild,
        "registry bulk load committed"
    );
    Ok(loaded)
}

/// The job row's progress in the writer's transaction (the bulk path inserts only).
async fn progress_pg(
    tx: &mut sqlx::PgConnection,
    rows: i64,
    inserted: i64,
    job_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(import::JOB_PROGRESS)
        .bind(rows)
        .bind(inserted)
        .bind(0i64)
        .bind(job_id)
        .execute(tx)
        .await?;
    Ok(())
}

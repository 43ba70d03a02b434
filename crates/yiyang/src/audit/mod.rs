//! audit — one row per change and per sensitive read, written inside the caller's transaction,
//! append-only (triggers refuse UPDATE and DELETE) and chained with a keyed MAC (HMAC-SHA256 under
//! a key derived from the key file, which is not in the database): each row's MAC covers the
//! previous row's, and `audit_head` remembers the last one so a removed tail is noticed. Whoever
//! can write the database can still drop the triggers and rewind the tail together with the head;
//! checkpoints of the head kept outside the database (`checkpoint.rs`) catch that.

pub mod checkpoint;
pub mod group;
pub mod http;
pub mod words;

use crate::platform::crypto::ChainKey;
use crate::platform::db::{Db, HeldAudit, Tx};
use crate::platform::migrations::Stmt::{self, *};
use hmac::Mac;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE audit_log (seq BIGINT PRIMARY KEY, at TEXT NOT NULL, actor_id TEXT, actor_name TEXT NOT NULL, \
         action TEXT NOT NULL, entity TEXT NOT NULL, entity_id TEXT, region_code TEXT, detail TEXT NOT NULL, \
         request_id TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    ),
    Both("CREATE INDEX audit_log_action ON audit_log (action, seq)"),
    Both(
        "CREATE TABLE audit_head (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)",
    ),
    Both("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'genesis')"),
    Sqlite(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ),
    Sqlite(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ),
    Sqlite(
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END",
    ),
    Sqlite(
        "CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head WHEN NEW.seq < OLD.seq BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END",
    ),
    Postgres(
        "CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF TG_TABLE_NAME = 'audit_head' AND TG_OP = 'UPDATE' AND NEW.seq >= OLD.seq THEN RETURN NEW; END IF; \
         RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$",
    ),
    Postgres(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_refuse()",
    ),
    Postgres(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()",
    ),
    Postgres(
        "CREATE TRIGGER audit_head_forward BEFORE UPDATE OR DELETE ON audit_head FOR EACH ROW EXECUTE FUNCTION audit_refuse()",
    ),
];

/// Rows written before the chain was keyed (plain SHA-256) are chained again under the key by
/// [`key_legacy_chain`], once, after checking them; `keyed` says that is done.
pub const MIGRATION_KEYED: &[Stmt] = &[
    Both("ALTER TABLE audit_head ADD COLUMN keyed BIGINT NOT NULL DEFAULT 0"),
    // An empty chain has nothing to convert.
    Both("UPDATE audit_head SET keyed = 1 WHERE seq = 0"),
];

/// Who did it. `actor_id` is None for the command line and system jobs.
#[derive(Debug, Clone)]
pub struct Who {
    pub actor_id: Option<String>,
    pub actor_name: String,
}

#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<&'a str>,
    pub region_code: Option<&'a str>,
    /// JSON text; never carries a citizen ID, phone or full name in clear.
    pub detail: String,
}

/// The chain's MAC of one row: HMAC-SHA256 under the chain key (`Some`), or the plain SHA-256 of
/// rows written before the key (`None`, only to check them before they are chained again).
#[allow(clippy::too_many_arguments)]
fn row_hash(
    key: Option<&ChainKey>,
    prev: &str,
    seq: i64,
    at: &str,
    actor_id: &str,
    actor_name: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    region_code: &str,
    detail: &str,
    request_id: &str,
) -> String {
    let parts = [
        prev,
        &seq.to_string(),
        at,
        actor_id,
        actor_name,
        action,
        entity,
        entity_id,
        region_code,
        detail,
        request_id,
    ];
    // Length-prefixing makes the encoding unambiguous ("ab"+"c" ≠ "a"+"bc").
    match key {
        Some(k) => {
            let mut h = k.mac();
            for part in parts {
                h.update(&(part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
            hex::encode(h.finalize().into_bytes())
        }
        None => {
            let mut h = Sha256::new();
            for part in parts {
                Digest::update(&mut h, (part.len() as u64).to_be_bytes());
                Digest::update(&mut h, part.as_bytes());
            }
            hex::encode(h.finalize())
        }
    }
}

/// Append one audit row in the caller's transaction. Call it last, just before commit: the head row
/// is locked from here to commit, so this serializes auditing writers for the shortest time.
pub async fn append(tx: &mut Tx<'_>, who: &Who, e: Entry<'_>) -> Result<i64, sqlx::Error> {
    let request_id = crate::platform::error::current_request_id().unwrap_or_default();
    append_as(tx, who, e, &request_id).await
}

/// One audit row, ready to insert after the head moved to `seq` (whose previous hash is `prev`).
/// The bulk writers (rusqlite on SQLite, a native connection on PostgreSQL) insert it with the same
/// three statements as [`append`]: bump the head, insert the row, set the head's hash.
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub region_code: Option<String>,
    pub detail: String,
    pub request_id: String,
    pub prev_hash: String,
    pub hash: String,
}

pub const BUMP_HEAD: &str = "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash";
/// The audit row's INSERT as a literal, so [`INSERT_ROW`] and [`INSERT_ROW_SET_HEAD`] share one
/// column list (`concat!` takes only literals).
macro_rules! insert_row_sql {
    () => {
        "INSERT INTO audit_log (seq, at, actor_id, actor_name, action, entity, entity_id, region_code, detail, request_id, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    };
}
pub const INSERT_ROW: &str = insert_row_sql!();
pub const SET_HEAD: &str = "UPDATE audit_head SET hash = $1 WHERE id = 1";
/// [`INSERT_ROW`] and [`SET_HEAD`] in one statement (PostgreSQL): a writer holds the head until it
/// commits, and every round trip while it does is one more that the next writer waits.
const INSERT_ROW_SET_HEAD: &str = concat!(
    "WITH i AS (",
    insert_row_sql!(),
    ") UPDATE audit_head SET hash = $12 WHERE id = 1"
);

/// [`INSERT_ROW`] with an [`AuditRow`] bound, for either sqlx connection type (the pool's Any and
/// the bulk writer's native PostgreSQL); a macro because the two are different `Database`s.
macro_rules! insert_row {
    ($r:expr) => {
        insert_row!($r, INSERT_ROW)
    };
    ($r:expr, $sql:expr) => {
        sqlx::query($sql)
            .bind($r.seq)
            .bind(&$r.at)
            .bind(&$r.actor_id)
            .bind(&$r.actor_name)
            .bind(&$r.action)
            .bind(&$r.entity)
            .bind(&$r.entity_id)
            .bind(&$r.region_code)
            .bind(&$r.detail)
            .bind(&$r.request_id)
            .bind(&$r.prev_hash)
            .bind(&$r.hash)
    };
}

pub fn row_after(
    key: &ChainKey,
    seq: i64,
    prev: String,
    who: &Who,
    e: &Entry<'_>,
    request_id: &str,
) -> AuditRow {
    let request_id = request_id.to_string();
    let at = crate::platform::now_rfc3339();
    let hash = row_hash(
        Some(key),
        &prev,
        seq,
        &at,
        who.actor_id.as_deref().unwrap_or(""),
        &who.actor_name,
        e.action,
        e.entity,
        e.entity_id.unwrap_or(""),
        e.region_code.unwrap_or(""),
        &e.detail,
        &request_id,
    );
    AuditRow {
        seq,
        at,
        actor_id: who.actor_id.clone(),
        actor_name: who.actor_name.clone(),
        action: e.action.to_string(),
        entity: e.entity.to_string(),
        entity_id: e.entity_id.map(str::to_string),
        region_code: e.region_code.map(str::to_string),
        detail: e.detail.clone(),
        request_id,
        prev_hash: prev,
        hash,
    }
}

/// [`append`] on a rusqlite transaction (the SQLite bulk writer).
pub fn append_sqlite(
    tx: &rusqlite::Connection,
    key: &ChainKey,
    who: &Who,
    e: Entry<'_>,
) -> rusqlite::Result<i64> {
    let (seq, prev): (i64, String) = tx.query_row(BUMP_HEAD, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let r = row_after(
        key,
        seq,
        prev,
        who,
        &e,
        &crate::platform::error::current_request_id().unwrap_or_default(),
    );
    tx.execute(
        INSERT_ROW,
        rusqlite::params![
            r.seq,
            r.at,
            r.actor_id,
            r.actor_name,
            r.action,
            r.entity,
            r.entity_id,
            r.region_code,
            r.detail,
            r.request_id,
            r.prev_hash,
            r.hash
        ],
    )?;
    tx.execute(SET_HEAD, [&r.hash])?;
    Ok(seq)
}

/// [`append`] on a native PostgreSQL connection (the PostgreSQL bulk writer).
pub async fn append_pg(
    conn: &mut sqlx::postgres::PgConnection,
    key: &ChainKey,
    who: &Who,
    e: Entry<'_>,
) -> Result<i64, sqlx::Error> {
    let head = sqlx::query(BUMP_HEAD).fetch_one(&mut *conn).await?;
    let r = row_after(
        key,
        head.get(0),
        head.get(1),
        who,
        &e,
        &crate::platform::error::current_request_id().unwrap_or_default(),
    );
    insert_row!(r).execute(&mut *conn).await?;
    sqlx::query(SET_HEAD)
        .bind(&r.hash)
        .execute(&mut *conn)
        .await?;
    Ok(r.seq)
}

pub(crate) async fn append_as(
    tx: &mut Tx<'_>,
    who: &Who,
    e: Entry<'_>,
    request_id: &str,
) -> Result<i64, sqlx::Error> {
    crate::platform::leave_place();
    if let Some(held) = tx.held_audit() {
        // A group commit appends its entries together, just before it commits (`group`).
        held.push(owned(who, &e, request_id));
        return Ok(0);
    }
    let key = tx.chain_key()?;
    let head = sqlx::query(BUMP_HEAD).fetch_one(&mut **tx).await?;
    let r = row_after(&key, head.get(0), head.get(1), who, &e, request_id);
    if tx.backend() == crate::platform::db::Backend::Postgres {
        insert_row!(r, INSERT_ROW_SET_HEAD)
            .execute(&mut **tx)
            .await?;
    } else {
        insert_row!(r).execute(&mut **tx).await?;
        sqlx::query(SET_HEAD)
            .bind(&r.hash)
            .execute(&mut **tx)
            .await?;
    }
    Ok(r.seq)
}

/// Audit of sensitive reads (a person's detail view) by group commit: one writer task appends the
/// entries of all concurrent readers in one transaction, so they share one fsync instead of queueing
/// for one each. A reader waits for that commit before it answers, so no record leaves the server
/// without its durable audit row. Changes keep auditing inside their own transaction ([`append`]).
#[derive(Clone)]
pub struct ReadAudit {
    send: tokio::sync::mpsc::Sender<Pending>,
}

impl ReadAudit {
    /// Whether the writer task still takes entries (for `/readyz`).
    pub fn alive(&self) -> bool {
        !self.send.is_closed()
    }
}

struct Pending {
    entry: HeldAudit,
    done: tokio::sync::oneshot::Sender<bool>,
    queued: std::time::Instant,
}

fn owned(who: &Who, e: &Entry<'_>, request_id: &str) -> HeldAudit {
    HeldAudit {
        actor_id: who.actor_id.clone(),
        actor_name: who.actor_name.clone(),
        action: e.action.to_string(),
        entity: e.entity.to_string(),
        entity_id: e.entity_id.map(str::to_string),
        region_code: e.region_code.map(str::to_string),
        detail: e.detail.clone(),
        request_id: request_id.to_string(),
    }
}

/// Most entries one transaction takes; bounds how long the write lock is held.
const GROUP_MAX: usize = 512;

impl ReadAudit {
    /// Start the writer task on the current runtime; it ends when every handle is dropped.
    pub fn start(db: Db) -> ReadAudit {
        let (send, mut recv) = tokio::sync::mpsc::channel::<Pending>(4 * GROUP_MAX);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(GROUP_MAX);
            while recv.recv_many(&mut batch, GROUP_MAX).await > 0 {
                let ok = match write_group(&db, &mut batch, &mut recv).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, entries = batch.len(), "read audit commit failed");
                        false
                    }
                };
                use crate::platform::metrics as m;
                let oldest = batch.iter().map(|p| p.queued).min();
                let lag = oldest.map_or(0, |t| t.elapsed().as_micros() as u64);
                m::AUDIT_LAG_MICROS.store(lag, std::sync::atomic::Ordering::Relaxed);
                m::AUDIT_GROUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                m::AUDIT_QUEUED.fetch_sub(batch.len() as i64, std::sync::atomic::Ordering::Relaxed);
                for p in batch.drain(..) {
                    let _ = p.done.send(ok);
                }
            }
        });
        ReadAudit { send }
    }

    /// Record a sensitive read and wait until it is committed.
    pub async fn record(&self, who: &Who, e: Entry<'_>) -> Result<(), sqlx::Error> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let request_id = crate::platform::error::current_request_id().unwrap_or_default();
        let p = Pending {
            entry: owned(who, &e, &request_id),
            done,
            queued: std::time::Instant::now(),
        };
        let gone = || sqlx::Error::Protocol("audit writer stopped".into());
        use crate::platform::metrics::AUDIT_QUEUED;
        AUDIT_QUEUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.send.send(p).await.is_err() {
            AUDIT_QUEUED.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Err(gone());
        }
        crate::platform::leave_place();
        match wait.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(sqlx::Error::Protocol("audit commit failed".into())),
            Err(_) => Err(gone()),
        }
    }
}

/// Append a whole group in one round: the head is advanced once, the hashes are chained here and the
/// rows go in as one multi-row insert. The entries that came while the transaction waited to begin
/// (on SQLite, behind an import's chunk) join it: otherwise each of them waited for the next chunk
/// as well (reads p50 124–156 ms during a registry import).
async fn write_group(
    db: &Db,
    batch: &mut Vec<Pending>,
    more: &mut tokio::sync::mpsc::Receiver<Pending>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    while batch.len() < GROUP_MAX {
        match more.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    let entries: Vec<&HeldAudit> = batch.iter().map(|p| &p.entry).collect();
    append_many(&mut tx, &entries).await?;
    tx.commit().await
}

/// Append `entries` in the caller's transaction in one round (see [`write_group`]); for a group
/// commit's held entries and the read-audit writer's queue.
pub async fn append_many(tx: &mut Tx<'_>, entries: &[&HeldAudit]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let key = tx.chain_key()?;
    let n = entries.len() as i64;
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(n)
        .fetch_one(&mut **tx)
        .await?;
    let last: i64 = head.get(0);
    let mut prev: String = head.get(1);
    let at = crate::platform::now_rfc3339();
    // At most 512 rows a statement: 12 parameters each stay far inside both engines' limits.
    for (c, chunk) in entries.chunks(512).enumerate() {
        let sql = format!(
            "INSERT INTO audit_log (seq, at, actor_id, actor_name, action, entity, entity_id, region_code, detail, request_id, prev_hash, hash) VALUES {}",
            crate::registry::store::placeholders(tx.backend(), chunk.len(), 12)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (k, p) in chunk.iter().enumerate() {
            let seq = last - n + 1 + (c * 512 + k) as i64;
            let hash = row_hash(
                Some(&key),
                &prev,
                seq,
                &at,
                p.actor_id.as_deref().unwrap_or(""),
                &p.actor_name,
                &p.action,
                &p.entity,
                p.entity_id.as_deref().unwrap_or(""),
                p.region_code.as_deref().unwrap_or(""),
                &p.detail,
                &p.request_id,
            );
            q = q
                .bind(seq)
                .bind(at.clone())
                .bind(p.actor_id.clone())
                .bind(p.actor_name.clone())
                .bind(p.action.clone())
                .bind(p.entity.clone())
                .bind(p.entity_id.clone())
                .bind(p.region_code.clone())
                .bind(p.detail.clone())
                .bind(p.request_id.clone())
                .bind(prev.clone())
                .bind(hash.clone());
            prev = hash;
        }
        q.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub rows: i64,
    pub ok: bool,
    pub first_broken_seq: Option<i64>,
    pub problem: Option<String>,
    /// Checkpoints compared with the rows.
    pub checkpoints: usize,
}

const CHAIN_ROWS: &str = "SELECT seq, at, actor_id, actor_name, action, entity, entity_id, region_code, detail, request_id, prev_hash, hash \
     FROM audit_log ORDER BY seq";

/// Walk the chain from the first row under the chain key; report the first row whose MAC or link
/// does not hold, a head that does not match the last row, or rows that do not match a checkpoint
/// kept outside the database (a rewritten row before it, or a tail cut off after it).
pub async fn verify(
    db: &Db,
    checkpoints: &[checkpoint::Checkpoint],
) -> anyhow::Result<VerifyReport> {
    let key = db.chain_key()?;
    let keyed: i64 = sqlx::query("SELECT keyed FROM audit_head WHERE id = 1")
        .fetch_one(&db.pool)
        .await?
        .get(0);
    let broken = |seq: i64, n: i64, msg: String| VerifyReport {
        rows: n,
        ok: false,
        first_broken_seq: Some(seq),
        problem: Some(msg),
        checkpoints: checkpoints.len(),
    };
    if keyed == 0 {
        return Ok(broken(
            1,
            0,
            "审计链尚未以密钥计算（请先用本系统的密钥文件运行 yiyang migrate 或启动服务）".into(),
        ));
    }
    let at_seq: std::collections::HashMap<i64, &str> = checkpoints
        .iter()
        .map(|c| (c.seq, c.hash.as_str()))
        .collect();
    let walk = walk_chain(db, Some(&key), |seq, hash| match at_seq.get(&seq) {
        Some(h) if *h != hash => Some(format!(
            "第 {seq} 条审计记录与审计检查点不符：检查点之前的记录被改写"
        )),
        _ => None,
    })
    .await?;
    let (n, last_seq, last_hash) = match walk {
        Ok(v) => v,
        Err((seq, n, msg)) => return Ok(broken(seq, n, msg)),
    };
    if let Some(c) = checkpoints
        .iter()
        .filter(|c| c.seq > last_seq)
        .max_by_key(|c| c.seq)
    {
        return Ok(broken(
            last_seq + 1,
            n,
            format!(
                "审计链在检查点 seq {} 之后被截断：检查点记录时已有 {} 条，数据库中只有 {last_seq} 条",
                c.seq, c.seq
            ),
        ));
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&db.pool)
        .await?;
    let head_seq: i64 = head.get(0);
    let head_hash: String = head.get(1);
    if head_seq != last_seq {
        return Ok(broken(
            last_seq + 1,
            n,
            format!(
                "审计链尾部被删除：应有 {head_seq} 条，实有 {last_seq}；第 {} 条起缺失",
                last_seq + 1
            ),
        ));
    }
    if head_hash != last_hash {
        return Ok(broken(
            head_seq,
            n,
            format!("第 {head_seq} 条审计记录与链头不符"),
        ));
    }
    Ok(VerifyReport {
        rows: n,
        ok: true,
        first_broken_seq: None,
        problem: None,
        checkpoints: checkpoints.len(),
    })
}

/// The MAC of a row of [`CHAIN_ROWS`] after `prev`.
fn stored_row_hash(key: Option<&ChainKey>, prev: &str, r: &sqlx::any::AnyRow) -> String {
    let s = |i: usize| r.get::<Option<String>, _>(i).unwrap_or_default();
    row_hash(
        key,
        prev,
        r.get(0),
        &s(1),
        &s(2),
        &s(3),
        &s(4),
        &s(5),
        &s(6),
        &s(7),
        &s(8),
        &s(9),
    )
}

/// Every row in order, its link and MAC checked (`key`; `None`: the plain SHA-256 of rows written
/// before the key) and `also` asked of each (seq, hash). Ok((rows, last seq, last hash)), or the
/// first broken row as Err((seq, rows read, problem)).
#[allow(clippy::type_complexity)]
async fn walk_chain(
    db: &Db,
    key: Option<&ChainKey>,
    mut also: impl FnMut(i64, &str) -> Option<String>,
) -> anyhow::Result<Result<(i64, i64, String), (i64, i64, String)>> {
    use futures_util::TryStreamExt;
    let mut rows = sqlx::query(CHAIN_ROWS).fetch(&db.pool);
    let mut expected_prev = "genesis".to_string();
    let mut expected_seq = 1i64;
    let mut n = 0i64;
    while let Some(r) = rows.try_next().await? {
        n += 1;
        let seq: i64 = r.get(0);
        if seq != expected_seq {
            return Ok(Err((
                expected_seq,
                n,
                format!("第 {expected_seq} 条审计记录缺失（下一条是第 {seq} 条）"),
            )));
        }
        let s = |i: usize| r.get::<Option<String>, _>(i).unwrap_or_default();
        let prev = s(10);
        let hash = s(11);
        if prev != expected_prev {
            return Ok(Err((
                seq,
                n,
                format!("第 {seq} 条审计记录的前序哈希与上一条不符"),
            )));
        }
        let calc = stored_row_hash(key, &prev, &r);
        if calc != hash {
            return Ok(Err((
                seq,
                n,
                format!("第 {seq} 条审计记录内容被修改（校验码不符）"),
            )));
        }
        if let Some(msg) = also(seq, &hash) {
            return Ok(Err((seq, n, msg)));
        }
        expected_prev = hash;
        expected_seq += 1;
    }
    Ok(Ok((n, expected_seq - 1, expected_prev)))
}

/// Once, for a database whose audit rows were chained with plain SHA-256 before the chain was
/// keyed: check that chain, then chain every row again under the key (the append-only triggers
/// are lifted for that one transaction). Nothing to do when already keyed. Called by every program
/// that opens the database with its key file, before anything is audited.
pub async fn key_legacy_chain(db: &Db) -> anyhow::Result<Option<i64>> {
    let key = db.chain_key()?;
    let keyed: i64 = sqlx::query("SELECT keyed FROM audit_head WHERE id = 1")
        .fetch_one(&db.pool)
        .await?
        .get(0);
    if keyed != 0 {
        return Ok(None);
    }
    if let Err((seq, _, msg)) = walk_chain(db, None, |_, _| None).await? {
        anyhow::bail!("审计链在第 {seq} 条已损坏（{msg}），无法启用密钥校验；请先核查数据库");
    }
    let rows = sqlx::query(CHAIN_ROWS).fetch_all(&db.pool).await?;
    let mut tx = db.begin().await?;
    let (off, on): (&[&str], &[&str]) = match db.backend {
        crate::platform::db::Backend::Sqlite => (
            &["DROP TRIGGER IF EXISTS audit_log_no_update"],
            &[
                "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
            ],
        ),
        crate::platform::db::Backend::Postgres => (
            &["ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"],
            &["ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"],
        ),
    };
    for s in off {
        sqlx::query(*s).execute(&mut *tx).await?;
    }
    let mut prev = "genesis".to_string();
    for r in &rows {
        let seq: i64 = r.get(0);
        let hash = stored_row_hash(Some(&key), &prev, r);
        sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        prev = hash;
    }
    for s in on {
        sqlx::query(*s).execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE audit_head SET hash = $1, keyed = 1 WHERE id = 1")
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(rows.len() as i64))
}

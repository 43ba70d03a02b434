//! Granted entitlements as a run created them, packed (`entitlement_pack`): one row per run and
//! bucket of people (the last three hex digits of the person's id: 4,096 buckets), holding the
//! lines `person \t item \t tier \t amount \t quota \t residence \n`, deflated. A first run over a
//! county grants about two million entitlements at once; one row each cost more than the 10 s the
//! whole run may take (the write alone, `docs/catalog.md`). A packed entitlement is granted, since
//! its run's date, under its run's catalogue version, with no transition and no stored reasons.
//!
//! The moment anything changes one (a later run, a death or move-out), it leaves its pack and
//! becomes an `entitlement` row with the same id ([`take_sqlite`], [`take_pg`], [`take_tx`]); from
//! then on it is an ordinary row. So every entitlement is in exactly one place, and readers take
//! the rows and the packs together ([`of_catalog`], [`of_elder`]). Proposed entitlements are rows
//! from the start: an officer decides on each.
//!
//! The packs of a run still being written (its claim in `catalog_run_writing`, `evaluate.rs`) are
//! read by nobody but that run: they count from the moment its record is written.

use crate::platform::db::{Backend, Db, Tx};
use crate::platform::migrations::Stmt::{self, *};
use sqlx::Row;
use std::collections::HashSet;
use std::io::{Read, Write};

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE entitlement_pack (run_id TEXT NOT NULL, bucket TEXT NOT NULL, catalog_region TEXT NOT NULL, \
         since TEXT NOT NULL, entries BIGINT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, bucket))",
    ),
    // One person's packed entitlements, over every run: a seek on the bucket.
    Both("CREATE INDEX entitlement_pack_bucket ON entitlement_pack (bucket)"),
];

/// One packed entitlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub elder_id: String,
    pub item_code: String,
    pub tier: String,
    pub amount_fen: i64,
    pub quota: i64,
    /// Where the person lived when the run granted it (as `entitlement.residence_region`).
    pub residence: String,
}

/// What a pack says of all its entries.
#[derive(Debug)]
pub struct PackOf {
    pub run_id: String,
    pub catalog_region: String,
    /// The run's date: granted since.
    pub since: String,
}

/// A packed entitlement with its pack (shared: a county's read holds millions).
#[derive(Debug, Clone)]
pub struct Held {
    pub pack: std::sync::Arc<PackOf>,
    pub entry: Entry,
}

impl Held {
    pub fn id(&self) -> String {
        id(
            &self.pack.run_id,
            &self.entry.elder_id,
            &self.entry.item_code,
        )
    }
}

/// The id a packed entitlement has, and keeps as a row: fixed by its run, person and item (ids,
/// uuids and item codes hold no dot).
pub fn id(run_id: &str, elder_id: &str, item_code: &str) -> String {
    format!("{run_id}.{elder_id}.{item_code}")
}

/// The bucket of a person: the last three characters of the id (random in a uuid v7).
pub fn bucket(elder_id: &str) -> &str {
    let n = elder_id.len();
    match n.checked_sub(3) {
        Some(k) if elder_id.is_char_boundary(k) => &elder_id[k..],
        _ => elder_id,
    }
}

/// A tier label is the officer's text: tab, line ends and backslash are escaped in a line.
fn escape(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Add one entry's line to a bucket's text.
pub fn write_line(
    raw: &mut Vec<u8>,
    elder_id: &str,
    item_code: &str,
    tier: &str,
    amount_fen: i64,
    quota: i64,
    residence: &str,
) {
    escape(raw, elder_id);
    raw.push(b'\t');
    escape(raw, item_code);
    raw.push(b'\t');
    escape(raw, tier);
    raw.push(b'\t');
    let _ = write!(raw, "{amount_fen}\t{quota}\t");
    escape(raw, residence);
    raw.push(b'\n');
}

/// Deflate a bucket's text.
pub fn deflate(raw: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::fast(),
    );
    let _ = z.write_all(raw);
    z.finish().unwrap_or_default()
}

/// Deflate the lines of one bucket.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(entries.len() * 80);
    for e in entries {
        write_line(
            &mut raw,
            &e.elder_id,
            &e.item_code,
            &e.tier,
            e.amount_fen,
            e.quota,
            &e.residence,
        );
    }
    deflate(&raw)
}

/// The entries of a stored pack. One that does not inflate or parse is an error: a reader must
/// not lose people's entitlements silently.
pub fn decode(data: &[u8]) -> Result<Vec<Entry>, sqlx::Error> {
    let bad = |m: String| sqlx::Error::Decode(format!("entitlement pack: {m}").into());
    let mut text = String::new();
    flate2::read::DeflateDecoder::new(data)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::with_capacity(text.len() / 70);
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [elder, item, tier, amount, quota, residence] = f[..] else {
            return Err(bad(format!("line with {} fields", f.len())));
        };
        let num = |s: &str| s.parse::<i64>().map_err(|_| bad(format!("number {s:?}")));
        out.push(Entry {
            elder_id: unescape(elder),
            item_code: unescape(item),
            tier: unescape(tier),
            amount_fen: num(amount)?,
            quota: num(quota)?,
            residence: unescape(residence),
        });
    }
    Ok(out)
}

/// Split a pack's entries into those kept and those taken out.
pub fn split(entries: Vec<Entry>, take: impl Fn(&Entry) -> bool) -> (Vec<Entry>, Vec<Entry>) {
    entries.into_iter().partition(|e| !take(e))
}

/// (person, item) pairs to take out of packs.
pub type Wanted<'a> = HashSet<(&'a str, &'a str)>;

/// Hand every packed entitlement of a catalogue (every run of it), or of all catalogues
/// (`None`), to `f` with `state`, and give the state back. Packs are inflated on every core a few
/// hundred at a time, off the async threads; a county's two million are never all in memory at
/// once.
pub async fn scan<S, F>(
    conn: &mut sqlx::AnyConnection,
    region: Option<&str>,
    state: S,
    f: F,
) -> Result<S, sqlx::Error>
where
    S: Send + 'static,
    F: Fn(&mut S, &std::sync::Arc<PackOf>, Entry) + Send + 'static,
{
    fetch(conn, region).await?.feed(state, f).await
}

/// Packs as read, still deflated: [`Fetched::feed`] inflates them.
pub struct Fetched(Vec<(std::sync::Arc<PackOf>, Vec<u8>)>);

/// The packs of a catalogue, or of all (`None`), read in one statement.
pub async fn fetch(
    conn: &mut sqlx::AnyConnection,
    region: Option<&str>,
) -> Result<Fetched, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT run_id, catalog_region, since, data FROM entitlement_pack \
         WHERE ($1 = '' OR catalog_region = $1) AND run_id NOT IN (SELECT run_id FROM catalog_run_writing) \
         ORDER BY run_id, bucket",
    )
    .bind(region.unwrap_or_default())
    .fetch_all(&mut *conn)
    .await?;
    let packs: Vec<(std::sync::Arc<PackOf>, Vec<u8>)> = rows
        .iter()
        .map(|r| {
            (
                std::sync::Arc::new(PackOf {
                    run_id: r.get(0),
                    catalog_region: r.get(1),
                    since: r.get(2),
                }),
                r.get(3),
            )
        })
        .collect();
    Ok(Fetched(packs))
}

impl Fetched {
    /// Hand every entry to `f` with `state` (see [`scan`]).
    pub async fn feed<S, F>(self, state: S, f: F) -> Result<S, sqlx::Error>
    where
        S: Send + 'static,
        F: Fn(&mut S, &std::sync::Arc<PackOf>, Entry) + Send + 'static,
    {
        tokio::task::spawn_blocking(move || feed(&self.0, state, f))
            .await
            .map_err(|e| sqlx::Error::Protocol(format!("unpacking task: {e}")))?
    }
}

fn feed<S, F>(
    packs: &[(std::sync::Arc<PackOf>, Vec<u8>)],
    mut state: S,
    f: F,
) -> Result<S, sqlx::Error>
where
    F: Fn(&mut S, &std::sync::Arc<PackOf>, Entry),
{
    let threads = crate::platform::cores();
    for group in packs.chunks(256) {
        let per = group.len().div_ceil(threads).max(1);
        let decoded: Vec<Result<Vec<Vec<Entry>>, sqlx::Error>> = std::thread::scope(|sc| {
            let handles: Vec<_> = group
                .chunks(per)
                .map(|part| {
                    sc.spawn(move || {
                        let _low = crate::platform::Background::new();
                        part.iter().map(|(_, d)| decode(d)).collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("entitlement unpacking thread"))
                .collect()
        });
        let mut at = group.iter();
        for part in decoded {
            for entries in part? {
                let (pack, _) = at.next().expect("one result per pack");
                for e in entries {
                    f(&mut state, pack, e);
                }
            }
        }
    }
    Ok(state)
}

/// The packed entitlements of a catalogue, or of all (`None`), that `keep` keeps.
pub async fn of_catalog(
    conn: &mut sqlx::AnyConnection,
    region: Option<&str>,
    keep: impl Fn(&Entry) -> bool + Send + 'static,
) -> Result<Vec<Held>, sqlx::Error> {
    scan(
        conn,
        region,
        vec![],
        move |out: &mut Vec<Held>, pack, entry| {
            if keep(&entry) {
                out.push(Held {
                    pack: pack.clone(),
                    entry,
                });
            }
        },
    )
    .await
}

/// One person's packed entitlements, in every catalogue.
pub async fn of_elder(
    conn: &mut sqlx::AnyConnection,
    elder_id: &str,
) -> Result<Vec<Held>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT run_id, catalog_region, since, data FROM entitlement_pack WHERE bucket = $1 \
         AND run_id NOT IN (SELECT run_id FROM catalog_run_writing) ORDER BY run_id",
    )
    .bind(bucket(elder_id))
    .fetch_all(&mut *conn)
    .await?;
    let mut out = vec![];
    for r in rows {
        let pack = std::sync::Arc::new(PackOf {
            run_id: r.get(0),
            catalog_region: r.get(1),
            since: r.get(2),
        });
        for entry in decode(&r.get::<Vec<u8>, _>(3))? {
            if entry.elder_id == elder_id {
                out.push(Held {
                    pack: pack.clone(),
                    entry,
                });
            }
        }
    }
    Ok(out)
}

/// One run's packed entitlements of the people of one bucket (the grant messages of a run).
pub async fn of_run_bucket(db: &Db, run_id: &str, bucket: &str) -> Result<Vec<Entry>, sqlx::Error> {
    let row = sqlx::query("SELECT data FROM entitlement_pack WHERE run_id = $1 AND bucket = $2")
        .bind(run_id)
        .bind(bucket)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(r) => decode(&r.get::<Vec<u8>, _>(0)),
        None => Ok(vec![]),
    }
}

/// The buckets of a run after `after`, in order (the grant messages walk a run's packs).
pub async fn run_buckets_after(
    db: &Db,
    run_id: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT bucket FROM entitlement_pack WHERE run_id = $1 AND bucket > $2 ORDER BY bucket LIMIT $3",
    )
    .bind(run_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Whether a run packed anything (runs from before packing keep their grants as rows).
pub async fn run_has_packs(db: &Db, run_id: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 FROM entitlement_pack WHERE run_id = $1 LIMIT 1")
            .bind(run_id)
            .fetch_optional(&db.pool)
            .await?
            .is_some(),
    )
}

/// The columns of a row made from a packed entitlement (version and time are its run's, as for
/// any row a run wrote: `catalog::MIGRATION_RUN_DEFAULTS`).
const ROW_INSERT: &str = "INSERT INTO entitlement (id, elder_id, catalog_region, item_code, state, tier, amount_fen, quota, \
     residence_region, since, run_id, reasons) VALUES ($1, $2, $3, $4, 'granted', $5, $6, $7, $8, $9, $10, '')";

const PACK_UPDATE: &str =
    "UPDATE entitlement_pack SET data = $1, entries = $2 WHERE run_id = $3 AND bucket = $4";
const PACK_DELETE: &str = "DELETE FROM entitlement_pack WHERE run_id = $1 AND bucket = $2";

/// On PostgreSQL, whatever takes grants out of packs (a registry event, a run's write) first takes
/// this one lock, held to commit: a registry import recording many deaths locks packs in the
/// order of its file, a run in the order of its packs, and without it the two could deadlock.
/// (SQLite has one writer at a time.)
pub const PG_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('entitlement_pack'))";

/// Take the packed entitlements of `people` out of their packs into rows, in the caller's
/// transaction (any engine; on PostgreSQL under [`PG_LOCK`], with the packs locked too, so two
/// transactions never rewrite one pack from the same old copy). Returns how many became rows.
pub async fn take_tx(tx: &mut Tx<'_>, people: &[&str]) -> Result<u64, sqlx::Error> {
    let mut buckets: Vec<&str> = people.iter().map(|p| bucket(p)).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let wanted: HashSet<&str> = people.iter().copied().collect();
    let lock = match tx.backend() {
        Backend::Postgres => {
            sqlx::query(PG_LOCK).execute(&mut **tx).await?;
            " FOR UPDATE"
        }
        Backend::Sqlite => "",
    };
    let mut n = 0;
    for b in buckets {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT run_id, catalog_region, since, data FROM entitlement_pack WHERE bucket = $1 \
             AND run_id NOT IN (SELECT run_id FROM catalog_run_writing) ORDER BY run_id{lock}"
        )))
        .bind(b)
        .fetch_all(&mut **tx)
        .await?;
        for r in rows {
            let (run, region, since): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let (kept, taken) = split(decode(&r.get::<Vec<u8>, _>(3))?, |e| {
                wanted.contains(e.elder_id.as_str())
            });
            if taken.is_empty() {
                continue;
            }
            if kept.is_empty() {
                sqlx::query(PACK_DELETE)
                    .bind(&run)
                    .bind(b)
                    .execute(&mut **tx)
                    .await?;
            } else {
                sqlx::query(PACK_UPDATE)
                    .bind(encode(&kept))
                    .bind(kept.len() as i64)
                    .bind(&run)
                    .bind(b)
                    .execute(&mut **tx)
                    .await?;
            }
            for e in &taken {
                sqlx::query(ROW_INSERT)
                    .bind(id(&run, &e.elder_id, &e.item_code))
                    .bind(&e.elder_id)
                    .bind(&region)
                    .bind(&e.item_code)
                    .bind(&e.tier)
                    .bind(e.amount_fen)
                    .bind(e.quota)
                    .bind(&e.residence)
                    .bind(&since)
                    .bind(&run)
                    .execute(&mut **tx)
                    .await?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Take (person, item) pairs out of the packs (run, bucket) named into rows, on the SQLite bulk
/// writer's transaction (the evaluation's write); pairs no longer packed are left alone.
pub fn take_sqlite(
    tx: &rusqlite::Transaction,
    packs: &[(String, String)],
    wanted: &Wanted,
) -> rusqlite::Result<u64> {
    use rusqlite::{OptionalExtension, params};
    let mut get = tx.prepare(
        "SELECT catalog_region, since, data FROM entitlement_pack WHERE run_id = $1 AND bucket = $2",
    )?;
    let mut upd = tx.prepare(PACK_UPDATE)?;
    let mut del = tx.prepare(PACK_DELETE)?;
    let mut ins = tx.prepare(ROW_INSERT)?;
    let mut n = 0;
    for (run, b) in packs {
        let Some((region, since, data)) = get
            .query_row(params![run, b], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .optional()?
        else {
            continue;
        };
        let entries = decode(&data).map_err(|e| sqlite_error(&e.to_string()))?;
        let (kept, taken) = split(entries, |e| {
            wanted.contains(&(e.elder_id.as_str(), e.item_code.as_str()))
        });
        if taken.is_empty() {
            continue;
        }
        if kept.is_empty() {
            del.execute(params![run, b])?;
        } else {
            upd.execute(params![encode(&kept), kept.len() as i64, run, b])?;
        }
        for e in &taken {
            ins.execute(params![
                id(run, &e.elder_id, &e.item_code),
                e.elder_id,
                region,
                e.item_code,
                e.tier,
                e.amount_fen,
                e.quota,
                e.residence,
                since,
                run
            ])?;
            n += 1;
        }
    }
    Ok(n)
}

/// [`take_sqlite`] on the evaluation's native PostgreSQL transaction: the packs are locked and
/// read in one statement, rewritten, deleted and their grants inserted as rows in one statement
/// each (a run after a thousand deaths touches a thousand packs: a statement per pack and per
/// grant was thousands of round trips).
pub async fn take_pg(
    tx: &mut sqlx::postgres::PgConnection,
    packs: &[(String, String)],
    wanted: &Wanted<'_>,
) -> Result<u64, sqlx::Error> {
    if packs.is_empty() {
        return Ok(0);
    }
    let rows = sqlx::query(
        "SELECT p.run_id, p.bucket, p.catalog_region, p.since, p.data FROM entitlement_pack p \
         JOIN UNNEST($1::text[], $2::text[]) AS w (r, b) ON p.run_id = w.r AND p.bucket = w.b \
         ORDER BY p.run_id, p.bucket FOR UPDATE OF p",
    )
    .bind(packs.iter().map(|p| p.0.as_str()).collect::<Vec<_>>())
    .bind(packs.iter().map(|p| p.1.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    // Rewritten packs (run, bucket, data, entries), emptied ones (run, bucket), and new rows.
    let mut upd: Vec<(String, String, Vec<u8>, i64)> = vec![];
    let mut del: Vec<(String, String)> = vec![];
    let mut new_rows: Vec<(String, String, String, Entry)> = vec![]; // (run, region, since, entry)
    for r in rows {
        let (run, b, region, since): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let (kept, taken) = split(decode(&r.get::<Vec<u8>, _>(4))?, |e| {
            wanted.contains(&(e.elder_id.as_str(), e.item_code.as_str()))
        });
        if taken.is_empty() {
            continue;
        }
        if kept.is_empty() {
            del.push((run.clone(), b));
        } else {
            upd.push((run.clone(), b, encode(&kept), kept.len() as i64));
        }
        for e in taken {
            new_rows.push((run.clone(), region.clone(), since.clone(), e));
        }
    }
    if !upd.is_empty() {
        sqlx::query(
            "UPDATE entitlement_pack p SET data = u.d, entries = u.n \
             FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::bigint[]) AS u (r, b, d, n) \
             WHERE p.run_id = u.r AND p.bucket = u.b",
        )
        .bind(upd.iter().map(|u| u.0.as_str()).collect::<Vec<_>>())
        .bind(upd.iter().map(|u| u.1.as_str()).collect::<Vec<_>>())
        .bind(upd.iter().map(|u| u.2.as_slice()).collect::<Vec<_>>())
        .bind(upd.iter().map(|u| u.3).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !del.is_empty() {
        sqlx::query(
            "DELETE FROM entitlement_pack p USING UNNEST($1::text[], $2::text[]) AS u (r, b) \
             WHERE p.run_id = u.r AND p.bucket = u.b",
        )
        .bind(del.iter().map(|d| d.0.as_str()).collect::<Vec<_>>())
        .bind(del.iter().map(|d| d.1.as_str()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !new_rows.is_empty() {
        let col = |f: fn(&(String, String, String, Entry)) -> &str| -> Vec<&str> {
            new_rows.iter().map(f).collect()
        };
        let ids: Vec<String> = new_rows
            .iter()
            .map(|(run, _, _, e)| id(run, &e.elder_id, &e.item_code))
            .collect();
        sqlx::query(
            "INSERT INTO entitlement (id, elder_id, catalog_region, item_code, state, tier, amount_fen, quota, \
             residence_region, since, run_id, reasons) \
             SELECT i, e, r, c, 'granted', t, a, q, h, s, u, '' FROM UNNEST($1::text[], $2::text[], $3::text[], \
             $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[]) \
             AS x (i, e, r, c, t, a, q, h, s, u)",
        )
        .bind(&ids)
        .bind(col(|x| x.3.elder_id.as_str()))
        .bind(col(|x| x.1.as_str()))
        .bind(col(|x| x.3.item_code.as_str()))
        .bind(col(|x| x.3.tier.as_str()))
        .bind(new_rows.iter().map(|x| x.3.amount_fen).collect::<Vec<_>>())
        .bind(new_rows.iter().map(|x| x.3.quota).collect::<Vec<_>>())
        .bind(col(|x| x.3.residence.as_str()))
        .bind(col(|x| x.2.as_str()))
        .bind(col(|x| x.0.as_str()))
        .execute(&mut *tx)
        .await?;
    }
    Ok(new_rows.len() as u64)
}

/// An error of ours inside a SQLite bulk write (its message reaches the caller).
pub fn sqlite_error(message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some(message.to_string()),
    )
}

/// SQLite's prepared insert of a run's packs (bulk writer).
pub const INSERT: &str = "INSERT INTO entitlement_pack (run_id, bucket, catalog_region, since, entries, data) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Write a run's packs on PostgreSQL, a few hundred per statement.
pub async fn insert_pg(
    tx: &mut sqlx::postgres::PgConnection,
    run_id: &str,
    region: &str,
    since: &str,
    packs: &[(String, i64, Vec<u8>)],
) -> Result<(), sqlx::Error> {
    for part in packs.chunks(256) {
        sqlx::query(
            "INSERT INTO entitlement_pack (run_id, bucket, catalog_region, since, entries, data) \
             SELECT $1, b, $2, $3, n, d FROM UNNEST($4::text[], $5::bigint[], $6::bytea[]) AS p (b, n, d)",
        )
        .bind(run_id)
        .bind(region)
        .bind(since)
        .bind(part.iter().map(|p| p.0.as_str()).collect::<Vec<_>>())
        .bind(part.iter().map(|p| p.1).collect::<Vec<_>>())
        .bind(part.iter().map(|p| p.2.as_slice()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(elder: &str, item: &str, tier: &str) -> Entry {
        Entry {
            elder_id: elder.into(),
            item_code: item.into(),
            tier: tier.into(),
            amount_fen: 5000,
            quota: 0,
            residence: "320682104001".into(),
        }
    }

    #[test]
    fn a_pack_reads_back_in_order_and_split_takes_only_the_people_named() {
        let es = vec![
            entry("0193-aaa-f01", "a", "z"),
            entry("0193-aaa-f01", "b", "80–89周岁"),
            entry("0193-bbb-f01", "a", "x"),
        ];
        assert!(es.iter().all(|e| bucket(&e.elder_id) == "f01"));
        let back = decode(&encode(&es)).unwrap();
        assert_eq!(back, es);
        let (kept, taken) = split(back, |e| e.elder_id == "0193-aaa-f01");
        assert_eq!(kept, es[2..].to_vec());
        assert_eq!(taken, es[..2].to_vec());
        assert!(decode(b"not deflated").is_err());
        assert_eq!(bucket("ab"), "ab");
        assert_eq!(id("r", "e", "i"), "r.e.i");
    }

    proptest! {
        /// Whatever an officer types as a tier label comes back unchanged.
        #[test]
        fn entries_round_trip(tier in ".{0,20}", amount in 0i64..10_000_000, quota in 0i64..100) {
            let e = Entry { amount_fen: amount, quota, ..entry("0193-x-abc", "longevity_allowance", &tier) };
            let back = decode(&encode(std::slice::from_ref(&e))).unwrap();
            prop_assert_eq!(back, vec![e]);
        }
    }
}

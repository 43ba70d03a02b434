//! One connection pool for SQLite or PostgreSQL, chosen by URL. Queries are written once with `$N`
//! placeholders (SQLite accepts them too) and only portable types: TEXT, BIGINT, DOUBLE, BLOB/BYTEA.

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite has one writer at a time. Writers queue here, in order, instead of spinning in
    /// SQLite's sleeping busy handler, which is what made tail latency bad under load.
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// SQLite only: the file, for the point-read path ([`Db::sqlite_read`]).
    sqlite_path: Option<Arc<str>>,
    /// PostgreSQL only: the URL, for bulk reads through COPY on a native connection ([`Db::scan`]).
    pg_url: Option<Arc<str>>,
    /// The audit chain's key, given once the key file is loaded ([`Db::use_keys`]); shared by
    /// every clone of this handle.
    chain: Arc<std::sync::OnceLock<crate::platform::crypto::ChainKey>>,
    /// The group-commit writer's queue, started on first use (`crate::audit::group`).
    pub(crate) group: Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<GroupWork>>>,
}

/// A write transaction; on SQLite it also holds the process's write gate until commit or drop.
pub struct Tx<'a> {
    inner: sqlx::Transaction<'a, sqlx::Any>,
    backend: Backend,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    chain: Option<crate::platform::crypto::ChainKey>,
    /// In a group commit, the audit entries held back to be appended all at once before commit.
    held_audit: Option<Vec<HeldAudit>>,
}

/// One grouped write (`crate::audit::group`), type-erased: it runs on the group's transaction and
/// says whether to keep what it did; the callback hears whether the group committed.
pub type GroupJob = Box<
    dyn for<'a> FnOnce(
            &'a mut Tx<'static>,
        )
            -> futures_util::future::BoxFuture<'a, (bool, Box<dyn FnOnce(bool) + Send>)>
        + Send,
>;

/// What the group-commit writer is sent: one write (with whether it runs in a savepoint of its
/// own), or an item of a batch, written with the others of its kind in the group in one go.
pub enum GroupWork {
    One(bool, GroupJob),
    Batch(BatchItem),
}

/// One item of a batch (`crate::audit::group::Batch`), type-erased: the writer gathers the group's
/// items of one `kind` and hands them to `run` together, which says for each whether it was
/// written; `answer` hears that once the group committed.
pub struct BatchItem {
    pub kind: std::any::TypeId,
    pub item: Box<dyn std::any::Any + Send>,
    pub run: BatchRun,
    pub answer: tokio::sync::oneshot::Sender<Result<bool, crate::platform::error::ApiError>>,
}

/// Writes a batch's items (all of one kind), answering for each whether it was written.
pub type BatchRun = for<'a> fn(
    &'a mut Tx<'static>,
    Vec<Box<dyn std::any::Any + Send>>,
) -> futures_util::future::BoxFuture<
    'a,
    Result<Vec<bool>, crate::platform::error::ApiError>,
>;

/// An audit entry, owned: held back in a group commit, or queued for the read-audit writer.
#[derive(Debug, Clone)]
pub struct HeldAudit {
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub region_code: Option<String>,
    pub detail: String,
    pub request_id: String,
}

impl Tx<'_> {
    /// Hold audit entries back from now on, to be appended together ([`Tx::held_audit`]).
    pub fn hold_audit(&mut self) {
        self.held_audit.get_or_insert_with(Vec::new);
    }
    /// The entries held back, when this transaction holds them.
    pub fn held_audit(&mut self) -> Option<&mut Vec<HeldAudit>> {
        self.held_audit.as_mut()
    }
    /// The audit chain's key (see [`Db::chain_key`]).
    pub fn chain_key(&self) -> Result<crate::platform::crypto::ChainKey, sqlx::Error> {
        self.chain.clone().ok_or_else(no_chain_key)
    }
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// A connection for single autocommit writes; on SQLite it holds the write gate, so such a write
/// queues behind a running import in order instead of failing with "database is locked".
pub struct Writer {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for Writer {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// `sqlite://` path, a bare file path, or `postgres://`.
pub fn normalize_url(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return url.to_string();
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.contains('?') {
        format!("sqlite://{path}")
    } else {
        format!("sqlite://{path}?mode=rwc")
    }
}

/// SQLite's memory statistics (on by default) take one process-wide mutex around every
/// allocation and free it makes, on every thread's connection; yiyang never reads them. (The
/// mutex time left in a first catalogue run's profile, 5% of samples, is the page cache's.) The
/// setting must come before SQLite initialises, so it is made once, before the first connection;
/// later calls are no-ops.
fn sqlite_without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called before any connection exists (the first `connect`);
        // if SQLite was initialised already it answers SQLITE_MISUSE and changes nothing.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite memory statistics left on (already initialised)");
        }
    });
}

/// SQLite: copies the WAL's pages into the database file every [`CHECKPOINT_EVERY`] on a thread
/// and connection of its own, for as long as a handle of the database lives (`alive`, its write
/// gate). With SQLite's own automatic checkpoint the commit that took the WAL past 1,000 pages
/// did it while holding the one write lock, and every read's audit row and every edit queued
/// behind it. A passive checkpoint waits for no one and no one waits for it; the WAL starts again
/// from its beginning at the first write after a checkpoint that caught up. Measured alone in a
/// 200k county (`bench/import-meanwhile.sh`): the first eligibility run over 1.2M people 12.1 →
/// 6.0 s, a 104k assessment import 5.5 → 3.6–4.0 s; a registry import's chunk commits stayed
/// about 48 ms (writing the pages the chunk touched is their own cost).
fn checkpointer(path: Arc<str>, alive: std::sync::Weak<tokio::sync::Mutex<()>>) {
    let run = move || {
        let conn = match rusqlite::Connection::open(&*path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "SQLite checkpointer: cannot open the database");
                return;
            }
        };
        while alive.strong_count() > 0 {
            std::thread::sleep(CHECKPOINT_EVERY);
            let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
            if let Err(e) = done {
                tracing::warn!(error = %e, "SQLite checkpoint failed; tried again shortly");
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(run)
    {
        // Without it the WAL would only grow: connections opened from now on keep SQLite's own.
        CHECKPOINTER_RUNS.store(false, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(error = %e, "no thread for the SQLite checkpointer");
    }
}

/// Cleared when a [`checkpointer`] could not be started.
static CHECKPOINTER_RUNS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// How often [`checkpointer`] folds the WAL in.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// A pool on `url` with yiyang's connection settings.
async fn open_pool(url: &str, backend: Backend, max_connections: u32) -> anyhow::Result<AnyPool> {
    let opts = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // 8 KB pages for a new database file (an existing one keeps its own;
                    // set before the WAL switch, which writes the file's header): a 1M-person
                    // first load went 10.1 → 8.7 s on average over five pairs (fewer, fuller
                    // b-tree pages to split, spill and checkpoint).
                    conn.execute("PRAGMA page_size=8192").await?;
                    // Durable by default: WAL with fsync on commit; FKs on; wait (up to a minute, the length of a
                    // large import by another process) rather than fail on a busy writer.
                    conn.execute("PRAGMA journal_mode=WAL").await?;
                    conn.execute("PRAGMA synchronous=FULL").await?;
                    conn.execute("PRAGMA foreign_keys=ON").await?;
                    conn.execute("PRAGMA busy_timeout=60000").await?;
                    // 8 MB page cache per connection: 16 connections stay well inside the memory budget.
                    conn.execute("PRAGMA cache_size=-8192").await?;
                    conn.execute("PRAGMA temp_store=MEMORY").await?;
                    // The WAL is folded into the file by a thread of its own ([`checkpointer`]),
                    // not by whichever commit crosses 1,000 pages while holding the write lock.
                    if CHECKPOINTER_RUNS.load(std::sync::atomic::Ordering::Relaxed) {
                        conn.execute("PRAGMA wal_autocheckpoint=0").await?;
                    }
                }
                Ok(())
            })
        });
    // Index builds in a bulk import take seconds by design; warn only on what is really slow.
    let connect = <sqlx::any::AnyConnectOptions as std::str::FromStr>::from_str(url)?
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(10));
    let pool = opts
        .connect_with(connect)
        .await
        .with_context(|| "无法连接数据库".to_string())?;
    Ok(pool)
}

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        install_default_drivers();
        let url = normalize_url(url);
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let mut sqlite_path: Option<Arc<str>> = None;
        if backend == Backend::Sqlite {
            sqlite_without_memory_statistics();
            let path = url
                .trim_start_matches("sqlite://")
                .split('?')
                .next()
                .unwrap_or("");
            // Every connection of a pool would open a database of its own, and so would the
            // writers and bulk jobs that open pools of their own (`with_own_pool`).
            if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
                anyhow::bail!("不支持内存中的 SQLite 数据库，请给出数据库文件的路径");
            }
            sqlite_path = Some(Arc::from(path));
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("创建数据目录 {dir:?} 失败"))?;
            }
            // A new database file is readable by its owner only, like the key file (SQLite gives
            // its -wal and -shm files the same mode).
            if !std::path::Path::new(path).exists() {
                let mut o = std::fs::OpenOptions::new();
                o.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                o.open(path)
                    .with_context(|| format!("无法创建数据库文件 {path}"))?;
            }
        }
        let write_gate = Arc::new(tokio::sync::Mutex::new(()));
        if let Some(path) = &sqlite_path {
            checkpointer(path.clone(), Arc::downgrade(&write_gate));
        }
        let pool = open_pool(&url, backend, max_connections).await?;
        Ok(Db {
            pool,
            backend,
            write_gate,
            chain: Arc::default(),
            group: Arc::default(),
            sqlite_path,
            pg_url: (backend == Backend::Postgres).then(|| Arc::from(url.as_str())),
        })
    }

    /// This database through a pool of its own of `max_connections`, opened on the current
    /// runtime, sharing this handle's write gate and chain key (for a writer on a thread of its
    /// own, `crate::audit::group`). Its group-commit queue is its own (none).
    pub async fn with_own_pool(&self, max_connections: u32) -> anyhow::Result<Db> {
        let url = match (&self.sqlite_path, &self.pg_url) {
            (Some(path), _) => normalize_url(path),
            (None, Some(url)) => url.to_string(),
            (None, None) => anyhow::bail!("no database URL"),
        };
        Ok(Db {
            pool: open_pool(&url, self.backend, max_connections).await?,
            backend: self.backend,
            write_gate: self.write_gate.clone(),
            chain: self.chain.clone(),
            group: Arc::default(),
            sqlite_path: self.sqlite_path.clone(),
            pg_url: self.pg_url.clone(),
        })
    }

    /// A one-connection pool of its own for a long-lived writer (`name` in the log), tried again
    /// every second while the database cannot be reached (restarting, out of connections); what
    /// waits in `queue` meanwhile goes to `refuse` (answered "not saved, try again"). `None` once
    /// the queue is closed.
    pub async fn writer_pool<T>(
        &self,
        name: &str,
        queue: &mut tokio::sync::mpsc::Receiver<T>,
        refuse: impl Fn(T),
    ) -> Option<Db> {
        loop {
            match self.with_own_pool(1).await {
                Ok(own) => return Some(own),
                Err(e) => {
                    tracing::error!(error = %e, writer = name, "cannot connect");
                    while let Ok(item) = queue.try_recv() {
                        refuse(item);
                    }
                    if queue.is_closed() {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Read a large result fast and hand each row to `f` as text columns (`None` for NULL). Whole-
    /// registry jobs read a million rows; through sqlx Any that costs 5–7 µs a row (measured), so
    /// SQLite reads on its own read-only rusqlite connection and PostgreSQL through `COPY … TO
    /// STDOUT` on a native connection. `sql` takes no parameters (COPY cannot bind them): callers
    /// inline only values they validated (region codes are digits).
    pub async fn scan(
        &self,
        sql: &str,
        ncols: usize,
        mut f: impl FnMut(&[Option<&str>]) + Send + 'static,
    ) -> Result<(), sqlx::Error> {
        if self.sqlite_path.is_some() {
            let sql = sql.to_string();
            return self
                .sqlite_readonly(move |c| {
                    // Mapped: a scan looks rows up all over the file (each visit's elder, staff
                    // and grant), and through read() calls the kernel's time was most of it
                    // (1.5M visits: 11 s, 7 s of it system time; mapped, 6 s). The mapped
                    // pages are the file's own (page cache), shown in RSS while it runs.
                    c.execute_batch("PRAGMA mmap_size=2147418112;")?;
                    let mut st = c.prepare(&sql)?;
                    let mut rows = st.query([])?;
                    // Text is handed on borrowed; only numbers (better CAST in the query) are formatted.
                    let mut nums: Vec<String> = vec![String::new(); ncols];
                    let mut kinds: Vec<u8> = vec![0; ncols];
                    while let Some(r) = rows.next()? {
                        for (i, k) in kinds.iter_mut().enumerate() {
                            *k = match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => 0,
                                rusqlite::types::ValueRef::Integer(n) => {
                                    nums[i] = n.to_string();
                                    2
                                }
                                rusqlite::types::ValueRef::Real(x) => {
                                    nums[i] = x.to_string();
                                    2
                                }
                                _ => 1,
                            };
                        }
                        let mut cols: Vec<Option<&str>> = Vec::with_capacity(ncols);
                        for (i, k) in kinds.iter().enumerate() {
                            cols.push(match k {
                                0 => None,
                                2 => Some(nums[i].as_str()),
                                _ => match r.get_ref(i)? {
                                    rusqlite::types::ValueRef::Text(t)
                                    | rusqlite::types::ValueRef::Blob(t) => {
                                        Some(std::str::from_utf8(t).unwrap_or_default())
                                    }
                                    _ => None,
                                },
                            });
                        }
                        f(&cols);
                    }
                    Ok(())
                })
                .await;
        }
        use futures_util::TryStreamExt;
        use sqlx::Connection;
        let url = self.pg_url.as_deref().expect("postgres has its url");
        let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
        let mut out = conn
            .copy_out_raw(&format!("COPY ({sql}) TO STDOUT"))
            .await?;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut line_fn = |line: &[u8]| {
            let text = std::str::from_utf8(line).unwrap_or_default();
            let cols: Vec<Option<std::borrow::Cow<str>>> =
                text.split('\t').map(pg_text_field).collect();
            let refs: Vec<Option<&str>> = cols.iter().map(|s| s.as_deref()).collect();
            f(&refs);
        };
        let mut chunks = 0u32;
        while let Some(chunk) = out.try_next().await? {
            // A scan whose data is always ready never waits, so it would keep this runtime worker
            // to itself for seconds (requests stalled 1–2 s while a county was read): let the
            // other tasks in now and then.
            chunks += 1;
            if chunks.is_multiple_of(256) {
                tokio::task::yield_now().await;
            }
            buf.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(n) = memchr::memchr(b'\n', &buf[start..]) {
                line_fn(&buf[start..start + n]);
                start += n + 1;
            }
            buf.drain(..start);
        }
        drop(out);
        conn.close().await?;
        Ok(())
    }

    /// Run a short read on SQLite right here, on a read-only connection kept per thread, and `None`
    /// on PostgreSQL (use the pool). A point read from the page cache takes microseconds; the same
    /// query through sqlx's SQLite worker thread costs two thread hand-offs, which perf showed as
    /// ~40% of the server's CPU under load on the hot detail path. Only for reads that are quick by
    /// construction (a key lookup, a short `IN` list): this blocks the calling task.
    pub fn sqlite_read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T, sqlx::Error>> {
        self.read_on(false, f)
    }

    /// [`Db::sqlite_read`] for a bulk job's lookups (tens of thousands of keys in a row): its
    /// connection maps the file into memory instead of copying each page in through a read call
    /// (an assessment import's 104k lookups: 1.35–1.55 s → 1.05–1.18 s, in a dry run 1.2–1.5 s →
    /// 0.7–0.8 s with system time 0.5–0.9 s → 0.1 s). Its mapped pages stay mapped while the
    /// thread lives.
    /// Not for the server's reads: there search went from 1.6k to 1.3k requests a second, p99 76 →
    /// 98 ms, each scattered row a fresh page fault.
    pub fn sqlite_read_bulk<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T, sqlx::Error>> {
        self.read_on(true, f)
    }

    /// The read-only connection of this thread for this file, plain or mapped, opened on first use.
    fn read_on<T>(
        &self,
        mapped: bool,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T, sqlx::Error>> {
        type Readers = HashMap<(Arc<str>, bool), rusqlite::Connection>;
        thread_local! {
            static READERS: std::cell::RefCell<Readers> = std::cell::RefCell::new(HashMap::new());
        }
        let key = (self.sqlite_path.clone()?, mapped);
        let fail = |e: rusqlite::Error| sqlx::Error::Protocol(format!("sqlite read: {e}"));
        Some(READERS.with(|m| {
            let mut m = m.borrow_mut();
            if !m.contains_key(&key) {
                let c = rusqlite::Connection::open_with_flags(
                    &*key.0,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(fail)?;
                c.execute_batch(if mapped {
                    "PRAGMA busy_timeout=10000; PRAGMA cache_size=-8192; PRAGMA query_only=1; PRAGMA mmap_size=2147418112;"
                } else {
                    "PRAGMA busy_timeout=10000; PRAGMA cache_size=-8192; PRAGMA query_only=1;"
                })
                .map_err(fail)?;
                m.insert(key.clone(), c);
            }
            f(&m[&key]).map_err(fail)
        }))
    }

    /// After a large load PostgreSQL's statistics still describe the tables as they were, and the
    /// next import's lookups get sequential-scan plans until autovacuum catches up (measured: an
    /// unchanged re-import of 104k assessments took 40 s). Refresh them at once (PostgreSQL only;
    /// SQLite plans by its indexes without statistics). A target may name the columns queries
    /// select on, `table (a, b)`: sampling wide payload columns (an assessment's input and result
    /// JSON) doubled the time and serves no plan.
    pub async fn analyze_after_bulk(
        &self,
        tables: &[&str],
        written: usize,
    ) -> Result<(), sqlx::Error> {
        self.analyze_sampled(tables, written, None).await
    }

    /// [`Db::analyze_after_bulk`] sampling `300 × target` rows instead of the server's default
    /// (30,000 at target 100), for tables whose columns are dates, levels and keys, where a
    /// smaller sample describes them as well. ANALYZE's time is mostly reading its sample: the
    /// assessments of a 104k import took 0.22–0.38 s at the default, 0.10 s at 30.
    pub async fn analyze_sampled(
        &self,
        tables: &[&str],
        written: usize,
        target: Option<u32>,
    ) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres && written >= 10_000 {
            // `SET LOCAL` lasts for the one implicit transaction of the two statements.
            let set = target
                .map(|t| format!("SET LOCAL default_statistics_target = {t}; "))
                .unwrap_or_default();
            // Each table on its own connection, all at once: the server samples them side by side.
            futures_util::future::try_join_all(tables.iter().map(|t| {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{set}ANALYZE {t}"))).execute(&self.pool)
            }))
            .await?;
        }
        Ok(())
    }

    /// Fold the whole WAL into the database file and truncate it: the end of a command-line run.
    pub async fn checkpoint_now(&self) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Give this database the key file's keys: the audit chain is keyed from here on. Every
    /// program that writes audit rows calls it once, right after loading the key file.
    pub fn use_keys(&self, keys: &crate::platform::crypto::KeyRing) {
        let _ = self.chain.set(keys.chain_key());
    }

    /// The audit chain's key; an error where the key file was never given.
    pub fn chain_key(&self) -> Result<crate::platform::crypto::ChainKey, sqlx::Error> {
        self.chain.get().cloned().ok_or_else(no_chain_key)
    }

    /// The SQLite database file (none on PostgreSQL).
    pub fn sqlite_file(&self) -> Option<&str> {
        self.sqlite_path.as_deref()
    }

    pub async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        // Counted for `/metrics` while it waits (the guard uncounts it on every way out).
        struct Waiting;
        impl Drop for Waiting {
            fn drop(&mut self) {
                super::metrics::BEGIN_WAITING.fetch_sub(1, Relaxed);
            }
        }
        super::metrics::BEGIN_WAITING.fetch_add(1, Relaxed);
        let _waiting = Waiting;
        match self.backend {
            // A deferred transaction that reads and then writes can fail with SQLITE_BUSY when another
            // writer got there first; taking the write lock up front makes writers queue instead.
            Backend::Sqlite => {
                let gate = self.write_gate.clone().lock_owned().await;
                let inner = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(Tx {
                    inner,
                    backend: Backend::Sqlite,
                    _gate: Some(gate),
                    chain: self.chain.get().cloned(),
                    held_audit: None,
                })
            }
            Backend::Postgres => Ok(Tx {
                inner: self.pool.begin().await?,
                backend: Backend::Postgres,
                _gate: None,
                chain: self.chain.get().cloned(),
                held_audit: None,
            }),
        }
    }

    /// SQLite only: run `f` in one `BEGIN IMMEDIATE` transaction on a rusqlite connection of its
    /// own, in line with the other writers (it holds the write gate), and commit. For writes of
    /// millions of rows: prepared statements stepping on this thread instead of binding every
    /// value through sqlx Any. (For the evaluation's first run of 2.2M entitlements it did not
    /// change the time — SQLite's own B-tree work dominates, see the issue notes — a larger cache
    /// and deferring the WAL checkpoint did not either.) Same durability settings as the pool.
    pub async fn sqlite_bulk<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        self.sqlite_bulk_or_rollback(move |tx| f(tx).map(|v| (v, true)))
            .await
    }

    /// [`Db::sqlite_bulk`] where `f` also says whether to commit (`true`) or roll back.
    pub async fn sqlite_bulk_or_rollback<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<(T, bool)> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        let path = self
            .sqlite_path
            .clone()
            .expect("sqlite_bulk on SQLite only");
        let gate = self.write_gate.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            // The gate goes with the work: if the caller is dropped, the lock is still held until
            // this transaction ends.
            let _gate = gate;
            let fail =
                |e: rusqlite::Error| sqlx::Error::Protocol(format!("sqlite bulk write: {e}"));
            let mut c = open_bulk_writer(&path).map_err(fail)?;
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(fail)?;
            let (v, commit) = f(&tx).map_err(fail)?;
            if commit {
                tx.commit().map_err(fail)?;
            } else {
                tx.rollback().map_err(fail)?;
            }
            Ok(v)
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("bulk write task: {e}")))?
    }

    /// SQLite only: like [`Db::sqlite_bulk`], but `f` commits its work in chunks
    /// ([`Chunks::commit`]): between two chunks the write gate is let go, so the writers queued
    /// meanwhile (an audited read, a single edit) go first. What `f` wrote after its last commit
    /// is committed when it returns Ok, and rolled back when it fails.
    pub async fn sqlite_chunked<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Chunks) -> rusqlite::Result<(T, bool)> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        let path = self
            .sqlite_path
            .clone()
            .expect("sqlite_chunked on SQLite only");
        let gate = self.write_gate.clone();
        let held = gate.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let fail =
                |e: rusqlite::Error| sqlx::Error::Protocol(format!("sqlite chunked write: {e}"));
            let conn = open_bulk_writer(&path).map_err(fail)?;
            conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
            let chunks = Chunks {
                conn,
                gate,
                held: std::cell::RefCell::new(Some(held)),
                commits: std::cell::Cell::new(0),
            };
            match f(&chunks) {
                Ok((v, commit)) => {
                    let end = if commit { "COMMIT" } else { "ROLLBACK" };
                    chunks.conn.execute_batch(end).map_err(fail)?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = chunks.conn.execute_batch("ROLLBACK");
                    Err(fail(e))
                }
            }
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("chunked write task: {e}")))?
    }

    /// SQLite only: a write transaction (`BEGIN IMMEDIATE`, holding the write gate) kept open on a
    /// thread of its own, for an import that decides in async code and writes millions of values
    /// through prepared statements ([`SqliteWriteTx::call`]); [`SqliteWriteTx::commit_chunk`]
    /// commits what is written so far and lets queued writers go before the next chunk. Rolled
    /// back (since the last chunk) unless committed.
    pub async fn sqlite_write_tx(&self) -> Result<SqliteWriteTx, sqlx::Error> {
        let path = self
            .sqlite_path
            .clone()
            .expect("sqlite_write_tx on SQLite only");
        let gate = self.write_gate.clone();
        let held = gate.clone().lock_owned().await;
        let (send, mut recv) = tokio::sync::mpsc::unbounded_channel::<TxJob>();
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<Result<(), sqlx::Error>>();
        std::thread::spawn(move || {
            let mut held = Some(held);
            let fail = |e: rusqlite::Error| sqlx::Error::Protocol(format!("sqlite write: {e}"));
            let c = match open_bulk_writer(&path).and_then(|c| {
                c.execute_batch("BEGIN IMMEDIATE")?;
                Ok(c)
            }) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(fail(e)));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            while let Some(job) = recv.blocking_recv() {
                match job {
                    TxJob::Run(f) => f(&c),
                    TxJob::Chunk(done) => {
                        let r = c.execute_batch("COMMIT").and_then(|_| {
                            drop(held.take());
                            held = Some(gate.clone().blocking_lock_owned());
                            c.execute_batch("BEGIN IMMEDIATE")
                        });
                        let _ = done.send(r.map_err(fail));
                    }
                    TxJob::Commit(done) => {
                        let _ = done.send(c.execute_batch("COMMIT").map_err(fail));
                        return;
                    }
                }
            }
            // Dropped without a commit: what was written since the last chunk rolls back.
            let _ = c.execute_batch("ROLLBACK");
            drop(held);
        });
        ready
            .await
            .map_err(|_| sqlx::Error::Protocol("sqlite write thread ended".into()))??;
        Ok(SqliteWriteTx { send })
    }

    /// SQLite only: run `f` on a read-only connection of its own on a blocking thread: a long read
    /// (a dry-run import's lookups) that must neither hold the write gate nor a pool connection.
    pub async fn sqlite_readonly<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        let path = self
            .sqlite_path
            .clone()
            .expect("sqlite_readonly on SQLite only");
        tokio::task::spawn_blocking(move || {
            let fail = |e: rusqlite::Error| sqlx::Error::Protocol(format!("sqlite read: {e}"));
            let c = rusqlite::Connection::open_with_flags(
                &*path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(fail)?;
            c.execute_batch(
                "PRAGMA busy_timeout=60000; PRAGMA cache_size=-65536; PRAGMA query_only=1;",
            )
            .map_err(fail)?;
            f(&c).map_err(fail)
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("sqlite read task: {e}")))?
    }

    /// PostgreSQL only: a native connection (for `COPY … FROM STDIN` into a transaction).
    pub async fn pg_native(&self) -> Result<sqlx::postgres::PgConnection, sqlx::Error> {
        let url = self
            .pg_url
            .as_deref()
            .expect("pg_native on PostgreSQL only");
        // Index builds in a bulk load take seconds by design, as on the pool.
        <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)?
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(10))
            .connect()
            .await
    }

    /// See [`Writer`].
    pub async fn writer(&self) -> Result<Writer, sqlx::Error> {
        let gate = match self.backend {
            Backend::Sqlite => Some(self.write_gate.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        Ok(Writer {
            conn: self.pool.acquire().await?,
            _gate: gate,
        })
    }

    /// Case-insensitive LIKE operator for this backend.
    pub fn ilike(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "LIKE",
            Backend::Postgres => "ILIKE",
        }
    }
}

/// A LIKE pattern matching text that contains `s` literally (its `%`, `_` and `\` escaped), for
/// use with `ESCAPE '\'`.
pub fn like_containing(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A rusqlite connection for a bulk writer: the pool's durability settings and a page cache of up
/// to 1 GB, so that what a large transaction writes stays in memory until its commit instead of
/// being spilled to the WAL part-way (and read back, and spilled again). SQLite takes cache pages
/// only as it needs them and frees them when the connection closes after the job: a 1M-person
/// first load uses about 600 MB, a 400k county's about 240 MB (as under the earlier 256 MB cap,
/// so a county server's peak during an import stays where it was). Against 256 MB, the 1M load
/// took 9.93/10.02 → 9.37/9.60 s.
fn open_bulk_writer(path: &str) -> rusqlite::Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path)?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; \
         PRAGMA busy_timeout=60000; PRAGMA cache_size=-1048576; PRAGMA temp_store=MEMORY;",
    )?;
    // As the pool's connections: its database's checkpointer folds the WAL in.
    if CHECKPOINTER_RUNS.load(std::sync::atomic::Ordering::Relaxed) {
        c.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
    }
    Ok(c)
}

/// A long SQLite write in chunks (see [`Db::sqlite_chunked`]): a rusqlite connection inside a
/// `BEGIN IMMEDIATE` transaction while it holds the process's write gate.
/// `commit` takes `&self`: the statements a writer prepared borrow the connection meanwhile.
pub struct Chunks {
    conn: rusqlite::Connection,
    gate: Arc<tokio::sync::Mutex<()>>,
    held: std::cell::RefCell<Option<tokio::sync::OwnedMutexGuard<()>>>,
    commits: std::cell::Cell<u64>,
}

impl Chunks {
    /// The connection, inside the current chunk's transaction.
    pub fn conn(&self) -> &rusqlite::Connection {
        &self.conn
    }

    /// Commit the chunk, let the writers that queued meanwhile have the write lock (the gate is
    /// first come, first served), then take it back and begin the next chunk.
    pub fn commit(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch("COMMIT")?;
        self.commits.set(self.commits.get() + 1);
        self.held.replace(None);
        self.held
            .replace(Some(self.gate.clone().blocking_lock_owned()));
        self.conn.execute_batch("BEGIN IMMEDIATE")
    }

    /// Chunks committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.get()
    }
}

enum TxJob {
    Run(Box<dyn FnOnce(&rusqlite::Connection) + Send>),
    /// Commit, let others write, begin again.
    Chunk(tokio::sync::oneshot::Sender<Result<(), sqlx::Error>>),
    Commit(tokio::sync::oneshot::Sender<Result<(), sqlx::Error>>),
}

/// See [`Db::sqlite_write_tx`].
pub struct SqliteWriteTx {
    send: tokio::sync::mpsc::UnboundedSender<TxJob>,
}

impl SqliteWriteTx {
    /// Run `f` on the transaction's thread and wait for its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        self.submit(f).await
    }

    /// Queue `f` on the transaction's thread at once and return the wait for its result: the
    /// caller goes on (reads the next batch, say) while the thread writes. Jobs run in the order
    /// submitted.
    pub fn submit<T, F>(&self, f: F) -> impl Future<Output = Result<T, sqlx::Error>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job = TxJob::Run(Box::new(move |tx| {
            let _ = done.send(f(tx));
        }));
        let sent = self.send.send(job).is_ok();
        async move {
            let gone = || sqlx::Error::Protocol("sqlite write thread ended".into());
            if !sent {
                return Err(gone());
            }
            result
                .await
                .map_err(|_| gone())?
                .map_err(|e| sqlx::Error::Protocol(format!("sqlite write: {e}")))
        }
    }

    /// Commit what the jobs queued so far wrote, let the writers waiting meanwhile go, and begin
    /// the next chunk.
    pub async fn commit_chunk(&self) -> Result<(), sqlx::Error> {
        let (done, result) = tokio::sync::oneshot::channel();
        let gone = || sqlx::Error::Protocol("sqlite write thread ended".into());
        self.send.send(TxJob::Chunk(done)).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let (done, result) = tokio::sync::oneshot::channel();
        let gone = || sqlx::Error::Protocol("sqlite write thread ended".into());
        self.send.send(TxJob::Commit(done)).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

/// One value of a row written by a bulk writer (rusqlite statement, PostgreSQL COPY or a sqlx bind),
/// typed even when NULL: PostgreSQL refuses a text NULL for a BIGINT column.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
    Int(Option<i64>),
    Real(Option<f64>),
}

impl rusqlite::ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match *self {
            Cell::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::Blob(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Cell::Int(Some(i)) => ToSqlOutput::Owned(Value::Integer(i)),
            Cell::Real(Some(x)) => ToSqlOutput::Owned(Value::Real(x)),
            _ => ToSqlOutput::Owned(Value::Null),
        })
    }
}

impl Cell<'_> {
    /// Bind onto a sqlx query (the general write path).
    pub fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        match self {
            Cell::Text(v) => q.bind(v.map(str::to_string)),
            Cell::Blob(v) => q.bind(v.map(<[u8]>::to_vec)),
            Cell::Int(v) => q.bind(v),
            Cell::Real(v) => opt_f64(q, v),
        }
    }
}

/// Bind a number that may be missing (a coordinate). sqlx 0.9.0's Any driver sends a NULL f64 to
/// PostgreSQL as a float4 (its Real and Double nulls are swapped in `AnyArguments`): a statement
/// first prepared with one keeps float4 for that parameter on its connection, and the next real
/// f64 is refused ("incorrect binary data format in bind parameter"), a 500 that comes and goes
/// with the pool. A NULL bound as an f32 is sent as float8.
pub fn opt_f64<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    v: Option<f64>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    match v {
        Some(x) => q.bind(x),
        None => q.bind(None::<f32>),
    }
}

/// PostgreSQL binary COPY data being written (`COPY … FROM STDIN WITH (FORMAT binary)`), for
/// columns of type TEXT, BYTEA, BIGINT and DOUBLE PRECISION (the types migrations give them).
/// Nothing is escaped, hex-encoded or printed, on either side: a million registry rows took 1.4 s
/// of the client's CPU in the text format. The signature goes out with the first bytes sent and
/// the end marker with the last, so every COPY written through it is well formed, one of no rows
/// too.
pub struct CopyBinary {
    buf: Vec<u8>,
    rows: usize,
}

impl Default for CopyBinary {
    fn default() -> Self {
        CopyBinary {
            // The signature, no flags, no header extension.
            buf: b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec(),
            rows: 0,
        }
    }
}

impl CopyBinary {
    /// One tuple of typed cells.
    pub fn row(&mut self, cells: &[Cell<'_>]) {
        fn put(out: &mut Vec<u8>, b: &[u8]) {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
        let out = &mut self.buf;
        out.extend_from_slice(&(cells.len() as i16).to_be_bytes());
        for c in cells {
            match *c {
                Cell::Text(Some(s)) => put(out, s.as_bytes()),
                Cell::Blob(Some(b)) => put(out, b),
                Cell::Int(Some(i)) => put(out, &i.to_be_bytes()),
                Cell::Real(Some(x)) => put(out, &x.to_bits().to_be_bytes()),
                // NULL: length -1, no bytes.
                _ => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        self.rows += 1;
    }

    /// Tuples written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Send what is written so far, keeping the buffer's capacity for what comes next.
    pub async fn send<C: std::ops::DerefMut<Target = sqlx::PgConnection>>(
        &mut self,
        cp: &mut sqlx::postgres::PgCopyIn<C>,
    ) -> Result<(), sqlx::Error> {
        if !self.buf.is_empty() {
            cp.send(self.buf.as_slice()).await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Send the rest and the end marker, and end the COPY.
    pub async fn finish<C: std::ops::DerefMut<Target = sqlx::PgConnection>>(
        mut self,
        mut cp: sqlx::postgres::PgCopyIn<C>,
    ) -> Result<u64, sqlx::Error> {
        // The end: a tuple of -1 fields.
        self.buf.extend_from_slice(b"\xff\xff");
        cp.send(self.buf.as_slice()).await?;
        cp.finish().await
    }
}

/// COPY text format: backslash, tab and line breaks escaped.
pub fn copy_field(out: &mut String, v: &str) {
    // Runs between special bytes are copied whole (a char at a time was a tenth of an import's
    // client time); the four are ASCII, so the cuts fall on char boundaries.
    let mut from = 0;
    for (i, b) in v.bytes().enumerate() {
        let esc = match b {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => continue,
        };
        out.push_str(&v[from..i]);
        out.push_str(esc);
        from = i + 1;
    }
    out.push_str(&v[from..]);
}

/// One COPY text line of text fields.
pub fn copy_line(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        copy_field(out, f);
    }
    out.push('\n');
}

/// One field of PostgreSQL's COPY text format: `\N` is NULL; backslash escapes undone.
fn pg_text_field(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if s == "\\N" {
        return None;
    }
    if !s.contains('\\') {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    Some(std::borrow::Cow::Owned(out))
}

fn no_chain_key() -> sqlx::Error {
    sqlx::Error::Protocol("审计密钥未加载（需要密钥文件）".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// What `copy_field` writes, the reading of COPY's text format (`pg_text_field`, which
        /// follows PostgreSQL's) gives back unchanged, on one line and without a bare tab.
        #[test]
        fn copy_field_round_trips(v in "(\\PC|[\\\\\t\n\r])*") {
            let mut out = String::new();
            copy_field(&mut out, &v);
            prop_assert!(!out.contains(['\t', '\n', '\r']));
            let back = pg_text_field(&out);
            prop_assert_eq!(back.as_deref(), Some(v.as_str()));
        }
    }
}

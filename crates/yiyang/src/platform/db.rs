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

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite has one writer at a time. Writers queue here, in order, instead of spinning in
    /// SQLite's sleeping busy handler, which is what made tail latency bad under load.
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// SQLite only: the file, for the point-read path ([`Db::sqlite_read`]).
    sqlite_path: Option<Arc<str>>,
}

/// A write transaction; on SQLite it also holds the process's write gate until commit or drop.
pub struct Tx<'a> {
    inner: sqlx::Transaction<'a, sqlx::Any>,
    backend: Backend,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx<'_> {
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

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        install_default_drivers();
        let url = normalize_url(url);
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let mut sqlite_path = None;
        if backend == Backend::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .split('?')
                .next()
                .unwrap_or("");
            sqlite_path = Some(Arc::from(path));
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("创建数据目录 {dir:?} 失败"))?;
            }
        }
        let opts = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Durable by default: WAL with fsync on commit; FKs on; wait (up to a minute, the length of a
                        // large import by another process) rather than fail on a busy writer.
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=FULL").await?;
                        conn.execute("PRAGMA foreign_keys=ON").await?;
                        conn.execute("PRAGMA busy_timeout=60000").await?;
                        // 8 MB page cache per connection: 16 connections stay well inside the memory budget.
                        conn.execute("PRAGMA cache_size=-8192").await?;
                        conn.execute("PRAGMA temp_store=MEMORY").await?;
                    }
                    Ok(())
                })
            });
        // Index builds in a bulk import take seconds by design; warn only on what is really slow.
        let connect = <sqlx::any::AnyConnectOptions as std::str::FromStr>::from_str(&url)?
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(10));
        let pool = opts
            .connect_with(connect)
            .await
            .with_context(|| "无法连接数据库".to_string())?;
        Ok(Db {
            pool,
            backend,
            write_gate: Arc::new(tokio::sync::Mutex::new(())),
            sqlite_path,
        })
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
        let path = self.sqlite_path.as_ref()?;
        thread_local! {
            static READERS: std::cell::RefCell<HashMap<Arc<str>, rusqlite::Connection>> =
                std::cell::RefCell::new(HashMap::new());
        }
        let fail = |e: rusqlite::Error| sqlx::Error::Protocol(format!("sqlite read: {e}"));
        Some(READERS.with(|m| {
            let mut m = m.borrow_mut();
            if !m.contains_key(path) {
                let c = rusqlite::Connection::open_with_flags(
                    &**path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(fail)?;
                c.execute_batch(
                    "PRAGMA busy_timeout=10000; PRAGMA cache_size=-8192; PRAGMA query_only=1;",
                )
                .map_err(fail)?;
                m.insert(path.clone(), c);
            }
            f(&m[path]).map_err(fail)
        }))
    }

    /// After a large load PostgreSQL's statistics still describe the tables as they were, and the
    /// next import's lookups get sequential-scan plans until autovacuum catches up (measured: an
    /// unchanged re-import of 104k assessments took 40 s). Refresh them at once (PostgreSQL only;
    /// SQLite plans by its indexes without statistics).
    pub async fn analyze_after_bulk(
        &self,
        tables: &[&str],
        written: usize,
    ) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres && written >= 10_000 {
            for t in tables {
                sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {t}")))
                    .execute(&self.pool)
                    .await?;
            }
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

    pub async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
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
                })
            }
            Backend::Postgres => Ok(Tx {
                inner: self.pool.begin().await?,
                backend: Backend::Postgres,
                _gate: None,
            }),
        }
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

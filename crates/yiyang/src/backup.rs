//! backup — a county's copy of its data and the proof it is whole. `backup` copies a SQLite
//! database while `serve` writes to it (`VACUUM INTO`: one read transaction, so writers go on in
//! WAL mode); `restore` puts a copy into an empty data folder; `check` verifies a database — SQLite
//! integrity, migrations, the audit chain against its checkpoints, rows per table. PostgreSQL is
//! backed up with `pg_dump` (docs/deploy.md); `check` works on it the same.

use crate::platform::db::{Backend, Db};
use serde::Serialize;
use sqlx::Row;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct Copied {
    pub path: PathBuf,
    pub bytes: u64,
    pub millis: u128,
}

/// Default name of a backup: `backups/yiyang-YYYYMMDD-HHMMSS.db` beside the database.
pub fn default_out(db_file: &Path) -> PathBuf {
    let dir = db_file
        .parent()
        .map(|p| p.join("backups"))
        .unwrap_or_else(|| PathBuf::from("backups"));
    dir.join(format!(
        "yiyang-{}.db",
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    ))
}

/// A consistent copy of the SQLite database at `out` (which must not exist), written under a
/// temporary name and renamed when complete, readable by its owner only.
pub async fn backup(db: &Db, out: &Path) -> anyhow::Result<Copied> {
    if db.backend != Backend::Sqlite || db.sqlite_file().is_none() {
        anyhow::bail!(
            "yiyang backup 只用于 SQLite 数据库；PostgreSQL 请用 pg_dump（见 docs/deploy.md）"
        );
    }
    if out.exists() {
        anyhow::bail!("{} 已存在：备份不会覆盖已有文件", out.display());
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("无法创建备份目录 {}：{e}", dir.display()))?;
    }
    let t0 = Instant::now();
    let tmp = out.with_extension("db.partial");
    let _ = std::fs::remove_file(&tmp);
    // VACUUM INTO accepts an existing empty file: created first, so the copy is 0600 from the start.
    create_private(&tmp)?;
    // Written without syncing, then flushed a slice at a time: one fsync of the whole copy at
    // the end held the server's commits (each an fsync of its own) for 0.7 s on a 300 MB county.
    let mut conn = db.pool.acquire().await?;
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("VACUUM INTO $1")
        .bind(tmp.to_string_lossy().to_string())
        .execute(&mut *conn)
        .await;
    drop(conn);
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("备份失败：{e}");
    }
    let path = tmp.clone();
    tokio::task::spawn_blocking(move || flush_gently(&path)).await??;
    std::fs::rename(&tmp, out)?;
    Ok(Copied {
        path: out.to_path_buf(),
        bytes: std::fs::metadata(out)?.len(),
        millis: t0.elapsed().as_millis(),
    })
}

/// Make a freshly written file durable in 8 MB slices with a pause between them, so the disk
/// keeps serving the database's own small syncs meanwhile.
fn flush_gently(path: &Path) -> anyhow::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        const SLICE: i64 = 8 << 20;
        let len = f.metadata()?.len() as i64;
        let mut off = 0i64;
        while off < len {
            let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER;
            // SAFETY: a valid open descriptor and a range inside the file.
            let r = unsafe { libc::sync_file_range(f.as_raw_fd(), off, SLICE, flags) };
            if r != 0 {
                break; // the final sync below still makes it durable
            }
            off += SLICE;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    f.sync_all()?;
    Ok(())
}

fn create_private(path: &Path) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
        .map_err(|e| anyhow::anyhow!("无法创建 {}：{e}", path.display()))?;
    Ok(())
}

/// Copy a backup into place as the database `target`, which must not exist yet (restore goes into
/// an empty data folder, never over a database in use). The copy is checked by the caller.
pub fn restore(from: &Path, target: &Path) -> anyhow::Result<Copied> {
    let t0 = Instant::now();
    let mut head = [0u8; 16];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(from)
            .map_err(|e| anyhow::anyhow!("无法读取备份 {}：{e}", from.display()))?;
        f.read_exact(&mut head)
            .map_err(|_| anyhow::anyhow!("{} 不是 SQLite 数据库文件", from.display()))?;
    }
    if &head != b"SQLite format 3\0" {
        anyhow::bail!("{} 不是 SQLite 数据库文件", from.display());
    }
    for p in [
        target.to_path_buf(),
        PathBuf::from(format!("{}-wal", target.display())),
    ] {
        if p.exists() {
            anyhow::bail!(
                "{} 已存在：恢复只写入空的数据目录，请先移走现有数据库（或用 --database 指定新位置）",
                p.display()
            );
        }
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = target.with_extension("db.partial");
    let _ = std::fs::remove_file(&tmp);
    create_private(&tmp)?;
    std::fs::copy(from, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, target)?;
    Ok(Copied {
        path: target.to_path_buf(),
        bytes: std::fs::metadata(target)?.len(),
        millis: t0.elapsed().as_millis(),
    })
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub backend: &'static str,
    /// SQLite `PRAGMA integrity_check` ("ok"), or why it was not run.
    pub integrity: String,
    pub integrity_ok: bool,
    /// Migrations of this binary the database lacks, and versions it has that this binary does
    /// not know (written by a newer one).
    pub migrations_missing: Vec<i64>,
    pub migrations_unknown: Vec<i64>,
    pub audit: crate::audit::VerifyReport,
    pub tables: Vec<(String, i64)>,
    pub millis: u128,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.integrity_ok
            && self.migrations_missing.is_empty()
            && self.migrations_unknown.is_empty()
            && self.audit.ok
    }
}

/// Verify a database without changing it (no migration is run).
pub async fn check(
    db: &Db,
    checkpoints: &[crate::audit::checkpoint::Checkpoint],
) -> anyhow::Result<CheckReport> {
    let t0 = Instant::now();
    let (integrity, integrity_ok) = match db.backend {
        Backend::Sqlite => {
            let rows = sqlx::query("PRAGMA integrity_check")
                .fetch_all(&db.pool)
                .await?;
            let lines: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
            let ok = lines == ["ok"];
            (lines.join("; "), ok)
        }
        Backend::Postgres => (
            "PostgreSQL 自身保证页面完整；需要时可用 amcheck 扩展检查索引".into(),
            true,
        ),
    };
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&db.pool)
        .await
        .map_err(|_| anyhow::anyhow!("数据库中没有迁移记录：它不是颐养的数据库，或尚未初始化"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known: Vec<i64> = crate::platform::migrations::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    let migrations_missing = known
        .iter()
        .filter(|v| !applied.contains(v))
        .copied()
        .collect();
    let migrations_unknown = applied
        .iter()
        .filter(|v| !known.contains(v))
        .copied()
        .collect();
    let audit = crate::audit::verify(db, checkpoints).await?;
    let names: Vec<String> = match db.backend {
        Backend::Sqlite => sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        ),
        Backend::Postgres => sqlx::query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
        ),
    }
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    let mut tables = vec![];
    for n in names {
        // Names come from the catalogue itself; quoted all the same.
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", n.replace('"', "\"\""));
        let c: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&db.pool)
            .await?
            .get(0);
        tables.push((n, c));
    }
    Ok(CheckReport {
        backend: db.backend.name(),
        integrity,
        integrity_ok,
        migrations_missing,
        migrations_unknown,
        audit,
        tables,
        millis: t0.elapsed().as_millis(),
    })
}

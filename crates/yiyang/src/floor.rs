//! The bare-stack floor behind QUALITY.md's import budget, measured again on the machine at hand.
//!
//! QUALITY.md sets the registry import budget at 120k rows/s on both engines, against what the
//! bare stack did on its reference machine (rusqlite 360k rows/s, PostgreSQL COPY 280k rows/s,
//! each with the two indexes a registry needs): 0.33 of the SQLite floor, 0.43 of PostgreSQL's.
//! Machines differ by half and more, so `bench/import.sh` measures that floor here, with the same shape: 1M rows of 14 columns (id, citizen ID, name, birth date, sex, region
//! code, address, latitude, longitude and five flags), loaded in one transaction by one prepared
//! INSERT that parses the CSV itself (SQLite: WAL, `synchronous=NORMAL`, 256 MB cache) or by a
//! client-side COPY (PostgreSQL), then a unique index on the citizen ID and one on the region.
//! yiyang's own import is printed beside it, with the budget scaled to this machine by the same
//! shares.

use chrono::Datelike;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

const TABLE: &str = "CREATE TABLE floor_elder (id BIGINT PRIMARY KEY, citizen_id CHAR(18) NOT NULL, name TEXT NOT NULL, \
     birth_date DATE NOT NULL, sex SMALLINT NOT NULL, region_code CHAR(12) NOT NULL, address TEXT, \
     lat DOUBLE PRECISION, lon DOUBLE PRECISION, living_alone BOOLEAN, empty_nest BOOLEAN, disabled_level SMALLINT, \
     low_income BOOLEAN, extreme_poverty BOOLEAN)";
const INDEXES: [&str; 2] = [
    "CREATE UNIQUE INDEX floor_elder_citizen_id ON floor_elder (citizen_id)",
    "CREATE INDEX floor_elder_region ON floor_elder (region_code)",
];

/// Seconds for the load alone and for the load with both indexes built after it.
pub struct Floor {
    pub rows: u64,
    pub load: f64,
    pub with_indexes: f64,
}

/// The demo county's people in the floor's 14 columns, without a header (commas never occur in
/// the generated values).
pub fn write_csv(out: &Path, rows: usize) -> anyhow::Result<()> {
    let today = crate::platform::today();
    let elders = crate::demo::generate(rows, &crate::demo::village_codes(), 42, today);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let flag = |b: bool| if b { 1 } else { 0 };
    for (i, e) in elders.iter().enumerate() {
        let b = e.birth_date;
        writeln!(
            w,
            "{},{},{},{:04}-{:02}-{:02},{},{},{},{:.6},{:.6},{},{},{},{},{}",
            i + 1,
            e.citizen_id.as_str(),
            e.name,
            b.year(),
            b.month(),
            b.day(),
            if e.sex == yiyang_kernel::citizen_id::Sex::Male {
                1
            } else {
                2
            },
            e.residence_region,
            e.address.as_deref().unwrap_or("").replace(',', " "),
            e.lat.unwrap_or(32.4),
            e.lon.unwrap_or(120.6),
            flag(e.living_status == Some("living_alone")),
            flag(e.living_status == Some("empty_nest")),
            e.disability_grade.unwrap_or(0),
            flag(e.economic_status == Some("minimum_living")),
            flag(e.economic_status == Some("extreme_poverty")),
        )?;
    }
    w.flush()?;
    Ok(())
}

/// What earlier work left dirty in the OS is written out before a clock starts (the benches do
/// the same before each of yiyang's runs).
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// SQLite: a new database file at `db`, the rows of `csv` inserted and both indexes built.
pub fn sqlite(db: &Path, csv: &Path) -> anyhow::Result<Floor> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    settle();
    let mut c = rusqlite::Connection::open(db)?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-262144;",
    )?;
    c.execute_batch(TABLE)?;
    let t0 = Instant::now();
    let tx = c.transaction()?;
    let mut rows = 0u64;
    {
        let mut insert =
            tx.prepare("INSERT INTO floor_elder VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")?;
        let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(csv)?);
        for line in file.lines() {
            let line = line?;
            let v: Vec<&str> = line.split(',').collect();
            anyhow::ensure!(v.len() == 14, "floor CSV: 14 columns expected");
            let int = |k: usize| v[k].parse::<i64>();
            let real = |k: usize| v[k].parse::<f64>();
            insert.execute(rusqlite::params![
                int(0)?,
                v[1],
                v[2],
                v[3],
                int(4)?,
                v[5],
                v[6],
                real(7)?,
                real(8)?,
                int(9)?,
                int(10)?,
                int(11)?,
                int(12)?,
                int(13)?
            ])?;
            rows += 1;
        }
    }
    tx.commit()?;
    let load = t0.elapsed().as_secs_f64();
    for ddl in INDEXES {
        c.execute_batch(ddl)?;
    }
    Ok(Floor {
        rows,
        load,
        with_indexes: t0.elapsed().as_secs_f64(),
    })
}

/// PostgreSQL: the table made again in the database at `url`, the file sent by COPY FROM STDIN,
/// both indexes built; the table is dropped afterwards.
pub async fn postgres(url: &str, csv: &Path) -> anyhow::Result<Floor> {
    use sqlx::{ConnectOptions, Connection};
    // Index builds take seconds here by design: no slow-statement warnings.
    let opts = url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .log_slow_statements(log::LevelFilter::Off, std::time::Duration::from_secs(1));
    let mut c = sqlx::PgConnection::connect_with(&opts).await?;
    sqlx::raw_sql("DROP TABLE IF EXISTS floor_elder")
        .execute(&mut c)
        .await?;
    sqlx::raw_sql(TABLE).execute(&mut c).await?;
    sqlx::raw_sql("CHECKPOINT").execute(&mut c).await?;
    settle();
    let t0 = Instant::now();
    let mut copy = c
        .copy_in_raw("COPY floor_elder FROM STDIN WITH (FORMAT csv)")
        .await?;
    let mut file = std::fs::File::open(csv)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await?;
    }
    let rows = copy.finish().await?;
    let load = t0.elapsed().as_secs_f64();
    for ddl in INDEXES {
        sqlx::raw_sql(ddl).execute(&mut c).await?;
    }
    let with_indexes = t0.elapsed().as_secs_f64();
    sqlx::raw_sql("DROP TABLE floor_elder")
        .execute(&mut c)
        .await?;
    Ok(Floor {
        rows,
        load,
        with_indexes,
    })
}

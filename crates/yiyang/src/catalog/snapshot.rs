//! The facts a run decided on (`eligibility_snapshot_chunk`): one row per 512 people in person
//! order, each holding the lines `person \t facts-JSON \n`, deflated. A first run over a county
//! decides on nearly a million people; one row per person cost a quarter of its write (measured on
//! SQLite: 26.2 s with them, 19.1 s without, for 891k people). Snapshots are read one person at a
//! time (the reasons an approval queue shows) or a run's people in order (the grant messages): both
//! find a chunk by a seek on its key (run, first person).

use crate::platform::db::Db;
use sqlx::Row;
use std::io::{Read, Write};

use crate::platform::migrations::Stmt::{self, *};

/// People per chunk: a lookup inflates about 120 KB.
pub const PEOPLE_PER_CHUNK: usize = 512;

/// Snapshots move from one row per person to chunks; the old rows become one-person chunks as
/// they are (`plain`), so one reader serves every run.
pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE eligibility_snapshot_chunk (run_id TEXT NOT NULL, first_elder TEXT NOT NULL, \
         last_elder TEXT NOT NULL, people BIGINT NOT NULL, encoding TEXT NOT NULL, data BLOB NOT NULL, \
         PRIMARY KEY (run_id, first_elder), \
         CONSTRAINT eligibility_snapshot_chunk_encoding_check CHECK (encoding IN ('plain', 'deflate')))",
    ),
    Sqlite(
        "INSERT INTO eligibility_snapshot_chunk (run_id, first_elder, last_elder, people, encoding, data) \
         SELECT run_id, elder_id, elder_id, 1, 'plain', CAST(elder_id || char(9) || facts || char(10) AS BLOB) \
         FROM eligibility_snapshot",
    ),
    Postgres(
        "INSERT INTO eligibility_snapshot_chunk (run_id, first_elder, last_elder, people, encoding, data) \
         SELECT run_id, elder_id, elder_id, 1, 'plain', convert_to(elder_id || E'\\t' || facts || E'\\n', 'UTF8') \
         FROM eligibility_snapshot",
    ),
    Both("DROP TABLE eligibility_snapshot"),
];

/// One chunk as written.
pub struct Chunk {
    pub first: String,
    pub last: String,
    pub people: i64,
    pub data: Vec<u8>,
}

/// Pack (person, facts) pairs into chunks, sorting them by person; deflated on every core.
pub fn pack(mut people: Vec<(String, String)>) -> Vec<Chunk> {
    people.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let parts: Vec<&[(String, String)]> = people.chunks(PEOPLE_PER_CHUNK).collect();
    let threads = crate::platform::cores();
    let per = parts.len().div_ceil(threads).max(1);
    std::thread::scope(|sc| {
        let handles: Vec<_> = parts
            .chunks(per)
            .map(|group| {
                sc.spawn(move || {
                    let _low = crate::platform::Background::new();
                    group
                        .iter()
                        .map(|part| {
                            let mut z = flate2::write::DeflateEncoder::new(
                                Vec::new(),
                                flate2::Compression::fast(),
                            );
                            for (id, facts) in *part {
                                // Ids are uuids and the facts compact JSON: no tab or newline inside.
                                let _ = z.write_all(id.as_bytes());
                                let _ = z.write_all(b"\t");
                                let _ = z.write_all(facts.as_bytes());
                                let _ = z.write_all(b"\n");
                            }
                            Chunk {
                                first: part[0].0.clone(),
                                last: part[part.len() - 1].0.clone(),
                                people: part.len() as i64,
                                data: z.finish().unwrap_or_default(),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("snapshot packing thread"))
            .collect()
    })
}

/// The (person, facts) lines of a stored chunk, in person order. A chunk that does not inflate is
/// an error, not an empty chunk: the grant messages would otherwise skip its people silently.
pub fn unpack(encoding: &str, data: &[u8]) -> Result<Vec<(String, String)>, sqlx::Error> {
    let text = match encoding {
        "deflate" => {
            let mut s = String::new();
            flate2::read::DeflateDecoder::new(data)
                .read_to_string(&mut s)
                .map_err(|e| sqlx::Error::Decode(format!("snapshot chunk: {e}").into()))?;
            s
        }
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect())
}

/// SQLite's prepared statement for [`Chunk`] rows of a run (bulk writer).
pub const INSERT: &str = "INSERT INTO eligibility_snapshot_chunk (run_id, first_elder, last_elder, people, encoding, data) \
     VALUES ($1, $2, $3, $4, 'deflate', $5)";

/// Write a run's chunks on PostgreSQL, a few hundred per statement.
pub async fn insert_pg(
    tx: &mut sqlx::postgres::PgConnection,
    run_id: &str,
    chunks: &[Chunk],
) -> Result<(), sqlx::Error> {
    for part in chunks.chunks(256) {
        sqlx::query(
            "INSERT INTO eligibility_snapshot_chunk (run_id, first_elder, last_elder, people, encoding, data) \
             SELECT $1, f, l, n, 'deflate', d FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS c (f, l, n, d)",
        )
        .bind(run_id)
        .bind(part.iter().map(|c| c.first.as_str()).collect::<Vec<_>>())
        .bind(part.iter().map(|c| c.last.as_str()).collect::<Vec<_>>())
        .bind(part.iter().map(|c| c.people).collect::<Vec<_>>())
        .bind(part.iter().map(|c| c.data.as_slice()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Which chunk of a run to seek, relative to a person (chunks of a run do not overlap).
#[derive(Clone, Copy)]
enum Seek {
    /// The one that would hold the person: the last starting at or before them.
    Holding,
    /// The first starting after them.
    After,
}

/// A seek on the key (run, first person); the chunk's lines.
async fn chunk(
    db: &Db,
    run_id: &str,
    elder: &str,
    seek: Seek,
) -> Result<Option<Vec<(String, String)>>, sqlx::Error> {
    let sql = match seek {
        Seek::Holding => {
            "SELECT encoding, data FROM eligibility_snapshot_chunk \
             WHERE run_id = $1 AND first_elder <= $2 ORDER BY first_elder DESC LIMIT 1"
        }
        Seek::After => {
            "SELECT encoding, data FROM eligibility_snapshot_chunk \
             WHERE run_id = $1 AND first_elder > $2 ORDER BY first_elder LIMIT 1"
        }
    };
    let row = sqlx::query(sql)
        .bind(run_id)
        .bind(elder)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| unpack(&r.get::<String, _>(0), &r.get::<Vec<u8>, _>(1)))
        .transpose()
}

/// Reads one person's facts at a time, keeping the last chunk: asked in (run, person) order,
/// neighbours share it.
#[derive(Default)]
pub struct Reader {
    last: Option<(String, Vec<(String, String)>)>,
}

impl Reader {
    pub async fn facts(
        &mut self,
        db: &Db,
        run_id: &str,
        elder: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let cached = self.last.as_ref().is_some_and(|(run, lines)| {
            run == run_id
                && lines.first().is_some_and(|f| f.0.as_str() <= elder)
                && lines.last().is_some_and(|l| l.0.as_str() >= elder)
        });
        if !cached {
            let found = chunk(db, run_id, elder, Seek::Holding).await?;
            self.last = found.map(|lines| (run_id.to_string(), lines));
        }
        Ok(self.last.as_ref().and_then(|(_, lines)| {
            lines
                .binary_search_by(|l| l.0.as_str().cmp(elder))
                .ok()
                .map(|i| lines[i].1.clone())
        }))
    }
}

/// The people a run decided on after `after`, in person order: up to one chunk's worth.
pub async fn people_after(db: &Db, run_id: &str, after: &str) -> Result<Vec<String>, sqlx::Error> {
    // The rest of the chunk holding the cursor, else the next chunk.
    let rest = |lines: Vec<(String, String)>| -> Vec<String> {
        lines
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| id.as_str() > after)
            .collect()
    };
    if let Some(lines) = chunk(db, run_id, after, Seek::Holding).await? {
        let people = rest(lines);
        if !people.is_empty() {
            return Ok(people);
        }
    }
    Ok(chunk(db, run_id, after, Seek::After)
        .await?
        .map(rest)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_keep_every_person_in_order() {
        let people: Vec<(String, String)> = (0..1300)
            .rev()
            .map(|i| {
                (
                    format!("p{i:05}"),
                    format!("{{\"birth_date\":\"1940-01-{:02}\"}}", i % 28 + 1),
                )
            })
            .collect();
        let chunks = pack(people.clone());
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].first, "p00000");
        assert_eq!(chunks[2].last, "p01299");
        let mut back = vec![];
        for c in &chunks {
            let lines = unpack("deflate", &c.data).unwrap();
            assert_eq!(lines.len() as i64, c.people);
            assert_eq!(lines[0].0, c.first);
            back.extend(lines);
        }
        let mut want = people;
        want.sort();
        assert_eq!(back, want);
        assert_eq!(
            unpack("plain", b"p1\t{\"sex\":\"\xe5\xa5\xb3\"}\n").unwrap(),
            vec![("p1".to_string(), "{\"sex\":\"女\"}".to_string())]
        );
        assert!(unpack("deflate", b"not deflated").is_err());
    }
}

//! Checkpoints of the audit chain's head kept outside the database: `serve` writes one every 10
//! minutes when the head moved, and `yiyang audit-checkpoint` on demand. Whoever can write the
//! database can drop its triggers, delete the newest rows and set the head back; the chain then
//! still adds up, but not to the checkpoints, which `verify` compares with the rows.
//!
//! A checkpoint is one line appended to a file (by default `./data/audit-checkpoints.log`) and, if
//! asked, sent to the notification gateway so that another machine keeps it too. Each line carries
//! a MAC under the chain key, so a line cannot be made up or edited without the key file.

use crate::platform::crypto::ChainKey;
use crate::platform::db::Db;
use hmac::Mac;
use sqlx::Row;
use std::io::Write;
use std::path::{Path, PathBuf};

const TAG: &str = "yiyang-audit-checkpoint-v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    /// The chain's MAC of row `seq` (the head's hash then).
    pub hash: String,
    pub at: String,
}

/// Where checkpoints go.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    pub file: Option<PathBuf>,
    pub gateway: Option<crate::platform::outbox::Gateway>,
}

impl Sink {
    /// The file given (`off` or empty for none), and the notification gateway too when
    /// `YIYANG_AUDIT_CHECKPOINT_NOTIFY=1` and `YIYANG_NOTIFY_URL` are set.
    pub fn new(file: &str) -> Sink {
        let file = (!file.is_empty() && file != "off").then(|| PathBuf::from(file));
        let gateway = std::env::var("YIYANG_AUDIT_CHECKPOINT_NOTIFY")
            .is_ok_and(|v| v == "1")
            .then(crate::platform::outbox::Gateway::from_env)
            .flatten();
        Sink { file, gateway }
    }
}

fn tag(key: &ChainKey, seq: i64, hash: &str, at: &str) -> String {
    let mut m = key.mac();
    for part in [TAG, &seq.to_string(), hash, at] {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part.as_bytes());
    }
    hex::encode(m.finalize().into_bytes())
}

/// The line a checkpoint is kept as.
pub fn line(key: &ChainKey, c: &Checkpoint) -> String {
    format!(
        "{TAG} seq={} hash={} at={} mac={}\n",
        c.seq,
        c.hash,
        c.at,
        tag(key, c.seq, &c.hash, &c.at)
    )
}

/// The head as it is now.
pub async fn head(db: &Db) -> Result<Checkpoint, sqlx::Error> {
    let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&db.pool)
        .await?;
    Ok(Checkpoint {
        seq: r.get(0),
        hash: r.get(1),
        at: crate::platform::now_rfc3339(),
    })
}

/// Write a checkpoint of the current head to every place of `sink`; returns it.
pub async fn take(db: &Db, sink: &Sink) -> anyhow::Result<Checkpoint> {
    let key = db.chain_key()?;
    let c = head(db).await?;
    let text = line(&key, &c);
    if let Some(path) = &sink.file {
        append_line(path, &text)
            .map_err(|e| anyhow::anyhow!("无法写入审计检查点文件 {}：{e}", path.display()))?;
    }
    if let Some(gw) = &sink.gateway {
        let body = serde_json::json!({
            "kind": "audit_checkpoint", "seq": c.seq, "hash": c.hash, "at": c.at,
            "line": text.trim_end(),
        });
        gw.post(&format!("audit-checkpoint-{}", c.seq), &body)
            .await
            .map_err(|e| anyhow::anyhow!("审计检查点未能发送：{e}"))?;
    }
    Ok(c)
}

fn append_line(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

/// The checkpoints of a file, each checked against its MAC; none when the file does not exist.
pub fn read(path: &Path, key: &ChainKey) -> anyhow::Result<Vec<Checkpoint>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => anyhow::bail!("无法读取审计检查点文件 {}：{e}", path.display()),
    };
    let mut out = vec![];
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let bad = || anyhow::anyhow!("审计检查点文件第 {} 行格式不正确或被改动", i + 1);
        let mut f = l.split_whitespace();
        if f.next() != Some(TAG) {
            return Err(bad());
        }
        let mut get = |k: &str| {
            f.next()
                .and_then(|x| x.strip_prefix(k))
                .map(str::to_string)
                .ok_or_else(bad)
        };
        let seq: i64 = get("seq=")?.parse().map_err(|_| bad())?;
        let hash = get("hash=")?;
        let at = get("at=")?;
        let mac = get("mac=")?;
        if tag(key, seq, &hash, &at) != mac {
            return Err(bad());
        }
        out.push(Checkpoint { seq, hash, at });
    }
    Ok(out)
}

/// In `serve`: a checkpoint every `every`, when the head moved since the last one.
pub fn start(db: Db, sink: Sink, every: std::time::Duration) {
    if sink.file.is_none() && sink.gateway.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut last: Option<i64> = None;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            crate::platform::metrics::beat("audit_checkpoint", every);
            let moved = match head(&db).await {
                Ok(h) => last != Some(h.seq),
                Err(e) => {
                    tracing::warn!(error = %e, "audit checkpoint: cannot read the head");
                    continue;
                }
            };
            if !moved {
                continue;
            }
            match take(&db, &sink).await {
                Ok(c) => last = Some(c.seq),
                Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
            }
        }
    });
}

//! region — the 12-digit statistical division tree with a code-change map (merged or split towns),
//! so records carrying old codes follow the new ones.

pub mod http;
pub mod import;
pub mod map;

use crate::platform::db::Db;
use crate::platform::migrations::Stmt::{self, *};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
use yiyang_kernel::RegionCode;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE region (code TEXT PRIMARY KEY, name TEXT NOT NULL, level BIGINT NOT NULL, \
         parent_code TEXT, valid_from TEXT, valid_to TEXT)",
    ),
    Both("CREATE INDEX region_parent ON region (parent_code)"),
    Both(
        "CREATE TABLE region_code_change (old_code TEXT NOT NULL, new_code TEXT NOT NULL, \
         effective_date TEXT NOT NULL, kind TEXT NOT NULL, note TEXT, PRIMARY KEY (old_code))",
    ),
];

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Region {
    pub code: String,
    pub name: String,
    pub level: i64,
    pub parent_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegionNode {
    pub code: String,
    pub name: String,
    pub level: i64,
    #[schema(no_recursion)]
    pub children: Vec<RegionNode>,
}

/// In-memory view of the tree: small (a province has ~30k villages), read on every request.
#[derive(Debug, Clone, Default)]
pub struct RegionIndex {
    pub by_code: HashMap<String, Region>,
    pub changes: HashMap<String, String>,
}

impl RegionIndex {
    pub async fn load(db: &Db) -> anyhow::Result<RegionIndex> {
        let rows =
            sqlx::query("SELECT code, name, level, parent_code FROM region WHERE valid_to IS NULL")
                .fetch_all(&db.pool)
                .await?;
        let mut by_code = HashMap::new();
        for r in rows {
            let reg = Region {
                code: r.get(0),
                name: r.get(1),
                level: r.get(2),
                parent_code: r.get(3),
            };
            by_code.insert(reg.code.clone(), reg);
        }
        let changes = sqlx::query("SELECT old_code, new_code FROM region_code_change")
            .fetch_all(&db.pool)
            .await?
            .into_iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect();
        Ok(RegionIndex { by_code, changes })
    }

    pub fn name(&self, code: &str) -> Option<&str> {
        self.by_code.get(code).map(|r| r.name.as_str())
    }

    /// Follow the code-change map (a chain of merges ends at the current code).
    pub fn current(&self, code: &str) -> String {
        let mut c = code.to_string();
        for _ in 0..16 {
            match self.changes.get(&c) {
                Some(n) => c = n.clone(),
                None => break,
            }
        }
        c
    }

    /// The codes of towns and villages named `name` that `keep` keeps (a spreadsheet's "东陈镇").
    pub fn find_by_name(&self, name: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_code
            .values()
            .filter(|r| r.level >= 4 && r.name == name && keep(&r.code))
            .map(|r| r.code.clone())
            .collect();
        v.sort();
        v
    }

    /// "如皋市 / 东陈镇 / 洪桥居委会" for display.
    pub fn path_name(&self, code: &str) -> String {
        let mut parts = vec![];
        let mut cur = self.by_code.get(code);
        while let Some(r) = cur {
            parts.push(r.name.clone());
            if r.level <= 3 {
                break;
            }
            cur = r.parent_code.as_ref().and_then(|p| self.by_code.get(p));
        }
        parts.reverse();
        parts.join(" / ")
    }

    pub fn children(&self, code: &str) -> Vec<&Region> {
        let mut v: Vec<&Region> = self
            .by_code
            .values()
            .filter(|r| r.parent_code.as_deref() == Some(code))
            .collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    }

    pub fn tree(&self, root: &str, depth: usize) -> Option<RegionNode> {
        let r = self.by_code.get(root)?;
        Some(self.node(r, depth))
    }

    fn node(&self, r: &Region, depth: usize) -> RegionNode {
        let children = if depth == 0 {
            vec![]
        } else {
            self.children(&r.code)
                .into_iter()
                .map(|c| self.node(c, depth - 1))
                .collect()
        };
        RegionNode {
            code: r.code.clone(),
            name: r.name.clone(),
            level: r.level,
            children,
        }
    }

    /// [`Self::check_record_code`], and the code must lie inside `scope`.
    pub fn check_scoped_code(
        &self,
        raw: &str,
        scope: &crate::identity::Scope,
    ) -> Result<String, String> {
        let c = self.check_record_code(raw)?;
        let rc = RegionCode::parse(&c).map_err(|e| e.to_string())?;
        if !scope.covers(&rc) {
            return Err(format!("区划代码 {raw} 不在您的管辖范围内"));
        }
        Ok(c)
    }

    /// A code is usable for a record when it is a known village or town (after following changes).
    pub fn check_record_code(&self, raw: &str) -> Result<String, String> {
        let code = RegionCode::parse(raw).map_err(|e| format!("{e}（{raw}）"))?;
        let cur = self.current(code.as_str());
        if !self.by_code.contains_key(&cur) {
            return Err(format!("区划代码 {raw} 不在本系统的区划表中"));
        }
        Ok(cur)
    }
}

/// Every change to the region tree stamps a new `region_version`, so running servers (which keep the
/// tree in memory) notice changes made by another process and reload it.
async fn bump_version(tx: &mut crate::platform::db::Tx<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO app_meta (key, value) VALUES ('region_version', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn version(db: &Db) -> Result<Option<String>, sqlx::Error> {
    Ok(
        sqlx::query("SELECT value FROM app_meta WHERE key = 'region_version'")
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.get(0)),
    )
}

/// Reload the server's region tree whenever another process changed it (checked every few seconds).
pub fn follow_changes(
    db: Db,
    index: std::sync::Arc<tokio::sync::RwLock<RegionIndex>>,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut seen = version(&db).await.ok().flatten();
        loop {
            crate::platform::metrics::beat("region_reload", every);
            tokio::time::sleep(every).await;
            let Ok(now) = version(&db).await else {
                continue;
            };
            if now != seen {
                match RegionIndex::load(&db).await {
                    Ok(fresh) => {
                        *index.write().await = fresh;
                        seen = now;
                        tracing::info!("region tree reloaded after a change");
                    }
                    Err(e) => tracing::error!(error = %e, "region tree reload failed"),
                }
            }
        }
    });
}

pub async fn upsert(db: &Db, regions: &[Region]) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    for r in regions {
        sqlx::query("DELETE FROM region WHERE code = $1")
            .bind(&r.code)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO region (code, name, level, parent_code) VALUES ($1, $2, $3, $4)")
            .bind(&r.code)
            .bind(&r.name)
            .bind(r.level)
            .bind(&r.parent_code)
            .execute(&mut *tx)
            .await?;
    }
    bump_version(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// One line of a code-change table: `old` became `new` (named `new_name`) on `date`.
#[derive(Debug, Clone)]
pub struct CodeChange {
    pub old: String,
    pub new: String,
    pub new_name: Option<String>,
    pub date: String,
    /// merge, split, rename
    pub kind: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ChangeReport {
    pub changes: usize,
    pub regions_created: usize,
    pub elders_recoded: u64,
    pub users_recoded: u64,
}

/// Apply a code-change table in one transaction: new nodes are created, old ones closed, the map is
/// recorded (imports carrying old codes follow it), and people and accounts bound to an old code
/// move to the new one, so later counts add up under the new codes. Audited.
pub async fn apply_changes(
    db: &Db,
    who: &crate::audit::Who,
    changes: &[CodeChange],
) -> anyhow::Result<ChangeReport> {
    let mut rep = ChangeReport {
        changes: changes.len(),
        ..Default::default()
    };
    let mut tx = db.begin().await?;
    // Recoded elders must reach the search index (see registry::MIGRATION_CHANGE_SEQ).
    let seq = crate::registry::store::next_change_seq(&mut tx).await?;
    for c in changes {
        let old =
            RegionCode::parse(&c.old).map_err(|e| anyhow::anyhow!("旧代码 {}：{e}", c.old))?;
        let new =
            RegionCode::parse(&c.new).map_err(|e| anyhow::anyhow!("新代码 {}：{e}", c.new))?;
        if old.level() != new.level() {
            anyhow::bail!("{} 与 {} 的层级不同，不能对应", c.old, c.new);
        }
        if !["merge", "split", "rename"].contains(&c.kind.as_str()) {
            anyhow::bail!("变更类型应为 merge、split 或 rename：{}", c.kind);
        }
        chrono::NaiveDate::parse_from_str(&c.date, "%Y-%m-%d")
            .map_err(|_| anyhow::anyhow!("生效日期应为 YYYY-MM-DD：{}", c.date))?;
        let exists = sqlx::query("SELECT 1 FROM region WHERE code = $1")
            .bind(new.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            let name = c
                .new_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("新代码 {} 不在区划表中，请给出名称", c.new))?;
            sqlx::query("INSERT INTO region (code, name, level, parent_code, valid_from) VALUES ($1, $2, $3, $4, $5)")
                .bind(new.as_str())
                .bind(name)
                .bind(new.level() as i64)
                .bind(new.parent().map(|p| p.to_string()))
                .bind(&c.date)
                .execute(&mut *tx)
                .await?;
            rep.regions_created += 1;
        }
        sqlx::query("DELETE FROM region_code_change WHERE old_code = $1")
            .bind(old.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO region_code_change (old_code, new_code, effective_date, kind) VALUES ($1, $2, $3, $4)")
            .bind(old.as_str())
            .bind(new.as_str())
            .bind(&c.date)
            .bind(&c.kind)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE region SET valid_to = $1 WHERE code = $2")
            .bind(&c.date)
            .bind(old.as_str())
            .execute(&mut *tx)
            .await?;
        rep.elders_recoded += sqlx::query(
            "UPDATE elder SET residence_region = $1, change_seq = $3 WHERE residence_region = $2",
        )
        .bind(new.as_str())
        .bind(old.as_str())
        .bind(seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE elder SET hukou_region = $1 WHERE hukou_region = $2")
            .bind(new.as_str())
            .bind(old.as_str())
            .execute(&mut *tx)
            .await?;
        rep.users_recoded +=
            sqlx::query("UPDATE app_user SET region_code = $1 WHERE region_code = $2")
                .bind(new.as_str())
                .bind(old.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
    }
    crate::audit::append(
        &mut tx,
        who,
        crate::audit::Entry {
            action: "region.code_change",
            entity: "region",
            entity_id: None,
            region_code: None,
            detail: serde_json::json!({
                "changes": changes.iter().map(|c| serde_json::json!({"old": c.old, "new": c.new, "kind": c.kind, "date": c.date})).collect::<Vec<_>>(),
                "elders_recoded": rep.elders_recoded, "users_recoded": rep.users_recoded
            })
            .to_string(),
        },
    )
    .await?;
    bump_version(&mut tx).await?;
    tx.commit().await?;
    Ok(rep)
}

/// Read a code-change table (CSV: 旧代码/old_code, 新代码/new_code, 新名称/new_name, 生效日期/date, 类型/kind).
pub fn parse_changes_csv(text: &str) -> anyhow::Result<Vec<CodeChange>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = r.headers()?.iter().map(|h| h.trim().to_string()).collect();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let (o, n) = (col(&["旧代码", "old_code"]), col(&["新代码", "new_code"]));
    let (nm, d, k) = (
        col(&["新名称", "new_name"]),
        col(&["生效日期", "date"]),
        col(&["类型", "kind"]),
    );
    let (Some(o), Some(n), Some(d)) = (o, n, d) else {
        anyhow::bail!("表头应包含 旧代码、新代码、生效日期（可选：新名称、类型）");
    };
    let mut out = vec![];
    for rec in r.records() {
        let rec = rec?;
        let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(|s| s.trim().to_string());
        out.push(CodeChange {
            old: get(Some(o)).unwrap_or_default(),
            new: get(Some(n)).unwrap_or_default(),
            new_name: get(nm),
            date: get(Some(d)).unwrap_or_default(),
            kind: get(k)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "merge".into()),
        });
    }
    Ok(out)
}

//! region — the 12-digit statistical division tree with a code-change map (merged or split towns),
//! so records carrying old codes follow the new ones.

pub mod http;

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

    /// "如皋市 / 城南街道 / 平园池社区" for display.
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
    tx.commit().await?;
    Ok(())
}

/// Record that `old` became `new` (a merged or split town); the old node is closed.
pub async fn record_change(
    db: &Db,
    old: &str,
    new: &str,
    date: &str,
    kind: &str,
) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM region_code_change WHERE old_code = $1")
        .bind(old)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO region_code_change (old_code, new_code, effective_date, kind) VALUES ($1, $2, $3, $4)")
        .bind(old)
        .bind(new)
        .bind(date)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE region SET valid_to = $1 WHERE code = $2")
        .bind(date)
        .bind(old)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

//! The admission queue's policy (入住轮候规则) as a county publishes it: an ordered list of tiers in
//! the catalogue's rule language (`yiyang_kernel::admission`). A town without its own follows the
//! nearest region above it that has one, and a county without one the default.

use crate::audit::{self, Entry, Who};
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use serde::Serialize;
use sqlx::Row;
use yiyang_kernel::RegionCode;
use yiyang_kernel::admission::{DEFAULT_TIERS, QueuePolicy, TierSource};

pub const MIGRATION: &[Stmt] = &[Both(
    "CREATE TABLE admission_policy (region_code TEXT PRIMARY KEY, tiers TEXT NOT NULL, \
     published_at TEXT NOT NULL, published_by TEXT NOT NULL, version BIGINT NOT NULL)",
)];

/// The policy in force for a region, as written, and where it comes from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    /// The region whose published policy this is; none for the default.
    pub region_code: Option<String>,
    /// "如皋市发布的轮候规则" or "默认轮候规则"
    pub source: String,
    pub tiers: Vec<TierView>,
    pub published_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TierView {
    pub label: String,
    /// The rule (empty: everyone not placed in an earlier tier)
    pub rule: String,
}

fn default_tiers() -> Vec<TierSource> {
    DEFAULT_TIERS
        .iter()
        .map(|(l, r)| TierSource {
            label: l.to_string(),
            rule: r.to_string(),
        })
        .collect()
}

/// The policy for `region` (its own, or the nearest ancestor's, or the default), checked.
pub async fn policy_for(
    db: &Db,
    regions: &crate::region::RegionIndex,
    region: &RegionCode,
) -> anyhow::Result<(QueuePolicy, PolicyView)> {
    let mut chain = vec![region.clone()];
    while let Some(p) = chain.last().and_then(|c| c.parent()) {
        chain.push(p);
    }
    for code in &chain {
        let row =
            sqlx::query("SELECT tiers, published_at FROM admission_policy WHERE region_code = $1")
                .bind(code.as_str())
                .fetch_optional(&db.pool)
                .await?;
        if let Some(r) = row {
            let tiers: Vec<TierSource> = serde_json::from_str(&r.get::<String, _>(0))?;
            let policy = QueuePolicy::parse(&tiers).map_err(|e| anyhow::anyhow!(e))?;
            let name = regions
                .name(code.as_str())
                .unwrap_or(code.as_str())
                .to_string();
            return Ok((
                policy,
                PolicyView {
                    region_code: Some(code.as_str().to_string()),
                    source: format!("{name}发布的轮候规则"),
                    tiers: tiers
                        .into_iter()
                        .map(|t| TierView {
                            label: t.label,
                            rule: t.rule,
                        })
                        .collect(),
                    published_at: Some(r.get(1)),
                },
            ));
        }
    }
    Ok((
        QueuePolicy::default_policy(),
        PolicyView {
            region_code: None,
            source: "默认轮候规则".into(),
            tiers: default_tiers()
                .into_iter()
                .map(|t| TierView {
                    label: t.label,
                    rule: t.rule,
                })
                .collect(),
            published_at: None,
        },
    ))
}

/// Publish a region's policy (replacing its earlier one); every tier checked first; audited.
pub async fn publish(
    db: &Db,
    who: &Who,
    region: &RegionCode,
    tiers: Vec<TierView>,
) -> ApiResult<()> {
    let src: Vec<TierSource> = tiers
        .into_iter()
        .map(|t| TierSource {
            label: t.label,
            rule: t.rule,
        })
        .collect();
    QueuePolicy::parse(&src).map_err(|e| ApiError::invalid("tiers", e))?;
    let text = serde_json::to_string(&src).map_err(anyhow::Error::from)?;
    let now = crate::platform::now_rfc3339();
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "UPDATE admission_policy SET tiers = $1, published_at = $2, published_by = $3, version = version + 1 \
         WHERE region_code = $4",
    )
    .bind(&text)
    .bind(&now)
    .bind(&who.actor_name)
    .bind(region.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        sqlx::query(
            "INSERT INTO admission_policy (region_code, tiers, published_at, published_by, version) \
             VALUES ($1, $2, $3, $4, 1)",
        )
        .bind(region.as_str())
        .bind(&text)
        .bind(&now)
        .bind(&who.actor_name)
        .execute(&mut *tx)
        .await?;
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.policy",
            entity: "region",
            entity_id: Some(region.as_str()),
            region_code: Some(region.as_str()),
            detail: serde_json::json!({"tiers": src.len()}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

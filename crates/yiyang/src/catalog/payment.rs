//! Monthly cash batches (发放批次): every granted entitlement of a cash item (按月现金) of a
//! catalogue, for one month, with the amount split across the funding levels; totals per town and
//! level; the bank file; and the check that flags anyone paid for a month that began after their
//! date of death.
//!
//! Money takes a second look: a batch is a draft (草稿) when made, reviewed (已复核) by another
//! person than its maker, then marked paid (已发放). The bank file with full citizen IDs is only
//! made for a reviewed batch; a draft can be discarded and made again.

use super::store::{self, ItemDef};
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use sqlx::Row;

fn month_bounds(month: &str) -> ApiResult<(String, String)> {
    let first = chrono::NaiveDate::parse_from_str(&format!("{}-01", month.trim()), "%Y-%m-%d")
        .map_err(|_| ApiError::invalid("month", "月份应写成 YYYY-MM，如 2026-12"))?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .expect("in range");
    let limit = crate::platform::today()
        .checked_add_months(chrono::Months::new(1))
        .expect("in range");
    if first > limit {
        return Err(ApiError::invalid("month", "只能生成本月或下月的发放批次"));
    }
    Ok((first.to_string(), (next - chrono::Days::new(1)).to_string()))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TownTotal {
    pub code: String,
    pub name: String,
    pub people: i64,
    pub amount: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemTotal {
    pub code: String,
    pub people: i64,
    pub amount: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LevelTotals {
    pub province: f64,
    pub city: f64,
    pub county: f64,
    pub town: f64,
}

/// A batch's state and who moved it there (the columns `payment_batch` gained with states).
pub const MIGRATION_STATES: &[crate::platform::migrations::Stmt] = {
    use crate::platform::migrations::Stmt::Both;
    &[
        Both(
            "ALTER TABLE payment_batch ADD COLUMN state TEXT NOT NULL DEFAULT 'draft' \
             CHECK (state = 'draft' OR state = 'reviewed' OR state = 'paid')",
        ),
        Both("ALTER TABLE payment_batch ADD COLUMN created_by_id TEXT"),
        Both("ALTER TABLE payment_batch ADD COLUMN reviewed_by TEXT"),
        Both("ALTER TABLE payment_batch ADD COLUMN reviewed_by_id TEXT"),
        Both("ALTER TABLE payment_batch ADD COLUMN reviewed_at TEXT"),
        Both("ALTER TABLE payment_batch ADD COLUMN paid_by TEXT"),
        Both("ALTER TABLE payment_batch ADD COLUMN paid_at TEXT"),
        Both("ALTER TABLE payment_batch ADD COLUMN paid_note TEXT"),
    ]
};

/// Organisations paid in a batch beside the people: a home's bed-subsidy claim, later a provider's
/// settlement. The payee and its account are copied in when the line is added, so the bank file
/// pays what was reviewed even if the organisation's record changes afterwards.
pub const MIGRATION_ORG_LINES: &[crate::platform::migrations::Stmt] = {
    use crate::platform::migrations::Stmt::Both;
    &[
        Both(
            "CREATE TABLE payment_org_line (batch_id TEXT NOT NULL REFERENCES payment_batch (id), \
             source TEXT NOT NULL, source_id TEXT NOT NULL, org_id TEXT NOT NULL, payee TEXT NOT NULL, \
             bank_name TEXT NOT NULL, bank_account_name TEXT NOT NULL, bank_account TEXT NOT NULL, \
             amount_fen BIGINT NOT NULL, town_code TEXT NOT NULL, purpose TEXT NOT NULL, \
             PRIMARY KEY (batch_id, source, source_id))",
        ),
        // A claim is paid by one batch only (a discarded draft lets go of its lines).
        Both("CREATE UNIQUE INDEX payment_org_line_source ON payment_org_line (source, source_id)"),
        Both("ALTER TABLE payment_batch ADD COLUMN org_lines BIGINT NOT NULL DEFAULT 0"),
        Both("ALTER TABLE payment_batch ADD COLUMN org_total_fen BIGINT NOT NULL DEFAULT 0"),
    ]
};

/// Who put organisations' payments into a batch: not the one to review it.
pub const MIGRATION_ORG_LINE_MAKER: &[crate::platform::migrations::Stmt] = {
    use crate::platform::migrations::Stmt::Both;
    &[
        Both("ALTER TABLE payment_org_line ADD COLUMN added_by TEXT"),
        Both("ALTER TABLE payment_org_line ADD COLUMN added_by_id TEXT"),
    ]
};

/// One organisation's payment to add to a batch.
#[derive(Debug, Clone)]
pub struct OrgPayment {
    /// What it pays for (`bed_claim`), and which record.
    pub source: &'static str,
    pub source_id: String,
    pub org_id: String,
    pub payee: String,
    pub bank_name: String,
    pub bank_account_name: String,
    pub bank_account: String,
    pub amount_fen: i64,
    pub town_code: String,
    /// 用途, as the bank file shows it: "2026-11 床位运营补贴"
    pub purpose: String,
}

/// Add organisations' payments to a draft batch inside the caller's transaction (the batch must be
/// in the scope and still a draft: a reviewed batch is not changed behind its reviewer). Returns
/// the batch's month.
pub async fn add_org_payments(
    tx: &mut crate::platform::db::Tx<'_>,
    scope: &Scope,
    who: &Who,
    batch_id: &str,
    lines: &[OrgPayment],
) -> ApiResult<String> {
    let b = sqlx::query("SELECT catalog_region, month, state FROM payment_batch WHERE id = $1")
        .bind(batch_id)
        .fetch_optional(&mut **tx)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("发放批次不存在"))?;
    let state: String = b.get(2);
    if state != "draft" {
        return Err(ApiError::conflict(format!(
            "该发放批次已{}，不能再加入；请选择草稿状态的批次",
            state_zh(&state)
        )));
    }
    let total: i64 = lines.iter().map(|l| l.amount_fen).sum();
    // Taking the row first: a review committed meanwhile either waits or makes this fail.
    let held = sqlx::query(
        "UPDATE payment_batch SET org_lines = org_lines + $2, org_total_fen = org_total_fen + $3 \
         WHERE id = $1 AND state = 'draft'",
    )
    .bind(batch_id)
    .bind(lines.len() as i64)
    .bind(total)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if held != 1 {
        return Err(ApiError::conflict("该批次刚被他人处理，请刷新后查看"));
    }
    for l in lines {
        let res = sqlx::query(
            "INSERT INTO payment_org_line (batch_id, source, source_id, org_id, payee, bank_name, bank_account_name, \
             bank_account, amount_fen, town_code, purpose, added_by, added_by_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(batch_id)
        .bind(l.source)
        .bind(&l.source_id)
        .bind(&l.org_id)
        .bind(&l.payee)
        .bind(&l.bank_name)
        .bind(&l.bank_account_name)
        .bind(&l.bank_account)
        .bind(l.amount_fen)
        .bind(&l.town_code)
        .bind(&l.purpose)
        .bind(&who.actor_name)
        .bind(&who.actor_id)
        .execute(&mut **tx)
        .await;
        // Two officers putting one claim into two batches at once: the second finds it taken.
        if let Err(sqlx::Error::Database(d)) = &res
            && d.is_unique_violation()
        {
            return Err(ApiError::conflict(format!(
                "“{}”的这笔款项刚被他人列入发放批次，请刷新后重试",
                l.payee
            )));
        }
        res?;
    }
    Ok(b.get(1))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgPaymentRow {
    pub source: String,
    pub source_id: String,
    pub org_id: String,
    pub payee: String,
    pub bank_name: String,
    pub bank_account_name: String,
    pub bank_account: String,
    pub amount: f64,
    pub town: String,
    pub purpose: String,
}

pub fn state_zh(s: &str) -> &'static str {
    match s {
        "reviewed" => "已复核",
        "paid" => "已发放",
        _ => "草稿",
    }
}

/// A person's name for a login: the account's display name when there is one.
async fn person(db: &Db, login: Option<String>) -> ApiResult<Option<String>> {
    let Some(login) = login else { return Ok(None) };
    let n: Option<String> = sqlx::query("SELECT display_name FROM app_user WHERE username = $1")
        .bind(&login)
        .fetch_optional(&db.pool)
        .await?
        .and_then(|r| r.get::<Option<String>, _>(0))
        .filter(|n| !n.trim().is_empty());
    Ok(Some(n.unwrap_or(login)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchView {
    pub id: String,
    pub catalog_region: String,
    pub month: String,
    /// draft / reviewed / paid
    pub state: String,
    pub state_zh: String,
    /// The maker's name (the account's display name).
    pub created_by: String,
    /// The maker's account (the console lets another account review).
    pub created_by_id: Option<String>,
    pub created_at: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub paid_by: Option<String>,
    pub paid_at: Option<String>,
    pub paid_note: Option<String>,
    pub lines: i64,
    pub total: f64,
    pub by_town: Vec<TownTotal>,
    pub by_item: Vec<ItemTotal>,
    pub by_level: LevelTotals,
    /// Lines for people whose death date lies before the month began (to be recovered).
    pub paid_after_death: i64,
    /// Organisations paid in this batch (homes' bed subsidies), and their total.
    pub org_payments: Vec<OrgPaymentRow>,
    pub org_total: f64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchReq {
    pub region_code: String,
    /// YYYY-MM
    pub month: String,
}

/// Make the batch of a month: one line per granted cash entitlement of a living resident (in
/// place since the month's last day at the latest), amounts split by the item's funding shares
/// (the town takes the rounding remainder). One batch per catalogue and month. Audited.
pub async fn create(
    db: &Db,
    scope: &Scope,
    who: &Who,
    regions: &crate::region::RegionIndex,
    r: BatchReq,
) -> ApiResult<BatchView> {
    let rc = yiyang_kernel::RegionCode::parse(&r.region_code)
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    if !scope.covers(&rc) {
        return Err(ApiError::forbidden("该区划不在您的管辖范围内"));
    }
    let (first, last) = month_bounds(&r.month)?;
    let month = first[..7].to_string();
    let v = store::version_by_state(db, rc.as_str(), "published")
        .await?
        .ok_or_else(|| ApiError::conflict("该区划还没有发布的服务目录"))?;
    let cash: Vec<&ItemDef> = v
        .items
        .iter()
        .filter(|i| i.benefit_kind == "cash_monthly")
        .collect();
    let id = uuid::Uuid::now_v7().to_string();
    let started = std::time::Instant::now();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO payment_batch (id, catalog_region, month, created_by, created_at, lines, total_fen, state, created_by_id) \
         VALUES ($1, $2, $3, $4, $5, 0, 0, 'draft', $6)",
    )
    .bind(&id)
    .bind(rc.as_str())
    .bind(&month)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .bind(&who.actor_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => ApiError::conflict(format!("{month} 的发放批次已经生成")),
        _ => e.into(),
    })?;
    if !cash.is_empty() {
        // One pass over the catalogue's entitlements for every cash item (a statement per item
        // read all of them once per item). Each item's shares come in by CASE: whole percents,
        // checked when the item was saved, so safe to write into the statement; the codes are
        // bound ($6…). Integer division floors; the town's share takes the remainder.
        let share = |pick: fn(&ItemDef) -> u8| {
            let arms: String = cash
                .iter()
                .enumerate()
                .map(|(i, item)| format!(" WHEN ${} THEN {}", i + 6, pick(item)))
                .collect();
            format!("n.amount_fen * (CASE n.item_code{arms} ELSE 0 END) / 100")
        };
        let (p, c, k) = (
            share(|i| i.funding.province),
            share(|i| i.funding.city),
            share(|i| i.funding.county),
        );
        let codes = (0..cash.len())
            .map(|i| format!("${}", i + 6))
            .collect::<Vec<_>>()
            .join(", ");
        // Grants still packed as their run made them (`pack.rs`) go through a temporary table of
        // them, so that one statement makes the lines of both.
        let codes_set: std::collections::HashSet<String> =
            cash.iter().map(|i| i.code.clone()).collect();
        // On PostgreSQL no grant may leave its pack while the batch reads packs and rows in
        // separate statements (it could be read in neither or, ended meanwhile, still paid):
        // what takes grants out of packs waits for this lock (`pack::PG_LOCK`). SQLite's write
        // lock, held since the batch's first insert, keeps everyone out already.
        if db.backend == crate::platform::db::Backend::Postgres {
            sqlx::query(super::pack::PG_LOCK).execute(&mut *tx).await?;
        }
        let mut packed: Vec<super::pack::Held> =
            super::pack::of_catalog(&mut tx, Some(rc.as_str()), move |e| {
                codes_set.contains(&e.item_code)
            })
            .await?
            .into_iter()
            .filter(|h| h.pack.since.as_str() <= last.as_str())
            .collect();
        // In id order (run, person, item), so the lines' keys are written in order: packs come
        // by bucket, and lines in that order went into the keys at random (4–5 s instead of 0.8 s
        // for a county's 230k on SQLite).
        packed.sort_unstable_by(|a, b| {
            (&a.pack.run_id, &a.entry.elder_id, &a.entry.item_code).cmp(&(
                &b.pack.run_id,
                &b.entry.elder_id,
                &b.entry.item_code,
            ))
        });
        let mut sources = vec!["entitlement"];
        let t_read = started.elapsed();
        if !packed.is_empty() {
            sqlx::query(
                "CREATE TEMP TABLE packed_grant (id TEXT NOT NULL, elder_id TEXT NOT NULL, catalog_region TEXT NOT NULL, \
                 item_code TEXT NOT NULL, amount_fen BIGINT NOT NULL, since TEXT NOT NULL)",
            )
            .execute(&mut *tx)
            .await?;
            for part in packed.chunks(1000) {
                let sql = format!(
                    "INSERT INTO packed_grant (id, elder_id, catalog_region, item_code, amount_fen, since) VALUES {}",
                    crate::registry::store::placeholders(db.backend, part.len(), 6)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for h in part {
                    q = q
                        .bind(h.id())
                        .bind(&h.entry.elder_id)
                        .bind(&h.pack.catalog_region)
                        .bind(&h.entry.item_code)
                        .bind(h.entry.amount_fen)
                        .bind(&h.pack.since);
                }
                q.execute(&mut *tx).await?;
            }
            sources.push(
                "(SELECT id, elder_id, catalog_region, item_code, amount_fen, since, 'granted' AS state FROM packed_grant)",
            );
        }
        let t_staged = started.elapsed();
        // CROSS JOIN: SQLite then reads the entitlements first and finds each person by key
        // (with JOIN it walked the county's people and probed the unindexed temporary table);
        // PostgreSQL plans it as the join it is.
        for source in &sources {
            let sql = format!(
                "INSERT INTO payment_line (batch_id, entitlement_id, elder_id, item_code, amount_fen, town_code, \
                 province_fen, city_fen, county_fen, town_fen) \
                 SELECT CAST($1 AS TEXT), n.id, n.elder_id, n.item_code, n.amount_fen, SUBSTR(e.residence_region, 1, 9) || '000', \
                 {p}, {c}, {k}, n.amount_fen - {p} - {c} - {k} \
                 FROM {source} n CROSS JOIN elder e \
                 WHERE e.id = n.elder_id AND n.catalog_region = $2 AND n.item_code IN ({codes}) AND n.state = 'granted' AND e.status = 'active' \
                 AND n.since <= $3 AND e.residence_region BETWEEN $4 AND $5"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&id)
                .bind(rc.as_str())
                .bind(&last)
                .bind(rc.subtree_range().0)
                .bind(rc.subtree_range().1);
            for item in &cash {
                q = q.bind(&item.code);
            }
            q.execute(&mut *tx).await?;
        }
        if !packed.is_empty() {
            sqlx::query("DROP TABLE packed_grant")
                .execute(&mut *tx)
                .await?;
        }
        tracing::info!(
            packed = packed.len(),
            packs_read_at_ms = t_read.as_millis() as u64,
            staged_at_ms = t_staged.as_millis() as u64,
            lines_at_ms = started.elapsed().as_millis() as u64,
            "payment batch"
        );
    }
    let r2 = sqlx::query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM payment_line WHERE batch_id = $1",
    )
    .bind(&id)
    .fetch_one(&mut *tx)
    .await?;
    let (lines, total): (i64, i64) = (r2.get(0), r2.get(1));
    sqlx::query("UPDATE payment_batch SET lines = $2, total_fen = $3 WHERE id = $1")
        .bind(&id)
        .bind(lines)
        .bind(total)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "payment.batch",
            entity: "payment_batch",
            entity_id: Some(&id),
            region_code: Some(rc.as_str()),
            detail: serde_json::json!({"month": month, "lines": lines, "total_fen": total})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        committed_at_ms = started.elapsed().as_millis() as u64,
        "payment batch written"
    );
    view(db, scope, regions, &id).await
}

async fn batch_region(db: &Db, scope: &Scope, id: &str) -> ApiResult<(String, String)> {
    let r = sqlx::query("SELECT catalog_region, month FROM payment_batch WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("发放批次不存在"))?;
    Ok((r.get(0), r.get(1)))
}

const AFTER_DEATH: &str = "e.death_date IS NOT NULL AND e.death_date < b.month || '-01'";

pub async fn view(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    id: &str,
) -> ApiResult<BatchView> {
    let b = sqlx::query("SELECT id, catalog_region, month, created_by, created_at, lines, total_fen, state, reviewed_by, reviewed_at, paid_by, paid_at, paid_note, created_by_id FROM payment_batch WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(1)))
        .ok_or_else(|| ApiError::not_found("发放批次不存在"))?;
    let towns = sqlx::query(
        "SELECT town_code, COUNT(DISTINCT elder_id), CAST(SUM(amount_fen) AS BIGINT) FROM payment_line WHERE batch_id = $1 GROUP BY town_code ORDER BY town_code",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    let items = sqlx::query("SELECT item_code, COUNT(*), CAST(SUM(amount_fen) AS BIGINT) FROM payment_line WHERE batch_id = $1 GROUP BY item_code ORDER BY item_code")
        .bind(id)
        .fetch_all(&db.pool)
        .await?;
    let lv = sqlx::query(
        "SELECT CAST(COALESCE(SUM(province_fen), 0) AS BIGINT), CAST(COALESCE(SUM(city_fen), 0) AS BIGINT), CAST(COALESCE(SUM(county_fen), 0) AS BIGINT), CAST(COALESCE(SUM(town_fen), 0) AS BIGINT) \
         FROM payment_line WHERE batch_id = $1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await?;
    let flagged: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM payment_line l JOIN payment_batch b ON b.id = l.batch_id JOIN elder e ON e.id = l.elder_id \
         WHERE l.batch_id = $1 AND {AFTER_DEATH}"
    )))
    .bind(id)
    .fetch_one(&db.pool)
    .await?
    .get(0);
    let yuan = |f: i64| f as f64 / 100.0;
    let state: String = b.get(7);
    let orgs = sqlx::query(
        "SELECT source, source_id, org_id, payee, bank_name, bank_account_name, bank_account, amount_fen, town_code, purpose \
         FROM payment_org_line WHERE batch_id = $1 ORDER BY town_code, payee",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    let org_payments: Vec<OrgPaymentRow> = orgs
        .iter()
        .map(|r| {
            let town: String = r.get(8);
            OrgPaymentRow {
                source: r.get(0),
                source_id: r.get(1),
                org_id: r.get(2),
                payee: r.get(3),
                bank_name: r.get(4),
                bank_account_name: r.get(5),
                bank_account: r.get(6),
                amount: yuan(r.get(7)),
                town: regions.name(&town).unwrap_or(&town).to_string(),
                purpose: r.get(9),
            }
        })
        .collect();
    let org_total = yuan(orgs.iter().map(|r| r.get::<i64, _>(7)).sum());
    Ok(BatchView {
        id: b.get(0),
        catalog_region: b.get(1),
        month: b.get(2),
        state_zh: state_zh(&state).into(),
        state,
        created_by: person(db, Some(b.get(3))).await?.unwrap_or_default(),
        created_by_id: b.get(13),
        created_at: b.get(4),
        reviewed_by: person(db, b.get(8)).await?,
        reviewed_at: b.get(9),
        paid_by: person(db, b.get(10)).await?,
        paid_at: b.get(11),
        paid_note: b.get(12),
        lines: b.get(5),
        total: yuan(b.get(6)),
        by_town: towns
            .iter()
            .map(|r| {
                let code: String = r.get(0);
                TownTotal {
                    name: regions.name(&code).unwrap_or(&code).to_string(),
                    code,
                    people: r.get(1),
                    amount: yuan(r.get(2)),
                }
            })
            .collect(),
        by_item: items
            .iter()
            .map(|r| ItemTotal {
                code: r.get(0),
                people: r.get(1),
                amount: yuan(r.get(2)),
            })
            .collect(),
        by_level: LevelTotals {
            province: yuan(lv.get(0)),
            city: yuan(lv.get(1)),
            county: yuan(lv.get(2)),
            town: yuan(lv.get(3)),
        },
        paid_after_death: flagged,
        org_payments,
        org_total,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchRow {
    pub id: String,
    pub month: String,
    pub lines: i64,
    pub total: f64,
    pub state: String,
    pub state_zh: String,
    pub created_by: String,
    pub created_at: String,
    /// Organisations paid in it (homes' bed subsidies), and their total.
    pub org_lines: i64,
    pub org_total: f64,
}

pub async fn list(db: &Db, scope: &Scope, region_code: &str) -> ApiResult<Vec<BatchRow>> {
    let (lo, hi) = scope.narrow(Some(region_code))?;
    let rows = sqlx::query(
        "SELECT id, month, lines, total_fen, created_by, created_at, state, org_lines, org_total_fen FROM payment_batch WHERE catalog_region BETWEEN $1 AND $2 ORDER BY month DESC",
    )
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&db.pool)
    .await?;
    let mut out = vec![];
    for r in &rows {
        let state: String = r.get(6);
        out.push(BatchRow {
            id: r.get(0),
            month: r.get(1),
            lines: r.get(2),
            total: r.get::<i64, _>(3) as f64 / 100.0,
            state_zh: state_zh(&state).into(),
            state,
            created_by: person(db, Some(r.get(4))).await?.unwrap_or_default(),
            created_at: r.get(5),
            org_lines: r.get(7),
            org_total: r.get::<i64, _>(8) as f64 / 100.0,
        });
    }
    Ok(out)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AfterDeath {
    pub batch_id: String,
    pub month: String,
    pub elder_id: String,
    pub name: String,
    pub citizen_id_masked: String,
    pub item_code: String,
    pub amount: f64,
    pub death_date: String,
}

/// Every payment, in any batch of the region, for a month that began after the person's date of
/// death: money to recover.
pub async fn paid_after_death(
    db: &Db,
    scope: &Scope,
    region_code: &str,
) -> ApiResult<Vec<AfterDeath>> {
    let (lo, hi) = scope.narrow(Some(region_code))?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT b.id, b.month, e.id, e.name, e.citizen_id_masked, l.item_code, l.amount_fen, e.death_date \
         FROM payment_line l JOIN payment_batch b ON b.id = l.batch_id JOIN elder e ON e.id = l.elder_id \
         WHERE b.catalog_region BETWEEN $1 AND $2 AND e.residence_region BETWEEN $1 AND $2 AND {AFTER_DEATH} \
         ORDER BY b.month, e.residence_region, e.id LIMIT 10000"
    )))
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| AfterDeath {
            batch_id: r.get(0),
            month: r.get(1),
            elder_id: r.get(2),
            name: r.get(3),
            citizen_id_masked: r.get(4),
            item_code: r.get(5),
            amount: r.get::<i64, _>(6) as f64 / 100.0,
            death_date: r.get(7),
        })
        .collect())
}

/// The bank file of a batch (XLSX): one row per payment. The citizen ID is masked unless the
/// caller may reveal and `reveal` is set (the handler checks the reason); the export is audited.
pub async fn bank_file(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    scope: &Scope,
    who: &Who,
    id: &str,
    reveal: Option<&str>,
) -> ApiResult<(Vec<u8>, String)> {
    let (region, month) = batch_region(db, scope, id).await?;
    if reveal.is_some() {
        let state: String = sqlx::query("SELECT state FROM payment_batch WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await?
            .get(0);
        if state == "draft" {
            return Err(ApiError::conflict(
                "该发放批次尚未复核：请由另一位工作人员复核后，再导出含完整身份证号的银行代发文件（核对名单可先导出，身份证号为脱敏）",
            ));
        }
    }
    let rows = sqlx::query(
        "SELECT e.citizen_id_masked, e.citizen_id_enc, e.name, l.amount_fen, l.item_code, l.town_code FROM payment_line l \
         JOIN elder e ON e.id = l.elder_id WHERE l.batch_id = $1 ORDER BY l.town_code, e.id, l.item_code",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    let names: std::collections::HashMap<String, String> =
        store::version_by_state(db, &region, "published")
            .await?
            .map(|v| v.items)
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.code, d.name))
            .collect();
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(format!("{month}发放"))
        .map_err(anyhow::Error::from)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let money = rust_xlsxwriter::Format::new().set_num_format("0.00");
    for (i, h) in [
        "序号",
        "身份证号",
        "姓名",
        "金额（元）",
        "项目",
        "镇（街道）代码",
        "发放月份",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string_with_format(0, i as u16, *h, &bold)
            .map_err(anyhow::Error::from)?;
    }
    let mut total = 0i64;
    for (n, r) in rows.iter().enumerate() {
        let row = (n + 1) as u32;
        let cid = match reveal {
            Some(_) => keys.decrypt(&r.get::<Vec<u8>, _>(1))?,
            None => r.get(0),
        };
        let amount: i64 = r.get(3);
        total += amount;
        let code: String = r.get(4);
        let xl = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
        ws.write_number(row, 0, row as f64).map_err(xl)?;
        ws.write_string(row, 1, cid).map_err(xl)?;
        ws.write_string(row, 2, r.get::<String, _>(2)).map_err(xl)?;
        ws.write_number_with_format(row, 3, amount as f64 / 100.0, &money)
            .map_err(xl)?;
        ws.write_string(row, 4, names.get(&code).cloned().unwrap_or(code))
            .map_err(xl)?;
        ws.write_string(row, 5, r.get::<String, _>(5)).map_err(xl)?;
        ws.write_string(row, 6, &month).map_err(xl)?;
    }
    // Organisations on a sheet of their own: a bank pays a unit's account by its number.
    let orgs = sqlx::query(
        "SELECT payee, bank_name, bank_account_name, bank_account, amount_fen, purpose, town_code \
         FROM payment_org_line WHERE batch_id = $1 ORDER BY town_code, payee",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    if !orgs.is_empty() {
        let xl = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
        let ws = wb.add_worksheet();
        ws.set_name("机构代发").map_err(xl)?;
        for (i, h) in [
            "序号",
            "收款单位",
            "开户银行",
            "户名",
            "账号",
            "金额（元）",
            "用途",
            "镇（街道）代码",
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(0, i as u16, *h, &bold)
                .map_err(xl)?;
        }
        for (n, r) in orgs.iter().enumerate() {
            let row = (n + 1) as u32;
            let amount: i64 = r.get(4);
            total += amount;
            ws.write_number(row, 0, row as f64).map_err(xl)?;
            ws.write_string(row, 1, r.get::<String, _>(0)).map_err(xl)?;
            ws.write_string(row, 2, r.get::<String, _>(1)).map_err(xl)?;
            ws.write_string(row, 3, r.get::<String, _>(2)).map_err(xl)?;
            ws.write_string(row, 4, r.get::<String, _>(3)).map_err(xl)?;
            ws.write_number_with_format(row, 5, amount as f64 / 100.0, &money)
                .map_err(xl)?;
            ws.write_string(row, 6, r.get::<String, _>(5)).map_err(xl)?;
            ws.write_string(row, 7, r.get::<String, _>(6)).map_err(xl)?;
        }
    }
    let bytes = wb.save_to_buffer().map_err(anyhow::Error::from)?;
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "payment.export",
            entity: "payment_batch",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"month": month, "rows": rows.len(), "org_rows": orgs.len(), "total_fen": total, "revealed": reveal.is_some(), "reason": reveal})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((bytes, month))
}

/// What moves a batch on: `review` (draft → reviewed, by someone other than its maker), `paid`
/// (reviewed → paid, with an optional note such as the bank's reference) or `discard` (a draft is
/// removed so the month can be made again). Audited.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchStep {
    /// review / paid / discard
    pub action: String,
    #[serde(default)]
    pub note: Option<String>,
    /// For review: the batch's total as the reviewer saw it, people and organisations (元); a
    /// batch that changed since is not approved unseen.
    #[serde(default)]
    pub seen_total: Option<f64>,
}

pub async fn step(
    db: &Db,
    scope: &Scope,
    who: &Who,
    regions: &crate::region::RegionIndex,
    id: &str,
    s: BatchStep,
) -> ApiResult<Option<BatchView>> {
    let (region, month) = batch_region(db, scope, id).await?;
    let now = crate::platform::now_rfc3339();
    let note = s
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let mut tx = db.begin().await?;
    let cur =
        sqlx::query("SELECT state, created_by_id, created_by FROM payment_batch WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let (state, maker_id, maker): (String, Option<String>, String) =
        (cur.get(0), cur.get(1), cur.get(2));
    let (action, detail) = match s.action.as_str() {
        "review" => {
            if state != "draft" {
                return Err(ApiError::conflict(format!(
                    "该批次已{}，无需再复核",
                    state_zh(&state)
                )));
            }
            let same = match (&maker_id, &who.actor_id) {
                (Some(m), Some(w)) => m == w,
                _ => maker == who.actor_name,
            };
            if same {
                return Err(ApiError::conflict(
                    "生成批次的人不能复核自己的批次，请由另一位工作人员复核",
                ));
            }
            let added = sqlx::query(
                "SELECT 1 FROM payment_org_line WHERE batch_id = $1 AND (added_by_id = $2 OR (added_by_id IS NULL AND added_by = $3))",
            )
            .bind(id)
            .bind(&who.actor_id)
            .bind(&who.actor_name)
            .fetch_optional(&mut *tx)
            .await?;
            if added.is_some() {
                return Err(ApiError::conflict(
                    "把机构款项列入本批次的人不能复核本批次，请由另一位工作人员复核",
                ));
            }
            if let Some(seen) = s.seen_total {
                let now: i64 = sqlx::query_scalar(
                    "SELECT total_fen + org_total_fen FROM payment_batch WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if (seen * 100.0).round() as i64 != now {
                    return Err(ApiError::conflict(
                        "批次内容已经变化（可能刚有机构款项列入），请刷新后再复核",
                    ));
                }
            }
            let n = sqlx::query(
                "UPDATE payment_batch SET state = 'reviewed', reviewed_by = $2, reviewed_by_id = $3, reviewed_at = $4 WHERE id = $1 AND state = 'draft'",
            )
            .bind(id)
            .bind(&who.actor_name)
            .bind(&who.actor_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(ApiError::conflict("该批次刚被他人处理，请刷新后查看"));
            }
            ("payment.review", serde_json::json!({"month": month}))
        }
        "paid" => {
            if state != "reviewed" {
                return Err(ApiError::conflict(match state.as_str() {
                    "draft" => "该批次尚未复核，复核后才能标记为已发放".to_string(),
                    _ => "该批次已标记为已发放".to_string(),
                }));
            }
            if note.as_ref().is_some_and(|n| n.chars().count() > 200) {
                return Err(ApiError::invalid("note", "备注最多 200 个字"));
            }
            let n = sqlx::query(
                "UPDATE payment_batch SET state = 'paid', paid_by = $2, paid_at = $3, paid_note = $4 WHERE id = $1 AND state = 'reviewed'",
            )
            .bind(id)
            .bind(&who.actor_name)
            .bind(&now)
            .bind(&note)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(ApiError::conflict("该批次刚被他人处理，请刷新后查看"));
            }
            (
                "payment.paid",
                serde_json::json!({"month": month, "note": note}),
            )
        }
        "discard" => {
            if state != "draft" {
                return Err(ApiError::conflict(format!(
                    "该批次已{}，不能作废；只有草稿可以作废重做",
                    state_zh(&state)
                )));
            }
            // Lock the draft first: a review committed meanwhile must not lose the batch's lines.
            let held = sqlx::query(
                "UPDATE payment_batch SET state = 'draft' WHERE id = $1 AND state = 'draft'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held != 1 {
                return Err(ApiError::conflict("该批次刚被他人处理，请刷新后查看"));
            }
            sqlx::query("DELETE FROM payment_line WHERE batch_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // The claims it carried go back to waiting for a batch.
            sqlx::query("DELETE FROM payment_org_line WHERE batch_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM payment_batch WHERE id = $1 AND state = 'draft'")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            ("payment.discard", serde_json::json!({"month": month}))
        }
        _ => {
            return Err(ApiError::invalid(
                "action",
                "操作应为 review（复核）、paid（标记已发放）或 discard（作废草稿）",
            ));
        }
    };
    audit::append(
        &mut tx,
        who,
        Entry {
            action,
            entity: "payment_batch",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: detail.to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    if action == "payment.discard" {
        return Ok(None);
    }
    Ok(Some(view(db, scope, regions, id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LinesQuery {
    pub page: Option<i64>,
    pub page_size: Option<i64>,
    /// A town (9-digit code followed by 000) to look at alone. (No name filter: names stay out
    /// of URLs.)
    pub town: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchLine {
    pub elder_id: String,
    pub name: String,
    pub citizen_id_masked: String,
    /// 周岁 (no birth date beside a masked ID).
    pub age: i64,
    pub town: String,
    pub village: String,
    pub item: String,
    pub amount: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchLines {
    pub items: Vec<BatchLine>,
    pub total: i64,
}

/// The people a batch pays, a page at a time, by town and person.
pub async fn lines(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    id: &str,
    q: LinesQuery,
) -> ApiResult<BatchLines> {
    let (region, _) = batch_region(db, scope, id).await?;
    let (page, size) = crate::platform::web::paging(q.page, q.page_size, 50, 200)?;
    let town = q.town.unwrap_or_default();
    let (lo, hi) = scope.narrow(None)?;
    let filter = "l.batch_id = $1 AND ($2 = '' OR l.town_code = $2) AND e.residence_region BETWEEN $3 AND $4";
    let total: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM payment_line l JOIN elder e ON e.id = l.elder_id WHERE {filter}"
    )))
    .bind(id)
    .bind(&town)
    .bind(&lo)
    .bind(&hi)
    .fetch_one(&db.pool)
    .await?
    .get(0);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT e.id, e.name, e.citizen_id_masked, e.birth_date, e.residence_region, l.item_code, l.amount_fen \
         FROM payment_line l JOIN elder e ON e.id = l.elder_id WHERE {filter} \
         ORDER BY l.town_code, e.residence_region, e.id, l.item_code LIMIT $5 OFFSET $6"
    )))
    .bind(id)
    .bind(&town)
    .bind(&lo)
    .bind(&hi)
    .bind(size)
    .bind((page - 1) * size)
    .fetch_all(&db.pool)
    .await?;
    let names: std::collections::HashMap<String, String> =
        store::version_by_state(db, &region, "published")
            .await?
            .map(|v| v.items)
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.code, d.name))
            .collect();
    let today = crate::platform::today();
    let items = rows
        .iter()
        .map(|r| {
            let village: String = r.get(4);
            let town = format!("{}000", &village[..9.min(village.len())]);
            let birth: String = r.get(3);
            let age = chrono::NaiveDate::parse_from_str(&birth, "%Y-%m-%d")
                .ok()
                .and_then(|b| today.years_since(b))
                .unwrap_or_default() as i64;
            let code: String = r.get(5);
            BatchLine {
                elder_id: r.get(0),
                name: r.get(1),
                citizen_id_masked: r.get(2),
                age,
                town: regions.name(&town).unwrap_or(&town).to_string(),
                village: regions.name(&village).unwrap_or(&village).to_string(),
                item: names.get(&code).cloned().unwrap_or(code),
                amount: r.get::<i64, _>(6) as f64 / 100.0,
            }
        })
        .collect();
    Ok(BatchLines { items, total })
}

//! Monthly visit quotas (服务次数): a catalogue item marked for home visits grants an elder so many
//! visits a month (its tier's quota). The ledger keeps, per elder, item and month, what was granted
//! (the month's own plus what was carried in, where the item lets unused visits carry over) and how
//! many were used; a confirmed visit takes one and is paid from that item, and once the month's
//! visits are used up further visits are self-paid (自费). The ledger never goes below zero or past
//! what was granted (a CHECK holds it). An ended entitlement (death, moving away — the registry's
//! events end it, as for every entitlement) grants nothing from its end date, and carries nothing.

use crate::catalog::version_of;
use crate::identity::Scope;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use serde::Serialize;
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use yiyang_kernel::service_quota;

/// Visits carried in from the month before (part of `granted`).
pub const MIGRATION: &[crate::platform::migrations::Stmt] =
    &[crate::platform::migrations::Stmt::Both(
        "ALTER TABLE service_quota ADD COLUMN carried BIGINT NOT NULL DEFAULT 0",
    )];

/// A home-visit item of a catalogue version.
#[derive(Debug, Clone)]
pub struct HomeItem {
    pub name: String,
    pub carry_over: bool,
}

/// The home-visit items of a published catalogue version, by code (versions do not change
/// once published, so they are read once per process).
pub async fn home_items(db: &Db, version_id: &str) -> ApiResult<Arc<HashMap<String, HomeItem>>> {
    type Items = Arc<HashMap<String, HomeItem>>;
    static CACHE: Mutex<Option<HashMap<String, Items>>> = Mutex::new(None);
    if let Some(s) = CACHE
        .lock()
        .expect("cache")
        .get_or_insert_with(HashMap::new)
        .get(version_id)
    {
        return Ok(s.clone());
    }
    let items = crate::catalog::store::items_of(db, version_id).await?;
    let set: Items = Arc::new(
        items
            .into_iter()
            .filter(|i| i.home_service)
            .map(|i| {
                (
                    i.code,
                    HomeItem {
                        name: i.name,
                        carry_over: i.carry_over,
                    },
                )
            })
            .collect(),
    );
    CACHE
        .lock()
        .expect("cache")
        .get_or_insert_with(HashMap::new)
        .insert(version_id.to_string(), set.clone());
    Ok(set)
}

/// A grant in force.
#[derive(Debug, Clone)]
pub struct Grant {
    pub entitlement_id: String,
    pub item_code: String,
    /// Visits a month
    pub quota: i64,
    pub carry_over: bool,
}

/// An elder's home-visit entitlements in force on a day.
pub async fn grants_on(db: &Db, elder_id: &str, day: &str) -> ApiResult<Vec<Grant>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.id, n.item_code, n.quota, {} FROM entitlement n WHERE n.elder_id = $1 AND n.state = 'granted' \
         AND n.quota > 0 AND n.since <= $2 AND (n.ended_on IS NULL OR n.ended_on > $2) ORDER BY n.item_code",
        version_of("n")
    )))
    .bind(elder_id)
    .bind(day)
    .fetch_all(&db.pool)
    .await?;
    let mut out = vec![];
    for r in rows {
        // A grant whose version cannot be found pays nothing rather than failing the read.
        let Some(version) = r.get::<Option<String>, _>(3) else {
            continue;
        };
        if let Some(item) = home_items(db, &version).await?.get(&r.get::<String, _>(1)) {
            out.push(Grant {
                entitlement_id: r.get(0),
                item_code: r.get(1),
                quota: r.get(2),
                carry_over: item.carry_over,
            });
        }
    }
    Ok(out)
}

/// The month before `month` (YYYY-MM), its first and its last day.
fn month_before(month: &str) -> Option<(String, String, String)> {
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let last = first.pred_opt()?;
    Some((
        last.format("%Y-%m").to_string(),
        last.format("%Y-%m-01").to_string(),
        last.to_string(),
    ))
}

/// What a grant carries into `month` from the month before: that month's own visits left, where
/// the item allows it. The month before's ledger line says so, whichever grant opened it; with no
/// line (no visit then), the whole quota, but only when this grant was in force all that month
/// (a grant that began during it, or a new tier, carries nothing).
async fn carried_into(
    c: &mut sqlx::AnyConnection,
    g: &Grant,
    elder_id: &str,
    month: &str,
) -> ApiResult<i64> {
    let Some((prev, prev_first, prev_last)) = month_before(month).filter(|_| g.carry_over) else {
        return Ok(0);
    };
    let line = sqlx::query(
        "SELECT granted, carried, used FROM service_quota WHERE elder_id = $1 AND item_code = $2 AND month = $3",
    )
    .bind(elder_id)
    .bind(&g.item_code)
    .bind(&prev)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(r) = line {
        return Ok(service_quota::carry_out(r.get(0), r.get(1), r.get(2)));
    }
    let in_force: Option<i64> = sqlx::query_scalar(
        "SELECT quota FROM entitlement WHERE id = $1 AND state = 'granted' AND since <= $2 \
         AND (ended_on IS NULL OR ended_on > $3)",
    )
    .bind(&g.entitlement_id)
    .bind(&prev_first)
    .bind(&prev_last)
    .fetch_optional(&mut *c)
    .await?;
    Ok(in_force.unwrap_or(0))
}

/// A visit confirmed late for a month whose next month is already open: what that month carried
/// in comes down by what this visit took from its own (never below what it has used).
async fn settle_next(tx: &mut Tx<'_>, g: &Grant, elder_id: &str, month: &str) -> ApiResult<()> {
    let Some(next) = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
        .map(|d| d.format("%Y-%m").to_string())
        .filter(|_| g.carry_over)
    else {
        return Ok(());
    };
    let r = sqlx::query(
        "SELECT granted, carried, used FROM service_quota WHERE elder_id = $1 AND item_code = $2 AND month = $3",
    )
    .bind(elder_id)
    .bind(&g.item_code)
    .bind(month)
    .fetch_one(&mut **tx)
    .await?;
    let carry = service_quota::carry_out(r.get(0), r.get(1), r.get(2));
    sqlx::query(
        "UPDATE service_quota SET granted = granted - (carried - $4), carried = $4 \
         WHERE elder_id = $1 AND item_code = $2 AND month = $3 AND carried > $4 AND used <= granted - (carried - $4)",
    )
    .bind(elder_id)
    .bind(&g.item_code)
    .bind(&next)
    .bind(carry)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Take one visit of the month from the first grant with visits left, in the confirming
/// transaction: the grant that pays, or None (self-paid).
pub async fn consume(
    tx: &mut Tx<'_>,
    grants: &[Grant],
    elder_id: &str,
    month: &str,
) -> ApiResult<Option<String>> {
    for g in grants {
        let (ent, item) = (&g.entitlement_id, &g.item_code);
        let opened: Option<i64> = sqlx::query_scalar(
            "SELECT used FROM service_quota WHERE elder_id = $1 AND item_code = $2 AND month = $3",
        )
        .bind(elder_id)
        .bind(item)
        .bind(month)
        .fetch_optional(&mut **tx)
        .await?;
        if opened.is_none() {
            let carried = carried_into(tx, g, elder_id, month).await?;
            sqlx::query(
                "INSERT INTO service_quota (elder_id, item_code, month, granted, used, entitlement_id, carried) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (elder_id, item_code, month) DO NOTHING",
            )
            .bind(elder_id)
            .bind(item)
            .bind(month)
            .bind(g.quota + carried)
            .bind(ent)
            .bind(carried)
            .execute(&mut **tx)
            .await?;
        }
        let n = sqlx::query(
            "UPDATE service_quota SET used = used + 1 WHERE elder_id = $1 AND item_code = $2 AND month = $3 \
             AND used < granted",
        )
        .bind(elder_id)
        .bind(item)
        .bind(month)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 1 {
            settle_next(tx, g, elder_id, month).await?;
            return Ok(Some(ent.clone()));
        }
    }
    Ok(None)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuotaLine {
    pub item_code: String,
    pub item_name: String,
    pub month: String,
    /// Visits granted this month, with those carried in from the month before
    pub granted: i64,
    /// Of them, carried in from the month before (used first)
    pub carried: i64,
    pub used: i64,
    pub left: i64,
    /// Unused visits of the month carried into the next month (items that allow it)
    pub carries_on: i64,
    /// Unused visits that lapsed at the month's end (past months only)
    pub expired: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuotaView {
    pub month: String,
    pub lines: Vec<QuotaLine>,
    /// Visits confirmed this month beyond the quota (paid by the family)
    pub self_paid: i64,
}

/// An elder's quota for a month: each home-visit grant in force on the month's last day (or
/// today, this month), with what the ledger says was used.
pub async fn view(db: &Db, scope: &Scope, elder_id: &str, month: &str) -> ApiResult<QuotaView> {
    sqlx::query("SELECT residence_region FROM elder WHERE id = $1")
        .bind(elder_id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.get::<String, _>(0))
        .filter(|rc| scope.contains(rc))
        .ok_or_else(|| ApiError::not_found("未找到该老人（或不在您的管辖范围内）"))?;
    of_elder(db, elder_id, month).await
}

/// [`view`] for an elder the caller has already been let see (the family, after a phone code).
pub async fn of_elder(db: &Db, elder_id: &str, month: &str) -> ApiResult<QuotaView> {
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| ApiError::invalid("month", "月份应为 YYYY-MM"))?;
    let last = first
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(first);
    let today = crate::platform::today();
    let past = last < today;
    let day = last.min(today).max(first).to_string();
    let mut items: HashMap<String, HomeItem> = HashMap::new();
    // item → (granted, carried, used) as the ledger has them
    let mut ledger: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT q.item_code, q.granted, q.carried, q.used, {} FROM service_quota q \
         JOIN entitlement n ON n.id = q.entitlement_id WHERE q.elder_id = $1 AND q.month = $2",
        version_of("n")
    )))
    .bind(elder_id)
    .bind(month)
    .fetch_all(&db.pool)
    .await?
    {
        if let Some(v) = r.get::<Option<String>, _>(4) {
            items.extend(home_items(db, &v).await?.as_ref().clone());
        }
        ledger.insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
    }
    let grants = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT {} FROM entitlement n WHERE n.elder_id = $1 AND n.quota > 0",
        version_of("n")
    )))
    .bind(elder_id)
    .fetch_all(&db.pool)
    .await?;
    for r in grants {
        if let Some(v) = r.get::<Option<String>, _>(0) {
            items.extend(home_items(db, &v).await?.as_ref().clone());
        }
    }
    let mut lines = vec![];
    let mut seen = HashSet::new();
    let in_force = grants_on(db, elder_id, &day).await?;
    let mut conn = db.pool.acquire().await?;
    for g in in_force {
        let line = match ledger.get(&g.item_code) {
            Some(&l) => l,
            // No visit confirmed yet this month: what the month will open with.
            None => {
                let carried = carried_into(&mut conn, &g, elder_id, month).await?;
                (g.quota + carried, carried, 0)
            }
        };
        seen.insert(g.item_code.clone());
        lines.push((g.item_code, line));
    }
    drop(conn);
    // A grant that ended in the month still shows what it gave.
    for (item, l) in &ledger {
        if !seen.contains(item) {
            lines.push((item.clone(), *l));
        }
    }
    let self_paid: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM service_order WHERE elder_id = $1 AND state = 'confirmed' AND funded = 'self_paid' \
         AND planned_start >= $2 AND planned_start < $3",
    )
    .bind(elder_id)
    .bind(first.to_string())
    .bind(last.succ_opt().unwrap_or(last).to_string())
    .fetch_one(&db.pool)
    .await?;
    Ok(QuotaView {
        month: month.to_string(),
        lines: lines
            .into_iter()
            .map(|(item, (granted, carried, used))| {
                let carry = items.get(&item).is_some_and(|i| i.carry_over);
                let carries_on = if carry {
                    service_quota::carry_out(granted, carried, used)
                } else {
                    0
                };
                QuotaLine {
                    item_name: items
                        .get(&item)
                        .map(|i| i.name.clone())
                        .unwrap_or_else(|| item.clone()),
                    item_code: item,
                    month: month.to_string(),
                    granted,
                    carried,
                    used,
                    left: (granted - used).max(0),
                    carries_on,
                    expired: if past {
                        service_quota::expired(granted, carried, used, carry)
                    } else {
                        0
                    },
                }
            })
            .collect(),
        self_paid,
    })
}

//! Monthly visit quotas (服务次数): a catalogue item marked for home visits grants an elder so many
//! visits a month (its tier's quota). The ledger keeps, per elder, item and month, what was granted
//! and how many were used; a confirmed visit takes one and is paid from that item, and once the
//! month's visits are used up further visits are self-paid (自费). The ledger never goes below
//! zero or past what was granted (a CHECK holds it). An ended entitlement (death, moving away — the
//! registry's events end it, as for every entitlement) grants nothing from its end date.

use crate::catalog::version_of;
use crate::identity::Scope;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use serde::Serialize;
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The home-visit items of a published catalogue version, code → name (versions do not change
/// once published, so they are read once per process).
pub async fn home_items(db: &Db, version_id: &str) -> ApiResult<Arc<HashMap<String, String>>> {
    type Items = Arc<HashMap<String, String>>;
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
    let set: Arc<HashMap<String, String>> = Arc::new(
        items
            .into_iter()
            .filter(|i| i.home_service)
            .map(|i| (i.code, i.name))
            .collect(),
    );
    CACHE
        .lock()
        .expect("cache")
        .get_or_insert_with(HashMap::new)
        .insert(version_id.to_string(), set.clone());
    Ok(set)
}

/// A grant in force: its entitlement, catalogue item and visits a month.
pub type Grant = (String, String, i64);

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
        if home_items(db, &version)
            .await?
            .contains_key(&r.get::<String, _>(1))
        {
            out.push((r.get(0), r.get(1), r.get(2)));
        }
    }
    Ok(out)
}

/// Take one visit of the month from the first grant with visits left, in the confirming
/// transaction: the grant that pays, or None (self-paid).
pub async fn consume(
    tx: &mut Tx<'_>,
    grants: &[(String, String, i64)],
    elder_id: &str,
    month: &str,
) -> ApiResult<Option<String>> {
    for (ent, item, quota) in grants {
        sqlx::query(
            "INSERT INTO service_quota (elder_id, item_code, month, granted, used, entitlement_id) \
             VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (elder_id, item_code, month) DO NOTHING",
        )
        .bind(elder_id)
        .bind(item)
        .bind(month)
        .bind(quota)
        .bind(ent)
        .execute(&mut **tx)
        .await?;
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
    /// Visits granted this month
    pub granted: i64,
    pub used: i64,
    pub left: i64,
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
    let day = last.min(crate::platform::today()).max(first).to_string();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut used: HashMap<String, (i64, i64)> = HashMap::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT q.item_code, q.granted, q.used, {} FROM service_quota q \
         JOIN entitlement n ON n.id = q.entitlement_id WHERE q.elder_id = $1 AND q.month = $2",
        version_of("n")
    )))
    .bind(elder_id)
    .bind(month)
    .fetch_all(&db.pool)
    .await?
    {
        if let Some(v) = r.get::<Option<String>, _>(3) {
            names.extend(home_items(db, &v).await?.as_ref().clone());
        }
        used.insert(r.get(0), (r.get(1), r.get(2)));
    }
    let mut lines = vec![];
    let mut seen = HashSet::new();
    let grants = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT {} FROM entitlement n WHERE n.elder_id = $1 AND n.quota > 0",
        version_of("n")
    )))
    .bind(elder_id)
    .fetch_all(&db.pool)
    .await?;
    for r in grants {
        if let Some(v) = r.get::<Option<String>, _>(0) {
            names.extend(home_items(db, &v).await?.as_ref().clone());
        }
    }
    for (_, item, quota) in grants_on(db, elder_id, &day).await? {
        let (granted, u) = used.get(&item).copied().unwrap_or((quota, 0));
        seen.insert(item.clone());
        lines.push((item, granted, u));
    }
    // A grant that ended in the month still shows what it gave.
    for (item, (granted, u)) in &used {
        if !seen.contains(item) {
            lines.push((item.clone(), *granted, *u));
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
            .map(|(item, granted, used)| QuotaLine {
                item_name: names.get(&item).cloned().unwrap_or_else(|| item.clone()),
                item_code: item,
                month: month.to_string(),
                granted,
                used,
                left: (granted - used).max(0),
            })
            .collect(),
        self_paid,
    })
}

//! The entitlement lifecycle outside the evaluation run: registry events (a death ends everything
//! from the date of death, a move-out suspends) in the same transaction as the registry change,
//! and the officer's approval of proposed entitlements. Every transition is a row of
//! `entitlement_change`; approvals are audited.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;

#[allow(clippy::too_many_arguments)]
async fn log_change(
    tx: &mut Tx<'_>,
    entitlement_id: &str,
    from: &str,
    to: &str,
    tier: &str,
    amount_fen: i64,
    on: &str,
    note: &str,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO entitlement_change (id, entitlement_id, run_id, from_state, to_state, tier, amount_fen, on_date, note, by_name, at) \
         VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(entitlement_id)
    .bind(from)
    .bind(to)
    .bind(tier)
    .bind(amount_fen)
    .bind(on)
    .bind(note)
    .bind(by)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Called by the registry in the transaction that records a death or a move-out: the elder's open
/// entitlements follow at once, so the next payment batch no longer contains them even before the
/// next evaluation run. Returns how many changed.
pub async fn follow_registry(
    tx: &mut Tx<'_>,
    elder_id: &str,
    who: &Who,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("SELECT status, death_date, moved_out_date FROM elder WHERE id = $1")
        .bind(elder_id)
        .fetch_one(&mut **tx)
        .await?;
    let (status, death, moved): (String, Option<String>, Option<String>) =
        (r.get(0), r.get(1), r.get(2));
    if status == "active" {
        return Ok(0);
    }
    // Grants still packed as their run made them become rows first (`pack.rs`).
    super::pack::take_tx(tx, &[elder_id]).await?;
    let open = sqlx::query("SELECT id, state, tier, amount_fen FROM entitlement WHERE elder_id = $1 AND state <> 'ended'")
        .bind(elder_id)
        .fetch_all(&mut **tx)
        .await?;
    let today = crate::platform::today().to_string();
    let mut n = 0;
    for o in open {
        let (id, state, tier, amount): (String, String, String, i64) =
            (o.get(0), o.get(1), o.get(2), o.get(3));
        let (to, on, note) = match (status.as_str(), state.as_str()) {
            ("deceased", _) => (
                "ended",
                death.clone().unwrap_or(today.clone()),
                "死亡，待遇自死亡之日终止",
            ),
            ("moved_out", "granted") => (
                "suspended",
                moved.clone().unwrap_or(today.clone()),
                "已迁出，待遇暂停",
            ),
            ("moved_out", "proposed") => (
                "ended",
                moved.clone().unwrap_or(today.clone()),
                "已迁出，待审批的待遇取消",
            ),
            _ => continue,
        };
        sqlx::query(
            "UPDATE entitlement SET state = $2, ended_on = $3, updated_at = $4, \
             end_kind = CASE WHEN $2 = 'ended' THEN 'registry' ELSE NULL END WHERE id = $1",
        )
        .bind(&id)
        .bind(to)
        .bind((to == "ended").then_some(on.as_str()))
        .bind(crate::platform::now_rfc3339())
        .execute(&mut **tx)
        .await?;
        log_change(
            tx,
            &id,
            &state,
            to,
            &tier,
            amount,
            &on,
            note,
            &who.actor_name,
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

/// How far the list pages (page × size).
const MAX_LISTED: u64 = 50_000;

/// A packed grant in the list's order (residence, since, id).
struct Ranked {
    key: (String, String, String),
    held: super::pack::Held,
}

impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

#[derive(Deserialize, Serialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// proposed (default) / granted / suspended / ended
    pub state: Option<String>,
    pub item_code: Option<String>,
    pub region_code: Option<String>,
    /// 档次 (tier label), e.g. 80–89周岁
    pub tier: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EntitlementRow {
    pub id: String,
    pub elder_id: String,
    pub name: String,
    pub citizen_id_masked: String,
    pub age: i32,
    pub residence_region: String,
    pub residence_region_name: String,
    pub catalog_region: String,
    pub item_code: String,
    pub state: String,
    pub tier: String,
    pub amount: f64,
    pub quota: i64,
    pub since: String,
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<yiyang_kernel::eligibility::Reason>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EntitlementPage {
    pub items: Vec<EntitlementRow>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
}

/// Entitlements of people living in the caller's scope, by state and item (the approval queue).
pub async fn list(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    q: ListQuery,
) -> ApiResult<EntitlementPage> {
    let state = q
        .state
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "proposed".into());
    if !["proposed", "granted", "suspended", "ended"].contains(&state.as_str()) {
        return Err(ApiError::invalid(
            "state",
            "状态应为 proposed、granted、suspended 或 ended",
        ));
    }
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    let (page, size) =
        crate::platform::web::paging(q.page.map(i64::from), q.page_size.map(i64::from), 20, 200)?;
    let (page, size) = (page as u32, size as u32);
    // A page is cut from the first page × size entitlements of the rows and of the packs (kept
    // in memory while the packs are read): deeper lists are for the export, not for paging.
    if u64::from(page) * u64::from(size) > MAX_LISTED || u64::from(page) > MAX_LISTED / 200 {
        return Err(ApiError::invalid(
            "page",
            format!("只能翻看前 {MAX_LISTED} 条，请按区划或项目缩小范围"),
        ));
    }
    let item = q.item_code.filter(|s| !s.is_empty());
    let tier = q.tier.clone().unwrap_or_default();
    let filter = "n.state = $1 AND n.residence_region BETWEEN $2 AND $3 AND ($4 = '' OR n.item_code = $4) \
         AND ($5 = '' OR n.tier = $5)";
    // Grants still packed as their run made them (`pack.rs`) are listed with the rows, in the
    // order (residence, since, id). Only the first `page × size` of them are kept while the packs
    // are read: a county holds two million.
    let keep = (page as usize) * (size as usize);
    let (packed_total, packed): (u64, Vec<Ranked>) = if state == "granted" {
        let (lo, hi, item, tier) = (lo.clone(), hi.clone(), item.clone(), tier.clone());
        let start = (0u64, std::collections::BinaryHeap::<Ranked>::new());
        let (n, heap) = super::pack::scan(
            &mut *db.pool.acquire().await?,
            None,
            start,
            move |(n, heap), pack, e| {
                let inside = e.residence.as_str() >= lo.as_str()
                    && e.residence.as_str() <= hi.as_str()
                    && item.as_deref().is_none_or(|i| e.item_code == i)
                    && (tier.is_empty() || e.tier == tier);
                if !inside {
                    return;
                }
                *n += 1;
                if heap.len() == keep {
                    // Not among the first: decided without building its id where possible.
                    let top = heap.peek().expect("keep > 0");
                    let near = (e.residence.as_str(), pack.since.as_str());
                    match near.cmp(&(top.key.0.as_str(), top.key.1.as_str())) {
                        std::cmp::Ordering::Greater => return,
                        std::cmp::Ordering::Equal
                            if super::pack::id(&pack.run_id, &e.elder_id, &e.item_code)
                                >= top.key.2 =>
                        {
                            return;
                        }
                        _ => {}
                    }
                    heap.pop();
                }
                let held = super::pack::Held {
                    pack: pack.clone(),
                    entry: e,
                };
                heap.push(Ranked {
                    key: (
                        held.entry.residence.clone(),
                        held.pack.since.clone(),
                        held.id(),
                    ),
                    held,
                });
            },
        )
        .await?;
        (n, heap.into_sorted_vec())
    } else {
        (0, vec![])
    };
    const COLS: &str = "n.id, n.elder_id, e.name, e.citizen_id_masked, e.birth_date, e.residence_region, n.catalog_region, \
         n.item_code, n.state, n.tier, n.amount_fen, n.quota, n.since, n.reasons, n.run_id";
    let rows_total: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM entitlement n WHERE {filter}"
    )))
    .bind(&state)
    .bind(&lo)
    .bind(&hi)
    .bind(item.clone().unwrap_or_default())
    .bind(&tier)
    .fetch_one(&db.pool)
    .await?
    .get(0);
    let total = rows_total + packed_total as i64;
    let (rows, page_packed) = if packed.is_empty() {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM entitlement n JOIN elder e ON e.id = n.elder_id \
             WHERE {filter} ORDER BY e.residence_region, n.since, n.id LIMIT $6 OFFSET $7"
        )))
        .bind(&state)
        .bind(&lo)
        .bind(&hi)
        .bind(item.unwrap_or_default())
        .bind(&tier)
        .bind(size as i64)
        .bind(((page - 1) * size) as i64)
        .fetch_all(&db.pool)
        .await?;
        (rows, vec![])
    } else {
        // The page is cut from the first keys of both, in one order (byte order: PostgreSQL
        // is told so, whatever the database's collation); then its rows are read.
        let c = match db.backend {
            crate::platform::db::Backend::Postgres => " COLLATE \"C\"",
            crate::platform::db::Backend::Sqlite => "",
        };
        let mut keys: Vec<(String, String, String, Option<usize>)> =
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT n.residence_region, n.since, n.id FROM entitlement n WHERE {filter} \
                 ORDER BY n.residence_region{c}, n.since{c}, n.id{c} LIMIT $6"
            )))
            .bind(&state)
            .bind(&lo)
            .bind(&hi)
            .bind(item.clone().unwrap_or_default())
            .bind(&tier)
            .bind(keep as i64)
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), None))
            .collect();
        keys.extend(
            packed
                .iter()
                .enumerate()
                .map(|(k, r)| (r.key.0.clone(), r.key.1.clone(), r.key.2.clone(), Some(k))),
        );
        keys.sort_unstable();
        let window: Vec<_> = keys
            .into_iter()
            .skip(((page - 1) * size) as usize)
            .take(size as usize)
            .collect();
        let ids: Vec<&str> = window
            .iter()
            .filter(|k| k.3.is_none())
            .map(|k| k.2.as_str())
            .collect();
        let mut rows = vec![];
        if !ids.is_empty() {
            let sql = format!(
                "SELECT {COLS} FROM entitlement n JOIN elder e ON e.id = n.elder_id WHERE n.id IN {}",
                crate::registry::store::placeholders(db.backend, 1, ids.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in &ids {
                q = q.bind(*id);
            }
            rows = q.fetch_all(&db.pool).await?;
        }
        let page_packed: Vec<(usize, &super::pack::Held)> = window
            .iter()
            .enumerate()
            .filter_map(|(pos, k)| k.3.map(|i| (pos, &packed[i].held)))
            .collect();
        let order: HashMap<String, usize> = window
            .iter()
            .enumerate()
            .map(|(pos, k)| (k.2.clone(), pos))
            .collect();
        rows.sort_by_key(|r| order.get(&r.get::<String, _>(0)).copied());
        (rows, page_packed)
    };
    // The people of the packed grants on the page (name, masked ID, birth date, residence).
    let mut people: HashMap<String, (String, String, String, String)> = HashMap::new();
    if !page_packed.is_empty() {
        let ids: Vec<&str> = page_packed
            .iter()
            .map(|(_, h)| h.entry.elder_id.as_str())
            .collect();
        let sql = format!(
            "SELECT id, name, citizen_id_masked, birth_date, residence_region FROM elder WHERE id IN {}",
            crate::registry::store::placeholders(db.backend, 1, ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&db.pool).await? {
            people.insert(r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4)));
        }
    }
    let today = crate::platform::today();
    // Decisions of a run carry no stored reasons ('' in the row): they come from its snapshot.
    let mut derive: Vec<(String, String, String)> = rows
        .iter()
        .filter(|r| r.get::<String, _>(13).is_empty())
        .map(|r| (r.get(14), r.get(1), r.get(7)))
        .collect();
    derive.extend(page_packed.iter().map(|(_, h)| {
        (
            h.pack.run_id.clone(),
            h.entry.elder_id.clone(),
            h.entry.item_code.clone(),
        )
    }));
    let names = super::http::namer(regions);
    let mut derived = super::evaluate::reasons_of_runs(db, &derive, &names).await?;
    let age = |birth: &str| {
        chrono::NaiveDate::parse_from_str(birth, "%Y-%m-%d")
            .map(|b| yiyang_kernel::citizen_id::age_on(b, today))
            .unwrap_or(0)
    };
    let mut items: Vec<EntitlementRow> = rows
        .iter()
        .map(|r| {
            let stored: String = r.get(13);
            let reasons = if stored.is_empty() {
                derived
                    .remove(&(r.get(14), r.get(1), r.get(7)))
                    .unwrap_or_default()
            } else {
                serde_json::from_str(&stored).unwrap_or_default()
            };
            let birth: String = r.get(4);
            let region: String = r.get(5);
            EntitlementRow {
                id: r.get(0),
                elder_id: r.get(1),
                name: r.get(2),
                citizen_id_masked: r.get(3),
                age: age(&birth),
                residence_region_name: regions.path_name(&region),
                residence_region: region,
                catalog_region: r.get(6),
                item_code: r.get(7),
                state: r.get(8),
                tier: r.get(9),
                amount: r.get::<i64, _>(10) as f64 / 100.0,
                quota: r.get(11),
                since: r.get(12),
                reasons,
            }
        })
        .collect();
    for (pos, h) in page_packed {
        let e = &h.entry;
        let (name, masked, birth, region) = people.get(&e.elder_id).cloned().unwrap_or_default();
        let reasons = derived
            .remove(&(
                h.pack.run_id.clone(),
                e.elder_id.clone(),
                e.item_code.clone(),
            ))
            .unwrap_or_default();
        items.insert(
            pos.min(items.len()),
            EntitlementRow {
                id: h.id(),
                elder_id: e.elder_id.clone(),
                name,
                citizen_id_masked: masked,
                age: age(&birth),
                residence_region_name: regions.path_name(&region),
                residence_region: region,
                catalog_region: h.pack.catalog_region.clone(),
                item_code: e.item_code.clone(),
                state: "granted".into(),
                tier: e.tier.clone(),
                amount: e.amount_fen as f64 / 100.0,
                quota: e.quota,
                since: h.pack.since.clone(),
                reasons,
            },
        );
    }
    Ok(EntitlementPage {
        items,
        total,
        page,
        page_size: size,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideReq {
    pub approve: bool,
    /// 审批意见 (required when refusing)
    #[serde(default)]
    pub note: Option<String>,
}

/// Many decisions at once: the entitlements named, or every proposed one matching the filter, up
/// to [`BULK_MAX`] a request (the console repeats with `after` until nothing remains, showing
/// progress). Each is decided, logged and audited as one person's, in its own transaction.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDecideReq {
    /// These entitlements (1–500) …
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// … or, when true, the proposed entitlements matching the filter below.
    #[serde(default)]
    pub all_matching: bool,
    pub region_code: Option<String>,
    pub item_code: Option<String>,
    pub tier: Option<String>,
    /// Continue after this entitlement id (the previous answer's `next_after`).
    pub after: Option<String>,
    pub approve: bool,
    /// 审批意见 (required when refusing; the refusal notice carries it)
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkDecideResp {
    pub decided: u64,
    /// Decided by someone else meanwhile, or (approvals) the person died or moved out.
    pub skipped: u64,
    /// Still proposed and matching after this batch (filter mode).
    pub remaining: i64,
    pub next_after: Option<String>,
}

pub const BULK_MAX: usize = 500;

pub async fn decide_many(
    db: &Db,
    scope: &Scope,
    who: &Who,
    r: BulkDecideReq,
) -> ApiResult<BulkDecideResp> {
    let note = r.note.as_deref().map(str::trim).unwrap_or_default();
    if !r.approve && note.is_empty() {
        return Err(ApiError::invalid("note", "不予批准时请填写审批意见"));
    }
    let (ids, filter) = match (&r.ids, r.all_matching) {
        (Some(ids), false) if (1..=BULK_MAX).contains(&ids.len()) => (ids.clone(), None),
        (None, true) => {
            let (lo, hi) = scope.narrow(r.region_code.as_deref())?;
            let f = (
                lo,
                hi,
                r.item_code.clone().unwrap_or_default(),
                r.tier.clone().unwrap_or_default(),
            );
            let ids = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT n.id FROM entitlement n WHERE {BULK_FILTER} ORDER BY n.id LIMIT {BULK_MAX}"
            )))
            .bind(&f.0)
            .bind(&f.1)
            .bind(&f.2)
            .bind(&f.3)
            .bind(r.after.clone().unwrap_or_default())
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
            (ids, Some(f))
        }
        _ => {
            return Err(ApiError::invalid(
                "ids",
                format!("请选择 1–{BULK_MAX} 条待遇，或选择“全部符合条件的”"),
            ));
        }
    };
    let (mut decided, mut skipped) = (0, 0);
    for id in &ids {
        let one = DecideReq {
            approve: r.approve,
            note: Some(note.to_string()),
        };
        match decide(db, scope, who, id, one).await {
            Ok(_) => decided += 1,
            Err(e) if matches!(e.status.as_u16(), 404 | 409) => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    let next_after = ids.last().cloned();
    let remaining = match (&filter, &next_after) {
        (Some(f), Some(after)) => sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM entitlement n WHERE {BULK_FILTER}"
        )))
        .bind(&f.0)
        .bind(&f.1)
        .bind(&f.2)
        .bind(&f.3)
        .bind(after)
        .fetch_one(&db.pool)
        .await?
        .get(0),
        _ => 0,
    };
    Ok(BulkDecideResp {
        decided,
        skipped,
        remaining,
        next_after,
    })
}

/// Proposed entitlements of people living in a range, by item and tier, past a cursor.
const BULK_FILTER: &str = "n.state = 'proposed' AND n.residence_region BETWEEN $1 AND $2 \
     AND ($3 = '' OR n.item_code = $3) AND ($4 = '' OR n.tier = $4) AND n.id > $5";

/// Approve (→ granted) or refuse (→ ended) a proposed entitlement of a person in scope. Audited.
pub async fn decide(
    db: &Db,
    scope: &Scope,
    who: &Who,
    id: &str,
    r: DecideReq,
) -> ApiResult<String> {
    let note = r
        .note
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    if !r.approve && note.is_empty() {
        return Err(ApiError::invalid("note", "不予批准时请填写审批意见"));
    }
    if note.chars().count() > 200 {
        return Err(ApiError::invalid("note", "审批意见最多 200 字"));
    }
    let mut tx = db.begin().await?;
    // Scope by where the person lives now (the entitlement's own region may be older).
    let row = sqlx::query(
        "SELECT n.state, e.residence_region, n.tier, n.amount_fen, n.item_code, n.elder_id, e.status FROM entitlement n \
         JOIN elder e ON e.id = n.elder_id WHERE n.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .filter(|r| scope.contains(&r.get::<String, _>(1)))
    .ok_or_else(|| ApiError::not_found("未找到该待遇"))?;
    let (state, region, tier, amount, item): (String, String, String, i64, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let elder: String = row.get(5);
    if state != "proposed" {
        return Err(ApiError::conflict(
            "该待遇不在待审批状态（可能已被他人处理）",
        ));
    }
    if r.approve && row.get::<String, _>(6) != "active" {
        return Err(ApiError::conflict("该老年人已故或已迁出，不能批准"));
    }
    let to = if r.approve { "granted" } else { "ended" };
    let today = crate::platform::today().to_string();
    // Only from proposed (a second officer deciding at the same moment gets 409), and under the
    // region's current catalogue version, so a refusal stands until the catalogue changes.
    let n = sqlx::query(
        "UPDATE entitlement SET state = $2, since = CASE WHEN $2 = 'granted' THEN $3 ELSE since END, ended_on = $4, updated_at = $5, \
         end_kind = CASE WHEN $2 = 'ended' THEN 'refused' ELSE NULL END, \
         version_id = COALESCE((SELECT v.id FROM catalog_version v WHERE v.region_code = entitlement.catalog_region AND v.state = 'published'), version_id) \
         WHERE id = $1 AND state = 'proposed'",
    )
    .bind(id)
    .bind(to)
    .bind(&today)
    .bind((to == "ended").then_some(today.as_str()))
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(ApiError::conflict(
            "该待遇不在待审批状态（可能已被他人处理）",
        ));
    }
    crate::platform::outbox::enqueue(
        &mut tx,
        id,
        &elder,
        if r.approve { "granted" } else { "refused" },
    )
    .await?;
    let text = if r.approve {
        format!("审批通过 {note}")
    } else {
        format!("不予批准：{note}")
    };
    log_change(
        &mut tx,
        id,
        "proposed",
        to,
        &tier,
        amount,
        &today,
        text.trim(),
        &who.actor_name,
    )
    .await?;
    // The person's holdings changed: their town's indicator rollups are recounted.
    crate::indicator::rollup::mark_dirty(&mut tx, &region).await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: if r.approve {
                "entitlement.approve"
            } else {
                "entitlement.refuse"
            },
            entity: "entitlement",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"item": item, "note": note}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(to.to_string())
}

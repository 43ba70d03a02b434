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
    /// Days an offered bed waits for the answer (default 5).
    pub offer_days: i64,
    /// Whether a refusal (or no answer in time) keeps the applicant's place (default yes).
    pub refusal_keeps_place: bool,
}

pub const DEFAULT_OFFER_DAYS: i64 = 5;

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
    for code in &region.lineage() {
        let row =
            sqlx::query("SELECT tiers, published_at, offer_days, refusal_keeps_place FROM admission_policy WHERE region_code = $1")
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
                    offer_days: r.get::<Option<i64>, _>(2).unwrap_or(DEFAULT_OFFER_DAYS),
                    refusal_keeps_place: r.get::<Option<i64>, _>(3).unwrap_or(1) != 0,
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
            offer_days: DEFAULT_OFFER_DAYS,
            refusal_keeps_place: true,
        },
    ))
}

/// Publish a region's policy (replacing its earlier one); every tier checked first; audited.
pub async fn publish(
    db: &Db,
    who: &Who,
    region: &RegionCode,
    tiers: Vec<TierView>,
    offer_days: Option<i64>,
    refusal_keeps_place: Option<bool>,
) -> ApiResult<()> {
    let offer_days = offer_days.unwrap_or(DEFAULT_OFFER_DAYS);
    if !(1..=30).contains(&offer_days) {
        return Err(ApiError::invalid(
            "offer_days",
            "入住邀请的有效天数应在 1 到 30 天之间",
        ));
    }
    let keeps = refusal_keeps_place.unwrap_or(true) as i64;
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
        "UPDATE admission_policy SET tiers = $1, published_at = $2, published_by = $3, version = version + 1, \
         offer_days = $5, refusal_keeps_place = $6 WHERE region_code = $4",
    )
    .bind(&text)
    .bind(&now)
    .bind(&who.actor_name)
    .bind(region.as_str())
    .bind(offer_days)
    .bind(keeps)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        sqlx::query(
            "INSERT INTO admission_policy (region_code, tiers, published_at, published_by, version, offer_days, refusal_keeps_place) \
             VALUES ($1, $2, $3, $4, 1, $5, $6)",
        )
        .bind(region.as_str())
        .bind(&text)
        .bind(&now)
        .bind(&who.actor_name)
        .bind(offer_days)
        .bind(keeps)
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
            detail: serde_json::json!({"tiers": src.len(), "offer_days": offer_days, "refusal_keeps_place": keeps == 1}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- applications ------------------------------------------------------------------------------

/// Applications for a public bed (入住申请). One waiting application per elder; an admission
/// anywhere closes it.
pub const MIGRATION_APPLICATIONS: &[Stmt] = &[
    Both(
        "CREATE TABLE admission_application (id TEXT PRIMARY KEY, region_code TEXT NOT NULL, \
         elder_id TEXT NOT NULL REFERENCES elder (id), applied_at TEXT NOT NULL, state TEXT NOT NULL, note TEXT, \
         created_by TEXT NOT NULL, created_at TEXT NOT NULL, closed_at TEXT, closed_reason TEXT, \
         CONSTRAINT admission_application_state_check CHECK (state = 'waiting' OR state = 'admitted' OR state = 'withdrawn'))",
    ),
    Both(
        "CREATE UNIQUE INDEX admission_application_waiting ON admission_application (elder_id) WHERE state = 'waiting'",
    ),
    Both("CREATE INDEX admission_application_region ON admission_application (region_code, state)"),
];

/// An application: the elder as for an admission, the region whose public beds (default: the
/// caller's), when it was made (default now), a note.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyReq {
    pub region_code: Option<String>,
    pub elder_id: Option<String>,
    /// 18 位身份证号 (with `name`)
    pub citizen_id: Option<String>,
    pub name: Option<String>,
    /// 申请日期 YYYY-MM-DD (default today)
    pub applied_on: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Applied {
    pub application_id: String,
}

/// Record an application; audited. A second waiting application of the same elder is refused.
pub async fn apply(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    scope: &crate::identity::Scope,
    people: Option<&crate::identity::Scope>,
    who: &Who,
    req: ApplyReq,
) -> ApiResult<Applied> {
    let region = match req.region_code.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(r) => scope.region(r)?,
        None => scope
            .root
            .clone()
            .ok_or_else(|| ApiError::invalid("region_code", "请选择区划"))?,
    };
    let today = crate::platform::today();
    let on = super::day("applied_on", "申请日期", req.applied_on.as_deref(), today)?;
    let note = super::text("note", "备注", req.note.as_deref(), 200)?;
    let elder_id = super::find_person(
        db,
        keys,
        people,
        req.elder_id.clone(),
        req.citizen_id.clone(),
        req.name.clone(),
    )
    .await?;
    let resident: i64 =
        sqlx::query("SELECT COUNT(*) FROM admission WHERE elder_id = $1 AND discharged_on IS NULL")
            .bind(&elder_id)
            .fetch_one(&db.pool)
            .await?
            .get(0);
    if resident > 0 {
        return Err(ApiError::conflict("此人已在一家机构入住，无需轮候"));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO admission_application (id, region_code, elder_id, applied_at, state, note, created_by, created_at) \
         VALUES ($1, $2, $3, $4, 'waiting', $5, $6, $7)",
    )
    .bind(&id)
    .bind(region.as_str())
    .bind(&elder_id)
    .bind(super::ymd(on))
    .bind((!note.is_empty()).then_some(note))
    .bind(&who.actor_name)
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ApiError::conflict("此人已有一份在轮候的申请")
        }
        e => e.into(),
    })?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.apply",
            entity: "admission_application",
            entity_id: Some(&id),
            region_code: Some(region.as_str()),
            detail: serde_json::json!({"elder_id": elder_id, "applied_on": super::ymd(on)})
                .to_string(),
        },
    )
    .await?;
    super::recount_elder(&mut tx, &elder_id).await?;
    tx.commit().await?;
    Ok(Applied { application_id: id })
}

/// One place in the queue.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueRow {
    pub application_id: String,
    pub elder_id: String,
    pub position: usize,
    pub tier: usize,
    pub tier_label: String,
    pub reasons: Vec<String>,
    /// 姓名（遮挡）
    pub name_masked: String,
    pub citizen_id_masked: String,
    pub age: i32,
    pub applied_on: String,
    /// The ability level the ranking used (中文), when a valid assessment exists.
    pub ability_level: Option<String>,
    /// A bed offered to this applicant and awaiting the answer.
    pub offer: Option<super::offer::OfferBrief>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Queue {
    pub region_code: String,
    pub on: String,
    pub policy: PolicyView,
    pub items: Vec<QueueRow>,
}

/// A waiting application with the facts its ranking takes (on the ranking day).
pub(crate) struct Waiting {
    pub application_id: String,
    pub elder_id: String,
    pub name: String,
    pub citizen_id_masked: String,
    pub age: i32,
    pub applied_on: String,
    /// A valid assessment's level on the day.
    pub level: Option<i64>,
    pub applicant: yiyang_kernel::admission::Applicant,
}

/// The waiting applications whose region is in `[lo, hi]` (a subtree) or, with `exact`, one of
/// the codes listed, with the registry's and assessments' facts on `on`.
pub(crate) async fn waiting(
    db: &Db,
    codes: Codes<'_>,
    on: chrono::NaiveDate,
) -> ApiResult<Vec<Waiting>> {
    use yiyang_kernel::admission::Applicant;
    let on_s = on.to_string();
    let (cond, binds): (String, Vec<String>) = match codes {
        Codes::Subtree(lo, hi) => (
            "a.region_code >= $1 AND a.region_code <= $2".into(),
            vec![lo.to_string(), hi.to_string()],
        ),
        Codes::AnyOf(list) => (
            format!(
                "a.region_code IN ({})",
                (1..=list.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            list.to_vec(),
        ),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT a.id, a.elder_id, a.applied_at, e.name, e.citizen_id_masked, e.birth_date, e.economic_status, \
         e.living_status, e.family_planning_special, e.entitled_veteran_family, ab.level, ab.valid_until \
         FROM admission_application a JOIN elder e ON e.id = a.elder_id \
         LEFT JOIN elder_ability ab ON ab.elder_id = a.elder_id \
         WHERE a.state = 'waiting' AND {cond} ORDER BY a.id LIMIT 5000"
    )));
    for b in binds {
        q = q.bind(b);
    }
    let rows = q.fetch_all(&db.pool).await?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id: String = r.get(0);
            let birth =
                chrono::NaiveDate::parse_from_str(&r.get::<String, _>(5), "%Y-%m-%d").unwrap_or(on);
            let valid: Option<String> = r.get(11);
            let level: Option<i64> = r
                .get::<Option<i64>, _>(10)
                .filter(|_| valid.as_deref().is_some_and(|v| v >= on_s.as_str()));
            let applied: String = r.get(2);
            Waiting {
                applicant: Applicant {
                    reference: id.clone(),
                    birth_date: birth,
                    economic_status: r.get(6),
                    ability_level: level,
                    living_status: r.get(7),
                    family_planning_special: r.get(8),
                    entitled_veteran_family: r.get::<Option<i64>, _>(9).unwrap_or(0) != 0,
                    applied_at: chrono::NaiveDate::parse_from_str(
                        applied.get(..10).unwrap_or(""),
                        "%Y-%m-%d",
                    )
                    .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                    .unwrap_or_default(),
                    seq: i as i64,
                },
                application_id: id,
                elder_id: r.get(1),
                name: r.get(3),
                citizen_id_masked: r.get(4),
                age: yiyang_kernel::citizen_id::age_on(birth, on),
                applied_on: applied.get(..10).unwrap_or("").to_string(),
                level,
            }
        })
        .collect())
}

/// Which applications: a region's subtree, or those made for any of some regions.
pub(crate) enum Codes<'a> {
    Subtree(&'a str, &'a str),
    AnyOf(&'a [String]),
}

/// The waiting applications in queue order by `policy`, each with its place.
pub(crate) fn ranked(
    policy: &yiyang_kernel::admission::QueuePolicy,
    list: Vec<Waiting>,
    on: chrono::NaiveDate,
) -> Vec<(yiyang_kernel::admission::Placed, Waiting)> {
    let applicants: Vec<_> = list.iter().map(|w| w.applicant.clone()).collect();
    let mut by_ref: std::collections::HashMap<String, Waiting> = list
        .into_iter()
        .map(|w| (w.application_id.clone(), w))
        .collect();
    yiyang_kernel::admission::rank(policy, &applicants, on)
        .into_iter()
        .filter_map(|p| {
            let w = by_ref.remove(&p.reference)?;
            Some((p, w))
        })
        .collect()
}

/// The waiting applications of a region's subtree in queue order by the region's policy, the
/// facts taken from the registry and assessments on `on`, with any offer running; one audit
/// row per request.
pub async fn queue(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &crate::identity::Scope,
    who: &Who,
    region: &RegionCode,
    on: chrono::NaiveDate,
) -> ApiResult<Queue> {
    if !scope.covers(region) {
        return Err(ApiError::forbidden("所选区划不在您的管辖范围内"));
    }
    super::offer::expire_due(db, regions, crate::platform::today()).await?;
    let (policy, view) = policy_for(db, regions, region).await?;
    let (lo, hi) = region.subtree_range();
    let on_s = on.to_string();
    let list = waiting(db, Codes::Subtree(&lo, &hi), on).await?;
    let offers = super::offer::open_by_application(db).await?;
    let items: Vec<QueueRow> = ranked(&policy, list, on)
        .into_iter()
        .map(|(p, w)| QueueRow {
            offer: offers.get(&w.application_id).cloned(),
            application_id: p.reference,
            elder_id: w.elder_id,
            position: p.position,
            tier: p.tier,
            tier_label: p.tier_label,
            reasons: p.reasons,
            name_masked: yiyang_kernel::mask::name(&w.name),
            citizen_id_masked: w.citizen_id_masked,
            age: w.age,
            applied_on: w.applied_on,
            ability_level: w
                .level
                .and_then(|l| yiyang_kernel::assessment::LEVEL_NAMES.get(l as usize))
                .map(|s| s.to_string()),
        })
        .collect();
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.queue.view",
            entity: "region",
            entity_id: Some(region.as_str()),
            region_code: Some(region.as_str()),
            detail: serde_json::json!({"rows": items.len(), "on": on_s}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Queue {
        region_code: region.as_str().to_string(),
        on: on_s,
        policy: view,
        items,
    })
}

/// Withdraw a waiting application (the family no longer wants a place); audited with the reason.
pub async fn withdraw(
    db: &Db,
    scope: &crate::identity::Scope,
    who: &Who,
    id: &str,
    reason: &str,
) -> ApiResult<()> {
    let reason = super::text("reason", "撤回原因", Some(reason), 200)?;
    if reason.is_empty() {
        return Err(ApiError::invalid("reason", "请填写撤回原因"));
    }
    let mut tx = db.begin().await?;
    let r = sqlx::query("SELECT region_code, state FROM admission_application WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该申请（或不在您的管辖范围内）"))?;
    if r.get::<String, _>(1) != "waiting" {
        return Err(ApiError::conflict("该申请已不在轮候中"));
    }
    let region: String = r.get(0);
    sqlx::query(
        "UPDATE admission_application SET state = 'withdrawn', closed_at = $1, closed_reason = $2 WHERE id = $3",
    )
    .bind(crate::platform::now_rfc3339())
    .bind(&reason)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE admission_offer SET state = 'expired', closed_at = $1, note = '申请已撤回，邀请作废' \
         WHERE application_id = $2 AND state = 'open'",
    )
    .bind(crate::platform::now_rfc3339())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.withdraw",
            entity: "admission_application",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"reason": reason}).to_string(),
        },
    )
    .await?;
    let elder: Option<String> =
        sqlx::query("SELECT elder_id FROM admission_application WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get(0));
    if let Some(e) = elder {
        super::recount_elder(&mut tx, &e).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Called in the transaction of an admission: the elder's waiting application is closed.
pub async fn close_on_admission(
    tx: &mut crate::platform::db::Tx<'_>,
    elder_id: &str,
    org_name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE admission_application SET state = 'admitted', closed_at = $1, closed_reason = $2 \
         WHERE elder_id = $3 AND state = 'waiting'",
    )
    .bind(crate::platform::now_rfc3339())
    .bind(format!("已入住{org_name}"))
    .bind(elder_id)
    .execute(&mut **tx)
    .await?;
    // A bed offered elsewhere is let go.
    sqlx::query(
        "UPDATE admission_offer SET state = 'expired', closed_at = $1, note = $2 WHERE state = 'open' \
         AND application_id IN (SELECT id FROM admission_application WHERE elder_id = $3)",
    )
    .bind(crate::platform::now_rfc3339())
    .bind(format!("已入住{org_name}，邀请作废"))
    .bind(elder_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

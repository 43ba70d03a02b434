//! Family care beds (家庭养老床位, DB32/4182-2021): an elder stays at home under a contract with a
//! home or a provider, after an assessment and with the home adapted (适老化) — at least an
//! emergency call. The bed is counted apart from the homes' beds (and in beds per 1,000 elders);
//! the contract's monthly visits are the duty home care will turn into orders; the provider claims
//! a monthly subsidy per bed with its month's claim. Never overwritten: a contract ends with a
//! date and a reason, and the registry's death ends it on the day.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use serde::{Deserialize, Serialize};
use sqlx::Row;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE family_bed (id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organisation (id), \
         elder_id TEXT NOT NULL REFERENCES elder (id), contract_no TEXT NOT NULL, signed_on TEXT NOT NULL, \
         start_on TEXT NOT NULL, end_on TEXT, end_reason TEXT, ability_level BIGINT, adaptation TEXT NOT NULL, \
         visits_per_month BIGINT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL, version BIGINT NOT NULL)",
    ),
    // One family bed a person at a time.
    Both("CREATE UNIQUE INDEX family_bed_open_elder ON family_bed (elder_id) WHERE end_on IS NULL"),
    Both("CREATE INDEX family_bed_org ON family_bed (org_id, start_on)"),
];

/// The home adaptations of the standard: (code, 中文). The emergency call is required.
pub const ADAPTATIONS: &[(&str, &str)] = &[
    ("emergency_call", "紧急呼叫设备"),
    ("grab_bars", "安全扶手"),
    ("anti_slip", "地面防滑"),
    ("care_bed", "护理床"),
    ("smoke_alarm", "烟感报警"),
    ("gas_alarm", "燃气报警"),
    ("bath_aids", "助浴设施"),
    ("night_light", "夜间照明"),
    ("monitoring", "智能监测设备"),
];
const REQUIRED: &str = "emergency_call";

/// Why a contract ended: (code, 中文).
pub const END_REASONS: &[(&str, &str)] = &[
    ("death", "死亡"),
    ("admitted", "入住养老机构"),
    ("cancelled", "解除协议"),
    ("moved", "迁出"),
    ("other", "其他"),
];

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFamilyBed {
    pub elder_id: Option<String>,
    /// 18 位身份证号 (with `name`)
    pub citizen_id: Option<String>,
    pub name: Option<String>,
    /// 协议编号
    pub contract_no: String,
    /// 签约日期 (default today)
    pub signed_on: Option<String>,
    /// 建床日期 (default the signing day)
    pub start_on: Option<String>,
    /// Adaptations done, codes or 中文 (紧急呼叫设备 required)
    pub adaptation: Vec<String>,
    /// 每月上门服务次数 (1–31)
    pub visits_per_month: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FamilyBed {
    pub id: String,
    pub elder_id: String,
    pub name: String,
    pub citizen_id_masked: String,
    /// 老人住址所在村（社区）
    pub place: String,
    pub contract_no: String,
    pub signed_on: String,
    pub start_on: String,
    pub end_on: Option<String>,
    pub end_reason: Option<String>,
    /// The ability level assessed when the bed was set up
    pub ability_level: Option<String>,
    /// Adaptations done (中文)
    pub adaptation: Vec<String>,
    pub visits_per_month: i64,
}

fn adaptation_codes(items: &[String]) -> ApiResult<Vec<&'static str>> {
    let mut out = vec![];
    for it in items {
        let v = it.trim();
        let code = super::code_of(ADAPTATIONS, v).ok_or_else(|| {
            ApiError::invalid(
                "adaptation",
                format!(
                    "适老化改造项目“{}”不在清单中，应为：{}",
                    v.chars().take(20).collect::<String>(),
                    ADAPTATIONS
                        .iter()
                        .map(|a| a.1)
                        .collect::<Vec<_>>()
                        .join("、")
                ),
            )
        })?;
        if !out.contains(&code) {
            out.push(code);
        }
    }
    if !out.contains(&REQUIRED) {
        return Err(ApiError::invalid(
            "adaptation",
            "家庭养老床位须先安装紧急呼叫设备（适老化改造清单中的必备项）",
        ));
    }
    Ok(out)
}

/// Set up a family bed: someone in the registry, with a valid assessment on the starting day, not
/// living in a home, with no other family bed; audited.
pub async fn create(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    scope: &Scope,
    people: Option<&Scope>,
    who: &Who,
    org_id: &str,
    req: NewFamilyBed,
) -> ApiResult<FamilyBed> {
    let (_, region, _) = super::org_in_scope(db, scope, org_id).await?;
    let today = crate::platform::today();
    let contract = super::text("contract_no", "协议编号", Some(&req.contract_no), 40)?;
    if contract.is_empty() {
        return Err(ApiError::invalid("contract_no", "请填写协议编号"));
    }
    let signed = super::day("signed_on", "签约日期", req.signed_on.as_deref(), today)?;
    let start = super::day(
        "start_on",
        "建床日期",
        req.start_on.as_deref().or(req.signed_on.as_deref()),
        today,
    )?;
    if start < signed {
        return Err(ApiError::invalid("start_on", "建床日期不能早于签约日期"));
    }
    if !(1..=31).contains(&req.visits_per_month) {
        return Err(ApiError::invalid(
            "visits_per_month",
            "每月上门服务次数应在 1 到 31 次之间",
        ));
    }
    let items = adaptation_codes(&req.adaptation)?;
    let elder_id = super::find_person(
        db,
        keys,
        people,
        req.elder_id.clone(),
        req.citizen_id.clone(),
        req.name.clone(),
    )
    .await?;
    let start_s = super::ymd(start);
    let level: Option<i64> = sqlx::query(
        "SELECT level FROM elder_ability WHERE elder_id = $1 AND assessed_on <= $2 AND valid_until >= $2",
    )
    .bind(&elder_id)
    .bind(&start_s)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| r.get(0));
    let Some(level) = level else {
        return Err(ApiError::invalid(
            "elder_id",
            "此人在建床日期没有有效的能力评估，请先完成评估再建床",
        ));
    };
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let mut tx = db.begin().await?;
    let resident: i64 =
        sqlx::query("SELECT COUNT(*) FROM admission WHERE elder_id = $1 AND discharged_on IS NULL")
            .bind(&elder_id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
    if resident > 0 {
        return Err(ApiError::conflict(
            "此人正在养老机构入住，不能同时设立家庭养老床位",
        ));
    }
    sqlx::query(
        "INSERT INTO family_bed (id, org_id, elder_id, contract_no, signed_on, start_on, end_on, end_reason, ability_level, \
         adaptation, visits_per_month, created_by, created_at, version) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $8, $9, $10, $11, 1)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(&elder_id)
    .bind(&contract)
    .bind(super::ymd(signed))
    .bind(&start_s)
    .bind(level)
    .bind(items.join(","))
    .bind(req.visits_per_month)
    .bind(&who.actor_name)
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ApiError::conflict("此人已有一张在用的家庭养老床位")
        }
        e => e.into(),
    })?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "family_bed.create",
            entity: "family_bed",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail:
                serde_json::json!({"org_id": org_id, "elder_id": elder_id, "contract_no": contract,
                "start_on": start_s, "adaptation": items, "visits_per_month": req.visits_per_month})
                .to_string(),
        },
    )
    .await?;
    super::recount_place(&mut tx, &region).await?;
    super::recount_elder(&mut tx, &elder_id).await?;
    tx.commit().await?;
    one(db, &id).await
}

async fn one(db: &Db, id: &str) -> ApiResult<FamilyBed> {
    let rows = rows(db, "f.id = $1", id).await?;
    rows.into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("未找到该家庭养老床位"))
}

async fn rows(db: &Db, cond: &str, v: &str) -> ApiResult<Vec<FamilyBed>> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT f.id, f.elder_id, e.name, e.citizen_id_masked, e.residence_region, f.contract_no, f.signed_on, f.start_on, \
         f.end_on, f.end_reason, f.ability_level, f.adaptation, f.visits_per_month \
         FROM family_bed f JOIN elder e ON e.id = f.elder_id WHERE {cond} \
         ORDER BY CASE WHEN f.end_on IS NULL THEN 0 ELSE 1 END, f.start_on DESC LIMIT 2000"
    )))
    .bind(v)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| FamilyBed {
        id: r.get(0),
        elder_id: r.get(1),
        name: r.get(2),
        citizen_id_masked: r.get(3),
        place: r.get(4),
        contract_no: r.get(5),
        signed_on: r.get(6),
        start_on: r.get(7),
        end_on: r.get(8),
        end_reason: r
            .get::<Option<String>, _>(9)
            .map(|c| super::zh(END_REASONS, &c).to_string()),
        ability_level: r
            .get::<Option<i64>, _>(10)
            .and_then(|l| yiyang_kernel::assessment::LEVEL_NAMES.get(l as usize))
            .map(|s| s.to_string()),
        adaptation: r
            .get::<String, _>(11)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|c| super::zh(ADAPTATIONS, c).to_string())
            .collect(),
        visits_per_month: r.get(12),
    })
    .collect())
}

/// A provider's family beds, those in use first (names: the read is audited).
pub async fn list(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    who: &Who,
    org_id: &str,
) -> ApiResult<Vec<FamilyBed>> {
    let (_, region, _) = super::org_in_scope(db, scope, org_id).await?;
    let mut out = rows(db, "f.org_id = $1", org_id).await?;
    for b in &mut out {
        b.place = regions.path_name(&b.place);
    }
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "family_bed.list",
            entity: "organisation",
            entity_id: Some(org_id),
            region_code: Some(&region),
            detail: serde_json::json!({"rows": out.len()}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndReq {
    /// death / admitted / cancelled / moved / other, or 死亡 / 入住养老机构 / 解除协议 / 迁出 / 其他
    pub reason: String,
    /// 撤床日期 (default today)
    pub on: Option<String>,
}

/// End a contract on a day, with a reason; audited.
pub async fn end(db: &Db, scope: &Scope, who: &Who, id: &str, req: EndReq) -> ApiResult<()> {
    let reason = super::code_of(END_REASONS, &req.reason).ok_or_else(|| {
        ApiError::invalid(
            "reason",
            "撤床原因应为死亡、入住养老机构、解除协议、迁出或其他",
        )
    })?;
    let on = super::day(
        "on",
        "撤床日期",
        req.on.as_deref(),
        crate::platform::today(),
    )?;
    let mut tx = db.begin().await?;
    let r = sqlx::query(
        "SELECT o.region_code, f.start_on, f.end_on, f.elder_id, f.org_id FROM family_bed f JOIN organisation o ON o.id = f.org_id WHERE f.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .filter(|r| scope.holds(&r.get::<String, _>(4), &r.get::<String, _>(0)))
    .ok_or_else(|| ApiError::not_found("未找到该家庭养老床位（或不在您的管辖范围内）"))?;
    if r.get::<Option<String>, _>(2).is_some() {
        return Err(ApiError::conflict("该家庭养老床位已撤销"));
    }
    let start: String = r.get(1);
    if super::ymd(on) < start {
        return Err(ApiError::invalid(
            "on",
            format!("撤床日期不能早于建床日期 {start}"),
        ));
    }
    let region: String = r.get(0);
    close(&mut tx, id, &super::ymd(on), reason).await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "family_bed.end",
            entity: "family_bed",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"reason": reason, "on": super::ymd(on)}).to_string(),
        },
    )
    .await?;
    super::recount_place(&mut tx, &region).await?;
    super::recount_elder(&mut tx, &r.get::<String, _>(3)).await?;
    tx.commit().await?;
    Ok(())
}

async fn close(tx: &mut Tx<'_>, id: &str, on: &str, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE family_bed SET end_on = $1, end_reason = $2, version = version + 1 WHERE id = $3 AND end_on IS NULL",
    )
    .bind(on)
    .bind(reason)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Called in the registry's transaction that records a death: the person's family bed ends on
/// the date of death (or the day it began, if the death was recorded as earlier).
pub async fn follow_registry(tx: &mut Tx<'_>, elder_id: &str) -> Result<(), sqlx::Error> {
    let r = sqlx::query(
        "SELECT f.id, f.start_on, e.death_date, o.region_code FROM family_bed f JOIN elder e ON e.id = f.elder_id \
         JOIN organisation o ON o.id = f.org_id WHERE f.elder_id = $1 AND f.end_on IS NULL",
    )
    .bind(elder_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = r else { return Ok(()) };
    let Some(death) = r.get::<Option<String>, _>(2) else {
        return Ok(());
    };
    let start: String = r.get(1);
    let on = if death < start { start } else { death };
    close(tx, &r.get::<String, _>(0), &on, "death").await?;
    super::recount_place(tx, &r.get::<String, _>(3)).await?;
    super::recount_elder(tx, elder_id).await?;
    Ok(())
}

//! A provider's service contract (服务协议) with the bureau: its period and the price of each
//! service in fen, which the monthly settlement pays. And hospital stays the family reported: a
//! visit during one is held back at settlement.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::service_order as rule;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// cleaning / bathing / … or 助洁 …
    pub service: String,
    /// 元 a visit (two decimals at most), 0–2000
    pub price: f64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractReq {
    /// 协议开始日期 YYYY-MM-DD
    pub starts_on: String,
    /// 协议结束日期 YYYY-MM-DD
    pub ends_on: String,
    pub prices: Vec<Price>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Contract {
    pub org_id: String,
    pub starts_on: Option<String>,
    pub ends_on: Option<String>,
    /// Each service with its price (元), services without one left out
    pub prices: Vec<PriceView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceView {
    pub service: String,
    pub service_zh: String,
    pub price: f64,
}

fn day(field: &str, label: &str, v: &str) -> ApiResult<String> {
    chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
        .ok()
        .filter(|_| v.trim().len() == 10)
        .map(|d| d.to_string())
        .ok_or_else(|| ApiError::invalid(field, format!("{label}应为 YYYY-MM-DD 格式的日期")))
}

async fn provider_region(db: &Db, scope: &Scope, id: &str) -> ApiResult<String> {
    let r = sqlx::query("SELECT region_code, kind FROM organisation WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.holds(id, &r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该服务机构（或不在您的管辖范围内）"))?;
    let kind: String = r.get(1);
    // A meal point's contract prices its meals (service `meal`).
    if !super::PROVIDER_KINDS.contains(&kind.as_str()) && kind != "meal_point" {
        return Err(ApiError::invalid(
            "org_id",
            "服务协议只与居家养老服务商、服务站、综合体、日间照料中心或助餐点签订",
        ));
    }
    Ok(r.get(0))
}

pub async fn get(db: &Db, scope: &Scope, id: &str) -> ApiResult<Contract> {
    // Read: an organisation that is not a provider has no contract to show (404); setting one
    // for it is refused as a mistake (422, in `put`).
    provider_region(db, scope, id).await.map_err(|e| {
        if e.status == axum::http::StatusCode::UNPROCESSABLE_ENTITY {
            ApiError::not_found("该机构不是居家养老服务机构，没有服务协议")
        } else {
            e
        }
    })?;
    let c = sqlx::query("SELECT starts_on, ends_on FROM provider_contract WHERE org_id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    let prices = sqlx::query("SELECT service, price_fen FROM provider_price WHERE org_id = $1")
        .bind(id)
        .fetch_all(&db.pool)
        .await?;
    let mut prices: Vec<PriceView> = prices
        .iter()
        .map(|r| {
            let s: String = r.get(0);
            PriceView {
                service_zh: rule::service_zh(&s).into(),
                service: s,
                price: r.get::<i64, _>(1) as f64 / 100.0,
            }
        })
        .collect();
    prices.sort_by_key(|p| rule::SERVICES.iter().position(|s| s.0 == p.service));
    Ok(Contract {
        org_id: id.to_string(),
        starts_on: c.as_ref().map(|r| r.get(0)),
        ends_on: c.as_ref().map(|r| r.get(1)),
        prices,
    })
}

/// Set a provider's contract period and price list (the whole list: services left out have no
/// price). A regional officer only. Audited with the prices.
pub async fn put(
    db: &Db,
    scope: &Scope,
    who: &Who,
    id: &str,
    req: ContractReq,
) -> ApiResult<Contract> {
    scope.regional()?;
    let region = provider_region(db, scope, id).await?;
    let starts = day("starts_on", "协议开始日期", &req.starts_on)?;
    let ends = day("ends_on", "协议结束日期", &req.ends_on)?;
    if ends < starts {
        return Err(ApiError::invalid("ends_on", "协议结束日期不能早于开始日期"));
    }
    let mut prices: Vec<(&'static str, i64)> = vec![];
    for (i, p) in req.prices.iter().enumerate() {
        let field = format!("prices[{i}]");
        let s = rule::service(&p.service).ok_or_else(|| {
            ApiError::invalid(
                &field,
                "服务项目应为：助餐、助浴、助急、助医、助行、助洁、照护",
            )
        })?;
        let fen = (p.price * 100.0).round();
        if !p.price.is_finite()
            || !(0.0..=2000.0).contains(&p.price)
            || (fen - p.price * 100.0).abs() > 1e-6
        {
            return Err(ApiError::invalid(
                &field,
                format!(
                    "{}的价格应为 0 到 2000 元，最多两位小数",
                    rule::service_zh(s)
                ),
            ));
        }
        if prices.iter().any(|x| x.0 == s) {
            return Err(ApiError::invalid(
                &field,
                format!("{}的价格写了两次", rule::service_zh(s)),
            ));
        }
        prices.push((s, fen as i64));
    }
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO provider_contract (org_id, starts_on, ends_on, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (org_id) DO UPDATE SET starts_on = excluded.starts_on, ends_on = excluded.ends_on, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(&starts)
    .bind(&ends)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM provider_price WHERE org_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for (s, fen) in &prices {
        sqlx::query("INSERT INTO provider_price (org_id, service, price_fen) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(*s)
            .bind(*fen)
            .execute(&mut *tx)
            .await?;
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "provider_contract.put",
            entity: "organisation",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"starts_on": starts, "ends_on": ends,
                "prices": prices.iter().map(|(s, f)| serde_json::json!({"service": s, "price_fen": f})).collect::<Vec<_>>()})
            .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, scope, id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HospitalStayReq {
    /// 入院日期 YYYY-MM-DD
    pub from_on: String,
    /// 出院日期 YYYY-MM-DD (empty while still in hospital)
    pub to_on: Option<String>,
    /// 医院、说明
    pub note: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HospitalStay {
    pub id: String,
    pub from_on: String,
    pub to_on: Option<String>,
    pub note: Option<String>,
}

/// Record a hospital stay the family or a worker reported (an editing scope over the elder).
/// Audited.
pub async fn add_stay(
    db: &Db,
    scope: &Scope,
    who: &Who,
    elder_id: &str,
    req: HospitalStayReq,
) -> ApiResult<HospitalStay> {
    let region: String = sqlx::query("SELECT residence_region FROM elder WHERE id = $1")
        .bind(elder_id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.get::<String, _>(0))
        .filter(|rc| scope.contains(rc))
        .ok_or_else(|| ApiError::not_found("未找到该老人（或不在您的管辖范围内）"))?;
    let from = day("from_on", "入院日期", &req.from_on)?;
    let to = match req
        .to_on
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(t) => Some(day("to_on", "出院日期", t)?),
        None => None,
    };
    if to.as_deref().is_some_and(|t| t < from.as_str()) {
        return Err(ApiError::invalid("to_on", "出院日期不能早于入院日期"));
    }
    let note = crate::institution::text("note", "说明", req.note.as_deref(), 100)?;
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO hospital_stay (id, elder_id, from_on, to_on, note, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(elder_id)
    .bind(&from)
    .bind(&to)
    .bind(Some(&note).filter(|n| !n.is_empty()))
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "hospital_stay.create",
            entity: "elder",
            entity_id: Some(elder_id),
            region_code: Some(&region),
            detail: serde_json::json!({"from_on": from, "to_on": to}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(HospitalStay {
        id,
        from_on: from,
        to_on: to,
        note: Some(note).filter(|n| !n.is_empty()),
    })
}

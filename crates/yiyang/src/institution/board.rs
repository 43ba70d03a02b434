//! The public vacancy board (空床信息公开): every open home of a county with its beds, nursing
//! beds and vacant beds today, its monthly price range, address and telephone — for families,
//! without a login, in large type on the phone. No names, no residents: counts only.

use crate::app::AppState;
use crate::identity::http::ClientIp;
use crate::platform::error::{ApiError, ApiResult, Problem};
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
    /// A county or town (default: every home)
    pub region_code: Option<String>,
    /// Only homes with a vacant nursing bed
    pub nursing: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BoardHome {
    pub name: String,
    pub kind_name: String,
    pub ownership_name: String,
    /// 星级 1–5
    pub grade: Option<i64>,
    /// "如皋市 / 东陈镇"
    pub place: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub beds: i64,
    pub nursing_beds: i64,
    pub vacant: i64,
    pub vacant_nursing: i64,
    /// 月收费（元）
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    /// Where it is (longitude, latitude), for the map
    pub lon: Option<f64>,
    pub lat: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Board {
    /// As of (today, China time)
    pub on: String,
    pub homes: Vec<BoardHome>,
    pub beds: i64,
    pub vacant: i64,
    pub hotline: String,
}

/// Vacant beds of every open home, for the public.
#[utoipa::path(get, path = "/api/v1/public/vacancies", tag = "institution", params(BoardQuery),
    responses((status = 200, body = Board), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn board(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<BoardQuery>,
) -> ApiResult<Json<Board>> {
    if !app.public_throttle.allow(ip.as_deref().unwrap_or("-")) {
        return Err(ApiError::too_many("请求过于频繁，请稍后再试"));
    }
    let (lo, hi) = match q.region_code.as_deref().filter(|s| !s.is_empty()) {
        Some(c) => yiyang_kernel::RegionCode::parse(c)
            .map_err(|e| ApiError::invalid("region_code", e.to_string()))?
            .subtree_range(),
        None => ("000000000000".into(), "999999999999".into()),
    };
    let rows = sqlx::query(
        "SELECT o.name, o.kind, o.ownership, o.grade, o.region_code, o.address, o.phone, o.price_min, o.price_max, \
         COUNT(b.id), CAST(SUM(b.nursing) AS BIGINT), CAST(SUM(CASE WHEN s.id IS NULL THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN s.id IS NULL THEN b.nursing ELSE 0 END) AS BIGINT), o.lon, o.lat \
         FROM organisation o CROSS JOIN bed b \
         LEFT JOIN bed_stay s ON s.bed_id = b.id AND s.until_on IS NULL \
         WHERE b.org_id = o.id AND b.status = 'open' AND o.status = 'open' AND o.region_code >= $1 AND o.region_code <= $2 \
         GROUP BY o.id, o.name, o.kind, o.ownership, o.grade, o.region_code, o.address, o.phone, o.price_min, o.price_max, o.lon, o.lat \
         ORDER BY o.region_code, o.name",
    )
    .bind(lo)
    .bind(hi)
    .fetch_all(&app.db.pool)
    .await?;
    let regions = app.regions.read().await;
    let mut homes = vec![];
    for r in rows {
        let vacant_nursing: i64 = r.get(12);
        if q.nursing == Some(true) && vacant_nursing == 0 {
            continue;
        }
        let region: String = r.get(4);
        homes.push(BoardHome {
            name: r.get(0),
            kind_name: crate::org::kind_zh(&r.get::<String, _>(1)).into(),
            ownership_name: crate::org::ownership_zh(&r.get::<String, _>(2)).into(),
            grade: r.get(3),
            place: regions.path_name(&format!("{}000", &region[..9])),
            address: r.get(5),
            phone: r.get(6),
            price_min: r.get(7),
            price_max: r.get(8),
            beds: r.get(9),
            nursing_beds: r.get(10),
            vacant: r.get(11),
            vacant_nursing,
            lon: r.get(13),
            lat: r.get(14),
        });
    }
    Ok(Json(Board {
        on: crate::platform::today().to_string(),
        beds: homes.iter().map(|h| h.beds).sum(),
        vacant: homes.iter().map(|h| h.vacant).sum(),
        homes,
        hotline: "12349".into(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceLookup {
    /// 老人的 18 位身份证号
    pub citizen_id: String,
    /// 老人的姓名
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuePlace {
    /// The region whose public beds were applied for ("如皋市")
    pub region_name: String,
    /// 1 = next
    pub position: usize,
    /// How many are waiting there
    pub waiting: usize,
    pub tier_label: String,
    pub applied_on: String,
    /// A bed offered and awaiting the answer
    pub offer: Option<super::offer::OfferBrief>,
    pub on: String,
    pub hotline: String,
}

/// A family's view of their elder's place in the queue for a public bed: with the ID and the name
/// together, the position, the tier and any bed offered — never anyone else's. One answer for a
/// wrong ID, a wrong name and no application; throttled; every lookup audited.
#[utoipa::path(post, path = "/api/v1/public/queue-place", tag = "institution", request_body = PlaceLookup,
    responses((status = 200, body = QueuePlace), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
pub async fn queue_place(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(q): Json<PlaceLookup>,
) -> ApiResult<Json<QueuePlace>> {
    if !app.public_throttle.allow(ip.as_deref().unwrap_or("-")) {
        return Err(ApiError::too_many("请求过于频繁，请稍后再试"));
    }
    let today = crate::platform::today();
    let name = super::text("name", "姓名", Some(&q.name), 30)?;
    let cid = yiyang_kernel::CitizenId::parse(q.citizen_id.trim(), today)
        .map_err(|e| ApiError::invalid("citizen_id", format!("身份证号无效：{e}")))?;
    let not_found = || {
        ApiError::not_found("没有查到在轮候中的入住申请。请核对身份证号和姓名，或拨打 12349 咨询")
    };
    let bidx = app
        .keys
        .blind_index(crate::registry::store::CID_DOMAIN, cid.as_str());
    let row = sqlx::query(
        "SELECT a.id, a.region_code FROM admission_application a JOIN elder e ON e.id = a.elder_id \
         WHERE e.citizen_id_bidx = $1 AND e.name = $2 AND a.state = 'waiting'",
    )
    .bind(&bidx)
    .bind(&name)
    .fetch_optional(&app.db.pool)
    .await?;
    let who = crate::audit::Who {
        actor_id: None,
        actor_name: format!("公众查询 {}", ip.as_deref().unwrap_or("-")),
    };
    let mut tx = app.db.begin().await?;
    crate::audit::append(
        &mut tx,
        &who,
        crate::audit::Entry {
            action: "admission.queue.public_lookup",
            entity: "admission_application",
            entity_id: row.as_ref().map(|r| r.get::<String, _>(0)).as_deref(),
            region_code: row.as_ref().map(|r| r.get::<String, _>(1)).as_deref(),
            detail: serde_json::json!({"found": row.is_some()}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    let Some(row) = row else {
        // Asked on this site and not in the queue yet (or refused): say so, with the reason.
        return Err(
            match super::request::status_of(&app.db, &bidx, &name).await? {
                Some(m) => ApiError::not_found(m),
                None => not_found(),
            },
        );
    };
    let (id, region): (String, String) = (row.get(0), row.get(1));
    let rc = yiyang_kernel::RegionCode::parse(&region).map_err(|_| not_found())?;
    let regions = app.regions.read().await;
    super::offer::expire_due(&app.db, &regions, today).await?;
    let (policy, _) = super::queue::policy_for(&app.db, &regions, &rc).await?;
    let (lo, hi) = rc.subtree_range();
    let list =
        super::queue::waiting(&app.db, super::queue::Codes::Subtree(&lo, &hi), today).await?;
    let ranked = super::queue::ranked(&policy, list, today);
    let waiting = ranked.len();
    let (placed, w) = ranked
        .into_iter()
        .find(|(p, _)| p.reference == id)
        .ok_or_else(not_found)?;
    let offer = super::offer::open_by_application(&app.db)
        .await?
        .remove(&id);
    Ok(Json(QueuePlace {
        region_name: regions.name(&region).unwrap_or("").to_string(),
        position: placed.position,
        waiting,
        tier_label: placed.tier_label,
        applied_on: w.applied_on,
        offer,
        on: today.to_string(),
        hotline: "12349".into(),
    }))
}

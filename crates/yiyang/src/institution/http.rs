use super::{
    AdmitReq, Admitted, BedBoard, BedChange, DischargeReq, LeaveReq, MonthOccupancy, MonthQuery,
    NewBeds, ResidentList, ResidentQuery, ReturnReq, TransferReq,
};
use crate::app::AppState;
use crate::identity::{Actor, Perm, Scope};
use crate::platform::error::{ApiError, ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, patch, post};
    axum::Router::new()
        .route("/orgs/{id}/beds", get(beds).post(add_beds))
        .route("/orgs/{id}/occupancy", get(occupancy))
        .route("/orgs/{id}/staffing", get(staffing))
        .route("/orgs/{id}/residents", get(residents))
        .route("/orgs/{id}/admissions", post(admit))
        .route("/beds/{id}", patch(change_bed))
        .route("/admissions/{id}/transfer", post(transfer))
        .route("/admissions/{id}/leave", post(leave))
        .route("/admissions/{id}/return", post(back))
        .route("/admissions/{id}/discharge", post(discharge))
        .route("/admission-policy", get(policy).put(publish_policy))
        .route("/public/vacancies", get(super::board::board))
        .route("/bed-summary", get(bed_summary))
        .route("/admission-queue", get(queue))
        .route("/admission-applications", post(apply))
        .route("/admission-applications/{id}/withdraw", post(withdraw))
        .route("/public/admission-requests", post(super::request::submit))
        .route("/admission-requests", get(requests))
        .route("/admission-requests/{id}/decision", post(decide_request))
        .route("/admission-requests/{id}/reveal", post(reveal_request))
        .route(
            "/orgs/{id}/family-beds",
            get(family_beds).post(add_family_bed),
        )
        .route("/family-beds/{id}/end", post(end_family_bed))
        .route("/beds/{id}/offer", post(offer_bed))
        .route("/orgs/{id}/offers", get(offers))
        .route("/offers/{id}/answer", post(answer_offer))
        .route("/public/queue-place", post(super::board::queue_place))
        .route(
            "/bed-subsidy-policy",
            get(subsidy_policy).put(publish_subsidy_policy),
        )
        .route("/bed-claims", get(claims).post(compute_claims))
        .route("/bed-claims/export", get(export_claims))
        .route("/bed-claims/{id}", get(claim))
        .route("/bed-claims/{id}/steps", post(claim_step))
        .route("/bed-claims/to-batch", post(claims_to_batch))
}

/// Beds and their counts are not personal: whoever reads records or figures of the region.
fn reader(actor: &Actor) -> ApiResult<Scope> {
    actor.org_reader()
}

/// Keeping beds and residents: the permission and an editing scope over the organisation's place.
fn keeper(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::InstitutionManage)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    Ok(actor.scope())
}

/// An organisation's beds with today's occupants (names for those who read individual records).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/beds", tag = "institution", params(("id" = String, Path)),
    responses((status = 200, body = BedBoard), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn beds(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<BedBoard>> {
    let scope = reader(&actor)?;
    let names = actor.org_people().is_ok();
    Ok(Json(super::beds(&app.db, &scope, &id, names).await?))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BedIds {
    pub ids: Vec<String>,
}

/// Add the beds of one room (one per label).
#[utoipa::path(post, path = "/api/v1/orgs/{id}/beds", tag = "institution", params(("id" = String, Path)),
    request_body = NewBeds,
    responses((status = 201, body = BedIds), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn add_beds(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<NewBeds>,
) -> ApiResult<(StatusCode, Json<BedIds>)> {
    let scope = keeper(&actor)?;
    let ids = super::add_beds(&app.db, &scope, &actor.who(), &id, req).await?;
    Ok((StatusCode::CREATED, Json(BedIds { ids })))
}

/// Change a bed's kind, or retire a vacant bed.
#[utoipa::path(patch, path = "/api/v1/beds/{id}", tag = "institution", params(("id" = String, Path)),
    request_body = BedChange,
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn change_bed(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(c): Json<BedChange>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    super::change_bed(&app.db, &scope, &actor.who(), &id, c).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Bed-days, occupied and leave days of a month, from the admission records.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/occupancy", tag = "institution",
    params(("id" = String, Path), MonthQuery),
    responses((status = 200, body = MonthOccupancy), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn occupancy(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<MonthQuery>,
) -> ApiResult<Json<MonthOccupancy>> {
    let scope = reader(&actor)?;
    Ok(Json(super::occupancy(&app.db, &scope, &id, &q).await?))
}

/// The home's staff against its residents and beds: caregiver ratios, social workers, certificates.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/staffing", tag = "institution", params(("id" = String, Path)),
    responses((status = 200, body = super::Staffing), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn staffing(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<super::Staffing>> {
    let scope = reader(&actor)?;
    Ok(Json(super::staffing(&app.db, &scope, &id).await?))
}

/// Residents (current or past) with their beds and history; an audited read.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/residents", tag = "institution",
    params(("id" = String, Path), ResidentQuery),
    responses((status = 200, body = ResidentList), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn residents(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<ResidentQuery>,
) -> ApiResult<Json<ResidentList>> {
    let scope = actor.org_people()?;
    Ok(Json(
        super::residents(&app.db, &scope, &actor.who(), &id, &q).await?,
    ))
}

/// Admit an elder onto a vacant bed: by registry id, or by citizen ID and name together.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/admissions", tag = "institution", params(("id" = String, Path)),
    request_body = AdmitReq,
    responses((status = 201, body = Admitted), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn admit(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<AdmitReq>,
) -> ApiResult<(StatusCode, Json<Admitted>)> {
    let scope = keeper(&actor)?;
    let people = actor.individuals().ok();
    let a = super::admit(
        &app.db,
        &app.keys,
        &scope,
        people.as_ref(),
        &actor.who(),
        &id,
        req,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// Move a resident to another vacant bed of the same organisation.
#[utoipa::path(post, path = "/api/v1/admissions/{id}/transfer", tag = "institution",
    params(("id" = String, Path)), request_body = TransferReq,
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn transfer(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<TransferReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    super::transfer(&app.db, &scope, &actor.who(), &id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Record a leave (hospital stay, visit home); the bed stays the resident's.
#[utoipa::path(post, path = "/api/v1/admissions/{id}/leave", tag = "institution",
    params(("id" = String, Path)), request_body = LeaveReq,
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn leave(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<LeaveReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    super::leave(&app.db, &scope, &actor.who(), &id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The resident is back from leave.
#[utoipa::path(post, path = "/api/v1/admissions/{id}/return", tag = "institution",
    params(("id" = String, Path)), request_body = ReturnReq,
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn back(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<ReturnReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    super::back(&app.db, &scope, &actor.who(), &id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Discharge a resident (death, transfer to another home, back home); the bed is free that day.
#[utoipa::path(post, path = "/api/v1/admissions/{id}/discharge", tag = "institution",
    params(("id" = String, Path)), request_body = DischargeReq,
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn discharge(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<DischargeReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    super::discharge(&app.db, &scope, &actor.who(), &id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PolicyQuery {
    /// The region (default: the caller's)
    pub region_code: Option<String>,
}

/// The admission queue's policy in force for a region: its own, the nearest above it, or the default.
#[utoipa::path(get, path = "/api/v1/admission-policy", tag = "institution", params(PolicyQuery),
    responses((status = 200, body = super::queue::PolicyView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn policy(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<PolicyQuery>,
) -> ApiResult<Json<super::queue::PolicyView>> {
    let scope = reader(&actor)?;
    let code = match q.region_code.as_deref().filter(|s| !s.is_empty()) {
        Some(r) => scope.region(r)?,
        None => actor.region.clone(),
    };
    let regions = app.regions.read().await;
    let (_, view) = super::queue::policy_for(&app.db, &regions, &code).await?;
    Ok(Json(view))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyReq {
    pub region_code: String,
    /// In order; the last without a rule takes everyone else (one is added when missing)
    pub tiers: Vec<super::queue::TierView>,
    /// Days an offered bed waits for the answer (1–30, default 5)
    pub offer_days: Option<i64>,
    /// Whether a refusal or no answer keeps the applicant's place (default true)
    pub refusal_keeps_place: Option<bool>,
}

/// Publish a region's admission queue policy (county or town); each tier's rule is checked.
#[utoipa::path(put, path = "/api/v1/admission-policy", tag = "institution", request_body = PolicyReq,
    responses((status = 204), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn publish_policy(
    State(app): State<AppState>,
    actor: Actor,
    Json(req): Json<PolicyReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    scope.regional()?;
    let code = scope.region(&req.region_code)?;
    super::queue::publish(
        &app.db,
        &actor.who(),
        &code,
        req.tiers,
        req.offer_days,
        req.refusal_keeps_place,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Region subtree (default: the caller's)
    pub region_code: Option<String>,
    /// Only these organisations, comma-separated (a page of the list; at most 200)
    pub org_ids: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OrgBeds {
    pub org_id: String,
    pub beds: i64,
    pub nursing: i64,
    pub occupied: i64,
    pub vacant: i64,
}

/// Beds, occupied and vacant today for every organisation with beds in a region (the 服务机构 list).
#[utoipa::path(get, path = "/api/v1/bed-summary", tag = "institution", params(SummaryQuery),
    responses((status = 200, body = Vec<OrgBeds>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn bed_summary(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<SummaryQuery>,
) -> ApiResult<Json<Vec<OrgBeds>>> {
    use sqlx::Row;
    let scope = reader(&actor)?;
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    // A page of the list asks for its own homes: a province's half a million beds are not read
    // for twenty rows. Occupancy by EXISTS on the open-stay index: as a LEFT JOIN PostgreSQL
    // hashed all 351k stays of the province for a page of 20 homes (70 ms against 7 ms). CROSS JOIN: SQLite then starts from the region's homes (left to itself,
    // without statistics, it walked every open bed by the place index: 0.5 s for a county).
    let ids: Vec<&str> = match scope.org.as_deref() {
        Some(own) => vec![own],
        None => q
            .org_ids
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
    };
    if ids.len() > 200 {
        return Err(ApiError::invalid("org_ids", "一次最多查询 200 家机构"));
    }
    let only = if ids.is_empty() {
        String::new()
    } else {
        format!(
            " AND b.org_id IN ({})",
            (0..ids.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT b.org_id, COUNT(b.id), CAST(SUM(b.nursing) AS BIGINT), \
         CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM bed_stay s WHERE s.bed_id = b.id AND s.until_on IS NULL) THEN 1 ELSE 0 END) AS BIGINT) \
         FROM organisation o CROSS JOIN bed b \
         WHERE b.org_id = o.id AND b.status = 'open' AND o.region_code >= $1 AND o.region_code <= $2{only} GROUP BY b.org_id"
    )))
    .bind(lo)
    .bind(hi);
    for id in ids {
        query = query.bind(id.to_string());
    }
    let rows = query.fetch_all(&app.db.pool).await?;
    Ok(Json(
        rows.iter()
            .map(|r| {
                let (beds, occupied): (i64, i64) = (r.get(1), r.get(3));
                OrgBeds {
                    org_id: r.get(0),
                    beds,
                    nursing: r.get(2),
                    occupied,
                    vacant: beds - occupied,
                }
            })
            .collect(),
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// The region whose queue (default: the caller's)
    pub region_code: Option<String>,
    /// Ranking date YYYY-MM-DD (default today)
    pub on: Option<String>,
}

/// The waiting applications in queue order, with tier and reasons (names masked); audited.
#[utoipa::path(get, path = "/api/v1/admission-queue", tag = "institution", params(QueueQuery),
    responses((status = 200, body = super::queue::Queue), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn queue(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Json<super::queue::Queue>> {
    // The region's whole queue is the bureau's; a home's manager offers her beds to it instead.
    let scope = actor.individuals()?;
    scope.regional()?;
    let code = match q.region_code.as_deref().filter(|s| !s.is_empty()) {
        Some(r) => scope.region(r)?,
        None => actor.region.clone(),
    };
    let on = match q.on.as_deref().filter(|s| !s.is_empty()) {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid("on", "排序日期应为 YYYY-MM-DD"))?,
        None => crate::platform::today(),
    };
    let regions = app.regions.read().await;
    Ok(Json(
        super::queue::queue(&app.db, &regions, &scope, &actor.who(), &code, on).await?,
    ))
}

/// Record an application for a public bed (by registry id, or citizen ID and name together).
#[utoipa::path(post, path = "/api/v1/admission-applications", tag = "institution",
    request_body = super::queue::ApplyReq,
    responses((status = 201, body = super::queue::Applied), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn apply(
    State(app): State<AppState>,
    actor: Actor,
    Json(req): Json<super::queue::ApplyReq>,
) -> ApiResult<(StatusCode, Json<super::queue::Applied>)> {
    let scope = keeper(&actor)?;
    scope.regional()?;
    let people = actor.individuals().ok();
    let a = super::queue::apply(
        &app.db,
        &app.keys,
        &scope,
        people.as_ref(),
        &actor.who(),
        req,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawReq {
    pub reason: String,
}

/// Withdraw a waiting application, with the reason.
#[utoipa::path(post, path = "/api/v1/admission-applications/{id}/withdraw", tag = "institution",
    params(("id" = String, Path)), request_body = WithdrawReq,
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn withdraw(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<WithdrawReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    scope.regional()?;
    super::queue::withdraw(&app.db, &scope, &actor.who(), &id, &req.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- applications made on the public pages ------------------------------------------------------

/// The families' applications made on the public pages and not yet taken (IDs and phones masked):
/// the caller's area, and for a county office those the registry does not know yet. Audited.
#[utoipa::path(get, path = "/api/v1/admission-requests", tag = "institution",
    responses((status = 200, body = Vec<super::request::Request>), (status = 403, body = Problem)))]
pub async fn requests(
    State(app): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<super::request::Request>>> {
    keeper(&actor)?.regional()?;
    let people = actor.individuals()?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::request::list(&app.db, &regions, &people, &actor.who()).await?,
    ))
}

/// Take a family's application into the queue (dated the day they asked) or refuse it with the
/// reason they will read.
#[utoipa::path(post, path = "/api/v1/admission-requests/{id}/decision", tag = "institution",
    params(("id" = String, Path)), request_body = super::request::Decision,
    responses((status = 200, body = super::request::Decided), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decide_request(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(d): Json<super::request::Decision>,
) -> ApiResult<Json<super::request::Decided>> {
    let scope = keeper(&actor)?;
    scope.regional()?;
    let people = actor.individuals()?;
    Ok(Json(
        super::request::decide(&app.db, &app.keys, &scope, &people, &actor.who(), &id, d).await?,
    ))
}

/// The family's phone and full ID of an open request, to call back: with the permission to reveal
/// IDs and a reason; audited.
#[utoipa::path(post, path = "/api/v1/admission-requests/{id}/reveal", tag = "institution",
    params(("id" = String, Path)), request_body = super::request::CallBackReq,
    responses((status = 200, body = super::request::CallBack), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reveal_request(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<super::request::CallBackReq>,
) -> ApiResult<Json<super::request::CallBack>> {
    actor.require(Perm::RegistryReveal)?;
    let people = actor.individuals()?;
    people.regional()?;
    Ok(Json(
        super::request::reveal(&app.db, &app.keys, &people, &actor.who(), &id, &r.reason).await?,
    ))
}

// ---- bed subsidies -----------------------------------------------------------------------------

use super::claim;

/// Money: the institution permission and the catalogue's (who makes payment batches).
fn payer(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::CatalogManage)?;
    keeper(actor)
}

/// The bed subsidy amounts in force for a region (its own, the nearest above it, or the default).
#[utoipa::path(get, path = "/api/v1/bed-subsidy-policy", tag = "institution", params(PolicyQuery),
    responses((status = 200, body = claim::SubsidyPolicyView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn subsidy_policy(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<PolicyQuery>,
) -> ApiResult<Json<claim::SubsidyPolicyView>> {
    let scope = reader(&actor)?;
    let code = match q.region_code.as_deref().filter(|s| !s.is_empty()) {
        Some(r) => scope.region(r)?,
        None => actor.region.clone(),
    };
    let regions = app.regions.read().await;
    Ok(Json(claim::policy_for(&app.db, &regions, &code).await?.1))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubsidyPolicyReq {
    pub region_code: String,
    pub amounts: claim::SubsidyAmounts,
}

/// Publish a region's bed subsidy amounts (元); audited.
#[utoipa::path(put, path = "/api/v1/bed-subsidy-policy", tag = "institution", request_body = SubsidyPolicyReq,
    responses((status = 204), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn publish_subsidy_policy(
    State(app): State<AppState>,
    actor: Actor,
    Json(req): Json<SubsidyPolicyReq>,
) -> ApiResult<StatusCode> {
    let scope = payer(&actor)?;
    let code = scope.region(&req.region_code)?;
    claim::publish(&app.db, &actor.who(), &code, &req.amounts).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The month's bed subsidy claims of a region, one per home (figures only).
#[utoipa::path(get, path = "/api/v1/bed-claims", tag = "institution", params(claim::ClaimQuery),
    responses((status = 200, body = claim::ClaimList), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn claims(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<claim::ClaimQuery>,
) -> ApiResult<Json<claim::ClaimList>> {
    let scope = reader(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(
        claim::list(&app.db, &regions, &scope, actor.region.as_str(), &q).await?,
    ))
}

/// Make the month's claims of every home in the region from its records (drafts are made again;
/// reviewed and paid claims are kept).
#[utoipa::path(post, path = "/api/v1/bed-claims", tag = "institution", request_body = claim::ComputeReq,
    responses((status = 200, body = claim::Computed), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn compute_claims(
    State(app): State<AppState>,
    actor: Actor,
    Json(req): Json<claim::ComputeReq>,
) -> ApiResult<Json<claim::Computed>> {
    let scope = payer(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(
        claim::compute(&app.db, &regions, &scope, &actor.who(), req).await?,
    ))
}

/// The month's claims as a spreadsheet (homes and amounts; every line with its reasons; no names).
#[utoipa::path(get, path = "/api/v1/bed-claims/export", tag = "institution", params(claim::ClaimQuery),
    responses((status = 200, description = "XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn export_claims(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<claim::ClaimQuery>,
) -> ApiResult<axum::response::Response> {
    let scope = payer(&actor)?;
    let regions = app.regions.read().await;
    let (bytes, month) = claim::export(
        &app.db,
        &regions,
        &scope,
        &actor.who(),
        actor.region.as_str(),
        &q,
    )
    .await?;
    Ok(crate::registry::http::xlsx(
        bytes,
        &format!("{month}床位补贴申领"),
    ))
}

/// One claim with every line (residents by name; audited).
#[utoipa::path(get, path = "/api/v1/bed-claims/{id}", tag = "institution", params(("id" = String, Path)),
    responses((status = 200, body = claim::ClaimDetail), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn claim(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<claim::ClaimDetail>> {
    let scope = actor.org_people()?;
    let regions = app.regions.read().await;
    Ok(Json(
        claim::detail(&app.db, &regions, &scope, &actor.who(), &id).await?,
    ))
}

/// Put a month's reviewed claims into a draft payment batch: the homes are paid to their accounts
/// through the batch's bank file, and the claims are paid when the batch is.
#[utoipa::path(post, path = "/api/v1/bed-claims/to-batch", tag = "institution", request_body = claim::ToBatchReq,
    responses((status = 200, body = claim::ToBatch), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn claims_to_batch(
    State(app): State<AppState>,
    actor: Actor,
    Json(req): Json<claim::ToBatchReq>,
) -> ApiResult<Json<claim::ToBatch>> {
    let scope = payer(&actor)?;
    Ok(Json(
        claim::to_batch(&app.db, &scope, &actor.who(), req).await?,
    ))
}

/// Review a claim (not its maker), mark it paid, or discard a draft.
#[utoipa::path(post, path = "/api/v1/bed-claims/{id}/steps", tag = "institution", params(("id" = String, Path)),
    request_body = claim::ClaimStep,
    responses((status = 200, body = Option<claim::ClaimRow>), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn claim_step(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(s): Json<claim::ClaimStep>,
) -> ApiResult<Json<Option<claim::ClaimRow>>> {
    let scope = payer(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(
        claim::step(&app.db, &regions, &scope, &actor.who(), &id, s).await?,
    ))
}

// ---- offers of public beds to the queue --------------------------------------------------------

/// Offer a vacant public bed to the first waiting applicant whose needs it meets (by the policy
/// of the home's region); the bed is held for them for the policy's days.
#[utoipa::path(post, path = "/api/v1/beds/{id}/offer", tag = "institution", params(("id" = String, Path)),
    responses((status = 201, body = super::offer::Offer), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn offer_bed(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<super::offer::Offer>)> {
    let scope = keeper(&actor)?;
    let regions = app.regions.read().await;
    let o = super::offer::offer(&app.db, &regions, &scope, &actor.who(), &id).await?;
    Ok((StatusCode::CREATED, Json(o)))
}

/// A home's offers: those awaiting an answer first, then the last ones answered (names masked).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/offers", tag = "institution", params(("id" = String, Path)),
    responses((status = 200, body = Vec<super::offer::Offer>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn offers(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<super::offer::Offer>>> {
    let scope = actor.org_people()?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::offer::list(&app.db, &regions, &scope, &id).await?,
    ))
}

/// The family's answer to an offer: `accept` admits onto the offered bed (201 with the
/// admission), `refuse` closes it (204) and, by the policy, keeps the place or ends the
/// application.
#[utoipa::path(post, path = "/api/v1/offers/{id}/answer", tag = "institution", params(("id" = String, Path)),
    request_body = super::offer::Answer,
    responses((status = 201, body = Admitted), (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn answer_offer(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(a): Json<super::offer::Answer>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let scope = keeper(&actor)?;
    let regions = app.regions.read().await;
    Ok(
        match super::offer::answer(&app.db, &regions, &scope, &actor.who(), &id, a).await? {
            Some(adm) => (StatusCode::CREATED, Json(adm)).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

// ---- family care beds --------------------------------------------------------------------------

/// A provider's family care beds (家庭养老床位), in use first; names, so the read is audited.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/family-beds", tag = "institution", params(("id" = String, Path)),
    responses((status = 200, body = Vec<super::family::FamilyBed>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn family_beds(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<super::family::FamilyBed>>> {
    let scope = actor.org_people()?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::family::list(&app.db, &regions, &scope, &actor.who(), &id).await?,
    ))
}

/// Set up a family care bed under a contract with this organisation: someone with a valid
/// assessment, not living in a home, the home adapted (an emergency call at least).
#[utoipa::path(post, path = "/api/v1/orgs/{id}/family-beds", tag = "institution", params(("id" = String, Path)),
    request_body = super::family::NewFamilyBed,
    responses((status = 201, body = super::family::FamilyBed), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_family_bed(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<super::family::NewFamilyBed>,
) -> ApiResult<(StatusCode, Json<super::family::FamilyBed>)> {
    let scope = keeper(&actor)?;
    let people = actor.individuals().ok();
    let b = super::family::create(
        &app.db,
        &app.keys,
        &scope,
        people.as_ref(),
        &actor.who(),
        &id,
        req,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(b)))
}

/// End a family care bed's contract on a day, with the reason.
#[utoipa::path(post, path = "/api/v1/family-beds/{id}/end", tag = "institution", params(("id" = String, Path)),
    request_body = super::family::EndReq,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn end_family_bed(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(req): Json<super::family::EndReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    super::family::end(&app.db, &scope, &actor.who(), &id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

use super::contract::{Contract, ContractReq, HospitalStay, HospitalStayReq};
use super::quota::QuotaView;
use super::settle::{
    OverrideReq, Recorded, SettleToBatchReq, Settlement, SettlementQuery, SettlementRow,
};
use super::{Candidate, CodeSent, Dispatch, NewOrder, Order, OrderQuery, Step};
use crate::app::AppState;
use crate::identity::{Actor, Perm, Scope};
use crate::platform::error::{ApiError, ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/service-orders", get(list).post(create))
        .route("/service-orders/{id}", get(detail))
        .route("/service-orders/{id}/dispatch", post(dispatch))
        .route("/service-orders/{id}/candidates", get(candidates))
        .route("/service-orders/{id}/steps", post(step))
        .route("/service-orders/{id}/code", post(send_code))
        .route("/service-orders/{id}/overrides", post(override_flag))
        .route("/meals/{id}/overrides", post(override_meal))
        .route(
            "/service-orders/{id}/photos",
            get(photos)
                .post(add_photo)
                .layer(axum::extract::DefaultBodyLimit::max(
                    super::photo::MAX_BYTES + 64 * 1024,
                )),
        )
        .route("/service-orders/{id}/photos/{photo_id}", get(photo))
        .route("/service-orders/{id}/signature", get(signature))
        .route("/elders/{id}/service-quota", get(quota))
        .route("/elders/{id}/hospital-stays", post(hospital_stay))
        .route("/providers/{id}/contract", get(contract).put(put_contract))
        .route("/home-settlements", get(settlements).post(record))
        .route("/home-settlements/preview", get(preview))
        .route("/home-settlements/to-batch", post(to_batch))
        .route("/home-settlements/{id}", get(settlement))
        .route("/home-settlements/{id}/approve", post(approve))
        .route("/home-settlements/{id}/statement", get(statement))
        .route("/care-plans", post(create_plan))
        .route("/care-plans/{id}/end", post(end_plan))
        .route("/elders/{id}/care-plans", get(plans))
        .route("/meals", post(serve_meal))
        .route("/meal-points/{id}/day", get(meal_day))
        .merge(super::family::routes())
}

/// Placing and moving orders: the permission and an editing scope.
fn keeper(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::HomeServiceManage)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    Ok(actor.scope())
}

/// Placing a visit: whoever keeps orders, or the 12349 line's operator taking an elder's call.
fn placer(actor: &Actor) -> ApiResult<Scope> {
    if actor.has(Perm::ServiceOrderPlace) && !actor.has(Perm::HomeServiceManage) {
        if !actor.scopes.edit {
            return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
        }
        return Ok(actor.scope());
    }
    keeper(actor)
}

/// Doing a visit: a caregiver on her own orders (bound to her staff record), or whoever places
/// and moves orders.
fn visitor(actor: &Actor) -> ApiResult<Scope> {
    if !actor.has(Perm::HomeVisit) {
        return keeper(actor);
    }
    if actor.staff_id.is_none() || !actor.scopes.edit {
        return Err(ApiError::forbidden(
            "护理员账号未对应机构人员，请联系管理员",
        ));
    }
    Ok(actor.scope())
}

/// Orders name the elder: read with an individual scope (names shown); with figures only, names
/// masked. A caregiver reads her own visits, and a provider's dispatcher its orders, with names
/// and addresses: they go to the homes.
fn reader(actor: &Actor) -> ApiResult<(Scope, bool)> {
    if actor.has(Perm::HomeVisit) {
        return visitor(actor).map(|s| (s, true));
    }
    if actor.org_id.is_some() && actor.has(Perm::HomeServiceManage) && actor.scopes.individuals {
        return Ok((actor.scope(), true));
    }
    match actor.individuals() {
        Ok(s) => Ok((s, true)),
        Err(_) => actor.aggregates().map(|s| (s, false)),
    }
}

/// Place a home-visit order with a provider for an elder.
#[utoipa::path(post, path = "/api/v1/service-orders", tag = "home_service", request_body = NewOrder,
    responses((status = 201, body = Order), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    actor: Actor,
    Json(f): Json<NewOrder>,
) -> ApiResult<(StatusCode, Json<Order>)> {
    let scope = placer(&actor)?;
    Ok((
        StatusCode::CREATED,
        Json(super::create(&app.db, &scope, &actor.who(), f).await?),
    ))
}

/// The day's orders of the caller's area (or one provider), by time.
#[utoipa::path(get, path = "/api/v1/service-orders", tag = "home_service", params(OrderQuery),
    responses((status = 200, body = Vec<Order>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<OrderQuery>,
) -> ApiResult<Json<Vec<Order>>> {
    let (scope, names) = reader(&actor)?;
    Ok(Json(super::list(&app.db, &scope, &q, names).await?))
}

#[utoipa::path(get, path = "/api/v1/service-orders/{id}", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn detail(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Order>> {
    let (scope, names) = reader(&actor)?;
    Ok(Json(super::get(&app.db, &scope, &id, names).await?))
}

/// Give an order to a caregiver of its provider (qualified where the service needs it, free at
/// that time).
#[utoipa::path(post, path = "/api/v1/service-orders/{id}/dispatch", tag = "home_service", params(("id" = String, Path)),
    request_body = Dispatch,
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn dispatch(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(d): Json<Dispatch>,
) -> ApiResult<Json<Order>> {
    let scope = keeper(&actor)?;
    Ok(Json(
        super::dispatch(&app.db, &scope, &actor.who(), &id, d).await?,
    ))
}

/// Who could take the order: its provider's caregivers, those who can (qualified, free) first,
/// nearest first, then the least busy; the first is recommended.
#[utoipa::path(get, path = "/api/v1/service-orders/{id}/candidates", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Candidate>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn candidates(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Candidate>>> {
    let scope = keeper(&actor)?;
    Ok(Json(super::candidates(&app.db, &scope, &id).await?))
}

/// One step of a visit (accept, check in, check out, confirm, cancel, no show), under the id the
/// sender made for it: sent again, done once.
#[utoipa::path(post, path = "/api/v1/service-orders/{id}/steps", tag = "home_service", params(("id" = String, Path)),
    request_body = Step,
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn step(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(s): Json<Step>,
) -> ApiResult<Json<Order>> {
    let scope = visitor(&actor)?;
    Ok(Json(
        super::step(
            &app.db,
            &app.keys,
            app.files.as_ref(),
            &scope,
            &actor.who(),
            &id,
            s,
        )
        .await?,
    ))
}

/// Send the family a one-time code to confirm the visit (after check-out), through the
/// notification outbox.
#[utoipa::path(post, path = "/api/v1/service-orders/{id}/code", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, body = CodeSent), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn send_code(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<CodeSent>> {
    let scope = visitor(&actor)?;
    Ok(Json(
        super::send_code(&app.db, &app.keys, &scope, &actor.who(), &id).await?,
    ))
}

/// Let one anomaly of a visit through to the settlement, with a reason.
#[utoipa::path(post, path = "/api/v1/service-orders/{id}/overrides", tag = "home_service", params(("id" = String, Path)),
    request_body = OverrideReq,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn override_flag(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<OverrideReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    super::settle::override_flag(
        &app.db,
        &scope,
        &actor.who(),
        super::settle::Target::Order(&id),
        r,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Let one anomaly of a meal (after the elder's death, in hospital) through to the settlement,
/// with a reason.
#[utoipa::path(post, path = "/api/v1/meals/{id}/overrides", tag = "home_service", params(("id" = String, Path)),
    request_body = OverrideReq,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn override_meal(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<OverrideReq>,
) -> ApiResult<StatusCode> {
    let scope = keeper(&actor)?;
    super::settle::override_flag(
        &app.db,
        &scope,
        &actor.who(),
        super::settle::Target::Meal(&id),
        r,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// YYYY-MM (default this month)
    pub month: Option<String>,
}

/// An elder's home-visit quota for a month: granted, used, left, and visits paid by the family.
#[utoipa::path(get, path = "/api/v1/elders/{id}/service-quota", tag = "home_service", params(("id" = String, Path), MonthQuery),
    responses((status = 200, body = QuotaView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn quota(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<MonthQuery>,
) -> ApiResult<Json<QuotaView>> {
    let scope = actor.individuals()?;
    let month = match q.month.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => super::settle::month_minutes(m)?.0,
        None => crate::platform::today().format("%Y-%m").to_string(),
    };
    Ok(Json(
        super::quota::view(&app.db, &scope, &id, &month).await?,
    ))
}

/// Record a hospital stay (visits during it are held back at settlement).
#[utoipa::path(post, path = "/api/v1/elders/{id}/hospital-stays", tag = "home_service", params(("id" = String, Path)),
    request_body = HospitalStayReq,
    responses((status = 201, body = HospitalStay), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn hospital_stay(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<HospitalStayReq>,
) -> ApiResult<(StatusCode, Json<HospitalStay>)> {
    let scope = keeper(&actor)?;
    Ok((
        StatusCode::CREATED,
        Json(super::contract::add_stay(&app.db, &scope, &actor.who(), &id, r).await?),
    ))
}

/// A provider's contract period and price list.
#[utoipa::path(get, path = "/api/v1/providers/{id}/contract", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, body = Contract), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn contract(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Contract>> {
    let scope = keeper(&actor)?;
    Ok(Json(super::contract::get(&app.db, &scope, &id).await?))
}

/// Set a provider's contract period and its price per service.
#[utoipa::path(put, path = "/api/v1/providers/{id}/contract", tag = "home_service", params(("id" = String, Path)),
    request_body = ContractReq,
    responses((status = 200, body = Contract), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn put_contract(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<ContractReq>,
) -> ApiResult<Json<Contract>> {
    let scope = keeper(&actor)?;
    Ok(Json(
        super::contract::put(&app.db, &scope, &actor.who(), &id, r).await?,
    ))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// YYYY-MM
    pub month: String,
    /// A region inside the caller's
    pub region_code: Option<String>,
    /// One provider
    pub provider_id: Option<String>,
}

/// What a month would settle to, per provider, with every visit held back and why (nothing
/// written).
#[utoipa::path(get, path = "/api/v1/home-settlements/preview", tag = "home_service", params(PreviewQuery),
    responses((status = 200, body = Settlement), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn preview(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<PreviewQuery>,
) -> ApiResult<Json<Settlement>> {
    let scope = keeper(&actor)?;
    Ok(Json(
        super::settle::compute(
            &app.db,
            &scope,
            &q.month,
            q.region_code.as_deref().filter(|r| !r.is_empty()),
            q.provider_id.as_deref().filter(|r| !r.is_empty()),
        )
        .await?,
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordReq {
    /// YYYY-MM
    pub month: String,
    /// A region inside the caller's (default: all of it)
    pub region_code: Option<String>,
}

/// Settle a month: each provider's settlement recorded as a draft for approval.
#[utoipa::path(post, path = "/api/v1/home-settlements", tag = "home_service", request_body = RecordReq,
    responses((status = 200, body = Recorded), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn record(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<RecordReq>,
) -> ApiResult<Json<Recorded>> {
    let scope = keeper(&actor)?;
    Ok(Json(
        super::settle::record(
            &app.db,
            &scope,
            &actor.who(),
            &r.month,
            r.region_code.as_deref().filter(|r| !r.is_empty()),
        )
        .await?,
    ))
}

/// Recorded settlements of a month.
#[utoipa::path(get, path = "/api/v1/home-settlements", tag = "home_service", params(SettlementQuery),
    responses((status = 200, body = Vec<SettlementRow>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn settlements(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<SettlementQuery>,
) -> ApiResult<Json<Vec<SettlementRow>>> {
    let scope = keeper(&actor)?;
    Ok(Json(super::settle::list(&app.db, &scope, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/home-settlements/{id}", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, body = SettlementRow), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn settlement(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<SettlementRow>> {
    let scope = keeper(&actor)?;
    Ok(Json(super::settle::get(&app.db, &scope, &id).await?))
}

/// Approve a provider's settlement (someone other than who recorded it).
#[utoipa::path(post, path = "/api/v1/home-settlements/{id}/approve", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, body = SettlementRow), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn approve(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<SettlementRow>> {
    let scope = keeper(&actor)?;
    Ok(Json(
        super::settle::approve(&app.db, &scope, &actor.who(), &id).await?,
    ))
}

/// Put a month's approved settlements into a draft payment batch (the bank file pays providers).
#[utoipa::path(post, path = "/api/v1/home-settlements/to-batch", tag = "home_service", request_body = SettleToBatchReq,
    responses((status = 200, body = crate::institution::claim::ToBatch), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn to_batch(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<SettleToBatchReq>,
) -> ApiResult<Json<crate::institution::claim::ToBatch>> {
    let scope = keeper(&actor)?;
    Ok(Json(
        super::settle::to_batch(&app.db, &scope, &actor.who(), r).await?,
    ))
}

/// The meal counter: its own account (bound to the meal point) or an officer, with an editing
/// scope.
fn counter(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::MealServe)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    Ok(actor.scope())
}

/// Record a meal served at a meal point's counter (老年助餐): the elder by ID card number, the
/// price from the meal point's contract, less the elder's meal subsidy (one subsidised lunch and
/// supper a day). Under the id the counter made for it: sent again, recorded once.
#[utoipa::path(post, path = "/api/v1/meals", tag = "home_service", request_body = super::meal::ServeReq,
    responses((status = 200, body = super::meal::Served), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn serve_meal(
    State(app): State<AppState>,
    actor: Actor,
    Json(q): Json<super::meal::ServeReq>,
) -> ApiResult<Json<super::meal::Served>> {
    let scope = counter(&actor)?;
    Ok(Json(
        super::meal::serve(&app.db, &app.keys, &scope, &actor.who(), q).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayQuery {
    /// YYYY-MM-DD (default today)
    pub date: Option<String>,
}

/// A meal point's day: lunches and suppers served, the subsidy given and what the elders paid.
#[utoipa::path(get, path = "/api/v1/meal-points/{id}/day", tag = "home_service", params(("id" = String, Path), DayQuery),
    responses((status = 200, body = super::meal::MealDay), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn meal_day(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<DayQuery>,
) -> ApiResult<Json<super::meal::MealDay>> {
    let scope = counter(&actor)?;
    let day = q
        .date
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| crate::platform::today().to_string());
    Ok(Json(super::meal::day_of(&app.db, &scope, &id, &day).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhotoQuery {
    /// The photo's id, made on the phone (UUID): sent twice, kept once
    pub photo_id: String,
}

/// Keep a photo of a visit (JPEG or PNG, at most 8 MB, the file itself as the body), between
/// check-in and confirmation; the place and time the camera wrote into it are kept. Audited.
#[utoipa::path(post, path = "/api/v1/service-orders/{id}/photos", tag = "home_service",
    params(("id" = String, Path), PhotoQuery),
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "照片文件（JPEG 或 PNG，不超过 8 MB）"),
    responses((status = 201, body = super::photo::Photo), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn add_photo(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<PhotoQuery>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<super::photo::Photo>)> {
    let scope = visitor(&actor)?;
    let p = super::photo::add(
        &app.db,
        app.files.as_ref(),
        &scope,
        &actor.who(),
        &id,
        &q.photo_id,
        &body,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Who may see a visit's photos: those who read the order's names (the photos show the home).
fn photo_reader(actor: &Actor) -> ApiResult<Scope> {
    match reader(actor)? {
        (scope, true) => Ok(scope),
        _ => Err(ApiError::forbidden("查看上门照片需要查看个人信息的权限")),
    }
}

/// A visit's photos (what was kept of each; the files themselves one by one).
#[utoipa::path(get, path = "/api/v1/service-orders/{id}/photos", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, body = Vec<super::photo::Photo>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn photos(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<super::photo::Photo>>> {
    let scope = photo_reader(&actor)?;
    Ok(Json(super::photo::list(&app.db, &scope, &id).await?))
}

/// One photo of a visit, the file itself; each look is audited.
#[utoipa::path(get, path = "/api/v1/service-orders/{id}/photos/{photo_id}", tag = "home_service",
    params(("id" = String, Path), ("photo_id" = String, Path)),
    responses((status = 200, description = "the photo (JPEG or PNG)", content_type = "image/jpeg"),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn photo(
    State(app): State<AppState>,
    actor: Actor,
    Path((id, photo_id)): Path<(String, String)>,
) -> ApiResult<axum::response::Response> {
    let scope = photo_reader(&actor)?;
    let (mime, bytes, region) =
        super::photo::bytes(&app.db, app.files.as_ref(), &scope, &id, &photo_id).await?;
    let detail = serde_json::json!({"photo_id": photo_id}).to_string();
    let look = (
        "service_order.photo_view",
        id.as_str(),
        region.as_str(),
        detail,
    );
    image_looked_at(&app, &actor, look, mime, bytes).await
}

/// A visit's image (a photo, the elder's signature) answered once its look is audited: none from
/// a cache, none left on a shared office PC.
async fn image_looked_at(
    app: &AppState,
    actor: &Actor,
    (action, id, region, detail): (&'static str, &str, &str, String),
    mime: String,
    bytes: Vec<u8>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let entry = crate::audit::Entry {
        action,
        entity: "service_order",
        entity_id: Some(id),
        region_code: Some(region),
        detail,
    };
    app.read_audit.record(&actor.who(), entry).await?;
    let headers = [
        (axum::http::header::CONTENT_TYPE, mime),
        (axum::http::header::CACHE_CONTROL, "no-store".into()),
    ];
    Ok((headers, bytes).into_response())
}

/// The elder's signature that confirmed a visit (PNG), for the visit's readers; each look is
/// audited.
#[utoipa::path(get, path = "/api/v1/service-orders/{id}/signature", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, description = "the signature (PNG)", content_type = "image/png"),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn signature(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<axum::response::Response> {
    let scope = photo_reader(&actor)?;
    let (bytes, region) = super::signature(&app.db, app.files.as_ref(), &scope, &id).await?;
    let look = (
        "service_order.signature_view",
        id.as_str(),
        region.as_str(),
        "{}".into(),
    );
    image_looked_at(&app, &actor, look, "image/png".into(), bytes).await
}

/// A provider's statement of a recorded settlement (对账单, XLSX): totals, the split by level,
/// every paid visit and meal, and what was held back and why; names masked. Audited.
#[utoipa::path(get, path = "/api/v1/home-settlements/{id}/statement", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, description = "XLSX file", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn statement(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<axum::response::Response> {
    let scope = keeper(&actor)?;
    let (bytes, name) = super::settle::statement(&app.db, &scope, &actor.who(), &id).await?;
    Ok(crate::registry::http::xlsx(bytes, &name))
}

/// Set up a care plan (服务计划): a recurring visit that places its own orders a week ahead.
#[utoipa::path(post, path = "/api/v1/care-plans", tag = "home_service", request_body = super::plan::NewPlan,
    responses((status = 201, body = super::plan::Plan), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_plan(
    State(app): State<AppState>,
    actor: Actor,
    Json(f): Json<super::plan::NewPlan>,
) -> ApiResult<(StatusCode, Json<super::plan::Plan>)> {
    let scope = keeper(&actor)?;
    Ok((
        StatusCode::CREATED,
        Json(super::plan::create(&app.db, &scope, &actor.who(), f).await?),
    ))
}

/// An elder's care plans.
#[utoipa::path(get, path = "/api/v1/elders/{id}/care-plans", tag = "home_service", params(("id" = String, Path)),
    responses((status = 200, body = Vec<super::plan::Plan>), (status = 403, body = Problem)))]
pub async fn plans(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<super::plan::Plan>>> {
    let (scope, _) = reader(&actor)?;
    Ok(Json(super::plan::of_elder(&app.db, &scope, &id).await?))
}

/// End a care plan: no more orders; those not yet dispatched are cancelled with the reason.
#[utoipa::path(post, path = "/api/v1/care-plans/{id}/end", tag = "home_service", params(("id" = String, Path)),
    request_body = super::plan::EndPlan,
    responses((status = 200, body = super::plan::Plan), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn end_plan(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(e): Json<super::plan::EndPlan>,
) -> ApiResult<Json<super::plan::Plan>> {
    let scope = keeper(&actor)?;
    Ok(Json(
        super::plan::end(&app.db, &scope, &actor.who(), &id, &e.reason).await?,
    ))
}

use super::{Dispatch, NewOrder, Order, OrderQuery, Step};
use crate::app::AppState;
use crate::identity::{Actor, Perm, Scope};
use crate::platform::error::{ApiError, ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/service-orders", get(list).post(create))
        .route("/service-orders/{id}", get(detail))
        .route("/service-orders/{id}/dispatch", post(dispatch))
        .route("/service-orders/{id}/steps", post(step))
}

/// Placing and moving orders: the permission and an editing scope.
fn keeper(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::HomeServiceManage)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    Ok(actor.scope())
}

/// Orders name the elder: read with an individual scope (names shown); with figures only, names
/// masked.
fn reader(actor: &Actor) -> ApiResult<(Scope, bool)> {
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
    let scope = keeper(&actor)?;
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
    let scope = keeper(&actor)?;
    Ok(Json(
        super::step(&app.db, &scope, &actor.who(), &id, s).await?,
    ))
}

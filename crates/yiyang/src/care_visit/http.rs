use super::duty::{self, AreaAssignReq, Areas, DutyRule, Refresh, RulesView};
use super::{CloseReferral, DueQuery, NewVisit, RateView, Visit, VisitDuePage, VisitQuery};
use crate::app::AppState;
use crate::audit::Entry;
use crate::identity::{Actor, Perm, Scope};
use crate::platform::error::{ApiError, ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::Deserialize;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/care-visits", get(list).post(record))
        .route("/care-visits/due", get(due))
        .route("/care-visits/due/export", get(due_export))
        .route("/care-visits/rate", get(rate))
        .route("/care-visits/{id}/referral", post(close_referral))
        .route("/visit-duty-rules", get(rules).put(set_rules))
        .route("/visit-duties/refresh", post(refresh))
        .route("/visit-areas", get(areas))
        .route("/visit-areas/{region_code}", put(assign))
}

/// Reading elders' duties and visits: the permission and individual scope.
fn visitor(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::CareVisitRecord)?;
    if !actor.scopes.individuals {
        return Err(ApiError::forbidden("您的账号没有“查询个人”的范围"));
    }
    Ok(actor.scope())
}

/// Recording a visit: and the editing scope.
fn recorder(actor: &Actor) -> ApiResult<Scope> {
    let s = visitor(actor)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden(
            "您的账号没有“编辑”的范围，不能记录探访",
        ));
    }
    Ok(s)
}

fn manager(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::CareVisitManage)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    let s = actor.scope();
    s.regional()?;
    Ok(s)
}

/// The elders who must be visited in the caller's area and where each duty stands today:
/// overdue first, then by the day the visit is due.
#[utoipa::path(get, path = "/api/v1/care-visits/due", tag = "care_visit", params(DueQuery),
    responses((status = 200, body = VisitDuePage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn due(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<DueQuery>,
) -> ApiResult<Json<VisitDuePage>> {
    let scope = visitor(&actor)?;
    let page = {
        let regions = app.regions.read().await;
        super::due(
            &app.db,
            &regions,
            &scope,
            &q,
            &actor.user_id,
            crate::platform::today(),
        )
        .await?
    };
    // A list of names, addresses and masked phones: an audited read, as the indicator's lists.
    let (lo, _) = scope.narrow(q.region_code.as_deref())?;
    app.read_audit
        .record(
            &actor.who(),
            Entry {
                action: "care_visit.due_list",
                entity: "region",
                entity_id: q.region_code.as_deref(),
                region_code: Some(&lo),
                detail: serde_json::json!({"standing": q.standing, "page": page.page, "rows": page.items.len()})
                    .to_string(),
            },
        )
        .await?;
    Ok(Json(page))
}

/// The due list (or the overdue list: `standing=overdue`) as XLSX, masked IDs, at most 20,000
/// rows; audited as an export.
#[utoipa::path(get, path = "/api/v1/care-visits/due/export", tag = "care_visit", params(super::DueExportQuery),
    responses((status = 200, description = "XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn due_export(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<super::DueExportQuery>,
) -> ApiResult<axum::response::Response> {
    let scope = visitor(&actor)?;
    let today = crate::platform::today();
    let regions = app.regions.read().await.clone();
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    let want = q.standing.as_deref().unwrap_or("all");
    if !["all", "due", "overdue", "done"].contains(&want) {
        return Err(ApiError::invalid(
            "standing",
            "筛选应为 all（全部）、due（待探访）、overdue（已逾期）或 done（已探访）",
        ));
    }
    let me = q.mine.unwrap_or(false).then_some(actor.user_id.as_str());
    let items: Vec<super::VisitDueItem> = super::due_all(&app.db, &regions, &lo, &hi, me, today)
        .await?
        .into_iter()
        .filter(|i| want == "all" || i.standing == want)
        .collect();
    app.read_audit
        .record(
            &actor.who(),
            Entry {
                action: "care_visit.export",
                entity: "region",
                entity_id: q.region_code.as_deref(),
                region_code: Some(&lo),
                detail:
                    serde_json::json!({"standing": q.standing, "rows": items.len().min(20_000)})
                        .to_string(),
            },
        )
        .await?;
    let name = if q.standing.as_deref() == Some("overdue") {
        "探访逾期名单"
    } else {
        "探访名单"
    };
    Ok(crate::registry::http::xlsx(
        super::due_xlsx(&items, today)?,
        name,
    ))
}

/// Visits of the caller's area, newest first (an elder's, a month's, mine, or the ones with a
/// home-care referral still open).
#[utoipa::path(get, path = "/api/v1/care-visits", tag = "care_visit", params(VisitQuery),
    responses((status = 200, body = Vec<Visit>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<VisitQuery>,
) -> ApiResult<Json<Vec<Visit>>> {
    let scope = visitor(&actor)?;
    let list = {
        let regions = app.regions.read().await;
        super::list(
            &app.db,
            &regions,
            &scope,
            &q,
            &actor.user_id,
            crate::platform::today(),
        )
        .await?
    };
    // One elder's visits tell of her health and home: an audited read when there are any.
    if let (Some(elder), Some(v)) = (q.elder_id.as_deref(), list.first()) {
        app.read_audit
            .record(
                &actor.who(),
                Entry {
                    action: "care_visit.view",
                    entity: "elder",
                    entity_id: Some(elder),
                    region_code: Some(&v.region_code),
                    detail: serde_json::json!({"visits": list.len()}).to_string(),
                },
            )
            .await?;
    }
    Ok(Json(list))
}

/// Record a visit under the id the phone made for it (sent again, recorded once); its risk flags
/// note a reassessment trigger, put an event on the 12349 board, or refer the elder to home care.
#[utoipa::path(post, path = "/api/v1/care-visits", tag = "care_visit", request_body = NewVisit,
    responses((status = 201, body = Visit), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn record(
    State(app): State<AppState>,
    actor: Actor,
    Json(v): Json<NewVisit>,
) -> ApiResult<(StatusCode, Json<Visit>)> {
    let scope = recorder(&actor)?;
    let (visit, event) = {
        let regions = app.regions.read().await;
        super::record(
            &app.db,
            &regions,
            &scope,
            &actor.who(),
            v,
            chrono::Utc::now(),
        )
        .await?
    };
    if let Some(e) = event {
        crate::emergency::announce(&app.db, &app.emergency, &e).await?;
    }
    Ok((StatusCode::CREATED, Json(visit)))
}

/// Close a home-care referral with what was done.
#[utoipa::path(post, path = "/api/v1/care-visits/{id}/referral", tag = "care_visit", params(("id" = String, Path)),
    request_body = CloseReferral,
    responses((status = 200, body = Visit), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn close_referral(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(c): Json<CloseReferral>,
) -> ApiResult<Json<Visit>> {
    let scope = manager(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::close_referral(&app.db, &regions, &scope, &actor.who(), &id, c).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RateQuery {
    /// A region inside the caller's scope (default: all of it)
    pub region_code: Option<String>,
    /// YYYY-MM (default: this month)
    pub month: Option<String>,
}

/// The month's visit rate (月探访率 = visited ÷ with a duty) of a region and of each of its
/// children, with the overdue counts.
#[utoipa::path(get, path = "/api/v1/care-visits/rate", tag = "care_visit", params(RateQuery),
    responses((status = 200, body = RateView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn rate(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<RateQuery>,
) -> ApiResult<Json<RateView>> {
    let scope = visitor(&actor).or_else(|_| actor.aggregates())?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::rate(
            &app.db,
            &regions,
            &scope,
            q.region_code.as_deref(),
            q.month.as_deref(),
            crate::platform::today(),
        )
        .await?,
    ))
}

/// The visit duty rules (who must be visited how often) and how many elders each gives a duty.
#[utoipa::path(get, path = "/api/v1/visit-duty-rules", tag = "care_visit",
    responses((status = 200, body = RulesView), (status = 403, body = Problem)))]
pub async fn rules(State(app): State<AppState>, actor: Actor) -> ApiResult<Json<RulesView>> {
    if !actor.has(Perm::CareVisitManage) {
        visitor(&actor)?;
    }
    Ok(Json(duty::rules(&app.db).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesReq {
    pub rules: Vec<DutyRule>,
}

/// Replace the visit duty rules (in the catalogue's rule language); the duties follow within a
/// minute.
#[utoipa::path(put, path = "/api/v1/visit-duty-rules", tag = "care_visit", request_body = RulesReq,
    responses((status = 200, body = RulesView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_rules(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<RulesReq>,
) -> ApiResult<Json<RulesView>> {
    let scope = manager(&actor)?;
    duty::whole_registry(&app.db, &scope).await?;
    duty::set_rules(&app.db, &actor.who(), r.rules).await?;
    duty::RULES_CHANGED.notify_one();
    Ok(Json(duty::rules(&app.db).await?))
}

/// Work the duties out now (the server also does it every hour and after a rule change).
#[utoipa::path(post, path = "/api/v1/visit-duties/refresh", tag = "care_visit",
    responses((status = 200, body = Refresh), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn refresh(State(app): State<AppState>, actor: Actor) -> ApiResult<Json<Refresh>> {
    let scope = manager(&actor)?;
    duty::whole_registry(&app.db, &scope).await?;
    Ok(Json(
        duty::refresh_now(&app.db, crate::platform::today()).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AreasQuery {
    /// A town (or any region) inside the caller's scope
    pub region_code: String,
}

/// The villages of a region with their duties and village worker, and the workers who can take
/// them.
#[utoipa::path(get, path = "/api/v1/visit-areas", tag = "care_visit", params(AreasQuery),
    responses((status = 200, body = Areas), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn areas(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<AreasQuery>,
) -> ApiResult<Json<Areas>> {
    let scope = manager(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(
        duty::areas(&app.db, &regions, &scope, &q.region_code).await?,
    ))
}

/// Give a village to a village worker (or take it back with no `user_id`).
#[utoipa::path(put, path = "/api/v1/visit-areas/{region_code}", tag = "care_visit", params(("region_code" = String, Path)),
    request_body = AreaAssignReq,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn assign(
    State(app): State<AppState>,
    actor: Actor,
    Path(region_code): Path<String>,
    Json(a): Json<AreaAssignReq>,
) -> ApiResult<StatusCode> {
    let scope = manager(&actor)?;
    let regions = app.regions.read().await;
    duty::assign(&app.db, &regions, &scope, &actor.who(), &region_code, a).await?;
    Ok(StatusCode::NO_CONTENT)
}

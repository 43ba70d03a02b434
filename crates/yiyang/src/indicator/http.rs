//! Indicator API: definitions, the dashboard of a node and year, single values, the list of people
//! behind a number (paged and as XLSX, audited), targets (one by one, or a plan-shaped
//! sheet with a dry run), values entered by hand, and a refresh of the rollups.

use super::{drill, query, rollup, targets};
use crate::app::AppState;
use crate::audit::Entry;
use crate::identity::{Actor, Perm};
use crate::platform::error::ApiError;
use crate::platform::error::ApiResult;
use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::Response;
use chrono::Datelike;
use serde::Deserialize;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<crate::app::AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/indicators/definitions", get(definitions))
        .route("/indicators/dashboard", get(dashboard))
        .route("/indicators/dashboard.xlsx", get(dashboard_xlsx))
        .route("/indicators/value", get(value))
        .route("/indicators/refresh", post(refresh))
        .route(
            "/indicators/targets",
            get(list_targets).put(set_target).delete(delete_target),
        )
        .route("/indicators/targets/template", get(target_template))
        .route("/indicators/targets/import", post(import_targets))
        .route("/indicators/{id}/people", get(people))
        .route("/indicators/{id}/homes", get(homes))
        .route("/indicators/{id}/people.xlsx", get(people_xlsx))
        .route("/indicators/{id}/entries", post(enter))
}

/// All indicators the system knows (built-in and local).
#[utoipa::path(get, path = "/api/v1/indicators/definitions", tag = "indicator",
    responses((status = 200, body = Vec<targets::Definition>)))]
pub async fn definitions(
    State(app): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<targets::Definition>>> {
    actor.aggregates()?;
    Ok(Json(targets::definitions(&app.db).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DashboardQuery {
    /// Node of the region tree (default: the caller's region)
    pub region_code: Option<String>,
    /// Year (default: this year)
    pub year: Option<i32>,
    /// Every indicator, also those without a target or records yet
    pub all: Option<bool>,
}

/// Target, actual and status of every indicator at one node for one year, with the children and
/// the monthly trend. Reads only rollups.
#[utoipa::path(get, path = "/api/v1/indicators/dashboard", tag = "indicator", params(DashboardQuery),
    responses((status = 200, body = query::Dashboard), (status = 403, body = crate::platform::error::Problem)))]
pub async fn dashboard(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<DashboardQuery>,
) -> ApiResult<Json<query::Dashboard>> {
    Ok(Json(dashboard_for(&app, &actor, q).await?))
}

/// The dashboard a query asks for (default: the caller's region, this year), inside the caller's
/// aggregate scope.
async fn dashboard_for(
    app: &AppState,
    actor: &Actor,
    q: DashboardQuery,
) -> ApiResult<query::Dashboard> {
    let scope = actor.aggregates()?;
    let code = q
        .region_code
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| actor.region.as_str().to_string());
    scope.narrow(Some(&code))?;
    let today = crate::platform::today();
    let regions = app.regions.read().await;
    query::dashboard(
        &app.db,
        &regions,
        &code,
        q.year.unwrap_or(today.year()),
        today,
        q.all.unwrap_or(false),
    )
    .await
}

/// The dashboard's table (and each indicator's children) as XLSX.
#[utoipa::path(get, path = "/api/v1/indicators/dashboard.xlsx", tag = "indicator", params(DashboardQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn dashboard_xlsx(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<DashboardQuery>,
) -> ApiResult<Response> {
    let d = dashboard_for(&app, &actor, q).await?;
    let bytes = query::dashboard_xlsx(&d)?;
    Ok(crate::registry::http::xlsx(
        bytes,
        &format!("{}{}年重点指标", d.region_name, d.year),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ValueQuery {
    pub id: String,
    pub region_code: String,
    /// YYYY or YYYY-MM
    pub period: String,
}

/// One indicator at one node and period: value, numerator, denominator, target.
#[utoipa::path(get, path = "/api/v1/indicators/value", tag = "indicator", params(ValueQuery),
    responses((status = 200, body = query::ValueView), (status = 422, body = crate::platform::error::Problem)))]
pub async fn value(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<ValueQuery>,
) -> ApiResult<Json<query::ValueView>> {
    let scope = actor.aggregates()?;
    scope.narrow(Some(&q.region_code))?;
    Ok(Json(
        query::value(
            &app.db,
            &q.id,
            &q.region_code,
            &q.period,
            crate::platform::today(),
        )
        .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct GapQuery {
    pub region_code: String,
    /// YYYY or YYYY-MM
    pub period: String,
    pub page: Option<usize>,
    pub page_size: Option<usize>,
}

/// The people behind a number — a coverage's gap (e.g. the 80+ without a valid assessment) or
/// the people a count counts — by town; needs the "search individuals" scope and is audited.
#[utoipa::path(get, path = "/api/v1/indicators/{id}/people", tag = "indicator", params(("id" = String, Path), GapQuery),
    responses((status = 200, body = drill::PeopleList), (status = 403, body = crate::platform::error::Problem)))]
pub async fn people(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<GapQuery>,
) -> ApiResult<Json<drill::PeopleList>> {
    let scope = actor.individuals()?;
    scope.narrow(Some(&q.region_code))?;
    let (page, page_size) = crate::platform::web::paging(
        q.page.map(|p| p as i64),
        q.page_size.map(|p| p as i64),
        50,
        200,
    )?;
    let (page, page_size) = (page as usize, page_size as usize);
    let regions = app.regions.read().await;
    let g = drill::list(
        &app.db,
        &regions,
        &id,
        &q.region_code,
        &q.period,
        crate::platform::today(),
        page,
        page_size,
    )
    .await?;
    app.read_audit
        .record(
            &actor.who(),
            Entry {
                action: "indicator.people.view",
                entity: "indicator",
                entity_id: Some(&id),
                region_code: Some(&g.region_code),
                detail: serde_json::json!({"period": g.period, "total": g.total, "page": g.page, "shown": g.people.len()})
                    .to_string(),
            },
        )
        .await?;
    Ok(Json(g))
}

/// The whole list as XLSX (masked IDs), audited as an export.
#[utoipa::path(get, path = "/api/v1/indicators/{id}/people.xlsx", tag = "indicator", params(("id" = String, Path), GapQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn people_xlsx(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<GapQuery>,
) -> ApiResult<Response> {
    actor.require(Perm::RegistryExport)?;
    let scope = actor.individuals()?;
    scope.narrow(Some(&q.region_code))?;
    let def = targets::definition(&app.db, &id).await?;
    let regions = app.regions.read().await;
    let (bytes, n) = drill::xlsx(
        &app.db,
        &regions,
        &id,
        &def.name,
        &q.region_code,
        &q.period,
        crate::platform::today(),
    )
    .await?;
    let mut tx = app.db.begin().await?;
    crate::audit::append(
        &mut tx,
        &actor.who(),
        Entry {
            action: "indicator.people.export",
            entity: "indicator",
            entity_id: Some(&id),
            region_code: Some(&q.region_code),
            detail: serde_json::json!({"period": q.period, "rows": n}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(crate::registry::http::xlsx(
        bytes,
        &format!(
            "{}{}",
            def.name,
            if drill::part(&id) == Some("gap") {
                "差额名单"
            } else {
                "人员名单"
            }
        ),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TargetsQuery {
    pub region_code: Option<String>,
    pub year: Option<i32>,
}

/// Targets under a node (its subtree), optionally of one year.
#[utoipa::path(get, path = "/api/v1/indicators/targets", tag = "indicator", params(TargetsQuery),
    responses((status = 200, body = Vec<targets::Target>)))]
pub async fn list_targets(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<TargetsQuery>,
) -> ApiResult<Json<Vec<targets::Target>>> {
    let scope = actor.aggregates()?;
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    if q.year.is_some_and(|y| !(2000..=2100).contains(&y)) {
        return Err(ApiError::invalid("year", "年份超出范围（2000–2100）"));
    }
    Ok(Json(targets::list(&app.db, &lo, &hi, q.year).await?))
}

/// Set (or replace) one target.
#[utoipa::path(put, path = "/api/v1/indicators/targets", tag = "indicator", request_body = targets::Target,
    responses((status = 200, body = targets::Target), (status = 422, body = crate::platform::error::Problem)))]
pub async fn set_target(
    State(app): State<AppState>,
    actor: Actor,
    Json(t): Json<targets::Target>,
) -> ApiResult<Json<targets::Target>> {
    actor.require(Perm::IndicatorManage)?;
    let scope = actor.aggregates()?;
    Ok(Json(targets::set(&app.db, &scope, &actor.who(), t).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TargetKey {
    pub region_code: String,
    pub year: i32,
    pub indicator_id: String,
}

#[utoipa::path(delete, path = "/api/v1/indicators/targets", tag = "indicator", params(TargetKey),
    responses((status = 204), (status = 404, body = crate::platform::error::Problem)))]
pub async fn delete_target(
    State(app): State<AppState>,
    actor: Actor,
    Query(k): Query<TargetKey>,
) -> ApiResult<axum::http::StatusCode> {
    actor.require(Perm::IndicatorManage)?;
    let scope = actor.aggregates()?;
    targets::delete(
        &app.db,
        &scope,
        &actor.who(),
        &k.region_code,
        k.year,
        &k.indicator_id,
    )
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TemplateQuery {
    /// Year columns, comma-separated (default: this year)
    pub years: Option<String>,
}

/// An empty target sheet in the plans' shape, listing the built-in indicators.
#[utoipa::path(get, path = "/api/v1/indicators/targets/template", tag = "indicator", params(TemplateQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn target_template(actor: Actor, Query(q): Query<TemplateQuery>) -> ApiResult<Response> {
    actor.aggregates()?;
    let this = crate::platform::today().year();
    let mut years: Vec<i32> = vec![];
    for piece in q.years.as_deref().unwrap_or("").split([',', '，']) {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let year = piece
            .parse()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .ok_or_else(|| {
                ApiError::invalid("years", "年份应为 2000–2100 之间的数字，多个年份用逗号分隔")
            })?;
        years.push(year);
    }
    if years.len() > 10 {
        return Err(ApiError::invalid("years", "一次最多 10 个年份"));
    }
    let years = if years.is_empty() { vec![this] } else { years };
    Ok(crate::registry::http::xlsx(
        targets::template_xlsx(&years)?,
        "指标目标模板",
    ))
}

/// Import a target sheet (CSV/XLSX shaped like the plans' tables). Fields: file, region_code,
/// dry_run (default true), create_missing (unknown indicator names become local indicators),
/// source (the plan's title).
#[utoipa::path(post, path = "/api/v1/indicators/targets/import", tag = "indicator",
    request_body(content_type = "multipart/form-data", description = "file, region_code, dry_run, create_missing, source"),
    responses((status = 200, body = targets::SheetImport), (status = 422, body = crate::platform::error::Problem)))]
pub async fn import_targets(
    State(app): State<AppState>,
    actor: Actor,
    mut mp: Multipart,
) -> ApiResult<Json<targets::SheetImport>> {
    actor.require(Perm::IndicatorManage)?;
    let scope = actor.aggregates()?;
    let (name, bytes, f) = crate::registry::http::read_upload_fields(
        &mut mp,
        &["dry_run", "create_missing", "source", "region_code"],
    )
    .await?;
    let text = |k: &str| f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let dry_run = crate::registry::http::form_flag(&f, "dry_run", true)?;
    let create = crate::registry::http::form_flag(&f, "create_missing", false)?;
    let source = text("source").map(str::to_string);
    let region = text("region_code")
        .map(str::to_string)
        .unwrap_or_else(|| actor.region.as_str().to_string());
    Ok(Json(
        targets::import_sheet(
            &app.db,
            &scope,
            &actor.who(),
            &region,
            &name,
            bytes,
            source,
            dry_run,
            create,
        )
        .await?,
    ))
}

/// Enter a value by hand (milestones: 1 done / 0 not done; manual figures) with its evidence.
#[utoipa::path(post, path = "/api/v1/indicators/{id}/entries", tag = "indicator", params(("id" = String, Path)),
    request_body = targets::EntryReq,
    responses((status = 200, body = targets::EntryView), (status = 422, body = crate::platform::error::Problem)))]
pub async fn enter(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(e): Json<targets::EntryReq>,
) -> ApiResult<Json<targets::EntryView>> {
    actor.require(Perm::IndicatorManage)?;
    let scope = actor.aggregates()?;
    Ok(Json(
        targets::enter(&app.db, &scope, &actor.who(), &id, e).await?,
    ))
}

/// Bring the rollups up to date now (the server also does it every minute).
#[utoipa::path(post, path = "/api/v1/indicators/refresh", tag = "indicator",
    responses((status = 200, body = rollup::RefreshReport)))]
pub async fn refresh(
    State(app): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<rollup::RefreshReport>> {
    actor.require(Perm::IndicatorManage)?;
    actor.aggregates()?;
    let r = rollup::refresh(&app.db, crate::platform::today(), false).await?;
    crate::platform::release_memory();
    Ok(Json(r))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct HomesQuery {
    pub region_code: String,
    /// YYYY or YYYY-MM
    pub period: String,
}

/// The homes behind a figure made of theirs (nursing-bed share, occupancy, social workers per 100
/// beds, certified caregivers …): each home's numerator and denominator, which add up to the
/// figure. Counts only, no person.
#[utoipa::path(get, path = "/api/v1/indicators/{id}/homes", tag = "indicator", params(("id" = String, Path), HomesQuery),
    responses((status = 200, body = super::facilities::HomeList), (status = 403, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn homes(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<HomesQuery>,
) -> ApiResult<Json<super::facilities::HomeList>> {
    let scope = actor.aggregates()?;
    scope.narrow(Some(&q.region_code))?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::facilities::homes(
            &app.db,
            &regions,
            &id,
            &q.region_code,
            &q.period,
            crate::platform::today(),
        )
        .await?,
    ))
}

use super::{Org, OrgFields, OrgPage, OrgQuery};
use crate::app::AppState;
use crate::identity::{Actor, Perm, Scope};
use crate::platform::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/orgs", get(list).post(create))
        .route(
            "/orgs/import",
            axum::routing::post(import).layer(crate::registry::http::upload_limit()),
        )
        .route("/orgs/template.xlsx", get(template))
        .route("/orgs/export.xlsx", get(export))
        .route("/orgs/{id}", get(detail).patch(update))
        .route("/orgs/{id}/staff", get(staff_list).post(staff_create))
        .route(
            "/orgs/{id}/staff/import",
            axum::routing::post(staff_import).layer(crate::registry::http::upload_limit()),
        )
        .route("/staff/template.xlsx", get(staff_template))
        .route("/staff/{id}", axum::routing::patch(staff_update))
}

/// Add an organisation's staff from a spreadsheet (人员花名册: 姓名, 岗位, 技能等级, 证书编号 …):
/// every row checked, the refused ones listed with the reason, the others added in one
/// transaction; someone already on the roll is refused; a dry run writes nothing.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/staff/import", tag = "org", params(("id" = String, Path)),
    request_body(content_type = "multipart/form-data", description = "file: CSV/XLSX with 姓名, 岗位 …; dry_run: true/false"),
    responses((status = 200, body = super::staff::StaffImport), (status = 403, body = crate::platform::error::Problem),
        (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn staff_import(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    mut mp: axum::extract::Multipart,
) -> ApiResult<Json<super::staff::StaffImport>> {
    let scope = staff_keeper(&actor)?;
    let (file_name, bytes, dry_run) = crate::registry::http::read_upload(&mut mp).await?;
    Ok(Json(
        super::staff::import(
            &app.db,
            &scope,
            &actor.who(),
            &id,
            &file_name,
            bytes,
            dry_run,
        )
        .await?,
    ))
}

/// The spreadsheet template for staff (人员花名册).
#[utoipa::path(get, path = "/api/v1/staff/template.xlsx", tag = "org",
    responses((status = 200, description = "XLSX template", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn staff_template(_actor: Actor) -> ApiResult<axum::response::Response> {
    Ok(crate::registry::http::xlsx(
        super::staff::template()?,
        "人员花名册导入模板",
    ))
}

/// Organisations are not personal records: anyone who reads records or figures of a region sees
/// the organisations in it.
fn reader(actor: &Actor) -> ApiResult<Scope> {
    actor.org_reader()
}

/// The list and one organisation's record: also for the security administrator, who binds a
/// manager's account to its home (and sees nothing else of it: no staff, beds or money).
fn directory(actor: &Actor) -> ApiResult<Scope> {
    actor.org_reader().or_else(|e| {
        if actor.has(Perm::UsersManage) {
            Ok(actor.scope())
        } else {
            Err(e)
        }
    })
}

fn manager(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::OrgManage)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    let scope = actor.scope();
    scope.regional()?;
    Ok(scope)
}

/// Staff are kept by an officer, or by the manager of their own organisation.
fn staff_keeper(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::StaffManage)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    Ok(actor.scope())
}

/// Organisations of the caller's region (or a part of it), by place and name.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "org", params(OrgQuery),
    responses((status = 200, body = OrgPage), (status = 403, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn list(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<OrgQuery>,
) -> ApiResult<Json<OrgPage>> {
    let scope = directory(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(super::list(&app.db, &scope, &regions, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}", tag = "org", params(("id" = String, Path)),
    responses((status = 200, body = Org), (status = 404, body = crate::platform::error::Problem)))]
pub async fn detail(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Org>> {
    let scope = directory(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(super::get(&app.db, &scope, &regions, &id).await?))
}

/// Register an organisation in the caller's region.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "org", request_body = OrgFields,
    responses((status = 201, body = Org), (status = 403, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn create(
    State(app): State<AppState>,
    actor: Actor,
    Json(f): Json<OrgFields>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    let scope = manager(&actor)?;
    let regions = app.regions.read().await;
    let o = super::create(&app.db, &scope, &regions, &actor.who(), f).await?;
    Ok((StatusCode::CREATED, Json(o)))
}

/// Change an organisation (absent fields keep their value, an empty text clears it).
#[utoipa::path(patch, path = "/api/v1/orgs/{id}", tag = "org", params(("id" = String, Path)), request_body = OrgFields,
    responses((status = 200, body = Org), (status = 404, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn update(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(f): Json<OrgFields>,
) -> ApiResult<Json<Org>> {
    let scope = manager(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::update(&app.db, &scope, &regions, &actor.who(), &id, f).await?,
    ))
}

/// Staff of an organisation (those still employed, or all).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/staff", tag = "org", params(("id" = String, Path), super::staff::StaffQuery),
    responses((status = 200, body = super::staff::StaffList), (status = 404, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn staff_list(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<super::staff::StaffQuery>,
) -> ApiResult<Json<super::staff::StaffList>> {
    let scope = reader(&actor)?;
    Ok(Json(super::staff::list(&app.db, &scope, &id, &q).await?))
}

/// Add a staff member (role, skill level, certificate, hire date).
#[utoipa::path(post, path = "/api/v1/orgs/{id}/staff", tag = "org", params(("id" = String, Path)),
    request_body = super::staff::StaffFields,
    responses((status = 201, body = super::staff::Staff), (status = 404, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn staff_create(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(f): Json<super::staff::StaffFields>,
) -> ApiResult<(StatusCode, Json<super::staff::Staff>)> {
    let scope = staff_keeper(&actor)?;
    let s = super::staff::create(&app.db, &scope, &actor.who(), &id, f).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Change a staff member; `left_on` records that they left (they are never deleted).
#[utoipa::path(patch, path = "/api/v1/staff/{id}", tag = "org", params(("id" = String, Path)),
    request_body = super::staff::StaffFields,
    responses((status = 200, body = super::staff::Staff), (status = 404, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn staff_update(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(f): Json<super::staff::StaffFields>,
) -> ApiResult<Json<super::staff::Staff>> {
    let scope = staff_keeper(&actor)?;
    Ok(Json(
        super::staff::update(&app.db, &scope, &actor.who(), &id, f).await?,
    ))
}

/// Register organisations from a spreadsheet (CSV or XLSX, the template's columns): every row
/// checked, the refused ones listed with the reason, the others written in one transaction; a dry
/// run writes nothing.
#[utoipa::path(post, path = "/api/v1/orgs/import", tag = "org",
    request_body(content_type = "multipart/form-data", description = "file: CSV/XLSX with 机构名称, 机构类型, 性质, 所在地 …; dry_run: true/false"),
    responses((status = 200, body = super::import::OrgImport), (status = 403, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn import(
    State(app): State<AppState>,
    actor: Actor,
    mut mp: axum::extract::Multipart,
) -> ApiResult<Json<super::import::OrgImport>> {
    let scope = manager(&actor)?;
    let (file_name, bytes, dry_run) = crate::registry::http::read_upload(&mut mp).await?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::import::import(
            &app.db,
            &scope,
            &regions,
            &actor.who(),
            &file_name,
            bytes,
            dry_run,
        )
        .await?,
    ))
}

/// The organisations of the caller's area as the spreadsheet the import reads (机构名册), filtered
/// as the list is; audited.
#[utoipa::path(get, path = "/api/v1/orgs/export.xlsx", tag = "org", params(super::import::ExportQuery),
    responses((status = 200, description = "XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn export(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<super::import::ExportQuery>,
) -> ApiResult<axum::response::Response> {
    let scope = reader(&actor)?;
    let regions = app.regions.read().await;
    Ok(crate::registry::http::xlsx(
        super::import::export(&app.db, &scope, &regions, &actor.who(), &q).await?,
        "机构名册",
    ))
}

/// The spreadsheet template for organisations (机构名册).
#[utoipa::path(get, path = "/api/v1/orgs/template.xlsx", tag = "org",
    responses((status = 200, description = "XLSX template", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn template(_actor: Actor) -> ApiResult<axum::response::Response> {
    Ok(crate::registry::http::xlsx(
        super::import::template()?,
        "机构名册导入模板",
    ))
}

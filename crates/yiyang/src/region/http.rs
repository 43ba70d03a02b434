use crate::app::AppState;
use crate::identity::Actor;
use crate::platform::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, State};

use super::RegionNode;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<crate::app::AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/regions/tree", get(tree))
        .route("/regions/{code}/children", get(children))
        .route(
            "/regions/{code}/map",
            axum::routing::put(put_map).delete(delete_map).layer(
                axum::extract::DefaultBodyLimit::max(super::map::MAX_BYTES + 64 * 1024),
            ),
        )
        .route("/public/map", get(public_map))
}

fn map_keeper(actor: &Actor) -> ApiResult<crate::identity::Scope> {
    actor.require(crate::identity::Perm::OrgManage)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    Ok(actor.scope())
}

/// Supply the region's map: GeoJSON boundaries of its towns (a FeatureCollection of Polygons in
/// longitude/latitude, as GIS software exports it). The public vacancy board draws it with the
/// homes on it. Replaces the map before; audited.
#[utoipa::path(put, path = "/api/v1/regions/{code}/map", tag = "region",
    params(("code" = String, Path, description = "12位区划代码")),
    request_body(content = String, content_type = "application/geo+json", description = "GeoJSON FeatureCollection"),
    responses((status = 200, body = super::map::MapSaved), (status = 403, body = crate::platform::error::Problem),
        (status = 413, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn put_map(
    State(app): State<AppState>,
    actor: Actor,
    Path(code): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<super::map::MapSaved>> {
    let scope = map_keeper(&actor)?;
    Ok(Json(
        super::map::save(&app.db, &scope, &actor.who(), &code, &body).await?,
    ))
}

/// Remove the region's map: the public board shows a list again.
#[utoipa::path(delete, path = "/api/v1/regions/{code}/map", tag = "region",
    params(("code" = String, Path, description = "12位区划代码")),
    responses((status = 204), (status = 403, body = crate::platform::error::Problem), (status = 404, body = crate::platform::error::Problem),
        (status = 422, body = crate::platform::error::Problem)))]
pub async fn delete_map(
    State(app): State<AppState>,
    actor: Actor,
    Path(code): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    let scope = map_keeper(&actor)?;
    super::map::remove(&app.db, &scope, &actor.who(), &code).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MapQuery {
    /// The region to draw (its own map or its nearest ancestor's; default: the first kept)
    pub region_code: Option<String>,
}

/// The map the public vacancy board draws, without a login: `{region_code, caption, map}` where
/// `map` is the GeoJSON. 404 when the county supplied none (the board is then a list).
#[utoipa::path(get, path = "/api/v1/public/map", tag = "region", params(MapQuery),
    responses((status = 200, description = "{region_code, caption, map (GeoJSON)}", content_type = "application/json"),
        (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem),
        (status = 429, body = crate::platform::error::Problem)))]
pub async fn public_map(
    State(app): State<AppState>,
    crate::identity::http::ClientIp(ip): crate::identity::http::ClientIp,
    axum::extract::Query(q): axum::extract::Query<MapQuery>,
) -> ApiResult<axum::response::Response> {
    if !app.public_throttle.allow(ip.as_deref().unwrap_or("-")) {
        return Err(ApiError::too_many("请求过于频繁，请稍后再试"));
    }
    let region = match q.region_code.as_deref().filter(|s| !s.is_empty()) {
        Some(c) => Some(
            yiyang_kernel::RegionCode::parse(c)
                .map_err(|e| ApiError::invalid("region_code", e.to_string()))?,
        ),
        None => None,
    };
    let Some((code, caption, geojson)) = super::map::find(&app.db, region.as_ref()).await? else {
        return Err(ApiError::not_found("本地尚未提供地图"));
    };
    // The GeoJSON was checked and written by us: it goes out as it is kept, not parsed again.
    let body = format!(
        "{{\"region_code\":{},\"caption\":{},\"map\":{geojson}}}",
        serde_json::Value::String(code),
        caption.map_or(serde_json::Value::Null, serde_json::Value::String)
    );
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header(axum::http::header::CACHE_CONTROL, "public, max-age=300")
        .body(axum::body::Body::from(body))
        .map_err(|e| ApiError::internal(anyhow::Error::from(e)))
}

/// The region tree under the caller's own node (three levels deep).
#[utoipa::path(get, path = "/api/v1/regions/tree", tag = "region",
    responses((status = 200, body = Vec<RegionNode>), (status = 401, body = crate::platform::error::Problem)))]
pub async fn tree(State(app): State<AppState>, actor: Actor) -> ApiResult<Json<Vec<RegionNode>>> {
    let idx = app.regions.read().await;
    Ok(Json(
        idx.tree(actor.region.as_str(), 3).into_iter().collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/regions/{code}/children", tag = "region",
    params(("code" = String, Path, description = "12位区划代码")),
    responses((status = 200, body = Vec<super::Region>), (status = 403, body = crate::platform::error::Problem)))]
pub async fn children(
    State(app): State<AppState>,
    actor: Actor,
    Path(code): Path<String>,
) -> ApiResult<Json<Vec<super::Region>>> {
    let code = yiyang_kernel::RegionCode::parse(&code)
        .map_err(|e| ApiError::invalid("code", e.to_string()))?;
    if !actor.region.contains(&code) {
        return Err(ApiError::forbidden("该区划不在您的管辖范围内"));
    }
    let idx = app.regions.read().await;
    Ok(Json(
        idx.children(code.as_str()).into_iter().cloned().collect(),
    ))
}

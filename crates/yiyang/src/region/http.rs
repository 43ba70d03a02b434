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

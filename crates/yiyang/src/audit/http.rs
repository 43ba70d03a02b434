use crate::app::AppState;
use crate::identity::{Actor, Perm};
use crate::platform::error::ApiResult;
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub page: Option<i64>,
    pub page_size: Option<i64>,
    /// e.g. `elder.reveal`
    pub action: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub region_code: Option<String>,
    pub detail: String,
    pub hash: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRow>,
    pub total: i64,
}

/// Audit viewer: the audit administrator only (三员分立: nobody else reads the audit trail).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = crate::platform::error::Problem)))]
pub async fn list(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    actor.require(Perm::AuditRead)?;
    let (page, size) = crate::platform::web::paging(q.page, q.page_size, 50, 500)?;
    let action = q.action.filter(|a| !a.is_empty());
    let (total, rows) = if let Some(a) = &action {
        let t: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(a)
            .fetch_one(&app.db.pool)
            .await?
            .get(0);
        let rows = sqlx::query("SELECT seq, at, actor_name, action, entity, entity_id, region_code, detail, hash FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3")
            .bind(a).bind(size).bind((page - 1) * size).fetch_all(&app.db.pool).await?;
        (t, rows)
    } else {
        let t: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&app.db.pool)
            .await?
            .get(0);
        let rows = sqlx::query("SELECT seq, at, actor_name, action, entity, entity_id, region_code, detail, hash FROM audit_log ORDER BY seq DESC LIMIT $1 OFFSET $2")
            .bind(size).bind((page - 1) * size).fetch_all(&app.db.pool).await?;
        (t, rows)
    };
    let items = rows
        .into_iter()
        .map(|r| AuditRow {
            seq: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            action: r.get(3),
            entity: r.get(4),
            entity_id: r.get(5),
            region_code: r.get(6),
            detail: r.get(7),
            hash: r.get(8),
        })
        .collect();
    // Reading the trail is itself on the trail: who watched, what and which page.
    app.read_audit
        .record(
            &actor.who(),
            super::Entry {
                action: "audit.view",
                entity: "audit_log",
                entity_id: None,
                region_code: None,
                detail: serde_json::json!({"action": action, "page": page}).to_string(),
            },
        )
        .await?;
    Ok(Json(AuditPage { items, total }))
}

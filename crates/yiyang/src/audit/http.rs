//! The audit viewer: filters by time, operator, object and action; rows as sentences; an Excel
//! export. Reading and exporting the trail are themselves on the trail.

use crate::app::AppState;
use crate::identity::{Actor, Perm};
use crate::platform::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<crate::app::AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/audit", get(list))
        .route("/audit/export.xlsx", get(export))
}

#[derive(Deserialize, Serialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub page: Option<i64>,
    pub page_size: Option<i64>,
    /// e.g. `elder.reveal`
    pub action: Option<String>,
    /// From this day (YYYY-MM-DD) …
    pub from: Option<String>,
    /// … to this day, inclusive.
    pub to: Option<String>,
    /// Part of the operator's name
    pub actor: Option<String>,
    /// What was acted on: elder, entitlement, app_user, …
    pub entity: Option<String>,
    /// One record's id (e.g. an elder's)
    pub entity_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    /// Who acted: the account's name (县民政局 李科长), or its login name when it has none.
    pub actor: String,
    /// The login name as stored in the row.
    pub actor_login: String,
    pub action: String,
    /// The action's name (登录、批准待遇 …)
    pub action_zh: String,
    pub entity: String,
    pub entity_zh: String,
    pub entity_id: Option<String>,
    pub region_code: Option<String>,
    /// The row as a sentence: 县民政局 李科长 批准了 王** 的高龄津贴
    pub sentence: String,
    pub detail: String,
    pub hash: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRow>,
    pub total: i64,
}

const EXPORT_MAX: i64 = 100_000;

fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The WHERE clause and binds of a query's filters.
fn filter(q: &AuditQuery) -> ApiResult<(String, Vec<String>)> {
    let mut sql = String::from("1 = 1");
    let mut binds: Vec<String> = vec![];
    let mut add = |cond: &str, v: String| {
        binds.push(v);
        sql.push_str(&format!(" AND {cond} ${}", binds.len()));
    };
    let day = |s: &Option<String>, field: &str| -> ApiResult<Option<chrono::NaiveDate>> {
        s.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| ApiError::invalid(field, "日期应为 YYYY-MM-DD"))
            })
            .transpose()
    };
    if let Some(d) = day(&q.from, "from")? {
        add("at >=", crate::platform::day_start_utc(d));
    }
    if let Some(d) = day(&q.to, "to")? {
        add(
            "at <",
            crate::platform::day_start_utc(d.succ_opt().unwrap_or(d)),
        );
    }
    if let Some(a) = text(&q.action) {
        add("action =", a.to_string());
    }
    if let Some(e) = text(&q.entity) {
        add("entity =", e.to_string());
    }
    if let Some(e) = text(&q.entity_id) {
        add("entity_id =", e.to_string());
    }
    if let Some(a) = text(&q.actor) {
        binds.push(crate::platform::db::like_containing(a));
        // By login name or by the account's name.
        let k = binds.len();
        sql.push_str(&format!(
            " AND (actor_name LIKE ${k} ESCAPE '\\' OR actor_id IN \
             (SELECT id FROM app_user WHERE display_name LIKE ${k} ESCAPE '\\'))"
        ));
    }
    Ok((sql, binds))
}

/// Rows of three text columns (the third may be NULL) of a look-up ending in `IN`, for these
/// ids, 500 at a time.
async fn by_ids(
    app: &AppState,
    select: &str,
    ids: &[String],
) -> ApiResult<Vec<(String, String, Option<String>)>> {
    let mut out = vec![];
    for chunk in ids.chunks(500) {
        let sql = format!(
            "{select} {}",
            crate::registry::store::placeholders(app.db.backend, 1, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id);
        }
        for r in q.fetch_all(&app.db.pool).await? {
            out.push((r.get(0), r.get(1), r.get(2)));
        }
    }
    Ok(out)
}

async fn rows(
    app: &AppState,
    q: &AuditQuery,
    limit: i64,
    offset: i64,
) -> ApiResult<(i64, Vec<AuditRow>)> {
    let (w, binds) = filter(q)?;
    let mut cq = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM audit_log WHERE {w}"
    )));
    for b in &binds {
        cq = cq.bind(b.clone());
    }
    let total: i64 = cq.fetch_one(&app.db.pool).await?.get(0);
    let n = binds.len();
    let mut lq = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT seq, at, actor_name, action, entity, entity_id, region_code, detail, hash, actor_id FROM audit_log \
         WHERE {w} ORDER BY seq DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    )));
    for b in &binds {
        lq = lq.bind(b.clone());
    }
    let raw = lq.bind(limit).bind(offset).fetch_all(&app.db.pool).await?;
    // Who each row concerns, in one look-up per kind: masked names, item names.
    let ids = |kind: &str| -> Vec<String> {
        raw.iter()
            .filter(|r| r.get::<String, _>(4) == kind)
            .filter_map(|r| r.get::<Option<String>, _>(5))
            .collect()
    };
    let mut person: HashMap<String, String> = HashMap::new();
    let mut item_of: HashMap<String, String> = HashMap::new();
    // (id, person's name, item code) of the elders and the entitlements on the page.
    let elders = by_ids(
        app,
        "SELECT id, name, CAST(NULL AS TEXT) FROM elder WHERE id IN",
        &ids("elder"),
    )
    .await?;
    let ents = by_ids(
        app,
        "SELECT n.id, e.name, n.item_code FROM entitlement n JOIN elder e ON e.id = n.elder_id WHERE n.id IN",
        &ids("entitlement"),
    )
    .await?;
    for (id, name, item) in elders.into_iter().chain(ents) {
        person.insert(id.clone(), yiyang_kernel::mask::name(&name));
        if let Some(code) = item {
            item_of.insert(id, code);
        }
    }
    // The operators' account names and the items' names, of this page only.
    let mut actors: Vec<String> = raw
        .iter()
        .filter_map(|r| r.get::<Option<String>, _>(9))
        .collect();
    actors.sort_unstable();
    actors.dedup();
    let display: HashMap<String, String> = by_ids(
        app,
        "SELECT id, display_name, CAST(NULL AS TEXT) FROM app_user WHERE id IN",
        &actors,
    )
    .await?
    .into_iter()
    .map(|(id, name, _)| (id, name))
    .collect();
    let mut codes: Vec<String> = item_of.values().cloned().collect();
    codes.sort_unstable();
    codes.dedup();
    let item_name: HashMap<String, String> = by_ids(
        app,
        "SELECT code, definition, CAST(NULL AS TEXT) FROM catalog_item WHERE code IN",
        &codes,
    )
    .await?
    .into_iter()
    .filter_map(|(code, def, _)| {
        let def: serde_json::Value = serde_json::from_str(&def).unwrap_or_default();
        def["name"].as_str().map(|n| (code, n.to_string()))
    })
    .collect();
    let items = raw
        .into_iter()
        .map(|r| {
            let action: String = r.get(3);
            let entity: String = r.get(4);
            let entity_id: Option<String> = r.get(5);
            let detail: String = r.get(7);
            let login: String = r.get(2);
            let actor = r
                .get::<Option<String>, _>(9)
                .and_then(|id| display.get(&id).cloned())
                .unwrap_or_else(|| login.clone());
            let who = entity_id.as_ref().and_then(|id| person.get(id));
            let item = entity_id
                .as_ref()
                .and_then(|id| item_of.get(id))
                .map(|c| item_name.get(c).cloned().unwrap_or_else(|| c.clone()));
            AuditRow {
                seq: r.get(0),
                at: r.get(1),
                sentence: super::words::sentence(
                    &actor,
                    &action,
                    &entity,
                    who.map(String::as_str),
                    item.as_deref(),
                    &detail,
                ),
                action_zh: super::words::action_zh(&action).to_string(),
                entity_zh: super::words::entity_zh(&entity).to_string(),
                actor,
                actor_login: login,
                action,
                entity,
                entity_id,
                region_code: r.get(6),
                detail,
                hash: r.get(8),
            }
        })
        .collect();
    Ok((total, items))
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
    let (total, items) = rows(&app, &q, size, (page - 1) * size).await?;
    // Reading the trail is itself on the trail: who watched, what and which page.
    app.read_audit
        .record(
            &actor.who(),
            super::Entry {
                action: "audit.view",
                entity: "audit_log",
                entity_id: None,
                region_code: None,
                detail: serde_json::json!({"filter": q, "page": page}).to_string(),
            },
        )
        .await?;
    Ok(Json(AuditPage { items, total }))
}

/// The filtered trail as an Excel file (at most 100,000 rows, newest first); audited.
#[utoipa::path(get, path = "/api/v1/audit/export.xlsx", tag = "audit", params(AuditQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (status = 403, body = crate::platform::error::Problem)))]
pub async fn export(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    actor.require(Perm::AuditRead)?;
    let (total, items) = rows(&app, &q, EXPORT_MAX, 0).await?;
    let w = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("审计日志").map_err(w)?;
    let head = rust_xlsxwriter::Format::new().set_bold();
    let cols = [
        ("序号", 10),
        ("时间", 24),
        ("操作人", 18),
        ("操作", 18),
        ("对象", 12),
        ("说明", 60),
        ("区划代码", 14),
    ];
    for (i, (t, width)) in cols.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, *t, &head)
            .map_err(w)?;
        ws.set_column_width(i as u16, *width).map_err(w)?;
    }
    for (n, r) in items.iter().enumerate() {
        let row = n as u32 + 1;
        ws.write_number(row, 0, r.seq as f64).map_err(w)?;
        for (i, c) in [
            r.at.as_str(),
            r.actor.as_str(),
            r.action_zh.as_str(),
            r.entity_zh.as_str(),
            r.sentence.as_str(),
            r.region_code.as_deref().unwrap_or(""),
        ]
        .iter()
        .enumerate()
        {
            ws.write_string(row, i as u16 + 1, *c).map_err(w)?;
        }
    }
    ws.set_freeze_panes(1, 0).map_err(w)?;
    let bytes = wb.save_to_buffer().map_err(w)?;
    app.read_audit
        .record(
            &actor.who(),
            super::Entry {
                action: "audit.export",
                entity: "audit_log",
                entity_id: None,
                region_code: None,
                detail: serde_json::json!({"filter": q, "rows": items.len(), "total": total})
                    .to_string(),
            },
        )
        .await?;
    Ok(crate::registry::http::xlsx(bytes, "审计日志"))
}

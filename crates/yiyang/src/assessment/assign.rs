//! Assigning who is due for assessment to an assessor (派给评估员): an officer picks people on
//! the due list and an assessor whose region covers them; the assessor then filters the list to
//! "派给我的". One open assignment a person; recording or adopting an assessment ends it.

use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::identity::{Actor, Perm, Role, Scope};
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::RegionCode;

use crate::platform::migrations::Stmt::{self, *};

/// The open assignment of a person to an assessor (at most one a person).
pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE assessment_assignment (elder_id TEXT PRIMARY KEY REFERENCES elder (id), \
         assessor_id TEXT NOT NULL REFERENCES app_user (id), assigned_by TEXT NOT NULL, assigned_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX assessment_assignment_assessor ON assessment_assignment (assessor_id)"),
    // The organisation that carried out an assessment, shown on its report (GB/T 42195 asks for it).
    Both("ALTER TABLE assessment ADD COLUMN organisation TEXT"),
];

/// People one request may assign: a page of the due list at its largest.
pub const MAX_ASSIGN: usize = 200;

/// Who may assign: an officer who edits records in scope and records assessments.
fn assigner(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::AssessmentRecord)?;
    actor.edit()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Assessor {
    pub id: String,
    /// 姓名（账号的显示名）
    pub display_name: String,
    pub region_code: String,
    pub region_name: String,
    /// People currently assigned to this assessor.
    pub assigned: i64,
}

/// Active assessor accounts whose region covers the caller's region or lies inside it.
async fn assessors_for(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
) -> ApiResult<Vec<Assessor>> {
    let rows = sqlx::query(
        "SELECT u.id, u.display_name, u.region_code, u.roles, \
         (SELECT COUNT(*) FROM assessment_assignment a WHERE a.assessor_id = u.id) \
         FROM app_user u WHERE u.disabled = 0 ORDER BY u.region_code, u.display_name",
    )
    .fetch_all(&db.pool)
    .await?;
    let root = scope.root.clone();
    Ok(rows
        .iter()
        .filter(|r| {
            crate::identity::session::parse_roles(&r.get::<String, _>(3)).contains(&Role::Assessor)
        })
        .filter_map(|r| {
            let region: String = r.get(2);
            let code = RegionCode::parse(&region).ok()?;
            let covers = match &root {
                None => true,
                Some(root) => root.contains(&code) || code.contains(root),
            };
            covers.then(|| Assessor {
                id: r.get(0),
                display_name: r.get(1),
                region_name: regions.path_name(&region),
                region_code: region,
                assigned: r.get(4),
            })
        })
        .collect())
}

/// The assessors the caller may assign people to.
#[utoipa::path(get, path = "/api/v1/assessments/assessors", tag = "assessment",
    responses((status = 200, body = [Assessor]), (status = 403, body = crate::platform::error::Problem)))]
pub async fn assessors(
    State(app): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<Assessor>>> {
    let scope = assigner(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(assessors_for(&app.db, &scope, &regions).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignReq {
    /// The people (elder ids), at most 200.
    pub elder_ids: Vec<String>,
    /// The assessor's account id; null withdraws the assignment.
    pub assessor_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssignResult {
    /// People now assigned (or whose assignment was withdrawn).
    pub changed: i64,
    /// 如“已派给 评估员 周评估 12 人”
    pub message: String,
}

/// Assign people to an assessor (or withdraw), all or nothing; each person's change is audited.
#[utoipa::path(post, path = "/api/v1/assessments/assignments", tag = "assessment", request_body = AssignReq,
    responses((status = 200, body = AssignResult), (status = 403, body = crate::platform::error::Problem),
        (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn assign(
    State(app): State<AppState>,
    actor: Actor,
    Json(req): Json<AssignReq>,
) -> ApiResult<Json<AssignResult>> {
    let scope = assigner(&actor)?;
    let mut ids = req.elder_ids.clone();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Err(ApiError::invalid("elder_ids", "请至少选择一位老年人"));
    }
    if ids.len() > MAX_ASSIGN {
        return Err(ApiError::invalid(
            "elder_ids",
            format!("一次最多派单 {MAX_ASSIGN} 人，请分批进行"),
        ));
    }
    let assessor = match &req.assessor_id {
        None => None,
        Some(id) => {
            let regions = app.regions.read().await;
            let a = assessors_for(&app.db, &scope, &regions)
                .await?
                .into_iter()
                .find(|a| &a.id == id)
                .ok_or_else(|| {
                    ApiError::invalid("assessor_id", "所选评估员不存在、已停用或不在您的辖区")
                })?;
            Some(a)
        }
    };
    let who = actor.who();
    let now = crate::platform::now_rfc3339();
    let mut tx = app.db.begin().await?;
    for id in &ids {
        let region: String = sqlx::query(
            "SELECT residence_region FROM elder WHERE id = $1 AND status = 'active' \
             AND residence_region BETWEEN $2 AND $3",
        )
        .bind(id)
        .bind(&scope.lo)
        .bind(&scope.hi)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            ApiError::not_found("所选老年人中有人不在册或不在您的管辖范围内，请刷新名单后重试")
        })?;
        if let Some(a) = &assessor {
            // The assessor must be able to open the person's record.
            let inside = RegionCode::parse(&a.region_code)
                .ok()
                .zip(RegionCode::parse(&region).ok())
                .is_some_and(|(mine, theirs)| mine.contains(&theirs));
            if !inside {
                return Err(ApiError::invalid(
                    "assessor_id",
                    format!(
                        "评估员 {} 的辖区（{}）不含所选的部分老年人，请选择负责该地区的评估员",
                        a.display_name, a.region_name
                    ),
                ));
            }
        }
        let before: Option<String> =
            sqlx::query("SELECT assessor_id FROM assessment_assignment WHERE elder_id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
        sqlx::query("DELETE FROM assessment_assignment WHERE elder_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(a) = &assessor {
            sqlx::query(
                "INSERT INTO assessment_assignment (elder_id, assessor_id, assigned_by, assigned_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(&a.id)
            .bind(&actor.display_name)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        audit::append(
            &mut tx,
            &who,
            Entry {
                action: if assessor.is_some() {
                    "assessment.assign"
                } else {
                    "assessment.unassign"
                },
                entity: "elder",
                entity_id: Some(id),
                region_code: Some(&region),
                detail: serde_json::json!({
                    "assessor": assessor.as_ref().map(|a| a.display_name.clone()),
                    "assessor_id": assessor.as_ref().map(|a| a.id.clone()),
                    "before": before,
                })
                .to_string(),
            },
        )
        .await?;
    }
    tx.commit().await?;
    let n = ids.len() as i64;
    Ok(Json(AssignResult {
        changed: n,
        message: match &assessor {
            Some(a) => format!("已将 {n} 人派给评估员 {}", a.display_name),
            None => format!("已撤回 {n} 人的派单"),
        },
    }))
}

/// An assessment recorded or adopted ends the person's assignment (same transaction).
pub async fn close(
    tx: &mut crate::platform::db::Tx<'_>,
    elder_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM assessment_assignment WHERE elder_id = $1")
        .bind(elder_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

//! Public self-check calculator: families score the 26 items of Appendix B themselves and see the
//! level the standard gives. No login, rate-limited per address, nothing is stored or logged.

use crate::app::AppState;
use crate::identity::http::ClientIp;
use crate::platform::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use yiyang_kernel::assessment::{self, Config, Input, RiskEvents};

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<crate::app::AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/public/assessment/score", post(score))
        .route("/public/assessment/form", get(form))
        .route("/assessments/due", get(due).post(due_search))
        .route("/assessments/assessors", get(super::assign::assessors))
        .route("/assessments/assignments", post(super::assign::assign))
        .route("/assessments/due/export", get(due_export))
        .route("/assessments/validity", get(validity).put(set_validity))
        .route("/elders/{id}/assessment-triggers", post(trigger))
        .route("/assessments/template.xlsx", get(template))
        .route(
            "/imports/assessments",
            post(upload).layer(crate::registry::http::upload_limit()),
        )
        .route("/assessments/score", post(score_for_assessor))
        .route("/elders/{id}/assessments/adopt", post(adopt))
        .route("/elders/{id}/assessments", get(list).post(create))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreReq {
    /// "GB/T 42195-2022"
    pub standard: String,
    /// Item code → score, e.g. {"B1.1": 4, …, "B4.5": 4}: all 26 items of Appendix B.
    #[schema(value_type = Object)]
    pub items: BTreeMap<String, u8>,
    /// Item code → option code, where one score covers two states (B3.9 stupor / coma).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub options: BTreeMap<String, String>,
    /// 昏迷（A.5.11）
    #[serde(default)]
    pub coma: bool,
    /// 确诊痴呆（F00–F03）
    #[serde(default)]
    pub dementia_confirmed: bool,
    /// 精神科专科医生诊断的其他精神和行为障碍（F04–F99）
    #[serde(default)]
    pub psychiatric_dx_by_specialist: bool,
    /// 近30天照护风险事件次数（0–3，3 表示 3 次及以上）
    #[serde(default)]
    #[schema(value_type = Object)]
    pub risk_events_30d: RiskEvents,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Reason {
    /// coma / mental_disorder / risk_events
    pub rule: String,
    pub text: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScoreResp {
    pub standard: String,
    /// 自理能力、基础运动能力、精神状态、感知觉与社会参与
    pub domain_scores: [u8; 4],
    pub total: Option<u8>,
    pub initial_level: Option<u8>,
    pub initial_level_name: Option<String>,
    pub final_level: u8,
    pub final_level_name: String,
    pub reasons: Vec<Reason>,
    pub warnings: Vec<String>,
}

/// Score a self-check (no login; nothing is stored).
#[utoipa::path(post, path = "/api/v1/public/assessment/score", tag = "assessment", request_body = ScoreReq,
    responses((status = 200, body = ScoreResp), (status = 422, body = crate::platform::error::Problem), (status = 429, body = crate::platform::error::Problem)))]
pub async fn score(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(r): Json<ScoreReq>,
) -> ApiResult<Json<ScoreResp>> {
    if !app.public_throttle.allow(ip.as_deref().unwrap_or("-")) {
        return Err(ApiError::too_many("请求过于频繁，请稍后再试"));
    }
    Ok(Json(score_of(r)?))
}

/// Score a form for an assessor (logged in, not rate-limited): the live result while the
/// assessors' form is being filled in. Nothing is stored.
#[utoipa::path(post, path = "/api/v1/assessments/score", tag = "assessment", request_body = ScoreReq,
    responses((status = 200, body = ScoreResp), (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn score_for_assessor(
    actor: crate::identity::Actor,
    Json(r): Json<ScoreReq>,
) -> ApiResult<Json<ScoreResp>> {
    actor.assess()?;
    Ok(Json(score_of(r)?))
}

fn score_of(r: ScoreReq) -> ApiResult<ScoreResp> {
    if r.standard != assessment::STANDARD {
        return Err(ApiError::invalid(
            "standard",
            format!("只支持 {}", assessment::STANDARD),
        ));
    }
    let input = Input {
        items: r.items,
        options: r.options,
        coma: r.coma,
        dementia_confirmed: r.dementia_confirmed,
        psychiatric_dx_by_specialist: r.psychiatric_dx_by_specialist,
        risk_events_30d: r.risk_events_30d,
    };
    let o = assessment::assess(&input, &Config::default())
        .map_err(|e| ApiError::invalid(&e.field(), e.to_string()))?;
    Ok(ScoreResp {
        standard: o.standard.into(),
        domain_scores: o.domain_scores,
        total: o.total,
        initial_level: o.initial_level,
        initial_level_name: o
            .initial_level
            .map(|l| assessment::LEVEL_NAMES[l as usize].to_string()),
        final_level: o.final_level,
        final_level_name: o.final_level_name().into(),
        reasons: o
            .reasons
            .iter()
            .map(|x| Reason {
                rule: match x {
                    assessment::Reason::Coma => "coma",
                    assessment::Reason::MentalDisorder => "mental_disorder",
                    assessment::Reason::RiskEvents { .. } => "risk_events",
                }
                .into(),
                text: x.zh(),
            })
            .collect(),
        warnings: o.warnings,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FormOption {
    pub code: String,
    pub score: u8,
    pub label: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FormItem {
    pub code: String,
    pub name: String,
    pub options: Vec<FormOption>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FormDomain {
    pub key: String,
    pub name: String,
    pub max: u8,
    pub items: Vec<FormItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Form {
    pub standard: String,
    pub level_names: Vec<String>,
    pub domains: Vec<FormDomain>,
}

/// The items of Appendix B with their option texts, for forms (the public self-check, the assessors' form).
#[utoipa::path(get, path = "/api/v1/public/assessment/form", tag = "assessment",
    responses((status = 200, body = Form)))]
pub async fn form() -> Json<Form> {
    use assessment::{Domain, ITEMS, LEVEL_NAMES};
    let domains = Domain::ALL
        .iter()
        .map(|d| {
            let items: Vec<FormItem> = ITEMS
                .iter()
                .filter(|i| i.domain == *d)
                .map(|i| FormItem {
                    code: i.code.into(),
                    name: i.name.into(),
                    options: i
                        .options
                        .iter()
                        .map(|o| FormOption {
                            code: o.code.into(),
                            score: o.score,
                            label: o.label.into(),
                        })
                        .collect(),
                })
                .collect();
            FormDomain {
                key: serde_json::to_value(d)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                name: d.zh().into(),
                max: ITEMS
                    .iter()
                    .filter(|i| i.domain == *d)
                    .map(|i| i.max())
                    .sum(),
                items,
            }
        })
        .collect();
    Json(Form {
        standard: assessment::STANDARD.into(),
        level_names: LEVEL_NAMES.iter().map(|s| s.to_string()).collect(),
        domains,
    })
}

/// Record an assessment of an elder (scored by the engine; audited). `corrects` makes it a new
/// version of an earlier record, which stays as it was.
#[utoipa::path(post, path = "/api/v1/elders/{id}/assessments", tag = "assessment", params(("id" = String, Path)),
    request_body = super::store::NewAssessment,
    responses((status = 201, body = super::store::AssessmentRecord), (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn create(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(a): Json<super::store::NewAssessment>,
) -> ApiResult<(axum::http::StatusCode, Json<super::store::AssessmentRecord>)> {
    let scope = actor.assess()?;
    let r = super::store::record(
        &app.db,
        &scope,
        &actor.who(),
        &id,
        a,
        crate::platform::today(),
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(r)))
}

/// An elder's assessments, newest first (corrected ones marked `superseded`). Audited read.
#[utoipa::path(get, path = "/api/v1/elders/{id}/assessments", tag = "assessment", params(("id" = String, Path)),
    responses((status = 200, body = [super::store::AssessmentRecord]), (status = 404, body = crate::platform::error::Problem)))]
pub async fn list(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Json<Vec<super::store::AssessmentRecord>>> {
    let scope = actor.individuals()?;
    Ok(Json(
        super::store::view(
            &app.db,
            &app.read_audit,
            &scope,
            &actor.who(),
            &id,
            crate::platform::today(),
        )
        .await?,
    ))
}

/// Who is to be assessed: people aged 80+ (by default) without a valid assessment first, then
/// those whose assessment runs out within 60 days. Paged, within the caller's scope.
#[utoipa::path(get, path = "/api/v1/assessments/due", tag = "assessment", params(super::store::DueReq),
    responses((status = 200, body = super::store::DuePage), (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn due(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    axum::extract::Query(q): axum::extract::Query<super::store::DueReq>,
) -> ApiResult<Json<super::store::DuePage>> {
    due_list(&app, &actor, &q, None).await
}

/// The due list with a name fragment too (POST, so the name stays out of URLs and access logs).
#[utoipa::path(post, path = "/api/v1/assessments/due", tag = "assessment", request_body = super::store::DueSearch,
    responses((status = 200, body = super::store::DuePage), (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn due_search(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    Json(q): Json<super::store::DueSearch>,
) -> ApiResult<Json<super::store::DuePage>> {
    due_list(&app, &actor, &q.filter(), q.name.as_deref()).await
}

async fn due_list(
    app: &AppState,
    actor: &crate::identity::Actor,
    q: &super::store::DueReq,
    name: Option<&str>,
) -> ApiResult<Json<super::store::DuePage>> {
    let scope = actor.individuals()?;
    let regions = app.regions.read().await;
    let page = super::store::due(
        &app.db,
        &app.search_index,
        &scope,
        &regions,
        q,
        name,
        &actor.user_id,
        crate::platform::today(),
    )
    .await?;
    // A list of named people: one audit row a request (a searched name masked).
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    app.read_audit
        .record(
            &actor.who(),
            crate::audit::Entry {
                action: "assessment.due.view",
                entity: "assessment",
                entity_id: None,
                region_code: q
                    .region_code
                    .as_deref()
                    .or(scope.root.as_ref().map(|r| r.as_str())),
                detail: serde_json::json!({"status": q.status, "age_min": q.age_min, "assigned": q.assigned,
                    "name": name.map(yiyang_kernel::mask::name), "page": page.page, "shown": page.items.len(), "total": page.total})
                    .to_string(),
            },
        )
        .await?;
    Ok(Json(page))
}

/// Adopt an existing long-term-care-insurance rating (直接采信) instead of a new assessment: its
/// source, date and the mapped level; it counts as a valid assessment. Audited.
#[utoipa::path(post, path = "/api/v1/elders/{id}/assessments/adopt", tag = "assessment", params(("id" = String, Path)),
    request_body = super::store::NewAdoption,
    responses((status = 201, body = super::store::AssessmentRecord), (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn adopt(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(a): Json<super::store::NewAdoption>,
) -> ApiResult<(axum::http::StatusCode, Json<super::store::AssessmentRecord>)> {
    let scope = actor.assess()?;
    let r = super::store::adopt(
        &app.db,
        &scope,
        &actor.who(),
        &id,
        a,
        crate::platform::today(),
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(r)))
}

/// Upload assessments (CSV/XLSX, multipart `file`, `dry_run`); runs as an import job — poll
/// `/api/v1/imports/{id}` and download its error report like a registry import.
#[utoipa::path(post, path = "/api/v1/imports/assessments", tag = "assessment",
    request_body(content_type = "multipart/form-data", description = "file: CSV or XLSX; dry_run: true/false"),
    responses((status = 202, body = crate::registry::http::JobId), (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn upload(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    mut mp: axum::extract::Multipart,
) -> ApiResult<(axum::http::StatusCode, Json<crate::registry::http::JobId>)> {
    let scope = actor.assess()?;
    let (name, bytes, dry_run) = crate::registry::http::read_upload(&mut mp).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let progress = std::sync::Arc::new(crate::registry::import::Progress::default());
    app.imports
        .lock()
        .await
        .insert(id.clone(), progress.clone());
    let (app2, job, who, uid) = (app.clone(), id.clone(), actor.who(), actor.user_id.clone());
    crate::platform::spawn_apart("import", &app.db, 4, move |db| async move {
        let regions = app2.regions.read().await.clone();
        let ctx = crate::registry::import::Ctx {
            db: &db,
            keys: &app2.keys,
            regions: &regions,
            scope: &scope,
            who: &who,
            progress,
        };
        if let Err(e) = super::import::run_job(&ctx, &job, Some(&uid), bytes, &name, dry_run).await
        {
            tracing::warn!(job = %job, error = %e, "assessment import failed");
        }
    });
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(crate::registry::http::JobId { id }),
    ))
}

/// The assessment import template (XLSX): columns, the 26 items, examples and a help sheet.
#[utoipa::path(get, path = "/api/v1/assessments/template.xlsx", tag = "assessment",
    responses((status = 200, description = "XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn template(actor: crate::identity::Actor) -> ApiResult<axum::response::Response> {
    actor.assess()?;
    Ok(crate::registry::http::xlsx(
        super::import::template_xlsx()?,
        "能力评估导入模板",
    ))
}

/// The due list as XLSX for the village workers (masked IDs; at most 100,000 rows); audited as
/// an export.
#[utoipa::path(get, path = "/api/v1/assessments/due/export", tag = "assessment", params(super::store::DueReq),
    responses((status = 200, description = "XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn due_export(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    axum::extract::Query(q): axum::extract::Query<super::store::DueReq>,
) -> ApiResult<axum::response::Response> {
    actor.require(crate::identity::Perm::RegistryExport)?;
    let scope = actor.individuals()?;
    let regions = app.regions.read().await.clone();
    let bytes = super::store::due_xlsx(
        &app.db,
        &app.search_index,
        &scope,
        &actor.who(),
        &regions,
        &q,
        crate::platform::today(),
    )
    .await?;
    Ok(crate::registry::http::xlsx(bytes, "待评估名单"))
}

/// Note a reassessment trigger (复评触发: a risk event, a new diagnosis, a disputed result, a change
/// of condition): the person goes on the due list until assessed again. Audited.
#[utoipa::path(post, path = "/api/v1/elders/{id}/assessment-triggers", tag = "assessment", params(("id" = String, Path)),
    request_body = super::store::NewTrigger,
    responses((status = 201, body = super::store::Trigger), (status = 403, body = crate::platform::error::Problem), (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn trigger(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(t): Json<super::store::NewTrigger>,
) -> ApiResult<(axum::http::StatusCode, Json<super::store::Trigger>)> {
    // Assessors, and the village workers who learn of a fall on a visit.
    let scope = if actor.has(crate::identity::Perm::AssessmentRecord) {
        actor.assess()?
    } else {
        actor.edit()?
    };
    let r = super::store::note_trigger(
        &app.db,
        &scope,
        &actor.who(),
        &id,
        t,
        crate::platform::today(),
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(r)))
}

/// Validity settings that apply within the caller's scope (region → months; default 12).
#[utoipa::path(get, path = "/api/v1/assessments/validity", tag = "assessment",
    responses((status = 200, body = [super::store::ValiditySetting]), (status = 403, body = crate::platform::error::Problem)))]
pub async fn validity(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
) -> ApiResult<Json<Vec<super::store::ValiditySetting>>> {
    let scope = actor.assess()?;
    Ok(Json(super::store::list_validity(&app.db, &scope).await?))
}

/// Set how long assessments stay valid in a region and below it (officers, within their edit
/// scope; applies to records made from now on). Audited.
#[utoipa::path(put, path = "/api/v1/assessments/validity", tag = "assessment", request_body = super::store::ValiditySetting,
    responses((status = 200, body = super::store::ValiditySetting), (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn set_validity(
    State(app): State<AppState>,
    actor: crate::identity::Actor,
    Json(s): Json<super::store::ValiditySetting>,
) -> ApiResult<Json<super::store::ValiditySetting>> {
    actor.require(crate::identity::Perm::AssessmentRecord)?;
    let scope = actor.edit()?;
    Ok(Json(
        super::store::set_validity(&app.db, &scope, &actor.who(), s).await?,
    ))
}

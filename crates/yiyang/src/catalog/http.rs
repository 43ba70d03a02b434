//! Catalogue API: read and edit a region's catalogue, check a rule while typing, publish, run the
//! evaluation, explain one elder, and the public catalogue page's data.

use super::evaluate::{self, ItemExplanation, RunSummary};
use super::store::{self, CatalogView, ItemDef, VersionView};
use crate::app::AppState;
use crate::audit::Entry;
use crate::identity::http::ClientIp;
use crate::identity::{Actor, Perm};
use crate::platform::error::{ApiError, ApiResult};
use crate::region::RegionIndex;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use yiyang_kernel::eligibility::{self, FieldHelp, RuleError};

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<crate::app::AppState> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/public/catalog", get(public_catalog))
        .route("/catalog", get(get_catalog))
        .route("/catalog/language", get(language))
        .route("/catalog/check-rule", post(check_rule))
        .route("/catalog/drafts", post(open_draft))
        .route(
            "/catalog/versions/{id}/items/{code}",
            put(put_item).delete(delete_item),
        )
        .route("/catalog/versions/{id}/publish", post(publish))
        .route("/catalog/versions/{id}/simulate", post(simulate))
        .route("/catalog/evaluate", post(run_evaluation))
        .route("/catalog/evaluations", post(start_evaluation))
        .route("/catalog/evaluations/{id}", get(evaluation_status))
        .route("/entitlements", get(list_entitlements))
        .route("/entitlements/{id}/decision", post(decide_entitlement))
        .route("/entitlements/decisions", post(decide_entitlements))
        .route("/payment-batches", get(list_batches).post(create_batch))
        .route("/payment-batches/{id}", get(get_batch))
        .route("/payment-batches/{id}/steps", post(batch_step))
        .route("/payment-batches/{id}/lines", get(batch_lines))
        .route("/payment-batches/{id}/bank-file", post(bank_file))
        .route("/payment-check", get(payment_check))
        .route("/elder-lists", get(lists).post(create_list))
        .route("/elder-lists/{list}/members", post(list_members))
        .route(
            "/elder-lists/{list}/members/import",
            post(import_list_members).layer(crate::registry::http::upload_limit()),
        )
        .route("/elders/{id}/eligibility", get(elder_eligibility))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RegionQuery {
    /// Region of the catalogue (default: the caller's region)
    pub region_code: Option<String>,
}

/// Names a region code or a code prefix (as rules write subtrees) for reasons.
pub fn namer(idx: &RegionIndex) -> impl Fn(&str) -> String + Sync + '_ {
    |code: &str| {
        let full = format!("{code:0<12}");
        idx.name(&full)
            .map(str::to_string)
            .unwrap_or_else(|| code.to_string())
    }
}

/// The catalogue of a region (published and draft).
#[utoipa::path(get, path = "/api/v1/catalog", tag = "catalog", params(RegionQuery),
    responses((status = 200, body = CatalogView), (status = 403, body = crate::platform::error::Problem)))]
pub async fn get_catalog(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<RegionQuery>,
) -> ApiResult<Json<CatalogView>> {
    let scope = actor.aggregates()?;
    let code = q
        .region_code
        .unwrap_or_else(|| actor.region.as_str().to_string());
    scope.narrow(Some(&code))?;
    Ok(Json(store::view(&app.db, &code).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LanguageHelp {
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<FieldHelp>,
    /// [code, 中文] pairs (documented as two-string arrays: a tuple's `prefixItems` is more than
    /// common OpenAPI tools read)
    #[schema(value_type = Vec<Vec<String>>)]
    pub benefit_kinds: Vec<(String, String)>,
    pub examples: Vec<String>,
}

/// The fields, operators and values the rule language knows (for the editor).
#[utoipa::path(get, path = "/api/v1/catalog/language", tag = "catalog", responses((status = 200, body = LanguageHelp)))]
pub async fn language(_actor: Actor) -> Json<LanguageHelp> {
    Json(LanguageHelp {
        fields: eligibility::field_help(),
        benefit_kinds: store::BENEFIT_KINDS
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        examples: vec![
            "状态 = 在册 且 年龄 >= 80".into(),
            "状态 = 在册 且 经济状况 属于 [特困, 低保, 低保边缘] 且 能力等级 >= 中度失能".into(),
            "状态 = 在册 且 (居住状况 属于 [独居, 空巢] 或 计生特殊家庭 属于 [失独, 伤残])".into(),
            "户籍地 位于 320682104000".into(),
        ],
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleCheckReq {
    pub rule: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RuleCheckResp {
    pub ok: bool,
    #[schema(value_type = Option<Object>)]
    pub error: Option<RuleError>,
}

/// Check a rule without saving it (the editor checks while the officer types).
#[utoipa::path(post, path = "/api/v1/catalog/check-rule", tag = "catalog", request_body = RuleCheckReq,
    responses((status = 200, body = RuleCheckResp)))]
pub async fn check_rule(
    actor: Actor,
    Json(r): Json<RuleCheckReq>,
) -> ApiResult<Json<RuleCheckResp>> {
    actor.require(Perm::CatalogManage)?;
    let error = eligibility::Rule::parse(&r.rule).err();
    Ok(Json(RuleCheckResp {
        ok: error.is_none(),
        error,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftReq {
    pub region_code: String,
}

/// Open the region's draft (a copy of the published catalogue when there is none yet).
#[utoipa::path(post, path = "/api/v1/catalog/drafts", tag = "catalog", request_body = DraftReq,
    responses((status = 200, body = VersionView), (status = 403, body = crate::platform::error::Problem)))]
pub async fn open_draft(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<DraftReq>,
) -> ApiResult<Json<VersionView>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    Ok(Json(
        store::open_draft(&app.db, &scope, &actor.who(), &r.region_code).await?,
    ))
}

/// Add or replace an item of a draft. The rule and every tier rule are checked; a bad one gets
/// 422 naming the field and the column.
#[utoipa::path(put, path = "/api/v1/catalog/versions/{id}/items/{code}", tag = "catalog", request_body = ItemDef,
    responses((status = 200, body = ItemDef), (status = 409, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn put_item(
    State(app): State<AppState>,
    actor: Actor,
    Path((id, code)): Path<(String, String)>,
    Json(d): Json<ItemDef>,
) -> ApiResult<Json<ItemDef>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    if d.code != code {
        return Err(ApiError::invalid("code", "项目代码与地址中的不一致"));
    }
    Ok(Json(
        store::put_item(&app.db, &scope, &actor.who(), &id, d).await?,
    ))
}

/// Remove an item from a draft.
#[utoipa::path(delete, path = "/api/v1/catalog/versions/{id}/items/{code}", tag = "catalog",
    responses((status = 204), (status = 404, body = crate::platform::error::Problem)))]
pub async fn delete_item(
    State(app): State<AppState>,
    actor: Actor,
    Path((id, code)): Path<(String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    store::delete_item(&app.db, &scope, &actor.who(), &id, &code).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishReq {
    /// YYYY-MM-DD
    pub effective_from: String,
}

/// Publish a draft; the previous catalogue is superseded.
#[utoipa::path(post, path = "/api/v1/catalog/versions/{id}/publish", tag = "catalog", request_body = PublishReq,
    responses((status = 200, body = VersionView), (status = 409, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn publish(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<PublishReq>,
) -> ApiResult<Json<VersionView>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    Ok(Json(
        store::publish(&app.db, &scope, &actor.who(), &id, &r.effective_from).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateReq {
    pub region_code: String,
}

/// Run the published catalogue over everyone living in the region and apply the changes.
#[utoipa::path(post, path = "/api/v1/catalog/evaluate", tag = "catalog", request_body = EvaluateReq,
    responses((status = 200, body = RunSummary), (status = 409, body = crate::platform::error::Problem)))]
pub async fn run_evaluation(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<EvaluateReq>,
) -> ApiResult<Json<RunSummary>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    let idx = app.regions.read().await;
    let names = namer(&idx);
    let s = evaluate::run(
        &app.db,
        &scope,
        &actor.who(),
        &r.region_code,
        crate::platform::today(),
        &names,
    )
    .await;
    crate::platform::release_memory();
    Ok(Json(s?))
}

/// Which catalogue items apply to an elder and why (audited: it shows statuses and the level).
#[utoipa::path(get, path = "/api/v1/elders/{id}/eligibility", tag = "catalog",
    responses((status = 200, body = Vec<ItemExplanation>), (status = 404, body = crate::platform::error::Problem)))]
pub async fn elder_eligibility(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ItemExplanation>>> {
    let scope = actor.individuals()?;
    let idx = app.regions.read().await;
    let names = namer(&idx);
    let (region, items) =
        evaluate::explain_elder(&app.db, &scope, &id, crate::platform::today(), &names).await?;
    app.read_audit
        .record(
            &actor.who(),
            Entry {
                action: "catalog.explain",
                entity: "elder",
                entity_id: Some(&id),
                region_code: Some(&region),
                detail: serde_json::json!({"items": items.len()}).to_string(),
            },
        )
        .await?;
    Ok(Json(items))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicTier {
    pub label: String,
    pub amount: f64,
    pub quota: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicItem {
    pub code: String,
    pub name: String,
    pub category: String,
    pub benefit_kind: String,
    pub provision: String,
    pub standard: String,
    pub department: String,
    pub no_application: bool,
    /// 对象条件 as written (in the rule language).
    pub eligibility: String,
    /// 谁可以享受, in plain Chinese: 80 周岁及以上、户籍在如皋市的在册老年人
    pub eligibility_zh: String,
    pub tiers: Vec<PublicTier>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicCatalog {
    pub region_code: String,
    pub region_name: String,
    pub version_number: i64,
    pub effective_from: Option<String>,
    pub items: Vec<PublicItem>,
    /// 12349, the national elderly-care service hotline.
    pub hotline: String,
    /// The bureau's office telephone, where the county has set one.
    pub office_phone: Option<String>,
}

/// The published catalogue of a region, for everyone (no login).
#[utoipa::path(get, path = "/api/v1/public/catalog", tag = "catalog", params(RegionQuery),
    responses((status = 200, body = Vec<PublicCatalog>), (status = 429, body = crate::platform::error::Problem)))]
pub async fn public_catalog(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<RegionQuery>,
) -> ApiResult<Json<Vec<PublicCatalog>>> {
    if !app.public_throttle.allow(ip.as_deref().unwrap_or("-")) {
        return Err(ApiError::too_many("请求过于频繁，请稍后再试"));
    }
    let codes: Vec<String> = match q.region_code.filter(|s| !s.is_empty()) {
        Some(c) => vec![
            yiyang_kernel::RegionCode::parse(&c)
                .map_err(|e| ApiError::invalid("region_code", e.to_string()))?
                .as_str()
                .to_string(),
        ],
        None => {
            use sqlx::Row;
            sqlx::query("SELECT region_code FROM catalog_version WHERE state = 'published' ORDER BY region_code")
                .fetch_all(&app.db.pool)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
        }
    };
    let idx = app.regions.read().await;
    let mut out = vec![];
    for code in codes {
        let Some(v) = store::version_by_state(&app.db, &code, "published").await? else {
            continue;
        };
        out.push(PublicCatalog {
            region_name: idx.path_name(&code),
            region_code: code,
            version_number: v.number,
            effective_from: v.effective_from,
            items: v
                .items
                .into_iter()
                .map(|d| PublicItem {
                    tiers: d
                        .tiers
                        .iter()
                        .map(|t| PublicTier {
                            label: t.label.clone(),
                            amount: t.amount,
                            quota: t.quota,
                        })
                        .collect(),
                    code: d.code,
                    name: d.name,
                    category: d.category,
                    benefit_kind: d.benefit_kind,
                    provision: d.provision,
                    standard: d.standard,
                    department: d.department,
                    no_application: d.no_application,
                    eligibility_zh: yiyang_kernel::eligibility::Rule::parse(&d.rule)
                        .map(|r| {
                            r.plain_zh(&|p| idx.name(&format!("{p:0<12}")).unwrap_or(p).to_string())
                        })
                        .unwrap_or_else(|_| d.rule.clone()),
                    eligibility: d.rule,
                })
                .collect(),
            hotline: "12349".into(),
            office_phone: app.config.office_phone.clone(),
        });
    }
    Ok(Json(out))
}

/// Simulate a draft against the current registry (nothing is changed): people and money per month
/// per item and per town, before (the published catalogue) and after (the draft).
#[utoipa::path(post, path = "/api/v1/catalog/versions/{id}/simulate", tag = "catalog",
    responses((status = 200, body = evaluate::Simulation), (status = 404, body = crate::platform::error::Problem)))]
pub async fn simulate(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<evaluate::Simulation>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.aggregates()?;
    let idx = app.regions.read().await;
    let names = namer(&idx);
    let sim = evaluate::simulate(&app.db, &scope, &id, crate::platform::today(), &names).await;
    crate::platform::release_memory();
    Ok(Json(sim?))
}

/// Entitlements of people in the caller's scope by state (default: proposed, the approval queue).
#[utoipa::path(get, path = "/api/v1/entitlements", tag = "catalog", params(super::entitlement::ListQuery),
    responses((status = 200, body = super::entitlement::EntitlementPage), (status = 403, body = crate::platform::error::Problem)))]
pub async fn list_entitlements(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<super::entitlement::ListQuery>,
) -> ApiResult<Json<super::entitlement::EntitlementPage>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.individuals()?;
    let idx = app.regions.read().await;
    let filter = serde_json::to_value(&q).unwrap_or_default();
    let page = super::entitlement::list(&app.db, &scope, &idx, q).await?;
    // A list of named people and what they receive: one audit row a request.
    app.read_audit
        .record(
            &actor.who(),
            crate::audit::Entry {
                action: "entitlement.list",
                entity: "entitlement",
                entity_id: None,
                region_code: scope.root.as_ref().map(|r| r.as_str()),
                detail: serde_json::json!({"filter": filter, "page": page.page, "shown": page.items.len(), "total": page.total})
                    .to_string(),
            },
        )
        .await?;
    Ok(Json(page))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DecideResp {
    /// granted / ended
    pub state: String,
}

/// Approve or refuse a proposed entitlement (audited).
#[utoipa::path(post, path = "/api/v1/entitlements/{id}/decision", tag = "catalog", request_body = super::entitlement::DecideReq,
    responses((status = 200, body = DecideResp), (status = 409, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn decide_entitlement(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<super::entitlement::DecideReq>,
) -> ApiResult<Json<DecideResp>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    let state = super::entitlement::decide(&app.db, &scope, &actor.who(), &id, r).await?;
    Ok(Json(DecideResp { state }))
}

/// Approve or refuse many proposed entitlements: those named, or every one matching a filter (the
/// next 500 a request; repeat with `after`). Each decision is audited as one person's.
#[utoipa::path(post, path = "/api/v1/entitlements/decisions", tag = "catalog", request_body = super::entitlement::BulkDecideReq,
    responses((status = 200, body = super::entitlement::BulkDecideResp), (status = 422, body = crate::platform::error::Problem)))]
pub async fn decide_entitlements(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<super::entitlement::BulkDecideReq>,
) -> ApiResult<Json<super::entitlement::BulkDecideResp>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    Ok(Json(
        super::entitlement::decide_many(&app.db, &scope, &actor.who(), r).await?,
    ))
}

/// Make the cash batch of a month for a catalogue (audited); 409 when it exists.
#[utoipa::path(post, path = "/api/v1/payment-batches", tag = "catalog", request_body = super::payment::BatchReq,
    responses((status = 200, body = super::payment::BatchView), (status = 409, body = crate::platform::error::Problem)))]
pub async fn create_batch(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<super::payment::BatchReq>,
) -> ApiResult<Json<super::payment::BatchView>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    let idx = app.regions.read().await;
    let batch = super::payment::create(&app.db, &scope, &actor.who(), &idx, r).await;
    // It read every packed cash grant of the catalogue.
    crate::platform::release_memory();
    Ok(Json(batch?))
}

/// The batches of a region, newest month first.
#[utoipa::path(get, path = "/api/v1/payment-batches", tag = "catalog", params(RegionQuery),
    responses((status = 200, body = Vec<super::payment::BatchRow>)))]
pub async fn list_batches(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<RegionQuery>,
) -> ApiResult<Json<Vec<super::payment::BatchRow>>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.aggregates()?;
    let code = q
        .region_code
        .unwrap_or_else(|| actor.region.as_str().to_string());
    Ok(Json(super::payment::list(&app.db, &scope, &code).await?))
}

/// One batch: totals per town, item and funding level, and how many lines pay the dead.
#[utoipa::path(get, path = "/api/v1/payment-batches/{id}", tag = "catalog",
    responses((status = 200, body = super::payment::BatchView), (status = 404, body = crate::platform::error::Problem)))]
pub async fn get_batch(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<super::payment::BatchView>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.aggregates()?;
    let idx = app.regions.read().await;
    Ok(Json(
        super::payment::view(&app.db, &scope, &idx, &id).await?,
    ))
}

/// Move a batch on: review it (someone other than its maker), mark it paid, or discard a draft.
/// Audited; returns the batch (nothing after a discard).
#[utoipa::path(post, path = "/api/v1/payment-batches/{id}/steps", tag = "catalog", request_body = super::payment::BatchStep,
    responses((status = 200, body = Option<super::payment::BatchView>), (status = 409, body = crate::platform::error::Problem)))]
pub async fn batch_step(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(s): Json<super::payment::BatchStep>,
) -> ApiResult<Json<Option<super::payment::BatchView>>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    let idx = app.regions.read().await;
    Ok(Json(
        super::payment::step(&app.db, &scope, &actor.who(), &idx, &id, s).await?,
    ))
}

/// The people a batch pays (masked ID, age, town and village, item, amount), a page at a time.
#[utoipa::path(get, path = "/api/v1/payment-batches/{id}/lines", tag = "catalog", params(super::payment::LinesQuery),
    responses((status = 200, body = super::payment::BatchLines), (status = 404, body = crate::platform::error::Problem)))]
pub async fn batch_lines(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<super::payment::LinesQuery>,
) -> ApiResult<Json<super::payment::BatchLines>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.individuals()?;
    let idx = app.regions.read().await;
    Ok(Json(
        super::payment::lines(&app.db, &scope, &idx, &id, q).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankFileReq {
    /// 给出事由且有权限时导出完整身份证号（银行代发需要）
    #[serde(default)]
    pub reveal_reason: Option<String>,
}

/// The bank file of a batch (XLSX, audited); full citizen IDs only with the reveal permission and a reason.
#[utoipa::path(post, path = "/api/v1/payment-batches/{id}/bank-file", tag = "catalog", request_body = BankFileReq,
    responses((status = 200, description = "XLSX file", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (status = 403, body = crate::platform::error::Problem)))]
pub async fn bank_file(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<BankFileReq>,
) -> ApiResult<axum::response::Response> {
    actor.require(Perm::CatalogManage)?;
    actor.require(Perm::RegistryExport)?;
    let scope = actor.individuals()?;
    let reason = r
        .reveal_reason
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(reason) = reason {
        actor.require(Perm::RegistryReveal)?;
        if reason.chars().count() < 4 {
            return Err(ApiError::invalid(
                "reveal_reason",
                "请填写导出完整身份证号的事由（至少4个字）",
            ));
        }
    }
    let (bytes, month) =
        super::payment::bank_file(&app.db, &app.keys, &scope, &actor.who(), &id, reason).await?;
    Ok(crate::registry::http::xlsx(
        bytes,
        &format!("{month}发放名单"),
    ))
}

/// Payments for months that began after the person's death, in every batch of the region.
#[utoipa::path(get, path = "/api/v1/payment-check", tag = "catalog", params(RegionQuery),
    responses((status = 200, body = Vec<super::payment::AfterDeath>)))]
pub async fn payment_check(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<RegionQuery>,
) -> ApiResult<Json<Vec<super::payment::AfterDeath>>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.individuals()?;
    let code = q
        .region_code
        .unwrap_or_else(|| actor.region.as_str().to_string());
    let found = super::payment::paid_after_death(&app.db, &scope, &code).await?;
    app.read_audit
        .record(
            &actor.who(),
            crate::audit::Entry {
                action: "payment.check",
                entity: "payment",
                entity_id: None,
                region_code: Some(&code),
                detail: serde_json::json!({"found": found.len()}).to_string(),
            },
        )
        .await?;
    Ok(Json(found))
}

/// The named lists (名单) rules can test, with their members in the caller's scope.
#[utoipa::path(get, path = "/api/v1/elder-lists", tag = "catalog", responses((status = 200, body = Vec<super::lists::ListView>)))]
pub async fn lists(
    State(app): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<super::lists::ListView>>> {
    let scope = actor.aggregates()?;
    Ok(Json(super::lists::all(&app.db, &scope).await?))
}

/// Create a named list (audited).
#[utoipa::path(post, path = "/api/v1/elder-lists", tag = "catalog", request_body = super::lists::NewList,
    responses((status = 200, body = super::lists::ListView), (status = 409, body = crate::platform::error::Problem)))]
pub async fn create_list(
    State(app): State<AppState>,
    actor: Actor,
    Json(l): Json<super::lists::NewList>,
) -> ApiResult<Json<super::lists::ListView>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    Ok(Json(
        super::lists::create(&app.db, &scope, &actor.who(), l).await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MembersResp {
    pub changed: i64,
}

/// Put people on a list or take them off (audited).
#[utoipa::path(post, path = "/api/v1/elder-lists/{list}/members", tag = "catalog", request_body = super::lists::MembersReq,
    responses((status = 200, body = MembersResp), (status = 422, body = crate::platform::error::Problem)))]
pub async fn list_members(
    State(app): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    Json(r): Json<super::lists::MembersReq>,
) -> ApiResult<Json<MembersResp>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    Ok(Json(MembersResp {
        changed: super::lists::members(&app.db, &scope, &actor.who(), &name, r).await?,
    }))
}

/// Put the people of a CSV/XLSX file (身份证号 column) on a list; `dry_run` (default true) checks
/// only. Refused rows come back with their row number and reason.
#[utoipa::path(post, path = "/api/v1/elder-lists/{list}/members/import", tag = "catalog",
    request_body(content_type = "multipart/form-data", description = "file: CSV/XLSX with a 身份证号 column; dry_run: true/false"),
    responses((status = 200, body = super::lists::MemberImport), (status = 422, body = crate::platform::error::Problem)))]
pub async fn import_list_members(
    State(app): State<AppState>,
    actor: Actor,
    Path(list): Path<String>,
    mut mp: axum::extract::Multipart,
) -> ApiResult<Json<super::lists::MemberImport>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    let (file_name, bytes, dry_run) = crate::registry::http::read_upload(&mut mp).await?;
    Ok(Json(
        super::lists::import_members(
            &app.db,
            &app.keys,
            &scope,
            &actor.who(),
            &list,
            &file_name,
            bytes,
            dry_run,
        )
        .await?,
    ))
}

/// An eligibility run started from the console (a job: the request returns at once).
pub struct EvalJob {
    pub id: String,
    pub region_code: String,
    pub started_at: std::time::Instant,
    pub progress: evaluate::Progress,
    /// The summary, or the status and Chinese message of the error.
    pub outcome: std::sync::Mutex<Option<Result<RunSummary, (u16, String)>>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EvalStarted {
    pub id: String,
}

/// Start the run of the region's published catalogue as a job (the console follows it with
/// `GET /catalog/evaluations/{id}`). Refused at once when the catalogue is missing or a run of
/// the same region is going on.
#[utoipa::path(post, path = "/api/v1/catalog/evaluations", tag = "catalog", request_body = EvaluateReq,
    responses((status = 202, body = EvalStarted), (status = 409, body = crate::platform::error::Problem)))]
pub async fn start_evaluation(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<EvaluateReq>,
) -> ApiResult<(axum::http::StatusCode, Json<EvalStarted>)> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.edit()?;
    let rc = yiyang_kernel::RegionCode::parse(&r.region_code)
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    if !scope.covers(&rc) {
        return Err(ApiError::forbidden("该区划不在您的管辖范围内"));
    }
    if store::version_by_state(&app.db, rc.as_str(), "published")
        .await?
        .is_none()
    {
        return Err(ApiError::conflict("该区划还没有发布的服务目录"));
    }
    let job = Arc::new(EvalJob {
        id: uuid::Uuid::now_v7().to_string(),
        region_code: rc.as_str().to_string(),
        started_at: std::time::Instant::now(),
        progress: evaluate::Progress::default(),
        outcome: std::sync::Mutex::new(None),
    });
    {
        let mut jobs = app.evaluations.lock().expect("not poisoned");
        if jobs.values().any(|j| {
            j.region_code == job.region_code && j.outcome.lock().expect("not poisoned").is_none()
        }) {
            return Err(ApiError::conflict("该区划的资格评估正在进行，请稍候"));
        }
        // Keep an hour of finished runs for their pages.
        jobs.retain(|_, j| {
            j.outcome.lock().expect("not poisoned").is_none()
                || j.started_at.elapsed().as_secs() < 3600
        });
        jobs.insert(job.id.clone(), job.clone());
    }
    let (who, id) = (actor.who(), job.id.clone());
    let shared = app.db.clone();
    crate::platform::spawn_apart("evaluation", &shared, 4, move |db| async move {
        let r = {
            let idx = app.regions.read().await;
            let names = namer(&idx);
            evaluate::run_with(
                &db,
                &scope,
                &who,
                &job.region_code,
                crate::platform::today(),
                &names,
                &job.progress,
            )
            .await
        };
        crate::platform::release_memory();
        job.progress
            .phase
            .store(4, std::sync::atomic::Ordering::Relaxed);
        *job.outcome.lock().expect("not poisoned") = Some(r.map_err(|e| {
            if e.status.is_server_error() {
                tracing::error!(error = ?e.internal, "evaluation job failed");
            }
            (e.status.as_u16(), e.detail)
        }));
    });
    Ok((axum::http::StatusCode::ACCEPTED, Json(EvalStarted { id })))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EvalStatus {
    pub id: String,
    pub region_code: String,
    /// running / done / failed
    pub state: String,
    /// 1 reading, 2 deciding, 3 writing, 4 done
    pub phase: u8,
    pub phase_label: String,
    pub elders: u64,
    pub changes: u64,
    pub seconds: f64,
    pub summary: Option<RunSummary>,
    pub error: Option<String>,
}

/// Where a console-started run stands.
#[utoipa::path(get, path = "/api/v1/catalog/evaluations/{id}", tag = "catalog",
    responses((status = 200, body = EvalStatus), (status = 404, body = crate::platform::error::Problem)))]
pub async fn evaluation_status(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<EvalStatus>> {
    actor.require(Perm::CatalogManage)?;
    let scope = actor.aggregates()?;
    let job = app
        .evaluations
        .lock()
        .expect("not poisoned")
        .get(&id)
        .cloned()
        .filter(|j| scope.contains(&j.region_code))
        .ok_or_else(|| ApiError::not_found("未找到该评估任务"))?;
    let phase = job
        .progress
        .phase
        .load(std::sync::atomic::Ordering::Relaxed);
    let outcome = job.outcome.lock().expect("not poisoned").clone();
    let (state, summary, error) = match outcome {
        None => ("running", None, None),
        Some(Ok(s)) => ("done", Some(s), None),
        Some(Err((_, e))) => ("failed", None, Some(e)),
    };
    let label =
        ["准备", "读取老年人信息", "逐项判断资格", "写入变动", "完成"][phase.min(4) as usize];
    Ok(Json(EvalStatus {
        id: job.id.clone(),
        region_code: job.region_code.clone(),
        state: state.into(),
        phase,
        phase_label: label.into(),
        elders: job
            .progress
            .elders
            .load(std::sync::atomic::Ordering::Relaxed),
        changes: job
            .progress
            .changes
            .load(std::sync::atomic::Ordering::Relaxed),
        seconds: job.started_at.elapsed().as_secs_f64(),
        summary,
        error,
    }))
}

use super::import::{self, Progress, Summary};
use super::model::{self, ElderInput};
use super::store::{self, Elder, ElderPage, SearchReq};
use crate::app::AppState;
use crate::audit::{self, Entry};
use crate::identity::{Actor, Perm};
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::today;
use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<crate::app::AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/elders", post(create))
        .route("/elders/search", post(search))
        .route("/elders/export", post(export))
        .route("/elders/{id}", get(detail).patch(update))
        .route("/elders/{id}/reveal", post(reveal))
        .route("/elders/{id}/death", post(death))
        .route("/elders/{id}/move-out", post(move_out))
        .route("/registry/template.xlsx", get(template))
        .route("/imports/registry", post(upload).layer(upload_limit()))
        .route("/imports/{id}", get(status))
        .route("/imports/{id}/errors.xlsx", get(errors_xlsx))
}

/// Uploads may be as large as the import allows (other requests keep axum's 2 MB).
pub fn upload_limit() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(super::import::MAX_FILE_BYTES + 1024 * 1024)
}

pub fn xlsx(bytes: Vec<u8>, file: &str) -> Response {
    let disp = format!(
        "attachment; filename=\"{}.xlsx\"; filename*=UTF-8''{}",
        "export",
        urlencode(file)
    );
    (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (header::CONTENT_DISPOSITION, disp),
        ],
        bytes,
    )
        .into_response()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Search elders in the caller's scope (POST, so a name never lands in a URL or an access log).
#[utoipa::path(post, path = "/api/v1/elders/search", tag = "registry", request_body = SearchReq,
    responses((status = 200, body = ElderPage), (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn search(
    State(app): State<AppState>,
    actor: Actor,
    Json(q): Json<SearchReq>,
) -> ApiResult<Json<ElderPage>> {
    let scope = actor.individuals()?;
    let regions = app.regions.read().await;
    let page = store::search(
        &app.db,
        &app.search_index,
        &app.keys,
        &scope,
        &regions,
        &q,
        today(),
    )
    .await?;
    // Looking a person up by name is a sensitive read (the name itself is logged masked).
    if q.name.as_deref().is_some_and(|n| !n.trim().is_empty()) {
        app.read_audit
            .record(
                &actor.who(),
                Entry {
                    action: "elder.search",
                    entity: "elder",
                    entity_id: None,
                    region_code: q
                        .region_code
                        .as_deref()
                        .or(scope.root.as_ref().map(|r| r.as_str())),
                    detail: serde_json::json!({"filter": audited_filter(&q), "total": page.total, "shown": page.items.len()})
                        .to_string(),
                },
            )
            .await?;
    }
    Ok(Json(page))
}

/// One elder's record (audited as a sensitive read).
#[utoipa::path(get, path = "/api/v1/elders/{id}", tag = "registry", params(("id" = String, Path)),
    responses((status = 200, body = Elder), (status = 404, body = crate::platform::error::Problem)))]
pub async fn detail(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<Elder>> {
    let scope = actor.individuals()?;
    let regions = app.regions.read().await;
    Ok(Json(
        store::detail(
            &app.db,
            &app.read_audit,
            &scope,
            &actor.who(),
            &id,
            &regions,
            today(),
        )
        .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RevealReq {
    /// citizen_id or phone
    pub field: String,
    /// 查看事由
    pub reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Revealed {
    pub value: String,
}

/// Show a full citizen ID or phone: needs the reveal permission and a reason; audited.
#[utoipa::path(post, path = "/api/v1/elders/{id}/reveal", tag = "registry", params(("id" = String, Path)), request_body = RevealReq,
    responses((status = 200, body = Revealed), (status = 403, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn reveal(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<RevealReq>,
) -> ApiResult<Json<Revealed>> {
    let scope = actor.individuals()?;
    actor.require(Perm::RegistryReveal)?;
    let value = store::reveal(
        &app.db,
        &app.keys,
        &scope,
        &actor.who(),
        &id,
        &r.field,
        &r.reason,
    )
    .await?;
    Ok(Json(Revealed { value }))
}

/// Fields of an elder as the editor and `POST /elders` send them (import-template names). In a
/// PATCH an absent field is kept and `null` (or an empty string) clears it, as in a JSON merge
/// patch; the optional fields therefore tell "absent" (`None`) from "null" (`Some(None)`).
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct ElderFields {
    pub citizen_id: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub hukou_region: Option<Option<String>>,
    pub residence_region: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub lon: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub lat: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub living_status: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub economic_status: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub family_planning_special: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub disability_grade: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub entitled_veteran_family: Option<Option<bool>>,
}

/// A field that is present: its value, or `None` for `null` (absent fields stay `None` outside).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::deserialize(d)?))
}

fn to_field_errors(msg: String) -> ApiError {
    ApiError {
        errors: msg
            .split('；')
            .map(|m| crate::platform::error::FieldError {
                field: String::new(),
                message: m.to_string(),
            })
            .collect(),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", msg)
    }
}

fn validate_fields(
    app: &AppState,
    regions: &crate::region::RegionIndex,
    scope: &crate::identity::Scope,
    f: HashMap<&'static str, String>,
) -> ApiResult<ElderInput> {
    let _ = app;
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let region_ok = |r: &str| regions.check_scoped_code(r, scope);
    model::validate_row(&get, today(), &region_ok).map_err(to_field_errors)
}

fn fields_map(base: Option<&ElderInput>, f: &ElderFields) -> HashMap<&'static str, String> {
    let mut m: HashMap<&'static str, String> = HashMap::new();
    if let Some(b) = base {
        m.insert("citizen_id", b.citizen_id.as_str().to_string());
        m.insert("name", b.name.clone());
        m.insert("hukou_region", b.hukou_region.clone().unwrap_or_default());
        m.insert("residence_region", b.residence_region.clone());
        m.insert("address", b.address.clone().unwrap_or_default());
        m.insert("phone", b.phone.clone().unwrap_or_default());
        m.insert("lon", b.lon.map(|v| v.to_string()).unwrap_or_default());
        m.insert("lat", b.lat.map(|v| v.to_string()).unwrap_or_default());
        m.insert(
            "living_status",
            b.living_status.unwrap_or_default().to_string(),
        );
        m.insert(
            "economic_status",
            b.economic_status.unwrap_or_default().to_string(),
        );
        m.insert(
            "family_planning_special",
            b.family_planning_special.unwrap_or_default().to_string(),
        );
        m.insert(
            "disability_grade",
            b.disability_grade
                .map(|v| v.to_string())
                .unwrap_or_default(),
        );
        m.insert(
            "entitled_veteran_family",
            b.entitled_veteran_family
                .map(|v| if v { "是" } else { "否" }.to_string())
                .unwrap_or_default(),
        );
        m.insert(
            "death_date",
            b.death_date.map(|d| d.to_string()).unwrap_or_default(),
        );
    }
    let mut set = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k, v);
        }
    };
    // Present fields: a value sets, null clears (an empty value is "none" to the row rules).
    fn given<T>(v: &Option<Option<T>>, show: impl Fn(&T) -> String) -> Option<String> {
        v.as_ref().map(|v| v.as_ref().map(show).unwrap_or_default())
    }
    if base.is_none() {
        set("citizen_id", f.citizen_id.clone());
    }
    set("name", f.name.clone());
    set("hukou_region", given(&f.hukou_region, String::clone));
    set("residence_region", f.residence_region.clone());
    set("address", given(&f.address, String::clone));
    set("phone", given(&f.phone, String::clone));
    set("living_status", given(&f.living_status, String::clone));
    set("economic_status", given(&f.economic_status, String::clone));
    set(
        "family_planning_special",
        given(&f.family_planning_special, String::clone),
    );
    set("lon", given(&f.lon, f64::to_string));
    set("lat", given(&f.lat, f64::to_string));
    set(
        "disability_grade",
        given(&f.disability_grade, i64::to_string),
    );
    set(
        "entitled_veteran_family",
        given(&f.entitled_veteran_family, |v| {
            if *v { "是" } else { "否" }.to_string()
        }),
    );
    m
}

/// Register one elder by hand. A citizen ID already registered is refused.
#[utoipa::path(post, path = "/api/v1/elders", tag = "registry", request_body = ElderFields,
    responses((status = 201, body = Elder), (status = 409, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn create(
    State(app): State<AppState>,
    actor: Actor,
    Json(f): Json<ElderFields>,
) -> ApiResult<(StatusCode, Json<Elder>)> {
    let scope = actor.edit()?;
    let regions = app.regions.read().await;
    let input = validate_fields(&app, &regions, &scope, fields_map(None, &f))?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let mut tx = app.db.begin().await?;
    let seq = store::next_change_seq(&mut tx).await?;
    let q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO elder ({}) VALUES {}",
        store::INSERT_COLS,
        store::placeholders(app.db.backend, 1, store::INSERT_NCOLS)
    )));
    let res = store::bind_elder(
        q,
        &id,
        &input,
        &app.keys,
        &store::Stamp {
            source: &format!("人工登记（{}）", actor.display_name),
            now: &now,
            today: &today().to_string(),
            change_seq: seq,
        },
    )
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(d)) = &res
        && d.is_unique_violation()
    {
        return Err(ApiError::conflict("该身份证号已登记，不能重复建档"));
    }
    res?;
    audit::append(
        &mut tx,
        &actor.who(),
        Entry {
            action: "elder.create",
            entity: "elder",
            entity_id: Some(&id),
            region_code: Some(&input.residence_region),
            detail: serde_json::json!({"citizen_id": input.citizen_id.masked()}).to_string(),
        },
    )
    .await?;
    let e = store::detail_in_tx(&mut tx, &scope, &id, &regions, today()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(e)))
}

async fn apply_change(
    app: &AppState,
    actor: &Actor,
    id: &str,
    action: &str,
    f: impl FnOnce(ElderInput) -> ApiResult<HashMap<&'static str, String>>,
    moved_out: Option<String>,
) -> ApiResult<Json<Elder>> {
    let scope = actor.edit()?;
    let regions = app.regions.read().await;
    let mut tx = app.db.begin().await?;
    let base = store::load_input(&mut tx, &app.keys, &scope, id).await?;
    let input = validate_fields(app, &regions, &scope, f(base)?)?;
    let now = crate::platform::now_rfc3339();
    let changed = store::update_content(
        &mut tx,
        &app.keys,
        id,
        &input,
        &format!("{}（{}）", action_zh(action), actor.display_name),
        &now,
        0,
    )
    .await?;
    if let Some(d) = &moved_out {
        sqlx::query("UPDATE elder SET status = 'moved_out', moved_out_date = $1 WHERE id = $2")
            .bind(d)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    // A death ends, a move-out suspends the elder's entitlements, in this same transaction.
    crate::catalog::entitlement::follow_registry(&mut tx, id, &actor.who()).await?;
    // A resident who died is discharged on the date of death.
    crate::institution::follow_registry(&mut tx, id, &actor.who()).await?;
    // Visits not yet made are cancelled, care plans end.
    crate::home_service::follow_registry(&mut tx, id, &actor.who()).await?;
    let e = store::detail_in_tx(&mut tx, &scope, id, &regions, today()).await?;
    // The two heads last: each is locked until the commit, so the less happens after taking it,
    // the less an import waits. In the order every writer takes them — the change number, then
    // the audit head — or two writers could each hold the one the other waits for.
    store::stamp_change(&mut tx, id).await?;
    audit::append(
        &mut tx,
        &actor.who(),
        Entry {
            action,
            entity: "elder",
            entity_id: Some(id),
            region_code: Some(&input.residence_region),
            detail: serde_json::json!({"changed": changed, "moved_out_date": moved_out})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(e))
}

fn action_zh(a: &str) -> &'static str {
    match a {
        "elder.death" => "登记死亡",
        "elder.move_out" => "登记迁出",
        _ => "修改档案",
    }
}

/// Edit an elder (partial: absent fields keep their value).
#[utoipa::path(patch, path = "/api/v1/elders/{id}", tag = "registry", params(("id" = String, Path)), request_body = ElderFields,
    responses((status = 200, body = Elder), (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn update(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(f): Json<ElderFields>,
) -> ApiResult<Json<Elder>> {
    if f.citizen_id.is_some() {
        return Err(ApiError::invalid(
            "citizen_id",
            "身份证号不能修改；如登记有误，请登记迁出后重新建档",
        ));
    }
    apply_change(
        &app,
        &actor,
        &id,
        "elder.update",
        |b| Ok(fields_map(Some(&b), &f)),
        None,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeathReq {
    pub death_date: String,
}

/// Record a death: status becomes deceased from that date (later capabilities stop services).
#[utoipa::path(post, path = "/api/v1/elders/{id}/death", tag = "registry", params(("id" = String, Path)), request_body = DeathReq,
    responses((status = 200, body = Elder), (status = 422, body = crate::platform::error::Problem)))]
pub async fn death(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<DeathReq>,
) -> ApiResult<Json<Elder>> {
    let d = model::parse_date(&r.death_date)
        .ok_or_else(|| ApiError::invalid("death_date", "死亡日期格式应为 YYYY-MM-DD"))?;
    apply_change(
        &app,
        &actor,
        &id,
        "elder.death",
        |b| {
            let mut m = fields_map(Some(&b), &ElderFields::default());
            m.insert("death_date", d.to_string());
            Ok(m)
        },
        None,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MoveOutReq {
    pub date: String,
    pub note: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/elders/{id}/move-out", tag = "registry", params(("id" = String, Path)), request_body = MoveOutReq,
    responses((status = 200, body = Elder), (status = 422, body = crate::platform::error::Problem)))]
pub async fn move_out(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(r): Json<MoveOutReq>,
) -> ApiResult<Json<Elder>> {
    let d = model::parse_date(&r.date)
        .filter(|d| *d <= today())
        .ok_or_else(|| ApiError::invalid("date", "迁出日期格式应为 YYYY-MM-DD，且不晚于今天"))?;
    let _ = r.note;
    apply_change(
        &app,
        &actor,
        &id,
        "elder.move_out",
        |b| Ok(fields_map(Some(&b), &ElderFields::default())),
        Some(d.to_string()),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ExportReq {
    #[serde(default)]
    pub filter: SearchReq,
    /// 给出事由且有权限时导出完整身份证号
    pub reveal_reason: Option<String>,
}

/// Export a search result to XLSX; masked unless the caller may reveal and gives a reason. Audited.
#[utoipa::path(post, path = "/api/v1/elders/export", tag = "registry", request_body = ExportReq,
    responses((status = 200, description = "XLSX file", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (status = 403, body = crate::platform::error::Problem)))]
pub async fn export(
    State(app): State<AppState>,
    actor: Actor,
    Json(r): Json<ExportReq>,
) -> ApiResult<Response> {
    let scope = actor.individuals()?;
    actor.require(Perm::RegistryExport)?;
    let reveal = match r
        .reveal_reason
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(reason) => {
            actor.require(Perm::RegistryReveal)?;
            if reason.chars().count() < 4 {
                return Err(ApiError::invalid(
                    "reveal_reason",
                    "请填写导出完整身份证号的事由（至少4个字）",
                ));
            }
            Some(reason.to_string())
        }
        None => None,
    };
    let regions = app.regions.read().await;
    let bytes =
        crate::registry::export_xlsx(&app, &scope, &regions, &r.filter, reveal.is_some()).await?;
    let mut tx = app.db.begin().await?;
    audit::append(&mut tx, &actor.who(), Entry { action: "registry.export", entity: "elder", entity_id: None, region_code: scope.root.as_ref().map(|r| r.as_str()), detail: serde_json::json!({"rows": bytes.1, "revealed": reveal.is_some(), "reason": reveal, "contains_birth_date": true, "filter": audited_filter(&r.filter)}).to_string() }).await?;
    tx.commit().await?;
    Ok(xlsx(bytes.0, "老年人档案"))
}

#[utoipa::path(get, path = "/api/v1/registry/template.xlsx", tag = "registry",
    responses((status = 200, description = "XLSX template", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))]
pub async fn template(_actor: Actor) -> ApiResult<Response> {
    Ok(xlsx(import::template_xlsx()?, "老年人信息导入模板"))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobId {
    pub id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportStatus {
    pub id: String,
    pub state: String,
    pub dry_run: bool,
    pub file_name: String,
    pub total: i64,
    pub processed: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub errors: Vec<import::RowError>,
    pub message: Option<String>,
    /// The sheets read and the rows passed over (totals, signatures, notes).
    pub layout: Option<crate::platform::sheet::LayoutView>,
    /// A dry run's first people (up to 100) the file would change, field by field.
    pub changes: Vec<import::PersonChange>,
}

/// Upload a CSV/XLSX file (multipart `file`, `dry_run`); the import runs as a job — poll its status.
#[utoipa::path(post, path = "/api/v1/imports/registry", tag = "registry",
    request_body(content_type = "multipart/form-data", description = "file: CSV or XLSX; dry_run: true/false"),
    responses((status = 202, body = JobId), (status = 422, body = crate::platform::error::Problem)))]
pub async fn upload(
    State(app): State<AppState>,
    actor: Actor,
    mut mp: Multipart,
) -> ApiResult<(StatusCode, Json<JobId>)> {
    actor.require(Perm::RegistryImport)?;
    let scope = actor.edit()?;
    let (name, bytes, dry_run) = read_upload(&mut mp).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let progress = Arc::new(Progress::default());
    app.imports
        .lock()
        .await
        .insert(id.clone(), progress.clone());
    let app2 = app.clone();
    let job = id.clone();
    let who = actor.who();
    let uid = actor.user_id.clone();
    crate::platform::spawn_apart("import", &app.db, 4, move |db| async move {
        let regions = app2.regions.read().await.clone();
        let ctx = import::Ctx {
            db: &db,
            keys: &app2.keys,
            regions: &regions,
            scope: &scope,
            who: &who,
            progress,
        };
        if let Err(e) = import::run_job(&ctx, &job, Some(&uid), bytes, &name, dry_run).await {
            tracing::warn!(job = %job, error = %e, "import failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(JobId { id })))
}

/// The uploaded file (multipart `file`) and the `dry_run` flag (true unless "false").
pub async fn read_upload(mp: &mut Multipart) -> ApiResult<(String, Vec<u8>, bool)> {
    let (name, bytes, fields) = read_upload_fields(mp, &["dry_run"]).await?;
    // A dry run unless the form says otherwise.
    let dry_run = form_flag(&fields, "dry_run", true)?;
    Ok((name, bytes, dry_run))
}

/// A yes/no field of an upload form: `true` or `false`, `default` when absent or blank.
pub fn form_flag(
    fields: &std::collections::HashMap<String, String>,
    key: &str,
    default: bool,
) -> ApiResult<bool> {
    match fields.get(key).map(|v| v.trim()).unwrap_or("") {
        "" => Ok(default),
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid(key, format!("{key} 应为 true 或 false"))),
    }
}

/// An upload form: the file (name and bytes) and the other fields, as text, of those `allowed`;
/// any other field is refused, as the API document says.
pub async fn read_upload_fields(
    mp: &mut Multipart,
    allowed: &[&str],
) -> ApiResult<(String, Vec<u8>, std::collections::HashMap<String, String>)> {
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut fields = std::collections::HashMap::new();
    while let Some(field) = mp.next_field().await.map_err(|e| {
        tracing::info!(error = %e, "multipart refused");
        ApiError::bad_request("上传内容无法读取：表单（multipart/form-data）格式不正确")
    })? {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("upload.csv").to_string();
                let data = field
                    .bytes()
                    .await
                    .map_err(|_| ApiError::bad_request("文件上传中断或超过大小上限（300 MB）"))?;
                file = Some((name, data.to_vec()));
            }
            Some(other) if allowed.contains(&other) => {
                let k = other.to_string();
                fields.insert(k, field.text().await.unwrap_or_default());
            }
            Some(other) => {
                let shown: String = other.chars().filter(|c| !c.is_control()).take(30).collect();
                return Err(ApiError::invalid(
                    "file",
                    format!("表单中有本接口不接受的字段“{shown}”"),
                ));
            }
            None => {}
        }
    }
    let (name, bytes) = file.ok_or_else(|| ApiError::invalid("file", "请选择要导入的文件"))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("file", "文件为空"));
    }
    Ok((name, bytes, fields))
}

/// Import jobs are read by whoever may start one (registry or assessment imports); the job must
/// also be the caller's own.
fn may_import(actor: &Actor) -> ApiResult<()> {
    if actor.has(Perm::RegistryImport) || actor.has(Perm::AssessmentRecord) {
        Ok(())
    } else {
        actor.require(Perm::RegistryImport)
    }
}

#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "registry", params(("id" = String, Path)),
    responses((status = 200, body = ImportStatus), (status = 404, body = crate::platform::error::Problem)))]
pub async fn status(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportStatus>> {
    may_import(&actor)?;
    let r = sqlx::query("SELECT state, dry_run, file_name, total, accepted, rejected, inserted, updated, unchanged, message, layout, changes FROM import_job WHERE id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&actor.user_id)
        .fetch_optional(&app.db.pool)
        .await?;
    let progress = app.imports.lock().await.get(&id).cloned();
    let Some(r) = r else {
        if progress.is_some() {
            return Ok(Json(ImportStatus {
                id,
                state: "queued".into(),
                dry_run: true,
                file_name: String::new(),
                total: 0,
                processed: 0,
                accepted: 0,
                rejected: 0,
                inserted: 0,
                updated: 0,
                unchanged: 0,
                errors: vec![],
                message: None,
                layout: None,
                changes: vec![],
            }));
        }
        return Err(ApiError::not_found("未找到该导入任务"));
    };
    let state: String = r.get(0);
    let errors = if state == "done" {
        sqlx::query("SELECT COALESCE(sheet_row, row_no), reason FROM import_job_error WHERE job_id = $1 ORDER BY row_no LIMIT 200")
            .bind(&id)
            .fetch_all(&app.db.pool)
            .await?
            .into_iter()
            .map(|e| import::RowError { row: e.get(0), reason: e.get(1) })
            .collect()
    } else {
        vec![]
    };
    let (total, processed) = match (&progress, state.as_str()) {
        (Some(p), "running") => (
            p.total.load(Ordering::Relaxed),
            p.processed.load(Ordering::Relaxed),
        ),
        _ => (r.get(3), r.get(3)),
    };
    Ok(Json(ImportStatus {
        id,
        state,
        dry_run: r.get::<i64, _>(1) != 0,
        file_name: r.get(2),
        total,
        processed,
        accepted: r.get(4),
        rejected: r.get(5),
        inserted: r.get(6),
        updated: r.get(7),
        unchanged: r.get(8),
        errors,
        message: r.get(9),
        layout: r
            .get::<Option<String>, _>(10)
            .and_then(|l| serde_json::from_str(&l).ok()),
        changes: r
            .get::<Option<String>, _>(11)
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or_default(),
    }))
}

#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.xlsx", tag = "registry", params(("id" = String, Path)),
    responses((status = 200, description = "XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (status = 404, body = crate::platform::error::Problem)))]
pub async fn errors_xlsx(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    may_import(&actor)?;
    let owner = sqlx::query("SELECT user_id FROM import_job WHERE id = $1")
        .bind(&id)
        .fetch_optional(&app.db.pool)
        .await?;
    if owner.map(|r| r.get::<Option<String>, _>(0)) != Some(Some(actor.user_id.clone())) {
        return Err(ApiError::not_found("未找到该导入任务"));
    }
    // The report repeats the rows as uploaded, IDs included: audited like an export.
    let bytes = import::error_report(&app.db, &app.keys, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("未找到该导入任务"))?;
    let mut tx = app.db.begin().await?;
    audit::append(
        &mut tx,
        &actor.who(),
        Entry {
            action: "registry.import_errors_download",
            entity: "import_job",
            entity_id: Some(&id),
            region_code: None,
            detail: "{}".into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(xlsx(bytes, "导入错误报告"))
}

pub type _Unused = Summary;

/// A search filter as the audit log keeps it: a searched name only masked (the log is read by
/// auditors, who need to see that a name was searched, not whose).
pub fn audited_filter(f: &store::SearchReq) -> store::SearchReq {
    let mut f = f.clone();
    f.name = f.name.as_deref().map(|n| match store::IdQuery::of(n) {
        // An ID searched for is logged masked like everywhere else; a tail by its length only.
        Some(store::IdQuery::Whole(t)) => format!("身份证号 {}********{}", &t[..6], &t[14..]),
        Some(store::IdQuery::Tail(t)) => format!("身份证号后{}位", t.len()),
        Some(store::IdQuery::Phone(p)) => format!("联系电话 {}", yiyang_kernel::mask::phone(&p)),
        None => yiyang_kernel::mask::name(n),
    });
    f
}

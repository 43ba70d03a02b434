//! Application state and the router: the table of contents of the whole HTTP API.

use crate::platform::crypto::KeyRing;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, REQUEST_ID};
use crate::platform::openapi;
use crate::region::RegionIndex;
use crate::{assessment, audit, catalog, identity, indicator, region, registry};
use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use tokio::sync::{Mutex, RwLock};
use utoipa::OpenApi;

#[derive(Debug, Clone)]
pub struct Config {
    /// "production" (TOTP required for staff) or "demo"
    pub profile: String,
    pub idle_timeout_secs: i64,
    pub absolute_timeout_secs: i64,
    pub lockout_failures: i64,
    pub lockout_secs: i64,
    pub login_attempts_per_minute: u32,
    pub public_requests_per_minute: u32,
    /// Cookies only over HTTPS (`Secure`), and HSTS on every answer. On by default in the
    /// production profile: yiyang then sits behind a TLS-terminating proxy.
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed (see `identity::http::ClientIp`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The bureau's office telephone, shown on the public pages beside the 12349 hotline.
    pub office_phone: Option<String>,
    /// Bearer token of `/metrics` on the main address (none: it answers 404 there).
    pub metrics_token: Option<String>,
    /// Where visit photos are kept (`platform::files::LocalDisk`).
    pub files_dir: std::path::PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: "production".into(),
            idle_timeout_secs: 30 * 60,
            absolute_timeout_secs: 12 * 3600,
            lockout_failures: 5,
            lockout_secs: 15 * 60,
            login_attempts_per_minute: 30,
            public_requests_per_minute: 60,
            secure_cookies: false,
            trusted_proxies: vec![],
            office_phone: None,
            metrics_token: None,
            files_dir: "./data/files".into(),
        }
    }
}

impl Config {
    /// The session and login limits from their settings (`yiyang.toml` or the environment; see
    /// `platform::config`), the defaults where unset.
    pub fn with_env(mut self) -> Config {
        let int = |env: &str| std::env::var(env).ok().and_then(|v| v.parse::<i64>().ok());
        if let Some(m) = int("YIYANG_IDLE_MINUTES") {
            self.idle_timeout_secs = m * 60;
        }
        if let Some(h) = int("YIYANG_ABSOLUTE_HOURS") {
            self.absolute_timeout_secs = h * 3600;
        }
        if let Some(n) = int("YIYANG_LOCKOUT_FAILURES") {
            self.lockout_failures = n;
        }
        if let Some(m) = int("YIYANG_LOCKOUT_MINUTES") {
            self.lockout_secs = m * 60;
        }
        if let Some(n) = int("YIYANG_LOGIN_PER_MINUTE") {
            self.login_attempts_per_minute = n.clamp(1, 100_000) as u32;
        }
        if let Some(n) = int("YIYANG_PUBLIC_PER_MINUTE") {
            self.public_requests_per_minute = n.clamp(1, 100_000) as u32;
        }
        self
    }

    pub fn totp_required(&self) -> bool {
        self.profile == "production"
    }
}

/// Fixed-window counter per client address for the login endpoints and the public pages.
#[derive(Default)]
pub struct Throttle {
    per_minute: u32,
    hits: StdMutex<HashMap<String, (i64, u32)>>,
}

impl Throttle {
    pub fn new(per_minute: u32) -> Throttle {
        Throttle {
            per_minute,
            hits: StdMutex::new(HashMap::new()),
        }
    }
    pub fn allow(&self, key: &str) -> bool {
        let minute = crate::platform::now_secs() / 60;
        let mut h = self.hits.lock().expect("throttle lock");
        if h.len() > 100_000 {
            h.retain(|_, v| v.0 == minute);
        }
        let e = h.entry(key.to_string()).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
        e.1 <= self.per_minute
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub keys: KeyRing,
    pub config: Arc<Config>,
    pub regions: Arc<RwLock<RegionIndex>>,
    pub login_throttle: Arc<Throttle>,
    /// Public pages (no login): requests per address and minute.
    pub public_throttle: Arc<Throttle>,
    pub imports: Arc<Mutex<HashMap<String, Arc<registry::import::Progress>>>>,
    /// Eligibility runs started from the console, while they run and a while after.
    pub evaluations: Arc<StdMutex<HashMap<String, Arc<catalog::http::EvalJob>>>>,
    pub read_audit: crate::audit::ReadAudit,
    pub search_index: Arc<registry::search_index::SearchIndex>,
    pub sessions: Arc<crate::identity::session::SessionCache>,
    /// Visit photos and other files kept beside the database.
    pub files: Arc<dyn crate::platform::files::FileStore>,
    /// The emergency board's live feed and the call devices by serial.
    pub emergency: Arc<crate::emergency::Hub>,
}

impl AppState {
    pub async fn new(db: Db, keys: KeyRing, config: Config) -> anyhow::Result<AppState> {
        db.use_keys(&keys);
        crate::platform::use_engine(db.backend);
        let regions = RegionIndex::load(&db).await?;
        Ok(AppState {
            read_audit: crate::audit::ReadAudit::start(db.clone()),
            search_index: Arc::default(),
            sessions: Arc::default(),
            files: Arc::new(crate::platform::files::LocalDisk::new(&config.files_dir)),
            login_throttle: Arc::new(Throttle::new(config.login_attempts_per_minute)),
            public_throttle: Arc::new(Throttle::new(config.public_requests_per_minute)),
            db,
            keys,
            config: Arc::new(config),
            regions: Arc::new(RwLock::new(regions)),
            imports: Arc::new(Mutex::new(HashMap::new())),
            evaluations: Arc::default(),
            emergency: Arc::default(),
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "颐养 yiyang API", version = "1", description = "养老服务管理平台接口。错误为 RFC 9457 problem 文档，detail 为中文。"),
    paths(
        identity::http::login, identity::http::login_totp, identity::http::logout, identity::http::me,
        identity::http::totp_setup, identity::http::totp_confirm, identity::http::list_users, identity::http::create_user, identity::http::caregivers_of,
        identity::http::change_password, identity::http::set_user_state, identity::http::reset_user_password, identity::http::change_user_access,
        region::http::tree, region::http::children, region::http::put_map, region::http::delete_map, region::http::public_map,
        registry::http::search, registry::http::detail, registry::http::reveal, registry::http::create, registry::http::update,
        registry::http::death, registry::http::move_out, registry::http::export, registry::http::template,
        registry::http::upload, registry::http::status, registry::http::errors_xlsx,
        audit::http::list, audit::http::export,
        assessment::http::score, assessment::http::score_for_assessor, assessment::http::form, assessment::http::create, assessment::http::list, assessment::http::due, assessment::http::adopt, assessment::http::upload, assessment::http::template, assessment::http::due_export, assessment::http::trigger, assessment::http::validity, assessment::http::set_validity, assessment::http::due_search, assessment::assign::assessors, assessment::assign::assign,
        catalog::http::get_catalog, catalog::http::language, catalog::http::check_rule, catalog::http::open_draft, catalog::http::put_item, catalog::http::delete_item, catalog::http::publish, catalog::http::simulate, catalog::http::run_evaluation, catalog::http::start_evaluation, catalog::http::evaluation_status, catalog::http::elder_eligibility, catalog::http::public_catalog, catalog::http::list_entitlements, catalog::http::decide_entitlement, catalog::http::decide_entitlements, crate::workbench::workbench, catalog::http::create_batch, catalog::http::list_batches, catalog::http::get_batch, catalog::http::batch_step, catalog::http::batch_lines, catalog::http::bank_file, catalog::http::payment_check, catalog::http::lists, catalog::http::create_list, catalog::http::list_members, catalog::http::import_list_members,
        indicator::http::definitions, indicator::http::dashboard, indicator::http::dashboard_xlsx, indicator::http::value, indicator::http::people, indicator::http::people_xlsx, indicator::http::homes, indicator::http::list_targets, indicator::http::set_target, indicator::http::delete_target, indicator::http::target_template, indicator::http::import_targets, indicator::http::enter, indicator::http::refresh,
        crate::org::http::list, crate::org::http::detail, crate::org::http::create, crate::org::http::update, crate::org::http::import, crate::org::http::template, crate::org::http::staff_import, crate::org::http::staff_template, crate::org::http::export,
        crate::org::http::staff_list, crate::org::http::staff_create, crate::org::http::staff_update,
        crate::institution::http::beds, crate::institution::http::add_beds, crate::institution::http::change_bed,
        crate::institution::http::occupancy, crate::institution::http::staffing, crate::institution::http::residents, crate::institution::http::admit,
        crate::institution::http::transfer, crate::institution::http::leave, crate::institution::http::back,
        crate::institution::http::discharge, crate::institution::http::policy, crate::institution::http::publish_policy,
        crate::institution::board::board, crate::institution::http::bed_summary,
        crate::institution::http::queue, crate::institution::http::apply, crate::institution::http::withdraw, crate::institution::request::submit, crate::institution::http::requests, crate::institution::http::decide_request, crate::institution::http::reveal_request,
        crate::home_service::http::create, crate::home_service::http::list, crate::home_service::http::detail,
        crate::home_service::http::dispatch, crate::home_service::http::candidates, crate::home_service::http::step,
        crate::home_service::http::send_code, crate::home_service::http::override_flag, crate::home_service::http::override_meal,
        crate::home_service::http::quota, crate::home_service::http::hospital_stay,
        crate::home_service::http::contract, crate::home_service::http::put_contract,
        crate::home_service::http::preview, crate::home_service::http::record,
        crate::home_service::http::settlements, crate::home_service::http::settlement,
        crate::home_service::http::approve, crate::home_service::http::to_batch,
        crate::home_service::family::ask_code, crate::home_service::family::visits, crate::home_service::family::feedback, crate::home_service::family::meal_code, crate::home_service::family::order,
        crate::home_service::http::serve_meal, crate::home_service::http::meal_day, crate::home_service::http::statement, crate::home_service::http::add_photo, crate::home_service::http::photos, crate::home_service::http::photo, crate::home_service::http::signature,
        crate::home_service::http::create_plan, crate::home_service::http::plans, crate::home_service::http::end_plan,
        crate::institution::http::subsidy_policy, crate::institution::http::publish_subsidy_policy,
        crate::institution::http::claims, crate::institution::http::compute_claims, crate::institution::http::export_claims,
        crate::institution::http::claim, crate::institution::http::claim_step, crate::institution::http::claims_to_batch,
        crate::institution::http::offer_bed, crate::institution::http::offers, crate::institution::http::answer_offer,
        crate::institution::board::queue_place,
        crate::institution::http::family_beds, crate::institution::http::add_family_bed, crate::institution::http::end_family_bed,
        crate::emergency::http::list, crate::emergency::http::detail, crate::emergency::http::step, crate::emergency::http::call,
        crate::emergency::http::callers, crate::emergency::http::devices, crate::emergency::http::device_event,
        crate::emergency::http::get_sla, crate::emergency::http::put_sla, crate::emergency::http::fleet, crate::emergency::http::install, crate::emergency::http::retire,
        crate::care_visit::http::due, crate::care_visit::http::due_export, crate::care_visit::http::list, crate::care_visit::http::record,
        crate::care_visit::http::close_referral, crate::care_visit::http::rate, crate::care_visit::http::rules, crate::care_visit::http::set_rules,
        crate::care_visit::http::refresh, crate::care_visit::http::areas, crate::care_visit::http::assign,
    ),
    tags((name = "identity", description = "登录、账号"), (name = "region", description = "行政区划"), (name = "registry", description = "老年人档案"), (name = "audit", description = "审计"), (name = "assessment", description = "老年人能力评估"), (name = "catalog", description = "基本养老服务目录与资格"), (name = "indicator", description = "重点指标、目标与看板"), (name = "org", description = "服务机构"), (name = "institution", description = "床位与入住"), (name = "home_service", description = "居家上门服务"), (name = "emergency", description = "紧急呼叫与呼叫设备"), (name = "care_visit", description = "探访关爱"))
)]
pub struct ApiDoc;

pub fn openapi_json() -> String {
    let doc = serde_json::to_value(ApiDoc::openapi()).expect("openapi");
    let doc = openapi::with_request_rules(openapi::with_problem_answers(doc));
    serde_json::to_string_pretty(&doc).expect("openapi")
}

async fn request_id(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    resp.headers_mut()
        .insert("x-request-id", HeaderValue::from_str(&id).expect("ascii"));
    resp
}

/// The console's pages may run only their own scripts and styles (Element Plus sets inline
/// styles), talk only to this server, and be framed by nobody.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

async fn no_store(
    axum::extract::State(secure): axum::extract::State<bool>,
    req: Request,
    next: Next,
) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if api {
        h.insert("cache-control", HeaderValue::from_static("no-store"));
    } else {
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
    }
    if secure {
        h.insert(
            "strict-transport-security",
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

/// axum's own rejections (malformed JSON, wrong field types, bad multipart) are plain English text;
/// turn them into problem documents with a Chinese detail, like every other error.
async fn problem_rejections(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let plain = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(api && plain && resp.status().is_client_error()) {
        return resp;
    }
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let reason = String::from_utf8_lossy(&bytes)
        .chars()
        .take(300)
        .collect::<String>();
    let detail = match status.as_u16() {
        413 => "上传内容超过大小上限".to_string(),
        415 => "请求的 Content-Type 不正确，应为 application/json".to_string(),
        _ => format!("请求内容格式不正确：{}", zh_rejection(&reason)),
    };
    axum::response::IntoResponse::into_response(ApiError::new(status, "bad_request", detail))
}

/// What was wrong with a request axum refused, in Chinese (its own words are English library
/// text): the field named where serde names it, the kind of fault from its wording.
pub fn zh_rejection(reason: &str) -> String {
    // "Failed to deserialize the JSON body into the target type: items.B2: invalid type: …"
    let body = reason.split_once("target type: ").map_or(reason, |x| x.1);
    let field = body
        .split_once(": ")
        .map(|(f, _)| f)
        .filter(|f| !f.contains(' ') && !f.is_empty() && f.len() < 80);
    let at = |what: &str| match field {
        Some(f) => format!("字段 {f} {what}"),
        None => what.to_string(),
    };
    let r = reason.to_ascii_lowercase();
    let missing = r
        .split_once("missing field `")
        .and_then(|x| x.1.split_once('`'))
        .map(|x| x.0.to_string());
    if let Some(m) = missing {
        format!("缺少必填字段 {m}")
    } else if r.contains("unknown field") {
        at("不是本接口接受的字段")
    } else if r.contains("unknown variant") {
        at("的取值不在允许的范围内")
    } else if r.contains("invalid type") || r.contains("invalid value") {
        at("的类型或取值不正确")
    } else if r.contains("invalid length") {
        at("的长度不正确")
    } else if r.contains("control character") {
        at("含有不允许的控制字符")
    } else if r.contains("out of range") || r.contains("too large") {
        at("的数值超出范围")
    } else if r.contains("eof while parsing")
        || r.contains("expected value")
        || r.contains("syntax")
    {
        "不是完整、有效的 JSON".to_string()
    } else if r.contains("multipart") || r.contains("boundary") {
        "上传的表单（multipart）格式不正确".to_string()
    } else if r.contains("query") {
        "查询参数格式不正确".to_string()
    } else if r.contains("path") {
        "地址中的参数格式不正确".to_string()
    } else {
        "请检查后重试".to_string()
    }
}

async fn api_wrong_method() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "该地址不支持此请求方法",
    )
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("接口不存在")
}

pub fn router(state: AppState) -> Router {
    // The API's table of contents: each capability adds its own routes.
    let api = Router::new()
        .merge(identity::http::routes())
        .merge(region::http::routes())
        .merge(registry::http::routes())
        .merge(assessment::http::routes())
        .merge(catalog::http::routes())
        .merge(indicator::http::routes())
        .merge(crate::org::http::routes())
        .merge(crate::institution::http::routes())
        .merge(crate::home_service::http::routes())
        .merge(crate::emergency::http::routes())
        .merge(crate::care_visit::http::routes())
        .merge(audit::http::routes())
        .merge(crate::workbench::routes())
        // The matched route pattern, for the request metrics (never the path: ids stay out).
        .route_layer(middleware::from_fn(route_label))
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_wrong_method)
        // While an import or a run writes, requests are admitted at a bounded rate.
        .layer(middleware::from_fn(
            |req: axum::extract::Request, next: middleware::Next| async move {
                crate::platform::paced(next.run(req)).await
            },
        ));
    Router::new()
        .nest("/api/v1", api)
        .route(
            "/api/openapi.json",
            get(|| async { ([("content-type", "application/json")], openapi_json()) }),
        )
        .merge(crate::ops::routes())
        .route_layer(middleware::from_fn(route_label))
        .fallback(crate::platform::web::static_file)
        // A bug in one handler answers that request with a 500 instead of dropping the
        // connection; the panic is still logged (and the API fuzz fails on it).
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                axum::response::IntoResponse::into_response(ApiError::internal(anyhow::anyhow!(
                    "handler panicked"
                )))
            },
        ))
        .layer(middleware::from_fn(openapi::limit_text))
        .layer(middleware::from_fn(problem_rejections))
        .layer(middleware::from_fn_with_state(
            state.config.secure_cookies,
            no_store,
        ))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::from_fn(measure))
        .with_state(state)
}

/// The route pattern a request matched, carried on its answer to [`measure`].
#[derive(Clone)]
struct RouteLabel(String);

async fn route_label(req: Request, next: Next) -> Response {
    let label = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut res = next.run(req).await;
    if let Some(l) = label {
        res.extensions_mut().insert(RouteLabel(l));
    }
    res
}

/// Every answer counted by route, method and status, with its time (`/metrics`).
async fn measure(req: Request, next: Next) -> Response {
    let t0 = std::time::Instant::now();
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    };
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let route = match res.extensions().get::<RouteLabel>() {
        Some(RouteLabel(r)) => r.as_str(),
        None if api => "/api/v1/(unmatched)",
        None => "(console and files)",
    };
    crate::platform::metrics::observe(route, method, res.status().as_u16(), t0.elapsed());
    res
}

//! home_service — home visits (居家上门服务): a service order (服务工单) for an elder, placed with
//! a provider (an `org`), dispatched to one of its caregivers (`org::staff`), then accepted,
//! checked in and out on the spot and confirmed. One caregiver never holds two visits at the same
//! time, and bathing and personal care go only to a qualified caregiver. Every step is kept with
//! the id the sender gave it, so a phone that lost its connection and sends a step again does it
//! once. The rules are in `yiyang_kernel::service_order`.

pub mod contract;
pub mod demo;
pub mod family;
pub mod http;
pub mod meal;
pub mod meal_code;
pub mod photo;
pub mod plan;
pub mod quota;
pub mod settle;

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::crypto::KeyRing;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::service_order as rule;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE service_order (id TEXT PRIMARY KEY, provider_id TEXT NOT NULL REFERENCES organisation (id), \
         elder_id TEXT NOT NULL REFERENCES elder (id), service TEXT NOT NULL, planned_start TEXT NOT NULL, \
         start_min BIGINT NOT NULL, planned_minutes BIGINT NOT NULL, caregiver_id TEXT REFERENCES staff (id), \
         state TEXT NOT NULL, note TEXT, check_in_at TEXT, check_in_lon DOUBLE, check_in_lat DOUBLE, \
         check_out_at TEXT, check_out_lon DOUBLE, check_out_lat DOUBLE, confirmed_at TEXT, reason TEXT, \
         created_by TEXT NOT NULL, created_at TEXT NOT NULL, version BIGINT NOT NULL, \
         CONSTRAINT service_order_state_check CHECK (state = 'created' OR state = 'dispatched' OR state = 'accepted' \
         OR state = 'checked_in' OR state = 'checked_out' OR state = 'confirmed' OR state = 'cancelled' OR state = 'no_show'))",
    ),
    Both("CREATE INDEX service_order_caregiver ON service_order (caregiver_id, start_min)"),
    Both("CREATE INDEX service_order_provider ON service_order (provider_id, start_min)"),
    Both("CREATE INDEX service_order_elder ON service_order (elder_id, start_min)"),
    // Every step, under the id its sender gave it: sent twice, done once.
    Both(
        "CREATE TABLE service_order_step (id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES service_order (id), \
         action TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, lon DOUBLE, lat DOUBLE, note TEXT)",
    ),
    Both("CREATE INDEX service_order_step_order ON service_order_step (order_id)"),
];

/// What a visit is paid from and how it was confirmed; the monthly quota ledger; providers'
/// contracts and prices; hospital stays the family reported; officers' overrides of anomalies;
/// monthly settlements per provider.
pub const MIGRATION_SETTLE: &[Stmt] = &[
    // Done times as minutes since 1970 in China time, like start_min (the anomaly checks' arithmetic).
    Both("ALTER TABLE service_order ADD COLUMN check_in_min BIGINT"),
    Both("ALTER TABLE service_order ADD COLUMN check_out_min BIGINT"),
    // The quota the visit used (its entitlement), or self-paid beyond it.
    Both("ALTER TABLE service_order ADD COLUMN entitlement_id TEXT"),
    Both("ALTER TABLE service_order ADD COLUMN funded TEXT"),
    // The one-time code sent to the family (encrypted: the outbox renders it when sending), when
    // it lapses, wrong tries, and the blind index of the number it went to.
    Both("ALTER TABLE service_order ADD COLUMN code_enc BLOB"),
    Both("ALTER TABLE service_order ADD COLUMN code_expires BIGINT"),
    Both("ALTER TABLE service_order ADD COLUMN code_tries BIGINT NOT NULL DEFAULT 0"),
    Both("ALTER TABLE service_order ADD COLUMN code_to_bidx TEXT"),
    Both("ALTER TABLE service_order ADD COLUMN confirmed_by TEXT"),
    Both(
        "CREATE TABLE service_quota (elder_id TEXT NOT NULL REFERENCES elder (id), item_code TEXT NOT NULL, \
         month TEXT NOT NULL, granted BIGINT NOT NULL, used BIGINT NOT NULL, entitlement_id TEXT NOT NULL, \
         PRIMARY KEY (elder_id, item_code, month), \
         CONSTRAINT service_quota_used_check CHECK (used >= 0 AND used <= granted))",
    ),
    Both(
        "CREATE TABLE provider_contract (org_id TEXT PRIMARY KEY REFERENCES organisation (id), \
         starts_on TEXT NOT NULL, ends_on TEXT NOT NULL, updated_by TEXT NOT NULL, updated_at TEXT NOT NULL)",
    ),
    Both(
        "CREATE TABLE provider_price (org_id TEXT NOT NULL REFERENCES organisation (id), service TEXT NOT NULL, \
         price_fen BIGINT NOT NULL, PRIMARY KEY (org_id, service), \
         CONSTRAINT provider_price_check CHECK (price_fen >= 0))",
    ),
    Both(
        "CREATE TABLE hospital_stay (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), \
         from_on TEXT NOT NULL, to_on TEXT, note TEXT, recorded_by TEXT NOT NULL, recorded_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX hospital_stay_elder ON hospital_stay (elder_id, from_on)"),
    Both(
        "CREATE TABLE service_order_override (order_id TEXT NOT NULL REFERENCES service_order (id), kind TEXT NOT NULL, \
         reason TEXT NOT NULL, by_name TEXT NOT NULL, by_id TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (order_id, kind))",
    ),
    Both(
        "CREATE TABLE home_settlement (id TEXT PRIMARY KEY, provider_id TEXT NOT NULL REFERENCES organisation (id), \
         month TEXT NOT NULL, state TEXT NOT NULL, orders BIGINT NOT NULL, meals BIGINT NOT NULL, self_paid BIGINT NOT NULL, \
         gross_fen BIGINT NOT NULL, excluded_fen BIGINT NOT NULL, payable_fen BIGINT NOT NULL, \
         province_fen BIGINT NOT NULL, city_fen BIGINT NOT NULL, county_fen BIGINT NOT NULL, town_fen BIGINT NOT NULL, \
         created_by TEXT NOT NULL, created_by_id TEXT NOT NULL, created_at TEXT NOT NULL, \
         approved_by TEXT, approved_by_id TEXT, approved_at TEXT, \
         CONSTRAINT home_settlement_month_key UNIQUE (provider_id, month), \
         CONSTRAINT home_settlement_state_check CHECK (state = 'draft' OR state = 'approved'))",
    ),
    Both(
        "CREATE TABLE home_settlement_exclusion (settlement_id TEXT NOT NULL REFERENCES home_settlement (id), \
         ref TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL, amount_fen BIGINT NOT NULL, \
         PRIMARY KEY (settlement_id, ref, kind))",
    ),
];

/// What a visit was made of (the tasks ticked at check-out, kernel `service_order::TASKS`), and
/// the elder's signature when she confirmed on the caregiver's phone (a PNG in the file store,
/// named by its SHA-256).
pub const MIGRATION_TASKS: &[Stmt] = &[
    Both("ALTER TABLE service_order ADD COLUMN tasks_done TEXT"),
    Both("ALTER TABLE service_order ADD COLUMN signature_sha TEXT"),
];

/// Kinds of organisation that send caregivers to homes.
pub const PROVIDER_KINDS: &[&str] = &["provider", "station", "comprehensive_center", "day_care"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub provider_id: String,
    pub elder_id: String,
    /// cleaning / bathing / meal / emergency / medical_escort / mobility / personal_care, or 助洁 …
    pub service: String,
    /// 上门时间 "YYYY-MM-DD HH:MM" (China time)
    pub planned_start: String,
    /// 服务时长（分钟）, 10–480
    pub planned_minutes: i64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: String,
    pub provider_id: String,
    pub provider_name: String,
    pub elder_id: String,
    /// For those who read individual records; masked otherwise
    pub elder_name: String,
    pub service: String,
    pub service_zh: String,
    pub planned_start: String,
    pub planned_minutes: i64,
    pub caregiver_id: Option<String>,
    pub caregiver_name: Option<String>,
    pub state: String,
    pub state_zh: String,
    pub check_in_at: Option<String>,
    pub check_out_at: Option<String>,
    pub confirmed_at: Option<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    /// 住址 (town, village, house) and where it is, for those who read names (the caregiver
    /// finds the home by it)
    pub address: Option<String>,
    pub elder_lon: Option<f64>,
    pub elder_lat: Option<f64>,
    /// The family's rating on the public page (1–5 stars) and its words
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
    /// The family's complaint about this visit
    pub complaint: Option<String>,
    /// What the visit is made of, each ticked or not at check-out
    pub tasks: Vec<VisitTask>,
    /// How it was confirmed: code (the family's code), signature (the elder signed on the
    /// phone), call_back (an officer called the family)
    pub confirmed_by: Option<String>,
    pub confirmed_by_zh: Option<String>,
    /// The elder's record has a phone for the family's code; without one, the caregiver asks the
    /// elder to sign on her phone
    pub phone_on_file: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VisitTask {
    pub code: String,
    pub name: String,
    pub done: bool,
}

/// The service's tasks with those done (as stored: codes joined by commas) ticked.
fn visit_tasks(service: &str, done: Option<&str>) -> Vec<VisitTask> {
    let done: Vec<&str> = done.map(|d| d.split(',').collect()).unwrap_or_default();
    rule::tasks(service)
        .iter()
        .map(|(code, name)| VisitTask {
            code: (*code).into(),
            name: (*name).into(),
            done: done.contains(code),
        })
        .collect()
}

fn confirmed_by_zh(by: &str) -> &'static str {
    match by {
        "code" => "家属确认码",
        "signature" => "老人签名",
        "call_back" => "电话回访",
        _ => "",
    }
}

/// Minutes since 1970 of a China-time "YYYY-MM-DD HH:MM" (what overlap is measured in).
pub(crate) fn start_of(v: &str) -> ApiResult<(String, i64)> {
    let t = NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%dT%H:%M"))
        .map_err(|_| {
            ApiError::invalid(
                "planned_start",
                "上门时间应写成 YYYY-MM-DD HH:MM，如 2026-12-08 09:30",
            )
        })?;
    Ok((
        t.format("%Y-%m-%d %H:%M").to_string(),
        t.and_utc().timestamp() / 60,
    ))
}

const COLS: &str = "o.id, o.provider_id, p.name, o.elder_id, e.name, o.service, o.planned_start, o.planned_minutes, \
    o.caregiver_id, (SELECT s.name FROM staff s WHERE s.id = o.caregiver_id), o.state, o.check_in_at, o.check_out_at, \
    o.confirmed_at, o.reason, o.note, p.region_code, e.address, e.lon, e.lat, \
    (SELECT t.name FROM region t WHERE t.code = substr(e.residence_region, 1, 9) || '000'), \
    (SELECT v.name FROM region v WHERE v.code = e.residence_region), \
    f.rating, f.comment, f.complaint, o.tasks_done, o.confirmed_by, \
    CASE WHEN e.phone_bidx IS NULL THEN 0 ELSE 1 END";
/// How many columns `COLS` has.
const COLS_N: usize = 28;

fn from_row(r: &sqlx::any::AnyRow, names: bool) -> Order {
    let service: String = r.get(5);
    let state: String = r.get(10);
    let name: String = r.get(4);
    let tasks = visit_tasks(&service, r.get::<Option<String>, _>(25).as_deref());
    Order {
        id: r.get(0),
        provider_id: r.get(1),
        provider_name: r.get(2),
        elder_id: r.get(3),
        elder_name: if names {
            name
        } else {
            yiyang_kernel::mask::name(&name)
        },
        service_zh: rule::service_zh(&service).into(),
        service,
        planned_start: r.get(6),
        planned_minutes: r.get(7),
        caregiver_id: r.get(8),
        caregiver_name: r.get(9),
        state_zh: rule::state_zh(&state).into(),
        state,
        check_in_at: r.get(11),
        check_out_at: r.get(12),
        confirmed_at: r.get(13),
        reason: r.get(14),
        note: r.get(15),
        // Town and village before the house: what a caregiver from the next town needs.
        address: names.then(|| {
            let (town, village): (Option<String>, Option<String>) = (r.get(20), r.get(21));
            let mut a = town.unwrap_or_default();
            if let Some(v) = village.filter(|v| !a.ends_with(v.as_str())) {
                a.push_str(&v);
            }
            a.push_str(&r.get::<Option<String>, _>(17).unwrap_or_default());
            a
        }),
        elder_lon: r.get::<Option<f64>, _>(18).filter(|_| names),
        elder_lat: r.get::<Option<f64>, _>(19).filter(|_| names),
        rating: r.get(22),
        rating_comment: r.get(23),
        complaint: r.get(24),
        tasks,
        confirmed_by_zh: r
            .get::<Option<String>, _>(26)
            .map(|b| confirmed_by_zh(&b).to_string()),
        confirmed_by: r.get(26),
        phone_on_file: r.get::<i64, _>(27) == 1,
    }
}

/// A caregiver's account reaches only the visits given to her.
fn mine(scope: &Scope, caregiver: Option<&str>) -> bool {
    scope.staff.as_deref().is_none_or(|s| caregiver == Some(s))
}

/// One order inside the scope (its provider's place, or the bound organisation), 404 outside.
pub async fn get(db: &Db, scope: &Scope, id: &str, names: bool) -> ApiResult<Order> {
    Ok(versioned(db, scope, id, names).await?.0)
}

/// `get`, with the order's version and its provider's region.
async fn versioned(
    db: &Db,
    scope: &Scope,
    id: &str,
    names: bool,
) -> ApiResult<(Order, i64, String)> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS}, o.version FROM service_order o JOIN organisation p ON p.id = o.provider_id \
         JOIN elder e ON e.id = o.elder_id LEFT JOIN service_feedback f ON f.order_id = o.id WHERE o.id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .filter(|r| {
        scope.holds(&r.get::<String, _>(1), &r.get::<String, _>(16))
            && mine(scope, r.get::<Option<String>, _>(8).as_deref())
    })
    .map(|r| (for_reader(scope, from_row(&r, names)), r.get(COLS_N), r.get(16)))
    .ok_or_else(|| ApiError::not_found("未找到该工单（或不在您的管辖范围内）"))
}

/// A complaint is the officers' to follow up: the provider and the caregiver it may be about
/// do not read it (a star rating they do).
fn for_reader(scope: &Scope, mut o: Order) -> Order {
    if scope.org.is_some() {
        o.complaint = o.complaint.map(|_| "（家属已投诉，由民政部门处理）".into());
        o.rating_comment = None;
    }
    o
}

/// A provider in the caller's scope that sends caregivers and is open: its region.
pub(crate) async fn open_provider(db: &Db, scope: &Scope, id: &str) -> ApiResult<String> {
    let p = sqlx::query("SELECT region_code, kind, status FROM organisation WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.holds(id, &r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该服务机构（或不在您的管辖范围内）"))?;
    if !PROVIDER_KINDS.contains(&p.get::<String, _>(1).as_str()) {
        return Err(ApiError::invalid(
            "provider_id",
            "上门服务由居家养老服务商、服务站、综合体或日间照料中心承接",
        ));
    }
    if p.get::<String, _>(2) != "open" {
        return Err(ApiError::conflict("该服务机构已停业"));
    }
    Ok(p.get(0))
}

/// Place an order with a provider for an elder of the caller's area; audited.
pub async fn create(db: &Db, scope: &Scope, who: &Who, f: NewOrder) -> ApiResult<Order> {
    let service = rule::service(&f.service).ok_or_else(|| {
        ApiError::invalid(
            "service",
            "服务项目应为：助餐、助浴、助急、助医、助行、助洁、照护",
        )
    })?;
    if !(10..=480).contains(&f.planned_minutes) {
        return Err(ApiError::invalid(
            "planned_minutes",
            "服务时长应为 10 到 480 分钟",
        ));
    }
    let (start, start_min) = start_of(&f.planned_start)?;
    let note = crate::institution::text("note", "备注", f.note.as_deref(), 200)?;
    let region = open_provider(db, scope, f.provider_id.trim()).await?;
    let elder = sqlx::query("SELECT residence_region, status, death_date FROM elder WHERE id = $1")
        .bind(f.elder_id.trim())
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该老人（或不在您的管辖范围内）"))?;
    if elder.get::<String, _>(1) != "active" || elder.get::<Option<String>, _>(2).is_some() {
        return Err(ApiError::conflict(
            "该老人的档案已注销或已去世，不能派发上门服务",
        ));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO service_order (id, provider_id, elder_id, service, planned_start, start_min, planned_minutes, \
         state, note, created_by, created_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, 'created', $8, $9, $10, 1)",
    )
    .bind(&id)
    .bind(f.provider_id.trim())
    .bind(f.elder_id.trim())
    .bind(service)
    .bind(&start)
    .bind(start_min)
    .bind(f.planned_minutes)
    .bind(Some(&note).filter(|n| !n.is_empty()))
    .bind(&who.actor_name)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "service_order.create",
            entity: "service_order",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail: serde_json::json!({"service": service, "planned_start": start}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, scope, &id, true).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    /// A current caregiver of the order's provider
    pub caregiver_id: String,
}

/// The order's provider, state, service, start and length, for a write (404 outside the scope).
async fn held(
    tx: &mut Tx<'_>,
    scope: &Scope,
    id: &str,
) -> ApiResult<(String, String, String, i64, i64, String)> {
    let r = sqlx::query(
        "SELECT o.provider_id, p.region_code, o.state, o.service, o.start_min, o.planned_minutes, o.caregiver_id \
         FROM service_order o JOIN organisation p ON p.id = o.provider_id WHERE o.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .filter(|r| {
        scope.holds(&r.get::<String, _>(0), &r.get::<String, _>(1))
            && mine(scope, r.get::<Option<String>, _>(6).as_deref())
    })
    .ok_or_else(|| ApiError::not_found("未找到该工单（或不在您的管辖范围内）"))?;
    Ok((r.get(0), r.get(2), r.get(3), r.get(4), r.get(5), r.get(1)))
}

/// Give an order to a caregiver of its provider: a qualified one for bathing and personal care,
/// and one whose other visits do not overlap it. The caregiver's row is taken first, so two
/// dispatches to one caregiver at once are decided one after the other. Audited.
pub async fn dispatch(
    db: &Db,
    scope: &Scope,
    who: &Who,
    id: &str,
    d: Dispatch,
) -> ApiResult<Order> {
    let today = crate::platform::today().to_string();
    let mut tx = db.begin().await?;
    let (provider, state, service, start, minutes, region) = held(&mut tx, scope, id).await?;
    if state != "created" && state != "dispatched" {
        return Err(ApiError::conflict(format!(
            "工单{}，不能再派单",
            rule::state_zh(&state)
        )));
    }
    let c = sqlx::query(
        "SELECT name, role, skill_level, certificate_no, certificate_expires_on, left_on, org_id FROM staff WHERE id = $1",
    )
    .bind(d.caregiver_id.trim())
    .fetch_optional(&mut *tx)
    .await?
    .filter(|r| r.get::<String, _>(6) == provider)
    .ok_or_else(|| ApiError::invalid("caregiver_id", "所选人员不是该服务机构的在职人员"))?;
    let name: String = c.get(0);
    if c.get::<Option<String>, _>(5).is_some_and(|l| l <= today) {
        return Err(ApiError::invalid("caregiver_id", format!("{name}已离职")));
    }
    if c.get::<String, _>(1) != "caregiver" {
        return Err(ApiError::invalid(
            "caregiver_id",
            format!("{name}不是养老护理员，不能派发上门服务"),
        ));
    }
    let qualified = c.get::<Option<i64>, _>(2).is_some()
        || (c.get::<Option<String>, _>(3).is_some()
            && c.get::<Option<String>, _>(4).is_none_or(|e| e >= today));
    if rule::needs_qualification(&service) && !qualified {
        return Err(ApiError::invalid(
            "caregiver_id",
            format!(
                "{}须由持证（有技能等级或有效证书）的护理员上门，{name}不符合",
                rule::service_zh(&service)
            ),
        ));
    }
    // Take the caregiver: a second dispatch to her waits here and then sees this one.
    sqlx::query("UPDATE staff SET version = version WHERE id = $1")
        .bind(d.caregiver_id.trim())
        .execute(&mut *tx)
        .await?;
    // Her visits that day and the next hours (the index narrows by start; the rule decides).
    let theirs = sqlx::query(
        "SELECT planned_start, planned_minutes, start_min FROM service_order WHERE caregiver_id = $1 AND id <> $2 \
         AND (state = 'dispatched' OR state = 'accepted' OR state = 'checked_in') \
         AND start_min < $3 AND start_min > $4",
    )
    .bind(d.caregiver_id.trim())
    .bind(id)
    .bind(start + minutes)
    .bind(start - 8 * 60)
    .fetch_all(&mut *tx)
    .await?;
    let clash = theirs
        .iter()
        .find(|r| rule::overlaps(start, minutes, r.get(2), r.get(1)));
    if let Some(r) = clash {
        let (at, len): (String, i64) = (r.get(0), r.get(1));
        return Err(ApiError::conflict(format!(
            "{name}在 {at} 已有 {len} 分钟的上门服务，时间重叠，请选择其他护理员"
        )));
    }
    let n = sqlx::query(
        "UPDATE service_order SET caregiver_id = $2, state = 'dispatched', version = version + 1 \
         WHERE id = $1 AND (state = 'created' OR state = 'dispatched')",
    )
    .bind(id)
    .bind(d.caregiver_id.trim())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(ApiError::conflict("该工单刚被他人处理，请刷新后查看"));
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "service_order.dispatch",
            entity: "service_order",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"caregiver_id": d.caregiver_id.trim()}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, scope, id, true).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The id the sender made for this step (a UUID): sent again, it is done once
    pub step_id: String,
    /// accept / check_in / check_out / confirm / cancel / no_show
    pub action: String,
    /// Where the phone was (check-in and check-out)
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    /// Why (cancel, no_show); for a confirmation without a code, how the officer checked (回访)
    pub note: Option<String>,
    /// confirm: the code the family received
    pub code: Option<String>,
    /// When it was done on the phone (RFC 3339), for a check-in or check-out sent late after a
    /// lost connection; at most a day back. Default: when it arrives.
    pub at: Option<String>,
    /// check_out: the tasks done (codes or names of the service's tasks, see the order's `tasks`)
    pub tasks: Option<Vec<String>>,
    /// confirm: the elder's signature drawn on the phone, a PNG (base64, a data URL is fine) of
    /// at most 200 KB, instead of the family's code
    pub signature: Option<String>,
}

/// A signature's PNG at most.
pub const SIGNATURE_MAX: usize = 200 * 1024;

/// The signature's bytes: a PNG, base64 (or a data URL of one), not too large.
fn signature_png(v: &str) -> ApiResult<Vec<u8>> {
    use base64::Engine;
    let v = v.trim();
    let v = v.strip_prefix("data:image/png;base64,").unwrap_or(v);
    if v.len() > SIGNATURE_MAX * 4 / 3 + 4 {
        return Err(ApiError::invalid("signature", "签名图片不能超过 200 KB"));
    }
    let b = base64::engine::general_purpose::STANDARD
        .decode(v)
        .map_err(|_| ApiError::invalid("signature", "签名应为 base64 编码的 PNG 图片"))?;
    if !b.starts_with(b"\x89PNG\r\n\x1a\n") || b.len() < 64 {
        return Err(ApiError::invalid("signature", "签名应为 PNG 图片"));
    }
    Ok(b)
}

/// Move an order on by one step. A step id already taken answers with the order as it stands,
/// doing nothing again. Audited.
pub async fn step(
    db: &Db,
    keys: &KeyRing,
    files: &dyn crate::platform::files::FileStore,
    scope: &Scope,
    who: &Who,
    id: &str,
    s: Step,
) -> ApiResult<Order> {
    let step_id = uuid::Uuid::parse_str(s.step_id.trim())
        .map_err(|_| ApiError::invalid("step_id", "step_id 应为 UUID"))?
        .to_string();
    if s.lon.is_some_and(|x| !(73.0..=136.0).contains(&x))
        || s.lat.is_some_and(|y| !(3.0..=54.0).contains(&y))
    {
        return Err(ApiError::invalid("lon", "位置应为我国境内的经纬度"));
    }
    let note = crate::institution::text("note", "说明", s.note.as_deref(), 200)?;
    // The phone's time counts for a check-in or check-out only (a confirmation sent late is
    // confirmed when it arrives): other steps' `at` is not looked at.
    let timed = s.action == "check_in" || s.action == "check_out";
    let done_at = match s
        .at
        .as_deref()
        .map(str::trim)
        .filter(|a| timed && !a.is_empty())
    {
        None => None,
        Some(a) => {
            let t = chrono::DateTime::parse_from_rfc3339(a)
                .map_err(|_| ApiError::invalid("at", "操作时间应为 RFC 3339 格式"))?
                .timestamp();
            let now = crate::platform::now_secs();
            if t > now + 120 || t < now - 24 * 3600 {
                return Err(ApiError::invalid(
                    "at",
                    "操作时间应在一天之内且不晚于现在，请检查手机时间",
                ));
            }
            Some(t)
        }
    };
    let tasks = s.tasks.unwrap_or_default();
    if !tasks.is_empty() && s.action != "check_out" {
        return Err(ApiError::invalid("tasks", "服务项目在签退时填写"));
    }
    if tasks.len() > 20 {
        return Err(ApiError::invalid("tasks", "服务项目至多 20 项"));
    }
    // Checked here, kept only once the order is read in scope and waiting for its confirmation.
    let signature = match s.signature.as_deref().filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(_) if s.action != "confirm" => {
            return Err(ApiError::invalid("signature", "签名只在确认完成时提交"));
        }
        Some(_) if s.code.as_deref().is_some_and(|c| !c.trim().is_empty()) => {
            return Err(ApiError::invalid(
                "signature",
                "确认码和签名只需其一，请只提交一种",
            ));
        }
        Some(v) => Some(signature_png(v)?),
    };
    // A confirmation takes a visit from the elder's quota: the grants in force that day, read
    // before the transaction (catalogue versions are read through the pool).
    let grants = if s.action == "confirm" {
        let r = sqlx::query("SELECT elder_id, planned_start FROM service_order WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?;
        match r {
            Some(r) => {
                let (elder, start): (String, String) = (r.get(0), r.get(1));
                let g = quota::grants_on(db, &elder, &start[..10]).await?;
                Some((elder, start[..7].to_string(), g))
            }
            None => None,
        }
    } else {
        None
    };
    // Grouped: a crowd of check-ins shares one commit (and one wait for the disk).
    let job = Checked {
        keys: keys.clone(),
        scope: scope.clone(),
        who: who.clone(),
        id: id.to_string(),
        step_id,
        action: s.action,
        lon: s.lon,
        lat: s.lat,
        note,
        code: s.code,
        done_at,
        grants,
        tasks,
        signature,
    };
    // The answer is the order read before the step with the step's changes made to it, when
    // nothing else changed it in between (same version); read after the commit otherwise. Read
    // here, the crowd's reads run side by side instead of one by one inside the group.
    let job = std::sync::Arc::new(job);
    // The visit's step before this one left its answer here: when the order is still at that
    // version (the write checks it), no read at all before the write.
    if let Some((v, o, region)) = recent::recall(id).filter(|(_, o, r)| {
        scope.holds(&o.provider_id, r) && mine(scope, o.caregiver_id.as_deref())
    }) && let Ok(to @ ("accepted" | "checked_in" | "checked_out")) =
        rule::next(&o.state, &job.action)
        && let Some(done) = quick(db, &job, to, v, &region, job.tasks_for(&o.service)?).await?
    {
        let mut o = o;
        done.apply(&mut o);
        recent::remember(id, v + 1, &o, &region);
        return Ok(o);
    }
    let (before, before_version, region) = versioned(db, scope, id, true).await?;
    if let Ok(to @ ("accepted" | "checked_in" | "checked_out")) =
        rule::next(&before.state, &job.action)
    {
        let tasks = job.tasks_for(&before.service)?;
        if let Some(done) = quick(db, &job, to, before_version, &region, tasks).await? {
            let mut o = before;
            done.apply(&mut o);
            recent::remember(id, before_version + 1, &o, &region);
            return Ok(o);
        }
        // Changed since it was read, or sent again: the full way, on the order as it is now.
        let (now, now_version, _) = versioned(db, scope, id, true).await?;
        return full(db, files, scope, id, job, now, now_version).await;
    }
    full(db, files, scope, id, job, before, before_version).await
}

/// The signature that confirmed an order and the provider's region (for the audit of the look),
/// for a reader in the order's scope; 404 when it was confirmed otherwise.
pub async fn signature(
    db: &Db,
    files: &dyn crate::platform::files::FileStore,
    scope: &Scope,
    id: &str,
) -> ApiResult<(Vec<u8>, String)> {
    let (_, _, region) = versioned(db, scope, id, true).await?;
    let sha: Option<String> =
        sqlx::query_scalar("SELECT signature_sha FROM service_order WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await?;
    let sha = sha.ok_or_else(|| ApiError::not_found("该工单不是由老人签名确认的"))?;
    let b = files
        .get(&sha)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("signature of {id}: file {sha} missing"))
        })?;
    Ok((b, region))
}

/// Orders as a caregiver's day list or a quick step left them: the answer, its version and the
/// provider's region, so the visit's next step (accept → check in → check out, minutes apart,
/// from the same phone) writes without reading first. Safe because every change to an order moves its version and the write
/// checks the version: a stale entry writes nothing and the step takes the usual way. Scope is
/// checked on the entry as on a read (provider, its region, the caregiver: none changes without
/// a new version but the provider's region, which the entry's ten minutes bound). Only orders
/// without the family's words are kept, so every reader is given the same answer.
mod recent {
    use super::Order;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    const KEEP: Duration = Duration::from_secs(600);
    const MAX: usize = 20_000;
    type Entry = (i64, Order, String, Instant);

    fn map() -> &'static Mutex<HashMap<String, Entry>> {
        static M: std::sync::OnceLock<Mutex<HashMap<String, Entry>>> = std::sync::OnceLock::new();
        M.get_or_init(Default::default)
    }

    pub fn remember(id: &str, version: i64, o: &Order, region: &str) {
        if o.complaint.is_some() || o.rating_comment.is_some() {
            return;
        }
        let mut m = map().lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX {
            m.retain(|_, e| e.3.elapsed() < KEEP);
            if m.len() >= MAX {
                m.clear();
            }
        }
        m.insert(
            id.to_string(),
            (version, o.clone(), region.to_string(), Instant::now()),
        );
    }

    pub fn recall(id: &str) -> Option<(i64, Order, String)> {
        let mut m = map().lock().unwrap_or_else(|p| p.into_inner());
        // Taken out: a step that fails or goes the usual way leaves nothing stale behind.
        m.remove(id)
            .filter(|e| e.3.elapsed() < KEEP)
            .map(|e| (e.0, e.1, e.2))
    }
}

/// A step the whole way, in a savepoint of the group: read the order again, decide, write. The
/// answer is `before` (the order read at `before_version`) with the step's changes made to it,
/// when nothing else changed it in between; read after the commit otherwise.
async fn full(
    db: &Db,
    files: &dyn crate::platform::files::FileStore,
    scope: &Scope,
    id: &str,
    job: std::sync::Arc<Checked>,
    before: Order,
    before_version: i64,
) -> ApiResult<Order> {
    let tasks = job.tasks_for(&before.service)?;
    // The signature is kept before the step is written (the file store is not transactional),
    // and only for an order in the caller's scope waiting for its confirmation: a step refused
    // afterwards (a race) leaves one unnamed file, harmless and named by its content.
    let signature = match &job.signature {
        Some(png) if before.state == "checked_out" => {
            signable(db, scope, id).await?;
            Some(files.put(png).await.map_err(ApiError::internal)?)
        }
        _ => None,
    };
    let (version, done) = db
        .grouped(move |tx| Box::pin(async move { apply(tx, &job, tasks, signature).await }))
        .await?;
    match done {
        Some(done) if version == before_version => {
            let mut o = before;
            done.apply(&mut o);
            Ok(o)
        }
        _ => get(db, scope, id, true).await,
    }
}

/// A signature confirms a visit only where the code cannot: the caregiver herself, in the home of
/// an elder with no phone on file to send the family's code to. Elsewhere the family's code, or an
/// officer's call back, confirms it.
async fn signable(db: &Db, scope: &Scope, id: &str) -> ApiResult<()> {
    if scope.staff.is_none() {
        return Err(ApiError::forbidden(
            "老人签名由上门的护理员在老人家中请老人签写；机构或街道可电话回访后确认",
        ));
    }
    let phone: Option<Option<String>> = sqlx::query_scalar(
        "SELECT e.phone_bidx FROM service_order o JOIN elder e ON e.id = o.elder_id WHERE o.id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    if phone.flatten().is_some() {
        return Err(ApiError::conflict(
            "老人档案登记了联系电话，请发送确认码到该手机确认；收不到时请服务机构电话回访",
        ));
    }
    Ok(())
}

/// When a step is done: now, and for check-in and check-out the phone's time when it was sent
/// late, with its minute in China time (the clock of `start_min`).
fn step_time(done_at: Option<i64>, to: &str) -> (String, String, i64) {
    let now = crate::platform::now_rfc3339();
    match done_at.filter(|_| to == "checked_in" || to == "checked_out") {
        Some(t) => (
            now.clone(),
            chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.to_rfc3339())
                .unwrap_or(now),
            (t + 8 * 3600) / 60,
        ),
        None => (
            now.clone(),
            now,
            (crate::platform::now_secs() + 8 * 3600) / 60,
        ),
    }
}

/// Accept, check in and check out, most of a day's steps, made on the order as read before
/// (`version`, scope checked there). `None` when the order changed since or the step's id was
/// used: nothing written, and the full way decides. On PostgreSQL the group's quick steps are one
/// statement together ([`QuickStep`]): a crowd of check-ins waits for one round trip, not one each.
async fn quick(
    db: &Db,
    j: &std::sync::Arc<Checked>,
    to: &'static str,
    version: i64,
    region: &str,
    tasks: Option<String>,
) -> ApiResult<Option<Done>> {
    let (now, done, done_min) = step_time(j.done_at, to);
    let note = Some(j.note.clone()).filter(|n| !n.is_empty());
    let written = if db.backend == crate::platform::db::Backend::Postgres {
        let step = QuickStep {
            job: j.clone(),
            to,
            version,
            region: region.to_string(),
            now,
            done: done.clone(),
            done_min,
            tasks: tasks.clone(),
            request_id: crate::platform::error::current_request_id().unwrap_or_default(),
        };
        db.grouped_batch(step).await?
    } else {
        let (j, r) = (j.clone(), region.to_string());
        let (done, t) = (done.clone(), tasks.clone());
        db.grouped(move |tx| {
            Box::pin(async move {
                let at = (now, done, done_min);
                quick_sqlite(tx, &j, to, version, &r, at, t).await
            })
        })
        .await?
    };
    Ok(written.then_some(Done {
        to,
        at: done,
        reason: note,
        tasks,
        by: None,
    }))
}

/// A quick step on SQLite, in its savepoint of the group: the update (guarded by the version and
/// the step's id), then the step's row (in-process: no round trip to save).
async fn quick_sqlite(
    tx: &mut Tx<'static>,
    j: &Checked,
    to: &'static str,
    version: i64,
    region: &str,
    (now, done, done_min): (String, String, i64),
    tasks: Option<String>,
) -> Result<ApiResult<bool>, ApiError> {
    let note = Some(j.note.as_str()).filter(|n| !n.is_empty());
    let f64_or_null = crate::platform::db::opt_f64;
    let set = match to {
        "checked_in" => "check_in_at = $5, check_in_lon = $6, check_in_lat = $7, check_in_min = $8",
        "checked_out" => {
            "check_out_at = $5, check_out_lon = $6, check_out_lat = $7, check_out_min = $8, tasks_done = $9"
        }
        _ => "reason = $5",
    };
    let q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE service_order SET state = $2, {set}, version = version + 1 \
         WHERE id = $1 AND version = $3 AND NOT EXISTS (SELECT 1 FROM service_order_step t WHERE t.id = $4)"
    )))
    .bind(&j.id)
    .bind(to)
    .bind(version)
    .bind(&j.step_id);
    let q = if to == "accepted" {
        q.bind(note)
    } else {
        let q = f64_or_null(f64_or_null(q.bind(&done), j.lon), j.lat).bind(done_min);
        if to == "checked_out" {
            q.bind(tasks)
        } else {
            q
        }
    };
    if q.execute(&mut **tx).await?.rows_affected() != 1 {
        return Ok(Ok(false));
    }
    let ins = sqlx::query(
        "INSERT INTO service_order_step (id, order_id, action, at, actor, lon, lat, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&j.step_id)
    .bind(&j.id)
    .bind(&j.action)
    .bind(&now)
    .bind(&j.who.actor_name);
    f64_or_null(f64_or_null(ins, j.lon), j.lat)
        .bind(note)
        .execute(&mut **tx)
        .await?;
    step_audit(tx, j, to, region, None).await?;
    Ok(Ok(true))
}

/// A quick step on PostgreSQL, written with the others of the group in one statement.
struct QuickStep {
    job: std::sync::Arc<Checked>,
    to: &'static str,
    version: i64,
    region: String,
    now: String,
    done: String,
    done_min: i64,
    tasks: Option<String>,
    request_id: String,
}

/// The columns of [`QuickStep`]'s rows, each with its type (the values are parameters).
const QUICK_COLS: [(&str, &str); 13] = [
    ("id", "text"),
    ("to_state", "text"),
    ("version", "bigint"),
    ("step_id", "text"),
    ("done", "text"),
    ("lon", "float8"),
    ("lat", "float8"),
    ("done_min", "bigint"),
    ("note", "text"),
    ("action", "text"),
    ("now", "text"),
    ("actor", "text"),
    ("tasks", "text"),
];

impl crate::audit::group::Batch for QuickStep {
    fn write_all<'a>(
        tx: &'a mut Tx<'static>,
        items: Vec<Self>,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<bool>, ApiError>> {
        Box::pin(async move {
            // One step per order and per step id in a statement (an UPDATE … FROM takes one of
            // two rows for the same order, and which is not said): a second goes the full way.
            let mut seen = std::collections::HashSet::new();
            let take: Vec<bool> = items
                .iter()
                .map(|q| seen.insert(q.job.id.as_str()) & seen.insert(q.job.step_id.as_str()))
                .collect();
            let rows: Vec<String> = (0..take.iter().filter(|t| **t).count())
                .map(|r| {
                    let cols: Vec<String> = QUICK_COLS
                        .iter()
                        .enumerate()
                        .map(|(c, (_, ty))| format!("${}::{ty}", r * QUICK_COLS.len() + c + 1))
                        .collect();
                    format!("({})", cols.join(", "))
                })
                .collect();
            if rows.is_empty() {
                return Ok(vec![false; items.len()]);
            }
            let names: Vec<&str> = QUICK_COLS.iter().map(|c| c.0).collect();
            // Each column set from the row when the row's step sets it, else left as it is.
            let when = |state: &str, col: &str, from: &str| {
                format!("{col} = CASE WHEN v.to_state = '{state}' THEN v.{from} ELSE o.{col} END")
            };
            let sets = [
                when("accepted", "reason", "note"),
                when("checked_in", "check_in_at", "done"),
                when("checked_in", "check_in_lon", "lon"),
                when("checked_in", "check_in_lat", "lat"),
                when("checked_in", "check_in_min", "done_min"),
                when("checked_out", "check_out_at", "done"),
                when("checked_out", "check_out_lon", "lon"),
                when("checked_out", "check_out_lat", "lat"),
                when("checked_out", "check_out_min", "done_min"),
                when("checked_out", "tasks_done", "tasks"),
            ];
            let sql = format!(
                "WITH v ({}) AS (VALUES {}), \
                 u AS (UPDATE service_order o SET state = v.to_state, {}, version = o.version + 1 FROM v \
                   WHERE o.id = v.id AND o.version = v.version \
                   AND NOT EXISTS (SELECT 1 FROM service_order_step t WHERE t.id = v.step_id) RETURNING v.step_id), \
                 i AS (INSERT INTO service_order_step (id, order_id, action, at, actor, lon, lat, note) \
                   SELECT v.step_id, v.id, v.action, v.now, v.actor, v.lon, v.lat, v.note FROM v JOIN u ON u.step_id = v.step_id) \
                 SELECT step_id FROM u",
                names.join(", "),
                rows.join(", "),
                sets.join(", ")
            );
            // Its text differs with the group's size: not kept among each connection's prepared
            // statements, where 64 sizes would push out the hot ones.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for (s, _) in items.iter().zip(&take).filter(|(_, t)| **t) {
                let j = &s.job;
                q = q
                    .bind(&j.id)
                    .bind(s.to)
                    .bind(s.version)
                    .bind(&j.step_id)
                    .bind(&s.done);
                q = crate::platform::db::opt_f64(crate::platform::db::opt_f64(q, j.lon), j.lat);
                q = q
                    .bind(s.done_min)
                    .bind(Some(j.note.as_str()).filter(|n| !n.is_empty()))
                    .bind(&j.action)
                    .bind(&s.now)
                    .bind(&j.who.actor_name)
                    .bind(&s.tasks);
            }
            let written: std::collections::HashSet<String> = q
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            let mut out = Vec::with_capacity(items.len());
            for (s, t) in items.iter().zip(&take) {
                let w = *t && written.contains(&s.job.step_id);
                if w {
                    step_audit(tx, &s.job, s.to, &s.region, Some(&s.request_id)).await?;
                }
                out.push(w);
            }
            Ok(out)
        })
    }
}

/// A step's audit entry.
async fn step_audit(
    tx: &mut Tx<'static>,
    j: &Checked,
    to: &str,
    region: &str,
    request_id: Option<&str>,
) -> Result<(), ApiError> {
    let here = crate::platform::error::current_request_id().unwrap_or_default();
    audit::append_as(
        tx,
        &j.who,
        Entry {
            action: "service_order.step",
            entity: "service_order",
            entity_id: Some(&j.id),
            region_code: Some(region),
            detail: serde_json::json!({"action": j.action, "to": to, "step_id": j.step_id})
                .to_string(),
        },
        request_id.unwrap_or(&here),
    )
    .await?;
    Ok(())
}

/// A step checked at the edge, with what it needs inside the transaction.
struct Checked {
    keys: KeyRing,
    scope: Scope,
    who: Who,
    id: String,
    step_id: String,
    action: String,
    lon: Option<f64>,
    lat: Option<f64>,
    note: String,
    code: Option<String>,
    done_at: Option<i64>,
    /// For a confirmation: the elder, the month and the grants in force (`quota::grants_on`).
    grants: Option<(String, String, Vec<quota::Grant>)>,
    /// check_out: the tasks ticked, as sent (checked against the order's service before writing)
    tasks: Vec<String>,
    /// confirm: the elder's signature (PNG), kept in the file store by the full way
    signature: Option<Vec<u8>>,
}

impl Checked {
    /// The tasks as stored for a visit of `service`; 422 naming one that is not its task.
    fn tasks_for(&self, service: &str) -> ApiResult<Option<String>> {
        rule::tasks_done(service, &self.tasks).map_err(|e| ApiError::invalid("tasks", e))
    }
}

/// The step's writes, on a grouped transaction, and what they changed. The outer error rolls
/// them back; the inner one is the answer after they are kept (a wrong code's counted try).
async fn apply(
    tx: &mut Tx<'static>,
    j: &Checked,
    tasks: Option<String>,
    signature: Option<String>,
) -> Result<ApiResult<(i64, Option<Done>)>, ApiError> {
    let seen = for_step(tx, &j.scope, &j.id, &j.step_id).await?;
    Ok(write_step(tx, j, &seen, tasks, signature)
        .await?
        .map(|done| (seen.version, done)))
}

/// An order as a step needs it: its region (for the audit), state and version, and whether
/// the step's id was taken already (and by which order).
struct Seen {
    region: String,
    state: String,
    version: i64,
    step_of: Option<String>,
}

/// What a step changed in the order's answer; mirrors the step's UPDATE.
struct Done {
    to: &'static str,
    at: String,
    reason: Option<String>,
    /// check_out: the tasks as stored; confirmed: how
    tasks: Option<String>,
    by: Option<&'static str>,
}

impl Done {
    fn apply(self, o: &mut Order) {
        match self.to {
            "checked_in" => o.check_in_at = Some(self.at),
            "checked_out" => {
                o.check_out_at = Some(self.at);
                o.tasks = visit_tasks(&o.service, self.tasks.as_deref());
            }
            "confirmed" => {
                o.confirmed_at = Some(self.at);
                o.confirmed_by = self.by.map(str::to_string);
                o.confirmed_by_zh = self.by.map(|b| confirmed_by_zh(b).to_string());
            }
            _ => o.reason = self.reason,
        }
        o.state_zh = rule::state_zh(self.to).into();
        o.state = self.to.into();
    }
}

/// Read an order for a step, in the caller's scope (404 outside it, as `get`); one round trip.
async fn for_step(tx: &mut Tx<'static>, scope: &Scope, id: &str, step_id: &str) -> ApiResult<Seen> {
    let r = sqlx::query(
        "SELECT o.provider_id, p.region_code, o.state, o.caregiver_id, o.version, \
         (SELECT t.order_id FROM service_order_step t WHERE t.id = $2) \
         FROM service_order o JOIN organisation p ON p.id = o.provider_id WHERE o.id = $1",
    )
    .bind(id)
    .bind(step_id)
    .fetch_optional(&mut **tx)
    .await?
    .filter(|r| {
        scope.holds(&r.get::<String, _>(0), &r.get::<String, _>(1))
            && mine(scope, r.get::<Option<String>, _>(3).as_deref())
    })
    .ok_or_else(|| ApiError::not_found("未找到该工单（或不在您的管辖范围内）"))?;
    Ok(Seen {
        region: r.get(1),
        state: r.get(2),
        version: r.get(4),
        step_of: r.get(5),
    })
}

/// The step's writes as decided from `seen`, guarded by the version read (on PostgreSQL a write
/// outside the group, a new dispatch, may come between).
async fn write_step(
    tx: &mut Tx<'static>,
    j: &Checked,
    seen: &Seen,
    tasks: Option<String>,
    signature: Option<String>,
) -> Result<ApiResult<Option<Done>>, ApiError> {
    let (keys, scope, who, id, step_id) = (&j.keys, &j.scope, &j.who, j.id.as_str(), &j.step_id);
    let (note, s) = (&j.note, j);
    let (region, state) = (&seen.region, &seen.state);
    if let Some(other) = &seen.step_of {
        if other != id {
            return Err(ApiError::conflict("step_id 已用于另一张工单"));
        }
        // Sent again (a phone that lost the answer): done once already.
        return Ok(Ok(None));
    }
    let to = rule::next(state, &s.action).map_err(ApiError::conflict)?;
    if to == "confirmed" && s.signature.is_some() && signature.is_none() {
        // Signed on an order read before it was checked out (a race): nothing kept, sign again.
        return Err(ApiError::conflict("该工单刚有变化，请刷新后重新签名"));
    }
    if scope.staff.is_some() && to == "cancelled" {
        return Err(ApiError::forbidden(
            "护理员不能取消工单，请联系服务商调度员",
        ));
    }
    if (to == "cancelled" || to == "no_show") && note.chars().count() < 2 {
        return Err(ApiError::invalid("note", "请写明原因"));
    }
    let confirmed_by = if to == "confirmed" {
        match confirm_check(
            tx,
            keys,
            scope,
            id,
            s.code.as_deref(),
            note,
            signature.is_some(),
        )
        .await?
        {
            Ok(by) => by,
            Err(e) => {
                // A wrong code counts, whatever the answer.
                return Ok(Err(e));
            }
        }
    } else {
        ""
    };
    let (now, done, done_min) = step_time(s.done_at, to);
    // The step's own columns: where and when for check-in and check-out, the reason otherwise.
    let q = match to {
        "checked_in" | "checked_out" => {
            let at = if to == "checked_in" { "check_in" } else { "check_out" };
            let q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE service_order SET state = $2, {at}_at = $3, {at}_lon = $4, {at}_lat = $5, \
                 {at}_min = $7, version = version + 1, tasks_done = CASE WHEN $2 = 'checked_out' THEN $9 ELSE tasks_done END \
                 WHERE id = $1 AND state = $6 AND version = $8"
            )))
            .bind(id)
            .bind(to)
            .bind(&done);
            let q = crate::platform::db::opt_f64(q, s.lon);
            crate::platform::db::opt_f64(q, s.lat)
                .bind(state)
                .bind(done_min)
                .bind(seen.version)
                .bind(&tasks)
        }
        "confirmed" => sqlx::query(
            "UPDATE service_order SET state = $2, confirmed_at = $3, confirmed_by = $5, version = version + 1, \
             signature_sha = $7 WHERE id = $1 AND state = $4 AND version = $6",
        )
        .bind(id)
        .bind(to)
        .bind(&now)
        .bind(state)
        .bind(confirmed_by)
        .bind(seen.version)
        .bind(&signature),
        _ => sqlx::query(
            "UPDATE service_order SET state = $2, reason = $3, version = version + 1 WHERE id = $1 AND state = $4 AND version = $5",
        )
        .bind(id)
        .bind(to)
        .bind(Some(note).filter(|n| !n.is_empty()))
        .bind(state)
        .bind(seen.version),
    };
    if q.execute(&mut **tx).await?.rows_affected() != 1 {
        return Err(ApiError::conflict("该工单刚被他人处理，请刷新后查看"));
    }
    if to == "confirmed" {
        // The share of elders served at home is counted where they live: recount it there.
        let home: Option<String> = sqlx::query_scalar(
            "SELECT e.residence_region FROM service_order o JOIN elder e ON e.id = o.elder_id WHERE o.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(home) = home {
            crate::indicator::rollup::mark_dirty(tx, &home).await?;
        }
    }
    if let Some((elder, month, grants)) = s.grants.as_ref().filter(|_| to == "confirmed") {
        let paid_by = quota::consume(tx, grants, elder, month).await?;
        sqlx::query("UPDATE service_order SET entitlement_id = $2, funded = $3 WHERE id = $1")
            .bind(id)
            .bind(&paid_by)
            .bind(if paid_by.is_some() {
                "quota"
            } else {
                "self_paid"
            })
            .execute(&mut **tx)
            .await?;
    }
    let ins = sqlx::query(
        "INSERT INTO service_order_step (id, order_id, action, at, actor, lon, lat, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(step_id)
    .bind(id)
    .bind(&s.action)
    .bind(&now)
    .bind(&who.actor_name);
    let ins = crate::platform::db::opt_f64(ins, s.lon);
    let ins = crate::platform::db::opt_f64(ins, s.lat);
    ins.bind(Some(&note).filter(|n| !n.is_empty()))
        .execute(&mut **tx)
        .await?;
    step_audit(tx, j, to, region, None).await?;
    Ok(Ok(Some(Done {
        to,
        at: if to == "confirmed" { now } else { done },
        reason: Some(note.clone()).filter(|n| !n.is_empty()),
        tasks,
        by: Some(confirmed_by).filter(|b| !b.is_empty()),
    })))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// One provider's orders
    pub provider_id: Option<String>,
    /// One day, YYYY-MM-DD (default today)
    pub date: Option<String>,
}

/// The day's orders of the caller's area (or one provider), by time.
pub async fn list(db: &Db, scope: &Scope, q: &OrderQuery, names: bool) -> ApiResult<Vec<Order>> {
    let day = match q.date.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid("date", "日期应为 YYYY-MM-DD"))?,
        None => crate::platform::today(),
    };
    let from = day
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp()
        / 60;
    let provider = scope.org.clone().or_else(|| {
        q.provider_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    });
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS}, o.version FROM organisation p CROSS JOIN service_order o JOIN elder e ON e.id = o.elder_id \
         LEFT JOIN service_feedback f ON f.order_id = o.id WHERE o.provider_id = p.id AND p.region_code >= $1 AND p.region_code <= $2 AND ($3 = '' OR p.id = $3) \
         AND o.start_min >= $4 AND o.start_min < $5 AND ($6 = '' OR o.caregiver_id = $6) \
         ORDER BY o.start_min, o.id LIMIT 2000"
    )))
    .bind(&scope.lo)
    .bind(&scope.hi)
    .bind(provider.unwrap_or_default())
    .bind(from)
    .bind(from + 24 * 60)
    .bind(scope.staff.clone().unwrap_or_default())
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let o = for_reader(scope, from_row(r, names));
            // A caregiver's day: her phone's first step on each needs no read either.
            if scope.staff.is_some() && names {
                recent::remember(&o.id, r.get(COLS_N), &o, &r.get::<String, _>(16));
            }
            o
        })
        .collect())
}

/// Called by the registry in the transaction that records a death or a move-out: no caregiver is
/// sent to a home the elder has left. Visits from that day not yet checked in are cancelled, care
/// plans end, the family's 助餐码 stops. Each cancellation is a step of its visit. Returns how
/// many visits were cancelled.
pub async fn follow_registry(
    tx: &mut Tx<'_>,
    elder_id: &str,
    who: &Who,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("SELECT status, death_date, moved_out_date FROM elder WHERE id = $1")
        .bind(elder_id)
        .fetch_one(&mut **tx)
        .await?;
    let (status, death, moved): (String, Option<String>, Option<String>) =
        (r.get(0), r.get(1), r.get(2));
    let (from, why) = match status.as_str() {
        "deceased" => (death, "老人已去世，上门服务取消"),
        "moved_out" => (moved, "老人已迁出，上门服务取消"),
        _ => return Ok(0),
    };
    let from = from.unwrap_or_else(|| crate::platform::today().to_string());
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM service_order WHERE elder_id = $1 AND planned_start >= $2 \
         AND state IN ('created', 'dispatched', 'accepted')",
    )
    .bind(elder_id)
    .bind(&from)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE service_order SET state = 'cancelled', reason = $3, version = version + 1 \
         WHERE elder_id = $1 AND planned_start >= $2 AND state IN ('created', 'dispatched', 'accepted')",
    )
    .bind(elder_id)
    .bind(&from)
    .bind(why)
    .execute(&mut **tx)
    .await?;
    let plans = sqlx::query(
        "UPDATE care_plan SET state = 'ended', \
         ends_on = CASE WHEN ends_on IS NOT NULL AND ends_on < $2 THEN ends_on ELSE $2 END \
         WHERE elder_id = $1 AND state = 'active'",
    )
    .bind(elder_id)
    .bind(&from)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM meal_code WHERE elder_id = $1")
        .bind(elder_id)
        .execute(&mut **tx)
        .await?;
    // Each cancellation in the visit's own steps, under the registry change's author. Not a row
    // of the audit chain here: the registry's change that caused it is audited by its caller,
    // which takes the audit head last (an import holds it per chunk, in its own order).
    let now = crate::platform::now_rfc3339();
    for id in &ids {
        sqlx::query(
            "INSERT INTO service_order_step (id, order_id, action, at, actor, note) VALUES ($1, $2, 'cancel', $3, $4, $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(id)
        .bind(&now)
        .bind(&who.actor_name)
        .bind(why)
        .execute(&mut **tx)
        .await?;
    }
    if !ids.is_empty() || plans > 0 {
        tracing::info!(
            elder = elder_id,
            cancelled = ids.len(),
            plans_ended = plans,
            "home visits follow the registry"
        );
    }
    Ok(ids.len() as u64)
}

/// Codes lapse after 30 minutes; a new one may be asked for after a minute; five wrong tries void
/// a code.
const CODE_SECS: i64 = 30 * 60;
const CODE_RESEND_SECS: i64 = 60;
const CODE_TRIES: i64 = 5;

/// How a confirmation is made: with the code the family received (checked here; a wrong one
/// counts a try), or without one by a regional officer who called the family back and says so.
/// The outer error is the database's; the inner one the answer to give (after the try is kept).
async fn confirm_check(
    tx: &mut Tx<'_>,
    keys: &KeyRing,
    scope: &Scope,
    id: &str,
    code: Option<&str>,
    note: &str,
    signed: bool,
) -> Result<Result<&'static str, ApiError>, ApiError> {
    // The elder signed on the caregiver's phone (a home with no family phone to send a code to).
    if signed {
        return Ok(Ok("signature"));
    }
    let r =
        sqlx::query("SELECT code_enc, code_expires, code_tries FROM service_order WHERE id = $1")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
    let (enc, expires, tries): (Option<Vec<u8>>, Option<i64>, i64) = (r.get(0), r.get(1), r.get(2));
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        if scope.org.is_none() && note.chars().count() >= 4 {
            return Ok(Ok("call_back"));
        }
        return Ok(Err(ApiError::invalid(
            "code",
            "请输入老人家属手机收到的 6 位确认码，或请老人在手机上签名确认",
        )));
    };
    let Some(enc) = enc else {
        return Ok(Err(ApiError::conflict(
            "还没有发送确认码，请先点“发送确认码”",
        )));
    };
    if tries >= CODE_TRIES {
        return Ok(Err(ApiError::conflict(
            "确认码已输错 5 次作废，请重新发送确认码",
        )));
    }
    if expires.is_none_or(|e| e <= crate::platform::now_secs()) {
        return Ok(Err(ApiError::conflict("确认码已过期，请重新发送确认码")));
    }
    let want = keys.decrypt(&enc).map_err(ApiError::internal)?;
    if want.as_bytes() != code.as_bytes() {
        sqlx::query("UPDATE service_order SET code_tries = code_tries + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        return Ok(Err(ApiError::invalid(
            "code",
            format!("确认码不正确，还可以再试 {} 次", CODE_TRIES - tries - 1),
        )));
    }
    Ok(Ok("code"))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodeSent {
    /// The number it goes to, masked (138****5678)
    pub sent_to: String,
    /// When it lapses (RFC 3339)
    pub expires_at: String,
}

/// Send a one-time confirmation code to the elder's (family's) phone through the notification
/// outbox, once the caregiver has checked out. The number it went to is kept (blind-indexed) so a
/// code sent to the caregiver's own phone is caught at settlement. Audited.
pub async fn send_code(
    db: &Db,
    keys: &KeyRing,
    scope: &Scope,
    who: &Who,
    id: &str,
) -> ApiResult<CodeSent> {
    use rand::Rng;
    let mut tx = db.begin().await?;
    let (_, state, _, _, _, region) = held(&mut tx, scope, id).await?;
    if state != "checked_out" {
        return Err(ApiError::conflict(format!(
            "工单{}，签退后才能发送确认码",
            rule::state_zh(&state)
        )));
    }
    let r = sqlx::query(
        "SELECT e.phone_bidx, e.phone_masked, o.code_expires, o.elder_id, \
         (SELECT COUNT(*) FROM notification_outbox n WHERE n.order_id = o.id) \
         FROM service_order o JOIN elder e ON e.id = o.elder_id WHERE o.id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let (bidx, masked): (Option<String>, Option<String>) = (r.get(0), r.get(1));
    let (Some(bidx), Some(masked)) = (bidx, masked) else {
        return Err(ApiError::conflict(
            "老人档案没有登记联系电话，无法发送确认码；请补登电话，或由民政干部电话回访确认",
        ));
    };
    let now = crate::platform::now_secs();
    if let Some(e) = r.get::<Option<i64>, _>(2)
        && e - CODE_SECS + CODE_RESEND_SECS > now
    {
        return Err(ApiError::conflict(format!(
            "确认码刚刚发出，请 {} 秒后再发",
            e - CODE_SECS + CODE_RESEND_SECS - now
        )));
    }
    if r.get::<i64, _>(4) >= 5 {
        return Err(ApiError::conflict(
            "该工单已发送 5 次确认码，请由民政干部电话回访确认",
        ));
    }
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
    let expires = now + CODE_SECS;
    sqlx::query(
        "UPDATE service_order SET code_enc = $2, code_expires = $3, code_tries = 0, code_to_bidx = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(keys.encrypt(&code))
    .bind(expires)
    .bind(&bidx)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO notification_outbox (id, elder_id, event, state, attempts, next_attempt_at, created_at, order_id) \
         VALUES ($1, $2, 'visit_code', 'pending', 0, 0, $3, $4)",
    )
    .bind(format!("visit:{id}:{expires}"))
    .bind(r.get::<String, _>(3))
    .bind(crate::platform::now_rfc3339())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "service_order.code",
            entity: "service_order",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"sent_to": masked}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CodeSent {
        sent_to: masked,
        expires_at: chrono::DateTime::from_timestamp(expires, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
    })
}

/// A caregiver of the order's provider, weighed for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    pub staff_id: String,
    pub name: String,
    /// Has a skill level or a valid certificate
    pub qualified: bool,
    /// No other visit of hers shares a minute with this one
    pub free: bool,
    /// Why she cannot take it (not qualified, or the visit it clashes with), in words
    pub reason: Option<String>,
    /// Her visits that day
    pub visits_that_day: i64,
    /// Metres from her visit nearest in time that day to this home, when both are known
    pub distance_m: Option<i64>,
    /// The first one who can take it: the nearest, then the least busy
    pub recommended: bool,
}

/// The order's provider's current caregivers, those who can take it first (qualified where the
/// service needs it, free at that time), nearest first (from the home of her visit closest in
/// time that day), then the least busy. The dispatcher still chooses.
pub async fn candidates(db: &Db, scope: &Scope, id: &str) -> ApiResult<Vec<Candidate>> {
    let o = sqlx::query(
        "SELECT o.provider_id, p.region_code, o.service, o.start_min, o.planned_minutes, e.lon, e.lat, o.caregiver_id \
         FROM service_order o JOIN organisation p ON p.id = o.provider_id JOIN elder e ON e.id = o.elder_id WHERE o.id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .filter(|r| scope.holds(&r.get::<String, _>(0), &r.get::<String, _>(1)) && scope.staff.is_none())
    .ok_or_else(|| ApiError::not_found("未找到该工单（或不在您的管辖范围内）"))?;
    let (provider, service, start, minutes): (String, String, i64, i64) =
        (o.get(0), o.get(2), o.get(3), o.get(4));
    let home: Option<(f64, f64)> = o.get::<Option<f64>, _>(5).zip(o.get::<Option<f64>, _>(6));
    let today = crate::platform::today().to_string();
    let day0 = start - start.rem_euclid(1440);
    let staff = sqlx::query(
        "SELECT id, name, skill_level, certificate_no, certificate_expires_on FROM staff \
         WHERE org_id = $1 AND role = 'caregiver' AND (left_on IS NULL OR left_on > $2) ORDER BY name, id",
    )
    .bind(&provider)
    .bind(&today)
    .fetch_all(&db.pool)
    .await?;
    let theirs = sqlx::query(
        "SELECT o.caregiver_id, o.start_min, o.planned_minutes, o.planned_start, e.lon, e.lat, o.state \
         FROM service_order o JOIN elder e ON e.id = o.elder_id WHERE o.provider_id = $1 AND o.id <> $2 \
         AND o.caregiver_id IS NOT NULL AND o.start_min >= $3 AND o.start_min < $4 \
         AND o.state <> 'cancelled' AND o.state <> 'no_show'",
    )
    .bind(&provider)
    .bind(id)
    .bind(day0)
    .bind(day0 + 1440)
    .fetch_all(&db.pool)
    .await?;
    let needs = rule::needs_qualification(&service);
    let mut out: Vec<(rule::Candidate, Candidate)> = staff
        .iter()
        .map(|s| {
            let sid: String = s.get(0);
            let qualified = s.get::<Option<i64>, _>(2).is_some()
                || (s.get::<Option<String>, _>(3).is_some()
                    && s.get::<Option<String>, _>(4).is_none_or(|e| e >= today));
            let mine: Vec<_> = theirs
                .iter()
                .filter(|r| r.get::<String, _>(0) == sid)
                .collect();
            let clash = mine.iter().find(|r| {
                let st: String = r.get(6);
                (st == "dispatched" || st == "accepted" || st == "checked_in")
                    && rule::overlaps(start, minutes, r.get(1), r.get(2))
            });
            // Where she is around then: the home of her visit nearest in time.
            let near = mine
                .iter()
                .filter(|r| {
                    r.get::<Option<f64>, _>(4).is_some() && r.get::<Option<f64>, _>(5).is_some()
                })
                .min_by_key(|r| (r.get::<i64, _>(1) - start).abs());
            let distance = match (home, near) {
                (Some((x, y)), Some(r)) => Some(rule::distance_m(
                    x,
                    y,
                    r.get::<Option<f64>, _>(4).unwrap_or(x),
                    r.get::<Option<f64>, _>(5).unwrap_or(y),
                )),
                _ => None,
            };
            let reason = if needs && !qualified {
                Some(format!("{}须由持证护理员上门", rule::service_zh(&service)))
            } else {
                clash.map(|r| {
                    format!(
                        "{} 已有 {} 分钟的上门服务",
                        r.get::<String, _>(3),
                        r.get::<i64, _>(2)
                    )
                })
            };
            (
                rule::Candidate {
                    eligible: reason.is_none(),
                    distance_m: distance,
                    visits: mine.len() as i64,
                },
                Candidate {
                    staff_id: sid,
                    name: s.get(1),
                    qualified,
                    free: clash.is_none(),
                    reason,
                    visits_that_day: mine.len() as i64,
                    distance_m: distance.map(|d| d.round() as i64),
                    recommended: false,
                },
            )
        })
        .collect();
    out.sort_by(|a, b| rule::suggest(&a.0, &b.0));
    let mut out: Vec<Candidate> = out.into_iter().map(|(_, c)| c).collect();
    if let Some(first) = out.first_mut().filter(|c| c.reason.is_none()) {
        first.recommended = true;
    }
    Ok(out)
}

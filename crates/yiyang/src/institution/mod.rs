//! institution — beds and residents of the organisations that house elders (养老机构, 农村敬老院,
//! 区域性养老服务中心, 养老服务综合体). A bed belongs to an `org` organisation; an admission (入住)
//! puts a registered elder on a bed and is never overwritten: a transfer closes one bed stay and
//! opens the next, a leave (请假) is a dated row, a discharge (退住) closes the admission. Occupancy
//! and bed-days follow from these rows alone.
//!
//! One bed holds one resident and one elder is resident in one place at a time: both are unique
//! indexes over the open rows, so two admissions racing for one bed cannot both win on either
//! engine, whatever the application checked before.

pub mod board;
pub mod claim;
pub mod demo;
pub mod family;
pub mod http;
pub mod offer;
pub mod queue;
pub mod request;

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::Row;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE bed (id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organisation (id), \
         building TEXT NOT NULL, floor TEXT NOT NULL, room TEXT NOT NULL, label TEXT NOT NULL, \
         nursing BIGINT NOT NULL, dementia BIGINT NOT NULL, status TEXT NOT NULL, opened_on TEXT NOT NULL, \
         retired_on TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version BIGINT NOT NULL, \
         CONSTRAINT bed_status_check CHECK (status = 'open' OR status = 'retired'))",
    ),
    // A retired bed keeps its place name; a new bed may take it again.
    Both(
        "CREATE UNIQUE INDEX bed_place ON bed (org_id, building, floor, room, label) WHERE status = 'open'",
    ),
    Both("CREATE INDEX bed_org ON bed (org_id)"),
    Both(
        "CREATE TABLE admission (id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organisation (id), \
         elder_id TEXT NOT NULL REFERENCES elder (id), admitted_on TEXT NOT NULL, discharged_on TEXT, \
         discharge_reason TEXT, note TEXT, created_by TEXT NOT NULL, created_at TEXT NOT NULL, \
         discharged_by TEXT, version BIGINT NOT NULL)",
    ),
    Both(
        "CREATE UNIQUE INDEX admission_open_elder ON admission (elder_id) WHERE discharged_on IS NULL",
    ),
    Both("CREATE INDEX admission_org ON admission (org_id, admitted_on)"),
    Both(
        "CREATE TABLE bed_stay (id TEXT PRIMARY KEY, admission_id TEXT NOT NULL REFERENCES admission (id), \
         bed_id TEXT NOT NULL REFERENCES bed (id), from_on TEXT NOT NULL, until_on TEXT, created_at TEXT NOT NULL)",
    ),
    Both("CREATE UNIQUE INDEX bed_stay_open_bed ON bed_stay (bed_id) WHERE until_on IS NULL"),
    Both("CREATE INDEX bed_stay_admission ON bed_stay (admission_id)"),
    Both("CREATE INDEX bed_stay_bed ON bed_stay (bed_id, from_on)"),
    Both(
        "CREATE TABLE admission_leave (id TEXT PRIMARY KEY, admission_id TEXT NOT NULL REFERENCES admission (id), \
         kind TEXT NOT NULL, from_on TEXT NOT NULL, until_on TEXT, note TEXT, created_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX admission_leave_admission ON admission_leave (admission_id)"),
];

/// Organisation kinds that keep beds for residents (a day centre's daytime beds are not counted).
pub const RESIDENTIAL_KINDS: &[&str] = &[
    "institution",
    "township_home",
    "regional_center",
    "comprehensive_center",
];

/// Why a resident left: (code, 中文).
pub const DISCHARGE_REASONS: &[(&str, &str)] = &[
    ("death", "死亡"),
    ("transfer", "转往其他机构"),
    ("home", "回家居住"),
    ("other", "其他"),
];

/// Kinds of leave: (code, 中文).
pub const LEAVE_KINDS: &[(&str, &str)] = &[
    ("hospital", "住院"),
    ("home", "回家探亲"),
    ("other", "其他"),
];

pub(crate) fn code_of(table: &[(&'static str, &'static str)], v: &str) -> Option<&'static str> {
    let v = v.trim();
    table.iter().find(|k| k.0 == v || k.1 == v).map(|k| k.0)
}

pub(crate) fn zh(table: &[(&'static str, &'static str)], code: &str) -> &'static str {
    table.iter().find(|k| k.0 == code).map_or("", |k| k.1)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Bed {
    pub id: String,
    /// 楼栋 ("1号楼"; empty when the home has one building)
    pub building: String,
    /// 楼层
    pub floor: String,
    /// 房间
    pub room: String,
    /// 床号
    pub label: String,
    /// "1号楼 3层 302室 2床"
    pub place: String,
    /// 护理型床位
    pub nursing: bool,
    /// 认知症照护单元
    pub dementia: bool,
    /// open / retired
    pub status: String,
    pub opened_on: String,
    pub retired_on: Option<String>,
    /// Who lies in it today (names only for callers who may read individual records).
    pub occupant: Option<Occupant>,
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Occupant {
    pub admission_id: String,
    /// The resident's name, or "已入住" for callers who read figures only.
    pub name: String,
    /// 本床入住日期
    pub since: String,
    /// 请假中（住院、回家探亲）
    pub on_leave: Option<String>,
}

/// Beds of one organisation and their sums today.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BedBoard {
    pub org_id: String,
    pub summary: BedSummary,
    pub items: Vec<Bed>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct BedSummary {
    /// 在用床位
    pub beds: i64,
    /// 护理型床位
    pub nursing: i64,
    /// 认知症床位
    pub dementia: i64,
    /// 在住（含请假）
    pub occupied: i64,
    /// 其中请假中
    pub on_leave: i64,
    /// 空床
    pub vacant: i64,
    /// 空的护理型床位
    pub vacant_nursing: i64,
}

/// New beds in one room: one per label.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBeds {
    pub building: Option<String>,
    pub floor: Option<String>,
    pub room: String,
    /// 床号, e.g. ["1", "2", "3"] (at most 50)
    pub labels: Vec<String>,
    #[serde(default)]
    pub nursing: bool,
    #[serde(default)]
    pub dementia: bool,
    /// 启用日期 (default today)
    pub opened_on: Option<String>,
}

/// A change to a bed: its kind, or its retirement (only when nobody lies in it).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BedChange {
    pub nursing: Option<bool>,
    pub dementia: Option<bool>,
    /// "retired" to take the bed out of use (撤床)
    pub status: Option<String>,
    /// 撤床日期 (default today)
    pub retired_on: Option<String>,
    /// 验收日期 of a new bed: its construction subsidy is claimed in that month
    pub accepted_on: Option<String>,
}

/// An admission: the elder by registry id (someone in the caller's records) or by citizen ID
/// and name together (someone from elsewhere in the county), onto a vacant bed.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmitReq {
    pub elder_id: Option<String>,
    /// 18 位身份证号 (with `name`)
    pub citizen_id: Option<String>,
    pub name: Option<String>,
    pub bed_id: String,
    /// 入住日期 (default today; not in the future)
    pub admitted_on: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferReq {
    pub bed_id: String,
    /// 调床日期 (default today)
    pub on: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveReq {
    /// hospital / home / other, or 住院 / 回家探亲 / 其他
    pub kind: String,
    /// 请假开始日期 (default today)
    pub from_on: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnReq {
    /// 销假日期 (default today)
    pub on: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeReq {
    /// death / transfer / home / other, or 死亡 / 转往其他机构 / 回家居住 / 其他
    pub reason: String,
    /// 退住日期 (default today)
    pub on: Option<String>,
    pub note: Option<String>,
}

/// A resident (current or past) of one organisation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Resident {
    pub admission_id: String,
    pub elder_id: String,
    pub name: String,
    pub citizen_id_masked: String,
    pub sex: String,
    /// 周岁 today
    pub age: i32,
    /// 能力等级 (中文), when a valid assessment is recorded
    pub ability_level: Option<String>,
    pub admitted_on: String,
    /// Today's bed (none after discharge)
    pub bed_id: Option<String>,
    pub bed_place: Option<String>,
    pub nursing_bed: bool,
    /// 请假中: kind (中文) and since when
    pub on_leave: Option<String>,
    pub leave_since: Option<String>,
    pub discharged_on: Option<String>,
    pub discharge_reason: Option<String>,
    /// Bed stays and leaves, oldest first, as sentences.
    pub history: Vec<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResidentQuery {
    /// current (default) or past
    pub state: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResidentList {
    pub total: i64,
    pub items: Vec<Resident>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// YYYY-MM (default: this month)
    pub month: Option<String>,
}

/// One month of an organisation's beds, from the records.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MonthOccupancy {
    pub month: String,
    /// Days counted: the whole month, or up to today for the current one.
    pub days: i64,
    /// 床位日（在用床位 × 天）
    pub bed_days: i64,
    /// 占用床日（在住人员 × 天，含请假）
    pub occupied_days: i64,
    /// 其中请假床日
    pub leave_days: i64,
    /// 入住率 = 占用床日 ÷ 床位日
    pub rate: f64,
    /// 本月入住人次
    pub admissions: i64,
    /// 本月退住人次
    pub discharges: i64,
}

// ---- input checks ------------------------------------------------------------------------------

pub(crate) fn text(field: &str, label: &str, v: Option<&str>, max: usize) -> ApiResult<String> {
    let v = v.unwrap_or("").trim();
    if v.chars().count() > max {
        return Err(ApiError::invalid(field, format!("{label}最多 {max} 个字")));
    }
    if v.chars()
        .any(|c| c.is_control() || crate::registry::model::is_bidi_control(c))
    {
        return Err(ApiError::invalid(
            field,
            format!("{label}含有不允许的控制字符"),
        ));
    }
    Ok(v.to_string())
}

/// A date of a record: YYYY-MM-DD, not in the future, not before 2000; today when not given.
pub(crate) fn day(
    field: &str,
    label: &str,
    v: Option<&str>,
    today: NaiveDate,
) -> ApiResult<NaiveDate> {
    let Some(v) = v.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(today);
    };
    let d = (v.len() == 10)
        .then(|| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| ApiError::invalid(field, format!("{label}应为 YYYY-MM-DD 格式的日期")))?;
    if d > today {
        return Err(ApiError::invalid(field, format!("{label}不能晚于今天")));
    }
    if d.year() < 2000 {
        return Err(ApiError::invalid(field, format!("{label}不能早于 2000 年")));
    }
    Ok(d)
}

/// The indicators count beds, residents and staff at the home's place and the 特困 at theirs
/// (`indicator::rollup`): a write marks the home's town for the rollups' next refresh…
pub(crate) async fn recount_place(tx: &mut Tx<'_>, region: &str) -> Result<(), sqlx::Error> {
    crate::indicator::rollup::mark_dirty(tx, region).await
}

/// …an application marks the applicant's town…
pub(crate) async fn recount_elder(tx: &mut Tx<'_>, elder_id: &str) -> Result<(), sqlx::Error> {
    let r = sqlx::query("SELECT residence_region FROM elder WHERE id = $1")
        .bind(elder_id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(r) = r {
        recount_place(tx, &r.get::<String, _>(0)).await?;
    }
    Ok(())
}

/// …and an admission's start or end marks the resident's town too.
pub(crate) async fn recount_admission(tx: &mut Tx<'_>, id: &str) -> Result<(), sqlx::Error> {
    let r = sqlx::query(
        "SELECT o.region_code, e.residence_region FROM admission a JOIN organisation o ON o.id = a.org_id \
         JOIN elder e ON e.id = a.elder_id WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = r {
        recount_place(tx, &r.get::<String, _>(0)).await?;
        recount_place(tx, &r.get::<String, _>(1)).await?;
    }
    Ok(())
}

pub(crate) fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// "1号楼 3层 302室 2床": each part as entered, with its unit added when it is a bare number.
/// [`place`] of a row whose columns `at`… are building, floor, room and label.
pub(crate) fn place_at(r: &sqlx::any::AnyRow, at: usize) -> String {
    place(
        &r.get::<String, _>(at),
        &r.get::<String, _>(at + 1),
        &r.get::<String, _>(at + 2),
        &r.get::<String, _>(at + 3),
    )
}

pub fn place(building: &str, floor: &str, room: &str, label: &str) -> String {
    let unit = |s: &str, u: &str| {
        if s.is_empty() {
            String::new()
        } else if s.chars().all(|c| c.is_ascii_digit()) {
            format!("{s}{u}")
        } else {
            s.to_string()
        }
    };
    [
        unit(building, "号楼"),
        unit(floor, "层"),
        unit(room, "室"),
        unit(label, "床"),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
}

// ---- organisations that keep beds --------------------------------------------------------------

/// The organisation, inside the scope: (kind, region, name). Reading an organisation without beds
/// gives empty lists and zeros, not an error.
pub(crate) async fn org_in_scope(
    db: &Db,
    scope: &Scope,
    org_id: &str,
) -> ApiResult<(String, String, String)> {
    let r = sqlx::query("SELECT kind, region_code, name FROM organisation WHERE id = $1")
        .bind(org_id)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.holds(org_id, &r.get::<String, _>(1)))
        .ok_or_else(|| ApiError::not_found("未找到该机构（或不在您的管辖范围内）"))?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

/// The organisation, inside the scope, and one that keeps beds: its region and name (for writes).
async fn residential_org(db: &Db, scope: &Scope, org_id: &str) -> ApiResult<(String, String)> {
    let (kind, region, name) = org_in_scope(db, scope, org_id).await?;
    if !RESIDENTIAL_KINDS.contains(&kind.as_str()) {
        return Err(ApiError::invalid(
            "org_id",
            "只有养老机构、敬老院、区域性养老服务中心和养老服务综合体设住养床位",
        ));
    }
    Ok((region, name))
}

// ---- beds --------------------------------------------------------------------------------------

/// The beds of an organisation with today's occupants; names only when `names`.
pub async fn beds(db: &Db, scope: &Scope, org_id: &str, names: bool) -> ApiResult<BedBoard> {
    org_in_scope(db, scope, org_id).await?;
    let rows = sqlx::query(
        "SELECT b.id, b.building, b.floor, b.room, b.label, b.nursing, b.dementia, b.status, b.opened_on, \
         b.retired_on, b.version, s.admission_id, s.from_on, e.name, \
         (SELECT l.kind FROM admission_leave l WHERE l.admission_id = s.admission_id AND l.until_on IS NULL) \
         FROM bed b LEFT JOIN bed_stay s ON s.bed_id = b.id AND s.until_on IS NULL \
         LEFT JOIN admission a ON a.id = s.admission_id LEFT JOIN elder e ON e.id = a.elder_id \
         WHERE b.org_id = $1 ORDER BY b.status, b.building, b.floor, b.room, b.label",
    )
    .bind(org_id)
    .fetch_all(&db.pool)
    .await?;
    let mut summary = BedSummary::default();
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let (building, floor, room, label): (String, String, String, String) =
            (r.get(1), r.get(2), r.get(3), r.get(4));
        let nursing = r.get::<i64, _>(5) != 0;
        let dementia = r.get::<i64, _>(6) != 0;
        let status: String = r.get(7);
        let occupant = r.get::<Option<String>, _>(11).map(|admission_id| Occupant {
            admission_id,
            name: if names {
                r.get::<Option<String>, _>(13).unwrap_or_default()
            } else {
                "已入住".into()
            },
            since: r.get(12),
            on_leave: r
                .get::<Option<String>, _>(14)
                .map(|k| zh(LEAVE_KINDS, &k).to_string()),
        });
        if status == "open" {
            summary.beds += 1;
            summary.nursing += nursing as i64;
            summary.dementia += dementia as i64;
            match &occupant {
                Some(o) => {
                    summary.occupied += 1;
                    summary.on_leave += o.on_leave.is_some() as i64;
                }
                None => {
                    summary.vacant += 1;
                    summary.vacant_nursing += nursing as i64;
                }
            }
        }
        items.push(Bed {
            id: r.get(0),
            place: place(&building, &floor, &room, &label),
            building,
            floor,
            room,
            label,
            nursing,
            dementia,
            status,
            opened_on: r.get(8),
            retired_on: r.get(9),
            occupant,
            version: r.get(10),
        });
    }
    Ok(BedBoard {
        org_id: org_id.to_string(),
        summary,
        items,
    })
}

/// Add the beds of one room; audited as one change.
pub async fn add_beds(
    db: &Db,
    scope: &Scope,
    who: &Who,
    org_id: &str,
    req: NewBeds,
) -> ApiResult<Vec<String>> {
    let (region, _) = residential_org(db, scope, org_id).await?;
    let building = text("building", "楼栋", req.building.as_deref(), 20)?;
    let floor = text("floor", "楼层", req.floor.as_deref(), 10)?;
    let room = text("room", "房间号", Some(&req.room), 20)?;
    if room.is_empty() {
        return Err(ApiError::invalid("room", "请填写房间号"));
    }
    if req.labels.is_empty() || req.labels.len() > 50 {
        return Err(ApiError::invalid("labels", "一次可添加 1 到 50 张床位"));
    }
    let mut labels = Vec::with_capacity(req.labels.len());
    for l in &req.labels {
        let l = text("labels", "床号", Some(l), 10)?;
        if l.is_empty() {
            return Err(ApiError::invalid("labels", "床号不能为空"));
        }
        if labels.contains(&l) {
            return Err(ApiError::invalid("labels", format!("床号 {l} 重复")));
        }
        labels.push(l);
    }
    let opened = day(
        "opened_on",
        "启用日期",
        req.opened_on.as_deref(),
        crate::platform::today(),
    )?;
    let now = crate::platform::now_rfc3339();
    let mut ids = Vec::with_capacity(labels.len());
    let mut tx = db.begin().await?;
    for l in &labels {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO bed (id, org_id, building, floor, room, label, nursing, dementia, status, opened_on, \
             retired_on, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, NULL, $10, $10, 1)",
        )
        .bind(&id)
        .bind(org_id)
        .bind(&building)
        .bind(&floor)
        .bind(&room)
        .bind(l)
        .bind(req.nursing as i64)
        .bind(req.dementia as i64)
        .bind(ymd(opened))
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => ApiError::conflict(format!(
                "{} 已有在用床位，请换一个床号",
                place(&building, &floor, &room, l)
            )),
            e => e.into(),
        })?;
        ids.push(id);
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "bed.create",
            entity: "organisation",
            entity_id: Some(org_id),
            region_code: Some(&region),
            detail: serde_json::json!({"room": place(&building, &floor, &room, ""), "beds": labels.len(),
                "nursing": req.nursing})
            .to_string(),
        },
    )
    .await?;
    recount_place(&mut tx, &region).await?;
    tx.commit().await?;
    Ok(ids)
}

/// The bed and its organisation, inside the scope.
async fn bed_of(tx: &mut Tx<'_>, scope: &Scope, bed_id: &str) -> ApiResult<BedRow> {
    let r = sqlx::query(
        "SELECT b.org_id, o.region_code, b.status, b.nursing, b.building, b.floor, b.room, b.label \
         FROM bed b JOIN organisation o ON o.id = b.org_id WHERE b.id = $1",
    )
    .bind(bed_id)
    .fetch_optional(&mut **tx)
    .await?
    .filter(|r| scope.holds(&r.get::<String, _>(0), &r.get::<String, _>(1)))
    .ok_or_else(|| ApiError::not_found("未找到该床位（或不在您的管辖范围内）"))?;
    Ok(BedRow {
        org_id: r.get(0),
        region: r.get(1),
        open: r.get::<String, _>(2) == "open",
        place: place(
            &r.get::<String, _>(4),
            &r.get::<String, _>(5),
            &r.get::<String, _>(6),
            &r.get::<String, _>(7),
        ),
    })
}

struct BedRow {
    org_id: String,
    region: String,
    open: bool,
    place: String,
}

/// The last day a bed was released (a new stay may not start before it).
async fn bed_free_since(tx: &mut Tx<'_>, bed_id: &str) -> ApiResult<Option<String>> {
    Ok(
        sqlx::query("SELECT MAX(until_on) FROM bed_stay WHERE bed_id = $1")
            .bind(bed_id)
            .fetch_one(&mut **tx)
            .await?
            .get(0),
    )
}

/// Change a bed's kind or retire it; audited with the fields changed.
pub async fn change_bed(
    db: &Db,
    scope: &Scope,
    who: &Who,
    bed_id: &str,
    c: BedChange,
) -> ApiResult<()> {
    let today = crate::platform::today();
    // Checked whether or not the bed is retired by this request: a bad date is never let through.
    let retired_on = day("retired_on", "撤床日期", c.retired_on.as_deref(), today)?;
    let accepted_on = match c
        .accepted_on
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(a) => Some(day("accepted_on", "验收日期", Some(a), today)?),
        None => None,
    };
    let mut tx = db.begin().await?;
    let b = bed_of(&mut tx, scope, bed_id).await?;
    if !b.open {
        return Err(ApiError::conflict("该床位已撤销，不能再修改"));
    }
    let mut changed = vec![];
    if let Some(n) = c.nursing {
        sqlx::query("UPDATE bed SET nursing = $1 WHERE id = $2")
            .bind(n as i64)
            .bind(bed_id)
            .execute(&mut *tx)
            .await?;
        changed.push("nursing");
    }
    if let Some(d) = c.dementia {
        sqlx::query("UPDATE bed SET dementia = $1 WHERE id = $2")
            .bind(d as i64)
            .bind(bed_id)
            .execute(&mut *tx)
            .await?;
        changed.push("dementia");
    }
    if let Some(a) = accepted_on {
        sqlx::query("UPDATE bed SET accepted_on = $1 WHERE id = $2")
            .bind(ymd(a))
            .bind(bed_id)
            .execute(&mut *tx)
            .await?;
        changed.push("accepted_on");
    }
    match c.status.as_deref().map(str::trim) {
        None | Some("") | Some("open") => {}
        Some("retired") | Some("撤销") => {
            let on = retired_on;
            let taken: i64 = sqlx::query(
                "SELECT COUNT(*) FROM bed_stay WHERE bed_id = $1 AND (until_on IS NULL OR until_on > $2)",
            )
            .bind(bed_id)
            .bind(ymd(on))
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            if taken > 0 {
                return Err(ApiError::conflict(
                    "该床位有人入住，请先为其调床或办理退住再撤床",
                ));
            }
            sqlx::query("UPDATE bed SET status = 'retired', retired_on = $1 WHERE id = $2")
                .bind(ymd(on))
                .bind(bed_id)
                .execute(&mut *tx)
                .await?;
            changed.push("status");
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "状态只能改为 retired（撤销床位）",
            ));
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE bed SET updated_at = $1, version = version + 1 WHERE id = $2")
        .bind(crate::platform::now_rfc3339())
        .bind(bed_id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "bed.update",
            entity: "bed",
            entity_id: Some(bed_id),
            region_code: Some(&b.region),
            detail: serde_json::json!({"changed": changed, "bed": b.place}).to_string(),
        },
    )
    .await?;
    recount_place(&mut tx, &b.region).await?;
    tx.commit().await?;
    Ok(())
}

// ---- admissions --------------------------------------------------------------------------------

/// Who is admitted: by registry id inside `people` (the caller's individual scope, if any), or by
/// citizen ID and name together anywhere. One answer for "unknown", "elsewhere" and "name does
/// not match", so nobody learns who is registered where.
pub(crate) async fn find_elder(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    people: Option<&Scope>,
    req: &AdmitReq,
) -> ApiResult<(String, String, String)> {
    let not_found =
        || ApiError::not_found("未找到此人：请核对身份证号与姓名（须已在老年人档案中登记）");
    let row = if let Some(id) = req.elder_id.as_deref().filter(|s| !s.is_empty()) {
        let scope = people
            .ok_or_else(|| ApiError::forbidden("您的账号不能按档案选人，请填写身份证号和姓名"))?;
        sqlx::query("SELECT id, residence_region, status, name FROM elder WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?
            .filter(|r| scope.contains(&r.get::<String, _>(1)))
            .ok_or_else(not_found)?
    } else {
        let raw = req.citizen_id.as_deref().unwrap_or("").trim();
        let name = req.name.as_deref().unwrap_or("").trim();
        if raw.is_empty() || name.is_empty() {
            return Err(ApiError::invalid(
                "citizen_id",
                "请选择老年人，或填写身份证号和姓名",
            ));
        }
        let cid = yiyang_kernel::CitizenId::parse(raw, crate::platform::today())
            .map_err(|e| ApiError::invalid("citizen_id", format!("身份证号无效：{e}")))?;
        let bidx = keys.blind_index(crate::registry::store::CID_DOMAIN, cid.as_str());
        sqlx::query(
            "SELECT id, residence_region, status, name FROM elder WHERE citizen_id_bidx = $1",
        )
        .bind(bidx)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| r.get::<String, _>(3) == name)
        .ok_or_else(not_found)?
    };
    let status: String = row.get(2);
    match status.as_str() {
        "active" => Ok((row.get(0), row.get(1), row.get(3))),
        "deceased" => Err(ApiError::conflict("档案记载此人已死亡，不能办理入住")),
        _ => Err(ApiError::conflict(
            "档案记载此人已迁出本地，请先在档案中恢复后再办理入住",
        )),
    }
}

fn occupied_message(e: sqlx::Error, place: &str) -> ApiError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            let m = format!("{} {}", d.constraint().unwrap_or_default(), d.message());
            if m.contains("admission") {
                ApiError::conflict("此人已在一家机构入住，请先办理退住或调床")
            } else {
                ApiError::conflict(format!("{place} 已有人入住，请选择其他床位"))
            }
        }
        e => e.into(),
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Admitted {
    pub admission_id: String,
    pub elder_id: String,
    pub bed_place: String,
    pub admitted_on: String,
}

/// Admit an elder onto a vacant bed of the organisation; audited. Of two admissions to one bed at
/// once, exactly one is committed: the other meets the open-stay index and is told the bed is taken.
pub async fn admit(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    scope: &Scope,
    people: Option<&Scope>,
    who: &Who,
    org_id: &str,
    req: AdmitReq,
) -> ApiResult<Admitted> {
    let (elder_id, _, _) = find_elder(db, keys, people, &req).await?;
    admit_as(db, scope, who, org_id, req, elder_id, None).await
}

/// The person an application or a family bed names, found as an admission finds them.
pub(crate) async fn find_person(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    people: Option<&Scope>,
    elder_id: Option<String>,
    citizen_id: Option<String>,
    name: Option<String>,
) -> ApiResult<String> {
    let req = AdmitReq {
        elder_id,
        citizen_id,
        name,
        bed_id: String::new(),
        admitted_on: None,
        note: None,
    };
    Ok(find_elder(db, keys, people, &req).await?.0)
}

/// An admission of someone already found: by the form, or by accepting an offer (`offer`), the
/// only way onto a bed offered to someone in the queue while the offer runs.
pub(crate) async fn admit_as(
    db: &Db,
    scope: &Scope,
    who: &Who,
    org_id: &str,
    req: AdmitReq,
    elder_id: String,
    offer: Option<&str>,
) -> ApiResult<Admitted> {
    let (region, org_name) = residential_org(db, scope, org_id).await?;
    let today = crate::platform::today();
    let on = day("admitted_on", "入住日期", req.admitted_on.as_deref(), today)?;
    let note = text("note", "备注", req.note.as_deref(), 200)?;
    let mut tx = db.begin().await?;
    let b = bed_of(&mut tx, scope, &req.bed_id).await?;
    if b.org_id != org_id {
        return Err(ApiError::invalid("bed_id", "所选床位不属于本机构"));
    }
    if !b.open {
        return Err(ApiError::conflict(format!("{} 已撤销，不能入住", b.place)));
    }
    if let Some((held, until)) = offer::open_on_bed(&mut tx, &req.bed_id, today).await?
        && offer != Some(held.as_str())
    {
        return Err(ApiError::conflict(format!(
            "{} 已向轮候的老人发出入住邀请（{until} 前有效），请选择其他床位",
            b.place
        )));
    }
    if let Some(free) = bed_free_since(&mut tx, &req.bed_id).await?
        && ymd(on) < free
    {
        return Err(ApiError::invalid(
            "admitted_on",
            format!(
                "{} 在 {free} 之前有人入住，入住日期不能早于 {free}",
                b.place
            ),
        ));
    }
    let last: Option<String> =
        sqlx::query("SELECT MAX(discharged_on) FROM admission WHERE elder_id = $1")
            .bind(&elder_id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
    if let Some(last) = last
        && ymd(on) < last
    {
        return Err(ApiError::invalid(
            "admitted_on",
            format!("此人 {last} 才从上一家机构退住，入住日期不能早于该日"),
        ));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    sqlx::query(
        "INSERT INTO admission (id, org_id, elder_id, admitted_on, discharged_on, discharge_reason, note, \
         created_by, created_at, discharged_by, version) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6, $7, NULL, 1)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(&elder_id)
    .bind(ymd(on))
    .bind((!note.is_empty()).then_some(note))
    .bind(&who.actor_name)
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(|e| occupied_message(e, &b.place))?;
    open_stay(&mut tx, &id, &req.bed_id, on, &now)
        .await
        .map_err(|e| occupied_message(e, &b.place))?;
    if let Some(o) = offer {
        offer::accepted(&mut tx, o, &who.actor_name).await?;
    }
    queue::close_on_admission(&mut tx, &elder_id, &org_name).await?;
    recount_admission(&mut tx, &id).await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.create",
            entity: "admission",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail: serde_json::json!({"org_id": org_id, "elder_id": elder_id, "bed": b.place,
                "on": ymd(on)})
            .to_string(),
        },
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| occupied_message(e, &b.place))?;
    Ok(Admitted {
        admission_id: id,
        elder_id,
        bed_place: b.place,
        admitted_on: ymd(on),
    })
}

async fn open_stay(
    tx: &mut Tx<'_>,
    admission_id: &str,
    bed_id: &str,
    on: NaiveDate,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bed_stay (id, admission_id, bed_id, from_on, until_on, created_at) VALUES ($1, $2, $3, $4, NULL, $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(admission_id)
    .bind(bed_id)
    .bind(ymd(on))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An open admission inside the scope: (org, region, current stay id, its bed, since, leave since).
struct Open {
    org_id: String,
    region: String,
    admitted_on: String,
    stay_id: String,
    stay_from: String,
    leave: Option<(String, String)>,
}

async fn open_admission(tx: &mut Tx<'_>, scope: &Scope, id: &str) -> ApiResult<Open> {
    let r = sqlx::query(
        "SELECT a.org_id, o.region_code, a.admitted_on, a.discharged_on, s.id, s.from_on \
         FROM admission a JOIN organisation o ON o.id = a.org_id \
         LEFT JOIN bed_stay s ON s.admission_id = a.id AND s.until_on IS NULL WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .filter(|r| scope.holds(&r.get::<String, _>(0), &r.get::<String, _>(1)))
    .ok_or_else(|| ApiError::not_found("未找到该入住记录（或不在您的管辖范围内）"))?;
    if r.get::<Option<String>, _>(3).is_some() {
        return Err(ApiError::conflict("此人已经退住"));
    }
    let leave = sqlx::query(
        "SELECT id, from_on FROM admission_leave WHERE admission_id = $1 AND until_on IS NULL",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|l| (l.get(0), l.get(1)));
    Ok(Open {
        org_id: r.get(0),
        region: r.get(1),
        admitted_on: r.get(2),
        stay_id: r.get::<Option<String>, _>(4).unwrap_or_default(),
        stay_from: r.get::<Option<String>, _>(5).unwrap_or_default(),
        leave,
    })
}

fn not_before(field: &str, label: &str, on: NaiveDate, floor: &str, what: &str) -> ApiResult<()> {
    if ymd(on).as_str() < floor {
        return Err(ApiError::invalid(
            field,
            format!("{label}不能早于{what}（{floor}）"),
        ));
    }
    Ok(())
}

async fn log(
    tx: &mut Tx<'_>,
    who: &Who,
    action: &str,
    id: &str,
    region: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    audit::append(
        tx,
        who,
        Entry {
            action,
            entity: "admission",
            entity_id: Some(id),
            region_code: Some(region),
            detail: detail.to_string(),
        },
    )
    .await?;
    Ok(())
}

/// Move a resident to another vacant bed of the same organisation; the old stay ends that day.
pub async fn transfer(
    db: &Db,
    scope: &Scope,
    who: &Who,
    id: &str,
    req: TransferReq,
) -> ApiResult<()> {
    let on = day(
        "on",
        "调床日期",
        req.on.as_deref(),
        crate::platform::today(),
    )?;
    let mut tx = db.begin().await?;
    let a = open_admission(&mut tx, scope, id).await?;
    let b = bed_of(&mut tx, scope, &req.bed_id).await?;
    if b.org_id != a.org_id {
        return Err(ApiError::invalid(
            "bed_id",
            "只能调到本机构的床位；转往其他机构请办理退住后在新机构入住",
        ));
    }
    if !b.open {
        return Err(ApiError::conflict(format!("{} 已撤销", b.place)));
    }
    not_before("on", "调床日期", on, &a.stay_from, "本床入住日期")?;
    if let Some((_, until)) =
        offer::open_on_bed(&mut tx, &req.bed_id, crate::platform::today()).await?
    {
        return Err(ApiError::conflict(format!(
            "{} 已向轮候的老人发出入住邀请（{until} 前有效），请选择其他床位",
            b.place
        )));
    }
    if let Some(free) = bed_free_since(&mut tx, &req.bed_id).await?
        && ymd(on) < free
    {
        return Err(ApiError::invalid(
            "on",
            format!(
                "{} 在 {free} 之前有人入住，调床日期不能早于 {free}",
                b.place
            ),
        ));
    }
    sqlx::query("UPDATE bed_stay SET until_on = $1 WHERE id = $2")
        .bind(ymd(on))
        .bind(&a.stay_id)
        .execute(&mut *tx)
        .await?;
    let now = crate::platform::now_rfc3339();
    open_stay(&mut tx, id, &req.bed_id, on, &now)
        .await
        .map_err(|e| occupied_message(e, &b.place))?;
    log(
        &mut tx,
        who,
        "admission.transfer",
        id,
        &a.region,
        serde_json::json!({"bed": b.place, "on": ymd(on)}),
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| occupied_message(e, &b.place))?;
    Ok(())
}

/// A resident leaves for a while (hospital, home); the bed stays theirs.
pub async fn leave(db: &Db, scope: &Scope, who: &Who, id: &str, req: LeaveReq) -> ApiResult<()> {
    let kind = code_of(LEAVE_KINDS, &req.kind)
        .ok_or_else(|| ApiError::invalid("kind", "请假类型应为住院、回家探亲或其他"))?;
    let from = day(
        "from_on",
        "请假开始日期",
        req.from_on.as_deref(),
        crate::platform::today(),
    )?;
    let note = text("note", "备注", req.note.as_deref(), 200)?;
    let mut tx = db.begin().await?;
    let a = open_admission(&mut tx, scope, id).await?;
    if a.leave.is_some() {
        return Err(ApiError::conflict("此人正在请假中，请先销假"));
    }
    not_before("from_on", "请假开始日期", from, &a.admitted_on, "入住日期")?;
    let last: Option<String> =
        sqlx::query("SELECT MAX(until_on) FROM admission_leave WHERE admission_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
    if let Some(last) = last {
        not_before("from_on", "请假开始日期", from, &last, "上次销假日期")?;
    }
    sqlx::query(
        "INSERT INTO admission_leave (id, admission_id, kind, from_on, until_on, note, created_at) \
         VALUES ($1, $2, $3, $4, NULL, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(id)
    .bind(kind)
    .bind(ymd(from))
    .bind((!note.is_empty()).then_some(note))
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    log(
        &mut tx,
        who,
        "admission.leave",
        id,
        &a.region,
        serde_json::json!({"kind": kind, "from": ymd(from)}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The resident is back from leave.
pub async fn back(db: &Db, scope: &Scope, who: &Who, id: &str, req: ReturnReq) -> ApiResult<()> {
    let on = day(
        "on",
        "销假日期",
        req.on.as_deref(),
        crate::platform::today(),
    )?;
    let mut tx = db.begin().await?;
    let a = open_admission(&mut tx, scope, id).await?;
    let Some((leave_id, from)) = a.leave else {
        return Err(ApiError::conflict("此人没有在请假"));
    };
    not_before("on", "销假日期", on, &from, "请假开始日期")?;
    sqlx::query("UPDATE admission_leave SET until_on = $1 WHERE id = $2")
        .bind(ymd(on))
        .bind(&leave_id)
        .execute(&mut *tx)
        .await?;
    log(
        &mut tx,
        who,
        "admission.return",
        id,
        &a.region,
        serde_json::json!({"on": ymd(on)}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The resident leaves the organisation; the bed is free from that day.
pub async fn discharge(
    db: &Db,
    scope: &Scope,
    who: &Who,
    id: &str,
    req: DischargeReq,
) -> ApiResult<()> {
    let reason = code_of(DISCHARGE_REASONS, &req.reason).ok_or_else(|| {
        ApiError::invalid("reason", "退住原因应为死亡、转往其他机构、回家居住或其他")
    })?;
    let on = day(
        "on",
        "退住日期",
        req.on.as_deref(),
        crate::platform::today(),
    )?;
    let note = text("note", "备注", req.note.as_deref(), 200)?;
    let mut tx = db.begin().await?;
    let a = open_admission(&mut tx, scope, id).await?;
    not_before("on", "退住日期", on, &a.stay_from, "本床入住日期")?;
    if let Some((_, from)) = &a.leave {
        not_before("on", "退住日期", on, from, "请假开始日期")?;
    }
    close(
        &mut tx,
        id,
        &ymd(on),
        reason,
        (!note.is_empty()).then_some(note),
        &who.actor_name,
    )
    .await?;
    log(
        &mut tx,
        who,
        "admission.discharge",
        id,
        &a.region,
        serde_json::json!({"reason": reason, "on": ymd(on)}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Close an admission, its bed stay and its open leave on `on`.
async fn close(
    tx: &mut Tx<'_>,
    id: &str,
    on: &str,
    reason: &str,
    note: Option<String>,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE bed_stay SET until_on = $1 WHERE admission_id = $2 AND until_on IS NULL")
        .bind(on)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE admission_leave SET until_on = $1 WHERE admission_id = $2 AND until_on IS NULL",
    )
    .bind(on)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE admission SET discharged_on = $1, discharge_reason = $2, \
         note = COALESCE($3, note), discharged_by = $4, version = version + 1 WHERE id = $5",
    )
    .bind(on)
    .bind(reason)
    .bind(note)
    .bind(by)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    recount_admission(tx, id).await?;
    Ok(())
}

/// Called by the registry in the transaction that records a death: the resident is discharged
/// on the date of death (or the day their current bed stay began, if the death was recorded as
/// earlier). The registry's own audit row covers it. Returns whether someone was discharged.
pub async fn follow_registry(
    tx: &mut Tx<'_>,
    elder_id: &str,
    who: &Who,
) -> Result<bool, sqlx::Error> {
    family::follow_registry(tx, elder_id).await?;
    let r = sqlx::query(
        "SELECT a.id, s.from_on, e.death_date FROM admission a JOIN elder e ON e.id = a.elder_id \
         LEFT JOIN bed_stay s ON s.admission_id = a.id AND s.until_on IS NULL \
         WHERE a.elder_id = $1 AND a.discharged_on IS NULL AND e.status = 'deceased'",
    )
    .bind(elder_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = r else {
        return Ok(false);
    };
    let (id, from, death): (String, Option<String>, Option<String>) =
        (r.get(0), r.get(1), r.get(2));
    let today = ymd(crate::platform::today());
    let mut on = death.unwrap_or(today);
    if let Some(f) = from
        && on < f
    {
        on = f;
    }
    close(
        tx,
        &id,
        &on,
        "death",
        Some("档案登记死亡，自动退住".into()),
        &who.actor_name,
    )
    .await?;
    Ok(true)
}

/// One bed stay of a resident: from, until, bed id, nursing bed, the bed's place.
struct Stay(String, Option<String>, String, bool, String);

// ---- residents ---------------------------------------------------------------------------------

/// Current (or past) residents of an organisation, with their beds and history. A list of named
/// people: one audit row per request.
pub async fn residents(
    db: &Db,
    scope: &Scope,
    who: &Who,
    org_id: &str,
    q: &ResidentQuery,
) -> ApiResult<ResidentList> {
    let (_, region, _) = org_in_scope(db, scope, org_id).await?;
    let past = match q.state.as_deref().unwrap_or("current") {
        "current" | "" => false,
        "past" => true,
        _ => {
            return Err(ApiError::invalid(
                "state",
                "state 应为 current（在住）或 past（已退住）",
            ));
        }
    };
    let today = crate::platform::today();
    let filter = if past {
        "a.discharged_on IS NOT NULL"
    } else {
        "a.discharged_on IS NULL"
    };
    let sql = format!(
        "SELECT a.id, a.elder_id, e.name, e.citizen_id_masked, e.sex, e.birth_date, ab.level, ab.valid_until, \
         a.admitted_on, a.discharged_on, a.discharge_reason FROM admission a JOIN elder e ON e.id = a.elder_id \
         LEFT JOIN elder_ability ab ON ab.elder_id = a.elder_id \
         WHERE a.org_id = $1 AND {filter} ORDER BY a.admitted_on DESC, a.id LIMIT 2000"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .fetch_all(&db.pool)
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut stays: std::collections::HashMap<String, Vec<Stay>> = Default::default();
    let mut leaves: std::collections::HashMap<String, Vec<(String, String, Option<String>)>> =
        Default::default();
    for chunk in ids.chunks(500) {
        let ph = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT s.admission_id, s.from_on, s.until_on, b.id, b.nursing, b.building, b.floor, b.room, b.label \
             FROM bed_stay s JOIN bed b ON b.id = s.bed_id WHERE s.admission_id IN ({ph}) ORDER BY s.from_on, s.created_at"
        );
        let mut sq = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            sq = sq.bind(id.clone());
        }
        for r in sq.fetch_all(&db.pool).await? {
            stays.entry(r.get(0)).or_default().push(Stay(
                r.get(1),
                r.get(2),
                r.get(3),
                r.get::<i64, _>(4) != 0,
                place(
                    &r.get::<String, _>(5),
                    &r.get::<String, _>(6),
                    &r.get::<String, _>(7),
                    &r.get::<String, _>(8),
                ),
            ));
        }
        let sql = format!(
            "SELECT admission_id, kind, from_on, until_on FROM admission_leave WHERE admission_id IN ({ph}) ORDER BY from_on"
        );
        let mut lq = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            lq = lq.bind(id.clone());
        }
        for r in lq.fetch_all(&db.pool).await? {
            leaves
                .entry(r.get(0))
                .or_default()
                .push((r.get(1), r.get(2), r.get(3)));
        }
    }
    let today_s = ymd(today);
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.get(0);
        let birth: String = r.get(5);
        let age = NaiveDate::parse_from_str(&birth, "%Y-%m-%d")
            .map(|b| yiyang_kernel::citizen_id::age_on(b, today))
            .unwrap_or_default();
        let level: Option<i64> = r.get(6);
        let valid: Option<String> = r.get(7);
        let ability_level = level
            .filter(|_| valid.as_deref().is_some_and(|v| v >= today_s.as_str()))
            .and_then(|l| yiyang_kernel::assessment::LEVEL_NAMES.get(l as usize))
            .map(|s| s.to_string());
        let my_stays = stays.remove(&id).unwrap_or_default();
        let my_leaves = leaves.remove(&id).unwrap_or_default();
        let current = my_stays.iter().find(|s| s.1.is_none());
        let open_leave = my_leaves.iter().find(|l| l.2.is_none());
        let mut history: Vec<(String, String)> = vec![];
        for (i, Stay(from, _, _, _, p)) in my_stays.iter().enumerate() {
            let verb = if i == 0 { "入住" } else { "调至" };
            history.push((from.clone(), format!("{from} {verb} {p}")));
        }
        for (kind, from, until) in &my_leaves {
            let k = zh(LEAVE_KINDS, kind);
            history.push((
                from.clone(),
                match until {
                    Some(u) => format!("{from} 请假（{k}），{u} 销假"),
                    None => format!("{from} 请假（{k}），尚未销假"),
                },
            ));
        }
        let discharged_on: Option<String> = r.get(9);
        let reason: Option<String> = r.get(10);
        if let Some(d) = &discharged_on {
            history.push((
                d.clone(),
                format!(
                    "{d} 退住（{}）",
                    zh(DISCHARGE_REASONS, reason.as_deref().unwrap_or(""))
                ),
            ));
        }
        history.sort_by(|a, b| a.0.cmp(&b.0));
        items.push(Resident {
            admission_id: id.clone(),
            elder_id: r.get(1),
            name: r.get(2),
            citizen_id_masked: r.get(3),
            sex: match r.get::<String, _>(4).as_str() {
                "M" | "男" => "男".into(),
                "F" | "女" => "女".into(),
                s => s.to_string(),
            },
            age,
            ability_level,
            admitted_on: r.get(8),
            bed_id: current.map(|s| s.2.clone()),
            bed_place: current.map(|s| s.4.clone()),
            nursing_bed: current.is_some_and(|s| s.3),
            on_leave: open_leave.map(|l| zh(LEAVE_KINDS, &l.0).to_string()),
            leave_since: open_leave.map(|l| l.1.clone()),
            discharged_on,
            discharge_reason: reason.map(|c| zh(DISCHARGE_REASONS, &c).to_string()),
            history: history.into_iter().map(|h| h.1).collect(),
        });
    }
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.list",
            entity: "organisation",
            entity_id: Some(org_id),
            region_code: Some(&region),
            detail: serde_json::json!({"state": if past { "past" } else { "current" }, "rows": items.len()})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ResidentList {
        total: items.len() as i64,
        items,
    })
}

// ---- staffing ----

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Staffing {
    /// 在住老人中不能自理（中度失能及以上，有效评估）
    pub dependent_residents: i64,
    pub other_residents: i64,
    pub beds: i64,
    /// 在职养老护理员
    pub caregivers: i64,
    /// 其中持证
    pub certified_caregivers: i64,
    pub caregivers_needed: i64,
    pub social_workers: i64,
    pub social_workers_needed: i64,
    /// 达标与否，逐条说明
    pub checks: Vec<StaffingCheck>,
    /// 60 天内到期或已过期的证书
    pub expiring: Vec<Expiring>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StaffingCheck {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Expiring {
    pub staff_id: String,
    pub name: String,
    pub role_name: String,
    pub expires_on: String,
    /// 已过期
    pub expired: bool,
}

/// The home's staff against its residents and beds today.
pub async fn staffing(db: &Db, scope: &Scope, org_id: &str) -> ApiResult<Staffing> {
    use yiyang_kernel::staffing::{self as rule, Counts};
    org_in_scope(db, scope, org_id).await?;
    let today = crate::platform::today();
    let today_s = ymd(today);
    let r = sqlx::query(
        "SELECT \
         (SELECT COUNT(*) FROM admission a JOIN elder_ability ab ON ab.elder_id = a.elder_id \
           WHERE a.org_id = $1 AND a.discharged_on IS NULL AND ab.level >= $2 AND ab.valid_until >= $3), \
         (SELECT COUNT(*) FROM admission a WHERE a.org_id = $1 AND a.discharged_on IS NULL), \
         (SELECT COUNT(*) FROM bed WHERE org_id = $1 AND status = 'open'), \
         (SELECT COUNT(*) FROM staff WHERE org_id = $1 AND role = 'caregiver' AND (left_on IS NULL OR left_on > $3)), \
         (SELECT COUNT(*) FROM staff WHERE org_id = $1 AND role = 'caregiver' AND (left_on IS NULL OR left_on > $3) \
           AND certificate_no IS NOT NULL AND (certificate_expires_on IS NULL OR certificate_expires_on >= $3)), \
         (SELECT COUNT(*) FROM staff WHERE org_id = $1 AND role = 'social_worker' AND (left_on IS NULL OR left_on > $3))",
    )
    .bind(org_id)
    .bind(rule::DEPENDENT_LEVEL)
    .bind(&today_s)
    .fetch_one(&db.pool)
    .await?;
    let dependent: i64 = r.get(0);
    let residents: i64 = r.get(1);
    let c = Counts {
        dependent_residents: dependent,
        other_residents: residents - dependent,
        beds: r.get(2),
        caregivers: r.get(3),
        social_workers: r.get(5),
    };
    let soon = ymd(today + chrono::Duration::days(rule::EXPIRY_WARNING_DAYS));
    let expiring = sqlx::query(
        "SELECT id, name, role, certificate_expires_on FROM staff WHERE org_id = $1 \
         AND (left_on IS NULL OR left_on > $2) AND certificate_expires_on IS NOT NULL AND certificate_expires_on <= $3 \
         ORDER BY certificate_expires_on, name",
    )
    .bind(org_id)
    .bind(&today_s)
    .bind(&soon)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        let e: String = r.get(3);
        Expiring {
            staff_id: r.get(0),
            name: r.get(1),
            role_name: crate::org::staff::ROLES
                .iter()
                .find(|x| x.0 == r.get::<String, _>(2))
                .map_or("", |x| x.1)
                .to_string(),
            expired: e < today_s,
            expires_on: e,
        }
    })
    .collect::<Vec<_>>();
    let mut checks: Vec<StaffingCheck> = rule::check(&c)
        .into_iter()
        .map(|x| StaffingCheck {
            ok: x.ok,
            text: x.text,
        })
        .collect();
    if !expiring.is_empty() {
        checks.push(StaffingCheck {
            ok: false,
            text: format!(
                "{} 人的证书已过期或将在 {} 天内到期",
                expiring.len(),
                rule::EXPIRY_WARNING_DAYS
            ),
        });
    }
    Ok(Staffing {
        dependent_residents: c.dependent_residents,
        other_residents: c.other_residents,
        beds: c.beds,
        caregivers: c.caregivers,
        certified_caregivers: r.get(4),
        caregivers_needed: rule::caregivers_needed(&c),
        social_workers: c.social_workers,
        social_workers_needed: rule::social_workers_needed(&c),
        checks,
        expiring,
    })
}

// ---- occupancy ---------------------------------------------------------------------------------

/// Days of [from, until) inside [lo, hi), all as YYYY-MM-DD (an open `until` runs to `hi`).
pub fn overlap_days(from: &str, until: Option<&str>, lo: NaiveDate, hi: NaiveDate) -> i64 {
    let Ok(f) = NaiveDate::parse_from_str(from, "%Y-%m-%d") else {
        return 0;
    };
    let u = until
        .and_then(|u| NaiveDate::parse_from_str(u, "%Y-%m-%d").ok())
        .unwrap_or(hi);
    let (a, b) = (f.max(lo), u.min(hi));
    (b - a).num_days().max(0)
}

/// The month's first day and the day after the last counted (today + 1 for the current month).
pub fn month_window(
    month: Option<&str>,
    today: NaiveDate,
) -> ApiResult<(String, NaiveDate, NaiveDate)> {
    let m = month.map(str::trim).filter(|s| !s.is_empty());
    let first = match m {
        None => today.with_day(1).unwrap_or(today),
        Some(m) => (m.len() == 7)
            .then(|| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok())
            .flatten()
            .ok_or_else(|| ApiError::invalid("month", "月份应为 YYYY-MM 格式"))?,
    };
    if first > today {
        return Err(ApiError::invalid("month", "月份不能晚于本月"));
    }
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    let end = next.min(today + chrono::Duration::days(1));
    Ok((first.format("%Y-%m").to_string(), first, end))
}

/// Bed-days, occupied days and leave days of one organisation in a month, from the records.
pub async fn occupancy(
    db: &Db,
    scope: &Scope,
    org_id: &str,
    q: &MonthQuery,
) -> ApiResult<MonthOccupancy> {
    org_in_scope(db, scope, org_id).await?;
    let (month, lo, hi) = month_window(q.month.as_deref(), crate::platform::today())?;
    let (lo_s, hi_s) = (ymd(lo), ymd(hi));
    let mut bed_days = 0;
    for r in sqlx::query(
        "SELECT opened_on, retired_on FROM bed WHERE org_id = $1 AND opened_on < $2 AND (retired_on IS NULL OR retired_on > $3)",
    )
    .bind(org_id)
    .bind(&hi_s)
    .bind(&lo_s)
    .fetch_all(&db.pool)
    .await?
    {
        bed_days += overlap_days(&r.get::<String, _>(0), r.get::<Option<String>, _>(1).as_deref(), lo, hi);
    }
    let mut occupied_days = 0;
    for r in sqlx::query(
        "SELECT s.from_on, s.until_on FROM bed_stay s JOIN bed b ON b.id = s.bed_id \
         WHERE b.org_id = $1 AND s.from_on < $2 AND (s.until_on IS NULL OR s.until_on > $3)",
    )
    .bind(org_id)
    .bind(&hi_s)
    .bind(&lo_s)
    .fetch_all(&db.pool)
    .await?
    {
        occupied_days += overlap_days(
            &r.get::<String, _>(0),
            r.get::<Option<String>, _>(1).as_deref(),
            lo,
            hi,
        );
    }
    let mut leave_days = 0;
    for r in sqlx::query(
        "SELECT l.from_on, l.until_on FROM admission_leave l JOIN admission a ON a.id = l.admission_id \
         WHERE a.org_id = $1 AND l.from_on < $2 AND (l.until_on IS NULL OR l.until_on > $3)",
    )
    .bind(org_id)
    .bind(&hi_s)
    .bind(&lo_s)
    .fetch_all(&db.pool)
    .await?
    {
        leave_days += overlap_days(&r.get::<String, _>(0), r.get::<Option<String>, _>(1).as_deref(), lo, hi);
    }
    let counts = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM admission WHERE org_id = $1 AND admitted_on >= $2 AND admitted_on < $3), \
         (SELECT COUNT(*) FROM admission WHERE org_id = $1 AND discharged_on >= $2 AND discharged_on < $3)",
    )
    .bind(org_id)
    .bind(&lo_s)
    .bind(&hi_s)
    .fetch_one(&db.pool)
    .await?;
    Ok(MonthOccupancy {
        month,
        days: (hi - lo).num_days(),
        bed_days,
        occupied_days,
        leave_days,
        rate: if bed_days > 0 {
            (occupied_days as f64 / bed_days as f64 * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        admissions: counts.get(0),
        discharges: counts.get(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn bed_days_count_the_first_day_and_not_the_last() {
        let (lo, hi) = (d("2026-11-01"), d("2026-12-01"));
        assert_eq!(overlap_days("2026-11-01", None, lo, hi), 30);
        assert_eq!(overlap_days("2026-10-15", Some("2026-11-03"), lo, hi), 2);
        assert_eq!(overlap_days("2026-11-10", Some("2026-11-10"), lo, hi), 0);
        assert_eq!(overlap_days("2026-12-01", None, lo, hi), 0);
        assert_eq!(overlap_days("2026-09-01", Some("2026-10-31"), lo, hi), 0);
        assert_eq!(overlap_days("2026-11-30", None, lo, hi), 1);
    }

    #[test]
    fn the_current_month_counts_up_to_today() {
        let today = d("2026-12-06");
        let (m, lo, hi) = month_window(None, today).unwrap();
        assert_eq!(
            (m.as_str(), lo, hi),
            ("2026-12", d("2026-12-01"), d("2026-12-07"))
        );
        let (_, lo, hi) = month_window(Some("2026-02"), today).unwrap();
        assert_eq!((hi - lo).num_days(), 28);
        assert!(month_window(Some("2027-01"), today).is_err());
        assert!(month_window(Some("2026-13"), today).is_err());
        assert!(month_window(Some("26-1"), today).is_err());
    }

    #[test]
    fn places_read_as_people_say_them() {
        assert_eq!(place("1", "3", "302", "2"), "1号楼 3层 302室 2床");
        assert_eq!(place("", "", "102", "A"), "102室 A");
        assert_eq!(place("东楼", "2", "阳光房", "1"), "东楼 2层 阳光房 1床");
    }
}

//! emergency — 紧急呼叫: the call devices installed in elders' homes, their messages over MQTT
//! and HTTP ([`ingest`], [`mqtt`]), the events operators handle on a live board ([`http`]), and
//! the 12349 calls they enter. The rules (what a message may say, the steps, the clocks) are in
//! the kernel's `emergency`.

pub mod batch;
pub mod demo;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod mqtt;
pub mod sla;

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::emergency::{self as rule, Action, EventType, State};

pub use ingest::Hub;

pub const MIGRATION: &[Stmt] = &[
    // A vendor's gateway posting its devices' messages over HTTP: its bearer token, hashed.
    Both(
        "CREATE TABLE device_gateway (id TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT NOT NULL, \
         created_at TEXT NOT NULL, rotated_at TEXT, CONSTRAINT device_gateway_token_key UNIQUE (token_hash))",
    ),
    // Times of life as milliseconds since 1970 (the clocks' arithmetic).
    Both(
        "CREATE TABLE device (id TEXT PRIMARY KEY, serial TEXT NOT NULL, kind TEXT NOT NULL, vendor TEXT NOT NULL, \
         elder_id TEXT REFERENCES elder (id), region_code TEXT NOT NULL, gateway_id TEXT REFERENCES device_gateway (id), \
         installed_on TEXT NOT NULL, monthly_fee_fen BIGINT NOT NULL, fee_payer TEXT NOT NULL, silent_hours BIGINT NOT NULL, \
         last_heartbeat BIGINT, battery BIGINT, state TEXT NOT NULL, created_at TEXT NOT NULL, \
         CONSTRAINT device_serial_key UNIQUE (serial))",
    ),
    Both("CREATE INDEX device_elder ON device (elder_id)"),
    Both("CREATE INDEX device_region ON device (region_code)"),
    // One row per alarm or call; a device's event id makes a message sent twice one event.
    Both(
        "CREATE TABLE emergency_event (id TEXT PRIMARY KEY, device_id TEXT REFERENCES device (id), event_id TEXT, \
         kind TEXT NOT NULL, source TEXT NOT NULL, priority BIGINT NOT NULL, elder_id TEXT REFERENCES elder (id), \
         region_code TEXT NOT NULL, occurred_at TEXT NOT NULL, received_at BIGINT NOT NULL, lat DOUBLE, lng DOUBLE, \
         caller_phone_masked TEXT, state TEXT NOT NULL, escalation TEXT, escalated_at BIGINT, acknowledged_at BIGINT, acknowledged_by TEXT, triage TEXT, \
         dispatched_to TEXT, on_scene_at BIGINT, closed_at BIGINT, outcome TEXT, note TEXT, \
         duplicate_count BIGINT NOT NULL DEFAULT 0, version BIGINT NOT NULL, \
         CONSTRAINT emergency_event_device_key UNIQUE (device_id, event_id))",
    ),
    Both("CREATE INDEX emergency_event_state ON emergency_event (state, received_at)"),
    Both("CREATE INDEX emergency_event_received ON emergency_event (received_at)"),
    Both("CREATE INDEX emergency_event_elder ON emergency_event (elder_id, received_at)"),
    // Every step, under the id its sender gave it: sent twice, done once.
    Both(
        "CREATE TABLE emergency_event_step (id TEXT PRIMARY KEY, event_id TEXT NOT NULL REFERENCES emergency_event (id), \
         action TEXT NOT NULL, at BIGINT NOT NULL, actor TEXT NOT NULL, detail TEXT)",
    ),
    Both("CREATE INDEX emergency_event_step_event ON emergency_event_step (event_id)"),
    // Messages that made no event: an unknown serial, a malformed payload (kept for the vendor).
    Both(
        "CREATE TABLE device_reject (id TEXT PRIMARY KEY, serial TEXT, source TEXT NOT NULL, reason TEXT NOT NULL, \
         payload TEXT NOT NULL, received_at BIGINT NOT NULL)",
    ),
    Both("CREATE INDEX device_reject_received ON device_reject (received_at)"),
    // A device's maintenance task (silent past its allowance), open until it is heard from again.
    Both(
        "CREATE TABLE device_task (id TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES device (id), kind TEXT NOT NULL, \
         opened_at BIGINT NOT NULL, closed_at BIGINT, note TEXT)",
    ),
    Both("CREATE INDEX device_task_device ON device_task (device_id, closed_at)"),
    // A region's clocks (接警 and 到场 within so many seconds), for its subtree; none: 60 s / 30 min.
    Both(
        "CREATE TABLE emergency_sla (region_code TEXT PRIMARY KEY, ack_secs BIGINT NOT NULL, on_scene_secs BIGINT NOT NULL, \
         updated_by TEXT NOT NULL, updated_at TEXT NOT NULL)",
    ),
];

/// China Standard Time (UTC+8), in which times are shown.
pub fn china() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8")
}

/// The events not yet closed, as the index on (state, received_at) can find them (`<> 'closed'`
/// would read every event of every year).
pub(crate) const OPEN: &str =
    "e.state IN ('received', 'acknowledged', 'triaged', 'dispatched', 'on_scene')";

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Milliseconds since 1970 as China time, to the second.
pub fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&china())
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}

/// An event as the board lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BoardEvent {
    pub id: String,
    /// sos / fall / smoke / gas / door / call
    pub kind: String,
    pub kind_zh: String,
    /// 1 most urgent
    pub priority: i64,
    pub state: String,
    pub state_zh: String,
    pub source: String,
    pub serial: Option<String>,
    pub elder_id: Option<String>,
    /// Masked unless the reader may see names
    pub elder_name: Option<String>,
    pub region_code: String,
    pub region_name: String,
    /// When the device says it happened
    pub occurred_at: String,
    pub received_at: String,
    pub acknowledged_at: Option<String>,
    pub on_scene_at: Option<String>,
    pub closed_at: Option<String>,
    pub triage: Option<String>,
    pub triage_zh: Option<String>,
    /// Whom help was sent to, in Chinese, in order
    pub dispatched_to: Vec<String>,
    pub outcome: Option<String>,
    pub duplicate_count: i64,
    /// The clock breached now: ack (超时未接警) or on_scene (超时未到场)
    pub breach: Option<String>,
    pub breach_zh: Option<String>,
    /// When the supervisor was told of the breach
    pub escalated_at: Option<String>,
    /// The region's clocks: acknowledged within, someone on scene within (seconds)
    pub ack_due_secs: i64,
    pub on_scene_due_secs: i64,
    /// Seconds since it arrived
    pub age_secs: i64,
}

const BOARD_COLS: &str = "e.id, e.kind, e.priority, e.state, e.source, d.serial, e.elder_id, el.name, e.region_code, \
     e.occurred_at, e.received_at, e.acknowledged_at, e.on_scene_at, e.closed_at, e.triage, e.dispatched_to, e.outcome, \
     e.duplicate_count, e.escalation, e.escalated_at";
const BOARD_FROM: &str = "FROM emergency_event e LEFT JOIN device d ON d.id = e.device_id \
     LEFT JOIN elder el ON el.id = e.elder_id";

#[derive(Debug, Clone)]
pub struct Raw {
    pub id: String,
    pub kind: String,
    pub priority: i64,
    pub state: String,
    pub source: String,
    pub serial: Option<String>,
    pub elder_id: Option<String>,
    pub elder_name: Option<String>,
    pub region_code: String,
    pub occurred_at: String,
    pub received_at: i64,
    pub acknowledged_at: Option<i64>,
    pub on_scene_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub triage: Option<String>,
    pub dispatched_to: Option<String>,
    pub outcome: Option<String>,
    pub duplicate_count: i64,
    /// The clock breached when the supervisor was told (ack / on_scene)
    pub escalation: Option<String>,
    pub escalated_at: Option<i64>,
}

fn raw(r: &sqlx::any::AnyRow) -> Raw {
    Raw {
        id: r.get(0),
        kind: r.get(1),
        priority: r.get(2),
        state: r.get(3),
        source: r.get(4),
        serial: r.get(5),
        elder_id: r.get(6),
        elder_name: r.get(7),
        region_code: r.get(8),
        occurred_at: r.get(9),
        received_at: r.get(10),
        acknowledged_at: r.get(11),
        on_scene_at: r.get(12),
        closed_at: r.get(13),
        triage: r.get(14),
        dispatched_to: r.get(15),
        outcome: r.get(16),
        duplicate_count: r.get(17),
        escalation: r.get(18),
        escalated_at: r.get(19),
    }
}

impl Raw {
    pub(crate) fn view(
        &self,
        names: bool,
        region_name: String,
        now: i64,
        sla: rule::Sla,
    ) -> BoardEvent {
        let kind = EventType::parse(&self.kind);
        let state = State::parse(&self.state).unwrap_or(State::Received);
        let breach = rule::breach(
            state,
            self.received_at / 1000,
            self.acknowledged_at.map(|t| t / 1000),
            self.on_scene_at.map(|t| t / 1000),
            now / 1000,
            sla,
        );
        BoardEvent {
            id: self.id.clone(),
            kind: self.kind.clone(),
            kind_zh: kind.map_or("", |k| k.zh()).to_string(),
            priority: self.priority,
            state: self.state.clone(),
            state_zh: state.zh().into(),
            source: self.source.clone(),
            serial: self.serial.clone(),
            elder_id: self.elder_id.clone(),
            elder_name: self.elder_name.as_ref().map(|n| {
                if names {
                    n.clone()
                } else {
                    yiyang_kernel::mask::name(n)
                }
            }),
            region_code: self.region_code.clone(),
            region_name,
            occurred_at: self.occurred_at.clone(),
            received_at: ms_text(self.received_at),
            acknowledged_at: self.acknowledged_at.map(ms_text),
            on_scene_at: self.on_scene_at.map(ms_text),
            closed_at: self.closed_at.map(ms_text),
            triage_zh: self
                .triage
                .as_deref()
                .and_then(rule::triage_zh)
                .map(str::to_string),
            triage: self.triage.clone(),
            dispatched_to: self
                .dispatched_to
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter_map(rule::dispatch_zh)
                .map(str::to_string)
                .collect(),
            outcome: self.outcome.clone(),
            duplicate_count: self.duplicate_count,
            breach_zh: breach.map(|b| b.zh().to_string()),
            breach: breach.map(|b| b.as_str().to_string()),
            escalated_at: self.escalated_at.map(ms_text),
            ack_due_secs: sla.ack_secs,
            on_scene_due_secs: sla.on_scene_secs,
            age_secs: ((now - self.received_at) / 1000).max(0),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only events not yet closed (the board); default true
    pub open: Option<bool>,
    /// Events received at or after this time (RFC 3339)
    pub since: Option<String>,
    /// At most this many, newest first (default 200, at most 1000)
    pub limit: Option<i64>,
}

/// Parses an RFC 3339 time (or a day) to milliseconds since 1970.
pub fn parse_since(field: &str, v: &str) -> ApiResult<i64> {
    let v = v.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let t = d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(china()).single());
        if let Some(t) = t {
            return Ok(t.timestamp_millis());
        }
    }
    Err(ApiError::invalid(
        field,
        "时间应为 RFC 3339 格式（如 2026-12-07T08:00:00+08:00）或日期 YYYY-MM-DD",
    ))
}

/// The events of the caller's area: the open ones most urgent first (then newest), or all since
/// a time, newest first.
pub async fn list(
    db: &Db,
    hub: &Hub,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    q: &EventQuery,
    names: bool,
) -> ApiResult<Vec<BoardEvent>> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit 应在 1 到 1000 之间"));
    }
    let since = match &q.since {
        Some(s) => parse_since("since", s)?,
        None => 0,
    };
    let open = q.open.unwrap_or(true);
    let (filter, order) = if open {
        (OPEN, "e.priority, e.received_at DESC")
    } else {
        ("1 = 1", "e.received_at DESC")
    };
    let sql = format!(
        "SELECT {BOARD_COLS} {BOARD_FROM} WHERE {filter} AND e.received_at >= $1 \
         AND e.region_code >= $2 AND e.region_code <= $3 ORDER BY {order} LIMIT {limit}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .bind(&scope.lo)
        .bind(&scope.hi)
        .fetch_all(&db.pool)
        .await?;
    let now = now_ms();
    Ok(rows
        .iter()
        .map(|r| {
            let r = raw(r);
            let name = regions.path_name(&r.region_code);
            r.view(names, name, now, hub.sla(&r.region_code))
        })
        .collect())
}

pub(crate) async fn read(db: &Db, id: &str) -> ApiResult<Option<Raw>> {
    let sql = format!("SELECT {BOARD_COLS} {BOARD_FROM} WHERE e.id = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .as_ref()
        .map(raw))
}

async fn read_in_scope(db: &Db, scope: &Scope, id: &str) -> ApiResult<Raw> {
    read(db, id)
        .await?
        .filter(|r| scope.contains(&r.region_code))
        .ok_or_else(|| ApiError::not_found("未找到该事件（或不在您的管辖范围内）"))
}

/// An operator's step on an event, under the id her page made for it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepReq {
    /// The step's own id (a UUID the page makes): sent again, done once
    pub id: String,
    /// acknowledge / triage / dispatch / on_scene / close
    pub action: String,
    /// For triage: false_alarm / needs_help / medical / fire
    pub triage: Option<String>,
    /// For dispatch: family / village_worker / provider / emergency_120 / emergency_119 / police_110
    pub to: Option<String>,
    /// For close: what happened (required); otherwise a note
    pub note: Option<String>,
}

/// The detail of an event: the board's row, the steps taken, and the elder's card.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventDetail {
    pub event: BoardEvent,
    pub steps: Vec<StepView>,
    pub elder: Option<ElderCard>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepView {
    pub action: String,
    pub action_zh: String,
    pub at: String,
    pub actor: String,
    pub detail: Option<String>,
}

/// What an operator needs to help: who, where, how to reach, how able, what happened before.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ElderCard {
    pub id: String,
    pub name: String,
    pub citizen_id_masked: String,
    pub age: i64,
    pub sex_zh: String,
    pub address: Option<String>,
    pub region_name: String,
    pub phone_masked: Option<String>,
    pub living_status_zh: Option<String>,
    pub ability_level_zh: Option<String>,
    pub devices: Vec<DeviceView>,
    /// The elder's last events before this one
    pub recent: Vec<BoardEvent>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub serial: String,
    pub kind: String,
    pub kind_zh: String,
    pub vendor: String,
    /// Masked
    pub elder_citizen_id_masked: Option<String>,
    pub region_code: String,
    pub installed_on: String,
    pub last_heartbeat: Option<String>,
    pub battery: Option<i64>,
    /// active / silent (no sign of life past its allowance) / retired
    pub status: String,
    pub status_zh: String,
}

fn action_zh(a: &str) -> &'static str {
    match a {
        "acknowledge" => "接警",
        "triage" => "研判",
        "dispatch" => "派出",
        "on_scene" => "到场",
        "close" => "结案",
        "call" => "来电登记",
        "visit" => "探访发现紧急情况",
        "escalate" => "超时督办",
        _ => "处置",
    }
}

pub async fn detail(
    db: &Db,
    hub: &Hub,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    id: &str,
    names: bool,
) -> ApiResult<EventDetail> {
    let r = read_in_scope(db, scope, id).await?;
    let now = now_ms();
    let steps = sqlx::query(
        "SELECT action, at, actor, detail FROM emergency_event_step WHERE event_id = $1 ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|s| {
        let a: String = s.get(0);
        StepView {
            action_zh: action_zh(&a).into(),
            action: a,
            at: ms_text(s.get(1)),
            actor: s.get(2),
            detail: s.get(3),
        }
    })
    .collect();
    let elder = match (&r.elder_id, names) {
        (Some(e), true) => Some(card(db, hub, regions, e, &r.id, now).await?),
        _ => None,
    };
    let region_name = regions.path_name(&r.region_code);
    Ok(EventDetail {
        event: r.view(names, region_name, now, hub.sla(&r.region_code)),
        steps,
        elder,
    })
}

async fn card(
    db: &Db,
    hub: &Hub,
    regions: &crate::region::RegionIndex,
    elder: &str,
    event: &str,
    now: i64,
) -> ApiResult<ElderCard> {
    let e = sqlx::query(
        "SELECT e.name, e.citizen_id_masked, e.birth_date, e.sex, e.address, e.residence_region, e.phone_masked, \
         e.living_status, a.level FROM elder e LEFT JOIN elder_ability a ON a.elder_id = e.id WHERE e.id = $1",
    )
    .bind(elder)
    .fetch_one(&db.pool)
    .await?;
    let code = |list: &[(&str, &'static str)], v: Option<String>| {
        v.and_then(|v| list.iter().find(|x| x.0 == v).map(|x| x.1.to_string()))
    };
    use yiyang_kernel::codes;
    let birth: String = e.get(2);
    let today = crate::platform::today();
    let age = chrono::NaiveDate::parse_from_str(&birth, "%Y-%m-%d")
        .ok()
        .and_then(|b| today.years_since(b))
        .unwrap_or(0) as i64;
    let devices = devices_where(db, "d.elder_id = $1", elder, now).await?;
    let recent_sql = format!(
        "SELECT {BOARD_COLS} {BOARD_FROM} WHERE e.elder_id = $1 AND e.id <> $2 ORDER BY e.received_at DESC LIMIT 5"
    );
    let recent = sqlx::query(sqlx::AssertSqlSafe(recent_sql))
        .bind(elder)
        .bind(event)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| {
            let r = raw(r);
            let n = regions.path_name(&r.region_code);
            r.view(true, n, now, hub.sla(&r.region_code))
        })
        .collect();
    let region: String = e.get(5);
    Ok(ElderCard {
        id: elder.to_string(),
        name: e.get(0),
        citizen_id_masked: e.get(1),
        age,
        sex_zh: e.get(3),
        address: e.get(4),
        region_name: regions.path_name(&region),
        phone_masked: e.get(6),
        living_status_zh: code(codes::LIVING_STATUS, e.get(7)),
        ability_level_zh: e
            .get::<Option<i64>, _>(8)
            .and_then(|l| yiyang_kernel::assessment::LEVEL_NAMES.get(l as usize))
            .map(|s| s.to_string()),
        devices,
        recent,
    })
}

async fn devices_where(db: &Db, filter: &str, arg: &str, now: i64) -> ApiResult<Vec<DeviceView>> {
    let sql = format!(
        "SELECT {} FROM device d LEFT JOIN elder e ON e.id = d.elder_id WHERE {filter} ORDER BY d.serial",
        fleet::COLS
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(arg)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| device_view(r, now))
        .collect())
}

/// Whether a device is silent at `now_ms`: past its allowance (`hours`) since its last sign of
/// life, or since the day it was installed (`YYYY-MM-DD`) when it never sent one.
pub(crate) fn silent_now(
    installed_on: &str,
    last_ms: Option<i64>,
    hours: i64,
    now_ms: i64,
) -> bool {
    let installed = chrono::NaiveDate::parse_from_str(installed_on, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp());
    rule::silent(last_ms.map(|t| t / 1000), installed, hours, now_ms / 1000)
}

pub(crate) fn device_view(r: &sqlx::any::AnyRow, now: i64) -> DeviceView {
    let kind: String = r.get(1);
    let installed: String = r.get(5);
    let last: Option<i64> = r.get(6);
    let state: String = r.get(8);
    let status = if state != "active" {
        state
    } else if silent_now(&installed, last, r.get(9), now) {
        "silent".to_string()
    } else {
        "active".to_string()
    };
    DeviceView {
        serial: r.get(0),
        kind_zh: rule::device_kind_zh(&kind).unwrap_or("").into(),
        kind,
        vendor: r.get(2),
        elder_citizen_id_masked: r.get(3),
        region_code: r.get(4),
        installed_on: installed,
        last_heartbeat: last.map(ms_text),
        battery: r.get(7),
        status_zh: match status.as_str() {
            "active" => "正常",
            "silent" => "失联",
            _ => "已停用",
        }
        .into(),
        status,
    }
}

fn trimmed(v: Option<&str>, max: usize, field: &str) -> ApiResult<Option<String>> {
    let v = v.map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = v
        && s.chars().count() > max
    {
        return Err(ApiError::invalid(field, format!("最多 {max} 个字")));
    }
    Ok(v.map(str::to_string))
}

/// A step on an event: checked against its state, written with its step row and an audit entry
/// in one transaction. The same step id sent again answers the event as it is.
pub async fn step(
    db: &Db,
    hub: &Hub,
    scope: &Scope,
    who: &Who,
    id: &str,
    s: StepReq,
) -> ApiResult<Raw> {
    if uuid::Uuid::parse_str(&s.id).is_err() {
        return Err(ApiError::invalid("id", "步骤编号应为 UUID"));
    }
    let action = Action::parse(&s.action).ok_or_else(|| {
        ApiError::invalid(
            "action",
            "action 应为 acknowledge、triage、dispatch、on_scene 或 close",
        )
    })?;
    let note = trimmed(s.note.as_deref(), 500, "note")?;
    let before = read_in_scope(db, scope, id).await?;
    let done: Option<String> =
        sqlx::query("SELECT event_id FROM emergency_event_step WHERE id = $1")
            .bind(&s.id)
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.get(0));
    if let Some(e) = done {
        if e != id {
            return Err(ApiError::conflict("该步骤编号已用于其他事件"));
        }
        return Ok(before);
    }
    let from = State::parse(&before.state).unwrap_or(State::Received);
    let to = rule::step(from, action).map_err(ApiError::conflict)?;
    let now = now_ms();
    let mut detail = serde_json::Map::new();
    let (mut triage, mut dispatched, mut outcome) = (
        before.triage.clone(),
        before.dispatched_to.clone(),
        before.outcome.clone(),
    );
    match action {
        Action::Triage => {
            let t = s
                .triage
                .as_deref()
                .filter(|t| rule::triage_zh(t).is_some())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "triage",
                        "研判结果应为 false_alarm（误报）、needs_help（需要帮助）、medical（120）或 fire（119）",
                    )
                })?;
            detail.insert("triage".into(), t.into());
            triage = Some(t.to_string());
        }
        Action::Dispatch => {
            let t = s
                .to
                .as_deref()
                .filter(|t| rule::dispatch_zh(t).is_some())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "to",
                        "派出对象应为 family、village_worker、provider、emergency_120、emergency_119 或 police_110",
                    )
                })?;
            if triage.as_deref() == Some("false_alarm") {
                return Err(ApiError::conflict(
                    "研判为误报的事件不派出，请直接结案或改研判",
                ));
            }
            detail.insert("to".into(), t.into());
            let mut list: Vec<&str> = dispatched
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter(|x| !x.is_empty())
                .collect();
            if !list.contains(&t) {
                list.push(t);
            }
            dispatched = Some(list.join(","));
        }
        Action::Close => {
            let Some(n) = &note else {
                return Err(ApiError::invalid("note", "结案请写明处置结果"));
            };
            outcome = Some(n.clone());
        }
        _ => {}
    }
    if let Some(n) = &note {
        detail.insert("note".into(), n.clone().into());
    }
    let mut tx = db.begin().await?;
    let changed = sqlx::query(
        "UPDATE emergency_event SET state = $1, acknowledged_at = COALESCE(acknowledged_at, $2), \
         acknowledged_by = COALESCE(acknowledged_by, $3), triage = $4, dispatched_to = $5, \
         on_scene_at = CASE WHEN $6 = 1 THEN $2 ELSE on_scene_at END, \
         closed_at = CASE WHEN $7 = 1 THEN $2 ELSE closed_at END, outcome = $8, version = version + 1 \
         WHERE id = $9 AND state = $10",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(&who.actor_name)
    .bind(&triage)
    .bind(&dispatched)
    .bind(i64::from(action == Action::OnScene))
    .bind(i64::from(action == Action::Close))
    .bind(&outcome)
    .bind(id)
    .bind(&before.state)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(ApiError::conflict("该事件刚被他人处置，请刷新后再试"));
    }
    let detail_s = (!detail.is_empty()).then(|| serde_json::Value::Object(detail).to_string());
    sqlx::query(
        "INSERT INTO emergency_event_step (id, event_id, action, at, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&s.id)
    .bind(id)
    .bind(action.as_str())
    .bind(now)
    .bind(&who.actor_name)
    .bind(&detail_s)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: &format!("emergency_event.{}", action.as_str()),
            entity: "emergency_event",
            entity_id: Some(id),
            region_code: Some(&before.region_code),
            detail:
                serde_json::json!({"from": before.state, "to": to.as_str(), "detail": detail_s})
                    .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    let after = read_in_scope(db, scope, id).await?;
    hub.changed(&after);
    Ok(after)
}

/// A call the operator takes on the 12349 line.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallReq {
    /// The entry's own id (a UUID the page makes): sent again, entered once
    pub id: String,
    /// The elder, when the operator found her (by the caller's number or by searching)
    pub elder_id: String,
    /// The caller's number (kept masked)
    pub phone: Option<String>,
    /// What the caller said
    pub note: String,
    /// 1 most urgent … 3; default 2
    pub priority: Option<i64>,
}

/// Enter a call as an event (already acknowledged: the operator is on the line).
pub async fn call(db: &Db, hub: &Hub, scope: &Scope, who: &Who, c: CallReq) -> ApiResult<Raw> {
    if uuid::Uuid::parse_str(&c.id).is_err() {
        return Err(ApiError::invalid("id", "编号应为 UUID"));
    }
    let note = trimmed(Some(&c.note), 500, "note")?
        .ok_or_else(|| ApiError::invalid("note", "请写明来电内容"))?;
    let priority = c.priority.unwrap_or(2);
    if !(1..=3).contains(&priority) {
        return Err(ApiError::invalid("priority", "紧急程度应为 1（最急）到 3"));
    }
    let phone = match c.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => None,
        Some(p) if p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit() || b == b'-') => {
            Some(yiyang_kernel::mask::phone(p))
        }
        Some(_) => return Err(ApiError::invalid("phone", "来电号码只能含数字和 -")),
    };
    if let Some(r) = read(db, &c.id).await? {
        return if scope.contains(&r.region_code) {
            Ok(r)
        } else {
            Err(ApiError::conflict("该编号已被使用"))
        };
    }
    let elder = sqlx::query("SELECT residence_region, status FROM elder WHERE id = $1")
        .bind(&c.elder_id)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该老年人（或不在您的管辖范围内）"))?;
    let region: String = elder.get(0);
    let now = now_ms();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO emergency_event (id, device_id, event_id, kind, source, priority, elder_id, region_code, occurred_at, \
         received_at, caller_phone_masked, state, acknowledged_at, acknowledged_by, note, duplicate_count, version) \
         VALUES ($1, NULL, NULL, 'call', 'call', $2, $3, $4, $5, $6, $7, 'acknowledged', $6, $8, $9, 0, 1)",
    )
    .bind(&c.id)
    .bind(priority)
    .bind(&c.elder_id)
    .bind(&region)
    .bind(ms_text(now))
    .bind(now)
    .bind(&phone)
    .bind(&who.actor_name)
    .bind(&note)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO emergency_event_step (id, event_id, action, at, actor, detail) VALUES ($1, $2, 'call', $3, $4, $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&c.id)
    .bind(now)
    .bind(&who.actor_name)
    .bind(serde_json::json!({"note": note}).to_string())
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "emergency_event.call",
            entity: "emergency_event",
            entity_id: Some(&c.id),
            region_code: Some(&region),
            detail:
                serde_json::json!({"elder_id": c.elder_id, "priority": priority, "phone": phone})
                    .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    let r = read(db, &c.id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("call vanished")))?;
    hub.added(&r);
    Ok(r)
}

/// Put an event on the board for an elder from another module's record (a care visit that
/// found an emergency), in the caller's transaction: `received` like an alarm, so the operator
/// acknowledges it and the clocks run (from its arrival; `occurred_ms` says when it was seen). After the commit, [`announce`] shows it on the boards.
pub(crate) async fn raise_in(
    tx: &mut crate::platform::db::Tx<'_>,
    who: &Who,
    source: &str,
    elder_id: &str,
    region: &str,
    note: &str,
    occurred_ms: i64,
) -> ApiResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO emergency_event (id, device_id, event_id, kind, source, priority, elder_id, region_code, occurred_at, \
         received_at, state, note, duplicate_count, version) \
         VALUES ($1, NULL, NULL, 'call', $2, 1, $3, $4, $5, $6, 'received', $7, 0, 1)",
    )
    .bind(&id)
    .bind(source)
    .bind(elder_id)
    .bind(region)
    .bind(ms_text(occurred_ms.min(now)))
    .bind(now)
    .bind(note)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO emergency_event_step (id, event_id, action, at, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&id)
    .bind(source)
    .bind(now)
    .bind(&who.actor_name)
    .bind(serde_json::json!({"note": note, "source": source}).to_string())
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        who,
        Entry {
            action: "emergency_event.raise",
            entity: "emergency_event",
            entity_id: Some(&id),
            region_code: Some(region),
            detail: serde_json::json!({"elder_id": elder_id, "source": source}).to_string(),
        },
    )
    .await?;
    Ok(id)
}

/// Show a committed event on the boards.
pub(crate) async fn announce(db: &Db, hub: &Hub, id: &str) -> ApiResult<()> {
    if let Some(r) = read(db, id).await? {
        hub.added(&r);
    }
    Ok(())
}

/// Elders whose phone is this number (the blind index), in the caller's area: who is calling.
pub async fn by_phone(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    scope: &Scope,
    phone: &str,
) -> ApiResult<Vec<(String, String, String)>> {
    let p: String = phone.chars().filter(|c| c.is_ascii_digit()).collect();
    if !(7..=15).contains(&p.len()) {
        return Err(ApiError::invalid("phone", "请填写 7 到 15 位电话号码"));
    }
    let bidx = keys.blind_index(crate::registry::store::PHONE_DOMAIN, &p);
    let rows = sqlx::query(
        "SELECT id, name, residence_region FROM elder WHERE phone_bidx = $1 AND status = 'active' \
         AND residence_region >= $2 AND residence_region <= $3 LIMIT 20",
    )
    .bind(&bidx)
    .bind(&scope.lo)
    .bind(&scope.hi)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

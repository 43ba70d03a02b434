//! care_visit — 探访关爱: who must be visited how often (duty rules in the catalogue's rule
//! language, [`duty`]), which village worker visits which village (`visit_area`), the visits
//! recorded on the workers' phones with what follows from their risk flags (a reassessment
//! trigger, an event on the 12349 board, a referral to home care), the due and overdue lists and
//! the month's visit rate. The pure rules (frequencies, periods, standing, the rate, the flags)
//! are the kernel's `care_visit`; the rate as an indicator is counted by `indicator::visits`.

pub mod demo;
pub mod duty;
pub mod http;

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use crate::region::RegionIndex;
use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;
use yiyang_kernel::care_visit::{self as rule, FollowUp, Frequency, Standing};
use yiyang_kernel::citizen_id::age_on;

pub const MIGRATION: &[Stmt] = &[
    // The duty rules, in order; an elder several rules cover gets the most frequent duty.
    Both(
        "CREATE TABLE visit_duty_rule (id TEXT PRIMARY KEY, name TEXT NOT NULL, frequency TEXT NOT NULL, rule TEXT NOT NULL, \
         position BIGINT NOT NULL, active BIGINT NOT NULL, updated_by TEXT NOT NULL, updated_at TEXT NOT NULL, \
         CONSTRAINT visit_duty_rule_frequency_check CHECK (frequency = 'weekly' OR frequency = 'monthly'))",
    ),
    // A duty held from `since` until the day before `ended_on` (none: still held); kept when it
    // ends, so a past month's rate counts the duties of that month.
    Both(
        "CREATE TABLE visit_duty (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), frequency TEXT NOT NULL, \
         rule_id TEXT NOT NULL, since TEXT NOT NULL, ended_on TEXT, created_at TEXT NOT NULL)",
    ),
    // One duty held per elder at a time.
    Both("CREATE UNIQUE INDEX visit_duty_open ON visit_duty (elder_id) WHERE ended_on IS NULL"),
    Both("CREATE INDEX visit_duty_elder ON visit_duty (elder_id, since)"),
    // The village worker who visits the elders of a village (网格).
    Both(
        "CREATE TABLE visit_area (region_code TEXT PRIMARY KEY, user_id TEXT NOT NULL, assigned_by TEXT NOT NULL, \
         assigned_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX visit_area_user ON visit_area (user_id)"),
    // A visit, under the id the phone made for it: sent twice, recorded once. `region_code` is
    // where the elder lived at the visit; `referral` open / closed for a home-care referral.
    Both(
        "CREATE TABLE care_visit (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), region_code TEXT NOT NULL, \
         visited_on TEXT NOT NULL, visited_at TEXT NOT NULL, mode TEXT NOT NULL, findings TEXT NOT NULL, flags TEXT NOT NULL, \
         note TEXT, visitor_id TEXT, visitor_name TEXT NOT NULL, recorded_at TEXT NOT NULL, trigger_id TEXT, \
         emergency_event_id TEXT, referral TEXT, referral_note TEXT, referral_closed_by TEXT, referral_closed_at TEXT, \
         CONSTRAINT care_visit_mode_check CHECK (mode = 'door' OR mode = 'phone' OR mode = 'video'))",
    ),
    Both("CREATE INDEX care_visit_elder ON care_visit (elder_id, visited_on)"),
    Both("CREATE INDEX care_visit_day ON care_visit (visited_on)"),
    Both("CREATE INDEX care_visit_referral ON care_visit (referral, region_code)"),
];

/// Days back a visit may be recorded (a phone that was offline for a while).
pub const MAX_LATE_DAYS: i64 = 30;

// ---------------------------------------------------------------------------------------------
// Due and overdue

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DueQuery {
    /// A region inside the caller's scope (default: all of it)
    pub region_code: Option<String>,
    /// all（默认）/ due（本期待探访）/ overdue（已逾期）/ done（本期已探访）
    pub standing: Option<String>,
    /// Only the villages given to me (and those given to no one)
    pub mine: Option<bool>,
    pub page: Option<usize>,
    pub page_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DueExportQuery {
    /// A region inside the caller's scope (default: all of it)
    pub region_code: Option<String>,
    /// all（默认）/ due（本期待探访）/ overdue（已逾期）/ done（本期已探访）
    pub standing: Option<String>,
    /// Only the villages given to me (and those given to no one)
    pub mine: Option<bool>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VisitDueItem {
    pub elder_id: String,
    pub name: String,
    pub citizen_id_masked: String,
    pub sex: String,
    pub age: i32,
    pub region_code: String,
    /// "东陈镇 / 东陈村"
    pub village: String,
    pub address: Option<String>,
    pub phone_masked: Option<String>,
    /// weekly / monthly
    pub frequency: String,
    pub frequency_zh: String,
    /// done / due / overdue
    pub standing: String,
    pub standing_zh: String,
    /// The last day of the period the next visit counts for
    pub due_by: Option<String>,
    /// The last day of the period that ended without a visit
    pub missed_period_end: Option<String>,
    pub last_visited_on: Option<String>,
    /// The village's worker, when one is assigned
    pub worker_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VisitDuePage {
    pub today: String,
    pub total: usize,
    pub done: usize,
    pub due: usize,
    pub overdue: usize,
    pub page: usize,
    pub page_size: usize,
    pub items: Vec<VisitDueItem>,
}

/// "12月13日"
fn md(d: NaiveDate) -> String {
    use chrono::Datelike;
    format!("{}月{}日", d.month(), d.day())
}

fn standing_parts(s: Standing) -> (&'static str, String, Option<String>, Option<String>) {
    match s {
        Standing::Done => ("done", "本期已探访".into(), None, None),
        Standing::Due { by } => (
            "due",
            format!("{}前探访", md(by)),
            Some(by.to_string()),
            None,
        ),
        Standing::Overdue { missed } => (
            "overdue",
            format!("已逾期（{}前未探访）", md(missed)),
            None,
            Some(missed.to_string()),
        ),
    }
}

/// The first day of a month given as YYYY-MM (years 2000 to 2100).
fn month_start(m: &str) -> ApiResult<NaiveDate> {
    let bad = || ApiError::invalid("month", "月份格式应为 YYYY-MM，例如 2026-12");
    let b = m.as_bytes();
    if b.len() != 7
        || b[4] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
    {
        return Err(bad());
    }
    let d = NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    if !(2000..=2100).contains(&chrono::Datelike::year(&d)) {
        return Err(bad());
    }
    Ok(d)
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// Every duty held in the range with where it stands today, overdue first, then by the day it is
/// due, then by village. `mine`: only the villages given to this user or to no one.
pub async fn due_all(
    db: &Db,
    regions: &RegionIndex,
    lo: &str,
    hi: &str,
    mine: Option<&str>,
    today: NaiveDate,
) -> ApiResult<Vec<VisitDueItem>> {
    let rows = sqlx::query(
        "SELECT d.elder_id, d.frequency, d.since, e.name, e.citizen_id_masked, e.sex, e.birth_date, e.residence_region, \
         e.address, e.phone_masked, (SELECT MAX(v.visited_on) FROM care_visit v WHERE v.elder_id = d.elder_id), \
         a.user_id, u.display_name \
         FROM visit_duty d JOIN elder e ON e.id = d.elder_id \
         LEFT JOIN visit_area a ON a.region_code = e.residence_region LEFT JOIN app_user u ON u.id = a.user_id \
         WHERE d.ended_on IS NULL AND e.status = 'active' AND e.residence_region BETWEEN $1 AND $2",
    )
    .bind(lo)
    .bind(hi)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let worker: Option<String> = r.get(11);
        if let Some(me) = mine
            && worker.as_deref().is_some_and(|w| w != me)
        {
            continue;
        }
        let f = Frequency::parse(&r.get::<String, _>(1)).unwrap_or(Frequency::Monthly);
        let since = date(&r.get::<String, _>(2)).unwrap_or(today);
        let last: Option<String> = r.get(10);
        let st = rule::standing(f, since, last.as_deref().and_then(date), today);
        let (code, zh, by, missed) = standing_parts(st);
        let region: String = r.get(7);
        let sex: String = r.get(5);
        out.push(VisitDueItem {
            elder_id: r.get(0),
            name: r.get(3),
            citizen_id_masked: r.get(4),
            sex: if sex == "F" || sex == "女" {
                "女"
            } else {
                "男"
            }
            .into(),
            age: date(&r.get::<String, _>(6))
                .map(|b| age_on(b, today))
                .unwrap_or(0),
            village: regions.path_name(&region),
            region_code: region,
            address: r.get(8),
            phone_masked: r.get(9),
            frequency: f.as_str().into(),
            frequency_zh: f.zh().into(),
            standing: code.into(),
            standing_zh: zh,
            due_by: by,
            missed_period_end: missed,
            last_visited_on: last,
            worker_name: r.get(12),
        });
    }
    let rank = |s: &str| match s {
        "overdue" => 0,
        "due" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        (rank(&a.standing), &a.due_by, &a.region_code, &a.elder_id).cmp(&(
            rank(&b.standing),
            &b.due_by,
            &b.region_code,
            &b.elder_id,
        ))
    });
    Ok(out)
}

/// How many duties of the range are done, due and overdue today (the workbench's counts: no
/// names read).
pub async fn standing_counts(
    db: &Db,
    lo: &str,
    hi: &str,
    today: NaiveDate,
) -> ApiResult<(i64, i64, i64)> {
    let rows = sqlx::query(
        "SELECT d.frequency, d.since, (SELECT MAX(v.visited_on) FROM care_visit v WHERE v.elder_id = d.elder_id) \
         FROM visit_duty d JOIN elder e ON e.id = d.elder_id \
         WHERE d.ended_on IS NULL AND e.status = 'active' AND e.residence_region BETWEEN $1 AND $2",
    )
    .bind(lo)
    .bind(hi)
    .fetch_all(&db.pool)
    .await?;
    let mut n = (0, 0, 0);
    for r in rows {
        let f = Frequency::parse(&r.get::<String, _>(0)).unwrap_or(Frequency::Monthly);
        let since = date(&r.get::<String, _>(1)).unwrap_or(today);
        let last: Option<String> = r.get(2);
        match rule::standing(f, since, last.as_deref().and_then(date), today) {
            Standing::Done => n.0 += 1,
            Standing::Due { .. } => n.1 += 1,
            Standing::Overdue { .. } => n.2 += 1,
        }
    }
    Ok(n)
}

pub async fn due(
    db: &Db,
    regions: &RegionIndex,
    scope: &Scope,
    q: &DueQuery,
    me: &str,
    today: NaiveDate,
) -> ApiResult<VisitDuePage> {
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    let want = q.standing.as_deref().unwrap_or("all");
    if !["all", "due", "overdue", "done"].contains(&want) {
        return Err(ApiError::invalid(
            "standing",
            "筛选应为 all（全部）、due（待探访）、overdue（已逾期）或 done（已探访）",
        ));
    }
    let (page, page_size) = crate::platform::web::paging(
        q.page.map(|p| p.min(i64::MAX as usize) as i64),
        q.page_size.map(|p| p.min(i64::MAX as usize) as i64),
        50,
        200,
    )?;
    let (page, page_size) = (page as usize, page_size as usize);
    let all = due_all(
        db,
        regions,
        &lo,
        &hi,
        q.mine.unwrap_or(false).then_some(me),
        today,
    )
    .await?;
    let count = |s: &str| all.iter().filter(|i| i.standing == s).count();
    let (done, due, overdue) = (count("done"), count("due"), count("overdue"));
    let items: Vec<VisitDueItem> = all
        .into_iter()
        .filter(|i| want == "all" || i.standing == want)
        .collect();
    Ok(VisitDuePage {
        today: today.to_string(),
        total: items.len(),
        done,
        due,
        overdue,
        page,
        page_size,
        items: items
            .into_iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .collect(),
    })
}

/// The due list as a sheet for the village workers (at most 20,000 rows).
pub fn due_xlsx(items: &[VisitDueItem], today: NaiveDate) -> ApiResult<Vec<u8>> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let w = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
    ws.set_name("探访名单").map_err(w)?;
    let head = rust_xlsxwriter::Format::new().set_bold();
    let cols = [
        ("序号", 6.0),
        ("姓名", 10.0),
        ("性别", 6.0),
        ("年龄", 6.0),
        ("身份证号", 22.0),
        ("居住地", 30.0),
        ("住址", 30.0),
        ("探访频次", 10.0),
        ("情况", 30.0),
        ("上次探访", 12.0),
        ("网格员", 16.0),
    ];
    for (i, (t, width)) in cols.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, *t, &head)
            .map_err(w)?;
        ws.set_column_width(i as u16, *width).map_err(w)?;
    }
    for (n, r) in items.iter().take(20_000).enumerate() {
        let row = n as u32 + 1;
        ws.write_number(row, 0, row as f64).map_err(w)?;
        ws.write_string(row, 1, &r.name).map_err(w)?;
        ws.write_string(row, 2, &r.sex).map_err(w)?;
        ws.write_number(row, 3, r.age as f64).map_err(w)?;
        let cells = [
            r.citizen_id_masked.as_str(),
            r.village.as_str(),
            r.address.as_deref().unwrap_or(""),
            r.frequency_zh.as_str(),
            r.standing_zh.as_str(),
            r.last_visited_on.as_deref().unwrap_or("从未探访"),
            r.worker_name.as_deref().unwrap_or("未分配"),
        ];
        for (i, c) in cells.iter().enumerate() {
            ws.write_string(row, 4 + i as u16, *c).map_err(w)?;
        }
    }
    ws.write_string(
        items.len().min(20_000) as u32 + 2,
        0,
        format!("截至 {today}"),
    )
    .map_err(w)?;
    wb.save_to_buffer().map_err(w)
}

// ---------------------------------------------------------------------------------------------
// Visits

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVisit {
    /// The visit's own id (a UUID the phone makes): sent again, recorded once
    pub id: String,
    pub elder_id: String,
    /// door（上门）/ phone（电话）/ video（视频）
    pub mode: String,
    /// When it was made (RFC 3339, the phone's clock); default now
    pub visited_at: Option<String>,
    /// Checklist items found in order: health_ok, meals_ok, home_safe, meds_ok, mood_ok, contact_ok
    #[serde(default)]
    pub findings: Vec<String>,
    /// Risk flags: condition_change, fell, danger, needs_care, unsafe_home, lonely
    #[serde(default)]
    pub flags: Vec<String>,
    /// A few words (no names of others, no ID numbers); at most 500 characters
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Visit {
    pub id: String,
    pub elder_id: String,
    pub elder_name: String,
    pub region_code: String,
    pub village: String,
    pub visited_on: String,
    pub visited_at: String,
    pub mode: String,
    pub mode_zh: String,
    /// The checklist items found in order, in words
    pub findings_zh: Vec<String>,
    pub flags: Vec<String>,
    pub flags_zh: Vec<String>,
    pub note: Option<String>,
    pub visitor_name: String,
    /// What the flags set going, in words
    pub follow_ups: Vec<String>,
    pub emergency_event_id: Option<String>,
    /// open / closed: a referral to home care
    pub referral: Option<String>,
    pub referral_note: Option<String>,
}

const VISIT_COLS: &str = "v.id, v.elder_id, e.name, v.region_code, v.visited_on, v.visited_at, v.mode, v.findings, v.flags, \
     v.note, v.visitor_name, v.trigger_id, v.emergency_event_id, v.referral, v.referral_note";

fn visit_of(r: &sqlx::any::AnyRow, regions: &RegionIndex) -> Visit {
    let mode: String = r.get(6);
    let findings: Vec<String> = serde_json::from_str(&r.get::<String, _>(7)).unwrap_or_default();
    let flags: Vec<String> = serde_json::from_str(&r.get::<String, _>(8)).unwrap_or_default();
    let trigger: Option<String> = r.get(11);
    let event: Option<String> = r.get(12);
    let referral: Option<String> = r.get(13);
    let mut follow_ups = vec![];
    if trigger.is_some() {
        follow_ups.push("已提请复评".to_string());
    }
    if event.is_some() {
        follow_ups.push("已报 12349 接警台".to_string());
    }
    match referral.as_deref() {
        Some("open") => follow_ups.push("已转介居家服务（待处理）".to_string()),
        Some("closed") => follow_ups.push("已转介居家服务（已处理）".to_string()),
        _ => {}
    }
    let region: String = r.get(3);
    Visit {
        id: r.get(0),
        elder_id: r.get(1),
        elder_name: r.get(2),
        village: regions.path_name(&region),
        region_code: region,
        visited_on: r.get(4),
        visited_at: r.get(5),
        mode_zh: rule::mode_zh(&mode).unwrap_or("").into(),
        mode,
        findings_zh: findings
            .iter()
            .filter_map(|f| rule::finding_zh(f))
            .map(str::to_string)
            .collect(),
        flags_zh: flags
            .iter()
            .filter_map(|f| rule::flag(f))
            .map(|f| f.0.to_string())
            .collect(),
        flags,
        note: r.get(9),
        visitor_name: r.get(10),
        follow_ups,
        emergency_event_id: event,
        referral,
        referral_note: r.get(14),
    }
}

async fn read_visit(db: &Db, regions: &RegionIndex, id: &str) -> ApiResult<Option<Visit>> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {VISIT_COLS} FROM care_visit v JOIN elder e ON e.id = v.elder_id WHERE v.id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| visit_of(&r, regions)))
}

fn codes(
    list: &[String],
    known: &dyn Fn(&str) -> bool,
    field: &str,
    what: &str,
) -> ApiResult<Vec<String>> {
    let mut out: Vec<String> = vec![];
    for c in list {
        let c = c.trim();
        if !known(c) {
            return Err(ApiError::invalid(field, format!("未知的{what}“{c}”")));
        }
        if !out.iter().any(|x| x == c) {
            out.push(c.to_string());
        }
    }
    Ok(out)
}

/// Record a visit to an elder of the caller's area (audited), with what its flags set going, all
/// in one transaction: a reassessment trigger, an event on the 12349 board, a home-care referral.
/// Returns the visit and, when one was raised, the emergency event to show on the boards.
pub async fn record(
    db: &Db,
    regions: &RegionIndex,
    scope: &Scope,
    who: &Who,
    v: NewVisit,
    now: DateTime<chrono::Utc>,
) -> ApiResult<(Visit, Option<String>)> {
    if uuid::Uuid::parse_str(&v.id).is_err() {
        return Err(ApiError::invalid("id", "编号应为 UUID"));
    }
    // Recorded already (the phone did not hear the answer): the same answer, whatever its time.
    if let Some(done) = read_visit(db, regions, &v.id).await? {
        return if done.elder_id == v.elder_id && in_scope(db, scope, &done.elder_id).await? {
            Ok((done, None))
        } else {
            Err(ApiError::conflict("该编号已被使用"))
        };
    }
    if rule::mode_zh(&v.mode).is_none() {
        return Err(ApiError::invalid(
            "mode",
            "探访方式应为 door（上门）、phone（电话）或 video（视频）",
        ));
    }
    let findings = codes(
        &v.findings,
        &|c| rule::finding_zh(c).is_some(),
        "findings",
        "检查项",
    )?;
    let flags = codes(&v.flags, &|c| rule::flag(c).is_some(), "flags", "风险标记")?;
    let note = v
        .note
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(ApiError::invalid("note", "情况说明不能超过500字"));
    }
    let at = match v
        .visited_at
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => now,
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|_| {
                ApiError::invalid(
                    "visited_at",
                    "探访时间格式应为 RFC 3339，例如 2026-12-07T09:30:00+08:00",
                )
            })?
            .with_timezone(&chrono::Utc),
    };
    if at > now + chrono::Duration::minutes(10) {
        return Err(ApiError::invalid(
            "visited_at",
            "探访时间不能晚于现在，请检查手机时间",
        ));
    }
    if at < now - chrono::Duration::days(MAX_LATE_DAYS) {
        return Err(ApiError::invalid(
            "visited_at",
            format!("只能补录 {MAX_LATE_DAYS} 天内的探访"),
        ));
    }
    let visited_on = (at + chrono::Duration::hours(8)).date_naive();
    let elder = sqlx::query("SELECT residence_region, status, death_date FROM elder WHERE id = $1")
        .bind(&v.elder_id)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该老年人（或不在您的管辖范围内）"))?;
    let region: String = elder.get(0);
    let dead: Option<String> = elder.get(2);
    if dead
        .as_deref()
        .and_then(date)
        .is_some_and(|d| d <= visited_on)
    {
        return Err(ApiError::conflict("该老年人已登记死亡，不能记录此后的探访"));
    }
    let mut tx = db.begin().await?;
    let mut trigger_id = None;
    let mut event_id = None;
    let mut referral = None;
    for f in &flags {
        let Some((zh, follow)) = rule::flag(f) else {
            continue;
        };
        match follow {
            FollowUp::Reassess(kind) if trigger_id.is_none() => {
                trigger_id = Some(
                    crate::assessment::store::insert_trigger(
                        &mut tx,
                        who,
                        &v.elder_id,
                        &region,
                        kind,
                        visited_on,
                        Some(&format!("探访发现：{zh}")),
                    )
                    .await?,
                );
            }
            FollowUp::Emergency => {
                // A visit kept on a phone without signal arrives late: the board says when.
                let late = (now - at).num_minutes();
                let when = if late >= 10 {
                    format!("（{} 探访时发现，{} 分钟后才传到）", local_hm(at), late)
                } else {
                    String::new()
                };
                let what = match &note {
                    Some(n) => format!("网格员探访发现紧急情况{when}：{n}"),
                    None => format!("网格员探访发现紧急情况{when}"),
                };
                event_id = Some(
                    crate::emergency::raise_in(
                        &mut tx,
                        who,
                        "visit",
                        &v.elder_id,
                        &region,
                        &what,
                        at.timestamp_millis(),
                    )
                    .await?,
                );
            }
            FollowUp::HomeCare => referral = Some("open"),
            _ => {}
        }
    }
    let inserted = sqlx::query(
        "INSERT INTO care_visit (id, elder_id, region_code, visited_on, visited_at, mode, findings, flags, note, visitor_id, \
         visitor_name, recorded_at, trigger_id, emergency_event_id, referral) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&v.id)
    .bind(&v.elder_id)
    .bind(&region)
    .bind(visited_on.to_string())
    .bind(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    .bind(&v.mode)
    .bind(serde_json::to_string(&findings).unwrap_or_default())
    .bind(serde_json::to_string(&flags).unwrap_or_default())
    .bind(&note)
    .bind(&who.actor_id)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .bind(&trigger_id)
    .bind(&event_id)
    .bind(referral)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        // The same visit sent twice at once: the other request recorded it.
        drop(tx);
        let done = read_visit(db, regions, &v.id)
            .await?
            .filter(|d| d.elder_id == v.elder_id)
            .ok_or_else(|| ApiError::conflict("该编号已被使用"))?;
        return Ok((done, None));
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "care_visit.record",
            entity: "elder",
            entity_id: Some(&v.elder_id),
            region_code: Some(&region),
            detail: serde_json::json!({"visit": v.id, "mode": v.mode, "visited_on": visited_on.to_string(), "flags": flags})
                .to_string(),
        },
    )
    .await?;
    crate::indicator::rollup::mark_dirty(&mut tx, &region).await?;
    tx.commit().await?;
    let visit = read_visit(db, regions, &v.id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("visit vanished")))?;
    Ok((visit, event_id))
}

/// "12月7日 09:30", China time.
fn local_hm(at: DateTime<chrono::Utc>) -> String {
    (at + chrono::Duration::hours(8))
        .format("%-m月%-d日 %H:%M")
        .to_string()
}

/// The elder lives in the scope now.
async fn in_scope(db: &Db, scope: &Scope, elder_id: &str) -> ApiResult<bool> {
    Ok(
        sqlx::query_scalar::<_, String>("SELECT residence_region FROM elder WHERE id = $1")
            .bind(elder_id)
            .fetch_optional(&db.pool)
            .await?
            .is_some_and(|r| scope.contains(&r)),
    )
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VisitQuery {
    /// One elder's visits
    pub elder_id: Option<String>,
    /// A region inside the caller's scope
    pub region_code: Option<String>,
    /// Visits of this month (YYYY-MM); default: the last 30 days
    pub month: Option<String>,
    /// Only mine (the ones I recorded)
    pub mine: Option<bool>,
    /// Only visits with a home-care referral still open
    pub open_referrals: Option<bool>,
    pub limit: Option<i64>,
}

/// Visits of the caller's area, newest first.
pub async fn list(
    db: &Db,
    regions: &RegionIndex,
    scope: &Scope,
    q: &VisitQuery,
    me: &str,
    today: NaiveDate,
) -> ApiResult<Vec<Visit>> {
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    let (from, to) = match q.month.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => rule::period(Frequency::Monthly, month_start(m)?),
        None => (today - chrono::Days::new(30), today),
    };
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let mut sql = format!(
        "SELECT {VISIT_COLS} FROM care_visit v JOIN elder e ON e.id = v.elder_id \
         WHERE e.residence_region BETWEEN $1 AND $2"
    );
    if q.open_referrals.unwrap_or(false) {
        sql.push_str(" AND v.referral = 'open'");
    } else {
        sql.push_str(" AND v.visited_on BETWEEN $3 AND $4");
    }
    if q.elder_id.is_some() {
        sql.push_str(" AND v.elder_id = $5");
    } else {
        sql.push_str(" AND $5 = $5");
    }
    if q.mine.unwrap_or(false) {
        sql.push_str(" AND v.visitor_id = $6");
    } else {
        sql.push_str(" AND $6 = $6");
    }
    sql.push_str(&format!(" ORDER BY v.visited_at DESC, v.id LIMIT {limit}"));
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(lo)
        .bind(hi)
        .bind(from.to_string())
        .bind(to.to_string())
        .bind(q.elder_id.clone().unwrap_or_default())
        .bind(me)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(|r| visit_of(r, regions)).collect())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseReferral {
    /// What was done: an order placed, the family declined …
    pub note: String,
}

/// Close a home-care referral with what was done (audited).
pub async fn close_referral(
    db: &Db,
    regions: &RegionIndex,
    scope: &Scope,
    who: &Who,
    id: &str,
    c: CloseReferral,
) -> ApiResult<Visit> {
    let note = c.note.trim();
    if note.is_empty() || note.chars().count() > 200 {
        return Err(ApiError::invalid("note", "请用 200 字以内写明处理情况"));
    }
    // Where the elder lives now, as the list of referrals reads it.
    let v = read_visit(db, regions, id)
        .await?
        .ok_or_else(|| ApiError::not_found("未找到该探访记录（或不在您的管辖范围内）"))?;
    let region: String = sqlx::query_scalar("SELECT residence_region FROM elder WHERE id = $1")
        .bind(&v.elder_id)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r: &String| scope.contains(r))
        .ok_or_else(|| ApiError::not_found("未找到该探访记录（或不在您的管辖范围内）"))?;
    if v.referral.as_deref() != Some("open") {
        return Err(ApiError::conflict("该探访没有待处理的转介"));
    }
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "UPDATE care_visit SET referral = 'closed', referral_note = $1, referral_closed_by = $2, referral_closed_at = $3 \
         WHERE id = $4 AND referral = 'open'",
    )
    .bind(note)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::conflict("该转介已由他人处理"));
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "care_visit.referral_close",
            entity: "elder",
            entity_id: Some(&v.elder_id),
            region_code: Some(&region),
            detail: serde_json::json!({"visit": id, "note": note}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    read_visit(db, regions, id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("visit vanished")))
}

// ---------------------------------------------------------------------------------------------
// The month's rate, by the children of a region

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateRow {
    pub region_code: String,
    pub name: String,
    /// Elders with a duty in the month (held on its last day, or today while it runs)
    pub with_duty: i64,
    /// Of those, the ones visited in the month
    pub visited: i64,
    /// visited ÷ with_duty, 0–1; none when no one has a duty
    pub rate: Option<f64>,
    /// Of those with a duty, the ones whose last period ended without a visit (today)
    pub overdue: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateView {
    pub region_code: String,
    pub name: String,
    pub month: String,
    /// The day the duties are counted on
    pub day: String,
    pub total: RateRow,
    pub children: Vec<RateRow>,
}

/// An elder with a duty held on a day.
pub struct DutyPerson {
    pub elder_id: String,
    /// Where they live
    pub leaf: String,
    pub birth: Option<NaiveDate>,
    /// Visited within the period up to the day
    pub visited: bool,
}

/// Everyone with a duty held on `day` in the range, and whether they were visited within
/// [start, day]. The rule both the page and the indicator count by.
pub async fn month_people(
    db: &Db,
    lo: &str,
    hi: &str,
    start: NaiveDate,
    day: NaiveDate,
) -> ApiResult<Vec<DutyPerson>> {
    for c in [lo, hi] {
        if !c.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid("region_code", "区划代码应为数字"));
        }
    }
    people_where(
        db,
        &format!(" AND e.residence_region BETWEEN '{lo}' AND '{hi}'"),
        start,
        day,
    )
    .await
}

/// The same over a condition on `e` (the elder) the indicator module builds from its own codes.
pub(crate) async fn people_where(
    db: &Db,
    cond: &str,
    start: NaiveDate,
    day: NaiveDate,
) -> ApiResult<Vec<DutyPerson>> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT d.elder_id, e.residence_region, e.birth_date, \
         CASE WHEN EXISTS (SELECT 1 FROM care_visit v WHERE v.elder_id = d.elder_id AND v.visited_on BETWEEN $1 AND $2) \
         THEN 1 ELSE 0 END \
         FROM visit_duty d JOIN elder e ON e.id = d.elder_id \
         WHERE d.since <= $2 AND (d.ended_on IS NULL OR d.ended_on > $2) \
         AND (e.death_date IS NULL OR e.death_date > $2){cond}"
    )))
    .bind(start.to_string())
    .bind(day.to_string())
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| DutyPerson {
        elder_id: r.get(0),
        leaf: r.get(1),
        birth: date(&r.get::<String, _>(2)),
        visited: r.get::<i64, _>(3) != 0,
    })
    .collect())
}

pub async fn rate(
    db: &Db,
    regions: &RegionIndex,
    scope: &Scope,
    region_code: Option<&str>,
    month: Option<&str>,
    today: NaiveDate,
) -> ApiResult<RateView> {
    let root = match region_code.filter(|s| !s.is_empty()) {
        Some(c) => scope.region(c)?,
        None => scope
            .root
            .clone()
            .ok_or_else(|| ApiError::invalid("region_code", "请选择区划"))?,
    };
    let (start, end) = match month.filter(|m| !m.is_empty()) {
        Some(m) => rule::period(Frequency::Monthly, month_start(m)?),
        None => rule::period(Frequency::Monthly, today),
    };
    if start > today {
        return Err(ApiError::invalid("month", "该月份尚未开始"));
    }
    let day = end.min(today);
    let (lo, hi) = root.subtree_range();
    let people = month_people(db, &lo, &hi, start, day).await?;
    // Overdue today, for the current month's page.
    let overdue: std::collections::HashSet<String> = if end >= today {
        due_all(db, regions, &lo, &hi, None, today)
            .await?
            .into_iter()
            .filter(|i| i.standing == "overdue")
            .map(|i| i.elder_id)
            .collect()
    } else {
        Default::default()
    };
    // (code, name, the prefix every code of its subtree starts with)
    let children: Vec<(String, String, String)> = regions
        .children(root.as_str())
        .iter()
        .filter_map(|r| {
            let p = yiyang_kernel::RegionCode::parse(&r.code)
                .ok()?
                .prefix()
                .to_string();
            Some((r.code.clone(), r.name.clone(), p))
        })
        .collect();
    let mut by: HashMap<String, (i64, i64, i64)> = HashMap::new();
    let mut total = (0, 0, 0);
    for p in &people {
        let (o, v) = (overdue.contains(&p.elder_id) as i64, p.visited as i64);
        total = (total.0 + 1, total.1 + v, total.2 + o);
        if let Some((code, _, _)) = children
            .iter()
            .find(|(_, _, pre)| p.leaf.starts_with(pre.as_str()))
        {
            let e = by.entry(code.clone()).or_default();
            *e = (e.0 + 1, e.1 + v, e.2 + o);
        }
    }
    let row = |code: &str, name: &str, c: (i64, i64, i64)| RateRow {
        region_code: code.to_string(),
        name: name.to_string(),
        with_duty: c.0,
        visited: c.1,
        rate: rule::visit_rate(c.1 as u64, c.0 as u64),
        overdue: c.2,
    };
    let name = regions
        .name(root.as_str())
        .unwrap_or(root.as_str())
        .to_string();
    Ok(RateView {
        region_code: root.as_str().to_string(),
        month: start.format("%Y-%m").to_string(),
        day: day.to_string(),
        total: row(root.as_str(), &name, total),
        children: children
            .iter()
            .map(|(c, n, _)| row(c, n, by.get(c).copied().unwrap_or_default()))
            .collect(),
        name,
    })
}

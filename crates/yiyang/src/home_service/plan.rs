//! Care plans (服务计划): a recurring visit — e.g. every Tuesday and Friday 助洁 at 09:00 for an
//! hour — that places its orders by itself a week ahead. Orders are made for the next
//! [`AHEAD_DAYS`] days when the plan is set up and then every hour by the server; each is
//! made once (a unique index on plan and start), so a restart or two servers make nothing
//! twice. The orders then go the usual way: the provider's dispatcher gives them to a caregiver.
//! Ending a plan cancels its orders not yet dispatched.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::service_order as rule;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE care_plan (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), \
         provider_id TEXT NOT NULL REFERENCES organisation (id), service TEXT NOT NULL, weekdays TEXT NOT NULL, \
         start_time TEXT NOT NULL, planned_minutes BIGINT NOT NULL, starts_on TEXT NOT NULL, ends_on TEXT, \
         state TEXT NOT NULL, note TEXT, created_by TEXT NOT NULL, created_at TEXT NOT NULL, \
         CONSTRAINT care_plan_state_check CHECK (state = 'active' OR state = 'ended'))",
    ),
    Both("CREATE INDEX care_plan_elder ON care_plan (elder_id)"),
    // The plan an order was made from: one order per plan and start.
    Both("ALTER TABLE service_order ADD COLUMN plan_id TEXT"),
    Both(
        "CREATE UNIQUE INDEX service_order_plan_start ON service_order (plan_id, planned_start) WHERE plan_id IS NOT NULL",
    ),
];

/// How far ahead a plan's orders are made (a dispatcher plans her week).
pub const AHEAD_DAYS: u64 = 7;

const WEEKDAYS_ZH: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    pub elder_id: String,
    pub provider_id: String,
    /// cleaning / bathing / … or 助洁 …
    pub service: String,
    /// Days of the week, 1 = Monday … 7 = Sunday
    pub weekdays: Vec<u32>,
    /// "HH:MM" China time
    pub start_time: String,
    /// 10–480
    pub planned_minutes: i64,
    /// YYYY-MM-DD (default today)
    pub starts_on: Option<String>,
    /// YYYY-MM-DD, or open-ended
    pub ends_on: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub id: String,
    pub elder_id: String,
    pub provider_id: String,
    pub provider_name: String,
    pub service: String,
    pub service_zh: String,
    pub weekdays: Vec<u32>,
    /// "每周二、周五 09:00 助洁 60 分钟"
    pub summary: String,
    pub start_time: String,
    pub planned_minutes: i64,
    pub starts_on: String,
    pub ends_on: Option<String>,
    /// active / ended
    pub state: String,
    pub note: Option<String>,
    /// Orders made from it so far
    pub orders: i64,
}

fn weekdays_of(s: &str) -> Vec<u32> {
    s.split(',').filter_map(|d| d.trim().parse().ok()).collect()
}

fn summary(days: &[u32], time: &str, service: &str, minutes: i64) -> String {
    let d: Vec<&str> = days
        .iter()
        .filter_map(|d| WEEKDAYS_ZH.get(*d as usize - 1).copied())
        .collect();
    format!(
        "每{} {time} {} {minutes} 分钟",
        d.join("、"),
        rule::service_zh(service)
    )
}

fn day(field: &str, v: Option<&str>) -> ApiResult<Option<NaiveDate>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ApiError::invalid(field, "日期应为 YYYY-MM-DD")),
    }
}

/// Set up a plan for an elder of the caller's area with a provider, and make its orders of the
/// coming week. Audited.
pub async fn create(db: &Db, scope: &Scope, who: &Who, f: NewPlan) -> ApiResult<Plan> {
    let service = rule::service(&f.service).ok_or_else(|| {
        ApiError::invalid(
            "service",
            "服务项目应为：助餐、助浴、助急、助医、助行、助洁、照护",
        )
    })?;
    let mut days = f.weekdays.clone();
    days.sort_unstable();
    days.dedup();
    if days.is_empty() || days.iter().any(|d| !(1..=7).contains(d)) {
        return Err(ApiError::invalid(
            "weekdays",
            "请选择每周哪几天上门（周一到周日）",
        ));
    }
    let time = chrono::NaiveTime::parse_from_str(f.start_time.trim(), "%H:%M")
        .map_err(|_| ApiError::invalid("start_time", "上门时间应写成 HH:MM，如 09:00"))?
        .format("%H:%M")
        .to_string();
    if !(10..=480).contains(&f.planned_minutes) {
        return Err(ApiError::invalid(
            "planned_minutes",
            "服务时长应为 10 到 480 分钟",
        ));
    }
    let today = crate::platform::today();
    let starts = day("starts_on", f.starts_on.as_deref())?.unwrap_or(today);
    let ends = day("ends_on", f.ends_on.as_deref())?;
    if ends.is_some_and(|e| e < starts) {
        return Err(ApiError::invalid("ends_on", "结束日期不能早于开始日期"));
    }
    let note = crate::institution::text("note", "备注", f.note.as_deref(), 200)?;
    let region = super::open_provider(db, scope, f.provider_id.trim()).await?;
    let alive = sqlx::query("SELECT residence_region, status FROM elder WHERE id = $1")
        .bind(f.elder_id.trim())
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该老人（或不在您的管辖范围内）"))?;
    if alive.get::<String, _>(1) != "active" {
        return Err(ApiError::conflict(
            "该老人的档案已注销或已去世，不能制定服务计划",
        ));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let weekdays = days
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO care_plan (id, elder_id, provider_id, service, weekdays, start_time, planned_minutes, starts_on, \
         ends_on, state, note, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11, $12)",
    )
    .bind(&id)
    .bind(f.elder_id.trim())
    .bind(f.provider_id.trim())
    .bind(service)
    .bind(&weekdays)
    .bind(&time)
    .bind(f.planned_minutes)
    .bind(starts.to_string())
    .bind(ends.map(|e| e.to_string()))
    .bind(Some(&note).filter(|n| !n.is_empty()))
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "care_plan.create",
            entity: "care_plan",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail:
                serde_json::json!({"summary": summary(&days, &time, service, f.planned_minutes)})
                    .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    make_orders(db, today, Some(&id)).await?;
    get(db, scope, &id).await
}

/// One plan, in the caller's scope.
pub async fn get(db: &Db, scope: &Scope, id: &str) -> ApiResult<Plan> {
    list_where(db, scope, "c.id = $1", id)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("未找到该服务计划（或不在您的管辖范围内）"))
}

/// An elder's plans, newest first (404 for an elder outside the scope).
pub async fn of_elder(db: &Db, scope: &Scope, elder: &str) -> ApiResult<Vec<Plan>> {
    sqlx::query("SELECT residence_region FROM elder WHERE id = $1")
        .bind(elder)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该老人（或不在您的管辖范围内）"))?;
    list_where(db, scope, "c.elder_id = $1", elder).await
}

async fn list_where(db: &Db, scope: &Scope, cond: &str, v: &str) -> ApiResult<Vec<Plan>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT c.id, c.elder_id, c.provider_id, p.name, c.service, c.weekdays, c.start_time, c.planned_minutes, \
         c.starts_on, c.ends_on, c.state, c.note, p.region_code, \
         (SELECT COUNT(*) FROM service_order o WHERE o.plan_id = c.id) \
         FROM care_plan c JOIN organisation p ON p.id = c.provider_id WHERE {cond} ORDER BY c.created_at DESC"
    )))
    .bind(v)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .filter(|r| scope.holds(&r.get::<String, _>(2), &r.get::<String, _>(12)))
        .map(|r| {
            let (service, days, time, minutes): (String, Vec<u32>, String, i64) = (
                r.get(4),
                weekdays_of(&r.get::<String, _>(5)),
                r.get(6),
                r.get(7),
            );
            Plan {
                id: r.get(0),
                elder_id: r.get(1),
                provider_id: r.get(2),
                provider_name: r.get(3),
                service_zh: rule::service_zh(&service).into(),
                summary: summary(&days, &time, &service, minutes),
                service,
                weekdays: days,
                start_time: time,
                planned_minutes: minutes,
                starts_on: r.get(8),
                ends_on: r.get(9),
                state: r.get(10),
                note: r.get(11),
                orders: r.get(13),
            }
        })
        .collect())
}

/// Make the orders of the active plans (or one) for the days from `today` to [`AHEAD_DAYS`]
/// ahead that have none yet. Returns how many were made. Each plan's are made in one
/// transaction with one audit entry.
pub async fn make_orders(db: &Db, today: NaiveDate, only: Option<&str>) -> ApiResult<usize> {
    let plans = sqlx::query(
        "SELECT c.id, c.elder_id, c.provider_id, c.service, c.weekdays, c.start_time, c.planned_minutes, c.starts_on, \
         c.ends_on, p.region_code FROM care_plan c JOIN organisation p ON p.id = c.provider_id \
         JOIN elder e ON e.id = c.elder_id WHERE c.state = 'active' AND e.status = 'active' AND p.status = 'open' \
         AND ($1 = '' OR c.id = $1)",
    )
    .bind(only.unwrap_or_default())
    .fetch_all(&db.pool)
    .await?;
    let mut made = 0;
    for r in plans {
        let (id, elder, provider, service): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let days = weekdays_of(&r.get::<String, _>(4));
        let (time, minutes): (String, i64) = (r.get(5), r.get(6));
        let starts = NaiveDate::parse_from_str(&r.get::<String, _>(7), "%Y-%m-%d").unwrap_or(today);
        let ends = r
            .get::<Option<String>, _>(8)
            .and_then(|e| NaiveDate::parse_from_str(&e, "%Y-%m-%d").ok());
        let region: String = r.get(9);
        let mut tx = db.begin().await?;
        let mut n = 0;
        for k in 0..AHEAD_DAYS {
            let d = today + chrono::Days::new(k);
            if d < starts
                || ends.is_some_and(|e| d > e)
                || !days.contains(&d.weekday().number_from_monday())
            {
                continue;
            }
            let start = format!("{d} {time}");
            let Ok(t) = chrono::NaiveDateTime::parse_from_str(&start, "%Y-%m-%d %H:%M") else {
                continue;
            };
            let done = sqlx::query(
                "INSERT INTO service_order (id, provider_id, elder_id, service, planned_start, start_min, planned_minutes, \
                 state, note, created_by, created_at, version, plan_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'created', NULL, '服务计划', $8, 1, $9) ON CONFLICT DO NOTHING",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&provider)
            .bind(&elder)
            .bind(&service)
            .bind(&start)
            .bind(t.and_utc().timestamp() / 60)
            .bind(minutes)
            .bind(crate::platform::now_rfc3339())
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            n += done as usize;
        }
        if n > 0 {
            audit::append(
                &mut tx,
                &Who {
                    actor_id: None,
                    actor_name: "服务计划".into(),
                },
                Entry {
                    action: "care_plan.orders",
                    entity: "care_plan",
                    entity_id: Some(&id),
                    region_code: Some(&region),
                    detail: serde_json::json!({"orders": n}).to_string(),
                },
            )
            .await?;
            tx.commit().await?;
        }
        made += n;
    }
    Ok(made)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndPlan {
    /// Why (the family stopped it, the elder moved into a home …)
    pub reason: String,
}

/// End a plan from today: no more orders; its orders not yet dispatched are cancelled with the
/// reason. Audited.
pub async fn end(db: &Db, scope: &Scope, who: &Who, id: &str, reason: &str) -> ApiResult<Plan> {
    let reason = crate::institution::text("reason", "原因", Some(reason), 200)?;
    if reason.chars().count() < 2 {
        return Err(ApiError::invalid("reason", "请写明停止的原因"));
    }
    let plan = get(db, scope, id).await?;
    if plan.state != "active" {
        return Err(ApiError::conflict("该服务计划已经停止"));
    }
    let today = crate::platform::today();
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE care_plan SET state = 'ended', ends_on = $2 WHERE id = $1 AND state = 'active'",
    )
    .bind(id)
    .bind(today.to_string())
    .execute(&mut *tx)
    .await?;
    let n = sqlx::query(
        "UPDATE service_order SET state = 'cancelled', reason = $2, version = version + 1 \
         WHERE plan_id = $1 AND state = 'created'",
    )
    .bind(id)
    .bind(format!("服务计划已停止：{reason}"))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "care_plan.end",
            entity: "care_plan",
            entity_id: Some(id),
            region_code: None,
            detail: serde_json::json!({"reason": reason, "cancelled": n}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, scope, id).await
}

/// Keep every plan's coming week made, every hour (and once at start).
pub fn keep_made(db: Db) {
    tokio::spawn(async move {
        loop {
            match make_orders(&db, crate::platform::today(), None).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(orders = n, "care plans: orders made"),
                Err(e) => tracing::warn!(error = ?e, "care plans: making orders failed"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
}

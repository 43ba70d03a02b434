//! The clocks of an event (接警 within 60 s, someone on scene within 30 min unless a region sets
//! its own) and the escalation of the events that breach them: a step "超时督办" on the event and
//! a change on every board, where the supervisors of the area see it at the top.

use super::{BOARD_COLS, BOARD_FROM, Hub, OPEN, raw};
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::RegionCode;
use yiyang_kernel::emergency::{self as rule, Sla, State};

impl Hub {
    /// The clocks of a place: its own region's, else the nearest enclosing one's, else the default.
    pub fn sla(&self, region: &str) -> Sla {
        let Ok(code) = RegionCode::parse(region) else {
            return Sla::default();
        };
        let slas = self.slas.read().expect("slas");
        slas.iter()
            .filter(|(r, _)| r.contains(&code))
            .max_by_key(|(r, _)| r.level() as u8)
            .map_or(Sla::default(), |(_, s)| *s)
    }

    pub async fn load_slas(&self, db: &Db) -> Result<(), sqlx::Error> {
        let rows = sqlx::query("SELECT region_code, ack_secs, on_scene_secs FROM emergency_sla")
            .fetch_all(&db.pool)
            .await?;
        let list = rows
            .iter()
            .filter_map(|r| {
                let code = RegionCode::parse(&r.get::<String, _>(0)).ok()?;
                Some((
                    code,
                    Sla {
                        ack_secs: r.get(1),
                        on_scene_secs: r.get(2),
                    },
                ))
            })
            .collect();
        *self.slas.write().expect("slas") = list;
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaReq {
    /// The region whose subtree the clocks are for
    pub region_code: String,
    /// 接警 within this many seconds (10–600)
    pub ack_secs: i64,
    /// Someone on scene within this many seconds (5 min – 4 h)
    pub on_scene_secs: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlaView {
    pub region_code: String,
    pub region_name: String,
    pub ack_secs: i64,
    pub on_scene_secs: i64,
    /// Set for this region itself (false: from an enclosing one or the default)
    pub own: bool,
}

pub fn view(hub: &Hub, regions: &crate::region::RegionIndex, region: &str) -> SlaView {
    let s = hub.sla(region);
    let own = RegionCode::parse(region)
        .is_ok_and(|c| hub.slas.read().expect("slas").iter().any(|(r, _)| *r == c));
    SlaView {
        region_code: region.to_string(),
        region_name: regions.path_name(region),
        ack_secs: s.ack_secs,
        on_scene_secs: s.on_scene_secs,
        own,
    }
}

/// Set a region's clocks (a supervisor of that region). Audited.
pub async fn put(db: &Db, hub: &Hub, scope: &Scope, who: &Who, req: &SlaReq) -> ApiResult<()> {
    scope.regional()?;
    let code = scope.region(&req.region_code)?;
    if !(10..=600).contains(&req.ack_secs) {
        return Err(ApiError::invalid("ack_secs", "接警时限应为 10 到 600 秒"));
    }
    if !(300..=4 * 3600).contains(&req.on_scene_secs) {
        return Err(ApiError::invalid(
            "on_scene_secs",
            "到场时限应为 5 分钟到 4 小时（300 到 14400 秒）",
        ));
    }
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO emergency_sla (region_code, ack_secs, on_scene_secs, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (region_code) DO UPDATE SET ack_secs = excluded.ack_secs, on_scene_secs = excluded.on_scene_secs, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(code.as_str())
    .bind(req.ack_secs)
    .bind(req.on_scene_secs)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "emergency_sla.put",
            entity: "region",
            entity_id: Some(code.as_str()),
            region_code: Some(code.as_str()),
            detail:
                serde_json::json!({"ack_secs": req.ack_secs, "on_scene_secs": req.on_scene_secs})
                    .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    hub.load_slas(db).await?;
    Ok(())
}

/// One round: every open event breaching a clock it was not yet escalated for gets the step
/// "超时督办" and goes to the boards again. Returns how many were escalated.
pub async fn escalate(db: &Db, hub: &Hub, now: i64) -> Result<usize, ApiError> {
    // Nothing can breach before the shortest acknowledgement clock.
    let sql = format!(
        "SELECT {BOARD_COLS} {BOARD_FROM} WHERE {OPEN} AND e.received_at < $1 ORDER BY e.received_at"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now - 10_000)
        .fetch_all(&db.pool)
        .await?;
    let mut n = 0;
    for r in rows.iter().map(raw) {
        let state = State::parse(&r.state).unwrap_or(State::Received);
        let Some(b) = rule::breach(
            state,
            r.received_at / 1000,
            r.acknowledged_at.map(|t| t / 1000),
            r.on_scene_at.map(|t| t / 1000),
            now / 1000,
            hub.sla(&r.region_code),
        ) else {
            continue;
        };
        if r.escalation.as_deref() == Some(b.as_str()) {
            continue;
        }
        let mut tx = db.begin().await?;
        let changed = sqlx::query(
            "UPDATE emergency_event SET escalation = $1, escalated_at = $2, version = version + 1 \
             WHERE id = $3 AND state <> 'closed' AND (escalation IS NULL OR escalation <> $1)",
        )
        .bind(b.as_str())
        .bind(now)
        .bind(&r.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO emergency_event_step (id, event_id, action, at, actor, detail) VALUES ($1, $2, 'escalate', $3, '系统', $4)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&r.id)
        .bind(now)
        .bind(serde_json::json!({"breach": b.as_str()}).to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(after) = super::read(db, &r.id).await? {
            hub.changed(&after);
        }
        n += 1;
    }
    Ok(n)
}

/// Escalate every few seconds while the server runs; the clocks are read again every half minute
/// (another server may have set them).
pub fn keep_watch(db: Db, hub: std::sync::Arc<Hub>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        let mut round = 0u64;
        loop {
            tick.tick().await;
            if round.is_multiple_of(6)
                && let Err(e) = hub.load_slas(&db).await
            {
                tracing::warn!(error = %e, "emergency clocks not read");
            }
            // Once a minute: devices silent past their allowance get a maintenance task.
            if round.is_multiple_of(12) {
                match super::fleet::maintain(&db, super::now_ms()).await {
                    Ok((0, 0)) => {}
                    Ok((o, c)) => {
                        tracing::info!(opened = o, closed = c, "device maintenance tasks")
                    }
                    Err(e) => tracing::warn!(error = %e, "device maintenance round failed"),
                }
            }
            round += 1;
            match escalate(&db, &hub, super::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "emergency events escalated"),
                Err(e) => tracing::warn!(error = %e.detail, "escalation round failed"),
            }
        }
    });
}

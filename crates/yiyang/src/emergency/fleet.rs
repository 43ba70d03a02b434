//! The device fleet (呼叫设备) as an officer sees it: devices installed by kind and vendor, those
//! gone silent, what the government pays for them a month; installing one in an elder's home and
//! retiring it; a maintenance task for each device silent past its kind's allowance, closed when
//! it is heard from again.

use super::{DeviceView, Hub, device_view, now_ms};
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::emergency as rule;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// active (正常) / silent (失联) / retired (已停用); default all
    pub status: Option<String>,
    /// One kind (call_button, bracelet, …)
    pub kind: Option<String>,
    /// At most this many, by serial (default 500, at most 5000)
    pub limit: Option<i64>,
}

pub(crate) const COLS: &str = "d.serial, d.kind, d.vendor, e.citizen_id_masked, d.region_code, d.installed_on, d.last_heartbeat, \
     d.battery, d.state, d.silent_hours";

/// The devices of an area, filtered. Silent is judged now, by each device's allowance.
pub async fn list(db: &Db, scope: &Scope, q: &DeviceQuery) -> ApiResult<Vec<DeviceView>> {
    let limit = q.limit.unwrap_or(500);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit 应在 1 到 5000 之间"));
    }
    if let Some(s) = &q.status
        && !["active", "silent", "retired"].contains(&s.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            "状态应为 active（正常）、silent（失联）或 retired（已停用）",
        ));
    }
    if let Some(k) = &q.kind
        && rule::device_kind_zh(k).is_none()
    {
        return Err(ApiError::invalid("kind", kinds_hint()));
    }
    let mut all = every(db, scope, q.kind.as_deref(), q.status.as_deref()).await?;
    all.truncate(limit as usize);
    Ok(all)
}

/// Every device of an area of a kind and status (the command line's `devices list`).
pub async fn every(
    db: &Db,
    scope: &Scope,
    kind: Option<&str>,
    status: Option<&str>,
) -> ApiResult<Vec<DeviceView>> {
    let now = now_ms();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM device d LEFT JOIN elder e ON e.id = d.elder_id \
         WHERE d.region_code >= $1 AND d.region_code <= $2 AND ($3 = '' OR d.kind = $3) \
         AND ($4 = '' OR ($4 = 'retired' AND d.state <> 'active') OR ($4 <> 'retired' AND d.state = 'active')) \
         ORDER BY d.serial"
    )))
    .bind(&scope.lo)
    .bind(&scope.hi)
    .bind(kind.unwrap_or(""))
    .bind(status.unwrap_or(""))
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| device_view(r, now))
        .filter(|d| status.is_none_or(|s| d.status == s))
        .collect())
}

fn kinds_hint() -> String {
    format!(
        "设备类型应为：{}",
        rule::DEVICE_KINDS
            .iter()
            .map(|k| format!("{}（{}）", k.0, k.1))
            .collect::<Vec<_>>()
            .join("、")
    )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Count {
    pub key: String,
    pub label: String,
    pub devices: i64,
    pub silent: i64,
    /// 元 a month the government pays for these
    pub monthly_fee_government: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Fleet {
    pub devices: i64,
    pub silent: i64,
    pub retired: i64,
    /// 元 a month the government pays for the devices in use
    pub monthly_fee_government: f64,
    /// Maintenance tasks open (devices silent past their allowance)
    pub open_tasks: i64,
    pub by_kind: Vec<Count>,
    pub by_vendor: Vec<Count>,
}

/// The fleet of an area by kind and vendor (every device of the area read: a county has thousands).
pub async fn summary(db: &Db, scope: &Scope) -> ApiResult<Fleet> {
    let rows = sqlx::query(
        "SELECT kind, vendor, state, last_heartbeat, installed_on, silent_hours, monthly_fee_fen, fee_payer \
         FROM device WHERE region_code >= $1 AND region_code <= $2",
    )
    .bind(&scope.lo)
    .bind(&scope.hi)
    .fetch_all(&db.pool)
    .await?;
    let open_tasks: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM device_task t JOIN device d ON d.id = t.device_id WHERE t.closed_at IS NULL \
         AND d.region_code >= $1 AND d.region_code <= $2",
    )
    .bind(&scope.lo)
    .bind(&scope.hi)
    .fetch_one(&db.pool)
    .await?;
    let now = now_ms();
    let mut f = Fleet {
        devices: 0,
        silent: 0,
        retired: 0,
        monthly_fee_government: 0.0,
        open_tasks,
        by_kind: vec![],
        by_vendor: vec![],
    };
    fn entry<'a>(list: &'a mut Vec<Count>, key: &str, label: &str) -> &'a mut Count {
        match list.iter().position(|c| c.key == key) {
            Some(i) => &mut list[i],
            None => {
                list.push(Count {
                    key: key.into(),
                    label: label.into(),
                    devices: 0,
                    silent: 0,
                    monthly_fee_government: 0.0,
                });
                list.last_mut().expect("pushed")
            }
        }
    }
    for r in &rows {
        let (kind, vendor, state): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if state != "active" {
            f.retired += 1;
            continue;
        }
        let silent = super::silent_now(&r.get::<String, _>(4), r.get(3), r.get(5), now);
        let fee = if r.get::<String, _>(7) == "government" {
            r.get::<i64, _>(6) as f64 / 100.0
        } else {
            0.0
        };
        f.devices += 1;
        f.silent += i64::from(silent);
        f.monthly_fee_government += fee;
        let zh = rule::device_kind_zh(&kind).unwrap_or("");
        for c in [
            entry(&mut f.by_kind, &kind, zh),
            entry(&mut f.by_vendor, &vendor, &vendor),
        ] {
            c.devices += 1;
            c.silent += i64::from(silent);
            c.monthly_fee_government += fee;
        }
    }
    f.by_kind.sort_by_key(|c| std::cmp::Reverse(c.devices));
    f.by_vendor.sort_by_key(|c| std::cmp::Reverse(c.devices));
    Ok(f)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// The vendor's serial (1–64 letters, digits, -_.:)
    pub serial: String,
    /// call_button / bracelet / fall_sensor / smoke / gas / door / mattress
    pub kind: String,
    pub vendor: String,
    /// The elder in whose home it is installed
    pub elder_id: String,
    /// 元 a month (0–500)
    pub monthly_fee: f64,
    /// government / self (政府付费 / 自费); default government
    pub fee_payer: Option<String>,
}

/// Install a device in an elder's home (a supervisor of her area). Audited.
pub async fn install(
    db: &Db,
    hub: &Hub,
    scope: &Scope,
    who: &Who,
    d: NewDevice,
) -> ApiResult<DeviceView> {
    let serial = d.serial.trim().to_string();
    if !rule::valid_token(&serial) {
        return Err(ApiError::invalid(
            "serial",
            "序列号应为 1–64 位字母、数字或 -_.:",
        ));
    }
    let Some(&(kind, _, hours)) = rule::DEVICE_KINDS.iter().find(|k| k.0 == d.kind) else {
        return Err(ApiError::invalid("kind", kinds_hint()));
    };
    let vendor = d.vendor.trim();
    if vendor.is_empty() || vendor.chars().count() > 50 {
        return Err(ApiError::invalid("vendor", "请填写厂商（最多 50 个字）"));
    }
    let fen = (d.monthly_fee * 100.0).round();
    if !d.monthly_fee.is_finite() || !(0.0..=500.0).contains(&d.monthly_fee) {
        return Err(ApiError::invalid("monthly_fee", "月服务费应为 0 到 500 元"));
    }
    let payer = d.fee_payer.as_deref().unwrap_or("government");
    if payer != "government" && payer != "self" {
        return Err(ApiError::invalid(
            "fee_payer",
            "付费方应为 government（政府）或 self（自费）",
        ));
    }
    let region: String =
        sqlx::query("SELECT residence_region FROM elder WHERE id = $1 AND status = 'active'")
            .bind(&d.elder_id)
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.get::<String, _>(0))
            .filter(|r| scope.contains(r))
            .ok_or_else(|| {
                ApiError::not_found("未找到该老年人（或不在您的管辖范围内、已故或迁出）")
            })?;
    let taken = sqlx::query("SELECT 1 FROM device WHERE serial = $1")
        .bind(&serial)
        .fetch_optional(&db.pool)
        .await?
        .is_some();
    if taken {
        return Err(ApiError::conflict("该序列号的设备已登记"));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO device (id, serial, kind, vendor, elder_id, region_code, gateway_id, installed_on, monthly_fee_fen, \
         fee_payer, silent_hours, last_heartbeat, battery, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9, $10, NULL, NULL, 'active', $11)",
    )
    .bind(&id)
    .bind(&serial)
    .bind(kind)
    .bind(vendor)
    .bind(&d.elder_id)
    .bind(&region)
    .bind(crate::platform::today().to_string())
    .bind(fen as i64)
    .bind(payer)
    .bind(hours)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "device.install",
            entity: "elder",
            entity_id: Some(&d.elder_id),
            region_code: Some(&region),
            detail: serde_json::json!({"serial": serial, "kind": kind, "vendor": vendor,
                "monthly_fee_fen": fen as i64, "fee_payer": payer})
            .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    hub.forget(&serial);
    one(db, &serial).await
}

async fn one(db: &Db, serial: &str) -> ApiResult<DeviceView> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM device d LEFT JOIN elder e ON e.id = d.elder_id WHERE d.serial = $1"
    )))
    .bind(serial)
    .fetch_one(&db.pool)
    .await?;
    Ok(device_view(&r, now_ms()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireReq {
    /// Why (taken back, broken, the elder moved…), at least 2 characters
    pub reason: String,
}

/// Retire a device: its messages are refused from now on. Audited.
pub async fn retire(
    db: &Db,
    hub: &Hub,
    scope: &Scope,
    who: &Who,
    serial: &str,
    reason: &str,
) -> ApiResult<DeviceView> {
    let reason = reason.trim();
    if reason.chars().count() < 2 || reason.chars().count() > 200 {
        return Err(ApiError::invalid(
            "reason",
            "请写明停用原因（2 到 200 个字）",
        ));
    }
    let r = sqlx::query("SELECT id, region_code, state FROM device WHERE serial = $1")
        .bind(serial)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.contains(&r.get::<String, _>(1)))
        .ok_or_else(|| ApiError::not_found("未找到该设备（或不在您的管辖范围内）"))?;
    if r.get::<String, _>(2) != "active" {
        return Err(ApiError::conflict("该设备已停用"));
    }
    let (id, region): (String, String) = (r.get(0), r.get(1));
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE device SET state = 'retired' WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE device_task SET closed_at = $1, note = '设备已停用' WHERE device_id = $2 AND closed_at IS NULL")
        .bind(now_ms())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "device.retire",
            entity: "device",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail: serde_json::json!({"serial": serial, "reason": reason}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    hub.forget(serial);
    one(db, serial).await
}

/// Open a maintenance task for each device silent past its allowance that has none, and close
/// those whose device was heard from since. Returns (opened, closed).
pub async fn maintain(db: &Db, now: i64) -> Result<(u64, u64), sqlx::Error> {
    let closed = sqlx::query(
        "UPDATE device_task SET closed_at = $1, note = '已恢复上报' WHERE closed_at IS NULL AND kind = 'silent' \
         AND device_id IN (SELECT id FROM device WHERE last_heartbeat > device_task.opened_at)",
    )
    .bind(now)
    .execute(&db.pool)
    .await?
    .rows_affected();
    let rows = sqlx::query(
        "SELECT d.id, d.last_heartbeat, d.installed_on, d.silent_hours FROM device d WHERE d.state = 'active' \
         AND (d.last_heartbeat IS NULL OR d.last_heartbeat < $1 - d.silent_hours * 3600000) \
         AND NOT EXISTS (SELECT 1 FROM device_task t WHERE t.device_id = d.id AND t.closed_at IS NULL)",
    )
    .bind(now)
    .fetch_all(&db.pool)
    .await?;
    let mut opened = 0;
    for r in rows {
        if !super::silent_now(&r.get::<String, _>(2), r.get(1), r.get(3), now) {
            continue;
        }
        opened += sqlx::query(
            "INSERT INTO device_task (id, device_id, kind, opened_at) VALUES ($1, $2, 'silent', $3)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(r.get::<String, _>(0))
        .bind(now)
        .execute(&db.pool)
        .await?
        .rows_affected();
    }
    // Messages that made no event are kept 90 days for the vendor to look into, then let go (a
    // misconfigured device repeating itself would otherwise fill the disk); a round deletes at
    // most 5,000 so it never holds the writers long.
    sqlx::query(
        "DELETE FROM device_reject WHERE id IN (SELECT id FROM device_reject WHERE received_at < $1 LIMIT 5000)",
    )
    .bind(now - REJECTS_KEPT_MS)
    .execute(&db.pool)
    .await?;
    Ok((opened, closed))
}

/// How long a rejected device message is kept (90 days).
pub const REJECTS_KEPT_MS: i64 = 90 * 24 * 3600 * 1000;

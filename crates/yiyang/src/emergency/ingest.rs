//! Device messages in: checked, written once by (device, event id) in the group commit, and only
//! then answered (an HTTP 200, an MQTT acknowledgement) and pushed to the boards.
//!
//! Heartbeats and low batteries update the device and never reach the board. A message that
//! cannot be used (unknown serial, malformed) is kept in `device_reject` and answered as taken,
//! so a broker does not send it again forever.

use super::{BoardEvent, Raw, now_ms};
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use yiyang_kernel::emergency::{self as rule, EventType};

/// Where a message came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The broker; the serial is the topic's.
    Mqtt(String),
    /// A vendor's gateway (its id), the serial in the body.
    Http(String),
}

impl Source {
    fn as_str(&self) -> &'static str {
        match self {
            Source::Mqtt(_) => "mqtt",
            Source::Http(_) => "http",
        }
    }
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Outcome {
    /// A new event on the board
    Created { event: String },
    /// The same event id again: still one event (its duplicate count raised)
    Duplicate { event: String },
    /// A heartbeat or battery report: the device updated
    Device,
    /// Kept as rejected, with the reason
    Rejected { reason: String },
}

/// A change on the board, for the live streams.
#[derive(Debug, Clone)]
pub struct Notice {
    pub region_code: String,
    pub added: bool,
    pub raw: Arc<Raw>,
}

#[derive(Clone)]
struct DeviceRef {
    id: String,
    elder_id: Option<String>,
    elder_name: Option<String>,
    region_code: String,
    gateway_id: Option<String>,
    active: bool,
    read_at: std::time::Instant,
}

/// The board's broadcast and the devices by serial (read once a minute at most).
pub struct Hub {
    tx: broadcast::Sender<Arc<Notice>>,
    devices: Mutex<HashMap<String, DeviceRef>>,
    /// Each region's clocks (`emergency_sla`), read again when set and every half minute.
    pub(crate) slas: std::sync::RwLock<Vec<(yiyang_kernel::RegionCode, rule::Sla)>>,
    /// The device messages' writer (`batch`), started with the first message.
    writer: std::sync::OnceLock<super::batch::Queue>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(4096).0,
            devices: Mutex::new(HashMap::new()),
            slas: std::sync::RwLock::default(),
            writer: std::sync::OnceLock::new(),
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.tx.subscribe()
    }
    fn send(&self, r: &Raw, added: bool) {
        let _ = self.tx.send(Arc::new(Notice {
            region_code: r.region_code.clone(),
            added,
            raw: Arc::new(r.clone()),
        }));
    }
    pub fn added(&self, r: &Raw) {
        self.send(r, true)
    }
    pub fn changed(&self, r: &Raw) {
        self.send(r, false)
    }
    /// Forget a device (changed or retired): read again on its next message.
    pub fn forget(&self, serial: &str) {
        self.devices.lock().expect("devices").remove(serial);
    }

    async fn device(&self, db: &Db, serial: &str) -> ApiResult<Option<DeviceRef>> {
        if let Some(d) = self.devices.lock().expect("devices").get(serial)
            && d.read_at.elapsed() < std::time::Duration::from_secs(60)
        {
            return Ok(Some(d.clone()));
        }
        let r = sqlx::query(
            "SELECT d.id, d.elder_id, e.name, d.region_code, d.gateway_id, d.state FROM device d \
             LEFT JOIN elder e ON e.id = d.elder_id WHERE d.serial = $1",
        )
        .bind(serial)
        .fetch_optional(&db.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        let d = DeviceRef {
            id: r.get(0),
            elder_id: r.get(1),
            elder_name: r.get(2),
            region_code: r.get(3),
            gateway_id: r.get(4),
            active: r.get::<String, _>(5) == "active",
            read_at: std::time::Instant::now(),
        };
        let mut m = self.devices.lock().expect("devices");
        if m.len() > 200_000 {
            m.clear();
        }
        m.insert(serial.to_string(), d.clone());
        Ok(Some(d))
    }
}

/// Take one message. `Err` only when it could not be stored (the database away): the sender must
/// send it again (MQTT: not acknowledged; HTTP: 503).
pub async fn take(db: &Db, hub: &Hub, source: Source, payload: &[u8]) -> ApiResult<Outcome> {
    let received = now_ms();
    let msg = match rule::parse_message(payload) {
        Ok(m) => m,
        Err(reason) => {
            let serial = match &source {
                Source::Mqtt(s) => Some(s.clone()),
                Source::Http(_) => None,
            };
            return reject(db, serial.as_deref(), &source, reason, payload, received).await;
        }
    };
    let serial = match (&source, &msg.serial) {
        (Source::Mqtt(s), _) => s.clone(),
        (Source::Http(_), Some(s)) => s.clone(),
        (Source::Http(_), None) => {
            return reject(
                db,
                None,
                &source,
                "缺少字段 serial".into(),
                payload,
                received,
            )
            .await;
        }
    };
    let device = hub.device(db, &serial).await?;
    let device = match (device, &source) {
        (Some(d), Source::Http(gw)) if d.gateway_id.as_deref() != Some(gw.as_str()) => {
            // A gateway speaks for its own devices only; to it, another's is unknown.
            let _ = d;
            None
        }
        (d, _) => d,
    };
    let Some(device) = device.filter(|d| d.active) else {
        return reject(
            db,
            Some(&serial),
            &source,
            "未登记（或已停用）的设备序列号".into(),
            payload,
            received,
        )
        .await;
    };
    let queue = hub.writer.get_or_init(|| super::batch::start(db)).clone();
    if !msg.kind.is_alarm() {
        super::batch::write(&queue, device.id.clone(), received, msg.battery, None).await?;
        return Ok(Outcome::Device);
    }
    let id = uuid::Uuid::now_v7().to_string();
    let raw = Raw {
        id: id.clone(),
        kind: msg.kind.as_str().into(),
        priority: msg.kind.priority(),
        state: "received".into(),
        source: source.as_str().into(),
        serial: Some(serial.clone()),
        elder_id: device.elder_id.clone(),
        elder_name: device.elder_name.clone(),
        region_code: device.region_code.clone(),
        // To the millisecond: the device's own clock, for whoever times the way to the board.
        occurred_at: msg
            .at
            .with_timezone(&super::china())
            .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string(),
        received_at: received,
        acknowledged_at: None,
        on_scene_at: None,
        closed_at: None,
        triage: None,
        dispatched_to: None,
        outcome: None,
        duplicate_count: 0,
        escalation: None,
        escalated_at: None,
    };
    let alarm = (raw.clone(), msg.event_id.clone(), msg.lat, msg.lng);
    let (event, new) = super::batch::write(
        &queue,
        device.id.clone(),
        received,
        msg.battery,
        Some(alarm),
    )
    .await?;
    if !new {
        return Ok(Outcome::Duplicate { event });
    }
    hub.added(&raw);
    Ok(Outcome::Created { event })
}

async fn reject(
    db: &Db,
    serial: Option<&str>,
    source: &Source,
    reason: String,
    payload: &[u8],
    received: i64,
) -> ApiResult<Outcome> {
    // Kept short and as text: enough for the vendor to see what was sent.
    let text: String = String::from_utf8_lossy(&payload[..payload.len().min(1024)])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let serial = serial.filter(|s| rule::valid_token(s)).map(str::to_string);
    let (src, why) = (source.as_str(), reason.clone());
    db.grouped_with(false, move |tx| {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO device_reject (id, serial, source, reason, payload, received_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&serial)
            .bind(src)
            .bind(&why)
            .bind(&text)
            .bind(received)
            .execute(&mut **tx)
            .await?;
            Ok(Ok(()))
        })
    })
    .await?;
    Ok(Outcome::Rejected { reason })
}

/// A gateway by its bearer token (stored hashed).
pub async fn gateway(db: &Db, token: &str) -> ApiResult<String> {
    let hash = token_hash(token);
    sqlx::query("SELECT id FROM device_gateway WHERE token_hash = $1")
        .bind(&hash)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "网关令牌无效或已更换",
            )
        })
}

pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Register a gateway, or give an existing one (by name) a new token; the token is shown once.
pub async fn gateway_token(db: &Db, name: &str) -> anyhow::Result<(String, String)> {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    let token = format!("yg_{}", hex::encode(b));
    let now = crate::platform::now_rfc3339();
    let existing: Option<String> = sqlx::query("SELECT id FROM device_gateway WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.get(0));
    let id = match existing {
        Some(id) => {
            sqlx::query("UPDATE device_gateway SET token_hash = $1, rotated_at = $2 WHERE id = $3")
                .bind(token_hash(&token))
                .bind(&now)
                .bind(&id)
                .execute(&db.pool)
                .await?;
            id
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            sqlx::query(
                "INSERT INTO device_gateway (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(name)
            .bind(token_hash(&token))
            .bind(&now)
            .execute(&db.pool)
            .await?;
            id
        }
    };
    Ok((id, token))
}

/// For the board's stream: a notice as the reader may see it.
pub fn view(
    n: &Notice,
    names: bool,
    regions: &crate::region::RegionIndex,
    hub: &Hub,
) -> BoardEvent {
    n.raw.view(
        names,
        regions.path_name(&n.region_code),
        now_ms(),
        hub.sla(&n.region_code),
    )
}

/// Whether it is an alarm a device may send (for the simulator).
pub fn alarm_types() -> [EventType; 5] {
    [
        EventType::Sos,
        EventType::Fall,
        EventType::Smoke,
        EventType::Gas,
        EventType::Door,
    ]
}

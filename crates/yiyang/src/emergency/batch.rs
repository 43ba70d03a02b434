//! The device messages' own writer: whatever has arrived (up to [`BATCH_MAX`]) is written in one
//! transaction — the alarms in one multi-row upsert, each device's last sign of life after — and
//! committed once; only then is each sender answered. At a thousand messages a second the group
//! commit of the users' writes spent four round trips on each (a savepoint, the insert, the
//! device, the release): PostgreSQL's p99 was 545 ms. Its own thread and connection, as the group
//! commit has, so a crowd of requests on the server's runtime does not slow each statement.

use super::Raw;
use crate::platform::db::Db;
use crate::platform::error::ApiError;
use sqlx::Row;
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// Messages in one transaction at most (SQLite binds at most 32,766 values a statement: the
/// upsert is cut in parts of [`ROWS_PER_INSERT`]).
pub const BATCH_MAX: usize = 1000;
const ROWS_PER_INSERT: usize = 200;

/// One message, checked, its device known.
pub struct Item {
    pub device_id: String,
    pub received: i64,
    pub battery: Option<i64>,
    /// An alarm: its event (new id, the device's event id, where it came from, its place).
    pub alarm: Option<(Raw, String, Option<f64>, Option<f64>)>,
    /// (the event's id, whether it is new); for a heartbeat ("", false).
    pub answer: oneshot::Sender<Result<(String, bool), ApiError>>,
}

pub type Queue = mpsc::Sender<Item>;

fn lost() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "数据库暂时无法写入，消息未保存，请重发",
    )
}

/// Queue a message and wait until it is committed.
pub async fn write(
    queue: &Queue,
    device_id: String,
    received: i64,
    battery: Option<i64>,
    alarm: Option<(Raw, String, Option<f64>, Option<f64>)>,
) -> Result<(String, bool), ApiError> {
    let (answer, answered) = oneshot::channel();
    let item = Item {
        device_id,
        received,
        battery,
        alarm,
        answer,
    };
    if queue.send(item).await.is_err() {
        return Err(lost());
    }
    answered.await.unwrap_or_else(|_| Err(lost()))
}

/// The writer of `db`'s device messages, on a thread of its own; it ends with the last sender.
pub fn start(db: &Db) -> Queue {
    let (send, receive) = mpsc::channel::<Item>(4 * BATCH_MAX);
    let db = db.clone();
    let writer = move || async move {
        let mut items = receive;
        let refuse = |i: Item| {
            let _ = i.answer.send(Err(lost()));
        };
        let Some(own) = db.writer_pool("device writer", &mut items, refuse).await else {
            return;
        };
        drop(db);
        run(own, items).await
    };
    // With no thread the receiver is dropped: every message is answered "not saved".
    let _ = crate::platform::on_own_thread("device-writer", writer);
    send
}

async fn run(db: Db, mut items: mpsc::Receiver<Item>) {
    while let Some(first) = items.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match items.try_recv() {
                Ok(i) => batch.push(i),
                Err(_) => break,
            }
        }
        match write_batch(&db, &batch).await {
            Ok(answers) => {
                for (item, a) in batch.into_iter().zip(answers) {
                    let _ = item.answer.send(Ok(a));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), "device messages not written");
                for item in batch {
                    let _ = item.answer.send(Err(lost()));
                }
            }
        }
    }
}

/// The batch in one transaction; each message's answer in order.
async fn write_batch(db: &Db, batch: &[Item]) -> Result<Vec<(String, bool)>, sqlx::Error> {
    // The same (device, event id) twice in one batch: the first writes, the others are repeats.
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    let mut rows: Vec<usize> = vec![];
    let mut repeats: Vec<(usize, usize)> = vec![];
    for (i, item) in batch.iter().enumerate() {
        if let Some((_, event_id, _, _)) = &item.alarm {
            match first.get(&(item.device_id.as_str(), event_id.as_str())) {
                Some(&j) => repeats.push((i, j)),
                None => {
                    first.insert((item.device_id.as_str(), event_id.as_str()), i);
                    rows.push(i);
                }
            }
        }
    }
    let mut tx = db.begin().await?;
    // (device, event id) → (the event's id, its duplicate count after this write)
    let mut stored: HashMap<(String, String), (String, i64)> = HashMap::new();
    for part in rows.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO emergency_event (id, device_id, event_id, kind, source, priority, elder_id, region_code, \
             occurred_at, received_at, lat, lng, state, duplicate_count, version) VALUES ",
        );
        for k in 0..part.len() {
            let b = k * 12;
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, 'received', 0, 1)",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10,
                b + 11,
                b + 12
            ));
        }
        sql.push_str(
            " ON CONFLICT (device_id, event_id) DO UPDATE SET duplicate_count = emergency_event.duplicate_count + 1 \
             RETURNING id, device_id, event_id, duplicate_count",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for &i in part {
            let item = &batch[i];
            let (raw, event_id, lat, lng) = item.alarm.as_ref().expect("alarm row");
            q = q
                .bind(raw.id.clone())
                .bind(item.device_id.clone())
                .bind(event_id.clone())
                .bind(raw.kind.clone())
                .bind(raw.source.clone())
                .bind(raw.priority)
                .bind(raw.elder_id.clone())
                .bind(raw.region_code.clone())
                .bind(raw.occurred_at.clone())
                .bind(item.received)
                .bind(*lat)
                .bind(*lng);
        }
        for r in q.fetch_all(&mut *tx).await? {
            stored.insert((r.get(1), r.get(2)), (r.get(0), r.get(3)));
        }
    }
    // Repeats inside the batch count like repeats from before.
    let mut extra: HashMap<String, i64> = HashMap::new();
    for &(i, j) in &repeats {
        let _ = i;
        let item = &batch[j];
        let (_, event_id, _, _) = item.alarm.as_ref().expect("alarm row");
        if let Some((id, _)) = stored.get(&(item.device_id.clone(), event_id.clone())) {
            *extra.entry(id.clone()).or_default() += 1;
        }
    }
    for (id, n) in &extra {
        sqlx::query(
            "UPDATE emergency_event SET duplicate_count = duplicate_count + $1 WHERE id = $2",
        )
        .bind(*n)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    // Each device's last sign of life once (its last battery reading in the batch).
    let mut devices: HashMap<&str, (i64, Option<i64>)> = HashMap::new();
    for item in batch {
        let e = devices
            .entry(&item.device_id)
            .or_insert((item.received, None));
        e.0 = e.0.max(item.received);
        if item.battery.is_some() {
            e.1 = item.battery;
        }
    }
    let mut devices: Vec<_> = devices.into_iter().collect();
    // In one order, so two writers (two servers) cannot deadlock on the same devices.
    devices.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (id, (at, battery)) in devices {
        sqlx::query(
            "UPDATE device SET last_heartbeat = $1, battery = COALESCE($2, battery) WHERE id = $3",
        )
        .bind(at)
        .bind(battery)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(batch
        .iter()
        .enumerate()
        .map(|(i, item)| match &item.alarm {
            None => (String::new(), false),
            Some((raw, event_id, _, _)) => {
                match stored.get(&(item.device_id.clone(), event_id.clone())) {
                    // New only for the message whose own id was written.
                    Some((id, _)) => (
                        id.clone(),
                        *id == raw.id && !repeats.iter().any(|r| r.0 == i),
                    ),
                    None => (String::new(), false),
                }
            }
        })
        .collect())
}

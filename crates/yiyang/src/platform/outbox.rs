//! Notifications to elders and families through an outbox: a row is written in the same
//! transaction as the change it tells about (an entitlement granted, ended or refused), and a
//! sender delivers pending rows to an SMS/message gateway over HTTP, retrying with backoff. If the
//! gateway is down nothing is lost: rows stay pending. Delivery is at least once; every request
//! carries the row id as `Idempotency-Key` so the gateway can drop repeats.
//!
//! The row holds no phone number and no text: both are read when sending (the phone decrypted from
//! the registry), so a changed phone number is used and no personal data sits in the outbox.

use super::crypto::KeyRing;
use super::db::Db;
use crate::platform::migrations::Stmt::{self, *};
use sqlx::Row;
use std::time::Duration;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE notification_outbox (id TEXT PRIMARY KEY, entitlement_id TEXT, elder_id TEXT NOT NULL, \
         event TEXT NOT NULL, state TEXT NOT NULL, attempts BIGINT NOT NULL, next_attempt_at BIGINT NOT NULL, \
         created_at TEXT NOT NULL, sent_at TEXT, last_error TEXT, run_id TEXT, \
         CONSTRAINT notification_outbox_state_check CHECK (state IN ('pending', 'sent', 'failed', 'skipped')))",
    ),
    Both("CREATE INDEX notification_outbox_due ON notification_outbox (state, next_attempt_at)"),
];

/// A run's grants are queued as one row (event `run_granted`, no person) instead of one row per
/// person: a first run grants a million people at once, and writing a million rows in its
/// transaction cost more than the rest of the run. The sender expands that row into the
/// per-person messages a slice at a time, remembering where it stopped (`expanded_to`, the last
/// person queued, in person order); the run's row is `sent` once every person is queued.
pub const MIGRATION_RUN_ROWS: &[Stmt] = &[Both(
    "ALTER TABLE notification_outbox ADD COLUMN expanded_to TEXT",
)];

/// The runs' rows still to expand, found without walking every pending message (a million may
/// wait while the gateway is down; the sender looks for runs every few seconds).
pub const MIGRATION_RUN_INDEX: &[Stmt] = &[Both(
    "CREATE INDEX notification_outbox_runs ON notification_outbox (id) WHERE event = 'run_granted' AND state = 'pending'",
)];

/// A visit's confirmation code goes to the family through the outbox too; the row names the
/// order (the code is read, decrypted, from the order when sending, and not sent once lapsed).
pub const MIGRATION_ORDER: &[Stmt] = &[Both(
    "ALTER TABLE notification_outbox ADD COLUMN order_id TEXT",
)];

/// An entitlement `n` as its run created it, granted (免申即享): no transition since. A run's
/// band change or resumption of something already held also names the run, but tells nobody of a
/// grant; an approval sends its own message.
const CREATED_GRANTED: &str =
    "NOT EXISTS (SELECT 1 FROM entitlement_change c WHERE c.entitlement_id = n.id)";

/// The event of a run's one row; the id is `{run}:granted` (a person's message is `{run}:{person}`).
pub const RUN_GRANTED: &str = "run_granted";

/// A run row's cursor through the run's packs starts with this (then the last bucket queued).
const PACK_CURSOR: &str = "bucket:";

/// After this many failed attempts a row is `failed` (shown to the officer, not retried).
pub const MAX_ATTEMPTS: i64 = 12;

/// Seconds to wait after the n-th failure: 30 s, doubling, at most an hour.
pub fn backoff(attempts: i64) -> i64 {
    (30i64 << attempts.clamp(0, 7)).min(3600)
}

/// Where messages go: the gateway's URL (http://host:port/path) and an optional bearer token.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub url: String,
    pub token: Option<String>,
}

impl Gateway {
    /// From `YIYANG_NOTIFY_URL` and `YIYANG_NOTIFY_TOKEN`; none when the URL is not set.
    pub fn from_env() -> Option<Gateway> {
        let url = std::env::var("YIYANG_NOTIFY_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        Some(Gateway {
            url,
            token: std::env::var("YIYANG_NOTIFY_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        })
    }

    /// POST one JSON message; Ok on a 2xx answer. Plain HTTP/1.1 (a TLS relay sits in front
    /// where the gateway is remote).
    pub async fn post(
        &self,
        idempotency_key: &str,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        use http_body_util::{BodyExt, Full};
        let uri: hyper::Uri = self.url.parse().map_err(|e| format!("网关地址无效：{e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("网关地址应以 http:// 开头".into());
        }
        let host = uri.host().ok_or("网关地址缺少主机")?.to_string();
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| "连接网关超时".to_string())?
        .map_err(|e| format!("无法连接网关：{e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("网关握手失败：{e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header("host", format!("{host}:{port}"))
            .header("content-type", "application/json")
            .header("idempotency-key", idempotency_key);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .map_err(|e| format!("请求构造失败：{e}"))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
            .await
            .map_err(|_| "网关响应超时".to_string())?
            .map_err(|e| format!("发送失败：{e}"))?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("网关返回 HTTP {}", status.as_u16()))
        }
    }
}

/// An item's name and what it brings, in words ("高龄津贴", "每月 50 元").
async fn item_words(
    db: &Db,
    version_id: &str,
    code: &str,
    amount_fen: i64,
    quota: i64,
) -> Result<(String, String), sqlx::Error> {
    let def: Option<crate::catalog::store::ItemDef> =
        sqlx::query("SELECT definition FROM catalog_item WHERE version_id = $1 AND code = $2")
            .bind(version_id)
            .bind(code)
            .fetch_optional(&db.pool)
            .await?
            .and_then(|x| serde_json::from_str(&x.get::<String, _>(0)).ok());
    let item = def.as_ref().map_or(code.to_string(), |d| d.name.clone());
    let amount = amount_fen as f64 / 100.0;
    let benefit = match def
        .as_ref()
        .map_or("cash_monthly", |d| d.benefit_kind.as_str())
    {
        "one_off" => format!("一次性 {amount} 元"),
        "meal_subsidy" => format!("在助餐点用餐每餐减免 {amount} 元"),
        "service_monthly" => format!("每月上门服务 {quota} 次"),
        _ => format!("每月 {amount} 元"),
    };
    Ok((item, benefit))
}

/// The message of a run's grants to one person: every item granted by the run, in one text
/// (a first run grants several items at once; one message, not one per item).
async fn render_run(
    db: &Db,
    elder_id: &str,
    run_id: &str,
) -> Result<Option<(Vec<u8>, serde_json::Value)>, sqlx::Error> {
    let Some(e) = sqlx::query("SELECT name, phone_enc, status FROM elder WHERE id = $1")
        .bind(elder_id)
        .fetch_optional(&db.pool)
        .await?
    else {
        return Ok(None);
    };
    let (name, phone, status): (String, Option<Vec<u8>>, String) = (e.get(0), e.get(1), e.get(2));
    if status == "deceased" {
        return Ok(None);
    }
    // `state <> 'ended'`: the words of the partial index `entitlement_open`, so SQLite uses it.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT item_code, amount_fen, quota, since, {} FROM entitlement n \
         WHERE elder_id = $1 AND run_id = $2 AND state = 'granted' AND state <> 'ended' AND {CREATED_GRANTED} ORDER BY item_code",
        crate::catalog::version_of("n"),
    )))
    .bind(elder_id)
    .bind(run_id)
    .fetch_all(&db.pool)
    .await?;
    // (item, amount, quota, since, version): the rows, and the grants still packed.
    let mut granted: Vec<(String, i64, i64, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let bucket = crate::catalog::pack::bucket(elder_id);
    let packed: Vec<crate::catalog::pack::Entry> =
        crate::catalog::pack::of_run_bucket(db, run_id, bucket)
            .await?
            .into_iter()
            .filter(|e| e.elder_id == elder_id)
            .collect();
    if !packed.is_empty() {
        // A packed grant is since its run's date, under its run's catalogue version.
        let run = sqlx::query("SELECT version_id, on_date FROM catalog_run WHERE id = $1")
            .bind(run_id)
            .fetch_one(&db.pool)
            .await?;
        let (version, since): (String, String) = (run.get(0), run.get(1));
        for e in packed {
            granted.push((
                e.item_code,
                e.amount_fen,
                e.quota,
                since.clone(),
                version.clone(),
            ));
        }
        granted.sort();
    }
    if granted.is_empty() {
        return Ok(None);
    }
    let mut parts = vec![];
    for (code, amount, quota, _, version) in &granted {
        let (item, benefit) = item_words(db, version, code, *amount, *quota).await?;
        parts.push(format!("{item}（{benefit}）"));
    }
    let text = format!(
        "【颐养】{}您好：您已享受以下基本养老服务：{}，自{}起。无需申请，如有疑问请联系所在村（社区）。",
        yiyang_kernel::mask::name(&name),
        parts.join("、"),
        granted[0].3
    );
    Ok(phone.map(|p| {
        (
            p,
            serde_json::json!({ "template": "entitlement_granted", "text": text }),
        )
    }))
}

/// What a message says, in plain words: the item, what it brings, from when.
/// The text a person's message would say (tests and previews).
pub async fn render_text(
    db: &Db,
    entitlement_id: &str,
    event: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(render(db, entitlement_id, event)
        .await?
        .and_then(|(_, m)| m["text"].as_str().map(str::to_string)))
}

async fn render(
    db: &Db,
    entitlement_id: &str,
    event: &str,
) -> Result<Option<(Vec<u8>, serde_json::Value)>, sqlx::Error> {
    let Some(r) = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.item_code, n.tier, n.amount_fen, n.quota, n.since, n.ended_on, {}, e.name, e.phone_enc, e.status \
         FROM entitlement n JOIN elder e ON e.id = n.elder_id WHERE n.id = $1",
        crate::catalog::version_of("n"),
    )))
    .bind(entitlement_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    // The dead get no message (and no lookups for one).
    if r.get::<String, _>(9) == "deceased" {
        return Ok(None);
    }
    let code: String = r.get(0);
    let (item, benefit) = item_words(db, &r.get::<String, _>(6), &code, r.get(2), r.get(3)).await?;
    let name: String = r.get(7);
    let who = yiyang_kernel::mask::name(&name);
    let text = match event {
        "granted" => format!(
            "【颐养】{who}您好：您已享受“{item}”，{benefit}，自{}起。无需申请，如有疑问请联系所在村（社区）。",
            r.get::<String, _>(4)
        ),
        "ended" => format!(
            "【颐养】{who}您好：您的“{item}”自{}起停止，原因是不再符合条件。如有异议请联系所在村（社区）。",
            r.get::<Option<String>, _>(5).unwrap_or_default()
        ),
        _ => {
            // The officer's reason, as written when refusing (`不予批准：…`).
            let note: Option<String> = sqlx::query(
                "SELECT note FROM entitlement_change WHERE entitlement_id = $1 AND to_state = 'ended' \
                 ORDER BY at DESC LIMIT 1",
            )
            .bind(entitlement_id)
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.get(0));
            let why = note
                .as_deref()
                .and_then(|n| n.strip_prefix("不予批准："))
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("原因：{n}。"))
                .unwrap_or_default();
            format!(
                "【颐养】{who}您好：您的“{item}”申请未获批准。{why}如有异议请联系所在村（社区）。"
            )
        }
    };
    let phone: Option<Vec<u8>> = r.get(8);
    Ok(phone.map(|p| {
        (
            p,
            serde_json::json!({ "template": format!("entitlement_{event}"), "text": text }),
        )
    }))
}

/// A visit's confirmation code, to the elder's (family's) phone: who came, for what, the code.
/// Nothing once the code has lapsed or the visit is confirmed.
async fn render_visit_code(
    db: &Db,
    keys: &KeyRing,
    order_id: &str,
) -> Result<Option<(Vec<u8>, serde_json::Value)>, sqlx::Error> {
    let Some(r) = sqlx::query(
        "SELECT e.name, e.phone_enc, o.service, o.code_enc, o.code_expires, o.state, \
         (SELECT s.name FROM staff s WHERE s.id = o.caregiver_id) \
         FROM service_order o JOIN elder e ON e.id = o.elder_id WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let (expires, state): (Option<i64>, String) = (r.get(4), r.get(5));
    if state != "checked_out" || expires.is_none_or(|e| e <= super::now_secs()) {
        return Ok(None);
    }
    let Some(code) = r
        .get::<Option<Vec<u8>>, _>(3)
        .and_then(|c| keys.decrypt(&c).ok())
    else {
        return Ok(None);
    };
    let name: String = r.get(0);
    let caregiver: Option<String> = r.get(6);
    let text = format!(
        "【颐养】{}家属您好：护理员{}刚为老人提供了{}服务。确认码 {code}，30 分钟内有效。确已上门服务，请把确认码告诉护理员；如未上门，请勿告知并拨打 12349。",
        yiyang_kernel::mask::name(&name),
        caregiver
            .as_deref()
            .map(yiyang_kernel::mask::name)
            .unwrap_or_default(),
        yiyang_kernel::service_order::service_zh(&r.get::<String, _>(2)),
    );
    let phone: Option<Vec<u8>> = r.get(1);
    Ok(phone.map(|p| {
        (
            p,
            serde_json::json!({ "template": "visit_code", "text": text }),
        )
    }))
}

/// A family's code for the public page (`home_service::family`): `None` once it lapsed or was used.
async fn render_family_code(
    db: &Db,
    keys: &KeyRing,
    access_id: &str,
) -> Result<Option<(Vec<u8>, serde_json::Value)>, sqlx::Error> {
    let Some(r) = sqlx::query(
        "SELECT e.name, e.phone_enc, a.code_enc, a.expires, a.token_hash FROM family_access a \
         JOIN elder e ON e.id = a.elder_id WHERE a.id = $1",
    )
    .bind(access_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let (expires, used): (i64, Option<String>) = (r.get(3), r.get(4));
    if used.is_some() || expires <= super::now_secs() {
        return Ok(None);
    }
    let Ok(code) = keys.decrypt(&r.get::<Vec<u8>, _>(2)) else {
        return Ok(None);
    };
    let name: String = r.get(0);
    let text = format!(
        "【颐养】您正在查询{}的居家上门服务记录，确认码 {code}，10 分钟内有效。如不是您本人操作，请不要告诉别人。",
        yiyang_kernel::mask::name(&name)
    );
    Ok(r.get::<Option<Vec<u8>>, _>(1).map(|p| {
        (
            p,
            serde_json::json!({ "template": "family_code", "text": text }),
        )
    }))
}

/// Deliver what is due now (up to `limit` rows). Returns (sent, failed attempts, skipped).
pub async fn deliver_due(
    db: &Db,
    keys: &KeyRing,
    gw: &Gateway,
    limit: i64,
) -> Result<(u64, u64, u64), sqlx::Error> {
    let now = super::now_secs();
    expand_runs(db, limit).await?;
    // Codes first (a visit's, a family's): someone waits for them, while a county's run may have
    // queued thousands of letters of entitlement.
    let mut rows = sqlx::query(
        "SELECT id, entitlement_id, event, attempts, elder_id, run_id, order_id FROM notification_outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
         AND event IN ('visit_code', 'family_code') ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    if (rows.len() as i64) < limit {
        rows.extend(
            sqlx::query(
                "SELECT id, entitlement_id, event, attempts, elder_id, run_id, order_id FROM notification_outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
                 AND event NOT IN ('run_granted', 'visit_code', 'family_code') ORDER BY next_attempt_at, id LIMIT $2",
            )
            .bind(now)
            .bind(limit - rows.len() as i64)
            .fetch_all(&db.pool)
            .await?,
        );
    }
    let (mut sent, mut failed, mut skipped) = (0, 0, 0);
    for r in rows {
        let (id, ent, event, attempts): (String, Option<String>, String, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let (elder, run): (String, Option<String>) = (r.get(4), r.get(5));
        let order: Option<String> = r.get(6);
        let msg = match (ent, run, order) {
            (Some(ent), _, _) => render(db, &ent, &event).await?,
            (None, Some(run), _) => render_run(db, &elder, &run).await?,
            (None, None, Some(order)) => render_visit_code(db, keys, &order).await?,
            (None, None, None) => match id.strip_prefix("family:") {
                Some(access) => render_family_code(db, keys, access).await?,
                None => None,
            },
        };
        let Some((phone_enc, mut body)) = msg else {
            // No phone on record, or the person has died: nothing to send.
            sqlx::query("UPDATE notification_outbox SET state = 'skipped', last_error = '无联系电话或已故' WHERE id = $1")
                .bind(&id)
                .execute(&db.pool)
                .await?;
            skipped += 1;
            continue;
        };
        let phone = keys.decrypt(&phone_enc).unwrap_or_default();
        body["id"] = serde_json::json!(id);
        body["to"] = serde_json::json!(phone);
        match gw.post(&id, &body).await {
            Ok(()) => {
                sqlx::query("UPDATE notification_outbox SET state = 'sent', sent_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1")
                    .bind(&id)
                    .bind(super::now_rfc3339())
                    .execute(&db.pool)
                    .await?;
                sent += 1;
            }
            Err(e) => {
                let n = attempts + 1;
                let state = if n >= MAX_ATTEMPTS {
                    "failed"
                } else {
                    "pending"
                };
                sqlx::query("UPDATE notification_outbox SET state = $2, attempts = $3, next_attempt_at = $4, last_error = $5 WHERE id = $1")
                    .bind(&id)
                    .bind(state)
                    .bind(n)
                    .bind(now + backoff(n))
                    .bind(&e)
                    .execute(&db.pool)
                    .await?;
                failed += 1;
            }
        }
    }
    Ok((sent, failed, skipped))
}

/// Queue the per-person messages of runs' grants: up to `limit` more people of each pending run
/// row, each with the message id `{run}:{person}`, the cursor moved in the same transaction (a
/// crash repeats nothing: the ids are fixed and inserted once).
pub async fn expand_runs(db: &Db, limit: i64) -> Result<u64, sqlx::Error> {
    let runs = sqlx::query(
        "SELECT id, run_id, COALESCE(expanded_to, '') FROM notification_outbox WHERE state = 'pending' AND event = 'run_granted' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut queued = 0;
    for r in runs {
        let (id, run, after): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let limit = limit.max(1) as usize;
        let (mut people, mut cursor, mut more) = (Vec::<String>::new(), after.clone(), true);
        // A run's grants are packed by bucket of people (`catalog::pack`): whole buckets in
        // order, everyone still in one (a grant that changed since left its pack, and tells of
        // itself). The cursor is the last bucket queued.
        let packed = match after.strip_prefix(PACK_CURSOR) {
            Some(b) => Some(b.to_string()),
            None if after.is_empty() && crate::catalog::pack::run_has_packs(db, &run).await? => {
                Some(String::new())
            }
            None => None,
        };
        if let Some(mut bucket) = packed {
            while people.len() < limit {
                let Some(next) = crate::catalog::pack::run_buckets_after(db, &run, &bucket, 1)
                    .await?
                    .pop()
                else {
                    more = false;
                    break;
                };
                let mut inside: Vec<String> = crate::catalog::pack::of_run_bucket(db, &run, &next)
                    .await?
                    .into_iter()
                    .map(|e| e.elder_id)
                    .collect();
                inside.dedup();
                people.extend(inside);
                bucket = next;
            }
            cursor = format!("{PACK_CURSOR}{bucket}");
        }
        // Runs from before packing: people the run decided on (its snapshot chunks, in person
        // order) who hold a grant of it, up to `limit`; `cursor` is the last person looked at.
        while more && !cursor.starts_with(PACK_CURSOR) && people.len() < limit {
            let next = crate::catalog::snapshot::people_after(db, &run, &cursor).await?;
            if next.is_empty() {
                more = false;
                break;
            }
            // The people's placeholders first, the run's last (SQLite's `?` bind in order).
            let sql = format!(
                "SELECT DISTINCT n.elder_id FROM entitlement n WHERE n.elder_id IN {} AND n.run_id = {} \
                 AND n.state <> 'ended' AND n.state = 'granted' AND {CREATED_GRANTED}",
                crate::registry::store::placeholders(db.backend, 1, next.len()),
                match db.backend {
                    super::db::Backend::Sqlite => "?".to_string(),
                    super::db::Backend::Postgres => format!("${}", next.len() + 1),
                }
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in &next {
                q = q.bind(p);
            }
            q = q.bind(&run);
            let granted: std::collections::HashSet<String> = q
                .fetch_all(&db.pool)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for p in next {
                if granted.contains(&p) {
                    people.push(p.clone());
                }
                cursor = p;
                if people.len() == limit {
                    break;
                }
            }
        }
        let done = !more;
        let now = super::now_rfc3339();
        let mut tx = db.begin().await?;
        for elder in &people {
            sqlx::query(
                "INSERT INTO notification_outbox (id, entitlement_id, elder_id, event, state, attempts, next_attempt_at, created_at, run_id) \
                 VALUES ($1, NULL, $2, 'granted', 'pending', 0, 0, $3, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(format!("{run}:{elder}"))
            .bind(elder)
            .bind(&now)
            .bind(&run)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE notification_outbox SET expanded_to = $1, state = CASE WHEN $2 THEN 'sent' ELSE state END, \
             sent_at = CASE WHEN $2 THEN $3 ELSE sent_at END WHERE id = $4",
        )
        .bind(&cursor)
        .bind(done)
        .bind(&now)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        queued += people.len() as u64;
    }
    Ok(queued)
}

/// The server's sender loop: every few seconds, deliver what is due.
pub fn start(db: Db, keys: KeyRing, gw: Gateway) {
    tokio::spawn(async move {
        loop {
            super::metrics::beat("outbox", Duration::from_secs(3));
            let more = match deliver_due(&db, &keys, &gw, 50).await {
                Ok((s, f, k)) => {
                    if s + f > 0 {
                        tracing::info!(sent = s, failed = f, "notifications");
                    }
                    // A full batch all sent: more are waiting, go on at once.
                    s + k == 50
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification outbox");
                    false
                }
            };
            if !more {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
    });
}

/// Queue one message (an approval or a refusal), in the caller's transaction.
pub async fn enqueue(
    tx: &mut super::db::Tx<'_>,
    entitlement_id: &str,
    elder_id: &str,
    event: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_outbox (id, entitlement_id, elder_id, event, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, 0, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(format!("{entitlement_id}:{event}"))
    .bind(entitlement_id)
    .bind(elder_id)
    .bind(event)
    .bind(super::now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

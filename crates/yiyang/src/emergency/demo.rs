//! The demo county's call devices: about 8,000 at full scale, one on each of the first elders who
//! live alone or have a disability, of the kinds and vendors a county buys; a few silent. Half of
//! them report through a vendor's gateway (HTTP), the rest straight to the broker.

use crate::platform::db::Db;
use sqlx::Row;

pub const GATEWAY: &str = "安居科技网关";

/// (kind, share in 100, vendor, monthly fee in fen)
const MIX: &[(&str, u32, &str, i64)] = &[
    ("call_button", 50, "如意通信", 1500),
    ("bracelet", 20, "安居科技", 2500),
    ("fall_sensor", 10, "安居科技", 3000),
    ("smoke", 10, "消安电子", 800),
    ("gas", 5, "消安电子", 800),
    ("door", 3, "如意通信", 500),
    ("mattress", 2, "安居科技", 4000),
];

pub async fn seed(db: &Db, scale: f64, today: chrono::NaiveDate) -> anyhow::Result<usize> {
    let want = ((8000.0 * scale).round() as i64).max(20);
    let rows = sqlx::query(
        "SELECT id, residence_region FROM elder WHERE status = 'active' \
         AND (living_status = 'living_alone' OR disability_grade IS NOT NULL) ORDER BY id LIMIT $1",
    )
    .bind(want)
    .fetch_all(&db.pool)
    .await?;
    let gateway = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let now_ms = super::now_ms();
    let mut tx = db.begin().await?;
    // The token is made again (and printed) with the demo accounts.
    sqlx::query(
        "INSERT INTO device_gateway (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&gateway)
    .bind(GATEWAY)
    .bind(super::ingest::token_hash(&uuid::Uuid::new_v4().to_string()))
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    for (i, r) in rows.iter().enumerate() {
        let mut pick = (i as u32 * 37) % 100;
        let &(kind, _, vendor, fee) = MIX
            .iter()
            .find(|m| {
                if pick < m.1 {
                    true
                } else {
                    pick -= m.1;
                    false
                }
            })
            .unwrap_or(&MIX[0]);
        let installed = today - chrono::Days::new(30 + (i as u64 * 13) % 700);
        // One in fifty has been silent for two days (a flat battery, a pulled plug).
        let last = if i % 50 == 7 {
            now_ms - 49 * 3600 * 1000
        } else {
            now_ms - ((i as i64 * 7919) % 3600) * 1000
        };
        let region: String = r.get(1);
        sqlx::query(
            "INSERT INTO device (id, serial, kind, vendor, elder_id, region_code, gateway_id, installed_on, monthly_fee_fen, \
             fee_payer, silent_hours, last_heartbeat, battery, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'government', 24, $10, $11, 'active', $12)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(format!("RG{:06}", i + 1))
        .bind(kind)
        .bind(vendor)
        .bind(r.get::<String, _>(0))
        .bind(&region)
        .bind((vendor == "安居科技").then_some(&gateway))
        .bind(installed.to_string())
        .bind(fee)
        .bind(last)
        .bind(30 + (i as i64 * 17) % 70)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// `count` call buttons (serials BN000001…) on the active elders in turn, reporting straight to
/// the broker: the bench's devices.
pub async fn gen_devices(db: &Db, count: usize) -> anyhow::Result<usize> {
    let elders = sqlx::query(
        "SELECT id, residence_region FROM elder WHERE status = 'active' ORDER BY id LIMIT $1",
    )
    .bind(count as i64)
    .fetch_all(&db.pool)
    .await?;
    anyhow::ensure!(!elders.is_empty(), "没有在册老人");
    let now = crate::platform::now_rfc3339();
    let today = crate::platform::today().to_string();
    let mut tx = db.begin().await?;
    for i in 0..count {
        let r = &elders[i % elders.len()];
        sqlx::query(
            "INSERT INTO device (id, serial, kind, vendor, elder_id, region_code, gateway_id, installed_on, monthly_fee_fen, \
             fee_payer, silent_hours, last_heartbeat, battery, state, created_at) \
             VALUES ($1, $2, 'call_button', '如意通信', $3, $4, NULL, $5, 1500, 'government', 24, NULL, NULL, 'active', $6)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(format!("BN{:06}", i + 1))
        .bind(r.get::<String, _>(0))
        .bind(r.get::<String, _>(1))
        .bind(&today)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(count)
}

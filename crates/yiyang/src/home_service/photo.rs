//! Visit photos: what a caregiver shows of a visit (the work done, the elder at home), taken on
//! her phone between check-in and confirmation. Kept in the file store under their SHA-256
//! (`platform::files`), sent under an id made on the phone (sent twice over a bad connection,
//! kept once), checked for size and type by their bytes, with the place and time the camera
//! wrote into them (EXIF). Served only to those who read the order's names in its scope, each
//! look audited.

use super::held;
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::files::FileStore;
use crate::platform::migrations::Stmt::{self, *};
use serde::Serialize;
use sqlx::Row;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE visit_photo (id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES service_order (id), \
         sha256 TEXT NOT NULL, mime TEXT NOT NULL, bytes BIGINT NOT NULL, lon DOUBLE, lat DOUBLE, taken_at TEXT, \
         uploaded_by TEXT NOT NULL, uploaded_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX visit_photo_order ON visit_photo (order_id)"),
];

/// A phone's photo is 1–6 MB; a larger one is not a phone photo.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Photos one visit keeps at most.
pub const MAX_PER_VISIT: i64 = 9;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Photo {
    pub id: String,
    pub order_id: String,
    /// image/jpeg or image/png
    pub mime: String,
    pub bytes: i64,
    /// Where the camera says it was taken (EXIF), when it says
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    /// When the camera says it was taken (EXIF, the phone's own clock), when it says
    pub taken_at: Option<String>,
    pub uploaded_by: String,
    pub uploaded_at: String,
}

/// The type of an image by its first bytes, never by what the sender claims.
fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    }
}

/// Place and time from the photo's EXIF, where it has them (a PNG, or a JPEG whose camera had
/// location off, has none; that is not an error).
pub fn exif_of(b: &[u8]) -> (Option<f64>, Option<f64>, Option<String>) {
    use exif::{In, Tag, Value};
    let Ok(e) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(b)) else {
        return (None, None, None);
    };
    let degrees = |tag: Tag, reference: Tag, negative: &[u8]| -> Option<f64> {
        let f = e.get_field(tag, In::PRIMARY)?;
        let Value::Rational(v) = &f.value else {
            return None;
        };
        if v.len() < 3 || v.iter().any(|r| r.denom == 0) {
            return None;
        }
        let d = v[0].to_f64() + v[1].to_f64() / 60.0 + v[2].to_f64() / 3600.0;
        let neg = match e.get_field(reference, In::PRIMARY).map(|f| &f.value) {
            Some(Value::Ascii(a)) => a.first().is_some_and(|s| negative.contains(&s[0])),
            _ => false,
        };
        Some(if neg { -d } else { d })
    };
    let lat = degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, b"S");
    let lon = degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, b"W");
    let taken = e
        .get_field(Tag::DateTimeOriginal, In::PRIMARY)
        .or_else(|| e.get_field(Tag::DateTime, In::PRIMARY))
        .and_then(|f| match &f.value {
            Value::Ascii(a) => a.first().and_then(|s| exif::DateTime::from_ascii(s).ok()),
            _ => None,
        })
        .map(|d| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                d.year, d.month, d.day, d.hour, d.minute, d.second
            )
        });
    let within = |x: Option<f64>, max: f64| x.filter(|v| v.is_finite() && v.abs() <= max);
    (within(lon, 180.0), within(lat, 90.0), taken)
}

fn from_row(r: &sqlx::any::AnyRow) -> Photo {
    Photo {
        id: r.get(0),
        order_id: r.get(1),
        mime: r.get(2),
        bytes: r.get(3),
        lon: r.get(4),
        lat: r.get(5),
        taken_at: r.get(6),
        uploaded_by: r.get(7),
        uploaded_at: r.get(8),
    }
}

const COLS: &str = "id, order_id, mime, bytes, lon, lat, taken_at, uploaded_by, uploaded_at";

/// Keep a visit's photo sent under `photo_id`: by the caregiver of the visit (or whoever moves
/// its orders), while it is under way or waiting for confirmation. The file is kept first, so
/// the row never names a file that is not there. Audited.
#[allow(clippy::too_many_arguments)]
pub async fn add(
    db: &Db,
    files: &dyn FileStore,
    scope: &Scope,
    who: &Who,
    order_id: &str,
    photo_id: &str,
    body: &[u8],
) -> ApiResult<Photo> {
    let photo_id = uuid::Uuid::parse_str(photo_id.trim())
        .map_err(|_| ApiError::invalid("photo_id", "photo_id 应为手机生成的 UUID"))?
        .to_string();
    if body.is_empty() {
        return Err(ApiError::invalid("photo", "照片是空的，请重新拍摄"));
    }
    if body.len() > MAX_BYTES {
        return Err(ApiError::invalid(
            "photo",
            format!("照片不能超过 {} MB", MAX_BYTES / 1024 / 1024),
        ));
    }
    let mime =
        sniff(body).ok_or_else(|| ApiError::invalid("photo", "只能上传 JPEG 或 PNG 照片"))?;
    // In the caller's scope and under way before anything is kept (the file store is not
    // for whoever has a login); checked again in the transaction.
    let (order, _, _) = super::versioned(db, scope, order_id, true).await?;
    // Sent again (the answer was lost): the photo as kept.
    if let Some(p) = existing(db, &photo_id).await? {
        return if p.order_id == order_id {
            Ok(p)
        } else {
            Err(ApiError::conflict("photo_id 已用于另一张工单"))
        };
    }
    under_way(&order.state, order.confirmed_at.as_deref())?;
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visit_photo WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&db.pool)
        .await?;
    full(kept)?;
    let (lon, lat, taken_at) = exif_of(body);
    let sha = files.put(body).await.map_err(ApiError::internal)?;
    let now = crate::platform::now_rfc3339();
    let mut tx = db.begin().await?;
    let (_, _, _, _, _, region) = held(&mut tx, scope, order_id).await?;
    // The order's row taken (a no-op write), so two uploads at once count one after the other.
    let r = sqlx::query(
        "UPDATE service_order SET version = version WHERE id = $1 RETURNING state, confirmed_at",
    )
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await?;
    under_way(
        &r.get::<String, _>(0),
        r.get::<Option<String>, _>(1).as_deref(),
    )?;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visit_photo WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&mut *tx)
        .await?;
    full(n)?;
    let q = sqlx::query(
        "INSERT INTO visit_photo (id, order_id, sha256, mime, bytes, lon, lat, taken_at, uploaded_by, uploaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&photo_id)
    .bind(order_id)
    .bind(&sha)
    .bind(mime)
    .bind(body.len() as i64);
    let q = crate::platform::db::opt_f64(q, lon);
    let ins = crate::platform::db::opt_f64(q, lat)
        .bind(&taken_at)
        .bind(&who.actor_name)
        .bind(&now)
        .execute(&mut *tx)
        .await;
    match ins {
        Ok(_) => {}
        // The same photo sent twice at once: the first stands, and is the answer.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            drop(tx);
            return existing(db, &photo_id)
                .await?
                .filter(|p| p.order_id == order_id)
                .ok_or_else(|| ApiError::conflict("photo_id 已用于另一张工单"));
        }
        Err(e) => return Err(e.into()),
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "service_order.photo",
            entity: "service_order",
            entity_id: Some(order_id),
            region_code: Some(&region),
            detail: serde_json::json!({"photo_id": photo_id, "sha256": sha, "bytes": body.len()})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Photo {
        id: photo_id,
        order_id: order_id.to_string(),
        mime: mime.into(),
        bytes: body.len() as i64,
        lon,
        lat,
        taken_at,
        uploaded_by: who.actor_name.clone(),
        uploaded_at: now,
    })
}

/// A visit keeps at most [`MAX_PER_VISIT`] photos.
fn full(kept: i64) -> ApiResult<()> {
    if kept >= MAX_PER_VISIT {
        return Err(ApiError::conflict(format!(
            "每次上门最多保存 {MAX_PER_VISIT} 张照片"
        )));
    }
    Ok(())
}

/// Photos are taken between check-in and confirmation, and may arrive up to a day after it (a
/// phone out of signal sends its queue when it can; a confirmation by phone call may come first).
fn under_way(state: &str, confirmed_at: Option<&str>) -> ApiResult<()> {
    let late = || {
        let at = confirmed_at.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        at.is_some_and(|t| crate::platform::now_secs() - t.timestamp() <= 24 * 3600)
    };
    if state == "checked_in" || state == "checked_out" || (state == "confirmed" && late()) {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "工单{}：照片在签到后上传，最晚在确认完成后一天内",
        super::rule::state_zh(state)
    )))
}

async fn existing(db: &Db, photo_id: &str) -> ApiResult<Option<Photo>> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM visit_photo WHERE id = $1"
    )))
    .bind(photo_id)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| from_row(&r)))
}

/// A visit's photos, oldest first (the order read in the caller's scope first: 404 outside it).
pub async fn list(db: &Db, scope: &Scope, order_id: &str) -> ApiResult<Vec<Photo>> {
    super::get(db, scope, order_id, true).await?;
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM visit_photo WHERE order_id = $1 ORDER BY uploaded_at, id"
    )))
    .bind(order_id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(from_row)
    .collect())
}

/// One photo's type and bytes, and the region of the order (for the audit of the look, which
/// the caller waits for before it answers), for a reader in the order's scope.
pub async fn bytes(
    db: &Db,
    files: &dyn FileStore,
    scope: &Scope,
    order_id: &str,
    photo_id: &str,
) -> ApiResult<(String, Vec<u8>, String)> {
    let (_, _, region) = super::versioned(db, scope, order_id, true).await?;
    let r = sqlx::query("SELECT sha256, mime FROM visit_photo WHERE id = $1 AND order_id = $2")
        .bind(photo_id)
        .bind(order_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("未找到该照片"))?;
    let (sha, mime): (String, String) = (r.get(0), r.get(1));
    let b = files
        .get(&sha)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("photo {photo_id}: file {sha} missing"))
        })?;
    Ok((mime, b, region))
}

#[cfg(test)]
mod tests {
    use super::under_way;

    #[test]
    fn photos_are_taken_from_check_in_until_a_day_after_confirmation() {
        let ago = |h: i64| (chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc3339();
        assert!(under_way("checked_in", None).is_ok());
        assert!(under_way("checked_out", None).is_ok());
        assert!(under_way("confirmed", Some(&ago(3))).is_ok());
        assert!(under_way("confirmed", Some(&ago(25))).is_err());
        assert!(under_way("confirmed", None).is_err());
        assert!(under_way("accepted", None).is_err());
        assert!(under_way("cancelled", None).is_err());
    }
}

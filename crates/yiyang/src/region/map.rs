//! A county's own map: the GeoJSON boundaries of its towns, supplied by the county. The public
//! vacancy board draws it with the homes on it; where no map was supplied the board is a plain
//! list. No map tiles (nothing to reach outside): the boundaries and the homes' coordinates are all
//! a family needs to see which home is near.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;
use yiyang_kernel::RegionCode;

pub const MIGRATION: &[Stmt] = &[Both(
    "CREATE TABLE region_map (region_code TEXT PRIMARY KEY, geojson TEXT NOT NULL, caption TEXT, \
     features BIGINT NOT NULL, points BIGINT NOT NULL, uploaded_at TEXT NOT NULL, uploaded_by TEXT NOT NULL)",
)];

/// A county's towns fit in far less; the cap keeps a parsed upload small in memory.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
const MAX_FEATURES: usize = 5_000;
const MAX_POINTS: usize = 300_000;

/// A checked map: the boundaries re-written with only what the board draws (a name and the
/// polygons, coordinates to 5 decimals, about a metre).
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub geojson: String,
    pub caption: Option<String>,
    pub features: usize,
    pub points: usize,
}

fn name_of(props: Option<&Value>) -> Option<String> {
    let p = props?.as_object()?;
    ["name", "NAME", "Name", "名称", "乡镇", "XZQMC"]
        .iter()
        .find_map(|k| p.get(*k)?.as_str())
        .map(|s| s.trim().chars().take(30).collect::<String>())
        .filter(|s| !s.is_empty())
}

/// One ring of positions, checked: longitude and latitude inside China, rounded.
fn ring(v: &Value, points: &mut usize) -> Result<Value, String> {
    let pts = v
        .as_array()
        .ok_or("边界的坐标应为经纬度数组（GeoJSON Polygon）")?;
    if pts.len() < 4 {
        return Err("每个边界环至少需要 4 个点（首尾相同）".into());
    }
    let mut out = Vec::with_capacity(pts.len());
    for p in pts {
        *points += 1;
        if *points > MAX_POINTS {
            return Err(format!(
                "地图的点太多（上限 {MAX_POINTS} 个），请先在 GIS 软件中简化边界"
            ));
        }
        let (lon, lat) = match p.as_array().map(|a| a.as_slice()) {
            Some([x, y, ..]) => (x.as_f64(), y.as_f64()),
            _ => (None, None),
        };
        let (Some(lon), Some(lat)) = (lon, lat) else {
            return Err("坐标应为 [经度, 纬度] 形式的数字".into());
        };
        if !(73.0..=136.0).contains(&lon) || !(3.0..=54.0).contains(&lat) {
            return Err(format!(
                "坐标 [{lon}, {lat}] 不是我国境内的经纬度（经度 73–136，纬度 3–54）；\
                 若为投影坐标（如 CGCS2000 高斯投影），请先在 GIS 软件中转换为经纬度"
            ));
        }
        let r = |x: f64| (x * 1e5).round() / 1e5;
        out.push(json!([r(lon), r(lat)]));
    }
    Ok(Value::Array(out))
}

fn polygon(v: &Value, points: &mut usize) -> Result<Value, String> {
    let rings = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("Polygon 的坐标应为边界环的数组")?;
    Ok(Value::Array(
        rings
            .iter()
            .map(|r| ring(r, points))
            .collect::<Result<_, _>>()?,
    ))
}

/// Check an uploaded GeoJSON (a FeatureCollection, or one Feature, of Polygons and MultiPolygons
/// in longitude/latitude) and write it again with only what is drawn. Features of other kinds
/// (points, lines) are passed over. Every refusal says what to fix, in Chinese.
pub fn check(bytes: &[u8]) -> Result<Checked, String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!(
            "地图文件过大（上限 {} MB），请先在 GIS 软件中简化边界",
            MAX_BYTES / 1024 / 1024
        ));
    }
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("不是有效的 GeoJSON（JSON 格式错误：第 {} 行）", e.line()))?;
    let caption = doc
        .get("name")
        .and_then(Value::as_str)
        .map(|s| s.trim().chars().take(40).collect::<String>())
        .filter(|s| !s.is_empty());
    let features: Vec<&Value> = match doc.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => doc
            .get("features")
            .and_then(Value::as_array)
            .ok_or("FeatureCollection 缺少 features 数组")?
            .iter()
            .collect(),
        Some("Feature") => vec![&doc],
        _ => {
            return Err(
                "应为 GeoJSON 的 FeatureCollection（各乡镇的边界），请从 GIS 软件导出 GeoJSON"
                    .into(),
            );
        }
    };
    if features.len() > MAX_FEATURES {
        return Err(format!("边界太多（上限 {MAX_FEATURES} 个）"));
    }
    let mut points = 0usize;
    let mut out = vec![];
    for (i, f) in features.iter().enumerate() {
        let g = f.get("geometry").unwrap_or(&Value::Null);
        let coords = g.get("coordinates").unwrap_or(&Value::Null);
        let geometry = match g.get("type").and_then(Value::as_str) {
            Some("Polygon") => {
                json!({"type": "Polygon", "coordinates": polygon(coords, &mut points)
                .map_err(|e| format!("第 {} 个要素：{e}", i + 1))?})
            }
            Some("MultiPolygon") => {
                let polys = coords
                    .as_array()
                    .ok_or("MultiPolygon 的坐标应为 Polygon 的数组")
                    .map_err(|e| format!("第 {} 个要素：{e}", i + 1))?;
                let mut ps = vec![];
                for p in polys {
                    ps.push(
                        polygon(p, &mut points).map_err(|e| format!("第 {} 个要素：{e}", i + 1))?,
                    );
                }
                json!({"type": "MultiPolygon", "coordinates": ps})
            }
            _ => continue,
        };
        out.push(json!({"type": "Feature", "properties": {"name": name_of(f.get("properties"))}, "geometry": geometry}));
    }
    if out.is_empty() {
        return Err("文件里没有面状边界（Polygon 或 MultiPolygon）".into());
    }
    let features = out.len();
    Ok(Checked {
        geojson: json!({"type": "FeatureCollection", "features": out}).to_string(),
        caption,
        features,
        points,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MapSaved {
    pub region_code: String,
    pub features: i64,
    pub points: i64,
}

/// Keep a region's map (replacing the one before); audited.
pub async fn save(
    db: &Db,
    scope: &Scope,
    who: &Who,
    region: &str,
    bytes: &[u8],
) -> ApiResult<MapSaved> {
    let code = scope.region(region)?;
    scope.regional()?;
    let c = check(bytes).map_err(|e| ApiError::invalid("map", e))?;
    let mut tx = db.begin().await?;
    // One statement: two uploads at once leave the later one, never a key error.
    sqlx::query(
        "INSERT INTO region_map (region_code, geojson, caption, features, points, uploaded_at, uploaded_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (region_code) DO UPDATE SET geojson = excluded.geojson, \
         caption = excluded.caption, features = excluded.features, points = excluded.points, \
         uploaded_at = excluded.uploaded_at, uploaded_by = excluded.uploaded_by",
    )
    .bind(code.as_str())
    .bind(&c.geojson)
    .bind(&c.caption)
    .bind(c.features as i64)
    .bind(c.points as i64)
    .bind(crate::platform::now_rfc3339())
    .bind(&who.actor_name)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "region.map",
            entity: "region",
            entity_id: Some(code.as_str()),
            region_code: Some(code.as_str()),
            detail: json!({"features": c.features, "points": c.points, "bytes": bytes.len()})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(MapSaved {
        region_code: code.as_str().into(),
        features: c.features as i64,
        points: c.points as i64,
    })
}

/// Remove a region's map (the board goes back to a list); audited.
pub async fn remove(db: &Db, scope: &Scope, who: &Who, region: &str) -> ApiResult<()> {
    let code = scope.region(region)?;
    scope.regional()?;
    let mut tx = db.begin().await?;
    let n = sqlx::query("DELETE FROM region_map WHERE region_code = $1")
        .bind(code.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::not_found("该区划没有上传地图"));
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "region.map_remove",
            entity: "region",
            entity_id: Some(code.as_str()),
            region_code: Some(code.as_str()),
            detail: "{}".into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The map to draw for a region: its own, or its nearest ancestor's; with no region, the first
/// one kept. `None` when no map was supplied. Returns (region code, caption, GeoJSON text).
pub async fn find(
    db: &Db,
    region: Option<&RegionCode>,
) -> ApiResult<Option<(String, Option<String>, String)>> {
    let row =
        match region {
            Some(code) => {
                let mut found = None;
                for c in code.lineage() {
                    found = sqlx::query(
                    "SELECT region_code, caption, geojson FROM region_map WHERE region_code = $1",
                )
                .bind(c.as_str())
                .fetch_optional(&db.pool)
                .await?;
                    if found.is_some() {
                        break;
                    }
                }
                found
            }
            None => sqlx::query(
                "SELECT region_code, caption, geojson FROM region_map ORDER BY region_code LIMIT 1",
            )
            .fetch_optional(&db.pool)
            .await?,
        };
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(lon: f64, lat: f64) -> Value {
        json!([[
            [lon, lat],
            [lon + 0.1, lat],
            [lon + 0.1, lat + 0.1],
            [lon, lat + 0.1],
            [lon, lat]
        ]])
    }

    #[test]
    fn polygons_are_kept_with_their_names_and_rounded() {
        let doc = json!({"type": "FeatureCollection", "name": "如皋市乡镇界", "features": [
            {"type": "Feature", "properties": {"NAME": "东陈镇", "area": 3}, "geometry": {"type": "Polygon", "coordinates": square(120.512345678, 32.3)}},
            {"type": "Feature", "properties": {}, "geometry": {"type": "MultiPolygon", "coordinates": [square(120.6, 32.3), square(120.8, 32.3)]}},
            {"type": "Feature", "properties": {"name": "一个点"}, "geometry": {"type": "Point", "coordinates": [120.5, 32.3]}}
        ]});
        let c = check(doc.to_string().as_bytes()).unwrap();
        assert_eq!((c.features, c.points), (2, 15));
        assert_eq!(c.caption.as_deref(), Some("如皋市乡镇界"));
        let back: Value = serde_json::from_str(&c.geojson).unwrap();
        assert_eq!(back["features"][0]["properties"]["name"], "东陈镇");
        assert_eq!(
            back["features"][0]["properties"].as_object().unwrap().len(),
            1
        );
        assert_eq!(
            back["features"][0]["geometry"]["coordinates"][0][0][0],
            120.51235
        );
    }

    #[test]
    fn what_cannot_be_drawn_is_refused_saying_why() {
        let projected = json!({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [[[40512345.0, 3581234.0], [40512400.0, 3581234.0], [40512400.0, 3581300.0], [40512345.0, 3581234.0]]]}}]});
        let e = check(projected.to_string().as_bytes()).unwrap_err();
        assert!(e.contains("投影坐标"), "{e}");
        assert!(
            check(b"{\"type\": \"Point\"}")
                .unwrap_err()
                .contains("FeatureCollection")
        );
        assert!(
            check(b"{not json")
                .unwrap_err()
                .contains("不是有效的 GeoJSON")
        );
        let points_only = json!({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [120.5, 32.3]}}]});
        assert!(
            check(points_only.to_string().as_bytes())
                .unwrap_err()
                .contains("没有面状边界")
        );
        let short = json!({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[120.5, 32.3], [120.6, 32.3], [120.5, 32.3]]]}});
        assert!(
            check(short.to_string().as_bytes())
                .unwrap_err()
                .contains("至少需要 4 个点")
        );
        let big = vec![b' '; MAX_BYTES + 1];
        assert!(check(&big).unwrap_err().contains("过大"));
        // Too many points: refused before they are all kept.
        let ring: Vec<Value> = (0..MAX_POINTS + 10).map(|_| json!([120, 32])).collect();
        let many =
            json!({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}});
        assert!(
            check(many.to_string().as_bytes())
                .unwrap_err()
                .contains("点太多")
        );
    }
}

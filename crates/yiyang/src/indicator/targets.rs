//! Definitions as the console sees them (built-in and a region's own), targets per region and
//! year (set one by one or imported from a sheet shaped like the plans' tables), and values
//! entered by hand with their evidence. Every change is audited in its transaction.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::RegionCode;
use yiyang_kernel::indicator::{self as k, Class, Direction, Kind, Period, Source};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Definition {
    pub id: String,
    pub name: String,
    /// ratio / count / per_n / milestone / manual
    pub kind: String,
    pub kind_zh: String,
    pub unit: String,
    pub definition: String,
    /// records: computed from the records; pending: waits for a capability; entered: by hand
    pub source: String,
    /// The capability that will supply the records (for `pending`).
    pub pending: Option<String>,
    pub within_year: bool,
    /// A list of the people behind the number can be opened.
    pub drillable: bool,
    /// A list of the homes behind the number can be opened.
    pub by_home: bool,
    pub builtin: bool,
}

impl Definition {
    fn of(d: &k::Def) -> Definition {
        let (source, pending) = match d.source {
            Source::Records => ("records", None),
            Source::Pending(p) => ("pending", Some(p.to_string())),
            Source::Entered => ("entered", None),
        };
        Definition {
            id: d.id.into(),
            name: d.name.into(),
            kind: d.kind.code().into(),
            kind_zh: d.kind.zh().into(),
            unit: d.unit.into(),
            definition: d.definition.into(),
            source: source.into(),
            pending,
            within_year: d.within_year,
            drillable: super::drill::drillable(d.id),
            by_home: super::facilities::by_home(d.id),
            builtin: true,
        }
    }
}

/// Built-in definitions, then the regions' own.
pub async fn definitions(db: &Db) -> ApiResult<Vec<Definition>> {
    let mut v: Vec<Definition> = k::DEFS.iter().map(Definition::of).collect();
    for r in
        sqlx::query("SELECT id, name, kind, unit FROM indicator_custom ORDER BY created_at, id")
            .fetch_all(&db.pool)
            .await?
    {
        let kind: String = r.get(2);
        let kind_zh = Kind::parse(&kind).unwrap_or(Kind::Manual).zh();
        v.push(Definition {
            id: r.get(0),
            name: r.get(1),
            kind_zh: kind_zh.into(),
            kind,
            unit: r.get(3),
            definition: "本地规划指标，手工填报并附依据".into(),
            source: "entered".into(),
            pending: None,
            within_year: false,
            drillable: false,
            by_home: false,
            builtin: false,
        });
    }
    Ok(v)
}

pub async fn definition(db: &Db, id: &str) -> ApiResult<Definition> {
    definitions(db)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| ApiError::not_found(format!("指标“{id}”不存在")))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Target {
    pub region_code: String,
    pub year: i32,
    pub indicator_id: String,
    /// binding (约束性) / expected (预期性)
    pub class: String,
    /// ge (≥) / le (≤)
    pub direction: String,
    pub value: f64,
    /// Where it comes from (the plan's title).
    pub source: Option<String>,
}

pub async fn list(db: &Db, lo: &str, hi: &str, year: Option<i32>) -> ApiResult<Vec<Target>> {
    let rows = sqlx::query(
        "SELECT region_code, year, indicator_id, class, direction, value, source FROM indicator_target \
         WHERE region_code BETWEEN $1 AND $2 AND ($3 = 0 OR year = $3) ORDER BY region_code, year, indicator_id",
    )
    .bind(lo)
    .bind(hi)
    .bind(year.unwrap_or(0) as i64)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Target {
            region_code: r.get(0),
            year: r.get::<i64, _>(1) as i32,
            indicator_id: r.get(2),
            class: r.get(3),
            direction: r.get(4),
            value: r.get(5),
            source: r.get(6),
        })
        .collect())
}

/// Check a target against the definitions and the caller's scope; returns it normalised.
fn check(t: &Target, defs: &[Definition], scope: &Scope) -> Result<Target, String> {
    let rc = RegionCode::parse(&t.region_code).map_err(|e| format!("区划代码：{e}"))?;
    if !scope.covers(&rc) {
        return Err(format!("区划 {} 不在您的管辖范围内", t.region_code));
    }
    if !(2000..=2100).contains(&t.year) {
        return Err(format!("年份 {} 超出范围（2000–2100）", t.year));
    }
    let d = defs
        .iter()
        .find(|d| d.id == t.indicator_id)
        .ok_or_else(|| format!("指标“{}”不存在", t.indicator_id))?;
    let class = Class::parse(&t.class)
        .ok_or_else(|| format!("属性“{}”不正确，应为 约束性 或 预期性", t.class))?;
    let direction = Direction::parse(&t.direction)
        .ok_or_else(|| format!("方向“{}”不正确，应为 ≥ 或 ≤", t.direction))?;
    if !t.value.is_finite() || t.value < 0.0 {
        return Err("目标值应为非负数".into());
    }
    if d.unit == "%" && t.value > 100.0 {
        return Err("比率目标不能超过 100%".into());
    }
    Ok(Target {
        region_code: rc.as_str().to_string(),
        year: t.year,
        indicator_id: d.id.clone(),
        class: class.code().into(),
        direction: direction.code().into(),
        value: t.value,
        source: t.source.clone().filter(|s| !s.trim().is_empty()),
    })
}

async fn upsert(
    tx: &mut crate::platform::db::Tx<'_>,
    t: &Target,
    who: &Who,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO indicator_target (region_code, year, indicator_id, class, direction, value, source, set_by, set_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (region_code, year, indicator_id) DO UPDATE SET \
         class = excluded.class, direction = excluded.direction, value = excluded.value, source = excluded.source, \
         set_by = excluded.set_by, set_at = excluded.set_at",
    )
    .bind(&t.region_code)
    .bind(t.year as i64)
    .bind(&t.indicator_id)
    .bind(&t.class)
    .bind(&t.direction)
    .bind(t.value)
    .bind(&t.source)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn set(db: &Db, scope: &Scope, who: &Who, t: Target) -> ApiResult<Target> {
    let defs = definitions(db).await?;
    let t = check(&t, &defs, scope).map_err(|m| ApiError::invalid("target", m))?;
    let mut tx = db.begin().await?;
    upsert(&mut tx, &t, who).await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "indicator.target.set",
            entity: "indicator_target",
            entity_id: Some(&t.indicator_id),
            region_code: Some(&t.region_code),
            detail: serde_json::to_string(&t).expect("json"),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(t)
}

pub async fn delete(
    db: &Db,
    scope: &Scope,
    who: &Who,
    region_code: &str,
    year: i32,
    indicator_id: &str,
) -> ApiResult<()> {
    let rc = scope.region(region_code)?;
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "DELETE FROM indicator_target WHERE region_code = $1 AND year = $2 AND indicator_id = $3",
    )
    .bind(rc.as_str())
    .bind(year as i64)
    .bind(indicator_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::not_found("没有这条目标"));
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "indicator.target.delete",
            entity: "indicator_target",
            entity_id: Some(indicator_id),
            region_code: Some(rc.as_str()),
            detail: format!("{{\"year\":{year}}}"),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SheetRow {
    /// Row number as Excel shows it.
    pub row: usize,
    pub name: String,
    pub indicator_id: Option<String>,
    pub targets: Vec<Target>,
    /// Empty when the row is accepted.
    pub errors: Vec<String>,
    /// The row names an indicator the system does not know and it will be added (create_missing).
    pub new_indicator: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SheetImport {
    pub dry_run: bool,
    pub rows: Vec<SheetRow>,
    pub accepted: usize,
    pub rejected: usize,
    /// Targets written (0 for a dry run or when any row was refused).
    pub written: usize,
    pub created_indicators: usize,
}

/// The target sheet's columns: the indicator, its class, direction and region, and years.
fn target_header_key(h: &str) -> Option<String> {
    let h = h.trim();
    let named = [
        (
            "indicator",
            &["指标", "指标名称", "主要指标", "indicator"][..],
        ),
        ("class", &["属性", "指标属性", "类别", "class"][..]),
        ("direction", &["方向", "direction"][..]),
        ("region_code", &["区划代码", "region_code"][..]),
    ];
    if let Some((k, _)) = named.iter().find(|(_, names)| names.contains(&h)) {
        return Some(k.to_string());
    }
    let t = h.trim_end_matches('年');
    (t.len() == 4 && t.parse::<i32>().is_ok_and(|y| (2000..=2100).contains(&y)))
        .then(|| format!("year_{t}"))
}

/// Import a target sheet shaped like the plans' tables: a column 指标 (or 指标名称), one column per
/// year (2020, "2021年", …), optionally 属性 (约束性/预期性), 方向 (≥/≤) and 区划代码 (otherwise the
/// region chosen on upload). Cells: 50%, 1000, ≥40, 完成. All or nothing: with any refused row
/// nothing is written, and the answer lists every row with what it would set or why not.
#[allow(clippy::too_many_arguments)]
pub async fn import_sheet(
    db: &Db,
    scope: &Scope,
    who: &Who,
    region_code: &str,
    file_name: &str,
    bytes: Vec<u8>,
    source: Option<String>,
    dry_run: bool,
    create_missing: bool,
) -> ApiResult<SheetImport> {
    let region = scope.region(region_code)?;
    let mut table = crate::registry::import::open_table(bytes, file_name, target_header_key)
        .map_err(|e| ApiError::invalid("file", e.to_string()))?;
    let find = |names: &[&str]| table.headers.iter().position(|h| names.contains(&h.trim()));
    let name_col = find(&["指标", "指标名称", "主要指标", "indicator"])
        .ok_or_else(|| ApiError::invalid("file", "表头应有“指标”列（指标名称）"))?;
    let class_col = find(&["属性", "指标属性", "类别", "class"]);
    let dir_col = find(&["方向", "direction"]);
    let region_col = find(&["区划代码", "region_code"]);
    let year_cols: Vec<(usize, i32)> = table
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let t = h.trim().trim_end_matches('年');
            (t.len() == 4)
                .then(|| t.parse::<i32>().ok())
                .flatten()
                .filter(|y| (2000..=2100).contains(y))
                .map(|y| (i, y))
        })
        .collect();
    if year_cols.is_empty() {
        return Err(ApiError::invalid(
            "file",
            "表头应有年份列，如“2025”或“2025年”",
        ));
    }
    let mut defs = definitions(db).await?;
    let mut out = vec![];
    let mut new_defs: Vec<(String, String, String)> = vec![];
    let rows = std::mem::replace(&mut table.rows, Box::new(std::iter::empty()));
    for (i, row) in rows.enumerate() {
        let cell = |c: usize| row.get(c).map(|s| s.trim().to_string()).unwrap_or_default();
        let name = cell(name_col);
        if name.is_empty() && year_cols.iter().all(|(c, _)| cell(*c).is_empty()) {
            continue;
        }
        let mut errors = vec![];
        let mut new_indicator = false;
        let def_id = match k::find_by_name(&name) {
            Some(d) => Some(d.id.to_string()),
            None => {
                let norm = k::normalize_name(&name);
                defs.iter()
                    .find(|d| d.id == name || k::normalize_name(&d.name) == norm)
                    .map(|d| d.id.clone())
            }
        };
        let def_id = match def_id {
            Some(id) => Some(id),
            None if name.is_empty() => {
                errors.push("指标名称为空".into());
                None
            }
            None if create_missing => {
                // Unit from the first value: "50%" makes a ratio, "完成" a milestone.
                let first = year_cols
                    .iter()
                    .map(|(c, _)| cell(*c))
                    .find(|v| !v.is_empty())
                    .unwrap_or_default();
                let (kind, unit) = if first.ends_with('%') || first.ends_with('％') {
                    ("ratio", "%")
                } else if k::parse_target(&first, None).is_ok_and(|_| {
                    matches!(
                        first.as_str(),
                        "done" | "completed" | "完成" | "已完成" | "建成" | "编制完成"
                    )
                }) {
                    ("milestone", "")
                } else {
                    ("count", "")
                };
                // Time-ordered (UUID v7), so local indicators list in the order the sheet had them.
                let id = format!("local_{}", uuid::Uuid::now_v7().simple());
                new_defs.push((id.clone(), name.clone(), kind.into()));
                defs.push(Definition {
                    id: id.clone(),
                    name: name.clone(),
                    kind: kind.into(),
                    kind_zh: String::new(),
                    unit: unit.into(),
                    definition: String::new(),
                    source: "entered".into(),
                    pending: None,
                    within_year: false,
                    drillable: false,
                    by_home: false,
                    builtin: false,
                });
                new_indicator = true;
                Some(id)
            }
            None => {
                errors.push(format!(
                    "系统中没有指标“{name}”：请改用系统中的指标名称，或勾选“新建为本地指标”"
                ));
                None
            }
        };
        let class = class_col.map(&cell).unwrap_or_default();
        let dir_cell = dir_col.map(&cell).unwrap_or_default();
        let rc = region_col
            .map(&cell)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| region.as_str().to_string());
        let mut targets = vec![];
        if let Some(id) = &def_id {
            let kdef = k::find(id);
            for (c, year) in &year_cols {
                let v = cell(*c);
                if v.is_empty() {
                    continue;
                }
                match k::parse_target(&v, kdef) {
                    Err(e) => errors.push(format!("{year}年：{e}")),
                    Ok((value, dir)) => {
                        let t = Target {
                            region_code: rc.clone(),
                            year: *year,
                            indicator_id: id.clone(),
                            class: if class.is_empty() {
                                "expected".into()
                            } else {
                                class.clone()
                            },
                            direction: dir
                                .map(|d| d.code().to_string())
                                .unwrap_or_else(|| dir_cell.clone()),
                            value,
                            source: source.clone(),
                        };
                        match check(&t, &defs, scope) {
                            Ok(t) => targets.push(t),
                            Err(e) => errors.push(format!("{year}年：{e}")),
                        }
                    }
                }
            }
            if targets.is_empty() && errors.is_empty() {
                errors.push("这一行没有任何年份的目标值".into());
            }
        }
        out.push(SheetRow {
            // As Excel shows it (a title above the header moves it down).
            row: table.layout.place(i as i64 + 2).1 as usize,
            name,
            indicator_id: def_id,
            targets,
            errors,
            new_indicator,
        });
    }
    let rejected = out.iter().filter(|r| !r.errors.is_empty()).count();
    let accepted = out.len() - rejected;
    let mut written = 0;
    let mut created = 0;
    if !dry_run && rejected == 0 && accepted > 0 {
        let mut tx = db.begin().await?;
        let now = crate::platform::now_rfc3339();
        for (id, name, kind) in &new_defs {
            let unit = defs
                .iter()
                .find(|d| &d.id == id)
                .map(|d| d.unit.clone())
                .unwrap_or_default();
            sqlx::query("INSERT INTO indicator_custom (id, name, kind, unit, region_code, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(id)
                .bind(name)
                .bind(kind)
                .bind(unit)
                .bind(region.as_str())
                .bind(&who.actor_name)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            created += 1;
        }
        for r in &out {
            for t in &r.targets {
                upsert(&mut tx, t, who).await?;
                written += 1;
            }
        }
        audit::append(
            &mut tx,
            who,
            Entry {
                action: "indicator.target.import",
                entity: "indicator_target",
                entity_id: None,
                region_code: Some(region.as_str()),
                detail: serde_json::json!({"file": file_name, "targets": written, "new_indicators": created})
                    .to_string(),
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(SheetImport {
        dry_run,
        rows: out,
        accepted,
        rejected,
        written,
        created_indicators: created,
    })
}

/// An empty target sheet: the plans' shape, with the built-in indicators listed.
pub fn template_xlsx(years: &[i32]) -> ApiResult<Vec<u8>> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let mut headers: Vec<String> = vec!["序号".into(), "指标".into()];
    headers.extend(years.iter().map(|y| y.to_string()));
    headers.push("属性".into());
    headers.push("方向".into());
    for (c, h) in headers.iter().enumerate() {
        ws.write_with_format(0, c as u16, h, &bold)
            .map_err(ApiError::internal)?;
    }
    ws.set_column_width(1, 44).map_err(ApiError::internal)?;
    for (i, d) in k::DEFS.iter().enumerate() {
        let r = i as u32 + 1;
        ws.write(r, 0, r).map_err(ApiError::internal)?;
        ws.write(r, 1, d.name).map_err(ApiError::internal)?;
        ws.write(r, 2 + years.len() as u16, "预期性")
            .map_err(ApiError::internal)?;
        ws.write(r, 3 + years.len() as u16, "≥")
            .map_err(ApiError::internal)?;
    }
    wb.save_to_buffer().map_err(ApiError::internal)
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryReq {
    pub region_code: String,
    /// YYYY or YYYY-MM
    pub period: String,
    /// The value (milestones: 1 = done, 0 = not done).
    pub value: f64,
    /// What proves it (a document number, a file name, who confirmed it).
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub indicator_id: String,
    pub region_code: String,
    pub period: String,
    pub value: f64,
    pub evidence: String,
    pub entered_by: String,
    pub entered_at: String,
}

/// Record a value by hand for an indicator the records cannot compute (milestones, manual
/// figures); each entry is kept, the latest counts.
pub async fn enter(
    db: &Db,
    scope: &Scope,
    who: &Who,
    indicator_id: &str,
    e: EntryReq,
) -> ApiResult<EntryView> {
    let def = definition(db, indicator_id).await?;
    if def.source != "entered" {
        return Err(ApiError::invalid(
            "indicator_id",
            format!("“{}”由系统根据档案计算，不能手工填报", def.name),
        ));
    }
    let rc = scope.region(&e.region_code)?;
    let period = Period::parse(&e.period).map_err(|m| ApiError::invalid("period", m))?;
    if !e.value.is_finite() || e.value < 0.0 {
        return Err(ApiError::invalid("value", "数值应为非负数"));
    }
    if def.kind == "milestone" && !(e.value == 0.0 || e.value == 1.0) {
        return Err(ApiError::invalid(
            "value",
            "里程碑指标填 1（已完成）或 0（未完成）",
        ));
    }
    if def.unit == "%" && e.value > 100.0 {
        return Err(ApiError::invalid("value", "比率不能超过 100"));
    }
    let evidence = e.evidence.trim();
    if evidence.chars().count() < 2 {
        return Err(ApiError::invalid(
            "evidence",
            "请填写依据（文件号、材料名称或确认人）",
        ));
    }
    if evidence.chars().count() > 500 {
        return Err(ApiError::invalid("evidence", "依据不超过 500 字"));
    }
    let v = EntryView {
        indicator_id: def.id.clone(),
        region_code: rc.as_str().into(),
        period: period.key(),
        value: e.value,
        evidence: evidence.into(),
        entered_by: who.actor_name.clone(),
        entered_at: crate::platform::now_rfc3339(),
    };
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO indicator_entry (id, indicator_id, region_code, period, value, evidence, entered_by, entered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&v.indicator_id)
        .bind(&v.region_code)
        .bind(&v.period)
        .bind(v.value)
        .bind(&v.evidence)
        .bind(&v.entered_by)
        .bind(&v.entered_at)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "indicator.entry",
            entity: "indicator_entry",
            entity_id: Some(&v.indicator_id),
            region_code: Some(&v.region_code),
            detail: serde_json::to_string(&v).expect("json"),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(v)
}

/// Latest entries of a period under a code range: (indicator, region) → entry.
pub async fn latest_entries(
    db: &Db,
    lo: &str,
    hi: &str,
    period: &str,
) -> ApiResult<std::collections::HashMap<(String, String), EntryView>> {
    let rows = sqlx::query(
        "SELECT indicator_id, region_code, period, value, evidence, entered_by, entered_at FROM indicator_entry \
         WHERE period = $1 AND region_code BETWEEN $2 AND $3 ORDER BY entered_at, id",
    )
    .bind(period)
    .bind(lo)
    .bind(hi)
    .fetch_all(&db.pool)
    .await?;
    let mut m = std::collections::HashMap::new();
    for r in rows {
        let v = EntryView {
            indicator_id: r.get(0),
            region_code: r.get(1),
            period: r.get(2),
            value: r.get(3),
            evidence: r.get(4),
            entered_by: r.get(5),
            entered_at: r.get(6),
        };
        m.insert((v.indicator_id.clone(), v.region_code.clone()), v);
    }
    Ok(m)
}

/// Targets of the demo: 如皋's 2025 plan on the county, 宿迁's 2020–2022 table on the demo city.
pub async fn seed_demo(db: &Db, county: &str, city: &str) -> ApiResult<usize> {
    let who = Who {
        actor_id: None,
        actor_name: "demo".into(),
    };
    let scope = Scope::all();
    let mut n = 0;
    for (region, name, file, source) in [
        (
            county,
            "rugao-2025.csv",
            RUGAO_2025,
            "《如皋市“十四五”养老服务发展规划》",
        ),
        (
            city,
            "suqian-2020-2022.csv",
            SUQIAN_2020_2022,
            "《宿迁市推进养老服务高质量发展三年行动方案（2020-2022年）》（演示：用于演示市）",
        ),
    ] {
        let r = import_sheet(
            db,
            &scope,
            &who,
            region,
            name,
            file.as_bytes().to_vec(),
            Some(source.into()),
            false,
            true,
        )
        .await?;
        if r.rejected > 0 {
            let why: Vec<String> = r
                .rows
                .iter()
                .filter(|x| !x.errors.is_empty())
                .map(|x| format!("{}: {}", x.name, x.errors.join("；")))
                .collect();
            return Err(ApiError::internal(anyhow::anyhow!(
                "demo targets refused: {}",
                why.join(" | ")
            )));
        }
        n += r.written;
    }
    Ok(n)
}

/// 如皋市“十四五”养老服务发展规划, targets for 2025, as published (`domain/indicators.md`).
pub const RUGAO_2025: &str = "序号,指标,2025,属性
1,老年人接受居家上门服务覆盖率,18%,约束性
2,居家适老化改造户数,1000,预期性
3,城市街道综合性养老服务中心建成率,100%,约束性
4,80周岁及以上老年人能力评估覆盖率,100%,约束性
5,新建、改建颐养住区数量,2,预期性
6,护理型床位数占养老机构床位比例,75%,约束性
7,全市护理院建成率,100%,预期性
8,等级养老机构占比,80%,预期性
9,新建或改建认知症照护床位数,300,预期性
10,新增养老护理床位,1000,预期性
11,农村特困人员供养服务机构护理型床位占比,60%,约束性
12,标准化农村区域性养老服务中心建成数,2,约束性
13,具备失能(失智)特困人员集中供养功能的机构建成数,3,约束性
14,养老服务人员培训数(人次),2000,约束性
15,新增通过职业技能等级认定的养老护理员数,800,约束性
16,每百张养老机构床位配备社会工作者数量,1,约束性
17,养老服务领域吸纳新增就业人数,400,预期性
18,省级养老服务高质量发展示范企业,1,预期性
19,养老产品开发、销售企业数,2,预期性
";

/// 宿迁市推进养老服务高质量发展三年行动方案（2020-2022年）, as published.
pub const SUQIAN_2020_2022: &str = "序号,指标,2020,2021,2022
1,特困人员供养机构护理型床位占比,20%,30%,50%
2,各县(区)县级特困人员供养服务机构数量,,,1
3,各县(区)乡镇区域性养老服务综合体数量(累计),1,2,3
4,城市街道养老服务综合体建成率,50%,100%,
5,城市社区嵌入式日间照料中心覆盖率,70%,90%,95%
6,社区养老服务设施配建达标率,60%,80%,100%
7,养老服务设施专项规划编制,,done,
8,家庭医生签约服务失能(失智)老人覆盖率,30%,50%,80%
9,养老机构护理型床位占比,50%,55%,60%
10,接受居家上门服务老年人占比,10%,12%,15%
11,15分钟居家养老服务圈,,,completed
12,80周岁以上老年人能力综合评估覆盖率,50%,80%,100%
13,特殊困难老年人月探访率,80%,90%,100%
14,彩票公益金用于养老服务占比,50%,50%,55%
15,失能、失智特困人员集中供养率,80%,100%,100%
16,有集中供养意愿的特困人员集中供养率,100%,100%,100%
";

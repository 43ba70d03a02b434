//! Dashboard and single values, read from the rollups (never from the records): a node and its
//! children for one year, the year's months for the trend, the targets and the entered values.

use super::targets::{self, Definition, EntryView, Target};
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::region::RegionIndex;
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use yiyang_kernel::RegionCode;
use yiyang_kernel::indicator::{self as k, Direction, Formula, Period, Status};

type Measures = BTreeMap<String, i64>;

/// A rollup row as a formula sees it: a measure the rollups count but left out is zero (rows keep
/// only non-zero counts); a measure no capability supplies yet is missing (no value, not 0%).
struct RowSums<'a>(&'a Measures);

impl k::Sums for RowSums<'_> {
    fn get(&self, measure: &str) -> Option<i64> {
        self.0.get(measure).copied().or_else(|| {
            yiyang_kernel::indicator::measure::ALL
                .contains(&measure)
                .then_some(0)
        })
    }
}

/// Rollup rows of a node and its children for one year: (code, period) → measures.
async fn rows(db: &Db, code: &str, year: i32) -> ApiResult<HashMap<(String, String), Measures>> {
    let lo = format!("{year}");
    let hi = format!("{year}-99");
    let rows = sqlx::query(
        "SELECT region_code, period, measures FROM indicator_rollup WHERE region_code = $1 AND period BETWEEN $2 AND $3 \
         UNION ALL SELECT region_code, period, measures FROM indicator_rollup WHERE parent_code = $1 AND period BETWEEN $2 AND $3",
    )
    .bind(code)
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                (r.get::<String, _>(0), r.get::<String, _>(1)),
                serde_json::from_str(&r.get::<String, _>(2)).unwrap_or_default(),
            )
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrendPoint {
    /// YYYY-MM
    pub period: String,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChildValue {
    pub code: String,
    pub name: String,
    pub target: Option<f64>,
    pub value: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub status: String,
    pub status_zh: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IndicatorRow {
    #[serde(flatten)]
    pub def: Definition,
    pub target: Option<f64>,
    /// binding / expected (of the target)
    pub class: Option<String>,
    pub class_zh: Option<String>,
    /// ge / le
    pub direction: Option<String>,
    pub target_source: Option<String>,
    /// Set when the node has no target of its own and is held to an ancestor's: that
    /// ancestor's name (沿用上级目标).
    pub target_from: Option<String>,
    pub value: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    /// met / on_track / at_risk / missed / no_target / no_data / not_started
    pub status: String,
    pub status_zh: String,
    /// For monthly means: the month with the lowest rate.
    pub worst_month: Option<String>,
    /// The entered value's evidence (entered indicators).
    pub entry: Option<EntryView>,
    pub trend: Vec<TrendPoint>,
    pub children: Vec<ChildValue>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    pub region_code: String,
    pub region_name: String,
    pub year: i32,
    /// When the rollups were last refreshed.
    pub as_of: Option<String>,
    /// The day the running year's values are counted on.
    pub today: String,
    /// status → how many indicators (with a target) have it.
    pub summary: BTreeMap<String, usize>,
    pub indicators: Vec<IndicatorRow>,
}

struct Computed {
    value: k::Value,
    worst: Option<String>,
    trend: Vec<TrendPoint>,
}

fn compute(
    def: &k::Def,
    rows: &HashMap<(String, String), Measures>,
    code: &str,
    year: i32,
    today: NaiveDate,
) -> Computed {
    let empty = Measures::new();
    let at = |p: &str| rows.get(&(code.to_string(), p.to_string()));
    let months: Vec<Period> = Period::year_and_months(year, today)
        .into_iter()
        .filter(|p| p.month.is_some())
        .collect();
    let trend: Vec<TrendPoint> = months
        .iter()
        .map(|p| TrendPoint {
            period: p.key(),
            value: at(&p.key()).and_then(|m| k::compute(&def.formula, &RowSums(m)).value),
        })
        .collect();
    match def.formula {
        Formula::MeanMonthly { num, den } => {
            let sums: Vec<RowSums> = months
                .iter()
                .map(|p| RowSums(at(&p.key()).unwrap_or(&empty)))
                .collect();
            let ms: Vec<&dyn k::Sums> = sums.iter().map(|s| s as &dyn k::Sums).collect();
            let (value, worst) = k::mean_monthly(num, den, &ms);
            Computed {
                value,
                worst: worst.map(|i| months[i].key()),
                trend,
            }
        }
        _ => Computed {
            value: at(&year.to_string())
                .map(|m| k::compute(&def.formula, &RowSums(m)))
                .unwrap_or_default(),
            worst: None,
            trend,
        },
    }
}

fn status_of(
    year: i32,
    today: NaiveDate,
    target: Option<&Target>,
    value: Option<f64>,
    trend: &[TrendPoint],
) -> Status {
    let monthly: Vec<(u32, f64)> = trend
        .iter()
        .filter_map(|t| {
            let m: u32 = t.period.get(5..7)?.parse().ok()?;
            Some((m, t.value?))
        })
        .collect();
    k::status(
        year,
        today,
        target.map(|t| {
            (
                t.value,
                Direction::parse(&t.direction).unwrap_or(Direction::AtLeast),
            )
        }),
        value,
        &monthly,
    )
}

/// The dashboard of `code` for `year`: every indicator with a target there, and every one the
/// records compute (`all`: every definition).
pub async fn dashboard(
    db: &Db,
    regions: &RegionIndex,
    code: &str,
    year: i32,
    today: NaiveDate,
    all: bool,
) -> ApiResult<Dashboard> {
    let rc =
        RegionCode::parse(code).map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    let code = rc.as_str().to_string();
    if !(2000..=2100).contains(&year) {
        return Err(ApiError::invalid("year", "年份超出范围（2000–2100）"));
    }
    let rows = rows(db, &code, year).await?;
    let (lo, hi) = rc.subtree_range();
    let children: Vec<(String, String)> = regions
        .children(&code)
        .into_iter()
        .map(|r| (r.code.clone(), r.name.clone()))
        .collect();
    let targets: HashMap<(String, String), Target> = targets::list(db, &lo, &hi, Some(year))
        .await?
        .into_iter()
        .filter(|t| t.region_code == code || children.iter().any(|c| c.0 == t.region_code))
        .map(|t| ((t.indicator_id.clone(), t.region_code.clone()), t))
        .collect();
    // A node without its own target for the year is held to the nearest ancestor's (a town to
    // the county's); failing that, to the latest earlier year's, its own or an ancestor's (a plan's
    // end-year target holds until the next plan's are entered). Each says where it comes from.
    let mut line = vec![rc.clone()];
    let mut up = rc.parent();
    while let Some(a) = up {
        up = a.parent();
        line.push(a);
    }
    // Every year's targets of the node and its ancestors, read once, nearest first.
    let mut held: Vec<(usize, Target)> = vec![];
    for (i, a) in line.iter().enumerate() {
        for t in targets::list(db, a.as_str(), a.as_str(), None).await? {
            held.push((i, t));
        }
    }
    let name = |i: usize| {
        let a = line[i].as_str();
        regions.name(a).unwrap_or(a).to_string()
    };
    let mut inherited: HashMap<String, (Target, String)> = HashMap::new();
    for (i, t) in held.iter().filter(|(i, t)| *i > 0 && t.year == year) {
        inherited
            .entry(t.indicator_id.clone())
            .or_insert((t.clone(), name(*i)));
    }
    let mut earlier: Vec<&(usize, Target)> = held.iter().filter(|(_, t)| t.year < year).collect();
    // Nearest node first, then the latest year.
    earlier.sort_by_key(|(i, t)| (*i, std::cmp::Reverse(t.year)));
    for (i, t) in earlier {
        let place = if *i == 0 { String::new() } else { name(*i) };
        inherited
            .entry(t.indicator_id.clone())
            .or_insert((t.clone(), format!("{place}{}年", t.year)));
    }
    let entries = targets::latest_entries(db, &lo, &hi, &year.to_string()).await?;
    let defs = targets::definitions(db).await?;
    let mut out = vec![];
    let mut summary = BTreeMap::new();
    for d in defs {
        let own = targets.get(&(d.id.clone(), code.clone()));
        let from_above = own.is_none().then(|| inherited.get(&d.id)).flatten();
        let target = own.or(from_above.map(|(t, _)| t));
        let has_child_target = children
            .iter()
            .any(|c| targets.contains_key(&(d.id.clone(), c.0.clone())));
        if !(all || target.is_some() || has_child_target || d.source == "records") {
            continue;
        }
        let kdef = k::find(&d.id).filter(|x| x.source == k::Source::Records);
        let (val, worst, trend) = match kdef {
            Some(kd) => {
                let c = compute(kd, &rows, &code, year, today);
                (c.value, c.worst, c.trend)
            }
            None => {
                let v = entries.get(&(d.id.clone(), code.clone())).map(|e| e.value);
                (
                    k::Value {
                        value: v,
                        ..Default::default()
                    },
                    None,
                    vec![],
                )
            }
        };
        let st = status_of(year, today, target, val.value, &trend);
        if target.is_some() {
            *summary.entry(st.code().into()).or_insert(0) += 1;
        }
        let kids = children
            .iter()
            .map(|(cc, name)| {
                let t = targets.get(&(d.id.clone(), cc.clone()));
                let (v, tr) = match kdef {
                    Some(kd) => {
                        let c = compute(kd, &rows, cc, year, today);
                        (c.value, c.trend)
                    }
                    None => (
                        k::Value {
                            value: entries.get(&(d.id.clone(), cc.clone())).map(|e| e.value),
                            ..Default::default()
                        },
                        vec![],
                    ),
                };
                let s = status_of(year, today, t.or(target), v.value, &tr);
                ChildValue {
                    code: cc.clone(),
                    name: name.clone(),
                    // A child without its own target is measured against its parent's.
                    target: t.or(target).map(|t| t.value),
                    value: v.value,
                    numerator: v.numerator,
                    denominator: v.denominator,
                    status: s.code().into(),
                    status_zh: s.zh().into(),
                }
            })
            .collect();
        out.push(IndicatorRow {
            entry: entries.get(&(d.id.clone(), code.clone())).cloned(),
            def: d,
            target: target.map(|t| t.value),
            class: target.map(|t| t.class.clone()),
            class_zh: target.map(|t| {
                k::Class::parse(&t.class)
                    .map(|c| c.zh())
                    .unwrap_or("")
                    .to_string()
            }),
            direction: target.map(|t| t.direction.clone()),
            target_source: target.and_then(|t| t.source.clone()),
            target_from: from_above.map(|(_, name)| name.clone()),
            value: val.value,
            numerator: val.numerator,
            denominator: val.denominator,
            status: st.code().into(),
            status_zh: st.zh().into(),
            worst_month: worst,
            trend,
            children: kids,
        });
    }
    // Binding targets first, then expected, then those without a target; the plan's order within.
    out.sort_by_key(|r| match r.class.as_deref() {
        Some("binding") => 0,
        Some(_) => 1,
        None => 2,
    });
    Ok(Dashboard {
        region_name: regions.name(&code).unwrap_or(&code).to_string(),
        region_code: code,
        year,
        as_of: super::rollup::built_at(db).await?,
        today: today.to_string(),
        summary,
        indicators: out,
    })
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValueView {
    pub indicator_id: String,
    pub name: String,
    pub region_code: String,
    pub period: String,
    pub value: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    pub unit: String,
    pub target: Option<f64>,
    pub class: Option<String>,
    pub direction: Option<String>,
    pub status: String,
    pub as_of: Option<String>,
}

/// One indicator at one node and period (for `yiyang indicators value` and scripts).
pub async fn value(
    db: &Db,
    id: &str,
    code: &str,
    period: &str,
    today: NaiveDate,
) -> ApiResult<ValueView> {
    let def = targets::definition(db, id).await?;
    let rc =
        RegionCode::parse(code).map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    let code = rc.as_str().to_string();
    let p = Period::parse(period).map_err(|m| ApiError::invalid("period", m))?;
    if p.snapshot_day(today).is_none() {
        return Err(ApiError::invalid(
            "period",
            format!("期间 {} 尚未开始", p.key()),
        ));
    }
    let target = targets::list(db, &code, &code, Some(p.year))
        .await?
        .into_iter()
        .find(|t| t.indicator_id == def.id);
    // One read of the year's rollups gives the value and, for a year, the trend its status needs.
    let (v, trend) = match k::find(&def.id).filter(|d| d.source == k::Source::Records) {
        Some(kd) => {
            let rows = rows(db, &code, p.year).await?;
            let c = compute(kd, &rows, &code, p.year, today);
            match p.month {
                // A month's value is that month's own (for a monthly mean: the month's rate).
                Some(_) => (
                    rows.get(&(code.clone(), p.key()))
                        .map(|m| k::compute(&kd.formula, &RowSums(m)))
                        .unwrap_or_default(),
                    c.trend,
                ),
                None => (c.value, c.trend),
            }
        }
        None => (
            k::Value {
                value: targets::latest_entries(db, &code, &code, &p.key())
                    .await?
                    .get(&(def.id.clone(), code.clone()))
                    .map(|e| e.value),
                ..Default::default()
            },
            vec![],
        ),
    };
    let st = if p.month.is_none() {
        status_of(p.year, today, target.as_ref(), v.value, &trend)
    } else {
        Status::NoTarget
    };
    Ok(ValueView {
        indicator_id: def.id,
        name: def.name,
        region_code: code,
        period: p.key(),
        value: v.value.map(|x| (x * 10000.0).round() / 10000.0),
        numerator: v.numerator,
        denominator: v.denominator,
        unit: def.unit,
        target: target.as_ref().map(|t| t.value),
        class: target.as_ref().map(|t| t.class.clone()),
        direction: target.as_ref().map(|t| t.direction.clone()),
        status: st.code().into(),
        as_of: super::rollup::built_at(db).await?,
    })
}

/// The dashboard as an XLSX: one sheet with every indicator (target, value, numerator,
/// denominator, status), one with the children of the node for each indicator computed from
/// records or entered, as officers paste them into their reports.
pub fn dashboard_xlsx(d: &Dashboard) -> ApiResult<Vec<u8>> {
    let e = ApiError::internal;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let num = |v: Option<f64>| v.map(|x| (x * 100.0).round() / 100.0);
    let ws = wb.add_worksheet();
    ws.set_name("指标").map_err(e)?;
    ws.write(
        0,
        0,
        format!(
            "{} {} 年重点指标（数据截至 {}）",
            d.region_name,
            d.year,
            d.as_of.as_deref().unwrap_or("—")
        ),
    )
    .map_err(e)?;
    let heads = [
        "指标", "属性", "单位", "方向", "目标", "实际", "分子", "分母", "状态", "说明",
    ];
    for (c, h) in heads.iter().enumerate() {
        ws.write_with_format(1, c as u16, *h, &bold).map_err(e)?;
    }
    ws.set_column_width(0, 44).map_err(e)?;
    ws.set_column_width(9, 40).map_err(e)?;
    for (i, r) in d.indicators.iter().enumerate() {
        let row = i as u32 + 2;
        ws.write(row, 0, &r.def.name).map_err(e)?;
        ws.write(row, 1, r.class_zh.as_deref().unwrap_or(""))
            .map_err(e)?;
        ws.write(row, 2, &r.def.unit).map_err(e)?;
        ws.write(
            row,
            3,
            match r.direction.as_deref() {
                Some("le") => "≤",
                Some(_) => "≥",
                None => "",
            },
        )
        .map_err(e)?;
        for (c, v) in [
            (4, r.target),
            (5, num(r.value)),
            (6, r.numerator),
            (7, r.denominator),
        ] {
            if let Some(v) = v {
                ws.write(row, c, v).map_err(e)?;
            }
        }
        ws.write(row, 8, &r.status_zh).map_err(e)?;
        let note = match (&r.def.pending, &r.entry) {
            (Some(p), _) => format!("待接入：{p}"),
            (None, Some(en)) => format!("依据：{}（{}）", en.evidence, en.entered_by),
            _ => String::new(),
        };
        ws.write(row, 9, note).map_err(e)?;
    }
    let ws = wb.add_worksheet();
    ws.set_name("下级").map_err(e)?;
    for (c, h) in [
        "指标",
        "区划",
        "区划代码",
        "目标",
        "实际",
        "分子",
        "分母",
        "状态",
    ]
    .iter()
    .enumerate()
    {
        ws.write_with_format(0, c as u16, *h, &bold).map_err(e)?;
    }
    ws.set_column_width(0, 44).map_err(e)?;
    let mut row = 1u32;
    for r in d.indicators.iter().filter(|r| r.def.source != "pending") {
        for k in &r.children {
            ws.write(row, 0, &r.def.name).map_err(e)?;
            ws.write(row, 1, &k.name).map_err(e)?;
            ws.write(row, 2, &k.code).map_err(e)?;
            for (c, v) in [
                (3, k.target),
                (4, num(k.value)),
                (5, k.numerator),
                (6, k.denominator),
            ] {
                if let Some(v) = v {
                    ws.write(row, c, v).map_err(e)?;
                }
            }
            ws.write(row, 7, &k.status_zh).map_err(e)?;
            row += 1;
        }
    }
    wb.save_to_buffer().map_err(e)
}

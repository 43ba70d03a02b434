//! The people behind a number: for a coverage indicator, everyone in the gap (e.g. the 80+ without
//! a valid assessment on the period's last day); for a count, everyone counted. By town and
//! village, paged or as an XLSX for the village workers. Decided by the same `Person::flags` as
//! the rollups, so a gap list's length is exactly denominator − numerator, a count's its value.
//! The figures of home visits and meals list the elders served within the period, with how often,
//! by the rollups' own rule (`facilities::served_people`): the elders a visits-per-elder figure
//! divides by, and everyone behind a count of meals (their meals add up to it).

use super::facilities;
use super::rollup::{self, Person, Which};
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::region::RegionIndex;
use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;
use yiyang_kernel::RegionCode;
use yiyang_kernel::citizen_id::age_on;
use yiyang_kernel::indicator::Period;

/// Indicators with a list behind them.
pub fn drillable(id: &str) -> bool {
    part(id).is_some()
}

/// What the list of an indicator holds: "gap" (a coverage's missing people) or "counted".
pub fn part(id: &str) -> Option<&'static str> {
    match id {
        "assessment_coverage_80" | "longevity_allowance_coverage" | "monthly_visit_rate" => {
            Some("gap")
        }
        "elders_60" | "entitled_elders" => Some("counted"),
        "home_visits_per_served" | "meals_served" => Some("counted"),
        _ => None,
    }
}

/// Indicators whose list is of the elders served within the period rather than on its last day:
/// Some(true) for meals, Some(false) for home visits.
fn served_within(id: &str) -> Option<bool> {
    match id {
        "home_visits_per_served" => Some(false),
        "meals_served" => Some(true),
        _ => None,
    }
}

/// On the list on day `d`, and why (in words for the list).
fn listed(id: &str, p: &Person, d: NaiveDate) -> Option<String> {
    let f = p.flags(d);
    match id {
        "elders_60" if f.elder_60 => Some("在世、在册".into()),
        "entitled_elders" if f.entitled => Some("享有基本养老服务".into()),
        "assessment_coverage_80" if f.elder_80 && !f.assessed => {
            let before = p
                .assessed
                .iter()
                .filter(|(a, _)| *a <= d)
                .map(|x| x.1)
                .max();
            Some(match before {
                Some(u) => format!("评估已于 {u} 到期"),
                None if p.assessed.is_empty() => "从未评估".into(),
                None => "期末后才评估".into(),
            })
        }
        "longevity_allowance_coverage" if f.elder_80 && !f.longevity => {
            Some("未享受高龄津贴".into())
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ListedPerson {
    pub elder_id: String,
    pub name: String,
    pub citizen_id_masked: String,
    pub sex: String,
    pub age: i32,
    pub town: String,
    pub village: String,
    pub note: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TownCount {
    pub code: String,
    pub name: String,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeopleList {
    pub indicator_id: String,
    /// gap: the people a coverage misses; counted: the people a count counts
    pub part: String,
    pub region_code: String,
    pub period: String,
    /// The day the list is decided on.
    pub day: String,
    pub total: usize,
    pub by_town: Vec<TownCount>,
    pub page: usize,
    pub page_size: usize,
    pub people: Vec<ListedPerson>,
}

/// Everyone on the list, ordered by village then id: (elder id, leaf code, note, birth).
async fn members(
    db: &Db,
    id: &str,
    lo: &str,
    hi: &str,
    p: &Period,
    d: NaiveDate,
    today: NaiveDate,
) -> ApiResult<Vec<(String, String, String, Option<NaiveDate>)>> {
    let mut v: Vec<_> = if id == "monthly_visit_rate" {
        // The month of the day decided on (a year's list is its last month's).
        let start = d.with_day(1).unwrap_or(d);
        crate::care_visit::month_people(db, lo, hi, start, d)
            .await?
            .into_iter()
            .filter(|p| !p.visited)
            .map(|p| {
                let note = format!("{} 月未探访", start.month());
                (p.elder_id, p.leaf, note, p.birth)
            })
            .collect()
    } else if let Some(meals) = served_within(id) {
        facilities::served_people(db, lo, hi, p, today, meals)
            .await?
            .into_iter()
            .map(|(id, leaf, birth, n)| {
                let note = if meals {
                    format!("期内就餐 {n} 次")
                } else {
                    format!("期内上门服务 {n} 次")
                };
                (id, leaf, note, birth)
            })
            .collect()
    } else {
        let people = rollup::load(db, Which::Range(lo, hi)).await?;
        people
            .iter()
            .filter_map(|x| listed(id, x, d).map(|n| (x.id.clone(), x.leaf.clone(), n, x.birth)))
            .collect()
    };
    v.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    Ok(v)
}

fn town_of(regions: &RegionIndex, leaf: &str) -> (String, String) {
    let town = format!("{}000", &leaf[..9.min(leaf.len())]);
    let tn = regions.name(&town).unwrap_or(&town).to_string();
    let vn = if leaf == town {
        String::new()
    } else {
        regions.name(leaf).unwrap_or(leaf).to_string()
    };
    (tn, vn)
}

async fn details(
    db: &Db,
    regions: &RegionIndex,
    part: &[(String, String, String, Option<NaiveDate>)],
    d: NaiveDate,
) -> ApiResult<Vec<ListedPerson>> {
    if part.is_empty() {
        return Ok(vec![]);
    }
    let marks: Vec<String> = (1..=part.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, name, citizen_id_masked, sex FROM elder WHERE id IN ({})",
        marks.join(",")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for p in part {
        q = q.bind(p.0.clone());
    }
    let found: BTreeMap<String, (String, String, String)> = q
        .fetch_all(&db.pool)
        .await?
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    Ok(part
        .iter()
        .filter_map(|(id, leaf, note, birth)| {
            let (name, cid, sex) = found.get(id)?.clone();
            let (town, village) = town_of(regions, leaf);
            Some(ListedPerson {
                elder_id: id.clone(),
                name,
                citizen_id_masked: cid,
                sex: if sex == "F" || sex == "女" {
                    "女".into()
                } else {
                    "男".into()
                },
                age: birth.map(|b| age_on(b, d)).unwrap_or(0),
                town,
                village,
                note: note.clone(),
            })
        })
        .collect())
}

fn check(
    id: &str,
    code: &str,
    period: &str,
    today: NaiveDate,
) -> ApiResult<(RegionCode, Period, NaiveDate)> {
    if !drillable(id) {
        return Err(ApiError::invalid(
            "indicator_id",
            "该指标没有可下钻的名单（覆盖率提供差额名单，人数提供人员名单；其余指标的数据尚未接入或为手工填报）",
        ));
    }
    let rc =
        RegionCode::parse(code).map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    let p = Period::parse(period).map_err(|m| ApiError::invalid("period", m))?;
    let d = p
        .snapshot_day(today)
        .ok_or_else(|| ApiError::invalid("period", format!("期间 {} 尚未开始", p.key())))?;
    Ok((rc, p, d))
}

#[allow(clippy::too_many_arguments)]
pub async fn list(
    db: &Db,
    regions: &RegionIndex,
    id: &str,
    code: &str,
    period: &str,
    today: NaiveDate,
    page: usize,
    page_size: usize,
) -> ApiResult<PeopleList> {
    let (rc, p, d) = check(id, code, period, today)?;
    let (lo, hi) = rc.subtree_range();
    let all = members(db, id, &lo, &hi, &p, d, today).await?;
    let mut towns: BTreeMap<String, usize> = BTreeMap::new();
    for m in &all {
        *towns.entry(format!("{}000", &m.1[..9])).or_insert(0) += 1;
    }
    let start = ((page - 1) * page_size).min(all.len());
    let end = (start + page_size).min(all.len());
    let people = details(db, regions, &all[start..end], d).await?;
    Ok(PeopleList {
        part: part(id).unwrap_or("gap").into(),
        indicator_id: id.into(),
        region_code: rc.as_str().into(),
        period: p.key(),
        day: d.to_string(),
        total: all.len(),
        by_town: towns
            .into_iter()
            .map(|(c, n)| TownCount {
                name: regions.name(&c).unwrap_or(&c).to_string(),
                code: c,
                count: n,
            })
            .collect(),
        page,
        page_size,
        people,
    })
}

/// The whole list as XLSX (masked IDs), for the village workers. Returns the bytes and the count.
pub async fn xlsx(
    db: &Db,
    regions: &RegionIndex,
    id: &str,
    name: &str,
    code: &str,
    period: &str,
    today: NaiveDate,
) -> ApiResult<(Vec<u8>, usize)> {
    let (rc, p, d) = check(id, code, period, today)?;
    let (lo, hi) = rc.subtree_range();
    let all = members(db, id, &lo, &hi, &p, d, today).await?;
    if all.len() > 1_000_000 {
        return Err(ApiError::invalid(
            "region_code",
            format!(
                "名单共 {} 人，超过一张 Excel 表的上限，请选择下级区划分别导出",
                all.len()
            ),
        ));
    }
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let e = ApiError::internal;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    ws.write(
        0,
        0,
        format!(
            "{}（{}，{}，截至 {d}）{}：共 {} 人",
            name,
            regions.path_name(rc.as_str()),
            p.key(),
            if part(id) == Some("gap") {
                "差额名单"
            } else {
                "人员名单"
            },
            all.len()
        ),
    )
    .map_err(e)?;
    for (c, h) in [
        "乡镇（街道）",
        "村（社区）",
        "姓名",
        "身份证号",
        "性别",
        "年龄",
        "情况",
    ]
    .iter()
    .enumerate()
    {
        ws.write_with_format(1, c as u16, *h, &bold).map_err(e)?;
    }
    for (c, w) in [16.0, 16.0, 10.0, 22.0, 6.0, 6.0, 24.0].iter().enumerate() {
        ws.set_column_width(c as u16, *w).map_err(e)?;
    }
    let mut r = 2u32;
    for chunk in all.chunks(500) {
        for g in details(db, regions, chunk, d).await? {
            ws.write(r, 0, &g.town).map_err(e)?;
            ws.write(r, 1, &g.village).map_err(e)?;
            ws.write(r, 2, &g.name).map_err(e)?;
            ws.write(r, 3, &g.citizen_id_masked).map_err(e)?;
            ws.write(r, 4, &g.sex).map_err(e)?;
            ws.write(r, 5, g.age).map_err(e)?;
            ws.write(r, 6, &g.note).map_err(e)?;
            r += 1;
        }
    }
    ws.set_freeze_panes(2, 0).map_err(e)?;
    Ok((wb.save_to_buffer().map_err(e)?, all.len()))
}

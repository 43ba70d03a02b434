//! The rollups' measures counted from the institutions' records: homes, beds, residents and staff
//! at the home's place, and the extremely poor (特困) and where they live at theirs; and from the
//! home-care records: visits, their ratings and meals where the elder lives, the providers'
//! caregivers at the provider's place. Beds, bed stays and staff come grouped by their dates, so
//! a province's half a million beds arrive as a few thousand rows. Homes count as they are today
//! (their opening and closing are not dated).

use super::rollup::{Counts, NM, Which};
use crate::platform::db::Db;
use crate::platform::error::ApiResult;
use chrono::NaiveDate;
use sqlx::Row;
use std::collections::HashMap;
use yiyang_kernel::citizen_id::age_on;
use yiyang_kernel::indicator::Period;
use yiyang_kernel::indicator::measure as m;

fn idx(name: &str) -> usize {
    m::ALL
        .iter()
        .position(|x| *x == name)
        .expect("a measure of measure::ALL")
}

fn date(s: Option<String>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s?.get(..10)?, "%Y-%m-%d").ok()
}

/// Open on `d`: from ≤ d < until (no until: still open).
fn open_on(from: Option<NaiveDate>, until: Option<NaiveDate>, d: NaiveDate) -> bool {
    from.is_some_and(|f| f <= d) && until.is_none_or(|u| u > d)
}

/// Born on or before this day: 60 or more on `last`, the last day the rollups count.
fn born_by(last: NaiveDate) -> String {
    last.checked_sub_months(chrono::Months::new(720))
        .unwrap_or(last)
        .to_string()
}

/// The visits the home-service measures count (orders `o` of elders `e`): confirmed, to a
/// registered elder born by `born` — the rollups and the lists behind them read this one rule.
fn served_visits(born: &str) -> String {
    format!("o.state = 'confirmed' AND e.status = 'active' AND e.birth_date <= '{born}'")
}

/// The period a record of `when` ("2025-03" when `monthly`, else "2025") counts in.
fn period_of(periods: &[Period], monthly: bool, when: &str) -> Option<usize> {
    periods.iter().position(|p| match p.month {
        Some(mo) if monthly => format!("{:04}-{mo:02}", p.year) == when,
        None if !monthly => format!("{:04}", p.year) == when,
        _ => false,
    })
}

/// The elders behind the visits (or the meals) of one period in a code range, by the rollups'
/// own rule: (elder id, where they live, birth date, their visits or meals in the period). The
/// age rule is the one of a refresh made on `today`.
pub(crate) async fn served_people(
    db: &Db,
    lo: &str,
    hi: &str,
    period: &Period,
    today: NaiveDate,
    meals: bool,
) -> ApiResult<Vec<(String, String, Option<NaiveDate>, i64)>> {
    let key = period.key();
    let len = key.len();
    let sql = if meals {
        format!(
            "SELECT e.id, e.residence_region, e.birth_date, COUNT(*) FROM meal_record r JOIN elder e ON e.id = r.elder_id \
             WHERE substr(r.day, 1, {len}) = $1 AND e.residence_region BETWEEN $2 AND $3 \
             GROUP BY e.id, e.residence_region, e.birth_date"
        )
    } else {
        format!(
            "SELECT e.id, e.residence_region, e.birth_date, COUNT(*) FROM service_order o JOIN elder e ON e.id = o.elder_id \
             WHERE {} AND substr(o.planned_start, 1, {len}) = $1 AND e.residence_region BETWEEN $2 AND $3 \
             GROUP BY e.id, e.residence_region, e.birth_date",
            served_visits(&born_by(today))
        )
    };
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .bind(lo)
        .bind(hi)
        .fetch_all(&db.pool)
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), date(r.get(2)), r.get(3)))
        .collect())
}

// Each count starts from the homes (CROSS JOIN keeps SQLite to that order; a town's refresh
// reads its own homes' beds, not the province's).

/// Homes for the extremely poor (特困人员供养服务机构).
const POVERTY_KINDS: &str = "'township_home', 'regional_center'";

/// The homes' measures on each day, home by home (id → (its place, counts)): the one count both
/// the rollups and the list of homes behind a figure read.
pub(crate) async fn per_home(
    db: &Db,
    which: &Which<'_>,
    days: &[NaiveDate],
) -> ApiResult<HashMap<String, (String, Vec<Counts>)>> {
    let kinds = crate::institution::RESIDENTIAL_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let homes = format!(
        "o.status = 'open' AND o.kind IN ({kinds}){}",
        which.filter("o.region_code")
    );
    let mut out: HashMap<String, (String, Vec<Counts>)> = HashMap::new();
    let mut bump = |org: &str, k: usize, measure: usize, n: i64| {
        out.entry(org.to_string())
            .or_insert_with(|| (String::new(), vec![[0; NM]; days.len()]))
            .1[k][measure] += n;
    };

    // Homes and their grades.
    let (inst, graded) = (idx(m::INSTITUTIONS), idx(m::GRADED_INSTITUTIONS));
    // Home → (its own key for the counts, not owned by the state, for the extremely poor).
    let mut place: HashMap<String, (String, bool, bool)> = HashMap::new();
    let mut at: HashMap<String, String> = HashMap::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT o.id, o.region_code, o.grade, o.grade_expires_on, o.ownership, \
         CASE WHEN o.kind IN ({POVERTY_KINDS}) THEN 1 ELSE 0 END FROM organisation o WHERE {homes}"
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let id: String = r.get(0);
        let grade: Option<i64> = r.get(2);
        let expires = date(r.get(3));
        for (k, &d) in days.iter().enumerate() {
            bump(&id, k, inst, 1);
            if grade.is_some_and(|g| g >= 2) && expires.is_none_or(|e| e >= d) {
                bump(&id, k, graded, 1);
            }
        }
        let social = r.get::<String, _>(4) != "public";
        let poverty = r.get::<i64, _>(5) == 1;
        at.insert(id.clone(), r.get::<String, _>(1));
        place.insert(id.clone(), (id, social, poverty));
    }

    // Beds, by home, kind and dates.
    let (beds, nursing, social_beds, pov, pov_nursing, all_beds) = (
        idx(m::INSTITUTION_BEDS),
        idx(m::NURSING_BEDS),
        idx(m::SOCIAL_BEDS),
        idx(m::POVERTY_BEDS),
        idx(m::POVERTY_NURSING_BEDS),
        idx(m::ALL_BEDS),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT b.org_id, b.nursing, b.opened_on, b.retired_on, COUNT(*) FROM organisation o CROSS JOIN bed b \
         WHERE b.org_id = o.id AND {homes} GROUP BY b.org_id, b.nursing, b.opened_on, b.retired_on"
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let Some((leaf, social, poverty)) = place.get(&r.get::<String, _>(0)) else {
            continue;
        };
        let is_nursing = r.get::<i64, _>(1) != 0;
        let (from, until) = (date(r.get(2)), date(r.get(3)));
        let n: i64 = r.get(4);
        for (k, &d) in days.iter().enumerate() {
            if !open_on(from, until, d) {
                continue;
            }
            bump(leaf, k, beds, n);
            bump(leaf, k, all_beds, n);
            if is_nursing {
                bump(leaf, k, nursing, n);
            }
            if *social {
                bump(leaf, k, social_beds, n);
            }
            if *poverty {
                bump(leaf, k, pov, n);
                if is_nursing {
                    bump(leaf, k, pov_nursing, n);
                }
            }
        }
    }

    // Beds with someone in them.
    let occupied = idx(m::OCCUPIED_BEDS);
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT b.org_id, s.from_on, s.until_on, COUNT(*) FROM organisation o CROSS JOIN bed b \
         CROSS JOIN bed_stay s WHERE b.org_id = o.id AND s.bed_id = b.id AND {homes} GROUP BY b.org_id, s.from_on, s.until_on"
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let Some((leaf, _, _)) = place.get(&r.get::<String, _>(0)) else {
            continue;
        };
        let (from, until) = (date(r.get(1)), date(r.get(2)));
        let n: i64 = r.get(3);
        for (k, &d) in days.iter().enumerate() {
            if open_on(from, until, d) {
                bump(leaf, k, occupied, n);
            }
        }
    }

    // Staff in post.
    let (sw, cg, cert) = (
        idx(m::SOCIAL_WORKERS),
        idx(m::CAREGIVERS),
        idx(m::CAREGIVERS_WITH_CERTIFICATE),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT s.org_id, s.role, CASE WHEN s.certificate_no IS NULL OR s.certificate_no = '' THEN 0 ELSE 1 END, \
         s.hired_on, s.left_on, COUNT(*) FROM organisation o CROSS JOIN staff s \
         WHERE s.org_id = o.id AND {homes} AND s.role IN ('social_worker', 'caregiver') GROUP BY 1, 2, 3, 4, 5"
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let Some((leaf, _, _)) = place.get(&r.get::<String, _>(0)) else {
            continue;
        };
        let role: String = r.get(1);
        let certified = r.get::<i64, _>(2) == 1;
        let (from, until) = (date(r.get(3)), date(r.get(4)));
        let n: i64 = r.get(5);
        for (k, &d) in days.iter().enumerate() {
            if !open_on(from, until, d) {
                continue;
            }
            if role == "social_worker" {
                bump(leaf, k, sw, n);
            } else {
                bump(leaf, k, cg, n);
                if certified {
                    bump(leaf, k, cert, n);
                }
            }
        }
    }

    for (id, v) in out.iter_mut() {
        v.0 = at.get(id).cloned().unwrap_or_default();
    }
    Ok(out)
}

/// Add the measures of the homes and 特困 elders of `which` to `out` (leaf → a count per day).
pub(crate) async fn add(
    db: &Db,
    which: &Which<'_>,
    periods: &[Period],
    today: NaiveDate,
    out: &mut HashMap<String, Vec<Counts>>,
) -> ApiResult<()> {
    let days: Vec<NaiveDate> = periods
        .iter()
        .map(|p| p.snapshot_day(today).expect("begun"))
        .collect();
    let starts: Vec<NaiveDate> = periods
        .iter()
        .map(|p| NaiveDate::from_ymd_opt(p.year, p.month.unwrap_or(1), 1).expect("a valid period"))
        .collect();
    let days = &days[..];
    let mut bump = |leaf: &str, k: usize, measure: usize, n: i64| {
        out.entry(leaf.to_string())
            .or_insert_with(|| vec![[0; NM]; days.len()])[k][measure] += n;
    };
    for (_, (leaf, counts)) in per_home(db, which, days).await? {
        for (k, c) in counts.iter().enumerate() {
            for (i, n) in c.iter().enumerate() {
                if *n != 0 {
                    bump(&leaf, k, i, *n);
                }
            }
        }
    }
    let all_beds = idx(m::ALL_BEDS);
    let kinds = crate::institution::RESIDENTIAL_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");

    // Family care beds, at the elder's home: in use on the day, and set up within the period.
    let (fam, fam_new) = (idx(m::FAMILY_CARE_BEDS_OPEN), idx(m::FAMILY_CARE_BEDS_NEW));
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT e.residence_region, f.start_on, f.end_on, COUNT(*) FROM family_bed f JOIN elder e ON e.id = f.elder_id \
         WHERE 1 = 1{} GROUP BY e.residence_region, f.start_on, f.end_on",
        which.filter("e.residence_region")
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let leaf: String = r.get(0);
        let (from, until) = (date(r.get(1)), date(r.get(2)));
        let n: i64 = r.get(3);
        for (k, &d) in days.iter().enumerate() {
            if open_on(from, until, d) {
                bump(&leaf, k, fam, n);
                bump(&leaf, k, all_beds, n);
            }
            if from.is_some_and(|f| f >= starts[k] && f <= d) {
                bump(&leaf, k, fam_new, n);
            }
        }
    }

    // Elders served at home (a visit confirmed in the period), where they live: distinct people
    // per month and per year, counted by the database — of the people the share is taken of
    // (在册, 60 or more on the last day counted) — with their visits, and of those the ones the
    // family rated and rated 4 or 5 stars.
    let (served, visits, rated, satisfied, meals) = (
        idx(m::HOME_SERVED),
        idx(m::HOME_VISITS),
        idx(m::HOME_VISITS_RATED),
        idx(m::HOME_VISITS_SATISFIED),
        idx(m::MEALS),
    );
    let born = born_by(days.iter().max().copied().unwrap_or(today));
    // Nothing before the first period counts: the scans skip the older records.
    let since = starts.iter().min().copied().unwrap_or(today).to_string();
    for (len, monthly) in [(7, true), (4, false)] {
        for r in sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT e.residence_region, substr(o.planned_start, 1, {len}), COUNT(DISTINCT o.elder_id), COUNT(*), \
             CAST(SUM(CASE WHEN f.rating IS NULL THEN 0 ELSE 1 END) AS BIGINT), \
             CAST(SUM(CASE WHEN f.rating >= 4 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM service_order o JOIN elder e ON e.id = o.elder_id LEFT JOIN service_feedback f ON f.order_id = o.id \
             WHERE {} AND o.planned_start >= '{since}'{} \
             GROUP BY e.residence_region, substr(o.planned_start, 1, {len})",
            served_visits(&born),
            which.filter("e.residence_region")
        )))
        .fetch_all(&db.pool)
        .await?
        {
            let (leaf, when): (String, String) = (r.get(0), r.get(1));
            if let Some(k) = period_of(periods, monthly, &when) {
                bump(&leaf, k, served, r.get(2));
                bump(&leaf, k, visits, r.get(3));
                bump(&leaf, k, rated, r.get(4));
                bump(&leaf, k, satisfied, r.get(5));
            }
        }
        // Meals served (one record a meal), where the elder lives; every meal counts, whoever
        // ate it, as the meal points served it.
        for r in sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT e.residence_region, substr(r.day, 1, {len}), COUNT(*) FROM meal_record r \
             JOIN elder e ON e.id = r.elder_id WHERE r.day >= '{since}'{} \
             GROUP BY e.residence_region, substr(r.day, 1, {len})",
            which.filter("e.residence_region")
        )))
        .fetch_all(&db.pool)
        .await?
        {
            let (leaf, when): (String, String) = (r.get(0), r.get(1));
            if let Some(k) = period_of(periods, monthly, &when) {
                bump(&leaf, k, meals, r.get(2));
            }
        }
    }

    // Caregivers of the organisations that send them to homes, in post on the day, at the
    // organisation's place: they serve elders across villages, so their own region is that.
    let home_cg = idx(m::HOME_CAREGIVERS);
    let providers = crate::home_service::PROVIDER_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT o.region_code, s.hired_on, s.left_on, COUNT(*) FROM organisation o CROSS JOIN staff s \
         WHERE s.org_id = o.id AND o.status = 'open' AND o.kind IN ({providers}) AND s.role = 'caregiver'{} \
         GROUP BY o.region_code, s.hired_on, s.left_on",
        which.filter("o.region_code")
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let leaf: String = r.get(0);
        let (from, until) = (date(r.get(1)), date(r.get(2)));
        let n: i64 = r.get(3);
        for (k, &d) in days.iter().enumerate() {
            if open_on(from, until, d) {
                bump(&leaf, k, home_cg, n);
            }
        }
    }

    // The extremely poor aged 60 or more, where they live: who cannot look after themselves,
    // who asked for a place, and who lives in a home for them (or a public one).
    let people = which.filter("e.residence_region");
    struct Poor {
        leaf: String,
        birth: Option<NaiveDate>,
        dead: Option<NaiveDate>,
        disabled: Option<(NaiveDate, NaiveDate)>,
        asked: Option<NaiveDate>,
        housed: Vec<(Option<NaiveDate>, Option<NaiveDate>)>,
    }
    let mut poor: HashMap<String, Poor> = HashMap::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT e.id, e.residence_region, e.birth_date, e.death_date, ab.level, ab.assessed_on, ab.valid_until \
         FROM elder e LEFT JOIN elder_ability ab ON ab.elder_id = e.id \
         WHERE e.economic_status = 'extreme_poverty' AND e.status = 'active'{people}"
    )))
    .fetch_all(&db.pool)
    .await?
    {
        let level: Option<i64> = r.get(4);
        let disabled = match (level, date(r.get(5)), date(r.get(6))) {
            (Some(l), Some(a), Some(u)) if l >= yiyang_kernel::staffing::DEPENDENT_LEVEL => {
                Some((a, u))
            }
            _ => None,
        };
        poor.insert(
            r.get(0),
            Poor {
                leaf: r.get(1),
                birth: date(r.get(2)),
                dead: date(r.get(3)),
                disabled,
                asked: None,
                housed: vec![],
            },
        );
    }
    if poor.is_empty() {
        return Ok(());
    }
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT a.elder_id, MIN(a.applied_at) FROM admission_application a JOIN elder e ON e.id = a.elder_id \
         WHERE a.state <> 'withdrawn' AND e.economic_status = 'extreme_poverty'{people} GROUP BY a.elder_id"
    )))
    .fetch_all(&db.pool)
    .await?
    {
        if let Some(p) = poor.get_mut(&r.get::<String, _>(0)) {
            p.asked = date(r.get(1));
        }
    }
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT a.elder_id, a.admitted_on, a.discharged_on FROM admission a JOIN organisation o ON o.id = a.org_id \
         JOIN elder e ON e.id = a.elder_id WHERE e.economic_status = 'extreme_poverty'{people} \
         AND o.kind IN ({kinds}) AND (o.kind IN ({POVERTY_KINDS}) OR o.ownership = 'public')"
    )))
    .fetch_all(&db.pool)
    .await?
    {
        if let Some(p) = poor.get_mut(&r.get::<String, _>(0)) {
            p.housed.push((date(r.get(1)), date(r.get(2))));
        }
    }
    let (dis, dis_in, will, will_in) = (
        idx(m::POVERTY_DISABLED),
        idx(m::POVERTY_DISABLED_IN_FACILITY),
        idx(m::POVERTY_WILLING),
        idx(m::POVERTY_WILLING_IN_FACILITY),
    );
    for p in poor.values() {
        for (k, &d) in days.iter().enumerate() {
            let Some(birth) = p.birth else { continue };
            if p.dead.is_some_and(|x| x <= d) || birth > d || age_on(birth, d) < 60 {
                continue;
            }
            let housed = p.housed.iter().any(|(f, u)| open_on(*f, *u, d));
            if p.disabled.is_some_and(|(a, u)| a <= d && d <= u) {
                bump(&p.leaf, k, dis, 1);
                if housed {
                    bump(&p.leaf, k, dis_in, 1);
                }
            }
            if housed || p.asked.is_some_and(|a| a <= d) {
                bump(&p.leaf, k, will, 1);
                if housed {
                    bump(&p.leaf, k, will_in, 1);
                }
            }
        }
    }
    Ok(())
}

/// Indicators whose figure is made of the homes' own, and each home's part of it.
fn part_of(id: &str) -> Option<(&'static str, &'static str)> {
    Some(match id {
        "nursing_bed_share" => (m::NURSING_BEDS, m::INSTITUTION_BEDS),
        "nursing_bed_share_poverty" => (m::POVERTY_NURSING_BEDS, m::POVERTY_BEDS),
        "social_beds_share" => (m::SOCIAL_BEDS, m::INSTITUTION_BEDS),
        "graded_institution_share" => (m::GRADED_INSTITUTIONS, m::INSTITUTIONS),
        "social_workers_per_100_beds" => (m::SOCIAL_WORKERS, m::INSTITUTION_BEDS),
        "bed_occupancy_rate" => (m::OCCUPIED_BEDS, m::INSTITUTION_BEDS),
        "certified_caregiver_share" => (m::CAREGIVERS_WITH_CERTIFICATE, m::CAREGIVERS),
        _ => return None,
    })
}

/// Whether the homes behind an indicator's figure can be listed.
pub fn by_home(id: &str) -> bool {
    part_of(id).is_some()
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HomePart {
    pub org_id: String,
    pub name: String,
    pub kind_name: String,
    pub ownership_name: String,
    /// "如皋市 / 东陈镇"
    pub place: String,
    pub numerator: i64,
    pub denominator: i64,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HomeList {
    pub indicator_id: String,
    pub region_code: String,
    pub period: String,
    /// The day counted (the period's last, or today while it runs)
    pub on: String,
    pub numerator: i64,
    pub denominator: i64,
    /// Every home in the region, the furthest from the figure first (lowest share)
    pub items: Vec<HomePart>,
}

/// The homes behind a figure at a region node and period, counted by the rollups' own rule on the
/// period's day: their numerators and denominators add up to the figure's.
pub async fn homes(
    db: &Db,
    regions: &crate::region::RegionIndex,
    id: &str,
    region_code: &str,
    period: &str,
    today: NaiveDate,
) -> ApiResult<HomeList> {
    use crate::platform::error::ApiError;
    let (num, den) = part_of(id).ok_or_else(|| {
        ApiError::invalid("id", "该指标不是由各养老机构的数字汇总而成，没有机构明细")
    })?;
    let rc = yiyang_kernel::RegionCode::parse(region_code)
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    let p = Period::parse(period).map_err(|e| ApiError::invalid("period", e))?;
    let day = p
        .snapshot_day(today)
        .ok_or_else(|| ApiError::invalid("period", "该期间尚未开始"))?;
    let (lo, hi) = rc.subtree_range();
    let counts = per_home(db, &Which::Range(&lo, &hi), &[day]).await?;
    let ids: Vec<&String> = counts.keys().collect();
    let mut names: HashMap<String, (String, String, String)> = HashMap::new();
    for chunk in ids.chunks(500) {
        let marks = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, name, kind, ownership FROM organisation WHERE id IN ({marks})"
        )));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&db.pool).await? {
            names.insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
        }
    }
    let (ni, di) = (idx(num), idx(den));
    let mut items: Vec<HomePart> = counts
        .into_iter()
        .filter_map(|(org, (leaf, c))| {
            let (n, d) = (c[0][ni], c[0][di]);
            if d == 0 && n == 0 {
                return None;
            }
            let (name, kind, own) = names.remove(&org)?;
            Some(HomePart {
                org_id: org,
                name,
                kind_name: crate::org::kind_zh(&kind).into(),
                ownership_name: crate::org::ownership_zh(&own).into(),
                place: regions.path_name(&format!("{}000", &leaf[..9.min(leaf.len())])),
                numerator: n,
                denominator: d,
            })
        })
        .collect();
    items.sort_by(|a, b| {
        let share = |h: &HomePart| h.numerator as f64 / h.denominator.max(1) as f64;
        share(a)
            .partial_cmp(&share(b))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(HomeList {
        indicator_id: id.to_string(),
        region_code: rc.as_str().to_string(),
        period: p.key(),
        on: day.to_string(),
        numerator: items.iter().map(|h| h.numerator).sum(),
        denominator: items.iter().map(|h| h.denominator).sum(),
        items,
    })
}

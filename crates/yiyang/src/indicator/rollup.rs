//! Rollups: the measures of `yiyang_kernel::indicator::measure`, counted per village (or town,
//! for people registered at town level) and period, and summed into every node above it. The
//! dashboards and `indicators value` read only these rows.
//!
//! A row is (node, period) with the node's measures as a small JSON object; a period is a year
//! ("2025") or a month ("2025-03"), counted on its last day or on today while it runs. Years from
//! the earliest target year (at least last year) to this year are kept.
//!
//! Refreshing:
//! - **Full rebuild** (`yiyang indicators rebuild`, and once a day, because ages move with the
//!   date): everything recounted, the table replaced in one transaction.
//! - **Incremental** (every tick of the server's job): the towns that changed since the last
//!   refresh are recounted whole, and the difference between their new and old town rows is added
//!   to their county, city and province rows. A town changed when a person in it was written
//!   (the registry's `change_seq`, which assessments stamp too), when a module marked its subtree in
//!   `indicator_dirty` (a catalogue run, an approval), or when its count of registry rows differs
//!   from the rollup's (someone moved out of it).
//!
//! Every refresh takes the state row by compare-and-set, so two refreshers (the server and the
//! command line) never both apply a difference.

use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use chrono::{Datelike, NaiveDate};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use yiyang_kernel::RegionCode;
use yiyang_kernel::citizen_id::age_on;
use yiyang_kernel::indicator::{Period, measure};

/// The catalogue item whose holders `elders_80_longevity` counts.
pub const LONGEVITY_ITEM: &str = "longevity_allowance";
pub(crate) const NM: usize = measure::ALL.len();
pub(crate) type Counts = [i64; NM];

const M_60: usize = 0;
const M_80: usize = 1;
const M_80_ASSESSED: usize = 2;
const M_80_LONGEVITY: usize = 3;
const M_ENTITLED: usize = 4;
const M_ROWS: usize = 5;

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RefreshReport {
    /// full / incremental / none
    pub mode: String,
    pub towns: usize,
    pub elders: usize,
    pub rows_written: usize,
    pub first_year: i32,
    pub last_year: i32,
    pub millis: u128,
}

#[derive(Default)]
pub(crate) struct Person {
    pub id: String,
    pub leaf: String,
    pub birth: Option<NaiveDate>,
    /// Dead from this day (a death without a date: always).
    pub dead_from: Option<NaiveDate>,
    pub gone_from: Option<NaiveDate>,
    pub assessed: Vec<(NaiveDate, NaiveDate)>,
    pub longevity: Vec<(NaiveDate, Option<NaiveDate>)>,
    pub entitled: Vec<(NaiveDate, Option<NaiveDate>)>,
}

/// What a person counts for on day `d`: the measures' indices that hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub elder_60: bool,
    pub elder_80: bool,
    pub assessed: bool,
    pub longevity: bool,
    pub entitled: bool,
}

fn held(spans: &[(NaiveDate, Option<NaiveDate>)], d: NaiveDate) -> bool {
    spans
        .iter()
        .any(|(from, to)| *from <= d && to.is_none_or(|t| t > d))
}

impl Person {
    /// The one place that decides who counts: the rollups and the drill-down lists both ask here,
    /// so a list always has exactly the people behind its number.
    pub fn flags(&self, d: NaiveDate) -> Flags {
        let mut f = Flags::default();
        let Some(birth) = self.birth else { return f };
        let alive = self.dead_from.is_none_or(|x| x > d);
        let resident = self.gone_from.is_none_or(|x| x > d);
        if !(alive && resident) || birth > d {
            return f;
        }
        let age = age_on(birth, d);
        if age < 60 {
            return f;
        }
        f.elder_60 = true;
        f.entitled = held(&self.entitled, d);
        if age >= 80 {
            f.elder_80 = true;
            f.assessed = self.assessed.iter().any(|(a, u)| *a <= d && d <= *u);
            f.longevity = held(&self.longevity, d);
        }
        f
    }
}

fn date(s: Option<&str>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s?.get(..10)?, "%Y-%m-%d").ok()
}

struct State {
    seq: i64,
    built_on: String,
    built_at: String,
    first_year: i32,
    last_year: i32,
}

async fn state(db: &Db) -> ApiResult<Option<State>> {
    let r = sqlx::query(
        "SELECT seq, built_on, built_at, first_year, last_year FROM indicator_rollup_state WHERE id = 1",
    )
    .fetch_optional(&db.pool)
    .await?;
    Ok(r.map(|r| State {
        seq: r.get(0),
        built_on: r.get(1),
        built_at: r.get(2),
        first_year: r.get::<i64, _>(3) as i32,
        last_year: r.get::<i64, _>(4) as i32,
    }))
}

/// The years kept: from the earliest target year (at least last year, at most ten years back) to
/// this year.
async fn years(db: &Db, today: NaiveDate) -> ApiResult<(i32, i32)> {
    let min_target: Option<i64> = sqlx::query("SELECT MIN(year) FROM indicator_target")
        .fetch_one(&db.pool)
        .await?
        .get(0);
    let this = today.year();
    let first = min_target
        .map(|y| y as i32)
        .unwrap_or(this - 1)
        .min(this - 1)
        .max(this - 10);
    Ok((first, this))
}

/// The periods kept: every year, and the months of this year and last year (the trends people
/// look at; older years are judged by their year-end value). Keeps a province's rollups at a few
/// hundred thousand rows instead of a million.
fn kept_periods(first: i32, last: i32, today: NaiveDate) -> Vec<Period> {
    (first..=last)
        .flat_map(|y| {
            if y >= last - 1 {
                Period::year_and_months(y, today)
            } else {
                vec![Period {
                    year: y,
                    month: None,
                }]
            }
        })
        .collect()
}

/// When the rollups were last refreshed (RFC 3339), for "数据截至".
pub async fn built_at(db: &Db) -> ApiResult<Option<String>> {
    Ok(state(db).await?.map(|s| s.built_at))
}

/// Bring the rollups up to date: a full rebuild when there are none, on a new day or when the kept
/// years changed; otherwise recount only the towns that changed. `force_full` for the command.
pub async fn refresh(db: &Db, today: NaiveDate, force_full: bool) -> ApiResult<RefreshReport> {
    match refresh_once(db, today, force_full).await {
        // An incremental refresh that fails (whatever the cause) must not fail every 30 s until
        // the nightly rebuild: its cause goes to the log, with the request id where there is one,
        // and the rollups are rebuilt in full at once.
        Err(e) if !force_full => {
            tracing::error!(
                error = %e.detail,
                internal = ?e.internal,
                request_id = crate::platform::error::current_request_id().unwrap_or_default(),
                "incremental indicator refresh failed; rebuilding in full"
            );
            refresh_once(db, today, true).await
        }
        r => r,
    }
}

async fn refresh_once(db: &Db, today: NaiveDate, force_full: bool) -> ApiResult<RefreshReport> {
    let t0 = std::time::Instant::now();
    let st = state(db).await?;
    let (first, last) = years(db, today).await?;
    let head: i64 = sqlx::query("SELECT seq FROM registry_head WHERE id = 1")
        .fetch_one(&db.pool)
        .await?
        .get(0);
    let full = force_full
        || st.as_ref().is_none_or(|s| {
            s.built_on != today.to_string() || s.first_year != first || s.last_year != last
        });
    let dirty_marks: Vec<(String, String)> =
        sqlx::query("SELECT region_code, marked_at FROM indicator_dirty")
            .fetch_all(&db.pool)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let periods = kept_periods(first, last, today);
    let report = |mode: &str, towns: usize, elders: usize, rows_written: usize| RefreshReport {
        mode: mode.into(),
        towns,
        elders,
        rows_written,
        first_year: first,
        last_year: last,
        millis: t0.elapsed().as_millis(),
    };
    if full {
        let people = load(db, Which::All).await?;
        let n = people.len();
        let mut counts = count(&people, &periods, today);
        drop(people);
        super::facilities::add(db, &Which::All, &periods, today, &mut counts).await?;
        super::visits::add(db, &Which::All, &periods, today, &mut counts).await?;
        let rows = node_rows(counts, &periods);
        let written = rows.len();
        write(
            db,
            st.as_ref(),
            None,
            rows,
            &dirty_marks,
            head,
            today,
            first,
            last,
        )
        .await?;
        return Ok(report("full", 0, n, written));
    }
    let st = st.expect("checked above");
    let towns = changed_towns(db, st.seq, head, &dirty_marks, &periods).await?;
    if towns.is_empty() {
        if !dirty_marks.is_empty() || head != st.seq {
            write(
                db,
                Some(&st),
                Some(&towns),
                vec![],
                &dirty_marks,
                head,
                today,
                first,
                last,
            )
            .await?;
        }
        return Ok(report("none", 0, 0, 0));
    }
    let people = load(db, Which::Towns(&towns)).await?;
    let n = people.len();
    let mut counts = count(&people, &periods, today);
    drop(people);
    super::facilities::add(db, &Which::Towns(&towns), &periods, today, &mut counts).await?;
    super::visits::add(db, &Which::Towns(&towns), &periods, today, &mut counts).await?;
    // Town subtrees only: the nodes above are adjusted by difference in `write`.
    let mut rows = node_rows(counts, &periods);
    rows.retain(|r| r.level >= 4);
    // A town that is now empty still needs its zero rows, so the difference reaches the county.
    let have: std::collections::HashSet<(String, String)> = rows
        .iter()
        .filter(|r| r.level == 4)
        .map(|r| (r.code.clone(), r.period.clone()))
        .collect();
    for t in &towns {
        let code = format!("{t}000");
        for p in &periods {
            if !have.contains(&(code.clone(), p.key())) {
                rows.push(NodeRow {
                    code: code.clone(),
                    period: p.key(),
                    level: 4,
                    counts: [0; NM],
                });
            }
        }
    }
    let written = rows.len();
    write(
        db,
        Some(&st),
        Some(&towns),
        rows,
        &dirty_marks,
        head,
        today,
        first,
        last,
    )
    .await?;
    Ok(report("incremental", towns.len(), n, written))
}

/// The 9-digit prefixes of the towns to recount.
async fn changed_towns(
    db: &Db,
    seq: i64,
    head: i64,
    marks: &[(String, String)],
    periods: &[Period],
) -> ApiResult<BTreeSet<String>> {
    let mut towns = BTreeSet::new();
    if head > seq {
        for sql in [
            "SELECT DISTINCT substr(residence_region, 1, 9) FROM elder WHERE change_seq > $1",
            "SELECT DISTINCT substr(e.residence_region, 1, 9) FROM elder_ability a JOIN elder e ON e.id = a.elder_id WHERE a.change_seq > $1",
        ] {
            for r in sqlx::query(sql).bind(seq).fetch_all(&db.pool).await? {
                towns.insert(r.get::<String, _>(0));
            }
        }
        // Someone who moved away is no longer in their old town: its row count tells.
        let last = periods.last().expect("this year").key();
        let stored: HashMap<String, i64> = sqlx::query(
            "SELECT region_code, measures FROM indicator_rollup WHERE level = 4 AND period = $1",
        )
        .bind(&last)
        .fetch_all(&db.pool)
        .await?
        .into_iter()
        .map(|r| {
            let code: String = r.get(0);
            let m: BTreeMap<String, i64> =
                serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default();
            (
                code[..9].to_string(),
                m.get(measure::ROWS).copied().unwrap_or(0),
            )
        })
        .collect();
        let now: HashMap<String, i64> = sqlx::query(
            "SELECT substr(residence_region, 1, 9), COUNT(*) FROM elder GROUP BY substr(residence_region, 1, 9)",
        )
        .fetch_all(&db.pool)
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        for (t, n) in &now {
            if stored.get(t) != Some(n) {
                towns.insert(t.clone());
            }
        }
        for t in stored.keys() {
            if !now.contains_key(t) {
                towns.insert(t.clone());
            }
        }
    }
    for (code, _) in marks {
        let Ok(rc) = RegionCode::parse(code) else {
            continue;
        };
        if rc.prefix().len() >= 9 {
            towns.insert(code[..9].to_string());
        } else {
            let (lo, hi) = rc.subtree_range();
            for r in sqlx::query(
                "SELECT DISTINCT substr(residence_region, 1, 9) FROM elder WHERE residence_region BETWEEN $1 AND $2",
            )
            .bind(&lo)
            .bind(&hi)
            .fetch_all(&db.pool)
            .await?
            {
                towns.insert(r.get::<String, _>(0));
            }
        }
    }
    Ok(towns)
}

/// Everyone (or the people of some towns) with what the measures need.
pub(crate) enum Which<'a> {
    All,
    Towns(&'a BTreeSet<String>),
    /// A validated code range (digits only).
    Range(&'a str, &'a str),
}

impl Which<'_> {
    /// The SQL condition (with its leading AND) that keeps rows whose `col` is in the set.
    pub(crate) fn filter(&self, col: &str) -> String {
        match self {
            Which::All => String::new(),
            Which::Range(lo, hi) => {
                format!(" AND {col} BETWEEN '{lo}' AND '{hi}'")
            }
            Which::Towns(t) => {
                // Town prefixes are nine digits we produced from stored codes; inlined because the
                // scan cannot bind parameters.
                let list = t
                    .iter()
                    .filter(|c| c.len() == 9 && c.bytes().all(|b| b.is_ascii_digit()))
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(",");
                format!(" AND substr({col}, 1, 9) IN ({list})")
            }
        }
    }
}

pub(crate) async fn load(db: &Db, which: Which<'_>) -> ApiResult<Vec<Person>> {
    if let Which::Range(lo, hi) = which
        && !lo.bytes().chain(hi.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::invalid("region_code", "区划代码应为数字"));
    }
    let filter = |col: &str| which.filter(col);
    // Person id → index, and the people, filled by the three scans in turn.
    type Loaded = (HashMap<String, usize>, Vec<Person>);
    let index: Arc<Mutex<Loaded>> = Arc::default();
    let sink = index.clone();
    db.scan(
        &format!(
            "SELECT id, residence_region, birth_date, death_date, moved_out_date, status FROM elder WHERE 1 = 1{}",
            filter("residence_region")
        ),
        6,
        move |c| {
            let mut g = sink.lock().expect("not poisoned");
            let dead_from = match (c[3], c[5]) {
                (Some(d), _) => date(Some(d)),
                (None, Some("deceased")) => Some(NaiveDate::MIN),
                _ => None,
            };
            let gone_from = match (c[4], c[5]) {
                (Some(d), _) => date(Some(d)),
                (None, Some("moved_out")) => Some(NaiveDate::MIN),
                _ => None,
            };
            let p = Person {
                id: c[0].unwrap_or_default().to_string(),
                leaf: c[1].unwrap_or_default().to_string(),
                birth: date(c[2]),
                dead_from,
                gone_from,
                ..Person::default()
            };
            let i = g.1.len();
            g.0.insert(c[0].unwrap_or_default().to_string(), i);
            g.1.push(p);
        },
    )
    .await?;
    // Valid records: not legacy, not corrected by a later one (adopted LTC ratings count).
    let sink = index.clone();
    db.scan(
        &format!(
            "SELECT a.elder_id, a.assessed_on, a.valid_until FROM assessment a JOIN elder e ON e.id = a.elder_id \
             WHERE a.standard <> 'MZ/T 039-2013' AND NOT EXISTS (SELECT 1 FROM assessment c WHERE c.corrects = a.id){}",
            filter("e.residence_region")
        ),
        3,
        move |c| {
            let mut g = sink.lock().expect("not poisoned");
            let (map, people) = &mut *g;
            if let (Some(i), Some(from), Some(until)) =
                (c[0].and_then(|id| map.get(id)), date(c[1]), date(c[2]))
            {
                people[*i].assessed.push((from, until));
            }
        },
    )
    .await?;
    // Grants still packed as their run made them (`catalog::pack`) are read (one statement) before
    // the rows: one taken into a row in between is then counted in both, which changes no
    // person's flags, rather than in neither.
    let packs = crate::catalog::pack::fetch(&mut *db.pool.acquire().await?, None).await?;
    // Entitlements held: granted (or suspended, which still counts as held) from `since`; an ended
    // one counts until its end only if it was ever granted (not a proposal that ended).
    let sink = index.clone();
    db.scan(
        &format!(
            "SELECT t.elder_id, t.item_code, t.since, t.ended_on FROM entitlement t JOIN elder e ON e.id = t.elder_id \
             WHERE (t.state IN ('granted', 'suspended') OR (t.state = 'ended' AND EXISTS (SELECT 1 FROM entitlement_change c \
             WHERE c.entitlement_id = t.id AND (c.to_state = 'granted' OR c.from_state IN ('granted', 'suspended'))))){}",
            filter("e.residence_region")
        ),
        4,
        move |c| {
            let mut g = sink.lock().expect("not poisoned");
            let (map, people) = &mut *g;
            if let (Some(i), Some(since)) = (c[0].and_then(|id| map.get(id)), date(c[2])) {
                let span = (since, date(c[3]));
                if c[1] == Some(LONGEVITY_ITEM) {
                    people[*i].longevity.push(span);
                }
                people[*i].entitled.push(span);
            }
        },
    )
    .await?;
    // The packed grants: held from the run's date, with no end (one that ends becomes a row).
    // Only people of the scan above count.
    let index = packs
        .feed(index, |index: &mut Arc<Mutex<Loaded>>, pack, e| {
            let mut g = index.lock().expect("not poisoned");
            let (map, people) = &mut *g;
            if let (Some(i), Some(since)) = (map.get(&e.elder_id), date(Some(&pack.since))) {
                let span = (since, None);
                if e.item_code == LONGEVITY_ITEM {
                    people[*i].longevity.push(span);
                }
                people[*i].entitled.push(span);
            }
        })
        .await?;
    let people = std::mem::take(&mut index.lock().expect("not poisoned").1);
    Ok(people)
}

/// Per leaf code: counts per period (index into `periods`).
fn snapshot_days(periods: &[Period], today: NaiveDate) -> Vec<NaiveDate> {
    periods
        .iter()
        .map(|p| p.snapshot_day(today).expect("begun"))
        .collect()
}

fn count(people: &[Person], periods: &[Period], today: NaiveDate) -> HashMap<String, Vec<Counts>> {
    let days = snapshot_days(periods, today);
    let mut out: HashMap<String, Vec<Counts>> = HashMap::new();
    for p in people {
        let v = out
            .entry(p.leaf.clone())
            .or_insert_with(|| vec![[0; NM]; periods.len()]);
        for (k, &d) in days.iter().enumerate() {
            let c = &mut v[k];
            c[M_ROWS] += 1;
            let f = p.flags(d);
            c[M_60] += f.elder_60 as i64;
            c[M_80] += f.elder_80 as i64;
            c[M_80_ASSESSED] += f.assessed as i64;
            c[M_80_LONGEVITY] += f.longevity as i64;
            c[M_ENTITLED] += f.entitled as i64;
        }
    }
    out
}

struct NodeRow {
    code: String,
    period: String,
    level: i64,
    counts: Counts,
}

/// Leaf counts summed into every node from the leaf up to the province.
fn node_rows(leaves: HashMap<String, Vec<Counts>>, periods: &[Period]) -> Vec<NodeRow> {
    let mut nodes: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    for (leaf, v) in leaves {
        let mut cur = RegionCode::parse(&leaf).ok();
        while let Some(rc) = cur {
            let acc = nodes
                .entry(rc.as_str().to_string())
                .or_insert_with(|| vec![[0; NM]; periods.len()]);
            for (a, b) in acc.iter_mut().zip(&v) {
                for i in 0..NM {
                    a[i] += b[i];
                }
            }
            cur = rc.parent();
        }
    }
    let mut rows = Vec::with_capacity(nodes.len() * periods.len());
    for (code, v) in nodes {
        let level = RegionCode::parse(&code)
            .map(|r| r.level() as i64)
            .unwrap_or(5);
        for (p, c) in periods.iter().zip(v) {
            rows.push(NodeRow {
                code: code.clone(),
                period: p.key(),
                level,
                counts: c,
            });
        }
    }
    rows
}

pub fn encode(c: &Counts) -> String {
    let m: BTreeMap<&str, i64> = measure::ALL
        .iter()
        .zip(c)
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| (*k, *v))
        .collect();
    serde_json::to_string(&m).expect("json")
}

fn decode(s: &str) -> Counts {
    let m: BTreeMap<String, i64> = serde_json::from_str(s).unwrap_or_default();
    let mut c = [0; NM];
    for (i, k) in measure::ALL.iter().enumerate() {
        c[i] = m.get(*k).copied().unwrap_or(0);
    }
    c
}

fn parent_of(code: &str) -> Option<String> {
    RegionCode::parse(code)
        .ok()
        .and_then(|r| r.parent())
        .map(|p| p.as_str().to_string())
}

/// Write in one transaction: take the state row (compare-and-set on what we read), then either
/// replace everything (`towns` None) or replace the towns' subtrees and add their difference to
/// the nodes above; clear the dirty marks we saw.
#[allow(clippy::too_many_arguments)]
async fn write(
    db: &Db,
    st: Option<&State>,
    towns: Option<&BTreeSet<String>>,
    rows: Vec<NodeRow>,
    marks: &[(String, String)],
    head: i64,
    today: NaiveDate,
    first: i32,
    last: i32,
) -> ApiResult<()> {
    let mut tx = db.begin().await?;
    let now = crate::platform::now_rfc3339();
    let taken = match st {
        None => sqlx::query(
            "INSERT INTO indicator_rollup_state (id, seq, built_on, built_at, first_year, last_year) VALUES (1, $1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(head)
        .bind(today.to_string())
        .bind(&now)
        .bind(first as i64)
        .bind(last as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        Some(s) => sqlx::query(
            "UPDATE indicator_rollup_state SET seq = $1, built_on = $2, built_at = $3, first_year = $4, last_year = $5 \
             WHERE id = 1 AND seq = $6 AND built_at = $7",
        )
        .bind(head)
        .bind(today.to_string())
        .bind(&now)
        .bind(first as i64)
        .bind(last as i64)
        .bind(s.seq)
        .bind(&s.built_at)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
    };
    if taken != 1 {
        return Err(ApiError::conflict(
            "指标汇总正在由另一个任务刷新，请稍后再试",
        ));
    }
    let mut extra: Vec<NodeRow> = vec![];
    match towns {
        None => {
            sqlx::query("DELETE FROM indicator_rollup")
                .execute(&mut *tx)
                .await?;
        }
        Some(towns) => {
            // The towns' old rows, to carry the difference upwards (one read per 400 towns).
            let codes: Vec<String> = towns.iter().map(|t| format!("{t}000")).collect();
            let mut old: HashMap<(String, String), Counts> = HashMap::new();
            for chunk in codes.chunks(400) {
                let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT region_code, period, measures FROM indicator_rollup WHERE region_code IN ({})",
                    marks.join(",")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for c in chunk {
                    q = q.bind(c.clone());
                }
                for r in q.fetch_all(&mut *tx).await? {
                    old.insert((r.get(0), r.get(1)), decode(&r.get::<String, _>(2)));
                }
            }
            let mut delta: BTreeMap<(String, String), Counts> = BTreeMap::new();
            for r in rows.iter().filter(|r| r.level == 4) {
                let o = old
                    .get(&(r.code.clone(), r.period.clone()))
                    .copied()
                    .unwrap_or([0; NM]);
                let mut up = parent_of(&r.code);
                while let Some(p) = up {
                    let acc = delta
                        .entry((p.clone(), r.period.clone()))
                        .or_insert([0; NM]);
                    for i in 0..NM {
                        acc[i] += r.counts[i] - o[i];
                    }
                    up = parent_of(&p);
                }
            }
            for t in towns {
                sqlx::query("DELETE FROM indicator_rollup WHERE region_code BETWEEN $1 AND $2")
                    .bind(format!("{t}000"))
                    .bind(format!("{t}999"))
                    .execute(&mut *tx)
                    .await?;
            }
            // The nodes above (counties, cities, the province: few) read, adjusted, rewritten.
            let above: BTreeSet<String> = delta.keys().map(|k| k.0.clone()).collect();
            let mut current: HashMap<(String, String), Counts> = HashMap::new();
            for code in &above {
                for r in sqlx::query(
                    "SELECT period, measures FROM indicator_rollup WHERE region_code = $1",
                )
                .bind(code)
                .fetch_all(&mut *tx)
                .await?
                {
                    current.insert((code.clone(), r.get(0)), decode(&r.get::<String, _>(1)));
                }
                sqlx::query("DELETE FROM indicator_rollup WHERE region_code = $1")
                    .bind(code)
                    .execute(&mut *tx)
                    .await?;
            }
            for ((code, period), d) in delta {
                let e = current.entry((code, period)).or_insert([0; NM]);
                for i in 0..NM {
                    e[i] += d[i];
                }
            }
            extra = current
                .into_iter()
                .map(|((code, period), counts)| NodeRow {
                    level: RegionCode::parse(&code)
                        .map(|r| r.level() as i64)
                        .unwrap_or(1),
                    code,
                    period,
                    counts,
                })
                .collect();
        }
    }
    // Many rows per statement: one round trip per 400 rows instead of one per row.
    for chunk in rows.iter().chain(&extra).collect::<Vec<_>>().chunks(400) {
        let mut sql = String::from(
            "INSERT INTO indicator_rollup (region_code, period, parent_code, level, measures) VALUES ",
        );
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 5;
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(r.code.clone())
                .bind(r.period.clone())
                .bind(parent_of(&r.code))
                .bind(r.level)
                .bind(encode(&r.counts));
        }
        q.execute(&mut *tx).await?;
    }
    for (code, at) in marks {
        sqlx::query("DELETE FROM indicator_dirty WHERE region_code = $1 AND marked_at = $2")
            .bind(code)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Ask for the subtree of `region_code` to be recounted at the next refresh (in the caller's
/// transaction, so the mark exists exactly when the change does).
pub async fn mark_dirty(
    conn: &mut sqlx::AnyConnection,
    region_code: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO indicator_dirty (region_code, marked_at) VALUES ($1, $2)")
        .bind(region_code)
        .bind(crate::platform::now_rfc3339())
        .execute(conn)
        .await?;
    Ok(())
}

/// Rounds a refresh may wait for a running import before it goes ahead regardless.
const MAX_DEFERRED: u32 = 20;

/// Is an import writing now? (A job left `running` by a crash is marked failed at start.)
pub(crate) async fn import_running(db: &Db) -> bool {
    sqlx::query("SELECT 1 FROM import_job WHERE state = 'running' AND dry_run = 0 LIMIT 1")
        .fetch_optional(&db.pool)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// The server's job: refresh the rollups every `every` (incremental; a full rebuild on a new day),
/// so a change shows on the dashboards within a minute. A failed round is logged and retried.
pub fn keep_fresh(db: Db, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut deferred = 0u32;
        loop {
            crate::platform::metrics::beat("indicator_rollups", every);
            // While an import is being written the figures change under the refresh, which would
            // be redone after it anyway: it waits (up to 20 rounds), and the 2–4 s of CPU each
            // round took during a 1M import go to the people using the service meanwhile.
            if deferred < MAX_DEFERRED && import_running(&db).await {
                deferred += 1;
                tokio::time::sleep(every).await;
                continue;
            }
            deferred = 0;
            match refresh(&db, crate::platform::today(), false).await {
                Ok(r) if r.mode != "none" => {
                    tracing::info!(mode = %r.mode, towns = r.towns, elders = r.elders, rows = r.rows_written, millis = r.millis as u64, "indicator rollups refreshed");
                    crate::platform::release_memory();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.detail, "indicator rollup refresh failed"),
            }
            tokio::time::sleep(every).await;
        }
    });
}

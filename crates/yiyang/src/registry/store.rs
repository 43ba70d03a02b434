//! Reads and writes of elders. Every function takes a [`Scope`]: the region range is part of the SQL,
//! so no caller can reach a record outside the range it was given.

use super::model::{
    self, ECONOMIC_STATUS, ELDER_STATUS, ElderInput, FAMILY_PLANNING, LIVING_STATUS,
};
use super::search_index;
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::crypto::KeyRing;
use crate::platform::db::{Cell, Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use crate::region::RegionIndex;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;
use yiyang_kernel::citizen_id::age_on;

pub const COUNT_CAP: i64 = 10_000;
pub const CID_DOMAIN: &str = "citizen_id";
/// Blind-index domain of a phone (normalised digits, `model::parse_phone`): found by a whole
/// number typed in the search box, never compared in clear.
pub const PHONE_DOMAIN: &str = "phone";

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct SearchReq {
    /// 姓名片段
    pub name: Option<String>,
    /// 区划代码：只查该区划及其下级
    pub region_code: Option<String>,
    pub age_min: Option<i32>,
    pub age_max: Option<i32>,
    pub living_status: Option<String>,
    pub economic_status: Option<String>,
    /// active / deceased / moved_out
    pub status: Option<String>,
    /// 能力等级：0–4（能力完好…完全失能，按当前有效评估），none = 无有效评估
    pub ability_level: Option<String>,
    /// name, birth_date, -birth_date, region
    pub sort: Option<String>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ElderRow {
    pub id: String,
    pub name: String,
    pub sex: String,
    /// 周岁 today. Lists show the age, never the birth date: with the birth date beside it the
    /// masked ID would be the whole ID (the masked digits are exactly the birth date).
    pub age: i32,
    pub citizen_id_masked: String,
    pub residence_region: String,
    pub residence_region_name: String,
    pub living_status: Option<String>,
    pub living_status_label: Option<String>,
    pub economic_status: Option<String>,
    pub economic_status_label: Option<String>,
    pub status: String,
    pub status_label: String,
    /// Ability level of the current, still valid assessment (0–4); none when there is none.
    pub ability_level: Option<u8>,
    pub ability_level_name: Option<String>,
    /// When the current assessment (valid or not) runs or ran out.
    pub ability_valid_until: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ElderPage {
    pub items: Vec<ElderRow>,
    /// Matching records, all counted.
    pub total: i64,
    /// True when more than `total` records match (the count stopped at the cap).
    pub total_capped: bool,
    pub page: i64,
    pub page_size: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusInfo {
    pub kind: String,
    pub value: Option<String>,
    pub source: String,
    pub since: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Elder {
    #[serde(flatten)]
    pub row: ElderRow,
    /// Only in the detail, whose every read is audited.
    pub birth_date: String,
    pub hukou_region: Option<String>,
    pub hukou_region_name: Option<String>,
    pub address: Option<String>,
    pub phone_masked: Option<String>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub family_planning_special: Option<String>,
    pub family_planning_special_label: Option<String>,
    pub disability_grade: Option<i64>,
    pub entitled_veteran_family: Option<bool>,
    pub death_date: Option<String>,
    pub moved_out_date: Option<String>,
    pub statuses: Vec<StatusInfo>,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

const ROW_COLS: &str = "id, name, sex, birth_date, citizen_id_masked, residence_region, living_status, economic_status, status, \
    (SELECT level FROM elder_ability WHERE elder_id = elder.id), (SELECT valid_until FROM elder_ability WHERE elder_id = elder.id)";
/// Where `row_of` finds the two ability columns in each select.
const ROW_ABILITY_AT: usize = 9;

/// A result row from either driver: sqlx (both engines) or rusqlite (SQLite's point-read path,
/// see `Db::sqlite_read`), so one mapping serves both.
pub(crate) trait Cols {
    fn text(&self, i: usize) -> String;
    fn opt_text(&self, i: usize) -> Option<String>;
    fn opt_int(&self, i: usize) -> Option<i64>;
    fn opt_float(&self, i: usize) -> Option<f64>;
}

/// sqlx rows read every column type directly.
macro_rules! cols_by_get {
    ($($row:ty),*) => {$(
        impl Cols for $row {
            fn text(&self, i: usize) -> String {
                self.get(i)
            }
            fn opt_text(&self, i: usize) -> Option<String> {
                self.get(i)
            }
            fn opt_int(&self, i: usize) -> Option<i64> {
                self.get(i)
            }
            fn opt_float(&self, i: usize) -> Option<f64> {
                self.get(i)
            }
        }
    )*};
}
cols_by_get!(AnyRow, sqlx::postgres::PgRow);

impl Cols for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> String {
        self.get(i).unwrap_or_default()
    }
    fn opt_text(&self, i: usize) -> Option<String> {
        self.get(i).ok().flatten()
    }
    fn opt_int(&self, i: usize) -> Option<i64> {
        self.get(i).ok().flatten()
    }
    fn opt_float(&self, i: usize) -> Option<f64> {
        self.get(i).ok().flatten()
    }
}

fn row_of(r: &impl Cols, today: NaiveDate, regions: &RegionIndex, ability_at: usize) -> ElderRow {
    let valid_until = r.opt_text(ability_at + 1);
    let level = crate::assessment::store::level_if_valid(
        r.opt_int(ability_at),
        valid_until.as_deref(),
        today,
    );
    let birth = r.text(3);
    let bd = NaiveDate::parse_from_str(&birth, "%Y-%m-%d").unwrap_or(today);
    let res = r.text(5);
    let ls = r.opt_text(6);
    let es = r.opt_text(7);
    let st = r.text(8);
    ElderRow {
        id: r.text(0),
        name: r.text(1),
        sex: r.text(2),
        age: age_on(bd, today),
        citizen_id_masked: r.text(4),
        residence_region_name: regions.path_name(&res),
        residence_region: res,
        living_status_label: ls.as_deref().map(|c| model::label_of(LIVING_STATUS, c)),
        living_status: ls,
        economic_status_label: es.as_deref().map(|c| model::label_of(ECONOMIC_STATUS, c)),
        economic_status: es,
        status_label: model::label_of(ELDER_STATUS, &st),
        status: st,
        ability_level: level,
        ability_level_name: level
            .map(|l| yiyang_kernel::assessment::LEVEL_NAMES[l as usize].to_string()),
        ability_valid_until: valid_until,
    }
}

/// A search's conditions, validated once and then applied either by the search index or, for
/// exports, as SQL, so both read the same rules.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Region subtree as a code range; always inside the caller's scope.
    pub lo: String,
    pub hi: String,
    pub name: Option<String>,
    pub birth_min: Option<String>,
    pub birth_max: Option<String>,
    pub living_status: Option<&'static str>,
    pub economic_status: Option<&'static str>,
    pub status: Option<&'static str>,
    /// Some(0..=4) a current valid level; Some(NO_LEVEL) no valid assessment.
    pub ability_level: Option<u8>,
    /// Today's date, against which validity is judged.
    pub today: String,
    /// The search box held a citizen ID or its last digits instead of a name.
    pub id: Option<IdQuery>,
}

/// A citizen ID typed in the search box: whole (found through its blind index, never compared in
/// clear) or its last 4–6 characters (the last 4 are in the masked form; the 5th and 6th from the
/// end are the day of birth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdQuery {
    Whole(String),
    Tail(String),
    /// A whole phone number, normalised as stored (`model::parse_phone`); looked up by its blind
    /// index. Several elders of one household may share it.
    Phone(String),
}

impl IdQuery {
    /// What the name box holds, if it is an ID or an ID's tail (digits, the last maybe X).
    pub fn of(text: &str) -> Option<IdQuery> {
        let t = text.trim().to_ascii_uppercase();
        let n = t.len();
        let shaped = n > 0
            && t.is_ascii()
            && t[..n - 1].bytes().all(|b| b.is_ascii_digit())
            && (t.as_bytes()[n - 1].is_ascii_digit() || t.ends_with('X'));
        match n {
            18 if shaped => Some(IdQuery::Whole(t)),
            4..=6 if shaped => Some(IdQuery::Tail(t)),
            // Seven or more digits (dashes, spaces, +86 allowed) that are not an ID: a phone.
            _ if t.bytes().filter(u8::is_ascii_digit).count() >= 7 => {
                super::model::parse_phone(&t).ok().map(IdQuery::Phone)
            }
            _ => None,
        }
    }
}

/// `ability_level=none`: no valid assessment.
pub const NO_LEVEL: u8 = 5;

pub fn filter_of(scope: &Scope, q: &SearchReq, today: NaiveDate) -> ApiResult<Filter> {
    // Sort and paging are checked here too, so an export refuses what a search would.
    sort_of(q)?;
    crate::platform::web::paging(q.page, q.page_size, 20, 200)?;
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    let name = q.name.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let id = name.and_then(IdQuery::of);
    let name = if id.is_some() { None } else { name };
    if name.is_some_and(|n| n.chars().count() > 20) {
        return Err(ApiError::invalid("name", "姓名片段不能超过20个字"));
    }
    // Age bands become birth-date bounds.
    let mut birth_min = None;
    let mut birth_max = None;
    if let Some(a) = q.age_min {
        if !(0..=150).contains(&a) {
            return Err(ApiError::invalid("age_min", "年龄应在 0–150 之间"));
        }
        let latest = today
            .checked_sub_months(chrono::Months::new(12 * a as u32))
            .unwrap_or(today);
        birth_max = Some(latest.to_string());
    }
    if let Some(a) = q.age_max {
        if !(0..=150).contains(&a) {
            return Err(ApiError::invalid("age_max", "年龄应在 0–150 之间"));
        }
        let earliest = today
            .checked_sub_months(chrono::Months::new(12 * (a as u32 + 1)))
            .unwrap_or(today)
            .succ_opt()
            .unwrap_or(today);
        birth_min = Some(earliest.to_string());
    }
    let pick = |v: &Option<String>,
                list: &'static [(&'static str, &'static str)],
                field: &str,
                zh: &str| {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(v) => model::code_of(list, v)
                .map(Some)
                .ok_or_else(|| ApiError::invalid(field, format!("{zh}“{v}”无效"))),
        }
    };
    Ok(Filter {
        lo,
        hi,
        name: name.map(str::to_string),
        birth_min,
        birth_max,
        living_status: pick(&q.living_status, LIVING_STATUS, "living_status", "居住状况")?,
        economic_status: pick(
            &q.economic_status,
            ECONOMIC_STATUS,
            "economic_status",
            "经济状况",
        )?,
        status: pick(&q.status, ELDER_STATUS, "status", "状态")?,
        ability_level: match q.ability_level.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("none") => Some(NO_LEVEL),
            Some(v) => Some(v.parse::<u8>().ok().filter(|l| *l <= 4).ok_or_else(|| {
                ApiError::invalid(
                    "ability_level",
                    format!("能力等级“{v}”无效，应为 0–4 或 none（无有效评估）"),
                )
            })?),
        },
        today: today.to_string(),
        id,
    })
}

/// The filter as a WHERE clause with binds (exports and checks); the range is the first predicate.
pub(crate) fn where_clause(db: &Db, f: &Filter) -> (String, Vec<String>) {
    // Over a county or more, with a filter the region index cannot serve (name fragment, statuses),
    // walking the index and fetching each row costs far more than one table scan; SQLite's planner
    // does not know that, so its index is switched off with a unary `+` there.
    let wide =
        f.lo.bytes()
            .zip(f.hi.bytes())
            .take_while(|(a, b)| a == b)
            .count()
            <= 6;
    let unindexed = f.name.is_some()
        || matches!(f.id, Some(IdQuery::Tail(_)))
        || f.living_status.is_some()
        || f.economic_status.is_some()
        || f.status.is_some()
        || f.ability_level.is_some();
    let col = if wide && unindexed && db.backend == crate::platform::db::Backend::Sqlite {
        "+residence_region"
    } else {
        "residence_region"
    };
    let mut binds = vec![f.lo.clone(), f.hi.clone()];
    let mut sql = format!("{col} BETWEEN $1 AND $2");
    if let Some(n) = &f.name {
        let cond = format!("name {}", db.ilike());
        binds.push(crate::platform::db::like_containing(n));
        sql.push_str(&format!(" AND {cond} ${} ESCAPE '\\'", binds.len()));
    }
    let mut push = |cond: &str, v: String| {
        binds.push(v);
        sql.push_str(&format!(" AND {cond} ${}", binds.len()));
    };
    match &f.id {
        // The caller turned the whole ID into its blind index (`with_blind_index`).
        Some(IdQuery::Whole(bidx)) => push("citizen_id_bidx =", bidx.clone()),
        Some(IdQuery::Phone(bidx)) => push("phone_bidx =", bidx.clone()),
        Some(IdQuery::Tail(t)) => {
            let n = t.len();
            push("citizen_id_masked LIKE", format!("%{}", &t[n - 4..]));
            if n > 4 {
                // Birth day digits: YYYY-MM-DD holds DD at 9–10.
                let from = 9 + (6 - n);
                push(
                    &format!("substr(birth_date, {from}, {}) =", n - 4),
                    t[..n - 4].to_string(),
                );
            }
        }
        None => {}
    }
    if let Some(v) = &f.birth_min {
        push("birth_date >=", v.clone());
    }
    if let Some(v) = &f.birth_max {
        push("birth_date <=", v.clone());
    }
    if let Some(v) = f.living_status {
        push("living_status =", v.into());
    }
    if let Some(v) = f.economic_status {
        push("economic_status =", v.into());
    }
    if let Some(v) = f.status {
        push("status =", v.into());
    }
    match f.ability_level {
        None => {}
        Some(NO_LEVEL) => {
            binds.push(f.today.clone());
            sql.push_str(&format!(
                " AND NOT EXISTS (SELECT 1 FROM elder_ability WHERE elder_id = elder.id AND valid_until >= ${})",
                binds.len()
            ));
        }
        Some(l) => {
            binds.push(f.today.clone());
            // The level as a literal: a validated small number (a text bind would not compare with
            // the BIGINT column on PostgreSQL).
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM elder_ability WHERE elder_id = elder.id AND valid_until >= ${} AND level = {l})",
                binds.len()
            ));
        }
    }
    (sql, binds)
}

fn sort_of(q: &SearchReq) -> ApiResult<search_index::Sort> {
    use search_index::Sort;
    Ok(match q.sort.as_deref().unwrap_or("region") {
        "name" => Sort::Name,
        "birth_date" => Sort::Birth,
        "-birth_date" => Sort::BirthDesc,
        "region" | "" => Sort::Region,
        other => {
            return Err(ApiError::invalid(
                "sort",
                format!("不支持的排序方式“{other}”"),
            ));
        }
    })
}

/// Search through the in-memory index (brought up to date first), then read the page's rows.
pub async fn search(
    db: &Db,
    index: &search_index::SearchIndex,
    keys: &crate::platform::crypto::KeyRing,
    scope: &Scope,
    regions: &RegionIndex,
    q: &SearchReq,
    today: NaiveDate,
) -> ApiResult<ElderPage> {
    let f = with_blind_index(filter_of(scope, q, today)?, keys);
    let sort = sort_of(q)?;
    let (page, size) = crate::platform::web::paging(q.page, q.page_size, 20, 200)?;
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| ApiError::invalid("region_code", "区划代码无效"))
    };
    let query = search_index::Query {
        lo: num(&f.lo)?,
        hi: num(&f.hi)?,
        birth_min: f.birth_min.as_deref().and_then(search_index::date_num),
        birth_max: f.birth_max.as_deref().and_then(search_index::date_num),
        name: f.name.as_deref().map(str::to_ascii_lowercase),
        living: f.living_status.map(search_index::living_code),
        economic: f.economic_status.map(search_index::economic_code),
        status: f.status.map(search_index::status_code),
        ability_level: f.ability_level,
        today: search_index::date_num(&f.today).unwrap_or(0),
        sort,
        offset: ((page - 1) * size) as usize,
        limit: size as usize,
        // Counted to the end: the total a person sees is exact.
        cap: usize::MAX / 2,
    };
    // An ID or its last digits are looked up in the database (the index holds no IDs).
    let hits = if f.id.is_some() {
        let (ids, total) = sql_page(db, &f, q).await?;
        search_index::Hits {
            ids,
            counted: total as usize,
        }
    } else {
        index.refresh(db).await?;
        index.query(&query).await
    };
    let mut items = vec![];
    if !hits.ids.is_empty() {
        // The scope range again: the index is a cache, the database is the authority.
        let sql = format!(
            "SELECT {ROW_COLS} FROM elder WHERE residence_region BETWEEN $1 AND $2 AND id IN {}",
            numbered_list(3, hits.ids.len())
        );
        let fast = db.sqlite_read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let params = [&scope.lo, &scope.hi]
                .into_iter()
                .chain(hits.ids.iter())
                .map(|v| v as &dyn rusqlite::ToSql);
            let mut rows = st.query(rusqlite::params_from_iter(params))?;
            let mut out = vec![];
            while let Some(r) = rows.next()? {
                out.push(row_of(r, today, regions, ROW_ABILITY_AT));
            }
            Ok(out)
        });
        let found = match fast {
            Some(rows) => rows?,
            None => {
                let mut lq = sqlx::query(AssertSqlSafe(sql))
                    .bind(&scope.lo)
                    .bind(&scope.hi);
                for id in &hits.ids {
                    lq = lq.bind(id.clone());
                }
                let rows = lq.fetch_all(&db.pool).await?;
                rows.iter()
                    .map(|r| row_of(r, today, regions, ROW_ABILITY_AT))
                    .collect()
            }
        };
        let mut by_id: HashMap<String, ElderRow> =
            found.into_iter().map(|e| (e.id.clone(), e)).collect();
        items = hits.ids.iter().filter_map(|id| by_id.remove(id)).collect();
    }
    Ok(ElderPage {
        items,
        total: hits.counted as i64,
        total_capped: false,
        page,
        page_size: size,
    })
}

/// The same search straight in SQL, without the index: the reference the index is tested against.
pub async fn search_sql(
    db: &Db,
    scope: &Scope,
    q: &SearchReq,
    today: NaiveDate,
) -> ApiResult<(Vec<String>, i64)> {
    let f = filter_of(scope, q, today)?;
    sql_page(db, &f, q).await
}

/// A whole ID or phone in the filter becomes its blind index: neither is compared in clear.
pub fn with_blind_index(mut f: Filter, keys: &crate::platform::crypto::KeyRing) -> Filter {
    f.id = match f.id.take() {
        Some(IdQuery::Whole(id)) => Some(IdQuery::Whole(keys.blind_index(CID_DOMAIN, &id))),
        Some(IdQuery::Phone(p)) => Some(IdQuery::Phone(keys.blind_index(PHONE_DOMAIN, &p))),
        other => other,
    };
    f
}

/// One page of a filter's matches, by SQL, and the exact count.
async fn sql_page(db: &Db, f: &Filter, q: &SearchReq) -> ApiResult<(Vec<String>, i64)> {
    let (w, binds) = where_clause(db, f);
    let (page, size) = crate::platform::web::paging(q.page, q.page_size, 20, 200)?;
    // Byte order for names on both engines, as the index sorts.
    let name = match db.backend {
        crate::platform::db::Backend::Sqlite => "name",
        crate::platform::db::Backend::Postgres => "name COLLATE \"C\"",
    };
    let order = match sort_of(q)? {
        search_index::Sort::Name => format!("{name}, id"),
        search_index::Sort::Birth => "birth_date, id".into(),
        search_index::Sort::BirthDesc => "birth_date DESC, id".into(),
        search_index::Sort::Region => "residence_region, birth_date, id".into(),
    };
    let mut cq = sqlx::query(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM elder WHERE {w}"
    )));
    for b in &binds {
        cq = cq.bind(b.clone());
    }
    let total: i64 = cq.fetch_one(&db.pool).await?.get(0);
    let n = binds.len();
    let mut lq = sqlx::query(AssertSqlSafe(format!(
        "SELECT id FROM elder WHERE {w} ORDER BY {order} LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    )));
    for b in &binds {
        lq = lq.bind(b.clone());
    }
    let ids = lq
        .bind(size)
        .bind((page - 1) * size)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    Ok((ids, total))
}

const DETAIL_COLS: &str = "id, name, sex, birth_date, citizen_id_masked, residence_region, living_status, economic_status, status, \
    hukou_region, address, phone_masked, lon, lat, family_planning_special, disability_grade, entitled_veteran_family, \
    death_date, moved_out_date, status_source, status_since, created_at, updated_at, version, \
    (SELECT level FROM elder_ability WHERE elder_id = elder.id), (SELECT valid_until FROM elder_ability WHERE elder_id = elder.id)";

/// One status change row: kind, new value, source, since.
type ChangeRow = (String, Option<String>, String, String);

const DETAIL_SQL: &str = "WHERE id = $1 AND residence_region BETWEEN $2 AND $3";
const CHANGES_SQL: &str = "SELECT kind, new_value, source, since FROM elder_status_change WHERE elder_id = $1 ORDER BY recorded_at";

fn not_found() -> ApiError {
    // Outside the scope looks exactly like absent: no probing for who exists elsewhere.
    ApiError::not_found("未找到该老年人档案，或不在您的管辖范围内")
}

/// Read one elder in scope on SQLite's point-read path; `None` on PostgreSQL.
fn fetch_detail_fast(
    db: &Db,
    scope: &Scope,
    id: &str,
    regions: &RegionIndex,
    today: NaiveDate,
) -> Option<ApiResult<Elder>> {
    let sql = format!("SELECT {DETAIL_COLS} FROM elder {DETAIL_SQL}");
    let found = db.sqlite_read(|c| {
        let changes: Vec<ChangeRow> = c
            .prepare_cached(CHANGES_SQL)?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let mut st = c.prepare_cached(&sql)?;
        let mut rows = st.query((id, &scope.lo, &scope.hi))?;
        Ok(rows.next()?.map(|r| elder_of(r, changes, regions, today)))
    });
    let found = found?;
    Some(
        found
            .map_err(ApiError::from)
            .and_then(|f| f.ok_or_else(not_found)),
    )
}

/// Read one elder in scope through `conn` (inside a transaction, it sees the transaction's writes).
/// One statement: the person's row once per status change (or once with none), so a detail
/// view costs one round trip, not two, while an import competes for the database's cores.
async fn fetch_detail(
    conn: &mut sqlx::AnyConnection,
    scope: &Scope,
    id: &str,
    regions: &RegionIndex,
    today: NaiveDate,
) -> ApiResult<Elder> {
    let sql = format!(
        "SELECT d.*, c.kind, c.new_value, c.source, c.since \
         FROM (SELECT {DETAIL_COLS} FROM elder {DETAIL_SQL}) d \
         LEFT JOIN elder_status_change c ON c.elder_id = d.id ORDER BY c.recorded_at"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .bind(&scope.lo)
        .bind(&scope.hi)
        .fetch_all(&mut *conn)
        .await?;
    let first = rows.first().ok_or_else(not_found)?;
    // The change's four columns come after the person's, however many those are.
    let w = first.len() - 4;
    let changes: Vec<ChangeRow> = rows
        .iter()
        .filter_map(|c| {
            let kind: Option<String> = c.get(w);
            Some((kind?, c.get(w + 1), c.get(w + 2), c.get(w + 3)))
        })
        .collect();
    Ok(elder_of(first, changes, regions, today))
}

fn elder_of(
    r: &impl Cols,
    changes: Vec<ChangeRow>,
    regions: &RegionIndex,
    today: NaiveDate,
) -> Elder {
    let row = row_of(r, today, regions, 24);
    let hukou = r.opt_text(9);
    let fps = r.opt_text(14);
    let source = r.text(19);
    let since = r.text(20);
    let mut statuses = vec![];
    for (kind, v) in [
        ("living_status", row.living_status_label.clone()),
        ("economic_status", row.economic_status_label.clone()),
    ] {
        statuses.push(StatusInfo {
            kind: kind.into(),
            value: v,
            source: source.clone(),
            since: since.clone(),
        });
    }
    for (kind, value, source, since) in changes {
        let label = value.as_deref().map(|v| match kind.as_str() {
            "living_status" => model::label_of(LIVING_STATUS, v),
            "economic_status" => model::label_of(ECONOMIC_STATUS, v),
            _ => v.to_string(),
        });
        let info = StatusInfo {
            kind: kind.clone(),
            value: label,
            source,
            since,
        };
        match statuses.iter_mut().find(|s| s.kind == kind) {
            Some(s) => *s = info,
            None => statuses.push(info),
        }
    }
    Elder {
        birth_date: r.text(3),
        hukou_region_name: hukou
            .as_deref()
            .map(|h| regions.path_name(h))
            .filter(|s| !s.is_empty()),
        hukou_region: hukou,
        address: r.opt_text(10),
        phone_masked: r.opt_text(11),
        lon: r.opt_float(12),
        lat: r.opt_float(13),
        family_planning_special_label: fps.as_deref().map(|c| model::label_of(FAMILY_PLANNING, c)),
        family_planning_special: fps,
        disability_grade: r.opt_int(15),
        entitled_veteran_family: r.opt_int(16).map(|v| v != 0),
        death_date: r.opt_text(17),
        moved_out_date: r.opt_text(18),
        statuses,
        created_at: r.text(21),
        updated_at: r.text(22),
        version: r.opt_int(23).unwrap_or_default(),
        row,
    }
}

/// Detail view of one person: a sensitive read, answered only once its audit row is committed.
pub async fn detail(
    db: &Db,
    read_audit: &audit::ReadAudit,
    scope: &Scope,
    who: &Who,
    id: &str,
    regions: &RegionIndex,
    today: NaiveDate,
) -> ApiResult<Elder> {
    let e = match fetch_detail_fast(db, scope, id, regions, today) {
        Some(e) => e?,
        None => {
            let mut conn = db.pool.acquire().await?;
            fetch_detail(&mut conn, scope, id, regions, today).await?
        }
    };
    read_audit
        .record(
            who,
            Entry {
                action: "elder.view",
                entity: "elder",
                entity_id: Some(id),
                region_code: Some(&e.row.residence_region),
                detail: "{}".into(),
            },
        )
        .await?;
    Ok(e)
}

/// Reveal the full citizen ID or phone: the caller checked the permission; the reason is recorded.
pub async fn reveal(
    db: &Db,
    keys: &KeyRing,
    scope: &Scope,
    who: &Who,
    id: &str,
    field: &str,
    reason: &str,
) -> ApiResult<String> {
    let col = match field {
        "citizen_id" => "citizen_id_enc",
        "phone" => "phone_enc",
        _ => return Err(ApiError::invalid("field", "只能查看 citizen_id 或 phone")),
    };
    let reason = reason.trim();
    if reason.chars().count() < 4 || reason.chars().count() > 200 {
        return Err(ApiError::invalid("reason", "请填写查看事由（4–200个字）"));
    }
    let mut tx = db.begin().await?;
    let r = sqlx::query(AssertSqlSafe(format!("SELECT {col}, residence_region FROM elder WHERE id = $1 AND residence_region BETWEEN $2 AND $3")))
        .bind(id)
        .bind(&scope.lo)
        .bind(&scope.hi)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("未找到该老年人档案，或不在您的管辖范围内"))?;
    let enc: Option<Vec<u8>> = r.get(0);
    let region: String = r.get(1);
    let value = match enc {
        Some(b) => keys.decrypt(&b)?,
        None => return Err(ApiError::not_found("该项信息为空")),
    };
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "elder.reveal",
            entity: "elder",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"field": field, "reason": reason}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(value)
}

/// Columns written for one elder, in the order of [`INSERT_COLS`].
pub const INSERT_COLS: &str = "id, citizen_id_bidx, citizen_id_enc, citizen_id_masked, name, sex, birth_date, hukou_region, \
    residence_region, address, phone_enc, phone_masked, lon, lat, living_status, economic_status, family_planning_special, \
    disability_grade, entitled_veteran_family, death_date, status, status_source, status_since, row_digest, created_at, updated_at, version, change_seq, \
    phone_bidx";
pub const INSERT_NCOLS: usize = 29;

/// See [`next_change_seq`]; for the bulk writers' own connections.
pub const NEXT_CHANGE_SEQ: &str =
    "UPDATE registry_head SET seq = seq + 1 WHERE id = 1 RETURNING seq";

/// The change number for this transaction's elder writes (see `MIGRATION_CHANGE_SEQ`). Take it
/// once per transaction; the head row stays locked until commit.
pub async fn next_change_seq(tx: &mut Tx<'_>) -> Result<i64, sqlx::Error> {
    // Behind an import's chunk this waits for the head: the request's place goes to the next.
    crate::platform::leave_place();
    let r = sqlx::query(NEXT_CHANGE_SEQ).fetch_one(&mut **tx).await?;
    Ok(r.get(0))
}

/// Stamp one elder's write with a change number, late in its transaction: the head row is then
/// locked for the last statements and the commit only, not for the whole edit (4 editors holding
/// it through their edits held an import back for most of its time). Take it before the audit
/// head, as every writer does.
pub async fn stamp_change(tx: &mut Tx<'_>, id: &str) -> Result<i64, sqlx::Error> {
    if tx.backend() == crate::platform::db::Backend::Postgres {
        // One round trip while the head is held, not two.
        crate::platform::leave_place();
        let r = sqlx::query(
            "WITH h AS (UPDATE registry_head SET seq = seq + 1 WHERE id = 1 RETURNING seq) \
             UPDATE elder SET change_seq = h.seq FROM h WHERE elder.id = $1 RETURNING h.seq",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        // (An id that is not there still moves the head, as the two statements do.)
        return Ok(r.map_or(0, |r| r.get(0)));
    }
    let seq = next_change_seq(tx).await?;
    sqlx::query("UPDATE elder SET change_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(seq)
}

/// An elder with its derived columns (blind index, ciphertexts, masks, digest) computed: the CPU
/// part of an insert, done off the database's thread during imports.
pub struct Prepared {
    pub id: String,
    pub bidx: String,
    pub cid_enc: Vec<u8>,
    pub cid_masked: String,
    pub phone_enc: Option<Vec<u8>>,
    pub phone_masked: Option<String>,
    pub phone_bidx: Option<String>,
    pub digest: String,
    birth_date: String,
    death_date: Option<String>,
    pub input: ElderInput,
}

impl Prepared {
    pub fn new(input: ElderInput, keys: &KeyRing) -> Prepared {
        Prepared {
            id: uuid::Uuid::now_v7().to_string(),
            bidx: keys.blind_index(CID_DOMAIN, input.citizen_id.as_str()),
            cid_enc: keys.encrypt(input.citizen_id.as_str()),
            cid_masked: input.citizen_id.masked(),
            phone_enc: input.phone.as_deref().map(|p| keys.encrypt(p)),
            phone_masked: input.phone.as_deref().map(yiyang_kernel::mask::phone),
            phone_bidx: input
                .phone
                .as_deref()
                .map(|p| keys.blind_index(PHONE_DOMAIN, p)),
            digest: input.digest(),
            birth_date: super::model::iso_date(input.birth_date),
            death_date: input.death_date.map(super::model::iso_date),
            input,
        }
    }

    /// The row's values in the order of [`INSERT_COLS`]: the one place that order is written, for
    /// the sqlx insert, the SQLite bulk writer and PostgreSQL COPY alike.
    pub fn cells<'a>(&'a self, stamp: &'a Stamp) -> [Cell<'a>; INSERT_NCOLS] {
        let e = &self.input;
        [
            Cell::Text(Some(&self.id)),
            Cell::Text(Some(&self.bidx)),
            Cell::Blob(Some(&self.cid_enc)),
            Cell::Text(Some(&self.cid_masked)),
            Cell::Text(Some(&e.name)),
            Cell::Text(Some(e.sex.zh())),
            Cell::Text(Some(&self.birth_date)),
            Cell::Text(e.hukou_region.as_deref()),
            Cell::Text(Some(&e.residence_region)),
            Cell::Text(e.address.as_deref()),
            Cell::Blob(self.phone_enc.as_deref()),
            Cell::Text(self.phone_masked.as_deref()),
            Cell::Real(e.lon),
            Cell::Real(e.lat),
            Cell::Text(e.living_status),
            Cell::Text(e.economic_status),
            Cell::Text(e.family_planning_special),
            Cell::Int(e.disability_grade),
            Cell::Int(e.entitled_veteran_family.map(|b| b as i64)),
            Cell::Text(self.death_date.as_deref()),
            Cell::Text(Some(e.status())),
            Cell::Text(Some(stamp.source)),
            Cell::Text(Some(stamp.today)),
            Cell::Text(Some(&self.digest)),
            Cell::Text(Some(stamp.now)),
            Cell::Text(Some(stamp.now)),
            Cell::Int(Some(1)),
            Cell::Int(Some(stamp.change_seq)),
            Cell::Text(self.phone_bidx.as_deref()),
        ]
    }
}

/// Where a write came from and when: the same for every row of one transaction.
#[derive(Clone, Copy)]
pub struct Stamp<'a> {
    pub source: &'a str,
    pub now: &'a str,
    pub today: &'a str,
    pub change_seq: i64,
}

/// Bind one elder's values onto a query (for single and multi-row inserts).
pub fn bind_elder<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    id: &str,
    e: &ElderInput,
    keys: &KeyRing,
    stamp: &Stamp,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut p = Prepared::new(e.clone(), keys);
    p.id = id.to_string();
    bind_prepared(q, &p, stamp)
}

pub fn bind_prepared<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    p: &Prepared,
    stamp: &Stamp,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    p.cells(stamp).into_iter().fold(q, |q, c| c.bind(q))
}

/// `($start, …)`: a list of `n` numbered placeholders, for `IN` lists after other binds.
pub fn numbered_list(start: usize, n: usize) -> String {
    let v: Vec<String> = (start..start + n).map(|i| format!("${i}")).collect();
    format!("({})", v.join(","))
}

/// `(…),(…)` placeholders for a multi-row insert. SQLite gets plain `?`: its parser looks up every
/// numbered `$N` in a list, which made a 13,500-parameter statement take ~0.2 s to prepare.
pub fn placeholders(backend: crate::platform::db::Backend, rows: usize, ncols: usize) -> String {
    let sqlite = backend == crate::platform::db::Backend::Sqlite;
    let mut s = String::with_capacity(rows * ncols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..ncols {
            if c > 0 {
                s.push(',');
            }
            if sqlite {
                s.push('?');
            } else {
                s.push('$');
                s.push_str(&(r * ncols + c + 1).to_string());
            }
        }
        s.push(')');
    }
    s
}

/// Update an existing elder's content to `e` (same citizen ID), recording status changes with their source.
/// `change_seq` 0 keeps the row's change number: the caller stamps it last ([`stamp_change`]).
pub async fn update_content(
    tx: &mut Tx<'_>,
    keys: &KeyRing,
    id: &str,
    e: &ElderInput,
    source: &str,
    now: &str,
    change_seq: i64,
) -> Result<Vec<&'static str>, sqlx::Error> {
    let old = sqlx::query("SELECT living_status, economic_status, family_planning_special, disability_grade, entitled_veteran_family, death_date, residence_region, name, \
         hukou_region, address, phone_enc, lon, lat FROM elder WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    let today = crate::platform::today().to_string();
    let olds: [(&'static str, Option<String>, Option<String>); 6] = [
        (
            "living_status",
            old.get(0),
            e.living_status.map(str::to_string),
        ),
        (
            "economic_status",
            old.get(1),
            e.economic_status.map(str::to_string),
        ),
        (
            "family_planning_special",
            old.get(2),
            e.family_planning_special.map(str::to_string),
        ),
        (
            "disability_grade",
            old.get::<Option<i64>, _>(3).map(|v| v.to_string()),
            e.disability_grade.map(|v| v.to_string()),
        ),
        (
            "entitled_veteran_family",
            old.get::<Option<i64>, _>(4).map(|v| v.to_string()),
            e.entitled_veteran_family.map(|b| (b as i64).to_string()),
        ),
        (
            "death_date",
            old.get(5),
            e.death_date.map(|d| d.to_string()),
        ),
    ];
    let mut changed = vec![];
    for (kind, o, n) in olds {
        if o != n {
            changed.push(kind);
            sqlx::query("INSERT INTO elder_status_change (id, elder_id, kind, old_value, new_value, source, since, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(id)
                .bind(kind)
                .bind(o)
                .bind(n)
                .bind(source)
                .bind(e.death_date.filter(|_| kind == "death_date").map(|d| d.to_string()).unwrap_or_else(|| today.clone()))
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
    }
    if old.get::<String, _>(6) != e.residence_region {
        changed.push("residence_region");
    }
    if old.get::<String, _>(7) != e.name {
        changed.push("name");
    }
    // The rest by name only (the audit row says what changed, never the values).
    if old.get::<Option<String>, _>(8) != e.hukou_region {
        changed.push("hukou_region");
    }
    if old.get::<Option<String>, _>(9) != e.address {
        changed.push("address");
    }
    let old_phone = old
        .get::<Option<Vec<u8>>, _>(10)
        .and_then(|b| keys.decrypt(&b).ok());
    if old_phone != e.phone {
        changed.push("phone");
    }
    if old.get::<Option<f64>, _>(11) != e.lon || old.get::<Option<f64>, _>(12) != e.lat {
        changed.push("location");
    }
    let q = sqlx::query(
        "UPDATE elder SET name = $1, hukou_region = $2, residence_region = $3, address = $4, phone_enc = $5, phone_masked = $6, \
         lon = $7, lat = $8, living_status = $9, economic_status = $10, family_planning_special = $11, disability_grade = $12, \
         entitled_veteran_family = $13, death_date = $14, status = CASE WHEN $14 IS NOT NULL THEN 'deceased' WHEN status = 'deceased' THEN 'active' ELSE status END, \
         row_digest = $15, updated_at = $16, version = version + 1, \
         change_seq = CASE WHEN $18 > 0 THEN $18 ELSE change_seq END, phone_bidx = $19 WHERE id = $17",
    )
    .bind(e.name.clone())
    .bind(e.hukou_region.clone())
    .bind(e.residence_region.clone())
    .bind(e.address.clone())
    .bind(e.phone.as_deref().map(|p| keys.encrypt(p)))
    .bind(e.phone.as_deref().map(yiyang_kernel::mask::phone));
    let q = crate::platform::db::opt_f64(q, e.lon);
    let q = crate::platform::db::opt_f64(q, e.lat);
    q.bind(e.living_status)
        .bind(e.economic_status)
        .bind(e.family_planning_special)
        .bind(e.disability_grade)
        .bind(e.entitled_veteran_family.map(|b| b as i64))
        .bind(e.death_date.map(|d| d.to_string()))
        .bind(e.digest())
        .bind(now)
        .bind(id)
        .bind(change_seq)
        .bind(
            e.phone
                .as_deref()
                .map(|p| keys.blind_index(PHONE_DOMAIN, p)),
        )
        .execute(&mut **tx)
        .await?;
    Ok(changed)
}

/// Load an elder's current content as an [`ElderInput`] (to apply a partial edit on top of it).
pub async fn load_input(
    tx: &mut Tx<'_>,
    keys: &KeyRing,
    scope: &Scope,
    id: &str,
) -> ApiResult<ElderInput> {
    let r = sqlx::query("SELECT citizen_id_enc, name, hukou_region, residence_region, address, phone_enc, lon, lat, living_status, economic_status, family_planning_special, disability_grade, entitled_veteran_family, death_date FROM elder WHERE id = $1 AND residence_region BETWEEN $2 AND $3")
        .bind(id)
        .bind(&scope.lo)
        .bind(&scope.hi)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| ApiError::not_found("未找到该老年人档案，或不在您的管辖范围内"))?;
    let cid = keys.decrypt(&r.get::<Vec<u8>, _>(0))?;
    let cid = yiyang_kernel::CitizenId::parse(&cid, crate::platform::today())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored id invalid: {e}")))?;
    let st = |i: usize| -> Option<&'static str> {
        let v: Option<String> = r.get(i);
        let v = v?;
        model::code_of(LIVING_STATUS, &v)
            .or_else(|| model::code_of(ECONOMIC_STATUS, &v))
            .or_else(|| model::code_of(FAMILY_PLANNING, &v))
    };
    Ok(ElderInput {
        sex: cid.sex(),
        birth_date: cid.birth_date(),
        citizen_id: cid,
        name: r.get(1),
        hukou_region: r.get(2),
        residence_region: r.get(3),
        address: r.get(4),
        phone: r
            .get::<Option<Vec<u8>>, _>(5)
            .map(|b| keys.decrypt(&b))
            .transpose()?,
        lon: r.get(6),
        lat: r.get(7),
        living_status: st(8),
        economic_status: st(9),
        family_planning_special: st(10),
        disability_grade: r.get(11),
        entitled_veteran_family: r.get::<Option<i64>, _>(12).map(|v| v != 0),
        death_date: r
            .get::<Option<String>, _>(13)
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
    })
}

pub async fn detail_in_tx(
    tx: &mut Tx<'_>,
    scope: &Scope,
    id: &str,
    regions: &RegionIndex,
    today: NaiveDate,
) -> ApiResult<Elder> {
    fetch_detail(tx, scope, id, regions, today).await
}

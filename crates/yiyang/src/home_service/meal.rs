//! 老年助餐 — meals served at a meal point's counter. The elder is identified by the ID card
//! number (typed, or read by a card reader acting as a keyboard); the meal costs the meal point's
//! contract price (service `meal`), less the subsidy of the catalogue item of kind
//! `meal_subsidy` the elder holds (its tier's amount per meal, at most the price: 特困 eat free
//! when their tier covers the price). At most one subsidised lunch and one subsidised supper a
//! day (a unique index holds it); another meal that day is served at full price. Each meal is
//! recorded under the id the counter gave it: sent twice, recorded once. Audited.

use crate::audit::{self, Entry, Who};
use crate::catalog::version_of;
use crate::identity::Scope;
use crate::platform::crypto::KeyRing;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use serde::{Deserialize, Serialize};
use sqlx::Row;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE meal_record (id TEXT PRIMARY KEY, meal_point_id TEXT NOT NULL REFERENCES organisation (id), \
         elder_id TEXT NOT NULL REFERENCES elder (id), day TEXT NOT NULL, meal TEXT NOT NULL, price_fen BIGINT NOT NULL, \
         subsidy_fen BIGINT NOT NULL, entitlement_id TEXT, served_at TEXT NOT NULL, served_by TEXT NOT NULL, \
         CONSTRAINT meal_record_meal_check CHECK (meal = 'lunch' OR meal = 'supper'), \
         CONSTRAINT meal_record_subsidy_check CHECK (subsidy_fen >= 0 AND subsidy_fen <= price_fen))",
    ),
    // One subsidised lunch and one subsidised supper a day, whatever the counter sends.
    Both(
        "CREATE UNIQUE INDEX meal_record_subsidised ON meal_record (elder_id, day, meal) WHERE subsidy_fen > 0",
    ),
    Both("CREATE INDEX meal_record_point ON meal_record (meal_point_id, day)"),
];

/// The catalogue version and item that paid a subsidised meal (the settlement splits the
/// subsidy by that item's shares).
pub const MIGRATION_ITEM: &[Stmt] = &[
    Both("ALTER TABLE meal_record ADD COLUMN version_id TEXT"),
    Both("ALTER TABLE meal_record ADD COLUMN item_code TEXT"),
];

/// Officers' overrides of a meal's anomaly (after the elder's death, in hospital), as for visits.
pub const MIGRATION_OVERRIDE: &[Stmt] = &[Both(
    "CREATE TABLE meal_record_override (meal_id TEXT NOT NULL REFERENCES meal_record (id), kind TEXT NOT NULL, \
     reason TEXT NOT NULL, by_name TEXT NOT NULL, by_id TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (meal_id, kind))",
)];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServeReq {
    /// The id the counter made for this meal (a UUID): sent again, it is recorded once
    pub meal_id: String,
    /// The meal point (an account bound to one may leave it out)
    pub meal_point_id: Option<String>,
    /// 老人的 18 位身份证号 (typed, or from a card reader); or leave it empty and give the
    /// family's code
    #[serde(default)]
    pub citizen_id: String,
    /// The family's 8-digit 助餐码 (`POST /public/home-care/meal-code`), instead of the ID
    pub family_code: Option<String>,
    /// lunch / supper (午餐 / 晚餐); by default lunch before 15:00 China time, supper after
    pub meal: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Served {
    pub id: String,
    /// The elder's name, masked (张**): the counter checks the face, not the record
    pub elder: String,
    pub meal: String,
    pub meal_zh: String,
    pub price_fen: i64,
    pub subsidy_fen: i64,
    /// What the elder pays at the counter
    pub pay_fen: i64,
    /// The subsidy item's name, or why there is none
    pub note: String,
}

fn meal_zh(m: &str) -> &'static str {
    if m == "lunch" { "午餐" } else { "晚餐" }
}

/// A meal subsidy in force: its entitlement, item name, 分 per meal, catalogue version and item.
struct Subsidy {
    entitlement: String,
    name: String,
    fen: i64,
    version: String,
    item: String,
}

/// The elder's meal subsidy in force on a day. Such an
/// item needs no application, so a run grants it packed (`catalog::pack`) until something
/// changes it: both places are read.
async fn subsidy_on(db: &Db, elder: &str, day: &str) -> ApiResult<Option<Subsidy>> {
    let mut held: Vec<(String, String, i64, String)> = vec![];
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.id, n.item_code, n.amount_fen, {} FROM entitlement n WHERE n.elder_id = $1 AND n.state = 'granted' \
         AND n.since <= $2 AND (n.ended_on IS NULL OR n.ended_on > $2)",
        version_of("n")
    )))
    .bind(elder)
    .bind(day)
    .fetch_all(&db.pool)
    .await?
    {
        if let Some(v) = r.get::<Option<String>, _>(3) {
            held.push((r.get(0), r.get(1), r.get(2), v));
        }
    }
    let mut conn = db.pool.acquire().await?;
    for h in crate::catalog::pack::of_elder(&mut conn, elder).await? {
        if h.pack.since.as_str() > day {
            continue;
        }
        let version: Option<String> =
            sqlx::query_scalar("SELECT version_id FROM catalog_run WHERE id = $1")
                .bind(&h.pack.run_id)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(v) = version {
            held.push((h.id(), h.entry.item_code.clone(), h.entry.amount_fen, v));
        }
    }
    drop(conn);
    held.sort_by_key(|h| std::cmp::Reverse(h.2));
    for (id, code, fen, version) in held {
        let items = crate::catalog::store::items_of(db, &version).await?;
        if let Some(i) = items
            .iter()
            .find(|i| i.code == code && i.benefit_kind == "meal_subsidy")
        {
            return Ok(Some(Subsidy {
                entitlement: id,
                name: i.name.clone(),
                fen,
                version,
                item: code,
            }));
        }
    }
    Ok(None)
}

/// Record one meal at the counter. Audited.
pub async fn serve(
    db: &Db,
    keys: &KeyRing,
    scope: &Scope,
    who: &Who,
    q: ServeReq,
) -> ApiResult<Served> {
    let meal_id = uuid::Uuid::parse_str(q.meal_id.trim())
        .map_err(|_| ApiError::invalid("meal_id", "meal_id 应为 UUID"))?
        .to_string();
    let point = match (q.meal_point_id.as_deref().map(str::trim), &scope.org) {
        (Some(p), _) if !p.is_empty() => p.to_string(),
        (_, Some(o)) => o.clone(),
        _ => return Err(ApiError::invalid("meal_point_id", "请选择助餐点")),
    };
    let now = chrono::Utc::now() + chrono::Duration::hours(8);
    let meal = match q.meal.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some("lunch" | "午餐") => "lunch",
        Some("supper" | "晚餐") => "supper",
        Some(_) => return Err(ApiError::invalid("meal", "餐次应为午餐或晚餐")),
        None if chrono::Timelike::hour(&now) < 15 => "lunch",
        None => "supper",
    };
    let day = now.date_naive().to_string();
    let code = q
        .family_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    // The elder by the ID's blind index, or by the family's code.
    let by_id = match (code, q.citizen_id.trim()) {
        (None, "") => {
            return Err(ApiError::invalid(
                "citizen_id",
                "请刷身份证，或输入身份证号或家属的助餐码",
            ));
        }
        (Some(_), t) if !t.is_empty() => {
            return Err(ApiError::invalid("family_code", "身份证号和助餐码只填一个"));
        }
        (Some(c), _) => {
            super::meal_code::digits(c)
                .ok_or_else(|| ApiError::invalid("family_code", "助餐码应为 8 位数字"))?;
            None
        }
        (None, t) => {
            let cid = yiyang_kernel::CitizenId::parse(t, now.date_naive()).map_err(|e| {
                ApiError::invalid("citizen_id", format!("身份证号无效：{e}，请重新刷卡或输入"))
            })?;
            Some(keys.blind_index(crate::registry::store::CID_DOMAIN, cid.as_str()))
        }
    };
    let p = sqlx::query(
        "SELECT o.region_code, o.kind, (SELECT r.price_fen FROM provider_price r WHERE r.org_id = o.id AND r.service = 'meal'), \
         (SELECT c.ends_on FROM provider_contract c WHERE c.org_id = o.id), \
         (SELECT c.starts_on FROM provider_contract c WHERE c.org_id = o.id) FROM organisation o WHERE o.id = $1",
    )
    .bind(&point)
    .fetch_optional(&db.pool)
    .await?
    .filter(|r| scope.holds(&point, &r.get::<String, _>(0)))
    .ok_or_else(|| ApiError::not_found("未找到该助餐点（或不在您的管辖范围内）"))?;
    let region: String = p.get(0);
    if p.get::<String, _>(1) != "meal_point" {
        return Err(ApiError::invalid("meal_point_id", "所选机构不是助餐点"));
    }
    let Some(price) = p.get::<Option<i64>, _>(2).filter(|p| *p > 0) else {
        return Err(ApiError::conflict(
            "本助餐点的服务协议还没有定餐价，请民政部门在服务协议里填写“助餐”的价格",
        ));
    };
    if p.get::<Option<String>, _>(3).is_some_and(|end| end < day) {
        return Err(ApiError::conflict(
            "本助餐点的服务协议已到期，请联系民政部门续签",
        ));
    }
    if p.get::<Option<String>, _>(4)
        .is_some_and(|start| start > day)
    {
        return Err(ApiError::conflict("本助餐点的服务协议还没有开始"));
    }
    let e =
        match (&by_id, code.and_then(super::meal_code::digits)) {
            (Some(bidx), _) => sqlx::query(
                "SELECT id, name, status, residence_region FROM elder WHERE citizen_id_bidx = $1",
            )
            .bind(bidx)
            .fetch_optional(&db.pool)
            .await?,
            (None, Some(c)) => {
                // Sent again (the answer was lost) after the family made a new code: the meal
                // as recorded at this counter, not a wrong code.
                if let Some((point_of, _, done)) = recorded(db, &meal_id).await? {
                    if point_of != point {
                        return Err(ApiError::conflict("meal_id 已用于另一次登记"));
                    }
                    return Ok(done);
                }
                let account = who.actor_id.as_deref().unwrap_or(&who.actor_name);
                let elder = super::meal_code::elder_of(db, keys, account, &c).await?;
                sqlx::query("SELECT id, name, status, residence_region FROM elder WHERE id = $1")
                    .bind(&elder)
                    .fetch_optional(&db.pool)
                    .await?
            }
            (None, None) => None,
        }
        .ok_or_else(|| {
            ApiError::not_found("没有这位老人的档案。可按原价就餐；如需补贴，请到村（社区）登记")
        })?;
    let (elder, name, status): (String, String, String) = (e.get(0), e.get(1), e.get(2));
    // Sent again (the counter lost the answer): the meal as recorded, when it is this meal
    // point's and this person's.
    if let Some((point_of, elder_of, done)) = recorded(db, &meal_id).await? {
        if point_of != point || elder_of != elder {
            return Err(ApiError::conflict("meal_id 已用于另一次登记"));
        }
        return Ok(done);
    }
    if status == "deceased" {
        return Err(ApiError::conflict(
            "档案显示这位老人已故，不能登记就餐，请核对身份证",
        ));
    }
    let grant = subsidy_on(db, &elder, &day).await?;
    let mut tx = db.begin().await?;
    // One subsidised meal of each kind a day: the second is at full price.
    let had: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM meal_record WHERE elder_id = $1 AND day = $2 AND meal = $3 AND subsidy_fen > 0",
    )
    .bind(&elder)
    .bind(&day)
    .bind(meal)
    .fetch_one(&mut *tx)
    .await?;
    let (subsidy, paid_by, note) = match &grant {
        Some(_) if had > 0 => (
            0,
            None,
            format!("今天的{}补贴已用过，本餐按原价", meal_zh(meal)),
        ),
        Some(g) => (g.fen.min(price), Some(g), g.name.clone()),
        None => (0, None, "没有助餐补贴，按原价".to_string()),
    };
    let ins = sqlx::query(
        "INSERT INTO meal_record (id, meal_point_id, elder_id, day, meal, price_fen, subsidy_fen, entitlement_id, served_at, served_by, \
         version_id, item_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&meal_id)
    .bind(&point)
    .bind(&elder)
    .bind(&day)
    .bind(meal)
    .bind(price)
    .bind(subsidy)
    .bind(paid_by.map(|g| g.entitlement.as_str()))
    .bind(crate::platform::now_rfc3339())
    .bind(&who.actor_name)
    .bind(paid_by.map(|g| g.version.as_str()))
    .bind(paid_by.map(|g| g.item.as_str()))
    .execute(&mut *tx)
    .await;
    match ins {
        Ok(_) => {}
        // The same meal sent twice at once, or a second subsidised one racing the first: the
        // first stands; the caller reads it (or sends again for a full-price meal).
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            drop(tx);
            return match recorded(db, &meal_id).await? {
                Some((_, _, done)) => Ok(done),
                None => Err(ApiError::conflict(format!(
                    "这位老人今天的{}刚刚登记过，请勿重复刷卡",
                    meal_zh(meal)
                ))),
            };
        }
        Err(e) => return Err(e.into()),
    }
    // Meals served count where the elder lives: recount it there.
    crate::indicator::rollup::mark_dirty(&mut tx, &e.get::<String, _>(3)).await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "meal.serve",
            entity: "meal_record",
            entity_id: Some(&meal_id),
            region_code: Some(&region),
            detail: serde_json::json!({"meal": meal, "price_fen": price, "subsidy_fen": subsidy,
                "by": if by_id.is_some() { "id_card" } else { "family_code" }})
            .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Served {
        id: meal_id,
        elder: yiyang_kernel::mask::name(&name),
        meal: meal.into(),
        meal_zh: meal_zh(meal).into(),
        price_fen: price,
        subsidy_fen: subsidy,
        pay_fen: price - subsidy,
        note,
    })
}

/// A meal recorded under `id`: its meal point, the elder, and the answer.
async fn recorded(db: &Db, id: &str) -> ApiResult<Option<(String, String, Served)>> {
    Ok(sqlx::query(
        "SELECT m.id, e.name, m.meal, m.price_fen, m.subsidy_fen, m.meal_point_id, m.elder_id \
         FROM meal_record m JOIN elder e ON e.id = m.elder_id WHERE m.id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| {
        let (meal, price, subsidy): (String, i64, i64) = (r.get(2), r.get(3), r.get(4));
        let served = Served {
            id: r.get(0),
            elder: yiyang_kernel::mask::name(&r.get::<String, _>(1)),
            meal_zh: meal_zh(&meal).into(),
            meal,
            price_fen: price,
            subsidy_fen: subsidy,
            pay_fen: price - subsidy,
            note: "已登记".into(),
        };
        (r.get(5), r.get(6), served)
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MealDay {
    pub day: String,
    pub lunches: i64,
    pub suppers: i64,
    pub subsidy_fen: i64,
    pub paid_fen: i64,
}

/// A meal point's day at the counter: meals served and the subsidy given.
pub async fn day_of(db: &Db, scope: &Scope, point: &str, day: &str) -> ApiResult<MealDay> {
    let day = chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::invalid("date", "日期应为 YYYY-MM-DD"))?
        .to_string();
    sqlx::query("SELECT region_code FROM organisation WHERE id = $1 AND kind = 'meal_point'")
        .bind(point)
        .fetch_optional(&db.pool)
        .await?
        .filter(|r| scope.holds(point, &r.get::<String, _>(0)))
        .ok_or_else(|| ApiError::not_found("未找到该助餐点（或不在您的管辖范围内）"))?;
    let r = sqlx::query(
        // Cast: PostgreSQL sums BIGINT as NUMERIC.
        "SELECT CAST(COALESCE(SUM(CASE WHEN meal = 'lunch' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN meal = 'supper' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(subsidy_fen), 0) AS BIGINT), CAST(COALESCE(SUM(price_fen - subsidy_fen), 0) AS BIGINT) \
         FROM meal_record WHERE meal_point_id = $1 AND day = $2",
    )
    .bind(point)
    .bind(&day)
    .fetch_one(&db.pool)
    .await?;
    Ok(MealDay {
        day,
        lunches: r.get(0),
        suppers: r.get(1),
        subsidy_fen: r.get(2),
        paid_fen: r.get(3),
    })
}

//! org — service organisations of every kind (养老机构, 农村敬老院, 日间照料中心, 社区养老服务站,
//! 助餐点, home-care providers): where they are, who owns and runs them, their filing (备案) and star
//! grade. The one place institutions, home care and supervision read them from; their staff, beds
//! and contracts hang off an organisation's id.

pub mod http;
pub mod import;
pub mod staff;

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::RegionCode;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE organisation (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, \
         ownership TEXT NOT NULL, operator TEXT, filing_no TEXT, filed_on TEXT, grade BIGINT, grade_expires_on TEXT, \
         region_code TEXT NOT NULL, address TEXT, lon DOUBLE, lat DOUBLE, floor_area BIGINT, \
         phone TEXT, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version BIGINT NOT NULL, \
         CONSTRAINT organisation_status_check CHECK (status = 'open' OR status = 'closed'))",
    ),
    Both("CREATE INDEX organisation_region ON organisation (region_code)"),
];

/// The monthly price range a home publishes on the vacancy board (元/月).
pub const MIGRATION_PRICES: &[Stmt] = &[
    Both("ALTER TABLE organisation ADD COLUMN price_min BIGINT"),
    Both("ALTER TABLE organisation ADD COLUMN price_max BIGINT"),
];

/// Where subsidies are paid: the organisation's bank account (not personal data: it is the
/// organisation's own, and goes into the bank file of a payment batch).
pub const MIGRATION_BANK: &[Stmt] = &[
    Both("ALTER TABLE organisation ADD COLUMN bank_name TEXT"),
    Both("ALTER TABLE organisation ADD COLUMN bank_account_name TEXT"),
    Both("ALTER TABLE organisation ADD COLUMN bank_account TEXT"),
];

/// Kinds of organisation: (code, 中文).
pub const KINDS: &[(&str, &str)] = &[
    ("institution", "养老机构"),
    ("township_home", "农村敬老院"),
    ("regional_center", "区域性养老服务中心"),
    ("day_care", "日间照料中心"),
    ("station", "社区养老服务站"),
    ("comprehensive_center", "养老服务综合体"),
    ("mutual_aid_home", "农村幸福院"),
    ("meal_point", "助餐点"),
    ("provider", "居家养老服务商"),
];

/// Ownership: 公办, 公建民营, 民办.
pub const OWNERSHIPS: &[(&str, &str)] = &[
    ("public", "公办"),
    ("public_private", "公建民营"),
    ("private", "民办"),
];

/// 养老机构, 农村敬老院 … for a kind code.
pub fn kind_zh(code: &str) -> &'static str {
    zh(KINDS, code)
}

/// 公办 / 公建民营 / 民办 for an ownership code.
pub fn ownership_zh(code: &str) -> &'static str {
    zh(OWNERSHIPS, code)
}

fn zh(table: &[(&str, &'static str)], code: &str) -> &'static str {
    table.iter().find(|k| k.0 == code).map_or("", |k| k.1)
}

/// A code given as itself or as its Chinese label.
fn code_of(table: &[(&'static str, &str)], v: &str) -> Option<&'static str> {
    let v = v.trim();
    table.iter().find(|k| k.0 == v || k.1 == v).map(|k| k.0)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Org {
    pub id: String,
    pub kind: String,
    /// 类型（中文）
    pub kind_name: String,
    pub name: String,
    pub ownership: String,
    /// 性质（中文）
    pub ownership_name: String,
    /// 运营方
    pub operator: Option<String>,
    /// 备案号
    pub filing_no: Option<String>,
    pub filed_on: Option<String>,
    /// 星级 1–5 (GB/T 37276)
    pub grade: Option<i64>,
    pub grade_expires_on: Option<String>,
    pub region_code: String,
    /// "如皋市 / 东陈镇 / 洪桥居委会"
    pub region_name: String,
    pub address: Option<String>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    /// 建筑面积（平方米）
    pub floor_area: Option<i64>,
    pub phone: Option<String>,
    /// 月收费（元）下限、上限
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    /// 收款账户：开户银行、户名、账号
    pub bank_name: Option<String>,
    pub bank_account_name: Option<String>,
    pub bank_account: Option<String>,
    /// open / closed
    pub status: String,
    pub version: i64,
}

/// What an officer enters for an organisation; on an edit, absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgFields {
    /// institution, township_home, … or the Chinese name (养老机构 …)
    pub kind: Option<String>,
    pub name: Option<String>,
    /// public / public_private / private, or 公办 / 公建民营 / 民办
    pub ownership: Option<String>,
    pub operator: Option<String>,
    pub filing_no: Option<String>,
    pub filed_on: Option<String>,
    pub grade: Option<i64>,
    pub grade_expires_on: Option<String>,
    /// The town or village where it is.
    pub region_code: Option<String>,
    pub address: Option<String>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub floor_area: Option<i64>,
    pub phone: Option<String>,
    /// 月收费（元）下限、上限
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    /// 收款账户：开户银行、户名、账号（补贴发放到这里）
    pub bank_name: Option<String>,
    pub bank_account_name: Option<String>,
    pub bank_account: Option<String>,
    /// open / closed
    pub status: Option<String>,
}

/// A checked organisation, ready to write.
#[derive(Debug, Clone, PartialEq)]
struct Valid {
    kind: &'static str,
    name: String,
    ownership: &'static str,
    operator: Option<String>,
    filing_no: Option<String>,
    filed_on: Option<String>,
    grade: Option<i64>,
    grade_expires_on: Option<String>,
    region_code: String,
    address: Option<String>,
    lon: Option<f64>,
    lat: Option<f64>,
    floor_area: Option<i64>,
    phone: Option<String>,
    price_min: Option<i64>,
    price_max: Option<i64>,
    bank_name: Option<String>,
    bank_account_name: Option<String>,
    bank_account: Option<String>,
    status: &'static str,
}

fn text(field: &str, label: &str, v: Option<String>, max: usize) -> ApiResult<Option<String>> {
    let Some(v) = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(ApiError::invalid(field, format!("{label}最多 {max} 个字")));
    }
    if v.chars()
        .any(|c| c.is_control() || crate::registry::model::is_bidi_control(c))
    {
        return Err(ApiError::invalid(
            field,
            format!("{label}含有不允许的控制字符"),
        ));
    }
    Ok(Some(v))
}

fn date(field: &str, label: &str, v: Option<String>) -> ApiResult<Option<String>> {
    let Some(v) = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if v.len() != 10 || chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d").is_err() {
        return Err(ApiError::invalid(
            field,
            format!("{label}应为 YYYY-MM-DD 格式的日期"),
        ));
    }
    Ok(Some(v))
}

/// Check `f` laid over `base` (an edit) or alone (a new organisation): every field named in
/// Chinese when it is wrong, the place inside the caller's scope and a town or village it knows.
fn validate(
    base: Option<&Org>,
    f: OrgFields,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
) -> ApiResult<Valid> {
    let pick = |new: Option<String>, old: Option<&String>| new.or_else(|| old.cloned());
    // Where a value is required, an empty one is "not given" (an edit keeps the old one).
    let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let f = OrgFields {
        kind: given(f.kind),
        ownership: given(f.ownership),
        region_code: given(f.region_code),
        status: given(f.status),
        ..f
    };
    let kind_raw = pick(f.kind, base.map(|b| &b.kind))
        .ok_or_else(|| ApiError::invalid("kind", "请选择机构类型"))?;
    let kind = code_of(KINDS, &kind_raw).ok_or_else(|| {
        ApiError::invalid(
            "kind",
            format!(
                "机构类型应为：{}",
                KINDS.iter().map(|k| k.1).collect::<Vec<_>>().join("、")
            ),
        )
    })?;
    let own_raw = pick(f.ownership, base.map(|b| &b.ownership))
        .ok_or_else(|| ApiError::invalid("ownership", "请选择性质（公办、公建民营或民办）"))?;
    let ownership = code_of(OWNERSHIPS, &own_raw)
        .ok_or_else(|| ApiError::invalid("ownership", "性质应为公办、公建民营或民办"))?;
    let name = text("name", "名称", pick(f.name, base.map(|b| &b.name)), 60)?
        .ok_or_else(|| ApiError::invalid("name", "请填写机构名称"))?;
    if name.chars().count() < 2 {
        return Err(ApiError::invalid("name", "机构名称至少 2 个字"));
    }
    let region_raw = pick(f.region_code, base.map(|b| &b.region_code))
        .ok_or_else(|| ApiError::invalid("region_code", "请选择所在乡镇（街道）或村（社区）"))?;
    let code = RegionCode::parse(&region_raw)
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    if (code.level() as i64) < 4 {
        return Err(ApiError::invalid(
            "region_code",
            "所在地应为乡镇（街道）或村（社区），不能是县级以上区划",
        ));
    }
    if regions.name(code.as_str()).is_none() {
        return Err(ApiError::invalid(
            "region_code",
            format!("区划代码 {} 不在本系统的区划表中", code.as_str()),
        ));
    }
    if !scope.covers(&code) {
        return Err(ApiError::forbidden("所在地不在您的管辖范围内"));
    }
    let grade = f.grade.or(base.and_then(|b| b.grade));
    if let Some(g) = grade
        && !(1..=5).contains(&g)
    {
        return Err(ApiError::invalid("grade", "星级应为 1 到 5（一级至五级）"));
    }
    let lon = f.lon.or(base.and_then(|b| b.lon));
    let lat = f.lat.or(base.and_then(|b| b.lat));
    if lon.is_some_and(|x| !(73.0..=136.0).contains(&x))
        || lat.is_some_and(|y| !(3.0..=54.0).contains(&y))
    {
        return Err(ApiError::invalid(
            "lon",
            "经纬度应在我国境内（经度 73–136，纬度 3–54）",
        ));
    }
    let floor_area = f.floor_area.or(base.and_then(|b| b.floor_area));
    if floor_area.is_some_and(|a| !(0..=10_000_000).contains(&a)) {
        return Err(ApiError::invalid(
            "floor_area",
            "建筑面积应为 0 到 1000 万平方米",
        ));
    }
    let phone = text(
        "phone",
        "联系电话",
        pick(f.phone, base.and_then(|b| b.phone.as_ref())),
        20,
    )?;
    if let Some(p) = &phone
        && !p
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == ' ')
    {
        return Err(ApiError::invalid("phone", "联系电话只能含数字和“-”"));
    }
    let price_min = f.price_min.or(base.and_then(|b| b.price_min));
    let price_max = f.price_max.or(base.and_then(|b| b.price_max));
    if price_min.is_some_and(|p| !(0..=100_000).contains(&p))
        || price_max.is_some_and(|p| !(0..=100_000).contains(&p))
    {
        return Err(ApiError::invalid("price_min", "月收费应为 0 到 100000 元"));
    }
    if let (Some(a), Some(b)) = (price_min, price_max)
        && b < a
    {
        return Err(ApiError::invalid("price_max", "月收费上限不能低于下限"));
    }
    let bank_account = text(
        "bank_account",
        "银行账号",
        pick(f.bank_account, base.and_then(|b| b.bank_account.as_ref())),
        40,
    )?
    .map(|a| a.chars().filter(|c| !c.is_whitespace()).collect::<String>());
    if let Some(a) = &bank_account
        && (!a.chars().all(|c| c.is_ascii_digit()) || !(8..=32).contains(&a.len()))
    {
        return Err(ApiError::invalid(
            "bank_account",
            "银行账号应为 8 到 32 位数字（可含空格）",
        ));
    }
    let bank_name = text(
        "bank_name",
        "开户银行",
        pick(f.bank_name, base.and_then(|b| b.bank_name.as_ref())),
        60,
    )?;
    let bank_account_name = text(
        "bank_account_name",
        "户名",
        pick(
            f.bank_account_name,
            base.and_then(|b| b.bank_account_name.as_ref()),
        ),
        60,
    )?;
    if bank_account.is_some() && (bank_name.is_none() || bank_account_name.is_none()) {
        return Err(ApiError::invalid(
            "bank_name",
            "填写银行账号时，请同时填写开户银行和户名",
        ));
    }
    let status = match pick(f.status, base.map(|b| &b.status)).as_deref() {
        None | Some("open") | Some("运营") => "open",
        Some("closed") | Some("停业") => "closed",
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "状态应为 open（运营）或 closed（停业）",
            ));
        }
    };
    Ok(Valid {
        kind,
        name,
        ownership,
        operator: text(
            "operator",
            "运营方",
            pick(f.operator, base.and_then(|b| b.operator.as_ref())),
            60,
        )?,
        filing_no: text(
            "filing_no",
            "备案号",
            pick(f.filing_no, base.and_then(|b| b.filing_no.as_ref())),
            40,
        )?,
        filed_on: date(
            "filed_on",
            "备案日期",
            pick(f.filed_on, base.and_then(|b| b.filed_on.as_ref())),
        )?,
        grade,
        grade_expires_on: date(
            "grade_expires_on",
            "星级有效期",
            pick(
                f.grade_expires_on,
                base.and_then(|b| b.grade_expires_on.as_ref()),
            ),
        )?,
        region_code: code.as_str().to_string(),
        address: text(
            "address",
            "地址",
            pick(f.address, base.and_then(|b| b.address.as_ref())),
            120,
        )?,
        lon,
        lat,
        floor_area,
        phone,
        price_min,
        price_max,
        bank_name,
        bank_account_name,
        bank_account,
        status,
    })
}

const COLS: &str = "id, kind, name, ownership, operator, filing_no, filed_on, grade, grade_expires_on, region_code, \
     address, lon, lat, floor_area, phone, status, version, price_min, price_max, bank_name, bank_account_name, bank_account";

fn from_row(r: &sqlx::any::AnyRow, regions: &crate::region::RegionIndex) -> Org {
    let kind: String = r.get(1);
    let ownership: String = r.get(3);
    let region_code: String = r.get(9);
    Org {
        id: r.get(0),
        kind_name: zh(KINDS, &kind).to_string(),
        kind,
        name: r.get(2),
        ownership_name: zh(OWNERSHIPS, &ownership).to_string(),
        ownership,
        operator: r.get(4),
        filing_no: r.get(5),
        filed_on: r.get(6),
        grade: r.get(7),
        grade_expires_on: r.get(8),
        region_name: regions.path_name(&region_code),
        region_code,
        address: r.get(10),
        lon: r.get(11),
        lat: r.get(12),
        floor_area: r.get(13),
        phone: r.get(14),
        status: r.get(15),
        version: r.get(16),
        price_min: r.get(17),
        price_max: r.get(18),
        bank_name: r.get(19),
        bank_account_name: r.get(20),
        bank_account: r.get(21),
    }
}

/// One organisation inside the scope (404 outside it, as for one that does not exist).
pub async fn get(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    id: &str,
) -> ApiResult<Org> {
    let sql = format!("SELECT {COLS} FROM organisation WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r, regions))
        .filter(|o| scope.holds(&o.id, &o.region_code))
        .ok_or_else(|| ApiError::not_found("未找到该机构（或不在您的管辖范围内）"))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// Region subtree (default: the caller's)
    pub region_code: Option<String>,
    pub kind: Option<String>,
    pub ownership: Option<String>,
    /// Part of the name
    pub q: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgPage {
    pub total: i64,
    pub items: Vec<Org>,
}

pub async fn list(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    q: &OrgQuery,
) -> ApiResult<OrgPage> {
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    let mut filter = String::from("region_code >= $1 AND region_code <= $2");
    let mut binds: Vec<String> = vec![lo, hi];
    if let Some(o) = &scope.org {
        binds.push(o.clone());
        filter += &format!(" AND id = ${}", binds.len());
    }
    if let Some(k) = q.kind.as_deref().filter(|s| !s.is_empty()) {
        let k = code_of(KINDS, k).ok_or_else(|| ApiError::invalid("kind", "机构类型不正确"))?;
        binds.push(k.into());
        filter += &format!(" AND kind = ${}", binds.len());
    }
    if let Some(o) = q.ownership.as_deref().filter(|s| !s.is_empty()) {
        let o = code_of(OWNERSHIPS, o)
            .ok_or_else(|| ApiError::invalid("ownership", "性质应为公办、公建民营或民办"))?;
        binds.push(o.into());
        filter += &format!(" AND ownership = ${}", binds.len());
    }
    if let Some(n) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if n.chars().count() > 30 {
            return Err(ApiError::invalid("q", "名称关键字最多 30 个字"));
        }
        let escaped = n
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        binds.push(format!("%{escaped}%"));
        filter += &format!(" AND name LIKE ${} ESCAPE '\\'", binds.len());
    }
    let size = q.page_size.unwrap_or(20);
    if !(1..=200).contains(&size) {
        return Err(ApiError::invalid("page_size", "每页条数应为 1 到 200"));
    }
    let page = q.page.unwrap_or(1);
    if !(1..=100_000).contains(&page) {
        return Err(ApiError::invalid("page", "页码应为 1 到 100000"));
    }
    let (size, page) = (size as i64, page as i64);
    let count_sql = format!("SELECT COUNT(*) FROM organisation WHERE {filter}");
    let mut cq = sqlx::query(sqlx::AssertSqlSafe(count_sql));
    for b in &binds {
        cq = cq.bind(b.clone());
    }
    let total: i64 = cq.fetch_one(&db.pool).await?.get(0);
    let sql = format!(
        "SELECT {COLS} FROM organisation WHERE {filter} ORDER BY region_code, name, id LIMIT {size} OFFSET {}",
        (page - 1) * size
    );
    let mut lq = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        lq = lq.bind(b.clone());
    }
    let items = lq
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| from_row(r, regions))
        .collect();
    Ok(OrgPage { total, items })
}

fn bind_valid<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    v: &Valid,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let q = q
        .bind(v.kind)
        .bind(v.name.clone())
        .bind(v.ownership)
        .bind(v.operator.clone())
        .bind(v.filing_no.clone())
        .bind(v.filed_on.clone())
        .bind(v.grade)
        .bind(v.grade_expires_on.clone())
        .bind(v.region_code.clone())
        .bind(v.address.clone());
    let q = crate::platform::db::opt_f64(q, v.lon);
    let q = crate::platform::db::opt_f64(q, v.lat);
    q.bind(v.floor_area)
        .bind(v.phone.clone())
        .bind(v.status)
        .bind(v.price_min)
        .bind(v.price_max)
        .bind(v.bank_name.clone())
        .bind(v.bank_account_name.clone())
        .bind(v.bank_account.clone())
}

/// Register an organisation; audited.
pub async fn create(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    who: &Who,
    f: OrgFields,
) -> ApiResult<Org> {
    let v = validate(None, f, scope, regions)?;
    let mut tx = db.begin().await?;
    let id = insert(&mut tx, who, &v).await?;
    tx.commit().await?;
    get(db, scope, regions, &id).await
}

/// Write a checked organisation in the caller's transaction; audited, its town marked for the
/// indicators.
async fn insert(tx: &mut crate::platform::db::Tx<'_>, who: &Who, v: &Valid) -> ApiResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let q = sqlx::query(
        "INSERT INTO organisation (kind, name, ownership, operator, filing_no, filed_on, grade, grade_expires_on, \
         region_code, address, lon, lat, floor_area, phone, status, price_min, price_max, bank_name, bank_account_name, bank_account, \
         id, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22, 1)",
    );
    bind_valid(q, v)
        .bind(id.clone())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    audit::append(
        tx,
        who,
        Entry {
            action: "org.create",
            entity: "organisation",
            entity_id: Some(&id),
            region_code: Some(&v.region_code),
            detail: serde_json::json!({"name": v.name, "kind": v.kind}).to_string(),
        },
    )
    .await?;
    // The indicators count homes where they are (`indicator::rollup`).
    crate::indicator::rollup::mark_dirty(tx, &v.region_code).await?;
    Ok(id)
}

/// Change an organisation (absent fields keep their value); audited with the fields changed.
pub async fn update(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    who: &Who,
    id: &str,
    f: OrgFields,
) -> ApiResult<Org> {
    let base = get(db, scope, regions, id).await?;
    let old = validate(Some(&base), OrgFields::default(), &Scope::all(), regions)?;
    let v = validate(Some(&base), f, scope, regions)?;
    let mut changed = vec![];
    macro_rules! diff {
        ($($f:ident),*) => { $( if old.$f != v.$f { changed.push(stringify!($f)); } )* };
    }
    diff!(
        kind,
        name,
        ownership,
        operator,
        filing_no,
        filed_on,
        grade,
        grade_expires_on,
        region_code,
        address,
        lon,
        lat,
        floor_area,
        phone,
        price_min,
        price_max,
        bank_name,
        bank_account_name,
        bank_account,
        status
    );
    if changed.is_empty() {
        return Ok(base);
    }
    let mut tx = db.begin().await?;
    let q = sqlx::query(
        "UPDATE organisation SET kind = $1, name = $2, ownership = $3, operator = $4, filing_no = $5, filed_on = $6, \
         grade = $7, grade_expires_on = $8, region_code = $9, address = $10, lon = $11, lat = $12, floor_area = $13, \
         phone = $14, status = $15, price_min = $16, price_max = $17, bank_name = $18, bank_account_name = $19, \
         bank_account = $20, updated_at = $21, version = version + 1 WHERE id = $22",
    );
    bind_valid(q, &v)
        .bind(crate::platform::now_rfc3339())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "org.update",
            entity: "organisation",
            entity_id: Some(id),
            region_code: Some(&v.region_code),
            detail: serde_json::json!({"changed": changed}).to_string(),
        },
    )
    .await?;
    for r in [&old.region_code, &v.region_code] {
        crate::indicator::rollup::mark_dirty(&mut tx, r).await?;
    }
    tx.commit().await?;
    get(db, scope, regions, id).await
}

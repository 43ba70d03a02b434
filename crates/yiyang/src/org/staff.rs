//! Staff of an organisation (从业人员): caregivers (养老护理员) with their skill level and
//! certificate, nurses, doctors, social workers, managers — with hire and leave dates, never
//! deleted. Institutions check their staffing against their residents; home care will dispatch
//! caregivers from here; supervision reads certificates.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::Row;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE staff (id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organisation (id), \
         name TEXT NOT NULL, role TEXT NOT NULL, skill_level BIGINT, certificate_no TEXT, certificate_on TEXT, \
         certificate_expires_on TEXT, hired_on TEXT NOT NULL, left_on TEXT, created_at TEXT NOT NULL, \
         updated_at TEXT NOT NULL, version BIGINT NOT NULL)",
    ),
    Both("CREATE INDEX staff_org ON staff (org_id, left_on)"),
];

/// A staff member's mobile (a dispatcher calls the caregiver): encrypted, masked for lists, and
/// blind-indexed so a visit's confirmation code sent to the caregiver's own number is caught.
pub const MIGRATION_PHONE: &[Stmt] = &[
    Both("ALTER TABLE staff ADD COLUMN phone_enc BLOB"),
    Both("ALTER TABLE staff ADD COLUMN phone_masked TEXT"),
    Both("ALTER TABLE staff ADD COLUMN phone_bidx TEXT"),
];

/// Roles: (code, 中文).
pub const ROLES: &[(&str, &str)] = &[
    ("caregiver", "养老护理员"),
    ("nurse", "护士"),
    ("doctor", "医生"),
    ("social_worker", "社会工作者"),
    ("manager", "管理人员"),
    ("other", "其他"),
];

/// 养老护理员 skill levels (国家职业技能标准): 5 = 初级 … 1 = 高级技师.
pub const SKILL_LEVELS: &[(i64, &str)] = &[
    (5, "初级"),
    (4, "中级"),
    (3, "高级"),
    (2, "技师"),
    (1, "高级技师"),
];

fn role_code(v: &str) -> Option<&'static str> {
    let v = v.trim();
    ROLES.iter().find(|r| r.0 == v || r.1 == v).map(|r| r.0)
}

fn role_zh(code: &str) -> &'static str {
    ROLES.iter().find(|r| r.0 == code).map_or("", |r| r.1)
}

pub fn skill_zh(level: i64) -> &'static str {
    SKILL_LEVELS
        .iter()
        .find(|s| s.0 == level)
        .map_or("", |s| s.1)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Staff {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub role: String,
    /// 岗位（中文）
    pub role_name: String,
    /// 1 (高级技师) … 5 (初级), caregivers only
    pub skill_level: Option<i64>,
    /// 技能等级（中文）
    pub skill_name: Option<String>,
    pub certificate_no: Option<String>,
    pub certificate_on: Option<String>,
    pub certificate_expires_on: Option<String>,
    pub hired_on: String,
    pub left_on: Option<String>,
    pub version: i64,
}

/// A new staff member, or a change (absent fields keep their value; `left_on` ends employment).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffFields {
    pub name: Option<String>,
    /// caregiver / nurse / doctor / social_worker / manager / other, or 养老护理员 …
    pub role: Option<String>,
    /// 1–5 (1 高级技师 … 5 初级), or the Chinese name
    pub skill_level: Option<serde_json::Value>,
    pub certificate_no: Option<String>,
    pub certificate_on: Option<String>,
    pub certificate_expires_on: Option<String>,
    pub hired_on: Option<String>,
    pub left_on: Option<String>,
}

fn text(field: &str, label: &str, v: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    let Some(v) = v.map(str::trim).filter(|s| !s.is_empty()) else {
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
    Ok(Some(v.to_string()))
}

fn date(field: &str, label: &str, v: Option<&str>) -> ApiResult<Option<NaiveDate>> {
    let Some(v) = v.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    (v.len() == 10)
        .then(|| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
        .flatten()
        .filter(|d| d.format("%Y").to_string().as_str() >= "1950")
        .map(Some)
        .ok_or_else(|| ApiError::invalid(field, format!("{label}应为 YYYY-MM-DD 格式的日期")))
}

fn skill(v: Option<&serde_json::Value>) -> ApiResult<Option<i64>> {
    let bad = || {
        ApiError::invalid(
            "skill_level",
            "技能等级应为 初级、中级、高级、技师、高级技师（或 5 到 1）",
        )
    };
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .filter(|l| (1..=5).contains(l))
            .map(Some)
            .ok_or_else(bad),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => SKILL_LEVELS
            .iter()
            .find(|l| l.1 == s.trim() || l.0.to_string() == s.trim())
            .map(|l| Some(l.0))
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Valid {
    name: String,
    role: &'static str,
    skill_level: Option<i64>,
    certificate_no: Option<String>,
    certificate_on: Option<String>,
    certificate_expires_on: Option<String>,
    hired_on: String,
    left_on: Option<String>,
}

fn validate(base: Option<&Staff>, f: StaffFields) -> ApiResult<Valid> {
    let keep = |new: Option<String>, old: Option<&String>| match new {
        Some(v) => Some(v),
        None => old.cloned(),
    };
    let name = text(
        "name",
        "姓名",
        keep(f.name, base.map(|b| &b.name)).as_deref(),
        30,
    )?
    .ok_or_else(|| ApiError::invalid("name", "请填写姓名"))?;
    if name
        .chars()
        .any(|c| c.is_ascii_digit() || c == '<' || c == '>')
    {
        return Err(ApiError::invalid("name", "姓名不能含有数字或尖括号"));
    }
    let role_raw = keep(f.role, base.map(|b| &b.role))
        .ok_or_else(|| ApiError::invalid("role", "请选择岗位"))?;
    let role = role_code(&role_raw).ok_or_else(|| {
        ApiError::invalid(
            "role",
            format!(
                "岗位应为：{}",
                ROLES.iter().map(|r| r.1).collect::<Vec<_>>().join("、")
            ),
        )
    })?;
    let skill_level = match &f.skill_level {
        Some(v) => skill(Some(v))?,
        None => base.and_then(|b| b.skill_level),
    };
    if skill_level.is_some() && role != "caregiver" {
        return Err(ApiError::invalid(
            "skill_level",
            "技能等级只适用于养老护理员",
        ));
    }
    let d = |field: &str, label: &str, new: Option<String>, old: Option<&String>| {
        date(field, label, keep(new, old).as_deref()).map(|x| x.map(|d| d.to_string()))
    };
    let certificate_on = d(
        "certificate_on",
        "发证日期",
        f.certificate_on,
        base.and_then(|b| b.certificate_on.as_ref()),
    )?;
    let certificate_expires_on = d(
        "certificate_expires_on",
        "证书有效期",
        f.certificate_expires_on,
        base.and_then(|b| b.certificate_expires_on.as_ref()),
    )?;
    let hired_on = d(
        "hired_on",
        "入职日期",
        f.hired_on,
        base.map(|b| &b.hired_on),
    )?
    .unwrap_or_else(|| crate::platform::today().to_string());
    let left_on = d(
        "left_on",
        "离职日期",
        f.left_on,
        base.and_then(|b| b.left_on.as_ref()),
    )?;
    if let Some(l) = &left_on
        && l < &hired_on
    {
        return Err(ApiError::invalid("left_on", "离职日期不能早于入职日期"));
    }
    if let (Some(a), Some(b)) = (&certificate_on, &certificate_expires_on)
        && b < a
    {
        return Err(ApiError::invalid(
            "certificate_expires_on",
            "证书有效期不能早于发证日期",
        ));
    }
    Ok(Valid {
        name,
        role,
        skill_level,
        certificate_no: text(
            "certificate_no",
            "证书编号",
            keep(
                f.certificate_no,
                base.and_then(|b| b.certificate_no.as_ref()),
            )
            .as_deref(),
            40,
        )?,
        certificate_on,
        certificate_expires_on,
        hired_on,
        left_on,
    })
}

const COLS: &str = "id, org_id, name, role, skill_level, certificate_no, certificate_on, certificate_expires_on, \
     hired_on, left_on, version";

fn from_row(r: &sqlx::any::AnyRow) -> Staff {
    let role: String = r.get(3);
    let skill_level: Option<i64> = r.get(4);
    Staff {
        id: r.get(0),
        org_id: r.get(1),
        name: r.get(2),
        role_name: role_zh(&role).to_string(),
        role,
        skill_name: skill_level.map(|l| skill_zh(l).to_string()),
        skill_level,
        certificate_no: r.get(5),
        certificate_on: r.get(6),
        certificate_expires_on: r.get(7),
        hired_on: r.get(8),
        left_on: r.get(9),
        version: r.get(10),
    }
}

/// The organisation in scope, and its region.
async fn org_region(db: &Db, scope: &Scope, org_id: &str) -> ApiResult<String> {
    sqlx::query("SELECT region_code FROM organisation WHERE id = $1")
        .bind(org_id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.get::<String, _>(0))
        .filter(|rc| scope.holds(org_id, rc))
        .ok_or_else(|| ApiError::not_found("未找到该机构（或不在您的管辖范围内）"))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StaffQuery {
    /// current (default) or all (with those who left)
    pub state: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffList {
    pub total: i64,
    pub items: Vec<Staff>,
}

pub async fn list(db: &Db, scope: &Scope, org_id: &str, q: &StaffQuery) -> ApiResult<StaffList> {
    org_region(db, scope, org_id).await?;
    let all = match q.state.as_deref().unwrap_or("current") {
        "" | "current" => false,
        "all" => true,
        _ => {
            return Err(ApiError::invalid(
                "state",
                "state 应为 current（在职）或 all（全部）",
            ));
        }
    };
    let today = crate::platform::today().to_string();
    let sql = format!(
        "SELECT {COLS} FROM staff WHERE org_id = $1 AND ($2 = 1 OR left_on IS NULL OR left_on > $3) \
         ORDER BY role, name, id LIMIT 5000"
    );
    let items: Vec<Staff> = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(all as i64)
        .bind(today)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect();
    Ok(StaffList {
        total: items.len() as i64,
        items,
    })
}

async fn get(db: &Db, scope: &Scope, id: &str) -> ApiResult<(Staff, String)> {
    let sql = format!(
        "SELECT {COLS}, (SELECT region_code FROM organisation o WHERE o.id = s.org_id) FROM staff s WHERE id = $1"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| (from_row(&r), r.get::<String, _>(11)))
        .filter(|(s, rc)| scope.holds(&s.org_id, rc))
        .ok_or_else(|| ApiError::not_found("未找到该人员（或不在您的管辖范围内）"))
}

fn bind_valid<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    v: &Valid,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(v.name.clone())
        .bind(v.role)
        .bind(v.skill_level)
        .bind(v.certificate_no.clone())
        .bind(v.certificate_on.clone())
        .bind(v.certificate_expires_on.clone())
        .bind(v.hired_on.clone())
        .bind(v.left_on.clone())
}

/// Add a staff member to an organisation; audited (without the name in clear).
pub async fn create(
    db: &Db,
    scope: &Scope,
    who: &Who,
    org_id: &str,
    f: StaffFields,
) -> ApiResult<Staff> {
    let region = org_region(db, scope, org_id).await?;
    let v = validate(None, f)?;
    let mut tx = db.begin().await?;
    let id = insert(&mut tx, who, org_id, &region, &v, None).await?;
    crate::indicator::rollup::mark_dirty(&mut tx, &region).await?;
    tx.commit().await?;
    Ok(get(db, scope, &id).await?.0)
}

/// Write a checked staff member in the caller's transaction, audited (`via`: how they came, when
/// not by the form).
async fn insert(
    tx: &mut crate::platform::db::Tx<'_>,
    who: &Who,
    org_id: &str,
    region: &str,
    v: &Valid,
    via: Option<&str>,
) -> ApiResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let q = sqlx::query(
        "INSERT INTO staff (name, role, skill_level, certificate_no, certificate_on, certificate_expires_on, \
         hired_on, left_on, id, org_id, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1)",
    );
    bind_valid(q, v)
        .bind(&id)
        .bind(org_id)
        .bind(crate::platform::now_rfc3339())
        .execute(&mut **tx)
        .await?;
    let mut detail = serde_json::json!({"org_id": org_id, "role": v.role});
    if let Some(via) = via {
        detail["via"] = via.into();
    }
    audit::append(
        tx,
        who,
        Entry {
            action: "staff.create",
            entity: "staff",
            entity_id: Some(&id),
            region_code: Some(region),
            detail: detail.to_string(),
        },
    )
    .await?;
    Ok(id)
}

/// Change a staff member (absent fields kept); audited with the fields changed.
pub async fn update(
    db: &Db,
    scope: &Scope,
    who: &Who,
    id: &str,
    f: StaffFields,
) -> ApiResult<Staff> {
    let (base, region) = get(db, scope, id).await?;
    let old = validate(Some(&base), StaffFields::default())?;
    let v = validate(Some(&base), f)?;
    let mut changed = vec![];
    macro_rules! diff {
        ($($f:ident),*) => { $( if old.$f != v.$f { changed.push(stringify!($f)); } )* };
    }
    diff!(
        name,
        role,
        skill_level,
        certificate_no,
        certificate_on,
        certificate_expires_on,
        hired_on,
        left_on
    );
    if changed.is_empty() {
        return Ok(base);
    }
    let mut tx = db.begin().await?;
    let q = sqlx::query(
        "UPDATE staff SET name = $1, role = $2, skill_level = $3, certificate_no = $4, certificate_on = $5, \
         certificate_expires_on = $6, hired_on = $7, left_on = $8, updated_at = $9, version = version + 1 WHERE id = $10",
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
            action: "staff.update",
            entity: "staff",
            entity_id: Some(id),
            region_code: Some(&region),
            detail: serde_json::json!({"changed": changed}).to_string(),
        },
    )
    .await?;
    crate::indicator::rollup::mark_dirty(&mut tx, &region).await?;
    tx.commit().await?;
    Ok(get(db, scope, id).await?.0)
}

/// A staff member of the demo county, written in bulk (`institution::demo`).
pub struct DemoStaff {
    pub org_id: String,
    pub name: String,
    pub role: &'static str,
    pub skill_level: Option<i64>,
    /// Certificate number, issued on, expires on.
    pub certificate: Option<(String, String, String)>,
    pub hired_on: String,
    pub now: String,
}

/// Write the demo county's staff in one transaction, many rows a statement.
pub async fn insert_demo(
    tx: &mut crate::platform::db::Tx<'_>,
    rows: Vec<DemoStaff>,
) -> anyhow::Result<()> {
    const NCOLS: usize = 12;
    let backend = tx.backend();
    for part in rows.chunks(2_000) {
        let sql = format!(
            "INSERT INTO staff (id, org_id, name, role, skill_level, certificate_no, certificate_on, \
             certificate_expires_on, hired_on, created_at, updated_at, version) VALUES {}",
            crate::registry::store::placeholders(backend, part.len(), NCOLS)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in part {
            let (no, on, until) = match &r.certificate {
                Some((a, b, c)) => (Some(a.clone()), Some(b.clone()), Some(c.clone())),
                None => (None, None, None),
            };
            q = q
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(r.org_id.clone())
                .bind(r.name.clone())
                .bind(r.role)
                .bind(r.skill_level)
                .bind(no)
                .bind(on)
                .bind(until)
                .bind(r.hired_on.clone())
                .bind(r.now.clone())
                .bind(r.now.clone())
                .bind(1i64);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

// ---- from a spreadsheet (人员花名册) -----------------------------------------------------------

/// The columns of a staff roll, by the names offices give them.
fn header_key(h: &str) -> Option<String> {
    let k = match h.trim().trim_end_matches(['*', '＊']) {
        "姓名" | "name" => "name",
        "岗位" | "职务" | "工种" | "role" => "role",
        "技能等级" | "护理员等级" | "职业技能等级" | "skill_level" => "skill_level",
        "证书编号" | "资格证书编号" | "certificate_no" => "certificate_no",
        "发证日期" | "取证日期" | "certificate_on" => "certificate_on",
        "证书有效期" | "证书有效期至" | "certificate_expires_on" => {
            "certificate_expires_on"
        }
        "入职日期" | "hired_on" => "hired_on",
        "离职日期" | "left_on" => "left_on",
        _ => return None,
    };
    Some(k.into())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffImport {
    pub total: usize,
    pub accepted: usize,
    pub rejected: Vec<super::import::RowProblem>,
    /// Added by this upload (0 for a dry run)
    pub created: usize,
    pub dry_run: bool,
    pub layout: crate::platform::sheet::LayoutView,
}

/// One organisation's staff from a spreadsheet: every row checked by the form's rules, refused
/// rows listed with their Excel row and reason, the others added in one transaction (each
/// audited). Someone already on the roll (the same name and certificate number, or the same
/// name and post when there is no certificate) is refused, so a repeated upload adds nothing.
#[allow(clippy::too_many_arguments)]
pub async fn import(
    db: &Db,
    scope: &Scope,
    who: &Who,
    org_id: &str,
    file_name: &str,
    bytes: Vec<u8>,
    dry_run: bool,
) -> ApiResult<StaffImport> {
    let region = org_region(db, scope, org_id).await?;
    let table = crate::platform::sheet::open_table(bytes, file_name, header_key)
        .map_err(|e| ApiError::invalid("file", e))?;
    let cols: Vec<Option<String>> = table.headers.iter().map(|h| header_key(h)).collect();
    for need in ["name", "role"] {
        if !cols.iter().any(|c| c.as_deref() == Some(need)) {
            return Err(ApiError::invalid(
                "file",
                "表头应有“姓名”“岗位”两列（可先下载模板）",
            ));
        }
    }
    let layout = table.layout.clone();
    // Who is on the roll already: by name and certificate, or name and post.
    let key = |v: &Valid| match &v.certificate_no {
        Some(c) => format!("{}|证|{c}", v.name),
        None => format!("{}|岗|{}", v.name, v.role),
    };
    let mut taken: std::collections::HashSet<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM staff WHERE org_id = $1"
    )))
    .bind(org_id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        let s = from_row(r);
        let v = Valid {
            name: s.name,
            role: role_code(&s.role).unwrap_or("other"),
            skill_level: None,
            certificate_no: s.certificate_no,
            certificate_on: None,
            certificate_expires_on: None,
            hired_on: s.hired_on,
            left_on: None,
        };
        key(&v)
    })
    .collect();
    let (mut ok, mut rejected, mut total): (Vec<Valid>, Vec<super::import::RowProblem>, usize) =
        (vec![], vec![], 0);
    for (i, row) in table.rows.enumerate() {
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        total += 1;
        if total > 2_000 {
            return Err(ApiError::invalid(
                "file",
                "一次最多导入 2000 名人员，请拆分文件",
            ));
        }
        let cell = |k: &str| -> Option<String> {
            cols.iter()
                .position(|c| c.as_deref() == Some(k))
                .and_then(|p| row.get(p))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let f = StaffFields {
            name: cell("name"),
            role: cell("role"),
            skill_level: cell("skill_level").map(serde_json::Value::String),
            certificate_no: cell("certificate_no"),
            certificate_on: cell("certificate_on"),
            certificate_expires_on: cell("certificate_expires_on"),
            hired_on: cell("hired_on"),
            left_on: cell("left_on"),
        };
        let checked = validate(None, f).map_err(|e| e.detail).and_then(|v| {
            if taken.insert(key(&v)) {
                Ok(v)
            } else {
                Err(format!(
                    "“{}”已在本机构登记（或在本文件中重复），请在系统中修改",
                    v.name
                ))
            }
        });
        match checked {
            Ok(v) => ok.push(v),
            Err(reason) => {
                let (row, reason) = layout.locate(i as i64 + 2, reason);
                rejected.push(super::import::RowProblem { row, reason });
            }
        }
    }
    let accepted = ok.len();
    let mut created = 0;
    if !dry_run && !ok.is_empty() {
        let mut tx = db.begin().await?;
        for v in &ok {
            insert(&mut tx, who, org_id, &region, v, Some("import")).await?;
            created += 1;
        }
        crate::indicator::rollup::mark_dirty(&mut tx, &region).await?;
        tx.commit().await?;
    }
    Ok(StaffImport {
        total,
        accepted,
        rejected,
        created,
        dry_run,
        layout: layout.view(),
    })
}

/// The staff roll template: the columns and two filled-in rows.
pub fn template() -> ApiResult<Vec<u8>> {
    let xl = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("人员花名册").map_err(xl)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let heads = [
        "姓名",
        "岗位",
        "技能等级",
        "证书编号",
        "发证日期",
        "证书有效期",
        "入职日期",
        "离职日期",
    ];
    let rows = [
        [
            "王秀兰",
            "养老护理员",
            "中级",
            "3206822019000123",
            "2019-06-01",
            "2027-05-31",
            "2019-07-01",
            "",
        ],
        ["张建国", "社会工作者", "", "", "", "", "2021-03-15", ""],
    ];
    for (i, h) in heads.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, *h, &bold)
            .map_err(xl)?;
        ws.set_column_width(i as u16, 16).map_err(xl)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (i, v) in row.iter().enumerate() {
            ws.write_string(r as u32 + 1, i as u16, *v).map_err(xl)?;
        }
    }
    wb.save_to_buffer()
        .map_err(|e| ApiError::internal(anyhow::Error::from(e)))
}

//! Organisations from a spreadsheet (机构名册), as an officer keeps them: one row a home, a centre
//! or a provider, the columns named in Chinese (机构名称, 机构类型, 性质, 所在地 …), the place as a
//! region code or the unique name of a town or village in the caller's area. Every row is
//! checked first by the same rules as the form; refused rows are listed with the reason; the
//! others are written in one transaction. A name already registered at the same place is refused
//! (edit it in the console instead). A dry run writes nothing.

use super::{OrgFields, Valid, insert, validate};
use crate::audit::Who;
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashSet;

/// The columns, by the names offices give them.
fn header_key(h: &str) -> Option<String> {
    let k = match h.trim().trim_end_matches(['*', '＊']) {
        "机构名称" | "名称" | "name" => "name",
        "机构类型" | "类型" | "kind" => "kind",
        "性质" | "举办性质" | "所有制" | "ownership" => "ownership",
        "运营方" | "运营机构" | "operator" => "operator",
        "备案号" | "备案编号" | "filing_no" => "filing_no",
        "备案日期" | "filed_on" => "filed_on",
        "等级" | "星级" | "grade" => "grade",
        "等级有效期" | "等级有效期至" | "grade_expires_on" => "grade_expires_on",
        "所在地" | "所在地代码" | "区划代码" | "所在镇（街道）" | "region_code" => {
            "region_code"
        }
        "地址" | "详细地址" | "address" => "address",
        "经度" | "lon" => "lon",
        "纬度" | "lat" => "lat",
        "建筑面积" | "建筑面积（平方米）" | "floor_area" => "floor_area",
        "电话" | "联系电话" | "phone" => "phone",
        "月收费下限" | "月收费最低" | "price_min" => "price_min",
        "月收费上限" | "月收费最高" | "price_max" => "price_max",
        "开户银行" | "开户行" | "bank_name" => "bank_name",
        "户名" | "账户名称" | "bank_account_name" => "bank_account_name",
        "银行账号" | "账号" | "收款账号" | "bank_account" => "bank_account",
        _ => return None,
    };
    Some(k.into())
}

pub use crate::platform::sheet::RowProblem;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgImport {
    pub total: usize,
    pub accepted: usize,
    pub rejected: Vec<RowProblem>,
    /// Registered by this upload (0 for a dry run)
    pub created: usize,
    pub dry_run: bool,
    /// The sheets read and the rows passed over (totals, signatures, notes)
    pub layout: crate::platform::sheet::LayoutView,
}

/// 一级…五级, 1–5, "三星" …
fn grade(v: &str) -> Result<Option<i64>, String> {
    let v = v.trim().trim_end_matches(['级', '星']).trim();
    if v.is_empty() || v == "未评定" || v == "无" {
        return Ok(None);
    }
    let n = match v {
        "一" | "1" => 1,
        "二" | "2" => 2,
        "三" | "3" => 3,
        "四" | "4" => 4,
        "五" | "5" => 5,
        _ => return Err("等级应为一级至五级（或 1–5），未评定的留空".into()),
    };
    Ok(Some(n))
}

/// A number cell ("3500", "3,500", "3500元"), or an error naming the column.
fn number<T: std::str::FromStr>(label: &str, v: &str) -> Result<Option<T>, String> {
    let v = v.trim().trim_end_matches('元').replace([',', '，'], "");
    if v.is_empty() {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| format!("{label}应为数字"))
}

/// The place: a 12-digit code, or the name of exactly one town or village in the caller's area.
fn place(
    v: &str,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
) -> Result<Option<String>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Some(v.to_string()));
    }
    let found = regions.find_by_name(v, |code| scope.contains(code));
    match found.len() {
        1 => Ok(Some(found[0].clone())),
        0 => Err(format!(
            "所在地“{}”既不是 12 位区划代码，也不是您辖区内镇（街道）或村（社区）的名称",
            v.chars().take(20).collect::<String>()
        )),
        _ => Err(format!("所在地“{v}”有重名，请填写 12 位区划代码")),
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn import(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    who: &Who,
    file_name: &str,
    bytes: Vec<u8>,
    dry_run: bool,
) -> ApiResult<OrgImport> {
    let table = crate::registry::import::open_table(bytes, file_name, header_key)
        .map_err(|e| ApiError::invalid("file", e.to_string()))?;
    let cols: Vec<Option<String>> = table.headers.iter().map(|h| header_key(h)).collect();
    for need in ["name", "kind", "ownership", "region_code"] {
        if !cols.iter().any(|c| c.as_deref() == Some(need)) {
            return Err(ApiError::invalid(
                "file",
                "表头应有“机构名称”“机构类型”“性质”“所在地”四列（可先下载模板）",
            ));
        }
    }
    let layout = table.layout.clone();
    let mut taken: HashSet<(String, String)> =
        sqlx::query("SELECT name, region_code FROM organisation")
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    let (mut ok, mut rejected, mut total): (Vec<Valid>, Vec<RowProblem>, usize) =
        (vec![], vec![], 0);
    for (i, row) in table.rows.enumerate() {
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        total += 1;
        if total > 5_000 {
            return Err(ApiError::invalid(
                "file",
                "一次最多导入 5000 家机构，请拆分文件",
            ));
        }
        let cell = |k: &str| -> String {
            cols.iter()
                .position(|c| c.as_deref() == Some(k))
                .and_then(|p| row.get(p))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let opt = |k: &str| Some(cell(k)).filter(|s| !s.is_empty());
        let checked: Result<Valid, String> = (|| {
            let f = OrgFields {
                kind: opt("kind"),
                name: opt("name"),
                ownership: opt("ownership"),
                operator: opt("operator"),
                filing_no: opt("filing_no"),
                filed_on: opt("filed_on"),
                grade: grade(&cell("grade"))?,
                grade_expires_on: opt("grade_expires_on"),
                region_code: place(&cell("region_code"), scope, regions)?,
                address: opt("address"),
                lon: number("经度", &cell("lon"))?,
                lat: number("纬度", &cell("lat"))?,
                floor_area: number("建筑面积", &cell("floor_area"))?,
                phone: opt("phone"),
                price_min: number("月收费下限", &cell("price_min"))?,
                price_max: number("月收费上限", &cell("price_max"))?,
                bank_name: opt("bank_name"),
                bank_account_name: opt("bank_account_name"),
                bank_account: opt("bank_account"),
                status: None,
            };
            validate(None, f, scope, regions).map_err(|e| e.detail)
        })();
        let checked = checked.and_then(|v| {
            if taken.insert((v.name.clone(), v.region_code.clone())) {
                Ok(v)
            } else {
                Err(format!(
                    "“{}”已在该地登记（或在本文件中重复），请在系统中修改",
                    v.name
                ))
            }
        });
        match checked {
            Ok(v) => ok.push(v),
            Err(reason) => {
                let (row, reason) = layout.locate(i as i64 + 2, reason);
                rejected.push(RowProblem { row, reason });
            }
        }
    }
    let accepted = ok.len();
    let mut created = 0;
    if !dry_run && !ok.is_empty() {
        let mut tx = db.begin().await?;
        for v in &ok {
            insert(&mut tx, who, v).await?;
            created += 1;
        }
        tx.commit().await?;
    }
    Ok(OrgImport {
        total,
        accepted,
        rejected,
        created,
        dry_run,
        layout: layout.view(),
    })
}

/// The template: the columns and one filled-in row.
pub fn template() -> ApiResult<Vec<u8>> {
    let xl = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("机构名册").map_err(xl)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let heads = [
        "机构名称",
        "机构类型",
        "性质",
        "所在地",
        "运营方",
        "备案号",
        "备案日期",
        "等级",
        "等级有效期",
        "地址",
        "电话",
        "建筑面积",
        "月收费下限",
        "月收费上限",
        "开户银行",
        "户名",
        "银行账号",
    ];
    let example = [
        "东陈镇敬老院",
        "农村敬老院",
        "公办",
        "东陈镇",
        "",
        "苏民养备2019001",
        "2019-06-01",
        "二级",
        "2027-06-30",
        "东陈镇人民路18号",
        "0513-87000001",
        "3200",
        "1200",
        "1800",
        "如皋农村商业银行东陈支行",
        "如皋市东陈镇敬老院",
        "3206820100012345678",
    ];
    for (i, (h, e)) in heads.iter().zip(example).enumerate() {
        ws.write_string_with_format(0, i as u16, *h, &bold)
            .map_err(xl)?;
        ws.write_string(1, i as u16, e).map_err(xl)?;
        ws.set_column_width(i as u16, 16).map_err(xl)?;
    }
    wb.save_to_buffer()
        .map_err(|e| ApiError::internal(anyhow::Error::from(e)))
}

/// The list's filters, without its pages (the whole list goes out).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Region subtree (default: the caller's)
    pub region_code: Option<String>,
    pub kind: Option<String>,
    pub ownership: Option<String>,
    /// Part of the name
    pub q: Option<String>,
}

/// The organisations of the caller's area (or a part of it, filtered as the list is) as the
/// spreadsheet the import reads: the same columns, so a county can correct it in Excel and load
/// it back (rows already registered are refused by name and place, and listed). Audited.
pub async fn export(
    db: &Db,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    who: &Who,
    q: &ExportQuery,
) -> ApiResult<Vec<u8>> {
    let mut all = vec![];
    for page in 1..=100u32 {
        let q = super::OrgQuery {
            region_code: q.region_code.clone(),
            kind: q.kind.clone(),
            ownership: q.ownership.clone(),
            q: q.q.clone(),
            page: Some(page),
            page_size: Some(200),
        };
        let p = super::list(db, scope, regions, &q).await?;
        let done = p.items.len() < 200;
        all.extend(p.items);
        if done {
            break;
        }
    }
    let xl = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("机构名册").map_err(xl)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let heads = [
        "机构名称",
        "机构类型",
        "性质",
        "所在地",
        "所在地名称",
        "运营方",
        "备案号",
        "备案日期",
        "等级",
        "等级有效期",
        "地址",
        "电话",
        "建筑面积",
        "月收费下限",
        "月收费上限",
        "经度",
        "纬度",
        "开户银行",
        "户名",
        "银行账号",
        "状态",
    ];
    for (i, h) in heads.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, *h, &bold)
            .map_err(xl)?;
        ws.set_column_width(i as u16, if i == 0 || i == 4 { 28 } else { 14 })
            .map_err(xl)?;
    }
    const GRADES: [&str; 5] = ["一级", "二级", "三级", "四级", "五级"];
    for (n, o) in all.iter().enumerate() {
        let row = (n + 1) as u32;
        let num = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
        let flt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let cells = [
            o.name.clone(),
            o.kind_name.clone(),
            o.ownership_name.clone(),
            o.region_code.clone(),
            o.region_name.clone(),
            o.operator.clone().unwrap_or_default(),
            o.filing_no.clone().unwrap_or_default(),
            o.filed_on.clone().unwrap_or_default(),
            o.grade
                .and_then(|g| GRADES.get((g - 1) as usize))
                .map(|s| s.to_string())
                .unwrap_or_default(),
            o.grade_expires_on.clone().unwrap_or_default(),
            o.address.clone().unwrap_or_default(),
            o.phone.clone().unwrap_or_default(),
            num(o.floor_area),
            num(o.price_min),
            num(o.price_max),
            flt(o.lon),
            flt(o.lat),
            o.bank_name.clone().unwrap_or_default(),
            o.bank_account_name.clone().unwrap_or_default(),
            o.bank_account.clone().unwrap_or_default(),
            if o.status == "closed" {
                "停业"
            } else {
                "运营"
            }
            .to_string(),
        ];
        for (i, c) in cells.iter().enumerate() {
            // Text, so codes and account numbers keep every digit.
            ws.write_string(row, i as u16, c).map_err(xl)?;
        }
    }
    let bytes = wb.save_to_buffer().map_err(xl)?;
    let mut tx = db.begin().await?;
    crate::audit::append(
        &mut tx,
        who,
        crate::audit::Entry {
            action: "org.export",
            entity: "organisation",
            entity_id: None,
            region_code: scope.root.as_ref().map(|r| r.as_str()),
            detail: serde_json::json!({"rows": all.len()}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(bytes)
}

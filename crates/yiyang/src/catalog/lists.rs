//! Named lists of people (名单) — e.g. 重点帮扶对象 kept by a town — that eligibility rules test with
//! `名单 包含 …`. Membership changes are audited; a rule may only name a list that exists.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListView {
    pub name: String,
    pub region_code: String,
    pub description: Option<String>,
    /// Members living in the caller's scope.
    pub members: i64,
}

pub async fn all(db: &Db, scope: &Scope) -> ApiResult<Vec<ListView>> {
    let rows = sqlx::query(
        "SELECT l.name, l.region_code, l.description, \
         (SELECT COUNT(*) FROM elder_list_member m JOIN elder e ON e.id = m.elder_id \
          WHERE m.list_name = l.name AND e.residence_region BETWEEN $1 AND $2) FROM elder_list l ORDER BY l.name",
    )
    .bind(&scope.lo)
    .bind(&scope.hi)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| ListView {
            name: r.get(0),
            region_code: r.get(1),
            description: r.get(2),
            members: r.get(3),
        })
        .collect())
}

/// The names a rule may use that do not exist (empty: all fine).
pub async fn missing(db: &Db, names: &[String]) -> ApiResult<Vec<String>> {
    let mut out = vec![];
    for n in names {
        let found = sqlx::query("SELECT 1 FROM elder_list WHERE name = $1")
            .bind(n)
            .fetch_optional(&db.pool)
            .await?;
        if found.is_none() {
            out.push(n.clone());
        }
    }
    Ok(out)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewList {
    pub name: String,
    pub region_code: String,
    #[serde(default)]
    pub description: Option<String>,
}

pub async fn create(db: &Db, scope: &Scope, who: &Who, l: NewList) -> ApiResult<ListView> {
    let name = l.name.trim().to_string();
    if name.is_empty()
        || name.chars().count() > 30
        || name.contains(['[', ']', ',', '，', '"', '\'', '“', '”'])
    {
        return Err(ApiError::invalid(
            "name",
            "名单名称应为 1–30 个字，不含括号、逗号和引号",
        ));
    }
    let rc = yiyang_kernel::RegionCode::parse(&l.region_code)
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    if !scope.covers(&rc) {
        return Err(ApiError::forbidden("该区划不在您的管辖范围内"));
    }
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO elder_list (name, region_code, description, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&name)
        .bind(rc.as_str())
        .bind(&l.description)
        .bind(&who.actor_name)
        .bind(crate::platform::now_rfc3339())
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => ApiError::conflict(format!("名单“{name}”已存在")),
            _ => e.into(),
        })?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "list.create",
            entity: "elder_list",
            entity_id: Some(&name),
            region_code: Some(rc.as_str()),
            detail: "{}".into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ListView {
        name,
        region_code: rc.as_str().to_string(),
        description: l.description,
        members: 0,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersReq {
    pub elder_ids: Vec<String>,
    /// true: take these people off the list
    #[serde(default)]
    pub remove: bool,
}

/// Put people on a list or take them off (each must live in the caller's scope; all or nothing).
pub async fn members(
    db: &Db,
    scope: &Scope,
    who: &Who,
    name: &str,
    r: MembersReq,
) -> ApiResult<i64> {
    if r.elder_ids.is_empty() || r.elder_ids.len() > 10_000 {
        return Err(ApiError::invalid(
            "elder_ids",
            "一次可加入或移出 1–10000 人",
        ));
    }
    let mut tx = db.begin().await?;
    let region: String = sqlx::query("SELECT region_code FROM elder_list WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| ApiError::not_found("名单不存在"))?;
    // A list belongs to its region: only those over it change who is on it.
    let owner = yiyang_kernel::RegionCode::parse(&region)
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    if !scope.covers(&owner) {
        return Err(ApiError::forbidden("该名单属于上级或其他地区，您不能修改"));
    }
    let now = crate::platform::now_rfc3339();
    let mut changed = 0;
    for id in &r.elder_ids {
        let inside = sqlx::query("SELECT residence_region FROM elder WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some_and(|row| scope.contains(&row.get::<String, _>(0)));
        if !inside {
            return Err(ApiError::invalid(
                "elder_ids",
                format!("未找到老年人 {id}（或不在您的管辖范围内）"),
            ));
        }
        let q = if r.remove {
            sqlx::query("DELETE FROM elder_list_member WHERE list_name = $1 AND elder_id = $2")
                .bind(name)
                .bind(id)
        } else {
            sqlx::query(
                "INSERT INTO elder_list_member (list_name, elder_id, added_by, added_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (list_name, elder_id) DO NOTHING",
            )
            .bind(name)
            .bind(id)
            .bind(&who.actor_name)
            .bind(&now)
        };
        changed += q.execute(&mut *tx).await?.rows_affected() as i64;
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: if r.remove { "list.remove" } else { "list.add" },
            entity: "elder_list",
            entity_id: Some(name),
            region_code: Some(&region),
            detail: serde_json::json!({"elder_ids": r.elder_ids, "changed": changed}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(changed)
}

pub use crate::platform::sheet::RowProblem;

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberImport {
    pub total: usize,
    pub accepted: usize,
    pub rejected: Vec<RowProblem>,
    /// Put on the list by this upload (0 for a dry run; people already on it are not counted).
    pub added: i64,
    pub dry_run: bool,
    /// The sheets read and the rows passed over (totals, signatures, notes).
    pub layout: crate::platform::sheet::LayoutView,
}

/// The member list's columns: the ID, and the name that sits beside it in an office's list.
fn member_header_key(h: &str) -> Option<String> {
    match h.trim() {
        "身份证号" | "身份证号码" | "公民身份号码" | "citizen_id" => {
            Some("citizen_id".into())
        }
        "姓名" | "name" => Some("name".into()),
        _ => None,
    }
}

/// Put the people of a file (CSV or XLSX with a 身份证号 / citizen_id column) on a list: every row
/// checked first (a valid ID, a registered person in the caller's scope), refused rows listed with
/// their reason, the others added in one transaction. A dry run adds nothing.
#[allow(clippy::too_many_arguments)]
pub async fn import_members(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    scope: &Scope,
    who: &Who,
    name: &str,
    file_name: &str,
    bytes: Vec<u8>,
    dry_run: bool,
) -> ApiResult<MemberImport> {
    let table = crate::registry::import::open_table(bytes, file_name, member_header_key)
        .map_err(|e| ApiError::invalid("file", e.to_string()))?;
    let col = table
        .headers
        .iter()
        .position(|h| member_header_key(h).as_deref() == Some("citizen_id"))
        .ok_or_else(|| ApiError::invalid("file", "表头应有“身份证号”列"))?;
    let today = crate::platform::today();
    let layout = table.layout.clone();
    let (mut ids, mut rejected, mut total) = (vec![], vec![], 0);
    for (i, row) in table.rows.enumerate() {
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        total += 1;
        let raw = row
            .get(col)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let cid = match yiyang_kernel::CitizenId::parse(&raw, today) {
            Ok(c) => c,
            Err(e) => {
                let (row, reason) = layout.locate(i as i64 + 2, format!("身份证号无效：{e}"));
                rejected.push(RowProblem { row, reason });
                continue;
            }
        };
        let bidx = keys.blind_index(crate::registry::store::CID_DOMAIN, cid.as_str());
        let found =
            sqlx::query("SELECT id, residence_region FROM elder WHERE citizen_id_bidx = $1")
                .bind(&bidx)
                .fetch_optional(&db.pool)
                .await?
                .filter(|r| scope.contains(&r.get::<String, _>(1)));
        match found {
            Some(r) => ids.push(r.get::<String, _>(0)),
            // One message for "unknown" and "elsewhere": nobody probes who is registered outside.
            None => {
                let (row, reason) = layout.locate(
                    i as i64 + 2,
                    "未找到该身份证号的老年人（或不在您的管辖范围内）".into(),
                );
                rejected.push(RowProblem { row, reason })
            }
        }
    }
    ids.sort();
    ids.dedup();
    let accepted = total - rejected.len();
    let added = if dry_run || ids.is_empty() {
        0
    } else {
        members(
            db,
            scope,
            who,
            name,
            MembersReq {
                elder_ids: ids,
                remove: false,
            },
        )
        .await?
    };
    Ok(MemberImport {
        total,
        accepted,
        rejected,
        added,
        dry_run,
        layout: layout.view(),
    })
}

//! An account's life after it is created: disabled and enabled again, unlocked, its password reset
//! (to be changed at the next login) or changed by its owner, its roles and scope changed. The rules
//! are the same for the console and the command line: every change is audited with its reason, a
//! disabled or reset account's sessions end at once, and a security administrator can neither change
//! their own roles nor another security administrator's, nor make anyone one (三员分立: that is for
//! the command line on the server).

use super::http::UserRow;
use super::{Role, Scopes, password, session};
use crate::audit::{self, Entry, Who};
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use serde::Deserialize;
use sqlx::Row;
use yiyang_kernel::RegionCode;

pub const MIGRATION: &[crate::platform::migrations::Stmt] = &[
    crate::platform::migrations::Stmt::Both(
        "ALTER TABLE app_user ADD COLUMN must_change_password BIGINT NOT NULL DEFAULT 0",
    ),
    // The last TOTP time step accepted: a code is taken once.
    crate::platform::migrations::Stmt::Both(
        "ALTER TABLE app_user ADD COLUMN totp_last_step BIGINT",
    ),
    // 'Zhang' and 'zhang' are one name to the people who read them.
    crate::platform::migrations::Stmt::Both(
        "CREATE UNIQUE INDEX app_user_username_ci ON app_user (lower(username))",
    ),
];

/// Who is changing an account: `None` for the command line on the server (no region bound, no
/// separation rule to apply: whoever runs it runs the server).
pub struct Admin<'a> {
    pub who: Who,
    pub user_id: Option<&'a str>,
    pub region: Option<&'a RegionCode>,
}

/// A change's reason: required, in words.
fn reason(r: &str) -> ApiResult<String> {
    let r = r.trim();
    if r.chars().count() < 2 {
        return Err(ApiError::invalid("reason", "请填写操作事由"));
    }
    if r.chars().count() > 200 {
        return Err(ApiError::invalid("reason", "操作事由不能超过 200 个字"));
    }
    Ok(r.to_string())
}

/// The target account (id, username, roles, region), inside the admin's region.
async fn target(
    db: &Db,
    admin: &Admin<'_>,
    user_id: &str,
) -> ApiResult<(String, String, Vec<Role>, String)> {
    let r = sqlx::query("SELECT id, username, roles, region_code FROM app_user WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("没有这个账号"))?;
    let region: String = r.get(3);
    if let Some(within) = admin.region {
        let inside = RegionCode::parse(&region).is_ok_and(|rc| within.contains(&rc));
        if !inside {
            return Err(ApiError::not_found("没有这个账号"));
        }
    }
    Ok((
        r.get(0),
        r.get(1),
        session::parse_roles(&r.get::<String, _>(2)),
        region,
    ))
}

/// The account by username (the command line's way to name it).
pub async fn id_of(db: &Db, username: &str) -> ApiResult<String> {
    sqlx::query("SELECT id FROM app_user WHERE lower(username) = lower($1)")
        .bind(username.trim())
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| ApiError::not_found(format!("没有用户名为 {} 的账号", username.trim())))
}

/// End every session of an account (a disabled or reset account is out at once).
async fn end_sessions(tx: &mut crate::platform::db::Tx<'_>, user_id: &str) -> ApiResult<()> {
    sqlx::query("DELETE FROM user_session WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Disable,
    Enable,
    Unlock,
}

/// Disable, enable or unlock an account, with a reason.
pub async fn set_state(
    db: &Db,
    admin: &Admin<'_>,
    user_id: &str,
    action: Action,
    why: &str,
) -> ApiResult<()> {
    let why = reason(why)?;
    let (id, username, _, region) = target(db, admin, user_id).await?;
    if action == Action::Disable && admin.user_id == Some(id.as_str()) {
        return Err(ApiError::forbidden("不能停用自己的账号"));
    }
    let (sql, name) = match action {
        Action::Disable => (
            "UPDATE app_user SET disabled = 1 WHERE id = $1",
            "user.disable",
        ),
        Action::Enable => (
            "UPDATE app_user SET disabled = 0 WHERE id = $1",
            "user.enable",
        ),
        Action::Unlock => (
            "UPDATE app_user SET locked_until = NULL, failed_count = 0 WHERE id = $1",
            "user.unlock",
        ),
    };
    let mut tx = db.begin().await?;
    sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
    if action == Action::Disable {
        end_sessions(&mut tx, &id).await?;
    }
    audit::append(
        &mut tx,
        &admin.who,
        Entry {
            action: name,
            entity: "user",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail: serde_json::json!({"username": username, "reason": why}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Set a new password the owner must change at the next login; their sessions end. `new`: the
/// password given on the command line; none: a random one, returned to be handed over once.
pub async fn reset_password(
    db: &Db,
    admin: &Admin<'_>,
    user_id: &str,
    new: Option<String>,
    why: &str,
) -> ApiResult<String> {
    let why = reason(why)?;
    let (id, username, _, region) = target(db, admin, user_id).await?;
    let pw = match new {
        Some(p) => {
            password::check_policy(&p, &username).map_err(|m| ApiError::invalid("password", m))?;
            p
        }
        None => password::temporary(),
    };
    let hash = password::hash_async(pw.clone()).await;
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE app_user SET password_hash = $1, must_change_password = 1, failed_count = 0, locked_until = NULL WHERE id = $2")
        .bind(hash)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    end_sessions(&mut tx, &id).await?;
    audit::append(
        &mut tx,
        &admin.who,
        Entry {
            action: "user.reset_password",
            entity: "user",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail: serde_json::json!({"username": username, "reason": why}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(pw)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AccessChange {
    pub roles: Vec<String>,
    pub region_code: String,
    pub scopes: Scopes,
    /// 所属机构：机构负责人、服务商调度员、护理员账号必填，其他角色不填
    #[serde(default)]
    pub org_id: Option<String>,
    /// 对应的机构人员：护理员账号必填
    #[serde(default)]
    pub staff_id: Option<String>,
    /// 操作事由
    pub reason: String,
}

/// Change an account's roles, region and scopes.
pub async fn change_access(
    db: &Db,
    admin: &Admin<'_>,
    user_id: &str,
    c: &AccessChange,
) -> ApiResult<()> {
    let why = reason(&c.reason)?;
    let (id, username, old_roles, old_region) = target(db, admin, user_id).await?;
    let roles = super::http::parse_role_list(&c.roles)?;
    if admin.user_id.is_some() {
        if admin.user_id == Some(id.as_str()) {
            return Err(ApiError::forbidden("不能修改自己的角色和权限范围"));
        }
        if old_roles.contains(&Role::SecurityAdmin) {
            return Err(ApiError::forbidden(
                "不能修改另一位安全管理员的角色和权限范围",
            ));
        }
        if roles.contains(&Role::SecurityAdmin) {
            return Err(ApiError::forbidden(
                "安全管理员账号只能在服务器上用命令行创建（三员分立）",
            ));
        }
    }
    let region = RegionCode::parse(&c.region_code)
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    if let Some(w) = admin.region
        && !w.contains(&region)
    {
        return Err(ApiError::forbidden("只能授予本人管辖区划内的范围"));
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let mut tx = db.begin().await?;
    let (org_id, staff_id) = super::http::org_binding(
        &mut tx,
        &roles,
        c.org_id.as_deref(),
        c.staff_id.as_deref(),
        &region,
        Some(&id),
    )
    .await?;
    sqlx::query("UPDATE app_user SET roles = $1, region_code = $2, scope_edit = $3, scope_aggregates = $4, scope_individuals = $5, org_id = $6, staff_id = $8 WHERE id = $7")
        .bind(names.join(","))
        .bind(region.as_str())
        .bind(c.scopes.edit as i64)
        .bind(c.scopes.aggregates as i64)
        .bind(c.scopes.individuals as i64)
        .bind(&org_id)
        .bind(&id)
        .bind(&staff_id)
        .execute(&mut *tx)
        .await?;
    let old: Vec<&str> = old_roles.iter().map(|r| r.as_str()).collect();
    audit::append(
        &mut tx,
        &admin.who,
        Entry {
            action: "user.access",
            entity: "user",
            entity_id: Some(&id),
            region_code: Some(region.as_str()),
            detail: serde_json::json!({
                "username": username, "reason": why,
                "roles": {"from": old, "to": names},
                "region_code": {"from": old_region, "to": region.as_str()},
                "scopes": c.scopes,
                "org_id": org_id,
                "staff_id": staff_id,
            })
            .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The owner changes their own password: the current one is required; their other sessions end.
pub async fn change_own(
    db: &Db,
    who: &Who,
    user_id: &str,
    keep_session: &str,
    current: &str,
    new: &str,
) -> ApiResult<()> {
    let r = sqlx::query("SELECT username, password_hash FROM app_user WHERE id = $1")
        .bind(user_id)
        .fetch_one(&db.pool)
        .await?;
    let username: String = r.get(0);
    if !password::verify_async(current.to_string(), r.get(1)).await {
        return Err(ApiError::invalid("current_password", "当前密码不正确"));
    }
    if new == current {
        return Err(ApiError::invalid(
            "new_password",
            "新密码不能与当前密码相同",
        ));
    }
    password::check_policy(new, &username).map_err(|m| ApiError::invalid("new_password", m))?;
    let hash = password::hash_async(new.to_string()).await;
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE app_user SET password_hash = $1, must_change_password = 0 WHERE id = $2")
        .bind(hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM user_session WHERE user_id = $1 AND token_hash <> $2")
        .bind(user_id)
        .bind(keep_session)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "user.change_password",
            entity: "user",
            entity_id: Some(user_id),
            region_code: None,
            detail: "{}".into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One account as the user list shows it.
pub async fn row(db: &Db, user_id: &str) -> ApiResult<UserRow> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM app_user WHERE id = $1",
        super::http::USER_ROW_COLS
    )))
    .bind(user_id)
    .fetch_one(&db.pool)
    .await?;
    Ok(super::http::user_row(&r))
}

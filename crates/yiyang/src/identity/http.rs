use super::session::{self, Actor, clear_cookie, cookie_token, set_cookie};
use super::{Perm, Role, Scopes, password, totp};
use crate::app::AppState;
use crate::audit::{self, Entry, Who};
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::now_secs;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::net::SocketAddr;

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<crate::app::AppState> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/auth/login", post(login))
        .route("/auth/totp", post(login_totp))
        .route("/auth/logout", post(logout))
        .route("/me", get(me))
        .route("/me/totp/setup", post(totp_setup))
        .route("/me/totp/confirm", post(totp_confirm))
        .route("/me/password", post(change_password))
        .route("/users", get(list_users).post(create_user))
        .route("/users/caregivers", get(caregivers_of))
        .route("/users/{id}/{action}", post(set_user_state))
        .route("/users/{id}/reset-password", post(reset_user_password))
        .route("/users/{id}/access", put(change_user_access))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginReq {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub region_code: String,
    pub region_name: String,
    pub scopes: Scopes,
    pub permissions: Vec<String>,
    pub totp_enabled: bool,
    /// A new or reset account: the password must be changed before anything else.
    pub must_change_password: bool,
    pub profile: String,
    /// The organisation a bound account works for: its id and name.
    pub org_id: Option<String>,
    pub org_name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResp {
    /// `done`, `totp` (enter a code) or `totp_enrol` (set up the authenticator, then enter a code)
    pub next: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub me: Option<Me>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otpauth_url: Option<String>,
}

const BAD_LOGIN: &str = "用户名或密码错误，或账号已被临时锁定";

/// The peer address when served over TCP (absent in in-process tests).
pub struct ClientIp(pub Option<String>);

/// The client's address: the peer's, or, when the peer is a trusted reverse proxy
/// (`--trusted-proxy`), the nearest address in `X-Forwarded-For` that is not one of them. The login
/// throttle and the public pages' limit count by it, so behind a proxy they see real clients.
impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(
            client_ip(peer, &parts.headers, &app.config.trusted_proxies).map(|ip| ip.to_string()),
        ))
    }
}

/// See [`ClientIp`]. Addresses a client wrote itself (left of the last trusted hop) are not believed.
pub fn client_ip(
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let hops: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(
        hops.iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .copied()
            .unwrap_or(peer),
    )
}

pub async fn me_of(app: &AppState, a: &Actor) -> Me {
    let idx = app.regions.read().await;
    let mut perms: Vec<String> = a
        .roles
        .iter()
        .flat_map(|r| r.perms())
        .map(|p| p.as_str().to_string())
        .collect();
    perms.sort();
    perms.dedup();
    let org_name = match &a.org_id {
        Some(id) => sqlx::query_scalar("SELECT name FROM organisation WHERE id = $1")
            .bind(id)
            .fetch_optional(&app.db.pool)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    Me {
        id: a.user_id.clone(),
        username: a.username.clone(),
        display_name: a.display_name.clone(),
        roles: a.roles.clone(),
        region_code: a.region.to_string(),
        region_name: idx.path_name(a.region.as_str()),
        scopes: a.scopes,
        permissions: perms,
        totp_enabled: a.totp_enabled,
        must_change_password: a.must_change_password,
        profile: app.config.profile.clone(),
        org_id: a.org_id.clone(),
        org_name,
    }
}

async fn audit_auth(
    app: &AppState,
    user_id: Option<String>,
    username: &str,
    action: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    let mut tx = app.db.begin().await?;
    audit::append(
        &mut tx,
        &Who {
            actor_id: user_id.clone(),
            actor_name: username.to_string(),
        },
        Entry {
            action,
            entity: "user",
            entity_id: user_id.as_deref(),
            region_code: None,
            detail: detail.to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The answer to a completed login: who is logged in, and the session cookie.
async fn logged_in(app: &AppState, user_id: &str, token: &str) -> ApiResult<Response> {
    let actor = session::load_actor(app, user_id, String::new())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let body = LoginResp {
        next: "done".into(),
        me: Some(me_of(app, &actor).await),
        secret: None,
        otpauth_url: None,
    };
    Ok(with_cookie(
        Json(body).into_response(),
        set_cookie(token, app.config.secure_cookies),
    ))
}

fn with_cookie(mut resp: Response, cookie: String) -> Response {
    resp.headers_mut()
        .append(header::SET_COOKIE, cookie.parse().expect("cookie"));
    resp
}

async fn register_failure(app: &AppState, user_id: &str, username: &str) -> ApiResult<()> {
    let now = now_secs();
    let r = sqlx::query(
        "UPDATE app_user SET failed_count = failed_count + 1 WHERE id = $1 RETURNING failed_count",
    )
    .bind(user_id)
    .fetch_one(&mut *app.db.writer().await?)
    .await?;
    let n: i64 = r.get(0);
    if n >= app.config.lockout_failures {
        sqlx::query("UPDATE app_user SET failed_count = 0, locked_until = $1 WHERE id = $2")
            .bind(now + app.config.lockout_secs)
            .bind(user_id)
            .execute(&mut *app.db.writer().await?)
            .await?;
        audit_auth(
            app,
            Some(user_id.into()),
            username,
            "auth.locked",
            serde_json::json!({"failures": n}),
        )
        .await?;
    } else {
        audit_auth(
            app,
            Some(user_id.into()),
            username,
            "auth.login_failed",
            serde_json::json!({"failures": n}),
        )
        .await?;
    }
    Ok(())
}

/// Password step of the login. Unknown users, wrong passwords and locked accounts get the same answer.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "identity", request_body = LoginReq,
    responses((status = 200, body = LoginResp), (status = 401, body = crate::platform::error::Problem), (status = 429, body = crate::platform::error::Problem)))]
pub async fn login(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginReq>,
) -> ApiResult<Response> {
    if !app.login_throttle.allow(ip.as_deref().unwrap_or("-")) {
        return Err(ApiError::too_many("登录尝试过于频繁，请一分钟后再试"));
    }
    let username = req.username.trim().to_string();
    let row = sqlx::query("SELECT id, password_hash, locked_until, totp_enabled, disabled FROM app_user WHERE lower(username) = lower($1)")
        .bind(&username)
        .fetch_optional(&app.db.pool)
        .await?;
    let Some(row) = row else {
        password::verify_async(req.password, password::dummy_hash().to_string()).await;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            BAD_LOGIN,
        ));
    };
    let user_id: String = row.get(0);
    let phc: String = row.get(1);
    let locked_until: Option<i64> = row.get(2);
    let totp_enabled = row.get::<i64, _>(3) != 0;
    let disabled = row.get::<i64, _>(4) != 0;
    let ok = password::verify_async(req.password, phc).await;
    if locked_until.is_some_and(|t| t > now_secs()) || disabled {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            BAD_LOGIN,
        ));
    }
    if !ok {
        register_failure(&app, &user_id, &username).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            BAD_LOGIN,
        ));
    }
    sqlx::query("UPDATE app_user SET failed_count = 0, locked_until = NULL WHERE id = $1")
        .bind(&user_id)
        .execute(&mut *app.db.writer().await?)
        .await?;
    let secure = app.config.secure_cookies;
    if totp_enabled {
        let token = session::create(&app, &user_id, "totp", ip, None).await?;
        let body = LoginResp {
            next: "totp".into(),
            me: None,
            secret: None,
            otpauth_url: None,
        };
        return Ok(with_cookie(
            Json(body).into_response(),
            set_cookie(&token, secure),
        ));
    }
    if app.config.totp_required() {
        let secret = totp::new_secret();
        let enc = app.keys.encrypt(&secret);
        let token = session::create(&app, &user_id, "totp_enrol", ip, Some(enc)).await?;
        let body = LoginResp {
            next: "totp_enrol".into(),
            me: None,
            otpauth_url: Some(totp::otpauth_url(&secret, &username)),
            secret: Some(secret),
        };
        return Ok(with_cookie(
            Json(body).into_response(),
            set_cookie(&token, secure),
        ));
    }
    let token = session::create(&app, &user_id, "active", ip, None).await?;
    audit_auth(
        &app,
        Some(user_id.clone()),
        &username,
        "auth.login",
        serde_json::json!({"factors": ["password"]}),
    )
    .await?;
    logged_in(&app, &user_id, &token).await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeReq {
    pub code: String,
}

/// Second step: a TOTP code completes a pending login (and confirms enrolment when it was one).
#[utoipa::path(post, path = "/api/v1/auth/totp", tag = "identity", request_body = CodeReq,
    responses((status = 200, body = LoginResp), (status = 401, body = crate::platform::error::Problem)))]
pub async fn login_totp(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(req): Json<CodeReq>,
) -> ApiResult<Response> {
    if !app.login_throttle.allow(ip.as_deref().unwrap_or("-")) {
        return Err(ApiError::too_many("登录尝试过于频繁，请一分钟后再试"));
    }
    let mut parts = axum::http::Request::new(()).into_parts().0;
    parts.headers = headers;
    let token = cookie_token(&parts).ok_or_else(ApiError::unauthorized)?;
    let s = session::lookup(&app, &token)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if s.stage != "totp" && s.stage != "totp_enrol" {
        return Err(ApiError::conflict("当前登录不需要动态验证码"));
    }
    let u =
        sqlx::query("SELECT username, totp_secret_enc, locked_until FROM app_user WHERE id = $1")
            .bind(&s.user_id)
            .fetch_one(&app.db.pool)
            .await?;
    let username: String = u.get(0);
    if u.get::<Option<i64>, _>(2).is_some_and(|t| t > now_secs()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            BAD_LOGIN,
        ));
    }
    let enc = if s.stage == "totp_enrol" {
        s.pending_secret_enc.clone()
    } else {
        u.get::<Option<Vec<u8>>, _>(1)
    };
    let secret = app.keys.decrypt(&enc.ok_or_else(ApiError::unauthorized)?)?;
    let Some(step) = totp::verify_step(&secret, &req.code, now_secs()) else {
        register_failure(&app, &s.user_id, &username).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_totp",
            "动态验证码不正确或已过期",
        ));
    };
    take_step(&app, &s.user_id, step).await?;
    if s.stage == "totp_enrol" {
        sqlx::query("UPDATE app_user SET totp_secret_enc = $1, totp_enabled = 1 WHERE id = $2")
            .bind(app.keys.encrypt(&secret))
            .bind(&s.user_id)
            .execute(&mut *app.db.writer().await?)
            .await?;
    }
    // A new token for the authenticated session (no fixation of the pre-login one).
    sqlx::query("DELETE FROM user_session WHERE token_hash = $1")
        .bind(&s.token_hash)
        .execute(&mut *app.db.writer().await?)
        .await?;
    let token = session::create(&app, &s.user_id, "active", ip, None).await?;
    audit_auth(
        &app,
        Some(s.user_id.clone()),
        &username,
        "auth.login",
        serde_json::json!({"factors": ["password", "totp"], "enrolled": s.stage == "totp_enrol"}),
    )
    .await?;
    logged_in(&app, &s.user_id, &token).await
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "identity", responses((status = 204)))]
pub async fn logout(State(app): State<AppState>, actor: Actor) -> ApiResult<Response> {
    sqlx::query("DELETE FROM user_session WHERE token_hash = $1")
        .bind(&actor.token_hash)
        .execute(&mut *app.db.writer().await?)
        .await?;
    app.sessions.evict(&actor.token_hash);
    audit_auth(
        &app,
        Some(actor.user_id.clone()),
        &actor.username,
        "auth.logout",
        serde_json::json!({}),
    )
    .await?;
    Ok(with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        clear_cookie(),
    ))
}

#[utoipa::path(get, path = "/api/v1/me", tag = "identity", responses((status = 200, body = Me), (status = 401, body = crate::platform::error::Problem)))]
pub async fn me(State(app): State<AppState>, actor: Actor) -> Json<Me> {
    Json(me_of(&app, &actor).await)
}

/// Take a TOTP time step for an account: each is accepted once (the update is the check, so two
/// requests with the same code cannot both pass).
async fn take_step(app: &AppState, user_id: &str, step: i64) -> ApiResult<()> {
    let r = sqlx::query("UPDATE app_user SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)")
        .bind(step)
        .bind(user_id)
        .execute(&mut *app.db.writer().await?)
        .await?;
    if r.rows_affected() == 0 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "totp_used",
            "该动态验证码已经用过，请等待验证器显示下一个验证码",
        ));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema, Default)]
pub struct ReEnrol {
    /// Required when a second factor is already set up: the password …
    pub password: Option<String>,
    /// … and a current code of the authenticator in use.
    pub code: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    pub secret: String,
    pub otpauth_url: String,
}

/// Optional enrolment from the profile page (the demo profile does not force it). Replacing an
/// authenticator already set up takes the password and a current code of the old one.
#[utoipa::path(post, path = "/api/v1/me/totp/setup", tag = "identity", request_body(content = Option<ReEnrol>),
    responses((status = 200, body = TotpSetup), (status = 401, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn totp_setup(
    State(app): State<AppState>,
    actor: Actor,
    body: axum::body::Bytes,
) -> ApiResult<Json<TotpSetup>> {
    // Refused when malformed whether or not it is needed: the document says what it must be.
    // An object, or nothing (an empty body or JSON null).
    let r: ReEnrol = if body.is_empty() || body.trim_ascii() == b"null" {
        ReEnrol::default()
    } else {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "请求内容应为 JSON：{\"password\": 登录密码, \"code\": 动态验证码}",
            ));
        }
        serde_json::from_value(v).map_err(|_| {
            ApiError::bad_request(
                "请求内容应为 JSON：{\"password\": 登录密码, \"code\": 动态验证码}",
            )
        })?
    };
    if actor.totp_enabled {
        let (Some(pw), Some(code)) = (r.password, r.code) else {
            return Err(ApiError::invalid(
                "code",
                "更换验证器需要输入登录密码和当前验证器上的动态验证码",
            ));
        };
        let u = sqlx::query("SELECT password_hash, totp_secret_enc FROM app_user WHERE id = $1")
            .bind(&actor.user_id)
            .fetch_one(&app.db.pool)
            .await?;
        let phc: String = u.get(0);
        let enc: Option<Vec<u8>> = u.get(1);
        let old = app.keys.decrypt(&enc.ok_or_else(ApiError::unauthorized)?)?;
        if !password::verify_async(pw, phc).await {
            return Err(ApiError::invalid("password", "登录密码不正确"));
        }
        let Some(step) = totp::verify_step(&old, &code, now_secs()) else {
            return Err(ApiError::invalid("code", "动态验证码不正确或已过期"));
        };
        take_step(&app, &actor.user_id, step).await?;
    }
    let secret = totp::new_secret();
    sqlx::query("UPDATE user_session SET pending_secret_enc = $1 WHERE token_hash = $2")
        .bind(app.keys.encrypt(&secret))
        .bind(&actor.token_hash)
        .execute(&mut *app.db.writer().await?)
        .await?;
    Ok(Json(TotpSetup {
        otpauth_url: totp::otpauth_url(&secret, &actor.username),
        secret,
    }))
}

#[utoipa::path(post, path = "/api/v1/me/totp/confirm", tag = "identity", request_body = CodeReq, responses((status = 204), (status = 422, body = crate::platform::error::Problem)))]
pub async fn totp_confirm(
    State(app): State<AppState>,
    actor: Actor,
    Json(req): Json<CodeReq>,
) -> ApiResult<StatusCode> {
    let r = sqlx::query("SELECT pending_secret_enc FROM user_session WHERE token_hash = $1")
        .bind(&actor.token_hash)
        .fetch_one(&app.db.pool)
        .await?;
    let enc: Option<Vec<u8>> = r.get(0);
    let secret = app
        .keys
        .decrypt(&enc.ok_or_else(|| ApiError::conflict("请先生成动态验证码密钥"))?)?;
    let Some(step) = totp::verify_step(&secret, &req.code, now_secs()) else {
        return Err(ApiError::invalid("code", "动态验证码不正确或已过期"));
    };
    let mut tx = app.db.begin().await?;
    sqlx::query("UPDATE app_user SET totp_secret_enc = $1, totp_enabled = 1, totp_last_step = $3 WHERE id = $2")
        .bind(app.keys.encrypt(&secret))
        .bind(&actor.user_id)
        .bind(step)
        .execute(&mut *tx)
        .await?;
    app.sessions.clear();
    audit::append(
        &mut tx,
        &actor.who(),
        Entry {
            action: "auth.totp_enrolled",
            entity: "user",
            entity_id: Some(&actor.user_id),
            region_code: None,
            detail: "{}".into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub region_code: String,
    pub scopes: Scopes,
    pub locked_until: Option<i64>,
    pub totp_enabled: bool,
    pub disabled: bool,
    pub must_change_password: bool,
    /// 所属机构（机构负责人账号）
    pub org_id: Option<String>,
    pub org_name: Option<String>,
    /// 对应护理员（护理员账号）
    pub staff_id: Option<String>,
}

/// The columns [`user_row`] reads.
pub const USER_ROW_COLS: &str = "id, username, display_name, roles, region_code, scope_edit, scope_aggregates, scope_individuals, locked_until, totp_enabled, disabled, must_change_password, org_id, \
    (SELECT o.name FROM organisation o WHERE o.id = app_user.org_id) AS org_name, staff_id";

pub fn user_row(r: &sqlx::any::AnyRow) -> UserRow {
    UserRow {
        id: r.get(0),
        username: r.get(1),
        display_name: r.get(2),
        roles: session::parse_roles(&r.get::<String, _>(3)),
        region_code: r.get(4),
        scopes: Scopes {
            edit: r.get::<i64, _>(5) != 0,
            aggregates: r.get::<i64, _>(6) != 0,
            individuals: r.get::<i64, _>(7) != 0,
        },
        locked_until: r.get::<Option<i64>, _>(8).filter(|t| *t > now_secs()),
        totp_enabled: r.get::<i64, _>(9) != 0,
        disabled: r.get::<i64, _>(10) != 0,
        must_change_password: r.get::<i64, _>(11) != 0,
        org_id: r.get(12),
        org_name: r.get(13),
        staff_id: r.get(14),
    }
}

#[utoipa::path(get, path = "/api/v1/users", tag = "identity", responses((status = 200, body = Vec<UserRow>), (status = 403, body = crate::platform::error::Problem)))]
pub async fn list_users(
    State(app): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<UserRow>>> {
    actor.require(Perm::UsersManage)?;
    let (lo, hi) = actor.region.subtree_range();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_ROW_COLS} FROM app_user WHERE region_code BETWEEN $1 AND $2 ORDER BY username"
    )))
    .bind(lo)
    .bind(hi)
    .fetch_all(&app.db.pool)
    .await?;
    Ok(Json(rows.iter().map(user_row).collect()))
}

/// Roles as named, checked: known, at least one, and no administrator role beside another (三员分立).
pub fn parse_role_list(names: &[String]) -> ApiResult<Vec<Role>> {
    let mut roles = vec![];
    for r in names {
        roles.push(
            Role::parse(r).ok_or_else(|| ApiError::invalid("roles", format!("未知角色 {r}")))?,
        );
    }
    roles.dedup();
    if roles.is_empty() {
        return Err(ApiError::invalid("roles", "至少选择一个角色"));
    }
    let admin_roles = [Role::SystemAdmin, Role::SecurityAdmin, Role::AuditAdmin];
    if roles.iter().any(|r| admin_roles.contains(r)) && roles.len() > 1 {
        return Err(ApiError::invalid(
            "roles",
            "三员分立：系统、安全、审计管理员角色不能与其他角色兼任",
        ));
    }
    Ok(roles)
}

#[derive(Deserialize, utoipa::ToSchema, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub roles: Vec<String>,
    pub region_code: String,
    pub scopes: Scopes,
    /// 所属机构：机构负责人、服务商调度员、护理员账号必填，其他角色不填
    #[serde(default)]
    pub org_id: Option<String>,
    /// 对应的机构人员：护理员账号必填
    #[serde(default)]
    pub staff_id: Option<String>,
}

/// An account's organisation: required for a role that works for one (and then no other role),
/// refused for the others; the organisation must exist and lie inside the account's region. A
/// caregiver's account also names her staff record: a current caregiver of that organisation
/// with no other account (`account`: the one being changed, None for a new one). Returns
/// (organisation, staff record).
pub async fn org_binding(
    tx: &mut crate::platform::db::Tx<'_>,
    roles: &[Role],
    org_id: Option<&str>,
    staff_id: Option<&str>,
    region: &yiyang_kernel::RegionCode,
    account: Option<&str>,
) -> ApiResult<(Option<String>, Option<String>)> {
    let org_id = org_id.map(str::trim).filter(|s| !s.is_empty());
    let staff_id = staff_id.map(str::trim).filter(|s| !s.is_empty());
    let bound = roles.iter().filter(|r| r.org_bound()).count();
    if bound == 0 {
        if org_id.is_some() || staff_id.is_some() {
            return Err(ApiError::invalid(
                "org_id",
                "只有机构负责人、服务商调度员、护理员和助餐点工作人员账号需要所属机构，其他角色请不要填写",
            ));
        }
        return Ok((None, None));
    }
    if bound < roles.len() || roles.len() > 1 {
        return Err(ApiError::invalid(
            "roles",
            "机构负责人、服务商调度员、护理员、助餐点工作人员账号只办理本机构的事务，只能有这一个角色",
        ));
    }
    let Some(id) = org_id else {
        return Err(ApiError::invalid("org_id", "请选择该账号所属的机构"));
    };
    let r = sqlx::query("SELECT region_code FROM organisation WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    match r {
        Some(r) if r.get::<String, _>(0).starts_with(region.prefix()) => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "org_id",
                "所属机构不在该账号的区划内，请选择区划内的机构或放宽账号区划",
            ));
        }
        None => return Err(ApiError::invalid("org_id", "找不到所选机构，请重新选择")),
    }
    if !roles.contains(&Role::Caregiver) {
        if staff_id.is_some() {
            return Err(ApiError::invalid(
                "staff_id",
                "只有护理员账号对应机构人员，其他角色请不要填写",
            ));
        }
        return Ok((Some(id.to_string()), None));
    }
    let Some(sid) = staff_id else {
        return Err(ApiError::invalid(
            "staff_id",
            "请选择该护理员账号对应的机构人员",
        ));
    };
    let today = crate::platform::today().to_string();
    let st = sqlx::query("SELECT org_id, role, left_on, name FROM staff WHERE id = $1")
        .bind(sid)
        .fetch_optional(&mut **tx)
        .await?
        .filter(|r| r.get::<String, _>(0) == id)
        .ok_or_else(|| ApiError::invalid("staff_id", "所选人员不是该机构的人员"))?;
    let name: String = st.get(3);
    if st.get::<String, _>(1) != "caregiver" {
        return Err(ApiError::invalid(
            "staff_id",
            format!("{name}不是养老护理员"),
        ));
    }
    if st.get::<Option<String>, _>(2).is_some_and(|l| l <= today) {
        return Err(ApiError::invalid("staff_id", format!("{name}已离职")));
    }
    let taken = sqlx::query(
        "SELECT username FROM app_user WHERE staff_id = $1 AND id <> $2 AND disabled = 0",
    )
    .bind(sid)
    .bind(account.unwrap_or_default())
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = taken {
        return Err(ApiError::conflict(format!(
            "该护理员已有账号（{}），请在用户管理中找到它",
            r.get::<String, _>(0)
        )));
    }
    Ok((Some(id.to_string()), Some(sid.to_string())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaregiversQuery {
    /// The organisation the caregiver's account will work for
    pub org_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CaregiverOption {
    pub id: String,
    pub name: String,
    /// Already has an account (by its user name)
    pub account: Option<String>,
}

/// An organisation's current caregivers, to bind a caregiver's account to one (names only).
#[utoipa::path(get, path = "/api/v1/users/caregivers", tag = "identity", params(CaregiversQuery),
    responses((status = 200, body = Vec<CaregiverOption>), (status = 403, body = crate::platform::error::Problem)))]
pub async fn caregivers_of(
    State(app): State<AppState>,
    actor: Actor,
    axum::extract::Query(q): axum::extract::Query<CaregiversQuery>,
) -> ApiResult<Json<Vec<CaregiverOption>>> {
    actor.require(Perm::UsersManage)?;
    let scope = actor.scope();
    let rows = sqlx::query(
        "SELECT s.id, s.name, (SELECT u.username FROM app_user u WHERE u.staff_id = s.id AND u.disabled = 0), o.region_code \
         FROM staff s JOIN organisation o ON o.id = s.org_id WHERE s.org_id = $1 AND s.role = 'caregiver' \
         AND (s.left_on IS NULL OR s.left_on > $2) ORDER BY s.name, s.id LIMIT 500",
    )
    .bind(q.org_id.trim())
    .bind(crate::platform::today().to_string())
    .fetch_all(&app.db.pool)
    .await?;
    Ok(Json(
        rows.iter()
            .filter(|r| scope.contains(&r.get::<String, _>(3)))
            .map(|r| CaregiverOption {
                id: r.get(0),
                name: r.get(1),
                account: r.get(2),
            })
            .collect(),
    ))
}

/// Validate and insert a user inside `tx` (used by the API and by `yiyang user add`).
/// `must_change`: the password was set by someone else and is changed at the first login.
pub async fn insert_user(
    app_db: &crate::platform::db::Db,
    tx: &mut crate::platform::db::Tx<'_>,
    who: &Who,
    u: &NewUser,
    within: Option<&yiyang_kernel::RegionCode>,
    must_change: bool,
) -> ApiResult<String> {
    let username = u.username.trim();
    if username.is_empty()
        || username.len() > 64
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
    {
        return Err(ApiError::invalid(
            "username",
            "用户名只能包含字母、数字、下划线、点和连字符，长度 1–64",
        ));
    }
    if u.display_name.trim().is_empty() {
        return Err(ApiError::invalid("display_name", "请填写姓名"));
    }
    password::check_policy(&u.password, username).map_err(|m| ApiError::invalid("password", m))?;
    let roles = parse_role_list(&u.roles)?;
    let region = yiyang_kernel::RegionCode::parse(&u.region_code)
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    if let Some(w) = within
        && !w.contains(&region)
    {
        return Err(ApiError::forbidden("只能在本人管辖区划内创建用户"));
    }
    let _ = app_db;
    let (org_id, staff_id) = org_binding(
        tx,
        &roles,
        u.org_id.as_deref(),
        u.staff_id.as_deref(),
        &region,
        None,
    )
    .await?;
    let id = uuid::Uuid::now_v7().to_string();
    let hash = password::hash_async(u.password.clone()).await;
    let roles_s: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let taken = sqlx::query("SELECT 1 FROM app_user WHERE lower(username) = lower($1)")
        .bind(username)
        .fetch_optional(&mut **tx)
        .await?;
    if taken.is_some() {
        return Err(ApiError::conflict(format!(
            "用户名 {username} 已存在（不区分大小写）"
        )));
    }
    let res = sqlx::query("INSERT INTO app_user (id, username, display_name, password_hash, roles, region_code, scope_edit, scope_aggregates, scope_individuals, created_at, must_change_password, org_id, staff_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
        .bind(&id)
        .bind(username)
        .bind(u.display_name.trim())
        .bind(hash)
        .bind(roles_s.join(","))
        .bind(region.as_str())
        .bind(u.scopes.edit as i64)
        .bind(u.scopes.aggregates as i64)
        .bind(u.scopes.individuals as i64)
        .bind(crate::platform::now_rfc3339())
        .bind(must_change as i64)
        .bind(&org_id)
        .bind(&staff_id)
        .execute(&mut **tx)
        .await;
    if let Err(sqlx::Error::Database(d)) = &res
        && d.is_unique_violation()
    {
        return Err(ApiError::conflict(format!("用户名 {username} 已存在")));
    }
    res?;
    audit::append(
        tx,
        who,
        Entry {
            action: "user.create",
            entity: "user",
            entity_id: Some(&id),
            region_code: Some(region.as_str()),
            detail: serde_json::json!({"username": username, "roles": roles_s, "scopes": u.scopes, "org_id": org_id, "staff_id": staff_id})
                .to_string(),
        },
    )
    .await?;
    Ok(id)
}

#[utoipa::path(post, path = "/api/v1/users", tag = "identity", request_body = NewUser,
    responses((status = 201, body = UserRow), (status = 409, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn create_user(
    State(app): State<AppState>,
    actor: Actor,
    Json(u): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    actor.require(Perm::UsersManage)?;
    let mut tx = app.db.begin().await?;
    // The administrator chose this password: the owner replaces it at the first login.
    let id = insert_user(
        &app.db,
        &mut tx,
        &actor.who(),
        &u,
        Some(&actor.region),
        true,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"id": id}))))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReasonReq {
    /// 操作事由
    pub reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemporaryPassword {
    /// Shown once: hand it to the owner, who must change it at the next login.
    pub temporary_password: String,
}

fn admin_of(actor: &Actor) -> ApiResult<super::lifecycle::Admin<'_>> {
    actor.require(Perm::UsersManage)?;
    Ok(super::lifecycle::Admin {
        who: actor.who(),
        user_id: Some(&actor.user_id),
        region: Some(&actor.region),
    })
}

/// Disable (its sessions end at once), enable again, or unlock an account after failed logins.
/// Audited with the reason.
#[utoipa::path(post, path = "/api/v1/users/{id}/{action}", tag = "identity",
    params(("id" = String, Path), ("action" = String, Path, description = "disable（停用）/ enable（启用）/ unlock（解除锁定）")),
    request_body = ReasonReq,
    responses((status = 200, body = UserRow), (status = 403, body = crate::platform::error::Problem), (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn set_user_state(
    State(app): State<AppState>,
    actor: Actor,
    axum::extract::Path((id, action)): axum::extract::Path<(String, String)>,
    Json(r): Json<ReasonReq>,
) -> ApiResult<Json<UserRow>> {
    use super::lifecycle::Action;
    let action = match action.as_str() {
        "disable" => Action::Disable,
        "enable" => Action::Enable,
        "unlock" => Action::Unlock,
        _ => return Err(ApiError::not_found("接口不存在")),
    };
    super::lifecycle::set_state(&app.db, &admin_of(&actor)?, &id, action, &r.reason).await?;
    app.sessions.clear();
    Ok(Json(super::lifecycle::row(&app.db, &id).await?))
}

/// Reset a password: a temporary one, shown once, that the owner must change at the next login;
/// the account's sessions end. Audited with the reason.
#[utoipa::path(post, path = "/api/v1/users/{id}/reset-password", tag = "identity", params(("id" = String, Path)), request_body = ReasonReq,
    responses((status = 200, body = TemporaryPassword), (status = 403, body = crate::platform::error::Problem), (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn reset_user_password(
    State(app): State<AppState>,
    actor: Actor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(r): Json<ReasonReq>,
) -> ApiResult<Json<TemporaryPassword>> {
    let pw =
        super::lifecycle::reset_password(&app.db, &admin_of(&actor)?, &id, None, &r.reason).await?;
    app.sessions.clear();
    Ok(Json(TemporaryPassword {
        temporary_password: pw,
    }))
}

/// Change an account's roles, region and scopes. Not one's own, not another security
/// administrator's, and never to security administrator. Audited with the reason.
#[utoipa::path(put, path = "/api/v1/users/{id}/access", tag = "identity", params(("id" = String, Path)), request_body = super::lifecycle::AccessChange,
    responses((status = 200, body = UserRow), (status = 403, body = crate::platform::error::Problem), (status = 404, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn change_user_access(
    State(app): State<AppState>,
    actor: Actor,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(c): Json<super::lifecycle::AccessChange>,
) -> ApiResult<Json<UserRow>> {
    super::lifecycle::change_access(&app.db, &admin_of(&actor)?, &id, &c).await?;
    app.sessions.clear();
    Ok(Json(super::lifecycle::row(&app.db, &id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Change one's own password (the current one is required); one's other sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "identity", request_body = PasswordChange,
    responses((status = 204), (status = 401, body = crate::platform::error::Problem), (status = 422, body = crate::platform::error::Problem)))]
pub async fn change_password(
    State(app): State<AppState>,
    actor: Actor,
    Json(c): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    super::lifecycle::change_own(
        &app.db,
        &actor.who(),
        &actor.user_id,
        &actor.token_hash,
        &c.current_password,
        &c.new_password,
    )
    .await?;
    app.sessions.clear();
    Ok(StatusCode::NO_CONTENT)
}

//! Server-side sessions: an opaque random token in an HttpOnly cookie, its SHA-256 in `user_session`.
//! Idle and absolute timeouts are checked on every request; logout deletes the row.

use super::{Role, Scopes};
use crate::app::AppState;
use crate::platform::crypto::{random_token, sha256_hex};
use crate::platform::error::ApiError;
use crate::platform::now_secs;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sqlx::Row;
use std::collections::HashMap;
use yiyang_kernel::RegionCode;

pub const COOKIE: &str = "yiyang_session";

#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub region: RegionCode,
    pub scopes: Scopes,
    pub totp_enabled: bool,
    /// Until changed, the account may only change its password (and read who it is, log out).
    pub must_change_password: bool,
    pub token_hash: String,
    /// The organisation this account works for, when bound to one.
    pub org_id: Option<String>,
    /// The staff record a caregiver's account speaks for.
    pub staff_id: Option<String>,
}

pub fn parse_roles(s: &str) -> Vec<Role> {
    s.split(',').filter_map(Role::parse).collect()
}

pub fn cookie_token(parts: &Parts) -> Option<String> {
    let header = parts
        .headers
        .get(axum::http::header::COOKIE)?
        .to_str()
        .ok()?;
    header.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE).then(|| v.to_string())
    })
}

pub fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Create a session row at `stage` ("active", "totp", "totp_enrol"); returns the cookie token.
pub async fn create(
    app: &AppState,
    user_id: &str,
    stage: &str,
    ip: Option<String>,
    pending_secret: Option<Vec<u8>>,
) -> Result<String, ApiError> {
    let token = random_token(32);
    let now = now_secs();
    sqlx::query("INSERT INTO user_session (token_hash, user_id, stage, created_at, last_seen, ip, pending_secret_enc) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(sha256_hex(token.as_bytes()))
        .bind(user_id)
        .bind(stage)
        .bind(now)
        .bind(now)
        .bind(ip)
        .bind(pending_secret)
        .execute(&mut *app.db.writer().await?)
        .await?;
    Ok(token)
}

pub struct SessionRow {
    pub token_hash: String,
    pub user_id: String,
    pub stage: String,
    pub pending_secret_enc: Option<Vec<u8>>,
}

/// Look up a live session (any stage), enforcing the timeouts; expired rows are deleted.
pub async fn lookup(app: &AppState, token: &str) -> Result<Option<SessionRow>, ApiError> {
    let th = sha256_hex(token.as_bytes());
    let Some(r) = sqlx::query("SELECT user_id, stage, created_at, last_seen, pending_secret_enc FROM user_session WHERE token_hash = $1")
        .bind(&th)
        .fetch_optional(&app.db.pool)
        .await?
    else {
        return Ok(None);
    };
    if keep_alive(app, &th, r.get(2), r.get(3)).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(SessionRow {
        token_hash: th,
        user_id: r.get(0),
        stage: r.get(1),
        pending_secret_enc: r.get(4),
    }))
}

/// An account's columns as [`actor_of`] reads them (table alias `u`).
const ACTOR_COLS: &str = "u.id, u.username, u.display_name, u.roles, u.region_code, u.scope_edit, \
    u.scope_aggregates, u.scope_individuals, u.totp_enabled, u.disabled, u.must_change_password, u.org_id, u.staff_id";

/// The actor from [`ACTOR_COLS`] starting at column `at`; `None` for a disabled account.
fn actor_of(
    r: &sqlx::any::AnyRow,
    at: usize,
    token_hash: String,
) -> Result<Option<Actor>, ApiError> {
    if r.get::<i64, _>(at + 9) != 0 {
        return Ok(None);
    }
    let region = RegionCode::parse(&r.get::<String, _>(at + 4))
        .map_err(|e| ApiError::internal(anyhow::anyhow!("bad user region: {e}")))?;
    Ok(Some(Actor {
        user_id: r.get(at),
        username: r.get(at + 1),
        display_name: r.get(at + 2),
        roles: parse_roles(&r.get::<String, _>(at + 3)),
        region,
        scopes: Scopes {
            edit: r.get::<i64, _>(at + 5) != 0,
            aggregates: r.get::<i64, _>(at + 6) != 0,
            individuals: r.get::<i64, _>(at + 7) != 0,
        },
        totp_enabled: r.get::<i64, _>(at + 8) != 0,
        must_change_password: r.get::<i64, _>(at + 10) != 0,
        token_hash,
        org_id: r.get(at + 11),
        staff_id: r.get(at + 12),
    }))
}

/// Enforce the idle and absolute timeouts of a session (an expired row is deleted: `None`) and
/// touch it at most once a minute, which keeps the idle clock right without a write per request.
/// Returns the session's `last_seen` as it now stands.
async fn keep_alive(
    app: &AppState,
    token_hash: &str,
    created: i64,
    last_seen: i64,
) -> Result<Option<i64>, ApiError> {
    let now = now_secs();
    let cfg = &app.config;
    if now - last_seen > cfg.idle_timeout_secs || now - created > cfg.absolute_timeout_secs {
        sqlx::query("DELETE FROM user_session WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *app.db.writer().await?)
            .await?;
        return Ok(None);
    }
    if now - last_seen >= 60 {
        sqlx::query("UPDATE user_session SET last_seen = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash)
            .execute(&mut *app.db.writer().await?)
            .await?;
        return Ok(Some(now));
    }
    Ok(Some(last_seen))
}

pub async fn load_actor(
    app: &AppState,
    user_id: &str,
    token_hash: String,
) -> Result<Option<Actor>, ApiError> {
    let sql = format!("SELECT {ACTOR_COLS} FROM app_user u WHERE u.id = $1");
    match sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_optional(&app.db.pool)
        .await?
    {
        Some(u) => actor_of(&u, 0, token_hash),
        None => Ok(None),
    }
}

/// Sessions verified against the database in the last [`CACHE_SECS`] seconds. Every API call needs
/// its actor; this saves that query on bursts of calls. Logout and account changes in this process
/// evict at once; a change made by another process (a second server, the command line) is seen
/// within [`CACHE_SECS`]. Timeouts are still checked on every request against the cached times.
#[derive(Default)]
pub struct SessionCache {
    map: std::sync::Mutex<HashMap<String, Cached>>,
}

struct Cached {
    actor: Actor,
    created: i64,
    last_seen: i64,
    at: std::time::Instant,
}

pub const CACHE_SECS: u64 = 2;
const CACHE_MAX: usize = 10_000;

impl SessionCache {
    pub fn evict(&self, token_hash: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token_hash);
    }
    /// After any change to accounts: roles, scopes, second factor, region.
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    fn get(&self, th: &str, now: i64, idle: i64, absolute: i64) -> Option<Actor> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let c = map.get(th)?;
        let fresh = c.at.elapsed().as_secs() < CACHE_SECS
            && now - c.last_seen <= idle
            && now - c.created <= absolute
            // Due for its once-a-minute touch: take the database path.
            && now - c.last_seen < 60;
        fresh.then(|| c.actor.clone())
    }
    fn put(&self, actor: &Actor, created: i64, last_seen: i64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(
            actor.token_hash.clone(),
            Cached {
                actor: actor.clone(),
                created,
                last_seen,
                at: std::time::Instant::now(),
            },
        );
    }
}

/// The actor behind a session token, in one query (session joined to its account): the request path
/// every API call takes, so it stays one round trip. Timeouts apply as in [`lookup`].
pub async fn active_actor(app: &AppState, token: &str) -> Result<Option<Actor>, ApiError> {
    let th = sha256_hex(token.as_bytes());
    let cfg = &app.config;
    if let Some(a) = app.sessions.get(
        &th,
        now_secs(),
        cfg.idle_timeout_secs,
        cfg.absolute_timeout_secs,
    ) {
        return Ok(Some(a));
    }
    let sql = format!(
        "SELECT s.stage, s.created_at, s.last_seen, {ACTOR_COLS} \
         FROM user_session s JOIN app_user u ON u.id = s.user_id WHERE s.token_hash = $1"
    );
    let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&th)
        .fetch_optional(&app.db.pool)
        .await?
    else {
        return Ok(None);
    };
    let created: i64 = r.get(1);
    let Some(last_seen) = keep_alive(app, &th, created, r.get(2)).await? else {
        return Ok(None);
    };
    if r.get::<String, _>(0) != "active" {
        return Ok(None);
    }
    let Some(actor) = actor_of(&r, 3, th)? else {
        return Ok(None);
    };
    app.sessions.put(&actor, created, last_seen);
    Ok(Some(actor))
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie_token(parts).ok_or_else(ApiError::unauthorized)?;
        let actor = active_actor(app, &token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        // A password someone else set (a new or reset account) is replaced before anything else.
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(parts.uri.path(), |u| u.0.path());
        if actor.must_change_password
            && !matches!(
                path,
                "/api/v1/me" | "/api/v1/me/password" | "/api/v1/auth/logout"
            )
        {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "password_change_required",
                "请先修改密码：新账号首次登录或密码被重置后，需要设置自己的新密码",
            ));
        }
        Ok(actor)
    }
}

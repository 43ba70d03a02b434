//! 居家服务查询 — an elder's family on the public pages: after a code sent to the phone in the
//! elder's record, this month's quota, the visits made and who came, and a rating or a complaint
//! for each visit. Nothing here says whether an ID is registered: a code request is answered the
//! same way whatever was found, a wrong code the same way as an unknown person. Throttled per
//! address, every request audited.

use super::quota::{self, QuotaView};
use crate::app::AppState;
use crate::audit::{self, Entry, Who};
use crate::identity::http::ClientIp;
use crate::platform::crypto::{KeyRing, random_token, sha256_hex};
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult, Problem};
use crate::platform::migrations::Stmt::{self, *};
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::service_order as rule;

pub const MIGRATION: &[Stmt] = &[
    // A code sent to the family (encrypted: the outbox renders it), its wrong tries, and once it
    // was entered, the hash of the token the page then uses for half an hour.
    Both(
        "CREATE TABLE family_access (id TEXT PRIMARY KEY, elder_id TEXT NOT NULL REFERENCES elder (id), \
         code_enc BLOB NOT NULL, expires BIGINT NOT NULL, tries BIGINT NOT NULL, token_hash TEXT, \
         token_expires BIGINT, created_at TEXT NOT NULL)",
    ),
    Both("CREATE INDEX family_access_elder ON family_access (elder_id, expires)"),
    Both("CREATE UNIQUE INDEX family_access_token ON family_access (token_hash)"),
    // One rating (1–5 stars, a few words) or complaint per visit, from the family.
    Both(
        "CREATE TABLE service_feedback (order_id TEXT PRIMARY KEY REFERENCES service_order (id), \
         elder_id TEXT NOT NULL REFERENCES elder (id), rating BIGINT, comment TEXT, complaint TEXT, at TEXT NOT NULL, \
         CONSTRAINT service_feedback_rating_check CHECK (rating IS NULL OR (rating >= 1 AND rating <= 5)))",
    ),
];

const CODE_SECS: i64 = 600;
const RESEND_SECS: i64 = 60;
const CODES_A_DAY: i64 = 5;
const TRIES: i64 = 5;
const TOKEN_SECS: i64 = 1800;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/public/home-care/code", post(ask_code))
        .route("/public/home-care/visits", post(visits))
        .route("/public/home-care/feedback", post(feedback))
        .route("/public/home-care/meal-code", post(meal_code))
        .route("/public/home-care/orders", post(order))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeAsk {
    /// 老人的 18 位身份证号
    pub citizen_id: String,
    /// 老人的姓名
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Said {
    pub message: String,
}

fn who(ip: &Option<String>) -> Who {
    Who {
        actor_id: None,
        actor_name: format!("公众查询 {}", ip.as_deref().unwrap_or("-")),
    }
}

fn throttle(app: &AppState, ip: &Option<String>) -> ApiResult<()> {
    if app.public_throttle.allow(ip.as_deref().unwrap_or("-")) {
        Ok(())
    } else {
        Err(ApiError::too_many("请求过于频繁，请稍后再试"))
    }
}

/// The elder an ID number and name point to, with the phone's blind index (None: not found).
async fn elder_of(
    db: &Db,
    keys: &KeyRing,
    citizen_id: &str,
    name: &str,
) -> ApiResult<Option<(String, String, bool)>> {
    let name = crate::institution::text("name", "姓名", Some(name), 30)?;
    let cid = yiyang_kernel::CitizenId::parse(citizen_id.trim(), crate::platform::today())
        .map_err(|e| ApiError::invalid("citizen_id", format!("身份证号无效：{e}")))?;
    let bidx = keys.blind_index(crate::registry::store::CID_DOMAIN, cid.as_str());
    Ok(sqlx::query(
        "SELECT id, residence_region, CASE WHEN phone_enc IS NULL THEN 0 ELSE 1 END FROM elder \
         WHERE citizen_id_bidx = $1 AND name = $2",
    )
    .bind(&bidx)
    .bind(&name)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| (r.get(0), r.get(1), r.get::<i64, _>(2) == 1)))
}

/// Send a code to the phone in the elder's record. The answer is the same whether or not the ID
/// and name were found, had a phone, or a code went out a moment ago.
#[utoipa::path(post, path = "/api/v1/public/home-care/code", tag = "home_service", request_body = CodeAsk,
    responses((status = 200, body = Said), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn ask_code(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(q): Json<CodeAsk>,
) -> ApiResult<Json<Said>> {
    use rand::Rng;
    throttle(&app, &ip)?;
    let found = elder_of(&app.db, &app.keys, &q.citizen_id, &q.name).await?;
    let now = crate::platform::now_secs();
    let mut tx = app.db.begin().await?;
    let mut sent = false;
    if let Some((elder, _, true)) = &found {
        let r = sqlx::query(
            "SELECT MAX(expires), COUNT(*) FROM family_access WHERE elder_id = $1 AND expires > $2",
        )
        .bind(elder)
        .bind(now + CODE_SECS - 24 * 3600)
        .fetch_one(&mut *tx)
        .await?;
        let (last, today): (Option<i64>, i64) = (r.get(0), r.get(1));
        if today < CODES_A_DAY && last.is_none_or(|e| e - CODE_SECS + RESEND_SECS <= now) {
            // One code a minute per elder, whatever arrives at once: the minute is in the key.
            let id = format!("{elder}:{}", now / RESEND_SECS);
            let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
            let made = sqlx::query(
                "INSERT INTO family_access (id, elder_id, code_enc, expires, tries, created_at) VALUES ($1, $2, $3, $4, 0, $5) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(elder)
            .bind(app.keys.encrypt(&code))
            .bind(now + CODE_SECS)
            .bind(crate::platform::now_rfc3339())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if made == 1 {
                sqlx::query(
                "INSERT INTO notification_outbox (id, elder_id, event, state, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, 'family_code', 'pending', 0, 0, $3)",
            )
            .bind(format!("family:{id}"))
            .bind(elder)
            .bind(crate::platform::now_rfc3339())
            .execute(&mut *tx)
            .await?;
                sent = true;
            }
        }
    }
    audit::append(
        &mut tx,
        &who(&ip),
        Entry {
            action: "home_care.family_code",
            entity: "elder",
            entity_id: found.as_ref().map(|f| f.0.as_str()),
            region_code: found.as_ref().map(|f| f.1.as_str()),
            detail: serde_json::json!({"found": found.is_some(), "sent": sent}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Said {
        message:
            "如果身份证号和姓名与登记的一致，确认码已发到老人档案里登记的手机上，10 分钟内有效。\
                  没有收到？请 1 分钟后再试，或拨打 12349 请工作人员核对电话。"
                .into(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitsAsk {
    /// The first time: the elder's ID number, name and the code received
    pub citizen_id: Option<String>,
    pub name: Option<String>,
    pub code: Option<String>,
    /// Afterwards: the token the first answer gave (half an hour)
    pub token: Option<String>,
    /// YYYY-MM (default this month)
    pub month: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FamilyVisit {
    pub id: String,
    /// "12月5日 09:30"
    pub when: String,
    pub service: String,
    pub provider: String,
    /// Who came (the caregiver's name)
    pub caregiver: Option<String>,
    pub state: String,
    /// Minutes from check-in to check-out
    pub minutes: Option<i64>,
    /// What the caregiver ticked as done at check-out (清扫拖地, 清洗餐具, …)
    pub done: Vec<String>,
    pub rating: Option<i64>,
    pub comment: Option<String>,
    pub complaint: Option<String>,
    /// Confirmed and not yet rated: the family may rate it or complain
    pub can_rate: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FamilyView {
    /// For the next half hour: month by month, and to rate a visit
    pub token: String,
    /// The elder's name, masked (陈**)
    pub elder: String,
    pub month: String,
    pub quota: QuotaView,
    pub visits: Vec<FamilyVisit>,
    pub hotline: String,
    /// Where the family may book a visit (`/public/home-care/orders`): the provider that came
    /// last first, then those under contract in the elder's town and county
    pub providers: Vec<FamilyProvider>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FamilyProvider {
    pub id: String,
    pub name: String,
    /// It served the elder last
    pub last: bool,
}

/// Providers the family may book with: open, under a contract in force today, in the elder's
/// county; the one that came last first, then the town's, at most eight.
async fn providers_for(db: &Db, elder: &str, region: &str) -> ApiResult<Vec<FamilyProvider>> {
    let today = crate::platform::today().to_string();
    let last: Option<String> = sqlx::query_scalar(
        "SELECT provider_id FROM service_order WHERE elder_id = $1 AND state = 'confirmed' \
         ORDER BY start_min DESC LIMIT 1",
    )
    .bind(elder)
    .fetch_optional(&db.pool)
    .await?;
    let county = &region[..region.len().min(6)];
    let town = &region[..region.len().min(9)];
    let kinds = super::PROVIDER_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT o.id, o.name, o.region_code FROM organisation o JOIN provider_contract c ON c.org_id = o.id \
         WHERE o.kind IN ({kinds}) AND o.status = 'open' AND c.starts_on <= $1 AND c.ends_on >= $1 \
         AND o.region_code >= $2 AND o.region_code < $3 ORDER BY o.name"
    )))
    .bind(&today)
    .bind(format!("{county}000000"))
    .bind(format!("{county}999999z"))
    .fetch_all(&db.pool)
    .await?;
    let mut out: Vec<(u8, FamilyProvider)> = rows
        .iter()
        .map(|r| {
            let id: String = r.get(0);
            let rc: String = r.get(2);
            let last = last.as_deref() == Some(id.as_str());
            let rank = if last {
                0
            } else if rc.starts_with(town) {
                1
            } else {
                2
            };
            (
                rank,
                FamilyProvider {
                    id,
                    name: r.get(1),
                    last,
                },
            )
        })
        .collect();
    out.sort_by_key(|p| p.0);
    Ok(out.into_iter().take(8).map(|p| p.1).collect())
}

/// The elder a token stands for (401 with a plain sentence when it lapsed).
async fn by_token(db: &Db, token: &str) -> ApiResult<String> {
    let now = crate::platform::now_secs();
    sqlx::query("SELECT elder_id FROM family_access WHERE token_hash = $1 AND token_expires > $2")
        .bind(sha256_hex(token.trim().as_bytes()))
        .bind(now)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "expired",
                "查询已超过半小时，请重新获取确认码",
            )
        })
}

/// The month's quota and visits of the elder, for the family: with the code just received (and
/// the ID and name), or the token the first answer gave. Audited.
#[utoipa::path(post, path = "/api/v1/public/home-care/visits", tag = "home_service", request_body = VisitsAsk,
    responses((status = 200, body = FamilyView), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
pub async fn visits(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(q): Json<VisitsAsk>,
) -> ApiResult<Json<FamilyView>> {
    throttle(&app, &ip)?;
    let month = match q.month.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d")
            .map_err(|_| ApiError::invalid("month", "月份应为 YYYY-MM，如 2026-12"))?
            .format("%Y-%m")
            .to_string(),
        None => crate::platform::today().format("%Y-%m").to_string(),
    };
    let (elder, token) = match q.token.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(t) => (by_token(&app.db, t).await?, t.trim().to_string()),
        None => enter_code(&app, &ip, &q).await?,
    };
    let r = sqlx::query("SELECT name, residence_region FROM elder WHERE id = $1")
        .bind(&elder)
        .fetch_one(&app.db.pool)
        .await?;
    let (name, region): (String, String) = (r.get(0), r.get(1));
    let quota = quota::of_elder(&app.db, &elder, &month).await?;
    let visits = month_visits(&app.db, &elder, &month).await?;
    let providers = providers_for(&app.db, &elder, &region).await?;
    let mut tx = app.db.begin().await?;
    audit::append(
        &mut tx,
        &who(&ip),
        Entry {
            action: "home_care.family_view",
            entity: "elder",
            entity_id: Some(&elder),
            region_code: Some(&region),
            detail: serde_json::json!({"month": month, "visits": visits.len()}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(FamilyView {
        token,
        elder: yiyang_kernel::mask::name(&name),
        month,
        quota,
        visits,
        hotline: "12349".into(),
        providers,
    }))
}

/// Check the code against the last one sent to the elder the ID and name point to; a wrong code
/// counts a try. An unknown person gets the wrong code's answer.
async fn enter_code(
    app: &AppState,
    ip: &Option<String>,
    q: &VisitsAsk,
) -> ApiResult<(String, String)> {
    let (Some(cid), Some(name), Some(code)) = (&q.citizen_id, &q.name, &q.code) else {
        return Err(ApiError::invalid(
            "code",
            "请填写老人的身份证号、姓名和手机收到的确认码",
        ));
    };
    // One answer for a wrong code, a lapsed one, one tried five times and an unknown person:
    // nothing here says whether an ID is registered.
    let wrong = || {
        ApiError::invalid(
            "code",
            "确认码不正确或已失效（10 分钟内有效，输错 5 次作废），请核对或重新获取确认码",
        )
    };
    let found = elder_of(&app.db, &app.keys, cid, name).await?;
    let now = crate::platform::now_secs();
    let mut tx = app.db.begin().await?;
    let row = match &found {
        Some((elder, _, _)) => {
            sqlx::query(
                "SELECT id, code_enc FROM family_access WHERE elder_id = $1 AND expires > $2 AND token_hash IS NULL \
                 ORDER BY expires DESC LIMIT 1",
            )
            .bind(elder)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
        }
        None => None,
    };
    // The try is taken before the code is compared, in one statement: tries sent at once are
    // counted one after the other (PostgreSQL locks the row), never all against the same count.
    let mut right = false;
    let mut id = None;
    if let Some(r) = &row {
        let rid: String = r.get(0);
        let claimed = sqlx::query(
            "UPDATE family_access SET tries = tries + 1 WHERE id = $1 AND tries < $2 AND token_hash IS NULL",
        )
        .bind(&rid)
        .bind(TRIES)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let want = app
            .keys
            .decrypt(&r.get::<Vec<u8>, _>(1))
            .map_err(ApiError::internal)?;
        right = claimed && want.as_bytes() == code.trim().as_bytes();
        id = Some(rid);
    }
    if !right {
        audit::append(
            &mut tx,
            &who(ip),
            Entry {
                action: "home_care.family_code_wrong",
                entity: "elder",
                entity_id: found.as_ref().map(|f| f.0.as_str()),
                region_code: found.as_ref().map(|f| f.1.as_str()),
                detail: serde_json::json!({"found": found.is_some()}).to_string(),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(wrong());
    }
    let (Some(id), Some((elder, _, _))) = (id, found) else {
        return Err(wrong());
    };
    let token = random_token(32);
    sqlx::query("UPDATE family_access SET token_hash = $2, token_expires = $3 WHERE id = $1")
        .bind(&id)
        .bind(sha256_hex(token.as_bytes()))
        .bind(now + TOKEN_SECS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((elder, token))
}

async fn month_visits(db: &Db, elder: &str, month: &str) -> ApiResult<Vec<FamilyVisit>> {
    let rows = sqlx::query(
        "SELECT o.id, o.planned_start, o.service, p.name, (SELECT s.name FROM staff s WHERE s.id = o.caregiver_id), \
         o.state, o.check_in_min, o.check_out_min, f.rating, f.comment, f.complaint, o.tasks_done \
         FROM service_order o JOIN organisation p ON p.id = o.provider_id \
         LEFT JOIN service_feedback f ON f.order_id = o.id \
         WHERE o.elder_id = $1 AND o.planned_start >= $2 AND o.planned_start < $3 ORDER BY o.planned_start",
    )
    .bind(elder)
    .bind(format!("{month}-01"))
    .bind(format!("{month}-32"))
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let start: String = r.get(1);
            let state: String = r.get(5);
            let (rating, complaint): (Option<i64>, Option<String>) = (r.get(8), r.get(10));
            let (i, o): (Option<i64>, Option<i64>) = (r.get(6), r.get(7));
            let service: String = r.get(2);
            let done: Vec<String> =
                super::visit_tasks(&service, r.get::<Option<String>, _>(11).as_deref())
                    .into_iter()
                    .filter(|t| t.done)
                    .map(|t| t.name)
                    .collect();
            FamilyVisit {
                id: r.get(0),
                when: format!(
                    "{}月{}日 {}",
                    start[5..7].trim_start_matches('0'),
                    start[8..10].trim_start_matches('0'),
                    &start[11..16]
                ),
                service: rule::service_zh(&service).to_string(),
                provider: r.get(3),
                caregiver: r.get(4),
                can_rate: state == "confirmed" && rating.is_none() && complaint.is_none(),
                state: rule::state_zh(&state).to_string(),
                minutes: i.zip(o).map(|(i, o)| (o - i).max(0)),
                done,
                rating,
                comment: r.get(9),
                complaint,
            }
        })
        .collect())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackReq {
    pub token: String,
    pub order_id: String,
    /// 1–5 stars
    pub rating: Option<i64>,
    /// A few words with the rating
    pub comment: Option<String>,
    /// What went wrong (a complaint goes to the officers)
    pub complaint: Option<String>,
}

/// Rate a confirmed visit (1–5 stars and a few words) or complain about it, once per visit.
/// Audited.
#[utoipa::path(post, path = "/api/v1/public/home-care/feedback", tag = "home_service", request_body = FeedbackReq,
    responses((status = 200, body = Said), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn feedback(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(f): Json<FeedbackReq>,
) -> ApiResult<Json<Said>> {
    throttle(&app, &ip)?;
    let comment = crate::institution::text("comment", "评价", f.comment.as_deref(), 200)?;
    let complaint = crate::institution::text("complaint", "投诉内容", f.complaint.as_deref(), 500)?;
    if f.rating.is_some_and(|r| !(1..=5).contains(&r)) {
        return Err(ApiError::invalid("rating", "请选 1 到 5 颗星"));
    }
    if f.rating.is_none() && complaint.chars().count() < 4 {
        return Err(ApiError::invalid(
            "rating",
            "请选星级评价，或写明投诉的事情（至少 4 个字）",
        ));
    }
    let elder = by_token(&app.db, &f.token).await?;
    let mut tx = app.db.begin().await?;
    let r = sqlx::query(
        "SELECT o.state, p.region_code, (SELECT COUNT(*) FROM service_feedback f WHERE f.order_id = o.id), \
         e.residence_region FROM service_order o JOIN organisation p ON p.id = o.provider_id \
         JOIN elder e ON e.id = o.elder_id WHERE o.id = $1 AND o.elder_id = $2",
    )
    .bind(f.order_id.trim())
    .bind(&elder)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("没有找到这次服务"))?;
    let (state, region, done): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
    if done > 0 {
        return Err(ApiError::conflict("这次服务已经评价过了"));
    }
    if state != "confirmed" {
        return Err(ApiError::conflict(
            "服务确认完成后才能评价；如护理员没有上门，请拨打 12349",
        ));
    }
    sqlx::query(
        "INSERT INTO service_feedback (order_id, elder_id, rating, comment, complaint, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(f.order_id.trim())
    .bind(&elder)
    .bind(f.rating)
    .bind(Some(&comment).filter(|c| !c.is_empty()))
    .bind(Some(&complaint).filter(|c| !c.is_empty()))
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ApiError::conflict("这次服务已经评价过了")
        }
        e => e.into(),
    })?;
    // Satisfaction counts where the elder lives: recount it there.
    crate::indicator::rollup::mark_dirty(&mut tx, &r.get::<String, _>(3)).await?;
    audit::append(
        &mut tx,
        &who(&ip),
        Entry {
            action: "home_care.feedback",
            entity: "service_order",
            entity_id: Some(f.order_id.trim()),
            region_code: Some(&region),
            detail: serde_json::json!({"rating": f.rating, "complaint": !complaint.is_empty()})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Said {
        message: if complaint.is_empty() {
            "谢谢您的评价。".into()
        } else {
            "投诉已收到，民政部门会核实处理，并打电话告诉您结果。".into()
        },
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MealCodeAsk {
    /// The token the visits' answer gave
    pub token: String,
}

/// A new 助餐码 for the elder (8 digits, 30 days; the one before stops working): the elder tells
/// it at a meal point's counter instead of showing the ID card. Audited.
#[utoipa::path(post, path = "/api/v1/public/home-care/meal-code", tag = "home_service", request_body = MealCodeAsk,
    responses((status = 200, body = super::meal_code::MealCode), (status = 401, body = Problem),
        (status = 409, body = Problem), (status = 429, body = Problem)))]
pub async fn meal_code(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(q): Json<MealCodeAsk>,
) -> ApiResult<Json<super::meal_code::MealCode>> {
    throttle(&app, &ip)?;
    let elder = by_token(&app.db, &q.token).await?;
    let region: String = sqlx::query_scalar("SELECT residence_region FROM elder WHERE id = $1")
        .bind(&elder)
        .fetch_one(&app.db.pool)
        .await?;
    let mut tx = app.db.begin().await?;
    let code = super::meal_code::issue(&mut tx, &app.keys, &elder).await?;
    audit::append(
        &mut tx,
        &who(&ip),
        Entry {
            action: "home_care.meal_code",
            entity: "elder",
            entity_id: Some(&elder),
            region_code: Some(&region),
            detail: serde_json::json!({"valid_until": code.valid_until}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(code))
}

/// Booked by the family and not yet dispatched, at most this many at once.
const FAMILY_OPEN_ORDERS: i64 = 3;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FamilyOrderReq {
    pub token: String,
    /// One of the view's `providers`
    pub provider_id: String,
    /// cleaning / bathing / meal / emergency / medical_escort / mobility / personal_care, or 助洁 …
    pub service: String,
    /// 上门时间 "YYYY-MM-DD HH:MM" (China time), from two hours to 30 days ahead
    pub planned_start: String,
    /// 服务时长（分钟）, 30–240
    pub planned_minutes: i64,
    /// 想说的话 (what to bring, which door)
    pub note: Option<String>,
}

/// The family books a visit (预约上门服务) with a provider the view offered; it waits there for a
/// caregiver like any other order, marked as the family's. At most three waiting at once. Audited.
#[utoipa::path(post, path = "/api/v1/public/home-care/orders", tag = "home_service", request_body = FamilyOrderReq,
    responses((status = 201, body = Said), (status = 401, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn order(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(q): Json<FamilyOrderReq>,
) -> ApiResult<(axum::http::StatusCode, Json<Said>)> {
    throttle(&app, &ip)?;
    let elder = by_token(&app.db, &q.token).await?;
    if !(30..=240).contains(&q.planned_minutes) {
        return Err(ApiError::invalid(
            "planned_minutes",
            "服务时长请选 30 分钟到 4 小时",
        ));
    }
    let (_, start_min) = super::start_of(&q.planned_start)?;
    let now_min = (crate::platform::now_secs() + 8 * 3600) / 60;
    if start_min < now_min + 120 || start_min > now_min + 30 * 24 * 60 {
        return Err(ApiError::invalid(
            "planned_start",
            "上门时间请选两小时以后、30 天以内的时间",
        ));
    }
    let region: String = sqlx::query_scalar("SELECT residence_region FROM elder WHERE id = $1")
        .bind(&elder)
        .fetch_one(&app.db.pool)
        .await?;
    if !providers_for(&app.db, &elder, &region)
        .await?
        .iter()
        .any(|p| p.id == q.provider_id.trim())
    {
        return Err(ApiError::invalid("provider_id", "请从列表中选择服务机构"));
    }
    // The provider does this service under its contract on that day (else it could not be paid).
    let service = yiyang_kernel::service_order::service(&q.service).ok_or_else(|| {
        ApiError::invalid(
            "service",
            "服务项目应为：助餐、助浴、助急、助医、助行、助洁、照护",
        )
    })?;
    let day = q
        .planned_start
        .trim()
        .get(..10)
        .unwrap_or_default()
        .to_string();
    let offered: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM provider_price r JOIN provider_contract c ON c.org_id = r.org_id \
         WHERE r.org_id = $1 AND r.service = $2 AND c.ends_on >= $3",
    )
    .bind(q.provider_id.trim())
    .bind(service)
    .bind(&day)
    .fetch_one(&app.db.pool)
    .await?;
    if offered == 0 {
        return Err(ApiError::invalid(
            "service",
            "所选服务机构那天不提供这项服务，请换一项服务或换一家机构",
        ));
    }
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM service_order WHERE elder_id = $1 AND state = 'created' AND created_by LIKE '家属预约%'",
    )
    .bind(&elder)
    .fetch_one(&app.db.pool)
    .await?;
    if waiting >= FAMILY_OPEN_ORDERS {
        return Err(ApiError::conflict(format!(
            "已有 {waiting} 次预约在等待安排，请等服务机构安排后再预约，或拨打 12349"
        )));
    }
    let note = crate::institution::text("note", "想说的话", q.note.as_deref(), 200)?;
    let county = yiyang_kernel::RegionCode::parse(&format!("{}000000", &region[..6]))
        .map_err(|e| ApiError::conflict(e.to_string()))?;
    let who = Who {
        actor_id: None,
        actor_name: format!("家属预约 {}", ip.as_deref().unwrap_or("-")),
    };
    let o = super::create(
        &app.db,
        &crate::identity::Scope::of(&county),
        &who,
        super::NewOrder {
            provider_id: q.provider_id.trim().to_string(),
            elder_id: elder,
            service: q.service,
            planned_start: q.planned_start,
            planned_minutes: q.planned_minutes,
            note: Some(if note.is_empty() {
                "家属预约".to_string()
            } else {
                format!("家属预约：{note}")
            }),
        },
    )
    .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(Said {
            message: format!(
                "预约已提交：{} {}，等待{}安排护理员，安排好后会电话联系您。如需改期或取消，请拨打 12349。",
                o.planned_start, o.service_zh, o.provider_name
            ),
        }),
    ))
}

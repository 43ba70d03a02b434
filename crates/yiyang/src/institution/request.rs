//! Applications for a public bed made by the family on the public pages (网上申请). A request is
//! not yet a place in the queue: an officer calls the family back, checks the person against the
//! registry and accepts it — then it becomes an application dated the day the family asked — or
//! refuses it with the reason, which the family reads on the same page.
//!
//! The public answer is the same for every well-formed request (registered or not, asked before
//! or not): the page says nothing about who is in the registry. The ID and the phone are kept
//! encrypted like the registry's; the officer sees them masked.

use crate::app::AppState;
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::identity::http::ClientIp;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult, Problem};
use crate::platform::migrations::Stmt::{self, *};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::Row;

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE admission_request (id TEXT PRIMARY KEY, citizen_id_enc BLOB NOT NULL, \
         citizen_id_masked TEXT NOT NULL, citizen_id_bidx TEXT NOT NULL, name TEXT NOT NULL, \
         phone_enc BLOB NOT NULL, phone_masked TEXT NOT NULL, note TEXT, state TEXT NOT NULL, \
         created_at TEXT NOT NULL, decided_at TEXT, decided_by TEXT, reason TEXT, application_id TEXT, \
         CONSTRAINT admission_request_state_check CHECK (state = 'open' OR state = 'accepted' OR state = 'refused'))",
    ),
    Both("CREATE INDEX admission_request_person ON admission_request (citizen_id_bidx, state)"),
    Both("CREATE INDEX admission_request_state ON admission_request (state, created_at)"),
];

/// A repeat is the same family asking again (the same ID, name and phone): kept once. Anyone
/// else naming the same ID is kept apart, so nobody can take over or probe another's request.
pub const MIGRATION_PHONE: &[Stmt] = &[Both(
    "ALTER TABLE admission_request ADD COLUMN phone_bidx TEXT",
)];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestForm {
    /// 老人的 18 位身份证号
    pub citizen_id: String,
    /// 老人的姓名
    pub name: String,
    /// 家属的联系电话（工作人员回电核实）
    pub phone: String,
    /// 想说明的情况（可不填）
    pub note: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Received {
    pub message: String,
}

/// A family asks for a public bed for their elder. Throttled; the answer is the same for every
/// well-formed request; a second request while one is open is not stored twice. Audited.
#[utoipa::path(post, path = "/api/v1/public/admission-requests", tag = "institution", request_body = RequestForm,
    responses((status = 200, body = Received), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn submit(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(f): Json<RequestForm>,
) -> ApiResult<Json<Received>> {
    if !app.public_throttle.allow(ip.as_deref().unwrap_or("-")) {
        return Err(ApiError::too_many("请求过于频繁，请稍后再试"));
    }
    let today = crate::platform::today();
    let cid = yiyang_kernel::CitizenId::parse(f.citizen_id.trim(), today)
        .map_err(|e| ApiError::invalid("citizen_id", format!("身份证号无效：{e}")))?;
    let name = super::text("name", "姓名", Some(&f.name), 30)?;
    if name.is_empty() {
        return Err(ApiError::invalid("name", "请填写老人的姓名"));
    }
    let phone =
        crate::registry::model::parse_phone(&f.phone).map_err(|e| ApiError::invalid("phone", e))?;
    let note = super::text("note", "情况说明", f.note.as_deref(), 200)?;
    let bidx = app
        .keys
        .blind_index(crate::registry::store::CID_DOMAIN, cid.as_str());
    let phone_bidx = app
        .keys
        .blind_index(crate::registry::store::PHONE_DOMAIN, &phone);
    let who = Who {
        actor_id: None,
        actor_name: format!("公众申请 {}", ip.as_deref().unwrap_or("-")),
    };
    let mut tx = app.db.begin().await?;
    let open = sqlx::query(
        "SELECT id FROM admission_request WHERE citizen_id_bidx = $1 AND name = $2 AND phone_bidx = $3 AND state = 'open'",
    )
    .bind(&bidx)
    .bind(&name)
    .bind(&phone_bidx)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match open {
        Some(r) => r.get::<String, _>(0),
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            sqlx::query(
                "INSERT INTO admission_request (id, citizen_id_enc, citizen_id_masked, citizen_id_bidx, name, phone_enc, \
                 phone_masked, note, state, created_at, phone_bidx) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10)",
            )
            .bind(&id)
            .bind(app.keys.encrypt(cid.as_str()))
            .bind(cid.masked())
            .bind(&bidx)
            .bind(&name)
            .bind(app.keys.encrypt(&phone))
            .bind(yiyang_kernel::mask::phone(&phone))
            .bind(Some(&note).filter(|n| !n.is_empty()))
            .bind(crate::platform::now_rfc3339())
            .bind(&phone_bidx)
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    audit::append(
        &mut tx,
        &who,
        Entry {
            action: "admission.request.submit",
            entity: "admission_request",
            entity_id: Some(&id),
            region_code: None,
            detail: "{}".into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Received {
        message: "已收到您的入住申请。民政部门工作人员会在 5 个工作日内打电话给您核实情况；受理后，可在本页用身份证号和姓名查询轮候位次。".into(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Request {
    pub id: String,
    pub name: String,
    pub citizen_id_masked: String,
    pub phone_masked: String,
    pub note: Option<String>,
    /// open / accepted / refused
    pub state: String,
    pub created_at: String,
    /// The person as the registry has them (in the caller's area), or none
    pub elder_id: Option<String>,
    /// 居住地, when found
    pub residence: Option<String>,
    /// Why it cannot be accepted as it stands (not found in the registry, already waiting …)
    pub problem: Option<String>,
}

/// The person a request names, found in the registry inside the scope by ID and name together:
/// (elder id, residence region).
async fn person(
    db: &Db,
    scope: &Scope,
    bidx: &str,
    name: &str,
) -> ApiResult<Option<(String, String)>> {
    Ok(sqlx::query(
        "SELECT id, residence_region FROM elder WHERE citizen_id_bidx = $1 AND name = $2 AND status = 'active'",
    )
    .bind(bidx)
    .bind(name)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
    .filter(|(_, region)| scope.contains(region)))
}

/// Whether the caller may see and take a request: its person lives in the caller's area; or the
/// registry does not know them yet, the caller works for a county or more, and the ID was issued
/// inside that area (its first six digits). Returns the person when found in the area.
async fn visible(
    db: &Db,
    scope: &Scope,
    bidx: &str,
    name: &str,
    masked: &str,
) -> ApiResult<(bool, Option<(String, String)>)> {
    let found = person(db, scope, bidx, name).await?;
    if found.is_some() {
        return Ok((true, found));
    }
    let registered = sqlx::query("SELECT 1 FROM elder WHERE citizen_id_bidx = $1 AND name = $2")
        .bind(bidx)
        .bind(name)
        .fetch_optional(&db.pool)
        .await?
        .is_some();
    // Someone registered elsewhere is that place's to take.
    let ours = match &scope.root {
        None => true,
        Some(r) => {
            r.level() <= yiyang_kernel::RegionLevel::County && masked.starts_with(r.prefix())
        }
    };
    Ok((!registered && ours, None))
}

/// The open requests the caller may take (see [`visible`]), IDs and phones masked; the list read
/// is audited.
pub async fn list(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    who: &Who,
) -> ApiResult<Vec<Request>> {
    let rows = sqlx::query(
        "SELECT id, name, citizen_id_masked, phone_masked, note, state, created_at, citizen_id_bidx \
         FROM admission_request WHERE state = 'open' ORDER BY created_at LIMIT 500",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut out = vec![];
    for r in rows {
        let (bidx, name, masked): (String, String, String) = (r.get(7), r.get(1), r.get(2));
        let (shown, found) = visible(db, scope, &bidx, &name, &masked).await?;
        if !shown {
            continue;
        }
        let problem = match &found {
            None => Some("档案中没有此人：请先核实并在老年人档案中登记，再受理".to_string()),
            Some((id, _)) => {
                let waiting = sqlx::query(
                    "SELECT 1 FROM admission_application WHERE elder_id = $1 AND state = 'waiting'",
                )
                .bind(id)
                .fetch_optional(&db.pool)
                .await?;
                waiting.map(|_| "此人已在轮候中，受理不会重复登记".to_string())
            }
        };
        out.push(Request {
            id: r.get(0),
            name,
            citizen_id_masked: masked,
            phone_masked: r.get(3),
            note: r.get(4),
            state: r.get(5),
            created_at: r.get(6),
            residence: found.as_ref().map(|(_, region)| regions.path_name(region)),
            elder_id: found.map(|(id, _)| id),
            problem,
        });
    }
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.request.list",
            entity: "admission_request",
            entity_id: None,
            region_code: scope.root.as_ref().map(|r| r.as_str()),
            detail: serde_json::json!({"rows": out.len()}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// accept / refuse
    pub action: String,
    /// For accept: the region whose public beds (default: the person's county, or the caller's
    /// own area when the county is beyond it)
    pub region_code: Option<String>,
    /// For refuse: why, in words the family will read
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Decided {
    pub state: String,
    pub application_id: Option<String>,
}

/// A request the caller may see, still open: (name, ID index, made at); 404 outside.
async fn open_request(db: &Db, people: &Scope, id: &str) -> ApiResult<(String, String, String)> {
    let r = sqlx::query(
        "SELECT name, citizen_id_bidx, created_at, state, citizen_id_masked FROM admission_request WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("未找到该网上申请"))?;
    let (name, bidx, created, state, masked): (String, String, String, String, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
    if !visible(db, people, &bidx, &name, &masked).await?.0 {
        return Err(ApiError::not_found("未找到该网上申请"));
    }
    if state != "open" {
        return Err(ApiError::conflict("该网上申请已处理，请刷新后查看"));
    }
    Ok((name, bidx, created))
}

/// Move a request on from `from`; `false` when someone else moved it first.
async fn settle(
    tx: &mut crate::platform::db::Tx<'_>,
    id: &str,
    from: &str,
    to: &str,
    who: &Who,
    reason: Option<&str>,
    application_id: Option<&str>,
) -> ApiResult<bool> {
    Ok(sqlx::query(
        "UPDATE admission_request SET state = $3, decided_at = $4, decided_by = $5, reason = $6, application_id = $7 \
         WHERE id = $1 AND state = $2",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(crate::platform::now_rfc3339())
    .bind(&who.actor_name)
    .bind(reason)
    .bind(application_id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

/// Accept a request (it becomes an application in the queue, dated the day the family asked) or
/// refuse it with the reason. The request is taken before its application is made, so a refusal
/// at the same moment finds it taken; should the application fail, it is open again. Audited.
pub async fn decide(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    scope: &Scope,
    people: &Scope,
    who: &Who,
    id: &str,
    d: Decision,
) -> ApiResult<Decided> {
    let (name, bidx, created) = open_request(db, people, id).await?;
    let taken = || ApiError::conflict("该网上申请刚被他人处理，请刷新后查看");
    let (mut tx, action, application_id, reason) = match d.action.as_str() {
        "accept" => {
            let Some((elder_id, residence)) = person(db, people, &bidx, &name).await? else {
                return Err(ApiError::conflict(
                    "档案中没有此人：请先核实并在老年人档案中登记，再受理",
                ));
            };
            let county = format!("{}000000", &residence[..6]);
            let region = match d
                .region_code
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                Some(r) => r.to_string(),
                None if scope.contains(&county) => county,
                None => scope
                    .root
                    .as_ref()
                    .map_or(county, |r| r.as_str().to_string()),
            };
            let mut tx = db.begin().await?;
            if !settle(&mut tx, id, "open", "accepted", who, None, None).await? {
                return Err(taken());
            }
            tx.commit().await?;
            // Already waiting: the request is answered by the place they hold.
            let waiting: Option<String> = sqlx::query_scalar(
                "SELECT id FROM admission_application WHERE elder_id = $1 AND state = 'waiting'",
            )
            .bind(&elder_id)
            .fetch_optional(&db.pool)
            .await?;
            let applied = match waiting {
                Some(a) => Ok(a),
                None => super::queue::apply(
                    db,
                    keys,
                    scope,
                    Some(people),
                    who,
                    super::queue::ApplyReq {
                        region_code: Some(region),
                        elder_id: Some(elder_id),
                        citizen_id: None,
                        name: None,
                        applied_on: crate::platform::local_day(&created).map(|d| d.to_string()),
                        note: Some("网上申请".into()),
                    },
                )
                .await
                .map(|a| a.application_id),
            };
            let mut tx = db.begin().await?;
            match applied {
                Ok(a) => {
                    settle(&mut tx, id, "accepted", "accepted", who, None, Some(&a)).await?;
                    (tx, "admission.request.accept", Some(a), None)
                }
                Err(e) => {
                    settle(&mut tx, id, "accepted", "open", who, None, None).await?;
                    tx.commit().await?;
                    return Err(e);
                }
            }
        }
        "refuse" => {
            let reason = super::text("reason", "原因", d.reason.as_deref(), 200)?;
            if reason.chars().count() < 2 {
                return Err(ApiError::invalid(
                    "reason",
                    "请写明不予受理的原因（家属会在查询页看到）",
                ));
            }
            let mut tx = db.begin().await?;
            if !settle(&mut tx, id, "open", "refused", who, Some(&reason), None).await? {
                return Err(taken());
            }
            (tx, "admission.request.refuse", None, Some(reason))
        }
        _ => {
            return Err(ApiError::invalid(
                "action",
                "操作应为 accept（受理）或 refuse（不予受理）",
            ));
        }
    };
    audit::append(
        &mut tx,
        who,
        Entry {
            action,
            entity: "admission_request",
            entity_id: Some(id),
            region_code: None,
            detail: serde_json::json!({"application_id": application_id, "reason": reason})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Decided {
        state: if application_id.is_some() {
            "accepted"
        } else {
            "refused"
        }
        .into(),
        application_id,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallBackReq {
    /// 事由 (for the audit trail)
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallBack {
    pub citizen_id: String,
    pub phone: String,
}

/// The family's phone and the full ID, to call back and check: for those who may reveal registry
/// IDs, with a reason; audited.
pub async fn reveal(
    db: &Db,
    keys: &crate::platform::crypto::KeyRing,
    people: &Scope,
    who: &Who,
    id: &str,
    reason: &str,
) -> ApiResult<CallBack> {
    let why = super::text("reason", "事由", Some(reason), 200)?;
    if why.chars().count() < 2 {
        return Err(ApiError::invalid("reason", "请填写查看事由"));
    }
    open_request(db, people, id).await?;
    let r = sqlx::query("SELECT citizen_id_enc, phone_enc FROM admission_request WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await?;
    let out = CallBack {
        citizen_id: keys.decrypt(&r.get::<Vec<u8>, _>(0))?,
        phone: keys.decrypt(&r.get::<Vec<u8>, _>(1))?,
    };
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.request.reveal",
            entity: "admission_request",
            entity_id: Some(id),
            region_code: None,
            detail: serde_json::json!({"reason": why}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// What the family's lookup says of a request not (yet) in the queue: open or refused, with the
/// reason. By ID and name together.
pub async fn status_of(db: &Db, bidx: &str, name: &str) -> ApiResult<Option<String>> {
    let r = sqlx::query(
        "SELECT state, created_at, reason FROM admission_request WHERE citizen_id_bidx = $1 AND name = $2 \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(bidx)
    .bind(name)
    .fetch_optional(&db.pool)
    .await?;
    Ok(r.and_then(|r| {
        let (state, at, reason): (String, String, Option<String>) = (r.get(0), r.get(1), r.get(2));
        let on = crate::platform::local_day(&at).map_or_else(|| at.clone(), |d| d.to_string());
        match state.as_str() {
            "open" => Some(format!(
                "您在 {on} 提交的网上申请已收到，正在受理，工作人员会打电话给您核实情况"
            )),
            "refused" => Some(format!(
                "您在 {on} 提交的网上申请未被受理：{}。如有疑问请拨打 12349",
                reason.unwrap_or_default()
            )),
            _ => None,
        }
    }))
}

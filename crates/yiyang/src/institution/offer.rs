//! Offers of a public bed to the queue (入住邀请): when a bed frees, the home asks for the first
//! waiting applicant — by the policy's order — whose needs the bed meets (someone who cannot look
//! after themselves, 中度失能 or worse, only onto a nursing bed). The bed is held for them for the
//! policy's days; acceptance admits them onto it, a refusal or no answer in time closes the offer
//! and, by the policy, keeps their place or ends their application. Every step audited, and said
//! in Chinese.

use super::queue::{self, Codes};
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;
use yiyang_kernel::RegionCode;

pub const MIGRATION: &[Stmt] = &[
    // The offers' terms a region publishes with its queue policy.
    Both("ALTER TABLE admission_policy ADD COLUMN offer_days BIGINT"),
    Both("ALTER TABLE admission_policy ADD COLUMN refusal_keeps_place BIGINT"),
    Both(
        "CREATE TABLE admission_offer (id TEXT PRIMARY KEY, application_id TEXT NOT NULL REFERENCES admission_application (id), \
         bed_id TEXT NOT NULL REFERENCES bed (id), org_id TEXT NOT NULL REFERENCES organisation (id), \
         offered_on TEXT NOT NULL, expires_on TEXT NOT NULL, state TEXT NOT NULL, position BIGINT NOT NULL, \
         reasons TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL, closed_at TEXT, closed_by TEXT, \
         note TEXT, \
         CONSTRAINT admission_offer_state_check CHECK (state = 'open' OR state = 'accepted' OR state = 'refused' OR state = 'expired'))",
    ),
    // One open offer per bed and per application: of two homes offering at once, one wins.
    Both(
        "CREATE UNIQUE INDEX admission_offer_open_bed ON admission_offer (bed_id) WHERE state = 'open'",
    ),
    Both(
        "CREATE UNIQUE INDEX admission_offer_open_application ON admission_offer (application_id) WHERE state = 'open'",
    ),
    Both("CREATE INDEX admission_offer_org ON admission_offer (org_id, offered_on)"),
];

/// An offer as the queue shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OfferBrief {
    pub offer_id: String,
    pub org_name: String,
    pub place: String,
    /// The last day to answer
    pub expires_on: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Offer {
    pub id: String,
    pub application_id: String,
    pub bed_id: String,
    pub place: String,
    pub name_masked: String,
    pub citizen_id_masked: String,
    pub age: i32,
    pub ability_level: Option<String>,
    /// The applicant's place in the queue when offered
    pub position: i64,
    /// Why this applicant and this bed, in Chinese
    pub reasons: Vec<String>,
    pub offered_on: String,
    pub expires_on: String,
    /// open / accepted / refused / expired
    pub state: String,
    pub state_zh: String,
    pub note: Option<String>,
}

fn state_zh(s: &str) -> &'static str {
    match s {
        "open" => "等待答复",
        "accepted" => "已接受并入住",
        "refused" => "已谢绝",
        _ => "逾期未答复",
    }
}

/// The open offer holding a bed on `today`, if any: (offer id, last day).
pub(crate) async fn open_on_bed(
    tx: &mut Tx<'_>,
    bed_id: &str,
    today: NaiveDate,
) -> Result<Option<(String, String)>, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT id, expires_on FROM admission_offer WHERE bed_id = $1 AND state = 'open' AND expires_on >= $2",
    )
    .bind(bed_id)
    .bind(super::ymd(today))
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| (r.get(0), r.get(1))))
}

/// Called in the admission's transaction when an offer is taken up.
pub(crate) async fn accepted(tx: &mut Tx<'_>, id: &str, by: &str) -> ApiResult<()> {
    let n = sqlx::query(
        "UPDATE admission_offer SET state = 'accepted', closed_at = $2, closed_by = $3 WHERE id = $1 AND state = 'open'",
    )
    .bind(id)
    .bind(crate::platform::now_rfc3339())
    .bind(by)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(ApiError::conflict("该入住邀请已不在等待答复中"));
    }
    Ok(())
}

/// The open offers by application (for the queue).
pub(crate) async fn open_by_application(db: &Db) -> ApiResult<HashMap<String, OfferBrief>> {
    let rows = sqlx::query(
        "SELECT f.application_id, f.id, o.name, b.building, b.floor, b.room, b.label, f.expires_on \
         FROM admission_offer f JOIN organisation o ON o.id = f.org_id JOIN bed b ON b.id = f.bed_id WHERE f.state = 'open'",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                OfferBrief {
                    offer_id: r.get(1),
                    org_name: r.get(2),
                    place: super::place_at(r, 3),
                    expires_on: r.get(7),
                },
            )
        })
        .collect())
}

/// Close the offers nobody answered in time (before `today`), as a refusal would be: by the
/// policy of the application's region, the place is kept or the application ends. Audited.
pub async fn expire_due(
    db: &Db,
    regions: &crate::region::RegionIndex,
    today: NaiveDate,
) -> ApiResult<usize> {
    let due: Vec<(String, String)> = sqlx::query(
        "SELECT f.id, a.region_code FROM admission_offer f JOIN admission_application a ON a.id = f.application_id \
         WHERE f.state = 'open' AND f.expires_on < $1",
    )
    .bind(super::ymd(today))
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let system = Who {
        actor_id: None,
        actor_name: "系统（入住邀请逾期）".into(),
    };
    for (id, region) in &due {
        let keeps = match RegionCode::parse(region) {
            Ok(rc) => {
                queue::policy_for(db, regions, &rc)
                    .await?
                    .1
                    .refusal_keeps_place
            }
            Err(_) => true,
        };
        let mut tx = db.begin().await?;
        close(&mut tx, &system, id, "expired", "逾期未答复", keeps).await?;
        tx.commit().await?;
    }
    Ok(due.len())
}

/// End an open offer (refused or expired) and apply the policy to the application.
async fn close(
    tx: &mut Tx<'_>,
    who: &Who,
    id: &str,
    state: &str,
    note: &str,
    keeps_place: bool,
) -> ApiResult<()> {
    let r = sqlx::query(
        "SELECT f.application_id, f.org_id, o.region_code FROM admission_offer f JOIN organisation o ON o.id = f.org_id \
         WHERE f.id = $1 AND f.state = 'open'",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::conflict("该入住邀请已不在等待答复中"))?;
    let (application, region): (String, String) = (r.get(0), r.get(2));
    sqlx::query(
        "UPDATE admission_offer SET state = $2, closed_at = $3, closed_by = $4, note = $5 WHERE id = $1 AND state = 'open'",
    )
    .bind(id)
    .bind(state)
    .bind(crate::platform::now_rfc3339())
    .bind(&who.actor_name)
    .bind(note)
    .execute(&mut **tx)
    .await?;
    let outcome = if keeps_place {
        "保留轮候位置"
    } else {
        sqlx::query(
            "UPDATE admission_application SET state = 'withdrawn', closed_at = $1, closed_reason = $2 WHERE id = $3 AND state = 'waiting'",
        )
        .bind(crate::platform::now_rfc3339())
        .bind(format!("入住邀请{}，按轮候规则不再保留位置", if state == "expired" { "逾期未答复" } else { "被谢绝" }))
        .bind(&application)
        .execute(&mut **tx)
        .await?;
        "按规则结束轮候申请"
    };
    audit::append(
        tx,
        who,
        Entry {
            action: if state == "expired" {
                "admission.offer.expire"
            } else {
                "admission.offer.refuse"
            },
            entity: "admission_offer",
            entity_id: Some(id),
            region_code: Some(&region),
            detail:
                serde_json::json!({"application_id": application, "note": note, "outcome": outcome})
                    .to_string(),
        },
    )
    .await?;
    Ok(())
}

/// Offer a vacant bed to the first waiting applicant whose needs it meets, by the policy of the
/// home's region (applications made for the home's region or any region above it). Audited.
pub async fn offer(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    who: &Who,
    bed_id: &str,
) -> ApiResult<Offer> {
    let today = crate::platform::today();
    expire_due(db, regions, today).await?;
    let b = sqlx::query(
        "SELECT b.org_id, o.region_code, o.name, o.ownership, b.status, b.nursing, b.building, b.floor, b.room, b.label, o.kind \
         FROM bed b JOIN organisation o ON o.id = b.org_id WHERE b.id = $1",
    )
    .bind(bed_id)
    .fetch_optional(&db.pool)
    .await?
    .filter(|r| scope.holds(&r.get::<String, _>(0), &r.get::<String, _>(1)))
    .ok_or_else(|| ApiError::not_found("未找到该床位（或不在您的管辖范围内）"))?;
    let (org_id, region, org_name): (String, String, String) = (b.get(0), b.get(1), b.get(2));
    if !super::RESIDENTIAL_KINDS.contains(&b.get::<String, _>(10).as_str()) {
        return Err(ApiError::invalid("bed_id", "该机构不收住老人"));
    }
    if b.get::<String, _>(3) == "private" {
        return Err(ApiError::conflict(
            "入住轮候只用于公办和公建民营机构的床位，民办机构请直接办理入住",
        ));
    }
    if b.get::<String, _>(4) != "open" {
        return Err(ApiError::conflict("该床位已撤销"));
    }
    let nursing = b.get::<i64, _>(5) != 0;
    let place = super::place_at(&b, 6);
    let taken: i64 =
        sqlx::query("SELECT COUNT(*) FROM bed_stay WHERE bed_id = $1 AND until_on IS NULL")
            .bind(bed_id)
            .fetch_one(&db.pool)
            .await?
            .get(0);
    if taken > 0 {
        return Err(ApiError::conflict(format!("{place} 有人入住，不是空床")));
    }
    let rc = RegionCode::parse(&region).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let chain: Vec<String> = rc
        .lineage()
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    let (policy, view) = queue::policy_for(db, regions, &rc).await?;
    let list = queue::waiting(db, Codes::AnyOf(&chain), today).await?;
    let busy: HashMap<String, OfferBrief> = open_by_application(db).await?;
    let dependent = yiyang_kernel::staffing::DEPENDENT_LEVEL;
    let pick = queue::ranked(&policy, list, today)
        .into_iter()
        .find(|(_, w)| {
            !busy.contains_key(&w.application_id)
                && (nursing || w.level.is_none_or(|l| l < dependent))
        });
    let Some((placed, w)) = pick else {
        return Err(ApiError::conflict(if nursing {
            "轮候名单中没有可以邀请的申请人".to_string()
        } else {
            "轮候名单中没有适合该床位的申请人（不能自理的老人须入住护理型床位）".to_string()
        }));
    };
    let expires = today + chrono::Duration::days(view.offer_days - 1);
    let mut reasons = vec![format!(
        "按{}，{}排第 {} 位（{}）",
        view.source,
        yiyang_kernel::mask::name(&w.name),
        placed.position,
        placed.tier_label
    )];
    let level = w
        .level
        .and_then(|l| yiyang_kernel::assessment::LEVEL_NAMES.get(l as usize))
        .map(|s| s.to_string());
    reasons.push(match (&level, nursing) {
        (Some(l), true) if w.level.is_some_and(|x| x >= dependent) => {
            format!("{l}，本床为护理型床位")
        }
        (Some(l), _) => format!("{l}，可入住{}床位", if nursing { "护理型" } else { "普通" }),
        (None, _) => "无有效能力评估，按可自理安排".into(),
    });
    let skipped = placed.position - 1;
    if skipped > 0 {
        reasons.push(format!(
            "排在前面的 {skipped} 人已有入住邀请或需要护理型床位"
        ));
    }
    reasons.push(format!(
        "请在 {} 前答复；{}",
        super::ymd(expires),
        if view.refusal_keeps_place {
            "谢绝或逾期仍保留轮候位置"
        } else {
            "谢绝或逾期将结束轮候申请"
        }
    ));
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO admission_offer (id, application_id, bed_id, org_id, offered_on, expires_on, state, position, reasons, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(&w.application_id)
    .bind(bed_id)
    .bind(&org_id)
    .bind(super::ymd(today))
    .bind(super::ymd(expires))
    .bind(placed.position as i64)
    .bind(reasons.join("\n"))
    .bind(&who.actor_name)
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ApiError::conflict("该床位或该申请人刚收到另一份入住邀请，请刷新后再试")
        }
        e => e.into(),
    })?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "admission.offer",
            entity: "admission_offer",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail: serde_json::json!({"application_id": w.application_id, "bed": place, "org": org_name,
                "position": placed.position, "expires_on": super::ymd(expires)})
            .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Offer {
        id,
        application_id: w.application_id,
        bed_id: bed_id.to_string(),
        place,
        name_masked: yiyang_kernel::mask::name(&w.name),
        citizen_id_masked: w.citizen_id_masked,
        age: w.age,
        ability_level: level,
        position: placed.position as i64,
        reasons,
        offered_on: super::ymd(today),
        expires_on: super::ymd(expires),
        state: "open".into(),
        state_zh: state_zh("open").into(),
        note: None,
    })
}

/// A home's offers, the open first, then the last 50 answered.
pub async fn list(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    org_id: &str,
) -> ApiResult<Vec<Offer>> {
    super::org_in_scope(db, scope, org_id).await?;
    let today = crate::platform::today();
    expire_due(db, regions, today).await?;
    let rows = sqlx::query(
        "SELECT f.id, f.application_id, f.bed_id, b.building, b.floor, b.room, b.label, e.name, e.citizen_id_masked, e.birth_date, \
         f.position, f.reasons, f.offered_on, f.expires_on, f.state, f.note \
         FROM admission_offer f JOIN bed b ON b.id = f.bed_id JOIN admission_application a ON a.id = f.application_id \
         JOIN elder e ON e.id = a.elder_id WHERE f.org_id = $1 \
         ORDER BY CASE WHEN f.state = 'open' THEN 0 ELSE 1 END, f.created_at DESC LIMIT 60",
    )
    .bind(org_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let state: String = r.get(14);
            let birth =
                NaiveDate::parse_from_str(&r.get::<String, _>(9), "%Y-%m-%d").unwrap_or(today);
            Offer {
                id: r.get(0),
                application_id: r.get(1),
                bed_id: r.get(2),
                place: super::place_at(r, 3),
                name_masked: yiyang_kernel::mask::name(&r.get::<String, _>(7)),
                citizen_id_masked: r.get(8),
                age: yiyang_kernel::citizen_id::age_on(birth, today),
                ability_level: None,
                position: r.get(10),
                reasons: r.get::<String, _>(11).lines().map(str::to_string).collect(),
                offered_on: r.get(12),
                expires_on: r.get(13),
                state_zh: state_zh(&state).into(),
                state,
                note: r.get(15),
            }
        })
        .collect())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// accept / refuse
    pub action: String,
    /// 入住日期 when accepting (default today)
    pub admitted_on: Option<String>,
    /// Why, when refusing (the family's words)
    pub note: Option<String>,
}

/// The family's answer, recorded by the home: acceptance admits onto the offered bed; a refusal
/// closes the offer and, by the policy, keeps the place or ends the application.
pub async fn answer(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    who: &Who,
    id: &str,
    a: Answer,
) -> ApiResult<Option<super::Admitted>> {
    let today = crate::platform::today();
    expire_due(db, regions, today).await?;
    let r = sqlx::query(
        "SELECT f.org_id, o.region_code, f.bed_id, f.state, a.elder_id, a.region_code FROM admission_offer f \
         JOIN organisation o ON o.id = f.org_id JOIN admission_application a ON a.id = f.application_id WHERE f.id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .filter(|r| scope.holds(&r.get::<String, _>(0), &r.get::<String, _>(1)))
    .ok_or_else(|| ApiError::not_found("未找到该入住邀请"))?;
    let state: String = r.get(3);
    if state != "open" {
        return Err(ApiError::conflict(format!(
            "该入住邀请{}，不能再答复",
            state_zh(&state)
        )));
    }
    match a.action.as_str() {
        "accept" => {
            let req = super::AdmitReq {
                elder_id: None,
                citizen_id: None,
                name: None,
                bed_id: r.get(2),
                admitted_on: a.admitted_on,
                note: a.note,
            };
            let org: String = r.get(0);
            Ok(Some(
                super::admit_as(db, scope, who, &org, req, r.get(4), Some(id)).await?,
            ))
        }
        "refuse" => {
            let note = super::text("note", "谢绝原因", a.note.as_deref(), 200)?;
            let keeps = match RegionCode::parse(&r.get::<String, _>(5)) {
                Ok(rc) => {
                    queue::policy_for(db, regions, &rc)
                        .await?
                        .1
                        .refusal_keeps_place
                }
                Err(_) => true,
            };
            let mut tx = db.begin().await?;
            close(
                &mut tx,
                who,
                id,
                "refused",
                if note.is_empty() {
                    "家属谢绝"
                } else {
                    &note
                },
                keeps,
            )
            .await?;
            tx.commit().await?;
            Ok(None)
        }
        _ => Err(ApiError::invalid(
            "action",
            "答复应为 accept（接受并入住）或 refuse（谢绝）",
        )),
    }
}

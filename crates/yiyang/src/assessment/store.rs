//! Assessment records: one row per assessment with its full input, the engine's result and the
//! standard and configuration used. A correction is a new row that names the one it corrects;
//! nothing is ever overwritten.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::assessment::{self, Config, Input};

/// A.1.3 评估原因.
pub const REASONS: &[(&str, &str)] = &[
    ("first", "首次评估"),
    ("routine", "常规评估"),
    ("immediate", "即时评估"),
    ("disputed", "因对评估结果有疑问进行的复评"),
    ("other", "其他"),
    ("ltc_adoption", "直接采信长护险评定"),
];

/// The standard name stored for adopted ratings.
pub const LTC_STANDARD: &str = "长期护理保险失能等级评定";

/// Default validity of an assessment (months); regions may set their own (`assessment_validity`).
pub const VALIDITY_MONTHS: u32 = 12;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssessment {
    /// first / routine / immediate / disputed / other（A.1.3）
    pub reason: String,
    /// 评估基准日期 YYYY-MM-DD
    pub assessed_on: String,
    /// Two assessors' names.
    pub assessors: Vec<String>,
    /// 信息提供者
    pub informant: Option<String>,
    /// 评估机构, e.g. 如皋市颐康养老服务评估中心 (named on the report)
    #[serde(default)]
    pub organisation: Option<String>,
    /// The id of the record this one corrects.
    pub corrects: Option<String>,
    #[schema(value_type = Object)]
    pub input: Input,
}

/// A long-term-care-insurance rating to adopt (直接采信) instead of a new assessment.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdoption {
    /// Who rated, e.g. 如皋市医疗保障局
    pub source: String,
    /// Date of the rating, YYYY-MM-DD
    pub rated_on: String,
    /// The rating as the source wrote it, e.g. 重度失能二级
    pub source_level: String,
    /// Mapped ability level 0–4 (能力完好 … 完全失能)
    pub level: u8,
    pub corrects: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssessmentRecord {
    pub id: String,
    pub elder_id: String,
    /// assessment / ltc_adoption
    pub kind: String,
    /// For adopted ratings: who rated.
    pub source: Option<String>,
    pub standard: String,
    pub reason: String,
    pub reason_label: String,
    pub assessed_on: String,
    pub valid_until: String,
    pub assessors: Vec<String>,
    pub informant: Option<String>,
    /// 评估机构 (records made before it was asked have none)
    pub organisation: Option<String>,
    pub corrects: Option<String>,
    /// Corrected by a later record.
    pub superseded: bool,
    /// Past its validity date.
    pub expired: bool,
    /// The record that counts now: the newest one not corrected and not expired.
    pub current: bool,
    /// A legacy MZ/T 039-2013 result: shown read-only, never the current level.
    pub legacy: bool,
    pub final_level: i64,
    pub final_level_name: String,
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// Who entered it: the account's display name (its username if it has none).
    pub recorded_by: String,
    pub recorded_at: String,
}

fn label(code: &str) -> String {
    REASONS
        .iter()
        .find(|r| r.0 == code)
        .map_or(code, |r| r.1)
        .to_string()
}

/// A date field (YYYY-MM-DD) that may not lie in the future; `what` names it in the message.
fn past_date(field: &str, raw: &str, what: &str, today: NaiveDate) -> ApiResult<NaiveDate> {
    let on = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(field, format!("{what}格式应为 YYYY-MM-DD")))?;
    if on > today {
        return Err(ApiError::invalid(field, format!("{what}不能晚于今天")));
    }
    Ok(on)
}

/// The elder's residence if inside `scope`; outside looks like absent.
async fn elder_region(tx: &mut Tx<'_>, scope: &Scope, elder_id: &str) -> ApiResult<String> {
    sqlx::query(
        "SELECT residence_region FROM elder WHERE id = $1 AND residence_region BETWEEN $2 AND $3",
    )
    .bind(elder_id)
    .bind(&scope.lo)
    .bind(&scope.hi)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.get(0))
    .ok_or_else(|| ApiError::not_found("未找到该老年人档案，或不在您的管辖范围内"))
}

/// The end of validity of a record made on `on`, valid for `months`.
pub fn valid_until(on: NaiveDate, months: u32) -> NaiveDate {
    on.checked_add_months(chrono::Months::new(months))
        .unwrap_or(on)
}

/// Validity settings per region (region code → months), all of them: a handful of rows.
pub async fn validity_settings(
    conn: &mut sqlx::AnyConnection,
) -> Result<Vec<(String, u32)>, sqlx::Error> {
    Ok(
        sqlx::query(
            "SELECT region_code, months FROM assessment_validity ORDER BY region_code DESC",
        )
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get::<i64, _>(1).clamp(1, 120) as u32))
        .collect(),
    )
}

/// Months of validity for a person living in `region`: the most specific setting on its path to
/// the root (settings sorted by code descending: a region's ancestors have smaller codes), else
/// [`VALIDITY_MONTHS`].
pub fn validity_for(settings: &[(String, u32)], region: &str) -> u32 {
    let Ok(rc) = yiyang_kernel::RegionCode::parse(region) else {
        return VALIDITY_MONTHS;
    };
    settings
        .iter()
        .find(|(code, _)| yiyang_kernel::RegionCode::parse(code).is_ok_and(|s| s.contains(&rc)))
        .map_or(VALIDITY_MONTHS, |s| s.1)
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValiditySetting {
    pub region_code: String,
    /// 1–60
    pub months: u32,
}

/// Set the validity of assessments for a region and everything below it (audited). Applies to
/// records made from now on.
pub async fn set_validity(
    db: &Db,
    scope: &Scope,
    who: &Who,
    s: ValiditySetting,
) -> ApiResult<ValiditySetting> {
    if !(1..=60).contains(&s.months) {
        return Err(ApiError::invalid("months", "有效期应为 1–60 个月"));
    }
    let rc = yiyang_kernel::RegionCode::parse(&s.region_code)
        .map_err(|_| ApiError::invalid("region_code", "区划代码无效"))?;
    if !scope.covers(&rc) {
        return Err(ApiError::forbidden("该区划不在您的管辖范围内"));
    }
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO assessment_validity (region_code, months, set_by, set_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (region_code) DO UPDATE SET months = excluded.months, set_by = excluded.set_by, set_at = excluded.set_at",
    )
    .bind(rc.as_str())
    .bind(s.months as i64)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "assessment.validity_set",
            entity: "region",
            entity_id: Some(rc.as_str()),
            region_code: Some(rc.as_str()),
            detail: serde_json::json!({"months": s.months}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ValiditySetting {
        region_code: rc.as_str().to_string(),
        months: s.months,
    })
}

/// The settings inside the caller's scope and above it (those that apply to its people).
pub async fn list_validity(db: &Db, scope: &Scope) -> ApiResult<Vec<ValiditySetting>> {
    let mut conn = db.pool.acquire().await?;
    let all = validity_settings(&mut conn).await?;
    Ok(all
        .into_iter()
        .filter(|(code, _)| {
            yiyang_kernel::RegionCode::parse(code).is_ok_and(|rc| {
                scope.covers(&rc) || scope.root.as_ref().is_some_and(|r| rc.contains(r))
            })
        })
        .map(|(region_code, months)| ValiditySetting {
            region_code,
            months,
        })
        .collect())
}

/// A correction must name an earlier record of the same elder.
async fn check_corrects(tx: &mut Tx<'_>, elder_id: &str, corrects: Option<&str>) -> ApiResult<()> {
    let Some(c) = corrects else { return Ok(()) };
    sqlx::query("SELECT 1 FROM assessment WHERE id = $1 AND elder_id = $2")
        .bind(c)
        .bind(elder_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::invalid("corrects", "要更正的评估记录不存在或不属于该老年人"))
}

/// The engine's outcome as stored, with any level-change reasons also in words, so the printed
/// report reads them as recorded.
pub fn result_json(o: &assessment::Outcome) -> String {
    #[derive(Serialize)]
    struct Stored<'a> {
        #[serde(flatten)]
        outcome: &'a assessment::Outcome,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        reason_texts: Vec<String>,
    }
    serde_json::to_string(&Stored {
        outcome: o,
        reason_texts: o.reasons.iter().map(|r| r.zh()).collect(),
    })
    .unwrap_or_default()
}

/// The newest record of an elder that no later record corrects, in the order the history lists;
/// legacy MZ/T 039-2013 results are history only (their levels do not convert to GB/T's).
const CURRENT_SQL: &str = "SELECT a.id, a.final_level, a.assessed_on, a.valid_until FROM assessment a \
     WHERE a.elder_id = $1 AND a.standard <> 'MZ/T 039-2013' \
     AND NOT EXISTS (SELECT 1 FROM assessment c WHERE c.corrects = a.id) \
     ORDER BY a.assessed_on DESC, a.recorded_at DESC, a.id DESC LIMIT 1";

/// Record the elder's current assessment in `elder_ability` (or remove it when none is left),
/// stamped with the next change number so the registry's search index picks the level up.
pub(crate) async fn set_current(tx: &mut Tx<'_>, elder_id: &str) -> Result<(), sqlx::Error> {
    // The change number first: it locks `registry_head` until commit, so on PostgreSQL a
    // concurrent writer's choice cannot be made from a state older than ours (SQLite writers are
    // serialised anyway).
    let seq = crate::registry::store::next_change_seq(tx).await?;
    let cur = sqlx::query(CURRENT_SQL)
        .bind(elder_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(r) = cur else {
        sqlx::query("DELETE FROM elder_ability WHERE elder_id = $1")
            .bind(elder_id)
            .execute(&mut **tx)
            .await?;
        // Nothing left to stamp there: stamp the person, so the search index drops the level.
        sqlx::query("UPDATE elder SET change_seq = $1 WHERE id = $2")
            .bind(seq)
            .bind(elder_id)
            .execute(&mut **tx)
            .await?;
        return Ok(());
    };
    sqlx::query(UPSERT_CURRENT_ONE)
        .bind(elder_id)
        .bind(r.get::<String, _>(0))
        .bind(r.get::<i64, _>(1))
        .bind(r.get::<String, _>(2))
        .bind(r.get::<String, _>(3))
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const UPSERT_CURRENT_ONE: &str = "INSERT INTO elder_ability (elder_id, assessment_id, level, assessed_on, valid_until, change_seq) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (elder_id) DO UPDATE SET assessment_id = excluded.assessment_id, \
     level = excluded.level, assessed_on = excluded.assessed_on, valid_until = excluded.valid_until, change_seq = excluded.change_seq";

/// The upsert's tail for many rows at once (the import). An import commits in chunks, so a newer
/// assessment recorded meanwhile by someone else is never replaced by an older one of the file.
pub(crate) const UPSERT_CURRENT_SET: &str = "ON CONFLICT (elder_id) DO UPDATE SET assessment_id = excluded.assessment_id, \
     level = excluded.level, assessed_on = excluded.assessed_on, valid_until = excluded.valid_until, change_seq = excluded.change_seq \
     WHERE excluded.assessed_on >= elder_ability.assessed_on";

/// The ability level that counts for an elder today: the current assessment's final level while it
/// is valid, else none. The public API later capabilities (eligibility, indicators) read.
pub async fn current_level(
    db: &Db,
    elder_id: &str,
    today: NaiveDate,
) -> Result<Option<u8>, sqlx::Error> {
    let r = sqlx::query("SELECT level, valid_until FROM elder_ability WHERE elder_id = $1")
        .bind(elder_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(r.and_then(|r| {
        let level: Option<i64> = r.get(0);
        let until: Option<String> = r.get(1);
        level_if_valid(level, until.as_deref(), today)
    }))
}

/// A stored level counts while its validity date has not passed.
pub fn level_if_valid(
    level: Option<i64>,
    valid_until: Option<&str>,
    today: NaiveDate,
) -> Option<u8> {
    let until = NaiveDate::parse_from_str(valid_until?, "%Y-%m-%d").ok()?;
    (until >= today)
        .then_some(level?)
        .and_then(|l| u8::try_from(l).ok())
        .filter(|l| *l <= 4)
}

/// A record just written, as the list shows it (with its current/expired marks).
async fn stored(
    db: &Db,
    scope: &Scope,
    elder_id: &str,
    id: &str,
    today: NaiveDate,
) -> ApiResult<AssessmentRecord> {
    list(db, scope, elder_id, today)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("assessment {id} not found after insert"))
        })
}

/// Validate, score and store one assessment of an elder in scope; audited in the same transaction.
pub async fn record(
    db: &Db,
    scope: &Scope,
    who: &Who,
    elder_id: &str,
    a: NewAssessment,
    today: NaiveDate,
) -> ApiResult<AssessmentRecord> {
    if !REASONS.iter().any(|r| r.0 == a.reason) {
        return Err(ApiError::invalid(
            "reason",
            "评估原因应为 first、routine、immediate、disputed 或 other（首次、常规、即时、复评、其他）",
        ));
    }
    let on = past_date("assessed_on", &a.assessed_on, "评估日期", today)?;
    let assessors: Vec<String> = a
        .assessors
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if assessors.len() != 2 || assessors[0] == assessors[1] {
        return Err(ApiError::invalid("assessors", "请填写两名不同的评估员"));
    }
    let organisation = a
        .organisation
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if organisation.is_some_and(|o| o.chars().count() > 60) {
        return Err(ApiError::invalid(
            "organisation",
            "评估机构名称不能超过60个字",
        ));
    }
    let cfg = Config::default();
    let outcome = assessment::assess(&a.input, &cfg)
        .map_err(|e| ApiError::invalid(&format!("input.{}", e.field()), e.to_string()))?;
    let mut tx = db.begin().await?;
    let region = elder_region(&mut tx, scope, elder_id).await?;
    check_corrects(&mut tx, elder_id, a.corrects.as_deref()).await?;
    let valid_until = valid_until(
        on,
        validity_for(&validity_settings(&mut tx).await?, &region),
    );
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let result = result_json(&outcome);
    let input = serde_json::to_string(&a.input).unwrap_or_default();
    sqlx::query(
        "INSERT INTO assessment (id, elder_id, standard, reason, assessed_on, valid_until, assessor1, assessor2, \
         informant, corrects, input, result, final_level, recorded_by, recorded_at, organisation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&id)
    .bind(elder_id)
    .bind(assessment::STANDARD)
    .bind(&a.reason)
    .bind(on.to_string())
    .bind(valid_until.to_string())
    .bind(&assessors[0])
    .bind(&assessors[1])
    .bind(a.informant.as_deref().map(str::trim).filter(|s| !s.is_empty()))
    .bind(&a.corrects)
    .bind(&input)
    .bind(&result)
    .bind(outcome.final_level as i64)
    .bind(&who.actor_name)
    .bind(&now)
    .bind(organisation)
    .execute(&mut *tx)
    .await?;
    set_current(&mut tx, elder_id).await?;
    super::assign::close(&mut tx, elder_id).await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: if a.corrects.is_some() {
                "assessment.correct"
            } else {
                "assessment.create"
            },
            entity: "assessment",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail: serde_json::json!({"elder_id": elder_id, "final_level": outcome.final_level, "corrects": a.corrects})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    stored(db, scope, elder_id, &id, today).await
}

/// An elder's assessments as a person reads them: health data, so the read is audited
/// (`assessment.view`) before the answer goes out.
pub async fn view(
    db: &Db,
    read_audit: &audit::ReadAudit,
    scope: &Scope,
    who: &Who,
    elder_id: &str,
    today: NaiveDate,
) -> ApiResult<Vec<AssessmentRecord>> {
    let (region, records) = list_in(db, scope, elder_id, today).await?;
    read_audit
        .record(
            who,
            Entry {
                action: "assessment.view",
                entity: "elder",
                entity_id: Some(elder_id),
                region_code: Some(&region),
                detail: serde_json::json!({"records": records.len()}).to_string(),
            },
        )
        .await?;
    Ok(records)
}

/// Every assessment of an elder in scope, newest first; `superseded` marks corrected ones.
pub async fn list(
    db: &Db,
    scope: &Scope,
    elder_id: &str,
    today: NaiveDate,
) -> ApiResult<Vec<AssessmentRecord>> {
    Ok(list_in(db, scope, elder_id, today).await?.1)
}

async fn list_in(
    db: &Db,
    scope: &Scope,
    elder_id: &str,
    today: NaiveDate,
) -> ApiResult<(String, Vec<AssessmentRecord>)> {
    let region: String = sqlx::query(
        "SELECT residence_region FROM elder WHERE id = $1 AND residence_region BETWEEN $2 AND $3",
    )
    .bind(elder_id)
    .bind(&scope.lo)
    .bind(&scope.hi)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("未找到该老年人档案，或不在您的管辖范围内"))?
    .get(0);
    let rows = sqlx::query(
        "SELECT a.id, a.elder_id, a.standard, a.reason, a.assessed_on, a.valid_until, a.assessor1, a.assessor2, \
         a.informant, a.corrects, a.input, a.result, a.final_level, \
         COALESCE((SELECT u.display_name FROM app_user u WHERE u.username = a.recorded_by AND u.display_name <> ''), a.recorded_by), \
         a.recorded_at, (SELECT COUNT(*) FROM assessment c WHERE c.corrects = a.id), a.kind, a.source, a.organisation \
         FROM assessment a JOIN elder e ON e.id = a.elder_id \
         WHERE a.elder_id = $1 AND e.residence_region BETWEEN $2 AND $3 \
         ORDER BY a.assessed_on DESC, a.recorded_at DESC, a.id DESC",
    )
    .bind(elder_id)
    .bind(&scope.lo)
    .bind(&scope.hi)
    .fetch_all(&db.pool)
    .await?;
    let today = today.to_string();
    let mut out: Vec<AssessmentRecord> = rows
        .iter()
        .map(|r| {
            let reason: String = r.get(3);
            let level: i64 = r.get(12);
            let json = |i: usize| {
                serde_json::from_str(&r.get::<String, _>(i)).unwrap_or(serde_json::Value::Null)
            };
            AssessmentRecord {
                id: r.get(0),
                elder_id: r.get(1),
                standard: r.get(2),
                reason_label: label(&reason),
                reason,
                assessed_on: r.get(4),
                valid_until: r.get(5),
                assessors: [r.get::<String, _>(6), r.get::<String, _>(7)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect(),
                kind: r.get(16),
                source: r.get(17),
                organisation: r.get(18),
                informant: r.get(8),
                corrects: r.get(9),
                superseded: r.get::<i64, _>(15) > 0,
                expired: r.get::<String, _>(5) < today,
                current: false,
                legacy: r.get::<String, _>(2) == super::import::LEGACY_STANDARD,
                final_level: level,
                final_level_name: assessment::LEVEL_NAMES
                    .get(level as usize)
                    .copied()
                    .unwrap_or("")
                    .to_string(),
                result: json(11),
                input: json(10),
                recorded_by: r.get(13),
                recorded_at: r.get(14),
            }
        })
        .collect();
    // The record that counts is the one `elder_ability` names (the newest not corrected, not
    // legacy), while it is valid: the same answer the search and the due list give.
    let current: Option<String> = sqlx::query(
        "SELECT assessment_id FROM elder_ability WHERE elder_id = $1 AND valid_until >= $2",
    )
    .bind(elder_id)
    .bind(&today)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| r.get(0));
    if let Some(c) = out.iter_mut().find(|r| Some(&r.id) == current.as_ref()) {
        c.current = true;
    }
    Ok((region, out))
}

/// Kinds of reassessment trigger (复评触发), with their labels.
pub const TRIGGER_KINDS: &[(&str, &str)] = &[
    ("risk_event", "照护风险事件（跌倒、走失、噎食、自伤等）"),
    ("diagnosis", "新的诊断（痴呆、精神障碍等）"),
    ("disputed", "对评估结果有异议"),
    ("condition_change", "身体状况明显变化"),
];

fn trigger_label(kind: &str) -> &str {
    TRIGGER_KINDS
        .iter()
        .find(|k| k.0 == kind)
        .map_or(kind, |k| k.1)
}

/// The few words a list cell has room for.
fn trigger_short(kind: &str) -> &str {
    match kind {
        "risk_event" => "风险事件",
        "diagnosis" => "新诊断",
        "disputed" => "结果有异议",
        "condition_change" => "状况变化",
        other => other,
    }
}

/// A trigger is open while the person's current assessment predates it: there is none, it was made
/// on an earlier day, or on the same day but recorded before the trigger (a fall in the afternoon
/// after a morning assessment still counts).
const TRIGGER_OPEN: &str = "t.elder_id = e.id AND (ea.assessed_on IS NULL OR t.noted_on > ea.assessed_on \
     OR (t.noted_on = ea.assessed_on AND t.recorded_at > (SELECT a.recorded_at FROM assessment a WHERE a.id = ea.assessment_id)))";

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrigger {
    /// risk_event / diagnosis / disputed / condition_change
    pub kind: String,
    /// When it happened or was learnt, YYYY-MM-DD
    pub noted_on: String,
    /// What happened, in a few words (no names of others, no ID numbers)
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Trigger {
    pub id: String,
    pub kind: String,
    pub kind_label: String,
    pub noted_on: String,
    pub note: Option<String>,
    pub recorded_by: String,
}

/// Note a reassessment trigger for an elder in scope (audited). Later capabilities (visits,
/// emergencies) note theirs through this function too.
pub async fn note_trigger(
    db: &Db,
    scope: &Scope,
    who: &Who,
    elder_id: &str,
    t: NewTrigger,
    today: NaiveDate,
) -> ApiResult<Trigger> {
    if !TRIGGER_KINDS.iter().any(|k| k.0 == t.kind) {
        return Err(ApiError::invalid(
            "kind",
            "触发类型应为 risk_event、diagnosis、disputed 或 condition_change（风险事件、新诊断、有异议、状况变化）",
        ));
    }
    let on = past_date("noted_on", &t.noted_on, "日期", today)?;
    let note = t.note.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if note.is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::invalid("note", "说明不能超过200字"));
    }
    let mut tx = db.begin().await?;
    let region = elder_region(&mut tx, scope, elder_id).await?;
    let id = insert_trigger(&mut tx, who, elder_id, &region, &t.kind, on, note).await?;
    tx.commit().await?;
    Ok(Trigger {
        id,
        kind_label: trigger_label(&t.kind).into(),
        kind: t.kind,
        noted_on: on.to_string(),
        note: note.map(str::to_string),
        recorded_by: who.actor_name.clone(),
    })
}

/// Write a trigger (a kind of [`TRIGGER_KINDS`]) and its audit entry in the caller's transaction:
/// a care visit notes the ones its flags raise together with the visit.
pub(crate) async fn insert_trigger(
    tx: &mut crate::platform::db::Tx<'_>,
    who: &Who,
    elder_id: &str,
    region: &str,
    kind: &str,
    on: NaiveDate,
    note: Option<&str>,
) -> ApiResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO assessment_trigger (id, elder_id, kind, noted_on, note, recorded_by, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(elder_id)
    .bind(kind)
    .bind(on.to_string())
    .bind(note)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        who,
        Entry {
            action: "assessment.trigger",
            entity: "elder",
            entity_id: Some(elder_id),
            region_code: Some(region),
            detail: serde_json::json!({"kind": kind, "noted_on": on.to_string()}).to_string(),
        },
    )
    .await?;
    Ok(id)
}

/// An assignment still open: no assessment on or after the day it was made (an imported one ends it
/// too, without touching the assignment row). Over `a` (assignment) and `ea` (elder_ability).
const ASSIGNMENT_OPEN: &str =
    "(ea.assessed_on IS NULL OR ea.assessed_on < substr(a.assigned_at, 1, 10))";

/// Days before the end of validity from which a reassessment counts as due.
pub const DUE_SOON_DAYS: u64 = 60;

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
pub struct DueReq {
    /// 区划代码：只列该区划及其下级（默认为账号的管辖范围）
    pub region_code: Option<String>,
    /// all（默认）/ missing（无有效评估）/ triggered（有复评触发）/ expiring（即将到期）
    pub status: Option<String>,
    /// The "missing" group counts people from this age (default 80).
    pub age_min: Option<i32>,
    /// all（默认）/ mine（派给我的）/ none（未派单）
    pub assigned: Option<String>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

/// The due list asked by POST, which may also carry a name fragment (a name never goes in a URL).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DueSearch {
    /// 区划代码：只列该区划及其下级（默认为账号的管辖范围）
    pub region_code: Option<String>,
    /// all（默认）/ missing / triggered / expiring
    pub status: Option<String>,
    /// The "missing" group counts people from this age (default 80).
    pub age_min: Option<i32>,
    /// all（默认）/ mine（派给我的）/ none（未派单）
    pub assigned: Option<String>,
    /// 姓名片段
    pub name: Option<String>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

impl DueSearch {
    /// The filter without the name.
    pub fn filter(&self) -> DueReq {
        DueReq {
            region_code: self.region_code.clone(),
            status: self.status.clone(),
            age_min: self.age_min,
            assigned: self.assigned.clone(),
            page: self.page,
            page_size: self.page_size,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DueRow {
    pub elder_id: String,
    pub name: String,
    pub sex: String,
    pub age: i32,
    pub citizen_id_masked: String,
    pub residence_region: String,
    pub residence_region_name: String,
    /// never（从未评估）/ expired（已过期）/ triggered（需复评）/ expiring（即将到期）
    pub due: String,
    pub due_label: String,
    /// The newest trigger noted since the current assessment, if any.
    pub trigger_kind: Option<String>,
    pub last_assessed_on: Option<String>,
    pub valid_until: Option<String>,
    pub last_level_name: Option<String>,
    /// The assessor the person is assigned to (display name), if any.
    pub assessor_name: Option<String>,
    pub assigned_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DuePage {
    pub items: Vec<DueRow>,
    /// Counted up to 10,000 (`total_capped`).
    pub total: i64,
    pub total_capped: bool,
    pub page: i64,
    pub page_size: i64,
}

/// Who is to be assessed, in order: people of `age_min`+ without a valid assessment (never assessed,
/// or the last one expired), then everyone whose assessment runs out within [`DUE_SOON_DAYS`].
/// Active residents in scope only.
/// `name` narrows to people whose name holds it; `me` is the caller's account id (`assigned=mine`).
#[allow(clippy::too_many_arguments)]
pub async fn due(
    db: &Db,
    index: &crate::registry::search_index::SearchIndex,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    q: &DueReq,
    name: Option<&str>,
    me: &str,
    today: NaiveDate,
) -> ApiResult<DuePage> {
    due_in(db, index, scope, regions, q, name, me, today, None).await
}

/// Rows an export of the due list may hold.
pub const DUE_EXPORT_MAX: i64 = 100_000;

/// The due list as XLSX (masked IDs), for the village workers; audited as an export.
pub async fn due_xlsx(
    db: &Db,
    index: &crate::registry::search_index::SearchIndex,
    scope: &Scope,
    who: &Who,
    regions: &crate::region::RegionIndex,
    q: &DueReq,
    today: NaiveDate,
) -> ApiResult<Vec<u8>> {
    let me = who.actor_id.as_deref().unwrap_or_default();
    let page = due_in(
        db,
        index,
        scope,
        regions,
        q,
        None,
        me,
        today,
        Some(DUE_EXPORT_MAX),
    )
    .await?;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("待评估名单").map_err(anyhow::Error::from)?;
    let head = rust_xlsxwriter::Format::new().set_bold();
    let cols = [
        ("序号", 6),
        ("姓名", 10),
        ("性别", 6),
        ("年龄", 6),
        ("身份证号", 22),
        ("居住地", 36),
        ("情况", 10),
        ("上次评估日期", 14),
        ("上次等级", 10),
        ("有效期至", 12),
        ("评估员", 10),
    ];
    let w = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
    for (i, (t, width)) in cols.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, *t, &head)
            .map_err(w)?;
        ws.set_column_width(i as u16, *width).map_err(w)?;
    }
    for (n, r) in page.items.iter().enumerate() {
        let row = n as u32 + 1;
        ws.write_number(row, 0, row as f64).map_err(w)?;
        let cells = [
            r.name.as_str(),
            r.sex.as_str(),
            "",
            r.citizen_id_masked.as_str(),
            r.residence_region_name.as_str(),
            r.due_label.as_str(),
            r.last_assessed_on.as_deref().unwrap_or(""),
            r.last_level_name.as_deref().unwrap_or(""),
            r.valid_until.as_deref().unwrap_or(""),
            r.assessor_name.as_deref().unwrap_or(""),
        ];
        for (i, c) in cells.iter().enumerate() {
            ws.write_string(row, i as u16 + 1, *c).map_err(w)?;
        }
        ws.write_number(row, 3, r.age as f64).map_err(w)?;
    }
    ws.set_freeze_panes(1, 0).map_err(w)?;
    let bytes = wb.save_to_buffer().map_err(w)?;
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "assessment.due_export",
            entity: "assessment",
            entity_id: None,
            region_code: scope.root.as_ref().map(|r| r.as_str()),
            detail: serde_json::json!({"rows": page.items.len(), "region_code": q.region_code, "status": q.status})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(bytes)
}

/// The due list's filter, validated: the region range, the age threshold's birth date, the
/// horizon of "soon", which groups (missing, triggered, expiring) and the page.
struct DueFilter {
    lo: String,
    hi: String,
    /// None all; Some(true) assigned to the caller; Some(false) not assigned to anyone.
    assigned: Option<bool>,
    name: Option<String>,
    born_by: NaiveDate,
    soon: NaiveDate,
    groups: [bool; 3],
    page: i64,
    size: i64,
}

fn due_filter(
    scope: &Scope,
    q: &DueReq,
    name: Option<&str>,
    today: NaiveDate,
    export: Option<i64>,
) -> ApiResult<DueFilter> {
    let (lo, hi) = scope.narrow(q.region_code.as_deref())?;
    let assigned = match q.assigned.as_deref().unwrap_or("all") {
        "all" | "" => None,
        "mine" => Some(true),
        "none" => Some(false),
        other => {
            return Err(ApiError::invalid(
                "assigned",
                format!("不支持的派单筛选“{other}”，应为 all、mine 或 none"),
            ));
        }
    };
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 20) {
        return Err(ApiError::invalid("name", "姓名片段不能超过20个字"));
    }
    let age_min = q.age_min.unwrap_or(80);
    if !(0..=150).contains(&age_min) {
        return Err(ApiError::invalid("age_min", "年龄应在 0–150 之间"));
    }
    let groups = match q.status.as_deref().unwrap_or("all") {
        "all" | "" => [true, true, true],
        "missing" => [true, false, false],
        "triggered" => [false, true, false],
        "expiring" => [false, false, true],
        other => {
            return Err(ApiError::invalid(
                "status",
                format!("不支持的筛选“{other}”，应为 all、missing、triggered 或 expiring"),
            ));
        }
    };
    let paged = crate::platform::web::paging(q.page, q.page_size, 20, 200)?;
    let (page, size) = match export {
        Some(max) => (1, max),
        None => paged,
    };
    Ok(DueFilter {
        lo,
        hi,
        assigned,
        name: name.map(str::to_lowercase),
        born_by: today
            .checked_sub_months(chrono::Months::new(12 * age_min as u32))
            .unwrap_or(today),
        soon: today + chrono::Days::new(DUE_SOON_DAYS),
        groups,
        page,
        size,
    })
}

/// The due list: one page, or (`export`) up to that many rows from the start. Who is due comes
/// from the registry's in-memory index (a county-wide list in SQL took 7–16 s on 1M people: every
/// row's group had to be computed and sorted); the page's rows are then read by id.
#[allow(clippy::too_many_arguments)]
async fn due_in(
    db: &Db,
    index: &crate::registry::search_index::SearchIndex,
    scope: &Scope,
    regions: &crate::region::RegionIndex,
    q: &DueReq,
    name: Option<&str>,
    me: &str,
    today: NaiveDate,
    export: Option<i64>,
) -> ApiResult<DuePage> {
    use crate::registry::search_index::{self as si, DueQuery};
    let f = due_filter(scope, q, name, today, export)?;
    // Open assignments in the range, when the list is filtered by them: at most the people an
    // office has handed out, read here and matched in the index walk.
    let (only, except) = match f.assigned {
        None => (None, None),
        Some(mine) => {
            let mut qy = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT a.elder_id FROM assessment_assignment a CROSS JOIN elder e \
                 LEFT JOIN elder_ability ea ON ea.elder_id = e.id \
                 WHERE e.id = a.elder_id AND e.residence_region BETWEEN $1 AND $2 AND {ASSIGNMENT_OPEN}{}",
                if mine { " AND a.assessor_id = $3" } else { "" }
            )))
            .bind(&f.lo)
            .bind(&f.hi);
            if mine {
                qy = qy.bind(me);
            }
            let ids: std::collections::HashSet<u128> = qy
                .fetch_all(&db.pool)
                .await?
                .iter()
                .filter_map(|r| uuid::Uuid::parse_str(&r.get::<String, _>(0)).ok())
                .map(|u| u.as_u128())
                .collect();
            if mine {
                (Some(ids), None)
            } else {
                (None, Some(ids))
            }
        }
    };
    // People with an open trigger in the range: few, so read them here, starting from the
    // triggers (CROSS JOIN fixes that order on SQLite, whose planner would otherwise walk the
    // region's people first: 3 s for a county of 1M).
    let triggered: std::collections::HashSet<u128> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT t.elder_id FROM assessment_trigger t CROSS JOIN elder e \
         LEFT JOIN elder_ability ea ON ea.elder_id = e.id \
         WHERE e.id = t.elder_id AND e.residence_region BETWEEN $1 AND $2 AND {TRIGGER_OPEN}"
    )))
    .bind(&f.lo)
    .bind(&f.hi)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .filter_map(|r| uuid::Uuid::parse_str(&r.get::<String, _>(0)).ok())
    .map(|u| u.as_u128())
    .collect();
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| ApiError::invalid("region_code", "区划代码无效"))
    };
    let date = |d: NaiveDate| si::date_num(&d.to_string()).unwrap_or(0);
    index.refresh(db).await?;
    let cap = crate::registry::store::COUNT_CAP;
    let hits = index
        .due(&DueQuery {
            lo: num(&f.lo)?,
            hi: num(&f.hi)?,
            today: date(today),
            born_by: date(f.born_by),
            soon: date(f.soon),
            groups: f.groups,
            triggered,
            active: si::status_code("active"),
            name: f.name.clone(),
            only,
            except,
            offset: ((f.page - 1) * f.size) as usize,
            limit: f.size as usize,
            cap: cap as usize,
        })
        .await;
    // The page's rows, by id, inside the scope again (the index is a cache).
    let open_trigger = format!(
        "(SELECT t.kind FROM assessment_trigger t WHERE {TRIGGER_OPEN} ORDER BY t.noted_on DESC, t.id DESC LIMIT 1)"
    );
    let mut by_id: std::collections::HashMap<String, DueRow> = std::collections::HashMap::new();
    let today_s = today.to_string();
    let born_by = f.born_by.to_string();
    for part in hits.ids.chunks(500) {
        let sql = format!(
            "SELECT e.id, e.name, e.sex, e.birth_date, e.citizen_id_masked, e.residence_region, \
             ea.valid_until, ea.assessed_on, ea.level, {open_trigger}, u.display_name, a.assigned_at \
             FROM elder e LEFT JOIN elder_ability ea ON ea.elder_id = e.id \
             LEFT JOIN assessment_assignment a ON a.elder_id = e.id AND {ASSIGNMENT_OPEN} \
             LEFT JOIN app_user u ON u.id = a.assessor_id \
             WHERE e.residence_region BETWEEN $1 AND $2 AND e.id IN {}",
            crate::registry::store::numbered_list(3, part.len())
        );
        let mut qy = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&f.lo)
            .bind(&f.hi);
        for id in part {
            qy = qy.bind(id);
        }
        for r in qy.fetch_all(&db.pool).await? {
            let birth: String = r.get(3);
            let region: String = r.get(5);
            let valid_until: Option<String> = r.get(6);
            let level: Option<i64> = r.get(8);
            let trigger: Option<String> = r.get(9);
            let is_missing = valid_until.as_ref().is_none_or(|v| *v < today_s) && birth <= born_by;
            let (due, due_label) = match (&valid_until, is_missing, &trigger) {
                (None, true, _) => ("never", "从未评估".to_string()),
                (Some(_), true, _) => ("expired", "已过期".to_string()),
                (_, false, Some(k)) => ("triggered", format!("需复评（{}）", trigger_short(k))),
                _ => ("expiring", "即将到期".to_string()),
            };
            let id: String = r.get(0);
            by_id.insert(
                id.clone(),
                DueRow {
                    elder_id: id,
                    name: r.get(1),
                    sex: r.get(2),
                    age: NaiveDate::parse_from_str(&birth, "%Y-%m-%d")
                        .map(|b| yiyang_kernel::citizen_id::age_on(b, today))
                        .unwrap_or_default(),
                    citizen_id_masked: r.get(4),
                    residence_region_name: regions.path_name(&region),
                    residence_region: region,
                    due: due.into(),
                    due_label,
                    trigger_kind: trigger,
                    last_assessed_on: r.get(7),
                    valid_until,
                    last_level_name: level.and_then(|l| {
                        assessment::LEVEL_NAMES
                            .get(l as usize)
                            .map(|s| s.to_string())
                    }),
                    assessor_name: r.get(10),
                    assigned_at: r.get(11),
                },
            );
        }
    }
    let items = hits.ids.iter().filter_map(|id| by_id.remove(id)).collect();
    let counted = hits.counted as i64;
    Ok(DuePage {
        items,
        total: counted.min(cap),
        total_capped: counted > cap,
        page: f.page,
        page_size: f.size,
    })
}

/// The same list computed in SQL, as the reference the index is tested against: the page's ids
/// and the count (up to the cap).
pub async fn due_sql(
    db: &Db,
    scope: &Scope,
    q: &DueReq,
    today: NaiveDate,
) -> ApiResult<(Vec<String>, i64)> {
    let f = due_filter(scope, q, None, today, None)?;
    // $3 today, $4 the due-soon horizon, $5 the latest birth date of the "missing" group.
    let missing = "((ea.valid_until IS NULL OR ea.valid_until < $3) AND e.birth_date <= $5)";
    let expiring = "(ea.valid_until >= $3 AND ea.valid_until < $4)";
    let triggered = format!("EXISTS (SELECT 1 FROM assessment_trigger t WHERE {TRIGGER_OPEN})");
    let mut any = vec![];
    if f.groups[0] {
        any.push(missing.to_string());
    }
    if f.groups[1] {
        any.push(format!("({triggered} AND NOT {missing})"));
    }
    if f.groups[2] {
        any.push(format!("({expiring} AND NOT {triggered})"));
    }
    let from = format!(
        "FROM elder e LEFT JOIN elder_ability ea ON ea.elder_id = e.id \
         WHERE e.residence_region BETWEEN $1 AND $2 AND e.status = 'active' AND ({})",
        any.join(" OR ")
    );
    let cap = crate::registry::store::COUNT_CAP;
    let (today_s, soon, born_by) = (today.to_string(), f.soon.to_string(), f.born_by.to_string());
    let counted: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM (SELECT 1 {from} LIMIT {}) AS capped",
        cap + 1
    )))
    .bind(&f.lo)
    .bind(&f.hi)
    .bind(&today_s)
    .bind(&soon)
    .bind(&born_by)
    .fetch_one(&db.pool)
    .await?
    .get(0);
    let ids = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT e.id {from} \
         ORDER BY CASE WHEN {missing} THEN 0 WHEN {triggered} THEN 1 ELSE 2 END, \
         e.residence_region, e.birth_date, e.id LIMIT $6 OFFSET $7"
    )))
    .bind(&f.lo)
    .bind(&f.hi)
    .bind(&today_s)
    .bind(&soon)
    .bind(&born_by)
    .bind(f.size)
    .bind((f.page - 1) * f.size)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    Ok((ids, counted.min(cap)))
}

/// Record an adopted LTC-insurance rating for an elder in scope (valid 12 months from the rating
/// date, like an assessment); audited in the same transaction.
pub async fn adopt(
    db: &Db,
    scope: &Scope,
    who: &Who,
    elder_id: &str,
    a: NewAdoption,
    today: NaiveDate,
) -> ApiResult<AssessmentRecord> {
    let source = a.source.trim();
    if source.is_empty() || source.chars().count() > 100 {
        return Err(ApiError::invalid("source", "请填写评定机构（100字以内）"));
    }
    let source_level = a.source_level.trim();
    if source_level.is_empty() || source_level.chars().count() > 50 {
        return Err(ApiError::invalid(
            "source_level",
            "请填写原评定等级（50字以内）",
        ));
    }
    if a.level > 4 {
        return Err(ApiError::invalid(
            "level",
            "对应能力等级应为 0–4（能力完好、轻度失能、中度失能、重度失能、完全失能）",
        ));
    }
    let on = past_date("rated_on", &a.rated_on, "评定日期", today)?;
    let mut tx = db.begin().await?;
    let region = elder_region(&mut tx, scope, elder_id).await?;
    check_corrects(&mut tx, elder_id, a.corrects.as_deref()).await?;
    let valid_until = valid_until(
        on,
        validity_for(&validity_settings(&mut tx).await?, &region),
    );
    let id = uuid::Uuid::now_v7().to_string();
    let input = serde_json::json!({"source": source, "rated_on": on.to_string(), "source_level": source_level, "level": a.level});
    let result =
        serde_json::json!({"final_level": a.level, "adopted": true, "source_level": source_level});
    sqlx::query(
        "INSERT INTO assessment (id, elder_id, standard, reason, assessed_on, valid_until, assessor1, assessor2, \
         informant, corrects, input, result, final_level, recorded_by, recorded_at, kind, source) \
         VALUES ($1, $2, $3, 'ltc_adoption', $4, $5, '', '', NULL, $6, $7, $8, $9, $10, $11, 'ltc_adoption', $12)",
    )
    .bind(&id)
    .bind(elder_id)
    .bind(LTC_STANDARD)
    .bind(on.to_string())
    .bind(valid_until.to_string())
    .bind(&a.corrects)
    .bind(input.to_string())
    .bind(result.to_string())
    .bind(a.level as i64)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .bind(source)
    .execute(&mut *tx)
    .await?;
    set_current(&mut tx, elder_id).await?;
    super::assign::close(&mut tx, elder_id).await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "assessment.adopt_ltc",
            entity: "assessment",
            entity_id: Some(&id),
            region_code: Some(&region),
            detail: serde_json::json!({"elder_id": elder_id, "source": source, "level": a.level, "corrects": a.corrects})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    stored(db, scope, elder_id, &id, today).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_follows_the_most_specific_region() {
        // Sorted by code descending, as `validity_settings` returns them.
        let s = vec![
            ("320682104000".to_string(), 6),
            ("320682000000".to_string(), 24),
        ];
        assert_eq!(validity_for(&s, "320682104205"), 6);
        assert_eq!(validity_for(&s, "320682103001"), 24);
        assert_eq!(validity_for(&s, "320623001001"), VALIDITY_MONTHS);
        assert_eq!(validity_for(&[], "320682104205"), VALIDITY_MONTHS);
        let on = NaiveDate::from_ymd_opt(2024, 8, 31).unwrap();
        assert_eq!(valid_until(on, 6).to_string(), "2025-02-28");
    }
}

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
];

/// Default validity of an assessment (months); per-region settings come with the due lists.
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
    /// The id of the record this one corrects.
    pub corrects: Option<String>,
    #[schema(value_type = Object)]
    pub input: Input,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssessmentRecord {
    pub id: String,
    pub elder_id: String,
    pub standard: String,
    pub reason: String,
    pub reason_label: String,
    pub assessed_on: String,
    pub valid_until: String,
    pub assessors: Vec<String>,
    pub informant: Option<String>,
    pub corrects: Option<String>,
    /// Corrected by a later record.
    pub superseded: bool,
    /// Past its validity date.
    pub expired: bool,
    /// The record that counts now: the newest one not corrected and not expired.
    pub current: bool,
    pub final_level: i64,
    pub final_level_name: String,
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
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
    let on = NaiveDate::parse_from_str(&a.assessed_on, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid("assessed_on", "评估日期格式应为 YYYY-MM-DD"))?;
    if on > today {
        return Err(ApiError::invalid("assessed_on", "评估日期不能晚于今天"));
    }
    let assessors: Vec<String> = a
        .assessors
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if assessors.len() != 2 || assessors[0] == assessors[1] {
        return Err(ApiError::invalid("assessors", "请填写两名不同的评估员"));
    }
    let cfg = Config::default();
    let outcome = assessment::assess(&a.input, &cfg).map_err(|e| {
        let field = match &e {
            assessment::InputError::UnknownItem(c) => format!("input.items.{c}"),
            assessment::InputError::MissingItem { code, .. }
            | assessment::InputError::ScoreNotAllowed { code, .. }
            | assessment::InputError::OptionMismatch { code, .. } => format!("input.items.{code}"),
            assessment::InputError::RiskCount(t) => format!("input.risk_events_30d.{t}"),
            assessment::InputError::ComaLevel => "config".into(),
        };
        ApiError::invalid(&field, e.to_string())
    })?;
    let valid_until = on
        .checked_add_months(chrono::Months::new(VALIDITY_MONTHS))
        .unwrap_or(on);
    let mut tx = db.begin().await?;
    let region = elder_region(&mut tx, scope, elder_id).await?;
    if let Some(c) = &a.corrects {
        let same = sqlx::query("SELECT 1 FROM assessment WHERE id = $1 AND elder_id = $2")
            .bind(c)
            .bind(elder_id)
            .fetch_optional(&mut *tx)
            .await?;
        if same.is_none() {
            return Err(ApiError::invalid(
                "corrects",
                "要更正的评估记录不存在或不属于该老年人",
            ));
        }
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::platform::now_rfc3339();
    let result = serde_json::to_string(&outcome).unwrap_or_default();
    let input = serde_json::to_string(&a.input).unwrap_or_default();
    sqlx::query(
        "INSERT INTO assessment (id, elder_id, standard, reason, assessed_on, valid_until, assessor1, assessor2, \
         informant, corrects, input, result, final_level, recorded_by, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
    .execute(&mut *tx)
    .await?;
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
    list(db, scope, elder_id, today)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("assessment {id} not found after insert"))
        })
}

/// Every assessment of an elder in scope, newest first; `superseded` marks corrected ones.
pub async fn list(
    db: &Db,
    scope: &Scope,
    elder_id: &str,
    today: NaiveDate,
) -> ApiResult<Vec<AssessmentRecord>> {
    sqlx::query("SELECT 1 FROM elder WHERE id = $1 AND residence_region BETWEEN $2 AND $3")
        .bind(elder_id)
        .bind(&scope.lo)
        .bind(&scope.hi)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("未找到该老年人档案，或不在您的管辖范围内"))?;
    let rows = sqlx::query(
        "SELECT a.id, a.elder_id, a.standard, a.reason, a.assessed_on, a.valid_until, a.assessor1, a.assessor2, \
         a.informant, a.corrects, a.input, a.result, a.final_level, a.recorded_by, a.recorded_at, \
         (SELECT COUNT(*) FROM assessment c WHERE c.corrects = a.id) \
         FROM assessment a JOIN elder e ON e.id = a.elder_id \
         WHERE a.elder_id = $1 AND e.residence_region BETWEEN $2 AND $3 \
         ORDER BY a.assessed_on DESC, a.recorded_at DESC",
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
                assessors: vec![r.get(6), r.get(7)],
                informant: r.get(8),
                corrects: r.get(9),
                superseded: r.get::<i64, _>(15) > 0,
                expired: r.get::<String, _>(5) < today,
                current: false,
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
    if let Some(c) = out.iter_mut().find(|r| !r.superseded && !r.expired) {
        c.current = true;
    }
    Ok(out)
}

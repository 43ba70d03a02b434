//! Bed subsidies (床位补贴): the amounts a region pays as data (`bed_subsidy_policy`; a region
//! without its own follows the nearest above it, then the default of
//! `yiyang_kernel::bed_subsidy`), and the monthly claim (月度补贴申领) of each home computed from
//! its records alone: one line per resident who lived there in the month, priced by their ability
//! level and the home's ownership and checked by the kernel's rule (no day after death, no leave
//! day past the limit), and one line per new bed accepted that month. Excluded days carry their
//! reason. Money takes a second look, as the payment batches do: a claim is a draft when made,
//! reviewed by another person than its maker, then marked paid; a draft can be made again.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::platform::migrations::Stmt::{self, *};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;
use yiyang_kernel::RegionCode;
use yiyang_kernel::bed_subsidy::{self as rule, Stay, SubsidyPolicy};

pub const MIGRATION: &[Stmt] = &[
    Both(
        "CREATE TABLE bed_subsidy_policy (region_code TEXT PRIMARY KEY, doc TEXT NOT NULL, \
         published_at TEXT NOT NULL, published_by TEXT NOT NULL)",
    ),
    // The day a new bed passed acceptance (验收): its construction subsidy falls in that month.
    Both("ALTER TABLE bed ADD COLUMN accepted_on TEXT"),
    Both(
        "CREATE TABLE bed_claim (id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organisation (id), \
         month TEXT NOT NULL, state TEXT NOT NULL, lines BIGINT NOT NULL, excluded BIGINT NOT NULL, \
         paid_days BIGINT NOT NULL, total_fen BIGINT NOT NULL, created_by TEXT NOT NULL, created_by_id TEXT, \
         created_at TEXT NOT NULL, reviewed_by TEXT, reviewed_by_id TEXT, reviewed_at TEXT, paid_by TEXT, \
         paid_at TEXT, paid_note TEXT, \
         CONSTRAINT bed_claim_state_check CHECK (state = 'draft' OR state = 'reviewed' OR state = 'paid'), \
         CONSTRAINT bed_claim_month_key UNIQUE (org_id, month))",
    ),
    Both("CREATE INDEX bed_claim_month ON bed_claim (month)"),
    Both(
        "CREATE TABLE bed_claim_line (claim_id TEXT NOT NULL REFERENCES bed_claim (id), line_no BIGINT NOT NULL, \
         kind TEXT NOT NULL, ref_id TEXT NOT NULL, elder_id TEXT, place TEXT NOT NULL, ability_level BIGINT, \
         days BIGINT NOT NULL, paid_days BIGINT NOT NULL, amount_fen BIGINT NOT NULL, reasons TEXT NOT NULL, \
         PRIMARY KEY (claim_id, line_no), \
         CONSTRAINT bed_claim_line_kind_check CHECK (kind = 'operating' OR kind = 'construction' OR kind = 'family'))",
    ),
    // A bed's construction subsidy is paid once: the lines that say so, by bed.
    Both(
        "CREATE INDEX bed_claim_line_construction ON bed_claim_line (ref_id) WHERE kind = 'construction'",
    ),
];

// ---- policy ------------------------------------------------------------------------------------

/// A region's amounts as officers write them, in 元 (the database keeps fen).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubsidyAmounts {
    /// 公办 homes' monthly operating subsidy per resident (元/月), by ability level
    /// [能力完好, 轻度失能, 中度失能, 重度失能, 完全失能]
    #[schema(min_items = 5, max_items = 5)]
    pub operating_public: Vec<f64>,
    /// 公建民营
    #[schema(min_items = 5, max_items = 5)]
    pub operating_public_private: Vec<f64>,
    /// 民办
    #[schema(min_items = 5, max_items = 5)]
    pub operating_private: Vec<f64>,
    /// Once per new bed, in the month it passes acceptance (元/床)
    pub construction_public: f64,
    pub construction_public_private: f64,
    pub construction_private: f64,
    /// Per family care bed a month (元/月)
    pub family_bed_monthly: f64,
    /// A leave's days past this many do not count (天)
    pub max_leave_days: i64,
}

fn fen(v: f64) -> ApiResult<i64> {
    if !v.is_finite() || !(0.0..=100_000.0).contains(&v) {
        return Err(ApiError::invalid(
            "amounts",
            "补贴金额应在 0 到 100000 元之间",
        ));
    }
    Ok((v * 100.0).round() as i64)
}

fn yuan(f: i64) -> f64 {
    f as f64 / 100.0
}

impl SubsidyAmounts {
    fn to_policy(&self) -> ApiResult<SubsidyPolicy> {
        let row = |r: &[f64]| -> ApiResult<[i64; 5]> {
            if r.len() != 5 {
                return Err(ApiError::invalid(
                    "amounts",
                    "运营补贴应按能力完好、轻度失能、中度失能、重度失能、完全失能填写 5 个金额",
                ));
            }
            Ok([fen(r[0])?, fen(r[1])?, fen(r[2])?, fen(r[3])?, fen(r[4])?])
        };
        let p = SubsidyPolicy {
            operating_public: row(&self.operating_public)?,
            operating_public_private: row(&self.operating_public_private)?,
            operating_private: row(&self.operating_private)?,
            construction_public: fen(self.construction_public)?,
            construction_public_private: fen(self.construction_public_private)?,
            construction_private: fen(self.construction_private)?,
            family_bed_monthly: fen(self.family_bed_monthly)?,
            max_leave_days: self.max_leave_days,
        };
        if let Some(m) = p.problem() {
            return Err(ApiError::invalid("amounts", m));
        }
        Ok(p)
    }

    fn of(p: &SubsidyPolicy) -> Self {
        let row = |r: &[i64; 5]| r.map(yuan).to_vec();
        Self {
            operating_public: row(&p.operating_public),
            operating_public_private: row(&p.operating_public_private),
            operating_private: row(&p.operating_private),
            construction_public: yuan(p.construction_public),
            construction_public_private: yuan(p.construction_public_private),
            construction_private: yuan(p.construction_private),
            family_bed_monthly: yuan(p.family_bed_monthly),
            max_leave_days: p.max_leave_days,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubsidyPolicyView {
    /// The region whose published amounts these are; none for the default.
    pub region_code: Option<String>,
    /// "如皋市发布的床位补贴标准" or "默认床位补贴标准"
    pub source: String,
    pub amounts: SubsidyAmounts,
    pub published_at: Option<String>,
}

/// The amounts in force for `region`: its own, the nearest ancestor's, or the default.
pub async fn policy_for(
    db: &Db,
    regions: &crate::region::RegionIndex,
    region: &RegionCode,
) -> ApiResult<(SubsidyPolicy, SubsidyPolicyView)> {
    for c in region.lineage() {
        let row =
            sqlx::query("SELECT doc, published_at FROM bed_subsidy_policy WHERE region_code = $1")
                .bind(c.as_str())
                .fetch_optional(&db.pool)
                .await?;
        if let Some(r) = row {
            let p: SubsidyPolicy = serde_json::from_str(&r.get::<String, _>(0))
                .map_err(|e| ApiError::internal(anyhow::Error::from(e)))?;
            let name = regions.name(c.as_str()).unwrap_or(c.as_str()).to_string();
            let view = SubsidyPolicyView {
                region_code: Some(c.as_str().to_string()),
                source: format!("{name}发布的床位补贴标准"),
                amounts: SubsidyAmounts::of(&p),
                published_at: Some(r.get(1)),
            };
            return Ok((p, view));
        }
    }
    let p = SubsidyPolicy::default();
    let view = SubsidyPolicyView {
        region_code: None,
        source: "默认床位补贴标准".into(),
        amounts: SubsidyAmounts::of(&p),
        published_at: None,
    };
    Ok((p, view))
}

/// Publish a region's amounts (replacing its earlier ones); audited with the old and new.
pub async fn publish(
    db: &Db,
    who: &Who,
    region: &RegionCode,
    amounts: &SubsidyAmounts,
) -> ApiResult<()> {
    let p = amounts.to_policy()?;
    let doc = serde_json::to_string(&p).map_err(anyhow::Error::from)?;
    let now = crate::platform::now_rfc3339();
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "UPDATE bed_subsidy_policy SET doc = $2, published_at = $3, published_by = $4 WHERE region_code = $1",
    )
    .bind(region.as_str())
    .bind(&doc)
    .bind(&now)
    .bind(&who.actor_name)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        sqlx::query(
            "INSERT INTO bed_subsidy_policy (region_code, doc, published_at, published_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(region.as_str())
        .bind(&doc)
        .bind(&now)
        .bind(&who.actor_name)
        .execute(&mut *tx)
        .await?;
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "bed_subsidy.policy",
            entity: "region",
            entity_id: Some(region.as_str()),
            region_code: Some(region.as_str()),
            detail: doc,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- computing a month's claims ---------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputeReq {
    pub region_code: String,
    /// YYYY-MM: a past month, or this month up to today
    pub month: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Computed {
    pub month: String,
    /// Claims made (drafts of the month made again included)
    pub claims: i64,
    /// Claims already reviewed or paid, left as they are
    pub kept: i64,
    pub lines: i64,
    /// Lines with days that do not count
    pub excluded: i64,
    pub total: f64,
    pub ms: u64,
}

struct Line {
    kind: &'static str,
    ref_id: String,
    elder_id: Option<String>,
    place: String,
    level: Option<i64>,
    days: i64,
    paid_days: i64,
    amount: i64,
    reasons: String,
    /// Days that did not count (death, leave past the limit); a note alone does not exclude.
    excluded: bool,
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Orgs whose claims go into one transaction: the write lock is let go between them.
const ORGS_PER_CHUNK: usize = 200;

/// Make (or make again) the drafts of a month for every home of the region that has anything
/// to claim; reviewed and paid claims are kept. Commits a few hundred homes at a time.
pub async fn compute(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    who: &Who,
    req: ComputeReq,
) -> ApiResult<Computed> {
    let started = std::time::Instant::now();
    let rc = RegionCode::parse(req.region_code.trim())
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    if !scope.covers(&rc) {
        return Err(ApiError::forbidden("所选区划不在您的管辖范围内"));
    }
    let today = crate::platform::today();
    let (month, first, end) = super::month_window(Some(&req.month), today)?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    let month_days = (next - first).num_days();
    let (first_s, end_s, next_s) = (super::ymd(first), super::ymd(end), super::ymd(next));
    let (policy, _) = policy_for(db, regions, &rc).await?;
    let (lo, hi) = rc.subtree_range();
    let kinds = super::RESIDENTIAL_KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // Homes whose ownership is paid nothing make no claim: not even read.
    let paid: Vec<String> = ["public", "public_private", "private"]
        .iter()
        .filter(|own| {
            policy.construction(own) > 0 || (0..5).any(|l| policy.operating(own, Some(l)) > 0)
        })
        .map(|own| format!("'{own}'"))
        .collect();
    if paid.is_empty() && policy.family_bed_monthly == 0 {
        return Ok(Computed {
            month,
            claims: 0,
            kept: 0,
            lines: 0,
            excluded: 0,
            total: 0.0,
            ms: started.elapsed().as_millis() as u64,
        });
    }
    // No paid ownership: a condition nothing meets, so only family beds are read.
    let in_region = format!(
        "o.region_code >= $1 AND o.region_code <= $2 AND o.kind IN ({kinds}) AND o.ownership IN ({})",
        if paid.is_empty() {
            "''".to_string()
        } else {
            paid.join(", ")
        }
    );
    let family_paid = policy.family_bed_monthly > 0;

    let orgs: Vec<(String, String)> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT o.id, o.ownership FROM organisation o WHERE ({in_region}) OR (o.region_code >= $1 AND o.region_code <= $2 \
         AND {family_paid} AND EXISTS (SELECT 1 FROM family_bed f WHERE f.org_id = o.id)) ORDER BY o.id",
        family_paid = if family_paid { "1 = 1" } else { "1 = 0" }
    )))
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let ownership: HashMap<&str, &str> = orgs
        .iter()
        .map(|(id, o)| (id.as_str(), o.as_str()))
        .collect();

    // Every read starts from the region's homes (CROSS JOIN keeps SQLite to that order; without
    // statistics it walked all beds of a province for one county). Where each resident slept
    // last in the month:
    let mut places: HashMap<String, (String, String)> = HashMap::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT s.admission_id, s.from_on, b.building, b.floor, b.room, b.label FROM organisation o \
         CROSS JOIN bed b CROSS JOIN bed_stay s \
         WHERE b.org_id = o.id AND s.bed_id = b.id AND {in_region} AND s.from_on < $3 AND (s.until_on IS NULL OR s.until_on > $4)"
    )))
    .bind(&lo)
    .bind(&hi)
    .bind(&end_s)
    .bind(&first_s)
    .fetch_all(&db.pool)
    .await?
    {
        let from: String = r.get(1);
        let e = places.entry(r.get(0)).or_default();
        if e.0 <= from {
            *e = (
                from,
                super::place_at(&r, 2),
            );
        }
    }
    let t_places = started.elapsed();
    let mut leaves: HashMap<String, Vec<(NaiveDate, Option<NaiveDate>)>> = HashMap::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT l.admission_id, l.from_on, l.until_on FROM organisation o \
         CROSS JOIN admission a CROSS JOIN admission_leave l \
         WHERE a.org_id = o.id AND l.admission_id = a.id AND {in_region} AND l.from_on < $3 AND (l.until_on IS NULL OR l.until_on > $4)"
    )))
    .bind(&lo)
    .bind(&hi)
    .bind(&end_s)
    .bind(&first_s)
    .fetch_all(&db.pool)
    .await?
    {
        if let Some(f) = date(&r.get::<String, _>(1)) {
            let u = r.get::<Option<String>, _>(2).as_deref().and_then(date);
            leaves.entry(r.get(0)).or_default().push((f, u));
        }
    }

    let t_leaves = started.elapsed();
    let mut by_org: HashMap<String, Vec<Line>> = HashMap::new();
    // The ability level that prices a month is the one valid on its last counted day.
    let last_s = super::ymd(end - chrono::Duration::days(1));
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT a.id, a.org_id, a.elder_id, a.admitted_on, a.discharged_on, e.death_date, ab.level, ab.valid_until \
         FROM organisation o CROSS JOIN admission a JOIN elder e ON e.id = a.elder_id \
         LEFT JOIN elder_ability ab ON ab.elder_id = a.elder_id \
         WHERE a.org_id = o.id AND {in_region} AND a.admitted_on < $3 AND (a.discharged_on IS NULL OR a.discharged_on > $4)"
    )))
    .bind(&lo)
    .bind(&hi)
    .bind(&end_s)
    .bind(&first_s)
    .fetch_all(&db.pool)
    .await?
    {
        let id: String = r.get(0);
        let org: String = r.get(1);
        let Some(admitted_on) = date(&r.get::<String, _>(3)) else {
            continue;
        };
        let level = r
            .get::<Option<i64>, _>(6)
            .filter(|_| r.get::<Option<String>, _>(7).is_some_and(|v| v >= last_s));
        let stay = Stay {
            admitted_on,
            discharged_on: r.get::<Option<String>, _>(4).as_deref().and_then(date),
            death_date: r.get::<Option<String>, _>(5).as_deref().and_then(date),
            leaves: leaves.remove(&id).unwrap_or_default(),
        };
        let own = ownership.get(org.as_str()).copied().unwrap_or("private");
        let m = rule::bed_month(
            &stay,
            first,
            end,
            month_days,
            policy.operating(own, level),
            policy.max_leave_days,
        );
        let excluded = !m.reasons.is_empty();
        let mut reasons = m.reasons;
        if level.is_none() {
            reasons.push("无有效能力评估，按能力完好计".into());
        }
        by_org.entry(org).or_default().push(Line {
            kind: "operating",
            place: places.remove(&id).map(|p| p.1).unwrap_or_default(),
            ref_id: id,
            elder_id: Some(r.get(2)),
            level,
            days: m.days,
            paid_days: m.paid_days,
            amount: m.amount,
            reasons: reasons.join("；"),
            excluded,
        });
    }
    let t_stays = started.elapsed();
    // New beds accepted in the month, unless an earlier month's claim already paid for them.
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT b.id, b.org_id, b.building, b.floor, b.room, b.label FROM organisation o CROSS JOIN bed b \
         WHERE b.org_id = o.id AND {in_region} AND b.accepted_on >= $3 AND b.accepted_on < $4 AND NOT EXISTS (SELECT 1 FROM bed_claim_line l \
         JOIN bed_claim c ON c.id = l.claim_id WHERE l.ref_id = b.id AND l.kind = 'construction' AND c.month <> $5)"
    )))
    .bind(&lo)
    .bind(&hi)
    .bind(&first_s)
    .bind(&next_s)
    .bind(&month)
    .fetch_all(&db.pool)
    .await?
    {
        let org: String = r.get(1);
        let own = ownership.get(org.as_str()).copied().unwrap_or("private");
        by_org.entry(org).or_default().push(Line {
            kind: "construction",
            ref_id: r.get(0),
            elder_id: None,
            place: super::place_at(&r, 2),
            level: None,
            days: 0,
            paid_days: 0,
            amount: policy.construction(own),
            reasons: String::new(),
            excluded: false,
        });
    }

    // Family care beds of the month, at the elder's home, whatever the provider's ownership.
    if family_paid {
        for r in sqlx::query(
            "SELECT f.id, f.org_id, f.elder_id, f.start_on, f.end_on, e.death_date, e.residence_region \
             FROM organisation o CROSS JOIN family_bed f JOIN elder e ON e.id = f.elder_id \
             WHERE f.org_id = o.id AND o.region_code >= $1 AND o.region_code <= $2 \
             AND f.start_on < $3 AND (f.end_on IS NULL OR f.end_on > $4)",
        )
        .bind(&lo)
        .bind(&hi)
        .bind(&end_s)
        .bind(&first_s)
        .fetch_all(&db.pool)
        .await?
        {
            let Some(start) = date(&r.get::<String, _>(3)) else {
                continue;
            };
            let stay = Stay {
                admitted_on: start,
                discharged_on: r.get::<Option<String>, _>(4).as_deref().and_then(date),
                death_date: r.get::<Option<String>, _>(5).as_deref().and_then(date),
                leaves: vec![],
            };
            let m = rule::bed_month(&stay, first, end, month_days, policy.family_bed_monthly, policy.max_leave_days);
            let home: String = r.get(6);
            by_org.entry(r.get(1)).or_default().push(Line {
                kind: "family",
                ref_id: r.get(0),
                elder_id: Some(r.get(2)),
                place: format!("家中（{}）", regions.path_name(&home)),
                level: None,
                days: m.days,
                paid_days: m.paid_days,
                amount: m.amount,
                excluded: !m.reasons.is_empty(),
                reasons: m.reasons.join("；"),
            });
        }
    }
    let t_read = started.elapsed();
    let now = crate::platform::now_rfc3339();
    let (mut claims, mut kept, mut lines_n, mut excluded_n, mut total) =
        (0i64, 0i64, 0i64, 0i64, 0i64);
    let claimable: Vec<&(String, String)> = orgs
        .iter()
        .filter(|(id, _)| {
            by_org
                .get(id)
                .is_some_and(|l| l.iter().any(|l| l.amount > 0 || l.excluded))
        })
        .collect();
    for chunk in claimable.chunks(ORGS_PER_CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let marks = (0..ids.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let mut tx = db.begin().await?;
        let bind_ids = |sql: String| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(month.clone());
            for id in &ids {
                q = q.bind(id.to_string());
            }
            q
        };
        bind_ids(format!(
            "DELETE FROM bed_claim_line WHERE claim_id IN (SELECT id FROM bed_claim WHERE month = $1 AND state = 'draft' AND org_id IN ({marks}))"
        ))
        .execute(&mut *tx)
        .await?;
        bind_ids(format!(
            "DELETE FROM bed_claim WHERE month = $1 AND state = 'draft' AND org_id IN ({marks})"
        ))
        .execute(&mut *tx)
        .await?;
        let done: std::collections::HashSet<String> = bind_ids(format!(
            "SELECT org_id FROM bed_claim WHERE month = $1 AND org_id IN ({marks})"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let (mut c_claims, mut c_lines, mut c_total) = (0i64, 0i64, 0i64);
        for (org, _) in chunk.iter() {
            if done.contains(org) {
                kept += 1;
                continue;
            }
            let mut lines = by_org.remove(org).unwrap_or_default();
            lines.sort_by(|a, b| (a.kind, &a.place).cmp(&(b.kind, &b.place)));
            let id = uuid::Uuid::now_v7().to_string();
            let excluded = lines.iter().filter(|l| l.excluded).count() as i64;
            let sum: i64 = lines.iter().map(|l| l.amount).sum();
            let days: i64 = lines.iter().map(|l| l.paid_days).sum();
            sqlx::query(
                "INSERT INTO bed_claim (id, org_id, month, state, lines, excluded, paid_days, total_fen, created_by, created_by_id, created_at) \
                 VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&id)
            .bind(org)
            .bind(&month)
            .bind(lines.len() as i64)
            .bind(excluded)
            .bind(days)
            .bind(sum)
            .bind(&who.actor_name)
            .bind(&who.actor_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            for (n, part) in lines.chunks(500).enumerate() {
                let sql = format!(
                    "INSERT INTO bed_claim_line (claim_id, line_no, kind, ref_id, elder_id, place, ability_level, days, paid_days, amount_fen, reasons) VALUES {}",
                    crate::registry::store::placeholders(db.backend, part.len(), 11)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (i, l) in part.iter().enumerate() {
                    q = q
                        .bind(&id)
                        .bind((n * 500 + i + 1) as i64)
                        .bind(l.kind)
                        .bind(&l.ref_id)
                        .bind(&l.elder_id)
                        .bind(&l.place)
                        .bind(l.level)
                        .bind(l.days)
                        .bind(l.paid_days)
                        .bind(l.amount)
                        .bind(&l.reasons);
                }
                q.execute(&mut *tx).await?;
            }
            c_claims += 1;
            c_lines += lines.len() as i64;
            c_total += sum;
            excluded_n += excluded;
        }
        audit::append(
            &mut tx,
            who,
            Entry {
                action: "bed_claim.compute",
                entity: "region",
                entity_id: Some(rc.as_str()),
                region_code: Some(rc.as_str()),
                detail: serde_json::json!({"month": month, "claims": c_claims, "lines": c_lines, "total_fen": c_total})
                    .to_string(),
            },
        )
        .await?;
        tx.commit().await?;
        claims += c_claims;
        lines_n += c_lines;
        total += c_total;
    }
    tracing::info!(
        claims,
        lines = lines_n,
        places_at_ms = t_places.as_millis() as u64,
        leaves_at_ms = t_leaves.as_millis() as u64,
        stays_at_ms = t_stays.as_millis() as u64,
        new_beds_at_ms = t_read.as_millis() as u64,
        written_at_ms = started.elapsed().as_millis() as u64,
        "bed claims"
    );
    Ok(Computed {
        month,
        claims,
        kept,
        lines: lines_n,
        excluded: excluded_n,
        total: yuan(total),
        ms: started.elapsed().as_millis() as u64,
    })
}

// ---- reading claims ----------------------------------------------------------------------------

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClaimRow {
    pub id: String,
    pub org_id: String,
    pub org_name: String,
    pub ownership_zh: String,
    /// 镇（街道）
    pub town: String,
    pub month: String,
    /// draft / reviewed / paid
    pub state: String,
    pub state_zh: String,
    pub lines: i64,
    /// Lines with days that do not count
    pub excluded: i64,
    pub paid_days: i64,
    pub total: f64,
    pub created_by: String,
    pub created_by_id: Option<String>,
    pub created_at: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub paid_at: Option<String>,
    pub paid_note: Option<String>,
    /// The payment batch that pays it, once put in one: its id, month and state.
    pub batch_id: Option<String>,
    pub batch_month: Option<String>,
    pub batch_state: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClaimList {
    pub month: String,
    pub policy: SubsidyPolicyView,
    pub items: Vec<ClaimRow>,
    pub total: f64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ClaimQuery {
    /// Region (default: the caller's)
    pub region_code: Option<String>,
    /// YYYY-MM (default: this month)
    pub month: Option<String>,
    /// One organisation's claims only
    pub org_id: Option<String>,
}

/// The claim's columns; makers and reviewers by their accounts' display names.
const CLAIM_COLS: &str = "c.id, c.org_id, o.name, o.ownership, o.region_code, c.month, c.state, c.lines, c.excluded, \
    c.paid_days, c.total_fen, \
    COALESCE((SELECT NULLIF(u.display_name, '') FROM app_user u WHERE u.username = c.created_by), c.created_by), \
    c.created_by_id, c.created_at, \
    COALESCE((SELECT NULLIF(u.display_name, '') FROM app_user u WHERE u.username = c.reviewed_by), c.reviewed_by), \
    c.reviewed_at, c.paid_at, c.paid_note, \
    (SELECT b.id || '|' || b.month || '|' || b.state || '|' || COALESCE(b.paid_at, '') \
     FROM payment_org_line l JOIN payment_batch b ON b.id = l.batch_id \
     WHERE l.source = 'bed_claim' AND l.source_id = c.id)";

fn claim_row(r: &sqlx::any::AnyRow, regions: &crate::region::RegionIndex) -> ClaimRow {
    let region: String = r.get(4);
    let town = format!("{}000", &region[..9.min(region.len())]);
    let mut state: String = r.get(6);
    let mut paid_at: Option<String> = r.get(16);
    // In a batch, the claim follows it: paid when the batch is.
    let batch: Option<String> = r.get(18);
    let batch: Option<Vec<String>> = batch.map(|b| b.split('|').map(str::to_string).collect());
    let state_zh = match batch.as_deref() {
        Some([_, _, bs, at]) if bs == "paid" => {
            state = "paid".into();
            paid_at = Some(at.clone());
            "已发放（随发放批次）".to_string()
        }
        Some([_, month, _, _]) => format!("已列入 {month} 发放批次"),
        _ => crate::catalog::payment::state_zh(&state).to_string(),
    };
    let part = |i: usize| batch.as_ref().and_then(|b| b.get(i).cloned());
    ClaimRow {
        id: r.get(0),
        org_id: r.get(1),
        org_name: r.get(2),
        ownership_zh: crate::org::ownership_zh(&r.get::<String, _>(3)).to_string(),
        town: regions.name(&town).unwrap_or("").to_string(),
        month: r.get(5),
        state_zh,
        state,
        lines: r.get(7),
        excluded: r.get(8),
        paid_days: r.get(9),
        total: yuan(r.get(10)),
        created_by: r.get(11),
        created_by_id: r.get(12),
        created_at: r.get(13),
        reviewed_by: r.get(14),
        reviewed_at: r.get(15),
        paid_at,
        paid_note: r.get(17),
        batch_id: part(0),
        batch_month: part(1),
        batch_state: part(2),
    }
}

/// The claims of a month in a region (figures only: no person is named).
pub async fn list(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    default_region: &str,
    q: &ClaimQuery,
) -> ApiResult<ClaimList> {
    let rc = scope.region(q.region_code.as_deref().unwrap_or(default_region))?;
    let (lo, hi) = rc.subtree_range();
    let (month, _, _) = super::month_window(q.month.as_deref(), crate::platform::today())?;
    let (_, policy) = policy_for(db, regions, &rc).await?;
    // An account bound to a home sees that home's claims only.
    let org = scope
        .org
        .as_deref()
        .or(q.org_id.as_deref().map(str::trim).filter(|s| !s.is_empty()));
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CLAIM_COLS} FROM bed_claim c JOIN organisation o ON o.id = c.org_id \
         WHERE c.month = $1 AND o.region_code >= $2 AND o.region_code <= $3 AND ($4 = '' OR c.org_id = $4) \
         ORDER BY o.region_code, o.name LIMIT 10000"
    )))
    .bind(&month)
    .bind(&lo)
    .bind(&hi)
    .bind(org.unwrap_or(""))
    .fetch_all(&db.pool)
    .await?;
    let items: Vec<ClaimRow> = rows.iter().map(|r| claim_row(r, regions)).collect();
    let total = (items
        .iter()
        .map(|c| (c.total * 100.0).round() as i64)
        .sum::<i64>()) as f64
        / 100.0;
    Ok(ClaimList {
        month,
        policy,
        items,
        total,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClaimLine {
    pub line_no: i64,
    /// operating / construction / family
    pub kind: String,
    /// 运营补贴 / 建设补贴 / 家庭养老床位
    pub kind_zh: String,
    pub place: String,
    pub elder_id: Option<String>,
    pub name: Option<String>,
    pub citizen_id_masked: Option<String>,
    /// 能力等级 the month was priced by (none: no valid assessment)
    pub ability_level: Option<String>,
    pub days: i64,
    pub paid_days: i64,
    pub amount: f64,
    /// Why days did not count (empty when all did)
    pub reasons: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClaimDetail {
    pub claim: ClaimRow,
    pub lines: Vec<ClaimLine>,
}

fn kind_zh(k: &str) -> &'static str {
    match k {
        "construction" => "建设补贴",
        "family" => "家庭养老床位",
        _ => "运营补贴",
    }
}

async fn claim_in_scope(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    id: &str,
) -> ApiResult<ClaimRow> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CLAIM_COLS} FROM bed_claim c JOIN organisation o ON o.id = c.org_id WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .filter(|r| scope.holds(&r.get::<String, _>(1), &r.get::<String, _>(4)))
    .ok_or_else(|| ApiError::not_found("补贴申领单不存在"))?;
    Ok(claim_row(&r, regions))
}

/// One claim with its lines: the residents by name, so the read is audited.
pub async fn detail(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    who: &Who,
    id: &str,
) -> ApiResult<ClaimDetail> {
    let claim = claim_in_scope(db, regions, scope, id).await?;
    let rows = sqlx::query(
        "SELECT l.line_no, l.kind, l.place, l.elder_id, e.name, e.citizen_id_masked, l.ability_level, l.days, l.paid_days, \
         l.amount_fen, l.reasons FROM bed_claim_line l LEFT JOIN elder e ON e.id = l.elder_id \
         WHERE l.claim_id = $1 ORDER BY l.line_no",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    let lines = rows
        .iter()
        .map(|r| {
            let kind: String = r.get(1);
            ClaimLine {
                line_no: r.get(0),
                kind_zh: kind_zh(&kind).into(),
                kind,
                place: r.get(2),
                elder_id: r.get(3),
                name: r.get(4),
                citizen_id_masked: r.get(5),
                ability_level: r
                    .get::<Option<i64>, _>(6)
                    .and_then(|l| yiyang_kernel::assessment::LEVEL_NAMES.get(l as usize))
                    .map(|s| s.to_string()),
                days: r.get(7),
                paid_days: r.get(8),
                amount: yuan(r.get(9)),
                reasons: r.get(10),
            }
        })
        .collect::<Vec<_>>();
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "bed_claim.view",
            entity: "bed_claim",
            entity_id: Some(id),
            region_code: None,
            detail: serde_json::json!({"org_id": claim.org_id, "month": claim.month, "lines": lines.len()})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ClaimDetail { claim, lines })
}

/// What moves a claim on: `review` (by someone other than its maker), `paid` (with an optional
/// note such as the bank's reference) or `discard` (a draft is removed).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimStep {
    /// review / paid / discard
    pub action: String,
    #[serde(default)]
    pub note: Option<String>,
}

pub async fn step(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    who: &Who,
    id: &str,
    s: ClaimStep,
) -> ApiResult<Option<ClaimRow>> {
    let claim = claim_in_scope(db, regions, scope, id).await?;
    let note = super::text("note", "备注", s.note.as_deref(), 200)?;
    let (action, from) = match s.action.as_str() {
        "review" => ("bed_claim.review", "draft"),
        "paid" => ("bed_claim.paid", "reviewed"),
        "discard" => ("bed_claim.discard", "draft"),
        _ => {
            return Err(ApiError::invalid(
                "action",
                "操作应为 review（复核）、paid（已发放）或 discard（作废草稿）",
            ));
        }
    };
    if let Some(m) = &claim.batch_month
        && s.action == "paid"
    {
        return Err(ApiError::conflict(format!(
            "该申领单已列入 {m} 发放批次，随批次发放，不必单独标记"
        )));
    }
    if claim.state != from {
        let need = if from == "draft" {
            "只有草稿可以复核或作废"
        } else {
            "只有已复核的申领单可以标记为已发放"
        };
        return Err(ApiError::conflict(format!(
            "该申领单已{}：{need}",
            claim.state_zh
        )));
    }
    if s.action == "review" {
        let same = match (&claim.created_by_id, &who.actor_id) {
            (Some(m), Some(w)) => m == w,
            _ => {
                let maker: String = sqlx::query("SELECT created_by FROM bed_claim WHERE id = $1")
                    .bind(id)
                    .fetch_one(&db.pool)
                    .await?
                    .get(0);
                maker == who.actor_name
            }
        };
        if same {
            return Err(ApiError::conflict(
                "生成申领单的人不能复核自己的申领单，请由另一位工作人员复核",
            ));
        }
    }
    let now = crate::platform::now_rfc3339();
    let mut tx = db.begin().await?;
    if s.action == "paid" {
        // Take the claim's row first, then look for a batch line in a statement of its own: on
        // PostgreSQL a condition inside the UPDATE would be judged on the snapshot from before
        // the wait, and miss a batch that took the claim meanwhile (paid twice).
        let held =
            sqlx::query("UPDATE bed_claim SET state = state WHERE id = $1 AND state = 'reviewed'")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let batched = sqlx::query(
            "SELECT 1 FROM payment_org_line WHERE source = 'bed_claim' AND source_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if held != 1 || batched.is_some() {
            return Err(ApiError::conflict(
                "该申领单刚被列入发放批次或已处理，请刷新后查看",
            ));
        }
    }
    let n = match s.action.as_str() {
        "review" => sqlx::query(
            "UPDATE bed_claim SET state = 'reviewed', reviewed_by = $2, reviewed_by_id = $3, reviewed_at = $4 \
             WHERE id = $1 AND state = 'draft'",
        )
        .bind(id)
        .bind(&who.actor_name)
        .bind(&who.actor_id)
        .bind(&now),
        "paid" => sqlx::query(
            "UPDATE bed_claim SET state = 'paid', paid_by = $2, paid_at = $3, paid_note = $4 WHERE id = $1 AND state = 'reviewed'",
        )
        .bind(id)
        .bind(&who.actor_name)
        .bind(&now)
        .bind(Some(&note).filter(|n| !n.is_empty())),
        _ => {
            sqlx::query(
                "DELETE FROM bed_claim_line WHERE claim_id = $1 AND EXISTS (SELECT 1 FROM bed_claim WHERE id = $1 AND state = 'draft')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM bed_claim WHERE id = $1 AND state = 'draft'").bind(id)
        }
    }
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(ApiError::conflict("该申领单刚被他人处理，请刷新后查看"));
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action,
            entity: "bed_claim",
            entity_id: Some(id),
            region_code: None,
            detail: serde_json::json!({"org_id": claim.org_id, "month": claim.month, "total": claim.total, "note": note})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    if s.action == "discard" {
        return Ok(None);
    }
    Ok(Some(claim_in_scope(db, regions, scope, id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToBatchReq {
    /// A draft payment batch (发放批次) of the catalogue
    pub batch_id: String,
    /// The claims' month, YYYY-MM
    pub month: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Skipped {
    pub org_name: String,
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToBatch {
    /// The batch's month
    pub batch_month: String,
    pub added: i64,
    pub total: f64,
    /// Reviewed claims left out, and why (no bank account, nothing to pay)
    pub skipped: Vec<Skipped>,
}

/// Put a month's reviewed claims (inside the batch's region) into a draft payment batch: each home
/// becomes a line of the batch's bank file, paid to its account, and the claim is paid when the
/// batch is. A claim goes into one batch only. Audited.
pub async fn to_batch(db: &Db, scope: &Scope, who: &Who, req: ToBatchReq) -> ApiResult<ToBatch> {
    let (month, _, _) = super::month_window(Some(&req.month), crate::platform::today())?;
    let region: String = sqlx::query("SELECT catalog_region FROM payment_batch WHERE id = $1")
        .bind(req.batch_id.trim())
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.get::<String, _>(0))
        .filter(|r| scope.contains(r))
        .ok_or_else(|| ApiError::not_found("发放批次不存在"))?;
    let (lo, hi) = RegionCode::parse(&region)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("batch region: {e}")))?
        .subtree_range();
    let mut tx = db.begin().await?;
    let rows = sqlx::query(
        "SELECT c.id, c.org_id, o.name, o.region_code, c.total_fen, o.bank_name, o.bank_account_name, o.bank_account \
         FROM organisation o CROSS JOIN bed_claim c WHERE c.org_id = o.id AND c.month = $1 AND c.state = 'reviewed' \
         AND o.region_code >= $2 AND o.region_code <= $3 \
         AND NOT EXISTS (SELECT 1 FROM payment_org_line l WHERE l.source = 'bed_claim' AND l.source_id = c.id) \
         ORDER BY o.region_code, o.name",
    )
    .bind(&month)
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&mut *tx)
    .await?;
    let mut lines = vec![];
    let mut skipped = vec![];
    for r in &rows {
        let (id, org_name, total): (String, String, i64) = (r.get(0), r.get(2), r.get(4));
        let bank: (Option<String>, Option<String>, Option<String>) = (r.get(5), r.get(6), r.get(7));
        let (Some(bank_name), Some(account_name), Some(account)) = bank else {
            skipped.push(Skipped {
                org_name,
                reason: "未登记收款账户：请在“服务机构”中填写开户银行、户名和银行账号".into(),
            });
            continue;
        };
        if total <= 0 {
            skipped.push(Skipped {
                org_name,
                reason: "本月补贴金额为 0，无需发放".into(),
            });
            continue;
        }
        // Hold the claim: a "paid" step committed meanwhile either waits or makes this skip it.
        let held = sqlx::query(
            "UPDATE bed_claim SET state = 'reviewed' WHERE id = $1 AND state = 'reviewed'",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held != 1 {
            continue;
        }
        let region: String = r.get(3);
        lines.push(crate::catalog::payment::OrgPayment {
            source: "bed_claim",
            source_id: id,
            org_id: r.get(1),
            payee: org_name,
            bank_name,
            bank_account_name: account_name,
            bank_account: account,
            amount_fen: total,
            town_code: format!("{}000", &region[..9.min(region.len())]),
            purpose: format!("{month} 床位补贴"),
        });
    }
    let batch_month =
        crate::catalog::payment::add_org_payments(&mut tx, scope, who, req.batch_id.trim(), &lines)
            .await?;
    let total: i64 = lines.iter().map(|l| l.amount_fen).sum();
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "bed_claim.batch",
            entity: "payment_batch",
            entity_id: Some(req.batch_id.trim()),
            region_code: Some(&region),
            detail: serde_json::json!({"month": month, "claims": lines.len(), "total_fen": total,
                "skipped": skipped.len()})
            .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ToBatch {
        batch_month,
        added: lines.len() as i64,
        total: yuan(total),
        skipped,
    })
}

/// The month's claims as a spreadsheet: one sheet of homes and amounts (what the bank pays) and
/// one of every line with its reasons (what was checked). Names are not in it; audited.
pub async fn export(
    db: &Db,
    regions: &crate::region::RegionIndex,
    scope: &Scope,
    who: &Who,
    default_region: &str,
    q: &ClaimQuery,
) -> ApiResult<(Vec<u8>, String)> {
    let list = list(db, regions, scope, default_region, q).await?;
    let xl = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::Error::from(e));
    let mut wb = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let money = rust_xlsxwriter::Format::new().set_num_format("0.00");
    let ws = wb.add_worksheet();
    ws.set_name("申领汇总").map_err(xl)?;
    let heads = [
        "序号",
        "机构",
        "性质",
        "镇（街道）",
        "状态",
        "在院人次",
        "核减条目",
        "计补床日",
        "金额（元）",
        "复核人",
        "发放备注",
    ];
    for (i, h) in heads.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, *h, &bold)
            .map_err(xl)?;
    }
    for (n, c) in list.items.iter().enumerate() {
        let row = (n + 1) as u32;
        ws.write_number(row, 0, row as f64).map_err(xl)?;
        ws.write_string(row, 1, &c.org_name).map_err(xl)?;
        ws.write_string(row, 2, &c.ownership_zh).map_err(xl)?;
        ws.write_string(row, 3, &c.town).map_err(xl)?;
        ws.write_string(row, 4, &c.state_zh).map_err(xl)?;
        ws.write_number(row, 5, c.lines as f64).map_err(xl)?;
        ws.write_number(row, 6, c.excluded as f64).map_err(xl)?;
        ws.write_number(row, 7, c.paid_days as f64).map_err(xl)?;
        ws.write_number_with_format(row, 8, c.total, &money)
            .map_err(xl)?;
        ws.write_string(row, 9, c.reviewed_by.as_deref().unwrap_or(""))
            .map_err(xl)?;
        ws.write_string(row, 10, c.paid_note.as_deref().unwrap_or(""))
            .map_err(xl)?;
    }
    let ws = wb.add_worksheet();
    ws.set_name("核对明细").map_err(xl)?;
    let heads = [
        "机构",
        "类别",
        "床位",
        "身份证号（脱敏）",
        "能力等级",
        "在院天数",
        "计补天数",
        "金额（元）",
        "核减原因",
    ];
    for (i, h) in heads.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, *h, &bold)
            .map_err(xl)?;
    }
    let mut row = 1u32;
    for c in &list.items {
        for r in sqlx::query(
            "SELECT l.kind, l.place, e.citizen_id_masked, l.ability_level, l.days, l.paid_days, l.amount_fen, l.reasons \
             FROM bed_claim_line l LEFT JOIN elder e ON e.id = l.elder_id WHERE l.claim_id = $1 ORDER BY l.line_no",
        )
        .bind(&c.id)
        .fetch_all(&db.pool)
        .await?
        {
            ws.write_string(row, 0, &c.org_name).map_err(xl)?;
            ws.write_string(row, 1, kind_zh(&r.get::<String, _>(0))).map_err(xl)?;
            ws.write_string(row, 2, r.get::<String, _>(1)).map_err(xl)?;
            ws.write_string(row, 3, r.get::<Option<String>, _>(2).unwrap_or_default()).map_err(xl)?;
            let level = r
                .get::<Option<i64>, _>(3)
                .and_then(|l| yiyang_kernel::assessment::LEVEL_NAMES.get(l as usize))
                .copied()
                .unwrap_or("");
            ws.write_string(row, 4, level).map_err(xl)?;
            ws.write_number(row, 5, r.get::<i64, _>(4) as f64).map_err(xl)?;
            ws.write_number(row, 6, r.get::<i64, _>(5) as f64).map_err(xl)?;
            ws.write_number_with_format(row, 7, yuan(r.get(6)), &money).map_err(xl)?;
            ws.write_string(row, 8, r.get::<String, _>(7)).map_err(xl)?;
            row += 1;
        }
    }
    let bytes = wb.save_to_buffer().map_err(anyhow::Error::from)?;
    let region = q
        .region_code
        .as_deref()
        .unwrap_or(default_region)
        .to_string();
    let mut tx = db.begin().await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "bed_claim.export",
            entity: "region",
            entity_id: Some(&region),
            region_code: Some(&region),
            detail: serde_json::json!({"month": list.month, "claims": list.items.len(), "lines": row - 1})
                .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((bytes, list.month))
}

//! 服务找人: run every item of a region's published catalogue over everyone living in the region,
//! compare with the entitlements already held, and write only the differences in one transaction
//! (a second run with nothing changed writes nothing but its run record). Explaining one person
//! runs the same rules with reasons.
//!
//! Transitions, per person and item:
//! - eligible, nothing open → `granted` (免申即享) or `proposed` (needs approval);
//! - eligible, open with another tier → the tier and amount follow;
//! - eligible, `suspended` → `granted` again (moved back);
//! - not eligible any more → `ended`;
//! - deceased → `ended` from the date of death, whatever the rules say;
//! - moved out → `granted` is `suspended`, `proposed` is `ended`.

use super::store::{self, ItemDef, VersionView};
use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use chrono::NaiveDate;
use futures_util::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::HashMap;
use yiyang_kernel::eligibility::{Facts, ItemRule, Reason};
use yiyang_kernel::{RegionCode, Sex};

/// What the rules see of one person, owned.
#[derive(Debug, Clone)]
pub struct ElderFacts {
    pub id: String,
    pub birth_date: NaiveDate,
    pub sex: Option<Sex>,
    pub residence: String,
    pub hukou: Option<String>,
    pub status: String,
    pub living: Option<String>,
    pub economic: Option<String>,
    pub family_planning: Option<String>,
    pub disability: Option<i64>,
    pub veteran: Option<bool>,
    /// Only a level valid on the evaluation date.
    pub level: Option<i64>,
    pub death_date: Option<NaiveDate>,
    pub moved_out_date: Option<NaiveDate>,
}

impl ElderFacts {
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            birth_date: self.birth_date,
            sex: self.sex,
            residence_region: &self.residence,
            hukou_region: self.hukou.as_deref(),
            status: &self.status,
            living_status: self.living.as_deref(),
            economic_status: self.economic.as_deref(),
            family_planning_special: self.family_planning.as_deref(),
            disability_grade: self.disability,
            entitled_veteran_family: self.veteran,
            ability_level: self.level,
            death_date: self.death_date,
        }
    }

    /// The facts a decision was made on, kept with it (no ID, name or phone).
    fn snapshot(&self, on: NaiveDate) -> String {
        serde_json::json!({
            "on": on.to_string(),
            "age": yiyang_kernel::citizen_id::age_on(self.birth_date, on),
            "birth_date": self.birth_date.to_string(),
            "residence_region": self.residence,
            "hukou_region": self.hukou,
            "status": self.status,
            "living_status": self.living,
            "economic_status": self.economic,
            "family_planning_special": self.family_planning,
            "disability_grade": self.disability,
            "entitled_veteran_family": self.veteran,
            "ability_level": self.level,
            "death_date": self.death_date.map(|d| d.to_string()),
        })
        .to_string()
    }
}

const FACTS_SQL: &str = "SELECT e.id, e.birth_date, e.sex, e.residence_region, e.hukou_region, e.status, e.living_status, \
     e.economic_status, e.family_planning_special, e.disability_grade, e.entitled_veteran_family, e.death_date, \
     e.moved_out_date, a.level, a.valid_until FROM elder e LEFT JOIN elder_ability a ON a.elder_id = e.id";

fn date(s: Option<String>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s?.as_str(), "%Y-%m-%d").ok()
}

fn facts_of(r: &sqlx::any::AnyRow, on: NaiveDate) -> Option<ElderFacts> {
    let level: Option<i64> = r.get(13);
    let valid_until: Option<String> = r.get(14);
    Some(ElderFacts {
        id: r.get(0),
        birth_date: date(r.get(1))?,
        sex: Sex::parse_zh(&r.get::<String, _>(2)),
        residence: r.get(3),
        hukou: r.get(4),
        status: r.get(5),
        living: r.get(6),
        economic: r.get(7),
        family_planning: r.get(8),
        disability: r.get(9),
        veteran: r.get::<Option<i64>, _>(10).map(|v| v != 0),
        level: crate::assessment::store::level_if_valid(level, valid_until.as_deref(), on)
            .map(i64::from),
        death_date: date(r.get(11)),
        moved_out_date: date(r.get(12)),
    })
}

/// Everyone living in a code range, streamed (a million rows must not sit in memory as rows).
pub async fn load_facts(db: &Db, lo: &str, hi: &str, on: NaiveDate) -> ApiResult<Vec<ElderFacts>> {
    let sql = format!("{FACTS_SQL} WHERE e.residence_region BETWEEN $1 AND $2");
    let mut out = Vec::new();
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(lo)
        .bind(hi)
        .fetch(&db.pool);
    while let Some(r) = rows.try_next().await? {
        if let Some(f) = facts_of(&r, on) {
            out.push(f);
        }
    }
    Ok(out)
}

pub struct Compiled {
    pub version: VersionView,
    pub items: Vec<(ItemDef, ItemRule)>,
}

pub fn compile_version(version: VersionView) -> ApiResult<Compiled> {
    let items = version
        .items
        .iter()
        .map(|d| store::compile(d).map(|r| (d.clone(), r)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Compiled { version, items })
}

/// Per item: how many people are eligible now, and the entitlements after the run.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ItemCount {
    pub code: String,
    pub name: String,
    pub eligible: u64,
    pub granted: u64,
    pub proposed: u64,
    pub suspended: u64,
    /// Ended by this run.
    pub ended: u64,
    /// Newly granted or proposed by this run.
    pub new: u64,
    /// Tier or amount changed by this run.
    pub changed: u64,
    /// Cash per month of the granted entitlements, in 元.
    pub monthly_amount: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub run_id: String,
    pub region_code: String,
    pub version_number: i64,
    pub on: String,
    pub elders: u64,
    pub changes: u64,
    pub items: Vec<ItemCount>,
    pub millis: u64,
}

#[derive(Debug, Clone)]
struct Open {
    id: String,
    item: usize,
    state: String,
    tier: String,
    amount_fen: i64,
    quota: i64,
}

enum Action {
    New {
        elder: usize,
        item: usize,
        tier: usize,
        state: &'static str,
    },
    Change {
        open: Open,
        to: &'static str,
        tier: String,
        amount_fen: i64,
        quota: i64,
        on: NaiveDate,
        note: String,
    },
}

/// The decision for one person and item against what they hold: the action to take, if any.
fn decide(
    ef: &ElderFacts,
    elder: usize,
    item: usize,
    def: &ItemDef,
    rule: &ItemRule,
    cur: Option<Open>,
    on: NaiveDate,
) -> (Option<usize>, Option<Action>) {
    let end = |open: Open, to: &'static str, when: NaiveDate, note: String| Action::Change {
        tier: open.tier.clone(),
        amount_fen: open.amount_fen,
        quota: open.quota,
        open,
        to,
        on: when,
        note,
    };
    match ef.status.as_str() {
        "deceased" => {
            let act = cur.map(|o| {
                end(
                    o,
                    "ended",
                    ef.death_date.unwrap_or(on),
                    "死亡，待遇自死亡之日终止".into(),
                )
            });
            return (None, act);
        }
        "moved_out" => {
            let when = ef.moved_out_date.unwrap_or(on);
            let act = cur.and_then(|o| match o.state.as_str() {
                "granted" => Some(end(o, "suspended", when, "已迁出，待遇暂停".into())),
                "proposed" => Some(end(o, "ended", when, "已迁出，待审批的待遇取消".into())),
                _ => None,
            });
            return (None, act);
        }
        _ => {}
    }
    let tier = rule.decide(&ef.facts(), on);
    let act = match (tier, cur) {
        (Some(t), None) => Some(Action::New {
            elder,
            item,
            tier: t,
            state: if def.no_application {
                "granted"
            } else {
                "proposed"
            },
        }),
        (Some(t), Some(o)) => {
            let want = &rule.tiers[t];
            if o.state == "suspended" {
                Some(Action::Change {
                    open: o,
                    to: "granted",
                    tier: want.label.clone(),
                    amount_fen: want.amount_fen,
                    quota: want.quota,
                    on,
                    note: "重新符合条件，恢复发放".into(),
                })
            } else if o.tier != want.label
                || o.amount_fen != want.amount_fen
                || o.quota != want.quota
            {
                let to = if o.state == "granted" {
                    "granted"
                } else {
                    "proposed"
                };
                Some(Action::Change {
                    note: format!("档次由“{}”调整为“{}”", o.tier, want.label),
                    open: o,
                    to,
                    tier: want.label.clone(),
                    amount_fen: want.amount_fen,
                    quota: want.quota,
                    on,
                })
            } else {
                None
            }
        }
        (None, Some(o)) => Some(end(o, "ended", on, "不再符合条件".into())),
        (None, None) => None,
    };
    (tier, act)
}

pub type Names<'a> = &'a (dyn Fn(&str) -> String + Sync);

/// Evaluate a region's published catalogue over everyone living there and apply the differences.
pub async fn run(
    db: &Db,
    scope: &Scope,
    who: &Who,
    region_code: &str,
    on: NaiveDate,
    names: Names<'_>,
) -> ApiResult<RunSummary> {
    let started = std::time::Instant::now();
    let started_at = crate::platform::now_rfc3339();
    let rc = RegionCode::parse(region_code)
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    if !scope.covers(&rc) {
        return Err(ApiError::forbidden("该区划不在您的管辖范围内"));
    }
    let version = store::version_by_state(db, rc.as_str(), "published")
        .await?
        .ok_or_else(|| ApiError::conflict("该区划还没有发布的服务目录"))?;
    let c = compile_version(version)?;
    let (lo, hi) = rc.subtree_range();
    let elders = load_facts(db, &lo, &hi, on).await?;

    // Open entitlements of this catalogue, by person.
    let index: HashMap<&str, usize> = c
        .items
        .iter()
        .enumerate()
        .map(|(i, (d, _))| (d.code.as_str(), i))
        .collect();
    let mut open: HashMap<String, Vec<Open>> = HashMap::new();
    {
        let mut rows = sqlx::query(
            "SELECT id, elder_id, item_code, state, tier, amount_fen, quota FROM entitlement \
             WHERE catalog_region = $1 AND state <> 'ended'",
        )
        .bind(rc.as_str())
        .fetch(&db.pool);
        let mut orphans = vec![];
        while let Some(r) = rows.try_next().await? {
            let code: String = r.get(2);
            let o = Open {
                id: r.get(0),
                item: index.get(code.as_str()).copied().unwrap_or(usize::MAX),
                state: r.get(3),
                tier: r.get(4),
                amount_fen: r.get(5),
                quota: r.get(6),
            };
            if o.item == usize::MAX {
                orphans.push(o);
            } else {
                open.entry(r.get(1)).or_default().push(o);
            }
        }
        // Items dropped from the catalogue end for everyone.
        for o in orphans {
            open.entry(String::new()).or_default().push(o);
        }
    }

    let mut counts: Vec<ItemCount> = c
        .items
        .iter()
        .map(|(d, _)| ItemCount {
            code: d.code.clone(),
            name: d.name.clone(),
            ..Default::default()
        })
        .collect();
    let mut actions = vec![];
    for (ei, ef) in elders.iter().enumerate() {
        let mut held = open.remove(ef.id.as_str()).unwrap_or_default();
        for (ii, (def, rule)) in c.items.iter().enumerate() {
            let cur = held
                .iter()
                .position(|o| o.item == ii)
                .map(|p| held.swap_remove(p));
            let before = cur.as_ref().map(|o| (o.state.clone(), o.amount_fen));
            let (tier, act) = decide(ef, ei, ii, def, rule, cur, on);
            if tier.is_some() {
                counts[ii].eligible += 1;
            }
            let after: Option<(&str, i64)> = match &act {
                Some(Action::New { tier, state, .. }) => {
                    counts[ii].new += 1;
                    Some((state, rule.tiers[*tier].amount_fen))
                }
                Some(Action::Change {
                    to,
                    amount_fen,
                    open,
                    ..
                }) => {
                    if *to == "ended" {
                        counts[ii].ended += 1;
                    } else if open.state != "suspended" && *to != "suspended" {
                        counts[ii].changed += 1;
                    }
                    (*to != "ended").then_some((to, *amount_fen))
                }
                None => before.as_ref().map(|(s, a)| (s.as_str(), *a)),
            };
            match after {
                Some(("granted", a)) => {
                    counts[ii].granted += 1;
                    if def.benefit_kind != "one_off" {
                        counts[ii].monthly_amount += a as f64 / 100.0;
                    }
                }
                Some(("proposed", _)) => counts[ii].proposed += 1,
                Some(("suspended", _)) => counts[ii].suspended += 1,
                _ => {}
            }
            if let Some(a) = act {
                actions.push(a);
            }
        }
        // Held for an item no longer in the catalogue: nothing to do here, handled below.
        for o in held {
            open.entry(String::new()).or_default().push(o);
        }
    }
    // Whoever still holds something is no longer in the region (moved within the county to
    // another catalogue's area, or the item was removed): end it.
    for (_, os) in open {
        for o in os {
            if o.item != usize::MAX {
                counts[o.item].ended += 1;
            }
            actions.push(Action::Change {
                tier: o.tier.clone(),
                amount_fen: o.amount_fen,
                quota: o.quota,
                open: o,
                to: "ended",
                on,
                note: "不在本目录适用范围或项目已取消".into(),
            });
        }
    }

    let run_id = uuid::Uuid::now_v7().to_string();
    let summary = write(
        db,
        who,
        &c,
        &elders,
        actions,
        &run_id,
        rc.as_str(),
        on,
        names,
        counts,
        &started_at,
        started,
    )
    .await?;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn write(
    db: &Db,
    who: &Who,
    c: &Compiled,
    elders: &[ElderFacts],
    actions: Vec<Action>,
    run_id: &str,
    region: &str,
    on: NaiveDate,
    names: Names<'_>,
    counts: Vec<ItemCount>,
    started_at: &str,
    started: std::time::Instant,
) -> ApiResult<RunSummary> {
    let now = crate::platform::now_rfc3339();
    let mut digest = Sha256::new();
    let mut tx = db.begin().await?;
    let backend = db.backend;
    let n_changes = actions.len() as u64;
    // New entitlements in multi-row batches (the first run of a county grants tens of thousands).
    const ENT_COLS: usize = 15;
    const CHG_COLS: usize = 11;
    let mut news = vec![];
    let mut changes = vec![];
    for a in actions {
        match a {
            Action::New {
                elder,
                item,
                tier,
                state,
            } => news.push((elder, item, tier, state)),
            ch => changes.push(ch),
        }
    }
    for chunk in news.chunks(500) {
        let mut rows = Vec::with_capacity(chunk.len());
        for &(ei, ii, ti, state) in chunk {
            let ef = &elders[ei];
            let (def, rule) = &c.items[ii];
            let t = &rule.tiers[ti];
            let d = rule.explain(&ef.facts(), on, names);
            let id = uuid::Uuid::now_v7().to_string();
            digest.update(format!("{id}|{state}|{}|{}\n", t.label, t.amount_fen));
            rows.push((
                id,
                ef,
                def,
                t,
                state,
                serde_json::to_string(&d.reasons).map_err(ApiError::internal)?,
            ));
        }
        let sql = format!(
            "INSERT INTO entitlement (id, elder_id, catalog_region, item_code, state, tier, amount_fen, quota, residence_region, \
             since, ended_on, version_id, reasons, snapshot, updated_at) VALUES {}",
            crate::registry::store::placeholders(backend, rows.len(), ENT_COLS)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, ef, def, t, state, reasons) in &rows {
            q = q
                .bind(id.clone())
                .bind(ef.id.clone())
                .bind(region.to_string())
                .bind(def.code.clone())
                .bind(state.to_string())
                .bind(t.label.clone())
                .bind(t.amount_fen)
                .bind(t.quota)
                .bind(ef.residence.clone())
                .bind(on.to_string())
                .bind(None::<String>)
                .bind(c.version.id.clone())
                .bind(reasons.clone())
                .bind(ef.snapshot(on))
                .bind(now.clone());
        }
        q.execute(&mut *tx).await?;
        let sql = format!(
            "INSERT INTO entitlement_change (id, entitlement_id, run_id, from_state, to_state, tier, amount_fen, on_date, note, by_name, at) VALUES {}",
            crate::registry::store::placeholders(backend, rows.len(), CHG_COLS)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, _, def, t, state, _) in &rows {
            q = q
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(id.clone())
                .bind(run_id.to_string())
                .bind(None::<String>)
                .bind(state.to_string())
                .bind(t.label.clone())
                .bind(t.amount_fen)
                .bind(on.to_string())
                .bind(
                    if def.no_application {
                        "符合条件，免申即享自动发放"
                    } else {
                        "符合条件，待审批"
                    }
                    .to_string(),
                )
                .bind(who.actor_name.clone())
                .bind(now.clone());
        }
        q.execute(&mut *tx).await?;
    }
    for a in changes {
        let Action::Change {
            open,
            to,
            tier,
            amount_fen,
            quota,
            on: when,
            note,
        } = a
        else {
            continue;
        };
        digest.update(format!("{}|{to}|{tier}|{amount_fen}\n", open.id));
        sqlx::query(
            "UPDATE entitlement SET state = $2, tier = $3, amount_fen = $4, quota = $5, ended_on = $6, updated_at = $7, version_id = $8 WHERE id = $1",
        )
        .bind(&open.id)
        .bind(to)
        .bind(&tier)
        .bind(amount_fen)
        .bind(quota)
        .bind((to == "ended").then(|| when.to_string()))
        .bind(&now)
        .bind(&c.version.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO entitlement_change (id, entitlement_id, run_id, from_state, to_state, tier, amount_fen, on_date, note, by_name, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&open.id)
        .bind(run_id)
        .bind(&open.state)
        .bind(to)
        .bind(&tier)
        .bind(amount_fen)
        .bind(when.to_string())
        .bind(&note)
        .bind(&who.actor_name)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    let summary = RunSummary {
        run_id: run_id.to_string(),
        region_code: region.to_string(),
        version_number: c.version.number,
        on: on.to_string(),
        elders: elders.len() as u64,
        changes: n_changes,
        items: counts,
        millis: started.elapsed().as_millis() as u64,
    };
    let summary_json = serde_json::to_string(&summary).map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO catalog_run (id, region_code, version_id, on_date, started_at, finished_at, by_name, summary) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(run_id)
    .bind(region)
    .bind(&c.version.id)
    .bind(on.to_string())
    .bind(started_at)
    .bind(crate::platform::now_rfc3339())
    .bind(&who.actor_name)
    .bind(&summary_json)
    .execute(&mut *tx)
    .await?;
    // One audit row per run; the digest over its transitions makes a later edit of them detectable.
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "catalog.evaluate",
            entity: "catalog_run",
            entity_id: Some(run_id),
            region_code: Some(region),
            detail: serde_json::json!({
                "version": c.version.number,
                "on": on.to_string(),
                "changes": n_changes,
                "transitions_sha256": hex::encode(digest.finalize()),
            })
            .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}

/// One item of one catalogue, for one person: whether it applies and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemExplanation {
    pub catalog_region: String,
    pub code: String,
    pub name: String,
    pub category: String,
    pub benefit_kind: String,
    pub no_application: bool,
    pub applies: bool,
    pub tier: Option<String>,
    /// 元 per month, or once for one-off items.
    pub amount: Option<f64>,
    pub quota: Option<i64>,
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Reason>,
    /// The entitlement held now: proposed / granted / suspended (none when nothing is open).
    pub entitlement_state: Option<String>,
    pub entitlement_since: Option<String>,
}

/// Every published item that could apply to a person (the catalogues of their residence's region
/// and its ancestors), with the decision and its reasons. `region` is returned for auditing.
pub async fn explain_elder(
    db: &Db,
    scope: &Scope,
    elder_id: &str,
    on: NaiveDate,
    names: Names<'_>,
) -> ApiResult<(String, Vec<ItemExplanation>)> {
    let sql = format!("{FACTS_SQL} WHERE e.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(elder_id)
        .fetch_optional(&db.pool)
        .await?;
    let ef = row
        .as_ref()
        .and_then(|r| facts_of(r, on))
        .filter(|f| scope.contains(&f.residence))
        .ok_or_else(|| ApiError::not_found("未找到该老年人"))?;
    let held = sqlx::query("SELECT catalog_region, item_code, state, since FROM entitlement WHERE elder_id = $1 AND state <> 'ended'")
        .bind(elder_id)
        .fetch_all(&db.pool)
        .await?;
    let mut out = vec![];
    for v in store::published_covering(db, &ef.residence).await? {
        let c = compile_version(v)?;
        for (def, rule) in &c.items {
            let d = if ef.status == "active" {
                rule.explain(&ef.facts(), on, names)
            } else {
                let text = if ef.status == "deceased" {
                    "已故，不再享受待遇"
                } else {
                    "已迁出，不再享受本地待遇"
                };
                yiyang_kernel::eligibility::ItemDecision {
                    eligible: false,
                    tier: None,
                    reasons: vec![Reason {
                        ok: false,
                        text: text.into(),
                    }],
                }
            };
            let t = d.tier.map(|t| &rule.tiers[t]);
            let h = held.iter().find(|r| {
                r.get::<String, _>(0) == c.version.region_code && r.get::<String, _>(1) == def.code
            });
            out.push(ItemExplanation {
                catalog_region: c.version.region_code.clone(),
                code: def.code.clone(),
                name: def.name.clone(),
                category: def.category.clone(),
                benefit_kind: def.benefit_kind.clone(),
                no_application: def.no_application,
                applies: d.eligible,
                tier: t.map(|t| t.label.clone()),
                amount: t.map(|t| t.amount_fen as f64 / 100.0),
                quota: t.map(|t| t.quota),
                reasons: d.reasons,
                entitlement_state: h.map(|r| r.get(2)),
                entitlement_since: h.map(|r| r.get(3)),
            });
        }
    }
    Ok((ef.residence, out))
}

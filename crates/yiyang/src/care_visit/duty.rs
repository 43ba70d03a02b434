//! Visit duties (探访任务): the rules that say who must be visited how often, kept as data in the
//! catalogue's rule language, and the duties they give, worked out over the registry — at start,
//! every hour, and when the rules change. A duty's history is kept (opened, changed, ended) so a
//! past month's rate counts the duties of that month. And the villages given to village workers.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::Db;
use crate::platform::error::{ApiError, ApiResult};
use crate::region::RegionIndex;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;
use yiyang_kernel::care_visit::{self as rule, Frequency};
use yiyang_kernel::eligibility::Rule;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DutyRule {
    /// What it is, in words (shown on the page)
    pub name: String,
    /// weekly（每周）/ monthly（每月）
    pub frequency: String,
    /// A condition in the catalogue's rule language, e.g. 状态 = 在册 且 年龄 >= 80 且 居住状况 = 独居
    pub rule: String,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleView {
    pub id: String,
    pub name: String,
    pub frequency: String,
    pub frequency_zh: String,
    pub rule: String,
    pub active: bool,
    /// Elders holding a duty under it today
    pub holders: i64,
    pub updated_by: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RulesView {
    pub rules: Vec<RuleView>,
    /// When the duties were last worked out
    pub refreshed_at: Option<String>,
    /// Elders holding a duty today
    pub holders: i64,
}

/// Put the plans' rules in place the first time (an empty table and never configured).
pub async fn ensure_defaults(db: &Db) -> ApiResult<()> {
    let seeded = sqlx::query("SELECT value FROM app_meta WHERE key = 'visit_rules_seeded'")
        .fetch_optional(&db.pool)
        .await?
        .is_some();
    if seeded {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    let now = crate::platform::now_rfc3339();
    // The mark first, in the same transaction: of two first calls at once, one seeds.
    let first = sqlx::query(
        "INSERT INTO app_meta (key, value) VALUES ('visit_rules_seeded', $1) ON CONFLICT (key) DO NOTHING",
    )
    .bind(&now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first {
        return Ok(());
    }
    for (i, (name, f, text)) in rule::DEFAULT_RULES.iter().enumerate() {
        sqlx::query(
            "INSERT INTO visit_duty_rule (id, name, frequency, rule, position, active, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 1, 'yiyang', $6)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(*name)
        .bind(f.as_str())
        .bind(*text)
        .bind(i as i64)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn rules(db: &Db) -> ApiResult<RulesView> {
    ensure_defaults(db).await?;
    let holders: HashMap<String, i64> = sqlx::query(
        "SELECT rule_id, COUNT(*) FROM visit_duty WHERE ended_on IS NULL GROUP BY rule_id",
    )
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let rules: Vec<RuleView> = sqlx::query(
        "SELECT id, name, frequency, rule, active, updated_by, updated_at FROM visit_duty_rule ORDER BY position",
    )
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| {
        let id: String = r.get(0);
        let f: String = r.get(2);
        RuleView {
            holders: holders.get(&id).copied().unwrap_or(0),
            id,
            name: r.get(1),
            frequency_zh: Frequency::parse(&f).map(|f| f.zh()).unwrap_or("").into(),
            frequency: f,
            rule: r.get(3),
            active: r.get::<i64, _>(4) != 0,
            updated_by: r.get(5),
            updated_at: r.get(6),
        }
    })
    .collect();
    let refreshed_at =
        sqlx::query_scalar("SELECT value FROM app_meta WHERE key = 'visit_duties_at'")
            .fetch_optional(&db.pool)
            .await?;
    Ok(RulesView {
        holders: holders.values().sum(),
        rules,
        refreshed_at,
    })
}

/// The rules hold for everyone in the database: only an account whose area holds every elder
/// registered may set them or work them out again (in a city's deployment, the city's officer).
pub async fn whole_registry(db: &Db, scope: &Scope) -> ApiResult<()> {
    let outside = sqlx::query(
        "SELECT 1 FROM elder WHERE residence_region < $1 OR residence_region > $2 LIMIT 1",
    )
    .bind(&scope.lo)
    .bind(&scope.hi)
    .fetch_optional(&db.pool)
    .await?
    .is_some();
    if outside {
        return Err(ApiError::forbidden(
            "探访任务规则适用于本系统登记的全部老年人，请由管辖全部区划的民政部门设置",
        ));
    }
    Ok(())
}

/// Replace the rules (validated, all or nothing; audited). The duties follow at the next refresh,
/// which the caller starts.
pub async fn set_rules(db: &Db, who: &Who, list: Vec<DutyRule>) -> ApiResult<()> {
    if list.is_empty() || list.len() > 20 {
        return Err(ApiError::invalid("rules", "探访任务规则应有 1 到 20 条"));
    }
    for (i, r) in list.iter().enumerate() {
        let n = i + 1;
        let name = r.name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(ApiError::invalid(
                "name",
                format!("第 {n} 条规则的名称应为 1 到 60 个字"),
            ));
        }
        if Frequency::parse(&r.frequency).is_none() {
            return Err(ApiError::invalid(
                "frequency",
                format!("第 {n} 条规则的频次应为 weekly（每周）或 monthly（每月）"),
            ));
        }
        if r.rule.chars().count() > 2000 {
            return Err(ApiError::invalid(
                "rule",
                format!("第 {n} 条规则的条件过长"),
            ));
        }
        if let Err(e) = Rule::parse(&r.rule) {
            return Err(ApiError::invalid(
                "rule",
                format!("第 {n} 条规则“{name}”的条件有误：{e}"),
            ));
        }
    }
    let mut tx = db.begin().await?;
    // Rules keep their ids by name, so the duties they gave stay theirs.
    let old: HashMap<String, String> = sqlx::query("SELECT name, id FROM visit_duty_rule")
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    sqlx::query("DELETE FROM visit_duty_rule")
        .execute(&mut *tx)
        .await?;
    let now = crate::platform::now_rfc3339();
    let mut seen = std::collections::HashSet::new();
    for (i, r) in list.iter().enumerate() {
        let name = r.name.trim();
        if !seen.insert(name.to_string()) {
            return Err(ApiError::invalid("name", format!("规则名称“{name}”重复")));
        }
        let f = Frequency::parse(&r.frequency).expect("checked");
        sqlx::query(
            "INSERT INTO visit_duty_rule (id, name, frequency, rule, position, active, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(old.get(name).cloned().unwrap_or_else(|| uuid::Uuid::now_v7().to_string()))
        .bind(name)
        .bind(f.as_str())
        .bind(r.rule.trim())
        .bind(i as i64)
        .bind(r.active as i64)
        .bind(&who.actor_name)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("INSERT INTO app_meta (key, value) VALUES ('visit_rules_seeded', $1) ON CONFLICT (key) DO NOTHING")
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "visit_duty_rule.set",
            entity: "visit_duty_rule",
            entity_id: None,
            region_code: None,
            detail: serde_json::to_string(&list).unwrap_or_default(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Refresh {
    pub opened: usize,
    pub changed: usize,
    pub ended: usize,
    /// Duties held after it
    pub held: usize,
    pub millis: u128,
}

/// One refresh at a time (the server's round, a rule change, a test).
static REFRESHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Work the duties out over the whole registry on `today`: open the new ones (from today), end
/// the ones no rule gives any more (from today), and change the frequency of the others (the old
/// duty ends and a new one begins today). Written in chunks, so other users go on meanwhile.
pub async fn refresh(db: &Db, today: NaiveDate) -> ApiResult<Refresh> {
    let _one = REFRESHING.lock().await;
    refresh_held(db, today).await
}

/// A refresh asked for by hand: refused while one runs or an import is being written, rather
/// than queued behind it.
pub async fn refresh_now(db: &Db, today: NaiveDate) -> ApiResult<Refresh> {
    let Ok(_one) = REFRESHING.try_lock() else {
        return Err(ApiError::conflict("探访任务正在核定中，请稍后再试"));
    };
    if crate::indicator::rollup::import_running(db).await {
        return Err(ApiError::conflict("正在导入档案，导入完成后会自动重新核定"));
    }
    refresh_held(db, today).await
}

async fn refresh_held(db: &Db, today: NaiveDate) -> ApiResult<Refresh> {
    let t0 = std::time::Instant::now();
    ensure_defaults(db).await?;
    let rules: Vec<(String, Frequency, Rule)> = sqlx::query(
        "SELECT id, frequency, rule FROM visit_duty_rule WHERE active = 1 ORDER BY position",
    )
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .filter_map(|r| {
        let text: String = r.get(2);
        let parsed = Rule::parse(&text)
            .map_err(|e| tracing::warn!(rule = %text, error = %e, "visit duty rule does not parse"))
            .ok()?;
        Some((r.get(0), Frequency::parse(&r.get::<String, _>(1))?, parsed))
    })
    .collect();
    let people =
        crate::catalog::evaluate::load_facts(db, "000000000000", "999999999999", today).await?;
    let mut want: HashMap<String, (usize, Frequency)> = HashMap::new();
    // Where each person lives, by the nine digits of the town (its figures are recounted).
    let mut town: HashMap<&str, &str> = HashMap::new();
    for p in &people {
        town.insert(&p.id, p.residence.get(..9).unwrap_or(&p.residence));
        let f = p.facts();
        if let Some(best) = rule::strictest(
            rules
                .iter()
                .enumerate()
                .filter(|(_, (_, _, r))| r.holds(&f, today))
                .map(|(i, (_, fr, _))| (i, *fr)),
        ) {
            want.insert(p.id.clone(), best);
        }
    }
    let held: HashMap<String, (String, String, String)> = sqlx::query(
        "SELECT elder_id, id, frequency, rule_id FROM visit_duty WHERE ended_on IS NULL",
    )
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
    .collect();
    enum Change {
        Open(String, usize, Frequency),
        End(String, String),
        Swap(String, String, usize, Frequency),
        /// The same frequency under another rule (renamed, reordered): the duty goes on.
        Relabel(String, usize),
    }
    let mut changes = vec![];
    let mut out = Refresh::default();
    for (elder, (i, f)) in &want {
        match held.get(elder) {
            None => {
                out.opened += 1;
                changes.push(Change::Open(elder.clone(), *i, *f));
            }
            Some((id, hf, _)) if hf != f.as_str() => {
                out.changed += 1;
                changes.push(Change::Swap(id.clone(), elder.clone(), *i, *f));
            }
            Some((id, _, hr)) if *hr != rules[*i].0 => {
                changes.push(Change::Relabel(id.clone(), *i));
            }
            Some(_) => {}
        }
    }
    for (elder, (id, _, _)) in &held {
        if !want.contains_key(elder) {
            out.ended += 1;
            changes.push(Change::End(id.clone(), elder.clone()));
        }
    }
    let mut towns: std::collections::BTreeSet<String> = Default::default();
    for c in &changes {
        let elder = match c {
            Change::Open(e, _, _) | Change::Swap(_, e, _, _) | Change::End(_, e) => e.as_str(),
            // Nothing a figure counts changes.
            Change::Relabel(..) => continue,
        };
        if let Some(t) = town.get(elder) {
            towns.insert(format!("{t:0<12}"));
        }
    }
    drop(town);
    drop(people);
    let (day, now) = (today.to_string(), crate::platform::now_rfc3339());
    for chunk in changes.chunks(2000) {
        let mut tx = db.begin().await?;
        for c in chunk {
            if let Change::Relabel(id, i) = c {
                sqlx::query("UPDATE visit_duty SET rule_id = $1 WHERE id = $2")
                    .bind(&rules[*i].0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            let (end, open) = match c {
                Change::Open(e, i, f) => (None, Some((e, *i, *f))),
                Change::End(id, _) => (Some(id), None),
                Change::Swap(id, e, i, f) => (Some(id), Some((e, *i, *f))),
                Change::Relabel(..) => continue,
            };
            if let Some(id) = end {
                sqlx::query(
                    "UPDATE visit_duty SET ended_on = $1 WHERE id = $2 AND ended_on IS NULL",
                )
                .bind(&day)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            if let Some((elder, i, f)) = open {
                sqlx::query(
                    "INSERT INTO visit_duty (id, elder_id, frequency, rule_id, since, ended_on, created_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL, $6)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(elder)
                .bind(f.as_str())
                .bind(&rules[i].0)
                .bind(&day)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    }
    if !towns.is_empty() {
        let mut tx = db.begin().await?;
        for t in &towns {
            crate::indicator::rollup::mark_dirty(&mut tx, t).await?;
        }
        tx.commit().await?;
    }
    sqlx::query(
        "INSERT INTO app_meta (key, value) VALUES ('visit_duties_at', $1) ON CONFLICT (key) DO UPDATE SET value = $1",
    )
    .bind(&now)
    .execute(&mut *db.writer().await?)
    .await?;
    out.held = want.len();
    out.millis = t0.elapsed().as_millis();
    Ok(out)
}

/// Wakes the server's round early (the rules changed).
pub static RULES_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// The server's job: the duties worked out at start, every hour, and at once when the rules
/// change; not while an import is being written (its rows change under the reading).
pub fn keep_current(db: Db) {
    tokio::spawn(async move {
        loop {
            crate::platform::metrics::beat("visit_duties", std::time::Duration::from_secs(3600));
            let wait = if crate::indicator::rollup::import_running(&db).await {
                std::time::Duration::from_secs(60)
            } else {
                match refresh(&db, crate::platform::today()).await {
                    Ok(r) => {
                        if r.opened + r.changed + r.ended > 0 {
                            tracing::info!(
                                opened = r.opened,
                                changed = r.changed,
                                ended = r.ended,
                                held = r.held,
                                millis = r.millis as u64,
                                "visit duties refreshed"
                            );
                        }
                        crate::platform::release_memory();
                    }
                    Err(e) => tracing::warn!(error = %e.detail, "visit duty refresh failed"),
                }
                std::time::Duration::from_secs(3600)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = RULES_CHANGED.notified() => {}
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Villages given to village workers

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Area {
    pub region_code: String,
    pub name: String,
    /// Elders holding a duty there today
    pub duties: i64,
    pub user_id: Option<String>,
    pub worker_name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Worker {
    pub user_id: String,
    pub display_name: String,
    pub region_name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Areas {
    pub areas: Vec<Area>,
    /// Village workers who can be given a village here
    pub workers: Vec<Worker>,
}

/// The villages under a town (or any region) with their duties and worker.
pub async fn areas(
    db: &Db,
    regions: &RegionIndex,
    scope: &Scope,
    region_code: &str,
) -> ApiResult<Areas> {
    let root = scope.region(region_code)?;
    let (lo, hi) = root.subtree_range();
    let duties: HashMap<String, i64> = sqlx::query(
        "SELECT e.residence_region, COUNT(*) FROM visit_duty d JOIN elder e ON e.id = d.elder_id \
         WHERE d.ended_on IS NULL AND e.status = 'active' AND e.residence_region BETWEEN $1 AND $2 GROUP BY e.residence_region",
    )
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let given: HashMap<String, (String, Option<String>)> = sqlx::query(
        "SELECT a.region_code, a.user_id, u.display_name FROM visit_area a LEFT JOIN app_user u ON u.id = a.user_id \
         WHERE a.region_code BETWEEN $1 AND $2",
    )
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2))))
    .collect();
    let mut codes: Vec<String> = duties.keys().chain(given.keys()).cloned().collect();
    codes.sort();
    codes.dedup();
    let areas = codes
        .into_iter()
        .map(|c| {
            let g = given.get(&c);
            Area {
                name: regions.path_name(&c),
                duties: duties.get(&c).copied().unwrap_or(0),
                user_id: g.map(|g| g.0.clone()),
                worker_name: g.and_then(|g| g.1.clone()),
                region_code: c,
            }
        })
        .collect();
    let workers = workers_for(db, regions, &lo, &hi).await?;
    Ok(Areas { areas, workers })
}

/// Active accounts with the village worker's role whose area lies inside or over the range.
async fn workers_for(db: &Db, regions: &RegionIndex, lo: &str, hi: &str) -> ApiResult<Vec<Worker>> {
    let rows = sqlx::query(
        "SELECT id, display_name, region_code, roles FROM app_user WHERE disabled = 0 ORDER BY region_code, display_name",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| has_worker_role(&r.get::<String, _>(3)))
        .filter(|r| {
            let c: String = r.get(2);
            c.as_str() >= lo && c.as_str() <= hi
        })
        .map(|r| Worker {
            user_id: r.get(0),
            display_name: r.get(1),
            region_name: regions.path_name(&r.get::<String, _>(2)),
        })
        .collect())
}

/// Roles are stored as a JSON list or comma-separated codes.
fn has_worker_role(roles: &str) -> bool {
    roles
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|x| x == "worker")
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaAssignReq {
    /// The village worker's account; none takes the village back
    pub user_id: Option<String>,
}

/// Give a village to a village worker (or take it back); audited.
pub async fn assign(
    db: &Db,
    regions: &RegionIndex,
    scope: &Scope,
    who: &Who,
    region_code: &str,
    a: AreaAssignReq,
) -> ApiResult<()> {
    let code = scope.region(region_code)?;
    if regions.name(code.as_str()).is_none() {
        return Err(ApiError::not_found("未找到该区划"));
    }
    let mut tx = db.begin().await?;
    match a.user_id.as_deref().filter(|s| !s.is_empty()) {
        Some(uid) => {
            let u = sqlx::query("SELECT region_code, roles, disabled FROM app_user WHERE id = $1")
                .bind(uid)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| ApiError::not_found("未找到该账号"))?;
            let (region, roles, disabled): (String, String, i64) = (u.get(0), u.get(1), u.get(2));
            if !has_worker_role(&roles) || disabled != 0 {
                return Err(ApiError::invalid("user_id", "只能分配给在用的网格员账号"));
            }
            let theirs = yiyang_kernel::RegionCode::parse(&region)
                .map_err(|_| ApiError::invalid("user_id", "该账号的区划有误"))?;
            if !theirs.contains(&code) {
                return Err(ApiError::invalid(
                    "user_id",
                    format!(
                        "该网格员的管辖范围（{}）不含此村（社区）",
                        regions.path_name(&region)
                    ),
                ));
            }
            sqlx::query(
                "INSERT INTO visit_area (region_code, user_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (region_code) DO UPDATE SET user_id = $2, assigned_by = $3, assigned_at = $4",
            )
            .bind(code.as_str())
            .bind(uid)
            .bind(&who.actor_name)
            .bind(crate::platform::now_rfc3339())
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM visit_area WHERE region_code = $1")
                .bind(code.as_str())
                .execute(&mut *tx)
                .await?;
        }
    }
    audit::append(
        &mut tx,
        who,
        Entry {
            action: "visit_area.assign",
            entity: "region",
            entity_id: Some(code.as_str()),
            region_code: Some(code.as_str()),
            detail: serde_json::json!({"user_id": a.user_id}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

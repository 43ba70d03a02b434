//! Catalogue versions and items: a draft is edited, checked item by item, and published; the
//! published version of a region is what the evaluation runs and the public page shows.

use crate::audit::{self, Entry, Who};
use crate::identity::Scope;
use crate::platform::db::{Db, Tx};
use crate::platform::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use yiyang_kernel::RegionCode;
use yiyang_kernel::eligibility::{ItemRule, Rule, Tier};

pub const BENEFIT_KINDS: &[(&str, &str)] = &[
    ("cash_monthly", "现金（按月）"),
    ("service_monthly", "服务（按月）"),
    ("one_off", "一次性"),
    // 元 per meal off the meal point's price (老年助餐), at most one lunch and one supper a day;
    // paid to the meal point at settlement, never to the person.
    ("meal_subsidy", "助餐补贴（按餐）"),
];

/// Share of the cost paid by each level, in percent (sums to 100).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Funding {
    #[serde(default)]
    pub province: u8,
    #[serde(default)]
    pub city: u8,
    #[serde(default)]
    pub county: u8,
    #[serde(default)]
    pub town: u8,
}

/// A band of an item: its condition (none = everyone the item's rule admits), and the amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierDef {
    /// e.g. 80–89周岁
    pub label: String,
    #[serde(default)]
    pub rule: Option<String>,
    /// 元 per month (cash_monthly, service_monthly) or once (one_off); two decimals at most.
    pub amount: f64,
    /// Service units per month (visits), service items only.
    #[serde(default)]
    pub quota: i64,
}

/// One catalogue item as the officer defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemDef {
    /// Stable code within the region's catalogue: lower-case letters, digits and _.
    pub code: String,
    /// 项目名称
    pub name: String,
    /// 类别, e.g. 津贴补贴 / 照护服务 / 关爱服务 / 适老化改造
    pub category: String,
    /// cash_monthly / service_monthly / one_off
    pub benefit_kind: String,
    /// 服务内容
    pub provision: String,
    /// 服务标准
    pub standard: String,
    /// 责任（支付）部门
    pub department: String,
    #[serde(default)]
    pub funding: Funding,
    /// 免申即享: granted by the evaluation without an application.
    pub no_application: bool,
    /// Its monthly quota (service items) is used by home-visit orders (居家上门服务): a visit
    /// confirmed for the elder takes one from it and is paid to the provider from this item.
    #[serde(default)]
    pub home_service: bool,
    /// 未用次数顺延: a home-service item's visits left at a month's end may be used in the next
    /// month (once; then they lapse). Otherwise they lapse at the month's end.
    #[serde(default)]
    pub carry_over: bool,
    /// 对象条件, in the rule language.
    pub rule: String,
    pub tiers: Vec<TierDef>,
}

fn text(field: &str, v: &str, label: &str, max: usize, required: bool) -> ApiResult<()> {
    let n = v.trim().chars().count();
    if required && n == 0 {
        return Err(ApiError::invalid(field, format!("{label}不能为空")));
    }
    if n > max {
        return Err(ApiError::invalid(
            field,
            format!("{label}过长（最多 {max} 个字）"),
        ));
    }
    Ok(())
}

fn rule_err(field: &str, e: yiyang_kernel::eligibility::RuleError) -> ApiError {
    ApiError::invalid(field, e.to_string())
}

/// Check an item completely and compile its rules. Errors name the field (`tiers[1].rule`).
pub fn compile(d: &ItemDef) -> ApiResult<ItemRule> {
    if d.code.is_empty()
        || d.code.len() > 40
        || !d
            .code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::invalid(
            "code",
            "项目代码应为 1–40 位小写字母、数字或下划线，如 longevity_allowance",
        ));
    }
    text("name", &d.name, "项目名称", 50, true)?;
    text("category", &d.category, "类别", 20, true)?;
    text("provision", &d.provision, "服务内容", 500, true)?;
    text("standard", &d.standard, "服务标准", 500, false)?;
    text("department", &d.department, "责任部门", 50, true)?;
    if !BENEFIT_KINDS.iter().any(|k| k.0 == d.benefit_kind) {
        return Err(ApiError::invalid(
            "benefit_kind",
            "待遇类型应为 现金（按月）、服务（按月）、一次性或助餐补贴（按餐）",
        ));
    }
    if d.home_service && d.benefit_kind != "service_monthly" {
        return Err(ApiError::invalid(
            "home_service",
            "只有“服务（按月）”的项目才能由上门服务工单使用次数",
        ));
    }
    if d.carry_over && !d.home_service {
        return Err(ApiError::invalid(
            "carry_over",
            "只有上门服务使用次数的项目才能把未用次数顺延至下月",
        ));
    }
    let f = &d.funding;
    let sum = f.province as u32 + f.city as u32 + f.county as u32 + f.town as u32;
    if sum != 100 {
        return Err(ApiError::invalid(
            "funding",
            format!("省、市、县、镇四级资金分担比例之和应为 100%，现为 {sum}%"),
        ));
    }
    let rule = Rule::parse(&d.rule).map_err(|e| rule_err("rule", e))?;
    if d.tiers.is_empty() {
        return Err(ApiError::invalid("tiers", "至少要有一个档次（待遇标准）"));
    }
    if d.tiers.len() > 20 {
        return Err(ApiError::invalid("tiers", "档次最多 20 个"));
    }
    let mut tiers = vec![];
    for (i, t) in d.tiers.iter().enumerate() {
        text(&format!("tiers[{i}].label"), &t.label, "档次名称", 30, true)?;
        if let Some(prev) = tiers.last().filter(|p: &&Tier| p.rule.is_none()) {
            return Err(ApiError::invalid(
                &format!("tiers[{i}].rule"),
                format!("档次“{}”没有条件，其后的档次永远不会适用", prev.label),
            ));
        }
        let cents = (t.amount * 100.0).round();
        if !t.amount.is_finite()
            || t.amount < 0.0
            || t.amount > 1_000_000.0
            || (cents - t.amount * 100.0).abs() > 1e-6
        {
            return Err(ApiError::invalid(
                &format!("tiers[{i}].amount"),
                "金额应为 0–1000000 元，最多两位小数",
            ));
        }
        if !(0..=100).contains(&t.quota) || (d.benefit_kind == "service_monthly" && t.quota == 0) {
            return Err(ApiError::invalid(
                &format!("tiers[{i}].quota"),
                "服务次数应为 0–100；服务类项目每月至少 1 次",
            ));
        }
        let rule = match t.rule.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(src) => {
                Some(Rule::parse(src).map_err(|e| rule_err(&format!("tiers[{i}].rule"), e))?)
            }
        };
        tiers.push(Tier {
            label: t.label.trim().to_string(),
            rule,
            amount_fen: cents as i64,
            quota: t.quota,
        });
    }
    Ok(ItemRule { rule, tiers })
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub id: String,
    pub region_code: String,
    pub number: i64,
    /// draft / published / superseded
    pub state: String,
    pub effective_from: Option<String>,
    pub published_at: Option<String>,
    pub published_by: Option<String>,
    pub items: Vec<ItemDef>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CatalogView {
    pub region_code: String,
    pub published: Option<VersionView>,
    pub draft: Option<VersionView>,
}

fn region_of(code: &str) -> ApiResult<RegionCode> {
    RegionCode::parse(code).map_err(|e| ApiError::invalid("region_code", e.to_string()))
}

pub async fn version_by_state(
    db: &Db,
    region: &str,
    state: &str,
) -> ApiResult<Option<VersionView>> {
    let row = sqlx::query(
        // Who published it by name (the account's display name), not by login.
        "SELECT id, number, state, effective_from, published_at, \
         COALESCE((SELECT u.display_name FROM app_user u WHERE u.username = v.published_by AND u.display_name <> ''), v.published_by) \
         FROM catalog_version v WHERE region_code = $1 AND state = $2",
    )
    .bind(region)
    .bind(state)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let id: String = r.get(0);
    let items = items_of(db, &id).await?;
    Ok(Some(VersionView {
        id,
        region_code: region.to_string(),
        number: r.get(1),
        state: r.get(2),
        effective_from: r.get(3),
        published_at: r.get(4),
        published_by: r.get(5),
        items,
    }))
}

pub async fn items_of(db: &Db, version_id: &str) -> ApiResult<Vec<ItemDef>> {
    let rows = sqlx::query(
        "SELECT definition FROM catalog_item WHERE version_id = $1 ORDER BY position, code",
    )
    .bind(version_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            serde_json::from_str::<ItemDef>(&r.get::<String, _>(0)).map_err(ApiError::internal)
        })
        .collect()
}

/// The catalogue of a region: its published version and its draft, if any.
pub async fn view(db: &Db, region_code: &str) -> ApiResult<CatalogView> {
    let rc = region_of(region_code)?;
    Ok(CatalogView {
        region_code: rc.as_str().to_string(),
        published: version_by_state(db, rc.as_str(), "published").await?,
        draft: version_by_state(db, rc.as_str(), "draft").await?,
    })
}

/// Every published catalogue whose region covers `residence` (a county's and its city's), most
/// general first.
pub async fn published_covering(db: &Db, residence: &str) -> ApiResult<Vec<VersionView>> {
    let rows = sqlx::query(
        "SELECT region_code FROM catalog_version WHERE state = 'published' ORDER BY region_code",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut out = vec![];
    for r in rows {
        let code: String = r.get(0);
        if RegionCode::parse(&code).is_ok_and(|c| residence.starts_with(c.prefix()))
            && let Some(v) = version_by_state(db, &code, "published").await?
        {
            out.push(v);
        }
    }
    Ok(out)
}

async fn audit_catalog(
    tx: &mut Tx<'_>,
    who: &Who,
    action: &str,
    region: &str,
    version_id: &str,
    detail: serde_json::Value,
) -> ApiResult<()> {
    audit::append(
        tx,
        who,
        Entry {
            action,
            entity: "catalog_version",
            entity_id: Some(version_id),
            region_code: Some(region),
            detail: detail.to_string(),
        },
    )
    .await?;
    Ok(())
}

fn check_scope(scope: &Scope, rc: &RegionCode) -> ApiResult<()> {
    if !scope.covers(rc) {
        return Err(ApiError::forbidden("该区划不在您的管辖范围内"));
    }
    Ok(())
}

/// The region's draft; a new one (a copy of the published items) when there is none.
pub async fn open_draft(
    db: &Db,
    scope: &Scope,
    who: &Who,
    region_code: &str,
) -> ApiResult<VersionView> {
    let rc = region_of(region_code)?;
    check_scope(scope, &rc)?;
    if let Some(d) = version_by_state(db, rc.as_str(), "draft").await? {
        return Ok(d);
    }
    let mut tx = db.begin().await?;
    let number: i64 = sqlx::query(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM catalog_version WHERE region_code = $1",
    )
    .bind(rc.as_str())
    .fetch_one(&mut *tx)
    .await?
    .get(0);
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO catalog_version (id, region_code, number, state, created_by, created_at) VALUES ($1, $2, $3, 'draft', $4, $5)",
    )
    .bind(&id)
    .bind(rc.as_str())
    .bind(number)
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_or(e, "另一位用户刚刚创建了草稿，请刷新"))?;
    let copied = sqlx::query(
        "INSERT INTO catalog_item (version_id, code, position, name, definition) \
         SELECT $1, i.code, i.position, i.name, i.definition FROM catalog_item i \
         JOIN catalog_version v ON v.id = i.version_id WHERE v.region_code = $2 AND v.state = 'published'",
    )
    .bind(&id)
    .bind(rc.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    audit_catalog(
        &mut tx,
        who,
        "catalog.draft",
        rc.as_str(),
        &id,
        serde_json::json!({"number": number, "items_copied": copied}),
    )
    .await?;
    tx.commit().await?;
    Ok(version_by_state(db, rc.as_str(), "draft")
        .await?
        .expect("just created"))
}

fn conflict_or(e: sqlx::Error, msg: &str) -> ApiError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => ApiError::conflict(msg),
        _ => e.into(),
    }
}

/// The draft a change goes to, checked: it exists, is a draft, and lies in the caller's scope.
async fn draft_in_scope(tx: &mut Tx<'_>, scope: &Scope, version_id: &str) -> ApiResult<String> {
    let r = sqlx::query("SELECT region_code, state FROM catalog_version WHERE id = $1")
        .bind(version_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| ApiError::not_found("目录版本不存在"))?;
    let region: String = r.get(0);
    let rc = region_of(&region)?;
    if !scope.covers(&rc) {
        return Err(ApiError::not_found("目录版本不存在"));
    }
    if r.get::<String, _>(1) != "draft" {
        return Err(ApiError::conflict("该版本已发布，不能再修改；请新建草稿"));
    }
    Ok(region)
}

/// Add or replace an item of a draft (checked completely first).
pub async fn put_item(
    db: &Db,
    scope: &Scope,
    who: &Who,
    version_id: &str,
    mut d: ItemDef,
) -> ApiResult<ItemDef> {
    let compiled = compile(&d)?;
    // A rule may only name lists that exist.
    let mut names = compiled.rule.lists();
    for t in &compiled.tiers {
        names.extend(t.rule.as_ref().map(|r| r.lists()).unwrap_or_default());
    }
    if let Some(n) = super::lists::missing(db, &names).await?.first() {
        return Err(ApiError::invalid(
            "rule",
            format!("名单“{n}”不存在，请先建立该名单"),
        ));
    }
    d.name = d.name.trim().to_string();
    d.rule = d.rule.trim().to_string();
    let mut tx = db.begin().await?;
    let region = draft_in_scope(&mut tx, scope, version_id).await?;
    let position: i64 = sqlx::query(
        "SELECT COALESCE((SELECT position FROM catalog_item WHERE version_id = $1 AND code = $2), \
         (SELECT COALESCE(MAX(position), 0) + 1 FROM catalog_item WHERE version_id = $1))",
    )
    .bind(version_id)
    .bind(&d.code)
    .fetch_one(&mut *tx)
    .await?
    .get(0);
    let def = serde_json::to_string(&d).map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO catalog_item (version_id, code, position, name, definition) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (version_id, code) DO UPDATE SET name = excluded.name, definition = excluded.definition",
    )
    .bind(version_id)
    .bind(&d.code)
    .bind(position)
    .bind(&d.name)
    .bind(&def)
    .execute(&mut *tx)
    .await?;
    audit_catalog(
        &mut tx,
        who,
        "catalog.item_put",
        &region,
        version_id,
        serde_json::json!({"item": d.code, "rule": d.rule}),
    )
    .await?;
    tx.commit().await?;
    Ok(d)
}

pub async fn delete_item(
    db: &Db,
    scope: &Scope,
    who: &Who,
    version_id: &str,
    code: &str,
) -> ApiResult<()> {
    let mut tx = db.begin().await?;
    let region = draft_in_scope(&mut tx, scope, version_id).await?;
    let n = sqlx::query("DELETE FROM catalog_item WHERE version_id = $1 AND code = $2")
        .bind(version_id)
        .bind(code)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::not_found("该项目不存在"));
    }
    audit_catalog(
        &mut tx,
        who,
        "catalog.item_delete",
        &region,
        version_id,
        serde_json::json!({"item": code}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Publish a draft: it becomes the region's catalogue, the previous one is superseded. Every item
/// is checked again (a draft may predate a change of the language).
pub async fn publish(
    db: &Db,
    scope: &Scope,
    who: &Who,
    version_id: &str,
    effective_from: &str,
) -> ApiResult<VersionView> {
    let eff = chrono::NaiveDate::parse_from_str(effective_from.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::invalid("effective_from", "生效日期应为 YYYY-MM-DD"))?;
    let items = items_of(db, version_id).await?;
    if items.is_empty() {
        return Err(ApiError::invalid("items", "草稿中还没有项目，不能发布"));
    }
    for d in &items {
        compile(d)
            .map_err(|e| ApiError::invalid("items", format!("项目“{}”：{}", d.name, e.detail)))?;
    }
    let mut tx = db.begin().await?;
    let region = draft_in_scope(&mut tx, scope, version_id).await?;
    sqlx::query("UPDATE catalog_version SET state = 'superseded' WHERE region_code = $1 AND state = 'published'")
        .bind(&region)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE catalog_version SET state = 'published', effective_from = $2, published_by = $3, published_at = $4 WHERE id = $1",
    )
    .bind(version_id)
    .bind(eff.to_string())
    .bind(&who.actor_name)
    .bind(crate::platform::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    audit_catalog(
        &mut tx,
        who,
        "catalog.publish",
        &region,
        version_id,
        serde_json::json!({"items": items.iter().map(|i| &i.code).collect::<Vec<_>>(), "effective_from": eff.to_string()}),
    )
    .await?;
    tx.commit().await?;
    Ok(version_by_state(db, &region, "published")
        .await?
        .expect("just published"))
}

fn tier(label: &str, rule: Option<&str>, amount: f64, quota: i64) -> TierDef {
    TierDef {
        label: label.into(),
        rule: rule.map(str::to_string),
        amount,
        quota,
    }
}

/// The example catalogue of the demo county, with the amounts the issue and the local plans name
/// (高龄津贴 80–89 / 90–99 / 100+ at 50 / 100 / 300 元 a month, granted without application).
pub fn demo_items() -> Vec<ItemDef> {
    let f = |province, city, county, town| Funding {
        province,
        city,
        county,
        town,
    };
    vec![
        ItemDef {
            code: "longevity_allowance".into(),
            name: "高龄津贴".into(),
            category: "津贴补贴".into(),
            benefit_kind: "cash_monthly".into(),
            provision: "按年龄段按月发放高龄津贴，打卡发放到本人社保卡".into(),
            standard: "80–89周岁每人每月50元，90–99周岁100元，100周岁及以上300元".into(),
            department: "县民政局".into(),
            funding: f(0, 0, 100, 0),
            no_application: true,
            home_service: false,
            carry_over: false,
            rule: "状态 = 在册 且 年龄 >= 80".into(),
            tiers: vec![
                tier("80–89周岁", Some("年龄 < 90"), 50.0, 0),
                tier("90–99周岁", Some("年龄 < 100"), 100.0, 0),
                tier("100周岁及以上", None, 300.0, 0),
            ],
        },
        ItemDef {
            code: "care_subsidy".into(),
            name: "经济困难失能老年人护理补贴".into(),
            category: "津贴补贴".into(),
            benefit_kind: "cash_monthly".into(),
            provision: "经济困难且经能力评估为失能的老年人，按失能程度按月发放护理补贴".into(),
            standard: "中度失能每人每月100元，重度及完全失能每人每月200元".into(),
            department: "县民政局".into(),
            funding: f(0, 30, 50, 20),
            no_application: false,
            home_service: false,
            carry_over: false,
            rule: "状态 = 在册 且 经济状况 属于 [特困, 低保, 低保边缘] 且 能力等级 >= 中度失能".into(),
            tiers: vec![
                tier("重度及完全失能", Some("能力等级 >= 重度失能"), 200.0, 0),
                tier("中度失能", None, 100.0, 0),
            ],
        },
        ItemDef {
            code: "purchased_home_service".into(),
            name: "政府购买居家养老服务".into(),
            category: "照护服务".into(),
            benefit_kind: "service_monthly".into(),
            provision: "由服务机构上门提供助餐、助洁、助浴、助医等服务".into(),
            standard: "失能的每月4次、价值120元；其他每月2次、价值50元；当月未用完的次数可顺延至下月".into(),
            department: "县民政局".into(),
            funding: f(0, 20, 60, 20),
            no_application: false,
            home_service: true,
            carry_over: true,
            rule: "状态 = 在册 且 (经济状况 属于 [特困, 低保] 或 (年龄 >= 80 且 居住状况 属于 [独居, 空巢]))".into(),
            tiers: vec![
                tier("失能", Some("能力等级 >= 中度失能"), 120.0, 4),
                tier("一般", None, 50.0, 2),
            ],
        },
        ItemDef {
            code: "care_visit".into(),
            name: "特殊困难老年人探访关爱".into(),
            category: "关爱服务".into(),
            benefit_kind: "service_monthly".into(),
            provision: "网格员、社工或志愿者定期上门或电话探访，发现问题及时处置".into(),
            standard: "每月至少探访1次".into(),
            department: "镇（街道）".into(),
            funding: f(0, 0, 50, 50),
            no_application: true,
            home_service: false,
            carry_over: false,
            rule: "状态 = 在册 且 (居住状况 属于 [独居, 空巢, 留守] 或 计生特殊家庭 属于 [失独, 伤残] 或 能力等级 >= 中度失能 或 经济状况 属于 [特困, 低保])".into(),
            tiers: vec![tier("每月探访", None, 0.0, 1)],
        },
        ItemDef {
            code: "home_adaptation".into(),
            name: "居家适老化改造补贴".into(),
            category: "适老化改造".into(),
            benefit_kind: "one_off".into(),
            provision: "为经济困难的失能、高龄老年人家庭实施防滑、扶手、坐便等适老化改造".into(),
            standard: "每户一次性补贴1000元".into(),
            department: "县民政局".into(),
            funding: f(0, 50, 50, 0),
            no_application: false,
            home_service: false,
            carry_over: false,
            rule: "状态 = 在册 且 经济状况 属于 [特困, 低保, 低保边缘] 且 (能力等级 >= 轻度失能 或 年龄 >= 80)".into(),
            tiers: vec![tier("每户", None, 1000.0, 0)],
        },
        ItemDef {
            code: "family_care_bed".into(),
            name: "家庭养老照护床位".into(),
            category: "照护服务".into(),
            benefit_kind: "service_monthly".into(),
            provision: "养老机构将专业照护延伸到失能老年人家中，签约建床、定期上门".into(),
            standard: "每月上门照护8次，补贴300元".into(),
            department: "县民政局".into(),
            funding: f(0, 30, 70, 0),
            no_application: false,
            home_service: false,
            carry_over: false,
            rule: "状态 = 在册 且 能力等级 >= 重度失能".into(),
            tiers: vec![tier("重度及完全失能", None, 300.0, 8)],
        },
        ItemDef {
            code: "meal_subsidy".into(),
            name: "老年助餐补贴".into(),
            category: "照护服务".into(),
            benefit_kind: "meal_subsidy".into(),
            provision: "在助餐点用餐按餐减免餐费，每天午餐、晚餐各补贴一餐；刷身份证即可".into(),
            standard: "特困老年人免费；80周岁及以上和低保老年人每餐减免3元".into(),
            department: "县民政局".into(),
            funding: f(0, 0, 60, 40),
            no_application: true,
            home_service: false,
            carry_over: false,
            rule: "状态 = 在册 且 (年龄 >= 80 或 经济状况 属于 [特困, 低保])".into(),
            tiers: vec![
                tier("特困（免费）", Some("经济状况 属于 [特困]"), 15.0, 0),
                tier("每餐减免3元", None, 3.0, 0),
            ],
        },
    ]
}

/// Put the demo catalogue in place and publish it (once: skipped when the region has one).
pub async fn seed_demo(db: &Db, region: &str, who: &Who) -> ApiResult<bool> {
    if version_by_state(db, region, "published").await?.is_some() {
        return Ok(false);
    }
    let scope = Scope::all();
    let draft = open_draft(db, &scope, who, region).await?;
    for d in demo_items() {
        put_item(db, &scope, who, &draft.id, d).await?;
    }
    publish(db, &scope, who, &draft.id, "2025-01-01").await?;
    Ok(true)
}

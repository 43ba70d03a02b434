//! 工作台: what waits for the person who just logged in, by what their account may do — each a
//! count with the page that lists it. Counts only: no names, so opening it is not an audited read.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sqlx::Row;

use crate::app::AppState;
use crate::identity::{Actor, Perm};
use crate::platform::error::ApiResult;

pub fn routes() -> Router<AppState> {
    Router::new().route("/workbench", get(workbench))
}

/// One thing to look at: how many, in a sentence, and where the list is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Card {
    pub title: String,
    pub count: i64,
    /// What the number counts, in a sentence.
    pub note: String,
    /// The console page that lists them (empty: nothing to open).
    pub link: String,
    /// warning (waits for you) / danger (overdue, at risk) / info
    pub tone: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Workbench {
    pub display_name: String,
    pub region_name: String,
    pub today: String,
    pub cards: Vec<Card>,
}

fn card(title: &str, count: i64, note: String, link: &str, tone: &str) -> Card {
    Card {
        title: title.into(),
        count,
        note,
        link: link.into(),
        tone: tone.into(),
    }
}

async fn count(db: &crate::platform::db::Db, sql: &'static str, binds: &[&str]) -> ApiResult<i64> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    Ok(q.fetch_one(&db.pool).await?.get(0))
}

/// The caller's workbench: cards for what their permissions cover, inside their scope.
#[utoipa::path(get, path = "/api/v1/workbench", tag = "identity",
    responses((status = 200, body = Workbench)))]
pub async fn workbench(State(app): State<AppState>, actor: Actor) -> ApiResult<Json<Workbench>> {
    let db = &app.db;
    let today = crate::platform::today();
    // Rows stamped since local midnight.
    let day = crate::platform::day_start_utc(today);
    let regions = app.regions.read().await;
    let (lo, hi) = actor.region.subtree_range();
    let mut cards = vec![];
    if actor.has(Perm::CatalogManage) {
        let n = count(
            db,
            "SELECT COUNT(*) FROM entitlement WHERE state = 'proposed' AND residence_region BETWEEN $1 AND $2",
            &[&lo, &hi],
        )
        .await?;
        cards.push(card(
            "待审批待遇",
            n,
            "资格评估发现符合条件、需要审批的待遇".into(),
            "/catalog?tab=approvals",
            if n > 0 { "warning" } else { "info" },
        ));
        let runs = count(
            db,
            "SELECT COUNT(*) FROM catalog_run WHERE started_at >= $1 AND region_code BETWEEN $2 AND $3",
            &[&day, &lo, &hi],
        )
        .await?;
        cards.push(card(
            "今日资格评估",
            runs,
            "今天运行的“服务找人”次数".into(),
            "/catalog",
            "info",
        ));
    }
    if actor.has(Perm::AssessmentRecord)
        && let Ok(scope) = actor.individuals()
    {
        // Assessors first see who the office handed them.
        // One row of the due list, for its count.
        let (scope, regions, index, me) = (&scope, &*regions, &app.search_index, &actor.user_id);
        let due_count = move |status: Option<&str>, assigned: Option<&str>| {
            let q = crate::assessment::store::DueReq {
                status: status.map(str::to_string),
                assigned: assigned.map(str::to_string),
                page: Some(1),
                page_size: Some(1),
                ..Default::default()
            };
            async move {
                crate::assessment::store::due(db, index, scope, regions, &q, None, me, today).await
            }
        };
        if actor.roles.contains(&crate::identity::Role::Assessor) {
            let page = due_count(None, Some("mine")).await?;
            cards.push(card(
                "派给我的待评估",
                page.total,
                "民政部门派给您、尚未评估的老年人".into(),
                "/assessments/due?assigned=mine",
                if page.total > 0 { "warning" } else { "info" },
            ));
        }
        for (status, title, note, tone) in [
            (
                "missing",
                "80周岁以上未评估",
                "80周岁及以上、没有有效能力评估的在册老年人",
                "danger",
            ),
            (
                "triggered",
                "需复评",
                "登记了跌倒、新诊断等复评触发的老年人",
                "warning",
            ),
            ("expiring", "评估即将到期", "能力评估将在60天内到期", "info"),
        ] {
            let page = due_count(Some(status), None).await?;
            let note = if page.total_capped {
                format!("{note}（超过 {} 人）", page.total)
            } else {
                note.to_string()
            };
            cards.push(card(
                title,
                page.total,
                note,
                &format!("/assessments/due?status={status}"),
                tone,
            ));
        }
    }
    if actor.has(Perm::CareVisitRecord) && actor.scopes.individuals {
        let scope = actor.scope();
        let (_, due, overdue) =
            crate::care_visit::standing_counts(db, &scope.lo, &scope.hi, today).await?;
        cards.push(card(
            "探访逾期",
            overdue,
            "上一个探访周期（周或月）结束时仍未探访的老年人".into(),
            "/care-visits",
            if overdue > 0 { "danger" } else { "info" },
        ));
        cards.push(card(
            "本期待探访",
            due,
            "本周或本月还需探访的老年人".into(),
            "/care-visits",
            "warning",
        ));
    }
    if actor.has(Perm::RegistryImport) || actor.has(Perm::AssessmentRecord) {
        let n = count(
            db,
            "SELECT COUNT(*) FROM import_job WHERE user_id = $1 AND created_at >= $2 AND dry_run = 0",
            &[&actor.user_id, &day],
        )
        .await?;
        cards.push(card(
            "今日导入",
            n,
            "你今天完成或正在进行的正式导入".into(),
            "/import",
            "info",
        ));
    }
    if let Some(org) = actor.org_id.as_deref()
        && actor.has(Perm::InstitutionManage)
    {
        // A home's manager: her vacancies, the offers awaiting an answer, long leaves and
        // certificates about to lapse.
        let link = format!("/orgs/{org}");
        let vacant = count(
            db,
            "SELECT COUNT(*) FROM bed b WHERE b.org_id = $1 AND b.status = 'open' \
             AND NOT EXISTS (SELECT 1 FROM bed_stay s WHERE s.bed_id = b.id AND s.until_on IS NULL)",
            &[org],
        )
        .await?;
        cards.push(card(
            "空床",
            vacant,
            "本机构今天可以入住的床位".into(),
            &link,
            "info",
        ));
        let offers = count(
            db,
            "SELECT COUNT(*) FROM admission_offer WHERE org_id = $1 AND state = 'open'",
            &[org],
        )
        .await?;
        cards.push(card(
            "待答复的入住邀请",
            offers,
            "已向轮候老人发出、还在等待答复的邀请".into(),
            &format!("{link}?tab=offers"),
            if offers > 0 { "warning" } else { "info" },
        ));
        let since = (today - chrono::Duration::days(30))
            .format("%Y-%m-%d")
            .to_string();
        let leaves = count(
            db,
            "SELECT COUNT(*) FROM admission_leave l JOIN admission a ON a.id = l.admission_id \
             WHERE a.org_id = $1 AND a.discharged_on IS NULL AND l.until_on IS NULL AND l.from_on < $2",
            &[org, &since],
        )
        .await?;
        cards.push(card(
            "请假超过 30 天",
            leaves,
            "离院超过 30 天仍未返回的老人，超出天数不计床位补贴".into(),
            &format!("{link}?tab=current"),
            if leaves > 0 { "warning" } else { "info" },
        ));
        let (t0, t60) = (
            today.format("%Y-%m-%d").to_string(),
            (today + chrono::Duration::days(60))
                .format("%Y-%m-%d")
                .to_string(),
        );
        let certs = count(
            db,
            "SELECT COUNT(*) FROM staff WHERE org_id = $1 AND left_on IS NULL \
             AND certificate_expires_on IS NOT NULL AND certificate_expires_on <= $2 AND certificate_expires_on >= $3",
            &[org, &t60, &t0],
        )
        .await?;
        cards.push(card(
            "60 天内到期的证书",
            certs,
            "在职人员的职业资格证书即将到期".into(),
            &format!("{link}?tab=staff"),
            if certs > 0 { "warning" } else { "info" },
        ));
    }
    if actor.has(Perm::AggregatesRead) {
        let d = crate::indicator::query::dashboard(
            db,
            &regions,
            actor.region.as_str(),
            chrono::Datelike::year(&today),
            today,
            false,
        )
        .await?;
        let risky = ["at_risk", "missed"]
            .iter()
            .map(|k| d.summary.get(*k).copied().unwrap_or(0) as i64)
            .sum();
        cards.push(card(
            "目标预警",
            risky,
            format!("{}本年度有风险或未达标的重点指标", d.region_name),
            "/indicators",
            if risky > 0 { "danger" } else { "info" },
        ));
    }
    if actor.has(Perm::AuditRead) {
        let n = count(
            db,
            "SELECT COUNT(*) FROM audit_log WHERE at >= $1 AND action IN ('elder.reveal', 'elder.export', 'payment.bank_file')",
            &[&day],
        )
        .await?;
        cards.push(card(
            "今日敏感操作",
            n,
            "今天查看完整身份证号、导出名单和银行代发文件的次数".into(),
            "/audit",
            "info",
        ));
    }
    if actor.has(Perm::UsersManage) {
        let now = chrono::Utc::now().timestamp().to_string();
        let locked = count(
            db,
            "SELECT COUNT(*) FROM app_user WHERE disabled = 0 AND locked_until IS NOT NULL AND CAST(locked_until AS TEXT) > $1",
            &[&now],
        )
        .await?;
        let disabled = count(db, "SELECT COUNT(*) FROM app_user WHERE disabled = 1", &[]).await?;
        cards.push(card(
            "被锁定的账号",
            locked,
            "多次输错密码、暂时锁定的账号（可解锁）".into(),
            "/users",
            if locked > 0 { "warning" } else { "info" },
        ));
        cards.push(card(
            "已停用的账号",
            disabled,
            "已停用、不能登录的账号".into(),
            "/users",
            "info",
        ));
    }
    if actor.has(Perm::SystemConfig) {
        let pending = count(
            db,
            "SELECT COUNT(*) FROM notification_outbox WHERE state = 'pending'",
            &[],
        )
        .await?;
        let failed = count(
            db,
            "SELECT COUNT(*) FROM notification_outbox WHERE state = 'failed'",
            &[],
        )
        .await?;
        // Beijing time, as the offices read clocks.
        let as_of = crate::indicator::rollup::built_at(db)
            .await?
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .and_then(|t| {
                chrono::FixedOffset::east_opt(8 * 3600)
                    .map(|bj| t.with_timezone(&bj).format("%Y-%m-%d %H:%M").to_string())
            });
        cards.push(card(
            "待发送通知",
            pending,
            "排队等待发往短信网关的通知".into(),
            "",
            "info",
        ));
        cards.push(card(
            "发送失败的通知",
            failed,
            "多次重试仍未送达的通知（请检查短信网关配置）".into(),
            "",
            if failed > 0 { "danger" } else { "info" },
        ));
        cards.push(card(
            "数据库",
            count(db, "SELECT COUNT(*) FROM schema_migrations", &[]).await?,
            format!(
                "{}，已应用的迁移数；指标汇总于 {}",
                match db.backend {
                    crate::platform::db::Backend::Sqlite => "SQLite",
                    crate::platform::db::Backend::Postgres => "PostgreSQL",
                },
                as_of.as_deref().unwrap_or("—")
            ),
            "",
            "info",
        ));
    }
    Ok(Json(Workbench {
        display_name: actor.display_name.clone(),
        region_name: regions
            .name(actor.region.as_str())
            .unwrap_or(actor.region.as_str())
            .to_string(),
        today: today.to_string(),
        cards,
    }))
}

//! ops — what a county's operator and its monitoring read: `/healthz` (the process answers),
//! `/readyz` (database reachable, every migration of this binary applied, background loops and
//! the audit writer alive) and `/metrics` (Prometheus text). `/metrics` is never public: on the
//! main address it needs the bearer token `YIYANG_METRICS_TOKEN` (`Config::metrics_token`; 404 without one), or
//! it is served on a separate address (`--metrics-listen`, for a scraper on the private network).

use crate::app::AppState;
use crate::platform::metrics::{self, Text};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::sync::atomic::Ordering;

/// On the main address: health and readiness open, metrics behind the token.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_with_token))
}

/// The separate metrics address: the same three, metrics without a token.
pub fn private_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_open))
        .with_state(state)
}

#[derive(serde::Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

async fn readyz(State(st): State<AppState>) -> Response {
    let mut checks = vec![];
    let db = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT version FROM schema_migrations").fetch_all(&st.db.pool),
    )
    .await;
    match db {
        Ok(Ok(rows)) => {
            checks.push(Check {
                name: "database",
                ok: true,
                detail: "数据库可连接".into(),
            });
            let applied: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
            let missing: Vec<i64> = crate::platform::migrations::MIGRATIONS
                .iter()
                .map(|m| m.version)
                .filter(|v| !applied.contains(v))
                .collect();
            checks.push(Check {
                name: "migrations",
                ok: missing.is_empty(),
                detail: if missing.is_empty() {
                    format!("数据库结构已是最新（{} 项迁移）", applied.len())
                } else {
                    format!(
                        "有 {} 项数据库迁移未执行，请运行 yiyang migrate",
                        missing.len()
                    )
                },
            });
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database");
            checks.push(Check {
                name: "database",
                ok: false,
                detail: "数据库无法查询".into(),
            })
        }
        Err(_) => checks.push(Check {
            name: "database",
            ok: false,
            detail: "数据库 2 秒内没有应答".into(),
        }),
    }
    let stale = metrics::stale_tasks();
    checks.push(Check {
        name: "background",
        ok: stale.is_empty(),
        detail: if stale.is_empty() {
            "后台任务运行正常".into()
        } else {
            stale
                .iter()
                .map(|(t, s)| format!("后台任务 {t} 已 {s} 秒没有运行"))
                .collect::<Vec<_>>()
                .join("；")
        },
    });
    checks.push(Check {
        name: "audit_writer",
        ok: st.read_audit.alive(),
        detail: if st.read_audit.alive() {
            "审计写入正常".into()
        } else {
            "审计写入任务已停止，敏感查询将被拒绝".into()
        },
    });
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"ready": ready, "checks": checks})),
    )
        .into_response()
}

async fn metrics_with_token(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = st.config.metrics_token.as_deref() else {
        return crate::platform::error::ApiError::not_found("接口不存在").into_response();
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compared as digests: the time taken says nothing about how much of the token matched.
    if Sha256::digest(given.as_bytes()) != Sha256::digest(token.as_bytes()) {
        return (StatusCode::UNAUTHORIZED, "需要 /metrics 的访问令牌").into_response();
    }
    metrics_open(State(st)).await
}

async fn metrics_open(State(st): State<AppState>) -> Response {
    let body = render(&st).await;
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Every family: the process's counters, then what is read from the pool and the database now.
pub async fn render(st: &AppState) -> String {
    let mut t = Text::default();
    t.family("yiyang_build_info", "gauge", "The running version.");
    t.sample(
        "yiyang_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("database", st.db.backend.name()),
        ],
        1.0,
    );
    metrics::render_process(&mut t);
    let pool = &st.db.pool;
    let (size, idle) = (pool.size() as f64, pool.num_idle() as f64);
    t.family(
        "yiyang_db_pool_connections",
        "gauge",
        "Database connections of the pool, by state.",
    );
    t.sample(
        "yiyang_db_pool_connections",
        &[("state", "in_use")],
        size - idle,
    );
    t.sample("yiyang_db_pool_connections", &[("state", "idle")], idle);
    t.family(
        "yiyang_db_pool_max_connections",
        "gauge",
        "Most connections the pool opens.",
    );
    t.sample(
        "yiyang_db_pool_max_connections",
        &[],
        pool.options().get_max_connections() as f64,
    );
    // Import jobs by state, and the rows of those running now.
    t.family("yiyang_import_jobs", "gauge", "Import jobs by state.");
    if let Ok(rows) = sqlx::query("SELECT state, COUNT(*) FROM import_job GROUP BY state")
        .fetch_all(pool)
        .await
    {
        for r in rows {
            let state: String = r.get(0);
            t.sample(
                "yiyang_import_jobs",
                &[("state", &state)],
                r.get::<i64, _>(1) as f64,
            );
        }
    }
    t.family(
        "yiyang_import_rows",
        "gauge",
        "Rows of each running import: the file's total and those processed so far.",
    );
    for (id, p) in st.imports.lock().await.iter() {
        let (total, done) = (
            p.total.load(Ordering::Relaxed),
            p.processed.load(Ordering::Relaxed),
        );
        if total > 0 && done < total {
            t.sample(
                "yiyang_import_rows",
                &[("job", id), ("of", "total")],
                total as f64,
            );
            t.sample(
                "yiyang_import_rows",
                &[("job", id), ("of", "processed")],
                done as f64,
            );
        }
    }
    t.family(
        "yiyang_eligibility_runs_running",
        "gauge",
        "Eligibility runs (服务找人) started from the console and not finished.",
    );
    let running = st
        .evaluations
        .lock()
        .expect("evaluations lock")
        .values()
        .filter(|j| j.outcome.lock().expect("outcome lock").is_none())
        .count();
    t.sample("yiyang_eligibility_runs_running", &[], running as f64);
    t.family(
        "yiyang_outbox_messages",
        "gauge",
        "Notification outbox rows by state (pending: the backlog).",
    );
    if let Ok(rows) = sqlx::query("SELECT state, COUNT(*) FROM notification_outbox GROUP BY state")
        .fetch_all(pool)
        .await
    {
        for r in rows {
            let state: String = r.get(0);
            t.sample(
                "yiyang_outbox_messages",
                &[("state", &state)],
                r.get::<i64, _>(1) as f64,
            );
        }
    }
    t.family(
        "yiyang_outbox_oldest_pending_seconds",
        "gauge",
        "Age of the oldest notification still waiting (0 when none waits).",
    );
    let oldest: Option<String> =
        sqlx::query("SELECT MIN(created_at) FROM notification_outbox WHERE state = 'pending'")
            .fetch_one(pool)
            .await
            .ok()
            .and_then(|r| r.get(0));
    let age = oldest
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map_or(0.0, |at| {
            (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1e3
        });
    t.sample("yiyang_outbox_oldest_pending_seconds", &[], age.max(0.0));
    t.finish()
}

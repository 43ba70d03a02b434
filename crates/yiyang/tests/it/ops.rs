use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use tower::ServiceExt;

async fn get(router: &axum::Router, uri: &str, bearer: Option<&str>) -> (StatusCode, String) {
    let mut b = Request::builder().uri(uri);
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let resp = router
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// One sample line of the text exposition format: `name{k="v",…} value`.
fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let (head, value) = line.rsplit_once(' ').expect("a sample has a value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
    };
    let (name, labels) = match head.split_once('{') {
        None => (head.to_string(), BTreeMap::new()),
        Some((n, rest)) => {
            let body = rest.strip_suffix('}').expect("labels end with }");
            let mut labels = BTreeMap::new();
            let mut chars = body.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut v = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => v.push(chars.next().unwrap()),
                        '"' => break,
                        c => v.push(c),
                    }
                }
                labels.insert(key, v);
                if chars.peek() == Some(&',') {
                    chars.next();
                }
            }
            (n.to_string(), labels)
        }
    };
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name {name}"
    );
    (name, labels, value)
}

/// `/metrics` parsed as Prometheus would: every sample under a declared family, histograms
/// cumulative with +Inf equal to the count, request counts by route pattern (never an id), and
/// only with the token on the main address; `/readyz` ready, and not when a migration is missing.
#[tokio::test]
async fn db_metrics_and_readiness() {
    let t = TestApp::new("demo", 30).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let (s, v, _) = t
        .call("POST", "/api/v1/elders/search", Some(&c), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let (s, _, _) = t
        .call("GET", &format!("/api/v1/elders/{id}"), Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    t.call("GET", "/api/v1/no-such-thing", Some(&c), None).await;

    // The main address: no token configured, no metrics.
    let (s, _) = get(&t.router, "/metrics", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let mut st = t.state.clone();
    let token = "a-long-scrape-token-2026";
    st.config = std::sync::Arc::new(yiyang::app::Config {
        metrics_token: Some(token.into()),
        ..(*t.state.config).clone()
    });
    let main = yiyang::app::router(st.clone());
    assert_eq!(
        get(&main, "/metrics", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&main, "/metrics", Some("a-long-scrape-token-2025"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, with_token) = get(&main, "/metrics", Some(token)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(with_token.contains("yiyang_build_info"));

    // The private address: no token needed.
    let private = yiyang::ops::private_router(st);
    let (s, text) = get(&private, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let mut kinds: HashMap<String, String> = HashMap::new();
    let mut samples = vec![];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (n, k) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&k), "{line}");
            assert!(
                kinds.insert(n.into(), k.into()).is_none(),
                "family twice: {n}"
            );
        } else if line.starts_with("# HELP ") || line.is_empty() {
        } else {
            samples.push(parse_sample(line));
        }
    }
    for (name, _, _) in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| kinds.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(
            kinds.contains_key(family),
            "sample without a family: {name}"
        );
    }
    let find = |name: &str, want: &[(&str, &str)]| {
        samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
            .sum::<f64>()
    };
    let route = "/api/v1/elders/{id}";
    assert!(
        find(
            "yiyang_http_requests_total",
            &[("route", route), ("method", "GET"), ("status", "200")]
        ) >= 1.0
    );
    assert!(
        find(
            "yiyang_http_requests_total",
            &[("route", "/api/v1/elders/search"), ("status", "200")]
        ) >= 1.0
    );
    assert!(
        find(
            "yiyang_http_requests_total",
            &[("route", "/api/v1/(unmatched)"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        samples
            .iter()
            .all(|(_, l, _)| l.get("route").is_none_or(|r| !r.contains(&id))),
        "an id in a route label"
    );
    // Histogram: buckets cumulative, +Inf = count.
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == "yiyang_http_request_duration_seconds_bucket"
                && l["route"] == route
                && l["method"] == "GET"
        })
        .map(|(_, l, v)| {
            (
                if l["le"] == "+Inf" {
                    f64::INFINITY
                } else {
                    l["le"].parse().unwrap()
                },
                *v,
            )
        })
        .collect();
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    assert!(buckets.len() > 5);
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let count = find(
        "yiyang_http_request_duration_seconds_count",
        &[("route", route), ("method", "GET")],
    );
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
    assert!(find("yiyang_db_pool_max_connections", &[]) >= 1.0);
    assert!(kinds.contains_key("yiyang_audit_writer_lag_seconds"));
    assert!(kinds.contains_key("yiyang_outbox_messages"));
    assert!(kinds.contains_key("yiyang_import_jobs"));
    assert!(
        find("yiyang_audit_writer_groups_total", &[]) >= 1.0,
        "the detail read was audited"
    );

    // Readiness.
    let (s, body) = get(&t.router, "/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true);
    let last: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM schema_migrations WHERE version = $1")
        .bind(last)
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    let (s, body) = get(&t.router, "/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("yiyang migrate"), "{body}");
}

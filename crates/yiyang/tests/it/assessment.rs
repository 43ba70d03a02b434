use crate::support::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

fn all_max() -> serde_json::Map<String, Value> {
    yiyang_kernel::assessment::ITEMS
        .iter()
        .map(|i| (i.code.to_string(), json!(i.max())))
        .collect()
}

/// Lower items from the end of the form until the total is `t`.
fn with_total(t: u8) -> serde_json::Map<String, Value> {
    let mut m = all_max();
    let mut excess = 90 - t;
    for def in yiyang_kernel::assessment::ITEMS.iter().rev() {
        let cut = excess.min(def.max());
        m.insert(def.code.into(), json!(def.max() - cut));
        excess -= cut;
    }
    m
}

/// The public calculator answers the test vectors of domain/assessment.md §1.9 over HTTP, without
/// a login; bad input gets 422 naming the item.
#[tokio::test]
async fn public_calculator_answers_the_vectors() {
    let t = TestApp::new("demo", 0).await;
    let call = |body: Value| {
        let t = &t;
        async move {
            t.call("POST", "/api/v1/public/assessment/score", None, Some(body))
                .await
        }
    };
    let std = "GB/T 42195-2022";
    let (s, v, _) = call(json!({"standard": std, "items": all_max()})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["domain_scores"], json!([32, 15, 28, 15]));
    assert_eq!(
        (
            v["total"].clone(),
            v["initial_level"].clone(),
            v["final_level"].clone()
        ),
        (json!(90), json!(0), json!(0))
    );
    assert_eq!(v["final_level_name"], "能力完好");
    let mut m = all_max();
    m.insert("B2.4".into(), json!(2));
    let (_, v, _) = call(json!({"standard": std, "items": m})).await;
    assert_eq!(
        (v["total"].clone(), v["final_level"].clone()),
        (json!(89), json!(1))
    );
    for (total, level) in [(66, 1), (65, 2), (46, 2), (45, 3), (30, 3), (29, 4), (0, 4)] {
        let (_, v, _) = call(json!({"standard": std, "items": with_total(total)})).await;
        assert_eq!(
            (v["total"].clone(), v["final_level"].clone()),
            (json!(total), json!(level))
        );
    }
    let (_, v, _) =
        call(json!({"standard": std, "items": with_total(70), "dementia_confirmed": true})).await;
    assert_eq!(
        (v["initial_level"].clone(), v["final_level"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(v["reasons"][0]["rule"], "mental_disorder");
    let (_, v, _) = call(json!({"standard": std, "items": with_total(70), "risk_events_30d": {"fall": 1, "choking": 1}})).await;
    assert_eq!(v["final_level"], 2);
    let (_, v, _) = call(json!({"standard": std, "items": with_total(70), "dementia_confirmed": true, "risk_events_30d": {"fall": 2}})).await;
    assert_eq!(v["final_level"], 2, "no stacking by default");
    let (_, v, _) =
        call(json!({"standard": std, "items": with_total(50), "risk_events_30d": {"fall": 3}}))
            .await;
    assert_eq!(v["final_level"], 3);
    let (_, v, _) =
        call(json!({"standard": std, "items": with_total(20), "dementia_confirmed": true})).await;
    assert_eq!(v["final_level"], 4);
    let (_, v, _) = call(json!({"standard": std, "items": with_total(88), "coma": true})).await;
    assert_eq!(
        (v["initial_level"].clone(), v["final_level"].clone()),
        (json!(1), json!(4))
    );
    assert_eq!(v["final_level_name"], "完全失能");
    // Bad input: which item, in Chinese.
    let mut m = all_max();
    m.insert("B2.4".into(), json!(4));
    let (s, v, _) = call(json!({"standard": std, "items": m})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "items.B2.4", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("上下楼梯"));
    let mut m = all_max();
    m.remove("B1.3");
    let (s, v, _) = call(json!({"standard": std, "items": m})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["detail"].as_str().unwrap().contains("B1.3"), "{v}");
    let (s, _, _) = call(json!({"standard": "MZ/T 039-2013", "items": all_max()})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v, _) =
        call(json!({"standard": std, "items": all_max(), "risk_events_30d": {"fall": 9}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = call(json!({"standard": std, "items": {"B1.1": "很好"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

/// No login, but limited per address: the 61st request in a minute is refused.
#[tokio::test]
async fn public_calculator_is_rate_limited() {
    let t = TestApp::new("demo", 0).await;
    let body = json!({"standard": "GB/T 42195-2022", "items": all_max()});
    let mut last = StatusCode::OK;
    for _ in 0..61 {
        last = t
            .call(
                "POST",
                "/api/v1/public/assessment/score",
                None,
                Some(body.clone()),
            )
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

use crate::support::*;
use serde_json::json;

/// Name-fragment search goes through the gram index; its answers must equal a plain LIKE over the
/// table, also after a rename and a move, and inside a town's scope.
#[tokio::test]
async fn db_name_search_matches_like() {
    let t = TestApp::new("demo", 3000).await;
    t.add_user("o", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("town", &["officer"], "320682002000", all_scopes())
        .await;
    let c = t.login("o").await;
    let like = |frag: &str, town: Option<&str>| {
        let pat = format!("%{frag}%");
        let range = town
            .map(|p| (format!("{p:0<12}"), format!("{p:9<12}")))
            .unwrap_or(("000000000000".into(), "999999999999".into()));
        let db = t.state.db.clone();
        async move {
            use sqlx::Row;
            sqlx::query("SELECT COUNT(*) FROM elder WHERE name LIKE $1 AND residence_region BETWEEN $2 AND $3")
                .bind(pat)
                .bind(range.0)
                .bind(range.1)
                .fetch_one(&db.pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    };
    for frag in ["秀英", "王秀英", "英", "建国", "德才秀", "王"] {
        let (_, v, _) = t
            .call(
                "POST",
                "/api/v1/elders/search",
                Some(&c),
                Some(json!({"name": frag, "page_size": 200})),
            )
            .await;
        assert_eq!(
            v["total"].as_i64().unwrap(),
            like(frag, None).await,
            "{frag}"
        );
        for r in v["items"].as_array().unwrap() {
            assert!(r["name"].as_str().unwrap().contains(frag));
        }
    }
    let tw = t.login("town").await;
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&tw),
            Some(json!({"name": "秀英"})),
        )
        .await;
    assert_eq!(
        v["total"].as_i64().unwrap(),
        like("秀英", Some("320682002")).await
    );
    // Rename and move one person: the index follows.
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"name": "秀英", "page_size": 1})),
        )
        .await;
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let (s, _, _) = t
        .call(
            "PATCH",
            &format!("/api/v1/elders/{id}"),
            Some(&c),
            Some(json!({"name": "缪翠萍", "residence_region": "320682002005"})),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::OK);
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&tw),
            Some(json!({"name": "翠萍"})),
        )
        .await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "{v}"
    );
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"name": "秀英"})),
        )
        .await;
    assert_eq!(v["total"].as_i64().unwrap(), like("秀英", None).await);
}

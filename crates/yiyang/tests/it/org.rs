use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;

/// An officer registers a township home and a station, finds them by place, kind and name, edits
/// one (audited with the fields changed); another town's officer sees neither; a village worker
/// reads but cannot register; wrong input is named field by field in Chinese.
#[tokio::test]
async fn db_organisations_are_registered_found_and_kept_in_scope() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("other_town", &["officer"], "320682104000", all_scopes())
        .await;
    t.add_user("worker", &["worker"], "320682103000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let (s, home, _) = t
        .call(
            "POST",
            "/api/v1/orgs",
            Some(&c),
            Some(
                json!({"kind": "农村敬老院", "name": "东陈镇敬老院", "ownership": "公办",
                "region_code": "320682103000", "grade": 2, "grade_expires_on": "2027-06-30",
                "filing_no": "苏民养备 2021-017", "phone": "0513-87000001", "floor_area": 3200,
                "lon": 120.61, "lat": 32.38, "address": "东陈镇振兴路 8 号"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{home}");
    assert_eq!(home["kind"], "township_home");
    assert_eq!(home["kind_name"], "农村敬老院");
    assert_eq!(home["ownership_name"], "公办");
    assert_eq!(home["region_name"], "如皋市 / 东陈镇");
    let id = home["id"].as_str().unwrap().to_string();
    let (s, st, _) = t
        .call(
            "POST",
            "/api/v1/orgs",
            Some(&c),
            Some(json!({"kind": "station", "name": "洪桥社区养老服务站", "ownership": "public_private",
                "operator": "如皋市颐康养老服务有限公司", "region_code": "320682103001"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{st}");

    let list = |uri: &'static str, who: String| {
        let t = &t;
        async move {
            let (s, v, _) = t.call("GET", uri, Some(&who), None).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    assert_eq!(list("/api/v1/orgs", c.clone()).await["total"], 2);
    assert_eq!(
        list("/api/v1/orgs?kind=township_home", c.clone()).await["total"],
        1
    );
    assert_eq!(
        list("/api/v1/orgs?kind=%E5%8A%A9%E9%A4%90%E7%82%B9", c.clone()).await["total"],
        0
    );
    assert_eq!(
        list("/api/v1/orgs?q=%E6%B4%AA%E6%A1%A5", c.clone()).await["total"],
        1
    );
    assert_eq!(
        list("/api/v1/orgs?q=%25", c.clone()).await["total"],
        0,
        "a % is a character, not a wildcard"
    );
    assert_eq!(
        list("/api/v1/orgs?region_code=320682103001", c.clone()).await["items"][0]["name"],
        "洪桥社区养老服务站"
    );

    // Another town: neither listed nor found by id.
    let o = t.login("other_town").await;
    assert_eq!(list("/api/v1/orgs", o.clone()).await["total"], 0);
    let (s, _, _) = t
        .call("GET", &format!("/api/v1/orgs/{id}"), Some(&o), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/orgs",
            Some(&o),
            Some(json!({"kind": "day_care", "name": "越界中心", "ownership": "private", "region_code": "320682103001"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // A worker of the town reads, cannot register.
    let w = t.login("worker").await;
    assert_eq!(list("/api/v1/orgs", w.clone()).await["total"], 2);
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/orgs",
            Some(&w),
            Some(json!({"kind": "day_care", "name": "某中心", "ownership": "private", "region_code": "320682103001"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Wrong input, each named.
    for (body, field, words) in [
        (
            json!({"name": "某院", "ownership": "公办", "region_code": "320682103000"}),
            "kind",
            "机构类型",
        ),
        (
            json!({"kind": "养老院", "name": "某院", "ownership": "公办", "region_code": "320682103000"}),
            "kind",
            "机构类型应为",
        ),
        (
            json!({"kind": "institution", "name": "某院", "ownership": "公办", "region_code": "320682000000"}),
            "region_code",
            "不能是县级以上",
        ),
        (
            json!({"kind": "institution", "name": "某院", "ownership": "公办", "region_code": "320682103999"}),
            "region_code",
            "不在本系统的区划表中",
        ),
        (
            json!({"kind": "institution", "name": "某院", "ownership": "公办", "region_code": "320682103000", "grade": 6}),
            "grade",
            "星级",
        ),
        (
            json!({"kind": "institution", "name": "院", "ownership": "公办", "region_code": "320682103000"}),
            "name",
            "至少 2 个字",
        ),
        (
            json!({"kind": "institution", "name": "某院", "ownership": "公办", "region_code": "320682103000", "filed_on": "2024-2-3"}),
            "filed_on",
            "YYYY-MM-DD",
        ),
        (
            json!({"kind": "institution", "name": "某\u{202e}院", "ownership": "公办", "region_code": "320682103000"}),
            "name",
            "控制字符",
        ),
        (
            json!({"kind": "institution", "name": "某院", "ownership": "公办", "region_code": "320682103000", "lon": 10.0}),
            "lon",
            "经纬度",
        ),
    ] {
        let (s, v, _) = t.call("POST", "/api/v1/orgs", Some(&c), Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
        assert!(v["detail"].as_str().unwrap().contains(words), "{v}");
    }

    // An edit: grade up, phone cleared; audited with what changed.
    let (s, v, _) = t
        .call(
            "PATCH",
            &format!("/api/v1/orgs/{id}"),
            Some(&c),
            Some(json!({"grade": 3, "phone": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["grade"].as_i64(),
            v["phone"].is_null(),
            v["version"].as_i64()
        ),
        (Some(3), true, Some(2))
    );
    assert_eq!(v["name"], "东陈镇敬老院", "absent fields keep their value");
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'org.update' AND entity_id = $1",
    )
    .bind(&id)
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(detail, r#"{"changed":["grade","phone"]}"#);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'org.create'")
            .await,
        2
    );
    // The same edit again changes nothing and writes nothing.
    let (s, v, _) = t
        .call(
            "PATCH",
            &format!("/api/v1/orgs/{id}"),
            Some(&c),
            Some(json!({"grade": 3})),
        )
        .await;
    assert_eq!((s, v["version"].as_i64()), (StatusCode::OK, Some(2)));
}

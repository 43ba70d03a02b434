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

/// Organisations from a spreadsheet as an officer keeps one: Chinese headers, a town by its name,
/// 二级 for the grade; a wrong kind, a place outside the area and a name already registered there
/// are refused row by row with the reason; a dry run writes nothing; the import writes the rest
/// together, each audited; the template opens.
#[tokio::test]
async fn db_organisations_are_imported_from_a_spreadsheet_row_by_row() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("town", &["officer"], "320682103000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/orgs",
            Some(&c),
            Some(json!({"kind": "institution", "name": "康乐护理院", "ownership": "private", "region_code": "320682104000"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let csv = "序号,机构名称*,机构类型,性质,所在地,等级,电话,月收费下限,月收费上限\n\
1,东陈镇敬老院,农村敬老院,公办,东陈镇,二级,0513-87000001,1200,1800\n\
2,丁堰日间照料中心,日间照料中心,公建民营,320682104000,,,,\n\
3,某某养老院,养老大院,民办,东陈镇,,,,\n\
4,康乐护理院,养老机构,民办,320682104000,,,,\n\
5,外县养老院,养老机构,民办,320681000000,,,,\n\
6,白蒲颐和园,养老机构,民办,白蒲镇,六级,,,\n";
    let (s, v) = t
        .multipart(
            "/api/v1/orgs/import",
            &c,
            "机构名册.csv",
            csv.as_bytes(),
            true,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["total"].as_u64(),
            v["accepted"].as_u64(),
            v["created"].as_u64()
        ),
        (Some(6), Some(2), Some(0)),
        "{v}"
    );
    let reasons: Vec<(i64, String)> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons.iter().map(|r| r.0).collect::<Vec<_>>(),
        [4, 5, 6, 7],
        "{v}"
    );
    assert!(reasons[0].1.contains("机构类型"), "{reasons:?}");
    assert!(reasons[1].1.contains("已在该地登记"), "{reasons:?}");
    assert!(reasons[3].1.contains("等级"), "{reasons:?}");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM organisation").await,
        1,
        "a dry run writes nothing"
    );
    let (s, v) = t
        .multipart(
            "/api/v1/orgs/import",
            &c,
            "机构名册.csv",
            csv.as_bytes(),
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["created"], 2, "{v}");
    let (_, list, _) = t
        .call("GET", "/api/v1/orgs?q=东陈镇敬老院", Some(&c), None)
        .await;
    let home = &list["items"][0];
    assert_eq!(
        (
            home["region_code"].as_str(),
            home["grade"].as_i64(),
            home["price_min"].as_i64()
        ),
        (Some("320682103000"), Some(2), Some(1200)),
        "{list}"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'org.create'")
            .await,
        3
    );
    // Again: both are registered now.
    let (_, v) = t
        .multipart(
            "/api/v1/orgs/import",
            &c,
            "机构名册.csv",
            csv.as_bytes(),
            false,
        )
        .await;
    assert_eq!(v["created"], 0, "{v}");
    // The list goes out in the import's columns and reads back: every row found already there,
    // and in another county's database it would register them as they are.
    let (s, bytes, _) = t
        .raw(
            axum::http::Request::builder()
                .uri("/api/v1/orgs/export.xlsx?kind=township_home")
                .header("cookie", &c)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    {
        use calamine::Reader;
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.clone())).unwrap();
        let rows: Vec<Vec<String>> = book
            .worksheet_range("机构名册")
            .unwrap()
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect();
        assert_eq!(rows.len(), 2, "one township home: {rows:?}");
        assert_eq!(rows[1][0], "东陈镇敬老院");
        assert_eq!(rows[1][3], "320682103000");
        assert_eq!(rows[1][8], "二级");
    }
    let (_, v) = t
        .multipart("/api/v1/orgs/import", &c, "机构名册.xlsx", &bytes, true)
        .await;
    assert_eq!(
        (v["total"].as_u64(), v["accepted"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("已在该地登记"),
        "{v}"
    );
    sqlx::query("DELETE FROM organisation WHERE name = '东陈镇敬老院'")
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    let (_, v) = t
        .multipart("/api/v1/orgs/import", &c, "机构名册.xlsx", &bytes, true)
        .await;
    assert_eq!(v["accepted"], 1, "the exported row is a valid row: {v}");
    // A town officer cannot place a home in another town.
    let town = t.login("town").await;
    let (_, v) = t
        .multipart(
            "/api/v1/orgs/import",
            &town,
            "a.csv",
            "机构名称,机构类型,性质,所在地\n丁堰某站,社区养老服务站,公办,丁堰镇\n".as_bytes(),
            true,
        )
        .await;
    assert_eq!(v["accepted"], 0, "{v}");
    // No name column: one clear message.
    let (s, v) = t
        .multipart(
            "/api/v1/orgs/import",
            &c,
            "a.csv",
            "名字,类型\n甲,乙\n".as_bytes(),
            true,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("机构名称"), "{v}");
    let (s, bytes, _) = t
        .raw(
            axum::http::Request::builder()
                .uri("/api/v1/orgs/template.xlsx")
                .header(axum::http::header::COOKIE, &c)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(bytes.starts_with(b"PK"));
}

/// A home's staff roll from a spreadsheet: rows checked by the form's rules and refused with
/// their Excel row and reason, someone already on the roll refused (a repeated upload adds
/// nothing), a dry run writes nothing; the home's own manager may load it, another home's may
/// not; the template reads back through the same importer.
#[tokio::test]
async fn db_staff_are_imported_from_a_roll_row_by_row() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let mut homes = vec![];
    for name in ["东陈镇敬老院", "丁堰镇敬老院"] {
        let (s, v, _) = t
            .call(
                "POST",
                "/api/v1/orgs",
                Some(&c),
                Some(json!({"kind": "township_home", "name": name, "ownership": "public", "region_code": "320682103000"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        homes.push(v["id"].as_str().unwrap().to_string());
    }
    let (s, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/orgs/{}/staff", homes[0]),
            Some(&c),
            Some(json!({"name": "王秀兰", "role": "caregiver", "certificate_no": "C001"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    t.add_user_in(
        "mgr",
        &["institution_manager"],
        "320682000000",
        all_scopes(),
        Some(&homes[0]),
    )
    .await;
    let m = t.login("mgr").await;
    let csv = "序号,姓名*,岗位*,技能等级,证书编号,发证日期,证书有效期,入职日期\n\
1,李春华,养老护理员,中级,C002,2020-05-01,2028-04-30,2020-06-01\n\
2,周建国,社会工作者,,,,,2021-03-15\n\
3,王秀兰,养老护理员,,C001,,,\n\
4,赵小梅,厨师,,,,,\n\
5,钱红,护士,中级,,,,\n\
6,孙丽,养老护理员,初级,C003,2024-01-01,2023-01-01,\n\
7,李春华,养老护理员,中级,C002,,,\n";
    let url = format!("/api/v1/orgs/{}/staff/import", homes[0]);
    let (s, v) = t
        .multipart(&url, &m, "花名册.csv", csv.as_bytes(), true)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["total"].as_u64(),
            v["accepted"].as_u64(),
            v["created"].as_u64()
        ),
        (Some(7), Some(2), Some(0)),
        "{v}"
    );
    let rejected: Vec<(i64, String)> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8],
        "{v}"
    );
    assert!(rejected[0].1.contains("已在本机构登记"), "{rejected:?}");
    assert!(rejected[1].1.contains("岗位应为"), "{rejected:?}");
    assert!(rejected[2].1.contains("只适用于养老护理员"), "{rejected:?}");
    assert!(rejected[3].1.contains("不能早于发证日期"), "{rejected:?}");
    assert!(rejected[4].1.contains("本文件中重复"), "{rejected:?}");
    let count = || async {
        let (_, v, _) = t
            .call(
                "GET",
                &format!("/api/v1/orgs/{}/staff", homes[0]),
                Some(&c),
                None,
            )
            .await;
        v["total"].as_i64().unwrap()
    };
    assert_eq!(count().await, 1, "a dry run writes nothing");
    let (s, v) = t
        .multipart(&url, &m, "花名册.csv", csv.as_bytes(), false)
        .await;
    assert_eq!((s, v["created"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
    assert_eq!(count().await, 3);
    let (s, v) = t
        .multipart(&url, &m, "花名册.csv", csv.as_bytes(), false)
        .await;
    assert_eq!((s, v["created"].as_u64()), (StatusCode::OK, Some(0)), "{v}");
    assert_eq!(count().await, 3, "a repeated upload adds nothing");
    // The other home is not hers.
    let other = format!("/api/v1/orgs/{}/staff/import", homes[1]);
    let (s, v) = t
        .multipart(&other, &m, "花名册.csv", csv.as_bytes(), true)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // A roll without the needed columns says which.
    let (s, v) = t
        .multipart(
            &url,
            &m,
            "花名册.csv",
            "姓名,电话\n王五,123\n".as_bytes(),
            true,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("岗位"), "{v}");
    // The template, filled in as it comes, reads back: its two people, added to the other home.
    let (s, bytes, _) = t
        .raw(
            axum::http::Request::builder()
                .uri("/api/v1/staff/template.xlsx")
                .header("cookie", &c)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t
        .multipart(&other, &c, "人员花名册导入模板.xlsx", &bytes, false)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["created"].as_u64(), Some(2), "{v}");
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'staff.create' AND detail LIKE '%import%'",
    )
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(n, 4);
}

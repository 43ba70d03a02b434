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
                json!({"citizen_id": cid(1), "name": "季德才", "residence_region": "320682103205"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let table = "旧代码,新代码,新名称,生效日期,类型\n320682103205,320682001201,东陈社区,2026-01-01,merge\n320682103000,320682001000,,2026-01-01,merge\n";
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
    assert_eq!(v["items"][0]["residence_region"], "320682001201");
    let csv = format!(
        "身份证号,姓名,居住地区划代码\n{},顾长林,320682103205\n",
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
        t.count("SELECT COUNT(*) FROM elder WHERE residence_region = '320682001201'")
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
        new: "320682001201".into(),
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
    let table = "旧代码,新代码,新名称,生效日期,类型\n320682103205,320682001201,东陈新村社区,2026-01-01,merge\n";
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
            .path_name("320682001201")
            .contains("东陈新村社区")
        {
            seen = true;
            break;
        }
    }
    assert!(seen, "the server's region tree did not follow the change");
}

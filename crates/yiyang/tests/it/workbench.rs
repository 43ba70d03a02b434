use crate::support::*;
use axum::http::StatusCode;
use serde_json::Value;

/// Every role lands on a workbench it can use: cards for what its permissions cover, counted in
/// its own scope (the approvals card agrees with the table), none for what it may not do.
#[tokio::test]
async fn db_each_role_gets_its_own_workbench() {
    let t = TestApp::new("demo", 600).await;
    for (user, role, region) in [
        ("of", "officer", "320682000000"),
        ("tw", "officer", "320682001000"),
        ("as", "assessor", "320682000000"),
        ("au", "audit_admin", "320682000000"),
        ("se", "security_admin", "320682000000"),
        ("sy", "system_admin", "320682000000"),
    ] {
        t.add_user(user, &[role], region, all_scopes()).await;
    }
    let titles = |v: &Value| -> Vec<String> {
        v["cards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["title"].as_str().unwrap().to_string())
            .collect()
    };
    let card = |v: &Value, title: &str| -> Value {
        v["cards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["title"] == title)
            .cloned()
            .unwrap_or_else(|| panic!("no card {title}: {v}"))
    };
    let mut boards = std::collections::HashMap::new();
    for user in ["of", "tw", "as", "au", "se", "sy"] {
        let c = t.login(user).await;
        let (s, v, _) = t.call("GET", "/api/v1/workbench", Some(&c), None).await;
        assert_eq!(s, StatusCode::OK, "{user}: {v}");
        assert!(!titles(&v).is_empty(), "{user} has an empty workbench");
        boards.insert(user, v);
    }
    let proposed = t
        .count("SELECT COUNT(*) FROM entitlement WHERE state = 'proposed'")
        .await;
    assert_eq!(card(&boards["of"], "待审批待遇")["count"], proposed);
    assert_eq!(
        card(&boards["of"], "待审批待遇")["link"],
        "/catalog?tab=approvals"
    );
    assert!(card(&boards["tw"], "待审批待遇")["count"].as_i64().unwrap() <= proposed);
    assert!(titles(&boards["of"]).contains(&"目标预警".to_string()));
    assert!(titles(&boards["as"]).contains(&"80周岁以上未评估".to_string()));
    assert!(!titles(&boards["as"]).contains(&"待审批待遇".to_string()));
    assert_eq!(titles(&boards["au"]), vec!["今日敏感操作"]);
    assert!(titles(&boards["se"]).contains(&"被锁定的账号".to_string()));
    assert!(!titles(&boards["se"]).contains(&"待审批待遇".to_string()));
    assert!(titles(&boards["sy"]).contains(&"发送失败的通知".to_string()));
    assert!(!titles(&boards["sy"]).contains(&"今日敏感操作".to_string()));
    // Not logged in: 401.
    let (s, _, _) = t.call("GET", "/api/v1/workbench", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

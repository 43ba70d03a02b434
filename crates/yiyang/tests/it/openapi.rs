//! The OpenAPI document is a public contract: snapshotted (UPDATE_SNAPSHOTS=1 rewrites it) and linted.

#[test]
fn openapi_snapshot_and_lint() {
    let doc = yiyang::app::openapi_json();
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() || !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &doc).unwrap();
    }
    let snap = std::fs::read_to_string(&path).unwrap();
    assert!(
        snap == doc,
        "OpenAPI changed: review and run with UPDATE_SNAPSHOTS=1"
    );
    // No citizen ID, name or phone in any URL: neither as a path nor as a query parameter.
    for (p, item) in v["paths"].as_object().unwrap() {
        for bad in ["citizen", "name", "phone", "id_card"] {
            assert!(!p.contains(bad), "{p} carries personal data in the URL");
        }
        for (_, op) in item.as_object().unwrap() {
            for param in op["parameters"].as_array().cloned().unwrap_or_default() {
                let n = param["name"].as_str().unwrap_or("");
                assert!(
                    !["citizen_id", "name", "phone"].contains(&n),
                    "{p} has query parameter {n}"
                );
            }
        }
    }
    assert!(v["paths"].as_object().unwrap().len() >= 18);
}

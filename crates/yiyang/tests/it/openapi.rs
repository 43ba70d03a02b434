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

/// Two types of one name in the document: utoipa keeps one schema, and the other route's answers
/// are described by it (a visit's due list once described the assessment due list's). Each
/// `ToSchema` type's name is unique across the crate's sources.
#[test]
fn schema_names_are_unique() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let t = l.trim_start();
                let Some(rest) = t
                    .strip_prefix("pub struct ")
                    .or_else(|| t.strip_prefix("pub enum "))
                    .or_else(|| t.strip_prefix("struct "))
                else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let attrs = lines[i.saturating_sub(4)..i].join("\n");
                if !attrs.contains("ToSchema") || attrs.contains("schema(as") {
                    continue;
                }
                let here = format!("{}:{}", p.display(), i + 1);
                if let Some(first) = seen.insert(name.clone(), here.clone()) {
                    panic!("schema {name} is defined twice: {first} and {here}");
                }
            }
        }
    }
    assert!(seen.len() > 100, "{}", seen.len());
}

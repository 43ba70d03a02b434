//! The API document as the server behaves: error answers as problem documents, and the request
//! constraints the handlers enforce (code formats, dates, ranges, code lists, text lengths) written
//! into the generated schema. The constraints are kept here, by field name, because the same field
//! means the same thing across the API (a `region_code` is always 12 digits); the handlers and the
//! text-length layer below enforce them, and `scripts/api-fuzz.sh` checks the two agree.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;

/// Every error answer is an RFC 9457 problem document, and every operation can answer a malformed
/// request (400), an absent or ended session (401), a missing permission or scope (403), an
/// unknown id (404), a wrong method (405), a conflict (409), a body too large (413) or of the
/// wrong type (415), invalid values (422) and too many requests (429).
pub fn with_problem_answers(mut doc: Value) -> Value {
    let problem =
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let common = [
        ("400", "请求格式不正确"),
        ("401", "未登录或会话已结束"),
        ("403", "没有权限或不在管辖范围内"),
        ("404", "不存在或不在管辖范围内"),
        ("405", "该地址不支持此请求方法"),
        ("409", "与现有数据冲突"),
        ("413", "上传内容超过大小上限"),
        ("415", "请求的 Content-Type 不正确"),
        ("422", "内容不符合要求（detail 与 errors 说明要改什么）"),
        ("429", "请求过于频繁"),
    ];
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return doc;
    };
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for (code, r) in responses.iter_mut() {
                if code.starts_with('4') || code.starts_with('5') {
                    r["content"] = problem.clone();
                }
            }
            for (code, what) in common {
                responses
                    .entry(code)
                    .or_insert_with(|| json!({"description": what, "content": problem.clone()}));
            }
        }
    }
    doc
}

/// Longest text, in characters, any string field of a JSON request may hold unless [`text_limit`]
/// names a tighter one: nothing a person types into this system is longer.
pub const TEXT_MAX: usize = 2000;

/// Largest JSON request body (axum's default for its JSON extractor): uploads are multipart.
const JSON_BODY_MAX: usize = 2 * 1024 * 1024;

/// The longest text a request field may hold, by its name. Enforced for JSON bodies by
/// [`limit_text`] and written into the document as `maxLength`.
pub fn text_limit(field: &str) -> usize {
    match field {
        "password" | "new_password" | "current_password" => 128,
        "username" => 32,
        "display_name" | "informant" | "source_level" | "label" => 30,
        "name" => 50,
        "phone" => 20,
        "citizen_id" => 18,
        "code" | "item_code" | "indicator_id" | "id" => 64,
        "address" | "reason" | "note" | "description" | "source" | "category" | "department" => 200,
        "evidence" | "provision" | "standard" => 500,
        // A signature drawn on a phone: a PNG of at most 200 KB in base64, as a data URL.
        "signature" => 280_000,
        _ => TEXT_MAX,
    }
}

/// A 12-digit region code as `RegionCode::parse` accepts it: a province that is not 00, and no
/// zero segment above the code's level (no village under town 000).
const REGION_PATTERN: &str = "^(0[1-9]|[1-9][0-9])(0{10}|(0[1-9]|[1-9][0-9])(0{8}|(0[1-9]|[1-9][0-9])\
    (0{6}|(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})(000|00[1-9]|0[1-9][0-9]|[1-9][0-9]{2}))))$";

/// How a person calls a text field, for the message that says it is too long.
fn field_label(field: &str) -> &str {
    match field {
        "address" => "居住地址",
        "name" => "名称",
        "display_name" => "姓名",
        "username" => "登录名",
        "password" | "new_password" | "current_password" => "密码",
        "phone" => "电话",
        "citizen_id" => "身份证号",
        "reason" | "reveal_reason" => "事由",
        "note" => "说明",
        "signature" => "签名图片",
        "description" => "描述",
        "evidence" => "依据",
        "source" => "来源",
        "informant" => "信息提供者",
        "assessors" => "评估员姓名",
        "rule" => "对象条件",
        "provision" => "服务内容",
        "standard" => "服务标准",
        "department" => "责任部门",
        "category" => "类别",
        "label" => "档次名称",
        _ => field,
    }
}

fn enum_of(codes: &[(&str, &str)]) -> Value {
    // The code, its Chinese label (files and people write either), or empty for "not given".
    let mut v: Vec<&str> = vec![""];
    for (c, zh) in codes {
        v.push(c);
        v.push(zh);
    }
    json!({ "enum": v })
}

/// Constraints by (where, field): `where` is a schema name, an operation path, or `*` for any.
fn rules() -> Vec<(&'static str, &'static str, Value)> {
    use yiyang_kernel::codes::{ECONOMIC_STATUS, ELDER_STATUS, FAMILY_PLANNING, LIVING_STATUS};
    let region = json!({ "pattern": REGION_PATTERN });
    let date = json!({"format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"});
    let period = json!({"pattern": "^(199[0-9]|20[0-9]{2}|2100)(-(0[1-9]|1[0-2]))?$"});
    vec![
        ("*", "region_code", region.clone()),
        ("*", "residence_region", region.clone()),
        ("*", "hukou_region", region.clone()),
        ("/api/v1/regions/{code}/children", "code", region.clone()),
        ("/api/v1/regions/{code}/map", "code", region),
        ("/api/v1/service-orders", "date", date.clone()),
        // A month 01–12 and a day 01–31: fewer strings the schema admits and the server refuses.
        (
            "/api/v1/meal-points/{id}/day",
            "date",
            json!({"format": "date", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"}),
        ),
        ("NewPlan", "starts_on", date.clone()),
        ("NewPlan", "ends_on", date.clone()),
        (
            "NewPlan",
            "start_time",
            json!({"pattern": "^([01]?[0-9]|2[0-3]):[0-5][0-9]$"}),
        ),
        (
            "NewPlan",
            "weekdays",
            json!({"minItems": 1, "maxItems": 7, "items": {"minimum": 1, "maximum": 7}}),
        ),
        (
            "NewPlan",
            "planned_minutes",
            json!({"minimum": 10, "maximum": 480}),
        ),
        (
            "EndPlan",
            "reason",
            json!({"minLength": 2, "pattern": "\\S.*\\S"}),
        ),
        (
            "ServeReq",
            "meal",
            json!({"enum": ["lunch", "supper", "午餐", "晚餐"]}),
        ),
        ("FeedbackReq", "rating", json!({"minimum": 1, "maximum": 5})),
        ("*", "assessed_on", date.clone()),
        ("*", "noted_on", date.clone()),
        ("*", "death_date", date.clone()),
        ("*", "rated_on", date.clone()),
        ("*", "effective_from", date.clone()),
        ("*", "filed_on", date.clone()),
        ("*", "grade_expires_on", date.clone()),
        ("*", "opened_on", date.clone()),
        ("*", "retired_on", date.clone()),
        ("*", "admitted_on", date.clone()),
        ("*", "from_on", date.clone()),
        ("*", "hired_on", date.clone()),
        ("*", "applied_on", date.clone()),
        ("/api/v1/admission-queue", "on", date.clone()),
        ("*", "left_on", date.clone()),
        ("*", "certificate_on", date.clone()),
        ("*", "certificate_expires_on", date.clone()),
        ("TransferReq", "on", date.clone()),
        ("ReturnReq", "on", date.clone()),
        ("DischargeReq", "on", date.clone()),
        ("MoveOutReq", "date", date),
        (
            "*",
            "month",
            json!({"pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}),
        ),
        ("*", "period", period),
        ("*", "year", json!({"minimum": 2000, "maximum": 2100})),
        ("*", "age_min", json!({"minimum": 0, "maximum": 150})),
        ("*", "age_max", json!({"minimum": 0, "maximum": 150})),
        ("*", "page", json!({"minimum": 1, "maximum": 100000})),
        (
            "*",
            "signed_on",
            json!({"format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
        ),
        (
            "*",
            "start_on",
            json!({"format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
        ),
        (
            "*",
            "accepted_on",
            json!({"format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
        ),
        (
            "EndReq",
            "on",
            json!({"format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
        ),
        (
            "NewFamilyBed",
            "visits_per_month",
            json!({"minimum": 1, "maximum": 31}),
        ),
        (
            "NewFamilyBed",
            "contract_no",
            json!({"minLength": 1, "maxLength": 40}),
        ),
        ("Answer", "action", json!({"enum": ["accept", "refuse"]})),
        (
            "ClaimStep",
            "action",
            json!({"enum": ["review", "paid", "discard"]}),
        ),
        (
            "SubsidyAmounts",
            "max_leave_days",
            json!({"minimum": 1, "maximum": 366}),
        ),
        (
            "SubsidyAmounts",
            "construction_public",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "SubsidyAmounts",
            "construction_public_private",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "SubsidyAmounts",
            "construction_private",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "SubsidyAmounts",
            "family_bed_monthly",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "SubsidyAmounts",
            "operating_public",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "SubsidyAmounts",
            "operating_public_private",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "SubsidyAmounts",
            "operating_private",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "PolicyReq",
            "offer_days",
            json!({"minimum": 1, "maximum": 30}),
        ),
        // Entitlement pages reach 50,000 rows deep at most (250 pages of 200).
        (
            "/api/v1/entitlements",
            "page",
            json!({"minimum": 1, "maximum": 250}),
        ),
        ("*", "page_size", json!({"minimum": 1, "maximum": 200})),
        (
            "/api/v1/audit",
            "page_size",
            json!({"minimum": 1, "maximum": 500}),
        ),
        ("*", "living_status", enum_of(LIVING_STATUS)),
        ("*", "economic_status", enum_of(ECONOMIC_STATUS)),
        ("*", "family_planning_special", enum_of(FAMILY_PLANNING)),
        ("SearchReq", "status", enum_of(ELDER_STATUS)),
        (
            "SearchReq",
            "ability_level",
            json!({"enum": ["", "none", "0", "1", "2", "3", "4"]}),
        ),
        (
            "SearchReq",
            "sort",
            json!({"enum": ["", "region", "name", "birth_date", "-birth_date"]}),
        ),
        ("SearchReq", "name", json!({"maxLength": 20})),
        (
            "/api/v1/assessments/due",
            "status",
            json!({"enum": ["", "all", "missing", "triggered", "expiring"]}),
        ),
        (
            "/api/v1/assessments/due/export",
            "status",
            json!({"enum": ["", "all", "missing", "triggered", "expiring"]}),
        ),
        (
            "/api/v1/assessments/due",
            "assigned",
            json!({"enum": ["", "all", "mine", "none"]}),
        ),
        (
            "/api/v1/assessments/due/export",
            "assigned",
            json!({"enum": ["", "all", "mine", "none"]}),
        ),
        (
            "DueSearch",
            "status",
            json!({"enum": ["", "all", "missing", "triggered", "expiring"]}),
        ),
        (
            "DueSearch",
            "assigned",
            json!({"enum": ["", "all", "mine", "none"]}),
        ),
        ("DueSearch", "name", json!({"maxLength": 20})),
        (
            "AssignReq",
            "elder_ids",
            json!({"minItems": 1, "maxItems": 200}),
        ),
        ("NewAssessment", "organisation", json!({"maxLength": 60})),
        (
            "OrgFields",
            "price_min",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "OrgFields",
            "price_max",
            json!({"minimum": 0, "maximum": 100000}),
        ),
        (
            "/api/v1/orgs/{id}/staff",
            "state",
            json!({"enum": ["", "current", "all"]}),
        ),
        (
            "/api/v1/orgs/{id}/residents",
            "state",
            json!({"enum": ["", "current", "past"]}),
        ),
        (
            "NewBeds",
            "labels",
            json!({"minItems": 1, "maxItems": 50, "items": {"minLength": 1, "maxLength": 10, "pattern": "\\S"}}),
        ),
        (
            "NewBeds",
            "room",
            json!({"minLength": 1, "maxLength": 20, "pattern": "\\S"}),
        ),
        ("NewBeds", "building", json!({"maxLength": 20})),
        ("NewBeds", "floor", json!({"maxLength": 10})),
        (
            "BedChange",
            "status",
            json!({"enum": ["", "open", "retired", "撤销"]}),
        ),
        ("LeaveReq", "kind", enum_of(crate::institution::LEAVE_KINDS)),
        (
            "DischargeReq",
            "reason",
            enum_of(crate::institution::DISCHARGE_REASONS),
        ),
        ("StaffFields", "role", enum_of(crate::org::staff::ROLES)),
        (
            "StaffFields",
            "skill_level",
            json!({"enum": [null, "", 1, 2, 3, 4, 5, "1", "2", "3", "4", "5", "初级", "中级", "高级", "技师", "高级技师"]}),
        ),
        ("StaffFields", "certificate_no", json!({"maxLength": 40})),
        ("StaffFields", "name", json!({"maxLength": 30})),
        ("PolicyReq", "tiers", json!({"minItems": 1, "maxItems": 20})),
        ("OrgFields", "kind", enum_of(crate::org::KINDS)),
        ("/api/v1/orgs", "kind", enum_of(crate::org::KINDS)),
        (
            "/api/v1/orgs/export.xlsx",
            "kind",
            enum_of(crate::org::KINDS),
        ),
        (
            "/api/v1/orgs/export.xlsx",
            "ownership",
            enum_of(crate::org::OWNERSHIPS),
        ),
        ("/api/v1/orgs/export.xlsx", "q", json!({"maxLength": 30})),
        (
            "NewOrder",
            "planned_start",
            json!({"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}$"}),
        ),
        (
            "NewOrder",
            "planned_minutes",
            json!({"minimum": 10, "maximum": 480}),
        ),
        ("Step", "step_id", json!({"format": "uuid"})),
        (
            "/api/v1/service-orders/{id}/photos",
            "photo_id",
            json!({"format": "uuid"}),
        ),
        ("Step", "lon", json!({"minimum": 73, "maximum": 136})),
        ("Step", "lat", json!({"minimum": 3, "maximum": 54})),
        ("OrgFields", "ownership", enum_of(crate::org::OWNERSHIPS)),
        ("/api/v1/orgs", "ownership", enum_of(crate::org::OWNERSHIPS)),
        ("/api/v1/orgs", "q", json!({"maxLength": 30})),
        ("OrgFields", "name", json!({"maxLength": 60})),
        ("OrgFields", "operator", json!({"maxLength": 60})),
        ("OrgFields", "filing_no", json!({"maxLength": 40})),
        ("OrgFields", "address", json!({"maxLength": 120})),
        ("OrgFields", "phone", json!({"pattern": "^[0-9 -]{0,20}$"})),
        ("OrgFields", "grade", json!({"minimum": 1, "maximum": 5})),
        ("OrgFields", "lon", json!({"minimum": 73, "maximum": 136})),
        ("OrgFields", "lat", json!({"minimum": 3, "maximum": 54})),
        (
            "OrgFields",
            "floor_area",
            json!({"minimum": 0, "maximum": 10000000}),
        ),
        (
            "OrgFields",
            "status",
            json!({"enum": ["", "open", "closed", "运营", "停业"]}),
        ),
        (
            "/api/v1/entitlements",
            "state",
            json!({"enum": ["", "proposed", "granted", "suspended", "ended"]}),
        ),
        (
            "/api/v1/users/{id}/{action}",
            "action",
            json!({"enum": ["disable", "enable", "unlock"]}),
        ),
        (
            "RevealReq",
            "field",
            json!({"enum": ["citizen_id", "phone"]}),
        ),
        // Trimmed, at least 4 characters; an export's may be blank (no IDs in clear).
        (
            "RevealReq",
            "reason",
            json!({"pattern": "^\\s*\\S[\\s\\S]{2,}\\S\\s*$"}),
        ),
        (
            "*",
            "reveal_reason",
            json!({"pattern": "^\\s*(\\S[\\s\\S]{2,}\\S)?\\s*$"}),
        ),
        (
            "*",
            "years",
            json!({"pattern": "^(20[0-9]{2}|2100)([,，](20[0-9]{2}|2100)){0,9}$"}),
        ),
        ("ScoreReq", "standard", json!({"enum": ["GB/T 42195-2022"]})),
        (
            "NewTrigger",
            "kind",
            json!({"enum": ["risk_event", "diagnosis", "disputed", "condition_change"]}),
        ),
        (
            "NewAssessment",
            "reason",
            json!({"enum": ["first", "routine", "immediate", "disputed", "other"]}),
        ),
        (
            "NewAssessment",
            "assessors",
            json!({"minItems": 2, "maxItems": 2}),
        ),
        ("NewAdoption", "level", json!({"minimum": 0, "maximum": 4})),
        (
            "NewAdoption",
            "source",
            json!({"pattern": "\\S", "maxLength": 100}),
        ),
        (
            "NewAdoption",
            "source_level",
            json!({"pattern": "\\S", "maxLength": 50}),
        ),
        (
            "ElderFields",
            "disability_grade",
            json!({"minimum": 1, "maximum": 4}),
        ),
        ("ElderFields", "lon", json!({"minimum": 73, "maximum": 136})),
        ("ElderFields", "lat", json!({"minimum": 3, "maximum": 54})),
        ("ElderFields", "name", json!({"maxLength": 30})),
        (
            "MembersReq",
            "elder_ids",
            json!({"minItems": 1, "maxItems": 10000}),
        ),
        (
            "ValiditySetting",
            "months",
            json!({"minimum": 1, "maximum": 60}),
        ),
        ("Target", "class", json!({"enum": ["binding", "expected"]})),
        ("Target", "direction", json!({"enum": ["ge", "le"]})),
        ("Target", "value", json!({"minimum": 0})),
        ("EntryReq", "value", json!({"minimum": 0})),
        ("NewList", "name", json!({"minLength": 1, "maxLength": 30})),
        ("DecideReq", "note", json!({"maxLength": 200})),
        ("BulkDecideReq", "note", json!({"maxLength": 200})),
        (
            "BulkDecideReq",
            "ids",
            json!({"minItems": 1, "maxItems": 500}),
        ),
        ("NewTrigger", "note", json!({"maxLength": 200})),
        ("TierDef", "quota", json!({"minimum": 0})),
        ("TierDef", "amount", json!({"minimum": 0})),
    ]
}

fn merge(target: &mut Value, add: &Value) {
    if let (Some(t), Some(a)) = (target.as_object_mut(), add.as_object()) {
        for (k, v) in a {
            t.insert(k.clone(), v.clone());
        }
    }
}

fn is_text(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// One field's schema with what the server enforces on it added. `optional`: an optional
/// parameter or a nullable field, where an empty string means "not given" (the handlers treat it
/// so), so a pattern also admits "".
fn constrain(
    schema: &mut Value,
    place: &str,
    field: &str,
    optional: bool,
    rules: &[(&str, &str, Value)],
) {
    if schema.get("$ref").is_some() {
        return;
    }
    for (at, name, add) in rules {
        if *name == field && (*at == "*" || *at == place) {
            let mut add = add.clone();
            if optional && let Some(p) = add.get("pattern").and_then(|p| p.as_str()) {
                let inner = p.trim_start_matches('^').trim_end_matches('$');
                add["pattern"] = json!(format!("^({inner})?$"));
                add.as_object_mut().map(|o| o.remove("format"));
            }
            // A nullable field's code list admits null as well.
            let nullable = schema["type"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("null")));
            if nullable && let Some(list) = add.get_mut("enum").and_then(|e| e.as_array_mut()) {
                list.push(Value::Null);
            }
            let add = &add;
            // A rule on an array's values (enums, patterns) goes on its items; counts on itself.
            let on_items = schema["type"] == "array"
                && !add.as_object().is_some_and(|o| o.contains_key("minItems"));
            if on_items {
                merge(&mut schema["items"], add);
            } else {
                merge(schema, add);
            }
        }
    }
    let target = if schema["type"] == "array" {
        &mut schema["items"]
    } else {
        schema
    };
    if is_text(target) && target.get("maxLength").is_none() && target.get("enum").is_none() {
        target["maxLength"] = json!(text_limit(field));
    }
}

/// Writes the request constraints into the document: into every parameter, and into every schema a
/// request body refers to (directly or through others).
pub fn with_request_rules(doc: Value) -> Value {
    let mut doc = with_forms(doc);
    let rules = rules();
    let mut request_schemas = std::collections::BTreeSet::new();
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.rsplit('/').next().unwrap_or_default().to_string());
                }
                o.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut todo = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for op in ops.values_mut() {
                if let Some(body) = op.get("requestBody") {
                    refs(body, &mut todo);
                }
                if let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) {
                    for p in params {
                        let name = p["name"].as_str().unwrap_or_default().to_string();
                        let optional = p["required"] != json!(true);
                        if let Some(s) = p.get_mut("schema") {
                            constrain(s, path, &name, optional, &rules);
                            // An empty parameter is dropped (see `limit_text`): a required one
                            // must hold something.
                            if !optional && is_text(s) && s.get("pattern").is_none() {
                                s["minLength"] = json!(1);
                            }
                        }
                    }
                }
            }
        }
    }
    let schemas = doc
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_default();
    while let Some(n) = todo.pop() {
        if request_schemas.insert(n.clone())
            && let Some(s) = schemas.get(&n)
        {
            refs(s, &mut todo);
        }
    }
    for n in request_schemas {
        let Some(props) = doc
            .pointer_mut(&format!("/components/schemas/{n}/properties"))
            .and_then(|p| p.as_object_mut())
        else {
            continue;
        };
        for (field, s) in props.iter_mut() {
            let nullable = s["type"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("null")));
            constrain(s, &n, field, nullable, &rules);
        }
    }
    doc
}

/// The assessment form as a schema (GB/T 42195 Appendix B): every item with the scores it allows,
/// and the option codes of items where one score covers two states.
fn assessment_schemas() -> (Value, Value, Value) {
    use yiyang_kernel::assessment::ITEMS;
    let mut items = serde_json::Map::new();
    let mut options = serde_json::Map::new();
    for def in &ITEMS {
        let mut scores: Vec<u8> = def.options.iter().map(|o| o.score).collect();
        scores.sort_unstable();
        scores.dedup();
        items.insert(
            def.code.into(),
            json!({"type": "integer", "enum": scores, "description": def.name}),
        );
        if scores.len() < def.options.len() {
            let codes: Vec<&str> = def.options.iter().map(|o| o.code).collect();
            options.insert(def.code.into(), json!({"type": "string", "enum": codes}));
        }
    }
    // All 26 are needed, except where a coma decides the level alone: not a schema's rule.
    let items = json!({
        "type": "object", "properties": items, "additionalProperties": false,
        "description": "评估项目 → 得分：附录 B 的全部 26 项（昏迷者可缺）"
    });
    let options = json!({
        "type": "object", "properties": options, "additionalProperties": false,
        "description": "一个得分对应两种状态的项目所选的选项（须与得分一致）"
    });
    let count = json!({"type": "integer", "minimum": 0, "maximum": 3});
    let risks = json!({
        "type": "object", "additionalProperties": false,
        "properties": {"fall": count, "wandering": count, "choking": count,
                       "suicide_self_harm": count, "other": count},
        "description": "近30天照护风险事件次数（0–3，3 表示 3 次及以上）"
    });
    (items, options, risks)
}

/// Multipart uploads: the file and the flags each upload reads.
fn upload_schema(path: &str) -> Value {
    // Blank means the default, as for every optional field.
    let flag = json!({"type": "string", "enum": ["", "true", "false"]});
    let mut props = json!({
        "file": {"type": "string", "format": "binary", "description": "CSV 或 XLSX 文件"},
        "dry_run": flag,
    });
    if path.ends_with("/targets/import") {
        props["region_code"] = json!({"type": "string", "pattern": REGION_PATTERN});
        props["create_missing"] = flag;
        props["source"] = json!({"type": "string", "maxLength": text_limit("source")});
    }
    json!({"type": "object", "properties": props, "required": ["file"], "additionalProperties": false})
}

fn with_forms(mut doc: Value) -> Value {
    let (items, options, risks) = assessment_schemas();
    let bool_ = json!({"type": "boolean"});
    let input = json!({
        "type": "object", "required": ["items"], "additionalProperties": false,
        "properties": {
            "items": items, "options": options, "risk_events_30d": risks,
            "coma": bool_, "dementia_confirmed": bool_, "psychiatric_dx_by_specialist": bool_
        }
    });
    if let Some(p) = doc.pointer_mut("/components/schemas/ScoreReq/properties") {
        p["items"] = items;
        p["options"] = options;
        p["risk_events_30d"] = risks;
    }
    if let Some(p) = doc.pointer_mut("/components/schemas/NewAssessment/properties") {
        p["input"] = input;
    }
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                if let Some(mp) = op.pointer_mut("/requestBody/content/multipart~1form-data") {
                    mp["schema"] = upload_schema(path);
                    op["requestBody"]["required"] = json!(true);
                }
            }
        }
    }
    doc
}

/// Query parameters that are numbers or yes/no: given empty, they are refused as not a number
/// rather than dropped.
const NOT_TEXT: &[&str] = &[
    "year",
    "page",
    "page_size",
    "age_min",
    "age_max",
    "all",
    "nursing",
    "open",
    "limit",
    "mine",
    "open_referrals",
];

/// Refuses a JSON request whose text fields are longer than [`text_limit`] allows, before any
/// handler sees it, so no free-text field anywhere can carry a 300,000-character address.
///
/// Query strings get the same limits, and an empty parameter (`?region_code=`) is dropped: an
/// optional parameter given empty means not given, everywhere.
pub async fn limit_text(mut req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/api/")
        && let Some(q) = req.uri().query()
    {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if let Some((k, v)) = pairs
            .iter()
            .find(|(k, v)| v.chars().count() > text_limit(k))
        {
            let max = text_limit(k);
            let n = v.chars().count();
            let what = field_label(k);
            return ApiError::invalid(k, format!("{what}最多 {max} 个字（现有 {n} 个）"))
                .into_response();
        }
        let dropped = |(k, v): &(String, String)| v.is_empty() && !NOT_TEXT.contains(&k.as_str());
        if pairs.iter().any(dropped) {
            let kept = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter().filter(|p| !dropped(p)))
                .finish();
            let path = req.uri().path();
            let uri = if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{kept}")
            };
            if let Ok(uri) = uri.parse() {
                *req.uri_mut() = uri;
            }
        }
    }
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json || !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, JSON_BODY_MAX).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "bad_request",
                "上传内容超过大小上限",
            )
            .into_response();
        }
    };
    let mut bytes = bytes;
    if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
        // serde reads a struct from a JSON array too (`[]` as a struct whose fields are all
        // optional), and no request body of the API is an array: refused here. Other non-objects
        // fail the handlers' own parsing, and a method a route lacks still gets its 405.
        let writes = matches!(
            parts.method,
            axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH
        );
        if writes && v.is_array() {
            return ApiError::invalid("body", "请求内容应为 JSON 对象（{…}），不能是数组")
                .into_response();
        }
        if let Some((field, max, len)) = too_long(&v, "") {
            return ApiError::invalid(
                &field,
                format!(
                    "{}最多 {max} 个字（现有 {len} 个），请删减后重试",
                    field_label(&field)
                ),
            )
            .into_response();
        }
        // JSON has one kind of number: 16.0 is the integer 16 to a client (and to the
        // document's `integer`), so it reaches the handlers as one.
        if integral(&mut v) {
            bytes = serde_json::to_vec(&v).unwrap_or_default().into();
        }
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Writes whole-valued floats (16.0) as integers; true if any was.
fn integral(v: &mut Value) -> bool {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *v = json!(f as i64);
                true
            } else {
                false
            }
        }
        Value::Array(a) => a.iter_mut().fold(false, |c, x| integral(x) | c),
        Value::Object(o) => o.values_mut().fold(false, |c, x| integral(x) | c),
        _ => false,
    }
}

/// The first text value longer than its field allows: (field, limit, length).
fn too_long(v: &Value, field: &str) -> Option<(String, usize, usize)> {
    match v {
        Value::String(s) => {
            let max = text_limit(field);
            let n = s.chars().count();
            (n > max).then(|| (field.to_string(), max, n))
        }
        Value::Array(a) => a.iter().find_map(|x| too_long(x, field)),
        Value::Object(o) => o.iter().find_map(|(k, x)| too_long(x, k)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits_follow_the_field_name_at_any_depth() {
        let ok = json!({"name": "张三", "filter": {"reason": "核实"}});
        assert!(too_long(&ok, "").is_none());
        let long = json!({"filter": {"note": "字".repeat(201)}});
        assert_eq!(too_long(&long, ""), Some(("note".into(), 200, 201)));
        let in_list = json!({"assessors": ["甲", "乙".repeat(TEXT_MAX + 1)]});
        assert_eq!(
            too_long(&in_list, ""),
            Some(("assessors".into(), TEXT_MAX, TEXT_MAX + 1))
        );
    }

    #[test]
    fn every_number_parameter_is_known_as_one() {
        let doc: Value = serde_json::from_str(&crate::app::openapi_json()).unwrap();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    if p["in"] == "query" && !is_text(&p["schema"]) {
                        assert!(NOT_TEXT.contains(&name), "{name}: add it to NOT_TEXT");
                    }
                }
            }
        }
    }

    #[test]
    fn whole_floats_become_integers() {
        let mut v = json!({"months": 16.0, "lat": 32.5, "xs": [1.0, 2]});
        assert!(integral(&mut v));
        assert_eq!(v, json!({"months": 16, "lat": 32.5, "xs": [1, 2]}));
        assert!(!integral(&mut v));
    }

    #[test]
    fn request_schemas_get_their_rules_and_responses_do_not() {
        let doc = json!({
            "paths": {"/api/v1/x": {"post": {
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchReq"}}}},
                "parameters": [{"name": "year", "in": "query", "schema": {"type": "integer"}}],
                "responses": {}
            }}},
            "components": {"schemas": {
                "SearchReq": {"properties": {"region_code": {"type": ["string", "null"]}, "sort": {"type": "string"}}},
                "ElderRow": {"properties": {"region_code": {"type": "string"}}}
            }}
        });
        let doc = with_request_rules(doc);
        let s = &doc["components"]["schemas"];
        let pattern = s["SearchReq"]["properties"]["region_code"]["pattern"]
            .as_str()
            .unwrap();
        // Nullable: empty means not given.
        assert_eq!(
            pattern,
            format!("^({})?$", &REGION_PATTERN[1..REGION_PATTERN.len() - 1])
        );
        assert_eq!(
            s["SearchReq"]["properties"]["region_code"]["maxLength"],
            TEXT_MAX
        );
        assert!(s["SearchReq"]["properties"]["sort"]["enum"].is_array());
        assert!(
            s["ElderRow"]["properties"]["region_code"]
                .get("pattern")
                .is_none()
        );
        let p = &doc["paths"]["/api/v1/x"]["post"]["parameters"][0]["schema"];
        assert_eq!(p["minimum"], 2000);
    }

    #[test]
    fn every_rule_names_a_field_the_api_has() {
        let doc: Value = serde_json::from_str(&crate::app::openapi_json()).unwrap();
        let text = doc.to_string();
        for (at, field, _) in rules() {
            assert!(
                text.contains(&format!("\"{field}\"")),
                "rule for {at}.{field} names no field of the API"
            );
            if at != "*" && !at.starts_with('/') {
                assert!(
                    doc.pointer(&format!("/components/schemas/{at}/properties/{field}"))
                        .is_some(),
                    "rule for {at}.{field}: no such schema field"
                );
            }
        }
    }
}

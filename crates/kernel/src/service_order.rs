//! Home-visit orders (服务工单): the services (六助一护), which of them need a qualified caregiver,
//! the steps an order goes through, and when two visits of one caregiver overlap.

/// Services: (code, 中文, needs a qualified caregiver).
pub const SERVICES: &[(&str, &str, bool)] = &[
    ("meal", "助餐", false),
    ("bathing", "助浴", true),
    ("emergency", "助急", false),
    ("medical_escort", "助医", false),
    ("mobility", "助行", false),
    ("cleaning", "助洁", false),
    ("personal_care", "照护", true),
];

/// A service code from its code or its Chinese name.
pub fn service(v: &str) -> Option<&'static str> {
    let v = v.trim();
    SERVICES.iter().find(|s| s.0 == v || s.1 == v).map(|s| s.0)
}

pub fn service_zh(code: &str) -> &'static str {
    SERVICES.iter().find(|s| s.0 == code).map_or("", |s| s.1)
}

/// Bathing and personal care go only to a caregiver with a skill level or a certificate in force.
pub fn needs_qualification(code: &str) -> bool {
    SERVICES.iter().any(|s| s.0 == code && s.2)
}

/// States: created → dispatched → accepted → checked_in → checked_out → confirmed, or cancelled /
/// no_show on the way.
pub const STATES: &[(&str, &str)] = &[
    ("created", "待派单"),
    ("dispatched", "已派单"),
    ("accepted", "已接单"),
    ("checked_in", "服务中"),
    ("checked_out", "待确认"),
    ("confirmed", "已完成"),
    ("cancelled", "已取消"),
    ("no_show", "未上门"),
];

pub fn state_zh(code: &str) -> &'static str {
    STATES.iter().find(|s| s.0 == code).map_or("", |s| s.1)
}

/// States in which an order holds its caregiver's time.
pub const HOLDING: &[&str] = &["dispatched", "accepted", "checked_in"];

/// The state a step leads to from `from`, or why it cannot be taken (in Chinese).
pub fn next(from: &str, action: &str) -> Result<&'static str, String> {
    let to = match (from, action) {
        ("dispatched", "accept") => "accepted",
        ("accepted" | "dispatched", "check_in") => "checked_in",
        ("checked_in", "check_out") => "checked_out",
        ("checked_out", "confirm") => "confirmed",
        ("created" | "dispatched" | "accepted", "cancel") => "cancelled",
        ("dispatched" | "accepted", "no_show") => "no_show",
        (_, "accept" | "check_in" | "check_out" | "confirm" | "cancel" | "no_show") => {
            return Err(format!("工单{}，不能{}", state_zh(from), action_zh(action)));
        }
        _ => {
            return Err(
                "操作应为 accept（接单）、check_in（签到）、check_out（签退）、confirm（确认）、cancel（取消）或 no_show（未上门）"
                    .into(),
            );
        }
    };
    Ok(to)
}

pub fn action_zh(action: &str) -> &'static str {
    match action {
        "dispatch" => "派单",
        "accept" => "接单",
        "check_in" => "签到",
        "check_out" => "签退",
        "confirm" => "确认",
        "cancel" => "取消",
        "no_show" => "登记未上门",
        _ => "",
    }
}

/// Whether two visits, each a start in minutes and a length, share any minute (touching ends do
/// not: a visit 9:00–10:00 and one at 10:00 can both be kept).
pub fn overlaps(a_start: i64, a_minutes: i64, b_start: i64, b_minutes: i64) -> bool {
    a_start < b_start + b_minutes && b_start < a_start + a_minutes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_order_and_refuse_in_words() {
        let mut s = "dispatched";
        for (a, want) in [
            ("accept", "accepted"),
            ("check_in", "checked_in"),
            ("check_out", "checked_out"),
            ("confirm", "confirmed"),
        ] {
            s = next(s, a).unwrap();
            assert_eq!(s, want);
        }
        assert!(next("confirmed", "cancel").unwrap_err().contains("已完成"));
        assert!(
            next("checked_in", "confirm")
                .unwrap_err()
                .contains("不能确认")
        );
        assert!(next("created", "accept").is_err(), "not dispatched yet");
        assert_eq!(next("created", "cancel").unwrap(), "cancelled");
        assert!(next("accepted", "fly").unwrap_err().contains("操作应为"));
    }

    #[test]
    fn overlap_shares_a_minute_touching_does_not() {
        assert!(overlaps(540, 60, 570, 30));
        assert!(overlaps(540, 60, 500, 41));
        assert!(!overlaps(540, 60, 600, 30), "10:00 after 9:00–10:00");
        assert!(!overlaps(540, 60, 480, 60), "8:00–9:00 before 9:00");
        assert!(overlaps(540, 60, 550, 10), "inside");
    }

    #[test]
    fn services_by_code_or_name() {
        assert_eq!(service("助浴"), Some("bathing"));
        assert_eq!(service("cleaning"), Some("cleaning"));
        assert_eq!(service("理发"), None);
        assert!(needs_qualification("bathing") && needs_qualification("personal_care"));
        assert!(!needs_qualification("cleaning"));
    }
}

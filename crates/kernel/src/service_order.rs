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

/// What a visit of each service is made of (服务项目), ticked off on the caregiver's phone at
/// check-out: (service, [(code, 中文)]).
pub const TASKS: &[(&str, &[(&str, &str)])] = &[
    (
        "cleaning",
        &[
            ("sweep", "清扫拖地"),
            ("bed", "整理床铺"),
            ("dishes", "清洗餐具"),
            ("rubbish", "清理垃圾"),
            ("laundry", "洗晒衣物"),
            ("wipe", "擦拭门窗家具"),
        ],
    ),
    (
        "meal",
        &[
            ("deliver", "送餐上门"),
            ("feed", "协助进餐"),
            ("tidy", "餐后清洁"),
        ],
    ),
    (
        "bathing",
        &[
            ("pressure", "浴前测量血压"),
            ("water", "调试水温"),
            ("bath", "协助洗浴"),
            ("dress", "协助更衣"),
            ("skin", "检查皮肤"),
            ("tidy", "清理浴室"),
        ],
    ),
    (
        "mobility",
        &[
            ("walk", "陪同散步"),
            ("stairs", "协助上下楼"),
            ("errand", "陪同外出办事"),
            ("aids", "检查助行器具"),
        ],
    ),
    (
        "medical_escort",
        &[
            ("escort", "陪同就医"),
            ("medicine", "代为取药"),
            ("remind", "用药提醒"),
            ("measure", "测量血压血糖"),
        ],
    ),
    (
        "emergency",
        &[
            ("check", "查看老人状况"),
            ("family", "联系家属"),
            ("call", "呼叫急救或报警"),
            ("repair", "紧急维修"),
        ],
    ),
    (
        "personal_care",
        &[
            ("vitals", "测量生命体征"),
            ("turn", "翻身拍背"),
            ("skin", "皮肤护理"),
            ("mouth", "口腔清洁"),
            ("medicine", "协助服药"),
            ("toilet", "协助如厕"),
        ],
    ),
];

/// The tasks of a service (none for an unknown one).
pub fn tasks(service: &str) -> &'static [(&'static str, &'static str)] {
    TASKS.iter().find(|t| t.0 == service).map_or(&[], |t| t.1)
}

/// The tasks ticked for a visit of `service` (codes or Chinese names), as stored: their codes in
/// the service's own order, each once, joined by commas; `None` when none was ticked. Err names
/// the first that is not a task of the service.
pub fn tasks_done(service: &str, ticked: &[String]) -> Result<Option<String>, String> {
    let all = tasks(service);
    let mut done = vec![false; all.len()];
    for t in ticked {
        let t = t.trim();
        match all.iter().position(|(c, zh)| *c == t || *zh == t) {
            Some(i) => done[i] = true,
            None => {
                return Err(format!(
                    "“{t}”不是{}的服务项目，应为：{}",
                    service_zh(service),
                    all.iter().map(|a| a.1).collect::<Vec<_>>().join("、")
                ));
            }
        }
    }
    let codes: Vec<&str> = all
        .iter()
        .zip(&done)
        .filter(|(_, d)| **d)
        .map(|(a, _)| a.0)
        .collect();
    Ok((!codes.is_empty()).then(|| codes.join(",")))
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

/// The shortest visit of a service that is paid for, in minutes (a visit shorter than this is
/// held back from the settlement).
pub fn min_minutes(code: &str) -> i64 {
    match code {
        "meal" => 10,
        "emergency" => 15,
        _ => 30,
    }
}

/// A check-in farther than this from the elder's home is held back.
pub const FAR_METRES: f64 = 500.0;

/// Metres between two points (lon, lat in degrees) on the earth's mean radius.
pub fn distance_m(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * a.sqrt().asin()
}

/// A caregiver as a dispatcher weighs her for one visit.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Qualified where the service needs it, and no other visit of hers shares a minute with it
    pub eligible: bool,
    /// Metres from where she is before (or after) it that day to this home; None: unknown
    pub distance_m: Option<f64>,
    /// Her visits that day already
    pub visits: i64,
}

/// The order a dispatcher sees caregivers in: those who can take the visit first, then the
/// nearest (unknown last), then the one with the lightest day.
pub fn suggest(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.eligible
        .cmp(&a.eligible)
        .then_with(|| match (a.distance_m, b.distance_m) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
        .then_with(|| a.visits.cmp(&b.visits))
}

/// Anomaly kinds a settlement holds back: (code, 中文).
pub const ANOMALIES: &[(&str, &str)] = &[
    ("far_check_in", "签到位置距老人住址超过 500 米"),
    ("too_short", "服务时长不足"),
    ("overlap", "同一护理员服务时间重叠"),
    ("after_death", "老人去世后的服务"),
    ("in_hospital", "老人住院期间的服务"),
    ("duplicate", "同一老人同日重复服务"),
    ("self_confirmed", "确认码发到了护理员本人手机"),
];

pub fn anomaly_zh(code: &str) -> &'static str {
    ANOMALIES.iter().find(|a| a.0 == code).map_or("", |a| a.1)
}

/// A confirmed visit (or a meal: no caregiver, check-in = check-out) as the settlement sees it.
/// The facts that need looking up come in decided: how far the check-in was, whether the elder
/// had died or was in hospital that day, whether the code went to the caregiver's own phone.
#[derive(Debug, Clone)]
pub struct Visit<'a> {
    pub caregiver: Option<&'a str>,
    pub elder: &'a str,
    pub service: &'a str,
    /// YYYY-MM-DD
    pub day: &'a str,
    /// Minutes since 1970 (check-in and check-out as done)
    pub check_in: i64,
    pub check_out: i64,
    pub far_m: Option<f64>,
    pub after_death: bool,
    pub in_hospital: bool,
    pub self_confirmed: bool,
    /// How many of this service the elder may have on one day (1, or 2 for meals: lunch and supper)
    pub per_day: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// Index into the visits given
    pub index: usize,
    pub kind: &'static str,
    pub reason: String,
}

fn hm(min: i64) -> String {
    // China time: the minutes are UTC.
    let m = (min + 8 * 60).rem_euclid(24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Every anomaly of a month's visits, by kind, each with a reason in Chinese. A visit can carry
/// more than one. Overlaps flag both visits of a caregiver that share a minute; a service beyond
/// the day's allowance flags the later ones.
pub fn check(v: &[Visit]) -> Vec<Flag> {
    let mut out = vec![];
    for (i, x) in v.iter().enumerate() {
        if let Some(m) = x.far_m.filter(|m| *m > FAR_METRES) {
            out.push(Flag {
                index: i,
                kind: "far_check_in",
                reason: format!("签到位置距老人住址 {:.0} 米", m),
            });
        }
        let len = x.check_out - x.check_in;
        if x.caregiver.is_some() && len < min_minutes(x.service) {
            out.push(Flag {
                index: i,
                kind: "too_short",
                reason: format!(
                    "{}服务 {} 分钟，不足 {} 分钟",
                    service_zh(x.service),
                    len,
                    min_minutes(x.service)
                ),
            });
        }
        if x.after_death {
            out.push(Flag {
                index: i,
                kind: "after_death",
                reason: format!("{} 老人已去世", x.day),
            });
        }
        if x.in_hospital {
            out.push(Flag {
                index: i,
                kind: "in_hospital",
                reason: format!("{} 老人在住院", x.day),
            });
        }
        if x.self_confirmed {
            out.push(Flag {
                index: i,
                kind: "self_confirmed",
                reason: "确认码发送的号码是护理员本人的手机号".into(),
            });
        }
    }
    // One caregiver's visits in time order: a visit starting before an earlier one ended.
    let mut by_cg: Vec<usize> = (0..v.len()).filter(|&i| v[i].caregiver.is_some()).collect();
    by_cg.sort_unstable_by(|&a, &b| {
        (v[a].caregiver, v[a].check_in, a).cmp(&(v[b].caregiver, v[b].check_in, b))
    });
    let mut flagged = vec![false; v.len()];
    let mut open: Option<usize> = None; // the visit of this caregiver ending last so far
    for &i in &by_cg {
        match open {
            Some(o) if v[o].caregiver == v[i].caregiver => {
                if overlaps(
                    v[o].check_in,
                    v[o].check_out - v[o].check_in,
                    v[i].check_in,
                    v[i].check_out - v[i].check_in,
                ) {
                    for (a, b) in [(o, i), (i, o)] {
                        if !flagged[a] {
                            flagged[a] = true;
                            out.push(Flag {
                                index: a,
                                kind: "overlap",
                                reason: format!(
                                    "与同一护理员 {} {}–{} 的服务重叠",
                                    v[b].day,
                                    hm(v[b].check_in),
                                    hm(v[b].check_out)
                                ),
                            });
                        }
                    }
                }
                if v[i].check_out > v[o].check_out {
                    open = Some(i);
                }
            }
            _ => open = Some(i),
        }
    }
    // One elder, service and day: beyond the allowance, the later ones.
    let mut by_day: Vec<usize> = (0..v.len()).collect();
    by_day.sort_unstable_by(|&a, &b| {
        (v[a].elder, v[a].service, v[a].day, v[a].check_in, a).cmp(&(
            v[b].elder,
            v[b].service,
            v[b].day,
            v[b].check_in,
            b,
        ))
    });
    let mut run = 0u32;
    for (k, &i) in by_day.iter().enumerate() {
        let same = k > 0 && {
            let p = &v[by_day[k - 1]];
            (p.elder, p.service, p.day) == (v[i].elder, v[i].service, v[i].day)
        };
        run = if same { run + 1 } else { 1 };
        if run > v[i].per_day.max(1) {
            out.push(Flag {
                index: i,
                kind: "duplicate",
                reason: format!(
                    "{} 已有 {} 次{}",
                    v[i].day,
                    run - 1,
                    service_zh(v[i].service)
                ),
            });
        }
    }
    out
}

/// An amount split across province, city, county and town by whole-percent shares (summing to
/// 100): each level's share rounded down, the town taking what is left, so the parts add up.
pub fn split(amount_fen: i64, shares: [u8; 4]) -> [i64; 4] {
    let p = amount_fen * shares[0] as i64 / 100;
    let c = amount_fen * shares[1] as i64 / 100;
    let k = amount_fen * shares[2] as i64 / 100;
    [p, c, k, amount_fen - p - c - k]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticked_tasks_are_stored_in_the_services_order_once() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            tasks_done("cleaning", &t(&["dishes", "清扫拖地", "dishes"])),
            Ok(Some("sweep,dishes".into()))
        );
        assert_eq!(tasks_done("cleaning", &[]), Ok(None));
        let e = tasks_done("meal", &t(&["bath"])).unwrap_err();
        assert!(
            e.contains("“bath”不是助餐的服务项目") && e.contains("送餐上门"),
            "{e}"
        );
        // Every service has its tasks, with codes unique within it.
        for (code, _, _) in SERVICES {
            let all = tasks(code);
            assert!(all.len() >= 3, "{code}");
            let mut codes: Vec<_> = all.iter().map(|a| a.0).collect();
            codes.sort();
            codes.dedup();
            assert_eq!(codes.len(), all.len(), "{code}");
        }
    }

    #[test]
    fn the_free_nearest_caregiver_comes_first() {
        let c = |eligible, d: Option<f64>, visits| Candidate {
            eligible,
            distance_m: d,
            visits,
        };
        let mut v = vec![
            c(false, Some(10.0), 0),
            c(true, None, 0),
            c(true, Some(900.0), 1),
            c(true, Some(300.0), 5),
            c(true, None, 2),
        ];
        v.sort_by(suggest);
        assert_eq!(
            v,
            vec![
                c(true, Some(300.0), 5),
                c(true, Some(900.0), 1),
                c(true, None, 0),
                c(true, None, 2),
                c(false, Some(10.0), 0),
            ]
        );
    }

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

    fn visit<'a>(cg: &'a str, elder: &'a str, day: &'a str, at: i64, len: i64) -> Visit<'a> {
        Visit {
            caregiver: Some(cg),
            elder,
            service: "cleaning",
            day,
            check_in: at,
            check_out: at + len,
            far_m: Some(20.0),
            after_death: false,
            in_hospital: false,
            self_confirmed: false,
            per_day: 1,
        }
    }

    #[test]
    fn checks_find_each_kind_and_leave_clean_visits_alone() {
        let mut v = vec![
            visit("a", "e1", "2026-11-02", 1000, 60),
            visit("a", "e2", "2026-11-02", 1030, 60), // overlaps the first
            visit("a", "e3", "2026-11-02", 1090, 60), // touches the second's end: fine
            visit("b", "e1", "2026-11-02", 2000, 60), // e1's second cleaning that day
            visit("b", "e4", "2026-11-03", 3000, 20), // too short
            visit("b", "e5", "2026-11-04", 4000, 60),
            visit("b", "e6", "2026-11-05", 5000, 60),
            visit("b", "e7", "2026-11-06", 6000, 60),
            visit("b", "e8", "2026-11-07", 7000, 60),
        ];
        v[5].far_m = Some(812.4);
        v[6].after_death = true;
        v[7].in_hospital = true;
        v[8].self_confirmed = true;
        let f = check(&v);
        let kinds: Vec<(usize, &str)> = {
            let mut k: Vec<_> = f.iter().map(|f| (f.index, f.kind)).collect();
            k.sort();
            k
        };
        assert_eq!(
            kinds,
            vec![
                (0, "overlap"),
                (1, "overlap"),
                (3, "duplicate"),
                (4, "too_short"),
                (5, "far_check_in"),
                (6, "after_death"),
                (7, "in_hospital"),
                (8, "self_confirmed"),
            ]
        );
        assert!(f.iter().any(|f| f.reason.contains("812 米")));
        assert!(f.iter().all(|f| !anomaly_zh(f.kind).is_empty()));
        // Meals: two a day are allowed, the third is not.
        let mut m: Vec<Visit> = (0..3)
            .map(|i| visit("x", "e9", "2026-11-09", 100 * i, 0))
            .collect();
        for x in &mut m {
            x.caregiver = None;
            x.service = "meal";
            x.per_day = 2;
        }
        let f = check(&m);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].index, f[0].kind), (2, "duplicate"));
    }

    #[test]
    fn a_split_adds_up_and_distance_is_in_metres() {
        for amount in [0, 1, 99, 3000, 12_345] {
            let s = split(amount, [0, 20, 60, 20]);
            assert_eq!(s.iter().sum::<i64>(), amount);
        }
        assert_eq!(split(3000, [0, 20, 60, 20]), [0, 600, 1800, 600]);
        assert_eq!(split(1001, [10, 30, 30, 30]), [100, 300, 300, 301]);
        // 0.01° of latitude ≈ 1,112 m
        let d = distance_m(120.57, 32.39, 120.57, 32.40);
        assert!((d - 1112.0).abs() < 5.0, "{d}");
    }
}

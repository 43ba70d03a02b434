//! Care visits (探访关爱): who must be visited how often, the period a visit counts for, when a
//! duty is due or overdue, and the monthly visit rate (月探访率 = visited ÷ with a duty).
//!
//! Duty rules are written in the catalogue's rule language ([`crate::eligibility`]); an elder whom
//! several rules cover is visited as often as the most frequent of them asks.

use chrono::{Datelike, Days, NaiveDate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Frequency {
    Weekly,
    Monthly,
}

impl Frequency {
    pub fn parse(s: &str) -> Option<Frequency> {
        match s.trim() {
            "weekly" | "每周" => Some(Frequency::Weekly),
            "monthly" | "每月" => Some(Frequency::Monthly),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Frequency::Weekly => "每周",
            Frequency::Monthly => "每月",
        }
    }
}

/// The plans' duties (南通: 80+ in hardship or of family-planning special families living alone
/// at least weekly; 宿迁, 如皋: every special-difficulty elder monthly), as the default rules.
pub const DEFAULT_RULES: &[(&str, Frequency, &str)] = &[
    (
        "特困、低保独居空巢老人和 80 岁以上独居老人每周探访",
        Frequency::Weekly,
        "状态 = 在册 且 ((经济状况 属于 [特困, 低保] 且 居住状况 属于 [独居, 空巢]) 或 (年龄 >= 80 且 居住状况 = 独居))",
    ),
    (
        "特困老人和计划生育特殊家庭老人每月探访",
        Frequency::Monthly,
        "状态 = 在册 且 (经济状况 = 特困 或 计生特殊家庭 属于 [失独, 伤残])",
    ),
];

/// How a visit was made.
pub const MODES: &[(&str, &str)] = &[("door", "上门"), ("phone", "电话"), ("video", "视频")];

pub fn mode_zh(code: &str) -> Option<&'static str> {
    MODES.iter().find(|m| m.0 == code).map(|m| m.1)
}

/// The short checklist a visitor ticks: what she found in order.
pub const FINDINGS: &[(&str, &str)] = &[
    ("health_ok", "身体状况稳定"),
    ("meals_ok", "饮食起居正常"),
    ("home_safe", "居住环境安全（水电气无隐患）"),
    ("meds_ok", "按时服药"),
    ("mood_ok", "精神状态良好"),
    ("contact_ok", "子女或亲属常联系"),
];

pub fn finding_zh(code: &str) -> Option<&'static str> {
    FINDINGS.iter().find(|m| m.0 == code).map(|m| m.1)
}

/// What a risk flag sets going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// Noted as a reassessment trigger of this kind (the assessment module's kinds).
    Reassess(&'static str),
    /// An event on the 12349 board, now.
    Emergency,
    /// A referral to home care for the officer to place.
    HomeCare,
    /// Recorded only.
    Note,
}

/// Risk flags a visitor can raise, and what each sets going.
pub const FLAGS: &[(&str, &str, FollowUp)] = &[
    (
        "condition_change",
        "身体或认知状况明显变化",
        FollowUp::Reassess("condition_change"),
    ),
    (
        "fell",
        "近期跌倒、走失或噎食",
        FollowUp::Reassess("risk_event"),
    ),
    ("danger", "现场发现紧急情况", FollowUp::Emergency),
    (
        "needs_care",
        "生活照料困难，需要上门服务",
        FollowUp::HomeCare,
    ),
    ("unsafe_home", "居住环境存在安全隐患", FollowUp::Note),
    ("lonely", "情绪低落、孤独", FollowUp::Note),
];

pub fn flag(code: &str) -> Option<(&'static str, FollowUp)> {
    FLAGS.iter().find(|f| f.0 == code).map(|f| (f.1, f.2))
}

/// The duty an elder holds under several rules: the most frequent one's (weekly before monthly),
/// with the index of the rule that asks for it (the first such, in the rules' order).
pub fn strictest(
    holding: impl IntoIterator<Item = (usize, Frequency)>,
) -> Option<(usize, Frequency)> {
    holding.into_iter().fold(
        None,
        |best: Option<(usize, Frequency)>, (i, f)| match best {
            Some((_, b)) if b <= f => best,
            _ => Some((i, f)),
        },
    )
}

/// The period a visit on `day` counts for: Monday to Sunday, or the calendar month.
pub fn period(f: Frequency, day: NaiveDate) -> (NaiveDate, NaiveDate) {
    match f {
        Frequency::Weekly => {
            let start = day - Days::new(day.weekday().num_days_from_monday() as u64);
            (start, start + Days::new(6))
        }
        Frequency::Monthly => {
            let start = day.with_day(1).expect("day 1");
            let next = start
                .checked_add_months(chrono::Months::new(1))
                .expect("next month");
            (start, next - Days::new(1))
        }
    }
}

/// Where a duty stands on `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Visited in this period.
    Done,
    /// Not yet visited in this period, which ends on `by`.
    Due { by: NaiveDate },
    /// The last whole period the duty ran ended without a visit (and this one has none yet).
    Overdue { missed: NaiveDate },
}

/// A duty held since `since` (the day it began), last visited on `last`.
pub fn standing(
    f: Frequency,
    since: NaiveDate,
    last: Option<NaiveDate>,
    today: NaiveDate,
) -> Standing {
    let (start, end) = period(f, today);
    if last.is_some_and(|l| l >= start && l <= today) {
        return Standing::Done;
    }
    let (prev_start, prev_end) = period(f, start - Days::new(1));
    let had_prev = since <= prev_start;
    let visited_prev = last.is_some_and(|l| l >= prev_start && l <= prev_end);
    if had_prev && !visited_prev {
        Standing::Overdue { missed: prev_end }
    } else {
        Standing::Due { by: end }
    }
}

/// 月探访率: the elders with a duty in the month who were visited in it, as a share (`None` when
/// no one had a duty).
pub fn visit_rate(visited: u64, with_duty: u64) -> Option<f64> {
    (with_duty > 0).then(|| visited.min(with_duty) as f64 / with_duty as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::Rule;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_default_rules_are_rules() {
        for (name, _, rule) in DEFAULT_RULES {
            assert!(
                Rule::parse(rule).is_ok(),
                "{name}: {:?}",
                Rule::parse(rule).err()
            );
        }
    }

    #[test]
    fn weeks_run_monday_to_sunday_and_months_to_their_last_day() {
        // 2026-12-07 is a Monday.
        assert_eq!(
            period(Frequency::Weekly, d("2026-12-07")),
            (d("2026-12-07"), d("2026-12-13"))
        );
        assert_eq!(
            period(Frequency::Weekly, d("2026-12-13")),
            (d("2026-12-07"), d("2026-12-13"))
        );
        assert_eq!(
            period(Frequency::Weekly, d("2026-12-06")),
            (d("2026-11-30"), d("2026-12-06"))
        );
        assert_eq!(
            period(Frequency::Monthly, d("2028-02-10")),
            (d("2028-02-01"), d("2028-02-29"))
        );
        assert_eq!(
            period(Frequency::Monthly, d("2026-12-31")),
            (d("2026-12-01"), d("2026-12-31"))
        );
    }

    #[test]
    fn a_duty_is_done_due_or_overdue_at_the_period_boundaries() {
        let w = Frequency::Weekly;
        let since = d("2026-11-01");
        // Visited on Sunday: done that week; on Monday the new week is due, not overdue.
        assert_eq!(
            standing(w, since, Some(d("2026-12-06")), d("2026-12-06")),
            Standing::Done
        );
        assert_eq!(
            standing(w, since, Some(d("2026-12-06")), d("2026-12-07")),
            Standing::Due {
                by: d("2026-12-13")
            }
        );
        // Last visited the week before last: the last week was missed.
        assert_eq!(
            standing(w, since, Some(d("2026-11-29")), d("2026-12-07")),
            Standing::Overdue {
                missed: d("2026-12-06")
            }
        );
        // A duty that began during last week is not overdue for it.
        assert_eq!(
            standing(w, d("2026-12-01"), None, d("2026-12-07")),
            Standing::Due {
                by: d("2026-12-13")
            }
        );
        assert_eq!(
            standing(w, d("2026-11-30"), None, d("2026-12-07")),
            Standing::Overdue {
                missed: d("2026-12-06")
            }
        );
        let m = Frequency::Monthly;
        assert_eq!(
            standing(m, since, Some(d("2026-12-01")), d("2026-12-31")),
            Standing::Done
        );
        assert_eq!(
            standing(m, since, Some(d("2026-11-30")), d("2026-12-01")),
            Standing::Due {
                by: d("2026-12-31")
            }
        );
        assert_eq!(
            standing(m, since, Some(d("2026-10-31")), d("2026-12-01")),
            Standing::Overdue {
                missed: d("2026-11-30")
            }
        );
    }

    #[test]
    fn the_rate_is_visited_over_those_with_a_duty() {
        assert_eq!(visit_rate(0, 0), None);
        assert_eq!(visit_rate(45, 50), Some(0.9));
        assert_eq!(visit_rate(60, 50), Some(1.0));
    }
    #[test]
    fn the_most_frequent_rule_wins() {
        use Frequency::*;
        assert_eq!(strictest([]), None);
        assert_eq!(strictest([(1, Monthly)]), Some((1, Monthly)));
        assert_eq!(strictest([(1, Monthly), (0, Weekly)]), Some((0, Weekly)));
        assert_eq!(strictest([(0, Weekly), (1, Weekly)]), Some((0, Weekly)));
    }

    #[test]
    fn every_flag_that_asks_for_a_reassessment_names_a_trigger_kind() {
        for (code, zh, f) in FLAGS {
            assert!(!zh.is_empty(), "{code}");
            if let FollowUp::Reassess(k) = f {
                assert!(["risk_event", "condition_change"].contains(k), "{code}");
            }
        }
        assert_eq!(mode_zh("door"), Some("上门"));
        assert_eq!(mode_zh("fax"), None);
    }
}

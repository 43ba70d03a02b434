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
}

//! Operating subsidies per occupied bed (床位运营补贴) and the checks every bed-month passes before
//! it is claimed: a resident's days in the month count from admission to discharge; days after
//! the date of death never count, even when the home has not recorded the discharge; the days of a
//! leave (请假) count while the leave is within the policy's limit and stop counting past it. The
//! month's amount is the resident's monthly amount for their ability level and the home's
//! ownership, in proportion to the days that count.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A region's subsidy amounts, in fen (分). Levels are the GB/T 42195 ability levels 0–4; a
/// resident with no valid assessment is paid as level 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyPolicy {
    /// Monthly operating subsidy per resident by ownership: `[能力完好, 轻度, 中度, 重度, 完全失能]`.
    pub operating_public: [i64; 5],
    pub operating_public_private: [i64; 5],
    pub operating_private: [i64; 5],
    /// Once per new bed, in the month it is accepted (验收), by ownership.
    pub construction_public: i64,
    pub construction_public_private: i64,
    pub construction_private: i64,
    /// Monthly operating subsidy per family care bed (家庭养老床位).
    pub family_bed_monthly: i64,
    /// Leave days a month beyond which a leave stops counting (default 30).
    pub max_leave_days: i64,
}

impl Default for SubsidyPolicy {
    /// The demo county's and a fresh install's amounts, shaped like the Jiangsu counties' (public
    /// homes are funded by the budget and claim nothing per bed).
    fn default() -> Self {
        Self {
            operating_public: [0; 5],
            operating_public_private: [5000, 8000, 15000, 20000, 25000],
            operating_private: [8000, 12000, 20000, 26000, 30000],
            construction_public: 0,
            construction_public_private: 0,
            construction_private: 1_000_000,
            family_bed_monthly: 15000,
            max_leave_days: 30,
        }
    }
}

impl SubsidyPolicy {
    /// What is wrong with the amounts, in Chinese, or `None`.
    pub fn problem(&self) -> Option<String> {
        let all = self
            .operating_public
            .iter()
            .chain(&self.operating_public_private)
            .chain(&self.operating_private)
            .chain([
                &self.construction_public,
                &self.construction_public_private,
                &self.construction_private,
                &self.family_bed_monthly,
            ]);
        for v in all {
            if !(0..=10_000_000).contains(v) {
                return Some("补贴金额应在 0 到 100000 元之间".into());
            }
        }
        if !(1..=366).contains(&self.max_leave_days) {
            return Some("请假天数上限应在 1 到 366 天之间".into());
        }
        None
    }

    pub fn operating(&self, ownership: &str, level: Option<i64>) -> i64 {
        let row = match ownership {
            "public" => &self.operating_public,
            "public_private" => &self.operating_public_private,
            _ => &self.operating_private,
        };
        row[level.unwrap_or(0).clamp(0, 4) as usize]
    }

    pub fn construction(&self, ownership: &str) -> i64 {
        match ownership {
            "public" => self.construction_public,
            "public_private" => self.construction_public_private,
            _ => self.construction_private,
        }
    }
}

/// One resident's stay in the month, as the records have it.
#[derive(Debug, Clone)]
pub struct Stay {
    pub admitted_on: NaiveDate,
    pub discharged_on: Option<NaiveDate>,
    pub death_date: Option<NaiveDate>,
    /// Leaves (from, until; open when still away), any that touch the month.
    pub leaves: Vec<(NaiveDate, Option<NaiveDate>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BedMonth {
    /// Days in residence in the month (admission to discharge, before death).
    pub days: i64,
    /// Of those, the days that count.
    pub paid_days: i64,
    pub amount: i64,
    /// Why days did not count, in Chinese (empty when every day counts).
    pub reasons: Vec<String>,
}

/// Check one stay over the month [first, end) — `end` is the day after the last day counted (the
/// month's end, or tomorrow for the current month) — and price it: `monthly` for a whole month,
/// in proportion for part of one (rounded to the fen).
pub fn bed_month(
    stay: &Stay,
    first: NaiveDate,
    end: NaiveDate,
    month_days: i64,
    monthly: i64,
    max_leave_days: i64,
) -> BedMonth {
    let mut reasons = vec![];
    let mut until = stay.discharged_on.unwrap_or(end).min(end);
    if let Some(death) = stay.death_date
        && death < until
    {
        until = death;
        reasons.push(format!("{} 去世，此后不计", zh_day(death)));
    }
    let from = stay.admitted_on.max(first);
    let days = (until - from).num_days().max(0);
    let mut excluded = 0;
    for &(lf, lu) in &stay.leaves {
        // The leave's days past the limit, inside both the month and the residence.
        let over_from = lf + chrono::Duration::days(max_leave_days);
        let lu = lu.unwrap_or(end);
        let (a, b) = (over_from.max(from), lu.min(until));
        let n = (b - a).num_days();
        if n > 0 {
            excluded += n;
            reasons.push(format!(
                "{} 起请假超过 {} 天，超出的 {} 天不计",
                zh_day(lf),
                max_leave_days,
                n
            ));
        }
    }
    let paid_days = (days - excluded).max(0);
    let amount = if month_days <= 0 {
        0
    } else {
        (monthly * paid_days * 2 + month_days) / (month_days * 2)
    };
    BedMonth {
        days,
        paid_days,
        amount,
        reasons,
    }
}

fn zh_day(d: NaiveDate) -> String {
    d.format("%Y年%-m月%-d日").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn nov(stay: Stay) -> BedMonth {
        bed_month(&stay, d("2026-11-01"), d("2026-12-01"), 30, 30000, 30)
    }
    fn stay(adm: &str) -> Stay {
        Stay {
            admitted_on: d(adm),
            discharged_on: None,
            death_date: None,
            leaves: vec![],
        }
    }

    #[test]
    fn a_whole_month_pays_the_monthly_amount() {
        let m = nov(stay("2025-03-01"));
        assert_eq!((m.days, m.paid_days, m.amount), (30, 30, 30000));
        assert!(m.reasons.is_empty());
    }

    #[test]
    fn part_of_a_month_pays_in_proportion() {
        let m = nov(stay("2026-11-21"));
        assert_eq!((m.paid_days, m.amount), (10, 10000));
        let mut s = stay("2025-01-01");
        s.discharged_on = Some(d("2026-11-04"));
        assert_eq!(nov(s).paid_days, 3);
    }

    #[test]
    fn nothing_is_paid_after_death_even_without_a_discharge() {
        let mut s = stay("2025-01-01");
        s.death_date = Some(d("2026-10-15"));
        let m = nov(s);
        assert_eq!((m.days, m.paid_days, m.amount), (0, 0, 0));
        assert!(m.reasons[0].contains("2026年10月15日 去世"));
        let mut s = stay("2025-01-01");
        s.death_date = Some(d("2026-11-11"));
        assert_eq!(nov(s).paid_days, 10);
    }

    #[test]
    fn a_leave_counts_up_to_the_limit_and_not_beyond() {
        // 20 days away inside the limit: all count.
        let mut s = stay("2025-01-01");
        s.leaves = vec![(d("2026-11-05"), Some(d("2026-11-25")))];
        assert_eq!(nov(s).paid_days, 30);
        // Away since 10-20, still away: the 30 days run to 11-19, so 11-19 … 11-30 (12 days) do not count.
        let mut s = stay("2025-01-01");
        s.leaves = vec![(d("2026-10-20"), None)];
        let m = nov(s);
        assert_eq!((m.paid_days, m.amount), (18, 18000));
        assert!(m.reasons[0].contains("超出的 12 天不计"), "{:?}", m.reasons);
        // Away the whole month since long ago: nothing.
        let mut s = stay("2025-01-01");
        s.leaves = vec![(d("2026-08-01"), None)];
        assert_eq!(nov(s).amount, 0);
        // Exactly at the limit: 30 days from 11-01 end 11-30 (exclusive): all count.
        let mut s = stay("2025-01-01");
        s.leaves = vec![(d("2026-11-01"), Some(d("2026-12-01")))];
        assert_eq!(nov(s).paid_days, 30);
    }

    #[test]
    fn amounts_follow_ownership_and_level() {
        let p = SubsidyPolicy::default();
        assert_eq!(p.operating("public", Some(4)), 0);
        assert_eq!(p.operating("private", None), p.operating_private[0]);
        assert_eq!(p.operating("private", Some(3)), 26000);
        assert!(p.problem().is_none());
        let bad = SubsidyPolicy {
            max_leave_days: 0,
            ..p
        };
        assert!(bad.problem().is_some());
    }
}

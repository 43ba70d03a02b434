//! The admission queue of public beds (入住轮候): who is offered the next bed. The policy is data —
//! an ordered list of tiers, each a rule of the catalogue's language ([`crate::eligibility`]) — so
//! a county publishes its own order ("明确老年人入住条件和排序规则") and every place in the queue
//! comes with its reasons in Chinese.
//!
//! Within a tier: an entitled veteran family (优抚对象) first, then the earlier application date,
//! then the earlier birth date, then the earlier application record. Age and ability level are
//! taken on the ranking date; an applicant without a valid assessment has no ability level, so a
//! condition on it fails.

use crate::codes;
use crate::eligibility::{Facts, Reason, Rule, RuleError};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// One tier of a policy: its name and the rule that puts an applicant in it (none: everyone left).
#[derive(Debug, Clone)]
pub struct QueueTier {
    pub label: String,
    pub rule: Option<Rule>,
}

#[derive(Debug, Clone)]
pub struct QueuePolicy {
    pub tiers: Vec<QueueTier>,
}

/// The default order (the demo county and a fresh install): (tier name, rule; empty for "all").
pub const DEFAULT_TIERS: &[(&str, &str)] = &[
    ("特困供养人员", "经济状况 = 特困"),
    (
        "低保或低保边缘，且中度失能及以上或年满 80 周岁",
        "经济状况 属于 [低保, 低保边缘] 且 (能力等级 >= 中度失能 或 年龄 >= 80)",
    ),
    (
        "计划生育特殊家庭（失独、伤残），或重度失能及以上",
        "计生特殊家庭 属于 [失独, 伤残] 或 能力等级 >= 重度失能",
    ),
    ("其他符合入住条件的申请人", ""),
];

/// A tier as a county writes it: its name and its rule (empty for everyone not placed before).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TierSource {
    pub label: String,
    #[serde(default)]
    pub rule: String,
}

impl QueuePolicy {
    /// A policy from its tiers; a tier whose rule does not check is refused with its number.
    pub fn parse(tiers: &[TierSource]) -> Result<QueuePolicy, String> {
        if tiers.is_empty() || tiers.len() > 20 {
            return Err("轮候规则应有 1 到 20 个档次".into());
        }
        let mut out = Vec::with_capacity(tiers.len());
        for (i, t) in tiers.iter().enumerate() {
            let label = t.label.trim();
            if label.is_empty() || label.chars().count() > 60 {
                return Err(format!("第 {} 档：请填写档次名称（最多 60 个字）", i + 1));
            }
            let rule = if t.rule.trim().is_empty() {
                None
            } else {
                Some(
                    Rule::parse(&t.rule)
                        .map_err(|e: RuleError| format!("第 {} 档的条件{}", i + 1, e))?,
                )
            };
            out.push(QueueTier {
                label: label.to_string(),
                rule,
            });
        }
        if out.last().is_some_and(|t| t.rule.is_some()) {
            // Nobody eligible is left out of the queue: a last tier takes everyone else.
            out.push(QueueTier {
                label: "其他符合入住条件的申请人".into(),
                rule: None,
            });
        }
        Ok(QueuePolicy { tiers: out })
    }

    pub fn default_policy() -> QueuePolicy {
        let src: Vec<TierSource> = DEFAULT_TIERS
            .iter()
            .map(|(l, r)| TierSource {
                label: l.to_string(),
                rule: r.to_string(),
            })
            .collect();
        QueuePolicy::parse(&src).expect("the default policy checks")
    }
}

/// What the queue needs to know of an applicant, codes as the registry stores them.
#[derive(Debug, Clone)]
pub struct Applicant {
    pub reference: String,
    pub birth_date: NaiveDate,
    pub economic_status: Option<String>,
    /// 0–4 from a valid assessment; None without one.
    pub ability_level: Option<i64>,
    pub living_status: Option<String>,
    pub family_planning_special: Option<String>,
    pub entitled_veteran_family: bool,
    pub applied_at: NaiveDateTime,
    /// The application record's order (earlier record first at the very end).
    pub seq: i64,
}

/// An applicant's place: 1-based position and tier, the tier's name, the reasons.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Placed {
    #[serde(rename = "ref")]
    pub reference: String,
    pub position: usize,
    pub tier: usize,
    pub tier_label: String,
    pub reasons: Vec<String>,
}

/// The tier of one applicant (0-based) and why.
pub fn tier_of(policy: &QueuePolicy, a: &Applicant, on: NaiveDate) -> (usize, Vec<Reason>) {
    let lists: [String; 0] = [];
    let f = Facts {
        birth_date: a.birth_date,
        sex: None,
        residence_region: "",
        hukou_region: None,
        status: "active",
        living_status: a.living_status.as_deref(),
        economic_status: a.economic_status.as_deref(),
        family_planning_special: a.family_planning_special.as_deref(),
        disability_grade: None,
        entitled_veteran_family: Some(a.entitled_veteran_family),
        ability_level: a.ability_level,
        death_date: None,
        lists: &lists,
    };
    let mut missed = vec![];
    for (i, t) in policy.tiers.iter().enumerate() {
        match &t.rule {
            None => return (i, missed),
            Some(r) => {
                let (ok, reasons) = r.explain(&f, on, &|c: &str| c.to_string());
                if ok {
                    return (i, reasons);
                }
                // Only the last tier's misses are kept: they say why not higher.
                missed = reasons.into_iter().filter(|r| !r.ok).collect();
            }
        }
    }
    (policy.tiers.len(), missed)
}

/// The queue in order, with each applicant's tier and reasons.
pub fn rank(policy: &QueuePolicy, applicants: &[Applicant], on: NaiveDate) -> Vec<Placed> {
    let mut rows: Vec<(usize, Vec<Reason>, &Applicant)> = applicants
        .iter()
        .map(|a| {
            let (t, r) = tier_of(policy, a, on);
            (t, r, a)
        })
        .collect();
    rows.sort_by(|x, y| {
        x.0.cmp(&y.0)
            .then_with(|| {
                y.2.entitled_veteran_family
                    .cmp(&x.2.entitled_veteran_family)
            })
            .then_with(|| x.2.applied_at.cmp(&y.2.applied_at))
            .then_with(|| x.2.birth_date.cmp(&y.2.birth_date))
            .then_with(|| x.2.seq.cmp(&y.2.seq))
            .then(Ordering::Equal)
    });
    rows.into_iter()
        .enumerate()
        .map(|(i, (t, reasons, a))| {
            let label = policy
                .tiers
                .get(t)
                .map_or("不在任何档次", |x| x.label.as_str());
            let mut words = vec![format!("第{}档：{label}", cn_number(t + 1))];
            words.extend(
                reasons
                    .into_iter()
                    .filter(|r| r.ok || t + 1 == policy.tiers.len())
                    .map(|r| r.text),
            );
            if a.entitled_veteran_family {
                words.push("优抚对象，同档优先".into());
            }
            // A date alone reads as one; a time only where one was given.
            words.push(if a.applied_at.time() == chrono::NaiveTime::MIN {
                format!("申请日期 {}", a.applied_at.format("%Y-%m-%d"))
            } else {
                format!("申请时间 {}", a.applied_at.format("%Y-%m-%d %H:%M"))
            });
            Placed {
                reference: a.reference.clone(),
                position: i + 1,
                tier: t + 1,
                tier_label: label.to_string(),
                reasons: words,
            }
        })
        .collect()
}

fn cn_number(n: usize) -> String {
    const D: [&str; 11] = [
        "零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
    ];
    match n {
        0..=10 => D[n].to_string(),
        11..=19 => format!("十{}", D[n - 10]),
        _ => n.to_string(),
    }
}

/// An applicant as a file or a form gives it: codes or their Chinese labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicantInput {
    #[serde(rename = "ref")]
    pub reference: serde_json::Value,
    pub birth_date: String,
    pub economic_status: Option<String>,
    pub ability_level: Option<serde_json::Value>,
    pub living_status: Option<String>,
    pub family_planning_special: Option<String>,
    pub entitled_veteran_family: Option<serde_json::Value>,
    pub applied_at: String,
}

fn code(
    table: &[(&'static str, &'static str)],
    v: Option<&str>,
    what: &str,
) -> Result<Option<String>, String> {
    let Some(v) = v.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    table
        .iter()
        .find(|(c, z)| *c == v || *z == v)
        .map(|(c, _)| Some(c.to_string()))
        .ok_or_else(|| {
            format!(
                "{what}“{v}”不是可选值（{}）",
                table.iter().map(|t| t.1).collect::<Vec<_>>().join("、")
            )
        })
}

impl ApplicantInput {
    /// Checked, with the record order `seq`; errors name the field in Chinese.
    pub fn check(self, seq: i64) -> Result<Applicant, String> {
        let reference = match &self.reference {
            serde_json::Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err("ref 应为非空的编号".into()),
        };
        let birth_date = NaiveDate::parse_from_str(self.birth_date.trim(), "%Y-%m-%d")
            .map_err(|_| format!("出生日期“{}”应为 YYYY-MM-DD", self.birth_date))?;
        let t = self.applied_at.trim();
        let applied_at = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S"))
            .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M"))
            .or_else(|_| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| (d.to_utc() + chrono::Duration::hours(8)).naive_utc())
            })
            .or_else(|_| {
                NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
            })
            .map_err(|_| format!("申请时间“{t}”应为 YYYY-MM-DD 或 YYYY-MM-DD HH:MM"))?;
        let ability_level = match &self.ability_level {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(l @ 0..=4) => Some(l),
                _ => return Err(format!("能力等级 {n} 应为 0 到 4")),
            },
            Some(serde_json::Value::String(s)) if s.trim().is_empty() || s.trim() == "未评估" => {
                None
            }
            Some(serde_json::Value::String(s)) => Some(
                crate::assessment::LEVEL_NAMES
                    .iter()
                    .position(|n| *n == s.trim())
                    .map(|i| i as i64)
                    .or_else(|| s.trim().parse::<i64>().ok().filter(|l| (0..=4).contains(l)))
                    .ok_or_else(|| format!("能力等级“{s}”应为 0–4 或 能力完好…完全失能"))?,
            ),
            Some(v) => return Err(format!("能力等级 {v} 应为 0–4 或其中文名称")),
        };
        let entitled_veteran_family = match &self.entitled_veteran_family {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => match s.trim() {
                "是" | "true" | "1" => true,
                "否" | "false" | "0" | "" => false,
                _ => return Err(format!("优抚对象“{s}”应为 是 或 否")),
            },
            Some(v) => return Err(format!("优抚对象 {v} 应为 true/false（是/否）")),
        };
        Ok(Applicant {
            reference,
            birth_date,
            economic_status: code(
                codes::ECONOMIC_STATUS,
                self.economic_status.as_deref(),
                "经济状况",
            )?,
            ability_level,
            living_status: code(
                codes::LIVING_STATUS,
                self.living_status.as_deref(),
                "居住状况",
            )?,
            family_planning_special: code(
                codes::FAMILY_PLANNING,
                self.family_planning_special.as_deref(),
                "计生特殊家庭",
            )?,
            entitled_veteran_family,
            applied_at,
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    const ON: &str = "2026-12-01";

    fn app(
        r: &str,
        birth: &str,
        econ: Option<&str>,
        level: Option<i64>,
        fps: Option<&str>,
        vet: bool,
        applied: &str,
    ) -> Applicant {
        Applicant {
            reference: r.into(),
            birth_date: d(birth),
            economic_status: econ.map(Into::into),
            ability_level: level,
            living_status: None,
            family_planning_special: fps.map(Into::into),
            entitled_veteran_family: vet,
            applied_at: d(applied).and_hms_opt(9, 0, 0).unwrap(),
            seq: 0,
        }
    }

    fn tier(a: &Applicant) -> usize {
        tier_of(&QueuePolicy::default_policy(), a, d(ON)).0 + 1
    }

    #[test]
    fn the_default_tiers_at_their_boundaries() {
        // 特困 is tier 1 whatever else.
        assert_eq!(
            tier(&app(
                "a",
                "1960-01-01",
                Some("extreme_poverty"),
                None,
                None,
                false,
                "2026-01-01"
            )),
            1
        );
        // 低保 and 中度失能 (level 2): tier 2; 轻度失能 (1) and 79: not tier 2.
        assert_eq!(
            tier(&app(
                "b",
                "1960-01-01",
                Some("minimum_living"),
                Some(2),
                None,
                false,
                "2026-01-01"
            )),
            2
        );
        assert_eq!(
            tier(&app(
                "c",
                "1947-12-02",
                Some("minimum_living"),
                Some(1),
                None,
                false,
                "2026-01-01"
            )),
            4,
            "79 the day before the birthday"
        );
        // Turning 80 on the ranking date counts.
        assert_eq!(
            tier(&app(
                "d",
                "1946-12-01",
                Some("near_minimum_living"),
                Some(1),
                None,
                false,
                "2026-01-01"
            )),
            2
        );
        // 低保 without an assessment and under 80: the ability condition fails, tier 4.
        assert_eq!(
            tier(&app(
                "e",
                "1950-01-01",
                Some("minimum_living"),
                None,
                None,
                false,
                "2026-01-01"
            )),
            4
        );
        // 一般 and 中度失能 is not tier 2 (needs 低保) nor 3 (needs 重度): tier 4.
        assert_eq!(
            tier(&app(
                "f",
                "1950-01-01",
                Some("ordinary"),
                Some(2),
                None,
                false,
                "2026-01-01"
            )),
            4
        );
        // 重度失能 (3): tier 3; 失独: tier 3; 低保 and 重度: tier 2 (the earlier tier wins).
        assert_eq!(
            tier(&app(
                "g",
                "1950-01-01",
                Some("ordinary"),
                Some(3),
                None,
                false,
                "2026-01-01"
            )),
            3
        );
        assert_eq!(
            tier(&app(
                "h",
                "1950-01-01",
                None,
                None,
                Some("lost_only_child"),
                false,
                "2026-01-01"
            )),
            3
        );
        assert_eq!(
            tier(&app(
                "i",
                "1950-01-01",
                Some("minimum_living"),
                Some(3),
                None,
                false,
                "2026-01-01"
            )),
            2
        );
        // Nothing known: tier 4.
        assert_eq!(
            tier(&app(
                "j",
                "1950-01-01",
                None,
                None,
                None,
                false,
                "2026-01-01"
            )),
            4
        );
        assert_eq!(
            tier(&app(
                "k",
                "1950-01-01",
                None,
                None,
                Some("none"),
                false,
                "2026-01-01"
            )),
            4
        );
    }

    #[test]
    fn within_a_tier_veterans_then_application_then_birth_then_record() {
        let mut xs = vec![
            app(
                "late",
                "1940-01-01",
                Some("extreme_poverty"),
                None,
                None,
                false,
                "2026-03-01",
            ),
            app(
                "early",
                "1945-01-01",
                Some("extreme_poverty"),
                None,
                None,
                false,
                "2026-02-01",
            ),
            app(
                "vet",
                "1950-01-01",
                Some("extreme_poverty"),
                None,
                None,
                true,
                "2026-06-01",
            ),
            app(
                "older",
                "1939-01-01",
                Some("extreme_poverty"),
                None,
                None,
                false,
                "2026-03-01",
            ),
            app("t4", "1930-01-01", None, None, None, true, "2020-01-01"),
            app(
                "same1",
                "1939-01-01",
                Some("extreme_poverty"),
                None,
                None,
                false,
                "2026-03-01",
            ),
        ];
        for (i, x) in xs.iter_mut().enumerate() {
            x.seq = i as i64;
        }
        let order = rank(&QueuePolicy::default_policy(), &xs, d(ON));
        let refs: Vec<&str> = order.iter().map(|p| p.reference.as_str()).collect();
        assert_eq!(refs, ["vet", "early", "older", "same1", "late", "t4"]);
        assert_eq!(order[0].position, 1);
        assert_eq!(order[5].tier, 4);
        assert!(
            order[0].reasons.iter().any(|r| r.contains("优抚对象")),
            "{:?}",
            order[0].reasons
        );
        assert!(
            order[1].reasons[0].starts_with("第一档"),
            "{:?}",
            order[1].reasons
        );
        assert!(
            order[1].reasons.iter().any(|r| r.contains("特困")),
            "{:?}",
            order[1].reasons
        );
    }

    #[test]
    fn inputs_take_codes_or_chinese_and_refuse_the_rest_by_name() {
        let ok: ApplicantInput = serde_json::from_str(
            r#"{"ref": 7, "birth_date": "1941-05-06", "economic_status": "低保", "ability_level": "中度失能",
                "living_status": "独居", "family_planning_special": "无", "entitled_veteran_family": "是",
                "applied_at": "2026-03-01 10:30"}"#,
        )
        .unwrap();
        let a = ok.check(0).unwrap();
        assert_eq!(a.reference, "7");
        assert_eq!(a.economic_status.as_deref(), Some("minimum_living"));
        assert_eq!(a.ability_level, Some(2));
        assert!(a.entitled_veteran_family);
        let bad: ApplicantInput = serde_json::from_str(
            r#"{"ref": "x", "birth_date": "1941-05-06", "economic_status": "富裕", "applied_at": "2026-03-01"}"#,
        )
        .unwrap();
        assert!(bad.check(0).unwrap_err().contains("经济状况“富裕”"));
        let bad: ApplicantInput = serde_json::from_str(
            r#"{"ref": "x", "birth_date": "1941-05-06", "ability_level": 7, "applied_at": "2026-03-01"}"#,
        )
        .unwrap();
        assert!(bad.check(0).unwrap_err().contains("能力等级"));
    }

    #[test]
    fn a_policy_without_a_catch_all_gets_one_and_a_bad_rule_is_named() {
        let p = QueuePolicy::parse(&[TierSource {
            label: "高龄".into(),
            rule: "年龄 >= 90".into(),
        }])
        .unwrap();
        assert_eq!(p.tiers.len(), 2);
        let e = QueuePolicy::parse(&[
            TierSource {
                label: "一".into(),
                rule: "年龄 >= 90".into(),
            },
            TierSource {
                label: "二".into(),
                rule: "年龄 >=".into(),
            },
        ])
        .unwrap_err();
        assert!(e.starts_with("第 2 档"), "{e}");
    }
}

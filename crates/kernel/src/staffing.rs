//! Staffing of a care home checked against its residents: caregivers at least 1 to 4 residents who
//! cannot look after themselves (中度失能 and worse) and 1 to 10 of the others, at least one social
//! worker per 100 beds (part of a hundred counts as a hundred), and certificates that run out soon.

use serde::Serialize;

/// Residents per caregiver: those who cannot look after themselves, and the others.
pub const DEPENDENT_PER_CAREGIVER: i64 = 4;
pub const OTHERS_PER_CAREGIVER: i64 = 10;
pub const BEDS_PER_SOCIAL_WORKER: i64 = 100;
/// Certificates running out within this many days are flagged.
pub const EXPIRY_WARNING_DAYS: i64 = 60;
/// The lowest ability level counted as "cannot look after themselves" (中度失能).
pub const DEPENDENT_LEVEL: i64 = 2;

#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub dependent_residents: i64,
    pub other_residents: i64,
    pub beds: i64,
    pub caregivers: i64,
    pub social_workers: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub ok: bool,
    pub text: String,
}

/// Caregivers needed: each group rounded up on its own, as the ratios are written.
pub fn caregivers_needed(c: &Counts) -> i64 {
    div_up(c.dependent_residents, DEPENDENT_PER_CAREGIVER)
        + div_up(c.other_residents, OTHERS_PER_CAREGIVER)
}

pub fn social_workers_needed(c: &Counts) -> i64 {
    div_up(c.beds, BEDS_PER_SOCIAL_WORKER)
}

fn div_up(a: i64, b: i64) -> i64 {
    if a <= 0 { 0 } else { (a + b - 1) / b }
}

/// The checks in plain Chinese.
pub fn check(c: &Counts) -> Vec<Check> {
    let need = caregivers_needed(c);
    let sw = social_workers_needed(c);
    vec![
        Check {
            ok: c.caregivers >= need,
            text: format!(
                "养老护理员 {} 人，按不能自理 {} 人（1:{}）、其他 {} 人（1:{}）应至少 {} 人{}",
                c.caregivers,
                c.dependent_residents,
                DEPENDENT_PER_CAREGIVER,
                c.other_residents,
                OTHERS_PER_CAREGIVER,
                need,
                if c.caregivers >= need {
                    "，达标".to_string()
                } else {
                    format!("，缺 {} 人", need - c.caregivers)
                }
            ),
        },
        Check {
            ok: c.social_workers >= sw,
            text: format!(
                "社会工作者 {} 人，按床位 {} 张（每 {} 张 1 人）应至少 {} 人{}",
                c.social_workers,
                c.beds,
                BEDS_PER_SOCIAL_WORKER,
                sw,
                if c.social_workers >= sw {
                    "，达标".to_string()
                } else {
                    format!("，缺 {} 人", sw - c.social_workers)
                }
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_up_per_group() {
        let c = Counts {
            dependent_residents: 9,
            other_residents: 11,
            beds: 101,
            caregivers: 5,
            social_workers: 1,
        };
        assert_eq!(caregivers_needed(&c), 3 + 2);
        assert_eq!(social_workers_needed(&c), 2);
        let checks = check(&c);
        assert!(checks[0].ok, "{:?}", checks[0]);
        assert!(!checks[1].ok);
        assert!(checks[1].text.ends_with("缺 1 人"), "{}", checks[1].text);
        let none = Counts::default();
        assert_eq!(caregivers_needed(&none), 0);
        assert!(check(&none).iter().all(|c| c.ok));
        let c = Counts {
            dependent_residents: 4,
            other_residents: 0,
            beds: 100,
            caregivers: 0,
            social_workers: 1,
        };
        assert_eq!(caregivers_needed(&c), 1);
        assert!(!check(&c)[0].ok);
    }
}

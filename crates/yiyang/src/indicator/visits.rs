//! The rollups' measures of care visits (探访关爱): elders holding a visit duty on the period's
//! day and, of them, the ones visited within the period up to it, where they live — by the care
//! visit module's own rule (`care_visit::people_where`), which its page and the list behind the
//! figure read too.

use super::rollup::{Counts, NM, Which};
use crate::platform::db::Db;
use crate::platform::error::ApiResult;
use chrono::NaiveDate;
use std::collections::HashMap;
use yiyang_kernel::indicator::Period;
use yiyang_kernel::indicator::measure as m;

fn idx(name: &str) -> usize {
    m::ALL
        .iter()
        .position(|x| *x == name)
        .expect("a measure of measure::ALL")
}

/// The first day of a period.
pub(crate) fn start_of(p: &Period) -> NaiveDate {
    NaiveDate::from_ymd_opt(p.year, p.month.unwrap_or(1), 1).expect("a valid period")
}

pub(crate) async fn add(
    db: &Db,
    which: &Which<'_>,
    periods: &[Period],
    today: NaiveDate,
    out: &mut HashMap<String, Vec<Counts>>,
) -> ApiResult<()> {
    let (with, visited) = (
        idx(m::SPECIAL_DIFFICULTY),
        idx(m::SPECIAL_DIFFICULTY_VISITED),
    );
    let cond = which.filter("e.residence_region");
    for (k, p) in periods.iter().enumerate() {
        let Some(day) = p.snapshot_day(today) else {
            continue;
        };
        for x in crate::care_visit::people_where(db, &cond, start_of(p), day).await? {
            let v = out
                .entry(x.leaf)
                .or_insert_with(|| vec![[0; NM]; periods.len()]);
            v[k][with] += 1;
            v[k][visited] += x.visited as i64;
        }
    }
    Ok(())
}

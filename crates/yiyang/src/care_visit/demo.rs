//! The demo county's care visits: the duties the default rules give, held since the start of the
//! month three months back, and the visits of those months — most duties met in most periods, a
//! few missed (so the overdue list and a month below target show), mostly at the door, a handful
//! of risk flags and open referrals.

use crate::platform::db::Db;
use chrono::{Datelike, Days, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;
use yiyang_kernel::care_visit::{self as rule, Frequency};

/// Returns (duties, visits).
pub async fn seed(
    db: &Db,
    regions: &crate::region::RegionIndex,
    today: NaiveDate,
) -> anyhow::Result<(usize, usize)> {
    let r = super::duty::refresh(db, today)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    let start = today
        .with_day(1)
        .and_then(|d| d.checked_sub_months(chrono::Months::new(3)))
        .unwrap_or(today);
    sqlx::query("UPDATE visit_duty SET since = $1 WHERE ended_on IS NULL")
        .bind(start.to_string())
        .execute(&mut *db.writer().await?)
        .await?;
    let duties: Vec<(String, String, String)> = sqlx::query(
        "SELECT d.elder_id, d.frequency, e.residence_region FROM visit_duty d JOIN elder e ON e.id = d.elder_id \
         WHERE d.ended_on IS NULL ORDER BY d.elder_id",
    )
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    let mut rng = StdRng::seed_from_u64(20261207);
    let now = crate::platform::now_rfc3339();
    let mut rows: Vec<[String; 9]> = vec![];
    // The first elder of each village (by id) is not yet visited this month: a month under way
    // has someone left to visit in every village.
    let month_start = today.with_day(1).unwrap_or(today);
    let mut per_village: std::collections::HashMap<&str, usize> = Default::default();
    for (_, _, region) in &duties {
        *per_village.entry(region.as_str()).or_default() += 1;
    }
    let mut seen = std::collections::HashSet::new();
    for (elder, freq, region) in &duties {
        // (Villages of one or two duties, in a small demo, keep theirs.)
        let first_of_village = seen.insert(region.clone()) && per_village[region.as_str()] >= 3;
        let f = Frequency::parse(freq).unwrap_or(Frequency::Monthly);
        // Some villages keep up better than others.
        let village_skill =
            0.80 + (region.bytes().map(|b| b as u32).sum::<u32>() % 18) as f64 / 100.0;
        let mut day = start;
        while day <= today {
            let (p0, p1) = rule::period(f, day);
            let last = p1.min(today - Days::new(1));
            let current = p1 >= today;
            let chance = if current { 0.45 } else { village_skill };
            let last = if first_of_village {
                last.min(month_start - Days::new(1))
            } else {
                last
            };
            if last >= p0 && rng.gen_bool(chance) {
                let span = (last - p0).num_days().max(0) as u64;
                let on = p0 + Days::new(rng.gen_range(0..=span));
                let mode = match rng.gen_range(0..100) {
                    0..70 => "door",
                    70..95 => "phone",
                    _ => "video",
                };
                let mut flags: Vec<&str> = vec![];
                let mut findings: Vec<&str> = rule::FINDINGS.iter().map(|f| f.0).collect();
                match rng.gen_range(0..200) {
                    0 => {
                        flags.push("lonely");
                        findings.retain(|f| *f != "mood_ok");
                    }
                    1 => {
                        flags.push("unsafe_home");
                        findings.retain(|f| *f != "home_safe");
                    }
                    2 => flags.push("needs_care"),
                    _ => {}
                }
                let at = on
                    .and_hms_opt(rng.gen_range(1..9), rng.gen_range(0..60), 0)
                    .unwrap_or_default();
                let village = regions.name(region).unwrap_or("村").to_string();
                rows.push([
                    uuid::Uuid::now_v7().to_string(),
                    elder.clone(),
                    region.clone(),
                    on.to_string(),
                    format!("{}Z", at.format("%Y-%m-%dT%H:%M:%S")),
                    mode.into(),
                    serde_json::to_string(&findings).unwrap_or_default(),
                    serde_json::to_string(&flags).unwrap_or_default(),
                    format!("{village}网格员"),
                ]);
            }
            day = p1 + Days::new(1);
        }
    }
    for chunk in rows.chunks(200) {
        let mut sql = String::from(
            "INSERT INTO care_visit (id, elder_id, region_code, visited_on, visited_at, mode, findings, flags, visitor_name, \
             recorded_at, referral) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 11;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10,
                b + 11
            ));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            let referral = r[7].contains("needs_care").then_some("open");
            for c in r {
                q = q.bind(c.clone());
            }
            q = q.bind(now.clone()).bind(referral);
        }
        let mut tx = db.begin().await?;
        q.execute(&mut *tx).await?;
        tx.commit().await?;
    }
    Ok((r.held, rows.len()))
}

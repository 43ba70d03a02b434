//! The demo county's facilities, shaped like 如皋's: a 敬老院 in every town (three of them rebuilt
//! into regional centres), private and publicly-built homes in the city and the larger towns, day
//! centres, stations, meal points and home-care providers — about 60, with some 16,000 beds at
//! full scale, about 70 % occupied by elders of the registry, their staff with skill levels and
//! certificates (a few running out, a few homes short of caregivers), and some residents on leave.

use crate::audit::Who;
use crate::org::staff::DemoStaff;
use crate::platform::db::{Db, Tx};
use crate::registry::store::placeholders;
use chrono::{Datelike, Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{AssertSqlSafe, Row};

/// A value of a demo row.
pub(crate) enum V {
    T(String),
    I(i64),
    F(f64),
    /// NULL float
    NF,
    /// NULL text
    N,
    /// NULL number (PostgreSQL refuses a text NULL for a BIGINT column)
    NI,
}

pub(crate) async fn insert(
    tx: &mut Tx<'_>,
    table: &str,
    cols: &str,
    rows: Vec<Vec<V>>,
) -> anyhow::Result<()> {
    let ncols = cols.split(',').count();
    let backend = tx.backend();
    let per = (30_000 / ncols).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let part: Vec<Vec<V>> = rows.by_ref().take(per).collect();
        let sql = format!(
            "INSERT INTO {table} ({cols}) VALUES {}",
            placeholders(backend, part.len(), ncols)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for r in part {
            for v in r {
                q = match v {
                    V::T(s) => q.bind(s),
                    V::I(i) => q.bind(i),
                    V::N => q.bind(None::<String>),
                    V::NI => q.bind(None::<i64>),
                    V::F(x) => q.bind(x),
                    V::NF => crate::platform::db::opt_f64(q, None),
                };
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

struct Facility {
    kind: &'static str,
    name: String,
    ownership: &'static str,
    operator: Option<String>,
    region: String,
    beds: i64,
    grade: Option<i64>,
}

/// Towns (镇) of the demo county, and its one street (如城街道).
const TOWNS: &[(&str, &str)] = &[
    ("320682103000", "东陈镇"),
    ("320682104000", "丁堰镇"),
    ("320682105000", "白蒲镇"),
    ("320682107000", "下原镇"),
    ("320682108000", "九华镇"),
    ("320682110000", "石庄镇"),
    ("320682111000", "长江镇"),
    ("320682112000", "吴窑镇"),
    ("320682113000", "江安镇"),
    ("320682116000", "搬经镇"),
    ("320682117000", "磨头镇"),
];
const CITY: &str = "320682001000";
const ROADS: &[&str] = &[
    "人民", "建设", "解放", "健康", "长寿", "花园", "新民", "文峰", "益寿", "中山",
];
const PRIVATE_NAMES: &[&str] = &[
    "福寿园",
    "康乐",
    "颐和",
    "松鹤",
    "夕阳红",
    "寿康",
    "仁爱",
    "安康",
    "乐龄",
    "长寿",
    "金色年华",
    "明珠",
    "怡养",
    "福星",
    "慈孝",
    "和谐",
    "春晖",
    "百岁",
    "祥和",
    "瑞康",
    "同心",
    "幸福里",
    "龙游湖",
    "水绘园",
    "花木",
    "长青",
    "益寿",
    "惠民",
    "福缘",
    "恒康",
];

fn facilities(rng: &mut StdRng, scale: f64) -> Vec<Facility> {
    let beds = |rng: &mut StdRng, lo: i64, hi: i64| -> i64 {
        ((rng.gen_range(lo..=hi) as f64) * scale).round().max(4.0) as i64
    };
    let mut v = vec![];
    for (i, (code, town)) in TOWNS.iter().enumerate() {
        // Three township homes rebuilt into regional centres with nursing units.
        if i % 4 == 1 {
            v.push(Facility {
                kind: "regional_center",
                name: format!("{town}区域性养老服务中心"),
                ownership: "public_private",
                operator: Some(format!("如皋市{}养老服务有限公司", &town[..town.len() - 3])),
                region: code.to_string(),
                beds: beds(rng, 300, 420),
                grade: Some(3),
            });
        } else {
            v.push(Facility {
                kind: "township_home",
                name: format!("{town}中心敬老院"),
                ownership: "public",
                operator: None,
                region: code.to_string(),
                beds: beds(rng, 100, 180),
                grade: [None, Some(1), Some(2)][i % 3],
            });
        }
        v.push(Facility {
            kind: "day_care",
            name: format!("{town}日间照料中心"),
            ownership: "public",
            operator: None,
            region: code.to_string(),
            beds: 0,
            grade: None,
        });
    }
    for (i, n) in PRIVATE_NAMES.iter().enumerate() {
        let (region, town) = if i < 14 {
            (CITY, "如皋市")
        } else {
            let t = TOWNS[i % TOWNS.len()];
            (t.0, t.1)
        };
        let public_built = i % 7 == 3;
        v.push(Facility {
            kind: if i % 10 == 9 {
                "comprehensive_center"
            } else {
                "institution"
            },
            name: format!("{town}{n}养老院"),
            ownership: if public_built {
                "public_private"
            } else {
                "private"
            },
            operator: Some(format!("如皋市{n}养老服务有限公司")),
            region: region.to_string(),
            beds: beds(rng, 250, 700),
            grade: [Some(2), Some(3), None, Some(4), Some(2), Some(5), Some(1)][i % 7],
        });
    }
    for (i, n) in [
        "迎新",
        "百花",
        "丰乐",
        "安定",
        "海阳",
        "大司马",
        "惠政",
        "红星",
    ]
    .iter()
    .enumerate()
    {
        v.push(Facility {
            kind: if i < 5 { "station" } else { "meal_point" },
            name: format!(
                "如城街道{n}社区{}",
                if i < 5 {
                    "居家养老服务站"
                } else {
                    "助餐点"
                }
            ),
            ownership: if i % 2 == 0 {
                "public"
            } else {
                "public_private"
            },
            operator: None,
            region: CITY.to_string(),
            beds: 0,
            grade: None,
        });
    }
    for n in [
        "颐康居家养老服务有限公司",
        "孝之家居家养老服务中心",
        "安心护理服务有限公司",
    ] {
        v.push(Facility {
            kind: "provider",
            name: format!("如皋市{n}"),
            ownership: "private",
            operator: None,
            region: CITY.to_string(),
            beds: 0,
            grade: None,
        });
    }
    v
}

/// Seed the facilities; returns (organisations, beds, residents).
pub async fn seed(db: &Db, scale: f64, today: NaiveDate) -> anyhow::Result<(usize, i64, i64)> {
    let mut rng = StdRng::seed_from_u64(16_980);
    let list = facilities(&mut rng, scale.clamp(0.01, 1.0));
    seed_facilities(db, list, rng, today).await
}

/// Homes across every town of the database (a province for benchmarks, `gen-institutions`):
/// `n` of them with `beds` beds in all, of every kind and ownership, seeded like the demo's.
pub async fn seed_towns(
    db: &Db,
    n: usize,
    beds: i64,
    today: NaiveDate,
) -> anyhow::Result<(usize, i64, i64)> {
    let mut rng = StdRng::seed_from_u64(5_000);
    let towns: Vec<String> = sqlx::query("SELECT code FROM region WHERE level = 4 ORDER BY code")
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    anyhow::ensure!(!towns.is_empty(), "no towns in the region table");
    let per = (beds / n.max(1) as i64).max(1);
    let list = (0..n)
        .map(|i| {
            let (kind, ownership) = match i % 10 {
                0..=2 => ("township_home", "public"),
                3 => ("regional_center", "public"),
                4..=5 => ("institution", "public_private"),
                _ => ("institution", "private"),
            };
            Facility {
                kind,
                name: format!("模拟养老机构{:05}", i + 1),
                ownership,
                operator: None,
                region: towns[i % towns.len()].clone(),
                beds: rng.gen_range(per / 2..=per * 3 / 2).max(1),
                grade: (i % 3 != 0).then(|| rng.gen_range(1..=5)),
            }
        })
        .collect();
    seed_facilities(db, list, rng, today).await
}

async fn seed_facilities(
    db: &Db,
    list: Vec<Facility>,
    mut rng: StdRng,
    today: NaiveDate,
) -> anyhow::Result<(usize, i64, i64)> {
    let total_beds: i64 = list.iter().map(|f| f.beds).sum();
    // Residents: elders of 70 and over, about 70 % of the beds.
    let want = (total_beds as f64 * 0.7) as i64;
    let cutoff = today - Duration::days(70 * 365);
    let mut people: Vec<String> = sqlx::query(
        "SELECT id FROM elder WHERE status = 'active' AND birth_date <= $1 ORDER BY citizen_id_bidx LIMIT $2",
    )
    .bind(cutoff.to_string())
    .bind(want * 3)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    for i in (1..people.len()).rev() {
        people.swap(i, rng.gen_range(0..=i));
    }
    people.truncate(want as usize);
    let now = crate::platform::now_rfc3339();
    let ymd = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let (mut orgs, mut beds, mut stays, mut admissions, mut leaves, mut staff) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut next_person = people.into_iter();
    let mut residents = 0i64;
    for (fi, f) in list.iter().enumerate() {
        let org_id = uuid::Uuid::now_v7().to_string();
        let opened = today - Duration::days(rng.gen_range(700..4000));
        orgs.push(vec![
            V::T(org_id.clone()),
            V::T(f.kind.into()),
            V::T(f.name.clone()),
            V::T(f.ownership.into()),
            f.operator.clone().map_or(V::N, V::T),
            V::T(format!("苏民养备{}{:03}", 2015 + fi % 9, fi + 1)),
            V::T(ymd(opened)),
            f.grade.map_or(V::NI, V::I),
            f.grade.map_or(V::N, |_| {
                V::T(ymd(today + Duration::days(rng.gen_range(30..1100))))
            }),
            V::T(f.region.clone()),
            V::T(format!(
                "{}{}路{}号",
                TOWNS
                    .iter()
                    .find(|t| t.0 == f.region)
                    .map_or("如城街道", |t| t.1),
                ROADS[rng.gen_range(0..ROADS.len())],
                rng.gen_range(1..300)
            )),
            V::T(format!("0513-87{:06}", rng.gen_range(0..1_000_000))),
            V::I((f.beds * 35).max(200)),
            V::T(now.clone()),
            V::T(now.clone()),
            V::T("open".into()),
            V::I(1),
        ]);
        let lo = if f.ownership == "public" {
            rng.gen_range(10..16) * 100
        } else {
            rng.gen_range(20..40) * 100
        };
        orgs.last_mut().expect("just pushed").extend(if f.beds > 0 {
            [V::I(lo), V::I(lo + rng.gen_range(5..30) * 100)]
        } else {
            [V::NI, V::NI]
        });
        // Where the subsidies are paid (no draw from the generator: the rest stays as it was).
        let town = TOWNS
            .iter()
            .find(|t| t.0 == f.region)
            .map_or("如城", |t| t.1.trim_end_matches('镇'));
        orgs.last_mut().expect("just pushed").extend([
            V::T(format!("如皋农村商业银行{town}支行")),
            V::T(f.operator.clone().unwrap_or_else(|| f.name.clone())),
            V::T(format!("3206820{:012}", fi + 1)),
        ]);
        if f.beds == 0 {
            // Day centres, stations, meal points and providers: a few staff of their own.
            for k in 0..rng.gen_range(2..6) {
                staff.push(staff_row(
                    &mut rng,
                    &org_id,
                    if k == 0 { "manager" } else { "caregiver" },
                    today,
                    &now,
                ));
            }
            continue;
        }
        // Rooms of 2–4 beds on floors of up to 12 rooms; the share of nursing beds by kind.
        let nursing_share = match f.kind {
            "township_home" => 0.45,
            "regional_center" => 0.7,
            _ => 0.6,
        };
        // Rooms of 2–4 beds, 12 rooms a floor, 5 floors a building.
        let (mut room_no, mut n) = (0i64, 0);
        let mut org_beds: Vec<(String, bool)> = vec![];
        let buildings = f.beds > 150;
        while n < f.beds {
            let in_room = rng.gen_range(2..=4).min(f.beds - n);
            let nursing = rng.gen_bool(nursing_share);
            let (building, floor, room) =
                (room_no / 60 + 1, room_no % 60 / 12 + 1, room_no % 12 + 1);
            let dementia = nursing && f.kind == "institution" && floor == 2 && rng.gen_bool(0.5);
            for b in 1..=in_room {
                let id = uuid::Uuid::now_v7().to_string();
                beds.push(vec![
                    V::T(id.clone()),
                    V::T(org_id.clone()),
                    V::T(if buildings {
                        building.to_string()
                    } else {
                        String::new()
                    }),
                    V::T(floor.to_string()),
                    V::T(format!("{floor}{room:02}")),
                    V::T(b.to_string()),
                    V::I(nursing as i64),
                    V::I(dementia as i64),
                    V::T(ymd(opened)),
                    V::T(now.clone()),
                    V::T(now.clone()),
                    V::T("open".into()),
                    V::I(1),
                ]);
                org_beds.push((id, nursing));
            }
            n += in_room;
            room_no += 1;
        }
        // About 70 % occupied; a few on leave in hospital.
        let mut here = 0i64;
        for (bed_id, _) in &org_beds {
            if !rng.gen_bool(0.7) {
                continue;
            }
            let Some(elder) = next_person.next() else {
                break;
            };
            let adm = uuid::Uuid::now_v7().to_string();
            let since = today
                - Duration::days(
                    rng.gen_range(1..1200)
                        .min((today - opened).num_days().max(1)),
                );
            admissions.push(vec![
                V::T(adm.clone()),
                V::T(org_id.clone()),
                V::T(elder),
                V::T(ymd(since)),
                V::T("演示数据".into()),
                V::T(now.clone()),
                V::I(1),
            ]);
            stays.push(vec![
                V::T(uuid::Uuid::now_v7().to_string()),
                V::T(adm.clone()),
                V::T(bed_id.clone()),
                V::T(ymd(since)),
                V::T(now.clone()),
            ]);
            if rng.gen_bool(0.03) {
                // A few have been away longer than a subsidy allows (their claims exclude days).
                let away = rng.gen_range(1..20);
                let away = if away >= 17 { 40 + away * 2 } else { away };
                let from = (today - Duration::days(away)).max(since);
                leaves.push(vec![
                    V::T(uuid::Uuid::now_v7().to_string()),
                    V::T(adm),
                    V::T(
                        if rng.gen_bool(0.8) {
                            "hospital"
                        } else {
                            "home"
                        }
                        .into(),
                    ),
                    V::T(ymd(from)),
                    V::T(now.clone()),
                ]);
            }
            here += 1;
        }
        residents += here;
        // Staff: caregivers about one to five residents (some homes short), a social worker per
        // 100 beds in most, a nurse per 80 beds, two managers.
        let caregivers = ((here as f64 / 5.0) * rng.gen_range(0.8..1.3))
            .ceil()
            .max(1.0) as i64;
        for _ in 0..caregivers {
            staff.push(staff_row(&mut rng, &org_id, "caregiver", today, &now));
        }
        let sw = if fi % 5 == 2 { 0 } else { (f.beds + 99) / 100 };
        for _ in 0..sw {
            staff.push(staff_row(&mut rng, &org_id, "social_worker", today, &now));
        }
        for _ in 0..(f.beds + 79) / 80 {
            staff.push(staff_row(&mut rng, &org_id, "nurse", today, &now));
        }
        for _ in 0..2 {
            staff.push(staff_row(&mut rng, &org_id, "manager", today, &now));
        }
    }
    let mut tx = db.begin().await?;
    insert(
        &mut tx,
        "organisation",
        "id, kind, name, ownership, operator, filing_no, filed_on, grade, grade_expires_on, region_code, address, phone, \
         floor_area, created_at, updated_at, status, version, price_min, price_max, bank_name, bank_account_name, bank_account",
        orgs,
    )
    .await?;
    let n_orgs = list.len();
    insert(
        &mut tx,
        "bed",
        "id, org_id, building, floor, room, label, nursing, dementia, opened_on, created_at, updated_at, status, version",
        beds,
    )
    .await?;
    insert(
        &mut tx,
        "admission",
        "id, org_id, elder_id, admitted_on, created_by, created_at, version",
        admissions,
    )
    .await?;
    insert(
        &mut tx,
        "bed_stay",
        "id, admission_id, bed_id, from_on, created_at",
        stays,
    )
    .await?;
    insert(
        &mut tx,
        "admission_leave",
        "id, admission_id, kind, from_on, created_at",
        leaves,
    )
    .await?;
    crate::org::staff::insert_demo(&mut tx, staff).await?;
    // A queue for public beds with applicants in every tier: people not resident anywhere, by the
    // facts that place them (特困; 低保 and 80+; 失独 or 伤残; anyone else).
    let mut applications = vec![];
    // Someone can fit two of these (特困 and 失独): one application each.
    let mut applied = std::collections::HashSet::new();
    for (i, cond) in [
        "economic_status = 'extreme_poverty'",
        "economic_status = 'minimum_living' AND birth_date <= $1",
        "family_planning_special = 'lost_only_child' OR family_planning_special = 'disabled_only_child'",
        "economic_status = 'ordinary' AND birth_date <= $1",
    ]
    .iter()
    .enumerate()
    {
        let sql = format!(
            "SELECT id FROM elder e WHERE status = 'active' AND ({cond}) AND $1 <> '' \
             AND NOT EXISTS (SELECT 1 FROM admission a WHERE a.elder_id = e.id) ORDER BY citizen_id_bidx LIMIT 8"
        );
        let eighty = (today - Duration::days(80 * 365 + 20)).to_string();
        for r in sqlx::query(AssertSqlSafe(sql))
            .bind(&eighty)
            .fetch_all(&mut *tx)
            .await?
        {
            let elder: String = r.get(0);
            if !applied.insert(elder.clone()) {
                continue;
            }
            applications.push(vec![
                V::T(uuid::Uuid::now_v7().to_string()),
                V::T(crate::demo::COUNTY.into()),
                V::T(elder),
                V::T(ymd(today - Duration::days(rng.gen_range(5..400) + i as i64))),
                V::T("waiting".into()),
                V::T("演示数据".into()),
                V::T(now.clone()),
            ]);
        }
    }
    insert(
        &mut tx,
        "admission_application",
        "id, region_code, elder_id, applied_at, state, created_by, created_at",
        applications,
    )
    .await?;
    // Family care beds: assessed elders at home under contract with the providers and private
    // homes, about 120 at full scale, set up after their assessment.
    let providers: Vec<String> = sqlx::query(
        "SELECT id FROM organisation WHERE kind = 'provider' OR (kind = 'institution' AND ownership = 'private') ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    if !providers.is_empty() {
        let want = ((120.0 * list.len() as f64 / 60.0).round() as i64).max(3);
        let candidates: Vec<(String, String, i64)> = sqlx::query(
            "SELECT a.elder_id, a.assessed_on, a.level FROM elder_ability a JOIN elder e ON e.id = a.elder_id \
             WHERE a.valid_until >= $1 AND e.status = 'active' AND a.level >= 1 \
             AND NOT EXISTS (SELECT 1 FROM admission d WHERE d.elder_id = a.elder_id AND d.discharged_on IS NULL) \
             ORDER BY a.elder_id LIMIT $2",
        )
        .bind(ymd(today))
        .bind(want)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        let mut fam = vec![];
        for (i, (elder, assessed, level)) in candidates.into_iter().enumerate() {
            let Ok(a) = NaiveDate::parse_from_str(&assessed, "%Y-%m-%d") else {
                continue;
            };
            let start = (a + Duration::days(rng.gen_range(3..40))).min(today);
            fam.push(vec![
                V::T(uuid::Uuid::now_v7().to_string()),
                V::T(providers[i % providers.len()].clone()),
                V::T(elder),
                V::T(format!("JTCW{}{:04}", start.format("%Y"), i + 1)),
                V::T(ymd(start)),
                V::T(ymd(start)),
                V::I(level),
                V::T("emergency_call,grab_bars,anti_slip".into()),
                V::I(4),
                V::T("演示数据".into()),
                V::T(now.clone()),
                V::I(1),
            ]);
        }
        insert(
            &mut tx,
            "family_bed",
            "id, org_id, elder_id, contract_no, signed_on, start_on, ability_level, adaptation, visits_per_month, created_by, created_at, version",
            fam,
        )
        .await?;
    }
    // Twelve new beds of private homes passed acceptance on the 10th of last month: that month's
    // claims carry their construction subsidy.
    let accepted =
        ymd(today.with_day(1).unwrap_or(today) - Duration::days(1))[..8].to_string() + "10";
    sqlx::query(
        "UPDATE bed SET accepted_on = $1, opened_on = $1 WHERE id IN (SELECT b.id FROM bed b \
         JOIN organisation o ON o.id = b.org_id WHERE o.ownership = 'private' \
         AND NOT EXISTS (SELECT 1 FROM bed_stay s WHERE s.bed_id = b.id) ORDER BY b.id LIMIT 12)",
    )
    .bind(&accepted)
    .execute(&mut *tx)
    .await?;
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM bed")
        .fetch_one(&mut *tx)
        .await?
        .get(0);
    crate::audit::append(
        &mut tx,
        &Who {
            actor_id: None,
            actor_name: "yiyang demo".into(),
        },
        crate::audit::Entry {
            action: "org.demo_generate",
            entity: "organisation",
            entity_id: None,
            region_code: Some(crate::demo::COUNTY),
            detail:
                serde_json::json!({"organisations": n_orgs, "beds": total, "residents": residents})
                    .to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    // Statistics for what was just written: without them PostgreSQL read a home's month by
    // scanning every bed stay of a province (75 ms, 0.14 ms after ANALYZE).
    db.analyze_after_bulk(
        &[
            "organisation",
            "bed",
            "bed_stay",
            "admission",
            "admission_leave",
            "staff",
            "family_bed",
        ],
        total as usize,
    )
    .await?;
    Ok((n_orgs, total, residents))
}

fn staff_row(
    rng: &mut StdRng,
    org: &str,
    role: &'static str,
    today: NaiveDate,
    now: &str,
) -> DemoStaff {
    let female = rng.gen_bool(if role == "caregiver" { 0.85 } else { 0.6 });
    let name = format!(
        "{}{}",
        crate::demo::SURNAMES[rng.gen_range(0..crate::demo::SURNAMES.len())],
        crate::demo::given_name(rng, !female)
    );
    let hired = today - Duration::days(rng.gen_range(30..3000));
    let certified = role != "manager" && rng.gen_bool(0.82);
    let certificate = certified.then(|| {
        let on = hired - Duration::days(rng.gen_range(0..400));
        // Most valid for years; a few running out within two months, a few already out.
        let left = match rng.gen_range(0..100) {
            0..=4 => rng.gen_range(-40..0),
            5..=11 => rng.gen_range(1..60),
            _ => rng.gen_range(60..1500),
        };
        (
            format!("3206{:09}", rng.gen_range(0..1_000_000_000u64)),
            on.to_string(),
            (today + Duration::days(left)).to_string(),
        )
    });
    DemoStaff {
        org_id: org.into(),
        name,
        role,
        skill_level: (role == "caregiver" && certified)
            .then(|| [5, 5, 5, 4, 4, 3, 2][rng.gen_range(0..7)]),
        certificate,
        hired_on: hired.to_string(),
        now: now.into(),
    }
}

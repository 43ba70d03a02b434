//! The demo county's home care: a provider in each of 20 towns under contract, about 600
//! caregivers, and last month's visits for every elder holding the purchased home service (their
//! grants taken as approved from the month's start), each confirmed with the family's code. A
//! few of each anomaly are planted so the month's settlement shows all seven kinds held back.

use crate::institution::demo::{V, insert};
use crate::platform::crypto::KeyRing;
use crate::platform::db::Db;
use chrono::{Datelike, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;
use std::collections::HashMap;

const PRICES: &[(&str, i64)] = &[
    ("meal", 1500),
    ("bathing", 6000),
    ("emergency", 2000),
    ("medical_escort", 4000),
    ("mobility", 2500),
    ("cleaning", 3000),
    ("personal_care", 5000),
];

/// Start times of a caregiver's visits in a day (minutes after midnight): an hour each, apart.
const SLOTS: &[i64] = &[
    8 * 60,
    9 * 60 + 15,
    10 * 60 + 30,
    13 * 60 + 30,
    14 * 60 + 45,
    16 * 60,
    17 * 60 + 15,
];

struct Planned {
    id: String,
    provider: usize,
    caregiver: usize,
    elder: usize,
    service: &'static str,
    day: u32,
    slot: usize,
}

/// Seed it; returns (providers, caregivers, visits).
pub async fn seed(
    db: &Db,
    keys: &KeyRing,
    scale: f64,
    today: NaiveDate,
) -> anyhow::Result<(usize, usize, usize)> {
    let mut rng = StdRng::seed_from_u64(25_025);
    let first = (today.with_day(1).unwrap_or(today) - chrono::Months::new(1))
        .with_day(1)
        .unwrap_or(today);
    let days = ((first + chrono::Months::new(1)) - first).num_days() as u32;
    let month = first.format("%Y-%m").to_string();
    let now = crate::platform::now_rfc3339();
    let towns: Vec<(String, String)> = sqlx::query(
        "SELECT code, name FROM region WHERE level = 4 AND code >= '320682000000' AND code <= '320682999999' ORDER BY code",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    anyhow::ensure!(!towns.is_empty(), "no towns");
    let n_prov = towns.len().min(20);
    let mut tx = db.begin().await?;
    // The purchased home service, approved from the month's start.
    sqlx::query(
        "UPDATE entitlement SET state = 'granted', since = $1 WHERE item_code = 'purchased_home_service' \
         AND state = 'proposed'",
    )
    .bind(first.to_string())
    .execute(&mut *tx)
    .await?;
    // (entitlement, elder, quota, lon, lat, phone's blind index)
    type Holder = (
        String,
        String,
        i64,
        Option<f64>,
        Option<f64>,
        Option<String>,
    );
    let holders: Vec<Holder> = sqlx::query(
        "SELECT n.id, n.elder_id, n.quota, e.lon, e.lat, e.phone_bidx FROM entitlement n JOIN elder e ON e.id = n.elder_id \
         WHERE n.item_code = 'purchased_home_service' AND n.state = 'granted' AND e.status = 'active' ORDER BY n.elder_id",
    )
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
    .collect();
    let town_of: HashMap<String, String> = sqlx::query(
        "SELECT n.elder_id, e.residence_region FROM entitlement n JOIN elder e ON e.id = n.elder_id \
         WHERE n.item_code = 'purchased_home_service' AND n.state = 'granted'",
    )
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get::<String, _>(1)[..9].to_string()))
    .collect();
    // Providers, their contracts and caregivers.
    let per = ((30.0 * scale.clamp(0.05, 1.0)).round() as usize).max(3);
    let (mut orgs, mut contracts, mut prices, mut staff) = (vec![], vec![], vec![], vec![]);
    let mut prov_ids = vec![];
    let mut carers: Vec<Vec<(String, bool)>> = vec![];
    for (i, (code, name)) in towns.iter().take(n_prov).enumerate() {
        let id = uuid::Uuid::now_v7().to_string();
        let pname = format!(
            "如皋市{}居家养老服务中心",
            name.trim_end_matches(['镇', '街', '道'])
        );
        orgs.push(vec![
            V::T(id.clone()),
            V::T("provider".into()),
            V::T(pname.clone()),
            V::T("private".into()),
            V::T(code.clone()),
            V::T(format!("0513-88{:06}", rng.gen_range(0..1_000_000))),
            V::T("open".into()),
            V::T(now.clone()),
            V::T(now.clone()),
            V::I(1),
            V::T(format!(
                "如皋农村商业银行{}支行",
                name.trim_end_matches('镇')
            )),
            V::T(pname),
            V::T(format!("3206821{:011}", i + 1)),
        ]);
        contracts.push(vec![
            V::T(id.clone()),
            V::T(format!("{}-01-01", first.year())),
            V::T(format!("{}-12-31", first.year() + 1)),
            V::T("演示数据".into()),
            V::T(now.clone()),
        ]);
        for (s, fen) in PRICES {
            prices.push(vec![V::T(id.clone()), V::T((*s).into()), V::I(*fen)]);
        }
        let mut mine = vec![];
        for k in 0..per {
            let sid = uuid::Uuid::now_v7().to_string();
            let qualified = k % 5 < 3;
            let phone = format!("137{:08}", rng.gen_range(0..100_000_000));
            staff.push(vec![
                V::T(sid.clone()),
                V::T(id.clone()),
                V::T(format!(
                    "{}{}",
                    ["王", "李", "张", "刘", "陈", "杨", "黄", "吴", "周", "徐"]
                        [rng.gen_range(0..10)],
                    [
                        "秀兰", "桂英", "春华", "玉梅", "建芳", "海燕", "红霞", "丽娟", "素琴",
                        "国英"
                    ][rng.gen_range(0..10)]
                )),
                V::T("caregiver".into()),
                if qualified {
                    V::I(rng.gen_range(3..=5))
                } else {
                    V::NI
                },
                V::T(format!("{}-03-01", first.year() - 3)),
                V::T(now.clone()),
                V::T(now.clone()),
                V::I(1),
                V::T(yiyang_kernel::mask::phone(&phone)),
                V::T(keys.blind_index(crate::registry::store::PHONE_DOMAIN, &phone)),
            ]);
            mine.push((sid, qualified));
        }
        prov_ids.push((id, code[..9].to_string()));
        carers.push(mine);
    }
    insert(
        &mut tx,
        "organisation",
        "id, kind, name, ownership, region_code, phone, status, created_at, updated_at, version, bank_name, bank_account_name, bank_account",
        orgs,
    )
    .await?;
    insert(
        &mut tx,
        "provider_contract",
        "org_id, starts_on, ends_on, updated_by, updated_at",
        contracts,
    )
    .await?;
    insert(
        &mut tx,
        "provider_price",
        "org_id, service, price_fen",
        prices,
    )
    .await?;
    insert(
        &mut tx,
        "staff",
        "id, org_id, name, role, skill_level, hired_on, created_at, updated_at, version, phone_masked, phone_bidx",
        staff,
    )
    .await?;
    // Each holder's visits, by the provider of her town, on days spread over the month; a
    // caregiver's day has seven slots and a slot holds one visit.
    let by_town: HashMap<&str, usize> = prov_ids
        .iter()
        .enumerate()
        .map(|(i, (_, t))| (t.as_str(), i))
        .collect();
    let mut busy: HashMap<(usize, usize, u32), u8> = HashMap::new(); // (provider, carer, day) → slots used
    let mut cursor = vec![0usize; n_prov];
    let mut plan: Vec<Planned> = vec![];
    let dup_every = (holders.len() / 8).max(1);
    for (hi, h) in holders.iter().enumerate() {
        let town = town_of.get(&h.1).map(String::as_str).unwrap_or("");
        let p = by_town.get(town).copied().unwrap_or(hi % n_prov);
        let q = h.2.clamp(1, 8) as u32;
        let step = days / q;
        for k in 0..q {
            let mut day = 1 + k * step + rng.gen_range(0..step.max(1));
            // Every so often the second visit falls on the first's day (a duplicate).
            if k == 1 && hi % dup_every == 3 {
                day = plan.last().map_or(day, |v| v.day);
            }
            let day = day.min(days);
            let service = match rng.gen_range(0..20) {
                0..=8 => "cleaning",
                9..=11 => "meal",
                12..=13 => "mobility",
                14..=15 => "medical_escort",
                16..=17 => "bathing",
                18 => "personal_care",
                _ => "emergency",
            };
            let needs = yiyang_kernel::service_order::needs_qualification(service);
            let n = carers[p].len();
            let mut placed = None;
            for t in 0..n * 2 {
                let c = (cursor[p] + t) % n;
                if needs && !carers[p][c].1 {
                    continue;
                }
                let used = busy.entry((p, c, day)).or_insert(0);
                if (*used as usize) < SLOTS.len() {
                    placed = Some((c, *used as usize));
                    *used += 1;
                    cursor[p] = c + 1;
                    break;
                }
            }
            let Some((c, slot)) = placed else { continue };
            plan.push(Planned {
                id: uuid::Uuid::now_v7().to_string(),
                provider: p,
                caregiver: c,
                elder: hi,
                service,
                day,
                slot,
            });
        }
    }
    // Planted anomalies: a few of each kind.
    let k = (plan.len() / 20_000).max(3);
    let pick = |from: usize| (0..k).map(move |i| from + i * 97);
    let far: Vec<usize> = (0..plan.len())
        .filter(|&i| holders[plan[i].elder].3.is_some())
        .step_by(plan.len() / k / 2 + 1)
        .take(k)
        .collect();
    let short: Vec<usize> = pick(11).filter(|&i| i < plan.len()).collect();
    // Overlap: a visit whose caregiver's next slot that day is taken: started 20 minutes into it.
    let mut overlap = vec![];
    let mut slot_of: HashMap<(usize, usize, u32, usize), usize> = HashMap::new();
    for (i, v) in plan.iter().enumerate() {
        slot_of.insert((v.provider, v.caregiver, v.day, v.slot), i);
    }
    for (i, v) in plan.iter().enumerate().skip(200) {
        if overlap.len() >= k {
            break;
        }
        if v.slot > 0
            && let Some(&prev) = slot_of.get(&(v.provider, v.caregiver, v.day, v.slot - 1))
            && SLOTS[v.slot] - SLOTS[v.slot - 1] <= 75
        {
            overlap.push((i, prev));
        }
    }
    let self_conf: Vec<usize> = pick(23)
        .filter(|&i| i < plan.len() && holders[plan[i].elder].5.is_some())
        .collect();
    // Deaths reported late: the elder died on the 12th; her later visits were still confirmed.
    let mut dead = vec![];
    for (i, v) in plan.iter().enumerate().skip(500) {
        if dead.len() >= k {
            break;
        }
        if v.day > 14 && !dead.iter().any(|&d: &usize| plan[d].elder == v.elder) {
            dead.push(i);
        }
    }
    let hosp: Vec<usize> = pick(57).filter(|&i| i < plan.len()).collect();
    let mut rows = vec![];
    let mut ledger: HashMap<usize, i64> = HashMap::new();
    for (i, v) in plan.iter().enumerate() {
        let h = &holders[v.elder];
        *ledger.entry(v.elder).or_default() += 1;
        let date = first + chrono::Days::new((v.day - 1) as u64);
        let start_local = SLOTS[v.slot];
        let start_min = date
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp()
            / 60
            + start_local;
        let mut check_in = start_min + rng.gen_range(-5..8);
        // Within the hour: the next slot starts 75 minutes on, so none overlap by chance.
        let mut check_out = check_in + 55 + rng.gen_range(0..6);
        if short.contains(&i) {
            check_out = check_in + 12;
        }
        if let Some(&(_, prev)) = overlap.iter().find(|o| o.0 == i) {
            let p = &plan[prev];
            let p_start = first
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp()
                / 60
                + (p.day as i64 - 1) * 1440
                + SLOTS[p.slot];
            check_in = p_start + 20;
            check_out = check_in + 60;
        }
        let (lon, lat) = match (h.3, h.4) {
            (Some(x), Some(y)) if far.contains(&i) => (V::F(x + 0.02), V::F(y)),
            (Some(x), Some(y)) => (
                V::F(x + rng.gen_range(-0.0008..0.0008)),
                V::F(y + rng.gen_range(-0.0008..0.0008)),
            ),
            _ => (V::NF, V::NF),
        };
        let (lon2, lat2) = match (&lon, &lat) {
            (V::F(x), V::F(y)) => (V::F(*x), V::F(*y)),
            _ => (V::NF, V::NF),
        };
        let at = |m: i64| {
            chrono::DateTime::from_timestamp(m * 60 - 8 * 3600, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        };
        rows.push(vec![
            V::T(v.id.clone()),
            V::T(prov_ids[v.provider].0.clone()),
            V::T(h.1.clone()),
            V::T(v.service.into()),
            V::T(format!(
                "{} {:02}:{:02}",
                date,
                start_local / 60,
                start_local % 60
            )),
            V::I(start_min),
            V::I(60),
            V::T(carers[v.provider][v.caregiver].0.clone()),
            V::T("confirmed".into()),
            V::T(at(check_in)),
            lon,
            lat,
            V::T(at(check_out)),
            lon2,
            lat2,
            V::T(at(check_out + 3)),
            V::T("演示数据".into()),
            V::T(now.clone()),
            V::I(5),
            V::I(check_in),
            V::I(check_out),
            V::T(h.0.clone()),
            V::T("quota".into()),
            h.5.clone().map_or(V::N, V::T),
            V::T("code".into()),
        ]);
    }
    insert(
        &mut tx,
        "service_order",
        "id, provider_id, elder_id, service, planned_start, start_min, planned_minutes, caregiver_id, state, \
         check_in_at, check_in_lon, check_in_lat, check_out_at, check_out_lon, check_out_lat, confirmed_at, \
         created_by, created_at, version, check_in_min, check_out_min, entitlement_id, funded, code_to_bidx, confirmed_by",
        rows,
    )
    .await?;
    let ledger_rows: Vec<Vec<V>> = ledger
        .iter()
        .map(|(&e, &used)| {
            let h = &holders[e];
            vec![
                V::T(h.1.clone()),
                V::T("purchased_home_service".into()),
                V::T(month.clone()),
                V::I(h.2.max(used)),
                V::I(used),
                V::T(h.0.clone()),
            ]
        })
        .collect();
    insert(
        &mut tx,
        "service_quota",
        "elder_id, item_code, month, granted, used, entitlement_id",
        ledger_rows,
    )
    .await?;
    // The self-confirmed: the caregiver's phone is the one the family's code went to.
    for &i in &self_conf {
        let v = &plan[i];
        sqlx::query("UPDATE staff SET phone_bidx = $2 WHERE id = $1")
            .bind(&carers[v.provider][v.caregiver].0)
            .bind(&holders[v.elder].5)
            .execute(&mut *tx)
            .await?;
    }
    for &i in &hosp {
        let v = &plan[i];
        let d = first + chrono::Days::new((v.day - 1) as u64);
        sqlx::query(
            "INSERT INTO hospital_stay (id, elder_id, from_on, to_on, note, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, '如皋市人民医院', '演示数据', $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&holders[v.elder].1)
        .bind((d - chrono::Days::new(1)).to_string())
        .bind((d + chrono::Days::new(2)).to_string())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    let died = (first + chrono::Days::new(11)).to_string();
    for &i in &dead {
        let e = &holders[plan[i].elder];
        sqlx::query("UPDATE elder SET status = 'deceased', death_date = $2 WHERE id = $1")
            .bind(&e.1)
            .bind(&died)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE entitlement SET state = 'ended', ended_on = $2, end_kind = 'registry' WHERE elder_id = $1 AND state <> 'ended'",
        )
        .bind(&e.1)
        .bind((first + chrono::Days::new(12)).to_string())
        .execute(&mut *tx)
        .await?;
    }
    // Today at each provider: three visits given to its first caregiver (the demo's caregiver
    // account is hers) and two waiting for its dispatcher, for elders of its town with a phone.
    let dead_elders: std::collections::HashSet<usize> =
        dead.iter().map(|&i| plan[i].elder).collect();
    let midnight = today
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp()
        / 60;
    let mut today_rows = vec![];
    for (p, (pid, town)) in prov_ids.iter().enumerate() {
        let elders: Vec<&Holder> = holders
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                !dead_elders.contains(i)
                    && h.5.is_some()
                    && town_of.get(&h.1).is_some_and(|t| t == town)
            })
            .map(|(_, h)| h)
            .take(5)
            .collect();
        // The third of her visits is to an elder with no phone on file: no code can be sent
        // there, and the elder signs on the caregiver's phone instead.
        let no_phone = holders.iter().enumerate().find(|(i, h)| {
            !dead_elders.contains(i)
                && h.5.is_none()
                && town_of.get(&h.1).is_some_and(|t| t == town)
        });
        let mut elders = elders;
        if let Some((_, h)) = no_phone
            && elders.len() > 2
        {
            elders[2] = h;
        }
        let plan_today = [
            (SLOTS[1], "cleaning", true),
            (SLOTS[2], "meal", true),
            (SLOTS[4], "personal_care", true),
            (SLOTS[5], "cleaning", false),
            (SLOTS[6], "mobility", false),
        ];
        for (h, (at, service, given)) in elders.iter().zip(plan_today) {
            today_rows.push(vec![
                V::T(uuid::Uuid::now_v7().to_string()),
                V::T(pid.clone()),
                V::T(h.1.clone()),
                V::T(service.into()),
                V::T(format!("{} {:02}:{:02}", today, at / 60, at % 60)),
                V::I(midnight + at),
                V::I(60),
                if given {
                    V::T(carers[p][0].0.clone())
                } else {
                    V::N
                },
                V::T(if given { "dispatched" } else { "created" }.into()),
                V::T("演示数据".into()),
                V::T(now.clone()),
                V::I(1),
            ]);
        }
    }
    insert(
        &mut tx,
        "service_order",
        "id, provider_id, elder_id, service, planned_start, start_min, planned_minutes, caregiver_id, state, \
         created_by, created_at, version",
        today_rows,
    )
    .await?;
    tx.commit().await?;
    Ok((n_prov, n_prov * per, plan.len()))
}

/// For the settlement bench: `orders` confirmed visits in the month starting `first`, spread over
/// every active elder of the demo county at the provider of her town, seven an hour apart in a
/// caregiver's day (caregivers added as the count needs them). A visit of an elder holding the
/// purchased home service is paid from it (each beyond her grant too: the bench measures the
/// reading and the checks, not the ledger); the others are self-paid. Written in parts of 50,000,
/// each in its own transaction. Returns (visits, caregivers added).
pub async fn gen_month(db: &Db, first: NaiveDate, orders: usize) -> anyhow::Result<(usize, usize)> {
    let mut rng = StdRng::seed_from_u64(1_500_000);
    let days = ((first + chrono::Months::new(1)) - first).num_days();
    let now = crate::platform::now_rfc3339();
    let providers: HashMap<String, String> = sqlx::query(
        "SELECT substr(region_code, 1, 9), MIN(id) FROM organisation WHERE kind = 'provider' GROUP BY substr(region_code, 1, 9)",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    anyhow::ensure!(
        !providers.is_empty(),
        "no providers: run `yiyang demo` first"
    );
    let paying: HashMap<String, String> = sqlx::query(
        "SELECT elder_id, MIN(id) FROM entitlement WHERE item_code = 'purchased_home_service' AND state = 'granted' GROUP BY elder_id",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    // (elder, provider, lon, lat)
    let elders: Vec<(String, String, Option<f64>, Option<f64>)> = sqlx::query(
        "SELECT id, substr(residence_region, 1, 9), lon, lat FROM elder WHERE status = 'active' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .filter_map(|r| {
        let p = providers.get(&r.get::<String, _>(1))?;
        Some((r.get(0), p.clone(), r.get(2), r.get(3)))
    })
    .collect();
    anyhow::ensure!(!elders.is_empty(), "no elders in the providers' towns");
    let per_carer = (SLOTS.len() as i64 * days) as usize;
    // Caregivers per provider, added when the provider's count of visits needs one more.
    let mut carers: HashMap<String, Vec<String>> = HashMap::new();
    for r in sqlx::query("SELECT org_id, id FROM staff WHERE role = 'caregiver' ORDER BY id")
        .fetch_all(&db.pool)
        .await?
    {
        carers.entry(r.get(0)).or_default().push(r.get(1));
    }
    let mut counter: HashMap<String, usize> = HashMap::new();
    let mut added = 0;
    let midnight = first
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp()
        / 60;
    let at = |m: i64| {
        chrono::DateTime::from_timestamp(m * 60 - 8 * 3600, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    };
    let mut done = 0;
    while done < orders {
        let n = (orders - done).min(50_000);
        let (mut rows, mut staff) = (vec![], vec![]);
        for i in done..done + n {
            let (elder, provider, lon, lat) = &elders[i % elders.len()];
            let k = counter.entry(provider.clone()).or_insert(0);
            let list = carers.entry(provider.clone()).or_default();
            let c = *k / per_carer;
            while list.len() <= c {
                let id = uuid::Uuid::now_v7().to_string();
                staff.push(vec![
                    V::T(id.clone()),
                    V::T(provider.clone()),
                    V::T(format!("护理员{:05}", list.len() + 1)),
                    V::T("caregiver".into()),
                    V::I(4),
                    V::T("2024-03-01".into()),
                    V::T(now.clone()),
                    V::T(now.clone()),
                    V::I(1),
                ]);
                list.push(id);
                added += 1;
            }
            let within = *k % per_carer;
            let (day, slot) = (within / SLOTS.len(), within % SLOTS.len());
            *k += 1;
            let start = midnight + day as i64 * 1440 + SLOTS[slot];
            let check_in = start + rng.gen_range(-5..8);
            let check_out = check_in + 55 + rng.gen_range(0..6);
            let (x, y) = match (lon, lat) {
                (Some(x), Some(y)) => (
                    V::F(x + rng.gen_range(-0.0008..0.0008)),
                    V::F(y + rng.gen_range(-0.0008..0.0008)),
                ),
                _ => (V::NF, V::NF),
            };
            let date = first + chrono::Days::new(day as u64);
            let ent = paying.get(elder);
            rows.push(vec![
                V::T(uuid::Uuid::now_v7().to_string()),
                V::T(provider.clone()),
                V::T(elder.clone()),
                V::T(["cleaning", "meal", "mobility", "cleaning", "medical_escort"][i % 5].into()),
                V::T(format!(
                    "{date} {:02}:{:02}",
                    SLOTS[slot] / 60,
                    SLOTS[slot] % 60
                )),
                V::I(start),
                V::I(60),
                V::T(list[c].clone()),
                V::T("confirmed".into()),
                V::T(at(check_in)),
                x,
                y,
                V::T(at(check_out)),
                V::T(at(check_out + 3)),
                V::T("bench".into()),
                V::T(now.clone()),
                V::I(5),
                V::I(check_in),
                V::I(check_out),
                ent.map_or(V::N, |e| V::T(e.clone())),
                V::T(if ent.is_some() { "quota" } else { "self_paid" }.into()),
                V::T("code".into()),
            ]);
        }
        let mut tx = db.begin().await?;
        insert(
            &mut tx,
            "staff",
            "id, org_id, name, role, skill_level, hired_on, created_at, updated_at, version",
            staff,
        )
        .await?;
        insert(
            &mut tx,
            "service_order",
            "id, provider_id, elder_id, service, planned_start, start_min, planned_minutes, caregiver_id, state, \
             check_in_at, check_in_lon, check_in_lat, check_out_at, confirmed_at, created_by, created_at, version, \
             check_in_min, check_out_min, entitlement_id, funded, confirmed_by",
            rows,
        )
        .await?;
        tx.commit().await?;
        done += n;
    }
    Ok((done, added))
}

/// For the check-in bench: `count` caregivers of the demo's first provider, each with an account
/// `cg0001`… (password `password`, hashed once for all) and one visit dispatched to her today at
/// 09:00 for an elder of the provider's town. Returns the provider's id.
pub async fn gen_caregivers(db: &Db, count: usize, password: &str) -> anyhow::Result<String> {
    let (provider, town): (String, String) = sqlx::query_as(
        "SELECT id, region_code FROM organisation WHERE kind = 'provider' ORDER BY region_code, id LIMIT 1",
    )
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| anyhow::anyhow!("no provider: run `yiyang demo` first"))?;
    let elders: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM elder WHERE status = 'active' AND residence_region >= $1 AND residence_region <= $2 ORDER BY id LIMIT $3",
    )
    .bind(format!("{}000", &town[..9]))
    .bind(format!("{}999", &town[..9]))
    .bind(count as i64)
    .fetch_all(&db.pool)
    .await?;
    anyhow::ensure!(!elders.is_empty(), "no elders in the provider's town");
    let hash = crate::identity::password::hash_async(password.to_string()).await;
    let now = crate::platform::now_rfc3339();
    let today = crate::platform::today();
    let nine = today
        .and_hms_opt(9, 0, 0)
        .expect("nine")
        .and_utc()
        .timestamp()
        / 60;
    let (mut staff, mut users, mut orders) = (vec![], vec![], vec![]);
    for i in 0..count {
        let sid = uuid::Uuid::now_v7().to_string();
        staff.push(vec![
            V::T(sid.clone()),
            V::T(provider.clone()),
            V::T(format!("压测护理员{:04}", i + 1)),
            V::T("caregiver".into()),
            V::I(4),
            V::T("2024-03-01".into()),
            V::T(now.clone()),
            V::T(now.clone()),
            V::I(1),
        ]);
        users.push(vec![
            V::T(uuid::Uuid::now_v7().to_string()),
            V::T(format!("cg{:04}", i + 1)),
            V::T(format!("压测护理员{:04}", i + 1)),
            V::T(hash.clone()),
            V::T("caregiver".into()),
            V::T(crate::demo::COUNTY.into()),
            V::I(1),
            V::I(0),
            V::I(1),
            V::T(now.clone()),
            V::I(0),
            V::T(provider.clone()),
            V::T(sid.clone()),
        ]);
        orders.push(vec![
            V::T(uuid::Uuid::now_v7().to_string()),
            V::T(provider.clone()),
            V::T(elders[i % elders.len()].clone()),
            V::T("cleaning".into()),
            V::T(format!("{today} 09:00")),
            V::I(nine),
            V::I(60),
            V::T(sid),
            V::T("dispatched".into()),
            V::T("bench".into()),
            V::T(now.clone()),
            V::I(1),
        ]);
    }
    let mut tx = db.begin().await?;
    insert(
        &mut tx,
        "staff",
        "id, org_id, name, role, skill_level, hired_on, created_at, updated_at, version",
        staff,
    )
    .await?;
    insert(
        &mut tx,
        "app_user",
        "id, username, display_name, password_hash, roles, region_code, scope_edit, scope_aggregates, \
         scope_individuals, created_at, must_change_password, org_id, staff_id",
        users,
    )
    .await?;
    insert(
        &mut tx,
        "service_order",
        "id, provider_id, elder_id, service, planned_start, start_min, planned_minutes, caregiver_id, state, \
         created_by, created_at, version",
        orders,
    )
    .await?;
    tx.commit().await?;
    Ok(provider)
}

/// A meal at the demo's meal points costs 12 元.
const MEAL_FEN: i64 = 1200;

/// The demo county's meal points: id and town.
async fn meal_points(db: &Db) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query(
        "SELECT id, region_code FROM organisation WHERE kind = 'meal_point' AND region_code >= '320682000000' \
         AND region_code <= '320682999999' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get::<String, _>(1)[..9].to_string()))
    .collect())
}

/// Add `n` meals in the month from `first` at the county's meal points, by the subsidy's
/// holders (the settlement bench: a city's month is visits and meals). The subsidy is put in
/// force from that month. How many were added (fewer when the holders' meals run out).
pub async fn gen_meals(db: &Db, first: NaiveDate, n: usize) -> anyhow::Result<usize> {
    let mut rng = StdRng::seed_from_u64(500_000);
    let points = meal_points(db).await?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE entitlement SET since = $1 WHERE item_code = 'meal_subsidy' AND state = 'granted' AND since > $1",
    )
    .bind(first.to_string())
    .execute(&mut *tx)
    .await?;
    let holders = holders(&mut tx).await?;
    let meals = meal_rows(&mut tx, &points, &holders, first, n, &mut rng).await?;
    let added = meals.len();
    insert(
        &mut tx,
        "meal_record",
        "id, meal_point_id, elder_id, day, meal, price_fen, subsidy_fen, entitlement_id, served_at, served_by, version_id, item_code",
        meals,
    )
    .await?;
    tx.commit().await?;
    Ok(added)
}

/// Who holds the meal subsidy (id, elder, fen a meal, town): a row once changed, or packed by
/// the catalogue's run (granted without application).
async fn holders(
    tx: &mut crate::platform::db::Tx<'_>,
) -> anyhow::Result<Vec<(String, String, i64, String)>> {
    let mut holders: Vec<(String, String, i64, String)> = sqlx::query(
        "SELECT n.id, n.elder_id, n.amount_fen, e.residence_region FROM entitlement n JOIN elder e ON e.id = n.elder_id \
         WHERE n.item_code = 'meal_subsidy' AND n.state = 'granted' AND e.status = 'active' ORDER BY n.elder_id",
    )
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<String, _>(3)[..9].to_string()))
    .collect();
    let packed =
        crate::catalog::pack::of_catalog(tx, None, |e| e.item_code == "meal_subsidy").await?;
    holders.extend(packed.iter().map(|h| {
        (
            h.id(),
            h.entry.elder_id.clone(),
            h.entry.amount_fen,
            h.entry.residence.get(..9).unwrap_or_default().to_string(),
        )
    }));
    Ok(holders)
}

/// `target` meals (lunch four times in five) in the month from `first` at the meal points,
/// each by a holder of the town's point where there are some, once a meal a day each.
async fn meal_rows(
    tx: &mut crate::platform::db::Tx<'_>,
    points: &[(String, String)],
    holders: &[(String, String, i64, String)],
    first: NaiveDate,
    target: usize,
    rng: &mut StdRng,
) -> anyhow::Result<Vec<Vec<V>>> {
    if holders.is_empty() || points.is_empty() {
        return Ok(vec![]);
    }
    let days = ((first + chrono::Months::new(1)) - first).num_days() as u32;
    let mut by_town: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, h) in holders.iter().enumerate() {
        by_town.entry(h.3.as_str()).or_default().push(i);
    }
    let all: Vec<usize> = (0..holders.len()).collect();
    let version: Option<String> = sqlx::query_scalar(
        "SELECT id FROM catalog_version WHERE region_code = '320682000000' AND state = 'published'",
    )
    .fetch_optional(&mut **tx)
    .await?;
    let mut taken = std::collections::HashSet::new();
    let mut meals = vec![];
    let mut tries = 0;
    while meals.len() < target && tries < target * 4 {
        tries += 1;
        let (point, town) = &points[tries % points.len()];
        let pool = by_town
            .get(town.as_str())
            .filter(|v| !v.is_empty())
            .unwrap_or(&all);
        let h = &holders[pool[rng.gen_range(0..pool.len())]];
        let day = first + chrono::Days::new(rng.gen_range(0..days) as u64);
        let (meal, at) = if rng.gen_range(0..5) < 4 {
            ("lunch", "03:30")
        } else {
            ("supper", "09:30")
        };
        if !taken.insert((h.1.clone(), day, meal)) {
            continue;
        }
        meals.push(vec![
            V::T(uuid::Uuid::now_v7().to_string()),
            V::T(point.clone()),
            V::T(h.1.clone()),
            V::T(day.to_string()),
            V::T(meal.into()),
            V::I(MEAL_FEN),
            V::I(h.2.min(MEAL_FEN)),
            V::T(h.0.clone()),
            // 11:30 and 17:30 China time.
            V::T(format!("{day}T{at}:00.000Z")),
            V::T("演示数据".into()),
            version.clone().map_or(V::N, V::T),
            V::T("meal_subsidy".into()),
        ]);
    }
    Ok(meals)
}

/// The meal points' contracts (a meal at 12 元) and last month's meals (老年助餐): lunches and
/// some suppers of the elders of each meal point's town who hold the meal subsidy, about 60,000
/// at full scale, each at most one of a kind a day. Returns (meal points, meals).
pub async fn seed_meals(db: &Db, scale: f64, today: NaiveDate) -> anyhow::Result<(usize, usize)> {
    let mut rng = StdRng::seed_from_u64(55_055);
    let first = (today.with_day(1).unwrap_or(today) - chrono::Months::new(1))
        .with_day(1)
        .unwrap_or(today);
    let now = crate::platform::now_rfc3339();
    let points = meal_points(db).await?;
    if points.is_empty() {
        return Ok((0, 0));
    }
    let mut tx = db.begin().await?;
    // The subsidy in force for the whole of last month.
    sqlx::query(
        "UPDATE entitlement SET since = $1 WHERE item_code = 'meal_subsidy' AND state = 'granted' AND since > $1",
    )
    .bind(first.to_string())
    .execute(&mut *tx)
    .await?;
    let holders = holders(&mut tx).await?;
    let (mut contracts, mut prices) = (vec![], vec![]);
    for (id, _) in &points {
        contracts.push(vec![
            V::T(id.clone()),
            V::T(format!("{}-01-01", first.year())),
            V::T(format!("{}-12-31", first.year() + 1)),
            V::T("演示数据".into()),
            V::T(now.clone()),
        ]);
        prices.push(vec![V::T(id.clone()), V::T("meal".into()), V::I(MEAL_FEN)]);
    }
    insert(
        &mut tx,
        "provider_contract",
        "org_id, starts_on, ends_on, updated_by, updated_at",
        contracts,
    )
    .await?;
    insert(
        &mut tx,
        "provider_price",
        "org_id, service, price_fen",
        prices,
    )
    .await?;
    let target = if holders.is_empty() {
        0
    } else {
        ((60_000.0 * scale.clamp(0.0, 1.0)).round() as usize).max(50)
    };
    let meals = meal_rows(&mut tx, &points, &holders, first, target, &mut rng).await?;
    let n = meals.len();
    insert(
        &mut tx,
        "meal_record",
        "id, meal_point_id, elder_id, day, meal, price_fen, subsidy_fen, entitlement_id, served_at, served_by, version_id, item_code",
        meals,
    )
    .await?;
    tx.commit().await?;
    Ok((points.len(), n))
}

//! `yiyang demo`: 如皋市 (320682) with its real towns and villages (the 2023 统计用区划代码, kept in
//! `data/rugao-regions.csv`) and ~400k invented elders with a realistic age pyramid and status mix, valid-looking citizen IDs, and demo accounts
//! with random passwords.

use crate::audit::{self, Entry, Who};
use crate::platform::crypto::KeyRing;
use crate::platform::db::Db;
use crate::region::{self, Region};
use crate::registry::model::ElderInput;
use crate::registry::store;
use chrono::{Datelike, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::AssertSqlSafe;
use std::collections::HashSet;
use yiyang_kernel::CitizenId;

pub const COUNTY: &str = "320682000000";
/// The demo city (南通市); it carries 宿迁's 2020–2022 target table for the demo.
pub const CITY: &str = "320600000000";
pub(crate) const SURNAMES: &[&str] = &[
    "王", "张", "陈", "李", "刘", "朱", "顾", "吴", "徐", "周", "黄", "孙", "季", "冒", "缪", "丁",
    "薛", "蒋", "许", "钱", "曹", "沈", "范", "戴",
];
const GIVEN_M: &[&str] = &[
    "建国", "国华", "志明", "德才", "友良", "长林", "宝山", "金根", "海生", "洪林", "正兴", "福田",
    "开明", "春生", "士明", "永康",
];
const GIVEN_F: &[&str] = &[
    "秀英", "桂兰", "玉珍", "凤英", "美华", "兰英", "素珍", "月娥", "翠兰", "银凤", "菊芳", "爱华",
    "淑贞", "巧云", "小妹", "金花",
];

const CHARS_M: &[char] = &[
    '国', '华', '明', '德', '才', '良', '林', '宝', '山', '根', '海', '生', '正', '兴', '福', '田',
    '开', '春', '士', '康', '学', '文', '建', '忠', '友', '长', '金', '荣', '树', '汉', '振', '义',
    '洪', '永', '祥', '贵',
];
const CHARS_F: &[char] = &[
    '秀', '英', '桂', '兰', '玉', '珍', '凤', '美', '华', '素', '月', '娥', '翠', '银', '菊', '芳',
    '爱', '淑', '贞', '巧', '云', '小', '妹', '金', '花', '梅', '琴', '霞', '芬', '萍', '红', '莲',
    '香', '琴', '娟', '丽',
];

/// Common given names of that generation for some, composed from typical characters for the rest,
/// so that names repeat about as much as real ones do.
pub(crate) fn given_name(rng: &mut StdRng, male: bool) -> String {
    let (common, chars) = if male {
        (GIVEN_M, CHARS_M)
    } else {
        (GIVEN_F, CHARS_F)
    };
    let r = rng.r#gen::<f64>();
    if r < 0.3 {
        common[rng.gen_range(0..common.len())].to_string()
    } else if r < 0.4 {
        chars[rng.gen_range(0..chars.len())].to_string()
    } else {
        format!(
            "{}{}",
            chars[rng.gen_range(0..chars.len())],
            chars[rng.gen_range(0..chars.len())]
        )
    }
}

/// The demo county's region table: 江苏省, 南通市, 如皋市, its 21 towns and streets and 355 villages
/// and communities (NBS 2023 edition, see `data/README.md`).
pub const REGION_TABLE: &[u8] = include_bytes!("../data/rugao-regions.csv");

/// Region rows of the demo county, read through the region import's own reader.
pub fn regions() -> Vec<Region> {
    let rows = region::import::read_rows(REGION_TABLE.to_vec(), "rugao-regions.csv")
        .expect("the embedded region table reads");
    let (rep, regions) = region::import::plan(rows, None, &Default::default());
    assert!(
        rep.rejected.is_empty(),
        "embedded region table: {:?}",
        rep.rejected
    );
    regions
}

/// (age band start, share) of the 60+ population.
const PYRAMID: &[(i64, f64)] = &[
    (60, 0.27),
    (65, 0.25),
    (70, 0.19),
    (75, 0.13),
    (80, 0.09),
    (85, 0.05),
    (90, 0.016),
    (95, 0.0035),
    (100, 0.0005),
];

pub fn pick_age(rng: &mut StdRng) -> i64 {
    let total: f64 = PYRAMID.iter().map(|p| p.1).sum();
    let mut x = rng.r#gen::<f64>() * total;
    for (i, (start, share)) in PYRAMID.iter().enumerate() {
        if x < *share || i == PYRAMID.len() - 1 {
            let width = if *start >= 100 { 6 } else { 5 };
            return start + rng.gen_range(0..width);
        }
        x -= share;
    }
    60
}

/// Generate `n` invented elders living in `villages`, deterministic for a seed.
pub fn generate(n: usize, villages: &[String], seed: u64, today: NaiveDate) -> Vec<ElderInput> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let age = pick_age(&mut rng);
        let birth = today - chrono::Duration::days(age * 365 + rng.gen_range(0..365));
        let male = rng.gen_bool(0.47);
        let seq = rng.gen_range(0..500u32) * 2 + if male { 1 } else { 0 };
        let s = yiyang_kernel::citizen_id::compose("320682", birth, seq);
        if !seen.insert(s.clone()) {
            continue;
        }
        let Ok(cid) = CitizenId::parse(&s, today) else {
            continue;
        };
        let village = villages[rng.gen_range(0..villages.len())].clone();
        let name = format!(
            "{}{}",
            SURNAMES[rng.gen_range(0..SURNAMES.len())],
            given_name(&mut rng, male)
        );
        let r = rng.r#gen::<f64>();
        let living = if r < 0.11 {
            "living_alone"
        } else if r < 0.45 {
            "empty_nest"
        } else if r < 0.55 {
            "left_behind"
        } else {
            "with_children"
        };
        let r = rng.r#gen::<f64>();
        let economic = if r < 0.012 {
            "extreme_poverty"
        } else if r < 0.045 {
            "minimum_living"
        } else if r < 0.06 {
            "near_minimum_living"
        } else {
            "ordinary"
        };
        let fps = if rng.gen_bool(0.003) {
            Some(if rng.gen_bool(0.7) {
                "lost_only_child"
            } else {
                "disabled_only_child"
            })
        } else {
            None
        };
        let disability = if rng.gen_bool(0.05) {
            Some(rng.gen_range(1..=4))
        } else {
            None
        };
        let phone = if rng.gen_bool(0.8) {
            Some(
                format!(
                    "1{}{:09}",
                    ["38", "39", "51", "57", "80", "89"][rng.gen_range(0..6)],
                    rng.gen_range(0..1_000_000_000u64)
                )
                .chars()
                .take(11)
                .collect(),
            )
        } else {
            None
        };
        out.push(ElderInput {
            sex: cid.sex(),
            birth_date: cid.birth_date(),
            citizen_id: cid,
            name,
            hukou_region: Some(village.clone()),
            residence_region: village,
            address: Some(format!(
                "{}组{}号",
                rng.gen_range(1..30),
                rng.gen_range(1..120)
            )),
            phone,
            lon: Some(120.4 + rng.r#gen::<f64>() * 0.45),
            lat: Some(32.2 + rng.r#gen::<f64>() * 0.35),
            living_status: Some(living),
            economic_status: Some(economic),
            family_planning_special: fps,
            disability_grade: disability,
            entitled_veteran_family: Some(rng.gen_bool(0.02)),
            death_date: None,
        });
    }
    out
}

pub async fn insert_elders(
    db: &Db,
    keys: &KeyRing,
    elders: &[ElderInput],
    source: &str,
) -> anyhow::Result<()> {
    let now = crate::platform::now_rfc3339();
    let today = crate::platform::today().to_string();
    let mut tx = db.begin().await?;
    let stamp = store::Stamp {
        source,
        now: &now,
        today: &today,
        change_seq: store::next_change_seq(&mut tx).await?,
    };
    for part in elders.chunks(1000) {
        let sql = format!(
            "INSERT INTO elder ({}) VALUES {}",
            store::INSERT_COLS,
            store::placeholders(db.backend, part.len(), store::INSERT_NCOLS)
        );
        let ids: Vec<String> = part
            .iter()
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (e, id) in part.iter().zip(&ids) {
            q = store::bind_elder(q, id, e, keys, &stamp);
        }
        q.execute(&mut *tx).await?;
    }
    audit::append(
        &mut tx,
        &Who {
            actor_id: None,
            actor_name: "yiyang demo".into(),
        },
        Entry {
            action: "registry.demo_generate",
            entity: "elder",
            entity_id: None,
            region_code: Some(COUNTY),
            detail: serde_json::json!({"rows": elders.len()}).to_string(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn ensure_regions(db: &Db) -> anyhow::Result<Vec<String>> {
    let rows = region::import::read_rows(REGION_TABLE.to_vec(), "rugao-regions.csv")
        .map_err(|e| anyhow::anyhow!(e))?;
    let who = Who {
        actor_id: None,
        actor_name: "yiyang demo".into(),
    };
    let files = ["rugao-regions.csv".to_string()];
    region::import::run(db, &who, rows, None, None, false, &files).await?;
    Ok(village_codes())
}

/// A schematic map of the demo county — its towns as a grid of squares, not their real
/// boundaries, and said so in its caption — with every home placed inside its town's square: the
/// public board shows what a county's own GeoJSON gives it.
async fn demo_map(db: &Db, regions: &region::RegionIndex, who: &Who) -> anyhow::Result<()> {
    use sqlx::Row;
    let towns: Vec<String> = regions
        .children(COUNTY)
        .iter()
        .map(|r| r.code.clone())
        .collect();
    let cell = |k: usize| (120.40 + (k % 5) as f64 * 0.1, 32.58 - (k / 5) as f64 * 0.08);
    let features: Vec<serde_json::Value> = towns
        .iter()
        .enumerate()
        .map(|(k, code)| {
            let (x, y) = cell(k);
            serde_json::json!({"type": "Feature", "properties": {"name": regions.name(code)},
                "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 0.1, y], [x + 0.1, y - 0.08], [x, y - 0.08], [x, y]]]}})
        })
        .collect();
    let doc = serde_json::json!({"type": "FeatureCollection", "name": "演示县乡镇示意图（非真实地界）", "features": features});
    region::map::save(
        db,
        &crate::identity::Scope::all(),
        who,
        COUNTY,
        doc.to_string().as_bytes(),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.detail))?;
    let homes: Vec<(String, String)> = sqlx::query(
        "SELECT id, region_code FROM organisation WHERE lon IS NULL ORDER BY region_code, name",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let mut tx = db.begin().await?;
    for (n, (id, region)) in homes.iter().enumerate() {
        let town = format!("{}000", &region[..9]);
        let Some(k) = towns.iter().position(|t| *t == town) else {
            continue;
        };
        let (x, y) = cell(k);
        sqlx::query("UPDATE organisation SET lon = $1, lat = $2 WHERE id = $3")
            .bind(x + 0.015 + ((n * 37) % 70) as f64 / 1000.0)
            .bind(y - 0.012 - ((n * 53) % 56) as f64 / 1000.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn build(db: &Db, keys: &KeyRing, scale: f64) -> anyhow::Result<usize> {
    let villages = ensure_regions(db).await?;
    let n = (400_000.0 * scale).round().max(0.0) as usize;
    if n == 0 {
        return Ok(0);
    }
    let today = crate::platform::today();
    let elders = generate(n, &villages, 20201231, today);
    insert_elders(db, keys, &elders, "演示数据（虚构）").await?;
    // About a third of the 80+ assessed, some of them long enough ago to be due again.
    let (headers, rows) = assessment_rows(&elders, 0.35, 0, 4242, today);
    let regions = crate::region::RegionIndex::load(db).await?;
    let scope = crate::identity::Scope::all();
    let who = Who {
        actor_id: None,
        actor_name: "演示数据".into(),
    };
    let ctx = crate::registry::import::Ctx {
        db,
        keys,
        regions: &regions,
        scope: &scope,
        who: &who,
        progress: Default::default(),
    };
    let approx_rows = rows.len();
    let table = crate::registry::import::Table {
        headers,
        rows: Box::new(rows.into_iter().map(csv::StringRecord::from)),
        approx_rows,
        again: None,
        layout: Default::default(),
    };
    crate::assessment::import::run(&ctx, table, false, "demo", "-").await?;
    // The county's basic-service catalogue, published and run once: the grants are there at start.
    crate::catalog::store::seed_demo(db, COUNTY, &who)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    let names = |c: &str| regions.name(&format!("{c:0<12}")).unwrap_or(c).to_string();
    crate::catalog::evaluate::run(db, &scope, &who, COUNTY, today, &names)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    // Homes, centres and providers with beds, residents and staff.
    crate::institution::demo::seed(db, scale, today).await?;
    // Home-care providers, caregivers and last month's visits.
    crate::home_service::demo::seed(db, keys, scale, today).await?;
    // Meal points' prices and last month's meals.
    crate::home_service::demo::seed_meals(db, scale, today).await?;
    // Call devices in the homes of elders living alone or disabled.
    crate::emergency::demo::seed(db, scale, today).await?;
    // Visit duties by the default rules, and three months of visits.
    crate::care_visit::demo::seed(db, &regions, today).await?;
    demo_map(db, &regions, &who).await?;
    // Last month's bed subsidy claims, made from those records.
    let last_month = (today.with_day(1).unwrap_or(today) - chrono::Days::new(1))
        .format("%Y-%m")
        .to_string();
    crate::institution::claim::compute(
        db,
        &regions,
        &scope,
        &who,
        crate::institution::claim::ComputeReq {
            region_code: COUNTY.into(),
            month: last_month,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.detail))?;
    Ok(n)
}

/// A synthetic province for benchmarks (`gen-province-regions`): 12 more cities of 江苏省 (the
/// demo's 南通市 aside), 6 counties each, 12 towns a county, 15 villages a town — 12,960 villages,
/// about a province's shape. Codes that cannot collide with the demo county (counties 21–26).
pub fn province_regions() -> Vec<Region> {
    let mut v = vec![];
    for c in (1..=13).filter(|c| *c != 6) {
        let city = format!("32{c:02}00000000");
        v.push(Region {
            code: city.clone(),
            name: format!("模拟{c}市"),
            level: 2,
            parent_code: Some("320000000000".into()),
        });
        for k in 21..=26 {
            let county = format!("32{c:02}{k:02}000000");
            v.push(Region {
                code: county.clone(),
                name: format!("模拟{c}市{k}县"),
                level: 3,
                parent_code: Some(city.clone()),
            });
            for t in 101..=112 {
                let town = format!("32{c:02}{k:02}{t:03}000");
                v.push(Region {
                    code: town.clone(),
                    name: format!("模拟{k}县{t}镇"),
                    level: 4,
                    parent_code: Some(county.clone()),
                });
                for vi in 201..=215 {
                    v.push(Region {
                        code: format!("32{c:02}{k:02}{t:03}{vi:03}"),
                        name: format!("模拟{t}镇{vi}村"),
                        level: 5,
                        parent_code: Some(town.clone()),
                    });
                }
            }
        }
    }
    v
}

pub fn province_villages() -> Vec<String> {
    province_regions()
        .into_iter()
        .filter(|r| r.level == 5)
        .map(|r| r.code)
        .collect()
}

/// The villages generated people live in: the synthetic province's or the demo county's.
fn villages(province: bool) -> Vec<String> {
    if province {
        province_villages()
    } else {
        village_codes()
    }
}

/// Village codes of the demo county (no database needed).
pub fn village_codes() -> Vec<String> {
    regions()
        .into_iter()
        .filter(|r| r.level == 5)
        .map(|r| r.code)
        .collect()
}

/// A registry file in the import template's shape; `bad` rows get one defect each (bad check
/// character, unknown region, bad status, missing name), spread evenly.
pub fn write_registry_file(
    out: &std::path::Path,
    rows: usize,
    bad: usize,
    seed: u64,
    province: bool,
    office: bool,
    changed: usize,
) -> anyhow::Result<usize> {
    let villages = villages(province);
    let elders = generate(rows, &villages, seed, crate::platform::today());
    let headers: Vec<&str> = crate::registry::model::COLUMNS
        .iter()
        .map(|c| c.zh)
        .collect();
    let step = rows.checked_div(bad).map_or(usize::MAX, |s| s.max(1));
    // A corrected file: `changed` rows (spread, apart from the bad ones) carry another phone and
    // living status than the same seed's first file.
    let every = rows.checked_div(changed).map_or(usize::MAX, |s| s.max(1));
    let lab = |list: &[(&'static str, &'static str)], c: Option<&str>| {
        c.map(|c| crate::registry::model::label_of(list, c))
            .unwrap_or_default()
    };
    let mut records: Vec<Vec<String>> = Vec::with_capacity(rows);
    for (i, e) in elders.iter().enumerate() {
        let mut cid = e.citizen_id.as_str().to_string();
        let mut name = e.name.clone();
        let mut region = e.residence_region.clone();
        let mut living = lab(crate::registry::model::LIVING_STATUS, e.living_status);
        let mut phone = e.phone.clone().unwrap_or_default();
        if every != usize::MAX && i % every == every / 3 && i / every < changed {
            living = if e.living_status == Some("living_alone") {
                "与子女同住"
            } else {
                "独居"
            }
            .into();
            phone = format!("139{:08}", (i * 7919) % 100_000_000);
        }
        if step != usize::MAX && i % step == step / 2 && i / step < bad {
            match (i / step) % 4 {
                0 => {
                    let last = cid.pop().unwrap_or('0');
                    cid.push(if last == '1' { '2' } else { '1' });
                }
                1 => region = "110101001001".into(),
                2 => living = "合租".into(),
                _ => name.clear(),
            }
        }
        records.push(vec![
            cid,
            name,
            e.sex.zh().into(),
            e.birth_date.to_string(),
            e.hukou_region.clone().unwrap_or_default(),
            region,
            e.address.clone().unwrap_or_default(),
            phone,
            e.lon.map(|v| format!("{v:.5}")).unwrap_or_default(),
            e.lat.map(|v| format!("{v:.5}")).unwrap_or_default(),
            living,
            lab(crate::registry::model::ECONOMIC_STATUS, e.economic_status),
            lab(
                crate::registry::model::FAMILY_PLANNING,
                e.family_planning_special,
            ),
            e.disability_grade
                .map(|g| g.to_string())
                .unwrap_or_default(),
            e.entitled_veteran_family
                .map(|b| if b { "是" } else { "否" }.to_string())
                .unwrap_or_default(),
            String::new(),
        ]);
    }
    if office {
        write_office_xlsx(out, &headers, records)?;
    } else if out.extension().is_some_and(|x| x == "xlsx") {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet_with_constant_memory();
        for (i, h) in headers.iter().enumerate() {
            ws.write_string(0, i as u16, *h)?;
        }
        for (r, rec) in records.iter().enumerate() {
            for (c, v) in rec.iter().enumerate() {
                if !v.is_empty() {
                    ws.write_string((r + 1) as u32, c as u16, v)?;
                }
            }
        }
        wb.save(out)?;
    } else {
        let mut w = csv::Writer::from_path(out)?;
        w.write_record(&headers)?;
        for rec in &records {
            w.write_record(rec)?;
        }
        w.flush()?;
    }
    Ok(rows)
}

/// The same rows as a town office would send them: one sheet per village (named after it), a
/// title and the reporting unit above the header, a 序号 column, the village's code merged down
/// its rows, a total and the signatures under the table, and a sheet of instructions.
fn write_office_xlsx(
    out: &std::path::Path,
    headers: &[&str],
    records: Vec<Vec<String>>,
) -> anyhow::Result<()> {
    let names: std::collections::HashMap<String, String> =
        regions().into_iter().map(|r| (r.code, r.name)).collect();
    let region_col = headers
        .iter()
        .position(|h| *h == "居住地区划代码")
        .expect("the template has the residence column");
    let mut by_village: std::collections::BTreeMap<String, Vec<Vec<String>>> = Default::default();
    for r in records {
        by_village.entry(r[region_col].clone()).or_default().push(r);
    }
    let mut wb = rust_xlsxwriter::Workbook::new();
    let title = rust_xlsxwriter::Format::new().set_bold().set_font_size(14);
    let plain = rust_xlsxwriter::Format::new();
    for (code, rows) in by_village {
        let village = names.get(&code).cloned().unwrap_or_else(|| code.clone());
        let town = names
            .get(&format!("{}000", &code[..9.min(code.len())]))
            .cloned()
            .unwrap_or_default();
        let ws = wb.add_worksheet();
        // Sheet names are unique and at most 31 characters.
        ws.set_name(format!(
            "{}{}",
            village.chars().take(20).collect::<String>(),
            &code[code.len().saturating_sub(6)..]
        ))?;
        let last = headers.len() as u16;
        ws.merge_range(
            0,
            0,
            0,
            last,
            &format!("{town}{village}80周岁以上老年人基本信息登记表"),
            &title,
        )?;
        ws.write_string(1, 0, format!("填报单位：{town}{village}"))?;
        ws.write_string(2, 0, "序号")?;
        for (i, h) in headers.iter().enumerate() {
            ws.write_string(2, i as u16 + 1, *h)?;
        }
        for (k, rec) in rows.iter().enumerate() {
            let r = 3 + k as u32;
            ws.write_number(r, 0, (k + 1) as f64)?;
            for (c, v) in rec.iter().enumerate() {
                if !v.is_empty() && c != region_col {
                    ws.write_string(r, c as u16 + 1, v)?;
                }
            }
        }
        let col = region_col as u16 + 1;
        let end = 3 + rows.len() as u32 - 1;
        if end > 3 {
            ws.merge_range(3, col, end, col, &code, &plain)?;
        } else {
            ws.write_string(3, col, &code)?;
        }
        ws.write_string(end + 1, 0, "合计")?;
        ws.write_string(end + 1, 2, format!("{} 人", rows.len()))?;
        ws.write_string(end + 3, 0, "填表人：")?;
        ws.write_string(end + 3, 4, "审核人：")?;
        ws.write_string(end + 3, 8, "填报日期：")?;
    }
    wb.add_worksheet().set_name("填表说明")?.write_string(
        0,
        0,
        "一、每村（社区）一张表；二、身份证号按文本格式填写。",
    )?;
    wb.save(out)?;
    Ok(())
}

/// Assessment rows in the assessment import's shape for some of `elders`: about `share` of the
/// 80+ and a tenth of that share of the younger ones. Most are GB/T 42195-2022 assessments with
/// item scores (older people score lower), dated within the last 20 months so some have expired;
/// one in ten is an adopted LTC rating and one in twenty a legacy MZ/T 039-2013 result. `bad`
/// rows get one defect each (bad check character, score out of range, one assessor, unknown
/// person), spread evenly.
pub fn assessment_rows(
    elders: &[ElderInput],
    share: f64,
    bad: usize,
    seed: u64,
    today: NaiveDate,
) -> (Vec<String>, Vec<Vec<String>>) {
    use crate::assessment::import::COLUMNS;
    use yiyang_kernel::assessment::ITEMS;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut headers: Vec<String> = COLUMNS.iter().map(|c| c.1.to_string()).collect();
    headers.extend(ITEMS.iter().map(|i| format!("{} {}", i.code, i.name)));
    let col = |k: &str| COLUMNS.iter().position(|c| c.0 == k).unwrap_or(0);
    let surnames = ["张", "李", "王", "陈", "刘", "杨", "黄", "周"];
    let mut rows = vec![];
    for e in elders {
        let age = yiyang_kernel::citizen_id::age_on(e.birth_date, today);
        let p = if age >= 80 { share } else { share / 10.0 };
        if !rng.gen_bool(p.clamp(0.0, 1.0)) {
            continue;
        }
        let mut r = vec![String::new(); headers.len()];
        r[col("citizen_id")] = e.citizen_id.as_str().to_string();
        let kind = rng.gen_range(0..20);
        // Frailer with age: each item loses points with a chance that grows after 75.
        let frail = ((age - 60).max(0) as f64 / 60.0).min(0.9);
        let level_name = |l: usize| yiyang_kernel::assessment::LEVEL_NAMES[l].to_string();
        if kind == 0 {
            let on = today - chrono::Duration::days(rng.gen_range(1500..2600));
            r[col("assessed_on")] = on.to_string();
            r[col("standard")] = "MZ/T 039-2013".into();
            r[col("level")] = level_name(rng.gen_range(0..4));
        } else if kind <= 2 {
            let on = today - chrono::Duration::days(rng.gen_range(10..500));
            r[col("assessed_on")] = on.to_string();
            r[col("standard")] = "长护险".into();
            r[col("level")] = level_name(rng.gen_range(2..5));
            r[col("source")] = "如皋市医疗保障局".into();
            r[col("source_level")] =
                ["重度失能一级", "重度失能二级", "重度失能三级"][rng.gen_range(0..3)].into();
        } else {
            let on = today - chrono::Duration::days(rng.gen_range(1..600));
            r[col("assessed_on")] = on.to_string();
            r[col("standard")] = "GB/T 42195-2022".into();
            r[col("reason")] = ["首次评估", "常规评估", "即时评估"][rng.gen_range(0..3)].into();
            r[col("assessor1")] = format!("{}评估", surnames[rng.gen_range(0..4)]);
            r[col("assessor2")] = format!("{}评估", surnames[rng.gen_range(4..8)]);
            r[col("informant")] = ["本人", "女儿", "儿子", "老伴"][rng.gen_range(0..4)].into();
            if rng.gen_bool(0.05) {
                r[col("dementia_confirmed")] = "是".into();
            }
            if rng.gen_bool(0.03) {
                r[col("fall")] = "2".into();
            }
            for (i, it) in ITEMS.iter().enumerate() {
                let scores: Vec<u8> = it.options.iter().map(|o| o.score).collect();
                let max = *scores.iter().max().unwrap_or(&0);
                let s = if rng.gen_bool(frail) {
                    scores[rng.gen_range(0..scores.len())]
                } else {
                    max
                };
                r[COLUMNS.len() + i] = s.to_string();
            }
        }
        rows.push(r);
    }
    let n = rows.len();
    let step = n.checked_div(bad).map_or(usize::MAX, |s| s.max(1));
    for (i, r) in rows.iter_mut().enumerate() {
        if step == usize::MAX || i % step != step / 2 || i / step >= bad {
            continue;
        }
        match (i / step) % 4 {
            0 => {
                let c = &mut r[col("citizen_id")];
                let last = c.pop().unwrap_or('0');
                c.push(if last == '1' { '2' } else { '1' });
            }
            1 => {
                r[col("standard")] = "GB/T 42195-2022".into();
                r[col("assessor1")] = "甲".into();
                r[col("assessor2")] = "乙".into();
                for (j, it) in ITEMS.iter().enumerate() {
                    r[COLUMNS.len() + j] = it.max().to_string();
                }
                r[COLUMNS.len() + 2] = "9".into();
            }
            2 => {
                r[col("standard")] = "GB/T 42195-2022".into();
                r[col("assessor2")].clear();
            }
            _ => {
                // A valid ID of nobody in the registry (born in 1900).
                r[col("citizen_id")] = yiyang_kernel::citizen_id::compose(
                    "320682",
                    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(today),
                    (i % 500) as u32 * 2,
                );
            }
        }
    }
    (headers, rows)
}

/// An assessment file (CSV or XLSX by extension) for the people of `gen-registry-file --rows
/// elder_rows --seed elder_seed`.
pub fn write_assessment_file(
    out: &std::path::Path,
    elder_rows: usize,
    elder_seed: u64,
    share: f64,
    bad: usize,
    seed: u64,
    province: bool,
) -> anyhow::Result<usize> {
    let today = crate::platform::today();
    let villages = villages(province);
    let elders = generate(elder_rows, &villages, elder_seed, today);
    let (headers, rows) = assessment_rows(&elders, share, bad, seed, today);
    if out.extension().is_some_and(|x| x == "xlsx") {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet_with_constant_memory();
        for (i, h) in headers.iter().enumerate() {
            ws.write_string(0, i as u16, h)?;
        }
        for (r, rec) in rows.iter().enumerate() {
            for (c, v) in rec.iter().enumerate() {
                if !v.is_empty() {
                    ws.write_string((r + 1) as u32, c as u16, v)?;
                }
            }
        }
        wb.save(out)?;
    } else {
        let mut w = csv::Writer::from_path(out)?;
        w.write_record(&headers)?;
        for rec in &rows {
            w.write_record(rec)?;
        }
        w.flush()?;
    }
    Ok(rows.len())
}

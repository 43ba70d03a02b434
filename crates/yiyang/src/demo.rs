//! `yiyang demo`: a synthetic county shaped like 如皋市 (320682) — towns, villages, ~400k invented
//! elders with a realistic age pyramid and status mix, valid-looking citizen IDs, and demo accounts
//! with random passwords.

use crate::audit::{self, Entry, Who};
use crate::platform::crypto::KeyRing;
use crate::platform::db::Db;
use crate::region::{self, Region};
use crate::registry::model::ElderInput;
use crate::registry::store;
use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::AssertSqlSafe;
use std::collections::HashSet;
use yiyang_kernel::CitizenId;

pub const COUNTY: &str = "320682000000";
const TOWNS: &[&str] = &[
    "如城街道",
    "城南街道",
    "城北街道",
    "东陈镇",
    "丁堰镇",
    "白蒲镇",
    "下原镇",
    "九华镇",
    "石庄镇",
    "长江镇",
    "吴窑镇",
    "江安镇",
    "磨头镇",
    "搬经镇",
];
const VILLAGE_STEMS: &[&str] = &[
    "东方", "新华", "红星", "光明", "永安", "太平", "长青", "富民", "兴隆", "丰收", "和平", "团结",
    "金桥", "桃园", "杨庄", "李堡", "花园", "南湖", "北河", "双桥", "张湾", "王庄", "陈集", "刘圩",
    "朱港", "顾庄", "季家", "蒋垛",
];
const SURNAMES: &[&str] = &[
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
fn given_name(rng: &mut StdRng, male: bool) -> String {
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

/// Region rows of the demo county: county, 14 towns, 22 villages each.
pub fn regions() -> Vec<Region> {
    let mut v = vec![
        Region {
            code: "320000000000".into(),
            name: "江苏省".into(),
            level: 1,
            parent_code: None,
        },
        Region {
            code: "320600000000".into(),
            name: "南通市".into(),
            level: 2,
            parent_code: Some("320000000000".into()),
        },
        Region {
            code: COUNTY.into(),
            name: "如皋市".into(),
            level: 3,
            parent_code: Some("320600000000".into()),
        },
    ];
    for (ti, t) in TOWNS.iter().enumerate() {
        let town_code = if ti < 3 {
            format!("320682{:03}000", ti + 1)
        } else {
            format!("320682{:03}000", 100 + ti)
        };
        v.push(Region {
            code: town_code.clone(),
            name: t.to_string(),
            level: 4,
            parent_code: Some(COUNTY.into()),
        });
        for vi in 0..22 {
            let stem = VILLAGE_STEMS[(ti * 7 + vi) % VILLAGE_STEMS.len()];
            let kind = if ti < 3 || vi < 3 { "社区" } else { "村" };
            let prefix = if vi >= VILLAGE_STEMS.len() / 2 {
                "新"
            } else {
                ""
            };
            v.push(Region {
                code: format!(
                    "{}{:03}",
                    &town_code[..9],
                    if kind == "社区" { 1 + vi } else { 200 + vi }
                ),
                name: format!("{prefix}{stem}{kind}"),
                level: 5,
                parent_code: Some(town_code.clone()),
            });
        }
    }
    v
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
    let regs = regions();
    region::upsert(db, &regs).await?;
    Ok(regs
        .into_iter()
        .filter(|r| r.level == 5)
        .map(|r| r.code)
        .collect())
}

pub async fn build(db: &Db, keys: &KeyRing, scale: f64) -> anyhow::Result<usize> {
    let villages = ensure_regions(db).await?;
    let n = (400_000.0 * scale).round().max(0.0) as usize;
    if n == 0 {
        return Ok(0);
    }
    let elders = generate(n, &villages, 20201231, crate::platform::today());
    insert_elders(db, keys, &elders, "演示数据（虚构）").await?;
    Ok(n)
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
) -> anyhow::Result<usize> {
    let elders = generate(rows, &village_codes(), seed, crate::platform::today());
    let headers: Vec<&str> = crate::registry::model::COLUMNS
        .iter()
        .map(|c| c.zh)
        .collect();
    let step = rows.checked_div(bad).map_or(usize::MAX, |s| s.max(1));
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
            e.phone.clone().unwrap_or_default(),
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
    if out.extension().is_some_and(|x| x == "xlsx") {
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

//! Import of assessments from CSV or XLSX: GB/T 42195-2022 results with all item scores (scored
//! here by the engine, as if entered on the form), adopted long-term-care-insurance ratings (level
//! and source), and legacy MZ/T 039-2013 results (history only). Same behaviour as the registry
//! import: a dry run, per-row errors with the original row, one transaction for the whole file.
//!
//! A row is identified by (person, date, standard): importing the same file again changes nothing;
//! a row that differs from what is stored becomes a correction of the stored record (which stays).

use super::store::{self as astore, LTC_STANDARD};
use crate::platform::db::{Cell, CopyBinary};
use crate::registry::import::{Ctx, ImportError, Rejected, RowError, Summary, Table, owned_cells};
use crate::registry::model::{iso_date, parse_date};
use crate::registry::store::{CID_DOMAIN, Cols, NEXT_CHANGE_SEQ, placeholders};
use chrono::{Datelike, NaiveDate};
use sqlx::AssertSqlSafe;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use yiyang_kernel::assessment::{self, Config, Input, RiskEvents};
use yiyang_kernel::citizen_id::CitizenId;
use yiyang_kernel::mzt039;

/// foldhash, not SipHash: the keys are column names, keyed digests and ids, none of them chosen by
/// whoever writes the file; SipHash was a twentieth of the import's time.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Rows per statement (17 columns per assessment row stays far below both engines' bind limits).
const CHUNK: usize = 500;

/// The columns besides the item scores: key, Chinese header, required, hint for the template.
pub const COLUMNS: &[(&str, &str, bool, &str)] = &[
    (
        "citizen_id",
        "身份证号",
        true,
        "18位身份证号，须已在老年人档案中登记",
    ),
    (
        "assessed_on",
        "评估日期",
        true,
        "评估或评定日期，如 2025-03-01",
    ),
    (
        "standard",
        "评估标准",
        true,
        "GB/T 42195-2022、MZ/T 039-2013 或 长护险（直接采信长期护理保险失能等级评定）",
    ),
    (
        "reason",
        "评估原因",
        false,
        "首次评估、常规评估、即时评估、复评、其他；不填为常规评估",
    ),
    (
        "assessor1",
        "评估员1",
        false,
        "GB/T 42195-2022 评估必填两名评估员",
    ),
    ("assessor2", "评估员2", false, ""),
    ("informant", "信息提供者", false, ""),
    ("coma", "昏迷", false, "是/否"),
    ("dementia_confirmed", "确诊痴呆", false, "是/否（F00–F03）"),
    (
        "psychiatric_dx_by_specialist",
        "精神科诊断",
        false,
        "是/否：精神科专科医生诊断的其他精神和行为障碍",
    ),
    ("fall", "近30天跌倒次数", false, "0–3，3 表示 3 次及以上"),
    ("wandering", "近30天走失次数", false, ""),
    ("choking", "近30天噎食次数", false, ""),
    ("suicide_self_harm", "近30天自杀自伤次数", false, ""),
    ("other_event", "近30天其他意外次数", false, ""),
    (
        "level",
        "能力等级",
        false,
        "长护险采信和无分项的 MZ/T 039-2013 记录必填：能力完好、轻度失能、中度失能、重度失能、完全失能（或 0–4）",
    ),
    (
        "source",
        "评定机构",
        false,
        "长护险采信必填，如 如皋市医疗保障局",
    ),
    (
        "source_level",
        "原评定等级",
        false,
        "长护险评定结论原文，如 重度失能二级",
    ),
];

/// The standard of legacy results kept as history (they never become the current level).
pub const LEGACY_STANDARD: &str = "MZ/T 039-2013";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Std {
    Gbt,
    Mzt,
    Ltc,
}

impl Std {
    fn parse(s: &str) -> Option<Std> {
        let n: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_uppercase();
        Some(match n.as_str() {
            "" | "GB/T42195-2022" | "GB/T42195" | "GBT42195-2022" | "GB/T42195—2022" => Std::Gbt,
            "MZ/T039-2013" | "MZ/T039" | "MZT039-2013" | "MZ/T039—2013" => Std::Mzt,
            "长护险" | "长期护理保险" | "LTC" | "直接采信" => Std::Ltc,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Std::Gbt => assessment::STANDARD,
            Std::Mzt => LEGACY_STANDARD,
            Std::Ltc => LTC_STANDARD,
        }
    }
}

/// Map a header cell to a column key or an item code ("B2.3" or "B2.3 平地行走").
pub fn header_key(h: &str) -> Option<String> {
    let h = h
        .trim()
        .trim_start_matches('\u{feff}')
        .trim_matches('*')
        .trim();
    if let Some((k, ..)) = COLUMNS
        .iter()
        .find(|c| c.1 == h || c.0.eq_ignore_ascii_case(h))
    {
        return Some(k.to_string());
    }
    let code: String = h
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let code = code.to_ascii_uppercase();
    let is_item = code.starts_with('B')
        && code[1..]
            .split_once('.')
            .is_some_and(|(a, b)| a.parse::<u8>().is_ok() && b.parse::<u8>().is_ok());
    is_item.then_some(code)
}

/// One valid row, ready to write.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub row_no: i64,
    pub bidx: String,
    std: Std,
    pub assessed_on: NaiveDate,
    pub reason: String,
    pub assessors: [String; 2],
    pub informant: Option<String>,
    pub source: Option<String>,
    /// Stored input and result (JSON text) and the final level.
    pub input: String,
    pub result: String,
    pub level: i64,
}

fn yes(v: &str) -> Result<bool, String> {
    match v.trim() {
        "" | "否" | "无" | "0" | "N" | "n" | "false" | "FALSE" => Ok(false),
        "是" | "有" | "1" | "Y" | "y" | "true" | "TRUE" => Ok(true),
        other => Err(format!("“{other}”应为 是 或 否")),
    }
}

fn count(v: &str) -> Result<u8, String> {
    let v = v.trim().trim_end_matches("次及以上").trim_end_matches('次');
    if v.is_empty() || v == "无" {
        return Ok(0);
    }
    v.parse::<u8>()
        .ok()
        .filter(|n| *n <= 9)
        .map(|n| n.min(3))
        .ok_or_else(|| format!("次数“{v}”应为 0–3"))
}

fn level_of(v: &str, max: u8) -> Result<u8, String> {
    let v = v.trim();
    let names = assessment::LEVEL_NAMES;
    v.parse::<u8>()
        .ok()
        .or_else(|| names.iter().position(|n| *n == v).map(|i| i as u8))
        .filter(|l| *l <= max)
        .ok_or_else(|| {
            format!(
                "能力等级“{v}”无效，应为 {}（或 0–{max}）",
                names[..=max as usize].join("、")
            )
        })
}

fn reason_of(v: &str, std: Std) -> Result<String, String> {
    let v = v.trim();
    if std == Std::Ltc {
        return Ok("ltc_adoption".into());
    }
    if v.is_empty() {
        return Ok("routine".into());
    }
    astore::REASONS
        .iter()
        .filter(|r| r.0 != "ltc_adoption")
        .find(|r| r.0 == v || r.1 == v || (v == "复评" && r.0 == "disputed"))
        .map(|r| r.0.to_string())
        .ok_or_else(|| {
            format!("评估原因“{v}”无效，应为 首次评估、常规评估、即时评估、复评 或 其他")
        })
}

/// Validate one row (values by column key, item scores by code). Pure: no I/O.
fn validate_row<'c>(
    get: &dyn Fn(&str) -> &'c str,
    items_in_file: &[String],
    today: NaiveDate,
) -> Result<(CitizenId, Prepared), String> {
    let mut errs: Vec<String> = vec![];
    let cid = CitizenId::parse(get("citizen_id"), today).map_err(|e| errs.push(e.to_string()));
    let on = match parse_date(get("assessed_on")) {
        Some(d) if d > today => {
            errs.push("评估日期不能晚于今天".into());
            None
        }
        Some(d) if d.year_ce().1 < 2000 => {
            errs.push("评估日期早于2000年，请核对".into());
            None
        }
        Some(d) => Some(d),
        None => {
            errs.push("评估日期无效，应为 YYYY-MM-DD".into());
            None
        }
    };
    let std_raw = get("standard");
    let Some(std) = Std::parse(std_raw) else {
        errs.push(format!(
            "评估标准“{}”无效，应为 GB/T 42195-2022、MZ/T 039-2013 或 长护险",
            std_raw.trim()
        ));
        return Err(errs.join("；"));
    };
    let reason = reason_of(get("reason"), std).map_err(|e| errs.push(e));
    let text = |k: &str, max: usize, what: &str, errs: &mut Vec<String>| -> Option<String> {
        let v = get(k).trim().to_string();
        if v.chars().count() > max {
            errs.push(format!("{what}过长（最多{max}个字）"));
        }
        (!v.is_empty()).then_some(v)
    };
    let a1 = text("assessor1", 30, "评估员1", &mut errs);
    let a2 = text("assessor2", 30, "评估员2", &mut errs);
    let informant = text("informant", 30, "信息提供者", &mut errs);
    let source = text("source", 100, "评定机构", &mut errs);
    let source_level = text("source_level", 50, "原评定等级", &mut errs);
    // Item code → score as written (only the filled ones), borrowed from the row.
    let scores: Vec<(&String, &str)> = items_in_file
        .iter()
        .map(|c| (c, get(c).trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let flag = |k: &str, errs: &mut Vec<String>| {
        yes(get(k)).unwrap_or_else(|e| {
            errs.push(format!(
                "{}：{e}",
                COLUMNS.iter().find(|c| c.0 == k).map_or(k, |c| c.1)
            ));
            false
        })
    };
    let cnt = |k: &str, errs: &mut Vec<String>| {
        count(get(k)).unwrap_or_else(|e| {
            errs.push(e);
            0
        })
    };
    let coma = flag("coma", &mut errs);
    let dementia = flag("dementia_confirmed", &mut errs);
    let psychiatric = flag("psychiatric_dx_by_specialist", &mut errs);
    let events = RiskEvents {
        fall: cnt("fall", &mut errs),
        wandering: cnt("wandering", &mut errs),
        choking: cnt("choking", &mut errs),
        suicide_self_harm: cnt("suicide_self_harm", &mut errs),
        other: cnt("other_event", &mut errs),
    };
    let mut level = None;
    let mut input = String::new();
    let mut result = String::new();
    match std {
        Std::Gbt => {
            if a1.is_none() || a2.is_none() || a1 == a2 {
                errs.push("GB/T 42195-2022 评估须填写两名不同的评估员".into());
            }
            // Collected, not inserted one by one: built from sorted pairs in one go (26 inserts a
            // row were a twelfth of the import's CPU).
            let mut pairs = Vec::with_capacity(scores.len());
            for (code, v) in &scores {
                match v.parse::<u8>() {
                    Ok(n) => pairs.push(((*code).clone(), n)),
                    Err(_) => errs.push(format!("{code} 的分值“{v}”不是数字")),
                }
            }
            let items: BTreeMap<String, u8> = pairs.into_iter().collect();
            let inp = Input {
                items,
                options: BTreeMap::new(),
                coma,
                dementia_confirmed: dementia,
                psychiatric_dx_by_specialist: psychiatric,
                risk_events_30d: events,
            };
            if errs.is_empty() {
                match assessment::assess(&inp, &Config::default()) {
                    Ok(o) => {
                        level = Some(o.final_level);
                        result = astore::result_json(&o);
                        input = serde_json::to_string(&inp).unwrap_or_default();
                    }
                    Err(e) => errs.push(e.to_string()),
                }
            }
        }
        Std::Ltc => {
            if source.is_none() {
                errs.push("长护险采信须填写评定机构".into());
            }
            match level_of(get("level"), 4) {
                Ok(l) => level = Some(l),
                Err(e) => errs.push(e),
            }
            if !scores.is_empty() {
                errs.push("长护险采信不填分项得分".into());
            }
            if let (Some(l), Some(on)) = (level, on) {
                let sl = source_level
                    .clone()
                    .unwrap_or_else(|| assessment::LEVEL_NAMES[l as usize].to_string());
                input = serde_json::json!({"source": source, "rated_on": on.to_string(), "source_level": sl, "level": l})
                    .to_string();
                result = serde_json::json!({"final_level": l, "adopted": true, "source_level": sl})
                    .to_string();
            }
        }
        Std::Mzt => {
            // History only. With all 22 item scores the result is scored by the MZ/T engine (and
            // must agree with a level given beside them); without, the level as the earlier system
            // recorded it (MZ/T has four, 0–3).
            let given = get("level");
            let given = (!given.trim().is_empty()).then(|| level_of(given, 3));
            if scores.is_empty() {
                match given {
                    Some(Ok(l)) => level = Some(l),
                    Some(Err(e)) => errs.push(e),
                    None => errs.push("MZ/T 039-2013 记录须填写能力等级或全部 22 项得分".into()),
                }
                if let Some(l) = level {
                    input = serde_json::json!({"level": l}).to_string();
                    result = serde_json::json!({"final_level": l, "legacy": true,
                        "final_level_name": assessment::LEVEL_NAMES[l as usize]})
                    .to_string();
                }
            } else {
                let mut items = BTreeMap::new();
                for (code, v) in &scores {
                    match v.parse::<u8>() {
                        Ok(n) => {
                            items.insert((*code).clone(), n);
                        }
                        Err(_) => errs.push(format!("{code} 的分值“{v}”不是数字")),
                    }
                }
                let inp = mzt039::Input {
                    items: items.clone(),
                    dementia: if dementia {
                        mzt039::Dementia::Mild
                    } else {
                        mzt039::Dementia::None
                    },
                    // Any listed illness triggers the same clause; which one is not recorded here.
                    mental_illness: if psychiatric {
                        mzt039::MentalIllness::Schizophrenia
                    } else {
                        mzt039::MentalIllness::None
                    },
                    risk_events_30d: events,
                };
                if errs.is_empty() {
                    match mzt039::assess(&inp, &mzt039::Config::default()) {
                        Ok(o) => {
                            if let Some(Ok(g)) = given
                                && g != o.final_level
                            {
                                errs.push(format!(
                                    "填写的能力等级“{}”与按 22 项得分计算的“{}”不符",
                                    mzt039::LEVEL_NAMES[g as usize],
                                    o.final_level_name()
                                ));
                            }
                            level = Some(o.final_level);
                            let mut r = serde_json::to_value(&o).unwrap_or_default();
                            r["reason_texts"] = o.reasons.iter().map(|x| x.zh()).collect();
                            r["final_level_name"] = o.final_level_name().into();
                            r["legacy"] = true.into();
                            result = r.to_string();
                            input = serde_json::json!({"items": items, "dementia": dementia,
                                "mental_illness": psychiatric, "risk_events_30d": events})
                            .to_string();
                        }
                        Err(e) => errs.push(e.to_string()),
                    }
                }
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs.join("；"));
    }
    let (Ok(cid), Some(on), Ok(reason), Some(level)) = (cid, on, reason, level) else {
        return Err("该行数据不完整".into());
    };
    Ok((
        cid,
        Prepared {
            row_no: 0,
            bidx: String::new(),
            std,
            assessed_on: on,
            reason,
            assessors: [a1.unwrap_or_default(), a2.unwrap_or_default()],
            informant,
            source,
            input,
            result,
            level: level as i64,
        },
    ))
}

/// A row checked by the validator: ready to write (with its cells, kept for a duplicate's error
/// report), or rejected with the reason and its cells.
type Checked = Result<(Prepared, csv::StringRecord), (i64, String, Vec<String>)>;

/// Rows validated per batch; batches flow to the database side while the next one is validated.
/// Each batch costs a look-up statement and, on PostgreSQL, two COPYs and their round trips, so
/// fewer and larger batches do better until the pipeline has too few to overlap: 104k rows on 1M
/// elders took, with 2,048 / 4,096 / 8,192 / 16,384 a batch, 2.2–2.5 / 1.9–2.1 / 1.8–1.9 /
/// 1.73–1.77 s on PostgreSQL, and 1.34–1.50 / 1.31–1.34 / 1.45 s (4,096 up) on SQLite, which
/// looks up in chunks of its own.
pub fn batch_rows(backend: crate::platform::db::Backend) -> usize {
    match backend {
        // A group is one chunk holding the change-number lock: 16,384 rows held it about a
        // second, and a PATCH waited that long (p99 1.1 s during the import); 4,096 about 0.25 s.
        crate::platform::db::Backend::Postgres => 4_096,
        // Each batch is written in one go on the write thread: at 2,048 rows that is about 40 ms
        // of holding the write lock, so the chunks between others' writes stay short (8,192 was
        // 1–2 % faster alone and held the lock for 150–300 ms).
        crate::platform::db::Backend::Sqlite => 2_048,
    }
}

/// Read and validate the file on a blocking thread, `batch` rows at a time on every core (scoring,
/// blind index and JSON are CPU work), sending each batch in file order. Returns the number of
/// non-empty rows.
fn validate_stream(
    mut table: Table,
    keys: crate::platform::crypto::KeyRing,
    batch: usize,
    out: tokio::sync::mpsc::Sender<Vec<Checked>>,
) -> Result<i64, ImportError> {
    let today = crate::platform::today();
    let col_keys: Vec<Option<String>> = table.headers.iter().map(|h| header_key(h)).collect();
    let missing: Vec<&str> = COLUMNS
        .iter()
        .filter(|c| c.2 && !col_keys.iter().any(|k| k.as_deref() == Some(c.0)))
        .map(|c| c.1)
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::File(format!(
            "表头缺少必填列：{}（请使用下载的评估导入模板）",
            missing.join("、")
        )));
    }
    let col_of: FastMap<String, usize> = col_keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| k.clone().map(|k| (k, i)))
        .collect();
    let items_in_file: Vec<String> = col_keys
        .iter()
        .flatten()
        .filter(|k| k.starts_with('B'))
        .cloned()
        .collect();
    // A core is left to the people using the service meanwhile: with both cores validating, the
    // import's first seconds held reads at p99 up to 217 ms on two cores (budget 200). The
    // validator is rarely what the import waits for (0.5 of 3.5 s under load).
    let threads = crate::platform::cores().saturating_sub(1).max(1);
    let mut row_no = 1i64;
    let mut total = 0i64;
    loop {
        let mut lines: Vec<(i64, csv::StringRecord)> = Vec::with_capacity(batch);
        for cells in table.rows.by_ref() {
            row_no += 1;
            if cells.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            lines.push((row_no, cells));
            if lines.len() == batch {
                break;
            }
        }
        if lines.is_empty() {
            return Ok(total);
        }
        total += lines.len() as i64;
        if total as usize > crate::registry::import::MAX_ROWS {
            return Err(ImportError::File(format!(
                "单个文件最多 {} 行，请拆分后导入",
                crate::registry::import::MAX_ROWS
            )));
        }
        let per = lines.len().div_ceil(threads).max(1);
        let checked: Vec<Checked> = std::thread::scope(|sc| {
            let parts: Vec<_> = lines
                .chunks_mut(per)
                .map(|part| {
                    let (col_of, items_in_file, keys) = (&col_of, &items_in_file, &keys);
                    sc.spawn(move || {
                        part.iter_mut()
                            .map(|(row_no, cells)| {
                                let checked = {
                                    let get = |k: &str| -> &str {
                                        col_of.get(k).and_then(|i| cells.get(*i)).unwrap_or("")
                                    };
                                    validate_row(&get, items_in_file, today)
                                };
                                let cells = std::mem::take(cells);
                                match checked {
                                    Err(reason) => Err((*row_no, reason, owned_cells(&cells))),
                                    Ok((cid, mut p)) => {
                                        p.row_no = *row_no;
                                        p.bidx = keys.blind_index(CID_DOMAIN, cid.as_str());
                                        Ok((p, cells))
                                    }
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .map(|h| h.join())
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.into_iter().flatten().collect())
        })
        .map_err(|_| ImportError::Other(anyhow::anyhow!("a validation thread failed")))?;
        if out.blocking_send(checked).is_err() {
            return Ok(total); // the database side stopped; it reports why
        }
    }
}

/// A stored record that a row may repeat or correct.
struct Existing {
    id: String,
    same: (String, String, String, String, Option<String>),
}

const ASSESSMENT_COLS: &str = "id, elder_id, standard, reason, assessed_on, valid_until, assessor1, assessor2, \
     informant, corrects, input, result, final_level, recorded_by, recorded_at, kind, source";
const ABILITY_COLS: &str = "elder_id, assessment_id, level, assessed_on, valid_until, change_seq";

/// A decided row: whose it is and whether it corrects a stored record.
struct Write {
    p: Prepared,
    elder_id: String,
    corrects: Option<String>,
    valid_until: NaiveDate,
    /// The person's current record's date before this import.
    stored_on: Option<NaiveDate>,
}

/// A decided row as written: its new id and dates as text.
struct Row {
    id: String,
    elder_id: String,
    corrects: Option<String>,
    assessed_on: String,
    valid_until: String,
    stored_on: Option<NaiveDate>,
    p: Prepared,
}

/// Decided rows as written, in person order (a stable sort keeps one person's rows in the order
/// decided), each with a new id.
/// (The order is found on indexes, and each row moved once: sorting the rows themselves moved
/// their 200-odd bytes a dozen times, a sixth of the deciding loop.)
fn to_rows(writes: Vec<Write>) -> Vec<Row> {
    let mut order: Vec<u32> = (0..writes.len() as u32).collect();
    order.sort_by(|a, b| {
        writes[*a as usize]
            .elder_id
            .cmp(&writes[*b as usize].elder_id)
    });
    let mut writes: Vec<Option<Write>> = writes.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| writes[i as usize].take())
        .map(|w| Row {
            id: uuid::Uuid::now_v7().to_string(),
            assessed_on: iso_date(w.p.assessed_on),
            valid_until: iso_date(w.valid_until),
            elder_id: w.elder_id,
            corrects: w.corrects,
            stored_on: w.stored_on,
            p: w.p,
        })
        .collect()
}

/// Who recorded the import, when, and its change number.
type Stamp = (String, String, i64);

impl Row {
    /// The values in the order of [`ASSESSMENT_COLS`], for both writers.
    fn cells<'a>(&'a self, stamp: &'a Stamp) -> [Cell<'a>; 17] {
        let p = &self.p;
        let kind = if p.std == Std::Ltc {
            "ltc_adoption"
        } else {
            "assessment"
        };
        [
            Cell::Text(Some(&self.id)),
            Cell::Text(Some(&self.elder_id)),
            Cell::Text(Some(p.std.name())),
            Cell::Text(Some(&p.reason)),
            Cell::Text(Some(&self.assessed_on)),
            Cell::Text(Some(&self.valid_until)),
            Cell::Text(Some(&p.assessors[0])),
            Cell::Text(Some(&p.assessors[1])),
            Cell::Text(p.informant.as_deref()),
            Cell::Text(self.corrects.as_deref()),
            Cell::Text(Some(&p.input)),
            Cell::Text(Some(&p.result)),
            Cell::Int(Some(p.level)),
            Cell::Text(Some(&stamp.0)),
            Cell::Text(Some(&stamp.1)),
            Cell::Text(Some(kind)),
            Cell::Text(p.source.as_deref()),
        ]
    }

    /// The person's current-level row ([`ABILITY_COLS`]), this being their new current record.
    fn ability_cells(&self, change_seq: i64) -> [Cell<'_>; 6] {
        [
            Cell::Text(Some(&self.elder_id)),
            Cell::Text(Some(&self.id)),
            Cell::Int(Some(self.p.level)),
            Cell::Text(Some(&self.assessed_on)),
            Cell::Text(Some(&self.valid_until)),
            Cell::Int(Some(change_seq)),
        ]
    }
}

/// The date of each person's current record as this import has set it so far, by person id: a
/// person whose records come in two batches has the first batch's level replaced only by a record
/// at least as new.
type Levels = FastMap<String, NaiveDate>;

/// The current levels a group of decided rows (in person order) sets: for each person, the newest
/// non-legacy row at least as new as their current record, stored before the import or set by an
/// earlier batch of it (a later record wins a tie). Each as (row, whether the person had a current
/// row already).
fn current_of(rows: &[Row], levels: &mut Levels) -> Vec<(usize, bool)> {
    let mut out = vec![];
    let mut at = 0;
    while at < rows.len() {
        let end = at + rows[at..].partition_point(|r| r.elder_id == rows[at].elder_id);
        let prev = levels
            .get(&rows[at].elder_id)
            .copied()
            .or(rows[at].stored_on);
        let mut best: Option<usize> = None;
        for (i, r) in rows.iter().enumerate().take(end).skip(at) {
            if r.p.std == Std::Mzt || prev.is_some_and(|d| d > r.p.assessed_on) {
                continue;
            }
            if best.is_none_or(|b| rows[b].p.assessed_on <= r.p.assessed_on) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            levels.insert(rows[b].elder_id.clone(), rows[b].p.assessed_on);
            out.push((b, prev.is_some()));
        }
        at = end;
    }
    out
}

/// A group of records of a real run on SQLite, on its transaction's thread while the next
/// batch is decided.
fn insert_records_sqlite(
    t: &rusqlite::Connection,
    rows: &[Row],
    stamp: &Stamp,
) -> rusqlite::Result<()> {
    // A batch before this one may have failed in a way that made SQLite roll the whole
    // transaction back (a full disk, an I/O error): writing on would commit row by row. Stop; the
    // earlier batch's error is reported when its result is awaited, and nothing is kept.
    if t.is_autocommit() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some("the import's transaction was rolled back".into()),
        ));
    }
    let mut ins = t.prepare_cached(&format!(
        "INSERT INTO assessment ({ASSESSMENT_COLS}) VALUES ({})",
        ["?"; 17].join(",")
    ))?;
    for r in rows {
        ins.execute(rusqlite::params_from_iter(r.cells(stamp)))?;
    }
    Ok(())
}

/// A group's current levels on a real SQLite run, after its records.
fn write_current_sqlite(
    t: &rusqlite::Connection,
    rows: &[Row],
    current: &[(usize, bool)],
    stamp: &Stamp,
) -> rusqlite::Result<()> {
    let mut up = t.prepare_cached(&format!(
        "INSERT INTO elder_ability ({ABILITY_COLS}) VALUES ({}) {}",
        ["?"; 6].join(","),
        astore::UPSERT_CURRENT_SET
    ))?;
    for (b, _) in current {
        up.execute(rusqlite::params_from_iter(rows[*b].ability_cells(stamp.2)))?;
    }
    Ok(())
}

/// SQLite: run a lookup of a group of keys and map its rows; `sql` names the keys with `{keys}`,
/// an `IN` list of placeholders. Through the point-read path (`Db::sqlite_read_bulk`): no hand-off
/// per row to sqlx's worker thread, which cost more than the lookups themselves. It reads the last
/// committed state; a real import already holds the write lock (BEGIN IMMEDIATE), so that state
/// cannot change under it, and its own earlier writes are tracked in memory. (PostgreSQL looks up
/// with [`FIND_PG`].)
fn lookup<T>(
    db: &crate::platform::db::Db,
    sql: &str,
    binds: &[&str],
    map: impl Fn(&dyn Cols) -> T,
) -> Result<Vec<T>, sqlx::Error> {
    let sql = sql.replace(
        "{keys}",
        &format!("IN {}", placeholders(db.backend, 1, binds.len())),
    );
    let fast = db.sqlite_read_bulk(|c| {
        let mut st = c.prepare(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(binds.iter()))?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            out.push(map(r));
        }
        Ok(out)
    });
    fast.unwrap_or_else(|| Err(sqlx::Error::Protocol("lookup without a connection".into())))
}

/// A spawned task that ends when its handle is dropped: should the import stop on an error, its
/// look-up task stops too instead of running one more query.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a group of rows is decided on: who each citizen ID is, and their records.
#[derive(Default)]
struct Found {
    /// By blind index: (person's id, residence, their current record's date if they have one,
    /// from their records: see `levels_dated`).
    elders: FastMap<String, (String, String, Option<String>)>,
    /// Their records that no later record corrects, by (person, date, standard).
    existing: FastMap<(String, String, String), Existing>,
}

impl Found {
    /// Each person's current record's date, from their records: the current record is the newest
    /// one not corrected and not legacy (`store::CURRENT_SQL`, which `elder_ability` mirrors), so
    /// it needs no look-up of its own (that look-up was a third of the look-ups' time).
    fn levels_dated(&mut self) {
        let Found { elders, existing } = self;
        let mut newest: FastMap<&str, &str> = FastMap::default();
        for (elder, on, std) in existing.keys() {
            if std != LEGACY_STANDARD {
                let d = newest.entry(elder.as_str()).or_insert(on.as_str());
                if on.as_str() > *d {
                    *d = on.as_str();
                }
            }
        }
        for e in elders.values_mut() {
            e.2 = newest.get(e.0.as_str()).map(|d| d.to_string());
        }
    }
}

/// PostgreSQL: the two lookups of [`find`] as one statement, one round trip a batch instead of
/// two, and the people's ids never leave the server (the round trips and the ids sent back and
/// forth were a third of the lookups' time on 104k rows). Each part is tagged in column 0; the
/// records are found by index from an array of the people's ids, not joined (as a join
/// PostgreSQL hashed a whole table for every batch once it had statistics, 151 ms a batch against
/// 32).
const FIND_PG: &str = "WITH e AS MATERIALIZED (SELECT citizen_id_bidx, id, residence_region FROM elder \
     WHERE citizen_id_bidx = ANY($1)) \
     SELECT 'e', citizen_id_bidx, id, residence_region, NULL, NULL, NULL, NULL, NULL, NULL FROM e \
     UNION ALL SELECT 'a', a.id, a.elder_id, a.assessed_on, a.standard, a.input, a.reason, a.assessor1, a.assessor2, a.informant \
     FROM assessment a WHERE a.elder_id = ANY((SELECT array_agg(id) FROM e)::text[]) \
     AND NOT EXISTS (SELECT 1 FROM assessment c WHERE c.corrects = a.id)";

/// [`FIND_PG`]'s first part alone, for an import into a database without records.
const FIND_PG_PEOPLE: &str = "SELECT 'e', citizen_id_bidx, id, residence_region, NULL, NULL, NULL, NULL, NULL, NULL \
     FROM elder WHERE citizen_id_bidx = ANY($1)";

/// Whether any assessment record is stored. When none is, as in a county's first import of its
/// history, nobody's records need looking up (4,096 index probes a batch for nothing: 0.2–0.3 s
/// of the database's time in a first import of 104k). Asked once the import holds the change
/// number: records are stored only under that lock, so none can appear until it commits.
async fn any_records(
    db: &crate::platform::db::Db,
    look: Option<&mut sqlx::postgres::PgConnection>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM assessment)";
    match look {
        Some(c) => sqlx::query_scalar(SQL).fetch_one(c).await,
        None => db
            .sqlite_read_bulk(|c| c.query_row(SQL, [], |r| r.get(0)))
            .unwrap_or_else(|| Err(sqlx::Error::Protocol("lookup without a connection".into()))),
    }
}

async fn find_pg(
    c: &mut sqlx::postgres::PgConnection,
    keys: &[&str],
    records: bool,
) -> Result<Found, sqlx::Error> {
    use sqlx::Row as _;
    let rows = sqlx::query(if records { FIND_PG } else { FIND_PG_PEOPLE })
        .bind(keys)
        .persistent(false)
        .fetch_all(&mut *c)
        .await?;
    let mut out = Found::default();
    for r in &rows {
        let t = |i: usize| -> String { r.get::<Option<String>, _>(i).unwrap_or_default() };
        match r.get::<&str, _>(0) {
            "e" => {
                out.elders.insert(t(1), (t(2), t(3), None));
            }
            _ => {
                out.existing.insert(
                    (t(2), t(3), t(4)),
                    Existing {
                        id: t(1),
                        same: (t(5), t(6), t(7), t(8), r.get(9)),
                    },
                );
            }
        }
    }
    out.levels_dated();
    Ok(out)
}

/// SQLite: look a group of blind indexes up (sorted: consecutive probes touch neighbouring index
/// pages). The people, then their records (when any are stored): two queries, each by key.
fn find(db: &crate::platform::db::Db, keys: &[&str], records: bool) -> Result<Found, sqlx::Error> {
    let sql = "SELECT e.citizen_id_bidx, e.id, e.residence_region FROM elder e \
         WHERE e.citizen_id_bidx {keys}";
    let found = lookup(db, sql, keys, |r| (r.text(0), r.text(1), r.text(2)))?;
    let mut out = Found::default();
    for (bidx, id, region) in found {
        out.elders.insert(bidx, (id, region, None));
    }
    let ids: Vec<&str> = out.elders.values().map(|e| e.0.as_str()).collect();
    if ids.is_empty() || !records {
        return Ok(out);
    }
    let sql = "SELECT a.id, a.elder_id, a.assessed_on, a.standard, a.input, a.reason, a.assessor1, a.assessor2, a.informant \
         FROM assessment a WHERE a.elder_id {keys} AND NOT EXISTS (SELECT 1 FROM assessment c WHERE c.corrects = a.id)";
    let found = lookup(db, sql, &ids, |r| {
        (
            (r.text(1), r.text(2), r.text(3)),
            Existing {
                id: r.text(0),
                same: (r.text(4), r.text(5), r.text(6), r.text(7), r.opt_text(8)),
            },
        )
    })?;
    out.existing.extend(found);
    out.levels_dated();
    Ok(out)
}

/// A decided group on its way to the writer: its rows in person order, and the current levels
/// they set (see [`current_of`]).
struct Group {
    rows: Vec<Row>,
    current: Vec<(usize, bool)>,
    /// The job's progress once this group is written: file rows decided, records inserted and
    /// corrected (written with the chunk that holds the group).
    progress: (i64, i64, i64),
}

/// What a real run's writer needs to commit in chunks: the job row to update and the audit row
/// each chunk gets.
struct ChunkAudit {
    job_id: String,
    chain: crate::platform::crypto::ChainKey,
    who: crate::audit::Who,
    scope: crate::identity::Scope,
}

impl ChunkAudit {
    fn entry(&self, (rows, ins, upd): (i64, i64, i64)) -> crate::audit::Entry<'_> {
        crate::registry::import::part_entry(
            &self.scope,
            "assessment.import.part",
            &self.job_id,
            rows,
            ins,
            upd,
        )
    }
}

/// A real PostgreSQL run's writer, on its own task with the import's transaction while the next
/// batches are looked up and decided: each group's records by binary COPY (17 binds a row through
/// sqlx took 6.7 s for 104k records), a slice at a time without waiting in between, then their
/// current levels. Hands the connection back, its transaction still open, when the groups end.
async fn write_groups_pg(
    mut conn: sqlx::postgres::PgConnection,
    mut groups: tokio::sync::mpsc::Receiver<Group>,
    mut stamp: Stamp,
    chunks: ChunkAudit,
) -> Result<sqlx::postgres::PgConnection, sqlx::Error> {
    let mut since = std::time::Instant::now();
    // The change number is a row lock held until commit, which a PATCH of any elder waits for:
    // taken only once a group's records are stored, just before the current levels it stamps, so
    // the lock is not held through the wait for the next group nor through its COPY (a PATCH
    // waited up to 0.7 s during a 104k import under load when it was taken at BEGIN).
    let mut numbered = false;
    while let Some(g) = groups.recv().await {
        let mut cp = conn
            .copy_in_raw(&format!(
                "COPY assessment ({ASSESSMENT_COLS}) FROM STDIN WITH (FORMAT binary)"
            ))
            .await?;
        let mut out = CopyBinary::default();
        for part in g.rows.chunks(1_024) {
            for r in part {
                out.row(&r.cells(&stamp));
            }
            out.send(&mut cp).await?;
        }
        out.finish(cp).await?;
        if !numbered {
            use sqlx::Row as _;
            stamp.2 = sqlx::query(NEXT_CHANGE_SEQ)
                .fetch_one(&mut conn)
                .await?
                .get::<i64, _>(0);
            numbered = true;
        }
        write_current_pg(&mut conn, &g.rows, &g.current, stamp.2).await?;
        // Commit what is written once a chunk has held the change-number and audit heads long
        // enough: others' writes go in between (see `registry::import::chunk_hold`).
        if since.elapsed() >= crate::registry::import::chunk_hold() {
            commit_chunk_pg(&mut conn, &chunks, g.progress).await?;
            numbered = false;
            since = std::time::Instant::now();
        }
    }
    Ok(conn)
}

/// The job's progress and an audit row, commit, then a new transaction (which takes its change
/// number when it first needs one).
async fn commit_chunk_pg(
    conn: &mut sqlx::postgres::PgConnection,
    chunks: &ChunkAudit,
    progress: (i64, i64, i64),
) -> Result<(), sqlx::Error> {
    sqlx::query(crate::registry::import::JOB_PROGRESS)
        .bind(progress.0)
        .bind(progress.1)
        .bind(progress.2)
        .bind(&chunks.job_id)
        .execute(&mut *conn)
        .await?;
    crate::audit::append_pg(conn, &chunks.chain, &chunks.who, chunks.entry(progress)).await?;
    sqlx::raw_sql("COMMIT; BEGIN").execute(&mut *conn).await?;
    Ok(())
}

/// A group's current levels on a real PostgreSQL run, after its records: those of people who had
/// none by COPY straight into `elder_ability`, the others' by one upsert from arrays. Other
/// writers of current levels wait for the change-number lock this import holds, so a person
/// looked up without a current row has none; should `elder_ability` still hold a row for one of
/// them (out of step with the records), the COPY fails on the key, is undone to its savepoint, and
/// everyone goes the upsert way.
async fn write_current_pg(
    t: &mut sqlx::postgres::PgConnection,
    rows: &[Row],
    current: &[(usize, bool)],
    change_seq: i64,
) -> Result<(), sqlx::Error> {
    let fresh: Vec<usize> = current.iter().filter(|c| !c.1).map(|c| c.0).collect();
    let mut upsert: Vec<usize> = current.iter().filter(|c| c.1).map(|c| c.0).collect();
    if !fresh.is_empty() {
        let mut out = CopyBinary::default();
        for b in &fresh {
            out.row(&rows[*b].ability_cells(change_seq));
        }
        sqlx::raw_sql("SAVEPOINT ability_copy")
            .execute(&mut *t)
            .await?;
        let copied = async {
            let cp = t
                .copy_in_raw(&format!(
                    "COPY elder_ability ({ABILITY_COLS}) FROM STDIN WITH (FORMAT binary)"
                ))
                .await?;
            out.finish(cp).await
        }
        .await;
        match copied {
            Ok(_) => {
                sqlx::raw_sql("RELEASE SAVEPOINT ability_copy")
                    .execute(&mut *t)
                    .await?;
            }
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT ability_copy")
                    .execute(&mut *t)
                    .await?;
                upsert = current.iter().map(|c| c.0).collect();
            }
            Err(e) => return Err(e),
        }
    }
    if upsert.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Row) -> &str| -> Vec<&str> { upsert.iter().map(|b| f(&rows[*b])).collect() };
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO elder_ability ({ABILITY_COLS}) SELECT e, a, l, o, v, $6 \
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[]) AS u (e, a, l, o, v) {}",
        astore::UPSERT_CURRENT_SET
    )))
    .bind(col(|r| &r.elder_id))
    .bind(col(|r| &r.id))
    .bind(upsert.iter().map(|b| rows[*b].p.level).collect::<Vec<i64>>())
    .bind(col(|r| &r.assessed_on))
    .bind(col(|r| &r.valid_until))
    .bind(change_seq)
    .execute(&mut *t)
    .await?;
    Ok(())
}

/// Import assessments (dry or real) from an opened table.
pub async fn run(
    ctx: &Ctx<'_>,
    table: Table,
    dry_run: bool,
    job_id: &str,
    file_sha: &str,
) -> Result<(Summary, Rejected), ImportError> {
    ctx.progress
        .total
        .store(table.approx_rows as i64, Ordering::Relaxed);
    let _no_huge_pages = crate::platform::NoHugePages::new();
    let keys = ctx.keys.clone();
    let t0 = std::time::Instant::now();
    let (send, mut recv) = tokio::sync::mpsc::channel::<Vec<Checked>>(2);
    let batch = batch_rows(ctx.db.backend);
    let validator = tokio::task::spawn_blocking(move || validate_stream(table, keys, batch, send));
    let mut summary = Summary {
        dry_run,
        ..Default::default()
    };
    let mut rejected: Rejected = vec![];
    // A real run on SQLite writes through prepared statements on a write transaction held open on
    // its own thread (binding 17 values a row through sqlx Any was half the import); it holds the
    // write lock from here, so the lookups below read a state nobody else can change.
    let sqlite = ctx.db.backend == crate::platform::db::Backend::Sqlite;
    let wtx = if dry_run || !sqlite {
        None
    } else {
        Some(ctx.db.sqlite_write_tx().await?)
    };
    // On PostgreSQL two native connections: one reads (array lookups, in a dry run too), while a
    // real run's transaction on the other is written by a task of its own (see
    // `write_groups_pg`), so the server stores one batch while the next is looked up. Each of its
    // chunks takes the change number (a row lock every import and every change of a current
    // level holds until it commits) once it has records stored; a current level written by
    // someone else since the look-up sends the group the upsert way (`write_current_pg`).
    let mut look = if sqlite {
        None
    } else {
        let mut c = ctx.db.pg_native().await?;
        // Its queries find rows by key, and an index is always the way: statistics from before
        // the import (an empty table) planned a scan of `assessment`, which the import's own
        // uncommitted rows make longer with every batch.
        sqlx::raw_sql("SET enable_seqscan = off; SET max_parallel_workers_per_gather = 0")
            .execute(&mut c)
            .await?;
        Some(c)
    };
    // (The transaction is begun and ended by hand: the connection moves to the writer's task and
    // back. Should the import stop on an error, the connection is dropped, and the server rolls
    // the transaction back as it closes.)
    let mut pg_tx = if dry_run || sqlite {
        None
    } else {
        let mut c = ctx.db.pg_native().await?;
        sqlx::raw_sql("BEGIN").execute(&mut c).await?;
        Some(c)
    };
    // (PostgreSQL's writer takes its change number itself, late: see `write_groups_pg`.)
    let change_seq = match &wtx {
        Some(w) => {
            w.call(|t| t.query_row(NEXT_CHANGE_SEQ, [], |r| r.get(0)))
                .await?
        }
        None => 0,
    };
    let chain = ctx.db.chain_key()?;
    let mut stamp: Stamp = (
        ctx.who.actor_name.to_string(),
        crate::platform::now_rfc3339(),
        change_seq,
    );
    // Validity per region (see `store::validity_for`).
    // (Read-only settings, read from the pool.)
    let settings = astore::validity_settings(&mut *ctx.db.pool.acquire().await?).await?;
    let records = any_records(ctx.db, look.as_mut()).await?;
    let mut inserting = vec![];
    let mut levels = Levels::default();
    let mut written = 0usize;
    let mut seen: FastMap<(String, NaiveDate, Std), i64> = FastMap::default();
    // Where the decider's time goes (logged): waiting for looked-up batches (PostgreSQL; SQLite:
    // for the validator), in lookups, and waiting for the writer (PostgreSQL).
    let mut waited = std::time::Duration::ZERO;
    let mut writer_wait = std::time::Duration::ZERO;
    let mut tl = std::time::Duration::ZERO;
    let (group_tx, group_rx) = tokio::sync::mpsc::channel::<Group>(2);
    let mut writer = pg_tx.take().map(|c| {
        let chunks = ChunkAudit {
            job_id: job_id.to_string(),
            chain: chain.clone(),
            who: ctx.who.clone(),
            scope: ctx.scope.clone(),
        };
        AbortOnDrop(tokio::spawn(write_groups_pg(
            c,
            group_rx,
            stamp.clone(),
            chunks,
        )))
    });
    let mut group_tx = writer.as_ref().map(|_| group_tx);
    {
        // Decide, batch by batch while the validator checks the next: who each row is, and
        // whether it is new, unchanged or a correction. A real run writes each batch's records and
        // the current levels they set as soon as they are decided (PostgreSQL: on the writer's
        // task; SQLite: on the write transaction's thread), while the next batch is looked up, so
        // nothing is left to write once the file is read (the current levels afterwards were a
        // sixth of a 104k import).
        // PostgreSQL: a task of its own looks each batch up on the lookup connection as it comes
        // from the validator, while this loop decides and writes the one before (the lookups were
        // half of a 104k import, waited for batch by batch). SQLite looks up inline, fast enough.
        let (found_tx, mut found_rx) =
            tokio::sync::mpsc::channel::<(Vec<Checked>, Option<Found>)>(2);
        let mut prefetch = AbortOnDrop(tokio::spawn(async move {
            let mut took = std::time::Duration::ZERO;
            while let Some(batch) = recv.recv().await {
                let found = match look.as_mut() {
                    Some(c) => {
                        let t = std::time::Instant::now();
                        let mut keys: Vec<&str> = batch
                            .iter()
                            .filter_map(|c| c.as_ref().ok().map(|(p, _)| p.bidx.as_str()))
                            .collect();
                        keys.sort_unstable();
                        keys.dedup();
                        let found = find_pg(c, &keys, records).await?;
                        took += t.elapsed();
                        Some(found)
                    }
                    None => None,
                };
                if found_tx.send((batch, found)).await.is_err() {
                    break; // the decider stopped
                }
            }
            // Dropping the receiver here stops the validator if it is still reading.
            Ok::<_, sqlx::Error>(took)
        }));
        let mut tw = std::time::Instant::now();
        let mut since = std::time::Instant::now();
        let mut rows_seen = 0i64;
        while let Some((batch, prefound)) = found_rx.recv().await {
            waited += tw.elapsed();
            let n = batch.len() as i64;
            // Each with its cells until it is decided: a row refused below keeps them for the report.
            let mut checked: Vec<(Prepared, csv::StringRecord)> = Vec::with_capacity(batch.len());
            for c in batch {
                match c {
                    Err(r) => rejected.push(r),
                    Ok((p, cells)) => {
                        let key = (p.bidx.clone(), p.assessed_on, p.std);
                        if let Some(first) = seen.get(&key) {
                            let msg = format!("与第 {first} 行重复（同一人、同一日期、同一标准）");
                            rejected.push((p.row_no, msg, owned_cells(&cells)));
                        } else {
                            seen.insert(key, p.row_no);
                            checked.push((p, cells));
                        }
                    }
                }
            }
            // SQLite looks up here, a chunk at a time: in citizen-ID-index order, so consecutive
            // lookups touch neighbouring index pages. (PostgreSQL's look-up task sorts its keys.)
            if prefound.is_none() {
                checked.sort_by(|a, b| a.0.bidx.cmp(&b.0.bidx));
            }
            let mut checked = checked.into_iter().peekable();
            let mut decided: Vec<Write> = vec![];
            while checked.peek().is_some() {
                // Looked up already (PostgreSQL: the whole batch); else a chunk at a time.
                let per = if prefound.is_some() {
                    usize::MAX
                } else {
                    CHUNK
                };
                let chunk: Vec<(Prepared, csv::StringRecord)> =
                    checked.by_ref().take(per).collect();
                let looked_up;
                let Found { elders, existing } = match &prefound {
                    Some(f) => f,
                    None => {
                        let binds: Vec<&str> = chunk.iter().map(|c| c.0.bidx.as_str()).collect();
                        let tt = std::time::Instant::now();
                        looked_up = find(ctx.db, &binds, records)?;
                        tl += tt.elapsed();
                        &looked_up
                    }
                };
                for (p, cells) in chunk {
                    // Unregistered and registered elsewhere get the same answer: an import must not tell
                    // whether a citizen ID is registered outside the caller's region.
                    let found = elders.get(&p.bidx).filter(|(_, region, _)| {
                        yiyang_kernel::RegionCode::parse(region)
                            .ok()
                            .is_some_and(|rc| ctx.scope.covers(&rc))
                    });
                    let Some((elder_id, region, stored_on)) = found else {
                        rejected.push((
                            p.row_no,
                            "该身份证号未在您管辖范围内的老年人档案中登记，请先导入档案或核对身份证号"
                                .into(),
                            owned_cells(&cells),
                        ));
                        continue;
                    };
                    // Inputs stored before defaults were left out read the same once parsed.
                    let same_input = |stored: &str| {
                        stored == p.input
                            || (p.std == Std::Gbt
                                && matches!(
                                    (
                                        serde_json::from_str::<Input>(stored),
                                        serde_json::from_str::<Input>(&p.input),
                                    ),
                                    (Ok(a), Ok(b)) if a == b
                                ))
                    };
                    let same = |e: &Existing| {
                        same_input(&e.same.0)
                            && e.same.1 == p.reason
                            && e.same.2 == p.assessors[0]
                            && e.same.3 == p.assessors[1]
                            && e.same.4 == p.informant
                    };
                    // (No key is built when there is nothing to find, as in a first import.)
                    let stored = if existing.is_empty() {
                        None
                    } else {
                        existing.get(&(
                            elder_id.clone(),
                            iso_date(p.assessed_on),
                            p.std.name().to_string(),
                        ))
                    };
                    let corrects = match stored {
                        Some(e) if same(e) => {
                            summary.unchanged += 1;
                            continue;
                        }
                        Some(e) => {
                            summary.updated += 1;
                            Some(e.id.clone())
                        }
                        None => {
                            summary.inserted += 1;
                            None
                        }
                    };
                    let valid_until =
                        astore::valid_until(p.assessed_on, astore::validity_for(&settings, region));
                    decided.push(Write {
                        p,
                        elder_id: elder_id.clone(),
                        corrects,
                        valid_until,
                        stored_on: stored_on
                            .as_deref()
                            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                    });
                }
            }
            // In person order within the batch.
            if decided.is_empty() {
                // All unchanged or refused: nothing to write.
            } else if let Some(send) = &group_tx {
                let rows = to_rows(decided);
                let current = current_of(&rows, &mut levels);
                written += rows.len();
                let tw = std::time::Instant::now();
                let progress = (rows_seen + n, summary.inserted, summary.updated);
                let sent = send
                    .send(Group {
                        rows,
                        current,
                        progress,
                    })
                    .await;
                writer_wait += tw.elapsed();
                if sent.is_err() {
                    break; // the writer stopped; its error is reported below
                }
            } else if let Some(w) = &wtx {
                // SQLite: queued on the write transaction's thread, written while the next
                // batch is decided.
                let rows = to_rows(decided);
                let current = current_of(&rows, &mut levels);
                written += rows.len();
                let st = stamp.clone();
                inserting.push(w.submit(move |t| {
                    insert_records_sqlite(t, &rows, &st)?;
                    write_current_sqlite(t, &rows, &current, &st)
                }));
                // Commit once the chunk has held the write lock long enough: others' writes
                // (an audited read among them) go in between.
                if since.elapsed() >= crate::registry::import::chunk_hold() {
                    let progress = (rows_seen + n, summary.inserted, summary.updated);
                    let (chain, who, scope, job) = (
                        chain.clone(),
                        ctx.who.clone(),
                        ctx.scope.clone(),
                        job_id.to_string(),
                    );
                    w.call(move |t| {
                        t.execute(
                            crate::registry::import::JOB_PROGRESS,
                            rusqlite::params![progress.0, progress.1, progress.2, job],
                        )?;
                        let chunks = ChunkAudit {
                            job_id: job,
                            chain,
                            who,
                            scope,
                        };
                        crate::audit::append_sqlite(
                            t,
                            &chunks.chain,
                            &chunks.who,
                            chunks.entry(progress),
                        )
                    })
                    .await?;
                    w.commit_chunk().await?;
                    stamp.2 = w
                        .call(|t| t.query_row(NEXT_CHANGE_SEQ, [], |r| r.get(0)))
                        .await?;
                    since = std::time::Instant::now();
                }
            }
            rows_seen += n;
            // The last tenth is for the commit and the statistics.
            ctx.progress
                .processed
                .fetch_add(n - n / 10, Ordering::Relaxed);
            tw = std::time::Instant::now();
        }
        drop(found_rx);
        // The writer's error first: a failed write stops the loop above early. (The writer ends
        // once the sender is dropped.)
        drop(group_tx.take());
        if let Some(w) = writer.as_mut() {
            pg_tx =
                Some((&mut w.0).await.map_err(|e| {
                    ImportError::Other(anyhow::anyhow!("assessment writer: {e}"))
                })??);
        }
        tl += (&mut prefetch.0)
            .await
            .map_err(|e| ImportError::Other(anyhow::anyhow!("assessment lookups: {e}")))??;
    }
    // The validator stops once nobody receives (the look-up task held its receiver until it
    // ended); its count of rows, or the file's error.
    let total = validator
        .await
        .map_err(|e| ImportError::Other(anyhow::anyhow!("validator: {e}")))??;
    summary.total = total;
    let validated = t0.elapsed();
    // SQLite: the last batches' writes.
    for w in inserting {
        w.await?;
    }
    tracing::info!(
        rows = total,
        read_validate_decide_write_ms = validated.as_millis() as u64,
        waiting_for_batches_ms = waited.as_millis() as u64,
        lookups_ms = tl.as_millis() as u64,
        waiting_for_writer_ms = writer_wait.as_millis() as u64,
        // SQLite: the write thread's last jobs (PostgreSQL's writer is awaited within the above).
        last_writes_ms = (t0.elapsed() - validated).as_millis() as u64,
        "assessment import"
    );
    rejected.sort_by_key(|r| r.0);
    summary.rejected = rejected.len() as i64;
    summary.accepted = summary.total - summary.rejected;
    ctx.progress.processed.store(total, Ordering::Relaxed);
    ctx.progress.total.store(total, Ordering::Relaxed);
    summary.errors = rejected
        .iter()
        .take(200)
        .map(|(r, reason, _)| RowError {
            row: *r,
            reason: reason.clone(),
        })
        .collect();
    if let Some(w) = wtx {
        let chain = chain.clone();
        let (who, scope, job, sha) = (
            ctx.who.clone(),
            ctx.scope.clone(),
            job_id.to_string(),
            file_sha.to_string(),
        );
        let s = summary.clone();
        w.call(move |t| {
            t.execute(
                crate::registry::import::JOB_PROGRESS,
                rusqlite::params![s.total, s.inserted, s.updated, job],
            )?;
            let e =
                crate::registry::import::import_entry(&scope, "assessment.import", &job, &sha, &s);
            crate::audit::append_sqlite(t, &chain, &who, e)
        })
        .await?;
        w.commit().await?;
    }
    if let Some(mut c) = pg_tx {
        sqlx::query(crate::registry::import::JOB_PROGRESS)
            .bind(summary.total)
            .bind(summary.inserted)
            .bind(summary.updated)
            .bind(job_id)
            .execute(&mut c)
            .await?;
        crate::audit::append_pg(
            &mut c,
            &chain,
            ctx.who,
            crate::registry::import::import_entry(
                ctx.scope,
                "assessment.import",
                job_id,
                file_sha,
                &summary,
            ),
        )
        .await?;
        sqlx::raw_sql("COMMIT").execute(&mut c).await?;
        ctx.db
            .analyze_sampled(
                &[
                    "assessment (id, elder_id, assessed_on, standard, kind, corrects, valid_until, final_level, recorded_at)",
                    "elder_ability",
                ],
                written,
                Some(30),
            )
            .await?;
    }
    Ok((summary, rejected))
}

/// Record a job, import the file, store the outcome (see `registry::import::run_job_with`).
pub async fn run_job(
    ctx: &Ctx<'_>,
    job_id: &str,
    user_id: Option<&str>,
    bytes: Vec<u8>,
    file_name: &str,
    dry_run: bool,
) -> Result<Summary, ImportError> {
    let job = crate::registry::import::Job {
        kind: "assessment",
        header_key,
        id: job_id,
        user_id,
        file_name,
        dry_run,
    };
    crate::registry::import::run_job_with(ctx, job, bytes, |table, sha| async move {
        run(ctx, table, dry_run, job_id, &sha).await
    })
    .await
}

/// The import template: the columns, the 26 items of Appendix B with their names, one example row
/// for each kind of record, and a sheet explaining each column.
pub fn template_xlsx() -> anyhow::Result<Vec<u8>> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let text = rust_xlsxwriter::Format::new().set_num_format("@");
    let head = rust_xlsxwriter::Format::new()
        .set_bold()
        .set_background_color(rust_xlsxwriter::Color::RGB(0xDDEBF7));
    let ws = wb.add_worksheet();
    ws.set_name("能力评估")?;
    let mut col = 0u16;
    for (_, zh, required, _) in COLUMNS {
        let title = if *required {
            format!("*{zh}")
        } else {
            zh.to_string()
        };
        ws.write_string_with_format(0, col, &title, &head)?;
        ws.set_column_format(col, &text)?;
        ws.set_column_width(col, 14)?;
        col += 1;
    }
    let first_item = col;
    for it in assessment::ITEMS {
        ws.write_string_with_format(0, col, format!("{} {}", it.code, it.name), &head)?;
        ws.set_column_width(col, 12)?;
        col += 1;
    }
    // Examples: a GB/T assessment, an adopted LTC rating, a legacy MZ/T result.
    let examples: [(&str, &str, &str, &str, &str, &str, &str); 3] = [
        (
            "2025-03-01",
            "GB/T 42195-2022",
            "首次评估",
            "张评估",
            "李评估",
            "",
            "",
        ),
        (
            "2025-05-10",
            "长护险",
            "",
            "",
            "",
            "重度失能",
            "如皋市医疗保障局",
        ),
        (
            "2021-06-01",
            "MZ/T 039-2013",
            "常规评估",
            "",
            "",
            "轻度失能",
            "",
        ),
    ];
    for (r, (on, std, reason, a1, a2, level, source)) in examples.iter().enumerate() {
        let r = r as u32 + 1;
        let put = |ws: &mut rust_xlsxwriter::Worksheet, key: &str, v: &str| -> anyhow::Result<()> {
            if let Some(c) = COLUMNS.iter().position(|c| c.0 == key) {
                ws.write_string(r, c as u16, v)?;
            }
            Ok(())
        };
        put(ws, "citizen_id", "320682194503150021")?;
        put(ws, "assessed_on", on)?;
        put(ws, "standard", std)?;
        put(ws, "reason", reason)?;
        put(ws, "assessor1", a1)?;
        put(ws, "assessor2", a2)?;
        put(ws, "level", level)?;
        put(ws, "source", source)?;
        if r == 1 {
            for (i, it) in assessment::ITEMS.iter().enumerate() {
                ws.write_number(r, first_item + i as u16, it.max() as f64)?;
            }
        }
    }
    let help = wb.add_worksheet();
    help.set_name("填写说明")?;
    for (c, t) in ["列名", "英文列名", "必填", "说明"].iter().enumerate() {
        help.write_string_with_format(0, c as u16, *t, &head)?;
    }
    let mut r = 1u32;
    for (key, zh, required, hint) in COLUMNS {
        help.write_string(r, 0, *zh)?;
        help.write_string(r, 1, *key)?;
        help.write_string(r, 2, if *required { "是" } else { "否" })?;
        help.write_string(r, 3, *hint)?;
        r += 1;
    }
    for it in assessment::ITEMS {
        let opts: Vec<String> = it
            .options
            .iter()
            .map(|o| format!("{}分 {}", o.score, o.label))
            .collect();
        help.write_string(r, 0, format!("{} {}", it.code, it.name))?;
        help.write_string(r, 1, it.code)?;
        help.write_string(r, 2, "GB/T 评估必填")?;
        help.write_string(r, 3, opts.join("；"))?;
        r += 1;
    }
    help.set_column_width(0, 22)?;
    help.set_column_width(3, 80)?;
    Ok(wb.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> &'a str + 'a {
        move |k: &str| pairs.iter().find(|p| p.0 == k).map_or("", |p| p.1)
    }

    fn items() -> Vec<String> {
        assessment::ITEMS
            .iter()
            .map(|i| i.code.to_string())
            .collect()
    }

    /// A decided row of `elder` dated `on` (days into 2025), of `std`, with the person's stored
    /// current record's date.
    fn decided(elder: &str, on: u32, std: Std, stored: Option<u32>) -> Row {
        let day = |d: u32| NaiveDate::from_yo_opt(2025, d).unwrap();
        Row {
            id: format!("{elder}-{on}-{std:?}"),
            elder_id: elder.into(),
            corrects: None,
            assessed_on: day(on).to_string(),
            valid_until: day(on).to_string(),
            stored_on: stored.map(day),
            p: Prepared {
                row_no: 0,
                bidx: String::new(),
                std,
                assessed_on: day(on),
                reason: String::new(),
                assessors: Default::default(),
                informant: None,
                source: None,
                input: String::new(),
                result: String::new(),
                level: 0,
            },
        }
    }

    /// Which rows `current_of` makes current (by id), and whether the person had a current row.
    fn chosen(rows: &[Row], levels: &mut Levels) -> Vec<(String, bool)> {
        current_of(rows, levels)
            .into_iter()
            .map(|(i, had)| (rows[i].id.clone(), had))
            .collect()
    }

    #[test]
    fn current_levels_per_batch() {
        let mut levels = Levels::default();
        // Batch 1, in person order. a: the newer of two; a tie goes to the later row (b); c is
        // legacy only; d's record is older than the stored current one; e's is as new (it wins).
        let batch1 = [
            decided("a", 10, Std::Gbt, None),
            decided("a", 20, Std::Gbt, None),
            decided("b", 10, Std::Gbt, None),
            decided("b", 10, Std::Ltc, None),
            decided("c", 10, Std::Mzt, None),
            decided("d", 10, Std::Gbt, Some(30)),
            decided("e", 30, Std::Gbt, Some(30)),
        ];
        assert_eq!(
            chosen(&batch1, &mut levels),
            [
                ("a-20-Gbt".to_string(), false),
                ("b-10-Ltc".to_string(), false),
                ("e-30-Gbt".to_string(), true),
            ]
        );
        // Batch 2: a's older record does not replace batch 1's; b's newer one does, as an
        // update; c's first non-legacy record is c's first current row; d's newer record replaces
        // the stored one; a same-day record for e wins again.
        let batch2 = [
            decided("a", 15, Std::Gbt, None),
            decided("b", 40, Std::Gbt, None),
            decided("c", 5, Std::Ltc, None),
            decided("d", 31, Std::Gbt, Some(30)),
            decided("e", 30, Std::Ltc, Some(30)),
        ];
        assert_eq!(
            chosen(&batch2, &mut levels),
            [
                ("b-40-Gbt".to_string(), true),
                ("c-5-Ltc".to_string(), false),
                ("d-31-Gbt".to_string(), true),
                ("e-30-Ltc".to_string(), true),
            ]
        );
    }

    #[test]
    fn headers_map_columns_and_items() {
        assert_eq!(header_key("*身份证号").as_deref(), Some("citizen_id"));
        assert_eq!(header_key("B2.3 平地行走").as_deref(), Some("B2.3"));
        assert_eq!(header_key("b1.10").as_deref(), Some("B1.10"));
        assert_eq!(header_key("备注"), None);
        assert_eq!(header_key("Bx"), None);
    }

    #[test]
    fn rows_validate_by_standard() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let cid_s = yiyang_kernel::citizen_id::compose(
            "320682",
            NaiveDate::from_ymd_opt(1945, 3, 15).unwrap(),
            2,
        );
        let cid = cid_s.as_str();
        let mut wrong = cid_s.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '1' { '2' } else { '1' });
        let mut pairs: Vec<(&str, String)> = vec![
            ("citizen_id", cid_s.clone()),
            ("assessed_on", "2025/3/1".into()),
            ("standard", "GB/T 42195-2022".into()),
            ("assessor1", "甲".into()),
            ("assessor2", "乙".into()),
            ("dementia_confirmed", "是".into()),
        ];
        for it in assessment::ITEMS {
            pairs.push((it.code, it.max().to_string()));
        }
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, p) = validate_row(&row(&refs), &items(), today).unwrap();
        // 90 points is 能力完好; confirmed dementia raises it one level (R2).
        assert_eq!(p.level, 1);
        assert_eq!(p.reason, "routine");
        // A bad score names the item; one assessor is not enough.
        let mut bad = refs.clone();
        bad.retain(|p| p.0 != "B3.7" && p.0 != "assessor2");
        bad.push(("B3.7", "3"));
        let e = validate_row(&row(&bad), &items(), today).unwrap_err();
        assert!(e.contains("两名不同的评估员"), "{e}");
        let mut bad = refs.clone();
        bad.retain(|p| p.0 != "B3.7");
        bad.push(("B3.7", "3"));
        let e = validate_row(&row(&bad), &items(), today).unwrap_err();
        assert!(e.contains("B3.7"), "{e}");
        // An adopted rating needs its source and level; a legacy one its level (0–3).
        let ltc = [
            ("citizen_id", cid),
            ("assessed_on", "2025-05-10"),
            ("standard", "长护险"),
            ("level", "重度失能"),
        ];
        let e = validate_row(&row(&ltc), &items(), today).unwrap_err();
        assert!(e.contains("评定机构"), "{e}");
        let mut ltc = ltc.to_vec();
        ltc.push(("source", "医保局"));
        let (_, p) = validate_row(&row(&ltc), &items(), today).unwrap();
        assert_eq!((p.level, p.reason.as_str()), (3, "ltc_adoption"));
        let mzt = [
            ("citizen_id", cid),
            ("assessed_on", "2020-05-10"),
            ("standard", "MZ/T 039-2013"),
            ("level", "完全失能"),
        ];
        let e = validate_row(&row(&mzt), &items(), today).unwrap_err();
        assert!(e.contains("能力等级"), "MZ/T has no 完全失能: {e}");
        // Legacy with all 22 scores: scored by the MZ/T engine; a level beside them must agree.
        let best: Vec<(String, String)> = mzt039::ITEMS
            .iter()
            .map(|i| {
                let s = if i.domain == mzt039::Domain::Adl {
                    i.max()
                } else {
                    0
                };
                (i.code.to_string(), s.to_string())
            })
            .collect();
        let codes: Vec<String> = best.iter().map(|b| b.0.clone()).collect();
        let mut legacy: Vec<(&str, &str)> = vec![
            ("citizen_id", cid),
            ("assessed_on", "2020-05-10"),
            ("standard", "MZ/T 039-2013"),
        ];
        legacy.extend(best.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let (_, p) = validate_row(&row(&legacy), &codes, today).unwrap();
        assert_eq!(p.level, 0);
        assert!(p.result.contains("\"legacy\":true"));
        legacy.push(("level", "重度失能"));
        let e = validate_row(&row(&legacy), &codes, today).unwrap_err();
        assert!(e.contains("不符"), "{e}");
        // Dates in the future, unknown standards, bad IDs: refused with the reason.
        let e = validate_row(
            &row(&[
                ("citizen_id", wrong.as_str()),
                ("assessed_on", "2027-01-01"),
                ("standard", "GB/T 42195-2022"),
            ]),
            &items(),
            today,
        )
        .unwrap_err();
        assert!(e.contains("晚于今天") && e.contains("校验"), "{e}");
        let e = validate_row(
            &row(&[
                ("citizen_id", cid),
                ("assessed_on", "2025-01-01"),
                ("standard", "ADL"),
            ]),
            &items(),
            today,
        )
        .unwrap_err();
        assert!(e.contains("评估标准"), "{e}");
    }
}

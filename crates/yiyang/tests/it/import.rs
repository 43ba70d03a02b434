use crate::support::*;
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde_json::json;
use yiyang_kernel::citizen_id::compose;

fn cid(day: u32, seq: u32) -> String {
    compose(
        "320682",
        NaiveDate::from_ymd_opt(1938, 3, day).unwrap(),
        seq,
    )
}

/// 6 good rows and 4 bad ones (bad check digit, unknown region, duplicate ID, bad status).
fn sample_csv() -> String {
    let mut s =
        String::from("身份证号,姓名,性别,居住地区划代码,联系电话,居住状况,经济状况,残疾等级\n");
    for i in 0..6u32 {
        s.push_str(&format!(
            "{},王{}英,,320682001001,1381234567{},独居,低保,\n",
            cid(i + 1, 11),
            ["秀", "桂", "玉", "凤", "美", "兰"][i as usize],
            i
        ));
    }
    let mut bad = cid(20, 11);
    bad.replace_range(17..18, if bad.ends_with('1') { "2" } else { "1" });
    s.push_str(&format!("{bad},错号码,,320682001001,,,,\n"));
    s.push_str(&format!("{},无此村,,110101001001,,,,\n", cid(21, 11)));
    s.push_str(&format!("{},重复人,,320682001001,,,,\n", cid(1, 11)));
    s.push_str(&format!("{},状态错,,320682001001,,合租,,\n", cid(22, 11)));
    s
}

#[tokio::test]
async fn db_import_dry_run_real_reimport_and_correction() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("imp").await;
    let csv = sample_csv();
    let (s, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "a.csv",
            csv.as_bytes(),
            true,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(
        (
            st["total"].as_i64(),
            st["accepted"].as_i64(),
            st["rejected"].as_i64()
        ),
        (Some(10), Some(6), Some(4)),
        "{st}"
    );
    let reasons: Vec<String> = st["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["row"], e["reason"].as_str().unwrap()))
        .collect();
    assert!(
        reasons[0].starts_with("8:") && reasons[0].contains("校验位"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("9:") && reasons[1].contains("区划"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].starts_with("10:") && reasons[2].contains("与第 2 行重复"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].starts_with("11:") && reasons[3].contains("居住状况"),
        "{reasons:?}"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder").await,
        0,
        "dry run writes nothing"
    );
    // Error report: an XLSX with the original rows.
    let req = axum::http::Request::builder()
        .uri(format!(
            "/api/v1/imports/{}/errors.xlsx",
            job["id"].as_str().unwrap()
        ))
        .header("cookie", &c)
        .body(axum::body::Body::empty())
        .unwrap();
    let (s, bytes, _) = t.raw(req).await;
    assert_eq!(s, StatusCode::OK);
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    use calamine::Reader;
    let range = wb.worksheet_range("错误明细").unwrap();
    assert_eq!(range.height(), 5);
    assert_eq!(range.get((1, 3)).unwrap().to_string(), "错号码");
    // Real run.
    let (_, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "a.csv",
            csv.as_bytes(),
            false,
        )
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(st["inserted"], 6, "{st}");
    assert_eq!(t.count("SELECT COUNT(*) FROM elder").await, 6);
    // Same file again: nothing changes.
    let (_, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "a.csv",
            csv.as_bytes(),
            false,
        )
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(
        (
            st["inserted"].as_i64(),
            st["updated"].as_i64(),
            st["unchanged"].as_i64()
        ),
        (Some(0), Some(0), Some(6)),
        "{st}"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM elder").await, 6);
    // A corrected file (one person now lives alone → empty nest, as XLSX) updates by citizen ID and keeps the history.
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (i, h) in [
        "citizen_id",
        "name",
        "residence_region",
        "living_status",
        "economic_status",
        "phone",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(0, i as u16, *h).unwrap();
    }
    for (i, v) in [
        cid(1, 11),
        "王秀英".into(),
        "320682001001".into(),
        "空巢".into(),
        "低保".into(),
        "13812345670".into(),
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(1, i as u16, v).unwrap();
    }
    let xlsx = wb.save_to_buffer().unwrap();
    let (_, job) = t
        .multipart("/api/v1/imports/registry", &c, "fix.xlsx", &xlsx, false)
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(st["updated"], 1, "{st}");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder WHERE living_status = 'empty_nest'")
            .await,
        1
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder_status_change WHERE kind = 'living_status'")
            .await,
        1
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'registry.import'")
            .await,
        3,
        "one audit row per real run"
    );
}

#[tokio::test]
async fn db_import_encodings_and_cli_shape() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("imp").await;
    let csv = sample_csv();
    let gbk = encoding_rs::GBK.encode(&csv).0.into_owned();
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(csv.as_bytes());
    let english = csv.replacen(
        "身份证号,姓名,性别,居住地区划代码,联系电话,居住状况,经济状况,残疾等级",
        "citizen_id,name,sex,residence_region,phone,living_status,economic_status,disability_grade",
        1,
    );
    for (name, data) in [
        ("gbk.csv", gbk),
        ("bom.csv", bom),
        ("en.csv", english.into_bytes()),
    ] {
        let (_, job) = t
            .multipart("/api/v1/imports/registry", &c, name, &data, true)
            .await;
        let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
        assert_eq!(
            (st["accepted"].as_i64(), st["rejected"].as_i64()),
            (Some(6), Some(4)),
            "{name}: {st}"
        );
    }
    // A file without the required columns fails as a whole with a clear message.
    let (_, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "x.csv",
            "姓名,电话\n张三,1\n".as_bytes(),
            true,
        )
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(st["state"], "failed");
    assert!(st["message"].as_str().unwrap().contains("身份证号"), "{st}");
    // Not a spreadsheet at all.
    let (_, job) = t
        .multipart("/api/v1/imports/registry", &c, "x.xlsx", b"hello", true)
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(st["state"], "failed");
}

#[tokio::test]
async fn db_no_clear_ids_after_import() {
    let t = TestApp::new("demo", 200).await;
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("imp").await;
    let (_, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "a.csv",
            sample_csv().as_bytes(),
            false,
        )
        .await;
    t.wait_job(job["id"].as_str().unwrap(), &c).await;
    // Responses without a reveal carry no clear ID.
    let dir = tempfile::tempdir().unwrap();
    let mut bodies = String::new();
    let (_, page, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"page_size": 200})),
        )
        .await;
    bodies.push_str(&page.to_string());
    for item in page["items"].as_array().unwrap().iter().take(20) {
        let (_, d, _) = t
            .call(
                "GET",
                &format!("/api/v1/elders/{}", item["id"].as_str().unwrap()),
                Some(&c),
                None,
            )
            .await;
        bodies.push_str(&d.to_string());
    }
    let (s, x, _) = t
        .raw(
            axum::http::Request::builder()
                .method("POST")
                .uri("/api/v1/elders/export")
                .header("cookie", &c)
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    std::fs::write(dir.path().join("export.xlsx"), &x).unwrap();
    // xlsx is a zip: unpack it so the scanner sees the sheet text.
    let mut zip =
        calamine::open_workbook_from_rs::<calamine::Xlsx<_>, _>(std::io::Cursor::new(x)).unwrap();
    use calamine::Reader;
    let r = zip.worksheet_range("老年人档案").unwrap();
    assert!(r.height() > 200);
    for row in r.rows() {
        bodies.push_str(
            &row.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        bodies.push('\n');
    }
    std::fs::write(dir.path().join("bodies.txt"), &bodies).unwrap();
    let (ok, out) = scan_clear(dir.path());
    assert!(ok, "clear IDs in responses: {out}");
    // The database itself.
    if let Some(p) = &t.sqlite_path {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&t.state.db.pool)
            .await
            .unwrap();
        let (ok, out) = scan_clear(p.parent().unwrap());
        assert!(ok, "clear IDs in the SQLite files: {out}");
    }
    if let Some(url) = &t.pg_url {
        let dump = dir.path().join("dump.sql");
        let st = std::process::Command::new("pg_dump")
            .arg(url)
            .arg("-f")
            .arg(&dump)
            .status()
            .expect("pg_dump");
        assert!(st.success());
        let (ok, out) = scan_clear(&dump);
        assert!(ok, "clear IDs in the PostgreSQL dump: {out}");
    }
    // A reveal does show it (so the scan above is not vacuous).
    let id = page["items"][0]["id"].as_str().unwrap();
    let (_, v, _) = t
        .call(
            "POST",
            &format!("/api/v1/elders/{id}/reveal"),
            Some(&c),
            Some(json!({"field": "citizen_id", "reason": "核实身份信息"})),
        )
        .await;
    std::fs::write(
        dir.path().join("revealed.txt"),
        v["value"].as_str().unwrap(),
    )
    .unwrap();
    let (ok, _) = scan_clear(dir.path());
    assert!(!ok, "the scanner finds a revealed ID");
}

/// Person `i` of the large test file: birth dates spread over 1930–1959, villages of towns A and B.
fn big_row(i: u32, living: &str) -> String {
    let birth = NaiveDate::from_ymd_opt(1930, 1, 1).unwrap() + chrono::Days::new((i / 800) as u64);
    let village = if i.is_multiple_of(2) {
        "320682001001"
    } else {
        "320682103001"
    };
    format!(
        "{},李{}英,{village},{living}\n",
        compose("320682", birth, i % 800 + 100),
        ["秀", "桂", "玉", "凤"][(i % 4) as usize]
    )
}

/// The bulk path: a first load large enough to rebuild the secondary indexes, then a file mixing new,
/// unchanged, changed and out-of-scope people (which the bulk path hands to the general path), as a
/// dry run and for real.
/// A file of headers only (the blank template) into an empty registry, for real: nothing to write,
/// and the job ends done, not failed (the binary COPY into an empty registry still sends its
/// header before its end).
#[tokio::test]
async fn db_import_headers_only_into_empty_registry() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("imp").await;
    let file = "身份证号,姓名,居住地区划代码,居住状况\n";
    let (_, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "blank.csv",
            file.as_bytes(),
            false,
        )
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(
        (st["total"].as_i64(), st["inserted"].as_i64()),
        (Some(0), Some(0)),
        "{st}"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM elder").await, 0);
}

/// A first load into an empty registry: on PostgreSQL the citizen-ID key is built after the COPY;
/// it is back and holds (a second row with the same blind index is refused by the database).
#[tokio::test]
async fn db_import_first_load_into_empty_registry() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let n = 50_000u32;
    let mut big = String::from("身份证号,姓名,居住地区划代码,居住状况\n");
    for i in 0..n {
        big.push_str(&big_row(i, "独居"));
    }
    let c = t.login("imp").await;
    let (_, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "big.csv",
            big.as_bytes(),
            false,
        )
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(st["inserted"].as_i64(), Some(n as i64), "{st}");
    if t.pg_url.is_some() {
        assert_eq!(
            t.count("SELECT COUNT(*) FROM pg_constraint WHERE conname = 'elder_citizen_id_key' AND contype = 'u'")
                .await,
            1
        );
    } else {
        // SQLite: the key is the named index of migration 23, built again, and the file checks clean.
        assert_eq!(
            t.count("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = 'elder_citizen_id_key' \
                     AND sql LIKE 'CREATE UNIQUE INDEX%'")
                .await,
            1
        );
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
        assert_eq!(check, "ok");
    }
    // The same row under a new id: refused with the same blind index, accepted with another.
    let copy_of = |bidx: &'static str, id: &'static str| {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO elder (id, citizen_id_bidx, citizen_id_enc, citizen_id_masked, name, sex, birth_date, residence_region, \
             status, status_source, status_since, row_digest, created_at, updated_at, version) \
             SELECT '{id}', {bidx}, citizen_id_enc, citizen_id_masked, name, sex, birth_date, residence_region, \
             status, status_source, status_since, row_digest, created_at, updated_at, version FROM elder WHERE name = '李秀英' LIMIT 1"
        )))
        .execute(&t.state.db.pool)
    };
    let dup = copy_of("citizen_id_bidx", "dup").await;
    assert!(dup.is_err(), "a repeated citizen ID must be refused");
    copy_of("citizen_id_bidx || 'x'", "other").await.unwrap();
    // Found again by the key: the same rows again change nothing.
    let again: String = big.lines().take(101).map(|l| format!("{l}\n")).collect();
    let (_, job) = t
        .multipart(
            "/api/v1/imports/registry",
            &c,
            "again.csv",
            again.as_bytes(),
            false,
        )
        .await;
    let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
    assert_eq!(
        (st["inserted"].as_i64(), st["unchanged"].as_i64()),
        (Some(0), Some(100)),
        "{st}"
    );
}

#[tokio::test]
async fn db_import_bulk_first_load_then_mixed_file() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("townb", &["officer"], "320682103000", all_scopes())
        .await;
    let head = "身份证号,姓名,居住地区划代码,居住状况\n";
    let n = 60_000u32;
    let mut big = String::from(head);
    for i in 0..n {
        big.push_str(&big_row(i, "独居"));
    }
    let c = t.login("imp").await;
    // Three of them registered already: the load inserts first and finds those three unchanged.
    let first: String = big.lines().take(4).map(|l| format!("{l}\n")).collect();
    for (name, file) in [("three.csv", &first), ("big.csv", &big)] {
        let (_, job) = t
            .multipart("/api/v1/imports/registry", &c, name, file.as_bytes(), false)
            .await;
        let st = t.wait_job(job["id"].as_str().unwrap(), &c).await;
        let expect = if name == "three.csv" {
            (3, 0)
        } else {
            (n as i64 - 3, 3)
        };
        let got = (
            st["inserted"].as_i64().unwrap(),
            st["unchanged"].as_i64().unwrap(),
        );
        assert_eq!(got, expect, "{st}");
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM elder").await, n as i64);
    // Dropped for the load and built again in its transaction (the name index is gone since
    // migration 21 and must not come back with a load).
    let (kept, name) = if t.pg_url.is_some() {
        (
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname IN ('elder_region_birth', 'elder_change_seq')",
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'elder_name'",
        )
    } else {
        (
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ('elder_region_birth', 'elder_change_seq')",
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'elder_name'",
        )
    };
    assert_eq!(t.count(kept).await, 2);
    assert_eq!(t.count(name).await, 0);
    // Into a registry in use (three people), the load went in chunks, each committed with a
    // change number and an audit row of its own.
    let parts = t
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'registry.import.part'")
        .await;
    let seqs = t
        .count("SELECT COUNT(DISTINCT change_seq) FROM elder")
        .await;
    assert!(parts >= 1, "a 60,000-row load took more than one chunk");
    // The three, then a number per chunk (the last chunk may have had nothing left to write).
    assert!(
        seqs == parts + 1 || seqs == parts + 2,
        "one change number per chunk: {seqs} numbers, {parts} parts"
    );

    // Town B's officer: two new people, one unchanged, one changed (now 空巢), one of town A.
    let mut mixed = String::from(head);
    mixed.push_str(&big_row(n + 1, "独居"));
    mixed.push_str(&big_row(n + 3, "独居"));
    mixed.push_str(&big_row(1, "独居"));
    mixed.push_str(&big_row(3, "空巢"));
    mixed.push_str(&big_row(2, "独居"));
    let cb = t.login("townb").await;
    for dry_run in [true, false] {
        let (_, job) = t
            .multipart(
                "/api/v1/imports/registry",
                &cb,
                "mixed.csv",
                mixed.as_bytes(),
                dry_run,
            )
            .await;
        let st = t.wait_job(job["id"].as_str().unwrap(), &cb).await;
        let counts = [
            "total",
            "accepted",
            "rejected",
            "inserted",
            "updated",
            "unchanged",
        ]
        .map(|k| st[k].as_i64().unwrap());
        assert_eq!(counts, [5, 4, 1, 2, 1, 1], "dry run {dry_run}: {st}");
        assert_eq!(st["errors"][0]["row"], 6, "{st}");
        let expect = if dry_run { n } else { n + 2 };
        assert_eq!(t.count("SELECT COUNT(*) FROM elder").await, expect as i64);
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder WHERE living_status = 'empty_nest'")
            .await,
        1
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder_status_change WHERE kind = 'living_status'")
            .await,
        1
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_log WHERE action = 'registry.import'")
            .await,
        3,
        "one audit row per real run, none for the rolled-back bulk attempt"
    );
}

/// A workbook as an office keeps it: a title and a unit line above the header, a 序号 column, the
/// village's code merged down its rows, a total and a signature line under the table, one sheet
/// per village (columns in another order) and a sheet of notes. Every person is read; the total
/// and signature rows are listed as passed over; a refused row is named by its sheet and the row
/// Excel shows.
#[tokio::test]
async fn db_office_workbook_is_read_sheet_by_sheet() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("imp").await;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet().set_name("李庄村").unwrap();
    ws.merge_range(
        0,
        0,
        0,
        8,
        "如城街道80周岁以上老年人基本信息登记表（2026年11月）",
        &rust_xlsxwriter::Format::new(),
    )
    .unwrap();
    ws.write_string(1, 0, "填报单位：如城街道李庄村").unwrap();
    let head = [
        "序号",
        "身份证号",
        "姓名",
        "性别",
        "居住地区划代码",
        "联系电话",
        "居住状况",
        "经济状况",
        "残疾等级",
    ];
    for (i, h) in head.iter().enumerate() {
        ws.write_string(2, i as u16, *h).unwrap();
    }
    ws.merge_range(3, 4, 5, 4, "320682001001", &rust_xlsxwriter::Format::new())
        .unwrap();
    for k in 0..3u32 {
        let r = 3 + k;
        ws.write_number(r, 0, (k + 1) as f64).unwrap();
        ws.write_string(r, 1, cid(k + 1, 40)).unwrap();
        ws.write_string(r, 2, format!("李{}", ["大", "二", "三"][k as usize]))
            .unwrap();
        ws.write_string(r, 6, "独居").unwrap();
    }
    ws.write_string(6, 0, "合计").unwrap();
    ws.write_string(6, 2, "3 人").unwrap();
    ws.write_string(7, 0, "填表人：张三").unwrap();
    ws.write_string(7, 4, "审核人：李四").unwrap();
    let ws = wb.add_worksheet().set_name("王庄村").unwrap();
    for (i, h) in ["姓名", "身份证号", "居住地区划代码"].iter().enumerate() {
        ws.write_string(0, i as u16, *h).unwrap();
    }
    let mut bad = cid(5, 50);
    bad.replace_range(17..18, if bad.ends_with('1') { "2" } else { "1" });
    for (r, (name, id)) in [("王甲", cid(6, 51)), ("王乙", bad)].iter().enumerate() {
        ws.write_string(r as u32 + 1, 0, *name).unwrap();
        ws.write_string(r as u32 + 1, 1, id).unwrap();
        ws.write_string(r as u32 + 1, 2, "320682001002").unwrap();
    }
    wb.add_worksheet()
        .set_name("填表说明")
        .unwrap()
        .write_string(0, 0, "请按身份证号填写，一人一行")
        .unwrap();
    let data = wb.save_to_buffer().unwrap();
    let st = t
        .import_file("/api/v1/imports/registry", &c, "李庄村.xlsx", &data, true)
        .await;
    assert_eq!(
        (&st["total"], &st["accepted"], &st["rejected"]),
        (&json!(5), &json!(4), &json!(1)),
        "{st}"
    );
    let l = &st["layout"];
    assert_eq!(l["sheets"][0]["name"], "李庄村", "{l}");
    assert_eq!(l["sheets"][0]["header_row"], 3);
    assert_eq!(l["sheets"][0]["rows"], 3);
    assert_eq!(l["sheets"][1]["name"], "王庄村");
    assert_eq!(l["sheets"][1]["rows"], 2);
    assert_eq!(l["other_sheets"], json!(["填表说明"]));
    let skipped: Vec<String> = l["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}:{}",
                s["sheet"].as_str().unwrap(),
                s["row"],
                s["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(skipped, ["李庄村:7:合计行", "李庄村:8:签名行"]);
    let e = &st["errors"][0];
    assert_eq!(e["row"], 3, "{st}");
    let reason = e["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("工作表“王庄村”：") && reason.contains("校验位"),
        "{reason}"
    );
    // Written: the merged village code reaches every row under it.
    let st = t
        .import_file("/api/v1/imports/registry", &c, "李庄村.xlsx", &data, false)
        .await;
    assert_eq!(st["inserted"], 4, "{st}");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder WHERE residence_region = '320682001001'")
            .await,
        3
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM elder WHERE residence_region = '320682001002'")
            .await,
        1
    );
}

/// A dry run of a corrected file counts new, changed and unchanged people and, for a changed one,
/// names each field that changes, old → new, with the phone masked.
#[tokio::test]
async fn db_dry_run_shows_what_changes_field_by_field() {
    let t = TestApp::new("demo", 0).await;
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("imp").await;
    let head = "身份证号,姓名,性别,居住地区划代码,联系电话,居住状况,经济状况\n";
    let row = |i: u32, phone: &str, living: &str| {
        let given = ["一", "二", "三"][i as usize - 1];
        format!(
            "{},王{given}英,,320682001001,{phone},{living},低保\n",
            cid(i, 60)
        )
    };
    let first: String = [
        head.to_string(),
        row(1, "13812345670", "独居"),
        row(2, "13812345671", "独居"),
    ]
    .concat();
    let st = t
        .import_file(
            "/api/v1/imports/registry",
            &c,
            "a.csv",
            first.as_bytes(),
            false,
        )
        .await;
    assert_eq!(st["inserted"], 2, "{st}");
    let second: String = [
        head.to_string(),
        row(1, "13812345670", "独居"),
        row(2, "13900001111", "与子女同住"),
        row(3, "", "独居"),
    ]
    .concat();
    let st = t
        .import_file(
            "/api/v1/imports/registry",
            &c,
            "b.csv",
            second.as_bytes(),
            true,
        )
        .await;
    assert_eq!(
        (&st["inserted"], &st["updated"], &st["unchanged"]),
        (&json!(1), &json!(1), &json!(1)),
        "{st}"
    );
    let ch = &st["changes"][0];
    assert_eq!(ch["row"], 3, "{ch}");
    assert!(ch["citizen_id_masked"].as_str().unwrap().contains('*'));
    let fields: Vec<String> = ch["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}→{}",
                f["field"].as_str().unwrap(),
                f["old"].as_str().unwrap(),
                f["new"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert!(
        fields.contains(&"居住状况:独居→与子女同住".to_string()),
        "{fields:?}"
    );
    let phone = fields.iter().find(|f| f.starts_with("联系电话")).unwrap();
    assert!(
        phone.contains('*') && !phone.contains("13900001111") && !phone.contains("13812345671"),
        "{phone}"
    );
}

/// Editors go on while an import writes into the same registry (the general path, in chunks that
/// each take the change number and the audit head): every edit is answered and the import
/// completes. Every writer takes the change number before the audit head; editors that took them
/// the other way round deadlocked a PostgreSQL import.
#[tokio::test]
async fn db_edits_go_on_during_an_import() {
    let t = std::sync::Arc::new(TestApp::new("demo", 200).await);
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("imp").await;
    let (_, v, _) = t
        .call(
            "POST",
            "/api/v1/elders/search",
            Some(&c),
            Some(json!({"page_size": 40})),
        )
        .await;
    let ids: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let head = "身份证号,姓名,居住地区划代码,居住状况\n";
    let three: String = format!(
        "{head}{}{}{}",
        big_row(0, "空巢"),
        big_row(1, "空巢"),
        big_row(2, "空巢")
    );
    let st = t
        .import_file(
            "/api/v1/imports/registry",
            &c,
            "three.csv",
            three.as_bytes(),
            false,
        )
        .await;
    assert_eq!(st["inserted"], 3, "{st}");
    // Changes those three (the general path) and adds 30,000.
    let n = 30_000u32;
    let mut big = String::from(head);
    for i in 0..n {
        big.push_str(&big_row(i, "独居"));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut editors = vec![];
    for k in 0..4usize {
        let (t, c, ids, stop) = (t.clone(), c.clone(), ids.clone(), stop.clone());
        editors.push(tokio::spawn(async move {
            let mut done = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = &ids[(k * 10 + done as usize) % ids.len()];
                let (s, v, _) = t
                    .call(
                        "PATCH",
                        &format!("/api/v1/elders/{id}"),
                        Some(&c),
                        Some(json!({"address": format!("{k}组{done}号")})),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{v}");
                done += 1;
            }
            done
        }));
    }
    let st = t
        .import_file(
            "/api/v1/imports/registry",
            &c,
            "big.csv",
            big.as_bytes(),
            false,
        )
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut edits = 0;
    for e in editors {
        edits += e.await.unwrap();
    }
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(
        (st["inserted"].as_i64(), st["updated"].as_i64()),
        (Some(n as i64 - 3), Some(3)),
        "{st}"
    );
    assert!(edits >= 4, "the editors made {edits} edits");
    assert_eq!(t.count("SELECT COUNT(*) FROM elder").await, 200 + n as i64);
    let r = yiyang::audit::verify(&t.state.db, &[]).await.unwrap();
    assert!(r.ok, "{r:?}");
}

/// An editor holds a person's row and then asks for the change number while an import into the
/// registry has reached that person (PostgreSQL; SQLite has one writer and no row locks). The
/// import must not hold the change number while it waits for the row: both would wait for each
/// other until the database failed one of them after a second.
#[tokio::test]
async fn db_an_import_waiting_for_an_edited_row_does_not_hold_the_change_number() {
    let t = TestApp::new("demo", 0).await;
    if t.pg_url.is_none() {
        return;
    }
    t.add_user("imp", &["officer"], "320682000000", all_scopes())
        .await;
    let c = t.login("imp").await;
    let n = 3000u32;
    let file = |address: &str| {
        let mut s = String::from("身份证号,姓名,性别,居住地区划代码,居住状况,经济状况,居住地址\n");
        for i in 0..n {
            s.push_str(&format!(
                "{},李{},,320682001001,独居,低保,{address} {i} 号\n",
                cid(1 + i % 28, 100 + i / 28),
                ["秀", "桂", "玉", "凤", "美", "兰"][(i % 6) as usize],
            ));
        }
        s
    };
    let import = |csv: String| {
        let (t, c) = (&t, &c);
        async move {
            let (s, job) = t
                .multipart(
                    "/api/v1/imports/registry",
                    c,
                    "a.csv",
                    csv.as_bytes(),
                    false,
                )
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{job}");
            job["id"].as_str().unwrap().to_string()
        }
    };
    let first = import(file("幸福路")).await;
    let st = t.wait_job(&first, &c).await;
    assert_eq!(st["state"], "done", "{st}");
    // A person late in the file: the second import changes everyone's address.
    let db = &t.state.db;
    let mut editor = db.begin().await.unwrap();
    let id: String = sqlx::query_scalar("SELECT id FROM elder WHERE address = $1 FOR UPDATE")
        .bind(format!("幸福路 {} 号", n - 10))
        .fetch_one(&mut *editor)
        .await
        .unwrap();
    let second = import(file("和平路")).await;
    // Until the import waits for that row.
    let mut waiting = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND (query LIKE '%FOR UPDATE%' OR query LIKE 'UPDATE elder SET name%')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if n > 0 {
            waiting = true;
            break;
        }
    }
    assert!(waiting, "the import never reached the edited person");
    let t0 = std::time::Instant::now();
    sqlx::query("UPDATE registry_head SET seq = seq + 1 WHERE id = 1")
        .execute(&mut *editor)
        .await
        .expect("the editor got the change number");
    assert!(
        t0.elapsed() < std::time::Duration::from_millis(900),
        "the editor waited {:?} for the change number",
        t0.elapsed()
    );
    editor.commit().await.unwrap();
    let st = t.wait_job(&second, &c).await;
    assert_eq!(
        (st["state"].as_str(), st["updated"].as_i64()),
        (Some("done"), Some(n as i64)),
        "{st}"
    );
    let address: String = sqlx::query_scalar("SELECT address FROM elder WHERE id = $1")
        .bind(&id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(address.starts_with("和平路"), "{address}");
}

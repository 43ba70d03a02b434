//! Uploaded tables (CSV in UTF-8, UTF-8 with BOM or GBK; XLSX) as a header row and data rows, for
//! every import. Nothing here trusts what a file claims about itself: an XLSX is read cell by cell
//! (never as the dense grid its `<dimension>` or a far cell would imply), its zip parts are inflated
//! under a ratio and a total ceiling before the reader sees them, and both kinds are refused when
//! they are wider than any template could need.

use std::sync::Arc;

pub const MAX_FILE_BYTES: usize = 300 * 1024 * 1024;
/// Data rows a file may hold (a county of a million elders fits).
pub const MAX_ROWS: usize = 1_100_000;
/// Columns a sheet may use. The widest template (assessments) has fewer than 60.
pub const MAX_COLS: usize = 200;
/// Bytes of one physical CSV line: 200 columns of 300 bytes each. A record's field list grows with
/// its line, so this bounds the memory of any one record.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// All parts of an XLSX, inflated. A million-row registry sheet is about 0.5 GB of XML.
pub const MAX_INFLATED_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// A part may inflate to this many times its compressed size (beyond the first MiB). Sheets of
/// real data compress 5–20×; a zip bomb's parts inflate a thousandfold.
pub const MAX_INFLATE_RATIO: u64 = 100;

/// Data rows of cells, in file order. A row is one buffer and the ends of its cells (two
/// allocations a row, not one per cell: a 104k-row assessment file of 44 columns made 4.6M strings,
/// and allocating and freeing them was a sixth of the import's CPU).
pub type RowIter = Box<dyn Iterator<Item = csv::StringRecord> + Send>;

/// The file as a header row plus data rows of cells.
pub struct Table {
    pub headers: Vec<String>,
    pub rows: RowIter,
    /// Data rows with content (blank rows between them are not counted).
    pub approx_rows: usize,
    /// The data rows again from the start (an import that has to change its path part-way reads
    /// the file again instead of keeping every row).
    pub again: Option<Arc<dyn Fn() -> RowIter + Send + Sync>>,
}

/// The record a CSV row that cannot be parsed becomes (the validators report it as malformed).
pub const MALFORMED: &str = "\u{0}csv";

/// The file as text, without copying it when it is UTF-8 already (a million rows are 130 MB).
fn decode_text(mut bytes: Vec<u8>) -> String {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        // Excel on Chinese Windows saves CSV in GBK (GB18030 is its superset).
        Err(e) => encoding_rs::GB18030.decode(e.as_bytes()).0.into_owned(),
    }
}

/// Opens an uploaded file; the error is a Chinese sentence saying what to fix.
pub fn open_table(bytes: Vec<u8>, file_name: &str) -> Result<Table, String> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "文件过大（上限 {} MB），请拆分后导入",
            MAX_FILE_BYTES / 1024 / 1024
        ));
    }
    let is_zip = bytes.starts_with(b"PK\x03\x04");
    let lower = file_name.to_lowercase();
    if is_zip || lower.ends_with(".xlsx") {
        if !is_zip {
            return Err("文件扩展名为 .xlsx，但内容不是 Excel 文件".into());
        }
        return open_xlsx(bytes);
    }
    if lower.ends_with(".xls") {
        return Err("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV".into());
    }
    open_csv(bytes)
}

fn open_csv(bytes: Vec<u8>) -> Result<Table, String> {
    let text = Arc::new(decode_text(bytes));
    // One pass over the line ends: the row count for progress, and no line longer than a record
    // of the widest template could be.
    let mut lines = 0usize;
    let mut start = 0usize;
    for end in memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]) {
        if end - start > MAX_LINE_BYTES {
            return Err(format!(
                "第 {} 行过长（超过 {} KB），表格最多 {MAX_COLS} 列，请检查文件是否为导入模板",
                lines + 1,
                MAX_LINE_BYTES / 1024
            ));
        }
        lines += 1;
        start = end + 1;
    }
    let approx_rows = lines
        .saturating_sub(1)
        .saturating_sub(usize::from(text.ends_with('\n')));
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(ArcReader {
            s: text.clone(),
            pos: 0,
        });
    let headers: Vec<String> = match rdr.records().next() {
        Some(Ok(r)) => r.iter().map(str::to_string).collect(),
        _ => return Err("文件为空或无法读取表头".into()),
    };
    if headers.len() > MAX_COLS {
        return Err(too_wide(headers.len()));
    }
    let again = move || -> RowIter {
        let rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(ArcReader {
                s: text.clone(),
                pos: 0,
            });
        Box::new(rdr.into_records().map(|r| match r {
            // Cells past the widest template are never read; keep a row's memory bounded.
            Ok(r) if r.len() > MAX_COLS => r.iter().take(MAX_COLS).collect(),
            Ok(r) => r,
            Err(_) => csv::StringRecord::from(vec![MALFORMED]),
        }))
    };
    Ok(Table {
        headers,
        rows: again(),
        approx_rows,
        again: Some(Arc::new(again)),
    })
}

fn too_wide(cols: usize) -> String {
    format!("表格有 {cols} 列，超过上限 {MAX_COLS} 列，请使用下载的导入模板")
}

/// Reads a shared string so the CSV iterator can own its input.
struct ArcReader {
    s: Arc<String>,
    pos: usize,
}
impl std::io::Read for ArcReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let b = &self.s.as_bytes()[self.pos..];
        let n = b.len().min(buf.len());
        buf[..n].copy_from_slice(&b[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// Inflates every part of the archive into nothing, counting, so that a zip bomb is refused before
/// the spreadsheet reader (which keeps shared strings and styles in memory) sees it. A part's
/// declared size is not trusted: the bytes are counted as they come out.
fn check_zip(bytes: &[u8]) -> Result<(), String> {
    use std::io::Read;
    let bad = || {
        "无法读取 Excel 文件：文件已损坏或不是 .xlsx 格式，请在 Excel 中重新保存后上传".to_string()
    };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        tracing::info!(error = %e, "xlsx: not a zip archive");
        bad()
    })?;
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).map_err(|e| {
            tracing::info!(error = %e, "xlsx: unreadable part");
            bad()
        })?;
        let allowed = part
            .compressed_size()
            .saturating_mul(MAX_INFLATE_RATIO)
            .saturating_add(1024 * 1024);
        let mut inflated = 0u64;
        loop {
            let n = part.read(&mut buf).map_err(|e| {
                tracing::info!(error = %e, "xlsx: part does not inflate");
                bad()
            })?;
            if n == 0 {
                break;
            }
            inflated += n as u64;
            total += n as u64;
            if inflated > allowed {
                return Err(format!(
                    "Excel 文件中的内容解压后超过压缩前的 {MAX_INFLATE_RATIO} 倍（疑似压缩炸弹），已拒绝；请在 Excel 中重新保存后上传"
                ));
            }
            if total > MAX_INFLATED_BYTES {
                return Err(format!(
                    "Excel 文件解压后超过 {} MB 上限，请拆分后导入",
                    MAX_INFLATED_BYTES / 1024 / 1024
                ));
            }
        }
    }
    Ok(())
}

fn open_xlsx(bytes: Vec<u8>) -> Result<Table, String> {
    use calamine::{DataRef, Reader, Xlsx};
    check_zip(&bytes)?;
    let bad = |e: &dyn std::fmt::Display| {
        tracing::info!(error = %e, "xlsx: unreadable");
        "无法读取 Excel 文件：文件已损坏或不是 .xlsx 格式，请在 Excel 中重新保存后上传".to_string()
    };
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).map_err(|e| bad(&e))?;
    let name = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| "Excel 文件中没有工作表".to_string())?;
    let mut cells = wb.worksheet_cells_reader(&name).map_err(|e| bad(&e))?;
    let text = |c: DataRef| -> String {
        match c {
            DataRef::Empty => String::new(),
            DataRef::String(s) => s,
            DataRef::SharedString(s) => s.to_string(),
            // IDs typed as numbers lose nothing below 2^53 only for 15-digit IDs; 18-digit ones must be text.
            DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            DataRef::Float(f) => f.to_string(),
            DataRef::Int(i) => i.to_string(),
            DataRef::Bool(b) => if b { "是" } else { "否" }.into(),
            DataRef::DateTime(d) => d
                .as_datetime()
                .map(|x| x.date().to_string())
                .unwrap_or_default(),
            DataRef::DateTimeIso(s) => s,
            DataRef::DurationIso(s) => s,
            DataRef::Error(e) => format!("#ERR {e:?}"),
        }
    };
    // Rows as they come, each placed by its row number; only rows with content are kept, and the
    // blank rows between them are given back as empty records when read (row numbers in error
    // reports stay those Excel shows).
    let mut rows: Vec<(u32, csv::StringRecord)> = vec![];
    let mut cur: Option<(u32, Vec<String>)> = None;
    let flush = |cur: &mut Option<(u32, Vec<String>)>, rows: &mut Vec<(u32, csv::StringRecord)>| {
        if let Some((r, mut v)) = cur.take() {
            while v.last().is_some_and(|s| s.is_empty()) {
                v.pop();
            }
            if !v.is_empty() {
                rows.push((r, v.into_iter().collect()));
            }
        }
    };
    while let Some(cell) = cells.next_cell().map_err(|e| bad(&e))? {
        let (r, c) = cell.get_position();
        let value = text(cell.get_value().clone());
        if value.is_empty() {
            continue; // formatted but empty cells, wherever they are
        }
        if r as usize > MAX_ROWS + 1 {
            return Err(format!("单个文件最多 {MAX_ROWS} 行，请拆分后导入"));
        }
        if c as usize >= MAX_COLS {
            return Err(format!(
                "第 {} 行第 {} 列有内容，表格最多 {MAX_COLS} 列，请使用下载的导入模板",
                r + 1,
                c + 1
            ));
        }
        if cur.as_ref().is_none_or(|(cr, _)| *cr != r) {
            if cur.as_ref().is_some_and(|(cr, _)| r < *cr)
                || rows.last().is_some_and(|(lr, _)| r <= *lr)
            {
                return Err(
                    "工作表中的行顺序异常，无法读取；请在 Excel 中重新保存后上传".to_string(),
                );
            }
            flush(&mut cur, &mut rows);
            if rows.len() > MAX_ROWS {
                return Err(format!("单个文件最多 {MAX_ROWS} 行，请拆分后导入"));
            }
            cur = Some((r, vec![]));
        }
        let v = &mut cur.as_mut().expect("a row").1;
        if v.len() <= c as usize {
            v.resize(c as usize + 1, String::new());
        }
        v[c as usize] = value;
    }
    flush(&mut cur, &mut rows);
    drop(cells);
    let mut it = rows.into_iter();
    let (head_row, head) = it.next().ok_or_else(|| "工作表为空".to_string())?;
    let headers: Vec<String> = head.iter().map(str::to_string).collect();
    let rows: Arc<Vec<(u32, csv::StringRecord)>> = Arc::new(it.collect());
    let approx_rows = rows.len();
    let again = move || -> RowIter {
        let rows = rows.clone();
        let mut next_row = head_row + 1;
        let mut i = 0usize;
        Box::new(std::iter::from_fn(move || {
            let (r, rec) = rows.get(i)?;
            if *r > next_row {
                next_row += 1;
                return Some(csv::StringRecord::new());
            }
            i += 1;
            next_row = r + 1;
            Some(rec.clone())
        }))
    };
    Ok(Table {
        headers,
        rows: again(),
        approx_rows,
        again: Some(Arc::new(again)),
    })
}

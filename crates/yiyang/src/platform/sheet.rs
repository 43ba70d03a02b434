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
    /// Which sheets and rows were read, and which passed over.
    pub layout: Arc<Layout>,
}

/// An import's column key of a header cell (`None`: a column it does not know, such as 序号).
pub type HeaderKey = fn(&str) -> Option<String>;

/// Header rows are looked for among this many first rows of a sheet (above them: a title, the
/// reporting unit, a date).
const HEADER_SEARCH_ROWS: usize = 20;
/// Cells merged cells may fill in (each a copy of its region's first cell).
const MAX_MERGE_FILLS: usize = 2_000_000;
/// Sheets larger than this are read without looking for merged cells (a machine export has
/// none; looking means reading the sheet's XML a second time).
const MERGE_ROWS: usize = 200_000;

/// Where a table's rows came from: the sheets read (each from its header row on), the sheets
/// passed over, and the rows passed over (totals, signatures, notes; blank rows are passed over
/// silently).
#[derive(Debug, Default)]
pub struct Layout {
    pub sheets: Vec<SheetRead>,
    pub other_sheets: Vec<String>,
    /// Filled in as the rows are read (a CSV is read as it streams), by (sheet, row).
    skipped: std::sync::Mutex<std::collections::BTreeMap<(usize, i64), SkippedRow>>,
}

/// Which sheets were read and which rows passed over, as shown to the importer and kept with the job.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LayoutView {
    pub sheets: Vec<SheetRead>,
    /// Sheets without a header row naming the import's columns, passed over.
    pub other_sheets: Vec<String>,
    pub skipped: Vec<SkippedRow>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SheetRead {
    /// The sheet's name (empty for a CSV file).
    pub name: String,
    /// The header's row, as Excel counts.
    pub header_row: i64,
    /// Data rows with content.
    pub rows: i64,
    /// The table's first data record of this sheet (0-based, as the rows are iterated).
    #[serde(skip)]
    #[schema(ignore)]
    first_seq: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SkippedRow {
    pub sheet: String,
    pub row: i64,
    pub reason: String,
}

impl Layout {
    /// The sheet and Excel row of an importer's row number (the header is row 1 and the first data
    /// record row 2, as importers count the records they are given).
    pub fn place(&self, row_no: i64) -> (&str, i64) {
        let seq = row_no - 2;
        match self.sheets.iter().rev().find(|s| s.first_seq <= seq) {
            Some(s) => (s.name.as_str(), s.header_row + 1 + (seq - s.first_seq)),
            None => ("", row_no),
        }
    }
    /// A row's reason with its sheet named, when the workbook had more than one sheet read.
    pub fn locate(&self, row_no: i64, reason: String) -> (i64, String) {
        let (sheet, row) = self.place(row_no);
        if self.sheets.len() > 1 {
            (row, format!("工作表“{sheet}”：{reason}"))
        } else {
            (row, reason)
        }
    }
    fn skip(&self, sheet: usize, name: &str, row: i64, reason: &str) {
        self.skipped.lock().expect("not poisoned").insert(
            (sheet, row),
            SkippedRow {
                sheet: name.to_string(),
                row,
                reason: reason.to_string(),
            },
        );
    }
    pub fn view(&self) -> LayoutView {
        LayoutView {
            sheets: self.sheets.clone(),
            other_sheets: self.other_sheets.clone(),
            skipped: self
                .skipped
                .lock()
                .expect("not poisoned")
                .values()
                .cloned()
                .collect(),
        }
    }
}

/// Why a data row of an office's form is passed over: a total line, a note, or the signatures
/// under the table ("填表人：… 审核人：…").
pub fn footer_reason(cells: &csv::StringRecord) -> Option<&'static str> {
    let mut filled = cells.iter().map(str::trim).filter(|c| !c.is_empty());
    let first: String = filled
        .next()?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if ["合计", "总计", "小计", "共计"]
        .iter()
        .any(|t| first.starts_with(t))
    {
        return Some("合计行");
    }
    if ["注：", "注:", "说明：", "说明:", "备注："]
        .iter()
        .any(|t| first.starts_with(t))
    {
        return Some("说明行");
    }
    const SIGNS: [&str; 9] = [
        "填表人",
        "填报人",
        "制表人",
        "审核人",
        "负责人",
        "经办人",
        "签字",
        "盖章",
        "填报日期",
    ];
    if filled.take(4).count() < 4 && cells.iter().any(|c| SIGNS.iter().any(|s| c.contains(s))) {
        return Some("签名行");
    }
    None
}

/// Whether a row is the header: it names at least two of the import's columns (one, when it
/// holds one cell only), so that a title or a "填报单位" line above it is not.
fn is_header(cells: &csv::StringRecord, key: HeaderKey) -> bool {
    let filled = cells.iter().filter(|c| !c.trim().is_empty()).count();
    let known = cells.iter().filter(|c| key(c).is_some()).count();
    known >= 1 && known >= filled.min(2)
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

/// Opens an uploaded file as offices keep them: the header row is found among the first rows
/// (`key` names the import's columns), every sheet with such a header is read (its columns put in
/// the first sheet's order), merged cells are filled from their first cell, and total, note and
/// signature rows are passed over. The error is a Chinese sentence saying what to fix.
pub fn open_table(bytes: Vec<u8>, file_name: &str, key: HeaderKey) -> Result<Table, String> {
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
        return open_xlsx(bytes, key);
    }
    if lower.ends_with(".xls") {
        return Err("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV".into());
    }
    open_csv(bytes, key)
}

fn open_csv(bytes: Vec<u8>, key: HeaderKey) -> Result<Table, String> {
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
    let lines = {
        let text = text.clone();
        move || CsvLines::new(text.clone())
    };
    // The header: the first record that names the import's columns, else the first record (its
    // missing columns are then named by the import).
    let mut first: Vec<(u64, csv::StringRecord)> = vec![];
    for (line, r) in lines()
        .filter(|(_, r)| r.as_ref().map_or(true, |r| !r.is_empty()))
        .take(HEADER_SEARCH_ROWS)
    {
        match r {
            Ok(r) => first.push((line, r)),
            Err(()) if first.is_empty() => return Err("文件为空或无法读取表头".into()),
            Err(()) => break,
        }
    }
    let (head_line, head) = first
        .iter()
        .find(|(_, r)| is_header(r, key))
        .or(first.first())
        .cloned()
        .ok_or_else(|| "文件为空或无法读取表头".to_string())?;
    let headers: Vec<String> = head.iter().map(str::to_string).collect();
    if headers.len() > MAX_COLS {
        return Err(too_wide(headers.len()));
    }
    let approx_rows = approx_rows.saturating_sub(head_line.saturating_sub(1) as usize);
    let layout = Arc::new(Layout {
        sheets: vec![SheetRead {
            name: String::new(),
            header_row: head_line as i64,
            rows: approx_rows as i64,
            first_seq: 0,
        }],
        ..Default::default()
    });
    let seen = layout.clone();
    // Records keep the file's line numbers: a blank line (which the CSV reader passes over) comes
    // back as an empty record, so the rows an error names are the lines the file shows.
    let again =
        move || -> RowIter {
            let seen = seen.clone();
            Box::new(lines().skip_while(move |(line, _)| *line <= head_line).map(
                move |(line, r)| match r {
                    // Cells past the widest template are never read; keep a row's memory bounded.
                    Ok(r) if r.len() > MAX_COLS => r.iter().take(MAX_COLS).collect(),
                    Ok(r) => match footer_reason(&r) {
                        Some(why) => {
                            seen.skip(0, "", line as i64, why);
                            csv::StringRecord::new()
                        }
                        None => r,
                    },
                    Err(()) => csv::StringRecord::from(vec![MALFORMED]),
                },
            ))
        };
    Ok(Table {
        headers,
        rows: again(),
        approx_rows,
        again: Some(Arc::new(again)),
        layout,
    })
}

/// A CSV's records by the line each starts on, with an empty record for every blank line and for
/// each further line of a record whose quoted cell spans lines (the reader passes blank lines over,
/// and names a record after one by the blank line's number).
struct CsvLines {
    it: csv::StringRecordsIntoIter<ArcReader>,
    text: Arc<String>,
    line: u64,
    queue: std::collections::VecDeque<(u64, Result<csv::StringRecord, ()>)>,
}

impl CsvLines {
    fn new(text: Arc<String>) -> Self {
        let it = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(ArcReader {
                s: text.clone(),
                pos: 0,
            })
            .into_records();
        CsvLines {
            it,
            text,
            line: 1,
            queue: Default::default(),
        }
    }
}

impl Iterator for CsvLines {
    type Item = (u64, Result<csv::StringRecord, ()>);
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(x) = self.queue.pop_front() {
            return Some(x);
        }
        let b = self.text.as_bytes();
        let start = self.it.reader().position().byte() as usize;
        let mut p = start.min(b.len());
        let mut blanks = 0;
        loop {
            if b[p..].starts_with(b"\r\n") {
                p += 2;
            } else if b.get(p) == Some(&b'\n') {
                p += 1;
            } else {
                break;
            }
            blanks += 1;
        }
        let rec = self.it.next()?.map_err(|_| ());
        let end = (self.it.reader().position().byte() as usize).clamp(p, b.len());
        let spans = memchr::memchr_iter(b'\n', &b[p..end]).count().max(1);
        for _ in 0..blanks {
            self.queue
                .push_back((self.line, Ok(csv::StringRecord::new())));
            self.line += 1;
        }
        self.queue.push_back((self.line, rec));
        self.line += 1;
        for _ in 1..spans {
            self.queue
                .push_back((self.line, Ok(csv::StringRecord::new())));
            self.line += 1;
        }
        self.queue.pop_front()
    }
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

/// Rows with content of one sheet, each with its row number (0-based), in order.
type SheetRows = Vec<(u32, csv::StringRecord)>;

fn open_xlsx(bytes: Vec<u8>, key: HeaderKey) -> Result<Table, String> {
    use calamine::{Reader, Xlsx};
    check_zip(&bytes)?;
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).map_err(|e| unreadable(&e))?;
    let names = wb.sheet_names();
    if names.is_empty() {
        return Err("Excel 文件中没有工作表".to_string());
    }
    // Each sheet read as rows with content; the header looked for among its first rows.
    let mut read: Vec<(String, SheetRows, usize)> = vec![];
    let mut other_sheets = vec![];
    let mut fallback: Option<(String, SheetRows)> = None;
    let mut total = 0usize;
    for name in names {
        let mut rows = sheet_rows(&mut wb, &name, &mut total)?;
        if !rows.is_empty() && rows.len() <= MERGE_ROWS {
            fill_merged(&mut wb, &name, &mut rows)?;
        }
        match rows
            .iter()
            .take(HEADER_SEARCH_ROWS)
            .position(|(_, r)| is_header(r, key))
        {
            Some(h) => read.push((name, rows, h)),
            None => {
                if fallback.is_none() && !rows.is_empty() {
                    fallback = Some((name.clone(), rows));
                }
                other_sheets.push(name);
            }
        }
    }
    if read.is_empty() {
        // No sheet names the import's columns: the first sheet's first row stands as the header,
        // and the import says which columns it lacks.
        let (name, rows) = fallback.ok_or_else(|| "工作表为空".to_string())?;
        other_sheets.retain(|n| *n != name);
        read.push((name, rows, 0));
    }
    // The first sheet's header is the table's; the columns of the others follow it by key.
    let headers: Vec<String> = read[0].1[read[0].2].1.iter().map(str::to_string).collect();
    let keys: Vec<Option<String>> = headers.iter().map(|h| key(h)).collect();
    let mut layout = Layout {
        other_sheets,
        ..Default::default()
    };
    let mut parts: Vec<(u32, SheetRows)> = vec![];
    let mut first_seq = 0i64;
    for (k, (name, rows, h)) in read.into_iter().enumerate() {
        let mut it = rows.into_iter();
        let (head_row, head) = it.nth(h).expect("the header row");
        let to: Vec<Option<usize>> = if k == 0 {
            (0..head.len()).map(Some).collect()
        } else {
            head.iter()
                .map(|c| key(c).and_then(|kk| keys.iter().position(|x| x.as_deref() == Some(&kk))))
                .collect()
        };
        let mut data: SheetRows = vec![];
        for (r, rec) in it {
            if let Some(why) = footer_reason(&rec) {
                layout.skip(k, &name, r as i64 + 1, why);
                continue;
            }
            if k == 0 {
                data.push((r, rec));
            } else {
                let mut v = vec![String::new(); headers.len()];
                for (i, c) in rec.iter().enumerate() {
                    if let Some(Some(j)) = to.get(i) {
                        v[*j] = c.to_string();
                    }
                }
                data.push((r, v.into_iter().collect()));
            }
        }
        // Records run from the row under the header to the last row with content.
        let span = data.last().map_or(0, |(r, _)| (r - head_row) as i64);
        layout.sheets.push(SheetRead {
            name,
            header_row: head_row as i64 + 1,
            rows: data.len() as i64,
            first_seq,
        });
        first_seq += span;
        parts.push((head_row, data));
    }
    let approx_rows = parts.iter().map(|p| p.1.len()).sum();
    let parts = Arc::new(parts);
    let again = move || -> RowIter {
        let parts = parts.clone();
        Box::new((0..parts.len()).flat_map(move |k| {
            let parts = parts.clone();
            let mut next_row = parts[k].0 + 1;
            let mut i = 0usize;
            std::iter::from_fn(move || {
                let (r, rec) = parts[k].1.get(i)?;
                if *r > next_row {
                    next_row += 1;
                    return Some(csv::StringRecord::new());
                }
                i += 1;
                next_row = r + 1;
                Some(rec.clone())
            })
        }))
    };
    Ok(Table {
        headers,
        rows: again(),
        approx_rows,
        again: Some(Arc::new(again)),
        layout: Arc::new(layout),
    })
}

fn unreadable(e: &dyn std::fmt::Display) -> String {
    tracing::info!(error = %e, "xlsx: unreadable");
    "无法读取 Excel 文件：文件已损坏或不是 .xlsx 格式，请在 Excel 中重新保存后上传".to_string()
}

/// A sheet's rows with content, read cell by cell (never as the dense grid its `<dimension>` or a
/// far cell would imply). `total` counts rows across the workbook against [`MAX_ROWS`].
fn sheet_rows(
    wb: &mut calamine::Xlsx<std::io::Cursor<Vec<u8>>>,
    name: &str,
    total: &mut usize,
) -> Result<SheetRows, String> {
    use calamine::DataRef;
    let mut cells = wb
        .worksheet_cells_reader(name)
        .map_err(|e| unreadable(&e))?;
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
    let mut rows: SheetRows = vec![];
    let mut cur: Option<(u32, Vec<String>)> = None;
    let flush = |cur: &mut Option<(u32, Vec<String>)>, rows: &mut SheetRows| {
        if let Some((r, mut v)) = cur.take() {
            while v.last().is_some_and(|s| s.is_empty()) {
                v.pop();
            }
            if !v.is_empty() {
                rows.push((r, v.into_iter().collect()));
            }
        }
    };
    while let Some(cell) = cells.next_cell().map_err(|e| unreadable(&e))? {
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
                "工作表“{name}”第 {} 行第 {} 列有内容，表格最多 {MAX_COLS} 列，请使用下载的导入模板",
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
            *total += 1;
            if *total > MAX_ROWS + 1 {
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
    Ok(rows)
}

/// Fills each merged region's cells, in the rows with content, from its first cell (a village
/// name merged down the rows of its people). Bounded by [`MAX_MERGE_FILLS`] cells.
fn fill_merged(
    wb: &mut calamine::Xlsx<std::io::Cursor<Vec<u8>>>,
    name: &str,
    rows: &mut SheetRows,
) -> Result<(), String> {
    let regions = match wb.worksheet_merge_cells(name) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(unreadable(&e)),
        None => return Ok(()),
    };
    let mut fills = 0usize;
    for d in regions {
        let (r0, c0) = d.start;
        let (r1, c1) = (d.end.0, d.end.1.min(MAX_COLS as u32 - 1));
        if c0 > c1 || r0 > r1 {
            continue;
        }
        let Ok(at) = rows.binary_search_by_key(&r0, |(r, _)| *r) else {
            continue; // the first cell is empty: nothing to copy
        };
        let Some(value) = rows[at].1.get(c0 as usize).map(str::to_string) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let end = rows.partition_point(|(r, _)| *r <= r1);
        for (_, rec) in &mut rows[at..end] {
            let mut v: Vec<String> = rec.iter().map(str::to_string).collect();
            if v.len() <= c1 as usize {
                v.resize(c1 as usize + 1, String::new());
            }
            for cell in &mut v[c0 as usize..=c1 as usize] {
                if cell.is_empty() {
                    *cell = value.clone();
                    fills += 1;
                }
            }
            if fills > MAX_MERGE_FILLS {
                return Err(format!(
                    "工作表“{name}”的合并单元格过多（超过 {MAX_MERGE_FILLS} 格），请取消合并后导入"
                ));
            }
            *rec = v.into_iter().collect();
        }
    }
    Ok(())
}

/// A refused row of an uploaded sheet (members of a list, organisations).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RowProblem {
    /// Row number as Excel shows it on its sheet.
    pub row: i64,
    pub reason: String,
}
